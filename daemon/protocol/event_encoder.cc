#include "protocol/event_encoder.h"

#include <array>
#include <cassert>
#include <charconv>
#include <cstdint>
#include <cstring>

namespace tocsin {

namespace {

constexpr char kHex[] = "0123456789abcdef";

// What each byte adds to a JSON string literal: 0 passes through (bytes >= 0x80 too), 1 for the
// two-byte escapes (\" \\ \n \r \t), 5 for \u00XX.
constexpr std::array<std::uint8_t, 256> kEscapeExtra = [] {
  std::array<std::uint8_t, 256> t{};
  for (int c = 0; c < 0x20; ++c) t[c] = 5;
  for (unsigned char c : {'"', '\\', '\n', '\r', '\t'}) t[c] = 1;
  return t;
}();

// Eight bytes at a time: whether any of them needs escaping (< 0x20, '"' or '\\'). Exact as a
// whole (a borrow can mark a byte above a true hit, never create a hit).
constexpr std::uint64_t kOnes = 0x0101010101010101ULL;
constexpr std::uint64_t kHighs = 0x8080808080808080ULL;
bool any_needs_escape(std::uint64_t x) {
  auto zero_byte = [](std::uint64_t v) { return (v - kOnes) & ~v & kHighs; };
  std::uint64_t below_space = (x - kOnes * 0x20) & ~x & kHighs;
  return (below_space | zero_byte(x ^ (kOnes * '"')) | zero_byte(x ^ (kOnes * '\\'))) != 0;
}

std::uint64_t load8(const char* p) {
  std::uint64_t x;
  std::memcpy(&x, p, 8);
  return x;
}

// The encoded length of `s` as a JSON string literal, quotes included.
std::size_t json_string_size(std::string_view s) {
  std::size_t n = s.size() + 2;
  std::size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    if (!any_needs_escape(load8(s.data() + i))) continue;
    for (std::size_t j = i; j < i + 8; ++j) n += kEscapeExtra[static_cast<unsigned char>(s[j])];
  }
  for (; i < s.size(); ++i) n += kEscapeExtra[static_cast<unsigned char>(s[i])];
  return n;
}

char* write_escaped(char* p, unsigned char c) {
  *p++ = '\\';
  switch (c) {
    case '"':
      *p++ = '"';
      break;
    case '\\':
      *p++ = '\\';
      break;
    case '\n':
      *p++ = 'n';
      break;
    case '\r':
      *p++ = 'r';
      break;
    case '\t':
      *p++ = 't';
      break;
    default:
      std::memcpy(p, "u00", 3);
      p[3] = kHex[c >> 4];
      p[4] = kHex[c & 0xf];
      p += 5;
  }
  return p;
}

// Writes `s` as a JSON string literal (quotes, escapes; bytes >= 0x80 pass through) at `p`, which
// has room for json_string_size(s) bytes; returns the end. Eight bytes that need no escaping are
// copied as one word, the rest byte by byte: the strings of an event are mostly short (names, ids,
// small payloads), where calls to memcpy for each run cost more than the bytes.
char* write_json_string(char* p, std::string_view s) {
  auto put = [&p](char ch) {
    auto c = static_cast<unsigned char>(ch);
    if (kEscapeExtra[c] == 0) {
      *p++ = ch;
    } else {
      p = write_escaped(p, c);
    }
  };
  *p++ = '"';
  const char* in = s.data();
  const char* end = in + s.size();
  for (; end - in >= 8; in += 8) {
    std::uint64_t x = load8(in);
    if (any_needs_escape(x)) {
      for (int i = 0; i < 8; ++i) put(in[i]);
    } else {
      std::memcpy(p, &x, 8);
      p += 8;
    }
  }
  for (; in < end; ++in) put(*in);
  *p++ = '"';
  return p;
}

template <std::size_t N>
char* write_literal(char* p, const char (&text)[N]) {
  std::memcpy(p, text, N - 1);
  return p + N - 1;
}

// Bytes that need no escaping (a source kind's name).
char* write_bytes(char* p, std::string_view s) {
  std::memcpy(p, s.data(), s.size());
  return p + s.size();
}

constexpr std::size_t kNumberBytes = 20;  // the longest std::uint64_t

char* write_number(char* p, std::uint64_t n) {
  if (n < 10) {  // the iteration of most events, many signal numbers
    *p = static_cast<char>('0' + n);
    return p + 1;
  }
  return std::to_chars(p, p + kNumberBytes, n).ptr;
}

constexpr std::string_view kNotificationHead = R"({"jsonrpc":"2.0","method":"signal","params":)";

// Room for an event's fields and the notification around them: the fixed text counted exactly,
// the numbers and the time at their longest, the strings by `string_room`.
template <typename StringRoom>
std::size_t event_fields_room(const Event& e, StringRoom string_room) {
  return 128 + 3 * kNumberBytes + kRfc3339MaxBytes + string_room(e.name) +
         string_room(e.source.id) + string_room(e.payload);
}
std::size_t event_fields_size(const Event& e) { return event_fields_room(e, json_string_size); }

// Room enough for `s` without looking at its bytes (each could become \u00XX) where that is
// little; long strings are measured, so that the room stays close to what is written.
std::size_t json_string_room(std::string_view s) {
  return s.size() <= 256 ? 6 * s.size() + 2 : json_string_size(s);
}

// ",\"ack\":true,\"delivery\":" (23), ten digits, ",\"redelivered\":true" (19) and "}}\n": 55 bytes
// at most.
constexpr std::size_t kNotificationTail = 64;

// The hot path of every delivery, written through a pointer into room reserved once (measured:
// docs/BENCHMARKS.md, pgnotify). `p` has room for event_fields_size(e) bytes.
char* write_event_fields(char* p, const Event& e) {
  p = write_literal(p, "{\"seq\":");
  p = write_number(p, e.seq);
  p = write_literal(p, ",\"signal\":");
  p = write_number(p, e.signal);
  p = write_literal(p, ",\"name\":");
  p = write_json_string(p, e.name);
  p = write_literal(p, ",\"source\":{\"kind\":\"");
  p = write_bytes(p, to_string(e.source.kind));
  p = write_literal(p, "\",\"id\":");
  p = write_json_string(p, e.source.id);
  p = write_literal(p, "},\"time\":\"");
  p = write_rfc3339(p, e.time);
  p = write_literal(p, "\",\"iteration\":");
  p = write_number(p, e.iteration);
  p = write_literal(p, ",\"payload\":");
  return write_json_string(p, e.payload);
}

// The same fields by position: [seq,signal,"name","kind","id","time",iteration,"payload",delivery].
char* write_event_array(char* p, const Event& e, std::uint32_t delivery) {
  *p++ = '[';
  p = write_number(p, e.seq);
  *p++ = ',';
  p = write_number(p, e.signal);
  *p++ = ',';
  p = write_json_string(p, e.name);
  p = write_literal(p, ",\"");
  p = write_bytes(p, to_string(e.source.kind));
  p = write_literal(p, "\",");
  p = write_json_string(p, e.source.id);
  p = write_literal(p, ",\"");
  p = write_rfc3339(p, e.time);
  p = write_literal(p, "\",");
  p = write_number(p, e.iteration);
  *p++ = ',';
  p = write_json_string(p, e.payload);
  *p++ = ',';
  p = write_number(p, delivery);
  *p++ = ']';
  return p;
}

// Reserves `room` bytes at the end of `out`, lets `write` fill them, keeps what it wrote.
template <typename Write>
void append_written(std::string& out, std::size_t room, Write write) {
  std::size_t at = out.size();
  out.resize(at + room);
  char* end = write(out.data() + at);
  assert(static_cast<std::size_t>(end - (out.data() + at)) <= room);
  out.resize(static_cast<std::size_t>(end - out.data()));
}

// The whole `signal` notification line at `p`, which has room for kNotificationHead, the event's
// fields and kNotificationTail.
char* write_event_notification(char* p, const Event& event, std::uint32_t delivery,
                               EventParams params) {
  std::memcpy(p, kNotificationHead.data(), kNotificationHead.size());
  if (params == EventParams::by_position) {
    p = write_event_array(p + kNotificationHead.size(), event, delivery);
    return write_literal(p, "}\n");
  }
  p = write_event_fields(p + kNotificationHead.size(), event);
  if (delivery > 0) {
    p = write_literal(p, ",\"ack\":true,\"delivery\":");
    p = write_number(p, delivery);
  }
  if (delivery > 1) p = write_literal(p, ",\"redelivered\":true");
  return write_literal(p, "}}\n");
}

}  // namespace

void append_json_string(std::string& out, std::string_view s) {
  append_written(out, json_string_size(s), [&](char* p) { return write_json_string(p, s); });
}

std::string encode_event_object(const Event& event) {
  std::string out;
  append_written(out, event_fields_size(event) + 1, [&](char* p) {
    p = write_event_fields(p, event);
    *p++ = '}';
    return p;
  });
  return out;
}

std::string encode_event_notification(const Event& event, std::uint32_t delivery,
                                      EventParams params) {
  std::string out;
  std::size_t room = kNotificationHead.size() + event_fields_size(event) + kNotificationTail;
  append_written(out, room,
                 [&](char* p) { return write_event_notification(p, event, delivery, params); });
  return out;
}

Line EventEncoder::encode(const Event& event, std::uint32_t delivery, EventParams params) {
  std::size_t room =
      kNotificationHead.size() + event_fields_room(event, json_string_room) + kNotificationTail;
  if (scratch_.size() < room) scratch_.resize(room);
  char* end = write_event_notification(scratch_.data(), event, delivery, params);
  assert(static_cast<std::size_t>(end - scratch_.data()) <= room);
  return Line({scratch_.data(), static_cast<std::size_t>(end - scratch_.data())});
}

}  // namespace tocsin
