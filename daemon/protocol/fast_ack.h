// fast_ack.h — the other hot path of the protocol: a worker's `ack` or `nack` of one event or
// of a batch of seqs (docs/protocol.md), usually a notification, read by a hand-written scanner
// into a SettleRequest without a JSON tree or a lexer's token buffer (the tree and the lexer were
// a third of the daemon's time with four acking subscribers: docs/BENCHMARKS.md). Only the plain
// shape is taken: one object, keys without escapes, "jsonrpc":"2.0", "method" "ack" or "nack",
// an optional id (an integer or a string without escapes), "params" holding "seq" (an unsigned
// integer) or "seqs" (a non-empty list of them) and, for nack, "requeue" (true or false).
// Anything else — whitespace inside the line aside — makes it give up, and the caller parses
// the line in full, so errors and rare shapes keep one implementation. Pure; no I/O.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tocsin {

struct SettleRequest {
  bool nack = false;     // "nack", else "ack"
  bool has_id = false;
  std::string id_json;   // the id as JSON text, when has_id
  bool one = false;      // "seq" was given (else "seqs")
  std::vector<std::uint64_t> seqs;
  bool requeue = true;
};

// True when `line` is exactly such a request; `out` is then filled (and reused between calls).
bool parse_settle_line(std::string_view line, SettleRequest& out);

}  // namespace tocsin
