// timerfd.h — what both timer kinds share: the kernel clock of a ClockId, absolute times for
// timerfd_settime, and the payload of a timer event. Reactor thread only (no state).
#pragma once

#include <time.h>

#include <cstdint>
#include <string>

#include "tocsin/clock.h"

namespace tocsin::timerfd {

inline constexpr std::int64_t kNsPerMs = 1000000;

clockid_t kernel_clock(ClockId clock);
timespec to_timespec(std::int64_t ns);
// {"expirations":N,"overruns":N-1,"late_us":L}: `late_ns`, how long after the due time of the
// last expiration the event was raised.
std::string payload(std::uint64_t expirations, std::int64_t late_ns);
// The wall-clock time of `ns` on `clock`, read against `clock_`'s present.
std::chrono::system_clock::time_point wall_time(const Clock& clock, ClockId id, std::int64_t ns);
// "every 2s", "every 2s (boottime)"
std::string describe_period(std::int64_t period_ms, ClockId clock);

}  // namespace tocsin::timerfd
