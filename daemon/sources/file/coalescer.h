// coalescer.h — the batching of a file monitor's changes (`settle`, `max_delay`; SPEC §3,
// docs/file-monitors.md), driven by the time it is given: no clock reads, no I/O.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace tocsin::fs {

using SteadyTime = std::chrono::steady_clock::time_point;
using Millis = std::chrono::milliseconds;

struct Change {
  std::string path;
  std::uint32_t events = 0;  // config::FileEvent bits
};

struct Batch {
  std::vector<Change> changes;  // in the order paths first changed
  bool overflow = false;        // the batch includes a rescan after an inotify queue overflow
};

// Collects the changes of one monitor until they are due: with `settle` 0 at once (the end of the
// read that brought them), else when nothing changed for `settle`, and never later than
// `max_delay` after the first change of the batch.
class Coalescer {
 public:
  Coalescer(Millis settle, std::optional<Millis> max_delay)
      : settle_(settle), max_delay_(max_delay) {}
  void add(std::string_view path, std::uint32_t events, SteadyTime now);
  void mark_overflow(SteadyTime now);
  bool pending() const { return first_.has_value(); }
  // When the pending batch should be raised; nullopt when nothing is pending.
  std::optional<SteadyTime> due() const;
  Batch take();
  std::size_t size() const { return changes_.size(); }

 private:
  void touch(SteadyTime now);
  Millis settle_;
  std::optional<Millis> max_delay_;
  std::vector<Change> changes_;
  std::unordered_map<std::string, std::size_t> index_;
  bool overflow_ = false;
  std::optional<SteadyTime> first_;
  SteadyTime last_{};
};

}  // namespace tocsin::fs
