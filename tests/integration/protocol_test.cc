// The socket protocol against the real daemon (SPEC §6, §7; docs/protocol.md): delivery rules,
// acks and redelivery after kill -9, overflow notices, waiters, bad input, limits, ACLs.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <set>

#include "fakes/daemon_process.h"
#include "fakes/holder.h"
#include "fakes/line_client.h"
#include "fakes/temp_dir.h"

extern char** environ;

namespace tocsin::testing {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kConfig = R"Y(
limits: {subscriber_queue: 100, clients: 64, payload_bytes: 1000, ack_timeout: 30s}
signals:
  5: {name: news, handlers: [{target: subscribers}]}
  7: {name: loose}
  8: {name: handled, handlers: [{log: debug}]}
  26: {name: jobs, handlers: [{target: subscriber}]}
  27: {name: named, handlers: [{target: "subscriber:alice"}]}
  28: {name: farm, handlers: [{target: "group:builders"}]}
  40:
    name: guarded
    handlers: [{target: subscribers}]
    acl: {raise: ["@tocsin-test-nobody-group"], subscribe: [tocsin-test-nobody]}
)Y";

struct ProtocolTest : ::testing::Test {
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


  // The daemon still answers.
  void expect_alive() {
    LineClient c = connect();
    Json r = c.call("version");
    EXPECT_EQ(r["result"]["protocol"], 1) << r.dump();
  }
};

TEST_F(ProtocolTest, RaiseReachesASubscriberWithItsPayload) {
  LineClient sub = connect();
  ASSERT_TRUE(sub.call("subscribe", {{"signals", {"news"}}})["result"].contains("subscription"));
  LineClient raiser = connect();
  raiser.call("hello", {{"name", "raiser-1"}});
  Json r = raiser.call("raise", {{"signal", "news"}, {"payload", "hello \"world\"\n\u00e9"}});
  std::uint64_t seq = r["result"]["seq"];
  auto ev = params_of(sub.next_notification(deadline_in(kWait)));
  EXPECT_EQ(ev["seq"], seq);
  EXPECT_EQ(ev["signal"], 5);
  EXPECT_EQ(ev["name"], "news");
  EXPECT_EQ(ev["payload"], "hello \"world\"\n\u00e9");
  EXPECT_EQ(ev["source"]["kind"], "raise");
  EXPECT_EQ(ev["source"]["id"], "raiser-1");
  EXPECT_EQ(ev["iteration"], 0);
  EXPECT_FALSE(ev.contains("ack"));
}

