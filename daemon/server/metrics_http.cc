#include "server/metrics_http.h"

#include <spdlog/spdlog.h>
#include <array>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <unordered_map>

namespace tocsin {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";
constexpr std::string_view kServer = "tocsin/" TOCSIN_VERSION;
// After an error response, what the client still sends is read and discarded for at most this
// long and this much before the close, so that the close does not reset the connection before
// the client has read the response (a lingering close).
constexpr std::chrono::seconds kLinger{1};
constexpr std::size_t kLingerBytes = 4 << 20;
// Accept errors (EMFILE...) and refused connections are logged at most this often.
constexpr std::chrono::seconds kLogEvery{10};

std::string format_endpoint(const tcp::endpoint& e) {
  const std::string address = e.address().to_string();
  return e.address().is_v6() ? "[" + address + "]:" + std::to_string(e.port())
                             : address + ":" + std::to_string(e.port());
}

}  // namespace

struct MetricsHttp::Impl : std::enable_shared_from_this<Impl> {
  struct Connection {
    explicit Connection(tcp::socket socket) : stream(std::move(socket)) {}
    beast::tcp_stream stream;
  };

  Impl(asio::io_context& io_context, config::MetricsSpec s, Render r, Limits l)
      : io(io_context), acceptor(io_context), spec(std::move(s)), render(std::move(r)), limits(l) {}

  asio::io_context& io;
  tcp::acceptor acceptor;
  config::MetricsSpec spec;
  Render render;
  Limits limits;
  std::string endpoint;
  std::unordered_map<Connection*, std::weak_ptr<Connection>> connections;
  bool stopped = false;
  std::size_t refused = 0;  // since the last log line about it
  std::chrono::steady_clock::time_point refused_logged{};
  std::chrono::steady_clock::time_point accept_error_logged{};

  void stop() {
    if (stopped) return;
    stopped = true;
    boost::system::error_code ignored;
    acceptor.close(ignored);
    for (auto& [ptr, weak] : connections) {
      if (auto c = weak.lock()) c->stream.socket().close(ignored);
    }
  }

  asio::awaitable<void> accept_loop() {
    auto self = shared_from_this();
    while (!stopped) {
      auto [ec, socket] = co_await acceptor.async_accept(kTuple);
      if (stopped || ec == asio::error::operation_aborted) break;
      const auto now = std::chrono::steady_clock::now();
      if (ec) {
        // EMFILE and friends: say so (not for each attempt) and let the backlog wait.
        if (now - accept_error_logged >= kLogEvery) {
          spdlog::error("metrics: accept on {}: {}", endpoint, ec.message());
          accept_error_logged = now;
        }
        asio::steady_timer pause(io, std::chrono::milliseconds(100));
        co_await pause.async_wait(kTuple);
        continue;
      }
      if (connections.size() >= limits.connections) {
        boost::system::error_code ignored;
        socket.close(ignored);
        ++refused;
        if (now - refused_logged >= kLogEvery) {
          spdlog::warn("metrics: {} connection(s) to {} closed at once: {} are open (the limit)",
                       refused, endpoint, limits.connections);
          refused = 0;
          refused_logged = now;
        }
        continue;
      }
      boost::system::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      auto connection = std::make_shared<Connection>(std::move(socket));
      connections.emplace(connection.get(), connection);
      asio::co_spawn(
          io, [self, connection] { return self->serve(connection); }, asio::detached);
    }
  }

  // One response; the body is left out for HEAD (its length stays).
  http::response<http::string_body> respond(const http::request<http::string_body>& req) {
    http::response<http::string_body> res;
    res.version(req.version());
    res.set(http::field::server, kServer);
    std::string_view target = req.target();
    if (auto q = target.find('?'); q != std::string_view::npos) target = target.substr(0, q);
    const bool head = req.method() == http::verb::head;
    if (target != "/metrics") {
      res.result(http::status::not_found);
      res.set(http::field::content_type, "text/plain; charset=utf-8");
      res.body() = "not found: this endpoint serves GET /metrics only\n";
    } else if (req.method() != http::verb::get && !head) {
      res.result(http::status::method_not_allowed);
      res.set(http::field::allow, "GET, HEAD");
      res.set(http::field::content_type, "text/plain; charset=utf-8");
      res.body() = "method not allowed: GET or HEAD\n";
    } else {
      res.result(http::status::ok);
      res.set(http::field::content_type, kContentType);
      res.body() = render();
    }
    res.prepare_payload();
    if (head) res.body().clear();  // Content-Length stays the body's
    return res;
  }

