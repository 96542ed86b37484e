#include "log/log.h"

#include "log/journal_sink.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace tocsin::logging {

spdlog::level::level_enum to_spdlog(config::LogLevel level) {
  using L = config::LogLevel;
  switch (level) {
    case L::trace: return spdlog::level::trace;
    case L::debug: return spdlog::level::debug;
    case L::info: return spdlog::level::info;
    case L::warn: return spdlog::level::warn;
    case L::error: return spdlog::level::err;
    case L::critical: return spdlog::level::critical;
    case L::off: return spdlog::level::off;
  }
  return spdlog::level::info;
}

void init(config::LogLevel level, bool journal) {
  std::shared_ptr<spdlog::logger> logger;
  if (journal) {
    logger = std::make_shared<spdlog::logger>("tocsind", make_journal_sink());
  } else {
    logger = std::make_shared<spdlog::logger>("tocsind",
                                              std::make_shared<spdlog::sinks::stderr_sink_st>());
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%f%z %l %v");
  }
  logger->set_level(to_spdlog(level));
  // Every line reaches the pipe or journal at once: a crash or SIGKILL loses nothing logged.
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(std::move(logger));
}

void set_level(config::LogLevel level) { spdlog::set_level(to_spdlog(level)); }

}  // namespace tocsin::logging
