// result.h — errors as values (DESIGN §5.1). Exceptions stop at boundaries (yaml-cpp, startup);
// everything else returns Result<T>.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <variant>

namespace tocsin {

// What kind of error it is, for whoever must tell errors apart. Below the socket server nothing
// knows the protocol's numbers: the server maps each kind to its JSON-RPC code in one place
// (daemon/protocol/rpc_errors.cc), and the client maps the codes back.
enum class ErrorCode : std::uint8_t {
  generic = 0,        // nothing in particular: an I/O error, a failed start
  transport,          // (client) the connection failed, or no reply came in time
  parse_error,        // the line is not JSON
  invalid_request,    // not a JSON-RPC 2.0 request
  method_not_found,
  invalid_params,     // a bad field: missing, of the wrong type, out of range, or taken
  internal,
  permission_denied,  // an ACL, or an admin method
  limit_reached,      // limits.*
  unknown_signal,     // a signal name the table does not have
  payload_too_large,
  not_found,          // no such event, subscription, run-time target or source
  reload_failed,
  line_too_long,
  source_conflict,    // a run-time source id taken by an unequal spec, or declared by others
};

struct Error {
  std::string message;
  ErrorCode code = ErrorCode::generic;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Error error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() { return value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT
  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { return error_; }

 private:
  Error error_;
  bool ok_ = true;
};

inline Result<void> ok() { return {}; }

}  // namespace tocsin
