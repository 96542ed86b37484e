// The Hub's delivery rules with a ManualClock and no sockets.
#include "dispatch/hub.h"

#include <gtest/gtest.h>


#include <nlohmann/json.hpp>

#include "fakes/manual_clock.h"

namespace tocsin {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;
using config::TargetHandler;
using config::TargetKind;

struct HubTest : ::testing::Test {
  testing::ManualClock clock;
  SignalStats stats;
  Hub hub{clock, stats};
  std::uint64_t seq = 0;
  std::map<ClientId, int> wakes;

  HubTest() { hub.set_limits({.queue = 4, .backlog = 3, .subscriptions = 2, .ack_timeout = 10s}); }

  ClientId client() {
    auto holder = std::make_shared<ClientId>(0);
    ClientId id = hub.connect([this, holder] { ++wakes[*holder]; });
    *holder = id;
    return id;
  }
  SubscriptionSpec spec(std::initializer_list<int> signals, bool ack = false) {
    SubscriptionSpec s;
    for (int n : signals) s.signals.set(static_cast<std::size_t>(n));
    s.ack = ack;
    return s;
  }
  EventPtr event(SignalId signal, SourceRef source = {SourceKind::raise, "t"}) {
    auto e = std::make_shared<Event>();
    e->seq = ++seq;
    e->signal = signal;
    e->source = std::move(source);
    e->time = clock.wall_now();
    return e;
  }
  // What pop() gives, parsed: {"seq": .., "ack": .., "redelivered": ..} or {"overflow": {..}}.
  std::vector<Json> drain(ClientId id) {
    std::vector<Json> out;
    while (auto item = hub.pop(id)) {
      if (item->kind == Outgoing::Kind::overflow) {
        out.push_back({{"overflow",
                        {item->overflow.dropped, item->overflow.first_seq,
                         item->overflow.last_seq}}});
      } else {
        EXPECT_EQ(item->line.view().back(), '\n');
        Json p = Json::parse(item->line.view())["params"];
        out.push_back({{"seq", p["seq"]},
                       {"ack", p.value("ack", false)},
                       {"redelivered", p.value("redelivered", false)}});
      }
    }
    return out;
  }
  std::vector<std::uint64_t> seqs(ClientId id) {
    std::vector<std::uint64_t> out;
    for (auto& j : drain(id)) {
      if (j.contains("seq")) out.push_back(j["seq"]);
    }
    return out;
  }
};

TEST_F(HubTest, BroadcastGoesOnceToEachMatchingClient) {
  ClientId a = client();
  ClientId b = client();
  ClientId c = client();
  ASSERT_TRUE(hub.subscribe(a, spec({5})).ok());
  ASSERT_TRUE(hub.subscribe(a, spec({5, 6})).ok());  // overlapping: still once
  ASSERT_TRUE(hub.subscribe(b, spec({5}, true)).ok());
  ASSERT_TRUE(hub.subscribe(c, spec({6})).ok());
  EXPECT_EQ(hub.broadcast(event(5)), 2u);
  EXPECT_EQ(seqs(a), std::vector<std::uint64_t>{1});
  EXPECT_EQ(seqs(b), std::vector<std::uint64_t>{1});
  EXPECT_EQ(seqs(c), std::vector<std::uint64_t>{});
  EXPECT_EQ(stats[5].delivered, 2u);  // counted as handed out for writing
  EXPECT_EQ(wakes[a], 1);
}

TEST_F(HubTest, FullQueueDropsOldestAndReportsTheRangeBeforeTheNextEvent) {
  ClientId slow = client();
  ASSERT_TRUE(hub.subscribe(slow, spec({5})).ok());
  for (int i = 0; i < 10; ++i) hub.broadcast(event(5));
  auto got = drain(slow);
  ASSERT_EQ(got.size(), 5u);
  EXPECT_EQ(got[0]["overflow"], Json::array({6, 1, 6}));
  EXPECT_EQ(got[1]["seq"], 7);
  EXPECT_EQ(got[4]["seq"], 10);
  EXPECT_EQ(stats[5].dropped, 6u);
  // Reported once: the next drops start a new notice.
  for (int i = 0; i < 5; ++i) hub.broadcast(event(5));
  got = drain(slow);
  EXPECT_EQ(got[0]["overflow"], Json::array({1, 11, 11}));
}

TEST_F(HubTest, OneOfIsRoundRobinAmongAckingSubscriptions) {
  ClientId w1 = client();
  ClientId listener = client();
  ClientId w2 = client();
  ASSERT_TRUE(hub.subscribe(w1, spec({26}, true)).ok());
  ASSERT_TRUE(hub.subscribe(listener, spec({26}, false)).ok());
  ASSERT_TRUE(hub.subscribe(w2, spec({26}, true)).ok());
  TargetHandler t{TargetKind::subscriber, ""};
  for (int i = 0; i < 4; ++i) hub.deliver_one(event(26), t);
  EXPECT_EQ(seqs(w1), (std::vector<std::uint64_t>{1, 3}));
  EXPECT_EQ(seqs(w2), (std::vector<std::uint64_t>{2, 4}));
  EXPECT_EQ(seqs(listener), std::vector<std::uint64_t>{});
  EXPECT_EQ(stats[26].delivered, 0u);  // one-of counts at the ack
  EXPECT_TRUE(hub.ack(w1, 1).ok());
  EXPECT_EQ(stats[26].delivered, 1u);
  EXPECT_FALSE(hub.ack(w1, 1).ok());
  EXPECT_FALSE(hub.ack(w1, 2).ok());  // not its event
}

TEST_F(HubTest, MissedAckDeadlineRedeliversToAnotherThenToTheSameIfAlone) {
  ClientId a = client();
  ClientId b = client();
  ASSERT_TRUE(hub.subscribe(a, spec({26}, true)).ok());
  ASSERT_TRUE(hub.subscribe(b, spec({26}, true)).ok());
  hub.deliver_one(event(26), {TargetKind::subscriber, ""});
  EXPECT_EQ(seqs(a), std::vector<std::uint64_t>{1});
  ASSERT_TRUE(hub.next_deadline());
  EXPECT_EQ(*hub.next_deadline(), clock.steady_now() + 10s);
  clock.advance(9999ms);
  hub.expire(clock.steady_now());
  EXPECT_TRUE(drain(b).empty());
  clock.advance(1ms);
  hub.expire(clock.steady_now());
  auto got = drain(b);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0]["seq"], 1);
  EXPECT_EQ(got[0]["redelivered"], true);
  EXPECT_FALSE(hub.ack(a, 1).ok()) << "a lost it at its deadline";
  // b alone now: its missed deadline gives the event back to b.
  hub.disconnect(a);
  clock.advance(10s);
  hub.expire(clock.steady_now());
  EXPECT_EQ(seqs(b), std::vector<std::uint64_t>{1});
  EXPECT_TRUE(hub.ack(b, 1).ok());
  EXPECT_FALSE(hub.next_deadline());
}

