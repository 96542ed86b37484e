#include "protocol/fast_ack.h"

namespace tocsin {

namespace {

// A cursor over the line; every reader returns false on anything outside the plain shape.
class Scanner {
 public:
  explicit Scanner(std::string_view s) : s_(s) {}

  void skip_ws() {
    while (p_ < s_.size() && (s_[p_] == ' ' || s_[p_] == '\t' || s_[p_] == '\r')) ++p_;
  }
  bool eat(char c) {
    skip_ws();
    if (p_ < s_.size() && s_[p_] == c) {
      ++p_;
      return true;
    }
    return false;
  }
  bool peek(char c) {
    skip_ws();
    return p_ < s_.size() && s_[p_] == c;
  }
  bool at_end() {
    skip_ws();
    return p_ == s_.size();
  }
  // A string without escapes or control characters; its text (between the quotes).
  bool plain_string(std::string_view& out) {
    if (!eat('"')) return false;
    std::size_t start = p_;
    while (p_ < s_.size()) {
      char c = s_[p_];
      if (c == '"') {
        out = s_.substr(start, p_ - start);
        ++p_;
        return true;
      }
      if (c == '\\' || static_cast<unsigned char>(c) < 0x20) return false;
      ++p_;
    }
    return false;
  }
  // An unsigned integer as JSON writes it: no sign, no leading zero, no fraction or exponent,
  // and within 64 bits.
  bool unsigned_integer(std::uint64_t& out) {
    skip_ws();
    std::size_t start = p_;
    std::uint64_t v = 0;
    while (p_ < s_.size() && s_[p_] >= '0' && s_[p_] <= '9') {
      auto d = static_cast<std::uint64_t>(s_[p_] - '0');
      if (v > (UINT64_MAX - d) / 10) return false;
      v = v * 10 + d;
      ++p_;
    }
    std::size_t n = p_ - start;
    if (n == 0 || (n > 1 && s_[start] == '0')) return false;
    if (p_ < s_.size() && (s_[p_] == '.' || s_[p_] == 'e' || s_[p_] == 'E')) return false;
    out = v;
    return true;
  }
  // An id: an integer (a '-' allowed) or a plain string; its JSON text.
  bool id(std::string& out) {
    skip_ws();
    if (peek('"')) {
      std::size_t start = p_;
      std::string_view text;
      if (!plain_string(text)) return false;
      out.assign(s_.substr(start, p_ - start));
      return true;
    }
    std::size_t start = p_;
    if (p_ < s_.size() && s_[p_] == '-') ++p_;
    std::uint64_t v = 0;
    if (!unsigned_integer(v)) return false;
    if (s_[start] == '-' && v > static_cast<std::uint64_t>(INT64_MAX) + 1) return false;
    out.assign(s_.substr(start, p_ - start));
    return true;
  }
  bool literal(std::string_view word) {
    skip_ws();
    if (s_.substr(p_, word.size()) != word) return false;
    p_ += word.size();
    return true;
  }

 private:
  std::string_view s_;
  std::size_t p_ = 0;
};

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