  asio::awaitable<void> serve(std::shared_ptr<Connection> c) {
    auto self = shared_from_this();
    beast::flat_buffer buffer(limits.header_bytes + limits.body_bytes + 4096);
    for (std::size_t n = 0; n < limits.requests_per_connection && !stopped; ++n) {
      http::request_parser<http::string_body> parser;
      parser.header_limit(static_cast<std::uint32_t>(limits.header_bytes));
      parser.body_limit(limits.body_bytes);
      c->stream.expires_after(limits.timeout);
      auto [ec, read] = co_await http::async_read(c->stream, buffer, parser, kTuple);
      (void)read;
      if (stopped) break;
      if (ec) {
        // A client that closes, or sends nothing in time, gets nothing; a bad request an answer.
        if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
            ec == asio::error::operation_aborted || ec == asio::error::connection_reset ||
            (ec == asio::error::eof)) {
          break;
        }
        http::status status = http::status::bad_request;
        if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
          status = http::status::request_header_fields_too_large;
        } else if (ec == http::error::body_limit) {
          status = http::status::payload_too_large;
        }
        spdlog::debug("metrics: bad request from {}: {}", peer(*c), ec.message());
        co_await refuse(*c, status, ec.message());
        break;
      }
      const auto& req = parser.get();
      auto res = respond(req);
      const bool keep = req.keep_alive() && n + 1 < limits.requests_per_connection;
      res.keep_alive(keep);
      c->stream.expires_after(limits.timeout);
      auto [wec, written] = co_await http::async_write(c->stream, res, kTuple);
      (void)written;
      if (wec || !keep) break;
    }
    close(*c);
  }

  // An error response with Connection: close, then a lingering close.
  asio::awaitable<void> refuse(Connection& c, http::status status, const std::string& why) {
    http::response<http::string_body> res{status, 11};
    res.set(http::field::server, kServer);
    res.set(http::field::content_type, "text/plain; charset=utf-8");
    res.body() = std::string(http::obsolete_reason(status)) + ": " + why + "\n";
    res.keep_alive(false);
    res.prepare_payload();
    c.stream.expires_after(limits.timeout);
    auto [ec, written] = co_await http::async_write(c.stream, res, kTuple);
    (void)written;
    if (ec || stopped) co_return;
    boost::system::error_code ignored;
    c.stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
    c.stream.expires_after(kLinger);
    std::array<char, 16384> scratch;
    std::size_t drained = 0;
    while (drained < kLingerBytes && !stopped) {
      auto [rec, got] = co_await c.stream.async_read_some(asio::buffer(scratch), kTuple);
      if (rec) break;
      drained += got;
    }
  }

  std::string peer(Connection& c) {
    boost::system::error_code ec;
    auto e = c.stream.socket().remote_endpoint(ec);
    return ec ? std::string("?") : format_endpoint(e);
  }

  void close(Connection& c) {
    boost::system::error_code ignored;
    c.stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    c.stream.socket().close(ignored);
    connections.erase(&c);
  }
};

Result<std::unique_ptr<MetricsHttp>> MetricsHttp::bind(asio::io_context& io,
                                                       const config::MetricsSpec& spec,
                                                       Render render, Limits limits) {
  auto impl = std::make_shared<Impl>(io, spec, std::move(render), limits);
  boost::system::error_code ec;
  auto address = asio::ip::make_address(spec.address, ec);
  if (ec) return Error{"metrics.listen " + spec.listen + ": " + ec.message()};
  tcp::endpoint at(address, spec.port);
  auto& a = impl->acceptor;
  const char* step = "open";
  a.open(at.protocol(), ec);
  if (!ec) {
    step = "bind";
    a.set_option(tcp::acceptor::reuse_address(true), ec);
    if (address.is_v6()) a.set_option(asio::ip::v6_only(true), ec);
    a.bind(at, ec);
  }
  if (!ec) {
    step = "listen";
    a.listen(asio::socket_base::max_listen_connections, ec);
  }
  if (ec) return Error{"metrics.listen " + spec.listen + ": " + step + ": " + ec.message()};
  auto bound = a.local_endpoint(ec);
  impl->endpoint = ec ? spec.listen : format_endpoint(bound);
  return std::unique_ptr<MetricsHttp>(new MetricsHttp(std::move(impl)));
}

MetricsHttp::MetricsHttp(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

MetricsHttp::~MetricsHttp() { impl_->stop(); }

void MetricsHttp::start() {
  auto impl = impl_;
  asio::co_spawn(
      impl->io, [impl] { return impl->accept_loop(); }, asio::detached);
}

const std::string& MetricsHttp::endpoint() const { return impl_->endpoint; }
const config::MetricsSpec& MetricsHttp::spec() const { return impl_->spec; }
std::size_t MetricsHttp::connections() const { return impl_->connections.size(); }

}  // namespace tocsin
