// The systemd protocols at their own level (no service manager is ever started): sd_notify
// messages on a test-owned NOTIFY_SOCKET, watchdog pings, socket activation through
// systemd-socket-activate, and "<N>" priority prefixes when stderr is the journal but its native
// socket is missing.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "fakes/daemon_process.h"
#include "fakes/line_client.h"
#include "fakes/temp_dir.h"

namespace tocsin::testing {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

// A datagram socket standing in for systemd's notification socket.
class NotifySocket {
 public:
  explicit NotifySocket(const std::string& path) : path_(path) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ADD_FAILURE() << "bind " << path << ": " << std::strerror(errno);
    }
  }
  ~NotifySocket() { ::close(fd_); }
  // The next message that contains `needle`; the others are skipped. nullopt at the deadline.
  std::optional<std::string> expect(const std::string& needle, Deadline deadline) {
    while (std::chrono::steady_clock::now() < deadline) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count()) + 1) <= 0) continue;
      char buf[4096];
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) continue;
      std::string msg(buf, static_cast<std::size_t>(n));
      seen.push_back(msg);
      if (msg.find(needle) != std::string::npos) return msg;
    }
    return std::nullopt;
  }
  std::vector<std::string> seen;

 private:
  std::string path_;
  int fd_ = -1;
};

constexpr const char* kConfig = "signals:\n  5: {name: news, handlers: [{target: subscribers}]}\n";

TEST(Systemd, NotifiesReadyStatusReloadingAndStopping) {
  TempDir dir;
  NotifySocket notify(dir.file("notify"));
  std::string config = dir.write("tocsin.yaml", kConfig);
  DaemonProcess d({TOCSIND_PATH, "--config", config, "--socket", dir.file("s.sock")},
                  {"NOTIFY_SOCKET=" + dir.file("notify")});
  auto ready = notify.expect("READY=1", deadline_in(kWait));
  ASSERT_TRUE(ready) << d.log();
  EXPECT_NE(ready->find("STATUS=1 signals, 0 sources, 0 clients"), std::string::npos) << *ready;
  // READY=1 comes once the socket listens.
  LineClient c(dir.file("s.sock"));
  EXPECT_TRUE(c.call("version").contains("result"));

  d.send(SIGHUP);
  auto reloading = notify.expect("RELOADING=1", deadline_in(kWait));
  ASSERT_TRUE(reloading) << d.log();
  EXPECT_NE(reloading->find("MONOTONIC_USEC="), std::string::npos) << *reloading;
  EXPECT_TRUE(notify.expect("READY=1", deadline_in(kWait)));

  // A failed reload still ends with READY=1, and says so in STATUS=.
  dir.write("tocsin.yaml", "signals:\n  5: {nme: x}\n");
  d.send(SIGHUP);
  ASSERT_TRUE(notify.expect("RELOADING=1", deadline_in(kWait)));
  auto after_failure = notify.expect("READY=1", deadline_in(kWait));
  ASSERT_TRUE(after_failure);
  EXPECT_NE(after_failure->find("STATUS=reload failed"), std::string::npos) << *after_failure;

  d.send(SIGTERM);
  EXPECT_TRUE(notify.expect("STOPPING=1", deadline_in(kWait)));
  auto status = d.wait_exit(deadline_in(kWait));
  ASSERT_TRUE(status);
  EXPECT_EQ(WEXITSTATUS(*status), 0);
}

TEST(Systemd, PingsTheWatchdogFromTheReactor) {
  TempDir dir;
  NotifySocket notify(dir.file("notify"));
  std::string config = dir.write("tocsin.yaml", kConfig);
  // 200 ms: pings every 100 ms.
  DaemonProcess d({TOCSIND_PATH, "--config", config, "--socket", dir.file("s.sock")},
                  {"NOTIFY_SOCKET=" + dir.file("notify"), "WATCHDOG_USEC=200000"});
  ASSERT_TRUE(notify.expect("READY=1", deadline_in(kWait))) << d.log();
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(notify.expect("WATCHDOG=1", deadline_in(kWait))) << "ping " << i << "\n"
                                                                  << d.log();
  }
  d.expect_line("watchdog: pinging systemd every 100ms");
  // A stopped reactor stops pinging: SIGSTOP, then no ping until SIGCONT.
  ::kill(d.pid(), SIGSTOP);
  notify.expect("no such message", deadline_in(50ms));  // drain what was in flight
  EXPECT_EQ(notify.expect("WATCHDOG=1", deadline_in(300ms)), std::nullopt);
  ::kill(d.pid(), SIGCONT);
  EXPECT_TRUE(notify.expect("WATCHDOG=1", deadline_in(kWait)));
}

TEST(Systemd, ServesOnASocketPassedBySocketActivation) {
  if (::access("/usr/bin/systemd-socket-activate", X_OK) != 0) {
    GTEST_SKIP() << "systemd-socket-activate is not installed (package systemd)";
  }
  TempDir dir;
  std::string config = dir.write("tocsin.yaml", kConfig);
  std::string sock = dir.file("activated.sock");
  DaemonProcess d({"/usr/bin/systemd-socket-activate", "-l", sock, "--fdname=tocsind.socket",
                   TOCSIND_PATH, "--config", config, "--socket", dir.file("unused.sock")},
                  {});
  d.expect_line("Listening on " + sock);  // systemd-socket-activate's own line
  LineClient c(sock);  // the first connection makes it exec tocsind with the socket as fd 3
  Json r = c.call("status");
  EXPECT_EQ(r["result"]["socket"], sock) << r.dump() << d.log();
  d.expect_line("(passed by systemd)");
  struct stat st {};
  EXPECT_NE(::stat(dir.file("unused.sock").c_str(), &st), 0) << "it bound its own socket too";
  d.send(SIGTERM);
  ASSERT_TRUE(d.wait_exit(deadline_in(kWait)));
  EXPECT_EQ(::stat(sock.c_str(), &st), 0) << "the activated socket's file belongs to systemd";
}

// Where the journal's native socket is missing (a container that passes JOURNAL_STREAM on),
// lines go to stderr with their priority: sd_journal_send would drop them without a word.
// journal_test.cc covers the native fields with a real journald.
TEST(Systemd, PriorityPrefixesWhenStderrIsTheJournalButItsSocketIsMissing) {
  if (::access("/run/systemd/journal/socket", F_OK) == 0) {
    GTEST_SKIP() << "this host has a journal socket: lines go to it (journal_test.cc)";
  }
  TempDir dir;
  std::string config = dir.write("tocsin.yaml", kConfig);
  // JOURNAL_STREAM must name stderr's device and inode: tocsind's stderr is the harness's pipe,
  // so it is given through a shell that reads them from /proc.
  std::string script =
      "st=$(stat -L -c '%d:%i' /proc/self/fd/2); JOURNAL_STREAM=$st exec " +
      std::string(TOCSIND_PATH) + " --config " + config + " --socket " + dir.file("s.sock");
  DaemonProcess d({"sh", "-c", script}, {});
  std::string ready = d.expect_line(" ready: ");
  EXPECT_EQ(ready.rfind("<6>info tocsind", 0), 0u) << ready;
  d.send(SIGTERM);
  d.expect_line("<6>info stopped");
}

}  // namespace
}  // namespace tocsin::testing
