// Memory held for a burst goes back to the system once the queues drain (SPEC §5, issue 17):
// the daemon's resident memory, from /proc/PID/status, before a burst to many subscribers that
// do not read, at its peak, and once they are gone. The figure for 100 subscribers is in
// docs/BENCHMARKS.md; this is the same with smaller numbers.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "fakes/daemon_process.h"
#include "fakes/line_client.h"
#include "fakes/temp_dir.h"

namespace tocsin::testing {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

std::size_t rss_kib(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(f, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoul(line.substr(6));
  }
  return 0;
}

TEST(Memory, WhatABurstToSubscribersTookGoesBackOnceTheyAreGone) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "not under the sanitizers: their allocators keep freed memory on purpose "
                  "(ASan's quarantine), so resident memory says nothing about ours";
#endif
  TempDir dir;
  std::string sock = dir.file("tocsin.sock");
  std::string config = dir.write("tocsin.yaml", R"Y(
limits: {subscriber_queue: 1000000}
signals:
  5: {name: news, handlers: [{target: subscribers}]}
)Y");
  DaemonProcess d({"--config", config, "--socket", sock, "--log-level", "debug"});
  d.expect_ready();
  LineClient admin(sock);
  std::vector<LineClient> subs;
  for (int i = 0; i < 20; ++i) {
    subs.emplace_back(sock);
    subs.back().call("subscribe", {{"signals", {"news"}}});  // and never reads
  }
  const std::size_t before = rss_kib(d.pid());
  const int kEvents = 40000;
  const std::string payload(1000, 'x');
  for (int sent = 0; sent < kEvents;) {
    Json batch = Json::array();
    for (int i = 0; i < 500; ++i, ++sent) {
      batch.push_back({{"jsonrpc", "2.0"},
                       {"id", sent},
                       {"method", "raise"},
                       {"params", {{"signal", "news"}, {"payload", payload}}}});
    }
    admin.send(batch);
    ASSERT_TRUE(admin.read(deadline_in(kWait))) << "no reply to a batch of raises";
  }
  // Every queue holds what its socket could not take.
  Json st = status_until(admin, [&](const Json& s) {
    std::size_t queued = 0;
    for (const Json& c : s["clients_detail"]) queued += c["queue"].get<std::size_t>();
    return queued > 20u * kEvents / 2;
  });
  const std::size_t peak = rss_kib(d.pid());
  ASSERT_GT(peak, before + 20 * 1024) << "the burst took less than 20 MiB: no test";
  subs.clear();  // the subscribers go away with their queues
  const std::size_t after = poll_until([&] { return rss_kib(d.pid()); },
                                       [&](std::size_t rss) { return rss <= 2 * before; });
  EXPECT_LE(after, 2 * before) << "resident memory before the burst " << before << " KiB, at its peak "
                               << peak << " KiB, after the subscribers left " << after << " KiB";
  d.expect_line("queues drained after a burst");
}

}  // namespace
}  // namespace tocsin::testing
