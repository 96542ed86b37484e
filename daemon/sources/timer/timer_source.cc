#include "sources/timer/timer_source.h"

#include <sys/timerfd.h>
#include <unistd.h>

#include <spdlog/spdlog.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstring>

#include "sources/timer/timerfd.h"

namespace tocsin {

namespace asio = boost::asio;
using timerfd::kNsPerMs;

class KernelTimer : public std::enable_shared_from_this<KernelTimer> {
 public:
  using Retire = std::function<void(KernelTimer* timer)>;

  KernelTimer(SourceContext& context, const config::TimerSpec& spec, bool from_config)
      : context_(context), spec_(spec), from_config_(from_config), fd_(context.io) {}

  Result<void> start(Retire retire) {
    retire_ = std::move(retire);
    ClockId c = spec_.clustered ? ClockId::realtime : to_clock_id(spec_.clock);
    clock_id_ = c;
    int fd = ::timerfd_create(timerfd::kernel_clock(c), TFD_NONBLOCK | TFD_CLOEXEC);
    if (fd < 0) return Error{std::string("timerfd_create: ") + std::strerror(errno)};
    fd_.assign(fd);
    period_ns_ = spec_.every.count() * kNsPerMs;
    first_ns_ = context_.clock.now_ns(c) + spec_.after.value_or(spec_.every).count() * kNsPerMs;
    if (spec_.clustered) first_ns_ = (first_ns_ / period_ns_ + 1) * period_ns_;
    itimerspec its{};
    its.it_value = timerfd::to_timespec(first_ns_);
    its.it_interval = timerfd::to_timespec(period_ns_);
    if (::timerfd_settime(fd, TFD_TIMER_ABSTIME, &its, nullptr) != 0) {
      return Error{std::string("timerfd_settime: ") + std::strerror(errno)};
    }
    wait();
    return ok();
  }

  void stop() {
    boost::system::error_code ignored;
    fd_.close(ignored);
  }

  SourceStatus status() const {
    SourceStatus s;
    s.id = spec_.id;
    s.kind = SourceKind::timer;
    s.signal = spec_.signal;
    s.from_config = from_config_;
    s.iterations = spec_.iterations;
    s.fired = fired_;
    const std::int64_t next_ns = first_ns_ + static_cast<std::int64_t>(fired_) * period_ns_;
    s.next = timerfd::wall_time(context_.clock, clock_id_, next_ns);
    if (fired_ > 0) s.last = timerfd::wall_time(context_.clock, clock_id_, next_ns - period_ns_);
    s.schedule = timerfd::describe_period(spec_.every.count(), clock_id_);
    if (spec_.clustered) s.schedule += ", cluster";
    s.details.add("every_ms", spec::Node::scalar(std::to_string(spec_.every.count()),
                                                 spec::Node::Style::number));
    s.details.add("clock",
                  spec::Node::scalar(std::string(to_string(clock_id_)), spec::Node::Style::quoted));
    s.details.add("overruns",
                  spec::Node::scalar(std::to_string(overruns_), spec::Node::Style::number));
    s.details.add(
        "next_in_ms",
        spec::Node::scalar(std::to_string((next_ns - context_.clock.now_ns(clock_id_)) / kNsPerMs),
                           spec::Node::Style::number));
    return s;
  }
  const config::TimerSpec& spec() const { return spec_; }
  bool from_config() const { return from_config_; }

 private:
  void wait() {
    std::weak_ptr<KernelTimer> weak = shared_from_this();
    fd_.async_wait(asio::posix::descriptor_base::wait_read, [weak](boost::system::error_code ec) {
      auto self = weak.lock();
      if (!self || ec) return;
      self->on_ready();
    });
  }

  void on_ready() {
    std::uint64_t n = 0;
    ssize_t r = ::read(fd_.native_handle(), &n, sizeof n);
    if (r != sizeof n) {
      if (r < 0 && errno != EAGAIN && errno != EINTR) {
        spdlog::error("timer {}: read: {}", spec_.id, std::strerror(errno));
      }
      wait();
      return;
    }
    fired_ += n;
    overruns_ += n - 1;
    std::int64_t due = first_ns_ + static_cast<std::int64_t>(fired_ - 1) * period_ns_;
    std::int64_t late = context_.clock.now_ns(clock_id_) - due;
    if (n > 1) {
      // Reported in the event and counted in status; a warning per event would flood the log
      // exactly when the daemon is already behind.
      spdlog::debug("timer {}: {} expirations at once ({} overrun(s)), reported in one event",
                    spec_.id, n, n - 1);
    }
    bool last = spec_.iterations != 0 && fired_ >= spec_.iterations;
    std::uint64_t iteration = last ? spec_.iterations : fired_;
    // Keep ourselves alive: a handler may remove this timer while the event is delivered.
    auto self = shared_from_this();
    if (spec_.clustered) {
      claim_and_raise(due / period_ns_, timerfd::payload(n, late), iteration);
    } else {
      context_.dispatcher.raise(spec_.signal, SourceRef{SourceKind::timer, spec_.id},
                                timerfd::payload(n, late), iteration);
    }
    if (!fd_.is_open()) return;  // removed meanwhile
    if (last) {
      stop();
      spdlog::info("timer {}: retired after {} iteration(s)", spec_.id, spec_.iterations);
      if (retire_) retire_(this);
      return;
    }
    wait();
  }

