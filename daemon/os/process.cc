#include "os/process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include "os/pidfd.h"
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <cstring>

#include "os/unique_fd.h"

extern char** environ;

namespace tocsin::os {

namespace asio = boost::asio;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

namespace {

// A line longer than this is passed on in pieces, so a child that never writes a newline cannot
// make the daemon buffer without bound.
constexpr std::size_t kMaxLine = 8192;
// How long after the main process was reaped we wait for its pipes to close before reporting the
// exit anyway (a process that left the group with setsid may hold them open).
constexpr milliseconds kDrainGrace{200};

std::string errno_text(const char* what, int err) {
  return std::string(what) + ": " + std::strerror(err);
}

Result<std::pair<UniqueFd, UniqueFd>> make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return Error{errno_text("pipe2", errno)};
  return std::pair{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

std::vector<std::string> build_env(const std::vector<std::pair<std::string, std::string>>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string_view entry(*e);
    bool overridden = false;
    for (const auto& [key, value] : extra) {
      if (entry.size() > key.size() && entry.starts_with(key) && entry[key.size()] == '=') {
        overridden = true;
        break;
      }
    }
    if (!overridden) env.emplace_back(entry);
  }
  for (const auto& [key, value] : extra) env.push_back(key + "=" + value);
  return env;
}

const char* signal_name(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return abbrev ? abbrev : "?";
}

}  // namespace

std::string ChildExit::describe() const {
  std::string out;
  if (term_signal != 0) {
    out = std::string("killed by SIG") + signal_name(term_signal);
  } else {
    out = "exit " + std::to_string(exit_code);
  }
  if (timed_out) out += " (timed out)";
  if (killed) out += " (killed)";
  return out;
}

// One running child. Kept alive by the supervisor's map and by its own pending operations.
class Child : public std::enable_shared_from_this<Child> {
 public:
  Child(ProcessSupervisor& owner, asio::io_context& io, pid_t pid, UniqueFd pidfd, UniqueFd in,
        UniqueFd out, UniqueFd err, ProcessSupervisor::LineFn on_line,
        ProcessSupervisor::ExitFn on_exit)
      : owner_(owner),
        pid_(pid),
        pidfd_(io, pidfd.release()),
        stdin_(io, in.release()),
        stdout_(io, out.release()),
        stderr_(io, err.release()),
        timer_(io),
        grace_(io),
        on_line_(std::move(on_line)),
        on_exit_(std::move(on_exit)),
        started_(steady_clock::now()) {}

  void start(std::shared_ptr<const std::string> data, std::optional<milliseconds> timeout) {
    auto self = shared_from_this();
    if (data && !data->empty()) {
      stdin_data_ = std::move(data);
      asio::async_write(stdin_, asio::buffer(*stdin_data_),
                        [self](boost::system::error_code, std::size_t) {
                          // EPIPE (a child that does not read stdin) is not an error.
                          boost::system::error_code ignored;
                          self->stdin_.close(ignored);
                        });
    } else {
      boost::system::error_code ignored;
      stdin_.close(ignored);
    }
    read_output(false);
    read_output(true);
    if (timeout) {
      timer_.expires_after(*timeout);
      timer_.async_wait([self](boost::system::error_code ec) {
        if (ec || self->reaped_) return;
        self->exit_.timed_out = true;
        self->kill_group();
      });
    }
    pidfd_.async_wait(asio::posix::descriptor_base::wait_read,
                      [self](boost::system::error_code ec) {
                        if (!ec) self->on_process_exit();
                      });
  }

  void kill() {
    if (reaped_) return;
    exit_.killed = true;
    kill_group();
  }

 private:
  void kill_group() {
    // The leader is not reaped yet (we reap only after this point), so its pid still names
    // this process group and cannot have been reused.
    ::kill(-pid_, SIGKILL);
  }

  void read_output(bool is_stderr) {
    auto self = shared_from_this();
    auto& stream = is_stderr ? stderr_ : stdout_;
    auto& buf = is_stderr ? err_buf_ : out_buf_;
    stream.async_read_some(
        asio::buffer(is_stderr ? err_chunk_ : out_chunk_),
        [self, is_stderr, &buf](boost::system::error_code ec, std::size_t n) {
          const char* chunk = is_stderr ? self->err_chunk_ : self->out_chunk_;
          if (n > 0) {
            buf.append(chunk, n);
            self->emit_lines(buf, is_stderr, false);
          }
          if (ec) {
            self->emit_lines(buf, is_stderr, true);
            (is_stderr ? self->err_eof_ : self->out_eof_) = true;
            self->maybe_finish();
            return;
          }
          self->read_output(is_stderr);
        });
  }

  void emit_lines(std::string& buf, bool is_stderr, bool at_eof) {
    std::size_t start = 0;
    while (true) {
      auto nl = buf.find('\n', start);
      if (nl == std::string::npos) {
        if (buf.size() - start >= kMaxLine || (at_eof && start < buf.size())) {
          on_line_(pid_, is_stderr, std::string_view(buf).substr(start));
          start = buf.size();
        }
        break;
      }
      on_line_(pid_, is_stderr, std::string_view(buf).substr(start, nl - start));
      start = nl + 1;
    }
    buf.erase(0, start);
  }

