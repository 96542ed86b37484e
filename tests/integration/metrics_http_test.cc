// The Prometheus endpoint (issue 17, SPEC §5, docs/metrics.md) against the real daemon over real
// TCP on 127.0.0.1: GET, HEAD, 404, 405; the exposition checked by promtool and scraped by a real
// Prometheus; hostile clients (slowloris, a 1 MiB header, garbage, 1,000 connections at once)
// leave the daemon serving, and its fds back at their level.
//
// The daemon listens on 127.0.0.1:0 and `status` says which port it got (no port is guessed).
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "fakes/daemon_process.h"
#include "fakes/line_client.h"
#include "fakes/temp_dir.h"

namespace tocsin::testing {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

constexpr const char* kConfig = R"Y(
metrics: {listen: "127.0.0.1:0"}
limits: {clients: 64}
signals:
  5: {name: news, handlers: [{target: subscribers}]}
  6: {name: job, handlers: [{target: subscriber}]}
  7: {name: run, handlers: [{exec: [/bin/true]}]}
  8: {name: odd, handlers: [{exec: ["/nonexistent/a\"b\\c"]}]}
)Y";

// A connection to the loopback address (::1 with v6), or -1.
int connect_tcp(int port, bool v6 = false) {
  int fd = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_storage storage{};
  socklen_t len = 0;
  if (v6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&storage);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(static_cast<std::uint16_t>(port));
    a->sin6_addr = in6addr_loopback;
    len = sizeof *a;
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&storage);
    a->sin_family = AF_INET;
    a->sin_port = htons(static_cast<std::uint16_t>(port));
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = sizeof *a;
  }
  if (fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&storage), len) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// A port nothing listens on now (for Prometheus' own web server).
int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// Waits until fd is readable (or hung up); false at the deadline.
bool readable(int fd, Deadline until) {
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r > 0) return true;
    if (r < 0 && errno != EINTR) return false;
  }
}

struct Response {
  int status = 0;
  std::string head;  // the status line and headers
  std::string body;
  bool closed = false;  // EOF (or a reset) after the response
  std::string header(const std::string& name) const {
    std::istringstream in(head);
    std::string line;
    while (std::getline(in, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      auto colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string key = line.substr(0, colon);
      std::transform(key.begin(), key.end(), key.begin(), ::tolower);
      std::string want = name;
      std::transform(want.begin(), want.end(), want.begin(), ::tolower);
      if (key == want) return line.substr(line.find_first_not_of(' ', colon + 1));
    }
    return {};
  }
};

// Reads one response from fd: the head, then Content-Length bytes (none for HEAD), or until EOF
// when there is no length. `expect_close`: then also waits for the EOF.
Response read_response(int fd, bool head_request = false, bool expect_close = false,
                       std::string* rest = nullptr) {
  Response r;
  std::string buf = rest ? *rest : std::string();
  const Deadline until = deadline_in(kWait);
  auto fill = [&] {
    if (!readable(fd, until)) return false;
    char chunk[65536];
    ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
    if (n <= 0) {
      r.closed = true;
      return false;
    }
    buf.append(chunk, static_cast<std::size_t>(n));
    return true;
  };
  std::size_t end;
  while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
    if (!fill()) return r;
  }
  r.head = buf.substr(0, end + 2);
  buf.erase(0, end + 4);
  if (r.head.size() > 12 && r.head.compare(0, 5, "HTTP/") == 0)
    r.status = std::atoi(r.head.c_str() + 9);
  std::string length = r.header("Content-Length");
  if (!length.empty()) {
    std::size_t want = head_request ? 0 : std::stoul(length);
    while (buf.size() < want && fill()) {
    }
    r.body = buf.substr(0, std::min(want, buf.size()));
    buf.erase(0, r.body.size());
  } else {
    while (fill()) {
    }
    r.body = buf;
    buf.clear();
  }
  if (expect_close) {
    while (!r.closed && fill()) {
    }
    if (!r.closed) r.body += buf;  // what came after the response (should be nothing)
  }
  if (rest) *rest = buf;
  return r;
}

