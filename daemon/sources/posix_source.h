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

#include <functional>
#include <memory>
#include <vector>

#include "tocsin/config.h"
#include "tocsin/dispatcher.h"
#include "tocsin/result.h"

namespace boost::asio {
class io_context;
}

namespace tocsin {

class PosixSignalSource {
 public:
  struct DaemonActions {
    std::function<void()> reload;              // SIGHUP
    std::function<void(int signo)> stop;       // SIGTERM, SIGINT
  };

  PosixSignalSource(boost::asio::io_context& io, Dispatcher& dispatcher, DaemonActions actions);
  ~PosixSignalSource();

  // Blocks HUP/TERM/INT and the mapped signals, opens the signalfd and starts reading.
  Result<void> start(const std::vector<config::PosixSignalSpec>& mappings);
  // Replaces the mappings (reload); widens the signalfd's mask for newly mapped signals.
  Result<void> set_mappings(const std::vector<config::PosixSignalSpec>& mappings);
  void stop();

  // Blocks SIGHUP, SIGTERM and SIGINT in the calling thread so that they stay pending until the
  // reactor reads them. Called first thing in main(), before the config is even loaded.
  static void block_daemon_signals();

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace tocsin
