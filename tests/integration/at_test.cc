// The `at` source against the real daemon (SPEC §3 `at`, issue 14): entries from YAML, over the
// socket and from tocsinctl fire once at their instant on a real CLOCK_REALTIME timerfd; a restart
// across the instant fires it as a catch-up with `missed: once` and drops it with `missed: skip`,
// from the real state file; what fired never fires again. Instants are a few seconds ahead of the
// wall clock; the one test that waits for an instant to pass waits for exactly that.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "fakes/daemon_process.h"
#include "fakes/line_client.h"
#include "fakes/temp_dir.h"

namespace tocsin::testing {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;
using std::chrono::system_clock;

// One-of: an event raised before a subscriber connects waits for it in the backlog.
constexpr const char* kSignals = R"Y(
signals:
  30: {name: once, handlers: [{target: subscriber}, {log: info}]}
)Y";

std::int64_t seconds(system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

// RFC 3339 in UTC, whole seconds.
std::string utc(std::int64_t s) {
  std::time_t t = s;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

struct AtTest : ::testing::Test {
  TempDir dir;
  std::string sock = dir.file("tocsin.sock");
  std::string state_dir = dir.file("state");
  std::string config;
  std::unique_ptr<DaemonProcess> daemon;

  void start(const std::string& yaml) {
    config =
        dir.write("tocsin.yaml", "state_dir: " + state_dir + "\n" + std::string(kSignals) + yaml);
    daemon = std::make_unique<DaemonProcess>(
        std::vector<std::string>{"--config", config, "--socket", sock, "--log-level", "info"});
    daemon->expect_ready();
  }
  void stop() {
    daemon->send(SIGTERM);
    auto status = daemon->wait_exit(deadline_in(kWait));
    ASSERT_TRUE(status) << daemon->log();
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << daemon->log();
  }
  // A one-of subscriber of signal 30.
  std::unique_ptr<LineClient> subscriber() {
    auto sub = std::make_unique<LineClient>(sock);
    sub->call("subscribe", {{"signals", {30}}, {"ack", true}});
    return sub;
  }
  // The next event, acked, its payload parsed into "payload_json".
  std::optional<Json> next_event(LineClient& sub) {
    auto n = sub.next_notification(deadline_in(kWait));
    if (!n) {
      ADD_FAILURE() << "no event; log:\n" << daemon->log();
      return std::nullopt;
    }
    Json e = (*n)["params"];
    sub.call("ack", {{"seq", e["seq"]}});
    e["payload_json"] = Json::parse(e["payload"].get<std::string>());
    return e;
  }
  Json source(const std::string& id) {
    LineClient admin(sock);
    const Json status = admin.call("status");
    for (const auto& s : status["result"]["sources"]["list"]) {
      if (s["id"] == id) return s;
    }
    return nullptr;
  }
  // The at state, as written by the daemon's writer thread (read until `done` holds).
  Json state_until(const std::function<bool(const Json&)>& done) {
    return poll_until(
        [&] {
          std::ifstream in(state_dir + "/at-state.json");
          std::stringstream s;
          s << in.rdbuf();
          return Json::parse(s.str(), nullptr, false);
        },
        [&](const Json& j) { return !j.is_discarded() && done(j); });
  }
};

TEST_F(AtTest, AConfiguredInstantFiresOnceWithItsSlotAndStaysFired) {
  const std::int64_t at = seconds(system_clock::now()) + 2;
  start("at: [{id: soon, signal: once, time: \"" + utc(at) + "\"}]\n");
  Json s = source("soon");
  EXPECT_EQ(s["kind"], "at");
  EXPECT_EQ(s["state"], "ok");
  EXPECT_EQ(s["next_fire"], utc(at).substr(0, 19) + ".000000Z");
  auto sub = subscriber();
  auto e = next_event(*sub);
  ASSERT_TRUE(e);
  EXPECT_EQ((*e)["source"], (Json{{"kind", "at"}, {"id", "soon"}}));
  EXPECT_EQ((*e)["iteration"], 1);
  EXPECT_EQ((*e)["payload_json"]["catch_up"], false);
  EXPECT_TRUE((*e)["payload_json"]["late_ms"].is_number()) << e->dump();
  EXPECT_GE(seconds(system_clock::now()), at);
  // A configured entry stays, fired, and a reload that keeps it does not fire it again.
  s = poll_until([&] { return source("soon"); },
                 [](const Json& j) { return j["state"] == "fired"; });
  EXPECT_EQ(s["state"], "fired") << s.dump();
  EXPECT_EQ(s["fired"], 1);
  EXPECT_TRUE(s["next_fire"].is_null());
  std::size_t from = 0;
  daemon->send(SIGHUP);
  daemon->expect_line("reloaded", &from);
  EXPECT_EQ(source("soon")["state"], "fired");
  EXPECT_FALSE(sub->next_notification(deadline_in(300ms))) << "fired twice";
}

TEST_F(AtTest, AddAtOverTheSocketAndTocsinctlFireThenRetire) {
  start("");
  LineClient admin(sock);
  const std::int64_t at = seconds(system_clock::now()) + 2;
  Json r = admin.call("add_at", {{"id", "socket"}, {"signal", "once"}, {"time", utc(at)}});
  ASSERT_EQ(r["result"]["id"], "socket") << r.dump();
  // A wall time in a zone, through tocsinctl (offset-less: read in --tz).
  std::time_t t = at;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char wall[32];
  std::strftime(wall, sizeof wall, "%Y-%m-%dT%H:%M:%S", &tm);
  std::string cmd = std::string(TOCSINCTL_PATH) + " --socket " + sock + " add-at once " + wall +
                    " --tz UTC --id ctl 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  char out[256] = {};
  std::string printed;
  while (std::fgets(out, sizeof out, p)) printed += out;
  EXPECT_EQ(::pclose(p), 0) << printed;
  EXPECT_EQ(Json::parse(printed, nullptr, false), (Json{{"id", "ctl"}})) << printed;
  // The generic form, which serves every kind: add KIND KEY=VALUE... (values as JSON when they
  // read as JSON).
  cmd = std::string(TOCSINCTL_PATH) + " --socket " + sock + " add at signal=once time=" + utc(at) +
        " id=generic missed=once 2>&1";
  p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  printed.clear();
  while (std::fgets(out, sizeof out, p)) printed += out;
  EXPECT_EQ(::pclose(p), 0) << printed;
  EXPECT_EQ(Json::parse(printed, nullptr, false), (Json{{"id", "generic"}})) << printed;
  EXPECT_EQ(source("generic")["missed_policy"], "once");
  // Past instants are refused with what is wrong.
  r = admin.call("add_at", {{"signal", "once"}, {"time", "2020-01-01T00:00:00Z"}});
  EXPECT_EQ(r["error"]["code"], -32602) << r.dump();
  EXPECT_NE(r["error"]["message"].get<std::string>().find("time: 2020-01-01T00:00:00Z has passed"),
            std::string::npos)
      << r.dump();

  auto sub = subscriber();
  std::set<std::string> fired;
  for (int i = 0; i < 3; ++i) {
    auto e = next_event(*sub);
    ASSERT_TRUE(e);
    fired.insert((*e)["source"]["id"]);
  }
  EXPECT_EQ(fired, (std::set<std::string>{"socket", "ctl", "generic"}));
  // Run-time entries retire once they fired: gone from status and from the id space.
  Json gone =
      poll_until([&] { return source("socket"); }, [](const Json& j) { return j.is_null(); });
  EXPECT_TRUE(gone.is_null()) << gone.dump();
  EXPECT_EQ(admin.call("remove_source", {{"id", "ctl"}})["error"]["code"], -32005);
}

// The real thing: the daemon is down while the instant passes; missed: once fires it at the next
// start, flagged catch_up; missed: skip does not, and says so; neither fires again after that.
TEST_F(AtTest, ARestartAcrossTheInstantCatchesUpOnceAndSkipDropsIt) {
  // The daemon must see the entries before their instant and be down when it comes. The instant
  // is a few seconds ahead; a machine too slow to start and stop the daemon within them gets
  // another try further ahead (the entries then have a new instant: a new entry to the daemon).
  std::int64_t at = 0;
  std::string yaml;
  bool down_in_time = false;
  for (int margin : {3, 6, 12}) {
    at = seconds(system_clock::now()) + margin;
    yaml = "at:\n  - {id: once, signal: once, time: \"" + utc(at) +
           "\", missed: once}\n  - {id: skip, signal: once, time: \"" + utc(at) +
           "\", missed: skip}\n";
    start(yaml);
    // Both are remembered as seen before their instant.
    Json state = state_until([&](const Json& j) {
      return j["at"].contains("once") && j["at"].contains("skip") && j["at"]["once"]["time"] == at;
    });
    EXPECT_EQ(state["at"]["once"]["time"], at) << state.dump();
    EXPECT_TRUE(state["at"]["once"]["fired"].is_null());
    stop();
    down_in_time = seconds(system_clock::now()) < at;
    if (down_in_time) break;
  }
  ASSERT_TRUE(down_in_time) << "the daemon could not be stopped before its instant";
  // The instant passes while no daemon runs.
  std::this_thread::sleep_until(system_clock::time_point(std::chrono::seconds(at)) + 100ms);

  start(yaml);
  daemon->expect_line("at once: its instant " + utc(at) +
                      " passed while the daemon was down; firing it now (missed: once)");
  daemon->expect_line("at skip: its instant " + utc(at) +
                      " passed while the daemon was down; missed: skip drops it");
  auto sub = subscriber();
  auto e = next_event(*sub);
  ASSERT_TRUE(e);
  EXPECT_EQ((*e)["source"]["id"], "once");
  EXPECT_EQ((*e)["payload_json"]["catch_up"], true);
  EXPECT_GE((*e)["payload_json"]["late_ms"].get<std::int64_t>(), 0);
  EXPECT_EQ(source("skip")["state"], "missed");
  Json state = state_until([](const Json& j) { return !j["at"]["once"]["fired"].is_null(); });
  EXPECT_FALSE(state["at"]["once"]["fired"].is_null()) << state.dump();
  stop();

  // Fired is fired: a third start fires nothing.
  start(yaml);
  EXPECT_EQ(source("once")["state"], "fired");
  auto quiet = subscriber();
  EXPECT_FALSE(quiet->next_notification(deadline_in(500ms))) << daemon->log();
}

// A configured instant already past when first seen is shown as passed and never fires; the same
// entry remembered from before its instant (as the state file of an earlier run says) fires.
TEST_F(AtTest, APastInstantFiresOnlyWhenTheStateSaysItWasMissed) {
  const std::int64_t past = seconds(system_clock::now()) - 3600;
  std::filesystem::create_directories(state_dir);
  std::ofstream(state_dir + "/at-state.json")
      << Json{{"version", 1},
              {"at", {{"known", {{"time", past}, {"seen", past - 60}, {"fired", nullptr}}}}}}
             .dump();
  start("at:\n  - {id: known, signal: once, time: \"" + utc(past) +
        "\", missed: once}\n"
        "  - {id: fresh, signal: once, time: \"" +
        utc(past) + "\", missed: once}\n");
  daemon->expect_line("at fresh: its instant " + utc(past) +
                      " had passed when it was configured; it does not fire");
  EXPECT_EQ(source("fresh")["state"], "passed");
  auto sub = subscriber();
  auto e = next_event(*sub);
  ASSERT_TRUE(e);
  EXPECT_EQ((*e)["source"]["id"], "known");
  EXPECT_EQ((*e)["payload_json"]["catch_up"], true);
  EXPECT_FALSE(sub->next_notification(deadline_in(300ms))) << "the passed entry fired";
}

TEST_F(AtTest, BadEntriesAreRefusedWithTheirPlace) {
  TempDir d;
  std::string cfg =
      d.write("t.yaml", std::string(kSignals) +
                            "at:\n  - {signal: once, time: \"2031-13-01T00:00\"}\n"
                            "  - {signal: once, time: \"2031-12-01T00:00Z\", tz: UTC}\n");
  DaemonProcess check({"--check", "--config", cfg});
  auto status = check.wait_exit(deadline_in(kWait));
  ASSERT_TRUE(status);
  EXPECT_EQ(WEXITSTATUS(*status), 1);
  check.expect_line(cfg +
                    ":5:26: at[0].time: expected an instant such as 2026-12-24T18:00:00+01:00");
  check.expect_line(cfg + ":6:47: at[1]: the time already has an offset; tz is for a wall time");
}

}  // namespace
}  // namespace tocsin::testing
