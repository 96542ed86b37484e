#include "fakes/line_client.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include <cerrno>
#include <cstring>

namespace tocsin::testing {

LineClient::LineClient(const std::string& socket_path) {
  fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, socket_path.c_str(), sizeof addr.sun_path - 1);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ADD_FAILURE() << "connect " << socket_path << ": " << std::strerror(errno);
    ::close(fd_);
    fd_ = -1;
  }
}

LineClient LineClient::adopt(int fd) {
  LineClient c;
  c.fd_ = fd;
  return c;
}

std::optional<LineClient> connect_as(const std::string& socket_path, uid_t uid, gid_t gid,
                                     std::string* why, bool* unreachable) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, socket_path.c_str(), sizeof addr.sun_path - 1);
  const std::string dir = std::filesystem::path(socket_path).parent_path().string();
  constexpr int kNotReachable = 98;
  constexpr int kNoCredentials = 99;
  pid_t pid = ::fork();
  if (pid == 0) {
    // The child of a threaded process: raw system calls only (they change this thread's
    // credentials, the only one the child has).
    if (::syscall(SYS_setgroups, 0, nullptr) != 0 || ::syscall(SYS_setresgid, gid, gid, gid) != 0 ||
        ::syscall(SYS_setresuid, uid, uid, uid) != 0) {
      ::_exit(kNoCredentials);
    }
    if (::access(dir.c_str(), X_OK) != 0) ::_exit(kNotReachable);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::_exit(errno > 0 && errno < kNotReachable ? errno : 97);
    }
    ::_exit(0);
  }
  int status = 0;
  while (pid > 0 && ::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  const int code = pid > 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (code == 0) return LineClient::adopt(fd);
  ::close(fd);
  if (unreachable) *unreachable = code == kNotReachable;
  if (why) {
    *why = code == kNotReachable    ? dir + " is not reachable by uid " + std::to_string(uid)
           : code == kNoCredentials ? "could not take uid " + std::to_string(uid) + " (not root?)"
           : code > 0 ? "connect as uid " + std::to_string(uid) + ": " + std::strerror(code)
                      : "fork failed or the child died";
  }
  return std::nullopt;
}

LineClient::LineClient(LineClient&& o) noexcept
    : notifications(std::move(o.notifications)),
      fd_(std::exchange(o.fd_, -1)),
      next_id_(o.next_id_),
      buf_(std::move(o.buf_)),
      eof_(o.eof_) {}

LineClient::~LineClient() { close(); }

void LineClient::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

bool LineClient::send_raw(std::string_view bytes) {
  while (!bytes.empty() && fd_ >= 0) {
    ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return fd_ >= 0;
}

void LineClient::send(const Json& message) {
  if (!send_raw(message.dump() + "\n")) ADD_FAILURE() << "send: " << std::strerror(errno);
}

std::optional<std::string> LineClient::read_line(Deadline deadline) {
  while (true) {
    auto nl = buf_.find('\n');
    if (nl != std::string::npos) {
      std::string line = buf_.substr(0, nl);
      buf_.erase(0, nl + 1);
      return line;
    }
    if (eof_ || fd_ < 0) return std::nullopt;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() < 0) return std::nullopt;
    pollfd p{fd_, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left.count()) + 1);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;
    char chunk[65536];
    ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) {
      eof_ = true;
      continue;
    }
    buf_.append(chunk, static_cast<std::size_t>(n));
  }
}

std::optional<nlohmann::json> LineClient::read(Deadline deadline) {
  auto line = read_line(deadline);
  if (!line) return std::nullopt;
  auto j = Json::parse(*line, nullptr, false);
  if (j.is_discarded()) {
    ADD_FAILURE() << "the daemon sent a line that is not JSON: " << *line;
    return std::nullopt;
  }
  return j;
}

nlohmann::json LineClient::call(const std::string& method, const Json& params,
                                std::chrono::milliseconds within) {
  long id = next_id_++;
  send({{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", params}});
  auto deadline = deadline_in(within);
  while (auto j = read(deadline)) {
    if (j->is_object() && j->contains("id") && (*j)["id"] == id) return *j;
    notifications.push_back(std::move(*j));
  }
  ADD_FAILURE() << "no reply to " << method << " within " << within.count() << "ms"
                << (eof_ ? " (connection closed)" : "");
  return nullptr;
}

std::optional<nlohmann::json> LineClient::next_notification(Deadline deadline) {
  if (!notifications.empty()) {
    Json j = std::move(notifications.front());
    notifications.pop_front();
    return j;
  }
  return read(deadline);
}

using Json = LineClient::Json;

Json status_until(LineClient& c, const std::function<bool(const Json&)>& done,
                  std::chrono::milliseconds within) {
  return poll_until([&] { return c.call("status")["result"]; }, done, within);
}

Json file_monitor_in(const Json& status, const std::string& id) {
  for (const Json& m : status["file_monitors"]) {
    if (m["id"] == id) return m;
  }
  return Json();
}

}  // namespace tocsin::testing
