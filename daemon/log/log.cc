#include "log/log.h"

#include <spdlog/pattern_formatter.h>
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

namespace {

// "%*": the syslog priority of the line's level in angle brackets, as journald reads it.
class PriorityFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    char prio = '6';
    switch (msg.level) {
      case spdlog::level::trace:
      case spdlog::level::debug: prio = '7'; break;
      case spdlog::level::info: prio = '6'; break;
      case spdlog::level::warn: prio = '4'; break;
      case spdlog::level::err: prio = '3'; break;
      case spdlog::level::critical: prio = '2'; break;
      default: break;
    }
    const char text[3] = {'<', prio, '>'};
    dest.append(text, text + 3);
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<PriorityFlag>();
  }
};

}  // namespace

void init(config::LogLevel level, bool journal) {
  auto logger =
      std::make_shared<spdlog::logger>("tocsind", std::make_shared<spdlog::sinks::stderr_sink_st>());
  if (journal) {
    auto formatter = std::make_unique<spdlog::pattern_formatter>();
    formatter->add_flag<PriorityFlag>('*').set_pattern("%*%l %v");
    logger->set_formatter(std::move(formatter));
  } else {
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%f%z %l %v");
  }
  logger->set_level(to_spdlog(level));
  // Every line reaches the pipe or journal at once: a crash or SIGKILL loses nothing logged.
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(std::move(logger));
}

void set_level(config::LogLevel level) { spdlog::set_level(to_spdlog(level)); }

}  // namespace tocsin::logging
