// The event encoder (daemon/protocol/event_encoder.h): every field, every escape, the largest
// numbers, and the time format.
#include "protocol/event_encoder.h"

#include <date/date.h>
#include <gtest/gtest.h>

#include <limits>

#include <nlohmann/json.hpp>

namespace tocsin {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

TEST(EventEncoderTest, EncodesEventsAsJsonWithEscapes) {
  Event e;
  e.seq = 7;
  e.signal = 17;
  e.name = "tmp-changed";
  e.source = {SourceKind::file, "f\"1"};
  e.time = std::chrono::sys_days{std::chrono::year{2026} / 1 / 2} + 3h + 4min + 5s + 6us;
  e.iteration = 3;
  e.payload = std::string("a\"b\\c\n\t\x01\xc3\xa9", 10);
  Json j = Json::parse(encode_event_notification(e, 2));
  EXPECT_EQ(j["jsonrpc"], "2.0");
  EXPECT_EQ(j["method"], "signal");
  const Json& p = j["params"];
  EXPECT_EQ(p["seq"], 7);
  EXPECT_EQ(p["signal"], 17);
  EXPECT_EQ(p["name"], "tmp-changed");
  EXPECT_EQ(p["source"], (Json{{"kind", "file"}, {"id", "f\"1"}}));
  EXPECT_EQ(p["time"], "2026-01-02T03:04:05.000006Z");
  EXPECT_EQ(p["iteration"], 3);
  EXPECT_EQ(p["payload"], e.payload);
  EXPECT_EQ(p["ack"], true);
  EXPECT_EQ(p["redelivered"], true);
  EXPECT_EQ(p["delivery"], 2);
  const Json first = Json::parse(encode_event_notification(e, 1))["params"];
  EXPECT_EQ(first["delivery"], 1);
  EXPECT_FALSE(first.contains("redelivered"));
  EXPECT_EQ(Json::parse(encode_event_notification(e, 4294967295u))["params"]["delivery"],
            4294967295u);
  EXPECT_FALSE(Json::parse(encode_event_notification(e, 0))["params"].contains("ack"));
  EXPECT_EQ(Json::parse(encode_event_object(e))["payload"], e.payload);
}

// The encoder writes through a pointer into room it sized beforehand: every byte value that needs
// escaping, at the largest numbers, in every string field, must fit and round-trip exactly (a
// miscount would write past the room: ASan and the encoder's assert catch it in the test builds).
// The latest time system_clock holds (it counts nanoseconds: 2262 is its last year).
TEST(EventEncoderTest, EncodesEveryAsciiByteAndTheLargestNumbersExactly) {
  std::string all;
  for (int c = 0; c < 0x80; ++c) all += static_cast<char>(c);
  std::string escapes_only;
  for (int c = 0; c < 0x20; ++c) escapes_only.append(100, static_cast<char>(c));
  for (const std::string& text : {all, escapes_only, std::string(70000, '"'), std::string()}) {
    Event e;
    e.seq = std::numeric_limits<std::uint64_t>::max();
    e.signal = 255;
    e.name = text;
    e.source = {SourceKind::rb_timer, text};
    e.time =
        std::chrono::sys_days{std::chrono::year{2261} / 12 / 31} + 23h + 59min + 59s + 999999us;
    e.iteration = std::numeric_limits<std::uint64_t>::max();
    e.payload = text + text;
    std::string line = encode_event_notification(e, 4294967295u);
    ASSERT_EQ(line.back(), '\n');
    Json p = Json::parse(line)["params"];
    EXPECT_EQ(p["seq"], e.seq);
    EXPECT_EQ(p["name"], text);
    EXPECT_EQ(p["source"]["id"], text);
    EXPECT_EQ(p["payload"], e.payload);
    EXPECT_EQ(p["time"], "2261-12-31T23:59:59.999999Z");
    EXPECT_EQ(p["iteration"], e.iteration);
    EXPECT_EQ(Json::parse(encode_event_object(e))["payload"], e.payload);
    std::string appended = "prefix";
    append_json_string(appended, text);
    EXPECT_EQ(Json::parse(appended.substr(6)), text);
  }
}

// The encoder looks at eight bytes at a time and at the rest one by one: every byte that needs
// escaping (and bytes that do not: 0x7f, 0x80, UTF-8) at every position of strings of every
// length around the word size, and the size it reserves is exact.
TEST(EventEncoderTest, EscapesAtEveryPositionOfShortAndWordSizedStrings) {
  const std::vector<std::string> specials = {
      "\"", "\\", "\n", "\r", "\t", std::string(1, '\0'), "\x1f", "\x7f", "\xc3\xa9", " ", "/"};
  auto expected_size = [](const std::string& s) {
    std::size_t n = 2;
    for (unsigned char c : s) {
      n += c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t' ? 2 : c < 0x20 ? 6 : 1;
    }
    return n;
  };
  for (std::size_t len = 0; len <= 40; ++len) {
    for (const std::string& special : specials) {
      for (std::size_t at = 0; at <= len; ++at) {
        std::string text(len, 'a');
        text.insert(at, special);
        std::string out;
        append_json_string(out, text);
        ASSERT_EQ(out.size(), expected_size(text)) << "length " << len << " at " << at;
        ASSERT_EQ(Json::parse(out), text) << "length " << len << " at " << at << ": " << out;
      }
    }
  }
}

// The time is formatted once a second and its microseconds two digits at a time: every digit
// position, both sides of the epoch, against the date library.
TEST(Rfc3339Test, EveryMicrosecondDigitAndBothSidesOfTheEpoch) {
  using namespace std::chrono;
  for (sys_seconds base : {sys_days{year{2026} / 11 / 22} + 13h + 5min + 9s,
                           sys_days{year{1969} / 12 / 31} + 23h + 59min + 58s}) {
    for (std::int64_t us : {0, 1, 9, 10, 42, 99, 100, 999, 1000, 9999, 10000, 99999, 100000, 123456,
                            500000, 909090, 999999, 1000000, 1999999}) {
      system_clock::time_point t = base + microseconds(us);
      EXPECT_EQ(format_rfc3339(t), date::format("%FT%TZ", floor<microseconds>(t)))
          << us << " us after " << date::format("%F %T", base);
    }
  }
}

// Lines share one block by reference and their freed blocks are kept for reuse by size class:
// every line keeps its own bytes through copies, moves and assignments, at every class boundary,

}  // namespace
}  // namespace tocsin
