// timer and rb_timer sources against the real daemon and real timerfds (SPEC §3, issue 4).
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <thread>

#include "fakes/daemon_process.h"
#include "fakes/line_client.h"
#include "fakes/temp_dir.h"

namespace tocsin::testing {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

struct TimersTest : ::testing::TestWithParam<const char*> {
  TempDir dir;
  std::string sock = dir.file("tocsin.sock");
  std::unique_ptr<DaemonProcess> daemon;

  void start(const std::string& yaml) {
    std::string config = dir.write("tocsin.yaml", yaml);
    daemon = std::make_unique<DaemonProcess>(
        std::vector<std::string>{"--config", config, "--socket", sock, "--log-level", "info"});
    daemon->expect_ready();
  }
  const char* method() const {
    return std::string(GetParam()) == "timer" ? "add_timer" : "add_rb_timer";
  }
};

constexpr const char* kSignals = R"Y(
signals:
  3: {name: tick, handlers: [{target: subscribers}]}
  4: {name: marker, handlers: [{target: subscribers}]}
)Y";

// Reads `tick` events of `id` until its last iteration; checks that iterations are numbered
// without gaps other than reported overruns, and returns how many expirations were reported.
std::uint64_t read_until_last(LineClient& sub, const std::string& id, std::uint64_t last) {
  std::uint64_t expirations = 0;
  std::uint64_t prev = 0;
  while (prev < last) {
    auto n = sub.next_notification(deadline_in(kWait));
    if (!n) {
      ADD_FAILURE() << "timer " << id << " stopped at iteration " << prev << " of " << last;
      return expirations;
    }
    const Json& e = (*n)["params"];
    if (e["source"]["id"] != id) continue;
    EXPECT_EQ(e["source"]["kind"], id.starts_with("rb") ? "rb_timer" : "timer");
    Json payload = Json::parse(e["payload"].get<std::string>());
    std::uint64_t x = payload["expirations"];
    EXPECT_EQ(payload["overruns"], x - 1);
    EXPECT_TRUE(payload["late_us"].is_number_unsigned()) << payload.dump();
    EXPECT_EQ(e["iteration"], std::min(prev + x, last)) << "numbered without silent gaps";
    prev = e["iteration"];
    expirations += x;
  }
  return expirations;
}

TEST_P(TimersTest, TenMillisecondTimerWithFiftyIterationsFiresExactlyFiftyTimes) {
  start(kSignals);
  LineClient sub(sock);
  sub.call("subscribe", {{"signals", {"tick", "marker"}}});
  LineClient admin(sock);
  std::string id = std::string(GetParam() == std::string("timer") ? "kt" : "rb") + "-fifty";
  Json r = admin.call(method(), {{"id", id}, {"signal", "tick"}, {"every", "10ms"},
                                 {"iterations", 50}});
  ASSERT_EQ(r["result"]["id"], id) << r.dump();
  EXPECT_EQ(read_until_last(sub, id, 50), 50u);
  // Retired: gone from status, and no 51st event (the marker comes first and alone).
  admin.call("raise", {{"signal", "marker"}});
  auto n = sub.next_notification(deadline_in(kWait));
  ASSERT_TRUE(n);
  EXPECT_EQ((*n)["params"]["name"], "marker");
  Json status = admin.call("status")["result"]["sources"];
  EXPECT_EQ(status["timers"].get<int>() + status["rb_timers"].get<int>(), 0) << status.dump();
  EXPECT_EQ(admin.call("remove_source", {{"id", id}})["error"]["code"], -32005);
}

TEST_P(TimersTest, RemoveSourceStopsATimerAtOnce) {
  start(kSignals);
  LineClient sub(sock);
  sub.call("subscribe", {{"signals", {"tick", "marker"}}});
  LineClient admin(sock);
  std::string id = admin.call(method(), {{"signal", 3}, {"every", 5}})["result"]["id"];
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(sub.next_notification(deadline_in(kWait)));
  EXPECT_EQ(admin.call("remove_source", {{"id", id}})["result"], Json::object());
  std::uint64_t marker = admin.call("raise", {{"signal", "marker"}})["result"]["seq"];
  // Everything after the marker's seq would have been raised after the removal.
  while (auto n = sub.next_notification(deadline_in(kWait))) {
    if ((*n)["params"]["seq"] == marker) break;
  }
  EXPECT_EQ(sub.next_notification(deadline_in(100ms)), std::nullopt) << "raised after removal";
}

