#include "os/systemd.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace tocsin::os::systemd {

bool notify(const std::string& state) { return sd_notify(0, state.c_str()) > 0; }

std::string reloading_message() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);  // the protocol asks for this clock, not the Clock seam's
  long long usec = static_cast<long long>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
  return "RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec);
}

std::optional<std::chrono::microseconds> watchdog_ping_interval() {
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return std::nullopt;
  return std::chrono::microseconds(usec / 2);
}

std::optional<int> activated_socket(const std::string& name) {
  char** names = nullptr;
  int n = sd_listen_fds_with_names(1, &names);
  if (n <= 0) return std::nullopt;
  std::optional<int> chosen;
  for (int i = 0; i < n; ++i) {
    int fd = SD_LISTEN_FDS_START + i;
    bool named = names && names[i] && name == names[i];
    if (named || (n == 1 && sd_is_socket_unix(fd, SOCK_STREAM, 1, nullptr, 0) > 0)) {
      chosen = fd;
    }
  }
  for (int i = 0; i < n; ++i) {
    int fd = SD_LISTEN_FDS_START + i;
    if (chosen && fd == *chosen) {
      fcntl(fd, F_SETFD, FD_CLOEXEC);
    } else {
      close(fd);  // not ours: do not leak it into exec handlers
    }
    if (names) free(names[i]);
  }
  free(names);
  return chosen;
}

bool stderr_is_journal() {
  const char* env = std::getenv("JOURNAL_STREAM");
  if (!env) return false;
  unsigned long long dev = 0;
  unsigned long long ino = 0;
  if (std::sscanf(env, "%llu:%llu", &dev, &ino) != 2) return false;
  struct stat st {};
  if (fstat(STDERR_FILENO, &st) != 0) return false;
  return static_cast<unsigned long long>(st.st_dev) == dev &&
         static_cast<unsigned long long>(st.st_ino) == ino;
}

}  // namespace tocsin::os::systemd
