// The payloads of a file monitor's batch (daemon/sources/file/change_payload.h).
#include "sources/file/change_payload.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "fakes/manual_clock.h"
#include "sources/file/file_spec.h"

namespace tocsin::fs {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;
using testing::ManualClock;

// ---- payloads ----------------------------------------------------------------------------------

TEST(Payloads, OneBatchOnePartWithEventNames) {
  Batch b;
  b.changes.push_back({"/d/a", config::kFileCreate | config::kFileCloseWrite});
  auto p = encode_payloads("mon", "/d", b, 65536);
  ASSERT_EQ(p.size(), 1u);
  Json j = Json::parse(p[0]);
  EXPECT_EQ(j["monitor"], "mon");
  EXPECT_EQ(j["path"], "/d");
  EXPECT_EQ(j["overflow"], false);
  EXPECT_EQ(j["part"], 1);
  EXPECT_EQ(j["parts"], 1);
  EXPECT_EQ(j["changes"], Json::parse(R"([{"path":"/d/a","events":["create","close_write"]}])"));
}

TEST(Payloads, ABigBatchIsSplitAndEveryPathIsInExactlyOnePart) {
  Batch b;
  b.overflow = true;
  for (int i = 0; i < 20000; ++i) {
    b.changes.push_back({"/some/dir/file-" + std::to_string(i), config::kFileCreate});
  }
  const std::size_t cap = 65536;
  auto parts = encode_payloads("m", "/some/dir", b, cap);
  ASSERT_GT(parts.size(), 10u);
  std::set<std::string> seen;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    EXPECT_LE(parts[i].size(), cap);
    Json j = Json::parse(parts[i]);
    EXPECT_EQ(j["part"], i + 1);
    EXPECT_EQ(j["parts"], parts.size());
    EXPECT_EQ(j["overflow"], true);
    for (const auto& c : j["changes"]) EXPECT_TRUE(seen.insert(c["path"]).second);
  }
  EXPECT_EQ(seen.size(), 20000u);
}

TEST(Payloads, NamesThatAreNotUtf8StillMakeValidJson) {
  Batch b;
  b.changes.push_back({std::string("/d/bad\xff\xfe name"), config::kFileDelete});
  auto p = encode_payloads("m", "/d", b, 65536);
  Json j = Json::parse(p.at(0));
  EXPECT_EQ(j["changes"][0]["path"], "/d/bad\xef\xbf\xbd\xef\xbf\xbd name");
}

}  // namespace
}  // namespace tocsin::fs
