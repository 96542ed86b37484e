#include "os/proc_self.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

namespace tocsin::os {

namespace {

std::string read_small_file(const char* path) {
  std::string out;
  if (FILE* f = std::fopen(path, "re")) {
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
    std::fclose(f);
  }
  return out;
}

// The system's boot time (`btime` of /proc/stat), seconds since the epoch.
std::optional<double> boot_time() {
  static const std::optional<double> cached = []() -> std::optional<double> {
    std::string stat = read_small_file("/proc/stat");
    auto at = stat.find("\nbtime ");
    if (at == std::string::npos) return std::nullopt;
    return std::strtod(stat.c_str() + at + 7, nullptr);
  }();
  return cached;
}

}  // namespace

std::optional<ProcSelf> read_proc_self() {
  std::string stat = read_small_file("/proc/self/stat");
  // The command name (field 2) is in parentheses and may hold anything: read after the last ')'.
  auto close = stat.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  // Fields from 3 (state) on, space-separated.
  const char* p = stat.c_str() + close + 2;
  unsigned long long fields[50] = {};
  int n = 0;
  while (*p && n < 50) {
    if (n == 0) {  // the state letter
      ++p;
    } else {
      char* end = nullptr;
      fields[n] = std::strtoull(p, &end, 10);
      if (end == p) break;
      p = end;
    }
    while (*p == ' ') ++p;
    ++n;
  }
  // fields[k] is stat field k + 3: utime 14, stime 15, starttime 22, vsize 23, rss 24.
  if (n < 22) return std::nullopt;
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  const long page = ::sysconf(_SC_PAGESIZE);
  ProcSelf out;
  out.cpu_seconds = static_cast<double>(fields[11] + fields[12]) / ticks;
  if (auto boot = boot_time())
    out.start_time_seconds = *boot + static_cast<double>(fields[19]) / ticks;
  out.virtual_bytes = fields[20];
  out.resident_bytes = fields[21] * static_cast<unsigned long long>(page);
  if (DIR* d = ::opendir("/proc/self/fd")) {
    std::uint64_t count = 0;
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] != '.') ++count;
    }
    ::closedir(d);
    out.open_fds = count > 0 ? count - 1 : 0;  // not the directory's own fd
  }
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
    out.max_fds = rl.rlim_cur;
  return out;
}

}  // namespace tocsin::os
