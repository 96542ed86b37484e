// Shared run-time sources and acl.declare against the real daemon (SPEC §3 "Run-time sources ...
// may be shared", §7; docs/protocol.md add_*, remove_source): many clients declaring one id make
// one source, `lifetime: clients` sources go after their last declarer plus `linger`, unequal
// specs conflict unless `replace`, remove_source leaves or (force) removes, and a signal's
// `declare` ACL lets a non-root user declare on it.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <set>

#include "fakes/daemon_process.h"
#include "fakes/line_client.h"
#include "fakes/temp_dir.h"

namespace tocsin::testing {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kConfig = R"Y(
socket: {mode: "0666"}
signals:
  3: {name: tick, handlers: [{target: subscribers}]}
  4: {name: tock, handlers: [{target: subscribers}]}
  9:
    name: web
    handlers: [{target: subscribers}]
    acl: {declare: [nobody]}
  10: {name: closed, handlers: [{target: subscribers}]}
timers: [{id: conf, signal: tock, every: 1h}]
)Y";

struct SharedSourcesTest : ::testing::Test {
  TempDir dir;
  std::string sock = dir.file("tocsin.sock");
  std::unique_ptr<DaemonProcess> daemon;

  void SetUp() override {
    // Other users must reach the socket (the declare ACL test); mkdtemp made the dir 0700.
    ::chmod(dir.path().c_str(), 0755);
    std::string config = dir.write("tocsin.yaml", kConfig);
    daemon = std::make_unique<DaemonProcess>(
        std::vector<std::string>{"--config", config, "--socket", sock, "--log-level", "info"});
    daemon->expect_ready();
  }

  LineClient connect() { return LineClient(sock); }

  // The status entry of source `id`, or null.
  static Json source_in(const Json& status, const std::string& id) {
    for (const Json& s : status["sources"]["list"]) {
      if (s["id"] == id) return s;
    }
    return Json();
  }

  static Json timer(const std::string& id, int signal, const std::string& every,
                    const std::string& linger = "") {
    Json p{{"id", id}, {"signal", signal}, {"every", every}};
    if (!linger.empty()) {
      p["lifetime"] = "clients";
      p["linger"] = linger;
    }
    return p;
  }

  // The next `n` events a subscriber gets; fails the test if they do not come.
  static std::vector<Json> events(LineClient& sub, int n) {
    std::vector<Json> out;
    while (static_cast<int>(out.size()) < n) {
      auto ev = sub.next_notification(deadline_in(kWait));
      if (!ev) {
        ADD_FAILURE() << "only " << out.size() << " of " << n << " events came";
        break;
      }
      out.push_back((*ev)["params"]);
    }
    return out;
  }
};

TEST_F(SharedSourcesTest, FourClientsDeclaringOneIdMakeOneTimerThatOutlivesThemByItsLinger) {
  LineClient sub = connect();
  sub.call("subscribe", {{"signals", {"tick"}}});
  std::vector<LineClient> workers;
  for (int i = 0; i < 4; ++i) {
    workers.push_back(connect());
    Json r = workers.back().call("add_timer", timer("beat", 3, "50ms", "300ms"))["result"];
    EXPECT_EQ(r["id"], "beat") << r.dump();
    if (i == 0) {
      EXPECT_FALSE(r.contains("joined")) << "a fresh add answers as before: " << r.dump();
    } else {
      EXPECT_EQ(r["joined"], true) << r.dump();
    }
  }
  LineClient admin = connect();
  Json st = admin.call("status")["result"];
  EXPECT_EQ(st["sources"]["timers"], 2) << "conf and one beat: " << st["sources"].dump();
  Json beat = source_in(st, "beat");
  EXPECT_EQ(beat["declarers"], 4) << beat.dump();
  EXPECT_EQ(beat["lifetime"], "clients");
  EXPECT_EQ(beat["linger_ms"], 300);
  EXPECT_FALSE(beat.contains("lingering_until"));

  // One timer: each event is the next iteration of the one source (four timers would repeat
  // every iteration number).
  std::uint64_t last = 0;
  for (const Json& ev : events(sub, 6)) {
    EXPECT_EQ(ev["source"], Json({{"kind", "timer"}, {"id", "beat"}}));
    EXPECT_GT(ev["iteration"].get<std::uint64_t>(), last) << ev.dump();
    last = ev["iteration"];
  }

  // Three leave by disconnecting: it stays, still counting.
  for (int i = 0; i < 3; ++i) workers[i].close();
  st = status_until(admin, [](const Json& s) { return source_in(s, "beat")["declarers"] == 1; });
  ASSERT_EQ(source_in(st, "beat")["declarers"], 1) << st.dump();
  sub.notifications.clear();
  for (const Json& ev : events(sub, 2)) {
    EXPECT_GT(ev["iteration"].get<std::uint64_t>(), last) << ev.dump();
    last = ev["iteration"];
  }

  // The last leaves: it goes once the linger passed.
  workers[3].close();
  st = status_until(admin, [](const Json& s) { return source_in(s, "beat").is_null(); });
  EXPECT_TRUE(source_in(st, "beat").is_null()) << st.dump();
  daemon->expect_line("source beat: its last client left 300ms ago");
  EXPECT_EQ(st["sources"]["timers"], 1);
}

