#include "cron/expression.h"

#include <date/date.h>
#include <date/tz.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cctype>
#include <cstdio>
#include <cstdlib>

namespace tocsin::cron {
namespace {

constexpr std::int64_t kDay = 86400;

// ---- calendar helpers on day numbers (days since 1970-01-01) ----------------------------------

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  std::int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

std::int64_t day_number(int y, unsigned m, unsigned d) {
  return date::sys_days{date::year{y} / date::month{m} / date::day{d}}.time_since_epoch().count();
}

unsigned weekday_of(std::int64_t day) {  // 0 = Sunday; 1970-01-01 was a Thursday
  return static_cast<unsigned>(((day + 4) % 7 + 7) % 7);
}

unsigned last_day_of(int y, unsigned m) {
  return static_cast<unsigned>(
      (date::year{y} / date::month{m} / date::last).day().operator unsigned());
}

// The lowest set bit of `mask` at or above `from`, or -1.
int next_bit(std::uint64_t mask, int from) {
  if (from >= 64) return -1;
  std::uint64_t rest = mask >> from;
  return rest == 0 ? -1 : from + std::countr_zero(rest);
}

bool day_matches_n(const Schedule& s, int y, unsigned m, unsigned d, std::int64_t day) {
  bool dom = ((s.days >> d) & 1U) != 0 || (s.last_day && d == last_day_of(y, m));
  if (dom && !s.both_days_must_match) return true;
  if (!dom && s.both_days_must_match) return false;
  unsigned wd = weekday_of(day);
  return ((s.weekdays >> wd) & 1U) != 0 || ((s.nth[wd] >> ((d - 1) / 7)) & 1U) != 0;
}

const std::int64_t kYear10000 = day_number(10000, 1, 1) * kDay;

// ---- the parser ---------------------------------------------------------------------------------

enum class Field { second, minute, hour, dom, month, dow };

struct FieldInfo {
  std::string_view name;
  int min;
  int max;       // highest value written
  int star_max;  // highest value `*` and `a/s` reach (day-of-week: 6; 7 is Sunday again)
};

constexpr FieldInfo kFieldInfo[] = {
    {"second", 0, 59, 59}, {"minute", 0, 59, 59},    {"hour", 0, 23, 23},
    {"day-of-month", 1, 31, 31}, {"month", 1, 12, 12}, {"day-of-week", 0, 7, 6}};

constexpr std::array<std::string_view, 12> kMonthNames = {"jan", "feb", "mar", "apr", "may", "jun",
                                                          "jul", "aug", "sep", "oct", "nov", "dec"};
constexpr std::array<std::string_view, 7> kDayNames = {"sun", "mon", "tue", "wed",
                                                       "thu", "fri", "sat"};

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

struct FieldOut {
  std::uint64_t mask = 0;
  bool last_day = false;
  std::uint8_t nth[7] = {};
};

class FieldParser {
 public:
  FieldParser(Field field, std::string_view text, int column)
      : field_(field), info_(kFieldInfo[static_cast<int>(field)]), text_(text), column_(column) {}