TEST_F(HubTest, AnEventWhoseDeadlinePassedWhileQueuedIsNotSentToTheLateClient) {
  ClientId a = client();
  ClientId b = client();
  ASSERT_TRUE(hub.subscribe(a, spec({26}, true)).ok());
  hub.deliver_one(event(26), {TargetKind::subscriber, ""});  // queued for a, not yet written
  ASSERT_TRUE(hub.subscribe(b, spec({26}, true)).ok());
  clock.advance(10s);
  hub.expire(clock.steady_now());
  EXPECT_EQ(seqs(a), std::vector<std::uint64_t>{});
  EXPECT_EQ(seqs(b), std::vector<std::uint64_t>{1});
}

TEST_F(HubTest, DisconnectRedeliversQueuedAndUnackedOneOfEventsInOrder) {
  ClientId a = client();
  ASSERT_TRUE(hub.subscribe(a, spec({26}, true)).ok());
  for (int i = 0; i < 3; ++i) hub.deliver_one(event(26), {TargetKind::subscriber, ""});
  EXPECT_EQ(hub.pop(a).has_value(), true);  // seq 1 written, 2 and 3 still queued
  ASSERT_TRUE(hub.ack(a, 1).ok());
  hub.disconnect(a);
  EXPECT_EQ(hub.backlog_size(), 2u);  // nobody else: they wait
  ClientId b = client();
  ASSERT_TRUE(hub.subscribe(b, spec({26}, true)).ok());
  auto got = drain(b);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0]["seq"], 2);
  EXPECT_EQ(got[1]["seq"], 3);
  EXPECT_EQ(hub.backlog_size(), 0u);
}

