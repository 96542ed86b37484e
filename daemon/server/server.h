// server.h — the Unix-socket server (SPEC §6, §7; docs/protocol.md).
//
// Server owns the listening socket and the sessions (one per connection). Each session reads
// newline-delimited JSON-RPC, answers through the methods below, and writes the events the Hub
// queues for it. The reactor never blocks on a client: reads and writes are asynchronous, a
// client's events wait in its bounded Hub queue, and a client that sends requests without reading
// replies is not read from until it catches up.
//
// What the methods need from the rest of the daemon comes through ServerHost (implemented by the
// Daemon), so the server knows nothing of configuration files or sources.
// Reactor thread only.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string_view>
#include <utility>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tocsin/config.h"
#include "tocsin/dispatcher.h"
#include "tocsin/result.h"

namespace boost::asio {
class io_context;
}

namespace tocsin {

struct CronStateHealth;  // sources/cron_source.h

class Hub;
class ServerCore;

// A run-time view of one timer source, for `status`.
struct SourceInfo {
  std::string id;
  SourceKind kind = SourceKind::timer;
  SignalId signal = 0;
  std::int64_t every_ms = 0;
  std::string_view clock;
  std::uint64_t iterations = 0;
  std::uint64_t fired = 0;
  std::uint64_t overruns = 0;
  std::int64_t next_in_ms = 0;
  bool from_config = false;
};

struct CronInfo {
  std::string id;
  SignalId signal = 0;
  std::string schedule;
  std::string zone;
  std::string missed_policy;  // skip | once
  std::string next;           // ISO 8601 in the job's zone; empty when there is none
  std::uint64_t fired = 0;
  std::uint64_t missed = 0;
  std::uint64_t iterations = 0;
  bool from_config = false;
};

// A run-time view of one file monitor, for `status`.
struct FileMonitorInfo {
  std::string id;
  SignalId signal = 0;
  std::string path;
  bool recursive = false;
  std::string degraded;  // empty: ok; else why not
  std::size_t watches = 0;
  std::size_t unwatched = 0;
  std::uint64_t iterations = 0;
  std::uint64_t batches = 0;
  bool from_config = false;
};

struct FileMonitorSummary {
  std::size_t count = 0;
  std::size_t degraded = 0;
  std::size_t watches = 0;     // kernel watches, shared by monitors
  std::uint64_t overflows = 0; // inotify queue overflows since the start
  std::vector<FileMonitorInfo> list;
};

class ServerHost {
 public:
  virtual ~ServerHost() = default;
  virtual Dispatcher& dispatcher() = 0;
  virtual const SignalStats& stats() const = 0;
  virtual const config::Config& config() const = 0;
  // Re-reads the configuration; the error lists every problem as file:line:column: message.
  virtual Result<void> reload() = 0;
  virtual Result<void> register_target(SignalId signal, const config::TargetHandler& target) = 0;
  virtual Result<void> unregister_target(SignalId signal, const config::TargetHandler& target) = 0;
  virtual std::size_t children() const = 0;
  virtual double uptime_seconds() const = 0;
  // Run-time sources (add_timer, add_rb_timer, remove_source). `spec.id` may be empty: the host
  // generates one. Returns the id.
  virtual Result<std::string> add_timer(config::TimerSpec spec, SourceKind kind) = 0;
  virtual Result<std::string> add_cron(config::CronSpec spec) = 0;
  virtual Result<void> remove_source(const std::string& id) = 0;
  virtual std::size_t cron_count() const = 0;
  virtual std::vector<CronInfo> cron_list(std::size_t limit) const = 0;
  // How the last write of the cron state file went (sources/cron_source.h).
  virtual CronStateHealth cron_state() const = 0;
  // Each running plugin's own status, by name.
  virtual nlohmann::json plugins_status() const = 0;
  // For status: the timer counts (kernel, rb) and up to `limit` of each kind with their state.
  virtual std::pair<std::size_t, std::size_t> timer_counts() const = 0;
  virtual std::vector<SourceInfo> timer_list(std::size_t limit) const = 0;
  // add_file_monitor: as add_timer. Errors: -32602 (bad path or match, id taken), -32002.
  virtual Result<std::string> add_file_monitor(config::FileMonitorSpec spec) = 0;
  virtual FileMonitorSummary file_monitors(std::size_t limit) const = 0;
};

// Who is on the other end of a connection (SO_PEERCRED, SO_PEERGROUPS), resolved once at accept.
struct Peer {
  uid_t uid = 0;
  gid_t gid = 0;
  pid_t pid = 0;
  std::string user;                 // name of uid, or the number as text
  std::vector<std::string> groups;  // names of gid and the supplementary groups
  bool admin = false;               // root, or a member of socket.admin_group
};

// Whether `peer` passes an ACL list ("user", "@group"); an absent list lets everyone through.
bool acl_allows(const std::optional<std::vector<std::string>>& list, const Peer& peer);

class Server {
 public:
  Server(boost::asio::io_context& io, Hub& hub, ServerHost& host);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and listens on socket.path (replacing a stale socket file, refusing a live one), sets
  // its mode and group, and starts accepting. With `activated_fd` (socket activation) it accepts
  // on that listening socket instead; systemd owns its path, mode and group.
  Result<void> start(const config::SocketSpec& socket, const config::Limits& limits,
                     std::optional<int> activated_fd = std::nullopt);
  // New limits after a reload (socket settings need a restart).
  void set_limits(const config::Limits& limits);
  // Stops accepting; every session writes what it has queued, then closes. `done` runs when the
  // last session is closed (at once if none).
  void stop(std::function<void()> done);
  std::size_t sessions() const;
  // The dispatcher's unhandled sink: hands the event to the oldest matching `wait`.
  bool offer_unhandled(const EventPtr& event);
  const std::string& path() const;

  ServerCore& core() { return *core_; }

 private:
  std::unique_ptr<ServerCore> core_;
};

}  // namespace tocsin