  std::optional<ParseError> parse(FieldOut& out) {
    std::size_t start = 0;
    while (true) {
      std::size_t comma = text_.find(',', start);
      std::string_view item =
          text_.substr(start, comma == std::string_view::npos ? std::string_view::npos
                                                              : comma - start);
      if (item.empty()) {
        return err(start, "an empty item in the " + std::string(info_.name) + " list");
      }
      if (auto e = parse_item(item, start, out)) return e;
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
    return std::nullopt;
  }

 private:
  ParseError err(std::size_t offset, std::string message) const {
    return ParseError{std::move(message), column_ + static_cast<int>(offset)};
  }

  std::string range_text() const {
    std::string r = std::to_string(info_.min) + "-" + std::to_string(info_.max);
    if (field_ == Field::month) r += " or jan-dec";
    if (field_ == Field::dow) r += " (0 and 7 = Sunday) or sun-sat";
    return r;
  }

  // A number or (month, day-of-week) a three-letter name.
  std::optional<ParseError> value(std::string_view s, std::size_t offset, int& out) const {
    if (s.empty()) return err(offset, "a value is missing in the " + std::string(info_.name) +
                                          " field (expected " + range_text() + ")");
    if (field_ == Field::dow && s.size() > 1 && (s.back() == 'L' || s.back() == 'l')) {
      return err(offset, "\"" + std::string(s) +
                             "\" (last weekday of the month) is Quartz syntax; use d#n, e.g. "
                             "fri#5 or 5#4");
    }
    if (field_ == Field::dom && (s.find_first_of("Ww") != std::string_view::npos)) {
      return err(offset, "\"W\" (nearest weekday) is Quartz syntax and not supported");
    }
    if (std::isdigit(static_cast<unsigned char>(s[0])) != 0) {
      int v = 0;
      for (std::size_t i = 0; i < s.size(); ++i) {
        if (std::isdigit(static_cast<unsigned char>(s[i])) == 0) {
          return err(offset + i, "unexpected \"" + std::string(1, s[i]) + "\" in the " +
                                     std::string(info_.name) + " field");
        }
        v = std::min(v * 10 + (s[i] - '0'), 100000);
      }
      if (v < info_.min || v > info_.max) {
        std::string hint;
        if (field_ == Field::dow && v > 7) hint = "; Quartz's 1-7 numbering is not used here";
        return err(offset, std::string(info_.name) + " " + std::string(s) + " is out of range " +
                               range_text() + hint);
      }
      out = v;
      return std::nullopt;
    }
    if (std::isalpha(static_cast<unsigned char>(s[0])) != 0 &&
        (field_ == Field::month || field_ == Field::dow)) {
      std::string name = lower(s);
      if (field_ == Field::month) {
        for (std::size_t i = 0; i < kMonthNames.size(); ++i) {
          if (name == kMonthNames[i]) {
            out = static_cast<int>(i) + 1;
            return std::nullopt;
          }
        }
        return err(offset, "unknown month \"" + std::string(s) + "\" (expected jan-dec or 1-12)");
      }
      for (std::size_t i = 0; i < kDayNames.size(); ++i) {
        if (name == kDayNames[i]) {
          out = static_cast<int>(i);
          return std::nullopt;
        }
      }
      if (name == "l" || (name.size() > 1 && name.back() == 'l')) {
        return err(offset, "\"L\" in day-of-week (last weekday of the month) is Quartz syntax; "
                           "use d#n, e.g. fri#5 or 5#4");
      }
      return err(offset, "unknown day \"" + std::string(s) + "\" (expected sun-sat or 0-7)");
    }
    return err(offset, "unexpected \"" + std::string(s) + "\" in the " + std::string(info_.name) +
                           " field (expected " + range_text() + ")");
  }

  void set(FieldOut& out, int v) const {
    if (field_ == Field::dow && v == 7) v = 0;
    out.mask |= std::uint64_t{1} << v;
  }

  std::optional<ParseError> parse_item(std::string_view item, std::size_t offset, FieldOut& out) {
    std::size_t slash = item.find('/');
    std::string_view base = item.substr(0, slash);
    std::optional<int> step;
    if (slash != std::string_view::npos) {
      std::string_view st = item.substr(slash + 1);
      std::size_t st_offset = offset + slash + 1;
      if (st.empty() || std::any_of(st.begin(), st.end(), [](char c) {
            return std::isdigit(static_cast<unsigned char>(c)) == 0;
          })) {
        return err(st_offset, "a step is a positive number, as in */5");
      }
      int s = 0;
      for (char c : st) s = std::min(s * 10 + (c - '0'), 100000);
      const int span = info_.star_max - info_.min + 1;
      if (s == 0) return err(st_offset, "a step of 0 never advances; use 1 or more");
      if (s > span) {
        return err(st_offset, "the step " + std::string(st) + " is larger than the " +
                                  std::string(info_.name) + " field's span (" +
                                  std::to_string(span) + " values)");
      }
      step = s;
    }
    int lo = 0, hi = 0;
    if (base == "*" || base == "?") {
      lo = info_.min;
      hi = info_.star_max;
    } else if (field_ == Field::dom && (base == "L" || base == "l")) {
      if (step) return err(offset + slash, "L (the last day of the month) takes no step");
      out.last_day = true;
      return std::nullopt;
    } else if (field_ == Field::dom && !base.empty() && (base[0] == 'L' || base[0] == 'l')) {
      return err(offset, "\"" + std::string(base) +
                             "\" is Quartz syntax; only a plain L (the last day) is supported");
    } else if (std::size_t hash = base.find('#'); hash != std::string_view::npos) {
      if (field_ != Field::dow) {
        return err(offset + hash, "d#n (the n-th weekday) belongs in the day-of-week field");
      }
      if (step) return err(offset + slash, "d#n takes no step");
      int d = 0;
      if (auto e = value(base.substr(0, hash), offset, d)) return e;
      std::string_view n = base.substr(hash + 1);
      if (n.size() != 1 || n[0] < '1' || n[0] > '5') {
        return err(offset + hash + 1, "the n in d#n is 1-5 (the n-th such weekday of the month)");
      }
      if (d == 7) d = 0;
      out.nth[d] |= static_cast<std::uint8_t>(1U << (n[0] - '1'));
      return std::nullopt;
    } else if (std::size_t dash = base.find('-'); dash != std::string_view::npos && dash > 0) {
      if (auto e = value(base.substr(0, dash), offset, lo)) return e;
      if (auto e = value(base.substr(dash + 1), offset + dash + 1, hi)) return e;
      if (field_ == Field::dow && hi == 0 && lo > 0) hi = 7;  // fri-sun, 5-0: up to Sunday
      if (lo > hi) {
        std::string hint = field_ == Field::dow
                               ? "; a range across the weekend ends in Sunday (fri-sun, 5-0 or 5-7)"
                               : "; write it as two ranges, e.g. 22-23,0-2";
        return err(offset, "the range " + std::string(base) + " goes backwards" + hint);
      }
    } else {
      if (auto e = value(base, offset, lo)) return e;
      hi = step ? std::max(lo, info_.star_max) : lo;  // a/s = a-max/s
    }
    for (int v = lo; v <= hi; v += step.value_or(1)) set(out, v);
    return std::nullopt;
  }

  Field field_;
  FieldInfo info_;
  std::string_view text_;
  int column_;
};

struct Token {
  std::string_view text;
  int column;  // 1-based
};

std::vector<Token> split_fields(std::string_view text, int base_column) {
  std::vector<Token> out;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
    if (i >= text.size()) break;
    std::size_t start = i;
    while (i < text.size() && text[i] != ' ' && text[i] != '\t') ++i;
    out.push_back({text.substr(start, i - start), base_column + static_cast<int>(start)});
  }
  return out;
}

bool starts_with_star(std::string_view field) {
  return !field.empty() && (field[0] == '*' || field[0] == '?');
}

// True when some day of the 400-year Gregorian cycle (which repeats exactly, weekdays included)
// matches: otherwise the schedule can never fire.
bool can_fire(const Schedule& s) {
  const std::int64_t from = day_number(2000, 1, 1) * kDay;
  const std::int64_t until = day_number(2400, 1, 1) * kDay;
  auto m = next_local_match(s, from);
  return m && *m < until;
}

Parsed fail(std::string message, int column) { return Parsed{std::nullopt, {std::move(message), column}}; }

struct Macro {
  std::string_view name;
  std::string_view expansion;
};
constexpr Macro kMacros[] = {{"yearly", "0 0 1 1 *"}, {"annually", "0 0 1 1 *"},
                             {"monthly", "0 0 1 * *"}, {"weekly", "0 0 * * 0"},
                             {"daily", "0 0 * * *"},   {"midnight", "0 0 * * *"},
                             {"hourly", "0 * * * *"}};

Parsed parse_fields(std::string_view body, int body_column, Schedule s) {
  std::vector<Token> tokens = split_fields(body, body_column);
  if (tokens.empty()) return fail("the expression is empty", body_column);
  if (tokens[0].text[0] == '@') {
    std::string name = lower(tokens[0].text.substr(1));
    if (tokens.size() > 1) {
      return fail("a macro such as " + std::string(tokens[0].text) + " stands alone",
                  tokens[1].column);
    }
    if (name == "reboot") {
      s.reboot = true;
      return Parsed{std::move(s), {}};
    }
    for (const Macro& m : kMacros) {
      if (name == m.name) {
        Parsed p = parse_fields(m.expansion, 1, s);
        if (p.schedule) p.schedule->text = s.text;
        return p;
      }
    }
    return fail("unknown macro " + std::string(tokens[0].text) +
                    " (expected @yearly @annually @monthly @weekly @daily @midnight @hourly or "
                    "@reboot)",
                tokens[0].column);
  }
  if (tokens.size() == 7) {
    return fail("7 fields look like a Quartz expression (seconds ... year); tocsin takes 5 fields "
                "(minute hour day-of-month month day-of-week) or 6 with seconds first",
                tokens[6].column);
  }
  if (tokens.size() != 5 && tokens.size() != 6) {
    return fail("expected 5 fields (minute hour day-of-month month day-of-week) or 6 with "
                "seconds first; found " + std::to_string(tokens.size()),
                tokens.size() < 5 ? static_cast<int>(body_column + body.size())
                                  : tokens[6].column);
  }
  const bool six = tokens.size() == 6;
  const std::size_t first = six ? 0 : 1;  // Field index of tokens[0]
  const Token& dom = tokens[3 - first];
  const Token& dow = tokens[5 - first];
  // Quartz writes `?` in one day field and numbers days of the week 1-7 from Sunday; with both
  // present we cannot tell which numbering was meant, so refuse rather than guess.
  if ((dom.text == "?" || dow.text == "?") &&
      std::any_of(dow.text.begin(), dow.text.end(),
                  [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; })) {
    return fail("\"?\" with a numeric day-of-week looks like Quartz, where 1 = Sunday; here 0 and "
                "7 are Sunday and 1 is Monday: write the days as names (mon-fri) to be "
                "unambiguous, or use * instead of ?",
                dow.column);
  }
  FieldOut out[6];
  if (!six) out[0].mask = 1;  // second 0
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    Field f = static_cast<Field>(i + first);
    FieldParser p(f, tokens[i].text, tokens[i].column);
    if (auto e = p.parse(out[i + first])) return Parsed{std::nullopt, *e};
  }
  s.seconds = out[0].mask;
  s.minutes = out[1].mask;
  s.hours = static_cast<std::uint32_t>(out[2].mask);
  s.days = static_cast<std::uint32_t>(out[3].mask);
  s.last_day = out[3].last_day;
  s.months = static_cast<std::uint16_t>(out[4].mask);
  s.weekdays = static_cast<std::uint8_t>(out[5].mask);
  std::copy(std::begin(out[5].nth), std::end(out[5].nth), std::begin(s.nth));
  s.both_days_must_match = starts_with_star(dom.text) || starts_with_star(dow.text);
  s.fixed_time = !starts_with_star(tokens[1 - first].text) && !starts_with_star(tokens[2 - first].text);
  if (!can_fire(s)) {
    return fail("this schedule never fires: no date has this day and month (such as 30 February)",
                dom.column);
  }
  return Parsed{std::move(s), {}};
}

}  // namespace

