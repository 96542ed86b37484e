// duration.cc — the duration syntax of the configuration and the protocol (SPEC §4, §6).
//
// A unit is always required: `every: 5` must not silently mean 5 ms (or 5 s). Units appear from
// the largest to the smallest, each at most once ("1h30m", "2s500ms"), so that every duration has
// exactly one spelling per value and "30m1h" — almost certainly a mistake — is caught.

#include <array>
#include <cstdint>
#include <cstdio>
#include <limits>

#include "tocsin/config.h"
#include "tocsin/spec.h"

namespace tocsin::config {

namespace {

constexpr std::string_view kExpected = "expected a duration such as 250ms, 2s, 5m, 1h";

struct Unit {
  std::string_view suffix;
  std::int64_t millis;
};
// Largest first; "ms" must be tried before "m".
constexpr std::array<Unit, 4> kUnits = {{{"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1}}};

// Ten years. Far beyond any sensible period, and small enough that adding it to a steady_clock
// time point (nanoseconds in an int64) can never overflow.
constexpr std::int64_t kMaxMillis = std::int64_t{87600} * 3600000;


bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

std::nullopt_t fail(std::string* why, std::string_view text, std::string_view detail) {
  if (why != nullptr) {
    // Appended piecewise: GCC 12 -O2 warns falsely (-Warray-bounds) on the chained operator+.
    why->assign(kExpected);
    why->append("; got ").append(spec::Reader::shown(text));
    if (!detail.empty()) why->append(" (").append(detail).append(")");
  }
  return std::nullopt;
}

}  // namespace

std::optional<Millis> parse_duration(std::string_view text, std::string* why) {
  if (text.empty()) return fail(why, text, "");
  if (text[0] == '-') return fail(why, text, "durations cannot be negative");

  std::int64_t total = 0;
  std::size_t next_unit = 0;  // index into kUnits of the smallest unit still allowed
  std::size_t i = 0;
  while (i < text.size()) {
    if (!is_digit(text[i])) return fail(why, text, "each unit needs a number before it");
    std::int64_t value = 0;
    bool too_large = false;
    while (i < text.size() && is_digit(text[i])) {
      value = value * 10 + (text[i] - '0');
      if (value > kMaxMillis) {
        too_large = true;
        value = kMaxMillis + 1;
      }
      ++i;
    }
    if (i == text.size()) {
      return fail(why, text, "a unit is required: ms, s, m or h");
    }
    if (text[i] == '.' || text[i] == ',') {
      return fail(why, text, "fractions are not allowed; combine units, as in 1s500ms");
    }
    if (!is_letter(text[i])) {
      return fail(why, text, "unexpected " + spec::Reader::shown(text.substr(i, 1)) + " after a number");
    }
    std::size_t unit = kUnits.size();
    for (std::size_t u = 0; u < kUnits.size(); ++u) {
      std::string_view suffix = kUnits[u].suffix;
      if (text.substr(i, suffix.size()) != suffix) continue;
      // "m" is a prefix of "ms": only accept "m" when no letter follows.
      bool longer = i + suffix.size() < text.size() && is_letter(text[i + suffix.size()]);
      if (longer) continue;
      unit = u;
      break;
    }
    if (unit == kUnits.size()) {
      std::size_t end = i;
      while (end < text.size() && is_letter(text[end])) ++end;
      return fail(why, text,
                  "unknown unit " + spec::Reader::shown(text.substr(i, end - i)) + "; the units are ms, s, m, h");
    }
    if (unit < next_unit) {
      return fail(why, text, "units go from the largest to the smallest, each once, as in 1h30m");
    }
    next_unit = unit + 1;
    i += kUnits[unit].suffix.size();
    if (too_large || value > kMaxMillis / kUnits[unit].millis) {
      return fail(why, text, "at most 87600h (ten years)");
    }
    total += value * kUnits[unit].millis;
    if (total > kMaxMillis) return fail(why, text, "at most 87600h (ten years)");
  }
  return Millis{total};
}

std::string format_duration(Millis d) {
  std::int64_t ms = d.count();
  if (ms == 0) return "0ms";
  std::string out = ms < 0 ? "-" : "";
  // Unsigned, so that negating the minimum value cannot overflow.
  std::uint64_t rest = ms < 0 ? 0 - static_cast<std::uint64_t>(ms) : static_cast<std::uint64_t>(ms);
  for (const Unit& unit : kUnits) {
    auto size = static_cast<std::uint64_t>(unit.millis);
    if (rest / size != 0) out += std::to_string(rest / size) + std::string(unit.suffix);
    rest %= size;
  }
  return out;
}

}  // namespace tocsin::config
