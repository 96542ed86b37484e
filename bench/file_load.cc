// tocsin_fileload — file monitors measured end to end against a real tocsind (issue 5), with
// `inotifywait -m` (inotify-tools) measured in the same run as the baseline:
//
//   tocsin_fileload latency [--writes 500] [--every 5]
//       --writes files written (open, write 1 byte, close) --every ms apart in a watched
//       directory; latency from close(2) returning to the subscriber reading the event that
//       reports close_write for that path. p50/p99/max. tocsind with `settle: 0`; inotifywait
//       with `-e close_write --format %w%f`.
//   tocsin_fileload burst [--files 20000]
//       --files files created as fast as possible (open O_CREAT, close); the time until every
//       path was reported, how many events carried them and whether an overflow was reported.
//       For inotifywait: how many of the paths it printed (it has no overflow accounting), after
//       2 s without output.
//
// It starts its own tocsind (--tocsind, default: next to this binary) on a temp dir and stops it
// with SIGTERM. Results on stdout, one line each; non-zero exit on any failure.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

extern char** environ;

namespace {

using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

[[noreturn]] void die(const std::string& why) {
  std::cerr << "tocsin_fileload: " << why << "\n";
  std::exit(1);
}

std::string make_dir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "tocsin-fileload-XXXXXX").string();
  if (!mkdtemp(tmpl.data())) die("mkdtemp");
  return tmpl;
}

pid_t spawn(const std::vector<std::string>& args, int out_fd, int err_fd) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  if (out_fd >= 0) posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
  if (err_fd >= 0) posix_spawn_file_actions_adddup2(&fa, err_fd, 2);
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, args[0].c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) die("cannot start " + args[0] + ": " + std::strerror(rc));
  return pid;
}

struct Child {
  pid_t pid = -1;
  ~Child() { stop(); }
  void stop() {
    if (pid > 0) {
      ::kill(pid, SIGTERM);
      ::waitpid(pid, nullptr, 0);
      pid = -1;
    }
  }
};

// Reads lines from an fd in its own thread; each line is given with the time it was read.
class LineReader {
 public:
  using OnLine = std::function<void(const std::string&, Clock::time_point)>;
  LineReader(int fd, OnLine on_line) : fd_(fd), on_line_(std::move(on_line)) {
    thread_ = std::thread([this] { loop(); });
  }
  ~LineReader() {
    stop_ = true;
    thread_.join();
  }

 private:
  void loop() {
    std::string buf;
    char chunk[1 << 16];
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      ssize_t n = ::read(fd_, chunk, sizeof chunk);
      if (n <= 0) return;
      auto now = Clock::now();
      buf.append(chunk, static_cast<std::size_t>(n));
      std::size_t start = 0, nl;
      while ((nl = buf.find('\n', start)) != std::string::npos) {
        on_line_(buf.substr(start, nl - start), now);
        start = nl + 1;
      }
      buf.erase(0, start);
    }
  }
  int fd_;
  OnLine on_line_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// What a subscriber saw: the first time each path was reported (with close_write only, if
// asked), events, overflow.
struct Seen {
  std::mutex mu;
  std::condition_variable cv;
  std::unordered_map<std::string, Clock::time_point> first;
  std::uint64_t events = 0;
  bool overflow = false;
  Clock::time_point last_line{};

  void add(const std::string& path, Clock::time_point t) {
    first.try_emplace(path, t);
  }
  // Waits until `n` paths are in, or `quiet` passed without any new line, or `limit`.
  std::size_t wait_for(std::size_t n, std::chrono::milliseconds quiet, Clock::duration limit) {
    std::unique_lock lock(mu);
    auto end = Clock::now() + limit;
    while (first.size() < n && Clock::now() < end) {
      cv.wait_for(lock, 50ms);
      if (last_line != Clock::time_point{} && Clock::now() - last_line > quiet) break;
    }
    return first.size();
  }
};

// ---- tocsind ---------------------------------------------------------------------------------------

struct Tocsind {
  Child child;
  int sock = -1;
  std::unique_ptr<LineReader> reader;
  ~Tocsind() {
    reader.reset();
    if (sock >= 0) ::close(sock);
  }
};

