// histogram.h — a Prometheus-style histogram of durations in seconds (docs/metrics.md): fixed
// upper bounds, a count per bucket, the sum and the count. The exec handlers (child run time)
// and the Hub (one-of time to ack) observe into one; the server renders them
// (daemon/server/introspection.cc). Reactor thread only; observing is a few comparisons.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <span>
#include <vector>

namespace tocsin {

class Histogram {
 public:
  // `bounds`: increasing upper bounds in seconds; +Inf is implied.
  explicit Histogram(std::span<const double> bounds)
      : bounds_(bounds.begin(), bounds.end()), counts_(bounds.size() + 1, 0) {}

  void observe(double seconds) {
    auto it = std::lower_bound(bounds_.begin(), bounds_.end(), seconds);
    ++counts_[static_cast<std::size_t>(it - bounds_.begin())];
    sum_ += seconds;
    ++count_;
  }
  template <typename Rep, typename Period>
  void observe(std::chrono::duration<Rep, Period> d) {
    observe(std::chrono::duration<double>(d).count());
  }

  const std::vector<double>& bounds() const { return bounds_; }
  // Observations at or below bounds()[i] (cumulative, as Prometheus' `le` buckets).
  std::uint64_t cumulative(std::size_t i) const {
    std::uint64_t n = 0;
    for (std::size_t k = 0; k <= i && k < counts_.size(); ++k) n += counts_[k];
    return n;
  }
  double sum() const { return sum_; }
  std::uint64_t count() const { return count_; }

 private:
  std::vector<double> bounds_;
  std::vector<std::uint64_t> counts_;  // per bucket, not cumulative; the last is +Inf
  double sum_ = 0;
  std::uint64_t count_ = 0;
};

// An exec handler's child, from spawn to exit: from a few milliseconds to minutes.
inline constexpr double kExecDurationBuckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                  1,     2.5,  5,     10,   30,  60,   300};
// A one-of event, from when the hub gave it to a subscriber to its ack.
inline constexpr double kAckDurationBuckets[] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};

}  // namespace tocsin
