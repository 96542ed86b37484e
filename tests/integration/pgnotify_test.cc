// The pgnotify plugin against a real PostgreSQL (issue 7): LISTEN/NOTIFY into subscribers, odd
// channel names, reconnects after pg_terminate_backend and a server restart with on_reconnect,
// the heartbeat against a frozen server, pgnotify.notify into a libpq LISTEN, and the loader's
// errors. Servers come from fakes/pg_cluster.h; tests that disturb the server start their own.
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <sys/select.h>

#include <chrono>
#include <map>

#include "fakes/daemon_process.h"
#include "fakes/line_client.h"
#include "fakes/pg_cluster.h"
#include "fakes/temp_dir.h"

namespace tocsin::testing {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

struct PgNotifyTest : ::testing::Test {
  TempDir dir;
  std::string sock = dir.file("tocsin.sock");
  std::unique_ptr<PgCluster> pg;
  std::unique_ptr<DaemonProcess> daemon;
  // Our own backend's name, so that terminating it touches no other test's connection.
  std::string app = "tocsin-test-" + std::to_string(::getpid()) + "-" +
                    std::to_string(reinterpret_cast<std::uintptr_t>(this) % 100000);

  void SetUp() override { use(PgCluster::shared); }
  void use(std::unique_ptr<PgCluster> (*make)(std::string*)) {
    std::string why;
    pg = make(&why);
    if (!pg) GTEST_SKIP() << "no PostgreSQL here: " << why;
  }

  std::string conninfo() const { return pg->conninfo() + " application_name=" + app; }

  void start(const std::string& plugin_settings, const std::string& signals = "") {
    std::string yaml = std::string("plugin_path: [") + TOCSIN_PLUGIN_DIR + "]\nstate_dir: " +
                       dir.file("state") + R"Y(
signals:
  50: {name: jobs, handlers: [{target: subscribers}]}
  51: {name: other, handlers: [{target: subscribers}]}
  52: {name: pg-back, handlers: [{target: subscribers}]}
)Y" + signals + "plugins:\n  pgnotify:\n    conninfo: \"" +
                       conninfo() + "\"\n" + plugin_settings;
    std::string config = dir.write("tocsin.yaml", yaml);
    daemon = std::make_unique<DaemonProcess>(
        std::vector<std::string>{"--config", config, "--socket", sock, "--log-level", "debug"});
    daemon->expect_ready();
    daemon->expect_line("pgnotify: listening on");
  }

  // The outage tests: channel jobs, on_reconnect pg-back, then `settings`; returns a subscriber
  // of both.
  LineClient start_reconnecting(const std::string& settings) {
    start("    channels: {jobs: jobs}\n    on_reconnect: pg-back\n" + settings);
    LineClient sub(sock);
    sub.call("subscribe", {{"signals", {"jobs", "pg-back"}}});
    return sub;
  }

  std::optional<Json> next(LineClient& sub, const std::string& name) {
    for (auto until = deadline_in(kWait); std::chrono::steady_clock::now() < until;) {
      auto n = sub.next_notification(until);
      if (!n) break;
      if ((*n)["params"]["name"] == name) return (*n)["params"];
    }
    ADD_FAILURE() << "no " << name << " event; log:\n" << (daemon ? daemon->log() : "");
    return std::nullopt;
  }

  void notify(const std::string& channel_sql, const std::string& payload) {
    std::string err;
    ASSERT_TRUE(pg->psql("NOTIFY " + channel_sql + ", '" + payload + "'", &err)) << err;
  }

  // A NOTIFY on `jobs` reaches `sub` (subscribed to jobs): the listener works (again).
  void expect_flowing(LineClient& sub, const std::string& payload) {
    notify("jobs", payload);
    auto e = next(sub, "jobs");
    ASSERT_TRUE(e);
    EXPECT_EQ((*e)["payload"], payload);
  }
};

