// signal_table.h — the signal table (SPEC §1, §2): for each number 0-255 at most one entry with
// a unique name, a description, an ordered list of handlers and an ACL; plus the per-signal
// counters, which live apart from the table (SignalStats) so that they survive reloads.
//
// A SignalTable is built whole (from the config, on start and on each reload) and then published
// to the Dispatcher, after which it is never modified (the dispatcher walks handler lists without
// copying them); handlers that did not change are carried over from the old table, so an
// exec handler keeps its running children and its queue across a reload.
// Reactor thread only.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tocsin/config.h"
#include "tocsin/result.h"
#include "tocsin/signal.h"

namespace tocsin {

class Handler;

struct SignalCounters {
  std::uint64_t raised = 0;     // events of this signal
  std::uint64_t delivered = 0;  // handler deliveries that succeeded
  std::uint64_t dropped = 0;    // deliveries given up by policy (overlap: skip, a full queue)
  std::uint64_t failed = 0;     // handler deliveries that failed (error, exception, exit != 0)
  std::uint64_t unhandled = 0;  // events with no handler and no waiter
  std::chrono::system_clock::time_point last_raised{};
};

class SignalStats {
 public:
  SignalCounters& operator[](SignalId id) { return counters_[id]; }
  const SignalCounters& operator[](SignalId id) const { return counters_[id]; }

 private:
  std::array<SignalCounters, kSignalCount> counters_{};
};

struct SignalEntry {
  SignalId number = 0;
  std::string name;
  std::string description;
  // Parallel vectors: the spec each handler was built from (to carry handlers over on reload).
  std::vector<std::shared_ptr<Handler>> handlers;
  std::vector<config::HandlerSpec> handler_specs;
  config::Acl acl;
  std::uint32_t max_deliveries = 0;  // one-of: 0 = no limit
  std::optional<SignalId> dead_letter;
};

class SignalTable {
 public:
  // Fails if the number is taken, or the name is invalid or taken.
  Result<void> add(SignalEntry entry);

  const SignalEntry* find(SignalId id) const;
  const SignalEntry* find(std::string_view name) const;
  // "17" or "tmp-changed" -> 17. A number without an entry resolves (unhandled signals are
  // legal); an unknown name does not.
  std::optional<SignalId> resolve(std::string_view number_or_name) const;

  // Entries in number order.
  std::vector<const SignalEntry*> entries() const;
  std::size_t size() const { return by_name_.size() + unnamed_; }

 private:
  std::array<std::unique_ptr<SignalEntry>, kSignalCount> slots_;
  std::unordered_map<std::string, SignalId> by_name_;
  std::size_t unnamed_ = 0;
};

}  // namespace tocsin
