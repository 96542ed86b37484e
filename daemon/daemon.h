// daemon.h — the composition root (DESIGN §2): owns the io_context (one reactor, one thread), the
// clock, the signal table and its counters, the dispatcher, the process supervisor, the source
// registry (every source kind) and the server; starts them in order, reloads atomically and stops
// cleanly.
//
// Start order: table (handlers) -> sources -> "ready". Stop order: sources -> handlers (queued
// events dropped and logged, children's process groups killed and reaped) -> reactor, bounded by
// kStopGrace. Everything runs on the thread that calls run().
#pragma once

#include <chrono>
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

struct DaemonOptions {
  std::string config_path;
  std::optional<std::string> socket_path;         // --socket, overrides socket.path
  std::optional<config::LogLevel> log_level;      // --log-level, overrides log.level
};

// Loads the config file and applies the command-line overrides, then checks the plugins it names
// (check_plugins). Used by start, reload and --check alike.
config::LoadResult load_for_daemon(const DaemonOptions& options);

inline constexpr std::chrono::seconds kStopGrace{2};

class Daemon {
 public:
  explicit Daemon(DaemonOptions options, std::unique_ptr<Clock> clock = nullptr);
  ~Daemon();
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Builds the table and starts the sources from an already loaded config.
  Result<void> start(config::Config config);
  // Runs the reactor until stop; returns the process exit code (0 after a clean stop).
  int run();
  // Graceful stop; safe to call more than once.
  void request_stop();
  // Re-reads the config file; on any error the running configuration stays and the error (with
  // file:line:column) is returned and logged.
  Result<void> reload();

  boost::asio::io_context& io();
  Dispatcher& dispatcher();
  const SignalStats& stats() const;
  const config::Config& config() const;

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace tocsin
