// The cron source against the real daemon: a real CLOCK_REALTIME timerfd, the real state file in
// a temp state_dir, jobs from YAML and over the socket (SPEC §3 cron, issue 6). Clock steps and
// suspends are tested through the clock seam in tests/unit/cron_scheduler_test.cc: a test may not
// set this machine's clock.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "fakes/daemon_process.h"
#include "fakes/line_client.h"
#include "fakes/temp_dir.h"

namespace tocsin::testing {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kSignals = R"Y(
signals:
  40: {name: job, handlers: [{target: subscribers}]}
  41: {name: boot, handlers: [{target: subscribers}]}
  42: {name: marker, handlers: [{target: subscribers}]}
)Y";

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct CronTest : ::testing::Test {
  TempDir dir;
  std::string sock = dir.file("tocsin.sock");
  std::string state_dir = dir.file("state");
  std::unique_ptr<DaemonProcess> daemon;

  void start(const std::string& yaml) {
    std::string config =
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
  // The next event of `source_id`, its payload parsed into "payload_json".
  std::optional<Json> next_from(LineClient& sub, const std::string& source_id) {
    for (auto until = deadline_in(kWait); std::chrono::steady_clock::now() < until;) {
      auto n = sub.next_notification(until);
      if (!n) break;
      Json e = (*n)["params"];
      if (e["source"]["id"] != source_id) continue;
      e["payload_json"] = Json::parse(e["payload"].get<std::string>());
      return e;
    }
    ADD_FAILURE() << "no event from " << source_id << "; log:\n" << daemon->log();
    return std::nullopt;
  }
};

TEST_F(CronTest, AnEverySecondJobFiresEachSecondWithItsSlotInItsZone) {
  start(R"Y(
cron:
  - {id: every-second, signal: job, schedule: "* * * * * *", tz: Asia/Kolkata}
)Y");
  LineClient sub(sock);
  sub.call("subscribe", {{"signals", {"job"}}});
  std::vector<std::string> slots;
  for (int i = 0; i < 3; ++i) {
    auto e = next_from(sub, "every-second");
    ASSERT_TRUE(e);
    EXPECT_EQ((*e)["source"]["kind"], "cron");
    const Json& p = (*e)["payload_json"];
    EXPECT_EQ(p["zone"], "Asia/Kolkata");
    EXPECT_TRUE(p["scheduled"].get<std::string>().ends_with("+05:30")) << p.dump();
    EXPECT_EQ(p["catch_up"], false);
    EXPECT_TRUE(p["late_ms"].is_number_unsigned()) << p.dump();
    slots.push_back(p["scheduled"]);
  }
  // Consecutive slots, or a count of those passed over: never a silent gap.
  EXPECT_NE(slots[0], slots[1]);
  EXPECT_NE(slots[1], slots[2]);
  LineClient admin(sock);
  Json st = admin.call("status")["result"]["sources"];
  EXPECT_EQ(st["cron"], 1);
  bool listed = false;
  for (const auto& s : st["list"]) {
    if (s["id"] != "every-second") continue;
    listed = true;
    EXPECT_EQ(s["kind"], "cron");
    EXPECT_EQ(s["schedule"], "* * * * * *");
    EXPECT_EQ(s["zone"], "Asia/Kolkata");
    EXPECT_TRUE(s["next"].get<std::string>().ends_with("+05:30"));
    EXPECT_GE(s["fired"].get<int>(), 3);
  }
  EXPECT_TRUE(listed) << st.dump();
}

TEST_F(CronTest, RebootFiresOnceAtStartAndNeverOnReload) {
  start(R"Y(
cron:
  - {id: at-boot, signal: boot, schedule: "@reboot"}
)Y");
  // The daemon fired it before any client could subscribe: it shows in status and the counters.
  LineClient admin(sock);
  auto fired_count = [&] {
    Json status = admin.call("status");
    for (const auto& s : status["result"]["sources"]["list"]) {
      if (s["id"] == "at-boot") return s["fired"].get<int>();
    }
    return -1;
  };
  daemon->expect_line("cron job at-boot: @reboot, fired at start");
  EXPECT_EQ(fired_count(), 1);
  LineClient sub(sock);
  sub.call("subscribe", {{"signals", {"boot", "marker"}}});
  Json r = admin.call("reload");
  ASSERT_TRUE(r.contains("result")) << r.dump();
  admin.call("raise", {{"signal", "marker"}});
  auto n = sub.next_notification(deadline_in(kWait));
  ASSERT_TRUE(n);
  EXPECT_EQ((*n)["params"]["name"], "marker") << "@reboot fired again on reload: " << n->dump();
  // A run-time @reboot makes no sense: refused.
  Json bad = admin.call("add_cron", {{"signal", "boot"}, {"schedule", "@reboot"}});
  EXPECT_EQ(bad["error"]["code"], -32602) << bad.dump();
}

TEST_F(CronTest, AddCronAndRemoveSourceOverTheSocket) {
  start("");
  LineClient sub(sock);
  sub.call("subscribe", {{"signals", {"job"}}});
  LineClient admin(sock);
  Json r = admin.call("add_cron", {{"signal", "job"}, {"schedule", "*/1 * * * * *"},
                                   {"tz", "Europe/Berlin"}, {"missed", "once"}, {"iterations", 2}});
  ASSERT_TRUE(r.contains("result")) << r.dump();
  std::string id = r["result"]["id"];
  EXPECT_TRUE(id.starts_with("cron:")) << id;
  auto first = next_from(sub, id);
  ASSERT_TRUE(first);
  EXPECT_EQ((*first)["iteration"], 1);
  auto second = next_from(sub, id);
  ASSERT_TRUE(second);
  EXPECT_EQ((*second)["iteration"], 2);
  daemon->expect_line("cron job " + id + ": retired after 2 iteration(s)");
  EXPECT_EQ(admin.call("remove_source", {{"id", id}})["error"]["code"], -32005);

  // The same with a chosen id, removed while it runs; uWSGI's form too.
  r = admin.call("add_cron", {{"id", "nightly"}, {"signal", 40}, {"uwsgi", {0, 3, -1, -1, -1}}});
  ASSERT_EQ(r["result"]["id"], "nightly") << r.dump();
  Json dup = admin.call("add_cron", {{"id", "nightly"}, {"signal", 40}, {"schedule", "@daily"}});
  EXPECT_EQ(dup["error"]["code"], -32008) << dup.dump();  // another spec under a taken id
  EXPECT_TRUE(admin.call("remove_source", {{"id", "nightly"}}).contains("result"));
  EXPECT_EQ(admin.call("status")["result"]["sources"]["cron"], 0);
}

TEST_F(CronTest, BadCronParamsGetAnErrorThatSaysWhere) {
  start("");
  LineClient admin(sock);
  struct Bad {
    Json params;
    const char* says;
  };
  const Bad cases[] = {
      {{{"signal", 40}, {"schedule", "*/5 * 32 * *"}}, "day-of-month 32 is out of range 1-31 (column 7)"},
      {{{"signal", 40}, {"schedule", "0 0 12 ? * 2"}}, "Quartz"},
      {{{"signal", 40}, {"schedule", "@daily"}, {"tz", "Mars/Base"}}, "unknown time zone"},
      {{{"signal", 40}}, "a cron job needs schedule"},
      {{{"signal", 40}, {"schedule", "@daily"}, {"uwsgi", {0, 0, 0, 0, 0}}}, "exactly one of"},
      {{{"signal", 40}, {"uwsgi", {0, 0, 31, 2, -1}}}, "never fires"},
      {{{"signal", 40}, {"uwsgi", "0 0 * * *"}}, "five integers"},
      {{{"signal", 40}, {"schedule", "@daily"}, {"missed", "always"}}, "skip or once"},
      {{{"signal", 40}, {"schedule", "@daily"}, {"jitter", "soon"}}, "jitter"},
      {{{"signal", 40}, {"schedule", "@daily"}, {"every", "1s"}}, "unknown key \"every\""},
      // As in YAML (`schedule: 5`), a number is the expression's text.
      {{{"signal", 40}, {"schedule", 5}}, "schedule: expected 5 fields"},
      {{{"signal", 40}, {"schedule", "@daily"}, {"id", "bad id"}}, "id:"},
  };
  for (const auto& c : cases) {
    Json r = admin.call("add_cron", c.params);
    EXPECT_EQ(r["error"]["code"], -32602) << c.params.dump() << " -> " << r.dump();
    EXPECT_NE(r["error"]["message"].get<std::string>().find(c.says), std::string::npos)
        << c.params.dump() << " -> " << r.dump();
  }
  EXPECT_EQ(admin.call("status")["result"]["sources"]["cron"], 0);
}

// `missed: once` across restarts: the slots passed while the daemon was down fire one catch-up.
TEST_F(CronTest, MissedOnceCatchesUpAfterDowntimeFromTheStateFile) {
  const std::string yaml = R"Y(
cron:
  - {id: minutely, signal: job, schedule: "* * * * *", tz: UTC, missed: once}
)Y";
  // As if the last run was three hours ago.
  std::filesystem::create_directories(state_dir);
  const std::int64_t three_hours_ago = (now_seconds() / 60 - 180) * 60;
  std::ofstream(state_dir + "/cron-state.json")
      << Json{{"version", 1},
              {"jobs",
               {{"minutely",
                 {{"schedule", "* * * * *"}, {"zone", "UTC"}, {"last", three_hours_ago}}}}}}
             .dump();
  start(yaml);
  // It fired at start, before any client could subscribe: the log and the state file say so.
  daemon->expect_line("cron job minutely: catch-up for ");
  // The state is written off the reactor's thread: wait for the catch-up to be remembered.
  Json state;
  std::int64_t last = 0;
  for (auto until = deadline_in(kWait);
       last < three_hours_ago + 179 * 60 && std::chrono::steady_clock::now() < until;) {
    state = Json::parse(read_file(state_dir + "/cron-state.json"), nullptr, false);
    if (!state.is_discarded()) last = state["jobs"]["minutely"].value("last", std::int64_t{0});
  }
  EXPECT_GE(last, three_hours_ago + 179 * 60) << state.dump();
  EXPECT_EQ(state["jobs"]["minutely"]["schedule"], "* * * * *");
  stop();

  // What the daemon wrote is what the next start reads: move it back two hours and restart.
  state["jobs"]["minutely"]["last"] = last - 7200;
  std::ofstream(state_dir + "/cron-state.json") << state.dump();
  start(yaml);
  std::string line = daemon->expect_line("cron job minutely: catch-up for ");
  EXPECT_NE(line.find("catch-up for 12"), std::string::npos) << line;  // 120 or more slots
}