// event_params "by-position": the same notification with its params as an array
// [seq, signal, name, source kind, source id, time, iteration, payload, delivery]; per
// connection, so a broadcast event is encoded once in each form and both subscribers get theirs.
TEST_F(ProtocolTest, EventParamsByPositionAreTheSameFieldsAsAnArray) {
  LineClient by_name = connect();
  ASSERT_TRUE(by_name.call("subscribe", {{"signals", {"news"}}})["result"].contains("subscription"));
  LineClient by_position = connect();
  Json sub = by_position.call("subscribe", {{"signals", {"news", "jobs"}},
                                            {"ack", true},
                                            {"event_params", "by-position"}});
  ASSERT_TRUE(sub["result"].contains("subscription")) << sub.dump();
  LineClient raiser = connect();
  raiser.call("hello", {{"name", "raiser-2"}});
  std::uint64_t seq = raiser.call("raise", {{"signal", "news"}, {"payload", "a \"b\"\n"}})["result"]["seq"];

  Json object = params_of(by_name.next_notification(deadline_in(kWait)));
  auto note = by_position.next_notification(deadline_in(kWait));
  ASSERT_TRUE(note) << "no event by position";
  EXPECT_EQ((*note)["jsonrpc"], "2.0");
  EXPECT_EQ((*note)["method"], "signal");
  const Json& a = (*note)["params"];
  ASSERT_TRUE(a.is_array()) << note->dump();
  ASSERT_EQ(a.size(), 9u) << a.dump();
  EXPECT_EQ(a[0], seq);
  EXPECT_EQ(a[1], 5);
  EXPECT_EQ(a[2], "news");
  EXPECT_EQ(a[3], "raise");
  EXPECT_EQ(a[4], "raiser-2");
  EXPECT_EQ(a[5], object["time"]);
  EXPECT_EQ(a[6], 0);
  EXPECT_EQ(a[7], "a \"b\"\n");
  EXPECT_EQ(a[8], 0) << "a broadcast event is owed no ack";
  EXPECT_EQ(object["seq"], seq);
  EXPECT_EQ(object["payload"], "a \"b\"\n");

  // A one-of event carries its delivery, from 1; acked as usual.
  std::uint64_t job = raiser.call("raise", {{"signal", "jobs"}})["result"]["seq"];
  auto j = by_position.next_notification(deadline_in(kWait));
  ASSERT_TRUE(j);
  EXPECT_EQ((*j)["params"][0], job);
  EXPECT_EQ((*j)["params"][8], 1);
  EXPECT_EQ(by_position.call("ack", {{"seq", job}})["result"], Json::object());

  // Back to by-name with a later subscribe; a bad value is refused and changes nothing.
  Json bad = by_position.call("subscribe", {{"signals", {"news"}}, {"event_params", "array"}});
  EXPECT_EQ(bad["error"]["code"], -32602) << bad.dump();
  by_position.call("subscribe", {{"signals", {"news"}}, {"event_params", "by-name"}});
  raiser.call("raise", {{"signal", "news"}});
  auto back = by_position.next_notification(deadline_in(kWait));
  ASSERT_TRUE(back);
  EXPECT_TRUE((*back)["params"].is_object()) << back->dump();
}

TEST_F(ProtocolTest, BroadcastReachesEverySubscriberInSeqOrder) {
  std::vector<LineClient> subs;
  for (int i = 0; i < 5; ++i) {
    subs.push_back(connect());
    subs.back().call("subscribe", {{"signals", {5}}});
  }
  LineClient raiser = connect();
  for (int i = 0; i < 20; ++i) raiser.call("raise", {{"signal", 5}, {"payload", std::to_string(i)}});
  for (auto& s : subs) {
    std::uint64_t last = 0;
    for (int i = 0; i < 20; ++i) {
      auto ev = params_of(s.next_notification(deadline_in(kWait)));
      ASSERT_EQ(ev["payload"], std::to_string(i));
      EXPECT_GT(ev["seq"].get<std::uint64_t>(), last);
      last = ev["seq"];
    }
  }
}

TEST_F(ProtocolTest, OneOfGoesRoundRobinAndOnlyToAckingSubscriptions) {
  std::vector<LineClient> workers;
  for (int i = 0; i < 3; ++i) {
    workers.push_back(connect());
    workers.back().call("subscribe", {{"signals", {"jobs"}}, {"ack", true}});
  }
  LineClient listener = connect();  // no ack: a listener never takes one-of work
  listener.call("subscribe", {{"signals", {"jobs"}}});
  LineClient raiser = connect();
  for (int i = 0; i < 6; ++i) raiser.call("raise", {{"signal", "jobs"}, {"payload", std::to_string(i)}});
  for (int w = 0; w < 3; ++w) {
    for (int k = 0; k < 2; ++k) {
      auto ev = params_of(workers[w].next_notification(deadline_in(kWait)));
      EXPECT_EQ(ev["payload"], std::to_string(w + 3 * k)) << "worker " << w;
      EXPECT_EQ(ev["ack"], true);
      EXPECT_EQ(workers[w].call("ack", {{"seq", ev["seq"]}})["result"], Json::object());
    }
  }
  EXPECT_EQ(listener.next_notification(deadline_in(0ms)), std::nullopt);
  // Acked twice: the second is an error.
  Json again = workers[0].call("ack", {{"seq", 1}});
  EXPECT_EQ(again["error"]["code"], -32005) << again.dump();
}

