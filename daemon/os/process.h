// process.h — children run by the daemon, watched through the reactor.
//
// ProcessSupervisor spawns programs (posix_spawnp, no shell) in a process group of their own,
// with the signal mask and dispositions reset, every inherited fd closed but 0/1/2, the given
// data on stdin and stdout/stderr read line by line. Each child is watched with a pidfd in the
// reactor: nothing here ever blocks or calls waitpid synchronously.
//
// When a child's main process exits, whatever is left in its process group is killed (SIGKILL)
// before the child is reaped, so no grandchild outlives the run (as systemd's KillMode=
// control-group does for a service). A timeout kills the whole group. kill_all() does the same for
// every child, for stop.
//
// Reactor thread only. The supervisor must outlive the io_context's pending operations (the
// Daemon owns both and destroys the io_context first).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tocsin/result.h"

namespace boost::asio {
class io_context;
}

namespace tocsin::os {

struct ChildExit {
  int exit_code = -1;    // >= 0 when the process exited normally
  int term_signal = 0;   // the signal that killed it, or 0
  bool timed_out = false;
  bool killed = false;   // killed by kill()/kill_all() (overlap: kill, stop)
  std::chrono::milliseconds runtime{0};
  std::chrono::nanoseconds elapsed{0};  // the same, unrounded (metrics)
  bool success() const { return exit_code == 0 && !timed_out && !killed; }
  // "exit 0", "exit 3", "killed by SIGKILL (timeout 200ms)", ...
  std::string describe() const;
};

struct SpawnRequest {
  std::vector<std::string> argv;                           // argv[0] searched in PATH
  std::vector<std::pair<std::string, std::string>> env;    // added to (and overriding) ours
  std::shared_ptr<const std::string> stdin_data;           // may be null: empty stdin
  std::optional<std::chrono::milliseconds> timeout;
};

class Child;

class ProcessSupervisor {
 public:
  // Called for each line the child writes (without the newline); is_stderr tells the stream.
  using LineFn = std::function<void(pid_t pid, bool is_stderr, std::string_view line)>;
  // Called once, after the child was reaped and its output drained (or after a short grace
  // period if an escaped process keeps its pipes open).
  using ExitFn = std::function<void(pid_t pid, const ChildExit& exit)>;

  explicit ProcessSupervisor(boost::asio::io_context& io);
  ~ProcessSupervisor();
  ProcessSupervisor(const ProcessSupervisor&) = delete;
  ProcessSupervisor& operator=(const ProcessSupervisor&) = delete;

  // Starts the program. An error (program not found, fork failure) is returned at once and no
  // callback is called.
  Result<pid_t> spawn(SpawnRequest request, LineFn on_line, ExitFn on_exit);

  // SIGKILL to the process group of one child / of every live child. The exit callbacks still
  // come, with killed = true.
  void kill(pid_t pid);
  void kill_all();

  std::size_t live() const { return children_.size(); }
  // Called (once per registration) when the last live child has been reported; at once if none.
  void when_idle(std::function<void()> fn);

 private:
  friend class Child;
  void forget(pid_t pid);

  boost::asio::io_context& io_;
  std::unordered_map<pid_t, std::shared_ptr<Child>> children_;
  std::vector<std::function<void()>> idle_waiters_;
};

}  // namespace tocsin::os
