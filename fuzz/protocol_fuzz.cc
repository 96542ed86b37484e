// libFuzzer target: the protocol decoder. A line from a client goes through the raise fast path
// (parse_raise_line), the ack/nack fast path (parse_settle_line) and, when those decline, through
// nlohmann's full parse with the session's depth pre-check. Properties checked besides "no crash, no sanitizer report":
//   - whatever the fast path accepts, the full parser accepts too and reads the same requests
//     (the fast path may only ever be a faster way to the same answer);
//   - event encoding round-trips: an event built from the input encodes to JSON that parses back
//     to the same payload and source id.
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/fast_ack.h"
#include "protocol/fast_raise.h"
#include "protocol/event_encoder.h"

using Json = nlohmann::json;

namespace {

[[noreturn]] void fail(const char* why) {
  std::fprintf(stderr, "property violated: %s\n", why);
  std::abort();
}

void check_request(const Json& j, const tocsin::RaiseRequest& r) {
  if (!j.is_object() || j.value("method", "") != "raise" || j.value("jsonrpc", "") != "2.0") {
    fail("fast path accepted a request the full parser does not read as a raise");
  }
  if (r.has_id != j.contains("id")) fail("id presence differs");
  if (r.has_id && Json::parse(r.id_json) != j["id"]) fail("id differs");
  const Json& p = j["params"];
  const Json& s = p["signal"];
  if (r.signal_is_name) {
    if (!s.is_string() || s.get<std::string>() != r.signal_name) fail("signal name differs");
  } else if (!s.is_number_unsigned() || s.get<std::uint64_t>() != r.signal_number) {
    fail("signal number differs");
  }
  std::string payload = p.contains("payload") && !p["payload"].is_null() ? p["payload"].get<std::string>() : "";
  if (payload != r.payload) fail("payload differs");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view line(reinterpret_cast<const char*>(data), size);
  std::vector<tocsin::RaiseRequest> requests;
  bool batch = false;
  bool fast = tocsin::parse_raise_line(line, requests, &batch);
  Json full = Json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (fast) {
    if (full.is_discarded()) fail("fast path accepted a line that is not JSON");
    if (batch) {
      if (!full.is_array() || full.size() != requests.size()) fail("batch size differs");
      for (std::size_t i = 0; i < requests.size(); ++i) check_request(full[i], requests[i]);
    } else {
      check_request(full, requests.at(0));
    }
  }
  // The ack/nack fast path: what it takes, the full parser reads the same way.
  tocsin::SettleRequest settle;
  if (tocsin::parse_settle_line(line, settle)) {
    if (full.is_discarded() || !full.is_object()) fail("ack fast path accepted a non-object");
    if (full.value("jsonrpc", "") != "2.0") fail("ack fast path: jsonrpc differs");
    if ((full.value("method", "") == "nack") != settle.nack) fail("ack fast path: method");
    const Json& p = full["params"];
    if (settle.one) {
      if (!p["seq"].is_number_unsigned() || p["seq"].get<std::uint64_t>() != settle.seqs.at(0)) {
        fail("ack fast path: seq differs");
      }
    } else if (p["seqs"].get<std::vector<std::uint64_t>>() != settle.seqs) {
      fail("ack fast path: seqs differ");
    }
    if (settle.has_id != full.contains("id")) fail("ack fast path: id presence differs");
    if (settle.has_id && Json::parse(settle.id_json) != full["id"]) fail("ack fast path: id");
  }
  // Encoding: any valid UTF-8 payload must come back out of the event line unchanged (the
  // daemon's payloads are UTF-8: the JSON parser checks them on the way in).
  bool utf8 = true;
  try {
    (void)Json(std::string(line)).dump();
  } catch (const Json::exception&) {
    utf8 = false;
  }
  if (utf8) {
    tocsin::Event e;
    e.seq = size;
    e.signal = size ? data[0] : 0;
    e.payload = std::string(line);
    e.source.id = "fuzz";
    Json back = Json::parse(tocsin::encode_event_notification(e, 1), nullptr, false);
    if (back.is_discarded()) fail("the encoding of a UTF-8 payload is not JSON");
    if (back["params"]["payload"].get<std::string>() != e.payload) fail("payload round trip");
    if (back["params"]["seq"].get<std::size_t>() != size) fail("seq round trip");
  }
  return 0;
}
