#include "protocol/fast_raise.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>

namespace tocsin {
namespace {

TEST(FastRaise, TakesRaiseRequestsAndBatches) {
  std::vector<RaiseRequest> out;
  bool batch = false;
  ASSERT_TRUE(parse_raise_line(
      R"({"jsonrpc":"2.0","id":7,"method":"raise","params":{"signal":5,"payload":"a\"b"}})", out,
      &batch));
  EXPECT_FALSE(batch);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].id_json, "7");
  EXPECT_FALSE(out[0].signal_is_name);
  EXPECT_EQ(out[0].signal_number, 5u);
  EXPECT_EQ(out[0].payload, "a\"b");

  ASSERT_TRUE(parse_raise_line(
      R"([{"method":"raise","params":{"signal":"news"},"jsonrpc":"2.0","id":"x\"y"},)"
      R"({"jsonrpc":"2.0","method":"raise","params":{"payload":null,"signal":3}}])",
      out, &batch));
  EXPECT_TRUE(batch);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].id_json, R"("x\"y")");
  EXPECT_TRUE(out[0].signal_is_name);
  EXPECT_EQ(out[0].signal_name, "news");
  EXPECT_FALSE(out[1].has_id);
  EXPECT_EQ(out[1].payload, "");
}

// The payload is decoded as nlohmann decodes it, and what nlohmann refuses is left to it.
TEST(FastRaise, DecodesPayloadsExactlyAndChecksTheirUtf8) {
  std::vector<RaiseRequest> out;
  bool batch = false;
  auto payload_of = [&](const std::string& json_payload) -> std::optional<std::string> {
    std::string line = R"({"jsonrpc":"2.0","method":"raise","params":{"signal":5,"payload":)" +
                       json_payload + "}}";
    if (!parse_raise_line(line, out, &batch)) return std::nullopt;
    return out.at(0).payload;
  };
  EXPECT_EQ(payload_of(R"("\" \\ \/ \b \f \n \r \t")"), "\" \\ / \b \f \n \r \t");
  EXPECT_EQ(payload_of(R"("\u0041\u00e9\u20AC\ud83d\ude00")"),
            "A\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
  EXPECT_EQ(payload_of("\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\""),
            "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  EXPECT_EQ(payload_of(R"("")"), "");
  EXPECT_EQ(payload_of("null"), "");
  for (const char* bad : {
           "\"\x80\"",              // a continuation byte alone
           "\"\xc0\xaf\"",          // overlong
           "\"\xed\xa0\x80\"",      // a surrogate in UTF-8
           "\"\xf4\x90\x80\x80\"",  // above U+10FFFF
           "\"\xe2\x82\"",          // cut short
           R"("\ud83d")",           // a high surrogate alone
           R"("\ude00")",           // a low surrogate alone
           R"("\ud83d\u0041")",     // a high surrogate with no low one
           R"("\x")",               // not an escape
           R"("\u12G4")",
           "\"tab\there\"",         // a raw control character
           R"("unterminated)",
       }) {
    EXPECT_EQ(payload_of(bad), std::nullopt) << bad;
  }
}

TEST(FastRaise, LeavesEverythingElseToTheFullParser) {
  std::vector<RaiseRequest> out;
  bool batch = false;
  for (const char* line : {
           R"({"jsonrpc":"2.0","id":1,"method":"version"})",
           R"({"jsonrpc":"1.0","id":1,"method":"raise","params":{"signal":5}})",
           R"({"jsonrpc":"2.0","id":1,"method":"raise"})",
           R"({"jsonrpc":"2.0","id":1,"method":"raise","params":{"signal":5,"extra":1}})",
           R"({"jsonrpc":"2.0","id":1,"method":"raise","params":{"signal":-1}})",
           R"({"jsonrpc":"2.0","id":1,"method":"raise","params":{"signal":1.5}})",
           R"({"jsonrpc":"2.0","id":1,"method":"raise","params":{"signal":true}})",
           R"({"jsonrpc":"2.0","id":1,"method":"raise","params":{"signal":5,"payload":7}})",
           R"({"jsonrpc":"2.0","id":null,"method":"raise","params":{"signal":5}})",
           R"({"jsonrpc":"2.0","id":1.5,"method":"raise","params":{"signal":5}})",
           R"({"jsonrpc":"2.0","id":1,"method":"raise","params":[5]})",
           R"({"jsonrpc":"2.0","id":1,"method":"raise","params":{"signal":5}} trailing)",
           R"([])",
           R"([{"jsonrpc":"2.0","id":1,"method":"raise","params":{"signal":5}},1])",
           R"([{"jsonrpc":"2.0","id":1,"method":"raise","params":{"signal":5}},)"
           R"({"jsonrpc":"2.0","id":2,"method":"status"}])",
           R"({"jsonrpc":"2.0","id":1,"method":"raise","params":{"signal":5})",
           R"("raise")",
           R"({"jsonrpc":"2.0","id":1,"method":"raise","params":{"signal":5,"signal":6}})",
           R"({"jsonrpc":"2.0","id":1,"id":2,"method":"raise","params":{"signal":5}})",
           R"({"jsonrpc":"2.0","id":-0,"method":"raise","params":{"signal":5}})",
           R"({"jsonrpc":"2.0","id":1,"method":"raise","params":{"signal":05}})",
           R"({"jsonrpc":"2.0","id":1,"method":"raise","params":{"signal":18446744073709551616}})",
           R"({"jsonrpc":"2.0","id":1,"method":"r\u0061ise","params":{"signal":5}})",
       }) {
    EXPECT_FALSE(parse_raise_line(line, out, &batch)) << line;
    EXPECT_TRUE(out.empty()) << line;
  }
}

}  // namespace
}  // namespace tocsin