TEST_F(SharedSourcesTest, AClientRejoiningWithinTheLingerKeepsTheSameTimer) {
  LineClient sub = connect();
  sub.call("subscribe", {{"signals", {"tick"}}, {"sources", {"keep"}}});
  LineClient admin = connect();
  std::uint64_t last = 0;
  {
    LineClient first = connect();
    ASSERT_EQ(first.call("add_timer", timer("keep", 3, "50ms", "1h"))["result"]["id"], "keep");
    last = events(sub, 2).back()["iteration"];
  }  // disconnected: it lingers
  Json st = status_until(
      admin, [](const Json& s) { return source_in(s, "keep").contains("lingering_until"); });
  Json keep = source_in(st, "keep");
  ASSERT_TRUE(keep.contains("lingering_until")) << st.dump();
  EXPECT_EQ(keep["declarers"], 0);
  daemon->expect_line("source keep: its last client left; removed in 3600000ms");

  LineClient again = connect();
  Json r = again.call("add_timer", timer("keep", 3, "50ms", "1h"))["result"];
  EXPECT_EQ(r, Json({{"id", "keep"}, {"joined", true}})) << "the same timer, joined";
  keep = source_in(admin.call("status")["result"], "keep");
  EXPECT_EQ(keep["declarers"], 1) << keep.dump();
  EXPECT_FALSE(keep.contains("lingering_until")) << keep.dump();
  // Same source: its iterations go on from where they were, not from 1.
  sub.notifications.clear();
  for (const Json& ev : events(sub, 2)) {
    EXPECT_GT(ev["iteration"].get<std::uint64_t>(), last) << ev.dump();
    last = ev["iteration"];
  }
}