TEST_F(CronTest, TheStateFileIsWrittenAtomicallyAndACorruptOneIsReportedNotFatal) {
  std::filesystem::create_directories(state_dir);
  std::ofstream(state_dir + "/cron-state.json") << "{\"version\": 1, \"jobs\": {\"x\": [tru";
  // A temp file left by a crash mid-write is ignored.
  std::ofstream(state_dir + "/cron-state.json.tmp") << "garbage";
  start(R"Y(
cron:
  - {id: secondly, signal: job, schedule: "* * * * * *", missed: once}
)Y");
  daemon->expect_line("not valid JSON; ignored");
  EXPECT_TRUE(std::filesystem::exists(state_dir + "/cron-state.json.corrupt"));
  LineClient sub(sock);
  sub.call("subscribe", {{"signals", {"job"}}});
  auto e = next_from(sub, "secondly");
  ASSERT_TRUE(e) << "the job runs despite the corrupt state";
  EXPECT_EQ((*e)["payload_json"]["catch_up"], false);
  // The new state is a complete JSON document naming the job.
  auto names_the_job = [](const Json& s) {
    return !s.is_discarded() && s["jobs"].contains("secondly");
  };
  Json state = poll_until(
      [&] { return Json::parse(read_file(state_dir + "/cron-state.json"), nullptr, false); },
      names_the_job);
  ASSERT_TRUE(names_the_job(state)) << "no state written: "
                                    << read_file(state_dir + "/cron-state.json");
  LineClient admin(sock);
  Json st = status_until(admin, [](const Json& r) { return r["cron_state"]["state"] == "ok"; });
  EXPECT_EQ(st["cron_state"]["state"], "ok") << st.dump();
}

