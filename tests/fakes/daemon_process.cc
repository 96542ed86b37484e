#include "fakes/daemon_process.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include "os/pidfd.h"
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>

extern char** environ;

namespace tocsin::testing {

DaemonProcess::DaemonProcess(std::vector<std::string> args)
    : DaemonProcess(
          [&] {
            args.insert(args.begin(), TOCSIND_PATH);
            return args;
          }(),
          {}) {}

DaemonProcess::DaemonProcess(std::vector<std::string> argv_s, std::vector<std::string> env) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t empty;
  sigemptyset(&empty);
  posix_spawnattr_setsigmask(&attr, &empty);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  std::vector<char*> envp;
  for (char** e = environ; e && *e; ++e) envp.push_back(*e);
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  int rc = ::posix_spawnp(&pid_, argv[0], &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    throw std::runtime_error("spawn " + argv_s[0] + ": " + std::strerror(rc));
  }
  pidfd_ = os::pidfd_open(pid_);
  reader_ = std::thread([this, fd = fds[0]] { read_loop(fd); });
}

DaemonProcess::~DaemonProcess() {
  if (!reaped_) {
    ::kill(pid_, SIGKILL);
    int status;
    ::waitpid(pid_, &status, 0);
  }
  if (reader_.joinable()) reader_.join();
  if (pidfd_ >= 0) ::close(pidfd_);
}

void DaemonProcess::read_loop(int fd) {
  std::string partial;
  char buf[4096];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    partial.append(buf, static_cast<std::size_t>(n));
    std::size_t start = 0;
    std::size_t nl;
    std::lock_guard lock(mu_);
    while ((nl = partial.find('\n', start)) != std::string::npos) {
      lines_.push_back(partial.substr(start, nl - start));
      start = nl + 1;
    }
    partial.erase(0, start);
    cv_.notify_all();
  }
  ::close(fd);
  std::lock_guard lock(mu_);
  if (!partial.empty()) lines_.push_back(partial);
  eof_ = true;
  cv_.notify_all();
}

std::optional<std::string> DaemonProcess::wait_for_line(const std::string& needle,
                                                        Deadline deadline, std::size_t* from) {
  std::size_t i = from ? *from : 0;
  std::unique_lock lock(mu_);
  while (true) {
    for (; i < lines_.size(); ++i) {
      if (lines_[i].find(needle) != std::string::npos) {
        if (from) *from = i + 1;
        return lines_[i];
      }
    }
    if (eof_) return std::nullopt;
    if (cv_.wait_until(lock, deadline) == std::cv_status::timeout) {
      // One last look at what arrived with the timeout.
      for (; i < lines_.size(); ++i) {
        if (lines_[i].find(needle) != std::string::npos) {
          if (from) *from = i + 1;
          return lines_[i];
        }
      }
      return std::nullopt;
    }
  }
}

std::string DaemonProcess::expect_line(const std::string& needle, std::size_t* from,
                                       std::chrono::milliseconds within) {
  auto line = wait_for_line(needle, deadline_in(within), from);
  if (!line) {
    ADD_FAILURE() << "no log line containing \"" << needle << "\" within " << within.count()
                  << "ms; the daemon's log:\n"
                  << log();
    return "";
  }
  return *line;
}

void DaemonProcess::expect_ready() { expect_line(" ready: "); }

void DaemonProcess::send(int signo, int value) {
  union sigval v;
  v.sival_int = value;
  if (::sigqueue(pid_, signo, v) != 0) {
    ADD_FAILURE() << "sigqueue(" << pid_ << ", " << signo << "): " << std::strerror(errno);
  }
}

std::optional<int> DaemonProcess::wait_exit(Deadline deadline) {
  while (!reaped_) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() < 0) return std::nullopt;
    pollfd p{pidfd_, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left.count()) + 1);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;  // loop re-checks the deadline
    int status = 0;
    if (::waitpid(pid_, &status, 0) == pid_) {
      reaped_ = true;
      return status;
    }
  }
  return std::nullopt;
}

std::string DaemonProcess::log() const {
  std::lock_guard lock(mu_);
  std::string out;
  for (const auto& l : lines_) out += "  | " + l + "\n";
  return out;
}

std::size_t DaemonProcess::line_count() const {
  std::lock_guard lock(mu_);
  return lines_.size();
}

namespace {
bool process_gone(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return true;
  std::string content((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  auto close_paren = content.rfind(')');
  if (close_paren == std::string::npos || close_paren + 2 >= content.size()) return true;
  char state = content[close_paren + 2];
  return state == 'Z' || state == 'X';
}
}  // namespace

bool wait_process_gone(pid_t pid, Deadline deadline) {
  // A pidfd on a process we are not the parent of still becomes readable when it exits.
  int fd = os::pidfd_open(pid);
  if (fd < 0) return true;  // ESRCH: already gone
  bool gone = process_gone(pid);
  while (!gone) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() < 0) break;
    pollfd p{fd, POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(left.count()) + 1);
    gone = process_gone(pid) || (p.revents & POLLIN);
  }
  ::close(fd);
  return gone;
}

int DaemonProcess::open_fds() const {
  int n = 0;
  if (DIR* d = ::opendir(("/proc/" + std::to_string(pid_) + "/fd").c_str())) {
    while (::readdir(d)) ++n;
    ::closedir(d);
  }
  return n;
}

int DaemonProcess::wait_open_fds_at_most(int level, std::chrono::milliseconds within) const {
  return poll_until([&] { return open_fds(); }, [&](int n) { return n <= level; }, within);
}

}  // namespace tocsin::testing
