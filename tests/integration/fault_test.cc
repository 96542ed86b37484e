// Faults from outside (issue 10, SPEC §7): the daemon keeps running, delivers what it promised or
// says what it dropped, and its file descriptors return to their level afterwards.
#include <gtest/gtest.h>
#include <signal.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <vector>

#include "fakes/daemon_process.h"
#include "fakes/line_client.h"
#include "fakes/temp_dir.h"

namespace tocsin::testing {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kConfig = R"Y(
signals:
  17: {name: news, handlers: [{target: subscribers}]}
)Y";

// Waits until `path` does not exist; false if it still does at the deadline.
bool gone_within(const std::string& path) {
  return !poll_until([&] { return std::filesystem::exists(path); }, [](bool e) { return !e; });
}

// One line holding a batch of `count` raises of `news`, ids and payloads first, first+1, ...
Json raise_batch(int first, int count) {
  Json batch = Json::array();
  for (int i = first; i < first + count; ++i) {
    batch.push_back({{"jsonrpc", "2.0"},
                     {"id", i},
                     {"method", "raise"},
                     {"params", {{"signal", "news"}, {"payload", std::to_string(i)}}}});
  }
  return batch;
}

// Each test: a temp dir, its socket, and tocsind started on a config of the test's.
struct Faults : ::testing::Test {
  TempDir dir;
  std::string sock = dir.file("s.sock");
  std::unique_ptr<DaemonProcess> daemon;

  // Writes `yaml` as the config, starts tocsind on it behind `wrapper` (a command that ends by
  // running the rest of its argv: prlimit, unshare) or none, and waits until it is ready.
  DaemonProcess& start(const std::string& yaml, std::vector<std::string> wrapper = {}) {
    std::vector<std::string> args{"--config", dir.write("tocsin.yaml", yaml), "--socket", sock};
    if (wrapper.empty()) {
      daemon = std::make_unique<DaemonProcess>(args);
    } else {
      wrapper.push_back(TOCSIND_PATH);
      wrapper.insert(wrapper.end(), args.begin(), args.end());
      daemon = std::make_unique<DaemonProcess>(wrapper, std::vector<std::string>{});
    }
    daemon->expect_ready();
    return *daemon;
  }
};

TEST_F(Faults, FileDescriptorsExhaustedWhileClientsConnect) {
#if defined(__SANITIZE_ADDRESS__)
  // UBSan's vptr check probes memory through a pipe(); with the daemon's fds exhausted on
  // purpose the probe fails and every boost::system::error_code built meanwhile is reported as
  // an invalid vptr (no suppression can match: the type cannot be read either). The Debug pass
  // runs this test.
  GTEST_SKIP() << "not under the sanitizers: UBSan needs free fds for its vptr checks";
#endif
  // A low limit for the daemon alone: room for its own fds and a handful of clients.
  DaemonProcess& d = start(kConfig, {"prlimit", "--nofile=24:24"});
  const int base = d.open_fds();
  ASSERT_LT(base, 24) << "the limit leaves no room for clients";
  std::vector<LineClient> clients;
  for (int i = 0; i < 40; ++i) clients.emplace_back(sock);  // the kernel queues what it cannot take
  d.expect_line("Too many open files");
  // Those it took are served; the daemon did not spin or die meanwhile.
  clients.clear();
  EXPECT_LE(d.wait_open_fds_at_most(base), base) << "fds leaked after the clients left";
  LineClient after(sock);
  Json r = after.call("version");
  EXPECT_TRUE(r.contains("result")) << r.dump() << d.log();
}