int connect_to(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Starts tocsind watching `watched` (settle 0) and subscribes; `close_write_only` records a path
// only from a change that has close_write.
void start_tocsind(Tocsind& t, const std::string& tocsind, const std::string& dir,
                   const std::string& watched, Seen& seen, bool close_write_only) {
  std::string cfg = dir + "/tocsin.yaml";
  std::ofstream(cfg) << "signals:\n  17: {name: changed, handlers: [{target: subscribers}]}\n"
                        "limits: {subscriber_queue: 1000000}\n"
                        "file_monitors: [{id: bench, signal: changed, settle: 0ms, path: "
                     << watched << "}]\n";
  std::string sock = dir + "/tocsin.sock";
  t.child.pid = spawn({tocsind, "--config", cfg, "--socket", sock, "--log-level", "warn"}, -1, -1);
  auto deadline = Clock::now() + 30s;
  while ((t.sock = connect_to(sock)) < 0) {
    if (Clock::now() > deadline) die("tocsind did not start listening");
    std::this_thread::sleep_for(10ms);  // start-up polling only
  }
  std::string req = R"({"jsonrpc":"2.0","id":1,"method":"subscribe","params":{"signals":[17]}})"
                    "\n";
  if (::write(t.sock, req.data(), req.size()) != static_cast<ssize_t>(req.size())) die("write");
  std::string line;
  char c;
  while (::read(t.sock, &c, 1) == 1 && c != '\n') line += c;
  if (line.find("\"result\"") == std::string::npos) die("subscribe: " + line);
  t.reader = std::make_unique<LineReader>(
      t.sock, [&seen, close_write_only](const std::string& l, Clock::time_point now) {
        Json j = Json::parse(l, nullptr, false);
        if (j.is_discarded() || j.value("method", "") != "signal") return;
        Json payload = Json::parse(j["params"]["payload"].get<std::string>());
        std::lock_guard lock(seen.mu);
        ++seen.events;
        seen.last_line = now;
        if (payload["overflow"] == true) seen.overflow = true;
        for (const auto& ch : payload["changes"]) {
          bool cw = std::find(ch["events"].begin(), ch["events"].end(), "close_write") !=
                    ch["events"].end();
          if (!close_write_only || cw) seen.add(ch["path"], now);
        }
        seen.cv.notify_all();
      });
}

// ---- inotifywait -----------------------------------------------------------------------------------

struct Inotifywait {
  Child child;
  int out = -1;
  std::unique_ptr<LineReader> reader;
  ~Inotifywait() {
    child.stop();
    reader.reset();
    if (out >= 0) ::close(out);
  }
};

void start_inotifywait(Inotifywait& w, const std::string& program, const std::string& watched,
                       const std::string& events, Seen& seen) {
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) die("pipe2");
  w.child.pid = spawn({program, "-m", "-e", events, "--format", "%w%f", watched}, out[1], err[1]);
  ::close(out[1]);
  ::close(err[1]);
  w.out = out[0];
  // It says "Watches established." on stderr once it listens.
  std::string text;
  char buf[256];
  auto deadline = Clock::now() + 10s;
  while (text.find("Watches established") == std::string::npos) {
    pollfd p{err[0], POLLIN, 0};
    if (Clock::now() > deadline || ::poll(&p, 1, 100) < 0) die("inotifywait did not start");
    if (p.revents) {
      ssize_t n = ::read(err[0], buf, sizeof buf);
      if (n <= 0) die("inotifywait: " + text);
      text.append(buf, static_cast<std::size_t>(n));
    }
  }
  ::close(err[0]);
  w.reader = std::make_unique<LineReader>(w.out, [&seen](const std::string& l, Clock::time_point now) {
    std::lock_guard lock(seen.mu);
    ++seen.events;
    seen.last_line = now;
    seen.add(l, now);
    seen.cv.notify_all();
  });
}

// ---- the measurements ------------------------------------------------------------------------------

void write_one(const std::string& path) {
  int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) die("open " + path);
  if (::write(fd, "x", 1) != 1) die("write " + path);
  ::close(fd);
}

std::string us(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.0fus", v);
  return b;
}

// Writes, then reports latency percentiles for what `seen` got.
void latency_run(const char* who, const std::string& watched, Seen& seen, int writes,
                 int every_ms) {
  std::vector<std::string> paths;
  std::vector<Clock::time_point> closed;
  auto start = Clock::now();
  for (int i = 0; i < writes; ++i) {
    paths.push_back(watched + "/f" + std::to_string(i));
    write_one(paths.back());
    closed.push_back(Clock::now());
    std::this_thread::sleep_until(start + std::chrono::milliseconds(every_ms) * (i + 1));
  }
  std::size_t got = seen.wait_for(paths.size(), 5s, 30s);
  std::vector<double> lat;
  std::lock_guard lock(seen.mu);
  for (std::size_t i = 0; i < paths.size(); ++i) {
    auto it = seen.first.find(paths[i]);
    if (it == seen.first.end()) continue;
    lat.push_back(std::max(0.0, std::chrono::duration<double, std::micro>(it->second - closed[i])
                                    .count()));
  }
  std::sort(lat.begin(), lat.end());
  auto pct = [&](double q) {
    return lat.empty() ? 0.0 : lat[std::min(lat.size() - 1, static_cast<std::size_t>(q * lat.size()))];
  };
  std::printf("latency %-11s writes=%d every=%dms reported=%zu/%d p50=%s p99=%s max=%s\n", who,
              writes, every_ms, got, writes, us(pct(0.50)).c_str(), us(pct(0.99)).c_str(),
              us(lat.empty() ? 0 : lat.back()).c_str());
}

