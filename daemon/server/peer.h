// peer.h — who is on the other end of a connection (SPEC §7): SO_PEERCRED and SO_PEERGROUPS,
// read once per connection, and the names of that user and those groups, which ACLs and status
// speak in.
//
// Names come from NSS, which may ask LDAP or sssd over the network and block for seconds, so they
// are never looked up on the reactor: NameCache answers from a bounded cache of recent lookups,
// and looks up what it lacks on a thread of its own, handing the finished Peer back to the
// reactor. A connection is not read from until its Peer is known.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace tocsin {

struct Peer {
  uid_t uid = 0;
  gid_t gid = 0;
  pid_t pid = 0;
  std::vector<gid_t> gids;          // gid and the supplementary groups
  std::string user;                 // name of uid, or the number as text
  std::vector<std::string> groups;  // names of gids
  bool admin = false;               // root, the daemon's user, or a member of socket.admin_group
};

// Whether `peer` passes an ACL list ("user", "@group"); an absent list lets everyone through.
bool acl_allows(const std::optional<std::vector<std::string>>& list, const Peer& peer);

// The credentials of a connected Unix socket (names not filled in).
Peer read_credentials(int fd);

class NameCache {
 public:
  static constexpr std::size_t kMaxEntries = 4096;   // users and groups each
  static constexpr std::chrono::seconds kFresh{60};  // a name older than this is looked up again

  explicit NameCache(boost::asio::io_context& io);
  ~NameCache();
  NameCache(const NameCache&) = delete;
  NameCache& operator=(const NameCache&) = delete;

  // Fills in `peer`'s names and admin flag and calls `done` with it on the reactor: at once when
  // every name is cached, else after the lookup thread found them. Reactor thread only.
  void resolve(Peer peer, std::string admin_group, std::function<void(Peer)> done);
  // Lookups done off the reactor so far (tests and status).
  std::uint64_t lookups() const;

  struct Shared;

 private:
  boost::asio::io_context& io_;
  std::shared_ptr<Shared> shared_;
};

}  // namespace tocsin
