// Worker pools over the real socket (issue 15): credit (prefetch), batched acks as
// notifications, nack, delivery counts, dead letters, and a worker killed with -9 while it holds
// its full credit. Each test starts the real tocsind; every wait has a deadline. How fast a mixed
// pool finishes is measured by bench/oneof_peers.py and tocsin_load, not asserted here: these
// tests check who got what, which is what makes the pool fast.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "fakes/daemon_process.h"
#include "fakes/holder.h"
#include "fakes/line_client.h"
#include "fakes/temp_dir.h"

namespace tocsin::testing {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kConfig = R"Y(
limits: {ack_timeout: 30s}
signals:
  26:
    name: jobs
    handlers: [{target: subscriber}]
    max_deliveries: 3
    dead_letter: jobs-failed
  27: {name: jobs-failed, handlers: [{target: subscribers}]}
  28: {name: work, handlers: [{target: subscriber}]}
)Y";

struct WorkersTest : ::testing::Test {
  TempDir dir;
  std::string sock = dir.file("tocsin.sock");
  std::unique_ptr<DaemonProcess> daemon;

  void SetUp() override { start(kConfig); }
  void start(const std::string& yaml) {
    std::string config = dir.write("tocsin.yaml", yaml);
    daemon = std::make_unique<DaemonProcess>(
        std::vector<std::string>{"--config", config, "--socket", sock, "--log-level", "info"});
    daemon->expect_ready();
  }
  LineClient connect() { return LineClient(sock); }
  // Raises `n` events of `signal` in one batch (payloads "0".."n-1"); returns their seqs.
  std::vector<std::uint64_t> raise_many(LineClient& c, const std::string& signal, int n) {
    Json batch = Json::array();
    for (int i = 0; i < n; ++i) {
      batch.push_back({{"jsonrpc", "2.0"},
                       {"id", i},
                       {"method", "raise"},
                       {"params", {{"signal", signal}, {"payload", std::to_string(i)}}}});
    }
    c.send(batch);
    auto reply = c.read(deadline_in(kWait));
    std::vector<std::uint64_t> seqs;
    EXPECT_TRUE(reply && reply->is_array() && reply->size() == static_cast<std::size_t>(n))
        << (reply ? reply->dump() : "no reply");
    if (!reply || !reply->is_array()) return seqs;
    for (const Json& r : *reply) seqs.push_back(r["result"]["seq"]);
    std::sort(seqs.begin(), seqs.end());
    return seqs;
  }
  Json client_entry(LineClient& admin, const std::function<bool(const Json&)>& which) {
    Json status = admin.call("status")["result"];
    for (const Json& c : status["clients_detail"]) {
      if (which(c)) return c;
    }
    return Json();
  }
};

