#include "server/peer.h"

#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

namespace tocsin {

namespace asio = boost::asio;

bool acl_allows(const std::optional<std::vector<std::string>>& list, const Peer& peer) {
  if (!list) return true;
  for (const auto& who : *list) {
    if (!who.empty() && who[0] == '@') {
      std::string_view g = std::string_view(who).substr(1);
      if (std::find(peer.groups.begin(), peer.groups.end(), g) != peer.groups.end()) return true;
    } else if (who == peer.user) {
      return true;
    }
  }
  return false;
}

Peer read_credentials(int fd) {
  Peer p;
  ucred cred{};
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
    p.uid = cred.uid;
    p.gid = cred.gid;
    p.pid = cred.pid;
  }
  std::vector<gid_t> gids(64);
  socklen_t glen = static_cast<socklen_t>(gids.size() * sizeof(gid_t));
  if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, gids.data(), &glen) != 0 && errno == ERANGE) {
    gids.resize(glen / sizeof(gid_t) + 1);
    glen = static_cast<socklen_t>(gids.size() * sizeof(gid_t));
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, gids.data(), &glen) != 0) glen = 0;
  }
  gids.resize(glen / sizeof(gid_t));
  if (std::find(gids.begin(), gids.end(), p.gid) == gids.end()) gids.push_back(p.gid);
  p.gids = std::move(gids);
  return p;
}

namespace {

using Clock = std::chrono::steady_clock;

std::string lookup_user(uid_t uid) {
  passwd pw{};
  passwd* found = nullptr;
  std::vector<char> buf(4096);
  if (getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) == 0 && found) return pw.pw_name;
  return std::to_string(uid);
}

std::string lookup_group(gid_t gid) {
  group gr{};
  group* found = nullptr;
  std::vector<char> buf(4096);
  if (getgrgid_r(gid, &gr, buf.data(), buf.size(), &found) == 0 && found) return gr.gr_name;
  return std::to_string(gid);
}

struct Name {
  std::string name;
  Clock::time_point at;
};

// A bounded map of names: when full, the stalest entries go.
template <typename Id>
class Names {
 public:
  std::optional<std::string> fresh(Id id, Clock::time_point now) const {
    auto it = map_.find(id);
    if (it == map_.end() || now - it->second.at > NameCache::kFresh) return std::nullopt;
    return it->second.name;
  }
  void put(Id id, std::string name, Clock::time_point now) {
    if (map_.size() >= NameCache::kMaxEntries && !map_.contains(id)) {
      for (auto it = map_.begin(); it != map_.end();) {
        it = now - it->second.at > NameCache::kFresh ? map_.erase(it) : std::next(it);
      }
      if (map_.size() >= NameCache::kMaxEntries) map_.erase(map_.begin());
    }
    map_[id] = Name{std::move(name), now};
  }

 private:
  std::unordered_map<Id, Name> map_;
};

}  // namespace

// What the reactor and the lookup thread share. The thread is detached: a lookup stuck in NSS
// must not hold up the daemon's stop, so the thread may outlive the NameCache, and finds
// `stopped` set (under the mutex) instead of posting to a reactor that is gone.
struct NameCache::Shared {
  struct Request {
    Peer peer;
    std::string admin_group;
    std::function<void(Peer)> done;
  };
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Request> queue;
  // The request being looked up. It stays here, not on the lookup thread's stack, so that a stop
  // during the lookup destroys it on the reactor's thread: its `done` holds the accepted socket,
  // whose destructor must not run on another thread while the reactor is torn down.
  std::optional<Request> in_flight;
  bool stopped = false;
  bool running = false;
  asio::io_context* io = nullptr;
  Names<uid_t> users;
  Names<gid_t> groups;
  std::uint64_t lookups = 0;
};

namespace {

// Names from the cache; false when one is missing or stale.
bool from_cache(NameCache::Shared& s, Peer& p, Clock::time_point now) {
  auto user = s.users.fresh(p.uid, now);
  if (!user) return false;
  std::vector<std::string> groups;
  for (gid_t g : p.gids) {
    auto name = s.groups.fresh(g, now);
    if (!name) return false;
    groups.push_back(std::move(*name));
  }
  p.user = std::move(*user);
  p.groups = std::move(groups);
  return true;
}

void finish(Peer& p, const std::string& admin_group) {
  // Root, the daemon's own user (it could signal the daemon anyway; systemd runs ExecReload as
  // that user), or a member of socket.admin_group.
  p.admin = p.uid == 0 || p.uid == ::geteuid() ||
            (!admin_group.empty() &&
             std::find(p.groups.begin(), p.groups.end(), admin_group) != p.groups.end());
}

void lookup_loop(std::shared_ptr<NameCache::Shared> s) {
  std::unique_lock lock(s->mu);
  while (true) {
    s->cv.wait(lock, [&] { return s->stopped || !s->queue.empty(); });
    if (s->stopped) return;
    s->in_flight = std::move(s->queue.front());
    s->queue.pop_front();
    Peer& peer = s->in_flight->peer;
    // Names another request brought meanwhile are used; the rest are looked up, unlocked.
    const auto now = Clock::now();
    if (!from_cache(*s, peer, now)) {
      const uid_t uid = peer.uid;
      const std::vector<gid_t> gids = peer.gids;
      lock.unlock();
      std::string user = lookup_user(uid);
      std::vector<std::string> groups;
      for (gid_t g : gids) groups.push_back(lookup_group(g));
      lock.lock();
      ++s->lookups;
      s->users.put(uid, user, now);
      for (std::size_t i = 0; i < groups.size(); ++i) s->groups.put(gids[i], groups[i], now);
      if (s->stopped) return;  // ~NameCache destroyed the request, on the reactor's thread
      s->in_flight->peer.user = std::move(user);
      s->in_flight->peer.groups = std::move(groups);
    }
    if (s->stopped) return;
    NameCache::Shared::Request r = std::move(*s->in_flight);
    s->in_flight.reset();
    finish(r.peer, r.admin_group);
    asio::post(*s->io, [done = std::move(r.done), peer = std::move(r.peer)]() mutable {
      done(std::move(peer));
    });
  }
}

}  // namespace

NameCache::NameCache(asio::io_context& io) : io_(io), shared_(std::make_shared<Shared>()) {
  shared_->io = &io_;
}

NameCache::~NameCache() {
  {
    std::lock_guard lock(shared_->mu);
    shared_->stopped = true;
    shared_->queue.clear();
    shared_->in_flight.reset();
  }
  shared_->cv.notify_all();
}

void NameCache::resolve(Peer peer, std::string admin_group, std::function<void(Peer)> done) {
  {
    std::lock_guard lock(shared_->mu);
    if (from_cache(*shared_, peer, Clock::now())) {
      finish(peer, admin_group);
    } else {
      shared_->queue.push_back(
          Shared::Request{std::move(peer), std::move(admin_group), std::move(done)});
      if (!shared_->running) {
        shared_->running = true;
        std::thread(lookup_loop, shared_).detach();
      }
      shared_->cv.notify_one();
      return;
    }
  }
  done(std::move(peer));
}

std::uint64_t NameCache::lookups() const {
  std::lock_guard lock(shared_->mu);
  return shared_->lookups;
}

}  // namespace tocsin
