// The watch trees of the file source (daemon/sources/file/watch_set.h) against a real inotify fd
// on a temp dir. The kernel queues inotify events synchronously with the syscall that
// causes them, so a test makes its changes, then pumps what is queued: no sleeping, no races.
#include "sources/file/watch_set.h"

#include <gtest/gtest.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "fakes/manual_clock.h"
#include "fakes/temp_dir.h"

namespace tocsin::fs {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;
using testing::ManualClock;
using testing::TempDir;
namespace stdfs = std::filesystem;

// ---- watch trees on a real inotify fd ----------------------------------------------------------

// A SystemFs whose add_watch fails with ENOSPC for paths containing `fail_marker` (the watch
// limit cannot be lowered without changing a global sysctl), and that records every mask asked
// for.
class LimitedFs : public FsOps {
 public:
  explicit LimitedFs(int fd) : real_(fd) {}
  int add_watch(const std::string& path, std::uint32_t mask) override {
    asked.emplace_back(path, mask);
    if (!fail_marker.empty() && path.find(fail_marker) != std::string::npos) return -ENOSPC;
    return real_.add_watch(path, mask);
  }
  void rm_watch(int wd) override { real_.rm_watch(wd); }
  std::optional<FileStat> stat(const std::string& path, bool follow) override {
    return real_.stat(path, follow);
  }
  Result<std::vector<DirEntry>> list(const std::string& path, bool follow) override {
    return real_.list(path, follow);
  }
  std::string fail_marker;
  std::vector<std::pair<std::string, std::uint32_t>> asked;  // (path, mask) of each add_watch

  // The masks asked for `path`, in order.
  std::vector<std::uint32_t> masks(const std::string& path) const {
    std::vector<std::uint32_t> out;
    for (const auto& [p, mask] : asked) {
      if (p == path) out.push_back(mask);
    }
    return out;
  }

 private:
  SystemFs real_;
};

struct WatchSetTest : ::testing::Test {
  TempDir dir;
  int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  LimitedFs fs{fd};
  ManualClock clock;
  WatchSet set{fs, clock};

  ~WatchSetTest() override { ::close(fd); }

  std::string at(const std::string& rel) const { return (dir.path() / rel).string(); }

  Monitor& add(const std::string& id, const std::string& path, bool recursive = false,
               std::uint32_t events = config::kFileAllEvents, const std::string& match = "") {
    config::FileMonitorSpec spec;
    spec.id = id;
    spec.signal = 1;
    spec.path = path;
    spec.recursive = recursive;
    spec.events = events;
    spec.match = match;
    auto r = set.add(spec, false);
    EXPECT_TRUE(r) << r.error().message;
    return *r.value();
  }

  // Feeds every queued event to the set, as the source's read loop does.
  void pump() {
    alignas(inotify_event) char buf[65536];
    while (true) {
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n < 0) {
        ASSERT_EQ(errno, EAGAIN);
        break;
      }
      for (char* p = buf; p < buf + n;) {
        auto* ev = reinterpret_cast<inotify_event*>(p);
        std::string_view name(ev->name, ev->len ? ::strnlen(ev->name, ev->len) : 0);
        set.handle(RawEvent{ev->wd, ev->mask, ev->cookie, name});
        p += sizeof(inotify_event) + ev->len;
      }
    }
    set.end_of_drain();
  }

  // How many events the kernel has queued (read and thrown away): what would wake the daemon.
  int queued() {
    alignas(inotify_event) char buf[65536];
    int count = 0;
    ssize_t n;
    while ((n = ::read(fd, buf, sizeof buf)) > 0) {
      for (char* p = buf; p < buf + n;) {
        auto* ev = reinterpret_cast<inotify_event*>(p);
        ++count;
        p += sizeof(inotify_event) + ev->len;
      }
    }
    return count;
  }

  // Reads and throws away what is queued: the events a queue overflow would lose.
  void lose_events() {
    char buf[65536];
    while (::read(fd, buf, sizeof buf) > 0) {
    }
  }

  // path -> event names, of what `m` has pending (taken).
  static std::map<std::string, std::vector<std::string_view>> take(Monitor& m) {
    std::map<std::string, std::vector<std::string_view>> out;
    for (auto& c : m.batch.take().changes) out[c.path] = event_names(c.events);
    return out;
  }

  static void write(const std::string& path, const std::string& text) {
    std::ofstream(path, std::ios::trunc) << text;
  }
};

