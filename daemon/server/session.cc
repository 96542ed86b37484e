#include "server/session.h"

#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <spdlog/spdlog.h>

#include "log/scope.h"
#include "server/methods.h"
#include "server/raise_rules.h"
#include "server/server_core.h"
#include "tocsin/event_source.h"

namespace tocsin {

namespace asio = boost::asio;
using Json = nlohmann::json;

namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
// One write gathers replies and events up to about this many bytes.
constexpr std::size_t kWriteBatchBytes = 256 * 1024;
constexpr int kMaxDepth = 64;

// Nesting depth of a JSON text, outside strings; stops counting past the limit.
bool nested_too_deep(std::string_view text) {
  int depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxDepth) return true;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return false;
}

std::string dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

std::string overflow_line(const Overflow& o) {
  return R"({"jsonrpc":"2.0","method":"overflow","params":{"dropped":)" +
         std::to_string(o.dropped) + ",\"first_seq\":" + std::to_string(o.first_seq) +
         ",\"last_seq\":" + std::to_string(o.last_seq) + "}}\n";
}

}  // namespace

Session::Session(ServerCore& core, Socket socket, Peer peer)
    : core_(core),
      socket_(std::move(socket)),
      peer_(std::move(peer)),
      writer_wake_(socket_.get_executor()),
      reader_wake_(socket_.get_executor()) {
  writer_wake_.expires_at(asio::steady_timer::time_point::max());
  reader_wake_.expires_at(asio::steady_timer::time_point::max());
}

Session::~Session() = default;

void Session::start() {
  auto self = shared_from_this();
  std::weak_ptr<Session> weak = self;
  client_ = core_.hub.connect([weak] {
    if (auto s = weak.lock()) s->wake_writer();
  });
  source_id_ = "pid:" + std::to_string(peer_.pid);
  core_.session_opened(self);
  asio::co_spawn(socket_.get_executor(), [self] { return self->reader(); }, asio::detached);
  asio::co_spawn(socket_.get_executor(), [self] { return self->writer(); }, asio::detached);
}

void Session::set_name(std::string name) {
  name_ = std::move(name);
  if (!name_.empty()) source_id_ = name_;
}

void Session::wake_writer() { writer_wake_.cancel(); }
void Session::wake_reader() { reader_wake_.cancel(); }

void Session::send_line(std::string line) {
  if (closed_) return;
  reply_bytes_ += line.size() + 1;
  replies_.push_back(std::move(line));
  wake_writer();
}

void Session::drain_and_close() {
  if (closed_ || draining_) return;
  draining_ = true;
  wake_writer();
}

void Session::close() {
  if (closed_) return;
  closed_ = true;
  core_.hub.disconnect(client_);
  core_.drop_waiters(this);
  // It leaves the run-time sources it declared (a `lifetime: clients` one may linger, then go).
  core_.host.sources().client_left(client_);
  boost::system::error_code ignored;
  socket_.shutdown(Socket::shutdown_both, ignored);
  socket_.close(ignored);
  writer_wake_.cancel();
  reader_wake_.cancel();
  core_.session_closed(this);
}

