// tocsin_pgload — NOTIFY to subscriber through tocsind's pgnotify plugin, against a raw libpq
// listener on the same channel in the same run (issue 7; docs/BENCHMARKS.md).
//
//   tocsin_pgload latency    [--count 2000] [--interval-us 1000]
//       one NOTIFY at a time, each carrying its send time; latency to the raw listener and to a
//       tocsind subscriber (both in this process, one clock): p50, p99, max.
//   tocsin_pgload throughput [--count 100000] [--batch 1000] [--in-turn [--rounds 1]]
//       NOTIFYs in transactions of --batch (delivered in bursts at each commit); the rate each
//       receiver reaches, from the first send to its last receipt. Both receivers listen to the
//       same NOTIFYs at once; or, with --in-turn, each on a channel of its own and --rounds
//       times --count for each, taking turns (which goes first alternates), medians reported:
//       each rate is then what that receiver reaches with the machine to itself (where there are
//       fewer cores than processes in the pipeline, receivers at work at once take CPU from each
//       other, and the ratio measures the machine's sharing as much as the receivers).
//
// It starts its own throwaway PostgreSQL (as tests/fakes/pg_cluster.h does) and its own tocsind
// (--tocsind, default next to this binary; the plugin from ./plugins).
#include <libpq-fe.h>
#include <signal.h>
#include <spawn.h>
#include <poll.h>
#include <pthread.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include "fakes/pg_cluster.h"
#include "tocsin/client.h"

extern char** environ;

namespace {

using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// The throwaway server and the daemon: stopped on every way out, die() included (exit runs no
// destructors).
std::unique_ptr<tocsin::testing::PgCluster> g_pg;
pid_t g_tocsind = -1;

[[noreturn]] void die(const std::string& why) {
  std::cerr << "tocsin_pgload: " << why << "\n";
  if (g_tocsind > 0) ::kill(g_tocsind, SIGTERM);
  g_pg.reset();
  std::exit(1);
}

// The CPU time of a thread of this process, read from any thread.
std::int64_t thread_cpu_ns(std::thread& t) {
  clockid_t id{};
  if (::pthread_getcpuclockid(t.native_handle(), &id) != 0) return 0;
  timespec ts{};
  ::clock_gettime(id, &ts);
  return ts.tv_sec * 1'000'000'000LL + ts.tv_nsec;
}

// utime + stime of a live process (clock ticks), in nanoseconds.
std::int64_t process_cpu_ns(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(f)), {});
  std::istringstream rest(stat.substr(stat.rfind(')') + 2));  // after "pid (comm) "
  std::string field;
  long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoll(field);
    if (i == 15) stime = std::stoll(field);
  }
  return (utime + stime) * (1'000'000'000LL / ::sysconf(_SC_CLK_TCK));
}

std::int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(Clock::now().time_since_epoch())
      .count();
}

struct Received {
  std::mutex mu;
  std::vector<std::pair<std::int64_t, std::string>> items;  // (receive time, payload)
  std::atomic<std::size_t> count{0};
  void add(std::string payload) {
    std::int64_t t = now_us();
    std::lock_guard lock(mu);
    items.emplace_back(t, std::move(payload));
    count = items.size();
  }
  void clear() {
    std::lock_guard lock(mu);
    items.clear();
    count = 0;
  }
};

void raw_listener(const std::string& conninfo, const std::string& channel, Received& out,
                  std::atomic<bool>& ready, std::atomic<bool>& stop) {
  PGconn* c = PQconnectdb(conninfo.c_str());
  if (PQstatus(c) != CONNECTION_OK) die(std::string("raw listener: ") + PQerrorMessage(c));
  PQclear(PQexec(c, ("LISTEN " + channel).c_str()));
  ready = true;
  while (!stop) {
    fd_set fds;
    FD_ZERO(&fds);
    FD_SET(PQsocket(c), &fds);
    timeval tv{0, 20000};
    ::select(PQsocket(c) + 1, &fds, nullptr, nullptr, &tv);
    PQconsumeInput(c);
    while (PGnotify* n = PQnotifies(c)) {
      out.add(n->extra);
      PQfreemem(n);
    }
  }
  PQfinish(c);
}

