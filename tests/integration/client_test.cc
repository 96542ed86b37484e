// Integration tests of the C++ client (include/tocsin/client.h) and of tocsinctl against the real
// tocsind on a socket in a temporary directory. Written against docs/protocol.md and
// docs/tocsinctl.md. Every wait has a deadline; failures quote the daemon's log.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fakes/daemon_process.h"
#include "fakes/temp_dir.h"
#include "tocsin/client.h"

extern char** environ;

namespace tocsin::testing {
namespace {

using Json = nlohmann::json;
using std::chrono::milliseconds;

// 17 is broadcast to subscribers; 18 has no handler, so its events go to waiters; 19 goes to one
// acking subscriber.
constexpr const char* kConfig = R"Y(
signals:
  17:
    name: news
    handlers: [{target: subscribers}]
  18: {name: loose}
  19: {name: jobs, handlers: [{target: subscriber}]}
)Y";

// --- tocsinctl as a child process -------------------------------------------------------------

struct Outcome {
  int exit_code = -1;  // -1: did not exit normally (or was killed at the deadline)
  std::string out;
  std::string err;
};

// tocsinctl started with posix_spawn, stdout and stderr each through a pipe.
class Tocsinctl {
 public:
  explicit Tocsinctl(const std::vector<std::string>& args) {
    int out[2], err[2];
    if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
      ADD_FAILURE() << "pipe2: " << std::strerror(errno);
      return;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_adddup2(&actions, err[1], 2);
    std::vector<std::string> argv_s{TOCSINCTL_PATH};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    int rc = ::posix_spawn(&pid_, TOCSINCTL_PATH, &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    ::close(err[1]);
    out_fd_ = out[0];
    err_fd_ = err[0];
    if (rc != 0) {
      ADD_FAILURE() << "spawn " << TOCSINCTL_PATH << ": " << std::strerror(rc);
      pid_ = -1;
    }
  }
  ~Tocsinctl() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int status;
      ::waitpid(pid_, &status, 0);
    }
    if (out_fd_ >= 0) ::close(out_fd_);
    if (err_fd_ >= 0) ::close(err_fd_);
  }
  Tocsinctl(const Tocsinctl&) = delete;
  Tocsinctl& operator=(const Tocsinctl&) = delete;

  pid_t pid() const { return pid_; }