TEST_F(Faults, ASubscriberKilledMidStreamLeavesTheOthersWhole) {
  DaemonProcess& d = start(kConfig);
  LineClient admin(sock);
  LineClient good(sock);
  good.call("subscribe", {{"signals", {"news"}}});
  const int base = d.open_fds();
  // A real subscriber process, killed with SIGKILL in the middle of the stream.
  DaemonProcess victim({"sh", "-c",
                        std::string("exec ") + TOCSINCTL_PATH + " --socket " + sock +
                            " subscribe news --count 1000000 >/dev/null"},
                       {});
  ASSERT_EQ(status_until(admin, [](const Json& st) { return st["clients"] == 3; })["clients"], 3);
  constexpr int kBatches = 20, kPerBatch = 500;
  for (int b = 0; b < kBatches; ++b) {
    admin.send(raise_batch(b * kPerBatch, kPerBatch));
    auto reply = admin.read(deadline_in(kWait));
    ASSERT_TRUE(reply && reply->is_array()) << "batch " << b;
    if (b == kBatches / 2) victim.send(SIGKILL);
  }
  ASSERT_TRUE(victim.wait_exit(deadline_in(kWait)));
  // The good subscriber gets every event, in order, with no gap.
  std::uint64_t prev = 0;
  for (int i = 0; i < kBatches * kPerBatch; ++i) {
    auto n = good.next_notification(deadline_in(kWait));
    ASSERT_TRUE(n) << "event " << i << " missing";
    ASSERT_EQ((*n)["method"], "signal") << n->dump();
    std::uint64_t seq = (*n)["params"]["seq"];
    if (prev != 0) {
      ASSERT_EQ(seq, prev + 1);
    }
    prev = seq;
    EXPECT_EQ((*n)["params"]["payload"], std::to_string(i));
  }
  // The dead one's connection is closed and its fd gone.
  EXPECT_LE(d.wait_open_fds_at_most(base), base) << "the killed subscriber's fd leaked";
  EXPECT_EQ(status_until(admin, [](const Json& st) { return st["clients"] == 2; })["clients"], 2);
}

TEST_F(Faults, TheDaemonStoppedAndContinuedUnderLoadLosesNothingSilently) {
  DaemonProcess& d = start(kConfig);
  LineClient admin(sock);
  LineClient sub(sock);
  sub.call("subscribe", {{"signals", {"news"}}});
  Json batch = raise_batch(0, 2000);
  // Stopped while requests wait in its socket: they are handled, in order, when it continues.
  ::kill(d.pid(), SIGSTOP);
  admin.send(batch);
  ::kill(d.pid(), SIGCONT);
  auto reply = admin.read(deadline_in(kWait));
  ASSERT_TRUE(reply && reply->is_array() && reply->size() == 2000);
  for (int i = 0; i < 2000; ++i) {
    auto n = sub.next_notification(deadline_in(kWait));
    ASSERT_TRUE(n) << "event " << i << " missing";
    EXPECT_EQ((*n)["params"]["payload"], std::to_string(i));
  }
  EXPECT_TRUE(admin.call("version").contains("result"));
}

// ---- a subscriber that stops reading for a minute -----------------------------------------------

