// DaemonProcess — the real tocsind, started by a test. Its stderr (the log) is collected by a
// reader thread; tests wait for log lines and for the exit with a deadline and fail with a message
// that quotes the log, never by sleeping. The destructor SIGKILLs a daemon still running.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace tocsin::testing {

using Deadline = std::chrono::steady_clock::time_point;
inline Deadline deadline_in(std::chrono::milliseconds d) {
  return std::chrono::steady_clock::now() + d;
}
// Generous enough for the ASan build on a loaded 2-core machine; a test that waits this long has
// failed anyway.
inline constexpr std::chrono::milliseconds kWait{10000};

// Reads `read()` again until `done(value)` holds or `within` has passed; returns the last value
// read, so that the caller's assertion on it fails with what was seen.
template <typename Read, typename Done>
auto poll_until(Read read, Done done, std::chrono::milliseconds within = kWait) {
  auto value = read();
  const Deadline until = deadline_in(within);
  while (!done(value) && std::chrono::steady_clock::now() < until) value = read();
  return value;
}

class DaemonProcess {
 public:
  // Starts TOCSIND_PATH with `args` (e.g. {"--config", path}).
  explicit DaemonProcess(std::vector<std::string> args);
  // Starts `program` (argv[0] included in `argv`) with `env` added to the environment
  // ("NAME=value" each), e.g. tocsind under systemd-socket-activate.
  DaemonProcess(std::vector<std::string> argv, std::vector<std::string> env);
  ~DaemonProcess();
  DaemonProcess(const DaemonProcess&) = delete;
  DaemonProcess& operator=(const DaemonProcess&) = delete;

  pid_t pid() const { return pid_; }

  // The first log line at index >= *from that contains `needle`; *from is moved past it, so
  // successive waits see successive lines. Returns nullopt at the deadline.
  std::optional<std::string> wait_for_line(const std::string& needle, Deadline deadline,
                                           std::size_t* from = nullptr);
  // Same, failing the current test (with the log) at the deadline; returns the line or "".
  std::string expect_line(const std::string& needle, std::size_t* from = nullptr,
                          std::chrono::milliseconds within = kWait);
  // Waits for "ready" in the log.
  void expect_ready();

  void send(int signo, int value = 0);  // sigqueue(3)
  // Exit status as from waitpid (use WIFEXITED...); nullopt at the deadline.
  std::optional<int> wait_exit(Deadline deadline);

  std::string log() const;  // everything logged so far
  int open_fds() const;     // entries in /proc/PID/fd (leak checks)
  // Waits until it holds at most `level` fds (closes are noticed by the reactor in its own time);
  // returns what it holds then, so that `EXPECT_LE(..., level)` fails with the count seen.
  int wait_open_fds_at_most(int level, std::chrono::milliseconds within = kWait) const;
  std::size_t line_count() const;

 private:
  void read_loop(int fd);

  pid_t pid_ = -1;
  int pidfd_ = -1;
  bool reaped_ = false;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> lines_;
  bool eof_ = false;
  std::thread reader_;
};

// True once `pid` no longer runs (gone, or a zombie). Waits with a deadline.
bool wait_process_gone(pid_t pid, Deadline deadline);

}  // namespace tocsin::testing
