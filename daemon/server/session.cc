#include "server/session.h"

#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <spdlog/spdlog.h>

#include "dispatch/target_handler.h"
#include "server/methods.h"
#include "server/server_core.h"

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
  boost::system::error_code ignored;
  socket_.shutdown(Socket::shutdown_both, ignored);
  socket_.close(ignored);
  writer_wake_.cancel();
  reader_wake_.cancel();
  core_.session_closed(this);
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
      send_line(dump(methods::error_reply(nullptr, -32007,
                                          "line too long: limits.line_bytes is " +
                                              std::to_string(core_.limits.line_bytes))));
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
    std::optional<SignalId> signal;
    if (r.signal_is_name) {
      signal = table.resolve(r.signal_name);
    } else if (r.signal_number < kSignalCount) {
      signal = static_cast<SignalId>(r.signal_number);
    }
    if (!signal || r.payload.size() > core_.limits.payload_bytes) return false;
    if (const SignalEntry* e = table.find(*signal); e && !acl_allows(e->acl.raise, peer_)) {
      return false;
    }
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

void Session::on_line(std::string_view line) {
  // Blank lines (keep-alives, a stray CR) are not requests.
  if (line.find_first_not_of(" \t\r") == std::string_view::npos) return;
  if (try_fast_raise(line)) return;
  if (nested_too_deep(line)) {
    send_line(dump(methods::error_reply(
        nullptr, -32700, "parse error: nested deeper than " + std::to_string(kMaxDepth))));
    return;
  }
  Json request = Json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (request.is_discarded()) {
    send_line(dump(methods::error_reply(nullptr, -32700, "parse error: not valid JSON")));
    return;
  }
  if (request.is_array()) {
    if (request.empty()) {
      send_line(dump(methods::error_reply(nullptr, -32600, "invalid request: empty batch")));
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
    return methods::error_reply(nullptr, -32600, "invalid request: expected a JSON object");
  }
  auto id_it = request.find("id");
  bool notification = id_it == request.end();
  Json id = notification ? Json(nullptr) : *id_it;
  if (!id.is_null() && !id.is_string() && !id.is_number_integer()) {
    return methods::error_reply(nullptr, -32600, "invalid request: id must be a string or an integer");
  }
  auto v = request.find("jsonrpc");
  if (v == request.end() || !v->is_string() || *v != "2.0") {
    return methods::error_reply(id, -32600, "invalid request: \"jsonrpc\" must be \"2.0\"");
  }
  auto m = request.find("method");
  if (m == request.end() || !m->is_string()) {
    return methods::error_reply(id, -32600, "invalid request: \"method\" must be a string");
  }
  static const Json kNoParams = Json::object();
  auto p = request.find("params");
  if (p != request.end() && !p->is_object()) {
    return methods::error_reply(id, -32602, "invalid params: \"params\" must be an object");
  }
  const Json& params = p == request.end() ? kNoParams : *p;
  bool deferred = false;
  Json reply;
  try {
    reply = dispatch(m->get<std::string>(), params, id, in_batch, &deferred);
  } catch (const Json::exception& e) {
    reply = methods::error_reply(id, -32602, std::string("invalid params: ") + e.what());
  } catch (const std::exception& e) {
    spdlog::error("client {}: {} failed: {}", client_, m->get<std::string>(), e.what());
    reply = methods::error_reply(id, -32603, std::string("internal error: ") + e.what());
  }
  if (notification || deferred) return nullptr;
  return reply;
}

Json Session::dispatch(const std::string& method, const Json& params, const Json& id,
                       bool in_batch, bool* deferred) {
  methods::Context ctx{core_, *this, id};
  if (method == "raise") return methods::raise(ctx, params);
  if (method == "ack") return methods::ack(ctx, params);
  if (method == "subscribe") return methods::subscribe(ctx, params);
  if (method == "unsubscribe") return methods::unsubscribe(ctx, params);
  if (method == "hello") {
    Json r = methods::hello(ctx, params);
    if (r.contains("result")) {
      name_ = r["result"].value("name", "");
      if (!name_.empty()) source_id_ = name_;
    }
    return r;
  }
  if (method == "wait") {
    if (in_batch) {
      return methods::error_reply(id, -32600, "invalid request: wait cannot be part of a batch");
    }
    Json r = methods::wait(ctx, params, shared_from_this());
    if (r.is_null()) *deferred = true;
    return r;
  }
  if (method == "register") return methods::register_target(ctx, params, true);
  if (method == "unregister") return methods::register_target(ctx, params, false);
  if (method == "add_timer") return methods::add_timer(ctx, params, SourceKind::timer);
  if (method == "add_rb_timer") return methods::add_timer(ctx, params, SourceKind::rb_timer);
  if (method == "add_cron") return methods::add_cron(ctx, params);
  if (method == "add_file_monitor") return methods::add_file_monitor(ctx, params);
  if (method == "remove_source") return methods::remove_source(ctx, params);
  if (method == "table") return methods::table(ctx);
  if (method == "status") return methods::status(ctx);
  if (method == "metrics") return methods::metrics(ctx);
  if (method == "reload") return methods::reload(ctx);
  if (method == "version") return methods::version(ctx);
  return methods::error_reply(id, -32601, "method not found: " + method);
}

}  // namespace tocsin
