#include "protocol/fast_ack.h"

#include "protocol/json_scanner.h"

namespace tocsin {

namespace {

using json_scan::Scanner;

bool read_params(Scanner& sc, SettleRequest& out, bool* has_seq, bool* has_seqs,
                 bool* has_requeue) {
  if (!sc.eat('{')) return false;
  if (sc.eat('}')) return true;
  do {
    std::string_view key;
    if (!sc.plain_string(key) || !sc.eat(':')) return false;
    if (key == "seq" && !*has_seq) {
      *has_seq = true;
      std::uint64_t v = 0;
      if (!sc.unsigned_integer(v)) return false;
      out.seqs.push_back(v);
    } else if (key == "seqs" && !*has_seqs) {
      *has_seqs = true;
      if (!sc.eat('[') || sc.peek(']')) return false;  // an empty list: the full path says so
      do {
        std::uint64_t v = 0;
        if (!sc.unsigned_integer(v)) return false;
        out.seqs.push_back(v);
      } while (sc.eat(','));
      if (!sc.eat(']')) return false;
    } else if (key == "requeue" && !*has_requeue) {
      *has_requeue = true;
      if (sc.literal("true")) {
        out.requeue = true;
      } else if (sc.literal("false")) {
        out.requeue = false;
      } else {
        return false;
      }
    } else {
      return false;
    }
  } while (sc.eat(','));
  return sc.eat('}');
}

}  // namespace

bool parse_settle_line(std::string_view line, SettleRequest& out) {
  out.nack = false;
  out.has_id = false;
  out.id_json.clear();
  out.seqs.clear();
  out.requeue = true;
  Scanner sc(line);
  if (!sc.eat('{')) return false;
  bool has_jsonrpc = false, has_method = false, has_params = false;
  bool has_seq = false, has_seqs = false, has_requeue = false;
  if (sc.peek('}')) return false;
  do {
    std::string_view key;
    if (!sc.plain_string(key) || !sc.eat(':')) return false;
    if (key == "jsonrpc" && !has_jsonrpc) {
      std::string_view v;
      if (!sc.plain_string(v) || v != "2.0") return false;
      has_jsonrpc = true;
    } else if (key == "method" && !has_method) {
      std::string_view v;
      if (!sc.plain_string(v)) return false;
      if (v == "nack") {
        out.nack = true;
      } else if (v != "ack") {
        return false;
      }
      has_method = true;
    } else if (key == "id" && !out.has_id) {
      if (!sc.id(out.id_json)) return false;
      out.has_id = true;
    } else if (key == "params" && !has_params) {
      if (!read_params(sc, out, &has_seq, &has_seqs, &has_requeue)) return false;
      has_params = true;
    } else {
      return false;
    }
  } while (sc.eat(','));
  if (!sc.eat('}') || !sc.at_end()) return false;
  if (!has_jsonrpc || !has_method || !has_params || has_seq == has_seqs) return false;
  if (has_requeue && !out.nack) return false;  // ack takes no requeue: the full path refuses
  out.one = has_seq;
  return true;
}

}  // namespace tocsin
