// log.h — logging set-up. The daemon logs through spdlog's default logger, to stderr, one line
// per message; every line about an event names its signal and seq (describe_event).
#pragma once

#include <spdlog/common.h>

#include "tocsin/config.h"

namespace tocsin::logging {

// Replaces the default logger with a single-threaded stderr logger at `level`.
void init(config::LogLevel level);
void set_level(config::LogLevel level);
spdlog::level::level_enum to_spdlog(config::LogLevel level);

}  // namespace tocsin::logging
