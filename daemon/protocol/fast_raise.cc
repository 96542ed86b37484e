#include "protocol/fast_raise.h"

#include "protocol/event_encoder.h"
#include "protocol/json_scanner.h"

namespace tocsin {

namespace {

using json_scan::Scanner;

// {"signal": N | "name", "payload": "..." | null}, each at most once, nothing else.
bool read_params(Scanner& sc, RaiseRequest& r) {
  if (!sc.eat('{')) return false;
  if (sc.peek('}')) return false;  // no signal: the full path says so
  bool has_payload = false;
  do {
    std::string_view key;
    if (!sc.plain_string(key) || !sc.eat(':')) return false;
    if (key == "signal" && !r.has_signal) {
      r.has_signal = true;
      if (sc.peek('"')) {
        std::string_view name;
        if (!sc.plain_string(name)) return false;
        r.signal_is_name = true;
        r.signal_name.assign(name);
      } else {
        // A negative, fractional or huge signal is an error the full path words.
        if (!sc.unsigned_integer(r.signal_number)) return false;
        r.signal_is_name = false;
      }
    } else if (key == "payload" && !has_payload) {
      has_payload = true;
      if (sc.literal("null")) {
        r.payload.clear();
      } else if (!sc.string(r.payload)) {
        return false;
      }
    } else {
      return false;
    }
  } while (sc.eat(','));
  return sc.eat('}') && r.has_signal;
}

// One request object: "jsonrpc":"2.0", "method":"raise", an optional id, "params".
bool read_request(Scanner& sc, RaiseRequest& r) {
  // Reset field by field: a reused request keeps its strings' capacity.
  r.has_id = false;
  r.id_json.clear();
  r.signal_is_name = false;
  r.signal_number = 0;
  r.signal_name.clear();
  r.has_signal = false;
  r.payload.clear();
  if (!sc.eat('{')) return false;
  bool has_jsonrpc = false, has_method = false, has_params = false;
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
      if (!sc.plain_string(v) || v != "raise") return false;
      has_method = true;
    } else if (key == "id" && !r.has_id) {
      if (sc.peek('"')) {
        // Echoed in the reply as JSON: decoded, then written again (escapes normalised).
        std::string id;
        if (!sc.string(id)) return false;
        r.id_json.clear();
        append_json_string(r.id_json, id);
      } else if (!sc.id(r.id_json)) {
        return false;
      }
      r.has_id = true;
    } else if (key == "params" && !has_params) {
      if (!read_params(sc, r)) return false;
      has_params = true;
    } else {
      return false;
    }
  } while (sc.eat(','));
  return sc.eat('}') && has_jsonrpc && has_method && has_params;
}

}  // namespace

bool parse_raise_line(std::string_view line, std::vector<RaiseRequest>& out, bool* is_batch) {
  // Requests are reused from line to line: their strings keep their capacity.
  std::size_t n = 0;
  auto next = [&]() -> RaiseRequest& {
    if (n == out.size()) out.emplace_back();
    return out[n++];
  };
  Scanner sc(line);
  *is_batch = sc.peek('[');
  bool ok = true;
  if (*is_batch) {
    sc.eat('[');
    if (sc.peek(']')) {
      ok = false;  // an empty batch: the full path says so
    } else {
      do {
        if (!read_request(sc, next())) {
          ok = false;
          break;
        }
      } while (sc.eat(','));
      ok = ok && sc.eat(']');
    }
  } else {
    ok = read_request(sc, next());
  }
  ok = ok && sc.at_end();
  out.resize(ok ? n : 0);
  return ok;
}

}  // namespace tocsin