// One request on a connection of its own, closed after the response.
Response request(int port, const std::string& method, const std::string& target,
                 const std::string& extra_headers = "", bool v6 = false) {
  int fd = connect_tcp(port, v6);
  if (fd < 0) return {};
  std::string req = method + " " + target +
                    " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" + extra_headers +
                    "\r\n";
  (void)!::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  Response r = read_response(fd, method == "HEAD", /*expect_close=*/true);
  ::close(fd);
  return r;
}

std::string get_metrics(int port) { return request(port, "GET", "/metrics").body; }

// The value of the sample line starting with `series` ("name{labels}"), or -1.
double sample_value(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, series.size() + 1, series + " ") == 0) {
      return std::strtod(line.c_str() + series.size() + 1, nullptr);
    }
  }
  return -1;
}

std::string which(const std::string& program) {
  for (const char* dir : {"/usr/bin", "/usr/local/bin", "/bin"}) {
    std::string path = std::string(dir) + "/" + program;
    if (::access(path.c_str(), X_OK) == 0) return path;
  }
  return {};
}

struct MetricsHttpTest : ::testing::Test {
  TempDir dir;
  std::string sock = dir.file("s.sock");
  std::unique_ptr<DaemonProcess> daemon;
  int port = 0;

  DaemonProcess& start(const std::string& yaml = kConfig) {
    daemon = std::make_unique<DaemonProcess>(
        std::vector<std::string>{"--config", dir.write("tocsin.yaml", yaml), "--socket", sock});
    daemon->expect_ready();
    daemon->expect_line("metrics: listening on http://127.0.0.1:");
    LineClient admin(sock);
    Json st = admin.call("status")["result"];
    std::string endpoint = st.value("metrics", "");
    EXPECT_EQ(endpoint.rfind("127.0.0.1:", 0), 0u) << st.dump();
    port = std::atoi(endpoint.c_str() + endpoint.find(':') + 1);
    EXPECT_GT(port, 0) << st.dump();
    return *daemon;
  }
};