bool Session::peer_gone() {
  if (closed_) return false;
  char c;
  return ::recv(socket_.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

asio::awaitable<void> Session::reader() {
  auto self = shared_from_this();
  std::string buf;
  std::size_t scanned = 0;  // bytes of buf already known to hold no newline
  std::vector<char> chunk(16 * 1024);  // per connection: idle clients stay cheap
  while (!closed_ && !draining_) {
    while (reply_bytes_ > kMaxPendingReplyBytes && !closed_) {
      // Back-pressure: the client is not reading its replies; stop reading its requests.
      reader_wake_.expires_at(asio::steady_timer::time_point::max());
      co_await reader_wake_.async_wait(kTuple);
    }
    if (closed_) break;
    auto [ec, n] = co_await socket_.async_read_some(asio::buffer(chunk), kTuple);
    if (ec || closed_) {
      if (ec == asio::error::eof && !closed_) {
        // The client finished sending; it may still read what we owe it.
        drain_and_close();
      } else {
        close();
      }
      break;
    }
    buf.append(chunk.data(), n);
    // Every line logged while handling this read names the client (no co_await below: the scope
    // lives on this thread's stack only while this coroutine runs).
    logging::Scope scope(client_);
    std::size_t start = 0;
    bool too_long = false;
    while (!closed_ && !draining_) {
      auto nl = buf.find('\n', std::max(start, scanned));
      if (nl == std::string::npos) break;
      if (nl - start > core_.limits.line_bytes) {
        too_long = true;
        break;
      }
      on_line(std::string_view(buf).substr(start, nl - start));
      start = nl + 1;
    }
    buf.erase(0, start);
    scanned = buf.size();
    // A partial line already over the limit is refused without waiting for its end.
    if (buf.size() > core_.limits.line_bytes) too_long = true;
    if (too_long && !closed_ && !draining_) {
      spdlog::warn("client {} ({}): a line over limits.line_bytes ({}): closing", client_,
                   peer_.user, core_.limits.line_bytes);
      send_error(nullptr, ErrorCode::line_too_long,
                 "line too long: limits.line_bytes is " + std::to_string(core_.limits.line_bytes));
      drain_and_close();
    }
  }
}

asio::awaitable<void> Session::writer() {
  auto self = shared_from_this();
  std::string out;
  while (!closed_) {
    out.clear();
    while (!replies_.empty() && out.size() < kWriteBatchBytes) {
      reply_bytes_ -= replies_.front().size() + 1;
      out += replies_.front();
      out += '\n';
      replies_.pop_front();
    }
    while (out.size() < kWriteBatchBytes) {
      auto item = core_.hub.pop(client_);
      if (!item) break;
      if (item->kind == Outgoing::Kind::overflow) {
        out += overflow_line(item->overflow);
      } else {
        out += item->line.view();
      }
    }
    if (reply_bytes_ <= kMaxPendingReplyBytes) wake_reader();
    if (out.empty()) {
      if (draining_) break;
      writer_wake_.expires_at(asio::steady_timer::time_point::max());
      co_await writer_wake_.async_wait(kTuple);
      continue;
    }
    // Whole buffer per write_some: async_write's default stops each write at 64 KiB, which let
    // a pipelining raiser outrun a subscriber's writer (measured: docs/BENCHMARKS.md).
    auto [ec, n] = co_await asio::async_write(
        socket_, asio::buffer(out),
        [](const boost::system::error_code& e, std::size_t) -> std::size_t {
          return e ? 0 : kWriteBatchBytes * 4;
        },
        kTuple);
    if (ec) break;
  }
  close();
}

bool Session::try_fast_raise(std::string_view line) {
  if (line.find("\"raise\"") == std::string_view::npos) return false;
  bool batch = false;
  if (!parse_raise_line(line, fast_, &batch)) return false;
  Dispatcher& dispatcher = core_.host.dispatcher();
  const SignalTable& table = dispatcher.table();
  fast_signals_.clear();
  for (const auto& r : fast_) {
    // Anything check_raise refuses takes the full path, which words the error.
    if (!r.signal_is_name && r.signal_number >= static_cast<std::uint64_t>(kSignalCount)) {
      return false;
    }
    SignalRef ref{r.signal_is_name, static_cast<std::int64_t>(r.signal_number), r.signal_name};
    auto signal = check_raise(table, core_.limits, peer_, ref, r.payload.size());
    if (!signal) return false;
    fast_signals_.push_back(*signal);
  }
  std::string reply;
  if (batch) reply += '[';
  bool any = false;
  for (std::size_t i = 0; i < fast_.size(); ++i) {
    RaiseRequest& r = fast_[i];
    EventPtr ev = dispatcher.raise(fast_signals_[i], SourceRef{SourceKind::raise, source_id_},
                                   std::move(r.payload));
    if (!r.has_id) continue;
    if (any) reply += ',';
    reply += R"({"jsonrpc":"2.0","id":)";
    reply += r.id_json;
    reply += R"(,"result":{"seq":)";
    reply += std::to_string(ev->seq);
    reply += "}}";
    any = true;
  }
  if (batch) reply += ']';
  if (any) send_line(std::move(reply));
  return true;
}

bool Session::try_fast_settle(std::string_view line) {
  if (line.find("ack\"") == std::string_view::npos) return false;
  if (!parse_settle_line(line, settle_)) return false;
  Hub& hub = core_.hub;
  std::string reply;
  if (settle_.one) {
    std::uint64_t seq = settle_.seqs.front();
    auto r = settle_.nack ? hub.nack(client_, seq, settle_.requeue) : hub.ack(client_, seq);
    if (!settle_.has_id) return true;
    if (!r) {
      send_line(dump(methods::error_reply(Json::parse(settle_.id_json), r.error())));
      return true;
    }
    reply = R"({"jsonrpc":"2.0","id":)" + settle_.id_json + R"(,"result":{}})";
  } else {
    Hub::Settled s = settle_.nack ? hub.nack_many(client_, settle_.seqs, settle_.requeue)
                                  : hub.ack_many(client_, settle_.seqs);
    if (!settle_.has_id) return true;
    // As the full path's reply (methods.cc settled_reply), keys in nlohmann's order.
    reply = R"({"jsonrpc":"2.0","id":)" + settle_.id_json + R"(,"result":{)";
    if (!s.not_held.empty()) {
      reply += R"("not_held":[)";
      for (std::size_t i = 0; i < s.not_held.size(); ++i) {
        if (i) reply += ',';
        reply += std::to_string(s.not_held[i]);
      }
      reply += "],";
    }
    reply += R"("settled":)" + std::to_string(s.done) + "}}";
  }
  send_line(std::move(reply));
  return true;
}

void Session::on_line(std::string_view line) {
  // Blank lines (keep-alives, a stray CR) are not requests.
  if (line.find_first_not_of(" \t\r") == std::string_view::npos) return;
  if (try_fast_raise(line)) return;
  if (try_fast_settle(line)) return;
  if (nested_too_deep(line)) {
    send_error(nullptr, ErrorCode::parse_error,
               "parse error: nested deeper than " + std::to_string(kMaxDepth));
    return;
  }
  Json request = Json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (request.is_discarded()) {
    send_error(nullptr, ErrorCode::parse_error, "parse error: not valid JSON");
    return;
  }
  if (request.is_array()) {
    if (request.empty()) {
      send_error(nullptr, ErrorCode::invalid_request, "invalid request: empty batch");
      return;
    }
    Json replies = Json::array();
    for (const auto& r : request) {
      Json reply = handle(r, true);
      if (!reply.is_null()) replies.push_back(std::move(reply));
    }
    if (!replies.empty()) send_line(dump(replies));
    return;
  }
  Json reply = handle(request, false);
  if (!reply.is_null()) send_line(dump(reply));
}

Json Session::handle(const Json& request, bool in_batch) {
  if (!request.is_object()) {
    return methods::error_reply(nullptr, ErrorCode::invalid_request,
                                "invalid request: expected a JSON object");
  }
  auto id_it = request.find("id");
  bool notification = id_it == request.end();
  Json id = notification ? Json(nullptr) : *id_it;
  if (!id.is_null() && !id.is_string() && !id.is_number_integer()) {
    return methods::error_reply(nullptr, ErrorCode::invalid_request,
                                "invalid request: id must be a string or an integer");
  }
  auto v = request.find("jsonrpc");
  if (v == request.end() || !v->is_string() || *v != "2.0") {
    return methods::error_reply(id, ErrorCode::invalid_request,
                                "invalid request: \"jsonrpc\" must be \"2.0\"");
  }
  auto m = request.find("method");
  if (m == request.end() || !m->is_string()) {
    return methods::error_reply(id, ErrorCode::invalid_request,
                                "invalid request: \"method\" must be a string");
  }
  static const Json kNoParams = Json::object();
  auto p = request.find("params");
  if (p != request.end() && !p->is_object()) {
    return methods::error_reply(id, ErrorCode::invalid_params,
                                "invalid params: \"params\" must be an object");
  }
  const Json& params = p == request.end() ? kNoParams : *p;
  bool deferred = false;
  Json reply;
  try {
    reply = dispatch(m->get<std::string>(), params, id, in_batch, &deferred);
  } catch (const Json::exception& e) {
    reply = methods::error_reply(id, ErrorCode::invalid_params,
                                 std::string("invalid params: ") + e.what());
  } catch (const std::exception& e) {
    spdlog::error("client {}: {} failed: {}", client_, m->get<std::string>(), e.what());
    reply = methods::error_reply(id, ErrorCode::internal, std::string("internal error: ") + e.what());
  }
  if (notification || deferred) return nullptr;
  return reply;
}

Json Session::dispatch(const std::string& name, const Json& params, const Json& id,
                       bool in_batch, bool* deferred) {
  const methods::Method* method = methods::find(name);
  if (method == nullptr) {
    return methods::error_reply(id, ErrorCode::method_not_found, "method not found: " + name);
  }
  methods::Context ctx{core_, *this, shared_from_this(), method->name, id};
  if (method->admin && !peer_.admin) {
    return methods::denied(ctx, name + " needs root or the admin group (socket.admin_group)");
  }
  if (in_batch && !method->batchable) {
    return methods::error_reply(id, ErrorCode::invalid_request,
                                "invalid request: " + name + " cannot be part of a batch");
  }
  Json reply = method->handler(ctx, params);
  if (reply.is_null()) *deferred = true;
  return reply;
}

void Session::send_error(const Json& id, ErrorCode code, const std::string& message) {
  send_line(dump(methods::error_reply(id, code, message)));
}

}  // namespace tocsin
