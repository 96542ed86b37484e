// config.h — the configuration as plain structs (SPEC §4). This is the schema's one home: the YAML
// loader (daemon/config/loader.cc, the only place yaml-cpp types appear) fills it, and every part
// of the daemon reads it. Every item keeps the Location it was declared at, so that later checks
// (a source kind not built yet, a plugin that fails to start) can still point at file:line:column.
//
// Signal references in sources are resolved by the loader: a name must exist in `signals`, a
// number may name a signal without a table entry (an unhandled signal, SPEC §1).
#pragma once

#include <chrono>
#include <memory>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "tocsin/location.h"
#include "tocsin/signal.h"

namespace tocsin {
struct SourceSpec;
SourceKind source_kind_of(const SourceSpec& spec);  // event_source.h: spec.kind
}  // namespace tocsin

namespace tocsin::config {

using Millis = std::chrono::milliseconds;

enum class LogLevel { trace, debug, info, warn, error, critical, off };
std::string_view to_string(LogLevel level);
std::optional<LogLevel> log_level_from_string(std::string_view text);  // also "warning"

// ---- handlers (SPEC §2) ------------------------------------------------------------------------
enum class Overlap { queue, skip, kill };
std::string_view to_string(Overlap overlap);

struct ExecHandler {
  std::vector<std::string> argv;  // argv[0] is the program; no shell. Never empty.
  std::optional<Millis> timeout;  // none: no timeout
  unsigned concurrency = 1;       // >= 1
  Overlap overlap = Overlap::queue;
  bool operator==(const ExecHandler&) const = default;
};

struct LogHandler {
  LogLevel level = LogLevel::info;
  bool operator==(const LogHandler&) const = default;
};

enum class TargetKind { subscribers, subscriber, subscriber_named, group };
struct TargetHandler {
  TargetKind kind = TargetKind::subscribers;
  std::string name;  // for subscriber_named ("subscriber:NAME") and group ("group:NAME")
  bool operator==(const TargetHandler&) const = default;
};

struct PluginHandler {
  std::string plugin;     // "pgnotify" of "pgnotify.notify"
  std::string handler;    // "notify"
  std::string with_json;  // the `with:` mapping converted to JSON text ("{}" when absent)
  bool operator==(const PluginHandler&) const = default;
};

struct HandlerSpec {
  std::variant<ExecHandler, LogHandler, TargetHandler, PluginHandler> kind;
  Location where;
  // Equality ignores the location: an unchanged handler moved to another line is unchanged.
  bool operator==(const HandlerSpec& other) const { return kind == other.kind; }
};

// Who may raise / subscribe: user names and "@group" names. An absent list means anyone who can
// open the socket (SPEC §7).
struct Acl {
  std::optional<std::vector<std::string>> raise;
  std::optional<std::vector<std::string>> subscribe;
  // Who may add sources that raise this signal, register subscriber targets on it and remove
  // them, besides admins (SPEC §7). Absent: admins only.
  std::optional<std::vector<std::string>> declare;
  bool operator==(const Acl&) const = default;
};

struct SignalSpec {
  SignalId number = 0;
  std::string name;  // may be empty
  std::string description;
  std::vector<HandlerSpec> handlers;
  Acl acl;
  // One-of delivery (SPEC §2): an event delivered this many times without an ack is dead-lettered
  // (0: never); raised on `dead_letter` when set, else dropped, logged and counted.
  std::uint32_t max_deliveries = 0;
  std::optional<SignalId> dead_letter;
  Location where;
};

// ---- sources (SPEC §3) -------------------------------------------------------------------------
// Each source kind's spec derives from SourceSpec and lives with its kind (daemon/sources/*/,
// include/tocsin/event_source.h); the configuration holds them all, in file order.

struct PluginSpec {
  std::string name;           // "pgnotify"
  std::string settings_json;  // the plugin's mapping as JSON text
  Location where;
};

// ---- daemon-wide settings ----------------------------------------------------------------------
struct SocketSpec {
  std::string path = "/run/tocsin/tocsin.sock";
  unsigned mode = 0660;     // YAML: an octal string "0660"
  std::string group;        // empty: the daemon's group
  std::string admin_group;  // empty: root only
};

struct Limits {
  std::uint64_t clients = 1024;
  std::uint64_t line_bytes = 1048576;
  std::uint64_t subscriber_queue = 65536;
  std::uint64_t backlog = 65536;       // per-signal backlog of one-of events with no subscriber
  std::uint64_t payload_bytes = 65536; // at most 65536 (SPEC §1)
  std::uint64_t subscriptions = 4096;  // per client
  std::uint64_t sources = 1100000;     // run-time + configured sources
  std::uint64_t exec_queue = 1024;     // events queued per exec handler (overlap: queue)
  std::uint64_t prefetch = 32;         // unacked one-of events a subscriber holds by default
  Millis ack_timeout{30000};
};
inline constexpr std::uint64_t kMaxPrefetch = 65536;

// `metrics: {listen: "ADDRESS:PORT"}`: the Prometheus endpoint (docs/metrics.md). The address is
// an IP literal (IPv4, or IPv6 in brackets): no name is looked up. Port 0 binds an ephemeral port
// (the log says which).
struct MetricsSpec {
  std::string listen;   // as written: "127.0.0.1:9750", "[::1]:9750"
  std::string address;  // "127.0.0.1", "::1"
  std::uint16_t port = 0;
  Location where;
  bool operator==(const MetricsSpec& o) const { return address == o.address && port == o.port; }
};
// Parses "ADDRESS:PORT"; nullopt with the reason in *why.
std::optional<MetricsSpec> parse_listen_address(std::string_view text, std::string* why);

struct Config {
  std::string file;  // where it was loaded from
  SocketSpec socket;
  Limits limits;
  std::optional<MetricsSpec> metrics;  // off unless set
  LogLevel log_level = LogLevel::info;
  std::string state_dir = "/var/lib/tocsin";
  std::vector<std::string> plugin_path{"/usr/lib/tocsin/plugins"};
  std::vector<SignalSpec> signals;  // sorted by number, at most one per number
  // Every configured source, of every kind, in file order (sections in the order of the kinds'
  // list, daemon/sources/kinds.cc).
  std::vector<std::shared_ptr<const SourceSpec>> sources;
  std::vector<PluginSpec> plugins;
  Location signals_where;  // of the `signals` key, for table-wide errors

