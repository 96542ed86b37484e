#include "log/journal_sink.h"

#include <sys/uio.h>
#include <unistd.h>

#include <array>
#include <charconv>
#include <cstdio>
#include <mutex>
#include <string>
#include <string_view>

#include <spdlog/sinks/base_sink.h>
// The location sd_journal_sendv would add is this file's, never the caller's: leave it out.
#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>

#include "log/scope.h"

namespace tocsin::logging {

namespace {

// The syslog priority (0-7) of a spdlog level, as the journal reads it.
int syslog_priority(int spdlog_level) {
  switch (spdlog_level) {
    case spdlog::level::trace:
    case spdlog::level::debug: return 7;
    case spdlog::level::info: return 6;
    case spdlog::level::warn: return 4;
    case spdlog::level::err: return 3;
    case spdlog::level::critical: return 2;
    default: return 6;
  }
}

constexpr const char* kJournalSocket = "/run/systemd/journal/socket";

// One "NAME=value" field, built in place: the journal's native protocol takes them as iovecs.
class FieldList {
 public:
  void add(std::string_view name, std::string_view value) {
    std::string& s = text_[n_];
    s.clear();
    s.reserve(name.size() + 1 + value.size());
    s.append(name).push_back('=');
    s.append(value);
    iov_[n_] = {s.data(), s.size()};
    ++n_;
  }
  void add(std::string_view name, std::uint64_t value) {
    char buf[24];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
    add(name, std::string_view(buf, static_cast<std::size_t>(end - buf)));
  }
  int send() { return sd_journal_sendv(iov_.data(), static_cast<int>(n_)); }
  void clear() { n_ = 0; }

 private:
  static constexpr std::size_t kMax = 10;
  std::array<std::string, kMax> text_;
  std::array<iovec, kMax> iov_{};
  std::size_t n_ = 0;
};

class JournalSink final : public spdlog::sinks::base_sink<std::mutex> {
 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    std::string_view text(msg.payload.data(), msg.payload.size());
    int prio = syslog_priority(msg.level);
    fields_.clear();
    fields_.add("MESSAGE", text);
    char p[2] = {static_cast<char>('0' + prio), 0};
    fields_.add("PRIORITY", std::string_view(p, 1));
    fields_.add("SYSLOG_IDENTIFIER", "tocsind");
    Scope::Fields f = Scope::current();
    if (f.event != nullptr) {
      const Event& e = *f.event;
      fields_.add("TOCSIN_SIGNAL", static_cast<std::uint64_t>(e.signal));
      if (!e.name.empty()) fields_.add("TOCSIN_SIGNAL_NAME", e.name);
      fields_.add("TOCSIN_SEQ", e.seq);
      fields_.add("TOCSIN_SOURCE_KIND", to_string(e.source.kind));
      if (!e.source.id.empty()) fields_.add("TOCSIN_SOURCE_ID", e.source.id);
    }
    if (f.client) fields_.add("TOCSIN_CLIENT", *f.client);
    // sd_journal_sendv reports success when the socket does not exist at all ("fail silently if
    // the journal is not available"): look first, so such a line goes to stderr instead of nowhere.
    if (::access(kJournalSocket, F_OK) == 0 && fields_.send() >= 0) return;
    // No journal socket to take it: the stream (stderr) still reaches the journal.
    std::string line = "<";
    line += static_cast<char>('0' + prio);
    line += '>';
    auto level = spdlog::level::to_string_view(msg.level);
    line.append(level.data(), level.size());
    line += ' ';
    line += text;
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), stderr);
    std::fflush(stderr);
  }
  void flush_() override {}

 private:
  FieldList fields_;
};

}  // namespace

std::shared_ptr<spdlog::sinks::sink> make_journal_sink() { return std::make_shared<JournalSink>(); }

}  // namespace tocsin::logging
