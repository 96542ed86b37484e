// server.h — the Unix-socket server (SPEC §6, §7; docs/protocol.md).
//
// Server owns the listening socket and the sessions (one per connection). Each session reads
// newline-delimited JSON-RPC, answers through the methods below, and writes the events the Hub
// queues for it. The reactor never blocks on a client: reads and writes are asynchronous, a
// client's events wait in its bounded Hub queue, and a client that sends requests without reading
// replies is not read from until it catches up.
//
// What the methods need from the rest of the daemon comes through ServerHost (implemented by the
// Daemon); sources are reached through the SourceRegistry, so the server names no source kind.
// Reactor thread only.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "tocsin/config.h"
#include "tocsin/dispatcher.h"
#include "tocsin/result.h"

namespace boost::asio {
class io_context;
}

namespace tocsin {

class Hub;
class ServerCore;
class SourceRegistry;

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
  // Every source kind: `add_*`, `remove_source`, status and metrics go through it.
  virtual SourceRegistry& sources() = 0;
  // Each running plugin's own status, by name.
  virtual nlohmann::json plugins_status() const = 0;
  // Where the Prometheus endpoint listens ("127.0.0.1:9750"), or "" when it is off.
  virtual std::string metrics_endpoint() const { return {}; }
};

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
  // The Prometheus text of the `metrics` method (and of GET /metrics).
  std::string metrics_text() const;

 private:
  std::unique_ptr<ServerCore> core_;
};

}  // namespace tocsin