  // The sources of one kind, as their spec type: sources_of<TimerSpec>(SourceKind::timer).
  template <typename Spec>
  std::vector<const Spec*> sources_of(SourceKind kind) const {
    std::vector<const Spec*> out;
    for (const auto& s : sources) {
      if (source_kind_of(*s) == kind) out.push_back(static_cast<const Spec*>(s.get()));
    }
    return out;
  }
};

struct ConfigError {
  Location where;
  std::string message;
};
// "file:line:column: message"
std::string to_string(const ConfigError& error);

struct LoadResult {
  std::optional<Config> config;     // set iff errors is empty
  std::vector<ConfigError> errors;  // every error found, in file order
};

// Parses and validates. Never throws. Collects every error it can find (a YAML syntax error
// stops at that error).
LoadResult load_config_file(const std::string& path);
LoadResult load_config_string(std::string_view yaml_text, const std::string& file_name);

// Durations "250ms", "2s", "5m", "1h" and concatenations such as "1h30m" (SPEC §4). No bare
// numbers: a unit is required, so that `every: 5` cannot silently mean 5 ms. Returns nullopt and
// sets *why on error.
std::optional<Millis> parse_duration(std::string_view text, std::string* why);
std::string format_duration(Millis d);  // "1h30m", "250ms", "0ms"

}  // namespace tocsin::config