bool Schedule::day_matches(int year, unsigned month, unsigned day) const {
  return day_matches_n(*this, year, month, day, day_number(year, month, day));
}

Parsed parse(std::string_view text) {
  Schedule s;
  s.text = std::string(text);
  std::size_t i = 0;
  while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
  std::string_view rest = text.substr(i);
  int column = static_cast<int>(i) + 1;
  for (std::size_t k = 0; k < text.size(); ++k) {
    if (static_cast<unsigned char>(text[k]) < 0x20 && text[k] != '\t') {
      return fail("a control character in the expression", static_cast<int>(k) + 1);
    }
  }
  if (rest.starts_with("TZ=")) {
    return fail("the zone prefix is CRON_TZ= (as in cronie)", column);
  }
  if (rest.starts_with("CRON_TZ=")) {
    std::size_t end = rest.find_first_of(" \t");
    std::string_view zone = rest.substr(8, end == std::string_view::npos ? std::string_view::npos
                                                                           : end - 8);
    if (zone.empty()) return fail("CRON_TZ= needs a zone, such as CRON_TZ=Europe/Berlin", column + 8);
    std::string why;
    if (find_zone(zone, &why) == nullptr) return fail(why, column + 8);
    if (end == std::string_view::npos) {
      return fail("CRON_TZ=" + std::string(zone) + " needs an expression after it",
                  column + static_cast<int>(rest.size()));
    }
    s.zone = std::string(zone);
    column += static_cast<int>(end);
    rest = rest.substr(end);
  }
  return parse_fields(rest, column, std::move(s));
}

