// signal.h — the vocabulary every part of tocsin speaks: signal numbers, sources, events.
//
// Contract (SPEC §1): a signal is a number 0-255 with an optional unique name; an event is one
// raising of a signal, stamped with a per-run sequence number by the Dispatcher.
// Events are immutable once stamped and are shared (EventPtr) by every handler and subscriber
// queue they reach, so fan-out never copies the payload.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace tocsin {

using SignalId = std::uint8_t;
inline constexpr int kSignalCount = 256;

// Where an event came from (SPEC §1 `source.kind`): a name. Kinds are open: a source kind names
// its own (include/tocsin/event_source.h), so a new kind needs no edit here. The name must be
// static (a literal): a SourceKind only points at it.
class SourceKind {
 public:
  constexpr SourceKind() = default;  // "api"
  constexpr explicit SourceKind(std::string_view name) : name_(name) {}
  constexpr std::string_view name() const { return name_; }
  friend constexpr bool operator==(SourceKind a, SourceKind b) { return a.name_ == b.name_; }
  // The kinds the daemon itself raises with (a kind's own constant may live with it, as `at`'s).
  static const SourceKind timer, rb_timer, file, cron, posix, pg, raise, api;

 private:
  std::string_view name_ = "api";
};
inline constexpr SourceKind SourceKind::timer{"timer"};
inline constexpr SourceKind SourceKind::rb_timer{"rb_timer"};
inline constexpr SourceKind SourceKind::file{"file"};
inline constexpr SourceKind SourceKind::cron{"cron"};
inline constexpr SourceKind SourceKind::posix{"posix"};
inline constexpr SourceKind SourceKind::pg{"pg"};
inline constexpr SourceKind SourceKind::raise{"raise"};
inline constexpr SourceKind SourceKind::api{"api"};
inline constexpr std::string_view to_string(SourceKind kind) { return kind.name(); }

struct SourceRef {
  SourceKind kind = SourceKind::api;
  std::string id;  // the source's id ("tick", "posix:SIGUSR1", a client name, ...)
};

struct Event {
  std::uint64_t seq = 0;  // 1, 2, 3, ... for each daemon run
  SignalId signal = 0;
  std::string name;  // the signal's name in the table at raise time, or empty
  SourceRef source;
  std::chrono::system_clock::time_point time;  // wall clock at raise
  std::uint64_t iteration = 0;                 // 1-based for repeating sources, 0 otherwise
  std::string payload;                         // UTF-8 text, at most limits.payload_bytes
};
using EventPtr = std::shared_ptr<const Event>;

// `[a-z][a-z0-9._-]{0,63}` (SPEC §1).
bool is_valid_signal_name(std::string_view name);
// Client, group, target and plugin names: `[A-Za-z0-9._-]{1,64}` (what a shell types unquoted).
bool is_valid_client_name(std::string_view name);
// Source ids: `[A-Za-z0-9._:-]+` (generated ids contain ':').
bool is_valid_source_id(std::string_view id);

// RFC 3339, UTC, microseconds: 2026-11-22T08:28:38.123456Z
std::string format_rfc3339(std::chrono::system_clock::time_point t);
// The same, written at `out` (at most kRfc3339MaxBytes: 27 until the year 9999); returns the end.
// The event encoder's hot path: no allocation, the date formatted once per second.
inline constexpr std::size_t kRfc3339MaxBytes = 88;
char* write_rfc3339(char* out, std::chrono::system_clock::time_point t);

// "5 (usr1) seq 12" — how every log line about an event names it.
std::string describe_event(const Event& event);

}  // namespace tocsin
