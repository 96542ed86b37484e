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

}  // namespace
}  // namespace tocsin
