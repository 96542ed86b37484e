#include "sources/timer/timerfd.h"

#include <algorithm>

#include "sources/timer/timer_spec.h"
#include "tocsin/config.h"

namespace tocsin::timerfd {

clockid_t kernel_clock(ClockId c) {
  return c == ClockId::boottime   ? CLOCK_BOOTTIME
         : c == ClockId::realtime ? CLOCK_REALTIME
                                  : CLOCK_MONOTONIC;
}

timespec to_timespec(std::int64_t ns) {
  return timespec{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
}

std::string payload(std::uint64_t expirations, std::int64_t late_ns) {
  return "{\"expirations\":" + std::to_string(expirations) +
         ",\"overruns\":" + std::to_string(expirations - 1) +
         ",\"late_us\":" + std::to_string(std::max<std::int64_t>(late_ns, 0) / 1000) + "}";
}

std::chrono::system_clock::time_point wall_time(const Clock& clock, ClockId id, std::int64_t ns) {
  auto in = std::chrono::nanoseconds(ns - clock.now_ns(id));
  return clock.wall_now() + std::chrono::duration_cast<std::chrono::system_clock::duration>(in);
}

std::string describe_period(std::int64_t period_ms, ClockId clock) {
  std::string out = "every " + config::format_duration(config::Millis(period_ms));
  if (clock != ClockId::monotonic) out += " (" + std::string(to_string(clock)) + ")";
  return out;
}

}  // namespace tocsin::timerfd