TEST_P(TimersTest, AReloadKeepsAnUnchangedTimerAndDropsARemovedOne) {
  std::string kind = GetParam() == std::string("timer") ? "timers" : "rb_timers";
  start(std::string(kSignals) + kind + ":\n  - {id: keep, signal: tick, every: 20ms}\n" +
        "  - {id: gone, signal: tick, every: 20ms}\n");
  LineClient sub(sock);
  sub.call("subscribe", {{"signals", {"tick"}}, {"sources", {"keep"}}});
  std::uint64_t before = 0;
  while (before < 3) {
    auto n = sub.next_notification(deadline_in(kWait));
    ASSERT_TRUE(n);
    before = (*n)["params"]["iteration"];
  }
  dir.write("tocsin.yaml", std::string(kSignals) + "  9: {name: new-signal}\n" + kind +
                               ":\n  - {id: keep, signal: tick, every: 20ms}\n");
  daemon->send(SIGHUP);
  daemon->expect_line("reloaded:");
  // Its counting goes on: the same timer, not a new one starting at 1.
  std::uint64_t after = 0;
  for (int i = 0; i < 3; ++i) {
    auto n = sub.next_notification(deadline_in(kWait));
    ASSERT_TRUE(n);
    after = (*n)["params"]["iteration"];
    EXPECT_GT(after, before);
  }
  LineClient admin(sock);
  Json list = admin.call("status")["result"]["sources"]["list"];
  ASSERT_EQ(list.size(), 1u) << list.dump();
  EXPECT_EQ(list[0]["id"], "keep");
  EXPECT_EQ(list[0]["from_config"], true);
  EXPECT_GE(list[0]["fired"].get<std::uint64_t>(), after);
}

TEST_P(TimersTest, BadRequestsAreRefused) {
  start(kSignals);
  LineClient admin(sock);
  EXPECT_EQ(admin.call(method(), {{"signal", 3}})["error"]["code"], -32602);
  EXPECT_EQ(admin.call(method(), {{"signal", 3}, {"every", 0}})["error"]["code"], -32602);
  EXPECT_EQ(admin.call(method(), {{"signal", 3}, {"every", "5 s"}})["error"]["code"], -32602);
  EXPECT_EQ(admin.call(method(), {{"signal", 3}, {"every", 5}, {"clock", "tai"}})["error"]["code"],
            -32602);
  EXPECT_TRUE(admin.call(method(), {{"id", "x"}, {"signal", 3}, {"every", "1h"}}).contains("result"));
  // The same id again: an equal spec joins it (SPEC §3); another kind's is a conflict.
  Json again = admin.call("add_timer", {{"id", "x"}, {"signal", 3}, {"every", "1h"}});
  if (std::string_view(GetParam()) == "timer") {
    EXPECT_EQ(again["result"]["joined"], true) << again.dump();
  } else {
    EXPECT_EQ(again["error"]["code"], -32008) << "ids are unique across kinds: " << again.dump();
  }
}

std::string TimersTestName(const ::testing::TestParamInfo<const char*>& info) {
  return info.param;
}

INSTANTIATE_TEST_SUITE_P(Kinds, TimersTest, ::testing::Values("timer", "rb_timer"),
                         TimersTestName);

long context_switches(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  long total = 0;
  while (std::getline(status, line)) {
    if (line.find("ctxt_switches:") != std::string::npos) {
      total += std::stol(line.substr(line.find(':') + 1));
    }
  }
  return total;
}

// True once the process sleeps in epoll_wait: its reactor has nothing left to do.
bool wait_until_blocked_in_epoll(pid_t pid, Deadline deadline) {
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream sc("/proc/" + std::to_string(pid) + "/syscall");
    std::string nr;
    sc >> nr;
    if (nr == "232" || nr == "281") return true;  // epoll_wait, epoll_pwait (x86_64)
    std::this_thread::yield();
  }
  return false;
}

TEST(Idle, NoWakeUpsWithNothingDue) {
  TempDir dir;
  std::string config = dir.write("tocsin.yaml", std::string(kSignals) +
                                                    "timers: [{signal: tick, every: 5ms, "
                                                    "iterations: 3}]\n"
                                                    "rb_timers: [{signal: tick, every: 5ms, "
                                                    "iterations: 3}]\n");
  DaemonProcess d({"--config", config, "--socket", dir.file("s.sock")});
  d.expect_ready();
  // Both timers run out; a run-time rb_timer is added and removed; then nothing is due.
  d.expect_line("timer timer-1: retired");
  d.expect_line("rb_timer rb_timer-1: retired");
  // The connection stays open and idle: an idle client costs no wake-ups either.
  LineClient admin(dir.file("s.sock"));
  std::string id = admin.call("add_rb_timer", {{"signal", 3}, {"every", "1h"}})["result"]["id"];
  admin.call("remove_source", {{"id", id}});
  ASSERT_TRUE(wait_until_blocked_in_epoll(d.pid(), deadline_in(kWait)));
  long before = context_switches(d.pid());
  // An idle window is what is measured here: there is nothing to wait for.
  std::this_thread::sleep_for(5s);
  long after = context_switches(d.pid());
  EXPECT_EQ(after - before, 0) << "the daemon woke up while idle";
}

}  // namespace
}  // namespace tocsin::testing
