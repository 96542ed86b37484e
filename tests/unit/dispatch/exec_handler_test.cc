// ExecHandler against real children in a real reactor: concurrency, overlap, counting. The
// children block (sleep 1000) until the test kills them, so nothing here depends on timing.
#include "dispatch/exec_handler.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <boost/asio/io_context.hpp>
#include <functional>

#include "fakes/manual_clock.h"

namespace tocsin {
namespace {

using namespace std::chrono_literals;

struct ExecHandlerTest : ::testing::Test {
  boost::asio::io_context io;
  os::ProcessSupervisor supervisor{io};
  SignalStats stats;
  testing::ManualClock clock;
  Dispatcher dispatcher{clock, stats};
  std::uint64_t seq = 0;

  ~ExecHandlerTest() override {
    supervisor.kill_all();
    run_until([&] { return supervisor.live() == 0; });
  }

  EventPtr event(SignalId signal = 3, std::string payload = "") {
    auto e = std::make_shared<Event>();
    e->seq = ++seq;
    e->signal = signal;
    e->payload = std::move(payload);
    return e;
  }

  // Runs the reactor until `done` or a deadline; false at the deadline.
  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds within = 10s) {
    auto deadline = std::chrono::steady_clock::now() + within;
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      io.run_one_for(20ms);
    }
    return true;
  }

  std::shared_ptr<ExecHandler> make(config::ExecHandler spec, std::size_t queue = 16) {
    return std::make_shared<ExecHandler>(supervisor, stats, std::move(spec), queue);
  }
};

config::ExecHandler blocking(unsigned concurrency, config::Overlap overlap) {
  return {.argv = {"sleep", "1000"}, .concurrency = concurrency, .overlap = overlap};
}

TEST_F(ExecHandlerTest, SuccessIsDeliveredFailureIsFailed) {
  auto good = make({.argv = {"true"}});
  auto bad = make({.argv = {"sh", "-c", "exit 3"}});
  ASSERT_TRUE(good->handle(event()).ok());
  ASSERT_TRUE(bad->handle(event()).ok());
  ASSERT_TRUE(run_until([&] { return stats[3].delivered + stats[3].failed == 2; }));
  EXPECT_EQ(stats[3].delivered, 1u);
  EXPECT_EQ(stats[3].failed, 1u);
  EXPECT_EQ(good->counters().failures, 0u);
  EXPECT_EQ(bad->counters().failures, 1u) << "an exit status counts against the handler";
}

TEST_F(ExecHandlerTest, ProgramNotFoundIsCountedAsFailed) {
  auto h = make({.argv = {"/nonexistent/tocsin-test-program"}});
  ASSERT_TRUE(h->handle(event()).ok());
  EXPECT_EQ(stats[3].failed, 1u);
  EXPECT_EQ(h->running(), 0u);
}

TEST_F(ExecHandlerTest, QueueRunsEventsOneAfterAnotherUpToConcurrency) {
  auto h = make(blocking(2, config::Overlap::queue));
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(h->handle(event()).ok());
  EXPECT_EQ(h->running(), 2u);
  EXPECT_EQ(h->queued(), 3u);
  // Each child killed makes room for the next queued event.
  supervisor.kill_all();
  ASSERT_TRUE(run_until([&] { return stats[3].dropped == 2 && h->running() == 2; }));
  EXPECT_EQ(h->queued(), 1u);
  supervisor.kill_all();
  ASSERT_TRUE(run_until([&] { return stats[3].dropped == 4 && h->running() == 1; }));
  EXPECT_EQ(h->queued(), 0u);
}

TEST_F(ExecHandlerTest, FullQueueDropsTheOldestAndCountsIt) {
  auto h = make(blocking(1, config::Overlap::queue), /*queue=*/2);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(h->handle(event()).ok());
  EXPECT_EQ(h->running(), 1u);
  EXPECT_EQ(h->queued(), 2u);
  EXPECT_EQ(stats[3].dropped, 2u);  // seq 2 and 3 pushed out by 4 and 5
}

TEST_F(ExecHandlerTest, SkipDropsWhileRunning) {
  auto h = make(blocking(1, config::Overlap::skip));
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(h->handle(event()).ok());
  EXPECT_EQ(h->running(), 1u);
  EXPECT_EQ(h->queued(), 0u);
  EXPECT_EQ(stats[3].dropped, 3u);
}

TEST_F(ExecHandlerTest, KillReplacesTheRunningChild) {
  auto h = make(blocking(1, config::Overlap::kill));
  ASSERT_TRUE(h->handle(event()).ok());
  ASSERT_EQ(h->running(), 1u);
  ASSERT_TRUE(h->handle(event()).ok());
  // The first child is killed and counted as dropped; the second event then runs.
  ASSERT_TRUE(run_until([&] { return stats[3].dropped == 1 && h->running() == 1; }));
  EXPECT_EQ(h->queued(), 0u);
  EXPECT_EQ(stats[3].failed, 0u);
}

TEST_F(ExecHandlerTest, TimeoutFailsTheRun) {
  auto h = make({.argv = {"sleep", "1000"}, .timeout = 50ms});
  ASSERT_TRUE(h->handle(event()).ok());
  ASSERT_TRUE(run_until([&] { return stats[3].failed == 1; }));
  EXPECT_EQ(h->running(), 0u);
}

TEST_F(ExecHandlerTest, RemovedHandlerDropsItsQueueButLetsItsChildFinish) {
  auto h = make(blocking(1, config::Overlap::queue));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(h->handle(event()).ok());
  h.reset();  // as a reload that removes the handler
  EXPECT_EQ(stats[3].dropped, 2u);
  EXPECT_EQ(supervisor.live(), 1u);
}

TEST_F(ExecHandlerTest, OutputAndPayloadReachTheChild) {
  // The child echoes its stdin into its exit status: payload "7" -> exit 7.
  auto h = make({.argv = {"sh", "-c", "read x; exit $x"}});
  ASSERT_TRUE(h->handle(event(3, "7\n")).ok());
  ASSERT_TRUE(run_until([&] { return stats[3].failed == 1; }));
  auto ok = make({.argv = {"sh", "-c", "read x; test \"$x\" = hello && test \"$TOCSIN_SEQ\" = 2"}});
  ASSERT_TRUE(ok->handle(event(3, "hello\n")).ok());
  ASSERT_TRUE(run_until([&] { return stats[3].delivered == 1; }));
}

}  // namespace
}  // namespace tocsin
