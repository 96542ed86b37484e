#include "protocol/fast_raise.h"

#include <gtest/gtest.h>

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
       }) {
    EXPECT_FALSE(parse_raise_line(line, out, &batch)) << line;
    EXPECT_TRUE(out.empty()) << line;
  }
}

}  // namespace
}  // namespace tocsin
