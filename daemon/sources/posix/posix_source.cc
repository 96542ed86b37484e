#include "sources/posix/posix_source.h"

#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <spdlog/spdlog.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>

namespace tocsin {

namespace asio = boost::asio;

class PosixSignalSource::Impl {
 public:
  explicit Impl(SourceContext& context) : context_(context), fd_(context.io) {
    sigemptyset(&mask_);
  }

  Result<void> set_mappings(std::span<const SourceSpec* const> specs) {
    std::vector<const config::PosixSignalSpec*> mappings;
    for (const SourceSpec* s : specs)
      mappings.push_back(static_cast<const config::PosixSignalSpec*>(s));
    sigset_t wanted = mask_;
    for (int s : {SIGHUP, SIGTERM, SIGINT}) sigaddset(&wanted, s);
    for (const auto* m : mappings) sigaddset(&wanted, m->signo);
    if (sigprocmask(SIG_BLOCK, &wanted, nullptr) != 0) {
      return Error{std::string("sigprocmask: ") + std::strerror(errno)};
    }
    int existing = fd_.is_open() ? fd_.native_handle() : -1;
    int fd = ::signalfd(existing, &wanted, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0) return Error{std::string("signalfd: ") + std::strerror(errno)};
    mask_ = wanted;
    if (existing < 0) {
      fd_.assign(fd);
      wait();
    }
    std::map<int, Mapping> next;
    for (const auto* m : mappings) {
      Mapping& slot = next[m->signo];
      slot.spec = *m;
      // A mapping that stays keeps its count.
      if (auto old = mappings_.find(m->signo);
          old != mappings_.end() && old->second.spec.signal == m->signal) {
        slot.fired = old->second.fired;
        slot.last = old->second.last;
      }
    }
    mappings_ = std::move(next);
    return ok();
  }

  struct Mapping {
    config::PosixSignalSpec spec;
    std::uint64_t fired = 0;
    std::optional<std::chrono::system_clock::time_point> last;
  };
  const std::map<int, Mapping>& mappings() const { return mappings_; }
  const Mapping* find(std::string_view id) const {
    for (const auto& [signo, m] : mappings_) {
      if (m.spec.signame == id) return &m;
    }
    return nullptr;
  }

  void stop() {
    boost::system::error_code ignored;
    fd_.close(ignored);
  }

 private:
  void wait() {
    fd_.async_wait(asio::posix::descriptor_base::wait_read, [this](boost::system::error_code ec) {
      if (ec) return;  // closed at stop
      drain();
      if (fd_.is_open()) wait();
    });
  }

  void drain() {
    signalfd_siginfo info[16];
    while (fd_.is_open()) {
      ssize_t n = ::read(fd_.native_handle(), info, sizeof info);
      if (n <= 0) {
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno != EAGAIN) {
          spdlog::error("signalfd read: {}", std::strerror(errno));
        }
        return;
      }
      for (std::size_t i = 0; i < static_cast<std::size_t>(n) / sizeof info[0]; ++i) {
        deliver(info[i]);
      }
    }
  }

  void deliver(const signalfd_siginfo& si) {
    int signo = static_cast<int>(si.ssi_signo);
    if (signo == SIGHUP) {
      spdlog::info("SIGHUP from pid {}: reloading", si.ssi_pid);
      if (context_.reload) context_.reload();
      return;
    }
    if (signo == SIGTERM || signo == SIGINT) {
      spdlog::info("{} from pid {}: stopping", signo == SIGTERM ? "SIGTERM" : "SIGINT", si.ssi_pid);
      if (context_.stop) context_.stop(signo);
      return;
    }
    auto it = mappings_.find(signo);
    if (it == mappings_.end()) {
      spdlog::warn("signal {} from pid {} is no longer mapped (posix_signals): ignored", signo,
                   si.ssi_pid);
      return;
    }
    Mapping& mapping = it->second;
    ++mapping.fired;
    mapping.last = context_.clock.wall_now();
    const config::PosixSignalSpec m = mapping.spec;  // a handler may reload: keep a copy
    nlohmann::json payload = {{"signal", m.signame},
                              {"signo", signo},
                              {"pid", si.ssi_pid},
                              {"uid", si.ssi_uid},
                              {"value", static_cast<std::int32_t>(si.ssi_int)}};
    context_.dispatcher.raise(m.signal, SourceRef{SourceKind::posix, m.signame}, payload.dump());
  }

  SourceContext& context_;
  asio::posix::stream_descriptor fd_;
  sigset_t mask_;
  std::map<int, Mapping> mappings_;
};

PosixSignalSource::PosixSignalSource(SourceContext& context)
    : impl_(std::make_unique<Impl>(context)) {}

PosixSignalSource::~PosixSignalSource() = default;

Result<void> PosixSignalSource::apply_config(std::span<const SourceSpec* const> specs,
                                             const SourceSettings&, bool) {
  return impl_->set_mappings(specs);
}

Result<void> PosixSignalSource::add(const SourceSpec&, bool) {
  return Error{"POSIX signals are mapped in the configuration (posix_signals)",
               ErrorCode::invalid_params};
}

bool PosixSignalSource::remove(std::string_view) { return false; }

bool PosixSignalSource::contains(std::string_view id) const { return impl_->find(id) != nullptr; }

bool PosixSignalSource::unchanged(const SourceSpec& spec) const {
  const auto* m = impl_->find(spec.id);
  return m != nullptr && m->spec.same_as(spec);
}

std::optional<bool> PosixSignalSource::runtime(std::string_view id) const {
  if (!contains(id)) return std::nullopt;
  return false;
}

std::vector<std::string> PosixSignalSource::config_ids() const {
  std::vector<std::string> out;
  for (const auto& [signo, m] : impl_->mappings()) out.push_back(m.spec.signame);
  return out;
}

std::size_t PosixSignalSource::count() const { return impl_->mappings().size(); }

void PosixSignalSource::status(std::vector<SourceStatus>& out, std::size_t limit) const {
  std::size_t n = 0;
  for (const auto& [signo, m] : impl_->mappings()) {
    if (n++ >= limit) break;
    SourceStatus s;
    s.id = m.spec.signame;
    s.kind = SourceKind::posix;
    s.signal = m.spec.signal;
    s.from_config = true;
    s.fired = m.fired;
    s.last = m.last;
    s.schedule = "kill -" + m.spec.signame.substr(3) + " (signal " + std::to_string(signo) + ")";
    s.details.add("signo", spec::Node::scalar(std::to_string(signo), spec::Node::Style::number));
    out.push_back(std::move(s));
  }
}

void PosixSignalSource::stop() { impl_->stop(); }

const SourceKindEntry& tocsin_source_kind_posix() {
  static const SourceKindEntry entry{
      &posix_schema(),
      [](SourceContext& c) { return std::unique_ptr<EventSource>(new PosixSignalSource(c)); }};
  return entry;
}

void PosixSignalSource::block_daemon_signals() {
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGHUP, SIGTERM, SIGINT}) sigaddset(&set, s);
  sigprocmask(SIG_BLOCK, &set, nullptr);
}

}  // namespace tocsin