TEST_F(Faults, ASubscriberThatStopsReadingForAMinuteIsToldExactlyWhatItMissed) {
  DaemonProcess& d = start(R"Y(
limits: {subscriber_queue: 300}
signals:
  17: {name: news, handlers: [{target: subscribers}]}
timers:
  - {id: t, signal: news, every: 10ms}
)Y");
  LineClient admin(sock);
  LineClient good(sock);
  LineClient stalled(sock);
  good.call("subscribe", {{"signals", {"news"}}});
  stalled.call("subscribe", {{"signals", {"news"}}});
  const int base = d.open_fds();
  // The stalled one reads nothing for a minute (issue 10) while ~6,000 events flow: its socket
  // buffer and its queue of 300 fill, and the oldest are dropped. The good one reads throughout
  // and must see every event, in order.
  std::uint64_t good_prev = 0, good_count = 0;
  for (auto until = deadline_in(std::chrono::seconds(60));
       std::chrono::steady_clock::now() < until;) {
    auto n = good.next_notification(deadline_in(kWait));
    ASSERT_TRUE(n) << "the good subscriber stopped getting events\n" << d.log();
    ASSERT_EQ((*n)["method"], "signal") << n->dump();
    std::uint64_t seq = (*n)["params"]["seq"];
    if (good_prev != 0) {
      ASSERT_EQ(seq, good_prev + 1) << "a gap for the good subscriber";
    }
    good_prev = seq;
    ++good_count;
  }
  EXPECT_GT(good_count, 1000u);
  // The timer is stopped and one last event raised, so the counts below cannot move while they
  // are compared: the status taken next and the overflow notice must agree exactly.
  ASSERT_TRUE(admin.call("remove_source", {{"id", "t"}}).contains("result"));
  ASSERT_TRUE(admin.call("raise", {{"signal", "news"}, {"payload", "end"}}).contains("result"));
  for (;;) {
    auto n = good.next_notification(deadline_in(kWait));
    ASSERT_TRUE(n) << "the good subscriber never got the last event";
    std::uint64_t seq = (*n)["params"]["seq"];
    ASSERT_EQ(seq, good_prev + 1) << "a gap for the good subscriber";
    good_prev = seq;
    if ((*n)["params"]["payload"] == "end") break;
  }
  Json mine;
  const Json status = admin.call("status");  // (a range-for over a temporary's member is UB)
  for (const Json& c : status["result"]["clients_detail"]) {
    if (c["queue"].get<int>() > 0) mine = c;
  }
  ASSERT_FALSE(mine.is_null()) << "the stalled subscriber's queue is empty: " << status.dump();
  EXPECT_LE(mine["queue"].get<int>(), 300) << "the queue outgrew limits.subscriber_queue";
  EXPECT_GT(mine["dropped"].get<int>(), 0);
  // Reading again: what the kernel held, then one overflow notice naming the dropped range
  // exactly, then the events after it, with no gap and nothing twice.
  std::uint64_t prev = 0;
  bool overflowed = false;
  for (;;) {
    auto n = stalled.next_notification(deadline_in(kWait));
    ASSERT_TRUE(n) << "the stalled subscriber got nothing more";
    if ((*n)["method"] == "overflow") {
      ASSERT_FALSE(overflowed) << "two overflow notices for one stall: " << n->dump();
      overflowed = true;
      const Json& p = (*n)["params"];
      std::uint64_t first = p["first_seq"], last = p["last_seq"], dropped = p["dropped"];
      EXPECT_EQ(first, prev + 1) << "events between the last one read and the dropped range";
      EXPECT_EQ(dropped, last - first + 1) << n->dump();
      EXPECT_EQ(dropped, mine["dropped"].get<std::uint64_t>());
      prev = last;
      continue;
    }
    std::uint64_t seq = (*n)["params"]["seq"];
    if (prev != 0) {
      ASSERT_EQ(seq, prev + 1) << "a gap not covered by the overflow notice";
    }
    prev = seq;
    if (seq == good_prev) break;  // the last event
  }
  EXPECT_TRUE(overflowed);
  EXPECT_LE(d.wait_open_fds_at_most(base), base);
}

// ---- kernel limits, lowered for real inside a user namespace ------------------------------------
// inotify's limits are per user namespace (/proc/sys/user/max_inotify_*): a daemon started under
// `unshare --user --map-root-user` can be given tiny ones without touching the machine's.

bool have_user_namespaces() {
  return std::system("unshare --user --map-root-user true >/dev/null 2>&1") == 0;
}

