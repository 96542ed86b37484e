// File monitors against the real daemon and real files in a temp dir (SPEC §3 `file`, issue 5).
// Each test is one of the ways today's tools lose changes: an atomic save, a write right after
// `mkdir -p`, a queue overflow, a steady writer under a debounce, a vanished root. Every wait has
// a deadline; nothing sleeps to wait.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <ctime>
#include <iomanip>
#include <sstream>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "fakes/daemon_process.h"
#include "fakes/line_client.h"
#include "fakes/temp_dir.h"

namespace tocsin::testing {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;
namespace stdfs = std::filesystem;

constexpr const char* kSignals = R"Y(
signals:
  17: {name: changed, handlers: [{target: subscribers}]}
  18: {name: marker, handlers: [{target: subscribers}]}
)Y";

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  ASSERT_TRUE(out) << "cannot write " << path;
}

struct FileMonitorsTest : ::testing::Test {
  TempDir dir;
  std::string sock = dir.file("tocsin.sock");
  std::unique_ptr<DaemonProcess> daemon;
  std::unique_ptr<LineClient> sub;
  // Every change received so far: path -> event names (all events of all batches).
  std::map<std::string, std::set<std::string>> seen;

  std::string at(const std::string& rel) const { return (dir.path() / rel).string(); }

  void start(const std::string& monitors_yaml) {
    std::string config = dir.write("tocsin.yaml", std::string(kSignals) + monitors_yaml);
    daemon = std::make_unique<DaemonProcess>(
        std::vector<std::string>{"--config", config, "--socket", sock, "--log-level", "info"});
    daemon->expect_ready();
    sub = std::make_unique<LineClient>(sock);
    sub->call("subscribe", {{"signals", {"changed", "marker"}}});
  }

  // The next file event's payload (parsed); its changes are added to `seen`. nullopt at the
  // deadline.
  std::optional<Json> next_event(Deadline deadline, Json* event = nullptr) {
    while (auto n = sub->next_notification(deadline)) {
      const Json& e = (*n)["params"];
      if (e["name"] != "changed") continue;
      Json payload = Json::parse(e["payload"].get<std::string>());
      for (const auto& c : payload["changes"]) {
        for (const auto& name : c["events"]) seen[c["path"]].insert(name);
      }
      if (event) *event = e;
      return payload;
    }
    return std::nullopt;
  }

  // Reads events until `path` has been reported with `event` (any event if empty).
  bool wait_for(const std::string& path, const std::string& event = "",
                std::chrono::milliseconds within = kWait) {
    auto deadline = deadline_in(within);
    while (true) {
      auto it = seen.find(path);
      if (it != seen.end() && (event.empty() || it->second.contains(event))) return true;
      if (!next_event(deadline)) return false;
    }
  }

  // Raises the marker and reads up to it: whatever file events came before are in `seen`, and
  // returns how many file events there were.
  int drain_to_marker() {
    LineClient admin(sock);
    std::uint64_t marker = admin.call("raise", {{"signal", "marker"}})["result"]["seq"];
    int events = 0;
    while (auto n = sub->next_notification(deadline_in(kWait))) {
      const Json& e = (*n)["params"];
      if (e["seq"] == marker) return events;
      if (e["name"] != "changed") continue;
      ++events;
      Json payload = Json::parse(e["payload"].get<std::string>());
      for (const auto& c : payload["changes"]) {
        for (const auto& name : c["events"]) seen[c["path"]].insert(name);
      }
    }
    ADD_FAILURE() << "the marker did not arrive";
    return events;
  }

  Json status_of(const std::string& id) {
    LineClient admin(sock);
    return file_monitor_in(admin.call("status")["result"], id);
  }
};

