#include "dispatch/log_handler.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "log/log.h"

namespace tocsin {

namespace {
// Payloads are logged JSON-quoted (control characters cannot forge log lines) and cut to this.
constexpr std::size_t kMaxLoggedPayload = 1024;
}  // namespace

Result<void> LogHandler::handle(const EventPtr& event) {
  std::string payload = event->payload.size() > kMaxLoggedPayload
                            ? event->payload.substr(0, kMaxLoggedPayload)
                            : event->payload;
  std::string quoted = nlohmann::json(payload).dump(-1, ' ', false,
                                                    nlohmann::json::error_handler_t::replace);
  if (event->payload.size() > kMaxLoggedPayload) {
    quoted += " (" + std::to_string(event->payload.size()) + " bytes, cut)";
  }
  spdlog::log(logging::to_spdlog(level_), "signal {}: source {}:{} iteration {} time {} payload {}",
              describe_event(*event), to_string(event->source.kind), event->source.id,
              event->iteration, format_rfc3339(event->time), quoted);
  ++stats_[event->signal].delivered;
  return ok();
}

std::string LogHandler::describe() const {
  return "log[" + std::string(config::to_string(level_)) + "]";
}

}  // namespace tocsin
