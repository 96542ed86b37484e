// fast_raise.h — the hot path of the protocol: a line that is a `raise` request, or a batch of
// them, is read by a hand-written scanner (protocol/json_scanner.h) straight into RaiseRequests,
// without a JSON tree or a lexer's token buffer (the tree was half of a raise's cost, and
// nlohmann's SAX lexer, which replaced it, then 40% of the daemon's: docs/BENCHMARKS.md).
// Anything else — another method, an extra or repeated key, an escape in a key or an id, a type
// the full path would reject, a malformed line — makes the parse give up, and the caller parses
// the line in full, so errors and rare shapes keep exactly one implementation. The payload is
// decoded in full (escapes, surrogate pairs) and its UTF-8 checked as nlohmann checks it; the
// protocol fuzzer holds the two to reading the same. Pure; no I/O.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tocsin {

struct RaiseRequest {
  bool has_id = false;
  std::string id_json;  // the id as JSON text (a number or a quoted string), when has_id
  bool signal_is_name = false;
  std::uint64_t signal_number = 0;
  std::string signal_name;
  bool has_signal = false;
  std::string payload;
};

// True when `line` is one raise request object or a non-empty array of them, each with
// "jsonrpc":"2.0", "method":"raise", an id that is an integer or a string (or no id), and params
// holding only "signal" (integer or string) and "payload" (string or null).
bool parse_raise_line(std::string_view line, std::vector<RaiseRequest>& out, bool* is_batch);

}  // namespace tocsin