TEST_F(FileMonitorsTest, AnAtomicSaveIsSeenAndTheFileIsStillWatchedAfterwards) {
  write_file(at("app.conf"), "v1");
  start("file_monitors: [{id: conf, signal: changed, path: " + at("app.conf") + "}]\n");
  for (int round = 0; round < 3; ++round) {
    dir.write("app.conf", "v" + std::to_string(round + 2));  // temp file + rename over
    ASSERT_TRUE(wait_for(at("app.conf"), "move")) << "atomic save " << round << "\n"
                                                  << daemon->log();
    seen.clear();
  }
  write_file(at("app.conf"), "in place");
  EXPECT_TRUE(wait_for(at("app.conf"), "close_write")) << "still watched after the saves";
  // Delete, then create again: seen, and the rule goes on.
  stdfs::remove(at("app.conf"));
  EXPECT_TRUE(wait_for(at("app.conf"), "delete"));
  write_file(at("app.conf"), "again");
  EXPECT_TRUE(wait_for(at("app.conf"), "close_write"));
  EXPECT_EQ(status_of("conf")["state"], "ok");
  EXPECT_FALSE(seen.contains(at("app.conf.tmp"))) << "the rule filters by name";
}

TEST_F(FileMonitorsTest, AFileWrittenRightAfterMkdirPFiveLevelsDeepIsNeverMissed) {
  stdfs::create_directories(at("tree"));
  start("file_monitors: [{id: tree, signal: changed, recursive: true, path: " + at("tree") +
        "}]\n");
  for (int i = 0; i < 20; ++i) {
    std::string deep = at("tree/run" + std::to_string(i) + "/a/b/c/d/e");
    stdfs::create_directories(deep);
    write_file(deep + "/f", "x");
    EXPECT_TRUE(wait_for(deep + "/f", "", 5000ms)) << "run " << i << " of 20\n" << daemon->log();
  }
  // Every directory of every run is watched now: a second write is an ordinary event.
  write_file(at("tree/run7/a/b/c/d/e/g"), "y");
  EXPECT_TRUE(wait_for(at("tree/run7/a/b/c/d/e/g"), "close_write"));
}

bool wait_stopped(pid_t pid, Deadline deadline) {
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string all((std::istreambuf_iterator<char>(stat)), {});
    auto paren = all.rfind(')');
    if (paren != std::string::npos && paren + 2 < all.size() && all[paren + 2] == 'T') return true;
    std::this_thread::yield();
  }
  return false;
}

