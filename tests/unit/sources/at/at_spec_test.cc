// The `at` schema (daemon/sources/at/at_spec.h): instants with an offset, wall times in a zone
// (DST gaps and repeated hours resolved as a fixed-time cron job's are), and what is refused.
#include "sources/at/at_spec.h"

#include <gtest/gtest.h>

#include "tocsin/spec.h"

namespace tocsin {
namespace {

struct NoNames final : spec::SignalNames {
  std::optional<SignalId> find(std::string_view) const override { return std::nullopt; }
  std::vector<std::string> names() const override { return {}; }
};

// The instant of {signal: 1, time: TIME[, tz: TZ]} as seconds since the epoch, or the first
// problem's message.
std::variant<std::int64_t, std::string> instant(const std::string& time,
                                                const std::string& tz = "") {
  NoNames names;
  spec::Reader r("", names);
  spec::Node n = spec::Node::mapping();
  n.add("signal", spec::Node::scalar("1"));
  n.add("time", spec::Node::scalar(time, spec::Node::Style::quoted));
  if (!tz.empty()) n.add("tz", spec::Node::scalar(tz, spec::Node::Style::quoted));
  auto s = at_schema().parse(r, r.root(n));
  if (!s) return r.problems().front().message;
  return static_cast<const config::AtSpec&>(*s).instant.time_since_epoch().count();
}

TEST(AtSpec, InstantsAndWallTimes) {
  // 2031-12-24T17:00:00Z
  const std::int64_t xmas = 1955898000;
  EXPECT_EQ(instant("2031-12-24T18:00:00+01:00"), (std::variant<std::int64_t, std::string>(xmas)));
  EXPECT_EQ(instant("2031-12-24T17:00:00Z"), (std::variant<std::int64_t, std::string>(xmas)));
  EXPECT_EQ(instant("2031-12-24 17:00Z"), (std::variant<std::int64_t, std::string>(xmas)));
  EXPECT_EQ(instant("2031-12-24T18:00", "Europe/Berlin"),
            (std::variant<std::int64_t, std::string>(xmas)));
  EXPECT_EQ(instant("2031-12-24T12:00:00", "America/New_York"),
            (std::variant<std::int64_t, std::string>(xmas)));
}

TEST(AtSpec, AWallTimeInAGapIsTheGapsEndAndInARepeatedHourTheFirst) {
  // Europe/Berlin, 2031-03-30: 02:00-03:00 does not exist; 03:00 CEST is 01:00Z.
  EXPECT_EQ(instant("2031-03-30T02:30", "Europe/Berlin"),
            (std::variant<std::int64_t, std::string>(1932598800)));
  // 2031-10-26: 02:00-03:00 happens twice; the first (CEST, +02:00) is 00:30Z.
  EXPECT_EQ(instant("2031-10-26T02:30", "Europe/Berlin"),
            (std::variant<std::int64_t, std::string>(1950741000)));
}

TEST(AtSpec, WhatIsRefused) {
  auto message = [](const std::variant<std::int64_t, std::string>& v) {
    return std::holds_alternative<std::string>(v) ? std::get<std::string>(v) : std::string();
  };
  EXPECT_NE(message(instant("2031-02-30T00:00Z")).find("time: expected an instant"),
            std::string::npos);
  EXPECT_NE(message(instant("next tuesday")).find("time: expected an instant"), std::string::npos);
  EXPECT_EQ(message(instant("2031-12-24T17:00:00Z", "UTC")),
            "the time already has an offset; tz is for a wall time (keep one)");
  EXPECT_NE(message(instant("2031-12-24T17:00", "Mars/Base")).find("tz: unknown time zone"),
            std::string::npos);
}

}  // namespace
}  // namespace tocsin
