// server_core.h — the state the sessions share (internal to daemon/server/): the hub, the host,
// the limits, the waiters of `wait`, the set of live sessions and the peers' names (NameCache).
// Reactor thread only.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <list>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <unordered_set>

#include "dispatch/hub.h"
#include "server/peer.h"
#include "server/server.h"

namespace tocsin {

class Session;

class ServerCore {
 public:
  ServerCore(boost::asio::io_context& io, Hub& hub, ServerHost& host);

  boost::asio::io_context& io;
  Hub& hub;
  ServerHost& host;
  NameCache names;
  config::Limits limits;
  std::string path;
  config::SocketSpec socket_spec;

  // `wait`: the reply goes to `session` with `id` when an unhandled event of `signal` (or any,
  // if none) comes, or null after `timeout`.
  void add_waiter(const std::shared_ptr<Session>& session, nlohmann::json id,
                  std::optional<SignalId> signal, std::optional<std::chrono::milliseconds> timeout);
  // The dispatcher's unhandled sink: gives the event to the oldest matching waiter.
  bool offer_unhandled(const EventPtr& event);
  void drop_waiters(const Session* session);
  std::size_t waiter_count() const { return waiters_.size(); }

  void session_opened(const std::shared_ptr<Session>& s);
  void session_closed(Session* s);
  std::size_t session_count() const { return sessions_.size(); }
  // Connections accepted whose peer's names are still being looked up: they count against
  // limits.clients as sessions do.
  std::size_t resolving = 0;
  std::vector<std::shared_ptr<Session>> sessions() const;
  // Makes the sessions whose peer has closed its sending end, although their reader has not
  // seen the EOF yet, leave the sources they declared (SourceRegistry::client_left), so that
  // `tocsinctl add-timer --id x; tocsinctl remove x` does not find the first tocsinctl still
  // declaring x. Such a session still gets what it is owed, then closes, as at any EOF.
  // `except`: the caller's own session. One recv(MSG_PEEK) per session.
  void release_declarers_of_gone_peers(const Session* except);

  std::function<void()> on_all_closed;
  std::function<void()> stop_accepting;  // set by Server::start; owns the acceptor
  bool owns_path = true;                  // false for a socket passed by systemd
  bool stopping = false;

  // Arms the ack timer for the hub's earliest deadline.
  void rearm_ack_timer();

 private:
  struct Waiter {
    std::weak_ptr<Session> session;
    const Session* owner;
    nlohmann::json id;
    std::optional<SignalId> signal;
    std::unique_ptr<boost::asio::steady_timer> timer;
  };
  std::list<Waiter> waiters_;
  std::unordered_map<Session*, std::weak_ptr<Session>> sessions_;
  boost::asio::steady_timer ack_timer_;
  std::optional<std::chrono::steady_clock::time_point> ack_armed_for_;
};

}  // namespace tocsin
