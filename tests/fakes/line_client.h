// LineClient — a raw client of tocsind's socket for protocol tests: it sends exactly the bytes
// it is given and reads line by line with deadlines, so malformed input can be sent and every
// reply checked as it is. (Well-formed use goes through tocsin::Client.)
#pragma once

#include <sys/types.h>

#include <deque>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "fakes/daemon_process.h"

namespace tocsin::testing {

class LineClient {
 public:
  using Json = nlohmann::json;
  explicit LineClient(const std::string& socket_path);
  // A client on a socket already connected (connect_as).
  static LineClient adopt(int fd);
  ~LineClient();
  LineClient(LineClient&& o) noexcept;
  LineClient(const LineClient&) = delete;
  LineClient& operator=(const LineClient&) = delete;

  bool connected() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  // Sends everything; false (without failing the test) when the daemon closed the connection
  // first, which some tests expect.
  bool send_raw(std::string_view bytes);
  void send(const Json& message);  // one line
  // The next line; nullopt at the deadline or at EOF (eof() tells which).
  std::optional<std::string> read_line(Deadline deadline);
  std::optional<Json> read(Deadline deadline);
  bool eof() const { return eof_; }
  // Sends a request and reads until its reply; notifications read meanwhile go to
  // `notifications`. Fails the test and returns null at the deadline.
  Json call(const std::string& method, const Json& params = Json::object(),
            std::chrono::milliseconds within = kWait);
  // The next notification with this method (from `notifications` first), or nullopt.
  std::optional<Json> next_notification(Deadline deadline);
  void close();

  std::deque<Json> notifications;

 private:
  LineClient() = default;
  int fd_ = -1;
  long next_id_ = 1000;
  std::string buf_;
  bool eof_ = false;
};

// A client whose peer credentials (SO_PEERCRED, taken at connect) are `uid`/`gid` with no
// supplementary groups: a child process takes them and connects a socket this process made,
// then exits. Needs root. nullopt with the reason in `why` when the child could not connect;
// `unreachable` is set when the socket's directory does not let that user in (the environment,
// not the daemon: a test may skip then).
std::optional<LineClient> connect_as(const std::string& socket_path, uid_t uid, gid_t gid,
                                     std::string* why, bool* unreachable = nullptr);

// The params of a notification (what next_notification gave), or null when there was none.
inline nlohmann::json params_of(const std::optional<nlohmann::json>& n) {
  return n && n->contains("params") ? (*n)["params"] : nlohmann::json();
}

// Calls `status` until `done(result)` holds or the deadline passes; returns the last result
// (the caller asserts on it, so a timeout fails with what status said).
nlohmann::json status_until(LineClient& c, const std::function<bool(const nlohmann::json&)>& done,
                            std::chrono::milliseconds within = kWait);
// The `file_monitors` entry with this id in a status result, or null.
nlohmann::json file_monitor_in(const nlohmann::json& status, const std::string& id);

}  // namespace tocsin::testing
