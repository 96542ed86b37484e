// raise_rules.h — what a client's raise must pass, whichever way it comes (SPEC §6, §7): the
// fast path (protocol/fast_raise.h: a line of raises read without a JSON tree) and a full
// request both call check_raise, so the rules and their errors exist once. Reactor thread only.
#pragma once

#include <cstdint>
#include <string_view>

#include "server/peer.h"
#include "tocsin/config.h"
#include "tocsin/result.h"
#include "tocsin/signal_table.h"

namespace tocsin {

// A signal as a request gives it: a number, or a name (a number in a string is refused).
struct SignalRef {
  bool is_name = false;
  std::int64_t number = 0;
  std::string_view name;
};

// The signal a raise of `signal` with a payload of `payload_bytes` raises, or why not: an unknown
// name (unknown_signal), a number outside 0-255 (invalid_params), a payload over
// limits.payload_bytes (payload_too_large), or the signal's raise ACL (permission_denied).
Result<SignalId> check_raise(const SignalTable& table, const config::Limits& limits,
                             const Peer& peer, const SignalRef& signal, std::size_t payload_bytes);

// The signal a request names (a number 0-255, or a name of the table), for any method; errors as
// check_raise's, with `key` naming the param.
Result<SignalId> resolve_signal(const SignalTable& table, const SignalRef& signal,
                                std::string_view key);

}  // namespace tocsin