TEST_F(SharedSourcesTest, AnotherSpecUnderATakenIdIsAConflictUnlessReplace) {
  LineClient a = connect();
  LineClient b = connect();
  ASSERT_TRUE(a.call("add_timer", timer("t", 3, "1h", "1s")).contains("result"));
  Json e = b.call("add_timer", timer("t", 3, "2h", "1s"))["error"];
  EXPECT_EQ(e["code"], -32008) << e.dump();
  EXPECT_NE(e["message"].get<std::string>().find("replace: true"), std::string::npos) << e.dump();
  e = b.call("add_timer", timer("t", 3, "1h"))["error"];  // lifetime daemon
  EXPECT_EQ(e["code"], -32008) << e.dump();
  EXPECT_NE(e["message"].get<std::string>().find("lifetime is clients"), std::string::npos)
      << e.dump();
  e = b.call("add_timer", timer("t", 4, "1h", "1s"))["error"];
  EXPECT_NE(e["message"].get<std::string>().find("signal 3"), std::string::npos) << e.dump();
  e = b.call("add_cron", {{"id", "t"}, {"signal", 3}, {"schedule", "@daily"}})["error"];
  EXPECT_EQ(e["code"], -32008) << e.dump();

  Json p = timer("t", 3, "2h", "1s");
  p["replace"] = true;
  Json r = b.call("add_timer", p)["result"];
  EXPECT_EQ(r, Json({{"id", "t"}})) << r.dump();
  Json t = source_in(b.call("status")["result"], "t");
  EXPECT_EQ(t["every_ms"], 7200000) << t.dump();
  EXPECT_EQ(t["declarers"], 2) << "the old declarer stays one: " << t.dump();

  // A configured source's id cannot be taken, nor replaced.
  p = timer("conf", 4, "1h");
  EXPECT_EQ(b.call("add_timer", p)["error"]["code"], -32602);
  p["replace"] = true;
  EXPECT_EQ(b.call("add_timer", p)["error"]["code"], -32602);

  // The request-level fields are checked.
  p = timer("u", 3, "1h");
  p["lifetime"] = "forever";
  EXPECT_EQ(b.call("add_timer", p)["error"]["code"], -32602);
  p["lifetime"] = "daemon";
  p["linger"] = "5s";
  EXPECT_EQ(b.call("add_timer", p)["error"]["code"], -32602) << "linger needs lifetime clients";
  p = timer("u", 3, "1h", "5 s");
  EXPECT_EQ(b.call("add_timer", p)["error"]["code"], -32602);
  p = timer("u", 3, "1h", "5s");
  p["replace"] = "yes";
  EXPECT_EQ(b.call("add_timer", p)["error"]["code"], -32602);
}

TEST_F(SharedSourcesTest, RemoveSourceByADeclarerLeavesAndForceRemovesForAll) {
  LineClient a = connect();
  LineClient b = connect();
  LineClient other = connect();
  ASSERT_TRUE(a.call("add_timer", timer("r", 3, "1h")).contains("result"));
  ASSERT_EQ(b.call("add_timer", timer("r", 3, "1h"))["result"]["joined"], true);
  Json e = other.call("remove_source", {{"id", "r"}})["error"];
  EXPECT_EQ(e["code"], -32008) << e.dump();
  EXPECT_NE(e["message"].get<std::string>().find("force: true"), std::string::npos) << e.dump();
  EXPECT_EQ(a.call("remove_source", {{"id", "r"}})["result"], Json::object());
  Json r = source_in(other.call("status")["result"], "r");
  EXPECT_EQ(r["declarers"], 1) << "a left, b still declares it: " << r.dump();
  EXPECT_EQ(b.call("remove_source", {{"id", "r"}})["result"], Json::object());
  EXPECT_TRUE(source_in(other.call("status")["result"], "r").is_null());

  ASSERT_TRUE(a.call("add_timer", timer("f", 3, "1h", "1h")).contains("result"));
  ASSERT_EQ(b.call("add_timer", timer("f", 3, "1h", "1h"))["result"]["joined"], true);
  EXPECT_EQ(other.call("remove_source", {{"id", "f"}, {"force", true}})["result"], Json::object());
  EXPECT_TRUE(source_in(other.call("status")["result"], "f").is_null());
  EXPECT_EQ(a.call("remove_source", {{"id", "f"}})["error"]["code"], -32005);

  // A lifetime daemon source whose declarer has gone (tocsinctl add-timer, then exit) is
  // removed by anyone, as before.
  {
    LineClient gone = connect();
    ASSERT_TRUE(gone.call("add_timer", timer("d", 3, "1h")).contains("result"));
  }
  Json st = status_until(other, [](const Json& s) { return source_in(s, "d")["declarers"] == 0; });
  ASSERT_EQ(source_in(st, "d")["lifetime"], "daemon") << st.dump();
  EXPECT_EQ(other.call("remove_source", {{"id", "d"}})["result"], Json::object());
  // Even at once: a declarer that closed its connection has left, although the daemon may not
  // have read its EOF yet (tocsinctl add-timer --id q; tocsinctl remove q).
  for (int i = 0; i < 20; ++i) {
    {
      LineClient quick = connect();
      ASSERT_TRUE(quick.call("add_timer", timer("q", 3, "1h")).contains("result"));
    }
    ASSERT_EQ(other.call("remove_source", {{"id", "q"}})["result"], Json::object()) << i;
  }
  EXPECT_EQ(other.call("remove_source", {{"id", "conf"}})["result"], Json::object())
      << "a configured timer is removed as before";
}

