// dispatcher.h — the core (DESIGN §1): every source calls Dispatcher::raise; the dispatcher
// stamps the event (seq, time, name), counts it, and gives it to each handler of its signal in
// table order. A handler that fails — returns an error or throws — is logged and counted, and the
// handlers after it still run (Django's send_robust). A signal without handlers goes to the
// unhandled sink (the waiters of the socket server), else it is counted as unhandled.
//
// Reactor thread only. Handlers are called synchronously and must not block: work that takes time
// (a child process, a socket write) is started and finished asynchronously by the handler, which
// then reports its outcome itself through SignalStats.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tocsin/clock.h"
#include "tocsin/result.h"
#include "tocsin/signal.h"
#include "tocsin/signal_table.h"

namespace tocsin {

// Per-handler counts, for metrics: shared so that asynchronous work (an exec child's exit) can
// still count after the handler was replaced by a reload.
struct HandlerCounters {
  std::uint64_t runs = 0;      // events given to the handler
  std::uint64_t failures = 0;  // of which failed (error, exception, or reported later)
};

class Handler {
 public:
  virtual ~Handler() = default;
  HandlerCounters& counters() { return *counters_; }
  const HandlerCounters& counters() const { return *counters_; }
  const std::shared_ptr<HandlerCounters>& shared_counters() const { return counters_; }
  // Accepts one event. Return an error (or throw) when the event cannot be handled at all; the
  // dispatcher then counts it as failed. On success the handler counts delivered/dropped/failed
  // itself, now or when its asynchronous work ends.
  virtual Result<void> handle(const EventPtr& event) = 0;
  // A short name for logs: "exec[/usr/bin/rebuild]", "log[info]".
  virtual std::string describe() const = 0;

 private:
  std::shared_ptr<HandlerCounters> counters_ = std::make_shared<HandlerCounters>();
};

// Cluster jobs (docs/cluster.md): asks whether this daemon may fire `job`'s `slot` (a number the
// same on every daemon: a cron slot's epoch second, a cluster timer's grid index). `done` is
// called exactly once, on the reactor, maybe before claim() returns.
using ClaimDone = std::function<void(bool claimed, const std::string& why)>;
using Claimer = std::function<void(const std::string& job, std::int64_t slot, ClaimDone done)>;

class Dispatcher {
 public:
  // Returns true when it took the event (a waiter was there).
  using UnhandledSink = std::function<bool(const EventPtr&)>;

  Dispatcher(const Clock& clock, SignalStats& stats);

  // Publishes a table. Published tables are never modified: every change (reload, a handler
  // registered at run time) builds a new table and publishes it.
  void set_table(std::shared_ptr<const SignalTable> table);
  const SignalTable& table() const { return *table_; }
  void set_unhandled_sink(UnhandledSink sink) { unhandled_sink_ = std::move(sink); }

  // Raises one event and runs its handlers. Returns the stamped event.
  EventPtr raise(SignalId signal, SourceRef source, std::string payload,
                 std::uint64_t iteration = 0);

  std::uint64_t last_seq() const { return seq_; }

 private:
  const Clock& clock_;
  SignalStats& stats_;
  std::shared_ptr<const SignalTable> table_;
  // A table replaced while raises are running (a handler that reloads) is kept here until the
  // outermost raise returns: a raise walks its table's handler lists without holding a reference
  // of its own (an atomic increment and decrement for every event otherwise).
  int raising_ = 0;
  std::vector<std::shared_ptr<const SignalTable>> retired_;
  UnhandledSink unhandled_sink_;
  std::uint64_t seq_ = 0;
};

}  // namespace tocsin