  void claim_and_raise(std::int64_t slot, std::string payload, std::uint64_t iteration) {
    if (!context_.claimer) {
      spdlog::warn("timer {}: cluster: true but no plugin makes claims; slot not fired", spec_.id);
      return;
    }
    std::weak_ptr<KernelTimer> weak = shared_from_this();
    context_.claimer(spec_.id, slot,
                     [weak, payload = std::move(payload), iteration, slot](bool claimed,
                                                                           const std::string& why) {
                       auto self = weak.lock();
                       if (!self || !self->fd_.is_open()) return;
                       if (claimed) {
                         self->context_.dispatcher.raise(
                             self->spec_.signal, SourceRef{SourceKind::timer, self->spec_.id},
                             payload, iteration);
                       } else if (why != "claimed by another daemon") {
                         spdlog::warn("timer {}: slot {} not fired: {}", self->spec_.id, slot, why);
                       }
                     });
  }

  SourceContext& context_;
  config::TimerSpec spec_;
  bool from_config_;
  asio::posix::stream_descriptor fd_;
  Retire retire_;
  ClockId clock_id_ = ClockId::monotonic;
  std::int64_t period_ns_ = 0;
  std::int64_t first_ns_ = 0;
  std::uint64_t fired_ = 0;
  std::uint64_t overruns_ = 0;
};

TimerSource::TimerSource(SourceContext& context) : context_(context) {}

TimerSource::~TimerSource() { stop(); }

Result<void> TimerSource::add(const SourceSpec& spec, bool from_config) {
  const auto& t = static_cast<const config::TimerSpec&>(spec);
  if (contains(t.id))
    return Error{"a source with id \"" + t.id + "\" exists", ErrorCode::invalid_params};
  if (t.every.count() < 1) return Error{"every: at least 1ms", ErrorCode::invalid_params};
  if (t.clustered && !from_config && !(context_.claims_available && context_.claims_available())) {
    return Error{"cluster: true needs a plugin that makes cluster claims (pgnotify)",
                 ErrorCode::invalid_params};
  }
  auto timer = std::make_shared<KernelTimer>(context_, t, from_config);
  if (auto r = timer->start([this](KernelTimer* done) { retired(done); }); !r) return r;
  timers_.emplace(t.id, std::move(timer));
  return ok();
}

bool TimerSource::remove(std::string_view id) {
  auto it = timers_.find(id);
  if (it == timers_.end()) return false;
  it->second->stop();
  timers_.erase(it);
  return true;
}

bool TimerSource::contains(std::string_view id) const { return timers_.find(id) != timers_.end(); }

bool TimerSource::unchanged(const SourceSpec& spec) const {
  auto it = timers_.find(spec.id);
  return it != timers_.end() && it->second->from_config() && it->second->spec().same_as(spec);
}

std::optional<bool> TimerSource::runtime(std::string_view id) const {
  auto it = timers_.find(id);
  if (it == timers_.end()) return std::nullopt;
  return !it->second->from_config();
}

std::vector<std::string> TimerSource::config_ids() const {
  std::vector<std::string> out;
  for (const auto& [id, t] : timers_) {
    if (t->from_config()) out.push_back(id);
  }
  return out;
}

void TimerSource::status(std::vector<SourceStatus>& out, std::size_t limit) const {
  std::size_t n = 0;
  for (const auto& [id, t] : timers_) {
    if (n++ >= limit) break;
    out.push_back(t->status());
  }
}

void TimerSource::stop() {
  for (auto& [id, t] : timers_) t->stop();
  timers_.clear();
}

void TimerSource::retired(KernelTimer* timer) {
  // Deferred: the timer is still on the stack of its own completion handler. By then its id may
  // name a new timer: only this one goes.
  asio::post(context_.io, [this, timer, id = timer->spec().id] {
    auto it = timers_.find(id);
    if (it != timers_.end() && it->second.get() == timer) timers_.erase(it);
  });
}

const SourceKindEntry& tocsin_source_kind_timer() {
  static const SourceKindEntry entry{&timer_schema(), [](SourceContext& c) {
                                       return std::unique_ptr<EventSource>(new TimerSource(c));
                                     }};
  return entry;
}

}  // namespace tocsin
