// client.cc — the blocking Unix-socket client of docs/protocol.md (include/tocsin/client.h).
//
// One connection, newline-delimited JSON. Reads wait in poll() against a deadline; writes are
// complete (partial writes and EINTR retried) and never raise SIGPIPE (MSG_NOSIGNAL). Whatever is
// read while waiting for a reply is sorted: notifications (no `id`) go to notifications_, replies
// to other requests to replies_ (a batch reply array is taken apart into its elements), so that
// replies may come in any order. A transport failure or EOF closes the connection.
#include "tocsin/client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <utility>

#include "protocol/rpc_errors.h"

namespace tocsin {

namespace {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

Error errno_error(const std::string& what, int err) {
  return Error{what + ": " + std::strerror(err), ErrorCode::transport};
}

// Milliseconds left until `deadline` for poll(): -1 for "no deadline", 0 when it has passed.
int poll_timeout(TimePoint deadline) {
  if (deadline == TimePoint::max()) return -1;
  auto now = Clock::now();
  if (deadline <= now) return 0;
  auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - now).count();
  return static_cast<int>(std::min<long long>(left, INT_MAX));
}

TimePoint deadline_after(Client::Millis timeout) {
  auto now = Clock::now();
  if (timeout >= std::chrono::duration_cast<Client::Millis>(TimePoint::max() - now)) {
    return TimePoint::max();
  }
  return now + timeout;
}

bool is_notification(const nlohmann::json& msg) {
  return msg.is_object() && msg.contains("method") && !msg.contains("id");
}

bool has_id(const nlohmann::json& msg, std::int64_t id) {
  if (!msg.is_object()) return false;
  auto it = msg.find("id");
  if (it == msg.end() || !it->is_number_integer()) return false;
  return it->get<std::int64_t>() == id;
}

// A reply with `"id":null` and an error: the daemon could not tell which request it answers (the
// line was not JSON, or too long). As this client only sends well-formed lines, it answers the
// request being waited for.
bool is_orphan_error(const nlohmann::json& msg) {
  if (!msg.is_object() || !msg.contains("error")) return false;
  auto it = msg.find("id");
  return it == msg.end() || it->is_null();
}

// A JSON-RPC error object as an Error. `data`, when present, is appended to the message (a string
// or each element of a list on its own line).
Error to_error(const nlohmann::json& err) {
  Error e;
  e.code = ErrorCode::internal;
  if (!err.is_object()) {
    e.message = "malformed error reply: " + err.dump();
    return e;
  }
  int code = rpc_code(ErrorCode::internal);
  if (auto c = err.find("code"); c != err.end() && c->is_number_integer()) code = c->get<int>();
  e.code = error_code_from_rpc(code);
  if (auto m = err.find("message"); m != err.end() && m->is_string()) {
    e.message = m->get<std::string>();
  } else {
    e.message = "error " + std::to_string(code);
  }
  if (auto d = err.find("data"); d != err.end() && !d->is_null()) {
    if (d->is_string()) {
      e.message += "\n" + d->get<std::string>();
    } else if (d->is_array()) {
      for (const auto& item : *d) {
        e.message += "\n" + (item.is_string() ? item.get<std::string>() : item.dump());
      }
    } else {
      e.message += " " + d->dump();
    }
  }
  return e;
}

Result<nlohmann::json> reply_value(const nlohmann::json& reply) {
  if (auto err = reply.find("error"); err != reply.end()) return to_error(*err);
  if (auto res = reply.find("result"); res != reply.end()) return *res;
  return Error{"reply without result or error: " + reply.dump(), ErrorCode::transport};
}

nlohmann::json as_list(const nlohmann::json& v) {
  if (v.is_array()) return v;
  return nlohmann::json::array({v});
}

}  // namespace

// --- life -------------------------------------------------------------------------------------

Client::Client(int fd) : fd_(fd) {}

Result<Client> Client::connect(const std::string& socket_path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.empty()) return Error{"connect: empty socket path", ErrorCode::transport};
  if (socket_path.size() >= sizeof addr.sun_path) {
    return Error{"connect " + socket_path + ": path too long (at most " +
                     std::to_string(sizeof addr.sun_path - 1) + " bytes)",
                 ErrorCode::transport};
  }
  std::memcpy(addr.sun_path, socket_path.data(), socket_path.size());
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno_error("socket", errno);
  while (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    int err = errno;
    if (err == EINTR) continue;
    ::close(fd);
    return errno_error("connect " + socket_path, err);
  }
  return Client(fd);
}

