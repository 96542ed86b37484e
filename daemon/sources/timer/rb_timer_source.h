// rb_timer_source.h — the `rb_timer` kind (SPEC §3): user-space timers in a TimerQueue (an
// indexed 4-ary heap, docs/decisions/0004) per clock, all driven by one timerfd per clock armed
// for the earliest deadline and re-armed only when the earliest changes. Each rb_timer is a
// 72-byte slab object plus a 24-byte heap entry and 8 bytes of index (an intrusive hash set by
// id): a million cost ~107 MB (docs/BENCHMARKS.md). Periods are kept from the previous deadline
// (no drift); a timer found late by more than a period fires once with its overruns counted, as a
// kernel timer does. At most kFireBatch timers fire per reactor turn, so a million due at once do
// not stall clients. With no timer armed no kernel timer is armed: idle means no wake-ups.
// Reactor thread only.
#pragma once

#include <memory>

#include "sources/timer/timer_spec.h"
#include "tocsin/event_source.h"

namespace tocsin {

class RbTimerSource final : public EventSource {
 public:
  static constexpr std::size_t kFireBatch = 4096;

  explicit RbTimerSource(SourceContext& context);
  ~RbTimerSource() override;

  const SourceSchema& schema() const override { return rb_timer_schema(); }
  Result<void> add(const SourceSpec& spec, bool from_config) override;
  bool remove(std::string_view id) override;
  bool contains(std::string_view id) const override;
  bool unchanged(const SourceSpec& spec) const override;
  std::optional<bool> runtime(std::string_view id) const override;
  std::vector<std::string> config_ids() const override;
  std::size_t count() const override;
  void status(std::vector<SourceStatus>& out, std::size_t limit) const override;
  void stop() override;

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace tocsin
