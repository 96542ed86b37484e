// timer_spec.h — the spec of `timers` and `rb_timers` entries (SPEC §3, docs/config.md), one
// schema for the YAML file and for `add_timer` / `add_rb_timer`.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

#include "tocsin/clock.h"
#include "tocsin/event_source.h"

namespace tocsin::config {

enum class ClockKind { monotonic, boottime, realtime };
std::string_view to_string(ClockKind clock);

// Both `timers` (a kernel timer each) and `rb_timers` (user-space, one kernel timer for all).
struct TimerSpec : SourceSpec {
  Millis every{0};              // >= 1ms
  std::optional<Millis> after;  // first expiry; none means `every`
  ClockKind clock = ClockKind::monotonic;
  std::uint64_t iterations = 0;  // 0 = forever
  bool clustered = false;        // timers only: fires on one daemon of the cluster per period
  bool cluster() const override { return clustered; }
  bool same_as(const SourceSpec& other) const override;
};

}  // namespace tocsin::config

namespace tocsin {

inline constexpr std::uint64_t kMaxRbIterations = 0xffffffffu;  // an rb_timer keeps 32 bits

ClockId to_clock_id(config::ClockKind kind);
std::string_view to_string(ClockId clock);

// The schemas of the two kinds.
const SourceSchema& timer_schema();
const SourceSchema& rb_timer_schema();

}  // namespace tocsin
