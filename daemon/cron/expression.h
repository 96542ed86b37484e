// expression.h — cron expressions (SPEC §3 cron) and their fire instants. Pure: no clock, no I/O;
// a function of (expression, zone, instant), tested with tables (tests/unit/cron_test.cc).
//
// parse() takes the five-field form (minute hour day-of-month month day-of-week), the six-field
// form with seconds first, the macros, @reboot and a leading `CRON_TZ=Zone `. uwsgi() builds the
// same Schedule from uWSGI's five numbers. Errors carry the 1-based column within the text they
// were given, so the config loader can add the column of the YAML scalar.
//
// next_fire() is the smallest member after `t` of the set of fire instants, a pure function of
// (schedule, zone) (docs/cron.md has the rules with worked examples):
//  - a wall time that exists once fires at that instant;
//  - in a repeated hour (DST ends), a fixed-time job (minute and hour fields not starting with `*`
//    or `?`) fires at the first occurrence only; a wildcard job at both;
//  - in a gap (DST starts), a fixed-time job fires once at the first instant after the gap (all
//    its matches in one gap coalesce into that instant); a wildcard job has no match there.
// Because the set does not depend on when anyone asks, a restart or reload never fires a slot
// twice. Thread-safe (no shared state; date::time_zone is immutable once located).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace date {
class time_zone;
}

namespace tocsin::cron {

using Seconds = std::chrono::sys_seconds;  // a UTC instant, second resolution

struct Schedule {
  // One bit per allowed value: seconds and minutes 0-59, hours 0-23, days 1-31, months 1-12,
  // weekdays 0-6 (0 = Sunday).
  std::uint64_t seconds = 0;
  std::uint64_t minutes = 0;
  std::uint32_t hours = 0;
  std::uint32_t days = 0;
  std::uint16_t months = 0;
  std::uint8_t weekdays = 0;
  bool last_day = false;           // `L` in day-of-month
  std::uint8_t nth[7] = {};        // per weekday, bit n-1 set for `d#n`
  // The day rule (cronie): when either day field starts with `*` (or is `?`) both must match,
  // otherwise either may.
  bool both_days_must_match = true;
  bool fixed_time = false;  // minute and hour fields do not start with `*` / `?`: the DST rules
  bool reboot = false;      // @reboot: no instants; fires once at daemon start
  std::string zone;         // from `CRON_TZ=`, else empty
  std::string text;         // what was parsed, for status and logs

  bool day_matches(int year, unsigned month, unsigned day) const;
};

struct ParseError {
  std::string message;
  int column = 1;  // 1-based, within the text given to parse()
};

struct Parsed {
  std::optional<Schedule> schedule;
  ParseError error;  // when !schedule
};

Parsed parse(std::string_view text);
// uWSGI's form [minute, hour, day, month, weekday]: -1 = any, -N = the value is divisible by N,
// else the value itself (weekday 7 = Sunday). Day and weekday are ORed when both are values,
// as uWSGI does. The column of an error is the 1-based index of the offending number.
Parsed uwsgi(const std::vector<int>& fields);

// The zone for `name`: an IANA name; empty means the daemon's local zone ($TZ when it names a
// zone, else /etc/localtime, else UTC). nullptr and `why` set when there is no such zone.
const date::time_zone* find_zone(std::string_view name, std::string* why);

// The smallest fire instant strictly after `t` (second resolution), or nullopt when there is none
// (@reboot, or beyond year 9999).
std::optional<Seconds> next_fire(const Schedule& schedule, const date::time_zone& zone, Seconds t);

// The first local wall time >= `from` (seconds since 1970-01-01 00:00 local) whose fields match,
// ignoring zones; nullopt beyond year 9999. Exposed for tests and the never-fires check.
std::optional<std::int64_t> next_local_match(const Schedule& schedule, std::int64_t from);

// ISO 8601 with the zone's offset at that instant: 2026-03-29T03:00:00+02:00.
std::string format_in_zone(Seconds t, const date::time_zone& zone);
// Parses an ISO 8601 instant: with Z or an offset, or without (then it is a wall time in `zone`;
// for an ambiguous one the earlier instant, for a nonexistent one the end of the gap).
std::optional<Seconds> parse_instant(std::string_view text, const date::time_zone& zone);

}  // namespace tocsin::cron
