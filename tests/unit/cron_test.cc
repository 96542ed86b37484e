// The cron rules of SPEC §3, table by table: each row is an expression, a zone, a starting instant
// and the next instants it must fire at (written in the zone's local time with its offset, as
// `tocsinctl cron-next` prints them). A brute-force oracle written straight from the rules checks
// thousands of random cases on top.
#include <date/tz.h>
#include <gtest/gtest.h>

#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "cron/expression.h"

namespace tocsin::cron {
namespace {

const date::time_zone& zone(const std::string& name) {
  std::string why;
  const date::time_zone* z = find_zone(name, &why);
  EXPECT_NE(z, nullptr) << why;
  return *z;
}

std::vector<std::string> split(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

struct NextCase {
  const char* expr;
  const char* zone;
  const char* from;
  const char* expected;  // the next instants, space separated
};

std::ostream& operator<<(std::ostream& os, const NextCase& c) {
  return os << "\"" << c.expr << "\" in " << c.zone << " from " << c.from;
}

class NextFire : public ::testing::TestWithParam<NextCase> {};

TEST_P(NextFire, FiresAtExactlyTheseInstants) {
  const NextCase& c = GetParam();
  Parsed p = parse(c.expr);
  ASSERT_TRUE(p.schedule) << p.error.message << " at column " << p.error.column;
  const date::time_zone& z = zone(p.schedule->zone.empty() ? c.zone : p.schedule->zone);
  auto from = parse_instant(c.from, z);
  ASSERT_TRUE(from) << c.from;
  std::vector<std::string> got;
  Seconds t = *from;
  for (std::size_t i = 0; i < split(c.expected).size(); ++i) {
    auto n = next_fire(*p.schedule, z, t);
    if (!n) break;
    got.push_back(format_in_zone(*n, z));
    t = *n;
  }
  EXPECT_EQ(got, split(c.expected));
}

// clang-format off
const NextCase kBasics[] = {
  // every minute, every second, steps, lists, ranges
  {"* * * * *", "UTC", "2026-11-22T10:00:00Z", "2026-11-22T10:01:00+00:00 2026-11-22T10:02:00+00:00"},
  {"* * * * *", "UTC", "2026-11-22T10:00:30Z", "2026-11-22T10:01:00+00:00"},
  {"* * * * *", "UTC", "2026-12-31T23:59:00Z", "2027-01-01T00:00:00+00:00"},
  {"* * * * * *", "UTC", "2026-11-22T10:00:00Z", "2026-11-22T10:00:01+00:00 2026-11-22T10:00:02+00:00"},
  {"*/15 * * * * *", "UTC", "2026-11-22T10:00:50Z", "2026-11-22T10:01:00+00:00 2026-11-22T10:01:15+00:00"},
  {"30 * * * * *", "UTC", "2026-11-22T10:00:30Z", "2026-11-22T10:01:30+00:00"},
  {"0 0 0 * * *", "UTC", "2026-11-22T10:00:00Z", "2026-11-23T00:00:00+00:00"},
  {"5-7 * * * * *", "UTC", "2026-11-22T10:00:06Z", "2026-11-22T10:00:07+00:00 2026-11-22T10:01:05+00:00"},
  {"*/5 * * * *", "UTC", "2026-11-22T10:03:00Z", "2026-11-22T10:05:00+00:00 2026-11-22T10:10:00+00:00"},
  {"*/5 * * * *", "UTC", "2026-11-22T10:55:00Z", "2026-11-22T11:00:00+00:00"},
  {"*/7 * * * *", "UTC", "2026-11-22T10:50:00Z", "2026-11-22T10:56:00+00:00 2026-11-22T11:00:00+00:00"},
  {"*/60 * * * *", "UTC", "2026-11-22T10:50:00Z", "2026-11-22T11:00:00+00:00"},
  {"5/15 * * * *", "UTC", "2026-11-22T10:00:00Z", "2026-11-22T10:05:00+00:00 2026-11-22T10:20:00+00:00 2026-11-22T10:35:00+00:00 2026-11-22T10:50:00+00:00 2026-11-22T11:05:00+00:00"},
  {"10-20/5 * * * *", "UTC", "2026-11-22T10:00:00Z", "2026-11-22T10:10:00+00:00 2026-11-22T10:15:00+00:00 2026-11-22T10:20:00+00:00 2026-11-22T11:10:00+00:00"},
  {"0,15,45 * * * *", "UTC", "2026-11-22T10:20:00Z", "2026-11-22T10:45:00+00:00 2026-11-22T11:00:00+00:00 2026-11-22T11:15:00+00:00"},
  {"1,2,3-5,59 * * * *", "UTC", "2026-11-22T10:02:00Z", "2026-11-22T10:03:00+00:00 2026-11-22T10:04:00+00:00 2026-11-22T10:05:00+00:00 2026-11-22T10:59:00+00:00 2026-11-22T11:01:00+00:00"},
  {"0 */6 * * *", "UTC", "2026-11-22T10:00:00Z", "2026-11-22T12:00:00+00:00 2026-11-22T18:00:00+00:00 2026-11-23T00:00:00+00:00"},
  {"0 9-17 * * *", "UTC", "2026-11-22T17:30:00Z", "2026-11-23T09:00:00+00:00"},
  {"0 9-17/4 * * *", "UTC", "2026-11-22T08:00:00Z", "2026-11-22T09:00:00+00:00 2026-11-22T13:00:00+00:00 2026-11-22T17:00:00+00:00 2026-11-23T09:00:00+00:00"},
  {"30 23 * * *", "UTC", "2026-12-31T23:30:00Z", "2027-01-01T23:30:00+00:00"},
  {"0 0 1 1 *", "UTC", "2026-11-22T00:00:00Z", "2027-01-01T00:00:00+00:00 2028-01-01T00:00:00+00:00"},
  {"59 23 31 12 *", "UTC", "2026-11-22T00:00:00Z", "2026-12-31T23:59:00+00:00 2027-12-31T23:59:00+00:00"},
  {"0 12 * 6 *", "UTC", "2026-11-22T00:00:00Z", "2027-06-01T12:00:00+00:00 2027-06-02T12:00:00+00:00"},
  {"0 0 1 */3 *", "UTC", "2026-11-22T00:00:00Z", "2027-01-01T00:00:00+00:00 2027-04-01T00:00:00+00:00 2027-07-01T00:00:00+00:00 2027-10-01T00:00:00+00:00"},
  {"0 0 1 2/5 *", "UTC", "2026-01-01T00:00:00Z", "2026-02-01T00:00:00+00:00 2026-07-01T00:00:00+00:00 2026-12-01T00:00:00+00:00 2027-02-01T00:00:00+00:00"},
  {"0 0 15 1-3,10-12 *", "UTC", "2026-03-20T00:00:00Z", "2026-10-15T00:00:00+00:00 2026-11-15T00:00:00+00:00 2026-12-15T00:00:00+00:00 2027-01-15T00:00:00+00:00"},
  // month ends, the 31st, Feb 29
  {"0 0 31 * *", "UTC", "2026-01-31T12:00:00Z", "2026-03-31T00:00:00+00:00 2026-05-31T00:00:00+00:00 2026-07-31T00:00:00+00:00 2026-08-31T00:00:00+00:00 2026-10-31T00:00:00+00:00 2026-12-31T00:00:00+00:00"},
  {"0 0 30 * *", "UTC", "2026-01-30T12:00:00Z", "2026-03-30T00:00:00+00:00 2026-04-30T00:00:00+00:00"},
  {"0 0 29 * *", "UTC", "2026-01-29T12:00:00Z", "2026-03-29T00:00:00+00:00"},
  {"0 0 29 * *", "UTC", "2028-01-29T12:00:00Z", "2028-02-29T00:00:00+00:00 2028-03-29T00:00:00+00:00"},
  {"0 0 29 2 *", "UTC", "2026-01-01T00:00:00Z", "2028-02-29T00:00:00+00:00 2032-02-29T00:00:00+00:00 2036-02-29T00:00:00+00:00"},
  {"0 0 29 2 *", "UTC", "2096-03-01T00:00:00Z", "2104-02-29T00:00:00+00:00"},  // 2100 is not a leap year
  {"0 0 29 2 *", "UTC", "1999-03-01T00:00:00Z", "2000-02-29T00:00:00+00:00"},  // 2000 is
  {"0 0 28 2 *", "UTC", "2026-03-01T00:00:00Z", "2027-02-28T00:00:00+00:00"},
  {"0 0 31 1,3 *", "UTC", "2026-02-01T00:00:00Z", "2026-03-31T00:00:00+00:00 2027-01-31T00:00:00+00:00"},
  {"0 0 30,31 4,6 *", "UTC", "2026-01-01T00:00:00Z", "2026-04-30T00:00:00+00:00 2026-06-30T00:00:00+00:00 2027-04-30T00:00:00+00:00"},
  {"0 0 1-31/10 * *", "UTC", "2026-01-01T00:00:00Z", "2026-01-11T00:00:00+00:00 2026-01-21T00:00:00+00:00 2026-01-31T00:00:00+00:00 2026-02-01T00:00:00+00:00"},
  // L: the last day of the month
  {"0 0 L * *", "UTC", "2026-01-15T00:00:00Z", "2026-01-31T00:00:00+00:00 2026-02-28T00:00:00+00:00 2026-03-31T00:00:00+00:00 2026-04-30T00:00:00+00:00"},
  {"0 0 L * *", "UTC", "2028-02-01T00:00:00Z", "2028-02-29T00:00:00+00:00 2028-03-31T00:00:00+00:00"},
  {"0 0 L 2 *", "UTC", "2027-03-01T00:00:00Z", "2028-02-29T00:00:00+00:00 2029-02-28T00:00:00+00:00"},
  {"30 18 l * *", "UTC", "2026-11-22T00:00:00Z", "2026-11-30T18:30:00+00:00 2026-12-31T18:30:00+00:00"},
  {"0 0 1,L * *", "UTC", "2026-11-22T00:00:00Z", "2026-11-30T00:00:00+00:00 2026-12-01T00:00:00+00:00 2026-12-31T00:00:00+00:00 2027-01-01T00:00:00+00:00"},
  {"0 0 15,L 2 *", "UTC", "2026-11-22T00:00:00Z", "2027-02-15T00:00:00+00:00 2027-02-28T00:00:00+00:00 2028-02-15T00:00:00+00:00 2028-02-29T00:00:00+00:00"},
  // names, in any case, in ranges and lists
  {"0 0 1 jan *", "UTC", "2026-11-22T00:00:00Z", "2027-01-01T00:00:00+00:00"},
  {"0 0 1 JAN,Jul *", "UTC", "2026-11-22T00:00:00Z", "2027-01-01T00:00:00+00:00 2027-07-01T00:00:00+00:00"},
  {"0 0 1 mar-may *", "UTC", "2026-11-22T00:00:00Z", "2027-03-01T00:00:00+00:00 2027-04-01T00:00:00+00:00 2027-05-01T00:00:00+00:00 2028-03-01T00:00:00+00:00"},
  {"0 0 1 jan-dec/6 *", "UTC", "2026-11-22T00:00:00Z", "2027-01-01T00:00:00+00:00 2027-07-01T00:00:00+00:00"},
  {"0 9 * * mon", "UTC", "2026-11-22T00:00:00Z", "2026-11-23T09:00:00+00:00 2026-11-30T09:00:00+00:00"},
  {"0 9 * * MON-FRI", "UTC", "2026-11-20T10:00:00Z", "2026-11-23T09:00:00+00:00 2026-11-24T09:00:00+00:00"},
  {"0 9 * * Sat,SUN", "UTC", "2026-11-20T10:00:00Z", "2026-11-21T09:00:00+00:00 2026-11-22T09:00:00+00:00 2026-11-28T09:00:00+00:00"},
  {"0 9 * * mon-fri/2", "UTC", "2026-11-22T10:00:00Z", "2026-11-23T09:00:00+00:00 2026-11-25T09:00:00+00:00 2026-11-27T09:00:00+00:00 2026-11-30T09:00:00+00:00"},
  // day-of-week numbers: 0 and 7 are Sunday, ranges ending in Sunday
  {"0 9 * * 0", "UTC", "2026-11-20T00:00:00Z", "2026-11-22T09:00:00+00:00 2026-11-29T09:00:00+00:00"},
  {"0 9 * * 7", "UTC", "2026-11-20T00:00:00Z", "2026-11-22T09:00:00+00:00 2026-11-29T09:00:00+00:00"},
  {"0 9 * * 0,7", "UTC", "2026-11-20T00:00:00Z", "2026-11-22T09:00:00+00:00 2026-11-29T09:00:00+00:00"},
  {"0 9 * * 1-5", "UTC", "2026-11-21T00:00:00Z", "2026-11-23T09:00:00+00:00"},
  {"0 9 * * 5-0", "UTC", "2026-11-19T00:00:00Z", "2026-11-20T09:00:00+00:00 2026-11-21T09:00:00+00:00 2026-11-22T09:00:00+00:00 2026-11-27T09:00:00+00:00"},
  {"0 9 * * 5-7", "UTC", "2026-11-19T00:00:00Z", "2026-11-20T09:00:00+00:00 2026-11-21T09:00:00+00:00 2026-11-22T09:00:00+00:00 2026-11-27T09:00:00+00:00"},
  {"0 9 * * fri-sun", "UTC", "2026-11-19T00:00:00Z", "2026-11-20T09:00:00+00:00 2026-11-21T09:00:00+00:00 2026-11-22T09:00:00+00:00 2026-11-27T09:00:00+00:00"},
  {"0 9 * * sat-sun", "UTC", "2026-11-19T00:00:00Z", "2026-11-21T09:00:00+00:00 2026-11-22T09:00:00+00:00 2026-11-28T09:00:00+00:00"},
  {"0 9 * * sun-tue", "UTC", "2026-11-19T00:00:00Z", "2026-11-22T09:00:00+00:00 2026-11-23T09:00:00+00:00 2026-11-24T09:00:00+00:00 2026-11-29T09:00:00+00:00"},
  {"0 9 * * */2", "UTC", "2026-11-21T00:00:00Z", "2026-11-21T09:00:00+00:00 2026-11-22T09:00:00+00:00 2026-11-24T09:00:00+00:00 2026-11-26T09:00:00+00:00 2026-11-28T09:00:00+00:00"},
  {"0 9 * * 1/2", "UTC", "2026-11-21T00:00:00Z", "2026-11-23T09:00:00+00:00 2026-11-25T09:00:00+00:00 2026-11-27T09:00:00+00:00 2026-11-30T09:00:00+00:00"},
  // d#n: the n-th weekday of the month
  {"0 0 * * fri#2", "UTC", "2026-01-01T00:00:00Z", "2026-01-09T00:00:00+00:00 2026-02-13T00:00:00+00:00 2026-03-13T00:00:00+00:00"},
  {"0 0 * * 1#1", "UTC", "2026-01-01T00:00:00Z", "2026-01-05T00:00:00+00:00 2026-02-02T00:00:00+00:00 2026-03-02T00:00:00+00:00"},
  {"0 0 * * 5#5", "UTC", "2026-01-01T00:00:00Z", "2026-01-30T00:00:00+00:00 2026-05-29T00:00:00+00:00 2026-07-31T00:00:00+00:00"},
  {"0 0 * * 0#1,0#3", "UTC", "2026-11-01T00:00:00Z", "2026-11-15T00:00:00+00:00 2026-12-06T00:00:00+00:00 2026-12-20T00:00:00+00:00"},
  {"0 0 * * 7#4", "UTC", "2026-11-01T00:00:00Z", "2026-11-22T00:00:00+00:00 2026-12-27T00:00:00+00:00"},
  {"0 0 * * SUN#4", "UTC", "2026-11-01T00:00:00Z", "2026-11-22T00:00:00+00:00 2026-12-27T00:00:00+00:00"},
  {"0 0 * 2 0#5", "UTC", "2026-01-01T00:00:00Z", "2032-02-29T00:00:00+00:00 2060-02-29T00:00:00+00:00"},
  {"0 0 * * thu#4", "UTC", "2026-11-01T00:00:00Z", "2026-11-26T00:00:00+00:00 2026-12-24T00:00:00+00:00"},
  {"0 0 * * mon,fri#1", "UTC", "2026-11-28T00:00:00Z", "2026-11-30T00:00:00+00:00 2026-12-04T00:00:00+00:00 2026-12-07T00:00:00+00:00 2026-12-14T00:00:00+00:00"},
  // the day rule: either may match unless a day field starts with * or is ?
  {"0 0 13 * fri", "UTC", "2026-11-01T00:00:00Z", "2026-11-06T00:00:00+00:00 2026-11-13T00:00:00+00:00 2026-11-20T00:00:00+00:00"},
  {"0 0 1 * mon", "UTC", "2026-11-24T00:00:00Z", "2026-11-30T00:00:00+00:00 2026-12-01T00:00:00+00:00 2026-12-07T00:00:00+00:00"},
  {"0 0 1-31 * mon", "UTC", "2026-11-24T00:00:00Z", "2026-11-25T00:00:00+00:00 2026-11-26T00:00:00+00:00"},
  {"0 0 */2 * mon", "UTC", "2026-11-01T00:00:00Z", "2026-11-09T00:00:00+00:00 2026-11-23T00:00:00+00:00 2026-12-07T00:00:00+00:00"},
  {"0 0 * * mon", "UTC", "2026-11-24T00:00:00Z", "2026-11-30T00:00:00+00:00 2026-12-07T00:00:00+00:00"},
  {"0 0 ? * mon", "UTC", "2026-11-24T00:00:00Z", "2026-11-30T00:00:00+00:00 2026-12-07T00:00:00+00:00"},
  {"0 0 13 * ?", "UTC", "2026-11-01T00:00:00Z", "2026-11-13T00:00:00+00:00 2026-12-13T00:00:00+00:00"},
  {"0 0 13 * *", "UTC", "2026-11-01T00:00:00Z", "2026-11-13T00:00:00+00:00 2026-12-13T00:00:00+00:00"},
  {"0 0 13 * */1", "UTC", "2026-11-01T00:00:00Z", "2026-11-13T00:00:00+00:00 2026-12-13T00:00:00+00:00"},
  {"0 0 13 * 0-6", "UTC", "2026-11-20T00:00:00Z", "2026-11-21T00:00:00+00:00 2026-11-22T00:00:00+00:00"},
  {"0 0 L * fri#1", "UTC", "2026-11-01T00:00:00Z", "2026-11-06T00:00:00+00:00 2026-11-30T00:00:00+00:00 2026-12-04T00:00:00+00:00 2026-12-31T00:00:00+00:00"},
  {"0 0 */10 * 0#2", "UTC", "2026-11-01T00:00:00Z", "2027-04-11T00:00:00+00:00 2027-07-11T00:00:00+00:00 2028-06-11T00:00:00+00:00"},
  {"0 0 29 2 mon", "UTC", "2026-02-20T00:00:00Z", "2026-02-23T00:00:00+00:00 2027-02-01T00:00:00+00:00 2027-02-08T00:00:00+00:00"},
  {"0 0 */31 2 mon", "UTC", "2026-01-01T00:00:00Z", "2027-02-01T00:00:00+00:00 2038-02-01T00:00:00+00:00 2044-02-01T00:00:00+00:00"},
  // macros
  {"@yearly", "UTC", "2026-11-22T00:00:00Z", "2027-01-01T00:00:00+00:00 2028-01-01T00:00:00+00:00"},
  {"@annually", "UTC", "2026-11-22T00:00:00Z", "2027-01-01T00:00:00+00:00"},
  {"@monthly", "UTC", "2026-11-22T00:00:00Z", "2026-12-01T00:00:00+00:00 2027-01-01T00:00:00+00:00"},
  {"@weekly", "UTC", "2026-11-22T00:00:00Z", "2026-11-29T00:00:00+00:00 2026-12-06T00:00:00+00:00"},
  {"@daily", "UTC", "2026-11-22T00:00:00Z", "2026-11-23T00:00:00+00:00 2026-11-24T00:00:00+00:00"},
  {"@midnight", "UTC", "2026-11-22T12:00:00Z", "2026-11-23T00:00:00+00:00"},
  {"@hourly", "UTC", "2026-11-22T12:00:00Z", "2026-11-22T13:00:00+00:00 2026-11-22T14:00:00+00:00"},
  {"@HOURLY", "UTC", "2026-11-22T12:30:00Z", "2026-11-22T13:00:00+00:00"},
  {"  @daily  ", "UTC", "2026-11-22T12:30:00Z", "2026-11-23T00:00:00+00:00"},
  // zones: CRON_TZ= and tz
  {"CRON_TZ=Europe/Berlin 0 9 * * *", "UTC", "2026-11-22T00:00:00Z", "2026-11-22T09:00:00+01:00 2026-11-23T09:00:00+01:00"},
  {"CRON_TZ=America/New_York 0 9 * * *", "UTC", "2026-11-22T00:00:00Z", "2026-11-22T09:00:00-05:00"},
  {"CRON_TZ=Asia/Kolkata 30 9 * * *", "UTC", "2026-11-22T00:00:00Z", "2026-11-22T09:30:00+05:30"},
  {"CRON_TZ=Asia/Kathmandu 0 0 * * *", "UTC", "2026-11-22T00:00:00Z", "2026-11-23T00:00:00+05:45"},
  {"CRON_TZ=Pacific/Chatham 0 12 * * *", "UTC", "2026-11-22T00:00:00Z", "2026-11-23T12:00:00+13:45"},
  {"0 9 * * *", "Asia/Tokyo", "2026-11-22T00:00:00Z", "2026-11-23T09:00:00+09:00 2026-11-24T09:00:00+09:00"},
  {"0 0 1 1 *", "Pacific/Kiritimati", "2026-11-22T00:00:00Z", "2027-01-01T00:00:00+14:00"},
  {"0 0 1 1 *", "Pacific/Pago_Pago", "2026-11-22T00:00:00Z", "2027-01-01T00:00:00-11:00"},
  {"0 0 L * *", "Australia/Sydney", "2026-11-22T00:00:00Z", "2026-11-30T00:00:00+11:00 2026-12-31T00:00:00+11:00"},
};

// DST in America/New_York (2026: the gap is 02:00-03:00 on 8 March, the repeated hour 01:00-02:00
// on 1 November), Europe/Berlin (gap 02:00-03:00 on 29 March, repeat 02:00-03:00 on 25 October)
// and Australia/Lord_Howe (a 30-minute shift: gap 02:00-02:30 on 4 October 2026, repeat
// 01:30-02:00 on 4 April 2027). Fixed-time jobs in a gap fire once at its end; wildcard jobs have
// no match there. In a repeat, fixed-time jobs fire at the first occurrence, wildcard jobs at both.
const NextCase kDst[] = {
  // New York, the gap: before, inside, after
  {"30 2 * * *", "America/New_York", "2026-03-07T12:00:00-05:00", "2026-03-08T03:00:00-04:00 2026-03-09T02:30:00-04:00"},
  {"30 2 * * *", "America/New_York", "2026-03-08T01:59:59-05:00", "2026-03-08T03:00:00-04:00"},
  {"30 2 * * *", "America/New_York", "2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"},
  {"30 2 * * *", "America/New_York", "2026-03-08T03:00:01-04:00", "2026-03-09T02:30:00-04:00"},
  {"0 2 * * *", "America/New_York", "2026-03-08T00:00:00-05:00", "2026-03-08T03:00:00-04:00 2026-03-09T02:00:00-04:00"},
  {"0,30 2 * * *", "America/New_York", "2026-03-08T00:00:00-05:00", "2026-03-08T03:00:00-04:00 2026-03-09T02:00:00-04:00 2026-03-09T02:30:00-04:00"},
  {"0 2,3 * * *", "America/New_York", "2026-03-08T00:00:00-05:00", "2026-03-08T03:00:00-04:00 2026-03-09T02:00:00-04:00 2026-03-09T03:00:00-04:00"},
  {"59 2 * * *", "America/New_York", "2026-03-08T00:00:00-05:00", "2026-03-08T03:00:00-04:00"},
  {"0 3 * * *", "America/New_York", "2026-03-08T00:00:00-05:00", "2026-03-08T03:00:00-04:00 2026-03-09T03:00:00-04:00"},
  {"15 3 * * *", "America/New_York", "2026-03-08T00:00:00-05:00", "2026-03-08T03:15:00-04:00"},
  {"0 1 * * *", "America/New_York", "2026-03-07T12:00:00-05:00", "2026-03-08T01:00:00-05:00 2026-03-09T01:00:00-04:00"},
  {"30 2 8 3 *", "America/New_York", "2026-01-01T00:00:00-05:00", "2026-03-08T03:00:00-04:00 2027-03-08T02:30:00-05:00"},
  {"0 30 2 * * *", "America/New_York", "2026-03-08T00:00:00-05:00", "2026-03-08T03:00:00-04:00"},
  {"*/20 30 2 * * *", "America/New_York", "2026-03-08T00:00:00-05:00", "2026-03-08T03:00:00-04:00 2026-03-09T02:30:00-04:00"},
  {"30 * * * *", "America/New_York", "2026-03-08T01:00:00-05:00", "2026-03-08T01:30:00-05:00 2026-03-08T03:30:00-04:00 2026-03-08T04:30:00-04:00"},
  {"*/30 2 * * *", "America/New_York", "2026-03-07T12:00:00-05:00", "2026-03-09T02:00:00-04:00 2026-03-09T02:30:00-04:00"},
  {"* 2 * * *", "America/New_York", "2026-03-08T00:00:00-05:00", "2026-03-09T02:00:00-04:00"},
  {"0 * * * *", "America/New_York", "2026-03-08T00:30:00-05:00", "2026-03-08T01:00:00-05:00 2026-03-08T03:00:00-04:00 2026-03-08T04:00:00-04:00"},
  {"@hourly", "America/New_York", "2026-03-08T01:30:00-05:00", "2026-03-08T03:00:00-04:00"},
  {"*/15 * * * *", "America/New_York", "2026-03-08T01:40:00-05:00", "2026-03-08T01:45:00-05:00 2026-03-08T03:00:00-04:00 2026-03-08T03:15:00-04:00"},
  {"@daily", "America/New_York", "2026-03-07T12:00:00-05:00", "2026-03-08T00:00:00-05:00 2026-03-09T00:00:00-04:00"},
  // New York, the repeated hour
  {"30 1 * * *", "America/New_York", "2026-10-31T12:00:00-04:00", "2026-11-01T01:30:00-04:00 2026-11-02T01:30:00-05:00"},
  {"30 1 * * *", "America/New_York", "2026-11-01T01:10:00-04:00", "2026-11-01T01:30:00-04:00 2026-11-02T01:30:00-05:00"},
  {"30 1 * * *", "America/New_York", "2026-11-01T01:45:00-04:00", "2026-11-02T01:30:00-05:00"},
  {"30 1 * * *", "America/New_York", "2026-11-01T01:10:00-05:00", "2026-11-02T01:30:00-05:00"},
  {"30 1 * * *", "America/New_York", "2026-11-01T01:30:00-05:00", "2026-11-02T01:30:00-05:00"},
  {"0 1 * * *", "America/New_York", "2026-11-01T00:00:00-04:00", "2026-11-01T01:00:00-04:00 2026-11-02T01:00:00-05:00"},
  {"0 1,2 * * *", "America/New_York", "2026-11-01T00:00:00-04:00", "2026-11-01T01:00:00-04:00 2026-11-01T02:00:00-05:00 2026-11-02T01:00:00-05:00"},
  {"0 2 * * *", "America/New_York", "2026-11-01T01:30:00-05:00", "2026-11-01T02:00:00-05:00"},
  {"59 1 * * *", "America/New_York", "2026-11-01T00:00:00-04:00", "2026-11-01T01:59:00-04:00 2026-11-02T01:59:00-05:00"},
  {"0 30 1 * * *", "America/New_York", "2026-10-31T12:00:00-04:00", "2026-11-01T01:30:00-04:00 2026-11-02T01:30:00-05:00"},
  {"30 * * * *", "America/New_York", "2026-11-01T00:00:00-04:00", "2026-11-01T00:30:00-04:00 2026-11-01T01:30:00-04:00 2026-11-01T01:30:00-05:00 2026-11-01T02:30:00-05:00"},
  {"30 * * * *", "America/New_York", "2026-11-01T01:10:00-05:00", "2026-11-01T01:30:00-05:00 2026-11-01T02:30:00-05:00"},
  {"30 * * * *", "America/New_York", "2026-11-01T01:45:00-04:00", "2026-11-01T01:30:00-05:00 2026-11-01T02:30:00-05:00"},
  {"*/20 1 * * *", "America/New_York", "2026-11-01T00:00:00-04:00", "2026-11-01T01:00:00-04:00 2026-11-01T01:20:00-04:00 2026-11-01T01:40:00-04:00 2026-11-01T01:00:00-05:00 2026-11-01T01:20:00-05:00 2026-11-01T01:40:00-05:00 2026-11-02T01:00:00-05:00"},
  {"@hourly", "America/New_York", "2026-11-01T00:30:00-04:00", "2026-11-01T01:00:00-04:00 2026-11-01T01:00:00-05:00 2026-11-01T02:00:00-05:00"},
  {"0 * * * *", "America/New_York", "2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-05:00"},
  {"0 */2 * * *", "America/New_York", "2026-10-31T23:00:00-04:00", "2026-11-01T00:00:00-04:00 2026-11-01T02:00:00-05:00 2026-11-01T04:00:00-05:00"},
  {"* * 1 * * *", "America/New_York", "2026-11-01T01:59:58-04:00", "2026-11-01T01:59:59-04:00 2026-11-01T01:00:00-05:00 2026-11-01T01:00:01-05:00"},
  {"@daily", "America/New_York", "2026-10-31T12:00:00-04:00", "2026-11-01T00:00:00-04:00 2026-11-02T00:00:00-05:00"},
  // Berlin, the gap
  {"30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00+01:00", "2026-03-29T03:00:00+02:00 2026-03-30T02:30:00+02:00"},
  {"30 2 * * *", "Europe/Berlin", "2026-03-29T01:59:59+01:00", "2026-03-29T03:00:00+02:00"},
  {"30 2 * * *", "Europe/Berlin", "2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"},
  {"30 2 * * *", "Europe/Berlin", "2026-03-29T04:00:00+02:00", "2026-03-30T02:30:00+02:00"},
  {"15,45 2 * * *", "Europe/Berlin", "2026-03-29T00:00:00+01:00", "2026-03-29T03:00:00+02:00 2026-03-30T02:15:00+02:00 2026-03-30T02:45:00+02:00"},
  {"0 2 29 3 *", "Europe/Berlin", "2026-01-01T00:00:00+01:00", "2026-03-29T03:00:00+02:00 2027-03-29T02:00:00+02:00"},
  {"0 2 * * sun", "Europe/Berlin", "2026-03-22T12:00:00+01:00", "2026-03-29T03:00:00+02:00 2026-04-05T02:00:00+02:00"},
  {"0 * * * *", "Europe/Berlin", "2026-03-29T00:30:00+01:00", "2026-03-29T01:00:00+01:00 2026-03-29T03:00:00+02:00 2026-03-29T04:00:00+02:00"},
  {"*/15 2 * * *", "Europe/Berlin", "2026-03-29T00:00:00+01:00", "2026-03-30T02:00:00+02:00 2026-03-30T02:15:00+02:00"},
  {"30 * * * *", "Europe/Berlin", "2026-03-29T01:45:00+01:00", "2026-03-29T03:30:00+02:00"},
  {"0 0 * * * *", "Europe/Berlin", "2026-03-29T01:00:00+01:00", "2026-03-29T03:00:00+02:00"},
  // Berlin, the repeated hour
  {"30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00+02:00", "2026-10-25T02:30:00+02:00 2026-10-26T02:30:00+01:00"},
  {"30 2 * * *", "Europe/Berlin", "2026-10-25T02:40:00+02:00", "2026-10-26T02:30:00+01:00"},
  {"30 2 * * *", "Europe/Berlin", "2026-10-25T02:10:00+01:00", "2026-10-26T02:30:00+01:00"},
  {"0 2 * * *", "Europe/Berlin", "2026-10-25T00:00:00+02:00", "2026-10-25T02:00:00+02:00 2026-10-26T02:00:00+01:00"},
  {"0 3 * * *", "Europe/Berlin", "2026-10-25T00:00:00+02:00", "2026-10-25T03:00:00+01:00"},
  {"0 2-3 * * *", "Europe/Berlin", "2026-10-25T00:00:00+02:00", "2026-10-25T02:00:00+02:00 2026-10-25T03:00:00+01:00"},
  {"30 * * * *", "Europe/Berlin", "2026-10-25T01:45:00+02:00", "2026-10-25T02:30:00+02:00 2026-10-25T02:30:00+01:00 2026-10-25T03:30:00+01:00"},
  {"*/30 2 * * *", "Europe/Berlin", "2026-10-25T01:00:00+02:00", "2026-10-25T02:00:00+02:00 2026-10-25T02:30:00+02:00 2026-10-25T02:00:00+01:00 2026-10-25T02:30:00+01:00 2026-10-26T02:00:00+01:00"},
  {"@hourly", "Europe/Berlin", "2026-10-25T01:30:00+02:00", "2026-10-25T02:00:00+02:00 2026-10-25T02:00:00+01:00 2026-10-25T03:00:00+01:00"},
  {"CRON_TZ=Europe/Berlin 30 2 * * *", "UTC", "2026-10-24T12:00:00Z", "2026-10-25T02:30:00+02:00 2026-10-26T02:30:00+01:00"},
  // Lord Howe, the 30-minute gap
  {"15 2 * * *", "Australia/Lord_Howe", "2026-10-03T12:00:00+10:30", "2026-10-04T02:30:00+11:00 2026-10-05T02:15:00+11:00"},
  {"15 2 * * *", "Australia/Lord_Howe", "2026-10-04T01:59:00+10:30", "2026-10-04T02:30:00+11:00"},
  {"15 2 * * *", "Australia/Lord_Howe", "2026-10-04T02:30:00+11:00", "2026-10-05T02:15:00+11:00"},
  {"0,15 2 * * *", "Australia/Lord_Howe", "2026-10-04T00:00:00+10:30", "2026-10-04T02:30:00+11:00 2026-10-05T02:00:00+11:00 2026-10-05T02:15:00+11:00"},
  {"30 2 * * *", "Australia/Lord_Howe", "2026-10-04T00:00:00+10:30", "2026-10-04T02:30:00+11:00 2026-10-05T02:30:00+11:00"},
  {"0,15,30,45 2 * * *", "Australia/Lord_Howe", "2026-10-04T00:00:00+10:30", "2026-10-04T02:30:00+11:00 2026-10-04T02:45:00+11:00 2026-10-05T02:00:00+11:00"},
  {"*/15 * * * *", "Australia/Lord_Howe", "2026-10-04T01:50:00+10:30", "2026-10-04T02:30:00+11:00 2026-10-04T02:45:00+11:00"},
  {"15 * * * *", "Australia/Lord_Howe", "2026-10-04T01:00:00+10:30", "2026-10-04T01:15:00+10:30 2026-10-04T03:15:00+11:00"},
  {"0 * * * *", "Australia/Lord_Howe", "2026-10-04T01:30:00+10:30", "2026-10-04T03:00:00+11:00"},
  {"@hourly", "Australia/Lord_Howe", "2026-10-04T00:30:00+10:30", "2026-10-04T01:00:00+10:30 2026-10-04T03:00:00+11:00"},
  // Lord Howe, the repeated half hour
  {"45 1 * * *", "Australia/Lord_Howe", "2027-04-03T12:00:00+11:00", "2027-04-04T01:45:00+11:00 2027-04-05T01:45:00+10:30"},
  {"45 1 * * *", "Australia/Lord_Howe", "2027-04-04T01:40:00+10:30", "2027-04-05T01:45:00+10:30"},
  {"15 1 * * *", "Australia/Lord_Howe", "2027-04-04T00:00:00+11:00", "2027-04-04T01:15:00+11:00 2027-04-05T01:15:00+10:30"},
  {"30 1 * * *", "Australia/Lord_Howe", "2027-04-04T00:00:00+11:00", "2027-04-04T01:30:00+11:00 2027-04-05T01:30:00+10:30"},
  {"0 2 * * *", "Australia/Lord_Howe", "2027-04-04T01:00:00+11:00", "2027-04-04T02:00:00+10:30"},
  {"45 * * * *", "Australia/Lord_Howe", "2027-04-04T01:00:00+11:00", "2027-04-04T01:45:00+11:00 2027-04-04T01:45:00+10:30 2027-04-04T02:45:00+10:30"},
  {"*/10 1 * * *", "Australia/Lord_Howe", "2027-04-04T01:25:00+11:00", "2027-04-04T01:30:00+11:00 2027-04-04T01:40:00+11:00 2027-04-04T01:50:00+11:00 2027-04-04T01:30:00+10:30 2027-04-04T01:40:00+10:30 2027-04-04T01:50:00+10:30 2027-04-05T01:00:00+10:30"},
  {"@hourly", "Australia/Lord_Howe", "2027-04-04T01:10:00+11:00", "2027-04-04T02:00:00+10:30"},
  {"*/30 * * * *", "Australia/Lord_Howe", "2027-04-04T01:10:00+11:00", "2027-04-04T01:30:00+11:00 2027-04-04T01:30:00+10:30 2027-04-04T02:00:00+10:30"},
};
// clang-format on

INSTANTIATE_TEST_SUITE_P(Basics, NextFire, ::testing::ValuesIn(kBasics));
INSTANTIATE_TEST_SUITE_P(Dst, NextFire, ::testing::ValuesIn(kDst));

struct ErrorCase {
  const char* expr;
  int column;
  const char* message_part;
};

std::ostream& operator<<(std::ostream& os, const ErrorCase& c) { return os << "\"" << c.expr << "\""; }

class BadExpression : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(BadExpression, IsRefusedWithTheColumnAndWhy) {
  const ErrorCase& c = GetParam();
  Parsed p = parse(c.expr);
  ASSERT_FALSE(p.schedule) << "accepted";
  EXPECT_EQ(p.error.column, c.column) << p.error.message;
  EXPECT_NE(p.error.message.find(c.message_part), std::string::npos) << p.error.message;
}

// clang-format off
const ErrorCase kErrors[] = {
  {"", 1, "empty"},
  {"   ", 4, "empty"},
  {"* * * *", 8, "expected 5 fields"},
  {"*", 2, "found 1"},
  {"* * * * * * *", 13, "Quartz"},
  {"0 0 12 * * ? 2026", 14, "Quartz"},
  {"* * * * * * * *", 13, "found 8"},
  {"60 * * * *", 1, "minute 60 is out of range 0-59"},
  {"* 24 * * *", 3, "hour 24 is out of range 0-23"},
  {"* * 0 * *", 5, "day-of-month 0 is out of range 1-31"},
  {"* * 32 * *", 5, "day-of-month 32"},
  {"* * * 13 *", 7, "month 13"},
  {"* * * 0 *", 7, "month 0"},
  {"* * * * 8", 9, "Quartz's 1-7 numbering"},
  {"60 * * * * *", 1, "second 60"},
  {"* 60 * * * *", 3, "minute 60"},
  {"5-2 * * * *", 1, "goes backwards"},
  {"* 22-2 * * *", 3, "two ranges"},
  {"* * * * sat-mon", 9, "ends in Sunday"},
  {"* * * * 7-1", 9, "goes backwards"},
  {"*/0 * * * *", 3, "step of 0"},
  {"*/61 * * * *", 3, "larger than the minute field's span"},
  {"* */25 * * *", 5, "larger"},
  {"*/x * * * *", 3, "a step is a positive number"},
  {"*/ * * * *", 3, "a step is a positive number"},
  {"1,,2 * * * *", 3, "empty item"},
  {"1, * * * *", 3, "empty item"},
  {",1 * * * *", 1, "empty item"},
  {"a * * * *", 1, "unexpected \"a\""},
  {"1x * * * *", 2, "unexpected \"x\""},
  {"-1 * * * *", 1, "unexpected"},
  {"1- * * * *", 3, "missing"},
  {"* * * foo *", 7, "unknown month"},
  {"* * * january *", 7, "unknown month"},
  {"* * * * funday", 9, "unknown day"},
  {"* * * * monday", 9, "unknown day"},
  {"* * mon * *", 5, "unexpected \"mon\""},
  {"jan * * * *", 1, "unexpected"},
  {"* * * * 5L", 9, "Quartz"},
  {"* * * * L", 9, "Quartz"},
  {"* * 15W * *", 5, "Quartz"},
  {"* * LW * *", 5, "Quartz"},
  {"* * L-3 * *", 5, "Quartz"},
  {"* * L/2 * *", 6, "no step"},
  {"* L * * *", 3, "unexpected"},
  {"* * * * 5#6", 11, "1-5"},
  {"* * * * 5#0", 11, "1-5"},
  {"* * * * 5#", 11, "1-5"},
  {"* * 5#2 * *", 6, "day-of-week field"},
  {"* * * * 8#2", 9, "out of range"},
  {"0 0 ? * 1", 9, "Quartz"},
  {"0 0 12 ? * 2-6", 12, "Quartz"},
  {"0 0 30 2 *", 5, "never fires"},
  {"0 0 31 4,6,9,11 *", 5, "never fires"},
  {"0 0 30,31 feb *", 5, "never fires"},
  {"@fortnightly", 1, "unknown macro"},
  {"@daily 5", 8, "stands alone"},
  {"@", 1, "unknown macro"},
  {"CRON_TZ=Mars/Olympus 0 0 * * *", 9, "unknown time zone"},
  {"CRON_TZ= 0 0 * * *", 9, "needs a zone"},
  {"CRON_TZ=UTC", 12, "needs an expression"},
  {"TZ=UTC 0 0 * * *", 1, "CRON_TZ="},
  {"CRON_TZ=UTC 61 * * * *", 13, "minute 61"},
  {"* * * *\t99", 9, "day-of-week 99"},
  {"0 0 * * *\n", 10, "control character"},
};
// clang-format on

INSTANTIATE_TEST_SUITE_P(Cron, BadExpression, ::testing::ValuesIn(kErrors));

TEST(CronParse, FixedTimeAndTheDayRuleFollowTheFieldText) {
  auto fixed = [](const char* e) { return parse(e).schedule->fixed_time; };
  EXPECT_TRUE(fixed("30 2 * * *"));
  EXPECT_TRUE(fixed("0,30 1-3 * * *"));
  EXPECT_TRUE(fixed("@daily"));
  EXPECT_TRUE(fixed("@weekly"));
  EXPECT_FALSE(fixed("@hourly"));
  EXPECT_FALSE(fixed("*/5 2 * * *"));
  EXPECT_FALSE(fixed("0 * * * *"));
  EXPECT_FALSE(fixed("0 */2 * * *"));
  EXPECT_FALSE(fixed("? 2 * * *"));
  EXPECT_TRUE(fixed("* 0 2 * * *"));  // seconds do not count
  auto both = [](const char* e) { return parse(e).schedule->both_days_must_match; };
  EXPECT_TRUE(both("0 0 * * mon"));
  EXPECT_TRUE(both("0 0 */2 * mon"));
  EXPECT_TRUE(both("0 0 ? * mon"));
  EXPECT_TRUE(both("0 0 1 * *"));
  EXPECT_FALSE(both("0 0 1-31 * mon"));
  EXPECT_FALSE(both("0 0 1 * 1-5"));
  EXPECT_TRUE(parse("@reboot").schedule->reboot);
  EXPECT_EQ(parse("CRON_TZ=Europe/Berlin @daily").schedule->zone, "Europe/Berlin");
  EXPECT_EQ(parse("CRON_TZ=Europe/Berlin @daily").schedule->text, "CRON_TZ=Europe/Berlin @daily");
}

TEST(CronParse, RebootHasNoInstants) {
  Parsed p = parse("@reboot");
  ASSERT_TRUE(p.schedule);
  EXPECT_EQ(next_fire(*p.schedule, zone("UTC"), Seconds{}), std::nullopt);
}

// uWSGI: -1 any, -N divisible by N (not */N), day and weekday ORed only when both are values.
struct UwsgiCase {
  std::vector<int> fields;
  const char* from;
  const char* expected;
};

TEST(CronUwsgi, FollowsUwsgisMeaning) {
  const UwsgiCase cases[] = {
      {{-1, -1, -1, -1, -1}, "2026-11-22T10:00:00Z", "2026-11-22T10:01:00+00:00 2026-11-22T10:02:00+00:00"},
      {{-5, -1, -1, -1, -1}, "2026-11-22T10:03:00Z", "2026-11-22T10:05:00+00:00 2026-11-22T10:10:00+00:00"},
      {{-7, -1, -1, -1, -1}, "2026-11-22T10:50:00Z", "2026-11-22T10:56:00+00:00 2026-11-22T11:00:00+00:00"},
      {{0, 5, 1, -1, -1}, "2026-11-22T00:00:00Z", "2026-12-01T05:00:00+00:00 2027-01-01T05:00:00+00:00"},
      {{0, 0, -1, -3, -1}, "2026-11-22T00:00:00Z", "2026-12-01T00:00:00+00:00 2026-12-02T00:00:00+00:00"},
      {{0, 0, 1, -3, -1}, "2026-11-22T00:00:00Z", "2026-12-01T00:00:00+00:00 2027-03-01T00:00:00+00:00"},
      {{0, 0, -10, -1, -1}, "2026-11-22T00:00:00Z", "2026-11-30T00:00:00+00:00 2026-12-10T00:00:00+00:00"},
      {{0, 0, 13, -1, 5}, "2026-11-01T00:00:00Z", "2026-11-06T00:00:00+00:00 2026-11-13T00:00:00+00:00 2026-11-20T00:00:00+00:00"},
      {{0, 0, -1, -1, 5}, "2026-11-01T00:00:00Z", "2026-11-06T00:00:00+00:00 2026-11-13T00:00:00+00:00"},
      {{0, 0, -1, -1, 7}, "2026-11-20T00:00:00Z", "2026-11-22T00:00:00+00:00"},
      {{0, 0, -1, -1, -3}, "2026-11-20T00:00:00Z", "2026-11-21T00:00:00+00:00 2026-11-22T00:00:00+00:00 2026-11-25T00:00:00+00:00"},  // Sat, Sun, Wed: weekday % 3 == 0,
      {{0, -12, -1, -1, -1}, "2026-11-22T01:00:00Z", "2026-11-22T12:00:00+00:00 2026-11-23T00:00:00+00:00"},
  };
  for (const auto& c : cases) {
    Parsed p = uwsgi(c.fields);
    ASSERT_TRUE(p.schedule) << p.error.message;
    std::vector<std::string> got;
    Seconds t = *parse_instant(c.from, zone("UTC"));
    for (std::size_t i = 0; i < split(c.expected).size(); ++i) {
      t = *next_fire(*p.schedule, zone("UTC"), t);
      got.push_back(format_in_zone(t, zone("UTC")));
    }
    EXPECT_EQ(got, split(c.expected)) << p.schedule->text;
  }
  EXPECT_TRUE(uwsgi({30, 2, -1, -1, -1}).schedule->fixed_time);
  EXPECT_FALSE(uwsgi({-1, 2, -1, -1, -1}).schedule->fixed_time);
  EXPECT_FALSE(uwsgi({0, 0, 31, 2, -1}).schedule) << "31 February";
  EXPECT_FALSE(uwsgi({60, 0, 1, 1, -1}).schedule);
  EXPECT_EQ(uwsgi({0, 24, 1, 1, -1}).error.column, 2);
}

TEST(CronInstants, ParseAndFormatRoundTrip) {
  const date::time_zone& ny = zone("America/New_York");
  EXPECT_EQ(format_in_zone(*parse_instant("2026-11-01T01:30:00-05:00", ny), ny),
            "2026-11-01T01:30:00-05:00");
  EXPECT_EQ(format_in_zone(*parse_instant("2026-11-01T01:30:00", ny), ny),
            "2026-11-01T01:30:00-04:00")
      << "an ambiguous wall time means its first occurrence";
  EXPECT_EQ(format_in_zone(*parse_instant("2026-03-08T02:30", ny), ny), "2026-03-08T03:00:00-04:00")
      << "a wall time in a gap means the end of the gap";
  EXPECT_EQ(format_in_zone(*parse_instant("2026-11-22", ny), ny), "2026-11-22T00:00:00-05:00");
  EXPECT_EQ(format_in_zone(*parse_instant("2026-11-22 06:07:08Z", ny), zone("UTC")),
            "2026-11-22T06:07:08+00:00");
  for (const char* bad : {"", "2026", "2026-13-01", "2026-02-30T00:00", "2026-11-22T25:00",
                          "2026-11-22T10:00+5", "2026-11-22X10:00", "2026-11-22T10:00:00ZZ"}) {
    EXPECT_EQ(parse_instant(bad, ny), std::nullopt) << bad;
  }
}

// ---- the oracle ----------------------------------------------------------------------------------
// Straight from the rules, minute by minute: an instant fires when its wall time matches (a fixed
// job not in the second pass of a repeated hour), or, for a fixed job, when it starts the far side
// of a gap in which some wall time matches.
bool matches_local(const Schedule& s, std::int64_t local) {
  const std::int64_t day = local >= 0 ? local / 86400 : (local - 86399) / 86400;
  const std::int64_t tod = local - day * 86400;
  date::year_month_day ymd{date::sys_days{date::days{day}}};
  const auto bit = [](std::uint64_t mask, std::int64_t v) { return ((mask >> v) & 1U) != 0; };
  return bit(s.seconds, tod % 60) && bit(s.minutes, tod / 60 % 60) && bit(s.hours, tod / 3600) &&
         bit(s.months, static_cast<unsigned>(ymd.month())) &&
         s.day_matches(static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                       static_cast<unsigned>(ymd.day()));
}

std::optional<Seconds> oracle_next(const Schedule& s, const date::time_zone& z, Seconds t,
                                   std::int64_t horizon) {
  using std::chrono::seconds;
  std::int64_t start = (t.time_since_epoch().count() / 60 + 1) * 60;
  for (std::int64_t i = start; i < start + horizon; i += 60) {
    Seconds at{seconds{i}};
    auto info = z.get_info(at);
    std::int64_t local = i + info.offset.count();
    if (matches_local(s, local)) {
      if (!s.fixed_time) return at;
      auto li = z.get_info(date::local_seconds{seconds{local}});
      bool second_pass = li.result == date::local_info::ambiguous &&
                         i == local - li.second.offset.count();
      if (!second_pass) return at;
    }
    if (s.fixed_time && info.begin == at) {
      auto before = z.get_info(at - seconds{1});
      for (std::int64_t g = i + before.offset.count(); g < local; g += 60) {
        if (matches_local(s, g)) return at;
      }
    }
  }
  return std::nullopt;
}

TEST(CronOracle, RandomExpressionsAgreeWithTheRulesAroundTransitions) {
  std::mt19937_64 rng(20261122);
  auto pick = [&](std::initializer_list<const char*> options) {
    std::vector<const char*> v(options);
    return std::string(v[rng() % v.size()]);
  };
  const char* zones[] = {"America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "UTC",
                         "America/Santiago", "Asia/Tehran", "Pacific/Chatham"};
  int checked = 0;
  for (int i = 0; i < 2000; ++i) {
    std::string expr = pick({"*", "0", "*/15", "30", "0,30", "*/7", "5-20/5", "45", "59"}) + " " +
                       pick({"*", "0", "1", "2", "1-3", "*/2", "0,2", "3", "23"}) + " " +
                       pick({"*", "*", "1", "L", "13", "*/2", "29"}) + " " +
                       pick({"*", "*", "*", "3", "10", "4,10", "mar-nov"}) + " " +
                       pick({"*", "*", "*", "0", "sun", "1-5", "5#1", "?"});
    Parsed p = parse(expr);
    if (!p.schedule) continue;  // e.g. "?" with a number: refused on purpose
    const date::time_zone& z = zone(zones[rng() % std::size(zones)]);
    // Around the zone's transitions of 2026-2027 and at random instants of those years.
    std::int64_t base = 1767225600 + static_cast<std::int64_t>(rng() % (2 * 365 * 86400));
    if (rng() % 2 == 0) {
      auto info = z.get_info(Seconds{std::chrono::seconds{base}});
      base = info.end.time_since_epoch().count() - static_cast<std::int64_t>(rng() % 7200);
      if (base > 4102444800) continue;  // a zone with no more transitions
    }
    Seconds t{std::chrono::seconds{base}};
    auto fast = next_fire(*p.schedule, z, t);
    auto slow = oracle_next(*p.schedule, z, t, 10 * 86400);
    if (!slow) continue;  // too far for the brute force
    ASSERT_TRUE(fast) << expr << " in " << z.name();
    EXPECT_EQ(format_in_zone(*fast, z), format_in_zone(*slow, z))
        << expr << " in " << z.name() << " after " << format_in_zone(t, z);
    ++checked;
  }
  EXPECT_GT(checked, 600);
}

TEST(CronNextFire, IsAPureFunctionOfTheInstant) {
  // Asking from any instant between two fires gives the same next fire: nothing depends on when
  // the daemon started or last fired, so a restart or reload never fires a slot twice.
  Parsed p = parse("30 1 * * *");
  const date::time_zone& ny = zone("America/New_York");
  Seconds first = *parse_instant("2026-11-01T01:30:00-04:00", ny);
  Seconds second = *next_fire(*p.schedule, ny, first);
  for (std::int64_t s = 0; s < (second - first).count(); s += 599) {
    EXPECT_EQ(next_fire(*p.schedule, ny, first + std::chrono::seconds{s}), second);
  }
}

}  // namespace
}  // namespace tocsin::cron
