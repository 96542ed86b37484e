// The Hub's delivery rules with a ManualClock and no sockets.
#include "server/hub.h"

#include <date/date.h>
#include <gtest/gtest.h>

#include <limits>

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

TEST_F(HubTest, EncodesEventsAsJsonWithEscapes) {
  Event e;
  e.seq = 7;
  e.signal = 17;
  e.name = "tmp-changed";
  e.source = {SourceKind::file, "f\"1"};
  e.time = std::chrono::sys_days{std::chrono::year{2026} / 1 / 2} + 3h + 4min + 5s + 6us;
  e.iteration = 3;
  e.payload = std::string("a\"b\\c\n\t\x01\xc3\xa9", 10);
  Json j = Json::parse(encode_event_notification(e, true, true));
  EXPECT_EQ(j["jsonrpc"], "2.0");
  EXPECT_EQ(j["method"], "signal");
  const Json& p = j["params"];
  EXPECT_EQ(p["seq"], 7);
  EXPECT_EQ(p["signal"], 17);
  EXPECT_EQ(p["name"], "tmp-changed");
  EXPECT_EQ(p["source"], (Json{{"kind", "file"}, {"id", "f\"1"}}));
  EXPECT_EQ(p["time"], "2026-01-02T03:04:05.000006Z");
  EXPECT_EQ(p["iteration"], 3);
  EXPECT_EQ(p["payload"], e.payload);
  EXPECT_EQ(p["ack"], true);
  EXPECT_EQ(p["redelivered"], true);
  EXPECT_FALSE(Json::parse(encode_event_notification(e, false, false))["params"].contains("ack"));
  EXPECT_EQ(Json::parse(encode_event_object(e))["payload"], e.payload);
}

// The encoder writes through a pointer into room it sized beforehand: every byte value that needs
// escaping, at the largest numbers, in every string field, must fit and round-trip exactly (a
// miscount would write past the room: ASan and the encoder's assert catch it in the test builds).
// The latest time system_clock holds (it counts nanoseconds: 2262 is its last year).
TEST_F(HubTest, EncodesEveryAsciiByteAndTheLargestNumbersExactly) {
  std::string all;
  for (int c = 0; c < 0x80; ++c) all += static_cast<char>(c);
  std::string escapes_only;
  for (int c = 0; c < 0x20; ++c) escapes_only.append(100, static_cast<char>(c));
  for (const std::string& text : {all, escapes_only, std::string(70000, '"'), std::string()}) {
    Event e;
    e.seq = std::numeric_limits<std::uint64_t>::max();
    e.signal = 255;
    e.name = text;
    e.source = {SourceKind::rb_timer, text};
    e.time = std::chrono::sys_days{std::chrono::year{2261} / 12 / 31} + 23h + 59min + 59s +
             999999us;
    e.iteration = std::numeric_limits<std::uint64_t>::max();
    e.payload = text + text;
    std::string line = encode_event_notification(e, true, true);
    ASSERT_EQ(line.back(), '\n');
    Json p = Json::parse(line)["params"];
    EXPECT_EQ(p["seq"], e.seq);
    EXPECT_EQ(p["name"], text);
    EXPECT_EQ(p["source"]["id"], text);
    EXPECT_EQ(p["payload"], e.payload);
    EXPECT_EQ(p["time"], "2261-12-31T23:59:59.999999Z");
    EXPECT_EQ(p["iteration"], e.iteration);
    EXPECT_EQ(Json::parse(encode_event_object(e))["payload"], e.payload);
    std::string appended = "prefix";
    append_json_string(appended, text);
    EXPECT_EQ(Json::parse(appended.substr(6)), text);
  }
}

