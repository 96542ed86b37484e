// The one place production code reads the time (DESIGN §3).
#include "tocsin/clock.h"

#include <time.h>

namespace tocsin {

std::chrono::system_clock::time_point SystemClock::wall_now() const {
  return std::chrono::system_clock::now();
}

std::chrono::steady_clock::time_point SystemClock::steady_now() const {
  return std::chrono::steady_clock::now();
}

std::int64_t SystemClock::now_ns(ClockId clock) const {
  clockid_t id = clock == ClockId::boottime   ? CLOCK_BOOTTIME
                 : clock == ClockId::realtime ? CLOCK_REALTIME
                                              : CLOCK_MONOTONIC;
  timespec ts{};
  clock_gettime(id, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

}  // namespace tocsin
