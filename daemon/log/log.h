// log.h — logging set-up. The daemon logs through spdlog's default logger, to stderr, one line
// per message; every line about an event names its signal and seq (describe_event).
#pragma once

#include <spdlog/common.h>

#include "tocsin/config.h"

namespace tocsin::logging {

// Replaces the default logger with a single-threaded stderr logger at `level`. With `journal`
// (stderr is the journal: systemd::stderr_is_journal) lines go to the journal with structured
// fields instead (log/journal_sink.h; what they name comes from log/scope.h), or, when its socket
// is unreachable, to stderr as "<6>info ..." (syslog priority, no timestamp: the journal stamps it).
void init(config::LogLevel level, bool journal = false);
void set_level(config::LogLevel level);
spdlog::level::level_enum to_spdlog(config::LogLevel level);

}  // namespace tocsin::logging