TEST_F(PgNotifyTest, NotifyReachesASubscriberWithItsPayloadWhateverTheChannelsName) {
  start(R"Y(    channels: {jobs: jobs, "Mixed.Case Chan": 50, "with space": other, "dots.and.more": 51}
)Y");
  LineClient sub(sock);
  sub.call("subscribe", {{"signals", {"jobs", "other"}}});
  notify("jobs", "hello");
  auto e = next(sub, "jobs");
  ASSERT_TRUE(e);
  EXPECT_EQ((*e)["payload"], "hello");
  EXPECT_EQ((*e)["source"], (Json{{"kind", "pg"}, {"id", "jobs"}}));
  notify("\"Mixed.Case Chan\"", "mixed");
  e = next(sub, "jobs");
  ASSERT_TRUE(e);
  EXPECT_EQ((*e)["payload"], "mixed");
  EXPECT_EQ((*e)["source"]["id"], "Mixed.Case Chan");
  notify("\"with space\"", "spaced");
  e = next(sub, "other");
  ASSERT_TRUE(e);
  EXPECT_EQ((*e)["payload"], "spaced");
  notify("\"dots.and.more\"", "{\"json\": [1, 2]}");
  e = next(sub, "other");
  ASSERT_TRUE(e);
  EXPECT_EQ((*e)["payload"], "{\"json\": [1, 2]}");
  // A channel nobody mapped raises nothing; the next mapped one still comes, in order.
  notify("\"MIXED.CASE CHAN\"", "not ours");
  notify("jobs", "after");
  e = next(sub, "jobs");
  ASSERT_TRUE(e);
  EXPECT_EQ((*e)["payload"], "after");
  LineClient admin(sock);
  Json status = admin.call("status")["result"];
  Json st = status["plugins"]["pgnotify"];
  EXPECT_EQ(st["state"], "listening") << st.dump();
  EXPECT_EQ(st["received"], 5) << st.dump();
  // The channels are sources in the registry, as every source is: kind pg, their counts, their
  // ids taken, not removable at run time.
  EXPECT_EQ(status["sources"]["pg"], 4) << status["sources"].dump();
  Json jobs;
  for (const auto& s : status["sources"]["list"]) {
    if (s["kind"] == "pg" && s["id"] == "jobs") jobs = s;
  }
  EXPECT_EQ(jobs["fired"], 2) << status["sources"].dump();
  EXPECT_EQ(jobs["schedule"], "LISTEN jobs");
  Json taken = admin.call("add_timer", {{"id", "jobs"}, {"signal", 50}, {"every", "1h"}});
  EXPECT_EQ(taken["error"]["code"], -32602) << taken.dump();
  Json kept = admin.call("remove_source", {{"id", "jobs"}});
  EXPECT_EQ(kept["error"]["code"], -32602) << kept.dump();
}

TEST_F(PgNotifyTest, ATerminatedBackendIsReconnectedAndOnReconnectSaysSo) {
  LineClient sub = start_reconnecting("    reconnect: {min: 50ms, max: 500ms}\n");
  std::string err;
  ASSERT_TRUE(pg->psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                       "application_name = '" + app + "'",
                       &err))
      << err;
  auto back = next(sub, "pg-back");
  ASSERT_TRUE(back);
  Json p = Json::parse((*back)["payload"].get<std::string>());
  EXPECT_EQ(p["generation"], 2);
  EXPECT_TRUE(p["outage_ms"].is_number_unsigned()) << p.dump();
  EXPECT_FALSE(p["error"].get<std::string>().empty()) << p.dump();
  expect_flowing(sub, "flowing again");
  // The same in the metrics Prometheus scrapes (docs/metrics.md).
  std::string text = sub.call("metrics")["result"]["text"];
  EXPECT_NE(text.find("\ntocsin_pgnotify_reconnects_total 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\ntocsin_pgnotify_up 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\ntocsin_pgnotify_state{state=\"listening\"} 1\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("\ntocsin_sources{kind=\"pg\",state=\"ok\"} "), std::string::npos) << text;
}

TEST_F(PgNotifyTest, AServerStoppedAndStartedAgainIsReconnectedWithinTheBackoff) {
  use(PgCluster::create);  // this test stops the server: its own
  if (!pg) return;
  LineClient sub = start_reconnecting("    reconnect: {min: 50ms, max: 300ms}\n");
  const int fds = daemon->open_fds();
  std::size_t from = 0;
  ASSERT_TRUE(pg->stop_fast());
  daemon->expect_line("pgnotify: connection lost", &from);
  daemon->expect_line("pgnotify: cannot connect", &from);  // retrying while it is down
  daemon->expect_line("pgnotify: cannot connect", &from);  // failed attempts leave no fd behind
  ASSERT_TRUE(pg->start());
  auto back = next(sub, "pg-back");
  ASSERT_TRUE(back);
  EXPECT_GE(Json::parse((*back)["payload"].get<std::string>())["generation"], 2);
  expect_flowing(sub, "after restart");
  EXPECT_EQ(daemon->open_fds(), fds) << "the outage left the daemon with another number of fds";
}

