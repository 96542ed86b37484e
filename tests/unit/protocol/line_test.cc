// Line (daemon/protocol/line.h): shared blocks and their pool.
#include "protocol/line.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace tocsin {
namespace {

// past the largest pooled size, and across a burst larger than the pool holds.
TEST(LineTest, KeepsItsBytesThroughCopiesMovesAndReuse) {
  auto text = [](std::size_t n, char c) {
    std::string s(n, c);
    if (n > 0) s.back() = '\n';
    return s;
  };
  for (int round = 0; round < 3; ++round) {  // the later rounds run on reused blocks
    std::vector<Line> lines;
    std::vector<std::string> want;
    for (std::size_t n : {0, 1, 47, 48, 49, 111, 112, 113, 1007, 1008, 1009, 5000}) {
      char c = static_cast<char>('a' + (n + round) % 26);
      lines.emplace_back(text(n, c));
      want.push_back(text(n, c));
    }
    for (int i = 0; i < 20000; ++i) {  // ~5 MB of 250-byte lines: more than the pool keeps
      std::string t = std::to_string(round) + ":" + std::to_string(i) + std::string(240, 'x');
      lines.emplace_back(t);
      want.push_back(t);
    }
    std::vector<Line> copies(lines.begin(), lines.end());
    for (std::size_t i = 0; i < lines.size(); i += 2) lines[i] = Line();  // half the originals go
    Line moved = std::move(copies[3]);
    EXPECT_FALSE(copies[3]);
    copies[3] = moved;
    const Line& same = copies[5];
    copies[5] = same;  // self-assignment keeps it
    for (std::size_t i = 0; i < want.size(); ++i) {
      ASSERT_EQ(copies[i].view(), want[i]) << "round " << round << ", line " << i;
      if (i % 2 == 1) {
        ASSERT_EQ(lines[i].view(), want[i]);
      }
    }
  }
  EXPECT_EQ(Line().view(), "");
}

}  // namespace
}  // namespace tocsin