Parsed uwsgi(const std::vector<int>& f) {
  static constexpr FieldInfo kInfo[] = {{"minute", 0, 59, 59}, {"hour", 0, 23, 23},
                                        {"day", 1, 31, 31},    {"month", 1, 12, 12},
                                        {"weekday", 0, 7, 7}};
  if (f.size() != 5) return fail("expected five numbers [minute, hour, day, month, weekday]", 1);
  std::uint64_t masks[5] = {};
  for (int i = 0; i < 5; ++i) {
    const FieldInfo& info = kInfo[i];
    int v = f[static_cast<std::size_t>(i)];
    if (v < 0) {
      if (-v > info.max + 1) {
        return fail("the " + std::string(info.name) + " -N must have N at most " +
                        std::to_string(info.max + 1),
                    i + 1);
      }
      int top = i == 4 ? 6 : info.max;
      for (int x = info.min; x <= top; ++x) {
        if (x % -v == 0) masks[i] |= std::uint64_t{1} << x;
      }
    } else {
      if (v < info.min || v > info.max) {
        return fail("the " + std::string(info.name) + " " + std::to_string(v) + " is out of range " +
                        std::to_string(info.min) + "-" + std::to_string(info.max),
                    i + 1);
      }
      masks[i] |= std::uint64_t{1} << (i == 4 && v == 7 ? 0 : v);
    }
  }
  Schedule s;
  s.text = "uwsgi: [" + std::to_string(f[0]) + ", " + std::to_string(f[1]) + ", " +
           std::to_string(f[2]) + ", " + std::to_string(f[3]) + ", " + std::to_string(f[4]) + "]";
  s.seconds = 1;
  s.minutes = masks[0];
  s.hours = static_cast<std::uint32_t>(masks[1]);
  s.days = static_cast<std::uint32_t>(masks[2]);
  s.months = static_cast<std::uint16_t>(masks[3]);
  s.weekdays = static_cast<std::uint8_t>(masks[4]);
  s.both_days_must_match = f[2] < 0 || f[4] < 0;
  s.fixed_time = f[0] >= 0 && f[1] >= 0;
  if (!can_fire(s)) return fail("this schedule never fires: no date has this day and month", 3);
  return Parsed{std::move(s), {}};
}