  // Reads what is there on stdout/stderr, waiting at most until `deadline`; returns false when
  // both pipes reached EOF.
  bool pump(Deadline deadline) {
    std::vector<pollfd> fds;
    if (out_fd_ >= 0) fds.push_back({out_fd_, POLLIN, 0});
    if (err_fd_ >= 0) fds.push_back({err_fd_, POLLIN, 0});
    if (fds.empty()) return false;
    auto left =
        std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
    int r = ::poll(fds.data(), fds.size(), left.count() < 0 ? 0 : static_cast<int>(left.count()));
    if (r < 0 && errno != EINTR) return false;
    for (const auto& p : fds) {
      if (!(p.revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[4096];
      ssize_t n = ::read(p.fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      bool is_out = p.fd == out_fd_;
      if (n <= 0) {
        ::close(p.fd);
        (is_out ? out_fd_ : err_fd_) = -1;
      } else {
        (is_out ? result_.out : result_.err).append(buf, static_cast<std::size_t>(n));
      }
    }
    return out_fd_ >= 0 || err_fd_ >= 0;
  }

  const std::string& out() const { return result_.out; }

  // Everything it writes, and its exit code; killed (exit_code -1) at the deadline.
  Outcome finish(Deadline deadline = deadline_in(kWait)) {
    while (std::chrono::steady_clock::now() < deadline && pump(deadline)) {
    }
    if (pid_ > 0) {
      if (out_fd_ >= 0 || err_fd_ >= 0) {
        ADD_FAILURE() << "tocsinctl still running at the deadline; stdout: " << result_.out
                      << "\nstderr: " << result_.err;
        ::kill(pid_, SIGKILL);
      }
      int status = 0;
      ::waitpid(pid_, &status, 0);
      pid_ = -1;
      if (WIFEXITED(status)) result_.exit_code = WEXITSTATUS(status);
    }
    return result_;
  }

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  Outcome result_;
};

Outcome run_tocsinctl(const std::vector<std::string>& args) { return Tocsinctl(args).finish(); }

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// --- fixture ----------------------------------------------------------------------------------

struct ClientTest : ::testing::Test {
  TempDir dir;
  std::string sock = dir.file("tocsin.sock");
  std::unique_ptr<DaemonProcess> daemon;

  void start(const std::string& yaml = kConfig) {
    std::string config = dir.write("tocsin.yaml", yaml);
    daemon = std::make_unique<DaemonProcess>(
        std::vector<std::string>{"--config", config, "--socket", sock, "--log-level", "debug"});
    daemon->expect_ready();
  }

  // A connected client, or nullopt after a test failure.
  std::optional<Client> connect() {
    auto c = Client::connect(sock);
    if (!c) {
      ADD_FAILURE() << c.error().message << "\nthe daemon's log:\n"
                    << (daemon ? daemon->log() : std::string("(no daemon)"));
      return std::nullopt;
    }
    return std::move(*c);
  }

  std::string log() const { return daemon ? daemon->log() : ""; }

  // tocsinctl --socket SOCK ARGS...
  Outcome ctl(std::vector<std::string> args) {
    args.insert(args.begin(), {"--socket", sock});
    return run_tocsinctl(args);
  }
};

using TocsinctlTest = ClientTest;

// --- the client -------------------------------------------------------------------------------

TEST_F(ClientTest, ConnectFailureSaysWhatFailed) {
  std::string missing = dir.file("nobody.sock");
  auto c = Client::connect(missing);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code, ErrorCode::transport);
  EXPECT_EQ(c.error().message, "connect " + missing + ": No such file or directory");
}

TEST_F(ClientTest, RaiseReturnsIncreasingSeq) {
  start();
  auto c = connect();
  ASSERT_TRUE(c);
  auto first = c->raise("news", "one");
  ASSERT_TRUE(first.ok()) << first.error().message << log();
  auto second = c->raise(17, "two");  // by number
  ASSERT_TRUE(second.ok()) << second.error().message << log();
  auto third = c->raise("loose");
  ASSERT_TRUE(third.ok()) << third.error().message << log();
  EXPECT_GE(*first, 1u);
  EXPECT_EQ(*second, *first + 1);
  EXPECT_EQ(*third, *second + 1);
}

TEST_F(ClientTest, SubscribeThenRaiseDeliversTheEventWithItsPayload) {
  start();
  auto listener = connect();
  auto raiser = connect();
  ASSERT_TRUE(listener && raiser);
  auto sub = listener->subscribe("news");
  ASSERT_TRUE(sub.ok()) << sub.error().message << log();

  auto seq = raiser->raise("news", "hello world");
  ASSERT_TRUE(seq.ok()) << seq.error().message << log();

  auto n = listener->next_notification(kWait);
  ASSERT_TRUE(n) << "no event within " << kWait.count() << "ms" << log();
  EXPECT_EQ((*n)["method"], "signal") << n->dump();
  EXPECT_FALSE(n->contains("id")) << n->dump();
  Json ev = (*n)["params"];
  EXPECT_EQ(ev["seq"], *seq) << ev.dump();
  EXPECT_EQ(ev["signal"], 17) << ev.dump();
  EXPECT_EQ(ev["name"], "news") << ev.dump();
  EXPECT_EQ(ev["payload"], "hello world") << ev.dump();
  EXPECT_EQ(ev["source"]["kind"], "raise") << ev.dump();
  EXPECT_TRUE(ev["time"].is_string()) << ev.dump();

  // Nothing else came.
  EXPECT_FALSE(listener->next_notification(milliseconds(0))) << log();
}

TEST_F(ClientTest, EventArrivingDuringACallIsKeptForNextNotification) {
  start();
  auto c = connect();
  ASSERT_TRUE(c);
  auto hello = c->hello("self-listener");
  ASSERT_TRUE(hello.ok()) << hello.error().message << log();
  EXPECT_EQ((*hello)["name"], "self-listener");
  ASSERT_TRUE(c->subscribe(Json::array({"news"})).ok()) << log();
  // The event and the raise's reply come on the same connection, in either order.
  auto seq = c->raise("news", "to myself");
  ASSERT_TRUE(seq.ok()) << seq.error().message << log();
  auto n = c->next_notification(kWait);
  ASSERT_TRUE(n) << log();
  EXPECT_EQ((*n)["params"]["seq"], *seq);
  EXPECT_EQ((*n)["params"]["payload"], "to myself");
  EXPECT_EQ((*n)["params"]["source"]["id"], "self-listener") << n->dump();
}

TEST_F(ClientTest, OneOfEventCarriesAckAndIsAckedOnce) {
  start();
  auto worker = connect();
  ASSERT_TRUE(worker);
  ASSERT_TRUE(worker->subscribe("jobs", /*ack=*/true).ok()) << log();
  auto seq = worker->raise("jobs", "build 7");
  ASSERT_TRUE(seq.ok()) << seq.error().message << log();
  auto n = worker->next_notification(kWait);
  ASSERT_TRUE(n) << log();
  Json ev = (*n)["params"];
  EXPECT_EQ(ev["seq"], *seq) << ev.dump();
  EXPECT_EQ(ev["ack"], true) << ev.dump();
  auto acked = worker->ack(*seq);
  EXPECT_TRUE(acked.ok()) << acked.error().message << log();
  auto again = worker->ack(*seq);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, ErrorCode::not_found) << again.error().message;
}

TEST_F(ClientTest, CallBatchReturnsResultsInRequestOrder) {
  start();
  auto c = connect();
  ASSERT_TRUE(c);
  auto r = c->call_batch({{"version", Json::object()},
                          {"raise", Json{{"signal", "news"}}},
                          {"no_such_method", Json::object()},
                          {"raise", Json{{"signal", 17}, {"payload", "x"}}}});
  ASSERT_TRUE(r.ok()) << r.error().message << log();
  ASSERT_EQ(r->size(), 4u);
  auto& results = *r;
  ASSERT_TRUE(results[0].ok()) << results[0].error().message;
  EXPECT_EQ((*results[0])["protocol"], 1);
  EXPECT_TRUE((*results[0])["version"].is_string());
  ASSERT_TRUE(results[1].ok()) << results[1].error().message;
  ASSERT_FALSE(results[2].ok());
  EXPECT_EQ(results[2].error().code, ErrorCode::method_not_found);
  ASSERT_TRUE(results[3].ok()) << results[3].error().message;
  EXPECT_EQ((*results[3])["seq"].get<std::uint64_t>(),
            (*results[1])["seq"].get<std::uint64_t>() + 1);
}

TEST_F(ClientTest, PipelinedRequestsAreMatchedById) {
  start();
  auto c = connect();
  ASSERT_TRUE(c);
  // A wait that answers only when its event comes, then requests that answer at once.
  auto wait_id = c->send("wait", Json{{"signal", "loose"}, {"timeout", "10s"}});
  auto a = c->send("raise", Json{{"signal", "news"}});
  auto b = c->send("raise", Json{{"signal", "news"}});
  auto v = c->send("version");
  ASSERT_TRUE(wait_id.ok() && a.ok() && b.ok() && v.ok()) << log();
  EXPECT_EQ(*a, *wait_id + 1);
  EXPECT_EQ(*b, *a + 1);
  EXPECT_EQ(*v, *b + 1);

  // Collected out of order.
  auto rv = c->wait_reply(*v, kWait);
  ASSERT_TRUE(rv.ok()) << rv.error().message << log();
  EXPECT_EQ((*rv)["protocol"], 1);
  auto rb = c->wait_reply(*b, kWait);
  auto ra = c->wait_reply(*a, kWait);
  ASSERT_TRUE(ra.ok() && rb.ok()) << log();
  EXPECT_EQ((*rb)["seq"].get<std::uint64_t>(), (*ra)["seq"].get<std::uint64_t>() + 1);

  // The wait is still pending; raising its signal answers it.
  auto seq = c->raise("loose", "for the waiter");
  ASSERT_TRUE(seq.ok()) << seq.error().message << log();
  auto rw = c->wait_reply(*wait_id, kWait);
  ASSERT_TRUE(rw.ok()) << rw.error().message << log();
  EXPECT_EQ((*rw)["seq"], *seq) << rw->dump();
  EXPECT_EQ((*rw)["name"], "loose") << rw->dump();
  EXPECT_EQ((*rw)["payload"], "for the waiter") << rw->dump();
}

TEST_F(ClientTest, RpcErrorCarriesItsCodeAndTheConnectionStaysUsable) {
  start();
  auto c = connect();
  ASSERT_TRUE(c);
  auto r = c->call("no_such_method");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::method_not_found) << r.error().message;
  EXPECT_FALSE(r.error().message.empty());

