// at_spec.h — the spec of `at` entries (SPEC §3 `at`, docs/config.md): fire once at an instant,
// like at(1) and `systemd-run --on-calendar`. One schema for the YAML file and for `add_at`.
//
// `time` is RFC 3339 with an offset (2026-12-24T18:00:00+01:00, or Z), or a wall time without one
// (2026-12-24T18:00, seconds optional) in `tz` (default: the daemon's local zone). A wall time in
// a DST gap is the first instant after the gap; in a repeated hour, the first occurrence (as a
// fixed-time cron job, docs/cron.md). An offset and `tz` together are refused: one of them would
// be ignored.
#pragma once

#include <chrono>
#include <string>

#include "sources/cron/cron_spec.h"  // config::Missed
#include "tocsin/event_source.h"

namespace tocsin {

inline constexpr SourceKind kAtKind{"at"};

}  // namespace tocsin

namespace tocsin::config {

struct AtSpec : SourceSpec {
  std::string time;  // as written
  std::string tz;    // the zone of a wall time; empty = local (or the text had an offset)
  std::chrono::sys_seconds instant{};  // `time` resolved
  Missed missed = Missed::skip;
  bool same_as(const SourceSpec& other) const override;
};

}  // namespace tocsin::config

namespace tocsin {

const SourceSchema& at_schema();

}  // namespace tocsin
