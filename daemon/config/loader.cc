// loader.cc — YAML text -> Config (SPEC §4). The only file that sees yaml-cpp: it turns the
// document into neutral spec::Nodes (include/tocsin/spec.h) and reads those with a spec::Reader,
// the same reader the socket's `add_*` methods use, so that a source's fields have one rule
// whether they come from the file or from a request. Source sections are read by their kind's
// schema (include/tocsin/event_source.h): this file knows no source kind by name.
//
// The Parser walks the document once, one function per section, and collects every error it can
// find instead of stopping at the first: someone fixing a config wants the whole list from one
// `tocsind --check`. Each error points at the node at fault — the key for unknown and duplicate
// keys, the value for bad values — because that is where the editor must jump.
//
// yaml-cpp gives every scalar as text (it does not resolve YAML's types), so the reader reads the
// text itself, whether quoted or not: `mode: 0660` and `mode: "0660"` mean the same. Only the
// conversion of free-form plugin settings to JSON looks at quoting, to keep "5" a string.
// A source section is converted one item at a time: a million rb_timers in YAML never exist as a
// second tree.

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

#include "tocsin/config.h"
#include "tocsin/event_source.h"
#include "tocsin/spec.h"

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

namespace {

// ---- schema ------------------------------------------------------------------------------------

using spec::Keys;

constexpr std::string_view kFixedTopKeys[] = {"socket",      "limits",  "log",     "state_dir",
                                              "plugin_path", "signals", "plugins", "metrics"};
constexpr std::string_view kMetricsKeys[] = {"listen"};
constexpr std::string_view kSocketKeys[] = {"path", "mode", "group", "admin_group"};
constexpr std::string_view kLimitKeys[] = {"clients", "line_bytes",    "subscriber_queue",
                                           "backlog", "payload_bytes", "subscriptions",
                                           "sources", "exec_queue",    "ack_timeout",
                                           "prefetch"};
constexpr std::pair<std::string_view, std::uint64_t Limits::*> kCountLimits[] = {
    {"clients", &Limits::clients},
    {"line_bytes", &Limits::line_bytes},
    {"subscriber_queue", &Limits::subscriber_queue},
    {"backlog", &Limits::backlog},
    {"payload_bytes", &Limits::payload_bytes},
    {"subscriptions", &Limits::subscriptions},
    {"sources", &Limits::sources},
    {"exec_queue", &Limits::exec_queue},
    {"prefetch", &Limits::prefetch}};
constexpr std::string_view kLogKeys[] = {"level"};
constexpr std::string_view kSignalKeys[] = {"name", "description",    "handlers",
                                            "acl",  "max_deliveries", "dead_letter"};
constexpr std::string_view kHandlerKinds[] = {"exec", "log", "target", "plugin"};
constexpr std::string_view kHandlerKeys[] = {"exec",    "log",         "target",  "plugin",
                                             "timeout", "concurrency", "overlap", "with"};
constexpr std::string_view kAclKeys[] = {"raise", "subscribe", "declare"};

constexpr std::uint64_t kMaxPayloadBytes = 65536;  // SPEC §1
constexpr std::uint64_t kMaxPrefetch = config::kMaxPrefetch;
constexpr std::uint64_t kMaxDeliveries = 1000000;
constexpr size_t kMaxSocketPath = sizeof(sockaddr_un::sun_path) - 1;
constexpr std::uint64_t kAnyCount = spec::kAnyCount;
constexpr off_t kMaxFileBytes = 64 * 1024 * 1024;
// Converting a YAML value visits each node once per path to it: an alias used many times (or one
// that contains itself) multiplies them. These bound one conversion.
constexpr int kMaxDepth = 64;
constexpr std::size_t kMaxNodes = 1000000;

// The top-level keys: the fixed ones, then each source kind's section.
const std::vector<std::string_view>& top_keys() {
  static const std::vector<std::string_view> keys = [] {
    std::vector<std::string_view> k(std::begin(kFixedTopKeys), std::end(kFixedTopKeys));
    for (const auto& kind : source_kinds()) {
      if (!kind.schema->config_key().empty()) k.push_back(kind.schema->config_key());
    }
    return k;
  }();
  return keys;
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

// ---- YAML -> spec::Node ------------------------------------------------------------------------

spec::Position position(const YAML::Mark& mark) {
  if (mark.is_null()) return {};
  return spec::Position{mark.line + 1, mark.column + 1};
}

// Turns yaml-cpp nodes into spec::Nodes, keeping positions and quoting, within the bounds above.
class Converter {
 public:
  Converter(std::string_view text, spec::Reader& reader) : text_(text), reader_(reader) {}

  // `path` names the value in the one message a conversion that overflows gives; such a value
  // is read as nothing, so that what it held makes no further messages.
  spec::Node convert(const YAML::Node& node, std::string_view path) {
    budget_ = kMaxNodes;
    overflowed_ = false;
    path_ = path;
    spec::Node out = convert(node, 0);
    if (overflowed_) return spec::Node::null(position(node.Mark()));
    return out;
  }

 private:
  spec::Node convert(const YAML::Node& node, int depth) {
    const spec::Position at = position(node.Mark());
    if (budget_ == 0 || depth > kMaxDepth) {
      if (!overflowed_) {
        reader_.error(at, (path_.empty() ? "" : std::string(path_) + ": ") +
                              (depth > kMaxDepth
                                   ? "nested more than " + std::to_string(kMaxDepth) +
                                         " levels deep (does an alias contain itself?)"
                                   : "more than " + std::to_string(kMaxNodes) +
                                         " values (an alias repeated many times?)"));
      }
      overflowed_ = true;
      return spec::Node::null(at);
    }
    --budget_;
    switch (node.Type()) {
      case YAML::NodeType::Scalar: {
        const std::string& tag = node.Tag();
        bool quoted = tag == "!" || tag == "tag:yaml.org,2002:str";
        return spec::Node::scalar(node.Scalar(),
                                  quoted ? spec::Node::Style::quoted : spec::Node::Style::plain, at);
      }
      case YAML::NodeType::Sequence: {
        spec::Node out = spec::Node::sequence(at);
        for (auto it = node.begin(); it != node.end(); ++it) {
          const YAML::Node item = *it;
          spec::Node n = convert(item, depth + 1);
          if (item.IsNull()) n.set_at(empty_item_at(item.Mark()));
          out.push_back(std::move(n));
        }
        return out;
      }
      case YAML::NodeType::Map: {
        spec::Node out = spec::Node::mapping(at);
        for (auto it = node.begin(); it != node.end(); ++it) {
          // Copies: the pair behind `it->` is a temporary that dies with the statement.
          const YAML::Node key = it->first;
          const YAML::Node value = it->second;
          spec::Node k = convert(key, depth + 1);
          out.add(std::move(k), convert(value, depth + 1));
        }
        return out;
      }
      case YAML::NodeType::Null:
      case YAML::NodeType::Undefined:
        break;
    }
    return spec::Node::null(at);
  }

  // yaml-cpp marks an empty block-sequence item ("-" and nothing after it) at the next token,
  // which is on a later line; the dash before it is where the user must look.
 public:
  spec::Position empty_item_at(const YAML::Mark& mark) const {
    if (mark.is_null() || mark.pos < 0 || static_cast<size_t>(mark.pos) > text_.size()) {
      return position(mark);
    }
    auto pos = static_cast<size_t>(mark.pos);
    if (pos < text_.size() && (text_[pos] == '~' || text_[pos] == 'n' || text_[pos] == 'N')) {
      return position(mark);  // an explicit ~ or null
    }
    size_t dash = pos;
    while (dash > 0 &&
           std::string_view(" \t\r\n").find(text_[dash - 1]) != std::string_view::npos) {
      --dash;
    }
    if (dash == 0 || text_[dash - 1] != '-') return position(mark);
    --dash;
    std::string_view before = text_.substr(0, dash);
    size_t line_start = before.rfind('\n');
    line_start = line_start == std::string_view::npos ? 0 : line_start + 1;
    int line = 1 + static_cast<int>(std::count(before.begin(), before.end(), '\n'));
    return spec::Position{line, static_cast<int>(dash - line_start) + 1};
  }

 private:
  std::string_view text_;
  spec::Reader& reader_;
  std::string_view path_;
  std::size_t budget_ = kMaxNodes;
  bool overflowed_ = false;
};

// ---- the parser --------------------------------------------------------------------------------

class Parser final : public spec::SignalNames {
 public:
  Parser(std::string_view text, std::string file)
      : text_(text), file_(file), r_(std::move(file), *this), convert_(text_, r_) {}

  LoadResult run();

  // spec::SignalNames: the table of this file.
  std::optional<SignalId> find(std::string_view name) const override {
    auto it = signal_names_.find(std::string(name));
    if (it == signal_names_.end()) return std::nullopt;
    return it->second;
  }
  std::vector<std::string> names() const override { return signal_name_list_; }

 private:
  void error(const Location& where, std::string message) {
    errors_.push_back(ConfigError{where, std::move(message)});
  }

  // -- sections
  void top(const YAML::Node& root);
  void socket(const spec::Value& v);
  void limits(const spec::Value& v);
  void log(const spec::Value& v);
  void metrics(const spec::Value& v);
  void signals(const spec::Field& e);
  std::optional<SignalSpec> signal_entry(const spec::Field& e, SignalId number);
  std::optional<HandlerSpec> handler(const spec::Value& v);
  std::optional<ExecHandler> exec_handler(const spec::Field& argv, const spec::Fields& fields);
  std::optional<LogLevel> level(const spec::Value& v, bool allow_off);
  std::optional<TargetHandler> target(const spec::Value& v);
  std::optional<PluginHandler> plugin_handler(const spec::Field& name, const spec::Fields& fields);
  std::optional<Acl> acl(const spec::Value& v);
  std::optional<nlohmann::json> json(const spec::Value& v);
  std::optional<std::string> json_text(const spec::Value& v);
  void plugins(const spec::Value& v);
  // A source kind's section; `yaml` is its value, read item by item.
  void sources(const SourceSchema& schema, const spec::Field& field, const YAML::Node& yaml);
  void source(const SourceSchema& schema, std::shared_ptr<SourceSpec> spec,
              const spec::Value& item, std::size_t index, const spec::Field* keyed);

  // -- cross-references, checked once everything is read
  void check_generated_ids();
  void check_plugin_references();

  std::string_view text_;
  std::string file_;
  spec::Reader r_;
  Converter convert_;
  Config config_;
  std::vector<ConfigError> errors_;

  std::map<std::string, SignalId> signal_names_;
  std::vector<std::string> signal_name_list_;  // for "did you mean"
  // (index in config_.signals, the value) of each dead_letter, resolved after the whole table.
  std::vector<std::pair<std::size_t, spec::Value>> dead_letters_;
  struct GivenId {
    Location at;
    std::string key;  // a keyed section's key as written ("USR1" for SIGUSR1)
  };
  std::map<std::string, GivenId> given_ids_;
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

// Settings for plugins are free-form. Scalars keep the type a YAML reader would give them where
// it matters to a plugin (integers, booleans); a quoted scalar always stays a string.
std::optional<nlohmann::json> Parser::json(const spec::Value& v) {
  switch (v.node->kind()) {
    case spec::Node::Kind::scalar: {
      const std::string& s = v.node->text();
      if (v.node->style() == spec::Node::Style::quoted) return nlohmann::json(s);
      if (s == "true") return nlohmann::json(true);
      if (s == "false") return nlohmann::json(false);
      bool negative = !s.empty() && s[0] == '-';
      if (std::optional<std::uint64_t> n = spec::parse_decimal(negative ? s.substr(1) : s)) {
        constexpr auto kMaxInt =
            static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
        if (!negative) return nlohmann::json(*n);
        if (*n <= kMaxInt + 1) return nlohmann::json(static_cast<std::int64_t>(0 - *n));
      }
      return nlohmann::json(s);
    }
    case spec::Node::Kind::sequence: {
      nlohmann::json array = nlohmann::json::array();
      bool ok = true;
      std::size_t index = 0;
      for (const spec::Node& n : v.node->items()) {
        if (auto element = json(r_.item(v, n, index++))) {
          array.push_back(std::move(*element));
        } else {
          ok = false;
        }
      }
      if (!ok) return std::nullopt;
      return array;
    }
    case spec::Node::Kind::mapping: {
      auto fields = r_.mapping(v, std::nullopt, spec::IfNull::error);
      if (!fields) return std::nullopt;
      nlohmann::json object = nlohmann::json::object();
      bool ok = true;
      for (const spec::Field& f : *fields) {
        if (auto element = json(f.value)) {
          object[f.key] = std::move(*element);
        } else {
          ok = false;
        }
      }
      if (!ok) return std::nullopt;
      return object;
    }
    case spec::Node::Kind::null:
      break;
  }
  return nlohmann::json(nullptr);
}

std::optional<std::string> Parser::json_text(const spec::Value& v) {
  if (v.node->is_null()) return std::string("{}");
  if (!v.node->is_mapping()) return r_.expected(v, "a mapping of settings");
  std::optional<nlohmann::json> j = json(v);
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
      error(r_.location(position(e.mark)), "YAML syntax error: " + e.msg);
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
    error(r_.location(position(e.mark)), "YAML error: " + e.msg);
  } catch (const std::exception& e) {
    error(Location{file_, 0, 0}, std::string("internal error while loading: ") + e.what());
  }

  for (spec::Problem& p : r_.take_problems()) {
    errors_.push_back(ConfigError{std::move(p.where), std::move(p.message)});
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
  // The sections but the source kinds' are converted whole; a source section's items one at a
  // time, when it is read (a placeholder of its shape stands in the top-level node).
  spec::Node whole = spec::Node::mapping(position(root.Mark()));
  std::vector<YAML::Node> yaml_values;
  if (root.IsMap()) {
    for (auto it = root.begin(); it != root.end(); ++it) {
      const YAML::Node key = it->first;
      const YAML::Node value = it->second;
      spec::Node k = convert_.convert(key, "");
      const std::string name = key.IsScalar() ? key.Scalar() : "";
      const bool source_section = schema_for_config_key(name) != nullptr && value.IsSequence();
      if (source_section) {
        whole.add(std::move(k), spec::Node::sequence(position(value.Mark())));
      } else {
        whole.add(std::move(k), convert_.convert(value, name));
      }
      yaml_values.push_back(value);
    }
  } else {
    whole = convert_.convert(root, "");
  }
  const spec::Value top_value = r_.root(whole);
  const std::vector<std::string_view>& keys = top_keys();
  auto fields = r_.mapping(top_value, Keys(keys.data(), keys.size()), spec::IfNull::error,
                           "a mapping of sections (signals, timers, ...)");
  if (!fields) return;

  // Sources name signals, so the table is read first wherever it stands in the file.
  auto table = std::find_if(fields->begin(), fields->end(),
                            [](const spec::Field& e) { return e.key == "signals"; });
  if (table == fields->end()) {
    r_.error(top_value.at,
             "missing required key \"signals\" (the signal table; `signals: {}` for an empty one)");
  } else {
    signals(*table);
  }

  for (const spec::Field& e : *fields) {
    const spec::Value& v = e.value;
    if (e.key == "socket") {
      socket(v);
    } else if (e.key == "limits") {
      limits(v);
    } else if (e.key == "log") {
      log(v);
    } else if (e.key == "metrics") {
      metrics(v);
    } else if (e.key == "state_dir") {
      if (auto dir = r_.nonempty_text(v, "a directory path")) config_.state_dir = *dir;
    } else if (e.key == "plugin_path") {
      if (auto items = r_.sequence(v, "a list of directories")) {
        config_.plugin_path.clear();
        for (const spec::Value& item : *items) {
          if (auto dir = r_.nonempty_text(item, "a directory")) config_.plugin_path.push_back(*dir);
        }
      }
    } else if (e.key == "plugins") {
      plugins(v);
    } else if (const SourceSchema* schema = schema_for_config_key(e.key)) {
      // The field's place among the entries is its YAML value's.
      std::size_t index = 0;
      for (const auto& entry : whole.entries()) {
        if (entry.key.is_scalar() && entry.key.text() == e.key) break;
        ++index;
      }
      sources(*schema, e, yaml_values.at(index));
    }
  }
  check_generated_ids();
  check_plugin_references();
}

void Parser::sources(const SourceSchema& schema, const spec::Field& field,
                     const YAML::Node& yaml) {
  const spec::Value& v = field.value;
  if (schema.keyed_section()) {
    auto entries = r_.mapping(v, std::nullopt, spec::IfNull::empty,
                              "a mapping such as {SIGUSR1: 5}");
    if (!entries) return;
    for (const spec::Field& entry : *entries) {
      source(schema, schema.parse_field(r_, entry), entry.value, 0, &entry);
    }
    return;
  }
  if (v.node->is_null()) return;
  const std::string what = "a list of " + std::string(schema.config_key()) + " entries";
  if (!v.node->is_sequence()) {
    r_.expected(v, what);
    return;
  }
  // The placeholder is empty: the items come from the YAML, converted one at a time.
  std::size_t index = 0;
  for (auto it = yaml.begin(); it != yaml.end(); ++it, ++index) {
    const YAML::Node item = *it;
    spec::Node node = convert_.convert(item, v.path + "[" + std::to_string(index) + "]");
    if (node.is_null() && !item.IsNull()) continue;  // too large: said so
    if (item.IsNull()) node.set_at(convert_.empty_item_at(item.Mark()));
    spec::Value value = r_.item(v, node, index);
    source(schema, schema.parse(r_, value), value, index, nullptr);
  }
}

void Parser::source(const SourceSchema& schema, std::shared_ptr<SourceSpec> spec,
                    const spec::Value& item, std::size_t index, const spec::Field* keyed) {
  if (!spec) return;
  if (spec->id.empty()) {
    spec->id = std::string(schema.id_prefix()) + "-" + std::to_string(index + 1);
    generated_ids_.push_back(GeneratedId{spec->id, r_.location(item.at), item.path});
  } else {
    const Location at = keyed ? r_.location(keyed->key_at) : r_.location(item.at);
    auto [first, fresh] =
        given_ids_.emplace(spec->id, GivenId{at, keyed ? keyed->key : std::string()});
    if (!fresh) {
      if (keyed) {
        error(at, std::string(schema.config_key()) + ": " + spec::Reader::shown(keyed->key) +
                      " is " + spec->id + ", already mapped as " +
                      spec::Reader::shown(first->second.key) + " at line " +
                      std::to_string(first->second.at.line));
      } else {
        // The id field's own position, where the user must look.
        const spec::Node* id = item.node->find("id");
        Location id_at = id ? r_.location(id->at()) : at;
        error(id_at, item.path + ".id: the id " + spec::Reader::shown(spec->id) +
                         " is already used by the source at line " +
                         std::to_string(first->second.at.line));
      }
      return;
    }
  }
  config_.sources.push_back(std::move(spec));
}

void Parser::socket(const spec::Value& v) {
  auto fields = r_.mapping(v, kSocketKeys, spec::IfNull::empty);
  if (!fields) return;
  SocketSpec& out = config_.socket;
  for (const spec::Field& f : *fields) {
    if (f.key == "path") {
      auto path = r_.nonempty_text(f.value, "a socket path");
      if (path && path->size() > kMaxSocketPath) {
        r_.fail(f.value, "a Unix socket path holds at most " + std::to_string(kMaxSocketPath) +
                          " bytes; this one has " + std::to_string(path->size()));
      } else if (path) {
        out.path = *path;
      }
    } else if (f.key == "mode") {
      constexpr std::string_view kWhat = "an octal mode such as \"0660\" (at most 0777)";
      auto mode = r_.text(f.value, kWhat);
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
        r_.expected(f.value, kWhat);
      } else {
        out.mode = value;
      }
    } else if (f.key == "group") {
      if (auto group = r_.nonempty_text(f.value, "a group name")) out.group = *group;
    } else if (f.key == "admin_group") {
      if (auto group = r_.nonempty_text(f.value, "a group name")) out.admin_group = *group;
    }
  }
}

void Parser::limits(const spec::Value& v) {
  auto fields = r_.mapping(v, kLimitKeys, spec::IfNull::empty);
  if (!fields) return;
  Limits& out = config_.limits;
  for (const spec::Field& f : *fields) {
    if (f.key == "ack_timeout") {
      if (auto d = r_.duration(f.value, Millis{1})) out.ack_timeout = *d;
      continue;
    }
    std::uint64_t max = f.key == "payload_bytes" ? kMaxPayloadBytes
                        : f.key == "prefetch"    ? kMaxPrefetch
                                                 : kAnyCount;
    std::optional<std::uint64_t> n = r_.count(f.value, 1, max);
    if (!n) continue;
    for (const auto& [key, member] : kCountLimits) {
      if (key == f.key) out.*member = *n;
    }
  }
}

void Parser::metrics(const spec::Value& v) {
  auto fields = r_.mapping(v, kMetricsKeys, spec::IfNull::error,
                           "a mapping such as {listen: \"127.0.0.1:9750\"}");
  if (!fields) return;
  bool listen = false;
  for (const spec::Field& f : *fields) {
    listen = true;
    auto text = r_.nonempty_text(f.value, "an ADDRESS:PORT such as \"127.0.0.1:9750\"");
    if (!text) continue;
    std::string why;
    std::optional<MetricsSpec> spec = parse_listen_address(*text, &why);
    if (!spec) {
      r_.fail(f.value, why);
      continue;
    }
    spec->where = r_.location(f.value.at);
    config_.metrics = std::move(*spec);
  }
  if (!listen) r_.missing(v, "listen", "the ADDRESS:PORT to serve GET /metrics on");
}

void Parser::log(const spec::Value& v) {
  auto fields = r_.mapping(v, kLogKeys, spec::IfNull::empty, "a mapping such as {level: info}");
  if (!fields) return;
  for (const spec::Field& f : *fields) {
    if (auto l = level(f.value, /*allow_off=*/true)) config_.log_level = *l;
  }
}

std::optional<LogLevel> Parser::level(const spec::Value& v, bool allow_off) {
  std::string_view what = allow_off
                              ? "a log level: trace, debug, info, warn, error, critical or off"
                              : "a log level: trace, debug, info, warn, error or critical";
  if (!v.node->is_scalar()) return r_.expected(v, what);
  std::optional<LogLevel> l = log_level_from_string(v.node->text());
  if (!l || (*l == LogLevel::off && !allow_off)) return r_.expected(v, what);
  return l;
}

// -- the signal table

void Parser::signals(const spec::Field& e) {
  config_.signals_where = r_.location(e.key_at);
  auto fields = r_.mapping(e.value, std::nullopt, spec::IfNull::empty,
                        "a mapping from signal numbers to entries, such as {5: {name: usr1}}");
  if (!fields) return;

  std::map<std::uint64_t, spec::Position> numbers;
    for (const spec::Field& f : *fields) {
    std::optional<std::uint64_t> number = spec::parse_decimal(f.key);
    if (!number || *number >= static_cast<std::uint64_t>(kSignalCount)) {
      r_.error(f.key_at, "signals: expected a signal number 0-255 as the key; got " + spec::Reader::shown(f.key));
      continue;
    }
    // "5" and "05" are different keys to YAML but the same signal.
    if (auto [first, fresh] = numbers.emplace(*number, f.key_at); !fresh) {
      r_.error(f.key_at, "signals: signal " + std::to_string(*number) +
                          " is already defined at line " + std::to_string(first->second.line));
      continue;
    }
    std::optional<SignalSpec> spec = signal_entry(f, static_cast<SignalId>(*number));
    if (!spec) continue;
    config_.signals.push_back(std::move(*spec));
  }
  // A dead-letter signal may be named by an entry further down the file.
  for (auto& [index, value] : dead_letters_) {
    SignalSpec& spec = config_.signals[index];
    std::optional<SignalId> target = r_.signal(value);
    if (!target) continue;
    if (*target == spec.number) {
      r_.fail(value, "a signal cannot be its own dead_letter: the dead letter would be "
                     "delivered the same way and could fail forever");
      continue;
    }
    spec.dead_letter = *target;
  }
  dead_letters_.clear();
  std::sort(config_.signals.begin(), config_.signals.end(),
            [](const SignalSpec& a, const SignalSpec& b) { return a.number < b.number; });
}

std::optional<SignalSpec> Parser::signal_entry(const spec::Field& e, SignalId number) {
  SignalSpec spec;
  spec.number = number;
  spec.where = r_.location(e.key_at);
  spec::Value v = e.value;
  v.path = "signals." + std::to_string(number);
  auto fields = r_.mapping(v, kSignalKeys, spec::IfNull::empty,
                        "a mapping such as {name: usr1, handlers: [{log: info}]}");
  if (!fields) return std::nullopt;
  bool ok = true;
  std::optional<spec::Value> dead_letter;  // resolved once every name is known
  for (const spec::Field& f : *fields) {
    if (f.key == "name") {
      auto name = r_.text(f.value, "a signal name");
      if (!name) {
        ok = false;
      } else if (!is_valid_signal_name(*name)) {
        ok = false;
        r_.expected(f.value, "a signal name: a lower-case letter, then up to 63 of a-z 0-9 . _ -");
      } else if (auto known = signal_names_.find(*name); known != signal_names_.end()) {
        ok = false;
        r_.fail(f.value, "the name " + spec::Reader::shown(*name) + " is already used by signal " +
                          std::to_string(known->second));
      } else {
        signal_names_.emplace(*name, number);
        signal_name_list_.push_back(*name);
        spec.name = *name;
      }
    } else if (f.key == "description") {
      if (auto d = r_.text(f.value, "a description")) {
        spec.description = *d;
      } else {
        ok = false;
      }
    } else if (f.key == "handlers") {
      if (f.value.node->is_null()) continue;
      auto items = r_.sequence(f.value, "a list of handlers such as [{log: info}]");
      if (!items) {
        ok = false;
        continue;
      }
      for (const spec::Value& item : *items) {
        if (auto h = handler(item)) {
          spec.handlers.push_back(std::move(*h));
        } else {
          ok = false;
        }
      }
    } else if (f.key == "max_deliveries") {
      if (auto n = r_.count(f.value, 1, kMaxDeliveries)) {
        spec.max_deliveries = static_cast<std::uint32_t>(*n);
      } else {
        ok = false;
      }
    } else if (f.key == "dead_letter") {
      dead_letter = f.value;
    } else if (f.key == "acl") {
      if (auto a = acl(f.value)) {
        spec.acl = std::move(*a);
      } else {
        ok = false;
      }
    }
  }
  if (!ok) return std::nullopt;
  if (dead_letter) dead_letters_.emplace_back(config_.signals.size(), *dead_letter);
  return spec;
}

std::optional<HandlerSpec> Parser::handler(const spec::Value& v) {
  auto fields = r_.mapping(v, kHandlerKeys, spec::IfNull::error,
                        "a handler such as {log: info} or {exec: [/usr/bin/true]}");
  if (!fields) return std::nullopt;

  const spec::Field* kind = nullptr;
  bool ok = true;
  for (const spec::Field& f : *fields) {
    if (std::find(std::begin(kHandlerKinds), std::end(kHandlerKinds), f.key) ==
        std::end(kHandlerKinds)) {
      continue;
    }
    if (kind != nullptr) {
      r_.error(f.key_at, v.path +
                          ": a handler has exactly one of exec, log, target, plugin; this one "
                          "has both " +
                          kind->key + " and " + f.key);
      ok = false;
    } else {
      kind = &f;
    }
  }
  if (kind == nullptr) {
    if (ok) r_.error(v.at, v.path + ": a handler needs one of exec, log, target or plugin");
    return std::nullopt;
  }
  for (const spec::Field& f : *fields) {
    bool exec_only = f.key == "timeout" || f.key == "concurrency" || f.key == "overlap";
    if (exec_only && kind->key != "exec") {
      r_.error(f.key_at, v.path + ": " + f.key + " applies only to exec handlers, not to " +
                          kind->key + " handlers");
      ok = false;
    } else if (f.key == "with" && kind->key != "plugin") {
      r_.error(f.key_at,
            v.path + ": with applies only to plugin handlers, not to " + kind->key + " handlers");
      ok = false;
    }
  }

  HandlerSpec spec;
  spec.where = r_.location(v.at);
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

std::optional<ExecHandler> Parser::exec_handler(const spec::Field& argv, const spec::Fields& fields) {
  constexpr std::string_view kWhat =
      "a program and its arguments as a list, such as [/usr/local/bin/rebuild, --fast] (no shell)";
  ExecHandler out;
  bool ok = true;
  if (auto items = r_.sequence(argv.value, kWhat)) {
    if (items->empty()) {
      ok = false;
      r_.expected(argv.value, kWhat);
    }
    for (const spec::Value& item : *items) {
      auto arg = r_.text(item, "a string");
      if (!arg) {
        ok = false;
      } else if (out.argv.empty() && arg->empty()) {
        ok = false;
        r_.fail(item, "the program name is empty");
      } else {
        out.argv.push_back(std::move(*arg));
      }
    }
  } else {
    ok = false;
  }
  for (const spec::Field& f : fields) {
    if (f.key == "timeout") {
      if (auto d = r_.duration(f.value, Millis{1})) {
        out.timeout = *d;
      } else {
        ok = false;
      }
    } else if (f.key == "concurrency") {
      if (auto n = r_.count(f.value, 1, std::numeric_limits<unsigned>::max())) {
        out.concurrency = static_cast<unsigned>(*n);
      } else {
        ok = false;
      }
    } else if (f.key == "overlap") {
      auto s = r_.text(f.value, "queue, skip or kill");
      auto found =
          s ? std::find(kOverlapNames.begin(), kOverlapNames.end(), *s) : kOverlapNames.end();
      if (found == kOverlapNames.end()) {
        if (s) r_.expected(f.value, "queue, skip or kill");
        ok = false;
      } else {
        out.overlap = static_cast<Overlap>(found - kOverlapNames.begin());
      }
    }
  }
  if (!ok) return std::nullopt;
  return out;
}

std::optional<TargetHandler> Parser::target(const spec::Value& v) {
  constexpr std::string_view kWhat =
      "subscribers, subscriber, subscriber:NAME or group:NAME (NAME of letters, digits, . _ -)";
  auto s = r_.text(v, kWhat);
  if (!s) return std::nullopt;
  std::string_view t = *s;
  if (t == "subscribers") return TargetHandler{TargetKind::subscribers, ""};
  if (t == "subscriber") return TargetHandler{TargetKind::subscriber, ""};
  for (auto [prefix, kind] :
       {std::pair{std::string_view("subscriber:"), TargetKind::subscriber_named},
        std::pair{std::string_view("group:"), TargetKind::group}}) {
    if (t.substr(0, prefix.size()) != prefix) continue;
    std::string_view name = t.substr(prefix.size());
    if (!is_simple_name(name)) return r_.expected(v, kWhat);
    return TargetHandler{kind, std::string(name)};
  }
  return r_.expected(v, kWhat);
}

std::optional<PluginHandler> Parser::plugin_handler(const spec::Field& name, const spec::Fields& fields) {
  constexpr std::string_view kWhat = "PLUGIN.HANDLER, such as pgnotify.notify";
  auto s = r_.text(name.value, kWhat);
  if (!s) return std::nullopt;
  size_t dot = s->find('.');
  PluginHandler out;
  if (dot != std::string::npos) {
    out.plugin = s->substr(0, dot);
    out.handler = s->substr(dot + 1);
  }
  if (dot == std::string::npos || !is_simple_name(out.plugin) || !is_simple_name(out.handler)) {
    return r_.expected(name.value, kWhat);
  }
  plugin_uses_.push_back(PluginUse{out.plugin, r_.location(name.value.at), name.value.path});
  out.with_json = "{}";
  for (const spec::Field& f : fields) {
    if (f.key != "with") continue;
    auto j = json_text(f.value);
    if (!j) return std::nullopt;
    out.with_json = std::move(*j);
  }
  return out;
}

std::optional<Acl> Parser::acl(const spec::Value& v) {
  auto fields =
      r_.mapping(v, kAclKeys, spec::IfNull::empty,
                 "a mapping such as {raise: [root, \"@deploy\"], subscribe: [\"@tocsin\"], "
                 "declare: [\"@webapp\"]}");
  if (!fields) return std::nullopt;
  Acl out;
  bool ok = true;
  for (const spec::Field& f : *fields) {
    auto items = r_.sequence(f.value, "a list of user names and @groups, such as [root, \"@deploy\"]");
    if (!items) {
      ok = false;
      continue;
    }
    std::vector<std::string> names;
    for (const spec::Value& item : *items) {
      auto name = r_.text(item, "a user name or @group");
      if (name && is_account_name(name->starts_with('@') ? name->substr(1) : *name)) {
        names.push_back(std::move(*name));
      } else {
        if (name) r_.expected(item, "a user name or @group");
        ok = false;
      }
    }
    auto& list = f.key == "raise" ? out.raise : f.key == "subscribe" ? out.subscribe : out.declare;
    list = std::move(names);
  }
  if (!ok) return std::nullopt;
  return out;
}

// -- sources

// Given ids are all known only at the end, and a later one may take the name a source earlier in
// the file would have been given.
void Parser::check_generated_ids() {
  for (const GeneratedId& g : generated_ids_) {
    auto given = given_ids_.find(g.id);
    if (given == given_ids_.end()) continue;
    error(g.at, g.path + ": this source has no id, and the one it would get, " + spec::Reader::shown(g.id) +
                    ", is taken by the source at line " + std::to_string(given->second.at.line) +
                    "; give one of them another id");
  }
}

void Parser::check_plugin_references() {
  for (const PluginUse& use : plugin_uses_) {
    if (std::find(declared_plugins_.begin(), declared_plugins_.end(), use.plugin) !=
        declared_plugins_.end()) {
      continue;
    }
    error(use.at, use.path + ": the plugin " + spec::Reader::shown(use.plugin) +
                      " is not loaded; add it under plugins: (e.g. `plugins: {" + use.plugin +
                      ": {}}`)");
  }
}

void Parser::plugins(const spec::Value& v) {
  auto fields = r_.mapping(v, std::nullopt, spec::IfNull::empty,
                        "a mapping from plugin names to their settings, such as {pgnotify: {...}}");
  if (!fields) return;
  for (const spec::Field& f : *fields) {
    if (!is_simple_name(f.key)) {
      r_.error(f.key_at,
            "plugins: expected a plugin name of letters, digits and . _ -; got " + spec::Reader::shown(f.key));
      continue;
    }
    declared_plugins_.push_back(f.key);
    auto settings = json_text(f.value);
    if (!settings) continue;
    config_.plugins.push_back(PluginSpec{f.key, std::move(*settings), r_.location(f.key_at)});
  }
}

}  // namespace

// ---- entry points ------------------------------------------------------------------------------

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
