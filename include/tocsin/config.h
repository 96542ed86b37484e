// config.h — the configuration as plain structs (SPEC §4). This is the schema's one home: the YAML
// loader (daemon/config/loader.cc, the only place yaml-cpp types appear) fills it, and every part
// of the daemon reads it. Every item keeps the Location it was declared at, so that later checks
// (a source kind not built yet, a plugin that fails to start) can still point at file:line:column.
//
// Signal references in sources are resolved by the loader: a name must exist in `signals`, a
// number may name a signal without a table entry (an unhandled signal, SPEC §1).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "tocsin/signal.h"

namespace tocsin::config {

using Millis = std::chrono::milliseconds;

// 1-based line and column, as editors show them. line == 0 means "no position" (e.g. a file
// that could not be opened).
struct Location {
  std::string file;
  int line = 0;
  int column = 0;
  bool operator==(const Location&) const = default;
};
// "file:line:column", or "file" when there is no position.
std::string to_string(const Location& where);

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
  bool operator==(const Acl&) const = default;
};

struct SignalSpec {
  SignalId number = 0;
  std::string name;  // may be empty
  std::string description;
  std::vector<HandlerSpec> handlers;
  Acl acl;
  Location where;
};

// ---- sources (SPEC §3) -------------------------------------------------------------------------
enum class ClockKind { monotonic, boottime, realtime };
std::string_view to_string(ClockKind clock);

// Used for both `timers` (kernel timer each) and `rb_timers` (user-space tree).
struct TimerSpec {
  std::string id;  // given, or generated as "timer-N" / "rb_timer-N" (N = 1-based list index)
  SignalId signal = 0;
  Millis every{0};               // >= 1ms
  std::optional<Millis> after;   // first expiry; none means `every`
  ClockKind clock = ClockKind::monotonic;
  std::uint64_t iterations = 0;  // 0 = forever
  bool cluster = false;
  Location where;
  bool same_as(const TimerSpec& o) const {
    return id == o.id && signal == o.signal && every == o.every && after == o.after &&
           clock == o.clock && iterations == o.iterations && cluster == o.cluster;
  }
};

// Bits of FileMonitorSpec::events.
enum FileEvent : std::uint32_t {
  kFileCreate = 1u << 0,
  kFileModify = 1u << 1,
  kFileCloseWrite = 1u << 2,
  kFileDelete = 1u << 3,
  kFileMove = 1u << 4,
  kFileAttrib = 1u << 5,
  kFileAllEvents = (1u << 6) - 1,
};

struct FileMonitorSpec {
  std::string id;  // given, or "file-N"
  SignalId signal = 0;
  std::string path;
  bool recursive = false;
  std::uint32_t events = kFileAllEvents;
  std::string match;                  // glob on the file name; empty = everything
  Millis settle{0};                   // quiet period that coalesces a burst
  std::optional<Millis> max_delay;    // a burst never delays a raise longer than this
  std::uint64_t iterations = 0;
  Location where;
};

enum class Missed { skip, once };

struct CronSpec {
  std::string id;  // given, or "cron-N"
  SignalId signal = 0;
  // Exactly one of `schedule` (the expression text, CRON_TZ= prefix included, parsed by the cron
  // module) and `uwsgi` (the five uWSGI numbers: minute hour day month weekday) is set.
  std::string schedule;
  Location schedule_where;  // of the schedule's scalar, so parse errors can add the column
  std::optional<std::vector<int>> uwsgi;
  std::string tz;  // IANA zone; empty = the daemon's local zone
  Millis jitter{0};
  Missed missed = Missed::skip;
  std::uint64_t iterations = 0;
  bool cluster = false;
  Location where;
};

struct PosixSignalSpec {
  std::string signame;  // canonical: "SIGUSR1", "SIGRTMIN+3"
  int signo = 0;        // the kernel's number
  SignalId signal = 0;
  Location where;
};

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
  Millis ack_timeout{30000};
};

struct Config {
  std::string file;  // where it was loaded from
  SocketSpec socket;
  Limits limits;
  LogLevel log_level = LogLevel::info;
  std::string state_dir = "/var/lib/tocsin";
  std::vector<std::string> plugin_path{"/usr/lib/tocsin/plugins"};
  std::vector<SignalSpec> signals;  // sorted by number, at most one per number
  std::vector<TimerSpec> timers;
  std::vector<TimerSpec> rb_timers;
  std::vector<FileMonitorSpec> file_monitors;
  std::vector<CronSpec> cron;
  std::vector<PosixSignalSpec> posix_signals;
  std::vector<PluginSpec> plugins;
  Location signals_where;  // of the `signals` key, for table-wide errors
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

// Checks a file monitor's `match` glob (fnmatch(3) syntax, on one file name): nullopt when it is
// fine, else what is wrong (a `/`, an unclosed `[`, an unknown `[:class:]`, a trailing `\`).
std::optional<std::string> glob_error(std::string_view pattern);

// "SIGUSR1", "USR1", "SIGRTMIN+2", "SIGRTMAX-1" -> kernel number, for the signals that
// posix_signals may map. SIGHUP, SIGTERM and SIGINT are refused (daemon meaning, SPEC §5), as are
// SIGKILL, SIGSTOP, the synchronous faults and SIGCHLD/SIGPIPE. Sets *canonical on success.
std::optional<int> parse_posix_signal(std::string_view text, std::string* canonical,
                                      std::string* why);

}  // namespace tocsin::config
