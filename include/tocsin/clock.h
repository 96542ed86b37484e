// clock.h — the time seam (DESIGN §3). Production code reads time only through a Clock;
// SystemClock (daemon/os/system_clock.cc) is the one place that asks the OS, tests use
// ManualClock (tests/fakes/manual_clock.h). Reactor thread only; not thread safe.
#pragma once

#include <chrono>
#include <cstdint>

namespace tocsin {

// The kernel clocks timers run on (SPEC §3 `clock:`).
enum class ClockId : std::uint8_t { monotonic, boottime, realtime };

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall clock, for event timestamps and calendar (cron) computations.
  virtual std::chrono::system_clock::time_point wall_now() const = 0;
  // Monotonic clock, for durations, timeouts and deadlines.
  virtual std::chrono::steady_clock::time_point steady_now() const = 0;
  // Nanoseconds on a kernel clock (clock_gettime), for timers armed on that clock.
  virtual std::int64_t now_ns(ClockId clock) const = 0;
};

class SystemClock final : public Clock {
 public:
  std::chrono::system_clock::time_point wall_now() const override;
  std::chrono::steady_clock::time_point steady_now() const override;
  std::int64_t now_ns(ClockId clock) const override;
};

}  // namespace tocsin
