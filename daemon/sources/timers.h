// timers.h — the `timer` and `rb_timer` sources (SPEC §3).
//
// timer: one timerfd each, armed with an absolute first expiry and an interval, so the kernel keeps
// the period and nothing drifts. A read returns how many expirations passed; more than one is
// reported in the event (`{"expirations":N,"overruns":N-1}`), never merged silently.
//
// rb_timer: user-space timers in a TimerQueue (an indexed 4-ary heap) per clock, all driven by
// one timerfd per clock armed for the earliest deadline and re-armed only when the earliest
// changes. Each rb_timer is a 72-byte slab object plus a 24-byte heap entry and 8 bytes of index
// (an intrusive hash set by id): a million cost ~107 MB (docs/BENCHMARKS.md). Periods are kept from the previous deadline (no
// drift); a timer found late by more than a period fires once with its overruns counted, as a
// kernel timer does. At most kFireBatch timers fire per reactor turn, so a million due at once do
// not stall clients.
//
// Both kinds: `iterations` (0 = forever; a timer retires after its last), ids unique across all
// sources (checked by the caller), `from_config` to tell YAML timers (replaced on reload) from
// run-time ones (kept across reloads). With no timer armed there is no kernel timer armed: idle
// means no wake-ups. Reactor thread only.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tocsin/clock.h"
#include "tocsin/config.h"
#include "tocsin/dispatcher.h"
#include "tocsin/result.h"

namespace boost::asio {
class io_context;
}

namespace tocsin {

struct TimerInfo {
  std::string id;
  SourceKind kind = SourceKind::timer;
  SignalId signal = 0;
  std::int64_t every_ms = 0;
  ClockId clock = ClockId::monotonic;
  std::uint64_t iterations = 0;
  std::uint64_t fired = 0;     // expirations so far (the last event's iteration)
  std::uint64_t overruns = 0;  // expirations reported as overruns (more than one per event)
  std::int64_t next_ns = 0;    // next deadline on its clock
  bool from_config = false;
};

ClockId to_clock_id(config::ClockKind kind);
std::string_view to_string(ClockId clock);

class TimerSources {
 public:
  static constexpr std::size_t kFireBatch = 4096;

  TimerSources(boost::asio::io_context& io, Dispatcher& dispatcher, const Clock& clock);
  ~TimerSources();
  TimerSources(const TimerSources&) = delete;
  TimerSources& operator=(const TimerSources&) = delete;

  Result<void> add(const config::TimerSpec& spec, SourceKind kind, bool from_config);
  // Removes a timer of either kind; false if there is none with this id.
  bool remove(const std::string& id);
  bool contains(const std::string& id) const;
  std::optional<TimerInfo> find(const std::string& id) const;

  // Reload: config timers that are unchanged (same id, same settings) keep their phase and
  // counts; config timers no longer listed are removed; new ones are added. Run-time timers stay.
  // Fails, changing nothing, when a new config id is taken by a run-time timer.
  Result<void> apply_config(const std::vector<config::TimerSpec>& timers,
                            const std::vector<config::TimerSpec>& rb_timers);

  std::size_t timer_count() const;
  std::size_t rb_timer_count() const;
  // Up to `limit` timers of each kind, kernel timers first.
  std::vector<TimerInfo> list(std::size_t limit) const;
  void stop();
  // For `cluster: true` timers: each period fires only when this claims it.
  void set_claimer(Claimer claimer);

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace tocsin
