// loader.cc — YAML text -> Config (SPEC §4). The only file that sees yaml-cpp: what it returns is
// plain structs, so the rest of the daemon and the tests never depend on the YAML library.
//
// The Parser walks the document once, one function per section, and collects every error it can
// find instead of stopping at the first: someone fixing a config wants the whole list from one
// `tocsind --check`. Each error points at the node at fault — the key for unknown and duplicate
// keys, the value for bad values — because that is where the editor must jump.
//
// yaml-cpp gives every scalar as text (it does not resolve YAML's types), so the loader reads the
// text itself, whether quoted or not: `mode: 0660` and `mode: "0660"` mean the same. Only the
// conversion of free-form plugin settings to JSON looks at quoting, to keep "5" a string.

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <span>

#include <yaml-cpp/yaml.h>
#include <nlohmann/json.hpp>

#include "cron/expression.h"
#include "tocsin/config.h"

namespace tocsin::config {

// ---- names and formatting ----------------------------------------------------------------------

std::string to_string(const Location& where) {
  if (where.line <= 0) return where.file;
  return where.file + ":" + std::to_string(where.line) + ":" + std::to_string(where.column);
}

std::string to_string(const ConfigError& error) {
  return to_string(error.where) + ": " + error.message;
}

namespace {
constexpr std::array<std::string_view, 7> kLevelNames = {"trace", "debug",    "info", "warn",
                                                         "error", "critical", "off"};
constexpr std::array<std::string_view, 3> kOverlapNames = {"queue", "skip", "kill"};
constexpr std::array<std::string_view, 3> kClockNames = {"monotonic", "boottime", "realtime"};
}  // namespace

std::string_view to_string(LogLevel level) { return kLevelNames[static_cast<size_t>(level)]; }

std::optional<LogLevel> log_level_from_string(std::string_view text) {
  if (text == "warning") return LogLevel::warn;
  for (size_t i = 0; i < kLevelNames.size(); ++i) {
    if (kLevelNames[i] == text) return static_cast<LogLevel>(i);
  }
  return std::nullopt;
}

std::string_view to_string(Overlap overlap) { return kOverlapNames[static_cast<size_t>(overlap)]; }

std::string_view to_string(ClockKind clock) { return kClockNames[static_cast<size_t>(clock)]; }

namespace {

// ---- schema ------------------------------------------------------------------------------------

using Keys = std::span<const std::string_view>;

constexpr std::string_view kTopKeys[] = {"socket",        "limits",  "log",           "state_dir",
                                         "plugin_path",   "signals", "timers",        "rb_timers",
                                         "file_monitors", "cron",    "posix_signals", "plugins"};
constexpr std::string_view kSocketKeys[] = {"path", "mode", "group", "admin_group"};
constexpr std::string_view kLimitKeys[] = {"clients", "line_bytes",    "subscriber_queue",
                                           "backlog", "payload_bytes", "subscriptions",
                                           "sources", "exec_queue",    "ack_timeout"};
constexpr std::pair<std::string_view, std::uint64_t Limits::*> kCountLimits[] = {
    {"clients", &Limits::clients},
    {"line_bytes", &Limits::line_bytes},
    {"subscriber_queue", &Limits::subscriber_queue},
    {"backlog", &Limits::backlog},
    {"payload_bytes", &Limits::payload_bytes},
    {"subscriptions", &Limits::subscriptions},
    {"sources", &Limits::sources},
    {"exec_queue", &Limits::exec_queue}};
constexpr std::string_view kLogKeys[] = {"level"};
constexpr std::string_view kSignalKeys[] = {"name", "description", "handlers", "acl"};
constexpr std::string_view kHandlerKinds[] = {"exec", "log", "target", "plugin"};
constexpr std::string_view kHandlerKeys[] = {"exec",    "log",         "target",  "plugin",
                                             "timeout", "concurrency", "overlap", "with"};
constexpr std::string_view kAclKeys[] = {"raise", "subscribe"};
constexpr std::string_view kTimerKeys[] = {"id",    "signal",     "every",  "after",
                                           "clock", "iterations", "cluster"};
constexpr std::string_view kFileKeys[] = {"id",    "signal", "path",      "recursive", "events",
                                          "match", "settle", "max_delay", "iterations"};
constexpr std::string_view kCronKeys[] = {"id",     "signal", "schedule",   "uwsgi",  "tz",
                                          "jitter", "missed", "iterations", "cluster"};

struct NamedEvent {
  std::string_view name;
  FileEvent bit;
};
constexpr NamedEvent kFileEvents[] = {
    {"create", kFileCreate}, {"modify", kFileModify}, {"close_write", kFileCloseWrite},
    {"delete", kFileDelete}, {"move", kFileMove},     {"attrib", kFileAttrib}};

// One line each in the docs; the field ranges of uWSGI's cron (minute hour day month weekday).
struct UwsgiField {
  std::string_view name;
  int min;
  int max;
};
constexpr UwsgiField kUwsgiFields[] = {
    {"minute", 0, 59}, {"hour", 0, 23}, {"day", 1, 31}, {"month", 1, 12}, {"weekday", 0, 7}};

constexpr int kMaxJsonDepth = 64;
constexpr std::uint64_t kMaxPayloadBytes = 65536;  // SPEC §1
constexpr size_t kMaxSocketPath = sizeof(sockaddr_un::sun_path) - 1;
constexpr std::uint64_t kAnyCount = std::numeric_limits<std::uint64_t>::max();
constexpr off_t kMaxFileBytes = 64 * 1024 * 1024;

// ---- text helpers ------------------------------------------------------------------------------

// How a value is shown in a message: quoted and escaped, cut short when long.
std::string shown(std::string_view text) {
  constexpr size_t kMaxChars = 60;
  std::string out = "\"";
  size_t chars = 0;
  for (char c : text) {
    // Count characters, not bytes, so that a cut never splits a UTF-8 sequence.
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80 && chars++ == kMaxChars) {
      out += "...";
      break;
    }
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x",
                    static_cast<unsigned>(static_cast<unsigned char>(c)));
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
      return "nothing";
    case YAML::NodeType::Scalar:
      return shown(node.Scalar());
    case YAML::NodeType::Sequence:
      return node.size() == 0 ? "an empty list" : "a list";
    case YAML::NodeType::Map:
      return node.size() == 0 ? "an empty mapping" : "a mapping";
    case YAML::NodeType::Undefined:
      break;
  }
  return "nothing";
}

std::string join(std::span<const std::string_view> words) {
  std::string out;
  for (std::string_view word : words) {
    if (!out.empty()) out += ", ";
    out += word;
  }
  return out;
}

