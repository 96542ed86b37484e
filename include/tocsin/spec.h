// spec.h — a configuration value in neutral form, and the one reader of it (DESIGN §6).
//
// The YAML file and the socket's requests describe the same things (a timer, a cron job, ...) as
// trees of mappings, lists and scalars. Each edge turns what it read into a spec::Node — the YAML
// loader (daemon/config/loader.cc) and the server (daemon/server/json_node.cc) — and every
// schema (the loader's sections, each source kind's spec) reads Nodes through a spec::Reader. So
// a field has one parser, one default and one error message wherever it comes from; only the
// position differs: file:line:column for YAML, the field's path in the params for a request
// ("invalid params: every: expected a duration ...").
//
// Scalars keep how they were written (Node::Style), because a few rules depend on it: a JSON
// number is a duration in milliseconds where a YAML duration needs a unit (SPEC §6), and a quoted
// scalar in plugin settings stays a string.
// Pure: no yaml-cpp and no nlohmann here. Not thread safe; values, not shared.
#pragma once

#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tocsin/location.h"
#include "tocsin/result.h"
#include "tocsin/signal.h"

namespace tocsin::spec {

using Millis = std::chrono::milliseconds;

// 1-based line and column in the text read; line 0: none (a request's params).
struct Position {
  int line = 0;
  int column = 0;
};

class Node {
 public:
  enum class Kind : std::uint8_t { null, scalar, sequence, mapping };
  // How a scalar was written. A YAML plain scalar is text whose type the schema decides; a quoted
  // YAML scalar or a JSON string is `quoted`; a JSON number is `number`; a JSON boolean `boolean`.
  enum class Style : std::uint8_t { plain, quoted, number, boolean };
  struct Entry;

  Node() = default;  // null, no position
  static Node null(Position at = {});
  static Node scalar(std::string text, Style style = Style::plain, Position at = {});
  static Node sequence(Position at = {});
  static Node mapping(Position at = {});

  Kind kind() const { return kind_; }
  bool is_null() const { return kind_ == Kind::null; }
  bool is_scalar() const { return kind_ == Kind::scalar; }
  bool is_sequence() const { return kind_ == Kind::sequence; }
  bool is_mapping() const { return kind_ == Kind::mapping; }
  const std::string& text() const { return text_; }  // a scalar's text; "" otherwise
  Style style() const { return style_; }
  Position at() const { return at_; }
  void set_at(Position at) { at_ = at; }

  const std::vector<Node>& items() const { return items_; }       // a sequence's
  const std::vector<Entry>& entries() const { return entries_; }  // a mapping's, in order
  std::size_t size() const;
  // A mapping's value for a scalar key, or nullptr.
  const Node* find(std::string_view key) const;

  Node& push_back(Node item);       // to a sequence
  Node& add(Node key, Node value);  // to a mapping; returns the value
  Node& add(std::string key, Node value);

  // How a message names this value: nothing, "text" (quoted, cut short), a list, a mapping.
  std::string describe() const;

 private:
  Kind kind_ = Kind::null;
  Style style_ = Style::plain;
  Position at_;
  std::string text_;
  std::vector<Node> items_;
  std::vector<Entry> entries_;
};

struct Node::Entry {
  Node key;
  Node value;
};

// A value being read: the node, where a message about it points, and its path in the document
// ("timers[0].every"; "every" in a request's params; "" for a request's params themselves).
struct Value {
  const Node* node = nullptr;
  Position at;
  std::string path;
};

// One checked key of a mapping.
struct Field {
  std::string key;
  Position key_at;
  Value value;
};
using Fields = std::vector<Field>;
using Keys = std::span<const std::string_view>;

enum class IfNull { empty, error };

struct Problem {
  config::Location where;
  std::string message;  // with the value's path in front
  ErrorCode code = ErrorCode::invalid_params;
};

// The names a signal reference may use: the file's own table while loading it, the running
// table for a request.
class SignalNames {
 public:
  virtual ~SignalNames() = default;
  virtual std::optional<SignalId> find(std::string_view name) const = 0;
  virtual std::vector<std::string> names() const = 0;  // for "did you mean"
};

inline constexpr std::uint64_t kAnyCount = std::numeric_limits<std::uint64_t>::max();

// Reads values and collects every problem it finds (a file should list all its errors at once;
// a request is answered with the first). Each reader returns nullopt after reporting a problem.
class Reader {
 public:
  // `file` names the text read (for positions); empty for a request.
  Reader(std::string file, const SignalNames& signals);

  // ---- problems ----
  config::Location location(Position at) const;
  void error(Position at, std::string message, ErrorCode code = ErrorCode::invalid_params);
  std::nullopt_t fail(const Value& v, std::string_view message,
                      ErrorCode code = ErrorCode::invalid_params);
  std::nullopt_t expected(const Value& v, std::string_view what);
  // A problem at a 1-based column of a scalar's text (a cron expression's): there in a file,
  // "(column N)" after the message in a request.
  void fail_at_column(const Value& v, int column, std::string_view message);
  // `item` lacks a required key; `hint` says what it is for ("the period, such as 2s").
  void missing(const Value& item, std::string_view key, std::string_view hint = {});
  const std::vector<Problem>& problems() const { return problems_; }
  std::vector<Problem> take_problems() { return std::exchange(problems_, {}); }
  bool ok() const { return problems_.empty(); }
  std::size_t problem_count() const { return problems_.size(); }

  // ---- structure ----
  Value root(const Node& node, std::string path = {}) const;
  Value item(const Value& list, const Node& node, std::size_t index) const;
  // The fields of a mapping; unknown keys (when `known` is given) and duplicates are problems.
  std::optional<Fields> mapping(const Value& v, std::optional<Keys> known, IfNull if_null,
                                std::string_view what = "a mapping");
  std::optional<std::vector<Value>> sequence(const Value& v, std::string_view what);

  // ---- scalars ----
  std::optional<std::string> text(const Value& v, std::string_view what);
  std::optional<std::string> nonempty_text(const Value& v, std::string_view what);
  // Plain decimal digits, from `min` to `max`.
  std::optional<std::uint64_t> count(const Value& v, std::uint64_t min,
                                     std::uint64_t max = kAnyCount);
  std::optional<bool> boolean(const Value& v);
  // "250ms", "2s", "1h30m"; a JSON number is milliseconds. At least `min`.
  std::optional<Millis> duration(const Value& v, Millis min);
  // A number 0-255 or a name in the signal table.
  std::optional<SignalId> signal(const Value& v);
  // A source id: letters, digits and . _ : -
  std::optional<std::string> source_id(const Value& v);
  // One of `names` (the value's text), as its index.
  std::optional<std::size_t> choice(const Value& v, std::span<const std::string_view> names,
                                    std::string_view what);

  // The candidate within two edits of `word` (for "did you mean"), if any.
  static std::optional<std::string> closest(std::string_view word,
                                            std::span<const std::string> candidates);
  static std::optional<std::string> closest(std::string_view word, Keys keys);
  // How a value is shown in a message: quoted, escaped, cut short.
  static std::string shown(std::string_view text);

 private:
  std::string file_;
  const SignalNames& signals_;
  std::vector<Problem> problems_;
};

// "a, b, c"
std::string join(std::span<const std::string_view> words);
// Plain decimal digits only: no sign, no base prefix, no fraction.
std::optional<std::uint64_t> parse_decimal(std::string_view text);

}  // namespace tocsin::spec