  auto unknown = c->raise("no-such-signal");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().code, ErrorCode::unknown_signal) << unknown.error().message;

  auto bad = c->call("raise", Json{{"signal", Json::array()}});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, ErrorCode::invalid_params) << bad.error().message;

  auto v = c->call("version");
  ASSERT_TRUE(v.ok()) << v.error().message << log();
  EXPECT_EQ((*v)["protocol"], 1);
}

TEST_F(ClientTest, WaitWithTimeoutReturnsNull) {
  start();
  auto c = connect();
  ASSERT_TRUE(c);
  auto start_time = std::chrono::steady_clock::now();
  auto r = c->wait("loose", milliseconds(50));
  ASSERT_TRUE(r.ok()) << r.error().message << log();
  EXPECT_TRUE(r->is_null()) << r->dump();
  EXPECT_GE(std::chrono::steady_clock::now() - start_time, milliseconds(50));
}

TEST_F(ClientTest, WaitReturnsTheEventRaisedByAnotherClient) {
  start();
  auto waiter = connect();
  auto raiser = connect();
  ASSERT_TRUE(waiter && raiser);
  auto id = waiter->send("wait", Json{{"signal", 18}, {"timeout", 10000}});
  ASSERT_TRUE(id.ok());
  // The wait must be registered before the raise; a round trip on the same connection after it
  // guarantees the daemon has read it (requests on a connection are handled in order).
  ASSERT_TRUE(waiter->call("version").ok()) << log();
  auto seq = raiser->raise("loose", "p");
  ASSERT_TRUE(seq.ok()) << seq.error().message << log();
  auto ev = waiter->wait_reply(*id, kWait);
  ASSERT_TRUE(ev.ok()) << ev.error().message << log();
  EXPECT_EQ((*ev)["seq"], *seq);
  EXPECT_EQ((*ev)["signal"], 18);
}