Client::Client(Client&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      next_id_(other.next_id_),
      inbuf_(std::move(other.inbuf_)),
      notifications_(std::move(other.notifications_)),
      replies_(std::move(other.replies_)) {}

Client& Client::operator=(Client&& other) noexcept {
  if (this != &other) {
    close();
    fd_ = std::exchange(other.fd_, -1);
    next_id_ = other.next_id_;
    inbuf_ = std::move(other.inbuf_);
    notifications_ = std::move(other.notifications_);
    replies_ = std::move(other.replies_);
  }
  return *this;
}

Client::~Client() { close(); }

void Client::close() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

// --- transport --------------------------------------------------------------------------------

Result<void> Client::write_line(const std::string& line) {
  if (fd_ < 0) return Error{"not connected", ErrorCode::transport};
  const char* p = line.data();
  std::size_t left = line.size();
  while (left > 0) {
    ssize_t n = ::send(fd_, p, left, MSG_NOSIGNAL);
    if (n < 0) {
      int err = errno;
      if (err == EINTR) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) {
        pollfd pfd{fd_, POLLOUT, 0};
        if (::poll(&pfd, 1, -1) < 0 && errno != EINTR) {
          err = errno;
          close();
          return errno_error("poll", err);
        }
        continue;
      }
      close();
      return errno_error("send", err);
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  return ok();
}

Result<bool> Client::read_line(std::string& out, TimePoint deadline) {
  std::size_t scanned = 0;
  while (true) {
    if (auto nl = inbuf_.find('\n', scanned); nl != std::string::npos) {
      out.assign(inbuf_, 0, nl);
      inbuf_.erase(0, nl + 1);
      return true;
    }
    scanned = inbuf_.size();
    if (fd_ < 0) return Error{"not connected", ErrorCode::transport};
    pollfd pfd{fd_, POLLIN, 0};
    int r = ::poll(&pfd, 1, poll_timeout(deadline));
    if (r < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      close();
      return errno_error("poll", err);
    }
    if (r == 0) return false;  // deadline
    char buf[65536];
    ssize_t n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0) {
      int err = errno;
      if (err == EINTR || err == EAGAIN || err == EWOULDBLOCK) continue;
      close();
      return errno_error("recv", err);
    }
    if (n == 0) {
      close();
      return Error{"connection closed by tocsind", ErrorCode::transport};
    }
    inbuf_.append(buf, static_cast<std::size_t>(n));
  }
}

Result<Client::Json> Client::await_reply(std::int64_t id, TimePoint deadline) {
  while (true) {
    auto it = std::find_if(replies_.begin(), replies_.end(),
                           [id](const Json& r) { return has_id(r, id); });
    if (it != replies_.end()) {
      Json reply = std::move(*it);
      replies_.erase(it);
      return reply_value(reply);
    }
    std::string line;
    auto got = read_line(line, deadline);
    if (!got) return got.error();
    if (!*got) {
      return Error{"no reply to request " + std::to_string(id) + " within the timeout", ErrorCode::transport};
    }
    Json msg = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (msg.is_discarded()) return Error{"tocsind sent a line that is not JSON: " + line, ErrorCode::transport};
    if (auto orphan = file_message(std::move(msg))) return to_error((*orphan)["error"]);
  }
}

std::optional<Client::Json> Client::file_message(Json msg) {
  auto file_one = [this](Json m) -> std::optional<Json> {
    if (is_notification(m)) {
      notifications_.push_back(std::move(m));
    } else if (is_orphan_error(m)) {
      return m;
    } else {
      replies_.push_back(std::move(m));
    }
    return std::nullopt;
  };
  if (!msg.is_array()) return file_one(std::move(msg));
  std::optional<Json> orphan;
  for (auto& element : msg) {
    if (auto o = file_one(std::move(element)); o && !orphan) orphan = std::move(o);
  }
  return orphan;
}

// --- requests ---------------------------------------------------------------------------------

Result<std::int64_t> Client::send(const std::string& method, Json params) {
  std::int64_t id = next_id_++;
  Json request = {{"jsonrpc", "2.0"}, {"id", id}, {"method", method}};
  if (!params.is_null()) request["params"] = std::move(params);
  auto w = write_line(request.dump() + "\n");
  if (!w) return w.error();
  return id;
}

Result<void> Client::notify(const std::string& method, Json params) {
  Json request = {{"jsonrpc", "2.0"}, {"method", method}};
  if (!params.is_null()) request["params"] = std::move(params);
  return write_line(request.dump() + "\n");
}

Result<Client::Json> Client::wait_reply(std::int64_t id, Millis timeout) {
  return await_reply(id, deadline_after(timeout));
}

Result<Client::Json> Client::call(const std::string& method, Json params, Millis timeout) {
  auto deadline = deadline_after(timeout);
  auto id = send(method, std::move(params));
  if (!id) return id.error();
  return await_reply(*id, deadline);
}

Result<std::vector<Result<Client::Json>>> Client::call_batch(
    const std::vector<std::pair<std::string, Json>>& calls, Millis timeout) {
  auto deadline = deadline_after(timeout);
  Json batch = Json::array();
  std::vector<std::int64_t> ids;
  ids.reserve(calls.size());
  for (const auto& [method, params] : calls) {
    std::int64_t id = next_id_++;
    Json request = {{"jsonrpc", "2.0"}, {"id", id}, {"method", method}};
    if (!params.is_null()) request["params"] = params;
    batch.push_back(std::move(request));
    ids.push_back(id);
  }
  auto w = write_line(batch.dump() + "\n");
  if (!w) return w.error();
  std::vector<Result<Json>> results;
  results.reserve(ids.size());
  for (std::int64_t id : ids) {
    auto r = await_reply(id, deadline);
    // A transport failure fails the whole batch; an error reply is that request's result.
    if (!r && r.error().code == ErrorCode::transport) return r.error();
    results.push_back(std::move(r));
  }
  return results;
}

std::optional<Client::Json> Client::next_notification(Millis timeout) {
  auto deadline = deadline_after(timeout);
  while (notifications_.empty()) {
    std::string line;
    auto got = read_line(line, deadline);
    if (!got || !*got) return std::nullopt;
    Json msg = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (msg.is_discarded()) continue;
    // An error with a null id answers no request this client is waiting for: nothing to keep.
    (void)file_message(std::move(msg));
  }
  Json n = std::move(notifications_.front());
  notifications_.pop_front();
  return n;
}

// --- conveniences -----------------------------------------------------------------------------

Result<Client::Json> Client::hello(const std::string& name, const std::string& group) {
  Json params = Json::object();
  if (!name.empty()) params["name"] = name;
  if (!group.empty()) params["group"] = group;
  return call("hello", std::move(params));
}

Result<std::uint64_t> Client::raise(const Json& signal, const std::string& payload) {
  Json params = {{"signal", signal}};
  if (!payload.empty()) params["payload"] = payload;
  auto r = call("raise", std::move(params));
  if (!r) return r.error();
  if (!r->is_object() || !(*r)["seq"].is_number_integer() || (*r)["seq"].get<std::int64_t>() < 0) {
    return Error{"raise: unexpected result " + r->dump(), ErrorCode::transport};
  }
  return (*r)["seq"].get<std::uint64_t>();
}

Result<std::uint64_t> Client::subscribe(const Json& signals, bool ack, const Json& sources,
                                        std::uint32_t prefetch) {
  Json params = Json::object();
  params["signals"] = (signals.is_string() && signals.get<std::string>() == "*") ? signals
                                                                                 : as_list(signals);
  if (!sources.is_null()) params["sources"] = as_list(sources);
  if (ack) params["ack"] = true;
  if (prefetch > 0) params["prefetch"] = prefetch;
  auto r = call("subscribe", std::move(params));
  if (!r) return r.error();
  if (!r->is_object() || !(*r)["subscription"].is_number_integer() ||
      (*r)["subscription"].get<std::int64_t>() < 0) {
    return Error{"subscribe: unexpected result " + r->dump(), ErrorCode::transport};
  }
  return (*r)["subscription"].get<std::uint64_t>();
}

Result<void> Client::ack(std::uint64_t seq) {
  auto r = call("ack", Json{{"seq", seq}});
  if (!r) return r.error();
  return ok();
}

Result<void> Client::nack(std::uint64_t seq, bool requeue) {
  auto r = call("nack", Json{{"seq", seq}, {"requeue", requeue}});
  if (!r) return r.error();
  return ok();
}

Result<void> Client::ack_later(const std::vector<std::uint64_t>& seqs) {
  if (seqs.empty()) return ok();
  return notify("ack", Json{{"seqs", seqs}});
}

Result<Client::Json> Client::wait(const Json& signal, std::optional<Millis> timeout) {
  Json params = Json::object();
  if (!signal.is_null()) params["signal"] = signal;
  Millis client_timeout = Millis::max();  // no timeout: wait as long as the daemon does
  if (timeout) {
    params["timeout"] = timeout->count();
    if (*timeout < Millis::max() - kDefaultTimeout) client_timeout = *timeout + kDefaultTimeout;
  }
  return call("wait", std::move(params), client_timeout);
}

}  // namespace tocsin