using Names = std::vector<std::string_view>;

TEST_F(WatchSetTest, AFileRuleSurvivesAtomicSavesAndDeleteRecreate) {
  write(at("app.conf"), "v1");
  Monitor& m = add("f", at("app.conf"));
  EXPECT_EQ(m.degraded, "");
  write(at("other"), "not watched");
  // An editor's atomic save: write a temp file, rename it over.
  write(at(".app.conf.tmp"), "v2");
  stdfs::rename(at(".app.conf.tmp"), at("app.conf"));
  pump();
  EXPECT_EQ(take(m), (std::map<std::string, Names>{{at("app.conf"), {"move"}}}));
  // Still watched: the new file is written in place.
  write(at("app.conf"), "v3");
  pump();
  EXPECT_EQ(take(m), (std::map<std::string, Names>{{at("app.conf"), {"modify", "close_write"}}}));
  // Deleted (the monitor says the path is gone), then created again.
  stdfs::remove(at("app.conf"));
  pump();
  EXPECT_EQ(take(m), (std::map<std::string, Names>{{at("app.conf"), {"delete"}}}));
  EXPECT_NE(m.degraded.find("does not exist"), std::string::npos) << m.degraded;
  write(at("app.conf"), "v4");
  pump();
  EXPECT_EQ(take(m),
            (std::map<std::string, Names>{{at("app.conf"), {"create", "modify", "close_write"}}}));
  EXPECT_EQ(m.degraded, "");
}

TEST_F(WatchSetTest, ANewSubtreeIsReportedWhole) {
  Monitor& m = add("r", dir.path().string(), /*recursive=*/true);
  EXPECT_EQ(m.watches, 2u) << "the directory and its parent (for the directory's own name)";
  stdfs::create_directories(at("a/b/c/d/e"));
  write(at("a/b/c/d/e/f"), "x");
  pump();
  auto got = take(m);
  for (const char* p : {"a", "a/b", "a/b/c", "a/b/c/d", "a/b/c/d/e", "a/b/c/d/e/f"}) {
    EXPECT_TRUE(got.contains(at(p))) << p;
  }
  EXPECT_EQ(m.watches, 7u);
  // And each new directory is watched: a later write deep down is an ordinary event.
  write(at("a/b/c/d/e/g"), "y");
  pump();
  EXPECT_EQ(take(m), (std::map<std::string, Names>{
                         {at("a/b/c/d/e/g"), {"create", "modify", "close_write"}}}));
}

TEST_F(WatchSetTest, ADirectoryRenamedInsideTheTreeKeepsItsSubtree) {
  stdfs::create_directories(at("old/sub"));
  Monitor& m = add("r", dir.path().string(), true);
  EXPECT_EQ(m.watches, 4u);
  stdfs::rename(at("old"), at("new"));
  pump();
  EXPECT_EQ(take(m), (std::map<std::string, Names>{{at("old"), {"move"}}, {at("new"), {"move"}}}));
  EXPECT_EQ(m.watches, 4u) << "the same watches, not new ones";
  write(at("new/sub/file"), "x");
  pump();
  EXPECT_EQ(take(m), (std::map<std::string, Names>{
                         {at("new/sub/file"), {"create", "modify", "close_write"}}}));
}

TEST_F(WatchSetTest, ADirectoryMovedOutIsDropped) {
  TempDir outside;
  stdfs::create_directories(at("tree/gone/sub"));
  Monitor& m = add("r", at("tree"), true);
  EXPECT_EQ(m.watches, 4u);
  std::size_t kernel_watches = set.watch_count();
  stdfs::rename(at("tree/gone"), outside.path() / "gone");
  pump();
  EXPECT_EQ(take(m), (std::map<std::string, Names>{{at("tree/gone"), {"move"}}}));
  EXPECT_EQ(m.watches, 2u);
  EXPECT_EQ(set.watch_count(), kernel_watches - 2);
  write((outside.path() / "gone/sub/file").string(), "x");
  pump();
  EXPECT_FALSE(m.batch.pending()) << "nothing is reported from outside the tree";
}