TEST_F(SharedSourcesTest, TheDeclareAclLetsTheUsersItNamesDeclareAndDeniesOthers) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root: clients connect as uid 65534 and 4242";
  std::string why;
  bool unreachable = false;
  auto nobody = connect_as(sock, 65534, 65534, &why, &unreachable);
  if (!nobody && unreachable) GTEST_SKIP() << why;
  ASSERT_TRUE(nobody) << why;
  auto stranger = connect_as(sock, 4242, 4242, &why);
  ASSERT_TRUE(stranger) << why;
  LineClient admin = connect();

  // nobody is in web's acl.declare: add, join, register, unregister and remove on it.
  Json r = nobody->call("add_timer", timer("w", 9, "1h", "1s"));
  ASSERT_EQ(r["result"]["id"], "w") << r.dump();
  EXPECT_EQ(admin.call("add_timer", timer("w", 9, "1h", "1s"))["result"]["joined"], true);
  EXPECT_EQ(nobody->call("register", {{"signal", "web"}, {"target", "group:workers"}})["result"],
            Json::object());
  EXPECT_EQ(nobody->call("unregister", {{"signal", "web"}, {"target", "group:workers"}})["result"],
            Json::object());
  EXPECT_EQ(nobody->call("add_rb_timer",
                         {{"id", "w2"}, {"signal", "web"}, {"every", "1h"}})["result"]["id"],
            "w2");
  EXPECT_EQ(nobody->call("remove_source", {{"id", "w2"}})["result"], Json::object());

  // Not on a signal without a declare ACL, and not with force (admin only).
  EXPECT_EQ(nobody->call("add_timer", timer("c", 10, "1h"))["error"]["code"], -32001);
  EXPECT_EQ(
      nobody->call("register", {{"signal", "closed"}, {"target", "subscriber"}})["error"]["code"],
      -32001);
  EXPECT_EQ(nobody->call("remove_source", {{"id", "w"}, {"force", true}})["error"]["code"], -32001);
  EXPECT_EQ(nobody->call("remove_source", {{"id", "conf"}})["error"]["code"], -32001);
  daemon->expect_line("denied: add_timer on signal 10");
  // Nor replace, under its id, a source of a signal it may not declare on.
  ASSERT_TRUE(admin.call("add_timer", timer("admins", 10, "1h")).contains("result"));
  Json p = timer("admins", 9, "1h");
  p["replace"] = true;
  EXPECT_EQ(nobody->call("add_timer", p)["error"]["code"], -32001);
  EXPECT_EQ(source_in(admin.call("status")["result"], "admins")["signal"], 10);

  // uid 4242 is not named: denied everything declaring, logged; it still subscribes.
  EXPECT_EQ(stranger->call("add_timer", timer("w", 9, "1h", "1s"))["error"]["code"], -32001);
  EXPECT_EQ(
      stranger->call("register", {{"signal", "web"}, {"target", "subscriber"}})["error"]["code"],
      -32001);
  EXPECT_EQ(stranger->call("remove_source", {{"id", "w"}})["error"]["code"], -32001);
  EXPECT_EQ(stranger->call("reload")["error"]["code"], -32001);
  EXPECT_TRUE(stranger->call("subscribe", {{"signals", {"web"}}}).contains("result"));
  daemon->expect_line("(uid 4242 4242, pid");
  daemon->expect_line("denied: add_timer on signal 9");

  // nobody leaves w; the admin still declares it.
  EXPECT_EQ(nobody->call("remove_source", {{"id", "w"}})["result"], Json::object());
  EXPECT_EQ(source_in(admin.call("status")["result"], "w")["declarers"], 1);
}

}  // namespace
}  // namespace tocsin::testing