TEST_F(HubTest, BacklogIsBoundedAndCountsWhatItDrops) {
  for (int i = 0; i < 5; ++i) hub.deliver_one(event(26), {TargetKind::subscriber, ""});
  EXPECT_EQ(hub.backlog_size(), 3u);
  EXPECT_EQ(stats[26].dropped, 2u);
  ClientId w = client();
  ASSERT_TRUE(hub.subscribe(w, spec({26}, true)).ok());
  EXPECT_EQ(seqs(w), (std::vector<std::uint64_t>{3, 4, 5}));
}

TEST_F(HubTest, NamedAndGroupTargetsPickTheirClients) {
  ClientId alice = client();
  ClientId bob = client();
  ASSERT_TRUE(hub.hello(alice, "alice", "builders").ok());
  ASSERT_TRUE(hub.hello(bob, "bob", "").ok());
  EXPECT_FALSE(hub.hello(client(), "alice", "").ok()) << "names are unique";
  ASSERT_TRUE(hub.subscribe(alice, spec({27, 28}, true)).ok());
  ASSERT_TRUE(hub.subscribe(bob, spec({27, 28}, true)).ok());
  hub.deliver_one(event(27), {TargetKind::subscriber_named, "bob"});
  hub.deliver_one(event(28), {TargetKind::group, "builders"});
  hub.deliver_one(event(28), {TargetKind::group, "builders"});
  hub.deliver_one(event(27), {TargetKind::subscriber_named, "carol"});
  EXPECT_EQ(seqs(bob), std::vector<std::uint64_t>{1});
  EXPECT_EQ(seqs(alice), (std::vector<std::uint64_t>{2, 3}));
  EXPECT_EQ(hub.backlog_size(), 1u);
  ClientId carol = client();
  ASSERT_TRUE(hub.subscribe(carol, spec({27}, true)).ok());
  EXPECT_EQ(hub.backlog_size(), 1u);  // not named carol yet
  ASSERT_TRUE(hub.hello(carol, "carol", "").ok());
  EXPECT_EQ(seqs(carol), std::vector<std::uint64_t>{4});
}

TEST_F(HubTest, AFullQueueIsNotACandidateForOneOf) {
  ClientId a = client();
  ClientId b = client();
  ASSERT_TRUE(hub.subscribe(a, spec({26}, true)).ok());
  ASSERT_TRUE(hub.subscribe(b, spec({26}, true)).ok());
  for (int i = 0; i < 8; ++i) hub.deliver_one(event(26), {TargetKind::subscriber, ""});
  EXPECT_EQ(hub.backlog_size(), 0u);
  hub.deliver_one(event(26), {TargetKind::subscriber, ""});  // both queues hold 4
  EXPECT_EQ(hub.backlog_size(), 1u);
  EXPECT_EQ(stats[26].dropped, 0u);
  // A broadcast into a queue full of one-of events drops the broadcast event, reported.
  ASSERT_TRUE(hub.subscribe(a, spec({5})).ok());
  hub.broadcast(event(5));
  auto got = drain(a);
  ASSERT_EQ(got.size(), 5u);
  EXPECT_EQ(got[0]["overflow"], Json::array({1, 10, 10}));
  EXPECT_EQ(stats[5].dropped, 1u);
}

TEST_F(HubTest, SourcesFilterByKindOrId) {
  ClientId a = client();
  SubscriptionSpec s = spec({5});
  s.sources = {"posix", "tick"};
  ASSERT_TRUE(hub.subscribe(a, s).ok());
  hub.broadcast(event(5, {SourceKind::posix, "SIGUSR1"}));
  hub.broadcast(event(5, {SourceKind::timer, "tick"}));
  hub.broadcast(event(5, {SourceKind::timer, "other"}));
  hub.broadcast(event(5, {SourceKind::raise, "cli"}));
  EXPECT_EQ(seqs(a), (std::vector<std::uint64_t>{1, 2}));
}

TEST_F(HubTest, SubscriptionLimitAndUnsubscribe) {
  ClientId a = client();
  auto s1 = hub.subscribe(a, spec({5}));
  ASSERT_TRUE(s1.ok());
  ASSERT_TRUE(hub.subscribe(a, spec({6})).ok());
  auto s3 = hub.subscribe(a, spec({7}));
  ASSERT_FALSE(s3.ok());
  EXPECT_EQ(s3.error().code, ErrorCode::limit_reached);
  ASSERT_TRUE(hub.unsubscribe(a, *s1).ok());
  EXPECT_EQ(hub.broadcast(event(5)), 0u);
  EXPECT_FALSE(hub.unsubscribe(a, *s1).ok());
}