TEST_F(ProtocolTest, UnackedEventsOfASubscriberKilledWithSigkillAreRedeliveredExactlyOnce) {
  Holder holder(sock, 26, /*acks=*/4);
  ASSERT_TRUE(holder.expect("subscribed", deadline_in(kWait))) << "the python subscriber did not start";
  LineClient raiser = connect();
  std::vector<std::uint64_t> seqs;
  for (int i = 0; i < 10; ++i) {
    seqs.push_back(raiser.call("raise", {{"signal", "jobs"}})["result"]["seq"]);
  }
  for (auto s : seqs) ASSERT_TRUE(holder.expect("got " + std::to_string(s), deadline_in(kWait)));
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(holder.expect("acked " + std::to_string(seqs[i]), deadline_in(kWait)));
  }

  LineClient heir = connect();
  heir.call("subscribe", {{"signals", {26}}, {"ack", true}});
  ::kill(holder.pid, SIGKILL);
  ::waitpid(holder.pid, nullptr, 0);
  holder.pid = -1;

  std::set<std::uint64_t> got;
  for (int i = 0; i < 6; ++i) {
    auto ev = params_of(heir.next_notification(deadline_in(kWait)));
    ASSERT_TRUE(ev.is_object()) << "only " << got.size() << " of 6 redelivered\n" << daemon->log();
    EXPECT_EQ(ev["redelivered"], true);
    EXPECT_TRUE(got.insert(ev["seq"].get<std::uint64_t>()).second) << "delivered twice";
    heir.call("ack", {{"seq", ev["seq"]}});
  }
  EXPECT_EQ(got, std::set<std::uint64_t>(seqs.begin() + 4, seqs.end()));
  // Nothing acked comes back, nothing else is pending.
  EXPECT_EQ(heir.next_notification(deadline_in(200ms)), std::nullopt);
  Json status = heir.call("status")["result"];
  for (const auto& c : status["clients_detail"]) EXPECT_EQ(c["unacked"], 0) << status.dump();
}

TEST_F(ProtocolTest, AMissedAckDeadlineRedeliversToAnotherSubscriber) {
  dir.write("short-ack.yaml", R"Y(
limits: {ack_timeout: 200ms}
signals:
  26: {name: jobs, handlers: [{target: subscriber}]}
)Y");
  DaemonProcess d({"--config", dir.file("short-ack.yaml"), "--socket", dir.file("b.sock")});
  d.expect_ready();
  LineClient lazy(dir.file("b.sock"));
  lazy.call("subscribe", {{"signals", {26}}, {"ack", true}});
  LineClient raiser(dir.file("b.sock"));
  std::uint64_t s = raiser.call("raise", {{"signal", 26}})["result"]["seq"];
  EXPECT_EQ(params_of(lazy.next_notification(deadline_in(kWait)))["seq"], s);
  LineClient diligent(dir.file("b.sock"));
  diligent.call("subscribe", {{"signals", {26}}, {"ack", true}});
  auto ev = params_of(diligent.next_notification(deadline_in(kWait)));  // after 200ms
  EXPECT_EQ(ev["seq"], s);
  EXPECT_EQ(ev["redelivered"], true);
  EXPECT_EQ(diligent.call("ack", {{"seq", s}})["result"], Json::object());
  EXPECT_EQ(lazy.call("ack", {{"seq", s}})["error"]["code"], -32005);
  d.expect_line("did not ack within 200ms");
}

