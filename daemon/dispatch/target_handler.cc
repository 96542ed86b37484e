#include "dispatch/target_handler.h"

namespace tocsin {

Result<void> TargetHandler::handle(const EventPtr& event) {
  if (target_.kind == config::TargetKind::subscribers) {
    hub_.broadcast(event);
  } else {
    hub_.deliver_one(event, target_);
  }
  return ok();
}

std::string TargetHandler::describe() const { return "target[" + to_string(target_) + "]"; }

std::string to_string(const config::TargetHandler& target) {
  switch (target.kind) {
    case config::TargetKind::subscribers: return "subscribers";
    case config::TargetKind::subscriber: return "subscriber";
    case config::TargetKind::subscriber_named: return "subscriber:" + target.name;
    case config::TargetKind::group: return "group:" + target.name;
  }
  return "?";
}

std::optional<config::TargetHandler> parse_target(std::string_view text) {
  using K = config::TargetKind;
  if (text == "subscribers") return config::TargetHandler{K::subscribers, ""};
  if (text == "subscriber") return config::TargetHandler{K::subscriber, ""};
  auto named = [&](std::string_view prefix, K kind) -> std::optional<config::TargetHandler> {
    if (!text.starts_with(prefix)) return std::nullopt;
    std::string_view name = text.substr(prefix.size());
    if (!is_valid_client_name(name)) return std::nullopt;
    return config::TargetHandler{kind, std::string(name)};
  };
  if (auto t = named("subscriber:", K::subscriber_named)) return t;
  return named("group:", K::group);
}

}  // namespace tocsin