// A worker that never finishes its event and one that acks at once, both with prefetch 1: the
// first holds exactly one event and every other goes to the fast one (round robin would give
// the slow one half, and the run would take as long as it needs for them). Then the same with
// the daemon's default credit (limits.prefetch, 32): the slow one holds 32, no more.
void split_between_a_stuck_and_a_fast_worker(WorkersTest& t, std::optional<int> prefetch,
                                             std::size_t slow_holds) {
  LineClient slow = t.connect();
  LineClient fast = t.connect();
  Json sub{{"signals", {"work"}}, {"ack", true}};
  if (prefetch) sub["prefetch"] = *prefetch;
  ASSERT_TRUE(slow.call("subscribe", sub).contains("result"));
  ASSERT_TRUE(fast.call("subscribe", sub).contains("result"));
  LineClient raiser = t.connect();
  const int kEvents = 2000;
  std::vector<std::uint64_t> seqs = t.raise_many(raiser, "work", kEvents);
  ASSERT_EQ(seqs.size(), static_cast<std::size_t>(kEvents));
  std::set<std::uint64_t> got;
  std::uint64_t prev = 0;
  while (got.size() < kEvents - slow_holds) {
    auto ev = params_of(fast.next_notification(deadline_in(kWait)));
    ASSERT_TRUE(ev.is_object()) << "the fast worker got " << got.size() << " of "
                                << kEvents - slow_holds << "\n"
                                << t.daemon->log();
    std::uint64_t seq = ev["seq"];
    EXPECT_GT(seq, prev) << "out of order for the fast worker";
    prev = seq;
    EXPECT_EQ(ev["delivery"], 1);
    EXPECT_TRUE(got.insert(seq).second) << "seq " << seq << " twice";
    fast.send({{"jsonrpc", "2.0"}, {"method", "ack"}, {"params", {{"seq", seq}}}});
  }
  std::vector<std::uint64_t> held;
  for (std::size_t i = 0; i < slow_holds; ++i) {
    auto ev = params_of(slow.next_notification(deadline_in(kWait)));
    ASSERT_TRUE(ev.is_object()) << "the slow worker got " << i << " of " << slow_holds;
    held.push_back(ev["seq"]);
    EXPECT_TRUE(got.insert(ev["seq"].get<std::uint64_t>()).second);
  }
  EXPECT_EQ(got, std::set<std::uint64_t>(seqs.begin(), seqs.end())) << "lost events";
  EXPECT_EQ(slow.next_notification(deadline_in(100ms)), std::nullopt)
      << "the slow worker got more than its credit";
  Json entry = t.client_entry(raiser, [](const Json& c) { return c["unacked"] != 0; });
  EXPECT_EQ(entry["unacked"], slow_holds) << entry.dump();
  EXPECT_EQ(entry["prefetch"], prefetch.value_or(32)) << entry.dump();
  // The slow one finishes: acks in one notification, and nothing is owed anywhere.
  slow.send({{"jsonrpc", "2.0"}, {"method", "ack"}, {"params", {{"seqs", held}}}});
  Json after = status_until(raiser, [](const Json& st) {
    for (const Json& c : st["clients_detail"]) {
      if (c["unacked"] != 0) return false;
    }
    return st["backlog"] == 0;
  });
  for (const Json& c : after["clients_detail"]) EXPECT_EQ(c["unacked"], 0) << after.dump();
}

TEST_F(WorkersTest, WithPrefetchOneAStuckWorkerHoldsOneEventAndTheFastOneTakesTheRest) {
  split_between_a_stuck_and_a_fast_worker(*this, 1, 1);
}

TEST_F(WorkersTest, WithTheDefaultCreditAStuckWorkerHoldsLimitsPrefetchEvents) {
  split_between_a_stuck_and_a_fast_worker(*this, std::nullopt, 32);
}

TEST_F(WorkersTest, LimitsPrefetchSetsTheDefaultCredit) {
  start(R"Y(
limits: {prefetch: 5}
signals:
  28: {name: work, handlers: [{target: subscriber}]}
)Y");
  LineClient w = connect();
  ASSERT_TRUE(w.call("subscribe", {{"signals", {"work"}}, {"ack", true}}).contains("result"));
  LineClient raiser = connect();
  raise_many(raiser, "work", 8);
  Json st = status_until(raiser, [](const Json& s) { return s["backlog"] == 3; });
  EXPECT_EQ(st["backlog"], 3) << st.dump();
  Json entry = client_entry(raiser, [](const Json& c) { return c["unacked"] != 0; });
  EXPECT_EQ(entry["prefetch"], 5);
  EXPECT_EQ(entry["unacked"], 5);
  // Bad values are refused with what is wrong.
  for (const Json& bad : {Json(0), Json(65537), Json("ten"), Json(-1)}) {
    Json r = w.call("subscribe", {{"signals", {"work"}}, {"ack", true}, {"prefetch", bad}});
    EXPECT_EQ(r["error"]["code"], -32602) << r.dump();
  }
  Json no_ack = w.call("subscribe", {{"signals", {"work"}}, {"prefetch", 2}});
  EXPECT_EQ(no_ack["error"]["code"], -32602) << no_ack.dump();
}

