// event_encoder.h — an event as the JSON text of the protocol (docs/protocol.md "Events"): the
// `signal` notification a subscriber reads, and the event object a `wait` answers with. A
// hand-written encoder: it is the hot path of every delivery (docs/BENCHMARKS.md). Pure; not
// thread safe (EventEncoder keeps a buffer).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/line.h"
#include "tocsin/signal.h"

namespace tocsin {

// Appends `s` as a JSON string literal (quotes, escapes; bytes >= 0x80 pass through).
void append_json_string(std::string& out, std::string_view s);

// How a `signal` notification carries the event (docs/protocol.md "Events"): as a params object
// (by name, the default) or as a params array (by position, JSON-RPC's other form: cheaper to
// parse for clients in interpreted languages; a subscriber chooses it in `subscribe`).
enum class EventParams : std::uint8_t { by_name, by_position };

// Serializes the `signal` notification for an event. `delivery` is 0 for a broadcast event; for a
// one-of event it counts its deliveries from 1 and adds `"ack":true,"delivery":N` (and
// `"redelivered":true` from the second on).
std::string encode_event_notification(const Event& event, std::uint32_t delivery,
                                      EventParams params = EventParams::by_name);
// The event as a JSON object (the notification's params), for `wait` results.
std::string encode_event_object(const Event& event);

// Encodes notifications into a buffer kept from call to call, whose room is reckoned without a
// pass over the event's short strings, and copies each into a Line of its exact size.
class EventEncoder {
 public:
  Line encode(const Event& event, std::uint32_t delivery,
              EventParams params = EventParams::by_name);

 private:
  std::string scratch_;
};

}  // namespace tocsin