TEST_F(ClientTest, NoReplyWithinTheTimeoutIsATransportError) {
  start();
  auto c = connect();
  ASSERT_TRUE(c);
  auto r = c->call("wait", Json{{"signal", "loose"}, {"timeout", "10s"}}, milliseconds(50));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::transport);
  EXPECT_NE(r.error().message.find("within the timeout"), std::string::npos) << r.error().message;
}

TEST_F(ClientTest, DaemonGoneIsATransportError) {
  start();
  auto c = connect();
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->call("version").ok()) << log();
  daemon->send(SIGTERM);
  ASSERT_TRUE(daemon->wait_exit(deadline_in(kWait))) << log();
  auto r = c->call("version", Json::object(), kWait);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::transport) << r.error().message;
  EXPECT_FALSE(c->connected());
}

// --- tocsinctl --------------------------------------------------------------------------------

TEST_F(TocsinctlTest, NoDaemonExitsThreeAndSaysWhy) {
  auto r = ctl({"table"});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("connect " + sock + ": No such file or directory"), std::string::npos)
      << r.err;
  EXPECT_EQ(r.out, "");
}

TEST_F(TocsinctlTest, BadCommandLineExitsTwo) {
  EXPECT_EQ(ctl({"no-such-command"}).exit_code, 2);
  EXPECT_EQ(ctl({"raise"}).exit_code, 2);
  EXPECT_EQ(ctl({"wait", "--timeout", "5"}).exit_code, 2);  // a unit is required
  EXPECT_EQ(ctl({"subscribe", "news", "--count", "0"}).exit_code, 2);
}