// Optimal string alignment distance: a swap of two neighbours counts as one edit, the commonest
// typo ("evrey"). Gives up past `limit`, since only near misses make useful hints.
size_t edit_distance(std::string_view a, std::string_view b, size_t limit) {
  size_t gap = a.size() > b.size() ? a.size() - b.size() : b.size() - a.size();
  if (gap > limit) return limit + 1;
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

// The candidate within two edits of `word`, if any. A one-letter word gets no hint: everything
// is near it.
std::optional<std::string> closest(std::string_view word, std::span<const std::string> candidates) {
  size_t limit = std::min<size_t>(2, word.size() > 0 ? word.size() - 1 : 0);
  std::optional<std::string> best;
  size_t best_distance = limit + 1;
  for (const std::string& candidate : candidates) {
    size_t distance = edit_distance(word, candidate, limit);
    if (distance < best_distance) {
      best_distance = distance;
      best = candidate;
    }
  }
  return best;
}

std::optional<std::string> closest(std::string_view word, Keys keys) {
  std::vector<std::string> candidates(keys.begin(), keys.end());
  return closest(word, std::span<const std::string>(candidates));
}

bool is_digits(std::string_view text) {
  return !text.empty() &&
         std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Plain decimal digits only: no sign, no base prefix, no fraction, no underscore.
std::optional<std::uint64_t> parse_decimal(std::string_view text) {
  if (!is_digits(text)) return std::nullopt;
  std::uint64_t value = 0;
  for (char c : text) {
    auto digit = static_cast<std::uint64_t>(c - '0');
    if (value > (kAnyCount - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  return value;
}

// Subscriber, group and plugin names: the same rule as for what a client says in `hello`.
bool is_simple_name(std::string_view text) { return is_valid_client_name(text); }

// User and group names as useradd accepts them (a trailing '$' is Samba's machine accounts).
bool is_account_name(std::string_view text) {
  if (text.empty() || text.size() > 64) return false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-' || (c == '$' && i + 1 == text.size());
    if (!ok) return false;
  }
  return true;
}

// ---- the parser --------------------------------------------------------------------------------

// A node together with what a message about it needs.
struct Value {
  YAML::Node node;
  Location at;       // the node's position, or its key's when the value is empty
  std::string path;  // "timers[0].every"
};

// One checked key of a mapping.
struct Entry {
  std::string key;
  Location key_at;
  Value value;
};

using Entries = std::vector<Entry>;

enum class IfNull { empty, error };

class Parser {
 public:
  Parser(std::string_view text, std::string file) : text_(text), file_(std::move(file)) {}

  LoadResult run();

 private:
  // -- errors and positions
  Location at(const YAML::Mark& mark) const;
  Location empty_item_at(const YAML::Mark& mark) const;
  void error(const Location& where, std::string message);
  std::nullopt_t fail(const Value& v, std::string_view message);
  std::nullopt_t expected(const Value& v, std::string_view what);
  Value item(const Value& list, const YAML::Node& node, size_t index) const;

  // -- generic readers; each reports its own errors and returns nullopt on one
  std::optional<Entries> mapping(const Value& v, std::optional<Keys> known, IfNull if_null,
                                 std::string_view what = "a mapping");
  std::optional<std::vector<Value>> sequence(const Value& v, std::string_view what);
  std::optional<std::string> text(const Value& v, std::string_view what);
  std::optional<std::string> nonempty_text(const Value& v, std::string_view what);
  std::optional<std::uint64_t> count(const Value& v, std::uint64_t min, std::uint64_t max);
  std::optional<bool> boolean(const Value& v);
  std::optional<Millis> duration(const Value& v, Millis min);
  std::optional<SignalId> signal_ref(const Value& v);
  std::optional<nlohmann::json> json(const Value& v, const Value& root, int depth);
  std::optional<std::string> json_text(const Value& v);

  // -- sections
  void top(const YAML::Node& root);
  void socket(const Value& v);
  void limits(const Value& v);
  void log(const Value& v);
  void signals(const Entry& e);
  std::optional<SignalSpec> signal_entry(const Entry& e, SignalId number);
  std::optional<HandlerSpec> handler(const Value& v);
  std::optional<ExecHandler> exec_handler(const Entry& argv, const Entries& fields);
  std::optional<LogLevel> level(const Value& v, bool allow_off);
  std::optional<TargetHandler> target(const Value& v);
  std::optional<PluginHandler> plugin_handler(const Entry& name, const Entries& fields);
  std::optional<Acl> acl(const Value& v);
  void timers(const Value& v, std::vector<TimerSpec>& out, std::string_view id_prefix);
  void file_monitors(const Value& v);
  void cron(const Value& v);
  std::optional<std::vector<int>> uwsgi(const Value& v);
  void posix_signals(const Value& v);
  void plugins(const Value& v);

  // -- cross-references, checked once everything is read
  void source_id(const Entry& e, std::string& id);
  void generated_id(const Value& item, std::string_view prefix, size_t index, std::string& id);
  void check_generated_ids();
  void check_plugin_references();

  std::string_view text_;
  std::string file_;
  Config config_;
  std::vector<ConfigError> errors_;

  std::map<std::string, SignalId> signal_names_;
  std::vector<std::string> signal_name_list_;  // for "did you mean"
  std::map<std::string, Location> given_ids_;
  struct GeneratedId {
    std::string id;
    Location at;
    std::string path;
  };
  std::vector<GeneratedId> generated_ids_;
  struct PluginUse {
    std::string plugin;
    Location at;
    std::string path;
  };
  std::vector<PluginUse> plugin_uses_;
  std::vector<std::string> declared_plugins_;  // even those whose settings have errors
};

Location Parser::at(const YAML::Mark& mark) const {
  if (mark.is_null()) return Location{file_, 0, 0};
  return Location{file_, mark.line + 1, mark.column + 1};
}

// yaml-cpp marks an empty block-sequence item ("-" and nothing after it) at the next token, which
// is on a later line; the dash before it is where the user must look.
Location Parser::empty_item_at(const YAML::Mark& mark) const {
  if (mark.is_null() || mark.pos < 0 || static_cast<size_t>(mark.pos) > text_.size()) {
    return at(mark);
  }
  auto pos = static_cast<size_t>(mark.pos);
  if (pos < text_.size() && (text_[pos] == '~' || text_[pos] == 'n' || text_[pos] == 'N')) {
    return at(mark);  // an explicit ~ or null
  }
  size_t dash = pos;
  while (dash > 0 && std::string_view(" \t\r\n").find(text_[dash - 1]) != std::string_view::npos) {
    --dash;
  }
  if (dash == 0 || text_[dash - 1] != '-') return at(mark);
  --dash;
  std::string_view before = text_.substr(0, dash);
  size_t line_start = before.rfind('\n');
  line_start = line_start == std::string_view::npos ? 0 : line_start + 1;
  int line = 1 + static_cast<int>(std::count(before.begin(), before.end(), '\n'));
  return Location{file_, line, static_cast<int>(dash - line_start) + 1};
}

void Parser::error(const Location& where, std::string message) {
  errors_.push_back(ConfigError{where, std::move(message)});
}

std::nullopt_t Parser::fail(const Value& v, std::string_view message) {
  error(v.at, v.path.empty() ? std::string(message) : v.path + ": " + std::string(message));
  return std::nullopt;
}

std::nullopt_t Parser::expected(const Value& v, std::string_view what) {
  return fail(v, "expected " + std::string(what) + "; got " + describe(v.node));
}

Value Parser::item(const Value& list, const YAML::Node& node, size_t index) const {
  Location where = node.IsNull() ? empty_item_at(node.Mark()) : at(node.Mark());
  if (where.line == 0) where = list.at;
  return Value{node, where, list.path + "[" + std::to_string(index) + "]"};
}

std::optional<Entries> Parser::mapping(const Value& v, std::optional<Keys> known, IfNull if_null,
                                       std::string_view what) {
  if (v.node.IsNull() && if_null == IfNull::empty) return Entries{};
  if (!v.node.IsMap()) return expected(v, what);

  const std::string prefix = v.path.empty() ? "" : v.path + ": ";
  Entries entries;
  std::map<std::string, Location> seen;
  for (auto it = v.node.begin(); it != v.node.end(); ++it) {
    // Copies: the pair behind `it->` is a temporary that dies with the statement.
    const YAML::Node key = it->first;
    const YAML::Node value = it->second;
    Location key_at = at(key.Mark());
    if (!key.IsScalar()) {
      error(key_at, prefix + "expected a plain key; got " + describe(key));
      continue;
    }
    const std::string name = key.Scalar();
    if (auto [first, fresh] = seen.emplace(name, key_at); !fresh) {
      error(key_at, prefix + "duplicate key " + shown(name) + " (first at line " +
                        std::to_string(first->second.line) + ", column " +
                        std::to_string(first->second.column) + ")");
      continue;
    }
    if (known && std::find(known->begin(), known->end(), name) == known->end()) {
      std::string message =
          prefix + (v.path.empty() ? "unknown top-level key " : "unknown key ") + shown(name);
      if (name == "<<") {
        message += "; YAML merge keys are not supported";
      } else if (auto hint = closest(name, *known)) {
        message += "; did you mean " + shown(*hint) + "?";
      } else {
        message += "; expected one of: " + join(*known);
      }
      error(key_at, std::move(message));
      continue;
    }
    // yaml-cpp places an empty value at the next token, often on a later line; the key is where
    // the user must look.
    Location value_at = at(value.Mark());
    if (value.IsNull() && (value_at.line != key_at.line)) value_at = key_at;
    std::string path = v.path.empty() ? name : v.path + "." + name;
    entries.push_back(Entry{name, key_at, Value{value, value_at, std::move(path)}});
  }
  return entries;
}

std::optional<std::vector<Value>> Parser::sequence(const Value& v, std::string_view what) {
  if (!v.node.IsSequence()) return expected(v, what);
  std::vector<Value> items;
  size_t index = 0;
  for (auto it = v.node.begin(); it != v.node.end(); ++it, ++index) {
    items.push_back(item(v, *it, index));
  }
  return items;
}

std::optional<std::string> Parser::text(const Value& v, std::string_view what) {
  if (!v.node.IsScalar()) return expected(v, what);
  return v.node.Scalar();
}

std::optional<std::string> Parser::nonempty_text(const Value& v, std::string_view what) {
  auto s = text(v, what);
  if (s && s->empty()) return expected(v, what);
  return s;
}

std::optional<std::uint64_t> Parser::count(const Value& v, std::uint64_t min, std::uint64_t max) {
  std::string what = max == kAnyCount
                         ? "an integer >= " + std::to_string(min)
                         : "an integer from " + std::to_string(min) + " to " + std::to_string(max);
  if (!v.node.IsScalar()) return expected(v, what);
  const std::string& s = v.node.Scalar();
  std::optional<std::uint64_t> n = parse_decimal(s);
  if (!n || *n < min || *n > max) return expected(v, what);
  return n;
}

std::optional<bool> Parser::boolean(const Value& v) {
  if (v.node.IsScalar()) {
    if (v.node.Scalar() == "true") return true;
    if (v.node.Scalar() == "false") return false;
  }
  return expected(v, "true or false");
}

std::optional<Millis> Parser::duration(const Value& v, Millis min) {
  if (!v.node.IsScalar()) return expected(v, "a duration such as 250ms, 2s, 5m, 1h");
  std::string why;
  std::optional<Millis> d = parse_duration(v.node.Scalar(), &why);
  if (!d) return fail(v, why);
  if (*d < min)
    return fail(v, "expected a duration of at least " + format_duration(min) + "; got " +
                       shown(v.node.Scalar()));
  return d;
}

std::optional<SignalId> Parser::signal_ref(const Value& v) {
  constexpr std::string_view kWhat = "a signal number 0-255 or the name of an entry in signals";
  if (!v.node.IsScalar()) return expected(v, kWhat);
  const std::string& s = v.node.Scalar();
  if (is_digits(s)) {
    std::optional<std::uint64_t> n = parse_decimal(s);
    if (!n || *n >= static_cast<std::uint64_t>(kSignalCount)) return expected(v, kWhat);
    return static_cast<SignalId>(*n);
  }
  if (auto found = signal_names_.find(s); found != signal_names_.end()) return found->second;
  if (!is_valid_signal_name(s)) return expected(v, kWhat);
  std::string message = "unknown signal " + shown(s) + ": no entry in signals has that name";
  if (auto hint = closest(s, signal_name_list_)) message += "; did you mean " + shown(*hint) + "?";
  return fail(v, message);
}

// Settings for plugins are free-form. Scalars keep the type a YAML reader would give them where
// it matters to a plugin (integers, booleans); a quoted scalar always stays a string.
std::optional<nlohmann::json> Parser::json(const Value& v, const Value& root, int depth) {
  // An alias can make a node contain itself; the depth limit stops that too.
  if (depth > kMaxJsonDepth) {
    return fail(root, "nested more than " + std::to_string(kMaxJsonDepth) +
                          " levels deep (does an alias contain itself?)");
  }
  switch (v.node.Type()) {
    case YAML::NodeType::Scalar: {
      const std::string& s = v.node.Scalar();
      const std::string& tag = v.node.Tag();
      if (tag == "!" || tag == "tag:yaml.org,2002:str") return nlohmann::json(s);
      if (s == "true") return nlohmann::json(true);
      if (s == "false") return nlohmann::json(false);
      bool negative = !s.empty() && s[0] == '-';
      if (std::optional<std::uint64_t> n = parse_decimal(negative ? s.substr(1) : s)) {
        constexpr auto kMaxInt =
            static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
        if (!negative) return nlohmann::json(*n);
        if (*n <= kMaxInt + 1) return nlohmann::json(static_cast<std::int64_t>(0 - *n));
      }
      return nlohmann::json(s);
    }
    case YAML::NodeType::Sequence: {
      nlohmann::json array = nlohmann::json::array();
      bool ok = true;
      size_t index = 0;
      for (auto it = v.node.begin(); it != v.node.end(); ++it, ++index) {
        if (auto element = json(item(v, *it, index), root, depth + 1)) {
          array.push_back(std::move(*element));
        } else {
          ok = false;
        }
      }
      if (!ok) return std::nullopt;
      return array;
    }
    case YAML::NodeType::Map: {
      auto fields = mapping(v, std::nullopt, IfNull::error);
      if (!fields) return std::nullopt;
      nlohmann::json object = nlohmann::json::object();
      bool ok = true;
      for (const Entry& f : *fields) {
        if (auto element = json(f.value, root, depth + 1)) {
          object[f.key] = std::move(*element);
        } else {
          ok = false;
        }
      }
      if (!ok) return std::nullopt;
      return object;
    }
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      break;
  }
  return nlohmann::json(nullptr);
}

std::optional<std::string> Parser::json_text(const Value& v) {
  if (v.node.IsNull()) return std::string("{}");
  if (!v.node.IsMap()) return expected(v, "a mapping of settings");
  std::optional<nlohmann::json> j = json(v, v, 0);
  if (!j) return std::nullopt;
  // YAML text may hold bytes that are not UTF-8; JSON text must not.
  return j->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// ---- sections ----------------------------------------------------------------------------------

// The 1-based line of a document marker (`---` or `...` at the start of a line) that follows
// content, i.e. that starts a second document; nullopt when there is none.
std::optional<int> second_document_line(std::string_view text) {
  bool content = false;
  int line = 0;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view l = text.substr(pos, end - pos);
    ++line;
    bool marker = (l.starts_with("---") || l.starts_with("...")) &&
                  (l.size() == 3 || l[3] == ' ' || l[3] == '\t' || l[3] == '\r');
    if (marker && content) return line;
    std::size_t first = l.find_first_not_of(" \t\r");
    if (!marker && first != std::string_view::npos && l[first] != '#' && l[first] != '%') {
      content = true;
    }
    if (end == text.size()) break;
    pos = end + 1;
  }
  return std::nullopt;
}

LoadResult Parser::run() {
  try {
    // One document only. YAML::LoadAll is not used: yaml-cpp 0.7 loops forever on some
    // malformed input after the first document (found by fuzz/config_fuzz.cc; the input is in
    // fuzz/regressions/config/). A document marker at the start of a line after some content
    // starts a second document: refused here, by line.
    if (auto second = second_document_line(text_)) {
      error(Location{file_, *second, 1},
            "expected one YAML document; this is another (remove the `---` or `...` here)");
    }
    YAML::Node document;
    try {
      document = YAML::Load(std::string(text_));
    } catch (const YAML::ParserException& e) {
      error(at(e.mark), "YAML syntax error: " + e.msg);
    }
    if (errors_.empty()) {
      if (!document || document.IsNull()) {
        error(Location{file_, 1, 1},
              "the configuration is empty; it needs at least a `signals:` mapping");
      } else {
        top(document);
      }
    }
  } catch (const YAML::Exception& e) {
    error(at(e.mark), "YAML error: " + e.msg);
  } catch (const std::exception& e) {
    error(Location{file_, 0, 0}, std::string("internal error while loading: ") + e.what());
  }

  LoadResult result;
  std::stable_sort(errors_.begin(), errors_.end(), [](const ConfigError& a, const ConfigError& b) {
    return std::pair(a.where.line, a.where.column) < std::pair(b.where.line, b.where.column);
  });
  result.errors = std::move(errors_);
  if (result.errors.empty()) result.config = std::move(config_);
  return result;
}

void Parser::top(const YAML::Node& root) {
  config_.file = file_;
  Value whole{root, at(root.Mark()), ""};
  auto entries =
      mapping(whole, kTopKeys, IfNull::error, "a mapping of sections (signals, timers, ...)");
  if (!entries) return;

  // Sources name signals, so the table is read first wherever it stands in the file.
  auto table = std::find_if(entries->begin(), entries->end(),
                            [](const Entry& e) { return e.key == "signals"; });
  if (table == entries->end()) {
    error(whole.at,
          "missing required key \"signals\" (the signal table; `signals: {}` for an empty one)");
  } else {
    signals(*table);
  }

  for (const Entry& e : *entries) {
    const Value& v = e.value;
    if (e.key == "socket") {
      socket(v);
    } else if (e.key == "limits") {
      limits(v);
    } else if (e.key == "log") {
      log(v);
    } else if (e.key == "state_dir") {
      if (auto dir = nonempty_text(v, "a directory path")) config_.state_dir = *dir;
    } else if (e.key == "plugin_path") {
      if (auto items = sequence(v, "a list of directories")) {
        config_.plugin_path.clear();
        for (const Value& item : *items) {
          if (auto dir = nonempty_text(item, "a directory")) config_.plugin_path.push_back(*dir);
        }
      }
    } else if (e.key == "timers") {
      timers(v, config_.timers, "timer");
    } else if (e.key == "rb_timers") {
      timers(v, config_.rb_timers, "rb_timer");
    } else if (e.key == "file_monitors") {
      file_monitors(v);
    } else if (e.key == "cron") {
      cron(v);
    } else if (e.key == "posix_signals") {
      posix_signals(v);
    } else if (e.key == "plugins") {
      plugins(v);
    }
  }
  check_generated_ids();
  check_plugin_references();
}

void Parser::socket(const Value& v) {
  auto fields = mapping(v, kSocketKeys, IfNull::empty);
  if (!fields) return;
  SocketSpec& out = config_.socket;
  for (const Entry& f : *fields) {
    if (f.key == "path") {
      auto path = nonempty_text(f.value, "a socket path");
      if (path && path->size() > kMaxSocketPath) {
        fail(f.value, "a Unix socket path holds at most " + std::to_string(kMaxSocketPath) +
                          " bytes; this one has " + std::to_string(path->size()));
      } else if (path) {
        out.path = *path;
      }
    } else if (f.key == "mode") {
      constexpr std::string_view kWhat = "an octal mode such as \"0660\" (at most 0777)";
      auto mode = text(f.value, kWhat);
      if (!mode) continue;
      std::string_view digits = *mode;
      if (digits.substr(0, 2) == "0o") digits.remove_prefix(2);
      bool octal =
          !digits.empty() && digits.size() <= 8 &&
          std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '7'; });
      unsigned value = 0;
      if (octal) {
        for (char c : digits) value = value * 8 + static_cast<unsigned>(c - '0');
      }
      if (!octal || value > 0777) {
        expected(f.value, kWhat);
      } else {
        out.mode = value;
      }
    } else if (f.key == "group") {
      if (auto group = nonempty_text(f.value, "a group name")) out.group = *group;
    } else if (f.key == "admin_group") {
      if (auto group = nonempty_text(f.value, "a group name")) out.admin_group = *group;
    }
  }
}

void Parser::limits(const Value& v) {
  auto fields = mapping(v, kLimitKeys, IfNull::empty);
  if (!fields) return;
  Limits& out = config_.limits;
  for (const Entry& f : *fields) {
    if (f.key == "ack_timeout") {
      if (auto d = duration(f.value, Millis{1})) out.ack_timeout = *d;
      continue;
    }
    std::uint64_t max = f.key == "payload_bytes" ? kMaxPayloadBytes : kAnyCount;
    std::optional<std::uint64_t> n = count(f.value, 1, max);
    if (!n) continue;
    for (const auto& [key, member] : kCountLimits) {
      if (key == f.key) out.*member = *n;
    }
  }
}

void Parser::log(const Value& v) {
  auto fields = mapping(v, kLogKeys, IfNull::empty, "a mapping such as {level: info}");
  if (!fields) return;
  for (const Entry& f : *fields) {
    if (auto l = level(f.value, /*allow_off=*/true)) config_.log_level = *l;
  }
}

std::optional<LogLevel> Parser::level(const Value& v, bool allow_off) {
  std::string_view what = allow_off
                              ? "a log level: trace, debug, info, warn, error, critical or off"
                              : "a log level: trace, debug, info, warn, error or critical";
  if (!v.node.IsScalar()) return expected(v, what);
  std::optional<LogLevel> l = log_level_from_string(v.node.Scalar());
  if (!l || (*l == LogLevel::off && !allow_off)) return expected(v, what);
  return l;
}

// -- the signal table

void Parser::signals(const Entry& e) {
  config_.signals_where = e.key_at;
  auto fields = mapping(e.value, std::nullopt, IfNull::empty,
                        "a mapping from signal numbers to entries, such as {5: {name: usr1}}");
  if (!fields) return;

  std::map<std::uint64_t, Location> numbers;
  std::map<std::string, Location> names;
  for (const Entry& f : *fields) {
    std::optional<std::uint64_t> number = parse_decimal(f.key);
    if (!number || *number >= static_cast<std::uint64_t>(kSignalCount)) {
      error(f.key_at, "signals: expected a signal number 0-255 as the key; got " + shown(f.key));
      continue;
    }
    // "5" and "05" are different keys to YAML but the same signal.
    if (auto [first, fresh] = numbers.emplace(*number, f.key_at); !fresh) {
      error(f.key_at, "signals: signal " + std::to_string(*number) +
                          " is already defined at line " + std::to_string(first->second.line));
      continue;
    }
    std::optional<SignalSpec> spec = signal_entry(f, static_cast<SignalId>(*number));
    if (!spec) continue;
    config_.signals.push_back(std::move(*spec));
  }
  std::sort(config_.signals.begin(), config_.signals.end(),
            [](const SignalSpec& a, const SignalSpec& b) { return a.number < b.number; });
}

std::optional<SignalSpec> Parser::signal_entry(const Entry& e, SignalId number) {
  SignalSpec spec;
  spec.number = number;
  spec.where = e.key_at;
  Value v = e.value;
  v.path = "signals." + std::to_string(number);
  auto fields = mapping(v, kSignalKeys, IfNull::empty,
                        "a mapping such as {name: usr1, handlers: [{log: info}]}");
  if (!fields) return std::nullopt;
  bool ok = true;
  for (const Entry& f : *fields) {
    if (f.key == "name") {
      auto name = text(f.value, "a signal name");
      if (!name) {
        ok = false;
      } else if (!is_valid_signal_name(*name)) {
        ok = false;
        expected(f.value, "a signal name: a lower-case letter, then up to 63 of a-z 0-9 . _ -");
      } else if (auto known = signal_names_.find(*name); known != signal_names_.end()) {
        ok = false;
        fail(f.value, "the name " + shown(*name) + " is already used by signal " +
                          std::to_string(known->second));
      } else {
        signal_names_.emplace(*name, number);
        signal_name_list_.push_back(*name);
        spec.name = *name;
      }
    } else if (f.key == "description") {
      if (auto d = text(f.value, "a description")) {
        spec.description = *d;
      } else {
        ok = false;
      }
    } else if (f.key == "handlers") {
      if (f.value.node.IsNull()) continue;
      auto items = sequence(f.value, "a list of handlers such as [{log: info}]");
      if (!items) {
        ok = false;
        continue;
      }
      for (const Value& item : *items) {
        if (auto h = handler(item)) {
          spec.handlers.push_back(std::move(*h));
        } else {
          ok = false;
        }
      }
    } else if (f.key == "acl") {
      if (auto a = acl(f.value)) {
        spec.acl = std::move(*a);
      } else {
        ok = false;
      }
    }
  }
  if (!ok) return std::nullopt;
  return spec;
}

std::optional<HandlerSpec> Parser::handler(const Value& v) {
  auto fields = mapping(v, kHandlerKeys, IfNull::error,
                        "a handler such as {log: info} or {exec: [/usr/bin/true]}");
  if (!fields) return std::nullopt;

  const Entry* kind = nullptr;
  bool ok = true;
  for (const Entry& f : *fields) {
    if (std::find(std::begin(kHandlerKinds), std::end(kHandlerKinds), f.key) ==
        std::end(kHandlerKinds)) {
      continue;
    }
    if (kind != nullptr) {
      error(f.key_at, v.path +
                          ": a handler has exactly one of exec, log, target, plugin; this one "
                          "has both " +
                          kind->key + " and " + f.key);
      ok = false;
    } else {
      kind = &f;
    }
  }
  if (kind == nullptr) {
    if (ok) error(v.at, v.path + ": a handler needs one of exec, log, target or plugin");
    return std::nullopt;
  }
  for (const Entry& f : *fields) {
    bool exec_only = f.key == "timeout" || f.key == "concurrency" || f.key == "overlap";
    if (exec_only && kind->key != "exec") {
      error(f.key_at, v.path + ": " + f.key + " applies only to exec handlers, not to " +
                          kind->key + " handlers");
      ok = false;
    } else if (f.key == "with" && kind->key != "plugin") {
      error(f.key_at,
            v.path + ": with applies only to plugin handlers, not to " + kind->key + " handlers");
      ok = false;
    }
  }

  HandlerSpec spec;
  spec.where = v.at;
  if (kind->key == "exec") {
    auto exec = exec_handler(*kind, *fields);
    if (!exec) return std::nullopt;
    spec.kind = std::move(*exec);
  } else if (kind->key == "log") {
    auto l = level(kind->value, /*allow_off=*/false);
    if (!l) return std::nullopt;
    spec.kind = LogHandler{*l};
  } else if (kind->key == "target") {
    auto t = target(kind->value);
    if (!t) return std::nullopt;
    spec.kind = std::move(*t);
  } else {
    auto p = plugin_handler(*kind, *fields);
    if (!p) return std::nullopt;
    spec.kind = std::move(*p);
  }
  if (!ok) return std::nullopt;
  return spec;
}

std::optional<ExecHandler> Parser::exec_handler(const Entry& argv, const Entries& fields) {
  constexpr std::string_view kWhat =
      "a program and its arguments as a list, such as [/usr/local/bin/rebuild, --fast] (no shell)";
  ExecHandler out;
  bool ok = true;
  if (auto items = sequence(argv.value, kWhat)) {
    if (items->empty()) {
      ok = false;
      expected(argv.value, kWhat);
    }
    for (const Value& item : *items) {
      auto arg = text(item, "a string");
      if (!arg) {
        ok = false;
      } else if (out.argv.empty() && arg->empty()) {
        ok = false;
        fail(item, "the program name is empty");
      } else {
        out.argv.push_back(std::move(*arg));
      }
    }
  } else {
    ok = false;
  }
  for (const Entry& f : fields) {
    if (f.key == "timeout") {
      if (auto d = duration(f.value, Millis{1})) {
        out.timeout = *d;
      } else {
        ok = false;
      }
    } else if (f.key == "concurrency") {
      if (auto n = count(f.value, 1, std::numeric_limits<unsigned>::max())) {
        out.concurrency = static_cast<unsigned>(*n);
      } else {
        ok = false;
      }
    } else if (f.key == "overlap") {
      auto s = text(f.value, "queue, skip or kill");
      auto found =
          s ? std::find(kOverlapNames.begin(), kOverlapNames.end(), *s) : kOverlapNames.end();
      if (found == kOverlapNames.end()) {
        if (s) expected(f.value, "queue, skip or kill");
        ok = false;
      } else {
        out.overlap = static_cast<Overlap>(found - kOverlapNames.begin());
      }
    }
  }
  if (!ok) return std::nullopt;
  return out;
}

std::optional<TargetHandler> Parser::target(const Value& v) {
  constexpr std::string_view kWhat =
      "subscribers, subscriber, subscriber:NAME or group:NAME (NAME of letters, digits, . _ -)";
  auto s = text(v, kWhat);
  if (!s) return std::nullopt;
  std::string_view t = *s;
  if (t == "subscribers") return TargetHandler{TargetKind::subscribers, ""};
  if (t == "subscriber") return TargetHandler{TargetKind::subscriber, ""};
  for (auto [prefix, kind] :
       {std::pair{std::string_view("subscriber:"), TargetKind::subscriber_named},
        std::pair{std::string_view("group:"), TargetKind::group}}) {
    if (t.substr(0, prefix.size()) != prefix) continue;
    std::string_view name = t.substr(prefix.size());
    if (!is_simple_name(name)) return expected(v, kWhat);
    return TargetHandler{kind, std::string(name)};
  }
  return expected(v, kWhat);
}

std::optional<PluginHandler> Parser::plugin_handler(const Entry& name, const Entries& fields) {
  constexpr std::string_view kWhat = "PLUGIN.HANDLER, such as pgnotify.notify";
  auto s = text(name.value, kWhat);
  if (!s) return std::nullopt;
  size_t dot = s->find('.');
  PluginHandler out;
  if (dot != std::string::npos) {
    out.plugin = s->substr(0, dot);
    out.handler = s->substr(dot + 1);
  }
  if (dot == std::string::npos || !is_simple_name(out.plugin) || !is_simple_name(out.handler)) {
    return expected(name.value, kWhat);
  }
  plugin_uses_.push_back(PluginUse{out.plugin, name.value.at, name.value.path});
  out.with_json = "{}";
  for (const Entry& f : fields) {
    if (f.key != "with") continue;
    auto j = json_text(f.value);
    if (!j) return std::nullopt;
    out.with_json = std::move(*j);
  }
  return out;
}

std::optional<Acl> Parser::acl(const Value& v) {
  auto fields = mapping(v, kAclKeys, IfNull::empty,
                        "a mapping such as {raise: [root, \"@deploy\"], subscribe: [\"@tocsin\"]}");
  if (!fields) return std::nullopt;
  Acl out;
  bool ok = true;
  for (const Entry& f : *fields) {
    auto items = sequence(f.value, "a list of user names and @groups, such as [root, \"@deploy\"]");
    if (!items) {
      ok = false;
      continue;
    }
    std::vector<std::string> names;
    for (const Value& item : *items) {
      auto name = text(item, "a user name or @group");
      if (name && is_account_name(name->starts_with('@') ? name->substr(1) : *name)) {
        names.push_back(std::move(*name));
      } else {
        if (name) expected(item, "a user name or @group");
        ok = false;
      }
    }
    (f.key == "raise" ? out.raise : out.subscribe) = std::move(names);
  }
  if (!ok) return std::nullopt;
  return out;
}

// -- sources

void Parser::source_id(const Entry& e, std::string& id) {
  constexpr std::string_view kWhat = "an id of letters, digits and . _ : -";
  auto s = text(e.value, kWhat);
  if (!s) return;
  if (!is_valid_source_id(*s)) {
    expected(e.value, kWhat);
    return;
  }
  if (auto [first, fresh] = given_ids_.emplace(*s, e.value.at); !fresh) {
    fail(e.value, "the id " + shown(*s) + " is already used by the source at line " +
                      std::to_string(first->second.line));
    return;
  }
  id = *s;
}

void Parser::generated_id(const Value& item, std::string_view prefix, size_t index,
                          std::string& id) {
  id = std::string(prefix) + "-" + std::to_string(index + 1);
  generated_ids_.push_back(GeneratedId{id, item.at, item.path});
}

// Given ids are all known only at the end, and a later one may take the name a source earlier in
// the file would have been given.
void Parser::check_generated_ids() {
  for (const GeneratedId& g : generated_ids_) {
    auto given = given_ids_.find(g.id);
    if (given == given_ids_.end()) continue;
    error(g.at, g.path + ": this source has no id, and the one it would get, " + shown(g.id) +
                    ", is taken by the source at line " + std::to_string(given->second.line) +
                    "; give one of them another id");
  }
}

void Parser::check_plugin_references() {
  for (const PluginUse& use : plugin_uses_) {
    if (std::find(declared_plugins_.begin(), declared_plugins_.end(), use.plugin) !=
        declared_plugins_.end()) {
      continue;
    }
    error(use.at, use.path + ": the plugin " + shown(use.plugin) +
                      " is not loaded; add it under plugins: (e.g. `plugins: {" + use.plugin +
                      ": {}}`)");
  }
}

void Parser::timers(const Value& v, std::vector<TimerSpec>& out, std::string_view id_prefix) {
  if (v.node.IsNull()) return;
  auto items = sequence(v, "a list of timers such as [{signal: 5, every: 2s}]");
  if (!items) return;
  for (size_t index = 0; index < items->size(); ++index) {
    const Value& item = (*items)[index];
    auto fields =
        mapping(item, kTimerKeys, IfNull::error, "a timer such as {signal: 5, every: 2s}");
    if (!fields) continue;
    TimerSpec t;
    t.where = item.at;
    bool has_id = false, has_signal = false, has_every = false;
    for (const Entry& f : *fields) {
      if (f.key == "id") {
        has_id = true;
        source_id(f, t.id);
      } else if (f.key == "signal") {
        has_signal = true;
        if (auto s = signal_ref(f.value)) t.signal = *s;
      } else if (f.key == "every") {
        has_every = true;
        if (auto d = duration(f.value, Millis{1})) t.every = *d;
      } else if (f.key == "after") {
        if (auto d = duration(f.value, Millis{0})) t.after = *d;
      } else if (f.key == "clock") {
        auto s = text(f.value, "monotonic, boottime or realtime");
        auto found = s ? std::find(kClockNames.begin(), kClockNames.end(), *s) : kClockNames.end();
        if (found != kClockNames.end()) {
          t.clock = static_cast<ClockKind>(found - kClockNames.begin());
        } else if (s) {
          expected(f.value, "monotonic, boottime or realtime");
        }
      } else if (f.key == "iterations") {
        if (auto n = count(f.value, 0, kAnyCount)) t.iterations = *n;
      } else if (f.key == "cluster") {
        if (auto b = boolean(f.value)) t.cluster = *b;
      }
    }
    if (!has_signal) error(item.at, item.path + ": missing required key \"signal\"");
    if (!has_every)
      error(item.at, item.path + ": missing required key \"every\" (the period, such as 2s)");
    if (!has_id) generated_id(item, id_prefix, index, t.id);
    out.push_back(std::move(t));
  }
}

void Parser::file_monitors(const Value& v) {
  if (v.node.IsNull()) return;
  auto items = sequence(v, "a list of file monitors such as [{signal: 5, path: /etc/app}]");
  if (!items) return;
  for (size_t index = 0; index < items->size(); ++index) {
    const Value& item = (*items)[index];
    auto fields = mapping(item, kFileKeys, IfNull::error,
                          "a file monitor such as {signal: 5, path: /etc/app}");
    if (!fields) continue;
    FileMonitorSpec m;
    m.where = item.at;
    bool has_id = false, has_signal = false, has_path = false;
    for (const Entry& f : *fields) {
      if (f.key == "id") {
        has_id = true;
        source_id(f, m.id);
      } else if (f.key == "signal") {
        has_signal = true;
        if (auto s = signal_ref(f.value)) m.signal = *s;
      } else if (f.key == "path") {
        has_path = true;
        auto path = text(f.value, "an absolute path");
        if (path && (path->empty() || (*path)[0] != '/')) {
          expected(f.value, "an absolute path");
        } else if (path) {
          m.path = *path;
        }
      } else if (f.key == "recursive") {
        if (auto b = boolean(f.value)) m.recursive = *b;
      } else if (f.key == "events") {
        constexpr std::string_view kWhat =
            "a list of events from create, modify, close_write, delete, move, attrib";
        auto names = sequence(f.value, kWhat);
        if (!names) continue;
        if (names->empty()) {
          expected(f.value, kWhat);
          continue;
        }
        std::uint32_t events = 0;
        for (const Value& name : *names) {
          auto s = text(name, "an event: create, modify, close_write, delete, move or attrib");
          if (!s) continue;
          auto found = std::find_if(std::begin(kFileEvents), std::end(kFileEvents),
                                    [&](const NamedEvent& e) { return e.name == *s; });
          if (found == std::end(kFileEvents)) {
            expected(name, "an event: create, modify, close_write, delete, move or attrib");
          } else {
            events |= found->bit;
          }
        }
        m.events = events;
      } else if (f.key == "match") {
        if (auto s = text(f.value, "a glob on the file name, such as \"*.conf\"")) {
          if (auto bad = glob_error(*s)) {
            fail(f.value, "a glob on the file name: " + *bad);
          } else {
            m.match = *s;
          }
        }
      } else if (f.key == "settle") {
        if (auto d = duration(f.value, Millis{0})) m.settle = *d;
      } else if (f.key == "max_delay") {
        if (auto d = duration(f.value, Millis{0})) m.max_delay = *d;
      } else if (f.key == "iterations") {
        if (auto n = count(f.value, 0, kAnyCount)) m.iterations = *n;
      }
    }
    if (!has_signal) error(item.at, item.path + ": missing required key \"signal\"");
    if (!has_path) error(item.at, item.path + ": missing required key \"path\"");
    if (!has_id) generated_id(item, "file", index, m.id);
    config_.file_monitors.push_back(std::move(m));
  }
}

void Parser::cron(const Value& v) {
  if (v.node.IsNull()) return;
  auto items = sequence(v, "a list of cron jobs such as [{signal: 5, schedule: \"*/5 * * * *\"}]");
  if (!items) return;
  for (size_t index = 0; index < items->size(); ++index) {
    const Value& item = (*items)[index];
    auto fields = mapping(item, kCronKeys, IfNull::error,
                          "a cron job such as {signal: 5, schedule: \"*/5 * * * *\"}");
    if (!fields) continue;
    CronSpec c;
    c.where = item.at;
    bool has_id = false, has_signal = false;
    const Entry* when = nullptr;  // schedule or uwsgi, whichever came first
    const Entry* tz = nullptr;
    for (const Entry& f : *fields) {
      if (f.key == "schedule" || f.key == "uwsgi") {
        if (when != nullptr) {
          error(f.key_at, item.path +
                              ": a cron job has exactly one of schedule and uwsgi; this "
                              "one has both");
          continue;
        }
        when = &f;
      }
      if (f.key == "id") {
        has_id = true;
        source_id(f, c.id);
      } else if (f.key == "signal") {
        has_signal = true;
        if (auto s = signal_ref(f.value)) c.signal = *s;
      } else if (f.key == "schedule") {
        auto s = nonempty_text(f.value, "a cron expression such as \"*/5 * * * *\"");
        if (!s) continue;
        c.schedule = *s;
        c.schedule_where = f.value.at;
        // Point at the expression's first character, not at an opening quote, so that the cron
        // parser's column within the expression can simply be added.
        const YAML::Mark mark = f.value.node.Mark();
        if (mark.pos >= 0 && static_cast<size_t>(mark.pos) < text_.size() &&
            (text_[mark.pos] == '"' || text_[mark.pos] == '\'')) {
          c.schedule_where.column += 1;
        }
      } else if (f.key == "uwsgi") {
        c.uwsgi = uwsgi(f.value);
      } else if (f.key == "tz") {
        tz = &f;
        auto s = nonempty_text(f.value, "an IANA time zone such as Europe/Berlin");
        if (s && s->find_first_of(" \t") != std::string::npos) {
          expected(f.value, "an IANA time zone such as Europe/Berlin");
        } else if (s) {
          c.tz = *s;
        }
      } else if (f.key == "jitter") {
        if (auto d = duration(f.value, Millis{0})) c.jitter = *d;
      } else if (f.key == "missed") {
        auto s = text(f.value, "skip or once");
        if (s && *s == "skip") {
          c.missed = Missed::skip;
        } else if (s && *s == "once") {
          c.missed = Missed::once;
        } else if (s) {
          expected(f.value, "skip or once");
        }
      } else if (f.key == "iterations") {
        if (auto n = count(f.value, 0, kAnyCount)) c.iterations = *n;
      } else if (f.key == "cluster") {
        if (auto b = boolean(f.value)) c.cluster = *b;
      }
    }
    if (!has_signal) error(item.at, item.path + ": missing required key \"signal\"");
    if (when == nullptr) {
      error(item.at, item.path + ": a cron job needs schedule (such as \"*/5 * * * *\") or uwsgi");
    }
    // Two zones for one job would leave the reader guessing which one wins.
    if (tz != nullptr && c.schedule.starts_with("CRON_TZ=")) {
      error(tz->key_at, item.path + ": the schedule already sets a zone with CRON_TZ=; keep one");
    }
    // The expression itself: its errors point at the column within the YAML line.
    if (!c.schedule.empty()) {
      cron::Parsed parsed = cron::parse(c.schedule);
      if (!parsed.schedule) {
        Location at = c.schedule_where;
        at.column += parsed.error.column - 1;
        error(at, item.path + ".schedule: " + parsed.error.message);
      }
    } else if (c.uwsgi) {
      cron::Parsed parsed = cron::uwsgi(*c.uwsgi);
      if (!parsed.schedule) error(when->value.at, item.path + ".uwsgi: " + parsed.error.message);
    }
    if (!c.tz.empty()) {
      std::string why;
      if (cron::find_zone(c.tz, &why) == nullptr) error(tz->value.at, item.path + ".tz: " + why);
    }
    if (!has_id) generated_id(item, "cron", index, c.id);
    config_.cron.push_back(std::move(c));
  }
}

std::optional<std::vector<int>> Parser::uwsgi(const Value& v) {
  constexpr std::string_view kWhat =
      "a list of five integers [minute, hour, day, month, weekday] (-1 = any, -N = divisible by N)";
  auto items = sequence(v, kWhat);
  if (!items) return std::nullopt;
  if (items->size() != std::size(kUwsgiFields)) {
    return fail(v, "expected five integers [minute, hour, day, month, weekday]; got " +
                       std::to_string(items->size()));
  }
  std::vector<int> out;
  bool ok = true;
  for (size_t i = 0; i < items->size(); ++i) {
    const Value& item = (*items)[i];
    const UwsgiField& field = kUwsgiFields[i];
    // A negative -N means "divisible by N"; N beyond the field's size could never be useful.
    std::string what = "the " + std::string(field.name) + " as " + std::to_string(field.min) + "-" +
                       std::to_string(field.max) + ", -1 (any) or -N (divisible by N)";
    const std::string s = item.node.IsScalar() ? item.node.Scalar() : "";
    bool negative = !s.empty() && s[0] == '-';
    std::optional<std::uint64_t> n = parse_decimal(negative ? s.substr(1) : s);
    bool good =
        n.has_value() && (negative ? (*n >= 1 && *n <= static_cast<std::uint64_t>(field.max) + 1)
                                   : (*n >= static_cast<std::uint64_t>(field.min) &&
                                      *n <= static_cast<std::uint64_t>(field.max)));
    if (!good) {
      expected(item, what);
      ok = false;
      continue;
    }
    out.push_back(negative ? -static_cast<int>(*n) : static_cast<int>(*n));
  }
  if (!ok) return std::nullopt;
  return out;
}

void Parser::posix_signals(const Value& v) {
  auto fields = mapping(v, std::nullopt, IfNull::empty, "a mapping such as {SIGUSR1: 5}");
  if (!fields) return;
  std::map<int, std::pair<std::string, Location>> seen;
  for (const Entry& f : *fields) {
    PosixSignalSpec spec;
    spec.where = f.key_at;
    std::string why;
    std::optional<int> signo = parse_posix_signal(f.key, &spec.signame, &why);
    std::optional<SignalId> signal = signal_ref(f.value);
    if (!signo) {
      error(f.key_at, "posix_signals: " + why);
      continue;
    }
    if (auto [first, fresh] = seen.emplace(*signo, std::pair(f.key, f.key_at)); !fresh) {
      error(f.key_at, "posix_signals: " + shown(f.key) + " is " + spec.signame +
                          ", already mapped as " + shown(first->second.first) + " at line " +
                          std::to_string(first->second.second.line));
      continue;
    }
    if (!signal) continue;
    spec.signo = *signo;
    spec.signal = *signal;
    config_.posix_signals.push_back(std::move(spec));
  }
}

void Parser::plugins(const Value& v) {
  auto fields = mapping(v, std::nullopt, IfNull::empty,
                        "a mapping from plugin names to their settings, such as {pgnotify: {...}}");
  if (!fields) return;
  for (const Entry& f : *fields) {
    if (!is_simple_name(f.key)) {
      error(f.key_at,
            "plugins: expected a plugin name of letters, digits and . _ -; got " + shown(f.key));
      continue;
    }
    declared_plugins_.push_back(f.key);
    auto settings = json_text(f.value);
    if (!settings) continue;
    config_.plugins.push_back(PluginSpec{f.key, std::move(*settings), f.key_at});
  }
}

}  // namespace

// ---- entry points ------------------------------------------------------------------------------

std::optional<std::string> glob_error(std::string_view p) {
  static constexpr std::string_view kClasses[] = {"alnum", "alpha", "blank", "cntrl",
                                                  "digit", "graph", "lower", "print",
                                                  "punct", "space", "upper", "xdigit"};
  if (p.find('/') != std::string_view::npos) {
    return std::string("a glob matches one file name and cannot contain '/'");
  }
  for (std::size_t i = 0; i < p.size(); ++i) {
    if (p[i] == '\\') {
      if (++i == p.size()) return std::string("a trailing '\\' escapes nothing");
      continue;
    }
    if (p[i] != '[') continue;
    std::size_t open = i++;
    if (i < p.size() && (p[i] == '!' || p[i] == '^')) ++i;
    if (i < p.size() && p[i] == ']') ++i;  // a leading ']' is a member
    bool closed = false;
    for (; i < p.size(); ++i) {
      if (p[i] == ']') {
        closed = true;
        break;
      }
      if (p[i] == '[' && i + 1 < p.size() && (p[i + 1] == ':' || p[i + 1] == '=' || p[i + 1] == '.')) {
        char kind = p[i + 1];
        auto end = p.find(std::string{kind, ']'}, i + 2);
        if (end == std::string_view::npos) {
          return "unclosed '[" + std::string(1, kind) + "' at position " + std::to_string(i + 1);
        }
        std::string_view name = p.substr(i + 2, end - i - 2);
        if (kind == ':' &&
            std::find(std::begin(kClasses), std::end(kClasses), name) == std::end(kClasses)) {
          return "unknown character class [:" + std::string(name) + ":]";
        }
        i = end + 1;
      }
    }
    if (!closed) return "unclosed '[' at position " + std::to_string(open + 1);
  }
  return std::nullopt;
}

LoadResult load_config_string(std::string_view yaml_text, const std::string& file_name) {
  try {
    return Parser(yaml_text, file_name).run();
  } catch (const std::exception& e) {
    LoadResult result;
    result.errors.push_back(
        ConfigError{Location{file_name, 0, 0}, std::string("cannot load: ") + e.what()});
    return result;
  }
}

LoadResult load_config_file(const std::string& path) {
  auto cannot = [&](const std::string& why) {
    LoadResult result;
    result.errors.push_back(
        ConfigError{Location{path, 0, 0}, "cannot read the configuration: " + why});
    return result;
  };
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return cannot(std::strerror(errno));
  std::string text;
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    ::close(fd);
    return cannot(std::strerror(EISDIR));
  }
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int saved = errno;
      ::close(fd);
      return cannot(std::strerror(saved));
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    // A configuration is a few kilobytes; this only guards against pointing at /dev/zero.
    if (static_cast<off_t>(text.size()) > kMaxFileBytes) {
      ::close(fd);
      return cannot("larger than 64 MiB");
    }
  }
  ::close(fd);
  return load_config_string(text, path);
}

}  // namespace tocsin::config
