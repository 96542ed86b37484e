// tocsin_timers — measures the timer sources end to end against a real tocsind (issue 4):
//
//   tocsin_timers rss    [--count 1000000] [--via socket|yaml]
//       RSS per pending rb_timer: VmRSS of the daemon before and after arming --count rb_timers
//       (every 1h, so none fires), added over the socket in batches or declared in the YAML.
//   tocsin_timers cron-rss [--count 100000]
//       RSS of --count cron jobs declared in the YAML, against the same daemon with none.
//   tocsin_timers jitter [--timers 1000] [--every 10] [--seconds 10] [--kind timer|rb_timer]
//       --timers timers every --every ms for --seconds; for every event: lateness at the raise
//       (the event's late_us, measured by the daemon against the due time) and at this
//       subscriber (receive time minus due time); drift: lateness at iteration 201 minus at
//       iteration 1, per timer (absolute scheduling: any growth would be drift).
//
// It starts its own tocsind (--tocsind, default: next to this binary) on a temp dir and stops
// it with SIGTERM. Results on stdout, one line each; non-zero exit on any failure.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "tocsin/client.h"

extern char** environ;

namespace {

using Json = nlohmann::json;
using tocsin::Client;
using Clock = std::chrono::steady_clock;

[[noreturn]] void die(const std::string& why) {
  std::cerr << "tocsin_timers: " << why << "\n";
  std::exit(1);
}

struct Daemon {
  pid_t pid = -1;
  std::string sock;
  ~Daemon() {
    if (pid > 0) {
      ::kill(pid, SIGTERM);
      ::waitpid(pid, nullptr, 0);
    }
  }
};

void start(Daemon& d, const std::string& tocsind, const std::string& dir, const std::string& yaml) {
  std::string cfg = dir + "/tocsin.yaml";
  std::ofstream(cfg) << yaml;
  d.sock = dir + "/tocsin.sock";
  std::vector<std::string> args{tocsind, "--config", cfg, "--socket", d.sock, "--log-level",
                                "warn"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  if (posix_spawn(&d.pid, tocsind.c_str(), nullptr, nullptr, argv.data(), environ) != 0) {
    die("cannot start " + tocsind);
  }
  auto deadline = Clock::now() + std::chrono::minutes(5);  // a million timers in YAML take a while
  while (Clock::now() < deadline) {
    if (Client::connect(d.sock)) return;
    if (waitpid(d.pid, nullptr, WNOHANG) == d.pid) {
      d.pid = -1;
      die("tocsind exited during start");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling for start-up only
  }
  die("tocsind did not start listening");
}

long rss_kib(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

std::string make_dir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "tocsin-timers-XXXXXX").string();
  if (!mkdtemp(tmpl.data())) die("mkdtemp");
  return tmpl;
}

const char* kSignals = "signals:\n  3: {name: tick, handlers: [{target: subscribers}]}\n";

int run_rss(const std::string& tocsind, long count, const std::string& via) {
  std::string dir = make_dir();
  Daemon d;
  long before_kib = 0;
  long after_kib = 0;
  auto t0 = Clock::now();
  if (via == "yaml") {
    {
      Daemon base;
      start(base, tocsind, make_dir(), kSignals);
      before_kib = rss_kib(base.pid);
    }
    std::string yaml = std::string(kSignals) + "rb_timers:\n";
    for (long i = 0; i < count; ++i) {
      yaml += "  - {signal: 3, every: 1h}\n";
    }
    t0 = Clock::now();
    start(d, tocsind, dir, yaml);
    // The socket listens before the timers are armed: a status reply means start-up is over.
    auto c = Client::connect(d.sock);
    if (!c) die(c.error().message);
    auto s = c->call("status", Json::object(), std::chrono::minutes(5));
    if (!s) die(s.error().message);
    if ((*s)["sources"]["rb_timers"] != count) die("not all timers are armed: " + s->dump());
    after_kib = rss_kib(d.pid);
  } else {
    start(d, tocsind, dir, kSignals);
    before_kib = rss_kib(d.pid);
    auto c = Client::connect(d.sock);
    if (!c) die(c.error().message);
    t0 = Clock::now();
    constexpr long kBatch = 1000;
    for (long i = 0; i < count; i += kBatch) {
      std::vector<std::pair<std::string, Json>> calls;
      for (long k = i; k < std::min(count, i + kBatch); ++k) {
        calls.emplace_back("add_rb_timer", Json{{"signal", 3}, {"every", "1h"}});
      }
      auto r = c->call_batch(calls);
      if (!r) die(r.error().message);
      for (auto& one : *r) {
        if (!one) die("add_rb_timer: " + one.error().message);
      }
    }
    auto s = c->call("status");
    if (!s) die(s.error().message);
    if ((*s)["sources"]["rb_timers"] != count) die("not all timers are armed: " + s->dump());
    after_kib = rss_kib(d.pid);
  }
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  double per = (after_kib - before_kib) * 1024.0 / static_cast<double>(count);
  std::printf("rss via=%s count=%ld before=%ldKiB after=%ldKiB bytes_per_timer=%.1f "
              "arm_seconds=%.2f\n",
              via.c_str(), count, before_kib, after_kib, per, secs);
  std::filesystem::remove_all(dir);
  return 0;
}

// RSS of `count` cron jobs declared in the YAML (a mix of typical expressions and zones), against
// the same daemon with none.
int run_cron_rss(const std::string& tocsind, long count) {
  static const char* kExprs[] = {"*/5 * * * *",     "0 3 * * *",   "30 8 * * mon-fri",
                                 "@hourly",         "0 0 L * *",   "0 9 * * fri#3",
                                 "15,45 */2 * * *", "0 0 1 1 *",   "0 12 * * sun",
                                 "*/10 9-17 * * 1-5"};
  static const char* kZones[] = {"UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo"};
  std::string dir = make_dir();
  long before_kib = 0;
  {
    Daemon base;
    start(base, tocsind, make_dir(), std::string("state_dir: ") + dir + "/state\n" + kSignals);
    before_kib = rss_kib(base.pid);
  }
  std::string yaml = std::string("state_dir: ") + dir + "/state\n" + kSignals + "cron:\n";
  for (long i = 0; i < count; ++i) {
    yaml += std::string("  - {signal: 3, schedule: \"") + kExprs[i % std::size(kExprs)] +
            "\", tz: " + kZones[(i / 10) % std::size(kZones)] + "}\n";
  }
  Daemon d;
  auto t0 = Clock::now();
  start(d, tocsind, dir, yaml);
  auto c = Client::connect(d.sock);
  if (!c) die(c.error().message);
  auto s = c->call("status", Json::object(), std::chrono::minutes(5));
  if (!s) die(s.error().message);
  if ((*s)["sources"]["cron"] != count) die("not all cron jobs are loaded: " + s->dump());
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  long after_kib = rss_kib(d.pid);
  std::printf("cron-rss count=%ld before=%ldKiB after=%ldKiB bytes_per_job=%.1f "
              "start_seconds=%.2f\n",
              count, before_kib, after_kib,
              (after_kib - before_kib) * 1024.0 / static_cast<double>(count), secs);
  std::filesystem::remove_all(dir);
  return 0;
}

std::int64_t parse_time_us(const std::string& t) {
  // 2026-11-22T08:28:38.123456Z
  std::tm tm{};
  int us = 0;
  if (std::sscanf(t.c_str(), "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &us) != 7) {
    die("bad time " + t);
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<std::int64_t>(timegm(&tm)) * 1000000 + us;
}

std::int64_t wall_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double pct(std::vector<std::int64_t>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  auto i = static_cast<std::size_t>(p / 100.0 * static_cast<double>(v.size() - 1));
  return static_cast<double>(v[i]);
}

// A subscriber that reads raw lines and picks fields by position: at 100,000 events/s a full JSON
// parse per event would make the measuring side the bottleneck.
class RawSubscriber {
 public:
  explicit RawSubscriber(const std::string& sock) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, sock.c_str(), sizeof addr.sun_path - 1);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) die("connect");
    std::string req =
        R"({"jsonrpc":"2.0","id":1,"method":"subscribe","params":{"signals":[3]}})" "\n";
    if (::send(fd_, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
      die("send");
    }
    std::string line;
    if (!next(line, 5000) || line.find("\"subscription\"") == std::string::npos) {
      die("subscribe: " + line);
    }
  }
  ~RawSubscriber() { ::close(fd_); }
  bool next(std::string& line, int timeout_ms) {
    while (true) {
      auto nl = buf_.find('\n', pos_);
      if (nl != std::string::npos) {
        line.assign(buf_, pos_, nl - pos_);
        pos_ = nl + 1;
        return true;
      }
      buf_.erase(0, pos_);
      pos_ = 0;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, timeout_ms) <= 0) return false;
      char chunk[1 << 16];
      ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n <= 0) return false;
      buf_.append(chunk, static_cast<std::size_t>(n));
    }
  }

 private:
  int fd_ = -1;
  std::string buf_;
  std::size_t pos_ = 0;
};