TEST_F(PgNotifyTest, TheHeartbeatNoticesAFrozenServerWithinItsDeadline) {
  use(PgCluster::create);  // this test freezes the server: its own
  if (!pg) return;
  LineClient sub = start_reconnecting(R"Y(    heartbeat: 200ms
    heartbeat_timeout: 300ms
    connect_timeout: 300ms
    reconnect: {min: 50ms, max: 200ms}
)Y");
  std::size_t from = 0;
  pg->freeze();
  // The connection is still open (a half-open one looks the same): only the heartbeat can tell.
  daemon->expect_line("no heartbeat within 300ms", &from);
  daemon->expect_line("while connecting", &from);  // and a frozen server does not hold a connect
  pg->thaw();
  auto back = next(sub, "pg-back");
  ASSERT_TRUE(back);
  expect_flowing(sub, "thawed");
}

// A host name in conninfo is resolved off the reactor's thread (libpq would block in
// getaddrinfo), then given to libpq as hostaddr: it connects over TCP on loopback.
TEST_F(PgNotifyTest, AHostNameIsResolvedAsynchronouslyAndUsed) {
  use(PgCluster::create_tcp);
  if (!pg) return;
  std::string tcp = "host=localhost port=" + std::to_string(pg->tcp_port()) +
                    " user=postgres dbname=postgres";
  std::string yaml = std::string("plugin_path: [") + TOCSIN_PLUGIN_DIR + "]\nstate_dir: " +
                     dir.file("state") +
                     "\nsignals:\n  50: {name: jobs, handlers: [{target: subscribers}]}\n"
                     "plugins:\n  pgnotify:\n    conninfo: \"" + tcp +
                     "\"\n    channels: {jobs: jobs}\n";
  daemon = std::make_unique<DaemonProcess>(std::vector<std::string>{
      "--config", dir.write("tocsin.yaml", yaml), "--socket", sock, "--log-level", "debug"});
  daemon->expect_ready();
  daemon->expect_line("pgnotify: resolved localhost to ");
  daemon->expect_line("pgnotify: listening on");
  LineClient sub(sock);
  sub.call("subscribe", {{"signals", {"jobs"}}});
  expect_flowing(sub, "over tcp");
}

// A LISTEN of our own over libpq, read with a deadline.
struct Listener {
  PGconn* conn = nullptr;
  explicit Listener(const std::string& conninfo, const std::string& channel_sql) {
    conn = PQconnectdb(conninfo.c_str());
    if (PQstatus(conn) == CONNECTION_OK) PQclear(PQexec(conn, ("LISTEN " + channel_sql).c_str()));
  }
  ~Listener() { PQfinish(conn); }
  bool ok() const { return PQstatus(conn) == CONNECTION_OK; }
  std::optional<std::pair<std::string, std::string>> next(Deadline deadline) {
    while (std::chrono::steady_clock::now() < deadline) {
      PQconsumeInput(conn);
      if (PGnotify* n = PQnotifies(conn)) {
        std::pair<std::string, std::string> out{n->relname, n->extra};
        PQfreemem(n);
        return out;
      }
      fd_set fds;
      FD_ZERO(&fds);
      FD_SET(PQsocket(conn), &fds);
      timeval tv{0, 100000};
      ::select(PQsocket(conn) + 1, &fds, nullptr, nullptr, &tv);
    }
    return std::nullopt;
  }
};

