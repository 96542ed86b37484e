// ManualClock — a Clock that moves only when the test says so.
#pragma once

#include "tocsin/clock.h"

namespace tocsin::testing {

class ManualClock final : public Clock {
 public:
  std::chrono::system_clock::time_point wall_now() const override { return wall_; }
  std::chrono::steady_clock::time_point steady_now() const override { return steady_; }
  std::int64_t now_ns(ClockId clock) const override {
    auto since = clock == ClockId::realtime ? wall_.time_since_epoch() : steady_.time_since_epoch();
    return std::chrono::duration_cast<std::chrono::nanoseconds>(since).count();
  }
  void advance(std::chrono::nanoseconds d) {
    wall_ += std::chrono::duration_cast<std::chrono::system_clock::duration>(d);
    steady_ += d;
  }
  void set_wall(std::chrono::system_clock::time_point t) { wall_ = t; }

 private:
  std::chrono::system_clock::time_point wall_{std::chrono::sys_days{std::chrono::year{2026} /
                                                                      11 / 22}};
  std::chrono::steady_clock::time_point steady_{};
};

}  // namespace tocsin::testing