TEST_F(ProtocolTest, OneOfWaitsInTheBacklogUntilACandidateComes) {
  LineClient raiser = connect();
  std::uint64_t s1 = raiser.call("raise", {{"signal", "named"}, {"payload", "for alice"}})["result"]["seq"];
  std::uint64_t s2 = raiser.call("raise", {{"signal", "farm"}, {"payload", "for a builder"}})["result"]["seq"];
  EXPECT_EQ(raiser.call("status")["result"]["backlog"], 2);

  LineClient bob = connect();
  bob.call("hello", {{"name", "bob"}, {"group", "builders"}});
  bob.call("subscribe", {{"signals", {27, 28}}, {"ack", true}});
  auto ev = params_of(bob.next_notification(deadline_in(kWait)));
  EXPECT_EQ(ev["seq"], s2);  // the group event; the named one is not for bob
  EXPECT_EQ(bob.next_notification(deadline_in(100ms)), std::nullopt);

  LineClient alice = connect();
  alice.call("hello", {{"name", "alice"}});
  alice.call("subscribe", {{"signals", {"named"}}, {"ack", true}});
  ev = params_of(alice.next_notification(deadline_in(kWait)));
  EXPECT_EQ(ev["seq"], s1);
  EXPECT_EQ(ev["payload"], "for alice");
  // Names are unique.
  LineClient other = connect();
  EXPECT_EQ(other.call("hello", {{"name", "alice"}})["error"]["code"], -32602);
}

TEST_F(ProtocolTest, ASubscriberThatNeverReadsGetsTheExactDroppedRangeAndOthersGetEverything) {
  constexpr int kEvents = 20000;
  LineClient slow = connect();
  slow.call("subscribe", {{"signals", {"news"}}});
  LineClient fast = connect();
  fast.call("subscribe", {{"signals", {"news"}}});
  LineClient raiser = connect();
  std::vector<std::uint64_t> fast_seqs;
  std::uint64_t first = 0;
  std::uint64_t last = 0;
  for (int batch = 0; batch < kEvents / 50; ++batch) {
    Json reqs = Json::array();
    for (int i = 0; i < 50; ++i) {
      reqs.push_back({{"jsonrpc", "2.0"}, {"id", batch * 50 + i}, {"method", "raise"},
                      {"params", {{"signal", 5}, {"payload", std::string(100, 'x')}}}});
    }
    raiser.send(reqs);
    auto replies = raiser.read(deadline_in(kWait));
    ASSERT_TRUE(replies && replies->size() == 50);
    if (batch == 0) first = (*replies)[0]["result"]["seq"];
    last = (*replies)[49]["result"]["seq"];
    // The fast subscriber keeps up (its queue holds 100).
    while (fast_seqs.size() < static_cast<std::size_t>((batch + 1) * 50)) {
      auto ev = fast.next_notification(deadline_in(kWait));
      ASSERT_TRUE(ev && (*ev)["method"] == "signal") << (ev ? ev->dump() : "timeout");
      fast_seqs.push_back((*ev)["params"]["seq"]);
    }
  }
  ASSERT_EQ(fast_seqs.size(), static_cast<std::size_t>(kEvents));
  for (std::size_t i = 0; i < fast_seqs.size(); ++i) ASSERT_EQ(fast_seqs[i], first + i);

  // Now the slow one reads everything: events, exactly one overflow notice, events.
  std::set<std::uint64_t> slow_seqs;
  std::vector<Json> overflows;
  std::uint64_t prev = 0;
  while (true) {
    auto msg = slow.next_notification(deadline_in(1000ms));
    if (!msg) break;
    if ((*msg)["method"] == "overflow") {
      overflows.push_back((*msg)["params"]);
      continue;
    }
    std::uint64_t s = (*msg)["params"]["seq"];
    EXPECT_GT(s, prev);
    prev = s;
    slow_seqs.insert(s);
    if (s == last) break;
  }
  ASSERT_FALSE(overflows.empty()) << "no overflow notice";
  std::uint64_t dropped = 0;
  for (const auto& o : overflows) {
    dropped += o["dropped"].get<std::uint64_t>();
    // Drop-oldest on one signal: each notice names a contiguous range that was not delivered.
    std::uint64_t a = o["first_seq"];
    std::uint64_t b = o["last_seq"];
    EXPECT_EQ(b - a + 1, o["dropped"].get<std::uint64_t>()) << o.dump();
    for (std::uint64_t s = a; s <= b; ++s) EXPECT_FALSE(slow_seqs.contains(s)) << s;
  }
  EXPECT_EQ(slow_seqs.size() + dropped, static_cast<std::size_t>(kEvents))
      << "events neither delivered nor reported";
  Json status = raiser.call("table")["result"]["signals"];
  for (const auto& s : status) {
    if (s["signal"] == 5) {
      EXPECT_EQ(s["dropped"], dropped) << s.dump();
    }
  }
}

