#include "protocol/rpc_errors.h"

#include <array>
#include <utility>

namespace tocsin {

namespace {

constexpr std::array<std::pair<ErrorCode, int>, 14> kCodes = {{
    {ErrorCode::parse_error, -32700},
    {ErrorCode::invalid_request, -32600},
    {ErrorCode::method_not_found, -32601},
    {ErrorCode::invalid_params, -32602},
    {ErrorCode::internal, -32603},
    {ErrorCode::permission_denied, -32001},
    {ErrorCode::limit_reached, -32002},
    {ErrorCode::unknown_signal, -32003},
    {ErrorCode::payload_too_large, -32004},
    {ErrorCode::not_found, -32005},
    {ErrorCode::reload_failed, -32006},
    {ErrorCode::line_too_long, -32007},
    {ErrorCode::source_conflict, -32008},
    {ErrorCode::transport, -32603},  // never sent: a client-side kind
}};

}  // namespace

int rpc_code(ErrorCode code) {
  for (const auto& [kind, number] : kCodes) {
    if (kind == code) return number;
  }
  return -32603;
}

ErrorCode error_code_from_rpc(int code) {
  for (const auto& [kind, number] : kCodes) {
    if (number == code && kind != ErrorCode::transport) return kind;
  }
  return ErrorCode::generic;
}

}  // namespace tocsin
