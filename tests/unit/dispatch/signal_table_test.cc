#include "tocsin/signal_table.h"

#include <gtest/gtest.h>

namespace tocsin {
namespace {

SignalEntry entry(int number, std::string name) {
  SignalEntry e;
  e.number = static_cast<SignalId>(number);
  e.name = std::move(name);
  return e;
}

TEST(SignalTable, LooksUpByNumberAndName) {
  SignalTable t;
  ASSERT_TRUE(t.add(entry(17, "tmp-changed")).ok());
  ASSERT_TRUE(t.add(entry(0, "zero")).ok());
  ASSERT_TRUE(t.add(entry(255, "")).ok());
  ASSERT_NE(t.find(17), nullptr);
  EXPECT_EQ(t.find(17)->name, "tmp-changed");
  ASSERT_NE(t.find("zero"), nullptr);
  EXPECT_EQ(t.find("zero")->number, 0);
  EXPECT_EQ(t.find(3), nullptr);
  EXPECT_EQ(t.find("nope"), nullptr);
  EXPECT_EQ(t.size(), 3u);
}

TEST(SignalTable, ResolvesNumbersAndNames) {
  SignalTable t;
  ASSERT_TRUE(t.add(entry(26, "tick")).ok());
  EXPECT_EQ(t.resolve("tick"), SignalId{26});
  EXPECT_EQ(t.resolve("26"), SignalId{26});
  EXPECT_EQ(t.resolve("0"), SignalId{0});
  EXPECT_EQ(t.resolve("255"), SignalId{255});  // no entry: an unhandled signal is still legal
  EXPECT_EQ(t.resolve("256"), std::nullopt);
  EXPECT_EQ(t.resolve("12x"), std::nullopt);
  EXPECT_EQ(t.resolve("-1"), std::nullopt);
  EXPECT_EQ(t.resolve("tock"), std::nullopt);
  EXPECT_EQ(t.resolve(""), std::nullopt);
}

TEST(SignalTable, RefusesDuplicatesAndBadNames) {
  SignalTable t;
  ASSERT_TRUE(t.add(entry(1, "one")).ok());
  auto dup_number = t.add(entry(1, "uno"));
  ASSERT_FALSE(dup_number.ok());
  EXPECT_NE(dup_number.error().message.find("already in the table"), std::string::npos);
  auto dup_name = t.add(entry(2, "one"));
  ASSERT_FALSE(dup_name.ok());
  EXPECT_NE(dup_name.error().message.find("already used by signal 1"), std::string::npos);
  EXPECT_FALSE(t.add(entry(3, "Upper")).ok());
  EXPECT_FALSE(t.add(entry(4, "9lives")).ok());
  EXPECT_FALSE(t.add(entry(5, std::string(65, 'a'))).ok());
  EXPECT_TRUE(t.add(entry(6, "a" + std::string(63, 'b'))).ok());
  // A refused entry leaves no trace.
  EXPECT_EQ(t.find(2), nullptr);
  EXPECT_EQ(t.find("uno"), nullptr);
  EXPECT_EQ(t.size(), 2u);
}

TEST(SignalTable, EntriesInNumberOrder) {
  SignalTable t;
  for (int n : {200, 3, 77}) ASSERT_TRUE(t.add(entry(n, "s" + std::to_string(n))).ok());
  auto all = t.entries();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0]->number, 3);
  EXPECT_EQ(all[1]->number, 77);
  EXPECT_EQ(all[2]->number, 200);
}

TEST(SignalName, Grammar) {
  EXPECT_TRUE(is_valid_signal_name("a"));
  EXPECT_TRUE(is_valid_signal_name("tmp-changed.v2_x"));
  EXPECT_FALSE(is_valid_signal_name(""));
  EXPECT_FALSE(is_valid_signal_name("-a"));
  EXPECT_FALSE(is_valid_signal_name("a b"));
  EXPECT_FALSE(is_valid_signal_name("aB"));
}

}  // namespace
}  // namespace tocsin