TEST_F(CronTest, AnUnwritableStateDirIsLoggedAndTheJobsStillRun) {
  // A regular file where the directory should be fails for every user, root included.
  std::ofstream(dir.file("not-a-dir")) << "x";
  state_dir = dir.file("not-a-dir");
  start(R"Y(
cron:
  - {id: secondly, signal: job, schedule: "* * * * * *", missed: once}
)Y");
  daemon->expect_line("missed: once cannot survive a restart");
  LineClient sub(sock);
  sub.call("subscribe", {{"signals", {"job"}}});
  EXPECT_TRUE(next_from(sub, "secondly"));
  Json st = sub.call("status")["result"]["cron_state"];
  EXPECT_EQ(st["state"], "failing") << st.dump();
  EXPECT_EQ(st["path"], state_dir + "/cron-state.json");
  EXPECT_NE(st["error"].get<std::string>().find("Not a directory"), std::string::npos) << st.dump();
}

TEST_F(CronTest, AMalformedExpressionInYamlIsReportedWithLineAndColumn) {
  std::string config = dir.write("bad.yaml", std::string(kSignals) + R"Y(
cron:
  - signal: job
    schedule: "0 3 * * mon-fri/0"
)Y");
  DaemonProcess d({"--check", config});  // SPEC §4: tocsind --check CONFIG
  auto status = d.wait_exit(deadline_in(kWait));
  ASSERT_TRUE(status);
  EXPECT_EQ(WEXITSTATUS(*status), 1) << d.log();
  // The log reader thread may still be reading: wait for the line.
  d.expect_line("bad.yaml:9:32: cron[0].schedule: a step of 0 never advances");
}