TEST_F(PgNotifyTest, TheNotifyHandlerPublishesEventsToAChannelAndRefusesOversizedOnes) {
  start("    channels: {}\n", R"Y(  53:
    name: out
    handlers: [{plugin: pgnotify.notify, with: {channel: "Out Channel"}}]
)Y");
  Listener listen(pg->conninfo(), "\"Out Channel\"");
  ASSERT_TRUE(listen.ok()) << PQerrorMessage(listen.conn);
  LineClient admin(sock);
  Json r = admin.call("raise", {{"signal", "out"}, {"payload", "to postgres"}});
  ASSERT_TRUE(r.contains("result")) << r.dump();
  auto n = listen.next(deadline_in(kWait));
  ASSERT_TRUE(n) << "nothing arrived on \"Out Channel\"; log:\n" << daemon->log();
  EXPECT_EQ(n->first, "Out Channel");
  Json event = Json::parse(n->second);
  EXPECT_EQ(event["payload"], "to postgres");
  EXPECT_EQ(event["name"], "out");
  EXPECT_EQ(event["seq"], r["result"]["seq"]);
  // 7999 bytes is the most a NOTIFY carries: a bigger event is counted as failed, never cut.
  r = admin.call("raise", {{"signal", "out"}, {"payload", std::string(8000, 'x')}});
  ASSERT_TRUE(r.contains("result")) << r.dump();
  daemon->expect_line("a NOTIFY payload holds at most 7999 (not sent, not truncated)");
  Json table = admin.call("table")["result"]["signals"];
  for (const auto& s : table) {
    if (s["signal"] == 53) {
      EXPECT_EQ(s["delivered"], 1) << s.dump();
      EXPECT_EQ(s["failed"], 1) << s.dump();
    }
  }
  EXPECT_EQ(listen.next(deadline_in(300ms)), std::nullopt) << "the oversized event was sent";
}

// Two daemons, one cron job every second with `cluster: true`: every slot fires exactly once
// across both; with one of them killed, the other fires every slot; with Postgres gone, neither
// fires and status says why.
TEST_F(PgNotifyTest, AClusterCronJobFiresEachSlotOnceAcrossTwoDaemons) {
  use(PgCluster::create);  // its own claim table, and it is stopped at the end
  if (!pg) return;
  const std::string cluster_yaml = R"Y(    channels: {}
    heartbeat: 1s
cron:
  - {id: every-second, signal: jobs, schedule: "* * * * * *", cluster: true}
timers:
  - {id: grid, signal: other, every: 500ms, cluster: true}
)Y";
  start(cluster_yaml);
  TempDir dir2;
  std::string sock2 = dir2.file("tocsin.sock");
  std::string config2 = dir2.write(
      "tocsin.yaml", std::string("plugin_path: [") + TOCSIN_PLUGIN_DIR + "]\nstate_dir: " +
                         dir2.file("state") + R"Y(
signals:
  50: {name: jobs, handlers: [{target: subscribers}]}
  51: {name: other, handlers: [{target: subscribers}]}
  52: {name: pg-back, handlers: [{target: subscribers}]}
plugins:
  pgnotify:
    conninfo: ")Y" + conninfo() + "\"\n    node: second\n" + cluster_yaml);
  auto second = std::make_unique<DaemonProcess>(
      std::vector<std::string>{"--config", config2, "--socket", sock2, "--log-level", "debug"});
  second->expect_ready();
  LineClient a(sock), b(sock2);
  a.call("subscribe", {{"signals", {"jobs", "other"}}});
  b.call("subscribe", {{"signals", {"jobs", "other"}}});
  // Slots (the cron's scheduled second, the timer's grid time) -> how many daemons fired them.
  std::map<std::string, int> cron_slots, timer_slots;
  auto drain = [&](LineClient& c, Deadline until) {
    while (auto n = c.next_notification(until)) {
      const Json& e = (*n)["params"];
      if (e["name"] == "jobs") {
        ++cron_slots[Json::parse(e["payload"].get<std::string>())["scheduled"]];
      } else {
        ++timer_slots[e["time"].get<std::string>().substr(0, 21)];  // to the tenth of a second
      }
      if (cron_slots.size() >= 10) return;
    }
  };
  for (auto until = deadline_in(20000ms);
       cron_slots.size() < 10 && std::chrono::steady_clock::now() < until;) {
    drain(a, deadline_in(50ms));
    drain(b, deadline_in(50ms));
  }
  drain(a, deadline_in(300ms));
  drain(b, deadline_in(300ms));
  ASSERT_GE(cron_slots.size(), 10u) << "log a:\n" << daemon->log() << "\nlog b:\n" << second->log();
  for (const auto& [slot, n] : cron_slots) EXPECT_EQ(n, 1) << "cron slot " << slot;
  for (const auto& [slot, n] : timer_slots) EXPECT_EQ(n, 1) << "timer slot " << slot;
  // Consecutive seconds: no slot was lost between the first and the last (ISO strings of one
  // zone sort in time order).
  auto second_of_day = [](const std::string& iso) {
    return std::stoll(iso.substr(11, 2)) * 3600 + std::stoll(iso.substr(14, 2)) * 60 +
           std::stoll(iso.substr(17, 2));
  };
  std::int64_t previous = -1;
  for (const auto& [slot, n] : cron_slots) {
    std::int64_t s = second_of_day(slot);
    if (previous >= 0) {
      EXPECT_EQ((s - previous + 86400) % 86400, 1) << "lost before " << slot;
    }
    previous = s;
  }
  std::string err;
  auto claimed = pg->psql("SELECT count(*), count(DISTINCT slot) FROM tocsin_claims WHERE job = "
                          "'every-second'",
                          &err);
  ASSERT_TRUE(claimed) << err;
  auto bar = claimed->find('|');
  EXPECT_EQ(claimed->substr(0, bar), claimed->substr(bar + 1)) << "one claim per slot";

  // One daemon killed: the other fires every slot.
  second->send(SIGKILL);
  ASSERT_TRUE(second->wait_exit(deadline_in(kWait)));
  std::vector<std::int64_t> after;
  for (auto until = deadline_in(10000ms);
       after.size() < 4 && std::chrono::steady_clock::now() < until;) {
    auto n = a.next_notification(until);
    if (!n) break;
    const Json& e = (*n)["params"];
    if (e["name"] != "jobs") continue;
    Json p = Json::parse(e["payload"].get<std::string>());
    after.push_back(second_of_day(p["scheduled"]));
  }
  ASSERT_EQ(after.size(), 4u) << daemon->log();
  for (std::size_t i = 1; i < after.size(); ++i) {
    EXPECT_EQ((after[i] - after[i - 1] + 86400) % 86400, 1) << "a slot was skipped";
  }

  // Postgres gone: no cluster job fires, and status says why.
  ASSERT_TRUE(pg->stop_fast());
  daemon->expect_line("not fired: no connection to Postgres");
  LineClient admin(sock);
  Json st = admin.call("status")["result"]["plugins"]["pgnotify"];
  EXPECT_NE(st["cluster"].get<std::string>().find("not firing cluster jobs"), std::string::npos)
      << st.dump();
}

