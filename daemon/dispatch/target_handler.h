// target_handler.h — `target: subscribers | subscriber | subscriber:NAME | group:NAME` (SPEC §2):
// hands the event to the Hub, which queues it for the socket's clients. Never blocks.
#pragma once

#include "dispatch/hub.h"
#include "tocsin/config.h"
#include "tocsin/dispatcher.h"

namespace tocsin {

class TargetHandler final : public Handler {
 public:
  TargetHandler(Hub& hub, config::TargetHandler target) : hub_(hub), target_(std::move(target)) {}
  Result<void> handle(const EventPtr& event) override;
  std::string describe() const override;

 private:
  Hub& hub_;
  config::TargetHandler target_;
};

// "subscribers", "subscriber", "subscriber:NAME", "group:NAME"
std::string to_string(const config::TargetHandler& target);
std::optional<config::TargetHandler> parse_target(std::string_view text);

}  // namespace tocsin