TEST_F(WorkersTest, AWorkerKilledWithSigkillHoldingItsFullCreditLosesNothing) {
  Holder holder(sock, 28, /*acks=*/0, /*prefetch=*/8);
  ASSERT_TRUE(holder.expect("subscribed", deadline_in(kWait))) << "the python worker did not start";
  LineClient raiser = connect();
  std::vector<std::uint64_t> seqs = raise_many(raiser, "work", 20);
  ASSERT_EQ(seqs.size(), 20u);
  for (int i = 0; i < 8; ++i) {
    ASSERT_TRUE(holder.expect("got " + std::to_string(seqs[static_cast<std::size_t>(i)]),
                              deadline_in(kWait)))
        << daemon->log();
  }
  Json st = status_until(raiser, [](const Json& s) { return s["backlog"] == 12; });
  ASSERT_EQ(st["backlog"], 12) << "the rest wait for credit: " << st.dump();

  LineClient heir = connect();
  ASSERT_TRUE(heir.call("subscribe", {{"signals", {"work"}}, {"ack", true}, {"prefetch", 100}})
                  .contains("result"));
  std::map<std::uint64_t, int> delivery;  // seq -> its delivery number
  auto take = [&](int n) {
    for (int i = 0; i < n; ++i) {
      auto ev = params_of(heir.next_notification(deadline_in(kWait)));
      ASSERT_TRUE(ev.is_object()) << "only " << delivery.size() << " of 20\n" << daemon->log();
      EXPECT_TRUE(delivery.emplace(ev["seq"], ev["delivery"]).second) << "twice: " << ev.dump();
      heir.send({{"jsonrpc", "2.0"}, {"method", "ack"}, {"params", {{"seq", ev["seq"]}}}});
    }
  };
  take(12);  // the backlog, at once
  ::kill(holder.pid, SIGKILL);
  ::waitpid(holder.pid, nullptr, 0);
  holder.pid = -1;
  take(8);  // what the dead one held
  ASSERT_EQ(delivery.size(), 20u);
  for (std::size_t i = 0; i < 20; ++i) {
    EXPECT_EQ(delivery[seqs[i]], i < 8 ? 2 : 1) << "seq " << seqs[i];
  }
  EXPECT_EQ(heir.next_notification(deadline_in(100ms)), std::nullopt);
  Json after = status_until(raiser, [](const Json& s) {
    return s["clients"] == 2 && s["clients_detail"][0]["unacked"] == 0 &&
           s["clients_detail"][1]["unacked"] == 0;
  });
  EXPECT_EQ(after["clients"], 2) << after.dump();
}

TEST_F(WorkersTest, ANackHandsTheEventToTheOtherWorkerAtOnce) {
  LineClient a = connect();
  LineClient b = connect();
  for (LineClient* w : {&a, &b}) {
    ASSERT_TRUE(w->call("subscribe", {{"signals", {"work"}}, {"ack", true}, {"prefetch", 1}})
                    .contains("result"));
  }
  LineClient raiser = connect();
  std::uint64_t seq = raiser.call("raise", {{"signal", "work"}, {"payload", "x"}})["result"]["seq"];
  auto first = params_of(a.next_notification(deadline_in(kWait)));
  ASSERT_EQ(first["seq"], seq) << "the first connected worker gets the first event";
  EXPECT_EQ(first["delivery"], 1);
  EXPECT_EQ(a.call("nack", {{"seq", seq}})["result"], Json::object());
  auto second = params_of(b.next_notification(deadline_in(kWait)));
  EXPECT_EQ(second["seq"], seq);
  EXPECT_EQ(second["delivery"], 2);
  EXPECT_EQ(second["redelivered"], true);
  EXPECT_EQ(second["payload"], "x");
  EXPECT_EQ(b.call("ack", {{"seq", seq}})["result"], Json::object());
  EXPECT_EQ(a.call("nack", {{"seq", seq}})["error"]["code"], -32005) << "a no longer holds it";
  Json bad = a.call("nack", {{"seq", seq}, {"requeue", "yes"}});
  EXPECT_EQ(bad["error"]["code"], -32602) << bad.dump();
  EXPECT_EQ(a.call("ack", Json::object())["error"]["code"], -32602);
}

