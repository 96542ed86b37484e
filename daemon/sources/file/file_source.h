// file_source.h — the `file` kind (SPEC §3, docs/file-monitors.md): inotify file monitors.
//
// One inotify fd for the whole daemon, in the reactor; when it is readable it is read with a
// 256 KiB buffer until EAGAIN (at most kMaxReadsPerTurn reads, then the reactor serves others and
// the reading goes on), every event handed to the WatchSet (sources/file/watch_set.h), which
// keeps the watch trees and decides what each monitor reports. Batches are raised when their
// monitor's Coalescer says they are due: at the end of the read with `settle: 0`, else from a
// per-monitor timer armed only while a batch is pending. A batch becomes one event, or several
// (`part`/`parts`) when its paths do not fit in one payload; all parts of a batch carry the same
// `iteration`, and `iterations: N` retires the monitor after its N-th batch.
//
// A degraded monitor (a watch that could not be added, e.g. the watch limit) is retried every
// kRetryInterval, only while one is degraded that way: otherwise idle means no timer at all.
// A monitor whose path does not exist waits on inotify events of an ancestor, not on a timer.
//
// Configured monitors are replaced on reload when changed; run-time ones are kept. Reactor
// thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>

#include "sources/file/file_spec.h"
#include "tocsin/event_source.h"

namespace tocsin {

class FileSource final : public EventSource {
 public:
  static constexpr std::chrono::seconds kRetryInterval{2};
  static constexpr std::size_t kMaxReadsPerTurn = 64;
  static constexpr std::size_t kMinPayloadCap = 8192;   // one path always fits
  static constexpr std::size_t kMaxPayloadCap = 65536;  // SPEC §1

  explicit FileSource(SourceContext& context);
  ~FileSource() override;

  const SourceSchema& schema() const override { return file_schema(); }
  // Takes limits.payload_bytes (clamped to [kMinPayloadCap, kMaxPayloadCap]), then the default.
  Result<void> apply_config(std::span<const SourceSpec* const> specs,
                            const SourceSettings& settings, bool at_start) override;
  // Errors: a bad path or glob (invalid_params).
  Result<void> add(const SourceSpec& spec, bool from_config) override;
  bool remove(std::string_view id) override;
  bool contains(std::string_view id) const override;
  bool unchanged(const SourceSpec& spec) const override;
  std::optional<bool> runtime(std::string_view id) const override;
  std::vector<std::string> config_ids() const override;
  std::size_t count() const override;
  void status(std::vector<SourceStatus>& out, std::size_t limit) const override;
  // `file_monitors`: each monitor's watches and state (at most 100).
  void status_sections(spec::Node& status) const override;
  void metrics(std::vector<MetricSample>& out) const override;
  void stop() override;

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace tocsin