// Runs `command` inside the namespaces of `pid` given by `flags` (nsenter's, e.g. "--user").
void in_namespace(pid_t pid, const std::string& flags, const std::string& command) {
  std::string cmd = "nsenter " + flags + " --target " + std::to_string(pid) + " sh -c '" +
                    command + "'";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

// The argv of `unshare` with `flags` that runs `setup` in the new namespaces, then the rest of its
// argv (a wrapper for Faults::start).
std::vector<std::string> in_new_namespaces(std::vector<std::string> flags,
                                           const std::string& setup) {
  flags.insert(flags.begin(), "unshare");
  flags.insert(flags.end(), {"sh", "-c", setup + " && exec \"$@\"", "sh"});
  return flags;
}

// A user namespace of its own, whose /proc/sys/user/`limit` is `value`.
std::vector<std::string> with_inotify_limit(const std::string& limit, int value) {
  return in_new_namespaces({"--user", "--map-root-user"},
                           "echo " + std::to_string(value) + " > /proc/sys/user/" + limit);
}

void set_inotify_limit(pid_t pid, const std::string& limit, int value) {
  in_namespace(pid, "--user", "echo " + std::to_string(value) + " > /proc/sys/user/" + limit);
}

Json monitor_status(LineClient& c, const std::string& id) {
  return file_monitor_in(c.call("status")["result"], id);
}

// The monitor's status once it is ok, or at the deadline.
Json wait_monitor_ok(LineClient& c, const std::string& id) {
  return file_monitor_in(
      status_until(c, [&](const Json& st) { return file_monitor_in(st, id)["state"] == "ok"; }),
      id);
}

// Waits for a file event whose payload names `path`.
bool saw_change(LineClient& sub, const std::string& path) {
  for (auto until = deadline_in(kWait); std::chrono::steady_clock::now() < until;) {
    auto n = sub.next_notification(until);
    if (!n) return false;
    if ((*n)["method"] != "signal") continue;
    if ((*n)["params"]["payload"].get<std::string>().find(path) != std::string::npos) return true;
  }
  return false;
}

TEST_F(Faults, NoInotifyInstanceDegradesTheFileMonitorsUntilOneCanBeMade) {
  if (!have_user_namespaces()) GTEST_SKIP() << "no user namespaces here (unshare --user failed)";
  std::filesystem::create_directories(dir.file("tree/a"));
  const std::string config = R"Y(
signals:
  17: {name: news, handlers: [{target: subscribers}]}
  18: {name: files, handlers: [{target: subscribers}]}
file_monitors:
  - {id: f1, signal: files, path: )Y" + dir.file("tree") + R"Y(, recursive: true, settle: 10ms}
)Y";
  // Not even one inotify instance: the daemon starts anyway, the monitor says why.
  DaemonProcess& d = start(config, with_inotify_limit("max_inotify_instances", 0));
  d.expect_line("max_user_instances");
  LineClient admin(sock);
  Json m = monitor_status(admin, "f1");
  EXPECT_EQ(m["state"], "degraded") << m.dump();
  EXPECT_NE(m["why"].get<std::string>().find("fs.inotify.max_user_instances"), std::string::npos)
      << m.dump();
  // The rest of the daemon works meanwhile.
  LineClient sub(sock);
  sub.call("subscribe", {{"signals", {"files"}}});
  EXPECT_TRUE(admin.call("raise", {{"signal", "news"}}).contains("result"));
  // The limit raised: within the retry interval the monitor watches, and changes are reported.
  set_inotify_limit(d.pid(), "max_inotify_instances", 8);
  d.expect_line("the inotify instance is made");
  ASSERT_EQ(wait_monitor_ok(admin, "f1")["state"], "ok") << d.log();
  std::ofstream(dir.file("tree/a/new.txt")) << "x";
  EXPECT_TRUE(saw_change(sub, dir.file("tree/a/new.txt"))) << d.log();
}

TEST_F(Faults, TheInotifyWatchLimitReachedForRealDegradesOneMonitorAndRecovers) {
  if (!have_user_namespaces()) GTEST_SKIP() << "no user namespaces here (unshare --user failed)";
  for (int i = 0; i < 30; ++i) {
    std::filesystem::create_directories(dir.file("tree/d" + std::to_string(i)));
  }
  std::filesystem::create_directories(dir.file("small"));
  const std::string config = R"Y(
signals:
  18: {name: files, handlers: [{target: subscribers}]}
file_monitors:
  - {id: small, signal: files, path: )Y" + dir.file("small") + R"Y(, settle: 10ms}
  - {id: big, signal: files, path: )Y" + dir.file("tree") + R"Y(, recursive: true, settle: 10ms}
)Y";
  // Room for the small monitor and 9 of the big tree's 31 directories.
  DaemonProcess& d = start(config, with_inotify_limit("max_inotify_watches", 10));
  LineClient admin(sock);
  LineClient sub(sock);
  sub.call("subscribe", {{"signals", {"files"}}});
  Json big = monitor_status(admin, "big");
  EXPECT_EQ(big["state"], "degraded") << big.dump();
  EXPECT_NE(big["why"].get<std::string>().find("fs.inotify.max_user_watches"), std::string::npos);
  EXPECT_GT(big["unwatched"].get<int>(), 0);
  EXPECT_EQ(monitor_status(admin, "small")["state"], "ok");
  d.expect_line("degraded: the inotify watch limit is reached");
  // What is watched still reports.
  std::ofstream(dir.file("small/s.txt")) << "x";
  EXPECT_TRUE(saw_change(sub, dir.file("small/s.txt")));
  // The limit raised: every directory is watched within the retry interval.
  set_inotify_limit(d.pid(), "max_inotify_watches", 1000);
  big = wait_monitor_ok(admin, "big");
  ASSERT_EQ(big["state"], "ok") << big.dump();
  EXPECT_EQ(big["unwatched"], 0);
  EXPECT_GE(big["watches"].get<int>(), 31);  // the tree's 31 directories (and its parent)
  std::ofstream(dir.file("tree/d29/late.txt")) << "x";
  EXPECT_TRUE(saw_change(sub, dir.file("tree/d29/late.txt")));
}