// ---- credit, nack, dead letters (issue 15) -----------------------------------------------------

struct CreditTest : HubTest {
  Dispatcher dispatcher{clock, stats};
  std::vector<EventPtr> unhandled;  // the dead letters (signal 27 has no handler here)

  CreditTest() {
    auto table = std::make_shared<SignalTable>();
    SignalEntry e;
    e.number = 26;
    e.name = "jobs";
    e.max_deliveries = 2;
    e.dead_letter = 27;
    EXPECT_TRUE(table->add(std::move(e)).ok());
    SignalEntry f;
    f.number = 28;  // no max_deliveries, no dead_letter
    EXPECT_TRUE(table->add(std::move(f)).ok());
    dispatcher.set_table(table);
    dispatcher.set_unhandled_sink([this](const EventPtr& e) {
      unhandled.push_back(e);
      return true;
    });
    hub.set_dispatcher(&dispatcher);
  }
  SubscriptionSpec acking(std::initializer_list<int> signals, std::uint32_t prefetch) {
    SubscriptionSpec s = spec(signals, true);
    s.prefetch = prefetch;
    return s;
  }
  std::vector<Json> events(ClientId id) {
    std::vector<Json> out;
    while (auto item = hub.pop(id)) {
      if (item->kind == Outgoing::Kind::event) {
        out.push_back(Json::parse(item->line.view())["params"]);
      }
    }
    return out;
  }
};

TEST_F(CreditTest, AClientHoldsAtMostItsPrefetchAndTheRestWaitsForAnAck) {
  hub.set_limits({.queue = 100, .backlog = 100, .subscriptions = 4, .ack_timeout = 10s});
  ClientId a = client();
  ClientId b = client();
  ASSERT_TRUE(hub.subscribe(a, acking({26}, 1)).ok());
  ASSERT_TRUE(hub.subscribe(b, acking({26}, 2)).ok());
  for (int i = 0; i < 5; ++i) hub.deliver_one(event(26), {TargetKind::subscriber, ""});
  EXPECT_EQ(seqs(a), (std::vector<std::uint64_t>{1}));
  EXPECT_EQ(seqs(b), (std::vector<std::uint64_t>{2, 3}));
  EXPECT_EQ(hub.backlog_size(), 2u);
  EXPECT_EQ(hub.client_info(a)->prefetch, 1u);
  EXPECT_EQ(hub.client_info(b)->unacked, 2u);
  // An ack frees one credit: the oldest waiting event goes to that client at once.
  ASSERT_TRUE(hub.ack(b, 2).ok());
  EXPECT_EQ(seqs(b), (std::vector<std::uint64_t>{4}));
  ASSERT_TRUE(hub.ack(a, 1).ok());
  EXPECT_EQ(seqs(a), (std::vector<std::uint64_t>{5}));
  EXPECT_EQ(hub.backlog_size(), 0u);
}

TEST_F(CreditTest, ASlowHolderDoesNotHoldUpTheFastOne) {
  hub.set_limits({.queue = 100, .backlog = 100, .subscriptions = 4, .ack_timeout = 10s});
  ClientId slow = client();
  ClientId fast = client();
  ASSERT_TRUE(hub.subscribe(slow, acking({26}, 1)).ok());
  ASSERT_TRUE(hub.subscribe(fast, acking({26}, 1)).ok());
  std::vector<std::uint64_t> fast_got;
  for (int i = 0; i < 50; ++i) {
    hub.deliver_one(event(26), {TargetKind::subscriber, ""});
    for (std::uint64_t s : seqs(fast)) {
      fast_got.push_back(s);
      ASSERT_TRUE(hub.ack(fast, s).ok());
    }
  }
  EXPECT_EQ(seqs(slow), (std::vector<std::uint64_t>{1}));  // holds its one, never acks
  EXPECT_EQ(fast_got.size(), 49u);
  EXPECT_EQ(hub.backlog_size(), 0u);
}

