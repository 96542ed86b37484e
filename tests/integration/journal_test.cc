// Log lines in a real systemd-journald (issue 17, item 5): the journald binary from Debian's
// systemd package runs in a private mount namespace of its own (a tmpfs over /run, so its sockets
// and its journal files are the test's and nothing of the host's), tocsind is started inside that
// namespace with stderr marked as the journal (JOURNAL_STREAM), and `journalctl` reads the fields
// back from the journal files. Needs root (mount namespaces); skipped otherwise.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "fakes/daemon_process.h"
#include "fakes/line_client.h"
#include "fakes/temp_dir.h"

namespace tocsin::testing {
namespace {

using Json = nlohmann::json;

constexpr const char* kJournald = "/lib/systemd/systemd-journald";

std::string capture(const std::string& command) {
  std::string out;
  FILE* p = ::popen(command.c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  ::pclose(p);
  return out;
}

// journalctl -o json: one object a line.
std::vector<Json> entries(const std::string& journal_dir, const std::string& match) {
  std::vector<Json> out;
  std::istringstream lines(
      capture("journalctl --no-pager -q -o json -D " + journal_dir + " " + match + " 2>/dev/null"));
  for (std::string line; std::getline(lines, line);) {
    Json j = Json::parse(line, nullptr, false);
    if (!j.is_discarded()) out.push_back(std::move(j));
  }
  return out;
}

std::string field(const Json& entry, const char* name) {
  return entry.contains(name) && entry[name].is_string() ? entry[name].get<std::string>() : "";
}

// A systemd-journald of the test's own: stopped by its PID when the test ends.
class Journald {
 public:
  Journald()
      : process_({"unshare", "-m", "--propagation", "private", "--", "sh", "-c",
                  "mount -t tmpfs tocsin-test /run && mkdir -p /run/systemd/journal "
                  "/run/log/journal && { [ ! -d /var/log/journal ] || mount -t tmpfs tocsin-test "
                  "/var/log/journal; } && exec " +
                      std::string(kJournald)},
                 {}) {}
  // /proc/PID/root reaches into its mount namespace.
  std::string root() const { return "/proc/" + std::to_string(process_.pid()) + "/root"; }
  std::string journal_dir() const { return root() + "/run/log/journal"; }
  bool wait_listening() const {
    struct stat st {};
    const std::string socket = root() + "/run/systemd/journal/socket";
    return poll_until([&] { return ::stat(socket.c_str(), &st) == 0; }, [](bool up) { return up; });
  }
  pid_t pid() const { return process_.pid(); }
  void stop() {
    process_.send(SIGTERM);
    process_.wait_exit(deadline_in(kWait));
  }
  std::string log() const { return process_.log(); }

 private:
  DaemonProcess process_;
};

bool can_run_journald() {
  if (::geteuid() != 0 || ::access(kJournald, X_OK) != 0) return false;
  return std::system("unshare -m --propagation private true >/dev/null 2>&1") == 0 &&
         std::system("command -v journalctl >/dev/null 2>&1") == 0;
}

constexpr const char* kConfig =
    "signals:\n"
    "  17: {name: deploy, max_deliveries: 2, handlers: [{log: info}, {target: subscriber}]}\n"
    "limits: {ack_timeout: 100ms}\n";

TEST(Journal, EventLinesCarryStructuredFieldsThatJournalctlFilters) {
  if (!can_run_journald()) {
    GTEST_SKIP() << "needs root, unshare -m and systemd-journald (Debian package systemd)";
  }
  TempDir dir;
  std::string config = dir.write("tocsin.yaml", kConfig);
  Journald journald;
  ASSERT_TRUE(journald.wait_listening()) << "journald did not listen: " << journald.log();

  // tocsind in journald's namespace, its stderr (the harness's pipe) marked as the journal.
  std::string script = "st=$(stat -L -c '%d:%i' /proc/self/fd/2); JOURNAL_STREAM=$st exec " +
                       std::string(TOCSIND_PATH) + " --config " + config + " --socket " +
                       dir.file("s.sock");
  DaemonProcess d({"nsenter", "-t", std::to_string(journald.pid()), "-m", "--", "sh", "-c", script},
                  {});
  // The ready line goes to the journal, not stderr: wait for it there.
  auto ready = poll_until([&] { return entries(journald.journal_dir(), "SYSLOG_IDENTIFIER=tocsind"); },
                          [](const std::vector<Json>& e) { return !e.empty(); });
  ASSERT_FALSE(ready.empty()) << "nothing from tocsind in the journal; stderr: " << d.log();
  EXPECT_EQ(field(ready.front(), "PRIORITY"), "6");
  EXPECT_EQ(field(ready.front(), "TOCSIN_SIGNAL"), "") << "a line about no event names none";

  LineClient c(dir.file("s.sock"));
  Json st = c.call("status");
  ASSERT_EQ(st["result"]["clients_detail"].size(), 1u) << st.dump();
  const std::string client = std::to_string(st["result"]["clients_detail"][0]["client"].get<int>());
  Json r = c.call("raise", {{"signal", "deploy"}, {"payload", "release 42"}});
  ASSERT_TRUE(r.contains("result")) << r.dump();
  const std::string seq = std::to_string(r["result"]["seq"].get<std::uint64_t>());

  // `journalctl TOCSIN_SIGNAL=17`, as the operator types it (-t tocsind: the unit's identifier).
  auto lines = poll_until(
      [&] { return entries(journald.journal_dir(), "-t tocsind TOCSIN_SIGNAL=17"); },
      [](const std::vector<Json>& e) { return !e.empty(); });
  ASSERT_EQ(lines.size(), 1u) << "stderr: " << d.log();
  const Json& e = lines.front();
  EXPECT_NE(field(e, "MESSAGE").find("payload \"release 42\""), std::string::npos) << e.dump();
  EXPECT_EQ(field(e, "TOCSIN_SIGNAL_NAME"), "deploy");
  EXPECT_EQ(field(e, "TOCSIN_SEQ"), seq);
  EXPECT_EQ(field(e, "TOCSIN_SOURCE_KIND"), "raise");
  EXPECT_EQ(field(e, "CODE_FILE"), "") << "the sink's own location is no use to anyone";
  EXPECT_EQ(field(e, "TOCSIN_CLIENT"), client) << e.dump();
  EXPECT_EQ(field(e, "PRIORITY"), "6");

  // A line from later, off the raise's stack: a one-of event nobody acks is handed back at the
  // ack timeout, and the warning names the event and the holder.
  LineClient worker(dir.file("s.sock"));
  Json sub = worker.call("subscribe", {{"signals", {"deploy"}}, {"ack", true}});
  ASSERT_TRUE(sub.contains("result")) << sub.dump();
  Json w = worker.call("status");
  std::string holder;
  for (const auto& cl : w["result"]["clients_detail"]) {
    if (!cl["subscriptions"].empty()) holder = std::to_string(cl["client"].get<int>());
  }
  Json r2 = c.call("raise", {{"signal", 17}});
  ASSERT_TRUE(r2.contains("result")) << r2.dump();
  const std::string seq2 = std::to_string(r2["result"]["seq"].get<std::uint64_t>());
  auto late = poll_until(
      [&] {
        return entries(journald.journal_dir(),
                       "TOCSIN_SEQ=" + seq2 + " TOCSIN_CLIENT=" + holder + " PRIORITY=4");
      },
      [](const std::vector<Json>& v) { return !v.empty(); });
  ASSERT_FALSE(late.empty()) << "no ack-timeout warning for seq " << seq2 << " holder " << holder
                             << "; stderr: " << d.log();
  EXPECT_NE(field(late.front(), "MESSAGE").find("did not ack"), std::string::npos)
      << late.front().dump();
  EXPECT_EQ(field(late.front(), "TOCSIN_SIGNAL"), "17");
  EXPECT_EQ(d.log(), "") << "with the journal reachable nothing goes to stderr";

  // journald gone: the lines still reach stderr (the journal's stream) with their priority.
  journald.stop();
  Json r3 = c.call("raise", {{"signal", "deploy"}, {"payload", "after journald"}});
  ASSERT_TRUE(r3.contains("result")) << r3.dump();
  std::string fallback = d.expect_line("after journald");
  EXPECT_EQ(fallback.rfind("<6>info signal 17 (deploy) seq ", 0), 0u) << fallback;
  d.send(SIGTERM);
  EXPECT_TRUE(d.wait_exit(deadline_in(kWait)));
}

}  // namespace
}  // namespace tocsin::testing
