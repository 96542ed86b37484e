// The ack/nack fast path (daemon/protocol/fast_ack.h): what it takes, and that it gives up on
// everything else so that the full parser words the error.
#include "protocol/fast_ack.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace tocsin {
namespace {

TEST(FastAckTest, TakesTheShapesWorkersSend) {
  SettleRequest r;
  ASSERT_TRUE(parse_settle_line(R"({"jsonrpc":"2.0","method":"ack","params":{"seqs":[1,22,333]}})", r));
  EXPECT_FALSE(r.nack);
  EXPECT_FALSE(r.has_id);
  EXPECT_FALSE(r.one);
  EXPECT_EQ(r.seqs, (std::vector<std::uint64_t>{1, 22, 333}));

  ASSERT_TRUE(parse_settle_line(
      R"({ "id" : 7 , "params":{"seq":18446744073709551615}, "method":"ack","jsonrpc":"2.0" })",
      r));
  EXPECT_TRUE(r.has_id);
  EXPECT_EQ(r.id_json, "7");
  EXPECT_TRUE(r.one);
  EXPECT_EQ(r.seqs, (std::vector<std::uint64_t>{18446744073709551615u}));

  ASSERT_TRUE(parse_settle_line(
      R"({"jsonrpc":"2.0","id":"a-1","method":"nack","params":{"requeue":false,"seq":0}})", r));
  EXPECT_TRUE(r.nack);
  EXPECT_FALSE(r.requeue);
  EXPECT_EQ(r.id_json, "\"a-1\"");
  ASSERT_TRUE(parse_settle_line(R"({"jsonrpc":"2.0","id":-3,"method":"nack","params":{"seqs":[4]}})", r));
  EXPECT_TRUE(r.requeue);
  EXPECT_EQ(r.id_json, "-3");
}

TEST(FastAckTest, GivesUpOnAnythingElse) {
  for (const char* line : {
           R"({"jsonrpc":"2.0","method":"ack","params":{"seqs":[]}})",           // empty list
           R"({"jsonrpc":"2.0","method":"ack","params":{"seq":1,"seqs":[2]}})",  // both
           R"({"jsonrpc":"2.0","method":"ack","params":{}})",                    // neither
           R"({"jsonrpc":"2.0","method":"ack"})",                                // no params
           R"({"method":"ack","params":{"seq":1}})",                             // no jsonrpc
           R"({"jsonrpc":"2.0","method":"ack","params":{"seq":-1}})",
           R"({"jsonrpc":"2.0","method":"ack","params":{"seq":1.0}})",
           R"({"jsonrpc":"2.0","method":"ack","params":{"seq":1e3}})",
           R"({"jsonrpc":"2.0","method":"ack","params":{"seq":01}})",
           R"({"jsonrpc":"2.0","method":"ack","params":{"seq":18446744073709551616}})",
           R"({"jsonrpc":"2.0","method":"ack","params":{"seq":"1"}})",
           R"({"jsonrpc":"2.0","method":"ack","params":{"seq":1},"extra":1})",
           R"({"jsonrpc":"2.0","method":"ack","params":{"seq":1,"extra":1}})",
           R"({"jsonrpc":"2.0","method":"ack","params":{"seq":1,"requeue":true}})",  // ack
           R"({"jsonrpc":"2.0","method":"ack","method":"ack","params":{"seq":1}})",  // twice
           R"({"jsonrpc":"2.0","method":"raise","params":{"seq":1}})",
           R"({"jsonrpc":"2.0","method":"a\u0063k","params":{"seq":1}})",  // an escape
           R"({"jsonrpc":"2.0","id":null,"method":"ack","params":{"seq":1}})",
           R"({"jsonrpc":"2.0","id":1.5,"method":"ack","params":{"seq":1}})",
           R"({"jsonrpc":"2.0","method":"ack","params":{"seq":1}} x)",
           R"({"jsonrpc":"2.0","method":"ack","params":{"seq":1})",
           R"([{"jsonrpc":"2.0","method":"ack","params":{"seq":1}}])",  // a batch: full path
           R"({"jsonrpc":"2.0","method":"nack","params":{"seq":1,"requeue":1}})",
       }) {
    SettleRequest r;
    EXPECT_FALSE(parse_settle_line(line, r)) << line;
  }
}

// Whatever it takes, nlohmann reads the same way.
TEST(FastAckTest, AgreesWithTheFullParser) {
  for (const char* line : {
           R"({"jsonrpc":"2.0","method":"ack","params":{"seqs":[5,6]}})",
           R"({"id":"x","jsonrpc":"2.0","method":"nack","params":{"seq":9,"requeue":false}})",
       }) {
    SettleRequest r;
    ASSERT_TRUE(parse_settle_line(line, r)) << line;
    nlohmann::json j = nlohmann::json::parse(line);
    EXPECT_EQ(j["method"] == "nack", r.nack);
    if (r.one) {
      EXPECT_EQ(j["params"]["seq"].get<std::uint64_t>(), r.seqs.at(0));
    } else {
      EXPECT_EQ(j["params"]["seqs"].get<std::vector<std::uint64_t>>(), r.seqs);
    }
    if (r.has_id) {
      EXPECT_EQ(nlohmann::json::parse(r.id_json), j["id"]);
    }
  }
}

}  // namespace
}  // namespace tocsin
