#include "sources/wall_timer.h"

#include <sys/timerfd.h>
#include <unistd.h>

#include <spdlog/spdlog.h>
#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstring>

namespace tocsin {

namespace asio = boost::asio;

class WallTimer::Impl {
 public:
  Impl(asio::io_context& io, std::string what, bool notice_clock_set, Fired fired)
      : io_(io),
        fd_(io),
        what_(std::move(what)),
        notice_clock_set_(notice_clock_set),
        fired_(std::move(fired)),
        alive_(std::make_shared<bool>(true)) {}

  void arm(std::optional<std::int64_t> deadline) {
    if (closed_) return;
    if (!deadline) {
      if (fd_.is_open() && armed_for_ != LLONG_MAX) {
        itimerspec off{};
        ::timerfd_settime(fd_.native_handle(), 0, &off, nullptr);
        armed_for_ = LLONG_MAX;
      }
      return;
    }
    if (!fd_.is_open()) {
      int fd = ::timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK | TFD_CLOEXEC);
      if (fd < 0) {
        spdlog::error("{}: timerfd_create: {}; nothing can fire", what_, std::strerror(errno));
        return;
      }
      fd_.assign(fd);
    }
    if (*deadline == armed_for_ && waiting_) return;
    itimerspec its{};
    const std::int64_t ms = std::max<std::int64_t>(*deadline, 1);
    its.it_value.tv_sec = static_cast<time_t>(ms / 1000);
    its.it_value.tv_nsec = static_cast<long>(ms % 1000) * 1000000;
    const int flags = TFD_TIMER_ABSTIME | (notice_clock_set_ ? TFD_TIMER_CANCEL_ON_SET : 0);
    if (::timerfd_settime(fd_.native_handle(), flags, &its, nullptr) != 0) {
      if (errno == ECANCELED) {
        // The clock was set between the caller's last look and now: tell it at once.
        std::weak_ptr<bool> alive = alive_;
        asio::post(io_, [this, alive] {
          if (!alive.expired() && !closed_) fired_(true);
        });
        return;
      }
      spdlog::error("{}: timerfd_settime: {}", what_, std::strerror(errno));
      return;
    }
    armed_for_ = *deadline;
    if (waiting_) return;
    waiting_ = true;
    fd_.async_wait(asio::posix::descriptor_base::wait_read, [this](boost::system::error_code ec) {
      waiting_ = false;
      if (ec || closed_) return;
      std::uint64_t n = 0;
      const bool clock_set = ::read(fd_.native_handle(), &n, sizeof n) < 0 && errno == ECANCELED;
      armed_for_ = LLONG_MAX;
      fired_(clock_set);
    });
  }

  void close() {
    closed_ = true;
    boost::system::error_code ignored;
    fd_.close(ignored);
  }

 private:
  asio::io_context& io_;
  asio::posix::stream_descriptor fd_;
  std::string what_;
  bool notice_clock_set_;
  Fired fired_;
  std::shared_ptr<bool> alive_;
  std::int64_t armed_for_ = LLONG_MAX;
  bool waiting_ = false;
  bool closed_ = false;
};

WallTimer::WallTimer(asio::io_context& io, std::string what, bool notice_clock_set, Fired fired)
    : impl_(std::make_unique<Impl>(io, std::move(what), notice_clock_set, std::move(fired))) {}
WallTimer::~WallTimer() { impl_->close(); }
void WallTimer::arm(std::optional<std::int64_t> deadline_ms) { impl_->arm(deadline_ms); }
void WallTimer::close() { impl_->close(); }

}  // namespace tocsin
