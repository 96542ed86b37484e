#include "protocol/fast_ack.h"

#include "protocol/json_scanner.h"

namespace tocsin {

namespace {

using json_scan::Scanner;

// {"seq": N} or {"seqs": [N, ...]} and, for nack, "requeue": true|false; each at most once.
bool read_params(Scanner& sc, SettleRequest& out, bool* has_seq, bool* has_seqs,
                 bool* has_requeue) {
  return sc.object([&](std::string_view key) {
    std::uint64_t v = 0;
    if (key == "seq" && !*has_seq) {
      *has_seq = true;
      if (!sc.unsigned_integer(v)) return false;
      out.seqs.push_back(v);
      return true;
    }
    if (key == "seqs" && !*has_seqs) {
      *has_seqs = true;
      if (!sc.eat('[') || sc.peek(']')) return false;  // an empty list: the full path says so
      do {
        if (!sc.unsigned_integer(v)) return false;
        out.seqs.push_back(v);
      } while (sc.eat(','));
      return sc.eat(']');
    }
    if (key == "requeue" && !*has_requeue) {
      *has_requeue = true;
      out.requeue = sc.literal("true");
      return out.requeue || sc.literal("false");
    }
    return false;
  });
}

}  // namespace

bool parse_settle_line(std::string_view line, SettleRequest& out) {
  out.nack = false;
  out.id_json.clear();
  out.seqs.clear();
  out.requeue = true;
  Scanner sc(line);
  bool has_seq = false, has_seqs = false, has_requeue = false;
  auto method = [&](std::string_view m) {
    out.nack = m == "nack";
    return out.nack || m == "ack";
  };
  auto params = [&] { return read_params(sc, out, &has_seq, &has_seqs, &has_requeue); };
  if (!sc.request(method, params, out.has_id, out.id_json) || !sc.at_end()) return false;
  if (has_seq == has_seqs) return false;
  if (has_requeue && !out.nack) return false;  // ack takes no requeue: the full path refuses
  out.one = has_seq;
  return true;
}

}  // namespace tocsin