TEST_F(MetricsHttpTest, GetServesTheExpositionHeadItsHeadersOtherPathsAndMethodsAreRefused) {
  start();
  LineClient c(sock);
  c.call("raise", {{"signal", "news"}});
  c.call("raise", {{"signal", "news"}});

  Response get = request(port, "GET", "/metrics");
  EXPECT_EQ(get.status, 200) << get.head << daemon->log();
  EXPECT_EQ(get.header("Content-Type"), "text/plain; version=0.0.4; charset=utf-8") << get.head;
  EXPECT_EQ(sample_value(get.body, R"(tocsin_signal_raised_total{signal="5",name="news"})"), 2)
      << get.body;
  // The same text as the socket's `metrics` method (one implementation).
  std::string over_socket = c.call("metrics")["result"]["text"];
  EXPECT_NE(over_socket.find("# TYPE tocsin_exec_duration_seconds histogram"), std::string::npos);
  EXPECT_NE(get.body.find("# TYPE tocsin_exec_duration_seconds histogram"), std::string::npos);
  // Label values are escaped.
  EXPECT_NE(get.body.find(R"(tocsin_handler_runs_total{signal="8",index="0",)"
                          R"(handler="exec[/nonexistent/a\"b\\c]"} 0)"),
            std::string::npos)
      << get.body;
  EXPECT_GT(sample_value(get.body, "process_open_fds"), 0) << get.body;
  EXPECT_GT(sample_value(get.body, "process_resident_memory_bytes"), 0) << get.body;

  Response head = request(port, "HEAD", "/metrics");
  EXPECT_EQ(head.status, 200) << head.head;
  EXPECT_EQ(head.header("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_GT(std::atoi(head.header("Content-Length").c_str()), 0) << head.head;
  EXPECT_TRUE(head.closed);
  EXPECT_EQ(head.body, "") << "HEAD sent a body";

  for (const char* target : {"/", "/metricsx", "/api/v1/query", "/metrics/"}) {
    Response r = request(port, "GET", target);
    EXPECT_EQ(r.status, 404) << target << "\n" << r.head;
  }
  for (const char* method : {"POST", "PUT", "DELETE", "OPTIONS"}) {
    Response r = request(port, method, "/metrics", "Content-Length: 0\r\n");
    EXPECT_EQ(r.status, 405) << method << "\n" << r.head;
    EXPECT_EQ(r.header("Allow"), "GET, HEAD") << r.head;
  }

  // Keep-alive: three requests on one connection.
  int fd = connect_tcp(port);
  ASSERT_GE(fd, 0);
  std::string rest;
  for (int i = 0; i < 3; ++i) {
    std::string req = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    ASSERT_EQ(::send(fd, req.data(), req.size(), MSG_NOSIGNAL), static_cast<ssize_t>(req.size()));
    Response r = read_response(fd, false, false, &rest);
    EXPECT_EQ(r.status, 200) << i;
    EXPECT_FALSE(r.closed) << i;
  }
  ::close(fd);
}

TEST_F(MetricsHttpTest, PromtoolFindsNothingWrongWithTheExposition) {
  const std::string promtool = which("promtool");
  if (promtool.empty()) {
    GTEST_SKIP() << "promtool not installed (Debian package prometheus; scripts/deps test)";
  }
  // Sources of several kinds, an `at` entry already past (state "passed"), a cron state file.
  start(std::string(kConfig) + "state_dir: " + dir.file("state") +
        "\ntimers: [{id: t1, signal: 5, every: 1h}]\n"
        "at: [{id: past, signal: 5, time: \"2000-01-01T00:00:00Z\"}]\n"
        "cron: [{id: c1, signal: 5, schedule: \"0 0 1 1 *\", missed: once}]\n");
  // Something in every family: a subscriber, a one-of event acked, an exec child run.
  LineClient worker(sock);
  worker.call("hello", {{"name", "worker-1"}});
  worker.call("subscribe", {{"signals", {5, 6}}, {"ack", true}});
  LineClient c(sock);
  c.call("raise", {{"signal", 5}});
  c.call("raise", {{"signal", 6}});
  c.call("raise", {{"signal", 7}});
  c.call("raise", {{"signal", 200}});  // not in the table: unhandled
  auto ev = worker.next_notification(deadline_in(kWait));
  while (ev && (*ev)["params"].value("signal", 0) != 6)
    ev = worker.next_notification(deadline_in(kWait));
  ASSERT_TRUE(ev) << daemon->log();
  worker.call("ack", {{"seq", (*ev)["params"]["seq"]}});
  std::string text = poll_until(
      [&] { return get_metrics(port); },
      [](const std::string& t) {
        return t.find("tocsin_exec_duration_seconds_count{signal=\"7\"") != std::string::npos &&
               t.find(
                   "tocsin_exec_duration_seconds_count{signal=\"7\",index=\"0\",handler=\"exec[/"
                   "bin/true]\"} 1") != std::string::npos;
      });
  EXPECT_NE(text.find("tocsin_exec_duration_seconds_bucket{signal=\"7\",index=\"0\","
                      "handler=\"exec[/bin/true]\",le=\"+Inf\"} 1"),
            std::string::npos)
      << text;
  EXPECT_EQ(sample_value(text, R"(tocsin_ack_duration_seconds_count{signal="6",name="job"})"), 1)
      << text;
  EXPECT_TRUE(std::regex_search(
      text, std::regex(R"(\ntocsin_subscriber_unacked\{client="[0-9]+",name="worker-1"\} 0\n)")))
      << text;
  EXPECT_EQ(sample_value(text, R"(tocsin_sources{kind="timer",state="ok"})"), 1) << text;
  EXPECT_EQ(sample_value(text, R"(tocsin_sources{kind="at",state="passed"})"), 1) << text;
  EXPECT_EQ(sample_value(text, R"(tocsin_sources{kind="at",state="ok"})"), 0) << text;
  EXPECT_EQ(sample_value(text, R"(tocsin_sources{kind="cron",state="ok"})"), 1) << text;
  EXPECT_EQ(sample_value(text, R"(tocsin_state_file_failing{file="cron"})"), 0) << text;
  EXPECT_GT(sample_value(text, "process_start_time_seconds"), 1.6e9) << text;
  const std::string file = dir.write("metrics.txt", text);
  const std::string out = dir.file("promtool.out");
  int rc = std::system((promtool + " check metrics < " + file + " > " + out + " 2>&1").c_str());
  std::ifstream in(out);
  std::string said((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(rc, 0) << said << "\n" << text;
  EXPECT_EQ(said, "") << text;
}

TEST_F(MetricsHttpTest, ARealPrometheusScrapesTheRaisedCount) {
  const std::string prometheus = which("prometheus");
  if (prometheus.empty()) {
    GTEST_SKIP() << "prometheus not installed (Debian package prometheus; scripts/deps test)";
  }
  start();
  LineClient c(sock);
  for (int i = 0; i < 3; ++i) c.call("raise", {{"signal", "news"}});
  const int web = free_port();
  const std::string config =
      dir.write("prometheus.yml",
                "global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}\n"
                "scrape_configs:\n"
                "  - job_name: tocsin\n"
                "    static_configs: [{targets: [\"127.0.0.1:" +
                    std::to_string(port) + "\"]}]\n");
  std::filesystem::create_directories(dir.file("tsdb"));
  DaemonProcess prom(
      {prometheus, "--config.file=" + config, "--storage.tsdb.path=" + dir.file("tsdb"),
       "--web.listen-address=127.0.0.1:" + std::to_string(web)},
      {});
  // Prometheus' HTTP API, with a deadline: it starts, scrapes, and the query sees the sample.
  auto query = [&]() -> Json {
    int fd = connect_tcp(web);
    if (fd < 0) return nullptr;
    std::string req =
        "GET /api/v1/query?query=tocsin_signal_raised_total%7Bsignal%3D%225%22%7D HTTP/1.0\r\n"
        "Host: 127.0.0.1\r\n\r\n";
    (void)!::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
    Response r = read_response(fd, false, true);
    ::close(fd);
    if (r.status != 200) return nullptr;
    return Json::parse(r.body, nullptr, false);
  };
  auto has_value = [](const Json& j) {
    return j.is_object() && j.value("status", "") == "success" && !j["data"]["result"].empty();
  };
  Json answer = poll_until(query, has_value, 60s);
  ASSERT_TRUE(has_value(answer)) << answer.dump() << "\n" << prom.log();
  const Json& result = answer["data"]["result"][0];
  EXPECT_EQ(result["metric"]["name"], "news") << answer.dump();
  EXPECT_EQ(result["metric"]["job"], "tocsin") << answer.dump();
  EXPECT_EQ(result["value"][1], "3") << answer.dump();
  prom.send(SIGTERM);
  EXPECT_TRUE(prom.wait_exit(deadline_in(kWait))) << prom.log();
}

TEST_F(MetricsHttpTest, ASlowClientIsClosedAtTheTimeoutAndOthersAreServedMeanwhile) {
  DaemonProcess& d = start();
  LineClient admin(sock);
  admin.call("version");  // accepted and served: its fd is in the baseline
  const int base = d.open_fds();
  int slow = connect_tcp(port);
  ASSERT_GE(slow, 0);
  const std::string trickle = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ";
  std::size_t sent = 0;
  bool served_meanwhile = false;
  bool closed = false;
  const Deadline until = deadline_in(30s);
  while (!closed && std::chrono::steady_clock::now() < until) {
    char byte = sent < trickle.size() ? trickle[sent] : 'a';
    if (::send(slow, &byte, 1, MSG_NOSIGNAL) != 1) {
      closed = true;
      break;
    }
    ++sent;
    // One byte, then a pause that is also the wait for the daemon's close.
    if (readable(slow, deadline_in(100ms))) {
      char buf[256];
      closed = ::recv(slow, buf, sizeof buf, 0) <= 0;
      if (!closed) continue;  // a 408 or anything: the close follows
    }
    if (sent == 10 && !closed) {
      Response r = request(port, "GET", "/metrics");
      served_meanwhile = r.status == 200;
    }
  }
  EXPECT_TRUE(served_meanwhile) << d.log();
  EXPECT_TRUE(closed) << "a client sending a header a byte at a time was never closed; sent "
                      << sent << " bytes";
  ::close(slow);
  EXPECT_EQ(request(port, "GET", "/metrics").status, 200);
  EXPECT_LE(d.wait_open_fds_at_most(base), base);
}

TEST_F(MetricsHttpTest, AHugeHeaderAndGarbageAreRefusedAndClosed) {
  DaemonProcess& d = start();
  LineClient admin(sock);
  admin.call("version");  // accepted and served: its fd is in the baseline
  const int base = d.open_fds();
  {
    // 1 MiB of header: written while the answer is read (the daemon stops reading at 8 KiB).
    int fd = connect_tcp(port);
    ASSERT_GE(fd, 0);
    std::string req =
        "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(1 << 20, 'a') + "\r\n\r\n";
    ::fcntl(fd, F_SETFL, O_NONBLOCK);
    std::size_t off = 0;
    std::string got;
    bool eof = false;
    const Deadline until = deadline_in(kWait);
    while (!eof && std::chrono::steady_clock::now() < until) {
      pollfd p{fd, static_cast<short>(POLLIN | (off < req.size() ? POLLOUT : 0)), 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      if (p.revents & POLLIN) {
        char buf[4096];
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) {
          eof = true;
        } else {
          got.append(buf, static_cast<std::size_t>(n));
        }
      }
      if ((p.revents & POLLOUT) && off < req.size()) {
        ssize_t n = ::send(fd, req.data() + off, req.size() - off, MSG_NOSIGNAL);
        if (n > 0) off += static_cast<std::size_t>(n);
      }
      if (p.revents & (POLLERR | POLLHUP)) eof = true;
    }
    ::close(fd);
    EXPECT_TRUE(eof) << "the connection was not closed";
    EXPECT_TRUE(got.rfind("HTTP/1.1 431", 0) == 0 || got.rfind("HTTP/1.1 400", 0) == 0) << got;
  }
  for (const std::string& garbage :
       {std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11) + std::string(200, '\xff'),
        std::string("HELLO THERE\r\n\r\n"), std::string("GET /metrics HTTP/9.9\r\n\r\n"),
        std::string("GET /metrics HTTP/1.1\r\nContent-Length: 99999999\r\n\r\nxx"),
        std::string("\r\n\r\n\r\n\0\0\0\0\r\n\r\n", 14)}) {
    int fd = connect_tcp(port);
    ASSERT_GE(fd, 0);
    (void)!::send(fd, garbage.data(), garbage.size(), MSG_NOSIGNAL);
    Response r = read_response(fd, false, true);
    ::close(fd);
    EXPECT_TRUE(r.status == 400 || r.status == 413)
        << r.head << "\nfor " << Json(garbage).dump(-1, ' ', false, Json::error_handler_t::replace);
    EXPECT_TRUE(r.closed) << r.head;
  }
  EXPECT_EQ(request(port, "GET", "/metrics").status, 200) << d.log();
  EXPECT_TRUE(admin.call("version").contains("result"));
  EXPECT_LE(d.wait_open_fds_at_most(base), base);
}

TEST_F(MetricsHttpTest, AThousandConnectionsAtOnceLeaveTheDaemonServing) {
  // 1,000 sockets of ours, at once.
  rlimit rl{};
  ::getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < 1200) {
    rl.rlim_cur = std::min<rlim_t>(rl.rlim_max, 4096);
    ::setrlimit(RLIMIT_NOFILE, &rl);
    ::getrlimit(RLIMIT_NOFILE, &rl);
  }
  if (rl.rlim_cur < 1100) GTEST_SKIP() << "RLIMIT_NOFILE " << rl.rlim_cur << " < 1100";
  DaemonProcess& d = start();
  LineClient admin(sock);
  admin.call("version");  // accepted and served: its fd is in the baseline
  const int base = d.open_fds();
  std::vector<int> fds;
  for (int i = 0; i < 1000; ++i) {
    int fd = connect_tcp(port);
    ASSERT_GE(fd, 0) << "connection " << i << ": " << std::strerror(errno);
    fds.push_back(fd);
  }
  // All but the limit's 64 are closed as they are accepted.
  auto closed_count = [&] {
    int n = 0;
    for (int fd : fds) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 0) > 0) {
        char c;
        if (::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) <= 0) ++n;
      }
    }
    return n;
  };
  int closed = poll_until(closed_count, [](int n) { return n >= 1000 - 64; });
  EXPECT_GE(closed, 1000 - 64) << d.log();
  EXPECT_LE(closed, 1000) << d.log();
  // The Unix socket is served meanwhile.
  EXPECT_TRUE(admin.call("version").contains("result")) << d.log();
  for (int fd : fds) ::close(fd);
  // Once they are gone, /metrics is served again and every fd is given back.
  Response r = poll_until([&] { return request(port, "GET", "/metrics"); },
                          [](const Response& x) { return x.status == 200; });
  EXPECT_EQ(r.status, 200) << d.log();
  EXPECT_LE(d.wait_open_fds_at_most(base), base)
      << d.log();
  EXPECT_NE(d.log().find("closed at once"), std::string::npos) << d.log();
}