  void on_process_exit() {
    // Kill what is left of the group before reaping (see kill_group), then reap without waiting.
    kill_group();
    siginfo_t info{};
    if (::waitid(P_PIDFD, static_cast<id_t>(pidfd_.native_handle()), &info, WEXITED) != 0) {
      info.si_code = 0;
    }
    reaped_ = true;
    exit_.elapsed = steady_clock::now() - started_;
    exit_.runtime = std::chrono::duration_cast<milliseconds>(exit_.elapsed);
    if (info.si_code == CLD_EXITED) {
      exit_.exit_code = info.si_status;
    } else if (info.si_code == CLD_KILLED || info.si_code == CLD_DUMPED) {
      exit_.term_signal = info.si_status;
    }
    boost::system::error_code ignored;
    timer_.cancel();
    pidfd_.close(ignored);
    auto self = shared_from_this();
    grace_.expires_after(kDrainGrace);
    grace_.async_wait([self](boost::system::error_code ec) {
      if (ec) return;
      self->finish();
    });
    maybe_finish();
  }

  void maybe_finish() {
    if (reaped_ && out_eof_ && err_eof_) finish();
  }

  void finish() {
    if (finished_) return;
    finished_ = true;
    grace_.cancel();
    // Output after this point (an escaped process) is still logged until EOF; the descriptors
    // close when the last pending read completes.
    // Report first, then forget: the supervisor's idle waiters (stop) must see the report done.
    auto keep = shared_from_this();
    if (on_exit_) on_exit_(pid_, exit_);
    owner_.forget(pid_);
  }

  ProcessSupervisor& owner_;
  pid_t pid_;
  asio::posix::stream_descriptor pidfd_;
  asio::posix::stream_descriptor stdin_;
  asio::posix::stream_descriptor stdout_;
  asio::posix::stream_descriptor stderr_;
  asio::steady_timer timer_;
  asio::steady_timer grace_;
  ProcessSupervisor::LineFn on_line_;
  ProcessSupervisor::ExitFn on_exit_;
  steady_clock::time_point started_;
  std::shared_ptr<const std::string> stdin_data_;
  char out_chunk_[4096];
  char err_chunk_[4096];
  std::string out_buf_;
  std::string err_buf_;
  ChildExit exit_;
  bool reaped_ = false;
  bool out_eof_ = false;
  bool err_eof_ = false;
  bool finished_ = false;

  friend class ProcessSupervisor;
};

ProcessSupervisor::ProcessSupervisor(asio::io_context& io) : io_(io) {}

ProcessSupervisor::~ProcessSupervisor() {
  // Last resort: never leave a child behind, even when stop() was skipped.
  for (auto& [pid, child] : children_) {
    if (!child->reaped_) ::kill(-pid, SIGKILL);
  }
}

Result<pid_t> ProcessSupervisor::spawn(SpawnRequest request, LineFn on_line, ExitFn on_exit) {
  if (request.argv.empty()) return Error{"empty argv"};
  auto in = make_pipe();
  if (!in) return in.error();
  auto out = make_pipe();
  if (!out) return out.error();
  auto err = make_pipe();
  if (!err) return err.error();

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in->first.get(), 0);
  posix_spawn_file_actions_adddup2(&actions, out->second.get(), 1);
  posix_spawn_file_actions_adddup2(&actions, err->second.get(), 2);
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);

  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t empty;
  sigset_t all;
  sigemptyset(&empty);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &empty);   // the daemon blocks signals for signalfd
  posix_spawnattr_setsigdefault(&attr, &all);  // and ignores SIGPIPE: children get defaults
  posix_spawnattr_setpgroup(&attr, 0);         // own process group, so a timeout kills it all
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  std::vector<std::string> env = build_env(request.env);
  std::vector<char*> envp;
  envp.reserve(env.size() + 1);
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<char*> argv;
  argv.reserve(request.argv.size() + 1);
  for (auto& a : request.argv) argv.push_back(a.data());
  argv.push_back(nullptr);

  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, argv[0], &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return Error{errno_text(request.argv[0].c_str(), rc)};

  UniqueFd pidfd(pidfd_open(pid));
  if (!pidfd) {
    // Cannot happen for our own unreaped child short of fd exhaustion; do not leak it.
    int e = errno;
    ::kill(-pid, SIGKILL);
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);  // it was just SIGKILLed: returns at once
    return Error{errno_text("pidfd_open", e)};
  }
  // The child's ends are closed in the parent so that EOF arrives when the child exits.
  in->first.reset();
  out->second.reset();
  err->second.reset();

  auto child = std::make_shared<Child>(*this, io_, pid, std::move(pidfd), std::move(in->second),
                                       std::move(out->first), std::move(err->first),
                                       std::move(on_line), std::move(on_exit));
  children_.emplace(pid, child);
  child->start(std::move(request.stdin_data), request.timeout);
  return pid;
}

void ProcessSupervisor::kill(pid_t pid) {
  auto it = children_.find(pid);
  if (it != children_.end()) it->second->kill();
}

void ProcessSupervisor::kill_all() {
  // Copy: kill() does not erase, but be safe against callbacks that spawn or forget.
  std::vector<std::shared_ptr<Child>> all;
  all.reserve(children_.size());
  for (auto& [pid, child] : children_) all.push_back(child);
  for (auto& child : all) child->kill();
}

void ProcessSupervisor::forget(pid_t pid) {
  children_.erase(pid);
  if (children_.empty() && !idle_waiters_.empty()) {
    auto waiters = std::move(idle_waiters_);
    idle_waiters_.clear();
    for (auto& fn : waiters) fn();
  }
}

void ProcessSupervisor::when_idle(std::function<void()> fn) {
  if (children_.empty()) {
    fn();
    return;
  }
  idle_waiters_.push_back(std::move(fn));
}

}  // namespace tocsin::os