TEST(PgNotifyCheck, PluginProblemsAreReportedAtCheckTimeWithTheirLocation) {
  TempDir dir;
  struct Case {
    std::string yaml;
    std::string says;
  };
  const std::string path = std::string("plugin_path: [") + TOCSIN_PLUGIN_DIR + ", " +
                           TOCSIN_TEST_PLUGIN_DIR + "]\nsignals: {5: {name: five}}\n";
  const Case cases[] = {
      {path + "plugins:\n  pgnotify: {channels: {a: 5}}\n",
       "t.yaml:4:3: plugins.pgnotify.conninfo: required"},
      {path + "plugins:\n  pgnotify: {conninfo: x, channels: {a: nosuch}}\n",
       "t.yaml:4:3: plugins.pgnotify.channels.a: \"nosuch\" is not a signal"},
      {path + "plugins:\n  pgnotify: {conninfo: x, heartbeat: soon}\n",
       "t.yaml:4:3: plugins.pgnotify.heartbeat:"},
      {path + "plugins:\n  pgnotify: {conninfo: x, colour: red}\n",
       "t.yaml:4:3: plugins.pgnotify.colour: unknown key"},
      {path + "plugins:\n  bad_abi: {}\n", "was built for plugin ABI version 999; this tocsind speaks version 2"},
      {path + "plugins:\n  not_a_plugin: {}\n", "is not a tocsin plugin (it has no tocsin_plugin_entry)"},
      {std::string("plugin_path: [") + TOCSIN_PLUGIN_DIR +
           "]\nsignals:\n  5:\n    handlers: [{plugin: pgnotify.notify, with: {chanel: x}}]\n"
           "plugins:\n  pgnotify: {conninfo: x}\n",
       "t.yaml:4:16: pgnotify.notify: with: expected {channel: NAME}"},
  };
  for (const auto& c : cases) {
    std::string cfg = dir.write("t.yaml", c.yaml);
    DaemonProcess check({"--check", cfg});
    auto status = check.wait_exit(deadline_in(kWait));
    ASSERT_TRUE(status);
    EXPECT_EQ(WEXITSTATUS(*status), 1) << c.yaml << check.log();
    check.expect_line(c.says);
  }
}

}  // namespace
}  // namespace tocsin::testing
