// json_scanner.h — a cursor over one protocol line for the hand-written fast paths
// (fast_raise.cc, fast_ack.cc). It reads the plain JSON a client library writes and answers
// false to anything else, leaving the line to the full parser (nlohmann), which words errors:
// giving up is always allowed, reading differently from nlohmann never is (the protocol fuzzer
// checks both fast paths against it). Pure; header-only so the scanners inline.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/event_encoder.h"

namespace tocsin::json_scan {

class Scanner {
 public:
  explicit Scanner(std::string_view s) : s_(s) {}

  // JSON whitespace (a line holds no '\n', but a batch written by hand may hold '\r').
  void skip_ws() {
    while (p_ < s_.size() &&
           (s_[p_] == ' ' || s_[p_] == '\t' || s_[p_] == '\r' || s_[p_] == '\n')) {
      ++p_;
    }
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
  bool literal(std::string_view word) {
    skip_ws();
    if (s_.substr(p_, word.size()) != word) return false;
    p_ += word.size();
    return true;
  }

  // A string of printable ASCII without escapes (keys, method names, signal names, ids): its
  // text between the quotes. Anything else gives up.
  bool plain_string(std::string_view& out) {
    if (!eat('"')) return false;
    std::size_t start = p_;
    while (p_ < s_.size()) {
      auto c = static_cast<unsigned char>(s_[p_]);
      if (c == '"') {
        out = s_.substr(start, p_ - start);
        ++p_;
        return true;
      }
      if (c == '\\' || c < 0x20 || c >= 0x80) return false;
      ++p_;
    }
    return false;
  }

  // Any JSON string, decoded into `out` (escapes, \u with surrogate pairs) with its UTF-8
  // checked as nlohmann checks it. Control characters must be escaped.
  bool string(std::string& out) {
    out.clear();
    if (!eat('"')) return false;
    while (p_ < s_.size()) {
      std::size_t run = p_;
      while (p_ < s_.size()) {
        auto c = static_cast<unsigned char>(s_[p_]);
        if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80) break;
        ++p_;
      }
      out.append(s_.data() + run, p_ - run);
      if (p_ >= s_.size()) return false;
      auto c = static_cast<unsigned char>(s_[p_]);
      if (c == '"') {
        ++p_;
        return true;
      }
      if (c < 0x20) return false;
      if (c >= 0x80) {
        if (!utf8_sequence(out)) return false;
        continue;
      }
      if (!escape(out)) return false;
    }
    return false;
  }

  // An unsigned integer as JSON writes it: no sign, no leading zero, no fraction or exponent,
  // within 64 bits.
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

  // An object of plain keys: `on_member(key)` reads each value (the cursor is after the ':') and
  // says whether it was taken. `{}` calls nothing.
  template <typename OnMember>
  bool object(OnMember on_member) {
    if (!eat('{')) return false;
    if (eat('}')) return true;
    do {
      std::string_view key;
      if (!plain_string(key) || !eat(':') || !on_member(key)) return false;
    } while (eat(','));
    return eat('}');
  }

  // A JSON-RPC request object: "jsonrpc":"2.0", "method" (`on_method(name)` says whether this
  // path takes it), an optional "id" (`has_id`, its JSON text in `id_json`) and "params" (read by
  // `on_params()`), each exactly once, nothing else.
  template <typename OnMethod, typename OnParams>
  bool request(OnMethod on_method, OnParams on_params, bool& has_id, std::string& id_json) {
    bool has_jsonrpc = false, has_method = false, has_params = false;
    has_id = false;
    bool ok = object([&](std::string_view key) {
      std::string_view v;
      if (key == "jsonrpc" && !has_jsonrpc) return has_jsonrpc = plain_string(v) && v == "2.0";
      if (key == "method" && !has_method) return has_method = plain_string(v) && on_method(v);
      if (key == "id" && !has_id) return has_id = id(id_json);
      if (key == "params" && !has_params) return has_params = on_params();
      return false;
    });
    return ok && has_jsonrpc && has_method && has_params;
  }

  // A JSON-RPC id: an integer within int64 (not "-0") or a string; its JSON text (a string is
  // decoded and written again, as the full path echoes it).
  bool id(std::string& out) {
    skip_ws();
    std::size_t start = p_;
    if (peek('"')) {
      std::string text;
      if (!string(text)) return false;
      out.clear();
      append_json_string(out, text);
      return true;
    }
    bool negative = p_ < s_.size() && s_[p_] == '-';
    if (negative) ++p_;
    std::uint64_t v = 0;
    if (!unsigned_integer(v)) return false;
    if (negative && (v == 0 || v > static_cast<std::uint64_t>(INT64_MAX) + 1)) return false;
    out.assign(s_.substr(start, p_ - start));
    return true;
  }

 private:
  static int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  bool hex4(unsigned& out) {
    if (p_ + 4 > s_.size()) return false;
    out = 0;
    for (int i = 0; i < 4; ++i) {
      int h = hex(s_[p_ + static_cast<std::size_t>(i)]);
      if (h < 0) return false;
      out = out * 16 + static_cast<unsigned>(h);
    }
    p_ += 4;
    return true;
  }
  static void append_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  // At '\\'.
  bool escape(std::string& out) {
    if (++p_ >= s_.size()) return false;
    char e = s_[p_++];
    switch (e) {
      case '"': out += '"'; return true;
      case '\\': out += '\\'; return true;
      case '/': out += '/'; return true;
      case 'b': out += '\b'; return true;
      case 'f': out += '\f'; return true;
      case 'n': out += '\n'; return true;
      case 'r': out += '\r'; return true;
      case 't': out += '\t'; return true;
      case 'u': {
        unsigned cp = 0;
        if (!hex4(cp)) return false;
        if (cp >= 0xDC00 && cp <= 0xDFFF) return false;  // a lone low surrogate
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          unsigned low = 0;
          if (p_ + 2 > s_.size() || s_[p_] != '\\' || s_[p_ + 1] != 'u') return false;
          p_ += 2;
          if (!hex4(low) || low < 0xDC00 || low > 0xDFFF) return false;
          cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        }
        append_utf8(out, cp);
        return true;
      }
      default: return false;
    }
  }
  // At a byte >= 0x80: one well-formed UTF-8 sequence (RFC 3629: no overlong forms, no
  // surrogates, nothing above U+10FFFF), copied.
  bool utf8_sequence(std::string& out) {
    auto at = [&](std::size_t i) { return static_cast<unsigned char>(s_[p_ + i]); };
    unsigned char c = at(0);
    std::size_t n = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // the range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 3;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 4;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;
    } else {
      return false;
    }
    if (p_ + n > s_.size()) return false;
    if (at(1) < lo || at(1) > hi) return false;
    for (std::size_t i = 2; i < n; ++i) {
      if (at(i) < 0x80 || at(i) > 0xBF) return false;
    }
    out.append(s_.data() + p_, n);
    p_ += n;
    return true;
  }

  std::string_view s_;
  std::size_t p_ = 0;
};

}  // namespace tocsin::json_scan
