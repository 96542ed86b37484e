#include "tocsin/signal.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <ctime>
#include <cstdio>

namespace tocsin {

bool is_valid_signal_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  if (name[0] < 'a' || name[0] > 'z') return false;
  for (char c : name.substr(1)) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

namespace {
bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}
}  // namespace

bool is_valid_client_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!is_name_char(c)) return false;
  }
  return true;
}

bool is_valid_source_id(std::string_view id) {
  if (id.empty()) return false;
  for (char c : id) {
    if (!is_name_char(c) && c != ':') return false;
  }
  return true;
}

char* write_rfc3339(char* out, std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  auto us = duration_cast<microseconds>(t.time_since_epoch()).count();
  auto secs = static_cast<std::time_t>(us / 1000000);
  auto frac = us % 1000000;
  if (frac < 0) {
    frac += 1000000;
    secs -= 1;
  }
  // Events come many per second: the date and time of day are formatted once per second
  // (gmtime_r + snprintf cost more than the rest of an event's encoding).
  thread_local std::time_t cached_secs = -1;
  thread_local char cached[80];  // "YYYY-MM-DDTHH:MM:SS." (room for any int the compiler imagines)
  thread_local std::size_t cached_len = 0;
  if (secs != cached_secs) {
    std::tm tm{};
    gmtime_r(&secs, &tm);
    int n = std::snprintf(cached, sizeof cached, "%04d-%02d-%02dT%02d:%02d:%02d.",
                          tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                          tm.tm_sec);
    cached_len = n > 0 ? std::min(static_cast<std::size_t>(n), sizeof cached - 1) : 0;
    cached_secs = secs;
  }
  std::memcpy(out, cached, cached_len);
  out += cached_len;
  // The microseconds two digits at a time.
  static constexpr char kPairs[] =
      "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
      "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
      "8081828384858687888990919293949596979899";
  auto u = static_cast<unsigned>(frac);
  std::memcpy(out, kPairs + 2 * (u / 10000), 2);
  std::memcpy(out + 2, kPairs + 2 * (u / 100 % 100), 2);
  std::memcpy(out + 4, kPairs + 2 * (u % 100), 2);
  out[6] = 'Z';
  return out + 7;
}

std::string format_rfc3339(std::chrono::system_clock::time_point t) {
  char buf[kRfc3339MaxBytes];
  return std::string(buf, write_rfc3339(buf, t));
}

std::string describe_event(const Event& event) {
  std::string out = std::to_string(event.signal);
  if (!event.name.empty()) {
    out += " (";
    out += event.name;
    out += ")";
  }
  out += " seq ";
  out += std::to_string(event.seq);
  return out;
}

}  // namespace tocsin