TEST_F(CreditTest, TheCandidateHoldingFewestUnackedWinsTiesGoRoundRobin) {
  hub.set_limits({.queue = 100, .backlog = 100, .subscriptions = 4, .ack_timeout = 10s});
  ClientId a = client();
  ClientId b = client();
  ClientId c = client();
  for (ClientId id : {a, b, c}) ASSERT_TRUE(hub.subscribe(id, acking({26}, 10)).ok());
  for (int i = 0; i < 6; ++i) hub.deliver_one(event(26), {TargetKind::subscriber, ""});
  EXPECT_EQ(seqs(a), (std::vector<std::uint64_t>{1, 4}));
  EXPECT_EQ(seqs(b), (std::vector<std::uint64_t>{2, 5}));
  EXPECT_EQ(seqs(c), (std::vector<std::uint64_t>{3, 6}));
  ASSERT_TRUE(hub.ack_many(b, {2, 5}).done == 2);  // b now holds none: it gets the next two
  hub.deliver_one(event(26), {TargetKind::subscriber, ""});
  hub.deliver_one(event(26), {TargetKind::subscriber, ""});
  EXPECT_EQ(seqs(b), (std::vector<std::uint64_t>{7, 8}));  // holding 0, then 1: the fewest
  // All hold 2: the one given an event least recently first (a got 4, c 6, b 8).
  for (int i = 0; i < 3; ++i) hub.deliver_one(event(26), {TargetKind::subscriber, ""});
  EXPECT_EQ(seqs(a), (std::vector<std::uint64_t>{9}));
  EXPECT_EQ(seqs(c), (std::vector<std::uint64_t>{10}));
  EXPECT_EQ(seqs(b), (std::vector<std::uint64_t>{11}));
}

TEST_F(CreditTest, AWildcardAndAGroupSubscriberAreCandidatesToo) {
  hub.set_limits({.queue = 100, .backlog = 100, .subscriptions = 4, .ack_timeout = 10s});
  ClientId any = client();
  ClientId member = client();
  SubscriptionSpec all = acking({}, 1);
  all.signals.set();
  ASSERT_TRUE(hub.subscribe(any, all).ok());
  ASSERT_TRUE(hub.hello(member, "m1", "builders").ok());
  ASSERT_TRUE(hub.subscribe(member, acking({26}, 1)).ok());
  hub.deliver_one(event(26), {TargetKind::subscriber, ""});
  hub.deliver_one(event(26), {TargetKind::subscriber, ""});
  EXPECT_EQ(seqs(any), (std::vector<std::uint64_t>{1}));
  EXPECT_EQ(seqs(member), (std::vector<std::uint64_t>{2}));
  hub.deliver_one(event(26), {TargetKind::group, "builders"});  // m1 has no credit: it waits
  EXPECT_EQ(hub.backlog_size(), 1u);
  ASSERT_TRUE(hub.ack(any, 1).ok());
  EXPECT_EQ(hub.backlog_size(), 1u) << "the wildcard subscriber is not in group builders";
  ASSERT_TRUE(hub.ack(member, 2).ok());
  EXPECT_EQ(seqs(member), (std::vector<std::uint64_t>{3}));
}

TEST_F(CreditTest, ANackHandsTheEventToAnotherAtOnceCountingDeliveries) {
  ClientId a = client();
  ClientId b = client();
  ASSERT_TRUE(hub.subscribe(a, acking({28}, 5)).ok());
  ASSERT_TRUE(hub.subscribe(b, acking({28}, 5)).ok());
  hub.deliver_one(event(28), {TargetKind::subscriber, ""});
  auto first = events(a);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0]["delivery"], 1);
  ASSERT_TRUE(hub.nack(a, 1, true).ok());
  auto second = events(b);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0]["delivery"], 2);
  EXPECT_EQ(second[0]["redelivered"], true);
  // b nacks too: with a the only other candidate it goes back to a, delivery 3; no limit here.
  ASSERT_TRUE(hub.nack(b, 1, true).ok());
  EXPECT_EQ(events(a)[0]["delivery"], 3);
  EXPECT_FALSE(hub.nack(b, 1, true).ok()) << "b no longer holds it";
  EXPECT_EQ(hub.nack_many(a, {1, 99}, true).not_held, (std::vector<std::uint64_t>{99}));
}

