// posix_source.h — POSIX signals sent to the daemon (SPEC §3 `posix`, §5).
//
// Every signal of interest is blocked and read from one signalfd in the reactor: no code runs in
// an async-signal handler. SIGHUP, SIGTERM and SIGINT keep their daemon meaning (reload, stop);
// the signals in `posix_signals` raise their numbered signal with a JSON payload
//   {"signal":"SIGUSR1","signo":10,"pid":1234,"uid":0,"value":0}
// (value: the sigqueue(3) integer). The source id is the signal's name ("SIGUSR1").
//
// A signal once mapped stays blocked and read for the life of the process, also if a reload
// unmaps it: it is then logged and ignored rather than killing the daemon with its default
// action. Standard (non real-time) signals sent faster than the reactor reads them are merged by
// the kernel; real-time signals (SIGRTMIN+n) queue and are never merged (see docs/config.md).
// Reactor thread only.
#pragma once

#include <map>
#include <memory>
#include <vector>

#include "sources/posix/posix_spec.h"
#include "tocsin/event_source.h"

namespace tocsin {

class PosixSignalSource final : public EventSource {
 public:
  explicit PosixSignalSource(SourceContext& context);
  ~PosixSignalSource() override;

  const SourceSchema& schema() const override { return posix_schema(); }
  // Blocks HUP/TERM/INT and the mapped signals, opens the signalfd (the first time) and replaces
  // the mappings; the signalfd's mask only widens.
  Result<void> apply_config(std::span<const SourceSpec* const> specs,
                            const SourceSettings& settings, bool at_start) override;
  // Mappings are configured, never added or removed at run time.
  Result<void> add(const SourceSpec& spec, bool from_config) override;
  bool remove(std::string_view id) override;
  bool contains(std::string_view id) const override;
  bool unchanged(const SourceSpec& spec) const override;
  std::optional<bool> runtime(std::string_view id) const override;
  std::vector<std::string> config_ids() const override;
  std::size_t count() const override;
  void status(std::vector<SourceStatus>& out, std::size_t limit) const override;
  void stop() override;

  // Blocks SIGHUP, SIGTERM and SIGINT in the calling thread so that they stay pending until the
  // reactor reads them. Called first thing in main(), before the config is even loaded.
  static void block_daemon_signals();

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace tocsin