TEST_F(WatchSetTest, AMissingPathIsWatchedFromAnAncestorAndPickedUp) {
  Monitor& m = add("m", at("x/y/z"), true);
  EXPECT_NE(m.degraded.find("watching " + dir.path().string()), std::string::npos) << m.degraded;
  stdfs::create_directories(at("x/y/z/inner"));
  write(at("x/y/z/inner/file"), "x");
  pump();
  auto got = take(m);
  EXPECT_TRUE(got.contains(at("x/y/z"))) << "the path's own appearance";
  EXPECT_TRUE(got.contains(at("x/y/z/inner/file")));
  EXPECT_FALSE(got.contains(at("x/y"))) << "outside the monitor";
  EXPECT_EQ(m.degraded, "");
}

TEST_F(WatchSetTest, AVanishedRootDegradesAndRecovers) {
  stdfs::create_directories(at("root/sub"));
  Monitor& m = add("r", at("root"), true);
  Monitor& other = add("o", dir.path().string(), false, config::kFileAllEvents, "other*");
  stdfs::remove_all(at("root"));
  pump();
  EXPECT_NE(m.degraded.find("does not exist"), std::string::npos) << m.degraded;
  EXPECT_EQ(m.watches, 1u) << "only the parent, waiting";
  take(m);
  write(at("other.txt"), "x");
  pump();
  EXPECT_TRUE(take(other).contains(at("other.txt"))) << "the other monitor goes on";
  stdfs::create_directories(at("root/sub"));
  write(at("root/sub/f"), "x");
  pump();
  auto got = take(m);
  EXPECT_TRUE(got.contains(at("root/sub/f")));
  EXPECT_EQ(m.degraded, "");
  EXPECT_EQ(m.watches, 3u);
}

TEST_F(WatchSetTest, TheWatchLimitDegradesOneMonitorUntilARetrySucceeds) {
  stdfs::create_directories(at("big/deep"));
  fs.fail_marker = "deep";
  Monitor& m = add("big", at("big"), true);
  Monitor& ok = add("small", at("big"), false);
  EXPECT_NE(m.degraded.find("watch limit"), std::string::npos) << m.degraded;
  EXPECT_EQ(m.unwatched, 1u);
  EXPECT_EQ(ok.degraded, "");
  EXPECT_TRUE(set.needs_retry());
  write(at("big/deep/missed"), "x");
  write(at("big/seen"), "x");
  pump();
  EXPECT_FALSE(take(m).contains(at("big/deep/missed"))) << "no watch there";
  EXPECT_TRUE(take(ok).contains(at("big/seen")));
  EXPECT_TRUE(set.retry()) << "still failing: retry again later";
  EXPECT_TRUE(set.needs_retry());
  fs.fail_marker.clear();
  EXPECT_FALSE(set.retry());
  EXPECT_EQ(m.degraded, "");
  EXPECT_EQ(m.unwatched, 0u);
  // The rescan that comes with the new watch reports what happened while unwatched.
  EXPECT_EQ(take(m), (std::map<std::string, Names>{{at("big/deep/missed"), {"create"}}}));
  write(at("big/deep/later"), "x");
  pump();
  EXPECT_TRUE(take(m).contains(at("big/deep/later")));
}

TEST_F(WatchSetTest, AnOverflowRescanReportsWhatChangedMeanwhile) {
  stdfs::create_directories(at("t/sub"));
  write(at("t/kept"), "1");
  write(at("t/changed"), "1");
  write(at("t/deleted"), "1");
  Monitor& m = add("t", at("t"), true);
  write(at("t/changed"), "22");
  stdfs::remove(at("t/deleted"));
  write(at("t/new"), "1");
  stdfs::create_directories(at("t/newdir/inner"));
  write(at("t/newdir/inner/f"), "1");
  write(at("t/sub/f"), "1");
  lose_events();
  set.overflow();
  Batch b = m.batch.take();
  EXPECT_TRUE(b.overflow);
  std::map<std::string, Names> got;
  for (auto& c : b.changes) got[c.path] = event_names(c.events);
  EXPECT_EQ(got, (std::map<std::string, Names>{{at("t/changed"), {"modify"}},
                                               {at("t/deleted"), {"delete"}},
                                               {at("t/new"), {"create"}},
                                               {at("t/newdir"), {"create"}},
                                               {at("t/newdir/inner"), {"create"}},
                                               {at("t/newdir/inner/f"), {"create"}},
                                               {at("t/sub/f"), {"create"}}}));
  write(at("t/newdir/inner/g"), "1");
  pump();
  EXPECT_TRUE(take(m).contains(at("t/newdir/inner/g"))) << "new directories are watched";
}

