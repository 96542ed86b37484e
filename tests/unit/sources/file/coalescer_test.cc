// The batching of a file monitor (daemon/sources/file/coalescer.h) on a ManualClock.
#include "sources/file/coalescer.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "fakes/manual_clock.h"
#include "sources/file/file_spec.h"

namespace tocsin::fs {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;
using testing::ManualClock;

// ---- Coalescer ---------------------------------------------------------------------------------

TEST(Coalescer, WithoutSettleABatchIsDueAtOnce) {
  ManualClock clock;
  Coalescer c(0ms, std::nullopt);
  EXPECT_FALSE(c.due());
  c.add("/a", config::kFileCreate, clock.steady_now());
  ASSERT_TRUE(c.due());
  EXPECT_EQ(*c.due(), clock.steady_now());
}

TEST(Coalescer, MergesEventsOfOnePathAndKeepsFirstSeenOrder) {
  ManualClock clock;
  Coalescer c(0ms, std::nullopt);
  c.add("/b", config::kFileCreate, clock.steady_now());
  c.add("/a", config::kFileModify, clock.steady_now());
  c.add("/b", config::kFileCloseWrite, clock.steady_now());
  Batch b = c.take();
  ASSERT_EQ(b.changes.size(), 2u);
  EXPECT_EQ(b.changes[0].path, "/b");
  EXPECT_EQ(b.changes[0].events, config::kFileCreate | config::kFileCloseWrite);
  EXPECT_EQ(b.changes[1].path, "/a");
  EXPECT_FALSE(b.overflow);
  EXPECT_FALSE(c.pending());
  EXPECT_FALSE(c.due());
}

TEST(Coalescer, SettleWaitsForQuiet) {
  ManualClock clock;
  Coalescer c(100ms, std::nullopt);
  auto t0 = clock.steady_now();
  c.add("/a", config::kFileModify, t0);
  EXPECT_EQ(*c.due(), t0 + 100ms);
  clock.advance(60ms);
  c.add("/a", config::kFileModify, clock.steady_now());
  EXPECT_EQ(*c.due(), t0 + 160ms) << "a new change restarts the quiet period";
}

// Drives a coalescer as the source does: a change every `every` for `length`, raising whenever
// the batch is due. Returns the times of the raises (offsets from the start).
std::vector<std::chrono::milliseconds> steady_writer(Coalescer& c, std::chrono::milliseconds every,
                                                     std::chrono::milliseconds length) {
  ManualClock clock;
  auto start = clock.steady_now();
  std::vector<std::chrono::milliseconds> raises;
  for (auto t = 0ms; t < length; t += 1ms) {
    if (t % every == 0ms) c.add("/f", config::kFileModify, clock.steady_now());
    if (auto due = c.due(); due && *due <= clock.steady_now()) {
      c.take();
      raises.push_back(
          std::chrono::duration_cast<std::chrono::milliseconds>(clock.steady_now() - start));
    }
    clock.advance(1ms);
  }
  return raises;
}

TEST(Coalescer, ASteadyWriterStarvesAPureDebounce) {
  Coalescer c(50ms, std::nullopt);
  EXPECT_TRUE(steady_writer(c, 5ms, 2000ms).empty()) << "the failure max_delay exists for";
}

TEST(Coalescer, MaxDelayBoundsTheDelayOfASteadyStream) {
  Coalescer c(50ms, 200ms);
  auto raises = steady_writer(c, 5ms, 2000ms);
  ASSERT_GE(raises.size(), 9u);
  EXPECT_EQ(raises.front(), 200ms);
  for (std::size_t i = 1; i < raises.size(); ++i) {
    // The next batch starts with the first write after a raise (at most 5 ms later).
    EXPECT_LE(raises[i] - raises[i - 1], 205ms) << "raise " << i;
    EXPECT_GE(raises[i] - raises[i - 1], 200ms) << "raise " << i;
  }
}

TEST(Coalescer, OverflowAloneMakesABatch) {
  ManualClock clock;
  Coalescer c(0ms, std::nullopt);
  c.mark_overflow(clock.steady_now());
  ASSERT_TRUE(c.due());
  Batch b = c.take();
  EXPECT_TRUE(b.overflow);
  EXPECT_TRUE(b.changes.empty());
}

}  // namespace
}  // namespace tocsin::fs