TEST_F(MetricsHttpTest, AReloadRebindsABadAddressKeepsTheOld) {
  DaemonProcess& d = start();
  LineClient admin(sock);
  const int old_port = port;
  // Another port: the endpoint moves.
  dir.write("tocsin.yaml",
            std::regex_replace(std::string(kConfig), std::regex("127\\.0\\.0\\.1:0"), "[::1]:0"));
  Json r = admin.call("reload");
  ASSERT_TRUE(r.contains("result")) << r.dump() << d.log();
  std::string endpoint = admin.call("status")["result"].value("metrics", "");
  EXPECT_EQ(endpoint.rfind("[::1]:", 0), 0u) << endpoint;
  EXPECT_LT(connect_tcp(old_port), 0) << "the old address still listens";
  const int v6_port = std::atoi(endpoint.c_str() + endpoint.rfind(':') + 1);
  EXPECT_EQ(request(v6_port, "GET", "/metrics", "", /*v6=*/true).status, 200) << d.log();
  auto with_listen = [](const std::string& listen) {
    return std::regex_replace(std::string(kConfig), std::regex("127\\.0\\.0\\.1:0"), listen);
  };
  // An address taken by another process: the reload fails, the endpoint stays.
  int taken = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(taken, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(taken, 1), 0);
  socklen_t len = sizeof addr;
  ::getsockname(taken, reinterpret_cast<sockaddr*>(&addr), &len);
  const int taken_port = ntohs(addr.sin_port);
  dir.write("tocsin.yaml", with_listen("127.0.0.1:" + std::to_string(taken_port)));
  r = admin.call("reload");
  ASSERT_TRUE(r.contains("error")) << r.dump();
  EXPECT_NE(r["error"]["message"].get<std::string>().find("Address already in use"),
            std::string::npos)
      << r.dump();
  ::close(taken);
  EXPECT_EQ(admin.call("status")["result"].value("metrics", ""), endpoint);
  EXPECT_EQ(request(v6_port, "GET", "/metrics", "", /*v6=*/true).status, 200) << d.log();
  // 0.0.0.0:P to 127.0.0.1:P overlaps the old listener: moved all the same.
  const int shared = free_port();
  dir.write("tocsin.yaml", with_listen("0.0.0.0:" + std::to_string(shared)));
  ASSERT_TRUE(admin.call("reload").contains("result")) << d.log();
  dir.write("tocsin.yaml", with_listen("127.0.0.1:" + std::to_string(shared)));
  r = admin.call("reload");
  ASSERT_TRUE(r.contains("result")) << r.dump() << d.log();
  EXPECT_EQ(admin.call("status")["result"].value("metrics", ""),
            "127.0.0.1:" + std::to_string(shared));
  EXPECT_EQ(request(shared, "GET", "/metrics").status, 200) << d.log();
  endpoint = "127.0.0.1:" + std::to_string(shared);
  // A bad address: the reload fails with file:line:column, the endpoint stays.
  dir.write("tocsin.yaml", std::regex_replace(std::string(kConfig), std::regex("127\\.0\\.0\\.1:0"),
                                              "127.0.0.1:70000"));
  r = admin.call("reload");
  ASSERT_TRUE(r.contains("error")) << r.dump();
  EXPECT_NE(r["error"]["message"].get<std::string>().find("tocsin.yaml:2:"), std::string::npos)
      << r.dump();
  EXPECT_EQ(admin.call("status")["result"].value("metrics", ""), endpoint);
  // Off: nothing listens.
  dir.write("tocsin.yaml", "signals: {}\n");
  ASSERT_TRUE(admin.call("reload").contains("result"));
  EXPECT_TRUE(admin.call("status")["result"]["metrics"].is_null());
}

}  // namespace
}  // namespace tocsin::testing
