// log_handler.h — `log: LEVEL`: one log line per event (SPEC §2). Reactor thread only.
#pragma once

#include "tocsin/config.h"
#include "tocsin/dispatcher.h"

namespace tocsin {

class LogHandler final : public Handler {
 public:
  LogHandler(SignalStats& stats, config::LogLevel level) : stats_(stats), level_(level) {}
  Result<void> handle(const EventPtr& event) override;
  std::string describe() const override;

 private:
  SignalStats& stats_;
  config::LogLevel level_;
};

}  // namespace tocsin