TEST_F(WatchSetTest, TheRootDirectoryHasNoAnchorAndRescansInPlace) {
  Monitor& m = add("slash", "/");
  EXPECT_EQ(m.degraded, "");
  EXPECT_EQ(m.watches, 1u);
  set.overflow();
  Batch b = m.batch.take();
  EXPECT_TRUE(b.overflow);
  EXPECT_LT(b.changes.size(), 3u) << "a diff, not every entry of / again";
}

TEST_F(WatchSetTest, MonitorsShareKernelWatches) {
  add("a", dir.path().string());
  add("b", dir.path().string(), false, config::kFileCloseWrite);
  add("c", at("file"));
  EXPECT_EQ(set.watch_count(), 2u) << "the dir, and its parent for the root's own name";
  EXPECT_TRUE(set.remove("a"));
  EXPECT_TRUE(set.remove("c"));
  EXPECT_EQ(set.watch_count(), 2u);
  EXPECT_TRUE(set.remove("b"));
  EXPECT_EQ(set.watch_count(), 0u);
  EXPECT_FALSE(set.remove("b"));
}

TEST_F(WatchSetTest, EventsAndMatchFilter) {
  Monitor& conf = add("conf", dir.path().string(), false, config::kFileCloseWrite, "*.conf");
  write(at("a.conf"), "x");
  write(at("b.txt"), "x");
  stdfs::remove(at("a.conf"));
  pump();
  EXPECT_EQ(take(conf), (std::map<std::string, Names>{{at("a.conf"), {"close_write"}}}));
}

// ---- what each watch asks for (issue 17: quiet anchors) ----------------------------------------

constexpr std::uint32_t kDir = IN_ONLYDIR | IN_MASK_ADD;

TEST_F(WatchSetTest, AnAnchorAsksOnlyForEntriesAndAFileIsWatchedItself) {
  write(at("app.conf"), "v1");
  stdfs::create_directories(at("tree"));
  add("f", at("app.conf"));
  add("d", at("tree"));
  const std::string parent = dir.path().string();
  EXPECT_EQ(fs.masks(parent),
            (std::vector<std::uint32_t>{kAnchorEvents | kDir, kAnchorEvents | kDir}));
  EXPECT_EQ(fs.masks(at("app.conf")), (std::vector<std::uint32_t>{kFileEvents | IN_MASK_ADD}));
  EXPECT_EQ(fs.masks(at("tree")), (std::vector<std::uint32_t>{kTreeEvents | kDir}));
  for (const auto& [path, mask] : fs.asked) {
    if (path == parent) {
      EXPECT_EQ(mask & (IN_MODIFY | IN_CLOSE_WRITE | IN_ATTRIB), 0u);
    }
  }
}

TEST_F(WatchSetTest, ABusyNeighbourQueuesNothing) {
  write(at("app.conf"), "v1");
  stdfs::create_directories(at("tree"));
  Monitor& f = add("f", at("app.conf"));
  Monitor& d = add("d", at("tree"));
  {
    std::ofstream sibling(at("sibling.log"));
    sibling << "x" << std::flush;
    ASSERT_EQ(queued(), 1) << "its creation, heard by the anchor";
    for (int i = 0; i < 1000; ++i) sibling << "line " << i << "\n" << std::flush;
    ::chmod(at("sibling.log").c_str(), 0600);
  }
  EXPECT_EQ(queued(), 0) << "writes, closes, attributes of a neighbour wake nothing";
  // Still so after an atomic save replaced the file (a new inode, a new watch).
  write(at(".app.conf.tmp"), "v2");
  stdfs::rename(at(".app.conf.tmp"), at("app.conf"));
  pump();
  EXPECT_EQ(take(f), (std::map<std::string, Names>{{at("app.conf"), {"move"}}}));
  std::ofstream(at("sibling.log"), std::ios::app) << "more" << std::flush;
  EXPECT_EQ(queued(), 0);
  // The monitored paths themselves are heard.
  write(at("app.conf"), "v3");
  write(at("tree/x"), "x");
  pump();
  EXPECT_EQ(take(f), (std::map<std::string, Names>{{at("app.conf"), {"modify", "close_write"}}}));
  EXPECT_EQ(take(d),
            (std::map<std::string, Names>{{at("tree/x"), {"create", "modify", "close_write"}}}));
}

