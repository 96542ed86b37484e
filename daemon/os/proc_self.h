// proc_self.h — the daemon's own resource use from /proc/self, for the standard `process_*`
// metrics Prometheus' client libraries export (docs/metrics.md). Each call reads a few small
// /proc files and lists /proc/self/fd; no allocation beyond that. Any thread; nothing is cached.
#pragma once

#include <cstdint>
#include <optional>

namespace tocsin::os {

struct ProcSelf {
  double cpu_seconds = 0;         // user + system
  double start_time_seconds = 0;  // since the Unix epoch
  std::uint64_t resident_bytes = 0;
  std::uint64_t virtual_bytes = 0;
  std::uint64_t open_fds = 0;
  std::optional<std::uint64_t> max_fds;  // RLIMIT_NOFILE's soft limit; none when unlimited
};

// nullopt when /proc/self/stat cannot be read (no /proc mounted).
std::optional<ProcSelf> read_proc_self();

}  // namespace tocsin::os
