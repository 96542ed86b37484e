#include "server/server.h"

#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <spdlog/spdlog.h>

#include "os/unique_fd.h"
#include "server/introspection.h"
#include "server/methods.h"
#include "server/server_core.h"
#include "server/session.h"
#include "tocsin/event_source.h"

namespace tocsin {

namespace asio = boost::asio;
using Json = nlohmann::json;
using Local = asio::local::stream_protocol;

namespace {

// Is something listening on `path`? A refused connection means a stale socket file.
bool socket_is_live(const std::string& path) {
  os::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) return true;
  return errno == EAGAIN || errno == EINPROGRESS;  // a full backlog is still a live listener
}

}  // namespace

// ---- ServerCore -----------------------------------------------------------------------------

ServerCore::ServerCore(asio::io_context& io_context, Hub& h, ServerHost& server_host)
    : io(io_context), hub(h), host(server_host), names(io_context), ack_timer_(io_context) {}

void ServerCore::add_waiter(const std::shared_ptr<Session>& session, Json id,
                            std::optional<SignalId> signal,
                            std::optional<std::chrono::milliseconds> timeout) {
  waiters_.push_back(Waiter{session, session.get(), std::move(id), signal, nullptr});
  auto it = std::prev(waiters_.end());
  if (timeout) {
    it->timer = std::make_unique<asio::steady_timer>(io, *timeout);
    it->timer->async_wait([this, it](boost::system::error_code ec) {
      if (ec) return;  // answered or dropped: the waiter is gone
      if (auto s = it->session.lock()) {
        s->send_line(methods::result_reply(it->id, nullptr).dump());
      }
      waiters_.erase(it);
    });
  }
}

bool ServerCore::offer_unhandled(const EventPtr& event) {
  for (auto it = waiters_.begin(); it != waiters_.end(); ++it) {
    if (it->signal && *it->signal != event->signal) continue;
    auto s = it->session.lock();
    if (!s || s->closed()) continue;
    s->send_line(R"({"jsonrpc":"2.0","id":)" + it->id.dump() +
                 ",\"result\":" + encode_event_object(*event) + "}");
    if (it->timer) it->timer->cancel();
    waiters_.erase(it);
    return true;
  }
  return false;
}

void ServerCore::drop_waiters(const Session* session) {
  for (auto it = waiters_.begin(); it != waiters_.end();) {
    if (it->owner == session) {
      if (it->timer) it->timer->cancel();
      it = waiters_.erase(it);
    } else {
      ++it;
    }
  }
}

void ServerCore::session_opened(const std::shared_ptr<Session>& s) { sessions_[s.get()] = s; }

void ServerCore::session_closed(Session* s) {
  sessions_.erase(s);
  if (sessions_.empty() && stopping && on_all_closed) {
    auto done = std::move(on_all_closed);
    on_all_closed = nullptr;
    asio::post(io, std::move(done));
  }
}

void ServerCore::release_declarers_of_gone_peers(const Session* except) {
  for (auto& s : sessions()) {
    if (s.get() != except && s->peer_gone()) host.sources().client_left(s->client());
  }
}

std::vector<std::shared_ptr<Session>> ServerCore::sessions() const {
  std::vector<std::shared_ptr<Session>> out;
  for (const auto& [ptr, weak] : sessions_) {
    if (auto s = weak.lock()) out.push_back(std::move(s));
  }
  return out;
}

void ServerCore::rearm_ack_timer() {
  auto next = hub.next_deadline();
  if (next == ack_armed_for_) return;
  ack_armed_for_ = next;
  if (!next) {
    ack_timer_.cancel();
    return;
  }
  ack_timer_.expires_at(*next);
  ack_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec) return;
    ack_armed_for_.reset();
    hub.expire_due();
    rearm_ack_timer();
  });
}

// ---- Server ---------------------------------------------------------------------------------

namespace {

class Acceptor : public std::enable_shared_from_this<Acceptor> {
 public:
  Acceptor(ServerCore& core, Local::acceptor acceptor)
      : core_(core), acceptor_(std::move(acceptor)) {}

  void start() {
    auto self = shared_from_this();
    asio::co_spawn(acceptor_.get_executor(), [self] { return self->loop(); }, asio::detached);
  }
  void stop() {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
  }

