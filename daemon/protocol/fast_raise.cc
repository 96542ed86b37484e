#include "protocol/fast_raise.h"

#include "protocol/json_scanner.h"

namespace tocsin {

namespace {

using json_scan::Scanner;

// {"signal": N | "name", "payload": "..." | null}, each at most once, nothing else.
bool read_params(Scanner& sc, RaiseRequest& r) {
  bool has_payload = false;
  bool ok = sc.object([&](std::string_view key) {
    if (key == "signal" && !r.has_signal) {
      r.has_signal = true;
      r.signal_is_name = sc.peek('"');
      if (!r.signal_is_name) {
        // A negative, fractional or huge signal is an error the full path words.
        return sc.unsigned_integer(r.signal_number);
      }
      std::string_view name;
      if (!sc.plain_string(name)) return false;
      r.signal_name.assign(name);
      return true;
    }
    if (key == "payload" && !has_payload) {
      has_payload = true;
      return sc.literal("null") || sc.string(r.payload);
    }
    return false;
  });
  return ok && r.has_signal;  // no signal: the full path says so
}

// One request object: "jsonrpc":"2.0", "method":"raise", an optional id, "params".
bool read_request(Scanner& sc, RaiseRequest& r) {
  // Reset field by field: a reused request keeps its strings' capacity.
  r.id_json.clear();
  r.signal_is_name = false;
  r.signal_number = 0;
  r.signal_name.clear();
  r.has_signal = false;
  r.payload.clear();
  return sc.request([](std::string_view m) { return m == "raise"; },
                    [&] { return read_params(sc, r); }, r.has_id, r.id_json);
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
