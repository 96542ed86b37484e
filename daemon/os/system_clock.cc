// The one place production code reads the time (DESIGN §3).
#include "tocsin/clock.h"

namespace tocsin {

std::chrono::system_clock::time_point SystemClock::wall_now() const {
  return std::chrono::system_clock::now();
}

std::chrono::steady_clock::time_point SystemClock::steady_now() const {
  return std::chrono::steady_clock::now();
}

}  // namespace tocsin
