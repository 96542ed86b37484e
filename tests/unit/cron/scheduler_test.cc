// The cron source's logic through the clock seam: wall-clock times are arguments, so forward and
// backward clock steps, suspends, restarts and the missed-run policy are tested with numbers.
#include "cron/scheduler.h"

#include <date/tz.h>
#include <gtest/gtest.h>

namespace tocsin::cron {
namespace {

std::int64_t at(const char* iso) {
  auto t = parse_instant(iso, *find_zone("UTC", nullptr));
  EXPECT_TRUE(t) << iso;
  return t->time_since_epoch().count() * 1000;
}

std::string iso(Seconds s) { return format_in_zone(s, *find_zone("UTC", nullptr)); }
std::string iso_ms(std::int64_t ms) { return iso(Seconds{std::chrono::seconds{ms / 1000}}); }

config::CronSpec job(const char* id, const char* schedule, config::Missed missed = config::Missed::skip) {
  config::CronSpec s;
  s.id = id;
  s.signal = 40;
  s.schedule = schedule;
  s.tz = "UTC";
  s.missed = missed;
  return s;
}

std::vector<Fire> collect(CronScheduler& c, std::int64_t now, bool clock_set = false) {
  std::vector<Fire> out;
  c.collect(now, clock_set, out, 1000);
  return out;
}

TEST(CronScheduler, FiresEachSlotOnTime) {
  CronScheduler c;
  ASSERT_TRUE(c.add(job("j", "0 3 * * *"), true, at("2026-11-22T02:59:00Z"), std::nullopt, true));
  ASSERT_TRUE(c.next_deadline());
  EXPECT_EQ(iso_ms(*c.next_deadline()), "2026-11-22T03:00:00+00:00");
  EXPECT_TRUE(collect(c, at("2026-11-22T02:59:59Z")).empty());
  auto fires = collect(c, at("2026-11-22T03:00:00Z") + 2);
  ASSERT_EQ(fires.size(), 1u);
  EXPECT_EQ(iso(fires[0].scheduled), "2026-11-22T03:00:00+00:00");
  EXPECT_EQ(fires[0].late_ms, 2);
  EXPECT_EQ(fires[0].missed, 0u);
  EXPECT_FALSE(fires[0].catch_up);
  EXPECT_EQ(fires[0].iteration, 1u);
  EXPECT_EQ(iso_ms(*c.next_deadline()), "2026-11-23T03:00:00+00:00");
}

TEST(CronScheduler, AForwardJumpPastAFixedTimeJobFiresItOnceWithMissedOnce) {
  CronScheduler c;
  ASSERT_TRUE(c.add(job("once", "0 3 * * *", config::Missed::once), true, at("2026-11-22T02:00:00Z"),
                    std::nullopt, true));
  ASSERT_TRUE(c.add(job("skip", "0 3 * * *", config::Missed::skip), true, at("2026-11-22T02:00:00Z"),
                    std::nullopt, true));
  // settimeofday from 02:00 to 05:00: the kernel cancels the timer and the source collects.
  auto fires = collect(c, at("2026-11-22T05:00:00Z"), /*clock_was_set=*/true);
  ASSERT_EQ(fires.size(), 1u);
  EXPECT_EQ(fires[0].id, "once");
  EXPECT_TRUE(fires[0].catch_up);
  EXPECT_EQ(fires[0].missed, 1u);
  EXPECT_EQ(iso(fires[0].scheduled), "2026-11-22T03:00:00+00:00");
  ASSERT_EQ(c.skipped().size(), 1u);
  EXPECT_EQ(c.skipped()[0], (std::pair<std::string, std::uint64_t>{"skip", 1}));
  EXPECT_TRUE(collect(c, at("2026-11-22T05:00:01Z"), true).empty()) << "fired once, not again";
  for (const auto& info : c.list(10)) {
    EXPECT_EQ(info.missed, 1u) << info.id;
    EXPECT_EQ(iso(*info.next), "2026-11-23T03:00:00+00:00") << info.id;
  }
}

TEST(CronScheduler, ASuspendOverSeveralSlotsIsOneCatchUpThatCountsThem) {
  CronScheduler c;
  ASSERT_TRUE(c.add(job("j", "0 * * * *", config::Missed::once), true, at("2026-11-22T00:30:00Z"),
                    std::nullopt, true));
  // The timer for 01:00 expires late, at resume (no clock_was_set needed).
  auto fires = collect(c, at("2026-11-22T06:10:00Z"));
  ASSERT_EQ(fires.size(), 1u);
  EXPECT_TRUE(fires[0].catch_up);
  EXPECT_EQ(fires[0].missed, 6u);  // 01:00 .. 06:00
  EXPECT_EQ(iso(fires[0].scheduled), "2026-11-22T06:00:00+00:00");
  EXPECT_EQ(iso_ms(*c.next_deadline()), "2026-11-22T07:00:00+00:00");
}

TEST(CronScheduler, ASmallStepOrABusyReactorStillFiresAndCountsWhatItPassedOver) {
  CronScheduler c;
  ASSERT_TRUE(c.add(job("daily", "0 3 * * *"), true, at("2026-11-22T02:59:50Z"), std::nullopt, true));
  ASSERT_TRUE(c.add(job("sec", "* * * * * *"), true, at("2026-11-22T02:59:50Z"), std::nullopt, true));
  // An NTP step of 20 s past 03:00: within the grace, so `skip` still fires.
  auto fires = collect(c, at("2026-11-22T03:00:10Z"), true);
  ASSERT_EQ(fires.size(), 2u);
  for (const Fire& f : fires) {
    EXPECT_FALSE(f.catch_up) << f.id;
    if (f.id == "daily") {
      EXPECT_EQ(f.missed, 0u);
      EXPECT_EQ(f.late_ms, 10000);
    } else {
      EXPECT_EQ(f.missed, 19u) << "02:59:51 .. 03:00:10 is 20 slots in one event";
      EXPECT_EQ(iso(f.scheduled), "2026-11-22T03:00:10+00:00");
    }
  }
}

TEST(CronScheduler, ABackwardStepNeverRefiresAFixedTimeJobButKeepsAWildcardsCadence) {
  CronScheduler c;
  ASSERT_TRUE(c.add(job("fixed", "30 10 * * *"), true, at("2026-11-22T10:00:00Z"), std::nullopt, true));
  ASSERT_TRUE(c.add(job("wild", "*/10 * * * *"), true, at("2026-11-22T10:25:00Z"), std::nullopt, true));
  ASSERT_EQ(collect(c, at("2026-11-22T10:30:00Z")).size(), 2u);
  // The clock is set back 30 minutes.
  EXPECT_TRUE(collect(c, at("2026-11-22T10:00:00Z"), true).empty());
  std::map<std::string, std::string> next;
  for (const auto& info : c.list(10)) next[info.id] = iso(*info.next);
  EXPECT_EQ(next["fixed"], "2026-11-23T10:30:00+00:00");
  EXPECT_EQ(next["wild"], "2026-11-22T10:10:00+00:00");
}

TEST(CronScheduler, ABackwardStepOfMoreThanThreeHoursRestartsTime) {
  CronScheduler c;
  ASSERT_TRUE(c.add(job("fixed", "30 10 * * *"), true, at("2026-11-22T10:00:00Z"), std::nullopt, true));
  ASSERT_EQ(collect(c, at("2026-11-22T10:30:00Z")).size(), 1u);
  EXPECT_TRUE(collect(c, at("2026-11-22T06:00:00Z"), true).empty());
  EXPECT_EQ(iso_ms(*c.next_deadline()), "2026-11-22T10:30:00+00:00");
}

TEST(CronScheduler, TheRememberedSlotCatchesUpAfterARestart) {
  std::map<std::string, SavedSlot> saved;
  {
    CronScheduler first;
    ASSERT_TRUE(first.add(job("j", "0 3 * * *", config::Missed::once), true,
                          at("2026-11-22T02:00:00Z"), std::nullopt, true));
    EXPECT_TRUE(first.state_dirty()) << "a new job remembers when it was first seen";
    ASSERT_EQ(collect(first, at("2026-11-22T03:00:00Z")).size(), 1u);
    saved = first.last_slots();
  }
  ASSERT_EQ(saved.size(), 1u);
  EXPECT_EQ(iso(saved["j"].last), "2026-11-22T03:00:00+00:00");
  EXPECT_EQ(saved["j"].zone, "UTC");
  // Down until the 24th at 05:00: two slots passed.
  CronScheduler second;
  ASSERT_TRUE(second.add(job("j", "0 3 * * *", config::Missed::once), true,
                         at("2026-11-24T05:00:00Z"), saved["j"], true));
  auto fires = collect(second, at("2026-11-24T05:00:00Z"));
  ASSERT_EQ(fires.size(), 1u);
  EXPECT_TRUE(fires[0].catch_up);
  EXPECT_EQ(fires[0].missed, 2u);
  EXPECT_EQ(iso(fires[0].scheduled), "2026-11-24T03:00:00+00:00");
  // Restarted again before the next slot: nothing to catch up, nothing fires twice.
  CronScheduler third;
  ASSERT_TRUE(third.add(job("j", "0 3 * * *", config::Missed::once), true,
                        at("2026-11-24T05:00:01Z"), second.last_slots()["j"], true));
  EXPECT_TRUE(collect(third, at("2026-11-24T05:00:01Z")).empty());
  EXPECT_EQ(iso_ms(*third.next_deadline()), "2026-11-25T03:00:00+00:00");
}

TEST(CronScheduler, ARememberedSlotOfAnotherScheduleIsNotCaughtUp) {
  CronScheduler c;
  SavedSlot old{"0 4 * * *", "UTC", Seconds{std::chrono::seconds{at("2026-11-20T04:00:00Z") / 1000}}};
  ASSERT_TRUE(c.add(job("j", "0 3 * * *", config::Missed::once), true, at("2026-11-22T05:00:00Z"),
                    old, true));
  EXPECT_TRUE(collect(c, at("2026-11-22T05:00:00Z")).empty());
  EXPECT_EQ(iso(c.last_slots()["j"].last), "2026-11-22T05:00:00+00:00");
}

TEST(CronScheduler, SkipJobsForgetDowntime) {
  CronScheduler c;
  ASSERT_TRUE(c.add(job("j", "0 3 * * *"), true, at("2026-11-24T05:00:00Z"), std::nullopt, true));
  EXPECT_TRUE(collect(c, at("2026-11-24T05:00:00Z")).empty());
  EXPECT_TRUE(c.last_slots().empty());
  EXPECT_FALSE(c.state_dirty());
}

TEST(CronScheduler, IterationsRetireTheJob) {
  CronScheduler c;
  auto spec = job("j", "* * * * *");
  spec.iterations = 2;
  ASSERT_TRUE(c.add(spec, false, at("2026-11-22T00:00:00Z"), std::nullopt, true));
  ASSERT_EQ(collect(c, at("2026-11-22T00:01:00Z")).size(), 1u);
  auto last = collect(c, at("2026-11-22T00:02:00Z"));
  ASSERT_EQ(last.size(), 1u);
  EXPECT_EQ(last[0].iteration, 2u);
  EXPECT_EQ(c.size(), 0u);
  EXPECT_FALSE(c.next_deadline());
}

TEST(CronScheduler, RebootFiresAtStartOnly) {
  CronScheduler c;
  ASSERT_TRUE(c.add(job("boot", "@reboot"), true, at("2026-11-22T00:00:00Z"), std::nullopt, true));
  ASSERT_TRUE(c.add(job("reload", "@reboot"), true, at("2026-11-22T00:00:00Z"), std::nullopt, false));
  auto fires = collect(c, at("2026-11-22T00:00:00Z") + 1);
  ASSERT_EQ(fires.size(), 1u);
  EXPECT_EQ(fires[0].id, "boot");
  EXPECT_FALSE(c.next_deadline());
  EXPECT_EQ(c.size(), 2u) << "both stay listed";
}

TEST(CronScheduler, JitterDelaysTheDeadlineNotTheSlot) {
  CronScheduler c([](std::int64_t bound) { return bound / 2; });
  auto spec = job("j", "0 3 * * *");
  spec.jitter = std::chrono::milliseconds(30000);
  ASSERT_TRUE(c.add(spec, true, at("2026-11-22T02:00:00Z"), std::nullopt, true));
  EXPECT_EQ(*c.next_deadline(), at("2026-11-22T03:00:15Z"));
  EXPECT_TRUE(collect(c, at("2026-11-22T03:00:14Z")).empty());
  auto fires = collect(c, at("2026-11-22T03:00:15Z"));
  ASSERT_EQ(fires.size(), 1u);
  EXPECT_EQ(iso(fires[0].scheduled), "2026-11-22T03:00:00+00:00");
  EXPECT_EQ(fires[0].late_ms, 0);
}

TEST(CronScheduler, BadSpecsAreRefusedAndIdsAreUnique) {
  CronScheduler c;
  EXPECT_FALSE(c.add(job("a", "61 * * * *"), false, 0, std::nullopt, false));
  auto z = job("b", "@daily");
  z.tz = "Nowhere/City";
  EXPECT_FALSE(c.add(z, false, 0, std::nullopt, false));
  ASSERT_TRUE(c.add(job("c", "@daily"), false, 0, std::nullopt, false));
  auto again = c.add(job("c", "@hourly"), false, 0, std::nullopt, false);
  ASSERT_FALSE(again);
  EXPECT_NE(again.error().message.find("already used"), std::string::npos);
  EXPECT_TRUE(c.remove("c"));
  EXPECT_FALSE(c.remove("c"));
}

TEST(CronScheduler, AMillionMissedSlotsAreCountedUpToTheCap) {
  CronScheduler c;
  ASSERT_TRUE(c.add(job("j", "* * * * * *", config::Missed::once), true, at("2026-11-01T00:00:00Z"),
                    std::nullopt, true));
  auto fires = collect(c, at("2026-11-22T00:00:00Z"));  // three weeks of seconds
  ASSERT_EQ(fires.size(), 1u);
  EXPECT_EQ(fires[0].missed, kMaxMissedCount + 1);
}

}  // namespace
}  // namespace tocsin::cron