TEST_F(CronTest, ReloadKeepsUnchangedJobsAndRunTimeOnes) {
  start(R"Y(
cron:
  - {id: keep, signal: job, schedule: "0 3 * * *"}
  - {id: drop, signal: job, schedule: "0 4 * * *"}
)Y");
  LineClient admin(sock);
  ASSERT_TRUE(admin.call("add_cron", {{"id", "mine"}, {"signal", 40}, {"schedule", "@weekly"}})
                  .contains("result"));
  dir.write("tocsin.yaml", "state_dir: " + state_dir + "\n" + std::string(kSignals) + R"Y(
cron:
  - {id: keep, signal: job, schedule: "0 3 * * *"}
  - {id: new, signal: job, schedule: "0 5 * * *", tz: Europe/Berlin}
)Y");
  ASSERT_TRUE(admin.call("reload").contains("result"));
  std::set<std::string> ids;
  Json status = admin.call("status");
  for (const auto& s : status["result"]["sources"]["list"]) {
    if (s["kind"] == "cron") ids.insert(s["id"]);
  }
  EXPECT_EQ(ids, (std::set<std::string>{"keep", "mine", "new"}));
  // A config job may not take a run-time job's id: the reload fails and nothing changes.
  dir.write("tocsin.yaml", "state_dir: " + state_dir + "\n" + std::string(kSignals) + R"Y(
cron:
  - {id: mine, signal: job, schedule: "0 3 * * *"}
)Y");
  Json r = admin.call("reload");
  ASSERT_TRUE(r.contains("error")) << r.dump();
  EXPECT_NE(r["error"]["message"].get<std::string>().find("added at run time"), std::string::npos)
      << r.dump();
  EXPECT_EQ(admin.call("status")["result"]["sources"]["cron"], 3);
}

}  // namespace
}  // namespace tocsin::testing