TEST_F(CreditTest, AtMaxDeliveriesTheEventIsRaisedOnTheDeadLetterWithTheOriginal) {
  ClientId a = client();
  ClientId b = client();
  ASSERT_TRUE(hub.subscribe(a, acking({26}, 5)).ok());
  ASSERT_TRUE(hub.subscribe(b, acking({26}, 5)).ok());
  auto job = std::make_shared<Event>(*event(26));
  job->payload = "job 7";
  job->name = "jobs";
  EventPtr original = job;
  hub.deliver_one(original, {TargetKind::subscriber, ""});
  ASSERT_EQ(seqs(a), (std::vector<std::uint64_t>{1}));
  ASSERT_TRUE(hub.nack(a, 1, true).ok());  // delivery 1 comes back
  ASSERT_EQ(seqs(b), (std::vector<std::uint64_t>{1}));
  EXPECT_TRUE(unhandled.empty());
  clock.advance(10s);  // delivery 2 misses its ack deadline: max_deliveries (2) reached
  hub.expire(clock.steady_now());
  EXPECT_TRUE(seqs(a).empty());
  ASSERT_EQ(unhandled.size(), 1u);
  const Event& dl = *unhandled[0];
  EXPECT_EQ(dl.signal, 27);
  EXPECT_EQ(dl.source.kind, kDeadLetterKind);
  EXPECT_EQ(dl.source.id, "jobs");
  Json p = Json::parse(dl.payload);
  EXPECT_EQ(p["deliveries"], 2);
  EXPECT_EQ(p["reason"], "ack_timeout");
  EXPECT_EQ(p["event"]["seq"], 1);
  EXPECT_EQ(p["event"]["payload"], "job 7");
  EXPECT_EQ(stats[26].failed, 1u);
  EXPECT_FALSE(hub.next_deadline());
}

TEST_F(CreditTest, ARejectedEventIsDeadLetteredAtOnceOrDroppedAndCounted) {
  ClientId a = client();
  ASSERT_TRUE(hub.subscribe(a, acking({26, 28}, 5)).ok());
  hub.deliver_one(event(26), {TargetKind::subscriber, ""});
  hub.deliver_one(event(28), {TargetKind::subscriber, ""});
  ASSERT_EQ(seqs(a), (std::vector<std::uint64_t>{1, 2}));
  ASSERT_TRUE(hub.nack(a, 1, false).ok());
  ASSERT_EQ(unhandled.size(), 1u);
  EXPECT_EQ(Json::parse(unhandled[0]->payload)["reason"], "rejected");
  // Signal 28 has no dead_letter: dropped, and counted.
  ASSERT_TRUE(hub.nack(a, 2, false).ok());
  EXPECT_EQ(unhandled.size(), 1u);
  EXPECT_EQ(stats[28].dropped, 1u);
  EXPECT_TRUE(seqs(a).empty());
}

TEST_F(CreditTest, AHolderThatGoesAwayCountsADeliveryToo) {
  ClientId a = client();
  ASSERT_TRUE(hub.subscribe(a, acking({26}, 5)).ok());
  hub.deliver_one(event(26), {TargetKind::subscriber, ""});
  hub.disconnect(a);  // delivery 1 (a poison event that kills its worker, say)
  ClientId b = client();
  ASSERT_TRUE(hub.subscribe(b, acking({26}, 5)).ok());
  auto got = events(b);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0]["delivery"], 2);
  hub.disconnect(b);
  ASSERT_EQ(unhandled.size(), 1u);
  EXPECT_EQ(Json::parse(unhandled[0]->payload)["reason"], "disconnected");
  EXPECT_EQ(hub.backlog_size(), 0u);
}

TEST_F(CreditTest, AcksOutOfOrderKeepTheDeadlinesOfTheRest) {
  hub.set_limits({.queue = 1000, .backlog = 100, .subscriptions = 4, .ack_timeout = 10s});
  ClientId a = client();
  ASSERT_TRUE(hub.subscribe(a, acking({28}, 500)).ok());
  hub.deliver_one(event(28), {TargetKind::subscriber, ""});  // seq 1, never acked
  clock.advance(5s);
  for (int i = 0; i < 400; ++i) hub.deliver_one(event(28), {TargetKind::subscriber, ""});
  std::vector<std::uint64_t> later;
  for (std::uint64_t s : seqs(a)) {
    if (s != 1) later.push_back(s);
  }
  EXPECT_EQ(hub.ack_many(a, later).done, 400u);
  EXPECT_EQ(hub.client_info(a)->unacked, 1u);
  clock.advance(5s);
  hub.expire(clock.steady_now());
  EXPECT_EQ(seqs(a), (std::vector<std::uint64_t>{1})) << "seq 1 came back (to a, alone)";
  EXPECT_EQ(hub.client_info(a)->unacked, 1u);
}

