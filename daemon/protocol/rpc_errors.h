// rpc_errors.h — the JSON-RPC error codes of the protocol (docs/protocol.md "Errors"), the one
// place where an ErrorCode (include/tocsin/result.h) becomes a number on the wire and back. Pure.
#pragma once

#include "tocsin/result.h"

namespace tocsin {

// -32602 for invalid_params, ...; `generic` (an error with no protocol meaning) is -32603.
int rpc_code(ErrorCode code);
// The ErrorCode of a code a daemon answered with; `generic` for a code this build does not know.
ErrorCode error_code_from_rpc(int code);

}  // namespace tocsin
