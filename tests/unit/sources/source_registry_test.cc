// SourceRegistry's sharing of run-time sources (include/tocsin/event_source.h; SPEC §3): joins,
// conflicts, replace, leave, and the linger of `lifetime: clients` sources, with real kernel
// timers (every 1h: none fires) on an io_context the test steps.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include "sources/timer/timer_spec.h"
#include "tocsin/dispatcher.h"
#include "tocsin/event_source.h"

namespace tocsin {
namespace {

using namespace std::chrono_literals;

struct SourceRegistryTest : ::testing::Test {
  boost::asio::io_context io;
  SystemClock clock;
  SignalStats stats;
  Dispatcher dispatcher{clock, stats};
  SourceRegistry registry{SourceContext{io, dispatcher, clock, {}, [] { return false; }, {}, {}}};

  static std::shared_ptr<SourceSpec> timer(const std::string& id, config::Millis every = 1h,
                                           SignalId signal = 3) {
    auto s = std::make_shared<config::TimerSpec>();
    s->kind = timer_schema().kind();
    s->id = id;
    s->signal = signal;
    s->every = every;
    return s;
  }
  static Declaration by(std::uint64_t client, SourceLifetime lifetime = SourceLifetime::daemon,
                        std::chrono::milliseconds linger = 0ms) {
    return Declaration{lifetime, linger, false, client};
  }
  SourceStatus status_of(const std::string& id) {
    for (const SourceStatus& s : registry.list(100)) {
      if (s.id == id) return s;
    }
    ADD_FAILURE() << "no source " << id;
    return {};
  }
  // Runs the reactor until `id` is gone, for at most 10 s.
  bool gone_within_deadline(const std::string& id) {
    const auto until = std::chrono::steady_clock::now() + 10s;
    while (registry.contains(id) && std::chrono::steady_clock::now() < until) {
      io.run_one_for(100ms);
    }
    return !registry.contains(id);
  }
};

TEST_F(SourceRegistryTest, AnEqualSpecJoinsAndTheLastDeclarerLeavingRemovesAfterTheLinger) {
  auto a = registry.declare(timer("t"), by(1, SourceLifetime::clients));
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_FALSE(a->joined);
  auto b = registry.declare(timer("t"), by(2, SourceLifetime::clients));
  ASSERT_TRUE(b) << b.error().message;
  EXPECT_TRUE(b->joined);
  EXPECT_EQ(registry.count(), 1u);
  SourceStatus s = status_of("t");
  EXPECT_EQ(s.declarers, 2u);
  EXPECT_EQ(s.lifetime, SourceLifetime::clients);

  registry.client_left(1);
  io.poll();
  EXPECT_TRUE(registry.contains("t"));
  EXPECT_EQ(status_of("t").declarers, 1u);
  registry.client_left(2);
  EXPECT_TRUE(status_of("t").lingering_until.has_value());
  EXPECT_TRUE(gone_within_deadline("t"));
  registry.client_left(2);  // nothing left to leave
}

TEST_F(SourceRegistryTest, ADeclarerJoiningDuringTheLingerKeepsTheSource) {
  ASSERT_TRUE(registry.declare(timer("t"), by(1, SourceLifetime::clients, 1h)));
  registry.client_left(1);
  ASSERT_TRUE(status_of("t").lingering_until.has_value());
  auto again = registry.declare(timer("t"), by(2, SourceLifetime::clients, 1h));
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_TRUE(again->joined);
  EXPECT_FALSE(status_of("t").lingering_until.has_value());
  EXPECT_EQ(status_of("t").declarers, 1u);
  io.poll();
  EXPECT_TRUE(registry.contains("t"));
}

TEST_F(SourceRegistryTest, ALifetimeDaemonSourceOutlivesItsDeclarers) {
  ASSERT_TRUE(registry.declare(timer("t"), by(1)));
  registry.client_left(1);
  io.poll();
  EXPECT_TRUE(registry.contains("t"));
  EXPECT_EQ(status_of("t").declarers, 0u);
  EXPECT_FALSE(status_of("t").lingering_until.has_value());
  // Nobody declares it any more: anyone's remove_source removes it.
  auto r = registry.leave("t", 7);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, Left::removed);
}

TEST_F(SourceRegistryTest, AnUnequalSpecConflictsUnlessReplaceWhichKeepsTheDeclarers) {
  ASSERT_TRUE(registry.declare(timer("t"), by(1)));
  auto other = registry.declare(timer("t", 2h), by(2));
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error().code, ErrorCode::source_conflict);
  auto linger = registry.declare(timer("t"), by(2, SourceLifetime::clients, 5s));
  ASSERT_FALSE(linger);
  EXPECT_NE(linger.error().message.find("lifetime is daemon"), std::string::npos)
      << linger.error().message;

  Declaration replace = by(2);
  replace.replace = true;
  auto r = registry.declare(timer("t", 2h), replace);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(r->replaced);
  EXPECT_FALSE(r->joined);
  EXPECT_EQ(registry.count(), 1u);
  EXPECT_EQ(status_of("t").declarers, 2u);
  EXPECT_EQ(status_of("t").schedule.rfind("every 2h", 0), 0u) << status_of("t").schedule;
}

TEST_F(SourceRegistryTest, LeaveByADeclarerAndByAStranger) {
  ASSERT_TRUE(registry.declare(timer("t"), by(1)));
  ASSERT_TRUE(registry.declare(timer("t"), by(2)));
  auto stranger = registry.leave("t", 3);
  ASSERT_FALSE(stranger);
  EXPECT_EQ(stranger.error().code, ErrorCode::source_conflict);
  auto first = registry.leave("t", 1);
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(*first, Left::left);
  EXPECT_TRUE(registry.contains("t"));
  auto last = registry.leave("t", 2);
  ASSERT_TRUE(last) << last.error().message;
  EXPECT_EQ(*last, Left::removed);
  EXPECT_FALSE(registry.contains("t"));
  auto none = registry.leave("t", 2);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, ErrorCode::not_found);
}

TEST_F(SourceRegistryTest, GeneratedIdsWithLifetimeDaemonAreNotTracked) {
  auto r = registry.declare(timer(""), by(1));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->id, "timer:1");
  EXPECT_EQ(status_of("timer:1").declarers, 0u);
  EXPECT_EQ(registry.signal_of("timer:1"), SignalId{3});
  // Nobody can join it: naming its id is a conflict, whatever the spec.
  auto join = registry.declare(timer("timer:1"), by(2));
  ASSERT_FALSE(join);
  EXPECT_EQ(join.error().code, ErrorCode::source_conflict);
  // A generated id with lifetime clients is tracked: it goes with its client.
  auto c = registry.declare(timer(""), by(1, SourceLifetime::clients));
  ASSERT_TRUE(c) << c.error().message;
  registry.client_left(1);
  EXPECT_TRUE(gone_within_deadline(c->id));
  EXPECT_TRUE(registry.contains("timer:1"));
}

}  // namespace
}  // namespace tocsin
