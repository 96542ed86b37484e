// How often the real daemon wakes when it has nothing to do (issue 17). A file monitor watches
// its path's directory (the anchor) for entries only and the path itself for the rest, so a
// busy neighbour of a monitored file or directory costs no wake-up; and timers, cron and `at`
// that are not due cost none either. Wake-ups are counted as the kernel counts them: the
// context switches of every thread of tocsind (/proc/PID/task/*/status).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "fakes/daemon_process.h"
#include "fakes/line_client.h"
#include "fakes/temp_dir.h"

namespace tocsin::testing {
namespace {

using namespace std::chrono_literals;
namespace stdfs = std::filesystem;

constexpr const char* kSignals = R"Y(
signals:
  17: {name: changed, handlers: [{target: subscribers}]}
  18: {name: tick, handlers: [{target: subscribers}]}
)Y";

struct Switches {
  std::uint64_t count = 0;  // voluntary + nonvoluntary, every thread
  bool sleeping = true;     // every thread in State S
};

// voluntary_ctxt_switches + nonvoluntary_ctxt_switches, summed over the process's threads: a
// thread that sleeps in epoll_wait and is woken adds one voluntary switch per wake-up.
Switches read_switches(pid_t pid) {
  Switches out;
  const stdfs::path tasks = "/proc/" + std::to_string(pid) + "/task";
  std::vector<stdfs::path> threads;
#if defined(__SANITIZE_THREAD__)
  // ThreadSanitizer's runtime has a background thread of its own that wakes on a timer: count
  // the reactor (the main thread), which is where every event is handled.
  threads.push_back(tasks / std::to_string(pid));
#else
  for (const auto& task : stdfs::directory_iterator(tasks)) threads.push_back(task.path());
#endif
  for (const auto& task : threads) {
    std::ifstream in(task / "status");
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("State:", 0) == 0 && line.find('S', 6) == std::string::npos) {
        out.sleeping = false;
      }
      for (const char* key : {"voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:"}) {
        if (line.rfind(key, 0) == 0) out.count += std::stoull(line.substr(std::strlen(key)));
      }
    }
  }
  return out;
}

// The count once the daemon is idle: every thread asleep and the count the same twice in a
// row. A thread that has just answered a request still has to go back to epoll_wait, and that
// is one more switch; read before it, a count would take it for a wake-up.
std::uint64_t context_switches(pid_t pid) {
  constexpr std::uint64_t kNone = ~std::uint64_t{0};
  std::uint64_t last = kNone;
  const Deadline until = deadline_in(kWait);
  while (true) {
    Switches s = read_switches(pid);
    if (s.sleeping && s.count == last) return s.count;
    last = s.sleeping ? s.count : kNone;
    if (std::chrono::steady_clock::now() > until) {
      ADD_FAILURE() << "tocsind did not settle";
      return s.count;
    }
  }
}

struct WakeupsTest : ::testing::Test {
  TempDir dir;
  std::string sock = dir.file("tocsin.sock");
  std::string watched = dir.file("watched");  // the monitors' parent; nothing else in it
  std::unique_ptr<DaemonProcess> daemon;

  void start(const std::string& sources_yaml) {
    stdfs::create_directories(watched + "/tree");
    std::ofstream(watched + "/app.conf") << "v1\n";
    std::string config =
        dir.write("tocsin.yaml", "state_dir: " + dir.file("state") + "\n" + kSignals +
                                     "file_monitors:\n"
                                     "  - {id: tree, signal: changed, path: " +
                                     watched +
                                     "/tree}\n"
                                     "  - {id: conf, signal: changed, path: " +
                                     watched + "/app.conf}\n" + sources_yaml);
    daemon = std::make_unique<DaemonProcess>(
        std::vector<std::string>{"--config", config, "--socket", sock, "--log-level", "info"});
    daemon->expect_ready();
  }

