// metrics_http.h — `metrics: {listen: ADDRESS:PORT}`: the Prometheus endpoint (SPEC §5,
// docs/metrics.md), an HTTP/1.1 server in the reactor (Boost.Beast, kept out of this header).
//
// GET /metrics answers 200 with the exposition (text format 0.0.4, rendered by `render` for each
// request: the same text as the socket's `metrics` method); HEAD /metrics the same headers without
// the body; any other path 404; any other method on /metrics 405 (Allow: GET, HEAD). Nothing
// else is served.
//
// Bounded, so that no client can hold the endpoint or the reactor: at most Limits::connections
// at once (more are closed as they are accepted); a request's header at most header_bytes (431)
// and its body at most body_bytes (413); a malformed request gets 400; each of those closes the
// connection. A request must arrive whole within `timeout` of the connection being ready for it
// (a slow client, one byte at a time, is closed at the timeout), and a response must be taken
// within `timeout` too. Keep-alive is allowed for at most requests_per_connection requests.
// Reactor thread only; destroying it closes the listener and every connection.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "tocsin/config.h"
#include "tocsin/result.h"

namespace boost::asio {
class io_context;
}

namespace tocsin {

class MetricsHttp {
 public:
  struct Limits {
    std::size_t connections = 64;
    std::size_t header_bytes = 8192;
    std::size_t body_bytes = 1024;
    std::chrono::milliseconds timeout{5000};
    std::size_t requests_per_connection = 100;
  };
  using Render = std::function<std::string()>;

  // Binds and listens on spec's address and port; accepts nothing until start(). The error
  // names the address ("metrics.listen 127.0.0.1:9750: Address already in use").
  static Result<std::unique_ptr<MetricsHttp>> bind(boost::asio::io_context& io,
                                                   const config::MetricsSpec& spec, Render render,
                                                   Limits limits);
  static Result<std::unique_ptr<MetricsHttp>> bind(boost::asio::io_context& io,
                                                   const config::MetricsSpec& spec, Render render) {
    return bind(io, spec, std::move(render), Limits{});
  }
  ~MetricsHttp();
  MetricsHttp(const MetricsHttp&) = delete;
  MetricsHttp& operator=(const MetricsHttp&) = delete;

  void start();
  // Where it listens, as bound (the port chosen when spec asked for 0): "127.0.0.1:9750",
  // "[::1]:9750".
  const std::string& endpoint() const;
  const config::MetricsSpec& spec() const;
  std::size_t connections() const;

  struct Impl;

 private:
  explicit MetricsHttp(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace tocsin