TEST_F(ProtocolTest, WaitGetsOnlyUnhandledSignalsAndTimesOut) {
  LineClient waiter = connect();
  LineClient raiser = connect();
  Json timeout = waiter.call("wait", {{"signal", "loose"}, {"timeout", "50ms"}});
  EXPECT_TRUE(timeout.contains("result") && timeout["result"].is_null()) << timeout.dump();

  // A wait without timeout, for any signal: a handled signal does not reach it, an unhandled one
  // does.
  waiter.send({{"jsonrpc", "2.0"}, {"id", "w1"}, {"method", "wait"}, {"params", Json::object()}});
  raiser.call("raise", {{"signal", "handled"}});
  std::uint64_t s = raiser.call("raise", {{"signal", "loose"}, {"payload", "p"}})["result"]["seq"];
  auto reply = waiter.read(deadline_in(kWait));
  ASSERT_TRUE(reply);
  EXPECT_EQ((*reply)["id"], "w1");
  EXPECT_EQ((*reply)["result"]["seq"], s);
  EXPECT_EQ((*reply)["result"]["payload"], "p");
  Json table = raiser.call("table")["result"]["signals"];
  for (const auto& e : table) {
    if (e["signal"] == 7) {
      EXPECT_EQ(e["unhandled"], 0) << "the waiter took it";
    }
  }
}

TEST_F(ProtocolTest, BadInputGetsTheSpecifiedErrorAndTheConnectionStaysUsable) {
  LineClient c = connect();
  auto expect_error = [&](const std::string& raw, int code) {
    c.send_raw(raw + "\n");
    auto r = c.read(deadline_in(kWait));
    ASSERT_TRUE(r) << "no answer to " << raw;
    EXPECT_EQ((*r)["error"]["code"], code) << raw << " -> " << r->dump();
    EXPECT_EQ(c.call("version")["result"]["protocol"], 1) << "unusable after " << raw;
  };
  expect_error("{not json", -32700);
  expect_error("[1,2", -32700);
  expect_error(R"({"jsonrpc":"2.0","id":1,"method":"no-such-method"})", -32601);
  expect_error(R"({"jsonrpc":"1.0","id":1,"method":"version"})", -32600);
  expect_error(R"({"jsonrpc":"2.0","id":1})", -32600);
  expect_error(R"([])", -32600);
  expect_error(R"("just a string")", -32600);
  expect_error(R"({"jsonrpc":"2.0","id":1,"method":"raise","params":[5]})", -32602);
  expect_error(R"({"jsonrpc":"2.0","id":1,"method":"raise","params":{"signal":"5x"}})", -32602);
  expect_error(R"({"jsonrpc":"2.0","id":1,"method":"raise","params":{"signal":300}})", -32602);
  expect_error(R"({"jsonrpc":"2.0","id":1,"method":"raise","params":{"signal":true}})", -32602);
  expect_error(R"({"jsonrpc":"2.0","id":1,"method":"raise","params":{"signal":"nope"}})", -32003);
  expect_error(R"({"jsonrpc":"2.0","id":1,"method":"raise","params":{"signal":5,"payload":7}})",
               -32602);
  expect_error(R"({"jsonrpc":"2.0","id":1,"method":"raise","params":{"signal":5,"payload":")" +
                   std::string(1001, 'x') + "\"}}",
               -32004);
  expect_error(R"({"jsonrpc":"2.0","id":1,"method":"subscribe","params":{"signals":5}})", -32602);
  expect_error(R"({"jsonrpc":"2.0","id":1,"method":"ack","params":{"seq":"x"}})", -32602);
  expect_error(R"({"jsonrpc":"2.0","id":1,"method":"wait","params":{"timeout":"5 parsecs"}})",
               -32602);
  expect_error(std::string(100000, '[') + std::string(100000, ']'), -32700);
  // Deep but within the limit: accepted.
  Json deep = c.call("version", {{"a", Json::parse(std::string(40, '[') + std::string(40, ']'))}});
  EXPECT_TRUE(deep.contains("result")) << deep.dump();
  // A notification gets no reply, even when it fails.
  c.send_raw(R"({"jsonrpc":"2.0","method":"no-such-method"})" "\n");
  EXPECT_TRUE(c.call("version").contains("result"));
  EXPECT_TRUE(c.notifications.empty()) << "a notification was answered";
  // A batch mixing good and bad.
  c.send_raw(R"([{"jsonrpc":"2.0","id":"a","method":"version"},{"jsonrpc":"2.0","id":"b","method":"x"},{"jsonrpc":"2.0","method":"version"}])" "\n");
  auto batch = c.read(deadline_in(kWait));
  ASSERT_TRUE(batch && batch->is_array()) << (batch ? batch->dump() : "timeout");
  ASSERT_EQ(batch->size(), 2u);
  EXPECT_EQ((*batch)[0]["id"], "a");
  EXPECT_EQ((*batch)[1]["error"]["code"], -32601);
}

