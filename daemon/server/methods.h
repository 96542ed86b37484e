// methods.h — the JSON-RPC methods of docs/protocol.md (internal to daemon/server/), found
// through one table: each has a name, a handler, and whether it needs an admin (root, the daemon's
// user, or socket.admin_group). The `add_*` methods are not listed: each source kind's schema
// names its own (include/tocsin/event_source.h) and one handler serves them all. `table`,
// `status` and `metrics` are in introspection.h. Reactor thread only.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "tocsin/result.h"
#include "tocsin/signal.h"

namespace tocsin {
class ServerCore;
class Session;
}  // namespace tocsin

namespace tocsin::methods {

using Json = nlohmann::json;

struct Context {
  ServerCore& core;
  Session& session;
  std::shared_ptr<Session> self;  // for replies that come later (wait)
  std::string_view method;
  const Json& id;
};

// Returns the whole reply object (result or error), or null when the reply comes later.
using Handler = Json (*)(Context& ctx, const Json& params);

struct Method {
  std::string_view name;
  Handler handler;
  bool admin = false;      // root, the daemon's user or socket.admin_group only
  bool batchable = true;   // may be part of a batch (a wait may not)
};

// The method called `name`, or nullptr.
const Method* find(std::string_view name);

// Replies. An invalid_params message gets "invalid params: " in front when it lacks it.
Json error_reply(const Json& id, ErrorCode code, const std::string& message);
Json error_reply(const Json& id, const Error& error);
Json result_reply(const Json& id, Json result);
// The denial of `what` to this session's peer, logged.
Json denied(const Context& ctx, const std::string& what);

}  // namespace tocsin::methods
