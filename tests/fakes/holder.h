// Holder — a one-of subscriber in a process of its own (python3), for tests that kill -9 a
// subscriber holding events. Started with posix_spawn; killed and reaped by its PID.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "fakes/daemon_process.h"

extern char** environ;

namespace tocsin::testing {

// A subscriber process that takes one-of events of `signal`, acks the first `acks` of them and
// holds the rest; it prints "got SEQ" and "acked SEQ". Python: a separate process to kill -9.
// `prefetch` > 0 is sent with the subscription (its credit).
struct Holder {
  pid_t pid = -1;
  int out = -1;
  std::string buf;

  Holder(const std::string& sock, int signal, int acks, int prefetch = 0) {
    std::string code = R"PY(
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
f = s.makefile("rwb")
def call(i, m, p):
    f.write((json.dumps({"jsonrpc": "2.0", "id": i, "method": m, "params": p}) + "\n").encode()); f.flush()
params = {"signals": [int(sys.argv[2])], "ack": True}
if int(sys.argv[4]) > 0: params["prefetch"] = int(sys.argv[4])
call("sub", "subscribe", params)
acks = int(sys.argv[3]); n = 0
while True:
    msg = json.loads(f.readline())
    if msg.get("method") == "signal":
        seq = msg["params"]["seq"]; print("got", seq, flush=True); n += 1
        if n <= acks: call(seq, "ack", {"seq": seq})
    elif msg.get("id") == "sub":
        print("subscribed", flush=True)
    elif "result" in msg:
        print("acked", msg["id"], flush=True)
)PY";
    int fds[2];
    EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    std::vector<std::string> args{"python3", "-c", code, sock, std::to_string(signal),
                                  std::to_string(acks), std::to_string(prefetch)};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    EXPECT_EQ(::posix_spawnp(&pid, "python3", &fa, nullptr, argv.data(), environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    ::close(fds[1]);
    out = fds[0];
  }
  ~Holder() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    ::close(out);
  }
  // Waits until the subscriber has printed the line `want` (in any order with the others).
  bool expect(const std::string& want, Deadline deadline) {
    while (!seen.contains(want)) {
      auto nl = buf.find('\n');
      if (nl != std::string::npos) {
        seen.insert(buf.substr(0, nl));
        buf.erase(0, nl + 1);
        continue;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() < 0) return false;
      pollfd p{out, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count()) + 1) <= 0) continue;
      char chunk[4096];
      ssize_t n = ::read(out, chunk, sizeof chunk);
      if (n <= 0) return false;
      buf.append(chunk, static_cast<std::size_t>(n));
    }
    return true;
  }
  std::set<std::string> seen;
};

}  // namespace tocsin::testing
