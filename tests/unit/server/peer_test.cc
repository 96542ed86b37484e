// NameCache (daemon/server/peer.h): names are looked up off the reactor, handed back on it, and
// kept, so that the second connection of a user needs no lookup.
#include "server/peer.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <thread>

#include "fakes/daemon_process.h"

namespace tocsin {
namespace {

// Runs the reactor until `done` is set (the lookup thread posts to it), at most 10 s.
void run_until(boost::asio::io_context& io, const std::optional<Peer>& done) {
  auto work = boost::asio::make_work_guard(io);
  for (auto until = testing::deadline_in(testing::kWait);
       !done && std::chrono::steady_clock::now() < until;) {
    io.run_for(std::chrono::milliseconds(10));
    io.restart();
  }
}

TEST(NameCache, LooksUpOffTheReactorOnceAndAnswersOnIt) {
  boost::asio::io_context io;
  NameCache names(io);
  Peer p;
  p.uid = 0;
  p.gid = 0;
  p.gids = {0};
  std::optional<Peer> got;
  std::thread::id answered_on;
  names.resolve(p, "", [&](Peer done) {
    answered_on = std::this_thread::get_id();
    got = std::move(done);
  });
  EXPECT_FALSE(got) << "the first lookup is not made on the caller's thread";
  run_until(io, got);
  ASSERT_TRUE(got);
  EXPECT_EQ(answered_on, std::this_thread::get_id()) << "answered on the reactor";
  EXPECT_EQ(got->user, "root");
  EXPECT_EQ(got->groups, std::vector<std::string>{"root"});
  EXPECT_TRUE(got->admin);
  EXPECT_EQ(names.lookups(), 1u);

  // Cached: answered at once, without another lookup.
  got.reset();
  names.resolve(p, "", [&](Peer done) { got = std::move(done); });
  ASSERT_TRUE(got);
  EXPECT_EQ(got->user, "root");
  EXPECT_EQ(names.lookups(), 1u);
}

TEST(NameCache, AnUnknownUidIsItsNumberAndTheAdminGroupIsByName) {
  boost::asio::io_context io;
  NameCache names(io);
  Peer p;
  p.uid = 4000123;  // no such user
  p.gid = 0;
  p.gids = {0};
  std::optional<Peer> got;
  names.resolve(p, "root", [&](Peer done) { got = std::move(done); });
  run_until(io, got);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->user, "4000123");
  EXPECT_TRUE(got->admin) << "a member of socket.admin_group";
  got.reset();
  names.resolve(p, "wheel-of-nothing", [&](Peer done) { got = std::move(done); });
  ASSERT_TRUE(got);
  EXPECT_EQ(got->admin, ::geteuid() == 4000123u);
}

}  // namespace
}  // namespace tocsin