std::optional<std::int64_t> next_local_match(const Schedule& s, std::int64_t from) {
  std::int64_t day = floor_div(from, kDay);
  std::int64_t tod = from - day * kDay;
  int h0 = static_cast<int>(tod / 3600), m0 = static_cast<int>(tod / 60 % 60),
      s0 = static_cast<int>(tod % 60);
  const std::int64_t last_day = kYear10000 / kDay;
  while (day < last_day) {
    date::year_month_day ymd{date::sys_days{date::days{day}}};
    int y = static_cast<int>(ymd.year());
    unsigned mo = static_cast<unsigned>(ymd.month());
    if (((s.months >> mo) & 1U) == 0) {
      int next = next_bit(s.months, static_cast<int>(mo) + 1);
      if (next < 0 || next > 12) {
        ++y;
        next = next_bit(s.months, 1);
        if (next < 0) return std::nullopt;
      }
      day = day_number(y, static_cast<unsigned>(next), 1);
      h0 = m0 = s0 = 0;
      continue;
    }
    if (!day_matches_n(s, y, mo, static_cast<unsigned>(ymd.day()), day)) {
      ++day;
      h0 = m0 = s0 = 0;
      continue;
    }
    while (true) {
      int h = next_bit(s.hours, h0);
      if (h < 0) break;
      if (h != h0) m0 = s0 = 0;
      int m = next_bit(s.minutes, m0);
      if (m < 0) {
        h0 = h + 1;
        m0 = s0 = 0;
        continue;
      }
      if (m != m0) s0 = 0;
      int sec = next_bit(s.seconds, s0);
      if (sec < 0) {
        m0 = m + 1;
        s0 = 0;
        h0 = h;
        if (m0 > 59) {
          h0 = h + 1;
          m0 = 0;
        }
        continue;
      }
      return day * kDay + h * 3600 + m * 60 + sec;
    }
    ++day;
    h0 = m0 = s0 = 0;
  }
  return std::nullopt;
}

