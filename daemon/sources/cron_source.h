// cron_source.h — the `cron` source (SPEC §3): a CronScheduler driven by one CLOCK_REALTIME
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

#include <cstdint>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "cron/scheduler.h"
#include "tocsin/clock.h"
#include "tocsin/config.h"
#include "tocsin/dispatcher.h"
#include "tocsin/result.h"

namespace boost::asio {
class io_context;
}

namespace tocsin {

// How the last write of the state file went, for `status`.
struct CronStateHealth {
  std::string path;   // empty until a state file has been written or tried
  std::string error;  // the last write's error; empty when it succeeded
  std::chrono::system_clock::time_point failing_since{};  // when writes began to fail
};

class CronSource {
 public:
  static constexpr std::size_t kFireBatch = 4096;
  static constexpr const char* kStateFile = "cron-state.json";

  CronSource(boost::asio::io_context& io, Dispatcher& dispatcher, const Clock& clock);
  ~CronSource();
  CronSource(const CronSource&) = delete;
  CronSource& operator=(const CronSource&) = delete;

  // Whether apply_config() would succeed: every expression and zone valid, no id taken by a
  // run-time job. Changes nothing.
  Result<void> check_config(const std::vector<config::CronSpec>& jobs) const;
  // Start (`at_start`: reads the state file, fires @reboot jobs) or reload: unchanged config jobs
  // keep their plan and counts, removed ones go, new ones are added. Run-time jobs stay.
  Result<void> apply_config(const std::vector<config::CronSpec>& jobs, const std::string& state_dir,
                            bool at_start);
  // A run-time job (add_cron). @reboot is refused: it belongs to the daemon's start.
  Result<void> add(const config::CronSpec& spec);
  bool remove(const std::string& id);
  bool contains(const std::string& id) const;
  bool is_runtime(const std::string& id) const;  // added over the socket (kept across reloads)
  std::size_t count() const;
  std::vector<cron::JobInfo> list(std::size_t limit) const;
  // Writes the state and disarms the timer.
  void stop();
  // For `cluster: true` jobs: each slot fires only when this claims it.
  void set_claimer(Claimer claimer);
  CronStateHealth state_health() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tocsin
