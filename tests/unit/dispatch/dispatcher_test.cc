#include "tocsin/dispatcher.h"

#include <gtest/gtest.h>

#include "fakes/manual_clock.h"
#include "fakes/recording_handler.h"

namespace tocsin {
namespace {

using testing::ManualClock;
using testing::RecordingHandler;

struct DispatcherTest : ::testing::Test {
  ManualClock clock;
  SignalStats stats;
  Dispatcher dispatcher{clock, stats};
  std::vector<std::string> order;

  std::shared_ptr<RecordingHandler> add(SignalEntry& e, std::string name,
                                        RecordingHandler::Mode mode = RecordingHandler::Mode::ok) {
    auto h = std::make_shared<RecordingHandler>(std::move(name), &order, mode);
    e.handlers.push_back(h);
    return h;
  }
  void install(SignalEntry e) {
    auto t = std::make_shared<SignalTable>();
    ASSERT_TRUE(t->add(std::move(e)).ok());
    dispatcher.set_table(t);
  }
};

TEST_F(DispatcherTest, StampsSeqTimeNameSourceAndPayload) {
  SignalEntry e{.number = 5, .name = "usr1"};
  auto h = add(e, "h");
  install(std::move(e));
  auto ev1 = dispatcher.raise(5, {SourceKind::posix, "SIGUSR1"}, "p1", 0);
  clock.advance(std::chrono::milliseconds(1500));
  auto ev2 = dispatcher.raise(5, {SourceKind::raise, "cli"}, "p2", 7);
  ASSERT_EQ(h->events.size(), 2u);
  EXPECT_EQ(ev1->seq, 1u);
  EXPECT_EQ(ev2->seq, 2u);
  EXPECT_EQ(ev1->name, "usr1");
  EXPECT_EQ(ev1->source.kind, SourceKind::posix);
  EXPECT_EQ(ev1->source.id, "SIGUSR1");
  EXPECT_EQ(ev2->payload, "p2");
  EXPECT_EQ(ev2->iteration, 7u);
  EXPECT_EQ(ev2->time - ev1->time, std::chrono::milliseconds(1500));
  EXPECT_EQ(h->events[0], ev1);  // the very same shared event, not a copy
  EXPECT_EQ(stats[5].raised, 2u);
  EXPECT_EQ(stats[5].last_raised, ev2->time);
  EXPECT_EQ(format_rfc3339(ev1->time), "2026-11-22T00:00:00.000000Z");
}

TEST_F(DispatcherTest, RunsHandlersInTableOrder) {
  SignalEntry e{.number = 9};
  add(e, "first");
  add(e, "second");
  add(e, "third");
  install(std::move(e));
  dispatcher.raise(9, {}, "");
  EXPECT_EQ(order, (std::vector<std::string>{"first", "second", "third"}));
}

TEST_F(DispatcherTest, AFailingHandlerNeverStopsTheOthers) {
  SignalEntry e{.number = 9};
  auto a = add(e, "a");
  auto b = add(e, "fails", RecordingHandler::Mode::fail);
  auto c = add(e, "throws", RecordingHandler::Mode::throw_);
  auto d = add(e, "d");
  install(std::move(e));
  dispatcher.raise(9, {}, "x");
  dispatcher.raise(9, {}, "y");
  EXPECT_EQ(order, (std::vector<std::string>{"a", "fails", "throws", "d", "a", "fails", "throws",
                                             "d"}));
  EXPECT_EQ(d->events.size(), 2u);
  EXPECT_EQ(stats[9].failed, 4u);  // two events x two failing handlers
  EXPECT_EQ(a->counters().runs, 2u);
  EXPECT_EQ(a->counters().failures, 0u);
  EXPECT_EQ(b->counters().failures, 2u);
  EXPECT_EQ(c->counters().failures, 2u);
  EXPECT_EQ(stats[9].raised, 2u);
}

TEST_F(DispatcherTest, SignalWithoutHandlersIsUnhandledUnlessASinkTakesIt) {
  install(SignalEntry{.number = 30, .name = "once"});
  dispatcher.raise(30, {}, "");
  dispatcher.raise(200, {}, "");  // no entry at all
  EXPECT_EQ(stats[30].unhandled, 1u);
  EXPECT_EQ(stats[200].unhandled, 1u);
  std::vector<std::uint64_t> taken;
  dispatcher.set_unhandled_sink([&](const EventPtr& ev) {
    if (ev->signal != 30) return false;
    taken.push_back(ev->seq);
    return true;
  });
  auto ev = dispatcher.raise(30, {}, "");
  dispatcher.raise(200, {}, "");
  EXPECT_EQ(taken, std::vector<std::uint64_t>{ev->seq});
  EXPECT_EQ(stats[30].unhandled, 1u);
  EXPECT_EQ(stats[200].unhandled, 2u);
}

TEST_F(DispatcherTest, TableSwapDuringRaiseIsSafe) {
  // A handler that replaces the table (as a reload would) while the event is being delivered.
  struct Swapper final : Handler {
    Dispatcher* d;
    int calls = 0;
    Result<void> handle(const EventPtr&) override {
      ++calls;
      d->set_table(std::make_shared<SignalTable>());
      return ok();
    }
    std::string describe() const override { return "swapper"; }
  };
  auto swapper = std::make_shared<Swapper>();
  swapper->d = &dispatcher;
  SignalEntry e{.number = 1};
  e.handlers.push_back(swapper);
  auto after = add(e, "after");
  install(std::move(e));
  swapper.reset();  // the table holds the only reference
  dispatcher.raise(1, {}, "");
  EXPECT_EQ(after->events.size(), 1u);  // the old table lived until the raise ended
  dispatcher.raise(1, {}, "");
  EXPECT_EQ(after->events.size(), 1u);  // the new, empty table is in force
  EXPECT_EQ(stats[1].unhandled, 1u);
}

}  // namespace
}  // namespace tocsin