std::optional<Seconds> next_fire(const Schedule& s, const date::time_zone& zone, Seconds t) {
  using std::chrono::seconds;
  if (s.reboot) return std::nullopt;
  const Seconds after = t + seconds{1};  // strictly after t
  date::sys_info info = zone.get_info(after);
  for (int guard = 0; guard < 100000; ++guard) {
    const std::int64_t o = info.offset.count();
    const std::int64_t b = info.begin.time_since_epoch().count();
    const std::int64_t e = info.end.time_since_epoch().count();
    std::int64_t po = o;
    if (b > -kYear10000) po = zone.get_info(info.begin - seconds{1}).offset.count();
    std::int64_t lo_sys = std::max<std::int64_t>(after.time_since_epoch().count(), b);
    if (s.fixed_time && o > po && b >= after.time_since_epoch().count()) {
      // The wall times [b+po, b+o) do not exist: a match there fires once, at b.
      auto m = next_local_match(s, b + po);
      if (m && *m < b + o) return Seconds{seconds{b}};
    }
    std::int64_t lo_local = lo_sys + o;
    if (s.fixed_time && o < po) lo_local = std::max(lo_local, b + po);  // the repeat: skip
    auto m = next_local_match(s, lo_local);
    if (!m) return std::nullopt;
    if (*m < e + o) return Seconds{seconds{*m - o}};
    if (e >= kYear10000) return std::nullopt;
    info = zone.get_info(info.end);
  }
  return std::nullopt;
}

const date::time_zone* find_zone(std::string_view name, std::string* why) {
  try {
    if (!name.empty()) return date::locate_zone(std::string(name));
  } catch (const std::exception&) {
    if (why != nullptr) {
      *why = "unknown time zone \"" + std::string(name) +
             "\" (expected an IANA name such as Europe/Berlin, from /usr/share/zoneinfo)";
    }
    return nullptr;
  }
  // The daemon's local zone: $TZ when it names a zone, then /etc/localtime, then UTC.
  if (const char* tz = std::getenv("TZ"); tz != nullptr && *tz != '\0') {
    std::string_view z = tz;
    if (z[0] == ':') z.remove_prefix(1);
    try {
      return date::locate_zone(std::string(z));
    } catch (const std::exception&) {
    }
  }
  try {
    return date::current_zone();
  } catch (const std::exception&) {
  }
  try {
    return date::locate_zone("UTC");
  } catch (const std::exception& e) {
    if (why != nullptr) *why = std::string("no time zone data: ") + e.what();
    return nullptr;
  }
}