 private:
  asio::awaitable<void> loop() {
    auto self = shared_from_this();
    while (acceptor_.is_open()) {
      auto [ec, socket] =
          co_await acceptor_.async_accept(asio::as_tuple(asio::use_awaitable));
      if (ec == asio::error::operation_aborted || !acceptor_.is_open()) break;
      if (ec) {
        // EMFILE/ENFILE and friends: say so, and let the backlog wait rather than spin.
        spdlog::error("accept on {}: {}", core_.path, ec.message());
        asio::steady_timer pause(acceptor_.get_executor(), std::chrono::milliseconds(100));
        co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
        continue;
      }
      if (core_.session_count() + core_.resolving >= core_.limits.clients) {
        Peer peer = read_credentials(socket.native_handle());
        spdlog::warn("client uid {} pid {} refused: limits.clients ({}) reached", peer.uid,
                     peer.pid, core_.limits.clients);
        std::string line =
            methods::error_reply(nullptr, ErrorCode::limit_reached,
                                 "too many clients: limits.clients is " +
                                     std::to_string(core_.limits.clients))
                .dump() +
            "\n";
        // Best effort, never blocking: the socket buffer of a fresh connection has room.
        ::send(socket.native_handle(), line.data(), line.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
        boost::system::error_code ignored;
        socket.close(ignored);
        continue;
      }
      // The peer's names may take a lookup off the reactor (NSS); the connection is not read
      // until they are known.
      ++core_.resolving;
      auto pending = std::make_shared<Local::socket>(std::move(socket));
      std::weak_ptr<Acceptor> weak = self;
      core_.names.resolve(read_credentials(pending->native_handle()),
                          core_.socket_spec.admin_group, [weak, pending](Peer peer) {
                            auto acceptor = weak.lock();
                            if (!acceptor) return;
                            ServerCore& core = acceptor->core_;
                            --core.resolving;
                            if (core.stopping) return;  // the socket closes with `pending`
                            spdlog::debug("client connected: uid {} ({}) pid {}", peer.uid,
                                          peer.user, peer.pid);
                            auto session = std::make_shared<Session>(core, std::move(*pending),
                                                                     std::move(peer));
                            session->start();
                          });
    }
  }

  ServerCore& core_;
  Local::acceptor acceptor_;
};

}  // namespace

Server::Server(asio::io_context& io, Hub& hub, ServerHost& host)
    : core_(std::make_unique<ServerCore>(io, hub, host)) {
  hub.set_deadline_changed([core = core_.get()] { core->rearm_ack_timer(); });
}

Server::~Server() {
  for (auto& s : core_->sessions()) s->close();
  core_->hub.set_deadline_changed(nullptr);
}

Result<void> Server::start(const config::SocketSpec& socket, const config::Limits& limits,
                           std::optional<int> activated_fd) {
  core_->limits = limits;
  core_->socket_spec = socket;
  core_->path = socket.path;
  if (activated_fd) {
    Local::acceptor acceptor(core_->io);
    boost::system::error_code ec;
    acceptor.assign(Local(), *activated_fd, ec);
    if (ec) return Error{"the socket passed by systemd: " + ec.message()};
    auto local = acceptor.local_endpoint(ec);
    if (!ec) core_->path = local.path();
    auto a = std::make_shared<Acceptor>(*core_, std::move(acceptor));
    a->start();
    core_->stop_accepting = [a] { a->stop(); };
    core_->owns_path = false;  // systemd made it and keeps it for the next start
    spdlog::info("listening on {} (passed by systemd)", core_->path);
    return ok();
  }
  const std::string& path = socket.path;
  if (path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return Error{"socket path too long (" + std::to_string(path.size()) + " bytes): " + path};
  }
  std::error_code fec;
  auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty() && !std::filesystem::exists(parent, fec)) {
    std::filesystem::create_directories(parent, fec);
    if (fec) return Error{"cannot create " + parent.string() + ": " + fec.message()};
  }
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return Error{path + " exists and is not a socket; not touching it"};
    }
    if (socket_is_live(path)) {
      return Error{"another process is already listening on " + path};
    }
    spdlog::info("replacing the stale socket {}", path);
    ::unlink(path.c_str());
  }

  Local::acceptor acceptor(core_->io);
  boost::system::error_code ec;
  acceptor.open(Local(), ec);
  if (!ec) acceptor.bind(Local::endpoint(path), ec);
  if (ec) return Error{"bind " + path + ": " + ec.message()};
  if (::chmod(path.c_str(), socket.mode) != 0) {
    return Error{"chmod " + path + ": " + std::strerror(errno)};
  }
  if (!socket.group.empty()) {
    group gr{};
    group* found = nullptr;
    std::vector<char> buf(4096);
    if (getgrnam_r(socket.group.c_str(), &gr, buf.data(), buf.size(), &found) != 0 || !found) {
      return Error{"socket.group: no group named \"" + socket.group + "\""};
    }
    if (::chown(path.c_str(), static_cast<uid_t>(-1), gr.gr_gid) != 0) {
      return Error{"chown " + path + " to group " + socket.group + ": " + std::strerror(errno)};
    }
  }
  acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Error{"listen " + path + ": " + ec.message()};
  auto a = std::make_shared<Acceptor>(*core_, std::move(acceptor));
  a->start();
  core_->stop_accepting = [a] { a->stop(); };
  spdlog::info("listening on {} (mode {:04o}{}{})", path, socket.mode,
               socket.group.empty() ? "" : ", group ", socket.group);
  return ok();
}

void Server::set_limits(const config::Limits& limits) { core_->limits = limits; }

void Server::stop(std::function<void()> done) {
  core_->stopping = true;
  if (core_->stop_accepting) {
    core_->stop_accepting();
    core_->stop_accepting = nullptr;
    if (core_->owns_path) ::unlink(core_->path.c_str());
  }
  core_->on_all_closed = std::move(done);
  auto sessions = core_->sessions();
  if (sessions.empty()) {
    auto fn = std::move(core_->on_all_closed);
    core_->on_all_closed = nullptr;
    if (fn) fn();
    return;
  }
  for (auto& s : sessions) s->drain_and_close();
}

std::size_t Server::sessions() const { return core_->session_count(); }
bool Server::offer_unhandled(const EventPtr& event) { return core_->offer_unhandled(event); }
const std::string& Server::path() const { return core_->path; }
std::string Server::metrics_text() const { return introspection::metrics_text(*core_); }

}  // namespace tocsin