TEST_F(ProtocolTest, ABatchOfRaisesWithOneBadRequestRaisesTheGoodOnesExactlyOnce) {
  LineClient sub = connect();
  sub.call("subscribe", {{"signals", {5}}});
  LineClient c = connect();
  c.send_raw(R"([{"jsonrpc":"2.0","id":1,"method":"raise","params":{"signal":5,"payload":"a"}},)"
             R"({"jsonrpc":"2.0","id":2,"method":"raise","params":{"signal":"nope"}},)"
             R"({"jsonrpc":"2.0","id":3,"method":"raise","params":{"signal":5,"payload":"b"}}])"
             "\n");
  auto r = c.read(deadline_in(kWait));
  ASSERT_TRUE(r && r->is_array() && r->size() == 3) << (r ? r->dump() : "timeout");
  EXPECT_TRUE((*r)[0].contains("result"));
  EXPECT_EQ((*r)[1]["error"]["code"], -32003);
  EXPECT_TRUE((*r)[2].contains("result"));
  std::vector<std::string> payloads;
  for (int i = 0; i < 2; ++i) {
    payloads.push_back(params_of(sub.next_notification(deadline_in(kWait)))["payload"]);
  }
  EXPECT_EQ(payloads, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(sub.next_notification(deadline_in(100ms)), std::nullopt) << "raised twice";
}

TEST_F(ProtocolTest, ALineOverTheLimitIsRefusedAndClosed) {
  LineClient c = connect();
  std::string huge = R"({"jsonrpc":"2.0","id":1,"method":"raise","params":{"signal":5,"payload":")" +
                     std::string(2 << 20, 'x') + "\"}}\n";
  c.send_raw(huge);
  auto r = c.read(deadline_in(kWait));
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)["error"]["code"], -32007) << r->dump();
  EXPECT_EQ(c.read_line(deadline_in(kWait)), std::nullopt);
  EXPECT_TRUE(c.eof()) << "the connection should be closed";
  expect_alive();
}

TEST_F(ProtocolTest, HalfMessagesAndAThousandConnectionsLeakNothing) {
  expect_alive();
  int before = daemon->open_fds();
  for (int i = 0; i < 1000; ++i) {
    LineClient c = connect();
    ASSERT_TRUE(c.connected());
    if (i % 3 == 0) c.send_raw(R"({"jsonrpc":"2.0","id":1,"meth)");  // half, then gone
    if (i % 3 == 1) c.send_raw(R"({"jsonrpc":"2.0","id":1,"method":"subscribe","params":{"signals":["news"]}})" "\n");
  }
  // The daemon closes its side as it notices each disconnect; wait until the count is back.
  auto deadline = deadline_in(kWait);
  int after = daemon->open_fds();
  while (after > before && std::chrono::steady_clock::now() < deadline) {
    LineClient probe = connect();  // a round trip lets the reactor process the closes
    probe.call("version");
    probe.close();
    after = daemon->open_fds();
  }
  EXPECT_LE(after, before) << "fds leaked";
  // The last probe's close may still be on its way to the reactor: wait for the count to settle.
  LineClient c = connect();
  EXPECT_EQ(status_until(c, [](const Json& st) { return st["clients"] == 1; })["clients"], 1)
      << "connections still counted after their clients left";
}

