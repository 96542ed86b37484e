#include "sources/posix_source.h"

#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <cerrno>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

namespace tocsin {

namespace asio = boost::asio;

class PosixSignalSource::Impl {
 public:
  Impl(asio::io_context& io, Dispatcher& dispatcher, DaemonActions actions)
      : io_(io), dispatcher_(dispatcher), actions_(std::move(actions)), fd_(io) {
    sigemptyset(&mask_);
  }

  Result<void> set_mappings(const std::vector<config::PosixSignalSpec>& mappings) {
    sigset_t wanted = mask_;
    for (int s : {SIGHUP, SIGTERM, SIGINT}) sigaddset(&wanted, s);
    for (const auto& m : mappings) sigaddset(&wanted, m.signo);
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
    mappings_.clear();
    for (const auto& m : mappings) mappings_[m.signo] = m;
    return ok();
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
      if (actions_.reload) actions_.reload();
      return;
    }
    if (signo == SIGTERM || signo == SIGINT) {
      spdlog::info("{} from pid {}: stopping", signo == SIGTERM ? "SIGTERM" : "SIGINT",
                   si.ssi_pid);
      if (actions_.stop) actions_.stop(signo);
      return;
    }
    auto it = mappings_.find(signo);
    if (it == mappings_.end()) {
      spdlog::warn("signal {} from pid {} is no longer mapped (posix_signals): ignored", signo,
                   si.ssi_pid);
      return;
    }
    const auto& m = it->second;
    nlohmann::json payload = {{"signal", m.signame},
                              {"signo", signo},
                              {"pid", si.ssi_pid},
                              {"uid", si.ssi_uid},
                              {"value", static_cast<std::int32_t>(si.ssi_int)}};
    dispatcher_.raise(m.signal, SourceRef{SourceKind::posix, m.signame}, payload.dump());
  }

  asio::io_context& io_;
  Dispatcher& dispatcher_;
  DaemonActions actions_;
  asio::posix::stream_descriptor fd_;
  sigset_t mask_;
  std::map<int, config::PosixSignalSpec> mappings_;
};

PosixSignalSource::PosixSignalSource(asio::io_context& io, Dispatcher& dispatcher,
                                     DaemonActions actions)
    : impl_(std::make_unique<Impl>(io, dispatcher, std::move(actions))) {}

PosixSignalSource::~PosixSignalSource() = default;

Result<void> PosixSignalSource::start(const std::vector<config::PosixSignalSpec>& mappings) {
  return impl_->set_mappings(mappings);
}

Result<void> PosixSignalSource::set_mappings(
    const std::vector<config::PosixSignalSpec>& mappings) {
  return impl_->set_mappings(mappings);
}

void PosixSignalSource::stop() { impl_->stop(); }

void PosixSignalSource::block_daemon_signals() {
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGHUP, SIGTERM, SIGINT}) sigaddset(&set, s);
  sigprocmask(SIG_BLOCK, &set, nullptr);
}

}  // namespace tocsin