void burst_run(const char* who, const std::string& watched, Seen& seen, int files,
               bool has_overflow_accounting) {
  std::vector<std::string> paths;
  for (int i = 0; i < files; ++i) paths.push_back(watched + "/b" + std::to_string(i));
  auto t0 = Clock::now();
  for (const auto& p : paths) {
    int fd = ::open(p.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0) die("open " + p);
    ::close(fd);
  }
  auto created = Clock::now();
  std::size_t got = seen.wait_for(paths.size(), 2s, 60s);
  auto done = Clock::now();
  std::lock_guard lock(seen.mu);
  std::size_t reported = 0;
  for (const auto& p : paths) reported += seen.first.contains(p) ? 1 : 0;
  (void)got;
  std::printf(
      "burst   %-11s files=%d create_ms=%.0f reported=%zu/%d (%s) lines_or_events=%llu "
      "overflow_reported=%s all_in_ms=%s\n",
      who, files, std::chrono::duration<double, std::milli>(created - t0).count(), reported, files,
      reported == static_cast<std::size_t>(files) ? "complete" : "INCOMPLETE",
      static_cast<unsigned long long>(seen.events),
      has_overflow_accounting ? (seen.overflow ? "yes" : "no") : "n/a",
      reported == static_cast<std::size_t>(files)
          ? std::to_string(static_cast<long>(
                std::chrono::duration<double, std::milli>(
                    std::max(seen.last_line, created) - t0).count())).c_str()
          : "-");
  (void)done;
}

std::string default_tocsind(const char* argv0) {
  auto p = std::filesystem::absolute(argv0).parent_path() / "tocsind";
  return p.string();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tocsin_fileload: file monitor latency and bursts, with inotifywait as baseline"};
  app.require_subcommand(1);
  std::string tocsind = default_tocsind(argv[0]);
  std::string inotifywait = "/usr/bin/inotifywait";
  app.add_option("--tocsind", tocsind, "the tocsind binary");
  app.add_option("--inotifywait", inotifywait, "the baseline (inotify-tools)");
  int writes = 500, every = 5, files = 20000;
  auto* latency = app.add_subcommand("latency", "write-to-subscriber latency");
  latency->add_option("--writes", writes);
  latency->add_option("--every", every, "ms between writes");
  auto* burst = app.add_subcommand("burst", "a burst of new files, all accounted for?");
  burst->add_option("--files", files);
  CLI11_PARSE(app, argc, argv);
  bool baseline = std::filesystem::exists(inotifywait);
  if (!baseline) std::printf("(no %s: baseline skipped)\n", inotifywait.c_str());

  // One run against a fresh watched directory, with tocsind or inotifywait feeding `seen`.
  auto with_tocsind = [&](bool close_write_only, auto body) {
    std::string dir = make_dir(), watched = dir + "/w";
    std::filesystem::create_directories(watched);
    Seen seen;
    Tocsind t;
    start_tocsind(t, tocsind, dir, watched, seen, close_write_only);
    body(watched, seen);
    t.child.stop();
    std::filesystem::remove_all(dir);
  };
  auto with_inotifywait = [&](const char* events, auto body) {
    if (!baseline) return;
    std::string dir = make_dir(), watched = dir + "/w";
    std::filesystem::create_directories(watched);
    Seen seen;
    Inotifywait w;
    start_inotifywait(w, inotifywait, watched, events, seen);
    body(watched, seen);
    std::filesystem::remove_all(dir);
  };
  if (*latency) {
    with_tocsind(true, [&](const std::string& watched, Seen& seen) {
      latency_run("tocsind", watched, seen, writes, every);
    });
    with_inotifywait("close_write", [&](const std::string& watched, Seen& seen) {
      latency_run("inotifywait", watched, seen, writes, every);
    });
  }
  if (*burst) {
    with_tocsind(false, [&](const std::string& watched, Seen& seen) {
      burst_run("tocsind", watched, seen, files, true);
    });
    with_inotifywait("create,close_write", [&](const std::string& watched, Seen& seen) {
      burst_run("inotifywait", watched, seen, files, false);
    });
  }
  return 0;
}
