// introspection.h — the methods that report the daemon's state (docs/protocol.md): `table` (the
// signal table and its counters), `status` (the daemon, its sources through the SourceRegistry,
// plugins, clients) and `metrics` (the Prometheus text). Reactor thread only.
#pragma once

#include <string>

#include "server/methods.h"

namespace tocsin {
class ServerCore;
}

namespace tocsin::introspection {

using Json = nlohmann::json;

Json table(methods::Context& ctx, const Json& params);
Json status(methods::Context& ctx, const Json& params);
Json metrics(methods::Context& ctx, const Json& params);

// The Prometheus text of `metrics` (also for tests).
std::string metrics_text(ServerCore& core);

}  // namespace tocsin::introspection
