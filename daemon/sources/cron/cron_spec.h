// cron_spec.h — the spec of `cron` entries (SPEC §3, docs/cron.md), one schema for the YAML
// file and for `add_cron`. The expression itself is parsed by the pure cron module
// (daemon/cron/expression.h); its errors point at the column within the expression.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "tocsin/event_source.h"

namespace tocsin::config {

enum class Missed { skip, once };

struct CronSpec : SourceSpec {
  // Exactly one of `schedule` (the expression text, CRON_TZ= prefix included) and `uwsgi` (the
  // five uWSGI numbers: minute hour day month weekday) is set.
  std::string schedule;
  std::optional<std::vector<int>> uwsgi;
  std::string tz;  // IANA zone; empty = the daemon's local zone
  Millis jitter{0};
  Missed missed = Missed::skip;
  std::uint64_t iterations = 0;
  bool clustered = false;
  bool cluster() const override { return clustered; }
  bool same_as(const SourceSpec& other) const override;
};

}  // namespace tocsin::config

namespace tocsin {

const SourceSchema& cron_schema();

}  // namespace tocsin