TEST_F(WorkersTest, AnEventNackedMaxDeliveriesTimesLandsOnTheDeadLetterWithTheOriginal) {
  LineClient watcher = connect();
  ASSERT_TRUE(watcher.call("subscribe", {{"signals", {"jobs-failed"}}}).contains("result"));
  LineClient w = connect();
  ASSERT_TRUE(w.call("subscribe", {{"signals", {"jobs"}}, {"ack", true}}).contains("result"));
  LineClient raiser = connect();
  std::uint64_t seq =
      raiser.call("raise", {{"signal", "jobs"}, {"payload", "poison \"pill\""}})["result"]["seq"];
  for (int delivery = 1; delivery <= 3; ++delivery) {
    auto ev = params_of(w.next_notification(deadline_in(kWait)));
    ASSERT_EQ(ev["seq"], seq) << ev.dump();
    EXPECT_EQ(ev["delivery"], delivery);
    // As a notification, the way a worker's runtime sends it: no reply comes.
    w.send({{"jsonrpc", "2.0"}, {"method", "nack"}, {"params", {{"seq", seq}}}});
  }
  auto dl = params_of(watcher.next_notification(deadline_in(kWait)));
  ASSERT_TRUE(dl.is_object()) << daemon->log();
  EXPECT_EQ(dl["name"], "jobs-failed");
  EXPECT_EQ(dl["source"], (Json{{"kind", "dead_letter"}, {"id", "jobs"}}));
  Json p = Json::parse(dl["payload"].get<std::string>());
  EXPECT_EQ(p["deliveries"], 3);
  EXPECT_EQ(p["reason"], "nack");
  EXPECT_EQ(p["event"]["seq"], seq);
  EXPECT_EQ(p["event"]["name"], "jobs");
  EXPECT_EQ(p["event"]["payload"], "poison \"pill\"");
  EXPECT_EQ(w.next_notification(deadline_in(100ms)), std::nullopt) << "it is not delivered again";
  daemon->expect_line("dead-lettered to signal 27 after 3 deliveries");
  Json table = raiser.call("table")["result"];
  for (const Json& e : table["signals"]) {
    if (e["signal"] == 26) {
      EXPECT_EQ(e["failed"], 1) << e.dump();
      EXPECT_EQ(e["max_deliveries"], 3);
      EXPECT_EQ(e["dead_letter"], 27);
    }
  }
  // requeue: false dead-letters at once.
  std::uint64_t seq2 = raiser.call("raise", {{"signal", "jobs"}})["result"]["seq"];
  ASSERT_EQ(params_of(w.next_notification(deadline_in(kWait)))["seq"], seq2);
  EXPECT_EQ(w.call("nack", {{"seq", seq2}, {"requeue", false}})["result"], Json::object());
  auto dl2 = params_of(watcher.next_notification(deadline_in(kWait)));
  Json p2 = Json::parse(dl2["payload"].get<std::string>());
  EXPECT_EQ(p2["reason"], "rejected");
  EXPECT_EQ(p2["deliveries"], 1);
}

TEST_F(WorkersTest, BatchedAcksAreSettledTogetherAndNameWhatWasNotHeld) {
  LineClient w = connect();
  ASSERT_TRUE(w.call("subscribe", {{"signals", {"work"}}, {"ack", true}, {"prefetch", 10}})
                  .contains("result"));
  LineClient raiser = connect();
  std::vector<std::uint64_t> seqs = raise_many(raiser, "work", 30);
  std::vector<std::uint64_t> got;
  for (int round = 0; round < 3; ++round) {
    std::vector<std::uint64_t> batch;
    for (int i = 0; i < 10; ++i) {
      auto ev = params_of(w.next_notification(deadline_in(kWait)));
      ASSERT_TRUE(ev.is_object()) << "round " << round << ", event " << i << "\n"
                                  << daemon->log();
      batch.push_back(ev["seq"]);
    }
    EXPECT_EQ(w.next_notification(deadline_in(50ms)), std::nullopt) << "more than its credit";
    got.insert(got.end(), batch.begin(), batch.end());
    if (round < 2) {
      w.send({{"jsonrpc", "2.0"}, {"method", "ack"}, {"params", {{"seqs", batch}}}});
    } else {
      batch.push_back(999999);
      Json r = w.call("ack", {{"seqs", batch}});
      EXPECT_EQ(r["result"]["settled"], 10) << r.dump();
      EXPECT_EQ(r["result"]["not_held"], Json::array({999999})) << r.dump();
    }
  }
  EXPECT_EQ(got, seqs);
  Json table = raiser.call("table")["result"];
  for (const Json& e : table["signals"]) {
    if (e["signal"] == 28) {
      EXPECT_EQ(e["delivered"], 30) << e.dump();
    }
  }
}

}  // namespace
}  // namespace tocsin::testing