std::string format_in_zone(Seconds t, const date::time_zone& zone) {
  const std::int64_t off = zone.get_info(t).offset.count();
  const std::int64_t local = t.time_since_epoch().count() + off;
  const std::int64_t day = floor_div(local, kDay);
  const std::int64_t tod = local - day * kDay;
  date::year_month_day ymd{date::sys_days{date::days{day}}};
  const std::int64_t a = off < 0 ? -off : off;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d%c%02d:%02d",
                static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                static_cast<unsigned>(ymd.day()), static_cast<int>(tod / 3600),
                static_cast<int>(tod / 60 % 60), static_cast<int>(tod % 60), off < 0 ? '-' : '+',
                static_cast<int>(a / 3600), static_cast<int>(a / 60 % 60));
  return buf;
}

std::optional<Seconds> parse_instant(std::string_view text, const date::time_zone& zone) {
  // YYYY-MM-DD[T| ]HH:MM[:SS][Z|+HH:MM|-HH:MM]
  auto digits = [&](std::size_t pos, std::size_t n, int& out) {
    if (pos + n > text.size()) return false;
    int v = 0;
    for (std::size_t i = 0; i < n; ++i) {
      char c = text[pos + i];
      if (c < '0' || c > '9') return false;
      v = v * 10 + (c - '0');
    }
    out = v;
    return true;
  };
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, se = 0;
  if (!digits(0, 4, y) || text.size() < 10 || text[4] != '-' || !digits(5, 2, mo) ||
      text[7] != '-' || !digits(8, 2, d)) {
    return std::nullopt;
  }
  std::size_t pos = 10;
  if (pos < text.size()) {
    if (text[pos] != 'T' && text[pos] != ' ') return std::nullopt;
    if (!digits(pos + 1, 2, h) || pos + 3 >= text.size() || text[pos + 3] != ':' ||
        !digits(pos + 4, 2, mi)) {
      return std::nullopt;
    }
    pos += 6;
    if (pos < text.size() && text[pos] == ':') {
      if (!digits(pos + 1, 2, se)) return std::nullopt;
      pos += 3;
    }
  }
  date::year_month_day ymd{date::year{y}, date::month{static_cast<unsigned>(mo)},
                           date::day{static_cast<unsigned>(d)}};
  if (!ymd.ok() || h > 23 || mi > 59 || se > 59) return std::nullopt;
  const std::int64_t local = date::sys_days{ymd}.time_since_epoch().count() * kDay + h * 3600 +
                             mi * 60 + se;
  if (pos == text.size()) {
    auto li = zone.get_info(date::local_seconds{std::chrono::seconds{local}});
    switch (li.result) {
      case date::local_info::unique:
      case date::local_info::ambiguous:
        return Seconds{std::chrono::seconds{local - li.first.offset.count()}};
      case date::local_info::nonexistent:
        return li.second.begin;
    }
    return std::nullopt;
  }
  if (text[pos] == 'Z' && pos + 1 == text.size()) return Seconds{std::chrono::seconds{local}};
  int oh = 0, om = 0;
  if ((text[pos] == '+' || text[pos] == '-') && digits(pos + 1, 2, oh) && pos + 6 == text.size() &&
      text[pos + 3] == ':' && digits(pos + 4, 2, om)) {
    const std::int64_t off = (oh * 3600 + om * 60) * (text[pos] == '-' ? -1 : 1);
    return Seconds{std::chrono::seconds{local - off}};
  }
  return std::nullopt;
}

}  // namespace tocsin::cron