// The text after `"key":` in a line (numbers) or inside its quotes (strings).
std::string_view field(std::string_view line, std::string_view key) {
  auto at = line.find(key);
  if (at == std::string_view::npos) return {};
  auto start = at + key.size();
  if (start < line.size() && line[start] == '"') {
    auto end = line.find('"', start + 1);
    return line.substr(start + 1, end - start - 1);
  }
  auto end = line.find_first_of(",}", start);
  return line.substr(start, end - start);
}
std::int64_t number(std::string_view v) {
  std::int64_t out = 0;
  for (char c : v) {
    if (c >= '0' && c <= '9') out = out * 10 + (c - '0');
  }
  return out;
}

int run_jitter(const std::string& tocsind, int timers, int every_ms, int seconds,
               const std::string& kind) {
  std::string dir = make_dir();
  Daemon d;
  start(d, tocsind, dir, kSignals);
  RawSubscriber sub(d.sock);
  auto admin = Client::connect(d.sock);
  if (!admin) die("connect");
  std::uint64_t iterations = static_cast<std::uint64_t>(seconds) * 1000 / every_ms;
  std::vector<std::pair<std::string, Json>> calls;
  for (int i = 0; i < timers; ++i) {
    calls.emplace_back(kind == "timer" ? "add_timer" : "add_rb_timer",
                       Json{{"id", "j" + std::to_string(i)},
                            {"signal", 3},
                            {"every", every_ms},
                            {"iterations", iterations}});
  }
  auto r = admin->call_batch(calls);
  if (!r) die(r.error().message);
  std::vector<std::int64_t> raise_late;
  std::vector<std::int64_t> sub_late;
  // Drift: lateness 200 periods apart, after a warm-up (the first expirations are late by the
  // time it takes to add 1000 timers).
  constexpr std::uint64_t kDriftFrom = 101;
  constexpr std::uint64_t kDriftTo = kDriftFrom + 200;
  std::map<std::string, std::pair<std::int64_t, std::int64_t>> drift;
  std::uint64_t expected = static_cast<std::uint64_t>(timers) * iterations;
  std::uint64_t expirations = 0;
  std::uint64_t overruns = 0;
  raise_late.reserve(expected);
  sub_late.reserve(expected);
  auto deadline = Clock::now() + std::chrono::seconds(seconds * 3 + 30);
  std::string line;
  while (expirations < expected && Clock::now() < deadline) {
    if (!sub.next(line, 1000)) continue;
    std::int64_t now = wall_us();
    std::string_view l(line);
    if (l.find("\"method\":\"overflow\"") != std::string_view::npos) die("overflow: " + line);
    if (l.find("\"method\":\"signal\"") == std::string_view::npos) continue;
    // The payload is JSON inside a JSON string: its quotes arrive escaped.
    std::int64_t late = number(field(l, "\\\"late_us\\\":"));
    std::uint64_t x = static_cast<std::uint64_t>(number(field(l, "\\\"expirations\\\":")));
    expirations += x;
    overruns += x - 1;
    std::int64_t due = parse_time_us(std::string(field(l, "\"time\":"))) - late;
    raise_late.push_back(late);
    sub_late.push_back(now - due);
    auto it = static_cast<std::uint64_t>(number(field(l, "\"iteration\":")));
    if (it == kDriftFrom || it == kDriftTo) {
      auto& dr = drift[std::string(field(l, "\"id\":"))];
      (it == kDriftFrom ? dr.first : dr.second) = late;
    }
  }
  if (expirations != expected) {
    die("expected " + std::to_string(expected) + " expirations, got " +
        std::to_string(expirations));
  }
  std::vector<std::int64_t> drifts;
  for (auto& [id, dr] : drift) drifts.push_back(dr.second - dr.first);
  std::vector<std::int64_t> abs_drift;
  for (auto v : drifts) abs_drift.push_back(std::abs(v));
  std::printf(
      "jitter kind=%s timers=%d every=%dms seconds=%d events=%zu expirations=%llu overruns=%llu\n"
      "  raise lateness us: p50=%.0f p99=%.0f max=%.0f\n"
      "  subscriber lateness us: p50=%.0f p99=%.0f max=%.0f\n"
      "  drift over 200 periods us (|late@301 - late@101|, per timer): p50=%.0f p99=%.0f "
      "max=%.0f\n",
      kind.c_str(), timers, every_ms, seconds, raise_late.size(),
      static_cast<unsigned long long>(expirations), static_cast<unsigned long long>(overruns),
      pct(raise_late, 50), pct(raise_late, 99), pct(raise_late, 100), pct(sub_late, 50),
      pct(sub_late, 99), pct(sub_late, 100), pct(abs_drift, 50), pct(abs_drift, 99),
      pct(abs_drift, 100));
  std::filesystem::remove_all(dir);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tocsin_timers: RSS per rb_timer and timer jitter against a real tocsind"};
  std::string tocsind =
      (std::filesystem::path(argv[0]).parent_path() / "tocsind").string();
  app.add_option("--tocsind", tocsind, "the daemon binary");
  app.require_subcommand(1);
  long count = 1000000;
  std::string via = "socket";
  auto* rss = app.add_subcommand("rss", "RSS per pending rb_timer");
  rss->add_option("--count", count);
  rss->add_option("--via", via)->check(CLI::IsMember({"socket", "yaml"}));
  int timers = 1000, every = 10, seconds = 10;
  std::string kind = "rb_timer";
  auto* jitter = app.add_subcommand("jitter", "lateness and drift of many timers");
  jitter->add_option("--timers", timers);
  jitter->add_option("--every", every, "milliseconds");
  jitter->add_option("--seconds", seconds);
  jitter->add_option("--kind", kind)->check(CLI::IsMember({"timer", "rb_timer"}));
  long cron_count = 100000;
  auto* cron_rss = app.add_subcommand("cron-rss", "RSS of many cron jobs declared in the YAML");
  cron_rss->add_option("--count", cron_count);
  CLI11_PARSE(app, argc, argv);
  ::signal(SIGPIPE, SIG_IGN);
  if (*rss) return run_rss(tocsind, count, via);
  if (*cron_rss) return run_cron_rss(tocsind, cron_count);
  return run_jitter(tocsind, timers, every, seconds, kind);
}