  // A round trip through the daemon: whatever it had queued before (inotify events) it has
  // handled by the time it answers, since its reactor saw both fds ready.
  void sync() {
    LineClient c(sock);
    c.call("status");
  }
};

TEST_F(WakeupsTest, HundredThousandWritesNextToAWatchedFileAndDirectoryWakeItAtMostTenTimes) {
  start("");
  // The sibling exists before: its creation is an entry appearing, which the anchor hears.
  const std::string sibling = watched + "/sibling.log";
  std::ofstream(sibling).flush();
  sync();

  // What one sync costs by itself, so that it can be taken out of the figure below.
  const std::uint64_t a0 = context_switches(daemon->pid());
  sync();
  const std::uint64_t sync_cost = context_switches(daemon->pid()) - a0;

  const std::uint64_t before = context_switches(daemon->pid());
  int fd = ::open(sibling.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  for (int i = 0; i < 100000; ++i) ASSERT_EQ(::write(fd, "x\n", 2), 2);
  ::close(fd);
  sync();
  const std::uint64_t after = context_switches(daemon->pid());
  const std::uint64_t wakeups = after - before > sync_cost ? after - before - sync_cost : 0;
  RecordProperty("wakeups", static_cast<int>(wakeups));
  EXPECT_LE(wakeups, 10u) << "context switches for 100,000 writes to a sibling (sync cost "
                          << sync_cost << ", raw " << after - before << ")";

  // And the monitors still hear their own paths.
  LineClient sub(sock);
  sub.call("subscribe", {{"signals", {"changed"}}});
  std::ofstream(watched + "/app.conf", std::ios::app) << "v2\n";
  std::ofstream(watched + "/tree/new") << "x\n";
  std::string payloads;
  const Deadline until = deadline_in(kWait);
  while (payloads.find("app.conf") == std::string::npos ||
         payloads.find("tree/new") == std::string::npos) {
    auto n = sub.next_notification(until);
    ASSERT_TRUE(n) << "no event for the monitored paths; got: " << payloads << "\n"
                   << daemon->log();
    payloads += (*n)["params"]["payload"].get<std::string>();
  }
  EXPECT_NE(payloads.find("app.conf"), std::string::npos) << payloads;
  EXPECT_NE(payloads.find("tree/new"), std::string::npos) << payloads;
}

TEST_F(WakeupsTest, NothingDueMeansNoWakeUpForTenSeconds) {
  // Every source that fires by time, none due within the test: a timer and an rb_timer every
  // hour, a cron job on 29 February 03:17, an `at` entry next year.
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&now, &tm);
  const int next_year = tm.tm_year + 1900 + 1;
  start(
      "timers: [{id: hourly, signal: tick, every: 1h}]\n"
      "rb_timers: [{id: rb-hourly, signal: tick, every: 1h}]\n"
      "cron: [{id: leap, signal: tick, schedule: '17 3 29 2 *'}]\n"
      "at: [{id: later, signal: tick, time: '" +
      std::to_string(next_year) + "-06-01T12:00:00Z'}]\n");
  // Ready means configured; a status call over a connection that stays open (its closing
  // would be a wake-up of its own) shows the daemon has handled everything up to now.
  LineClient c(sock);
  c.call("status");
  const std::uint64_t before = context_switches(daemon->pid());
  // Waiting for time itself to pass is the point: nothing is due, so nothing should happen, and
  // only the passing of time can show it.
  std::this_thread::sleep_until(std::chrono::steady_clock::now() + 10s);
  const std::uint64_t after = context_switches(daemon->pid());
  // No allowance: measured idle, tocsind's threads do not switch at all (0 in 10 s, every run:
  // docs/BENCHMARKS.md), and `before` is read once they all sleep.
  EXPECT_EQ(after - before, 0u) << "context switches in 10 s with nothing due\n" << daemon->log();
}

}  // namespace
}  // namespace tocsin::testing
