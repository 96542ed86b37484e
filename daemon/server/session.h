// session.h — one client connection (internal to daemon/server/).
//
// Two coroutines per session: the reader splits what arrives into lines (at most line_bytes
// each) and answers each request; the writer sends replies and the events the Hub queued, many
// per write. Replies wait in an unbounded list, but the reader stops reading while more than
// kMaxPendingReplyBytes of replies are unsent, so a client that does not read cannot make the
// daemon buffer without bound. Events wait in the Hub's bounded queue.
// The session is kept alive by its coroutines (shared_from_this); close() ends both.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <deque>
#include <list>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "protocol/fast_ack.h"
#include "protocol/fast_raise.h"
#include "dispatch/hub.h"
#include "server/peer.h"
#include "server/server.h"

namespace tocsin {

class ServerCore;

class Session : public std::enable_shared_from_this<Session> {
 public:
  using Socket = boost::asio::local::stream_protocol::socket;
  static constexpr std::size_t kMaxPendingReplyBytes = 4 << 20;

  Session(ServerCore& core, Socket socket, Peer peer);
  ~Session();

  void start();
  // Writes what is queued, then closes (stop).
  void drain_and_close();
  void close();
  bool closed() const { return closed_; }
  // Whether the peer closed its end and sent nothing more (an EOF the reader has not read yet).
  bool peer_gone();

  ClientId client() const { return client_; }
  const Peer& peer() const { return peer_; }
  const std::string& name() const { return name_; }
  const std::string& source_id() const { return source_id_; }
  // After `hello`: the events this client raises carry its name as their source id.
  void set_name(std::string name);

  // Queues a reply line (without '\n') and wakes the writer.
  void send_line(std::string line);

 private:
  boost::asio::awaitable<void> reader();
  boost::asio::awaitable<void> writer();
  void wake_writer();
  void wake_reader();
  void on_line(std::string_view line);
  // The raise fast path (fast_raise.h); false when the line must take the full path. Nothing is
  // raised unless every request of the line is valid.
  bool try_fast_raise(std::string_view line);
  // The ack/nack fast path (fast_ack.h), same contract.
  bool try_fast_settle(std::string_view line);
  // Answers one request object; returns the reply, or null for a notification / deferred reply.
  nlohmann::json handle(const nlohmann::json& request, bool in_batch);
  nlohmann::json dispatch(const std::string& method, const nlohmann::json& params,
                          const nlohmann::json& id, bool in_batch, bool* deferred);
  // The reply to a request that cannot be read as one (parse error, bad shape).
  void send_error(const nlohmann::json& id, ErrorCode code, const std::string& message);

  ServerCore& core_;
  Socket socket_;
  Peer peer_;
  ClientId client_ = 0;
  std::string name_;
  std::string source_id_;  // the event source id of what this client raises
  boost::asio::steady_timer writer_wake_;
  boost::asio::steady_timer reader_wake_;
  std::deque<std::string> replies_;
  std::vector<RaiseRequest> fast_;        // reused across lines
  SettleRequest settle_;
  std::vector<SignalId> fast_signals_;
  std::size_t reply_bytes_ = 0;
  bool closed_ = false;
  bool draining_ = false;
};

}  // namespace tocsin