TEST_F(WatchSetTest, AnAnchorWaitingForItsFileHearsWritesUntilTheFileHasAWatch) {
  Monitor& m = add("f", at("later.conf"));
  const std::string parent = dir.path().string();
  EXPECT_EQ(fs.masks(parent).back(), kWaitingAnchorEvents | IN_ONLYDIR)
      << "a file's first writes come before its own watch";
  write(at("later.conf"), "x");
  pump();
  EXPECT_EQ(
      take(m),
      (std::map<std::string, Names>{{at("later.conf"), {"create", "modify", "close_write"}}}));
  EXPECT_EQ(fs.masks(parent).back(), kAnchorEvents | IN_ONLYDIR) << "quiet again";
  EXPECT_EQ(fs.masks(at("later.conf")).back(), kFileEvents | IN_MASK_ADD);
  // Deleted: waiting again.
  stdfs::remove(at("later.conf"));
  pump();
  EXPECT_EQ(take(m), (std::map<std::string, Names>{{at("later.conf"), {"delete"}}}));
  EXPECT_EQ(fs.masks(parent).back(), kWaitingAnchorEvents | IN_ONLYDIR);
}

TEST_F(WatchSetTest, AFileCreatedAndWrittenBeforeTheDeleteIsHandledIsStillReportedWritten) {
  write(at("app.conf"), "v1");
  Monitor& m = add("f", at("app.conf"), false, config::kFileCloseWrite);
  // Delete and create again in one go: the anchor was quiet (the file had its own watch), so
  // the new file's writes were heard by nobody; its content says it was written.
  stdfs::remove(at("app.conf"));
  write(at("app.conf"), "v2");
  pump();
  EXPECT_EQ(take(m), (std::map<std::string, Names>{{at("app.conf"), {"modify"}}}));
  write(at("app.conf"), "v3");
  pump();
  EXPECT_EQ(take(m), (std::map<std::string, Names>{{at("app.conf"), {"close_write"}}}));
}

TEST_F(WatchSetTest, ASharedWatchAsksForTheUnionOfItsUsers) {
  stdfs::create_directories(at("d"));
  add("tree", at("d"));        // d is a tree directory: everything
  add("file", at("d/f.txt"));  // d is also the anchor of a file that does not exist
  EXPECT_EQ(set.watch_count(), 2u);
  write(at("d/other"), "x");
  EXPECT_GT(queued(), 0) << "the tree's events";
  // The tree goes: d is only an anchor now, waiting for f.txt, and asks for that alone.
  EXPECT_TRUE(set.remove("tree"));
  EXPECT_EQ(fs.masks(at("d")).back(), kWaitingAnchorEvents | IN_ONLYDIR);
  write(at("d/f.txt"), "x");
  pump();
  EXPECT_EQ(fs.masks(at("d")).back(), kAnchorEvents | IN_ONLYDIR);
  std::ofstream(at("d/other"), std::ios::app) << "more" << std::flush;
  EXPECT_EQ(queued(), 0);
  // A file watch that fails (the watch limit) leaves the anchor hearing it by name.
  fs.fail_marker = "g.txt";
  Monitor& g = add("g", at("d/g.txt"));
  write(at("d/g.txt"), "x");
  pump();
  EXPECT_EQ(g.unwatched, 1u);
  EXPECT_EQ(fs.masks(at("d")).back(), kWaitingAnchorEvents | IN_ONLYDIR);
  take(g);
  write(at("d/g.txt"), "y");
  pump();
  EXPECT_EQ(take(g), (std::map<std::string, Names>{{at("d/g.txt"), {"modify", "close_write"}}}));
  fs.fail_marker.clear();
  EXPECT_FALSE(set.retry());
  EXPECT_EQ(g.unwatched, 0u);
  EXPECT_EQ(fs.masks(at("d")).back(), kAnchorEvents | IN_ONLYDIR);
}

TEST_F(WatchSetTest, BadSpecsAreRefused) {
  config::FileMonitorSpec spec;
  spec.id = "x";
  spec.path = "relative/path";
  EXPECT_FALSE(set.add(spec, false));
  spec.path = "/tmp";
  spec.match = "[oops";
  auto r = set.add(spec, false);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("unclosed '['"), std::string::npos) << r.error().message;
  spec.match = "";
  spec.events = 0;
  EXPECT_FALSE(set.add(spec, false));
}

}  // namespace
}  // namespace tocsin::fs
