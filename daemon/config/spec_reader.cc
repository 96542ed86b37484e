// spec_reader.cc — spec::Node and spec::Reader (include/tocsin/spec.h): the one implementation of
// every field rule shared by the YAML file and the socket's requests.
#include <algorithm>
#include <cstdio>
#include <map>

#include "tocsin/config.h"
#include "tocsin/spec.h"

namespace tocsin::spec {

// ---- Node ------------------------------------------------------------------------------------

Node Node::null(Position at) {
  Node n;
  n.at_ = at;
  return n;
}

Node Node::scalar(std::string text, Style style, Position at) {
  Node n;
  n.kind_ = Kind::scalar;
  n.style_ = style;
  n.text_ = std::move(text);
  n.at_ = at;
  return n;
}

Node Node::sequence(Position at) {
  Node n;
  n.kind_ = Kind::sequence;
  n.at_ = at;
  return n;
}

Node Node::mapping(Position at) {
  Node n;
  n.kind_ = Kind::mapping;
  n.at_ = at;
  return n;
}

std::size_t Node::size() const {
  return kind_ == Kind::sequence ? items_.size() : kind_ == Kind::mapping ? entries_.size() : 0;
}

const Node* Node::find(std::string_view key) const {
  for (const Entry& e : entries_) {
    if (e.key.is_scalar() && e.key.text() == key) return &e.value;
  }
  return nullptr;
}

Node& Node::push_back(Node item) {
  items_.push_back(std::move(item));
  return items_.back();
}

Node& Node::add(Node key, Node value) {
  entries_.push_back(Entry{std::move(key), std::move(value)});
  return entries_.back().value;
}

Node& Node::add(std::string key, Node value) {
  return add(Node::scalar(std::move(key), Style::quoted), std::move(value));
}

std::string Node::describe() const {
  switch (kind_) {
    case Kind::null:
      return "nothing";
    case Kind::scalar:
      return Reader::shown(text_);
    case Kind::sequence:
      return items_.empty() ? "an empty list" : "a list";
    case Kind::mapping:
      return entries_.empty() ? "an empty mapping" : "a mapping";
  }
  return "nothing";
}

// ---- helpers ---------------------------------------------------------------------------------

std::string join(std::span<const std::string_view> words) {
  std::string out;
  for (std::string_view word : words) {
    if (!out.empty()) out += ", ";
    out += word;
  }
  return out;
}

std::optional<std::uint64_t> parse_decimal(std::string_view text) {
  if (text.empty()) return std::nullopt;
  std::uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    auto digit = static_cast<std::uint64_t>(c - '0');
    if (value > (kAnyCount - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  return value;
}

namespace {

// Optimal string alignment distance: a swap of two neighbours counts as one edit, the commonest
// typo ("evrey"). Gives up past `limit`, since only near misses make useful hints.
std::size_t edit_distance(std::string_view a, std::string_view b, std::size_t limit) {
  std::size_t gap = a.size() > b.size() ? a.size() - b.size() : b.size() - a.size();
  if (gap > limit) return limit + 1;
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.size()][b.size()];
}

std::string with_path(const Value& v, std::string_view message) {
  if (v.path.empty()) return std::string(message);
  return v.path + ": " + std::string(message);
}

}  // namespace

// ---- Reader ----------------------------------------------------------------------------------

Reader::Reader(std::string file, const SignalNames& signals)
    : file_(std::move(file)), signals_(signals) {}

std::optional<std::string> Reader::closest(std::string_view word,
                                           std::span<const std::string> candidates) {
  // A one-letter word gets no hint: everything is near it.
  std::size_t limit = std::min<std::size_t>(2, word.size() > 0 ? word.size() - 1 : 0);
  std::optional<std::string> best;
  std::size_t best_distance = limit + 1;
  for (const std::string& candidate : candidates) {
    std::size_t distance = edit_distance(word, candidate, limit);
    if (distance < best_distance) {
      best_distance = distance;
      best = candidate;
    }
  }
  return best;
}

std::optional<std::string> Reader::closest(std::string_view word, Keys keys) {
  std::vector<std::string> candidates(keys.begin(), keys.end());
  return closest(word, std::span<const std::string>(candidates));
}

std::string Reader::shown(std::string_view text) {
  constexpr std::size_t kMaxChars = 60;
  std::string out = "\"";
  std::size_t chars = 0;
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

config::Location Reader::location(Position at) const {
  return config::Location{file_, at.line, at.column};
}

void Reader::error(Position at, std::string message, ErrorCode code) {
  problems_.push_back(Problem{location(at), std::move(message), code});
}

std::nullopt_t Reader::fail(const Value& v, std::string_view message, ErrorCode code) {
  error(v.at, with_path(v, message), code);
  return std::nullopt;
}

std::nullopt_t Reader::expected(const Value& v, std::string_view what) {
  return fail(v, "expected " + std::string(what) + "; got " + v.node->describe());
}

void Reader::fail_at_column(const Value& v, int column, std::string_view message) {
  if (v.at.line > 0) {
    Position at = v.at;
    // Point at the text's first character, not at an opening quote, then at the column.
    if (v.node->style() == Node::Style::quoted) at.column += 1;
    at.column += column - 1;
    error(at, with_path(v, message));
  } else {
    fail(v, std::string(message) + " (column " + std::to_string(column) + ")");
  }
}

void Reader::missing(const Value& item, std::string_view key, std::string_view hint) {
  std::string message = "missing required key \"" + std::string(key) + "\"";
  if (!hint.empty()) message += " (" + std::string(hint) + ")";
  fail(item, message);
}

Value Reader::root(const Node& node, std::string path) const {
  return Value{&node, node.at(), std::move(path)};
}

Value Reader::item(const Value& list, const Node& node, std::size_t index) const {
  Position at = node.at();
  if (at.line == 0) at = list.at;
  return Value{&node, at, list.path + "[" + std::to_string(index) + "]"};
}

std::optional<Fields> Reader::mapping(const Value& v, std::optional<Keys> known, IfNull if_null,
                                      std::string_view what) {
  if (v.node->is_null() && if_null == IfNull::empty) return Fields{};
  if (!v.node->is_mapping()) return expected(v, what);

  const std::string prefix = v.path.empty() ? "" : v.path + ": ";
  Fields fields;
  std::map<std::string, Position> seen;
  for (const Node::Entry& e : v.node->entries()) {
    Position key_at = e.key.at();
    if (key_at.line == 0) key_at = v.at;
    if (!e.key.is_scalar()) {
      error(key_at, prefix + "expected a plain key; got " + e.key.describe());
      continue;
    }
    const std::string& name = e.key.text();
    if (auto [first, fresh] = seen.emplace(name, key_at); !fresh) {
      std::string message = prefix + "duplicate key " + shown(name);
      if (first->second.line > 0) {
        message += " (first at line " + std::to_string(first->second.line) + ", column " +
                   std::to_string(first->second.column) + ")";
      }
      error(key_at, std::move(message));
      continue;
    }
    if (known && std::find(known->begin(), known->end(), name) == known->end()) {
      std::string message =
          prefix + (v.path.empty() && v.at.line > 0 ? "unknown top-level key " : "unknown key ") +
          shown(name);
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
    // A YAML parser places an empty value at the next token, often on a later line; the key is
    // where the user must look.
    Position value_at = e.value.at();
    if (value_at.line == 0 || (e.value.is_null() && value_at.line != key_at.line)) {
      value_at = key_at;
    }
    std::string path = v.path.empty() ? name : v.path + "." + name;
    fields.push_back(Field{name, key_at, Value{&e.value, value_at, std::move(path)}});
  }
  return fields;
}

std::optional<std::vector<Value>> Reader::sequence(const Value& v, std::string_view what) {
  if (!v.node->is_sequence()) return expected(v, what);
  std::vector<Value> items;
  items.reserve(v.node->items().size());
  std::size_t index = 0;
  for (const Node& n : v.node->items()) items.push_back(item(v, n, index++));
  return items;
}

std::optional<std::string> Reader::text(const Value& v, std::string_view what) {
  if (!v.node->is_scalar()) return expected(v, what);
  return v.node->text();
}

std::optional<std::string> Reader::nonempty_text(const Value& v, std::string_view what) {
  auto s = text(v, what);
  if (s && s->empty()) return expected(v, what);
  return s;
}

std::optional<std::uint64_t> Reader::count(const Value& v, std::uint64_t min, std::uint64_t max) {
  std::string what = max == kAnyCount
                         ? "an integer >= " + std::to_string(min)
                         : "an integer from " + std::to_string(min) + " to " + std::to_string(max);
  if (!v.node->is_scalar() || v.node->style() == Node::Style::boolean) return expected(v, what);
  std::optional<std::uint64_t> n = parse_decimal(v.node->text());
  if (!n || *n < min || *n > max) return expected(v, what);
  return n;
}

std::optional<bool> Reader::boolean(const Value& v) {
  if (v.node->is_scalar() && v.node->style() != Node::Style::number) {
    if (v.node->text() == "true") return true;
    if (v.node->text() == "false") return false;
  }
  return expected(v, "true or false");
}

std::optional<Millis> Reader::duration(const Value& v, Millis min) {
  constexpr std::string_view kWhat = "a duration such as 250ms, 2s, 5m, 1h";
  if (!v.node->is_scalar() || v.node->style() == Node::Style::boolean) return expected(v, kWhat);
  std::optional<Millis> d;
  if (v.node->style() == Node::Style::number) {
    // Integers of milliseconds, as the protocol allows (SPEC §6).
    std::optional<std::uint64_t> n = parse_decimal(v.node->text());
    if (!n)
      return fail(v,
                  "expected a duration: a string such as \"250ms\" or integer "
                  "milliseconds; got " +
                      v.node->text());
    if (*n > static_cast<std::uint64_t>(std::numeric_limits<std::int32_t>::max()) * 1000) {
      return fail(v, "a duration of at most 10 years");
    }
    d = Millis(static_cast<std::int64_t>(*n));
  } else {
    std::string why;
    d = config::parse_duration(v.node->text(), &why);
    if (!d) return fail(v, why);
  }
  if (*d < min) {
    return fail(v, "expected a duration of at least " + config::format_duration(min) + "; got " +
                       (v.node->style() == Node::Style::number ? v.node->text() + "ms"
                                                               : shown(v.node->text())));
  }
  return d;
}

std::optional<SignalId> Reader::signal(const Value& v) {
  constexpr std::string_view kWhat = "a signal number 0-255 or the name of an entry in signals";
  if (!v.node->is_scalar() || v.node->style() == Node::Style::boolean) return expected(v, kWhat);
  const std::string& s = v.node->text();
  if (!s.empty() && s[0] >= '0' && s[0] <= '9') {
    std::optional<std::uint64_t> n = parse_decimal(s);
    if (!n || *n >= static_cast<std::uint64_t>(kSignalCount)) return expected(v, kWhat);
    return static_cast<SignalId>(*n);
  }
  if (auto found = signals_.find(s)) return found;
  if (!is_valid_signal_name(s)) return expected(v, kWhat);
  std::string message = "unknown signal " + shown(s) + ": no entry in signals has that name";
  std::vector<std::string> names = signals_.names();
  if (auto hint = closest(s, names)) message += "; did you mean " + shown(*hint) + "?";
  return fail(v, message, ErrorCode::unknown_signal);
}

std::optional<std::string> Reader::source_id(const Value& v) {
  constexpr std::string_view kWhat = "an id of letters, digits and . _ : -";
  if (!v.node->is_scalar() ||
      (v.node->style() != Node::Style::plain && v.node->style() != Node::Style::quoted)) {
    return expected(v, kWhat);
  }
  if (!is_valid_source_id(v.node->text())) return expected(v, kWhat);
  return v.node->text();
}

std::optional<std::size_t> Reader::choice(const Value& v, std::span<const std::string_view> names,
                                          std::string_view what) {
  if (v.node->is_scalar()) {
    auto found = std::find(names.begin(), names.end(), v.node->text());
    if (found != names.end()) return static_cast<std::size_t>(found - names.begin());
  }
  return expected(v, what);
}

}  // namespace tocsin::spec