TEST_F(ProtocolTest, TooManyClientsAreRefusedWithAnError) {
  std::vector<LineClient> held;
  for (int i = 0; i < 64; ++i) {
    held.push_back(connect());
    held.back().call("version");
  }
  LineClient extra = connect();
  auto r = extra.read(deadline_in(kWait));
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)["error"]["code"], -32002) << r->dump();
  EXPECT_EQ(extra.read_line(deadline_in(kWait)), std::nullopt);
  EXPECT_TRUE(extra.eof());
  held.pop_back();
  // Once the daemon has noticed the close, there is room for one more.
  status_until(held.front(), [](const Json& st) { return st["clients"] == 63; });
  LineClient again = connect();
  EXPECT_TRUE(again.call("version").contains("result"));
}

TEST_F(ProtocolTest, AclsDenyRaiseAndSubscribeAndAreLogged) {
  LineClient c = connect();
  EXPECT_EQ(c.call("raise", {{"signal", "guarded"}})["error"]["code"], -32001);
  EXPECT_EQ(c.call("subscribe", {{"signals", {"guarded"}}})["error"]["code"], -32001);
  Json all = c.call("subscribe", {{"signals", "*"}})["result"];
  EXPECT_EQ(all["excluded"], Json::array({40})) << all.dump();
  daemon->expect_line("denied: raise 40");
}

TEST_F(ProtocolTest, RegisterAndUnregisterAtRunTime) {
  LineClient admin = connect();  // the tests run as root: an admin
  LineClient sub = connect();
  sub.call("subscribe", {{"signals", {7}}});
  EXPECT_EQ(admin.call("register", {{"signal", "loose"}, {"target", "subscribers"}})["result"],
            Json::object());
  std::uint64_t s = admin.call("raise", {{"signal", 7}})["result"]["seq"];
  EXPECT_EQ(params_of(sub.next_notification(deadline_in(kWait)))["seq"], s);
  Json table = admin.call("table")["result"]["signals"];
  bool listed = false;
  for (const auto& e : table) {
    if (e["signal"] == 7) listed = e["handlers"] == Json::array({"target[subscribers]"});
  }
  EXPECT_TRUE(listed) << table.dump();
  EXPECT_EQ(admin.call("register", {{"signal", 7}, {"target", "subscribers"}})["error"]["code"],
            -32602);
  EXPECT_EQ(admin.call("register", {{"signal", 7}, {"target", "everyone"}})["error"]["code"],
            -32602);
  EXPECT_EQ(admin.call("unregister", {{"signal", 7}, {"target", "subscribers"}})["result"],
            Json::object());
  EXPECT_EQ(admin.call("unregister", {{"signal", 5}, {"target", "subscribers"}})["error"]["code"],
            -32005);  // from the config file: not removable at run time
  admin.call("raise", {{"signal", 7}});
  EXPECT_EQ(sub.next_notification(deadline_in(200ms)), std::nullopt);
  // Run-time targets survive a reload.
  admin.call("register", {{"signal", 7}, {"target", "subscribers"}});
  EXPECT_EQ(admin.call("reload")["result"], Json::object());
  s = admin.call("raise", {{"signal", 7}})["result"]["seq"];
  EXPECT_EQ(params_of(sub.next_notification(deadline_in(kWait)))["seq"], s);
}

