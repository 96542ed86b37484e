// Globs and paths of the file monitors (daemon/sources/file/fs_ops.h, file_spec.h).
#include "sources/file/fs_ops.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "fakes/manual_clock.h"
#include "sources/file/file_spec.h"

namespace tocsin::fs {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;
using testing::ManualClock;

// ---- names and globs ---------------------------------------------------------------------------

TEST(Names, GlobsAreCheckedAndMatched) {
  EXPECT_FALSE(config::glob_error("*.conf"));
  EXPECT_FALSE(config::glob_error("[!.]*"));
  EXPECT_FALSE(config::glob_error("[]x]"));
  EXPECT_FALSE(config::glob_error("[[:digit:]]*"));
  EXPECT_FALSE(config::glob_error(""));
  EXPECT_TRUE(config::glob_error("a/*.conf"));
  EXPECT_TRUE(config::glob_error("[abc"));
  EXPECT_TRUE(config::glob_error("x\\"));
  EXPECT_TRUE(config::glob_error("[[:nope:]]"));
  EXPECT_TRUE(glob_match("*.conf", "app.conf"));
  EXPECT_TRUE(glob_match("*.conf", ".hidden.conf"));
  EXPECT_FALSE(glob_match("*.conf", "app.conf.swp"));
}

TEST(Names, PathsAreNormalizedLexically) {
  std::string why;
  EXPECT_EQ(normalize_path("/a//b/./c/", &why), "/a/b/c");
  EXPECT_EQ(normalize_path("/a/b/../c", &why), "/a/c");
  EXPECT_EQ(normalize_path("/..", &why), "/");
  EXPECT_EQ(normalize_path("relative", &why), std::nullopt);
  EXPECT_EQ(why, "an absolute path is required");
  EXPECT_EQ(event_names(config::kFileAllEvents),
            (std::vector<std::string_view>{"create", "modify", "close_write", "delete", "move",
                                           "attrib"}));
  EXPECT_EQ(event_bit("close_write"), config::kFileCloseWrite);
  EXPECT_EQ(event_bit("write"), std::nullopt);
}

}  // namespace
}  // namespace tocsin::fs