// ---- the state directory full, then read-only --------------------------------------------------
// A tmpfs of its own, in a mount namespace of its own: nothing outside the test sees it, and it
// goes away with the daemon.

bool have_mount_namespaces(const std::string& dir) {
  std::string cmd = "unshare --mount sh -c 'mount -t tmpfs -o size=64k tmpfs " + dir +
                    "' >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

TEST_F(Faults, AFullThenReadOnlyStateDirectoryIsLoggedTheJobsRunAndWritesResume) {
  std::string state = dir.file("state");
  std::filesystem::create_directories(state);
  if (!have_mount_namespaces(state)) GTEST_SKIP() << "cannot mount a tmpfs in a mount namespace";
  const std::string config = R"Y(
state_dir: )Y" + state + R"Y(
signals:
  40: {name: job, handlers: [{target: subscribers}]}
cron:
  - {id: every, signal: job, schedule: "* * * * * *", missed: once}
)Y";
  DaemonProcess& d =
      start(config, in_new_namespaces({"--mount"}, "mount -t tmpfs -o size=256k tmpfs " + state +
                                                       " && cat /dev/zero > " + state +
                                                       "/fill 2>/dev/null; true"));
  // The daemon's view of the directory, through its mount namespace.
  const std::string seen = "/proc/" + std::to_string(d.pid()) + "/root" + state;
  // Both connections accepted before the fd count is taken: the daemon accepts in order, and the
  // subscription's answer means it has taken the later one.
  LineClient admin(sock);
  LineClient sub(sock);
  sub.call("subscribe", {{"signals", {"job"}}});
  std::size_t from = 0;
  d.expect_line("No space left on device", &from);
  const int base = d.open_fds();
  // status says so too, with the error and since when.
  auto cron_state = [&](const char* want) {
    return status_until(admin, [&](const Json& st) {
      return st["cron_state"]["state"] == want;
    })["cron_state"];
  };
  Json failing = cron_state("failing");
  ASSERT_EQ(failing["state"], "failing") << failing.dump();
  EXPECT_NE(failing["error"].get<std::string>().find("No space left on device"), std::string::npos)
      << failing.dump();
  EXPECT_EQ(failing["path"], state + "/cron-state.json");
  EXPECT_TRUE(failing["failing_since"].is_string()) << failing.dump();
  // The jobs go on firing while nothing can be written.
  for (int i = 0; i < 2; ++i) {
    auto n = sub.next_notification(deadline_in(kWait));
    ASSERT_TRUE(n && (*n)["method"] == "signal") << d.log();
  }
  // The daemon makes the temporary file for each write (every second here) and must unlink it when
  // the write fails; looked at once, it can be caught in between, so it must be seen gone.
  EXPECT_TRUE(gone_within(seen + "/cron-state.json.tmp"))
      << "a half-written temporary file holds the space";
  // Space again: the next write succeeds and says so.
  std::filesystem::remove(seen + "/fill");
  d.expect_line("written again", &from);
  EXPECT_TRUE(std::filesystem::exists(seen + "/cron-state.json"));
  EXPECT_EQ(cron_state("ok")["state"], "ok");
  // Read-only: refused, logged, the jobs still fire; writable again: written again.
  in_namespace(d.pid(), "--mount", "mount -o remount,ro " + state);
  d.expect_line("Read-only file system", &from);
  Json read_only = cron_state("failing");
  EXPECT_NE(read_only["error"].get<std::string>().find("Read-only file system"), std::string::npos)
      << read_only.dump();
  auto n = sub.next_notification(deadline_in(kWait));
  ASSERT_TRUE(n && (*n)["method"] == "signal") << d.log();
  in_namespace(d.pid(), "--mount", "mount -o remount,rw " + state);
  d.expect_line("written again", &from);
  EXPECT_LE(d.wait_open_fds_at_most(base), base) << "fds leaked by the failed writes";
}

}  // namespace
}  // namespace tocsin::testing
