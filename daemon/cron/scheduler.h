// scheduler.h — the cron source's logic, without a kernel timer (SPEC §3 cron). Pure: every entry
// point takes the wall-clock time as an argument, so tests drive it through clock jumps, suspends
// and restarts with plain numbers (tests/unit/cron_scheduler_test.cc). CronSource (sources/) arms
// one CLOCK_REALTIME timerfd for next_deadline() and calls collect() when it expires or when the
// wall clock was set.
//
// Rules (docs/cron.md):
//  - A job's slots are next_fire() of its schedule; a slot fires at slot + a random jitter.
//  - A slot found due at most kLateGrace after its deadline fires normally; slots passed over
//    meanwhile (a busy reactor, a short clock step) are counted in the event's `missed`.
//  - Slots older than that were missed (downtime, suspend, a forward clock jump): `missed: skip`
//    drops them (logged and counted in status); `missed: once` fires one catch-up event with
//    `catch_up: true`, `missed` = how many slots it stands for, `scheduled` = the latest of them.
//  - The wall clock set backwards: a fixed-time job does not fire again a slot it already fired
//    (unless the step is over kBackwardLimit: then the clock was wrong, and time restarts);
//    a wildcard job keeps its real-time cadence from the new time.
//  - `missed: once` jobs remember their last slot (last_slots()); the owner persists it, and
//    restore() on the next start turns the slots passed while the daemon was down into one catch-up.
// Not thread safe; the reactor's thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cron/expression.h"
#include "sources/timer/timer_queue.h"
#include "sources/cron/cron_spec.h"
#include "tocsin/config.h"
#include "tocsin/result.h"
#include "tocsin/signal.h"

namespace tocsin::cron {

constexpr std::chrono::seconds kLateGrace{60};
constexpr std::chrono::hours kBackwardLimit{3};
constexpr std::uint64_t kMaxMissedCount = 100000;  // counting stops here (docs/cron.md)

struct Fire {
  std::string id;
  SignalId signal = 0;
  Seconds scheduled;        // the slot (for a catch-up, the latest missed slot)
  std::int64_t late_ms = 0; // now - (slot + jitter)
  std::uint64_t missed = 0; // slots this event stands for beyond `scheduled` (a catch-up: all)
  bool catch_up = false;
  bool reboot = false;      // an @reboot job, at daemon start
  bool cluster = false;     // fires only when this daemon claims the slot
  std::uint64_t iteration = 0;
  const date::time_zone* zone = nullptr;
};

struct JobInfo {
  std::string id;
  SignalId signal = 0;
  std::string schedule;  // the text (or the uWSGI form)
  std::string zone;
  config::Missed missed_policy = config::Missed::skip;
  std::optional<Seconds> next;  // the next slot
  std::optional<Seconds> last;  // the latest slot an event stood for
  std::uint64_t fired = 0;
  std::uint64_t missed = 0;     // slots missed in total (fired as catch-ups or skipped)
  std::uint64_t iterations = 0;
  bool from_config = false;
};

// What a `missed: once` job remembers across restarts.
struct SavedSlot {
  std::string schedule;
  std::string zone;
  Seconds last;  // the last slot fired, or when the job was first seen
};

class CronScheduler {
 public:
  // Random jitter: returns a value in [0, bound_ms]. Tests pass a fixed one.
  using Jitter = std::function<std::int64_t(std::int64_t bound_ms)>;
  explicit CronScheduler(Jitter jitter = {});
  ~CronScheduler();
  CronScheduler(const CronScheduler&) = delete;
  CronScheduler& operator=(const CronScheduler&) = delete;

  // Adds a job (the spec's id must be set and unused). `saved` is its remembered slot for
  // `missed: once`. `at_start`: @reboot jobs fire once now (only at daemon start).
  Result<void> add(const config::CronSpec& spec, bool from_config, std::int64_t now_ms,
                   const std::optional<SavedSlot>& saved, bool at_start);
  bool remove(const std::string& id);
  bool contains(const std::string& id) const;
  bool is_runtime(const std::string& id) const;  // a job added with from_config = false
  const config::CronSpec* spec(const std::string& id) const;

  // The earliest deadline in ms since the epoch (CLOCK_REALTIME), or nullopt when none is armed.
  std::optional<std::int64_t> next_deadline() const;
  // Everything due at `now_ms`, at most `max` events (call again while more are due).
  // `clock_was_set`: the wall clock was stepped (TFD_TIMER_CANCEL_ON_SET); jobs re-plan first.
  void collect(std::int64_t now_ms, bool clock_was_set, std::vector<Fire>& out, std::size_t max);
  // Jobs whose slots were missed and dropped (`missed: skip`) in the last collect(), for the log.
  const std::vector<std::pair<std::string, std::uint64_t>>& skipped() const { return skipped_; }

  // The remembered slots of the `missed: once` jobs, for the state file.
  std::map<std::string, SavedSlot> last_slots() const;
  bool state_dirty() const { return state_dirty_; }
  void clear_state_dirty() { state_dirty_ = false; }

  std::size_t size() const;
  std::vector<JobInfo> list(std::size_t limit) const;
  std::vector<std::string> ids(bool from_config) const;

 private:
  struct Job;
  void arm(Job& job, Seconds slot);
  void replan_after_clock_set(std::int64_t now_ms);

  Jitter jitter_;
  std::map<std::string, std::unique_ptr<Job>> jobs_;
  TimerQueue queue_;  // deadlines in ms
  std::vector<std::pair<std::string, std::uint64_t>> skipped_;
  bool state_dirty_ = false;
};

}  // namespace tocsin::cron
