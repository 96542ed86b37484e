// client.h — the C++ client of tocsind's socket protocol (docs/protocol.md). Used by tocsinctl,
// the tests and the benchmarks.
//
// A Client owns one connection. It is synchronous and not thread safe: one thread uses it at a
// time. call() sends one request and reads until its reply; notifications (events, overflow
// notices) that arrive meanwhile are kept, in order, for next_notification(). Errors are values:
// a JSON-RPC error reply becomes Error{message, code} (the code mapped back from its number); a
// transport failure has code ErrorCode::transport.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tocsin/result.h"

namespace tocsin {

class Client {
 public:
  using Json = nlohmann::json;
  using Millis = std::chrono::milliseconds;
  static constexpr Millis kDefaultTimeout{30000};

  static Result<Client> connect(const std::string& socket_path);
  Client(Client&&) noexcept;
  Client& operator=(Client&&) noexcept;
  ~Client();

  // One request; returns its `result`, or its `error` as Error{message, code}. Fails with
  // ErrorCode::transport on a transport error or when no reply came within `timeout`.
  Result<Json> call(const std::string& method, Json params = Json::object(),
                    Millis timeout = kDefaultTimeout);
  // Several requests as one JSON-RPC batch line; the results in request order (each a result or
  // an error).
  Result<std::vector<Result<Json>>> call_batch(const std::vector<std::pair<std::string, Json>>& calls,
                                               Millis timeout = kDefaultTimeout);
  // Sends a request without waiting for its reply (pipelining); returns its id. Replies are
  // collected by wait_reply().
  Result<std::int64_t> send(const std::string& method, Json params = Json::object());
  Result<Json> wait_reply(std::int64_t id, Millis timeout = kDefaultTimeout);
  // Sends a JSON-RPC notification: no id, no reply (acks in bulk).
  Result<void> notify(const std::string& method, Json params = Json::object());

  // The next notification ({"method":"signal"|"overflow","params":{…}}), or nullopt when none
  // came within `timeout` (0 = only what is already here) or the connection closed.
  std::optional<Json> next_notification(Millis timeout);

  // Conveniences over call(). `signal` is a number or a name.
  Result<Json> hello(const std::string& name, const std::string& group = "");
  Result<std::uint64_t> raise(const Json& signal, const std::string& payload = "");
  // `prefetch` (with ack): the most unacked one-of events held at once; 0 = the daemon's default.
  Result<std::uint64_t> subscribe(const Json& signals, bool ack = false,
                                  const Json& sources = nullptr, std::uint32_t prefetch = 0);
  Result<void> ack(std::uint64_t seq);
  // Hands an event back: to another subscriber, or (requeue false) to the dead letter.
  Result<void> nack(std::uint64_t seq, bool requeue = true);
  // Acks many events in one notification (no reply: cheap, as a worker batches them).
  Result<void> ack_later(const std::vector<std::uint64_t>& seqs);
  // The event, or null on timeout.
  Result<Json> wait(const Json& signal = nullptr, std::optional<Millis> timeout = std::nullopt);

  int fd() const { return fd_; }
  bool connected() const { return fd_ >= 0; }
  void close();

 private:
  explicit Client(int fd);
  Result<void> write_line(const std::string& line);
  // Reads one line into `out`; false at the deadline, a transport error on EOF or a transport
  // failure, which also close the connection.
  Result<bool> read_line(std::string& out, std::chrono::steady_clock::time_point deadline);
  // Files one incoming line (an object or a batch): notifications and replies are kept for
  // later; an error with a null id (-32700, -32007) is returned, since it answers no request.
  std::optional<Json> file_message(Json msg);
  // Reads until the reply with `id` is here; keeps notifications and other replies.
  Result<Json> await_reply(std::int64_t id, std::chrono::steady_clock::time_point deadline);

  int fd_ = -1;
  std::int64_t next_id_ = 1;
  std::string inbuf_;
  std::deque<Json> notifications_;
  std::vector<Json> replies_;  // replies that arrived before their await
};

}  // namespace tocsin
