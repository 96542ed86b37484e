// cron_source.h — the `cron` kind (SPEC §3): a CronScheduler driven by one CLOCK_REALTIME
// timerfd armed, absolute, for the earliest deadline with TFD_TIMER_CANCEL_ON_SET, so a wall-clock
// step (settimeofday, an NTP step, resume) wakes the source at once and every job re-plans.
//
// Events carry {"scheduled": ISO 8601 in the job's zone, "zone", "late_ms", "missed", "catch_up"}.
// `missed: once` jobs remember their last slot in STATE_DIR/cron-state.json, written atomically
// (temp file, fsync, rename, fsync of the directory) after the slots change, on a thread of its
// own so that a slow disk never stalls the reactor (stop() waits for it); a corrupt file is
// logged, kept as cron-state.json.corrupt and ignored. An unwritable state directory is logged
// (catch-ups then cannot survive a restart) and nothing else changes.
// Reactor thread only.
#pragma once

#include <memory>

#include "cron/scheduler.h"
#include "sources/cron/cron_spec.h"
#include "sources/state_file.h"
#include "tocsin/event_source.h"

namespace tocsin {

class CronSource final : public EventSource {
 public:
  static constexpr std::size_t kFireBatch = 4096;
  static constexpr const char* kStateFile = "cron-state.json";

  explicit CronSource(SourceContext& context);
  ~CronSource() override;

  const SourceSchema& schema() const override { return cron_schema(); }
  // Every expression and zone valid.
  Result<void> check_config(std::span<const SourceSpec* const> specs,
                            const SourceSettings& settings) const override;
  // Start (`at_start`: reads the state file, fires @reboot jobs) or reload: unchanged configured
  // jobs keep their plan and counts, removed ones go, new ones are added. Run-time jobs stay.
  Result<void> apply_config(std::span<const SourceSpec* const> specs,
                            const SourceSettings& settings, bool at_start) override;
  // A run-time job (add_cron). @reboot is refused: it belongs to the daemon's start.
  Result<void> add(const SourceSpec& spec, bool from_config) override;
  bool remove(std::string_view id) override;
  bool contains(std::string_view id) const override;
  bool unchanged(const SourceSpec& spec) const override;
  std::optional<bool> runtime(std::string_view id) const override;
  std::vector<std::string> config_ids() const override;
  std::size_t count() const override;
  void status(std::vector<SourceStatus>& out, std::size_t limit) const override;
  // `cron_state`: how the last write of the state file went.
  void status_sections(spec::Node& status) const override;
  void metrics(std::vector<MetricSample>& out) const override;
  // Writes the state and disarms the timer.
  void stop() override;
  StateFileHealth state_health() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tocsin