constexpr std::string_view kSignalHead = R"({"jsonrpc":"2.0","method":"signal",)";

// A subscriber that reads the socket's lines itself and takes the payload out with a string
// search, as cheap as the raw listener's PQnotifies: what is measured is the daemon, not a JSON
// parser in the client. (The payloads here are digits: no escapes to undo.)
void tocsin_listener(const std::string& sock, Received& out, std::atomic<bool>& ready,
                     std::atomic<bool>& stop) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", sock.c_str());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) die("connect " + sock);
  std::string req = R"({"jsonrpc":"2.0","id":1,"method":"subscribe","params":{"signals":[50]}})"
                    "\n";
  if (::write(fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) die("write");
  std::string buf;
  char chunk[1 << 16];
  bool subscribed = false;
  while (!stop) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 20) <= 0) continue;
    ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n <= 0) die("the daemon closed the subscriber's connection");
    buf.append(chunk, static_cast<std::size_t>(n));
    std::size_t start = 0;
    for (std::size_t nl; (nl = buf.find('\n', start)) != std::string::npos; start = nl + 1) {
      std::string_view line(buf.data() + start, nl - start);
      if (!subscribed) {
        subscribed = true;
        ready = true;
        continue;
      }
      // Events are the only lines after the subscription's answer; anything else (an overflow
      // notice) fails the run. Known by its start: a search through each line would cost the
      // subscriber more than the payload's extraction.
      if (!line.starts_with(kSignalHead)) die("not an event: " + std::string(line));
      // The payload is the last field ("payload":"…"}}): found from the end of the line, as
      // libpq hands the raw listener its fields by position.
      auto at = line.rfind("\"payload\":\"");
      if (at == std::string_view::npos) continue;
      at += 11;
      out.add(std::string(line.substr(at, line.find('"', at) - at)));
    }
    buf.erase(0, start);
  }
  ::close(fd);
}

struct Daemon {
  pid_t pid = -1;
  ~Daemon() {
    if (pid > 0) {
      ::kill(pid, SIGTERM);
      ::waitpid(pid, nullptr, 0);
    }
  }
};