// The encoder looks at eight bytes at a time and at the rest one by one: every byte that needs
// escaping (and bytes that do not: 0x7f, 0x80, UTF-8) at every position of strings of every
// length around the word size, and the size it reserves is exact.
TEST_F(HubTest, EscapesAtEveryPositionOfShortAndWordSizedStrings) {
  const std::vector<std::string> specials = {"\"", "\\", "\n", "\r", "\t", std::string(1, '\0'),
                                             "\x1f", "\x7f", "\xc3\xa9", " ", "/"};
  auto expected_size = [](const std::string& s) {
    std::size_t n = 2;
    for (unsigned char c : s) {
      n += c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t' ? 2 : c < 0x20 ? 6 : 1;
    }
    return n;
  };
  for (std::size_t len = 0; len <= 40; ++len) {
    for (const std::string& special : specials) {
      for (std::size_t at = 0; at <= len; ++at) {
        std::string text(len, 'a');
        text.insert(at, special);
        std::string out;
        append_json_string(out, text);
        ASSERT_EQ(out.size(), expected_size(text)) << "length " << len << " at " << at;
        ASSERT_EQ(Json::parse(out), text) << "length " << len << " at " << at << ": " << out;
      }
    }
  }
}

// The time is formatted once a second and its microseconds two digits at a time: every digit
// position, both sides of the epoch, against the date library.
TEST(Rfc3339Test, EveryMicrosecondDigitAndBothSidesOfTheEpoch) {
  using namespace std::chrono;
  for (sys_seconds base : {sys_days{year{2026} / 11 / 22} + 13h + 5min + 9s,
                           sys_days{year{1969} / 12 / 31} + 23h + 59min + 58s}) {
    for (std::int64_t us : {0, 1, 9, 10, 42, 99, 100, 999, 1000, 9999, 10000, 99999, 100000,
                            123456, 500000, 909090, 999999, 1000000, 1999999}) {
      system_clock::time_point t = base + microseconds(us);
      EXPECT_EQ(format_rfc3339(t), date::format("%FT%TZ", floor<microseconds>(t)))
          << us << " us after " << date::format("%F %T", base);
    }
  }
}

// Lines share one block by reference and their freed blocks are kept for reuse by size class:
// every line keeps its own bytes through copies, moves and assignments, at every class boundary,
// past the largest pooled size, and across a burst larger than the pool holds.
TEST(LineTest, KeepsItsBytesThroughCopiesMovesAndReuse) {
  auto text = [](std::size_t n, char c) {
    std::string s(n, c);
    if (n > 0) s.back() = '\n';
    return s;
  };
  for (int round = 0; round < 3; ++round) {  // the later rounds run on reused blocks
    std::vector<Line> lines;
    std::vector<std::string> want;
    for (std::size_t n : {0, 1, 47, 48, 49, 111, 112, 113, 1007, 1008, 1009, 5000}) {
      char c = static_cast<char>('a' + (n + round) % 26);
      lines.emplace_back(text(n, c));
      want.push_back(text(n, c));
    }
    for (int i = 0; i < 20000; ++i) {  // ~5 MB of 250-byte lines: more than the pool keeps
      std::string t = std::to_string(round) + ":" + std::to_string(i) + std::string(240, 'x');
      lines.emplace_back(t);
      want.push_back(t);
    }
    std::vector<Line> copies(lines.begin(), lines.end());
    for (std::size_t i = 0; i < lines.size(); i += 2) lines[i] = Line();  // half the originals go
    Line moved = std::move(copies[3]);
    EXPECT_FALSE(copies[3]);
    copies[3] = moved;
    const Line& same = copies[5];
    copies[5] = same;  // self-assignment keeps it
    for (std::size_t i = 0; i < want.size(); ++i) {
      ASSERT_EQ(copies[i].view(), want[i]) << "round " << round << ", line " << i;
      if (i % 2 == 1) {
        ASSERT_EQ(lines[i].view(), want[i]);
      }
    }
  }
  EXPECT_EQ(Line().view(), "");
}

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
  s.kinds = {SourceKind::posix};
  s.ids = {"tick"};
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
  EXPECT_EQ(s3.error().code, -32002);
  ASSERT_TRUE(hub.unsubscribe(a, *s1).ok());
  EXPECT_EQ(hub.broadcast(event(5)), 0u);
  EXPECT_FALSE(hub.unsubscribe(a, *s1).ok());
}

}  // namespace
}  // namespace tocsin