TEST_F(TocsinctlTest, CronNextPrintsInstantsWithTheirOffsetAndNeedsNoDaemon) {
  // No daemon runs in this test: `ctl` points at a socket nobody listens on.
  auto r = ctl({"cron-next", "30 2 * * *", "--tz", "America/New_York", "--from",
                "2026-03-07T12:00:00-05:00", "--count", "3"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(lines_of(r.out), (std::vector<std::string>{"2026-03-08T03:00:00-04:00",
                                                       "2026-03-09T02:30:00-04:00",
                                                       "2026-03-10T02:30:00-04:00"}));
  // A wall time for --from is read in the zone; CRON_TZ= in the expression works as --tz.
  r = ctl({"cron-next", "CRON_TZ=Europe/Berlin @hourly", "--from", "2026-10-25T01:30", "--count",
           "3"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(lines_of(r.out), (std::vector<std::string>{"2026-10-25T02:00:00+02:00",
                                                       "2026-10-25T02:00:00+01:00",
                                                       "2026-10-25T03:00:00+01:00"}));
  // --from itself is included when it is an instant of the schedule.
  r = ctl({"cron-next", "0 0 1 1 *", "--tz", "UTC", "--from", "2027-01-01T00:00:00Z", "--count",
           "1"});
  EXPECT_EQ(r.out, "2027-01-01T00:00:00+00:00\n") << r.err;
  // Without --count: five.
  r = ctl({"cron-next", "@daily"});
  EXPECT_EQ(lines_of(r.out).size(), 5u) << r.err;
}

TEST_F(TocsinctlTest, CronNextErrorsGoToStderrWithANonZeroExit) {
  auto r = ctl({"cron-next", "*/5 * 32 * *"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("column 7: day-of-month 32 is out of range 1-31"), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("\n  */5 * 32 * *\n        ^"), std::string::npos) << r.err;
  r = ctl({"cron-next", "0 0 ? * 1"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("Quartz"), std::string::npos) << r.err;
  r = ctl({"cron-next", "@daily", "--tz", "Mars/Base"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("unknown time zone"), std::string::npos) << r.err;
  r = ctl({"cron-next", "@daily", "--from", "yesterday"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--from yesterday: expected ISO 8601"), std::string::npos) << r.err;
  EXPECT_EQ(ctl({"cron-next", "@daily", "--count", "0"}).exit_code, 2);
  EXPECT_EQ(ctl({"cron-next"}).exit_code, 2);
}

TEST_F(TocsinctlTest, AddCronAndRemove) {
  start();
  auto r = ctl({"add-cron", "news", "*/10 * * * *", "--tz", "Europe/Berlin", "--missed", "once",
                "--id", "ten"});
  ASSERT_EQ(r.exit_code, 0) << r.err << log();
  EXPECT_EQ(Json::parse(r.out)["id"], "ten");
  r = ctl({"add-cron", "news", "*/10 * * * * * *"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("Quartz"), std::string::npos) << r.err;
  EXPECT_EQ(ctl({"add-cron", "news", "@daily", "--missed", "twice"}).exit_code, 2);
  EXPECT_EQ(ctl({"remove", "ten"}).exit_code, 0);
  EXPECT_EQ(ctl({"remove", "ten"}).exit_code, 1);
}

TEST_F(TocsinctlTest, RaisePrintsTheSeq) {
  start();
  auto first = ctl({"raise", "news", "hello"});
  ASSERT_EQ(first.exit_code, 0) << first.err << log();
  // stdout is a pipe, not a terminal: one JSON object per line, the raw result.
  auto lines = lines_of(first.out);
  ASSERT_EQ(lines.size(), 1u) << first.out;
  Json j = Json::parse(lines[0], nullptr, false);
  ASSERT_TRUE(j.is_object()) << first.out;
  ASSERT_TRUE(j["seq"].is_number_unsigned()) << first.out;

  auto second = ctl({"--json", "raise", "17"});
  ASSERT_EQ(second.exit_code, 0) << second.err << log();
  Json k = Json::parse(second.out, nullptr, false);
  ASSERT_TRUE(k.is_object()) << second.out;
  EXPECT_EQ(k["seq"].get<std::uint64_t>(), j["seq"].get<std::uint64_t>() + 1);
}

TEST_F(TocsinctlTest, DaemonErrorExitsOneWithItsCode) {
  start();
  auto r = ctl({"raise", "no-such-signal"});
  EXPECT_EQ(r.exit_code, 1) << r.err << log();
  EXPECT_NE(r.err.find("(code -32003)"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST_F(TocsinctlTest, WaitTimeoutExitsFour) {
  start();
  auto r = ctl({"wait", "loose", "--timeout", "50ms"});
  EXPECT_EQ(r.exit_code, 4) << r.err << log();
  EXPECT_EQ(r.out, "");
}

TEST_F(TocsinctlTest, JsonTableParsesAsJson) {
  start();
  auto r = ctl({"--json", "table"});
  ASSERT_EQ(r.exit_code, 0) << r.err << log();
  auto lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), 1u) << r.out;
  Json j = Json::parse(lines[0], nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << r.out;
  ASSERT_TRUE(j["signals"].is_array()) << r.out;
  bool found = false;
  for (auto s : j["signals"]) {
    if (s["signal"] == 17) {
      found = true;
      EXPECT_EQ(s["name"], "news") << s.dump();
    }
  }
  EXPECT_TRUE(found) << r.out;
}

TEST_F(TocsinctlTest, StatusAndMetrics) {
  start();
  auto status = ctl({"status"});
  ASSERT_EQ(status.exit_code, 0) << status.err << log();
  Json j = Json::parse(status.out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << status.out;
  EXPECT_EQ(j["pid"], daemon->pid()) << status.out;

  // Prometheus text, as is: not JSON unless --json.
  auto metrics = ctl({"metrics"});
  ASSERT_EQ(metrics.exit_code, 0) << metrics.err << log();
  EXPECT_TRUE(Json::parse(metrics.out, nullptr, false).is_discarded()) << metrics.out;
  auto metrics_json = ctl({"--json", "metrics"});
  ASSERT_EQ(metrics_json.exit_code, 0) << metrics_json.err;
  EXPECT_TRUE(Json::parse(metrics_json.out)["text"].is_string()) << metrics_json.out;
}

TEST_F(TocsinctlTest, WaitPrintsTheEvent) {
  start();
  Tocsinctl waiter({"--socket", sock, "wait", "loose", "--timeout", "10s"});
  // tocsinctl's wait cannot be observed from outside, so raise until the waiter gets one: events
  // with no waiter count as unhandled and are gone.
  auto c = connect();
  ASSERT_TRUE(c);
  auto deadline = deadline_in(kWait);
  bool running = true;
  while (running && waiter.out().empty() && std::chrono::steady_clock::now() < deadline) {
    ASSERT_TRUE(c->raise("loose", "awaited").ok()) << log();
    running = waiter.pump(deadline_in(milliseconds(20)));
  }
  auto r = waiter.finish();
  ASSERT_EQ(r.exit_code, 0) << r.err << log();
  Json ev = Json::parse(r.out, nullptr, false);
  ASSERT_TRUE(ev.is_object()) << r.out;
  EXPECT_EQ(ev["name"], "loose");
  EXPECT_EQ(ev["payload"], "awaited");
}

TEST_F(TocsinctlTest, SubscribePrintsEventsUntilCount) {
  start();
  Tocsinctl sub({"--socket", sock, "subscribe", "news", "--count", "2"});
  auto c = connect();
  ASSERT_TRUE(c);
  // Wait until status shows tocsinctl's subscription (this test's own connection has none).
  auto deadline = deadline_in(kWait);
  bool subscribed = false;
  while (!subscribed && std::chrono::steady_clock::now() < deadline) {
    auto st = c->call("status");
    ASSERT_TRUE(st.ok()) << st.error().message << log();
    for (const auto& cl : st->value("clients_detail", Json::array())) {
      if (cl.value("subscriptions", 0) >= 1) subscribed = true;
    }
    if (!subscribed) sub.pump(deadline_in(milliseconds(20)));
  }
  ASSERT_TRUE(subscribed) << "tocsinctl subscribe never showed up in status" << log();
  auto s1 = c->raise("news", "first");
  auto s2 = c->raise("news", "second");
  ASSERT_TRUE(s1.ok() && s2.ok()) << log();
  auto r = sub.finish();
  ASSERT_EQ(r.exit_code, 0) << r.err << log();
  auto lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), 2u) << r.out;
  Json e1 = Json::parse(lines[0]);
  Json e2 = Json::parse(lines[1]);
  EXPECT_EQ(e1["seq"], *s1);
  EXPECT_EQ(e1["payload"], "first");
  EXPECT_EQ(e2["seq"], *s2);
  EXPECT_EQ(e2["payload"], "second");
}

// tocsinctl subscribe --ack --prefetch 2 holds at most two events at once, acks each it prints,
// and the credit shows in status while it runs.
TEST_F(TocsinctlTest, SubscribeWithAckAndPrefetchHoldsThatCreditAndAcksWhatItPrints) {
  start();
  Tocsinctl sub({"--socket", sock, "subscribe", "jobs", "--ack", "--prefetch", "2", "--count",
                 "3"});
  auto c = connect();
  ASSERT_TRUE(c);
  auto deadline = deadline_in(kWait);
  Json mine;
  while (mine.is_null() && std::chrono::steady_clock::now() < deadline) {
    auto st = c->call("status");
    ASSERT_TRUE(st.ok()) << st.error().message << log();
    for (const auto& cl : st->value("clients_detail", Json::array())) {
      if (cl.value("subscriptions", 0) >= 1) mine = cl;
    }
    if (mine.is_null()) sub.pump(deadline_in(milliseconds(20)));
  }
  ASSERT_FALSE(mine.is_null()) << "tocsinctl subscribe never showed up in status" << log();
  EXPECT_EQ(mine["prefetch"], 2) << mine.dump();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(c->raise("jobs", std::to_string(i)).ok()) << log();
  auto r = sub.finish();
  ASSERT_EQ(r.exit_code, 0) << r.err << log();
  auto lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), 3u) << r.out;
  for (int i = 0; i < 3; ++i) {
    Json e = Json::parse(lines[static_cast<std::size_t>(i)]);
    EXPECT_EQ(e["payload"], std::to_string(i));
    EXPECT_EQ(e["delivery"], 1);
  }
  // All three acked: the table counts one-of deliveries at the ack.
  auto table = c->call("table");
  ASSERT_TRUE(table.ok());
  for (const auto& e : (*table)["signals"]) {
    if (e["signal"] == 19) {
      EXPECT_EQ(e["delivered"], 3) << e.dump();
    }
  }
  auto bad = ctl({"subscribe", "jobs", "--prefetch", "2"});
  EXPECT_NE(bad.exit_code, 0) << "--prefetch without --ack is refused";
}

}  // namespace
}  // namespace tocsin::testing

namespace tocsin::testing {
namespace {

TEST_F(TocsinctlTest, AddTimerAndRemove) {
  start();
  auto added = ctl({"add-timer", "news", "1h", "--id", "hourly", "--iterations", "2"});
  ASSERT_EQ(added.exit_code, 0) << added.err << log();
  EXPECT_EQ(Json::parse(added.out)["id"], "hourly");
  auto rb = ctl({"add-rb-timer", "17", "250ms"});
  ASSERT_EQ(rb.exit_code, 0) << rb.err << log();
  std::string rb_id = Json::parse(rb.out)["id"];
  EXPECT_EQ(rb_id.rfind("rb_timer:", 0), 0u) << rb_id;
  auto status = ctl({"--json", "status"});
  Json sources = Json::parse(status.out)["sources"];
  EXPECT_EQ(sources["timers"], 1) << status.out;
  EXPECT_EQ(sources["rb_timers"], 1) << status.out;
  EXPECT_EQ(ctl({"remove", "hourly"}).exit_code, 0);
  EXPECT_EQ(ctl({"remove", rb_id}).exit_code, 0);
  auto again = ctl({"remove", "hourly"});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.err.find("-32005"), std::string::npos) << again.err;
  EXPECT_EQ(ctl({"add-timer", "news", "5"}).exit_code, 1) << "a unit is required";
}

TEST_F(TocsinctlTest, RemoveForceRemovesASourceOthersDeclare) {
  start();
  auto worker = connect();
  ASSERT_TRUE(worker);
  auto r = worker->call("add_timer", {{"id", "shared"}, {"signal", "news"}, {"every", "1h"}});
  ASSERT_TRUE(r) << r.error().message;
  auto refused = ctl({"remove", "shared"});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("-32008"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("force"), std::string::npos) << refused.err;
  EXPECT_EQ(ctl({"remove", "shared", "--force"}).exit_code, 0) << log();
  EXPECT_EQ(ctl({"remove", "shared", "--force"}).exit_code, 1);
}

}  // namespace
}  // namespace tocsin::testing