TEST_F(FileMonitorsTest, AnOverflowWhileStoppedIsReportedWithEveryPath) {
  constexpr int kFiles = 20000;
  long queue = 0;
  std::ifstream("/proc/sys/fs/inotify/max_queued_events") >> queue;
  // Each file is two events (create, close_write): the queue must hold fewer than that.
  if (queue <= 0 || queue >= 2 * kFiles - 100) {
    GTEST_SKIP() << "fs.inotify.max_queued_events is " << queue << ": " << kFiles
                 << " files would not overflow it (the test needs it below " << 2 * kFiles - 100
                 << ")";
  }
  stdfs::create_directories(at("burst"));
  start("file_monitors: [{id: burst, signal: changed, path: " + at("burst") + "}]\n");
  daemon->send(SIGSTOP);
  ASSERT_TRUE(wait_stopped(daemon->pid(), deadline_in(kWait)));
  std::vector<std::string> paths;
  for (int i = 0; i < kFiles; ++i) {
    paths.push_back(at("burst/f" + std::to_string(i)));
    int fd = ::open(paths.back().c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    ::close(fd);
  }
  daemon->send(SIGCONT);
  bool overflow = false;
  auto deadline = deadline_in(kWait * 3);
  std::size_t missing = kFiles;
  while (missing > 0) {
    auto payload = next_event(deadline);
    ASSERT_TRUE(payload) << missing << " of " << kFiles << " paths never reported";
    if ((*payload)["overflow"] == true) overflow = true;
    missing = 0;
    for (const auto& p : paths) missing += seen.contains(p) ? 0 : 1;
  }
  EXPECT_TRUE(overflow) << "the overflow is said in the events";
  daemon->expect_line("inotify queue overflowed");
  LineClient admin(sock);
  std::string metrics = admin.call("metrics")["result"]["text"];
  EXPECT_NE(metrics.find("tocsin_file_overflows_total 1"), std::string::npos) << metrics;
}

TEST_F(FileMonitorsTest, MaxDelayRaisesDuringASteadyStreamOfWrites) {
  stdfs::create_directories(at("w"));
  // settle longer than the test: only max_delay can raise while the writer writes.
  start("file_monitors: [{id: w, signal: changed, path: " + at("w") +
        ", settle: 60s, max_delay: 100ms}]\n");
  std::atomic<bool> stop{false};
  std::atomic<int> writes{0};
  std::thread writer([&] {
    auto deadline = deadline_in(kWait);
    while (!stop && std::chrono::steady_clock::now() < deadline) {
      write_file(at("w/f" + std::to_string(writes % 3)), std::to_string(writes));
      ++writes;
      std::this_thread::sleep_for(5ms);  // the writer's pace, not a wait
    }
  });
  std::vector<std::chrono::system_clock::time_point> times;
  for (int i = 0; i < 4; ++i) {
    Json event;
    auto payload = next_event(deadline_in(kWait), &event);
    if (!payload) break;
    std::istringstream t(event["time"].get<std::string>());
    std::tm tm{};
    double seconds = 0;
    char c;
    t >> std::get_time(&tm, "%Y-%m-%dT%H:%M:") >> seconds >> c;
    times.push_back(std::chrono::system_clock::from_time_t(timegm(&tm)) +
                    std::chrono::microseconds(static_cast<long>(seconds * 1e6)));
  }
  stop = true;
  writer.join();
  ASSERT_EQ(times.size(), 4u) << "no raise while the writer kept writing (" << writes
                              << " writes)\n"
                              << daemon->log();
  for (std::size_t i = 1; i < times.size(); ++i) {
    // A batch starts after the previous raise and is raised max_delay after it started.
    EXPECT_GE(times[i] - times[i - 1], 95ms) << "raises " << i - 1 << " and " << i;
  }
}

TEST_F(FileMonitorsTest, SettleCoalescesABurstIntoOneEvent) {
  stdfs::create_directories(at("b"));
  start("file_monitors: [{id: b, signal: changed, path: " + at("b") + ", settle: 2s}]\n");
  for (int i = 0; i < 10; ++i) write_file(at("b/f" + std::to_string(i)), "x");
  auto payload = next_event(deadline_in(kWait));
  ASSERT_TRUE(payload);
  EXPECT_EQ((*payload)["changes"].size(), 10u) << payload->dump();
  EXPECT_EQ(drain_to_marker(), 0) << "one event for the burst";
}

TEST_F(FileMonitorsTest, EventsAndMatchFilter) {
  stdfs::create_directories(at("m"));
  start("file_monitors: [{id: m, signal: changed, path: " + at("m") +
        ", events: [close_write], match: \"*.conf\"}]\n");
  write_file(at("m/x.txt"), "x");
  write_file(at("m/y.conf"), "y");
  stdfs::remove(at("m/y.conf"));
  ASSERT_TRUE(wait_for(at("m/y.conf")));
  drain_to_marker();
  EXPECT_EQ(seen, (std::map<std::string, std::set<std::string>>{{at("m/y.conf"), {"close_write"}}}));
}

TEST_F(FileMonitorsTest, DirectoriesRenamedInsideTheTreeKeepTheirSubtreeAndMovedOutAreDropped) {
  stdfs::create_directories(at("t/old/sub"));
  stdfs::create_directories(at("outside"));
  start("file_monitors: [{id: t, signal: changed, recursive: true, path: " + at("t") + "}]\n");
  std::size_t watches = status_of("t")["watches"];
  stdfs::rename(at("t/old"), at("t/new"));
  ASSERT_TRUE(wait_for(at("t/new"), "move"));
  write_file(at("t/new/sub/f"), "x");
  EXPECT_TRUE(wait_for(at("t/new/sub/f"), "close_write")) << "reported under the new name";
  EXPECT_EQ(status_of("t")["watches"], watches);
  stdfs::rename(at("t/new"), at("outside/gone"));
  ASSERT_TRUE(wait_for(at("t/new"), "move"));
  drain_to_marker();
  seen.clear();
  write_file(at("outside/gone/sub/g"), "x");
  drain_to_marker();
  EXPECT_TRUE(seen.empty()) << "moved out: no longer watched";
  EXPECT_EQ(status_of("t")["watches"], watches - 2);
}

TEST_F(FileMonitorsTest, AVanishedRootIsDegradedInStatusAndTheLogAndRecovers) {
  stdfs::create_directories(at("root/sub"));
  stdfs::create_directories(at("other"));
  start("file_monitors:\n  - {id: r, signal: changed, recursive: true, path: " + at("root") +
        "}\n  - {id: o, signal: changed, path: " + at("other") + "}\n");
  EXPECT_EQ(status_of("r")["state"], "ok");
  stdfs::remove_all(at("root"));
  daemon->expect_line("file monitor r: degraded: the path does not exist");
  Json r = status_of("r");
  EXPECT_EQ(r["state"], "degraded");
  EXPECT_NE(r["why"].get<std::string>().find("does not exist"), std::string::npos) << r.dump();
  write_file(at("other/x"), "x");
  EXPECT_TRUE(wait_for(at("other/x"))) << "the other monitor goes on";
  EXPECT_EQ(status_of("o")["state"], "ok");
  stdfs::create_directories(at("root/sub"));
  write_file(at("root/sub/f"), "x");
  EXPECT_TRUE(wait_for(at("root/sub/f")));
  daemon->expect_line("file monitor r: ok again");
  EXPECT_EQ(status_of("r")["state"], "ok");
  LineClient admin(sock);
  std::string metrics = admin.call("metrics")["result"]["text"];
  EXPECT_NE(metrics.find("tocsin_file_monitors_degraded 0"), std::string::npos) << metrics;
}

TEST_F(FileMonitorsTest, APathThatDoesNotExistYetIsPickedUpWhenItAppears) {
  start("file_monitors: [{id: later, signal: changed, recursive: true, path: " +
        at("not/yet/here") + "}]\n");
  EXPECT_EQ(status_of("later")["state"], "degraded");
  stdfs::create_directories(at("not/yet/here/x"));
  write_file(at("not/yet/here/x/f"), "x");
  EXPECT_TRUE(wait_for(at("not/yet/here/x/f")));
  EXPECT_EQ(status_of("later")["state"], "ok");
}

TEST_F(FileMonitorsTest, AddAndRemoveOverTheSocketWithIterations) {
  stdfs::create_directories(at("rt"));
  start("");
  LineClient admin(sock);
  Json r = admin.call("add_file_monitor", {{"id", "rt"},
                                           {"signal", "changed"},
                                           {"path", at("rt")},
                                           {"recursive", true},
                                           // One event kind, so that each file is one
                                           // batch: create and close_write of one write may
                                           // come in one read of the inotify fd or in two.
                                           {"events", {"close_write"}},
                                           {"match", "*.txt"},
                                           {"settle", "0ms"},
                                           {"max_delay", 1000},
                                           {"iterations", 2}});
  ASSERT_EQ(r["result"]["id"], "rt") << r.dump();
  write_file(at("rt/a.txt"), "x");
  Json event;
  ASSERT_TRUE(next_event(deadline_in(kWait), &event));
  EXPECT_EQ(event["source"], Json({{"kind", "file"}, {"id", "rt"}}));
  EXPECT_EQ(event["iteration"], 1);
  write_file(at("rt/b.txt"), "x");
  ASSERT_TRUE(wait_for(at("rt/b.txt")));
  daemon->expect_line("file monitor rt: retired after 2 iteration(s)");
  EXPECT_TRUE(status_of("rt").is_null());
  EXPECT_EQ(admin.call("remove_source", {{"id", "rt"}})["error"]["code"], -32005);

  std::string id = admin.call("add_file_monitor", {{"signal", 17}, {"path", at("rt")}})["result"]["id"];
  EXPECT_EQ(id.rfind("file:", 0), 0u) << id;
  EXPECT_EQ(admin.call("remove_source", {{"id", id}})["result"], Json::object());
  seen.clear();
  write_file(at("rt/c.txt"), "x");
  drain_to_marker();
  EXPECT_TRUE(seen.empty()) << "removed";
}

TEST_F(FileMonitorsTest, BadRequestsAreRefusedWithWhatIsWrong) {
  start("timers: [{id: tick, signal: 18, every: 1h}]\n");
  LineClient admin(sock);
  auto error = [&](const Json& params) {
    Json r = admin.call("add_file_monitor", params);
    EXPECT_EQ(r["error"]["code"], -32602) << r.dump();
    return r["error"]["message"].get<std::string>();
  };
  EXPECT_NE(error({{"signal", 17}}).find("path"), std::string::npos);
  EXPECT_NE(error({{"signal", 17}, {"path", "relative"}}).find("absolute"), std::string::npos);
  EXPECT_NE(error({{"signal", 17}, {"path", "/tmp"}, {"match", "[x"}}).find("unclosed '['"),
            std::string::npos);
  EXPECT_NE(error({{"signal", 17}, {"path", "/tmp"}, {"events", {"create", "write"}}})
                .find("events[1]: expected an event: create, modify, close_write, delete, move or "
                      "attrib; got \"write\""),
            std::string::npos);
  EXPECT_NE(error({{"signal", 17}, {"path", "/tmp"}, {"events", Json::array()}}).find("events"),
            std::string::npos);
  EXPECT_NE(error({{"signal", 17}, {"path", "/tmp"}, {"recurse", true}})
                .find("unknown key \"recurse\"; did you mean \"recursive\"?"),
            std::string::npos);
  EXPECT_NE(error({{"signal", 17}, {"path", "/tmp"}, {"settle", "5 s"}}).find("settle"),
            std::string::npos);
  EXPECT_NE(error({{"id", "tick"}, {"signal", 17}, {"path", "/tmp"}}).find("already used"),
            std::string::npos)
      << "ids are unique across source kinds";
  EXPECT_EQ(admin.call("add_file_monitor", {{"path", "/tmp"}, {"signal", "nope"}})["error"]["code"],
            -32003);
}

TEST_F(FileMonitorsTest, AReloadKeepsUnchangedAndRunTimeMonitors) {
  stdfs::create_directories(at("k"));
  std::string keep = "  - {id: keep, signal: changed, path: " + at("k") + "}\n";
  start("file_monitors:\n" + keep + "  - {id: gone, signal: changed, path: " + at("k") + "}\n");
  LineClient admin(sock);
  ASSERT_TRUE(admin.call("add_file_monitor", {{"id", "rt"}, {"signal", 17}, {"path", at("k")}})
                  .contains("result"));
  write_file(at("k/1"), "x");
  ASSERT_TRUE(wait_for(at("k/1")));
  drain_to_marker();
  std::uint64_t raised = status_of("keep")["raised"];
  EXPECT_GE(raised, 1u);
  dir.write("tocsin.yaml", std::string(kSignals) + "file_monitors:\n" + keep);
  daemon->send(SIGHUP);
  daemon->expect_line("reloaded:");
  EXPECT_EQ(status_of("keep")["raised"], raised) << "the same monitor, counts kept";
  EXPECT_TRUE(status_of("gone").is_null());
  EXPECT_EQ(status_of("rt")["from_config"], false) << "run-time monitors survive reloads";
  // A config monitor may not take a run-time monitor's id.
  dir.write("tocsin.yaml", std::string(kSignals) + "file_monitors:\n" + keep +
                               "  - {id: rt, signal: changed, path: " + at("k") + "}\n");
  daemon->send(SIGHUP);
  daemon->expect_line("is taken by a file monitor added at run time");
}

TEST_F(FileMonitorsTest, TocsinctlAddsAndRemovesFileMonitors) {
  stdfs::create_directories(at("c"));
  start("");
  auto run = [&](const std::string& args) {
    std::string cmd = std::string(TOCSINCTL_PATH) + " --socket " + sock + " " + args + " 2>&1";
    FILE* p = ::popen(cmd.c_str(), "r");
    std::string out;
    char buf[4096];
    while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
    int rc = ::pclose(p);
    return std::make_pair(WEXITSTATUS(rc), out);
  };
  auto [rc, out] = run("add-file-monitor changed " + at("c") +
                       " --recursive --event create --event close_write --match '*.log' "
                       "--settle 10ms --max-delay 1s --iterations 5 --id ctl --json");
  ASSERT_EQ(rc, 0) << out;
  EXPECT_EQ(Json::parse(out), Json({{"id", "ctl"}}));
  write_file(at("c/x.log"), "x");
  EXPECT_TRUE(wait_for(at("c/x.log"), "close_write"));
  auto [bad_rc, bad_out] = run("add-file-monitor changed " + at("c") + " --event write");
  EXPECT_EQ(bad_rc, 1) << bad_out;
  EXPECT_NE(bad_out.find("expected an event"), std::string::npos) << bad_out;
  auto [rm_rc, rm_out] = run("remove ctl");
  EXPECT_EQ(rm_rc, 0) << rm_out;
  EXPECT_TRUE(status_of("ctl").is_null());
}

}  // namespace
}  // namespace tocsin::testing
