// timer_source.h — the `timer` kind (SPEC §3): one timerfd per timer, armed once with an
// absolute first expiry and an interval, so the kernel keeps the period and nothing drifts. A read
// returns how many expirations passed; more than one is reported in the event
// (`{"expirations":N,"overruns":N-1}`), never merged silently. A `cluster: true` timer runs on the
// wall clock's grid (multiples of `every` since the epoch, the same on every daemon) and fires a
// period only when the cluster claim for it is this daemon's (docs/cluster.md).
// With `iterations` a timer retires after its last event. Reactor thread only.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "sources/timer/timer_spec.h"
#include "tocsin/event_source.h"

namespace tocsin {

class KernelTimer;

class TimerSource final : public EventSource {
 public:
  explicit TimerSource(SourceContext& context);
  ~TimerSource() override;

  const SourceSchema& schema() const override { return timer_schema(); }
  Result<void> add(const SourceSpec& spec, bool from_config) override;
  bool remove(std::string_view id) override;
  bool contains(std::string_view id) const override;
  bool unchanged(const SourceSpec& spec) const override;
  std::optional<bool> runtime(std::string_view id) const override;
  std::vector<std::string> config_ids() const override;
  std::size_t count() const override { return timers_.size(); }
  void status(std::vector<SourceStatus>& out, std::size_t limit) const override;
  void stop() override;

 private:
  void retired(KernelTimer* timer);

  SourceContext& context_;
  std::map<std::string, std::shared_ptr<KernelTimer>, std::less<>> timers_;
};

}  // namespace tocsin