// Memory after a burst (SPEC §5): the hub says when every queue is empty again after holding at
// least the threshold, once per burst, whether the queues drained by writing or by leaving.
TEST_F(HubTest, SaysOnceWhenTheQueuesAreEmptyAgainAfterABurst) {
  hub.set_limits({.queue = 100, .backlog = 3, .subscriptions = 2, .ack_timeout = 10s});
  std::vector<std::size_t> peaks;
  hub.set_drained(5, [&](std::size_t peak) { peaks.push_back(peak); });
  ClientId a = client();
  ClientId b = client();
  ASSERT_TRUE(hub.subscribe(a, spec({5})).ok());
  ASSERT_TRUE(hub.subscribe(b, spec({5})).ok());
  hub.broadcast(event(5));
  seqs(a);
  seqs(b);
  EXPECT_TRUE(peaks.empty()) << "2 queued is no burst";
  for (int i = 0; i < 4; ++i) hub.broadcast(event(5));
  EXPECT_EQ(hub.queued(), 8u);
  seqs(a);
  EXPECT_TRUE(peaks.empty()) << "b still holds 4";
  hub.disconnect(b);
  EXPECT_EQ(peaks, std::vector<std::size_t>{8});
  EXPECT_EQ(hub.queued(), 0u);
  hub.broadcast(event(5));
  seqs(a);
  EXPECT_EQ(peaks.size(), 1u) << "a new burst must reach the threshold again";
}

}  // namespace
}  // namespace tocsin

namespace tocsin {
namespace {

TEST_F(HubTest, TimeToAckIsObservedFromTheGiveToTheAck) {
  const TargetHandler one{TargetKind::subscriber, ""};
  ClientId w = client();
  ASSERT_TRUE(hub.subscribe(w, spec({5}, /*ack=*/true)).ok());
  EXPECT_TRUE(hub.ack_durations().empty());
  hub.deliver_one(event(5), one);
  hub.deliver_one(event(5), one);
  hub.deliver_one(event(5), one);
  clock.advance(2ms);
  ASSERT_TRUE(hub.ack(w, 1).ok());
  clock.advance(3s);
  EXPECT_EQ(hub.ack_many(w, {2, 3}).done, 2u);
  // A nack is not an ack: nothing observed.
  hub.deliver_one(event(5), one);
  EXPECT_EQ(hub.nack_many(w, {4}, /*requeue=*/false).done, 1u);
  ASSERT_EQ(hub.ack_durations().size(), 1u);
  const Histogram& h = hub.ack_durations().at(5);
  EXPECT_EQ(h.count(), 3u);
  EXPECT_NEAR(h.sum(), 0.002 + 2 * 3.002, 1e-9);
  // 2 ms falls in the 2.5 ms bucket; 3.002 s in the 5 s one.
  const auto& b = h.bounds();
  auto le = [&](double bound) {
    return h.cumulative(static_cast<std::size_t>(std::find(b.begin(), b.end(), bound) - b.begin()));
  };
  EXPECT_EQ(le(0.001), 0u);
  EXPECT_EQ(le(0.0025), 1u);
  EXPECT_EQ(le(2.5), 1u);
  EXPECT_EQ(le(5), 3u);
}

TEST(Histogram, BucketsAreCumulativeAndBoundsInclusive) {
  constexpr double kBounds[] = {0.1, 1};
  Histogram h(kBounds);
  h.observe(0.1);
  h.observe(0.5);
  h.observe(std::chrono::seconds(7));
  EXPECT_EQ(h.cumulative(0), 1u);  // le="0.1" includes 0.1
  EXPECT_EQ(h.cumulative(1), 2u);
  EXPECT_EQ(h.cumulative(2), 3u);  // +Inf
  EXPECT_EQ(h.count(), 3u);
  EXPECT_DOUBLE_EQ(h.sum(), 7.6);
}

}  // namespace
}  // namespace tocsin