TEST_F(ProtocolTest, SourcesFilterAndUnsubscribe) {
  LineClient sub = connect();
  Json r = sub.call("subscribe", {{"signals", {5}}, {"sources", {"posix", "alice"}}});
  std::uint64_t sid = r["result"]["subscription"];
  LineClient bob = connect();
  bob.call("hello", {{"name", "bob"}});
  LineClient alice = connect();
  alice.call("hello", {{"name", "alice"}});
  bob.call("raise", {{"signal", 5}, {"payload", "from bob"}});
  alice.call("raise", {{"signal", 5}, {"payload", "from alice"}});
  auto ev = params_of(sub.next_notification(deadline_in(kWait)));
  EXPECT_EQ(ev["payload"], "from alice");
  EXPECT_EQ(sub.call("unsubscribe", {{"subscription", sid}})["result"], Json::object());
  alice.call("raise", {{"signal", 5}});
  EXPECT_EQ(sub.next_notification(deadline_in(200ms)), std::nullopt);
  EXPECT_EQ(sub.call("unsubscribe", {{"subscription", sid}})["error"]["code"], -32005);
}

TEST_F(ProtocolTest, ReloadOverTheSocketReportsErrorsWithTheirLocation) {
  LineClient admin = connect();
  dir.write("tocsin.yaml", "signals:\n  5: {name: news, handlrs: []}\n");
  Json r = admin.call("reload");
  EXPECT_EQ(r["error"]["code"], -32006) << r.dump();
  EXPECT_NE(r["error"]["message"].get<std::string>().find("tocsin.yaml:2:"), std::string::npos)
      << r.dump();
  // The old table is still in force.
  LineClient sub = connect();
  EXPECT_TRUE(sub.call("subscribe", {{"signals", {"jobs"}}})["result"].contains("subscription"));
}

TEST_F(ProtocolTest, MetricsArePrometheusText) {
  LineClient c = connect();
  c.call("subscribe", {{"signals", {5}}});
  c.call("raise", {{"signal", 5}});
  std::string text = c.call("metrics")["result"]["text"];
  EXPECT_NE(text.find("# TYPE tocsin_signal_raised_total counter"), std::string::npos);
  EXPECT_NE(text.find("tocsin_signal_raised_total{signal=\"5\",name=\"news\"} 1"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("tocsin_clients 1"), std::string::npos) << text;
  EXPECT_NE(text.find("tocsin_subscriber_queue_depth{client="), std::string::npos) << text;
  EXPECT_NE(text.find("tocsin_handler_runs_total{signal=\"5\",index=\"0\","
                      "handler=\"target[subscribers]\"} 1"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("tocsin_handler_failures_total{signal=\"5\",index=\"0\","
                      "handler=\"target[subscribers]\"} 0"),
            std::string::npos)
      << text;
}

TEST_F(ProtocolTest, AStaleSocketIsReplacedALiveOneRefused) {
  // A second daemon on the same socket while the first runs: refused, the first keeps serving.
  DaemonProcess second({"--config", dir.file("tocsin.yaml"), "--socket", sock});
  auto status = second.wait_exit(deadline_in(kWait));
  ASSERT_TRUE(status);
  EXPECT_EQ(WEXITSTATUS(*status), 3);
  second.expect_line("another process is already listening on " + sock);
  expect_alive();
  // Killed without cleanup, the first leaves a stale socket file; a new daemon replaces it.
  ::kill(daemon->pid(), SIGKILL);
  daemon->wait_exit(deadline_in(kWait));
  start(kConfig);
  daemon->expect_line("replacing the stale socket");
  expect_alive();
}

TEST_F(ProtocolTest, SigtermFlushesSubscribersThenExits) {
  LineClient sub = connect();
  sub.call("subscribe", {{"signals", {5}}});
  LineClient raiser = connect();
  for (int i = 0; i < 50; ++i) raiser.call("raise", {{"signal", 5}});
  daemon->send(SIGTERM);
  int got = 0;
  while (sub.next_notification(deadline_in(kWait))) ++got;
  EXPECT_EQ(got, 50);
  EXPECT_TRUE(sub.eof());
  auto status = daemon->wait_exit(deadline_in(4000ms));
  ASSERT_TRUE(status);
  EXPECT_EQ(WEXITSTATUS(*status), 0);
}

}  // namespace
}  // namespace tocsin::testing
