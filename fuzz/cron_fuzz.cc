// libFuzzer target: the cron parser and next-fire. Whatever the bytes: parse() returns a schedule
// or an error whose column lies inside the text (1..size+1); for a schedule, next_fire() from a
// few instants in a few zones returns a later instant or nothing, and asking again from any
// instant between t and that answer gives the same answer (the fire set does not depend on when
// one asks).
#include <date/tz.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "cron/expression.h"

namespace {

void violated(const std::string& text, const char* what) {
  std::fprintf(stderr, "property violated for \"%s\": %s\n", text.c_str(), what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace tocsin::cron;
  if (size > 512) return 0;
  std::string text(reinterpret_cast<const char*>(data), size);
  Parsed p = parse(text);
  if (!p.schedule) {
    if (p.error.message.empty() || p.error.column < 1 ||
        p.error.column > static_cast<int>(size) + 1) {
      violated(text, "an error without a message or outside the text");
    }
    return 0;
  }
  static const char* kZones[] = {"UTC", "America/New_York", "Australia/Lord_Howe"};
  const std::int64_t starts[] = {1772928000, 1793491200, 1806624000 + static_cast<std::int64_t>(size % 7) * 3301};
  for (const char* name : kZones) {
    const date::time_zone* z =
        p.schedule->zone.empty() ? find_zone(name, nullptr) : find_zone(p.schedule->zone, nullptr);
    if (z == nullptr) violated(text, "a parsed zone that cannot be found");
    for (std::int64_t s : starts) {
      Seconds t{std::chrono::seconds{s}};
      auto n = next_fire(*p.schedule, *z, t);
      if (!n) {
        if (!p.schedule->reboot) violated(text, "a schedule that can fire has no next instant");
        continue;
      }
      if (*n <= t) violated(text, "next_fire is not after t");
      Seconds mid = t + (*n - t) / 2;
      if (next_fire(*p.schedule, *z, mid) != n) violated(text, "next_fire depends on when one asks");
    }
  }
  return 0;
}