void start_tocsind(Daemon& d, const std::string& tocsind, const std::string& dir,
                   const std::string& conninfo, const std::string& sock) {
  std::string plugins = (std::filesystem::path(tocsind).parent_path() / "plugins").string();
  std::string cfg = dir + "/tocsin.yaml";
  std::ofstream(cfg) << "plugin_path: [" << plugins << "]\nstate_dir: " << dir
                     << "/state\nlimits: {subscriber_queue: 1000000}\n"
                        "signals:\n  50: {name: bench, handlers: [{target: subscribers}]}\n"
                        "plugins:\n  pgnotify:\n    conninfo: \""
                     << conninfo << "\"\n    channels: {bench: 50}\n";
  std::vector<std::string> args{tocsind, "--config", cfg, "--socket", sock, "--log-level", "warn"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  if (posix_spawn(&d.pid, tocsind.c_str(), nullptr, nullptr, argv.data(), environ) != 0) {
    die("cannot start " + tocsind);
  }
  g_tocsind = d.pid;
  for (auto until = Clock::now() + std::chrono::seconds(30); Clock::now() < until;) {
    if (auto c = tocsin::Client::connect(sock)) {
      auto s = c->call("status");
      if (s && (*s)["plugins"]["pgnotify"]["state"] == "listening") return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // start-up polling only
  }
  die("tocsind's pgnotify did not start listening");
}

std::int64_t percentile(std::vector<std::int64_t> v, double p) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

void wait_all(Received& r, std::size_t n, const char* who) {
  for (auto until = Clock::now() + std::chrono::seconds(120); Clock::now() < until;) {
    if (r.count >= n) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // polling a counter, not timing
  }
  die(std::string(who) + " received " + std::to_string(r.count) + " of " + std::to_string(n));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tocsin_pgload: pgnotify against a raw libpq listener"};
  std::string tocsind = (std::filesystem::path(argv[0]).parent_path() / "tocsind").string();
  app.add_option("--tocsind", tocsind);
  app.require_subcommand(1);
  std::size_t count = 0;
  int interval_us = 1000, batch = 1000;
  auto* latency = app.add_subcommand("latency", "one NOTIFY at a time");
  latency->add_option("--count", count);
  latency->add_option("--interval-us", interval_us);
  auto* throughput = app.add_subcommand("throughput", "bursts of NOTIFYs");
  throughput->add_option("--count", count);
  throughput->add_option("--batch", batch);
  bool in_turn = false;
  int rounds = 1;
  throughput->add_flag("--in-turn", in_turn, "each receiver on its own channel, in turn");
  throughput->add_option("--rounds", rounds, "with --in-turn: bursts of --count for each")
      ->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  ::signal(SIGPIPE, SIG_IGN);
  if (count == 0) count = *latency ? 2000 : 100000;

  std::string why;
  g_pg = tocsin::testing::PgCluster::create(&why);
  if (!g_pg) die(why);
  auto& pg = g_pg;
  tocsin::testing::TempDir dir;
  std::string sock = dir.file("s.sock");
  Daemon d;
  start_tocsind(d, tocsind, dir.path().string(), pg->conninfo(), sock);

  Received raw, via;
  std::atomic<bool> raw_ready{false}, via_ready{false}, stop{false};
  // --in-turn: the raw listener has a channel of its own, so that tocsind's turn is tocsind's.
  const std::string raw_channel = in_turn ? "bench_raw" : "bench";
  std::thread t1(raw_listener, pg->conninfo(), raw_channel, std::ref(raw), std::ref(raw_ready),
                 std::ref(stop));
  std::thread t2(tocsin_listener, sock, std::ref(via), std::ref(via_ready), std::ref(stop));
  while (!raw_ready || !via_ready) std::this_thread::sleep_for(std::chrono::milliseconds(5));

  PGconn* pub = PQconnectdb(pg->conninfo().c_str());
  if (PQstatus(pub) != CONNECTION_OK) die(std::string("publisher: ") + PQerrorMessage(pub));
  // NOTIFYs with the payloads 0 .. count-1 on `channel`, --batch to a transaction.
  auto publish = [&](const std::string& channel) {
    for (std::size_t sent = 0; sent < count; sent += static_cast<std::size_t>(batch)) {
      std::string sql = "SELECT pg_notify('" + channel + "', x::text) FROM generate_series(" +
                        std::to_string(sent) + ", " +
                        std::to_string(std::min(count, sent + batch) - 1) + ") x";
      PGresult* r = PQexec(pub, sql.c_str());
      if (PQresultStatus(r) != PGRES_TUPLES_OK) die(PQresultErrorMessage(r));
      PQclear(r);
    }
  };
  // The rate `r` reached since t0; every payload must have arrived, in order, exactly once.
  auto rate = [&](Received& r, std::int64_t t0, const char* who) {
    std::int64_t last = 0;
    for (std::size_t i = 0; i < count; ++i) {
      if (r.items[i].second != std::to_string(i)) {
        die(std::string(who) + " received out of order at " + std::to_string(i));
      }
      last = std::max(last, r.items[i].first);
    }
    return static_cast<double>(count) / (static_cast<double>(last - t0) / 1e6);
  };
  auto per = [&](std::int64_t ns) { return static_cast<double>(ns) / static_cast<double>(count); };
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : v[v.size() / 2];
  };
  // CPU spent so far by tocsind (from /proc), the raw listener's thread and the subscriber's.
  struct Cpu {
    std::int64_t daemon = 0, raw = 0, sub = 0;
  };
  auto cpu_now = [&] { return Cpu{process_cpu_ns(d.pid), thread_cpu_ns(t1), thread_cpu_ns(t2)}; };
  // One burst of --count on `channel`, taken by the raw listener, the subscriber or both: the
  // rate each reached (0 for one not taking part) and the CPU spent meanwhile.
  struct Burst {
    double raw = 0, via = 0;
    Cpu cpu;
  };
  auto burst = [&](const std::string& channel, bool to_raw, bool to_via) {
    if (to_raw) raw.clear();
    if (to_via) via.clear();
    Cpu before = cpu_now();
    std::int64_t t0 = now_us();
    publish(channel);
    Burst b;
    if (to_raw) {
      wait_all(raw, count, "the raw listener");
      b.raw = rate(raw, t0, "the raw listener");
    }
    if (to_via) {
      wait_all(via, count, "the tocsind subscriber");
      b.via = rate(via, t0, "the tocsind subscriber");
    }
    Cpu after = cpu_now();
    b.cpu = {after.daemon - before.daemon, after.raw - before.raw, after.sub - before.sub};
    return b;
  };

  if (*latency) {
    for (std::size_t i = 0; i < count; ++i) {
      std::string payload = std::to_string(now_us());
      const char* values[] = {payload.c_str()};
      PQclear(PQexecParams(pub, "SELECT pg_notify('bench', $1)", 1, nullptr, values, nullptr,
                           nullptr, 0));
      std::this_thread::sleep_for(std::chrono::microseconds(interval_us));  // the send rate
    }
    wait_all(raw, count, "the raw listener");
    wait_all(via, count, "the tocsind subscriber");
    auto lat = [](Received& r) {
      std::vector<std::int64_t> v;
      for (auto& [t, p] : r.items) v.push_back(t - std::stoll(p));
      return v;
    };
    auto a = lat(raw), b = lat(via);
    std::printf("latency count=%zu interval_us=%d\n", count, interval_us);
    std::printf("  raw libpq listener: p50=%lldus p99=%lldus max=%lldus\n",
                static_cast<long long>(percentile(a, 0.5)),
                static_cast<long long>(percentile(a, 0.99)),
                static_cast<long long>(percentile(a, 1.0)));
    std::printf("  tocsind subscriber: p50=%lldus p99=%lldus max=%lldus\n",
                static_cast<long long>(percentile(b, 0.5)),
                static_cast<long long>(percentile(b, 0.99)),
                static_cast<long long>(percentile(b, 1.0)));
    std::printf("  p99 difference: %lldus (target: at most 1000us)\n",
                static_cast<long long>(percentile(b, 0.99) - percentile(a, 0.99)));
  } else if (in_turn) {
    std::printf("throughput in turn: count=%zu batch=%d rounds=%d\n", count, batch, rounds);
    std::vector<double> raw_rates, via_rates;
    for (int round = 1; round <= rounds; ++round) {
      // One burst for each receiver; which goes first alternates from round to round.
      Burst r, v;
      if (round % 2 == 1) {
        r = burst(raw_channel, true, false);
        v = burst("bench", false, true);
      } else {
        v = burst("bench", false, true);
        r = burst(raw_channel, true, false);
      }
      std::printf("  round %d: raw %.0f/s (CPU %.0fns each), tocsind %.0f/s (CPU %.0fns + its "
                  "subscriber %.0fns each): %.1f%%\n",
                  round, r.raw, per(r.cpu.raw), v.via, per(v.cpu.daemon), per(v.cpu.sub),
                  100.0 * v.via / r.raw);
      raw_rates.push_back(r.raw);
      via_rates.push_back(v.via);
    }
    double a = median(raw_rates), b = median(via_rates);
    std::printf("  medians: raw libpq listener %.0f/s, tocsind subscriber %.0f/s: %.1f%% of raw "
                "(target: at least 90%%)\n",
                a, b, 100.0 * b / a);
  } else {
    Burst b = burst("bench", true, true);
    std::printf("throughput count=%zu batch=%d\n", count, batch);
    std::printf("  raw libpq listener: %.0f notifications/s\n", b.raw);
    std::printf("  tocsind subscriber: %.0f notifications/s (%.1f%% of raw; target: at least 90%%)\n",
                b.via, 100.0 * b.via / b.raw);
    std::printf("  CPU per notification: tocsind %.0fns + its subscriber %.0fns; raw listener %.0fns\n",
                per(b.cpu.daemon), per(b.cpu.sub), per(b.cpu.raw));
  }
  stop = true;
  t1.join();
  t2.join();
  PQfinish(pub);
  return 0;
}
