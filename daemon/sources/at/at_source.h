// at_source.h — the `at` kind (SPEC §3 `at`, docs/config.md "at"): each entry fires once, at its
// instant, like at(1) and `systemd-run --on-calendar`.
//
// One CLOCK_REALTIME timerfd, absolute, armed for the earliest pending instant: the kernel fires
// it when the wall clock reaches that instant, also after the clock is stepped or the machine
// resumes (late, with `late_ms` in the event). Events carry
// {"scheduled": ISO 8601 in the entry's zone, "zone", "late_ms", "catch_up"}, iteration 1.
//
// Missed instants. An instant that passes while the daemon runs fires. One that passed while the
// daemon was down is told apart from one that was already past when the entry was first given,
// through STATE_DIR/at-state.json (written like cron's state, sources/state_file.h): for each
// entry, when it was first seen and whether it fired.
//  - seen before its instant, not fired, instant now past: missed while down. `missed: once`
//    fires it at once (`catch_up: true`); `missed: skip` logs it and shows it as `missed`.
//  - fired before (a restart, or the same `add_at` again): never fires again.
//  - past and never seen: a configured entry is shown as `passed` and logged; `add_at` refuses it.
// A configured entry stays after it fires (status shows it `fired`, so a reload that keeps it
// does not fire it again); a run-time entry retires once it fired. Reactor thread only.
#pragma once

#include <memory>

#include "sources/at/at_spec.h"
#include "sources/state_file.h"
#include "tocsin/event_source.h"

namespace tocsin {

class AtSource final : public EventSource {
 public:
  static constexpr const char* kStateFile = "at-state.json";

  explicit AtSource(SourceContext& context);
  ~AtSource() override;

  const SourceSchema& schema() const override { return at_schema(); }
  Result<void> apply_config(std::span<const SourceSpec* const> specs,
                            const SourceSettings& settings, bool at_start) override;
  Result<void> add(const SourceSpec& spec, bool from_config) override;
  bool remove(std::string_view id) override;
  bool contains(std::string_view id) const override;
  bool unchanged(const SourceSpec& spec) const override;
  std::optional<bool> runtime(std::string_view id) const override;
  std::vector<std::string> config_ids() const override;
  std::size_t count() const override;
  void status(std::vector<SourceStatus>& out, std::size_t limit) const override;
  // `at_state`: how the last write of the state file went.
  void status_sections(spec::Node& status) const override;
  void metrics(std::vector<MetricSample>& out) const override;
  void stop() override;

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace tocsin
