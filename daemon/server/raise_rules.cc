#include "server/raise_rules.h"

#include <string>

namespace tocsin {

Result<SignalId> resolve_signal(const SignalTable& table, const SignalRef& signal,
                                std::string_view key) {
  if (!signal.is_name) {
    if (signal.number < 0 || signal.number >= kSignalCount) {
      return Error{"invalid params: " + std::string(key) + ": a signal number is 0-255, got " +
                       std::to_string(signal.number),
                   ErrorCode::invalid_params};
    }
    return static_cast<SignalId>(signal.number);
  }
  if (auto id = table.resolve(signal.name)) return *id;
  if (!signal.name.empty() && signal.name[0] >= '0' && signal.name[0] <= '9') {
    return Error{"invalid params: " + std::string(key) + ": a signal number is 0-255, got \"" +
                     std::string(signal.name) + "\"",
                 ErrorCode::invalid_params};
  }
  return Error{"unknown signal \"" + std::string(signal.name) + "\"", ErrorCode::unknown_signal};
}

Result<SignalId> check_raise(const SignalTable& table, const config::Limits& limits,
                             const Peer& peer, const SignalRef& signal, std::size_t payload_bytes) {
  auto id = resolve_signal(table, signal, "signal");
  if (!id) return id;
  if (payload_bytes > limits.payload_bytes) {
    return Error{"payload too large: " + std::to_string(payload_bytes) +
                     " bytes, limits.payload_bytes is " + std::to_string(limits.payload_bytes),
                 ErrorCode::payload_too_large};
  }
  if (const SignalEntry* entry = table.find(*id); entry && !acl_allows(entry->acl.raise, peer)) {
    return Error{"permission denied: raise " + std::to_string(*id) + " (its acl.raise)",
                 ErrorCode::permission_denied};
  }
  return *id;
}

}  // namespace tocsin
