// methods.h — the JSON-RPC methods of docs/protocol.md (internal to daemon/server/). Each takes
// the request's params and returns the whole reply object (result or error). Reactor thread only.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>

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
  const Json& id;
};

Json error_reply(const Json& id, int code, const std::string& message);
Json result_reply(const Json& id, Json result);

Json raise(Context& ctx, const Json& params);
Json hello(Context& ctx, const Json& params);
Json subscribe(Context& ctx, const Json& params);
Json unsubscribe(Context& ctx, const Json& params);
Json ack(Context& ctx, const Json& params);
// Returns null when the reply is deferred (the waiter answers later).
Json wait(Context& ctx, const Json& params, const std::shared_ptr<Session>& session);
Json register_target(Context& ctx, const Json& params, bool add);
// add_timer / add_rb_timer (kind timer or rb_timer).
Json add_timer(Context& ctx, const Json& params, SourceKind kind);
// add_cron: the fields of a YAML cron job (SPEC §3).
Json add_cron(Context& ctx, const Json& params);
Json add_file_monitor(Context& ctx, const Json& params);
Json remove_source(Context& ctx, const Json& params);
Json table(Context& ctx);
Json status(Context& ctx);
Json metrics(Context& ctx);
Json reload(Context& ctx);
Json version(Context& ctx);

// The Prometheus text of `metrics` (also for tests).
std::string metrics_text(ServerCore& core);

}  // namespace tocsin::methods
