#include "sources/timers.h"

#include <sys/timerfd.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/intrusive/unordered_set.hpp>
#include <cerrno>
#include <climits>
#include <cstring>
#include <map>
#include <spdlog/spdlog.h>

#include "sources/timer_queue.h"

namespace tocsin {

namespace asio = boost::asio;
namespace bi = boost::intrusive;

ClockId to_clock_id(config::ClockKind kind) {
  switch (kind) {
    case config::ClockKind::monotonic: return ClockId::monotonic;
    case config::ClockKind::boottime: return ClockId::boottime;
    case config::ClockKind::realtime: return ClockId::realtime;
  }
  return ClockId::monotonic;
}

std::string_view to_string(ClockId clock) {
  switch (clock) {
    case ClockId::monotonic: return "monotonic";
    case ClockId::boottime: return "boottime";
    case ClockId::realtime: return "realtime";
  }
  return "?";
}

namespace {

constexpr std::int64_t kNsPerMs = 1000000;

clockid_t kernel_clock(ClockId c) {
  return c == ClockId::boottime ? CLOCK_BOOTTIME
         : c == ClockId::realtime ? CLOCK_REALTIME
                                  : CLOCK_MONOTONIC;
}

timespec to_timespec(std::int64_t ns) {
  return timespec{static_cast<time_t>(ns / 1000000000), static_cast<long>(ns % 1000000000)};
}

// `late_us`: how long after its due time (of the last expiration) the event was raised.
std::string timer_payload(std::uint64_t expirations, std::int64_t late_ns) {
  return "{\"expirations\":" + std::to_string(expirations) +
         ",\"overruns\":" + std::to_string(expirations - 1) +
         ",\"late_us\":" + std::to_string(std::max<std::int64_t>(late_ns, 0) / 1000) + "}";
}

// ---- kernel timers ------------------------------------------------------------------------------

class KernelTimer : public std::enable_shared_from_this<KernelTimer> {
 public:
  using Retire = std::function<void(const std::string& id)>;

  KernelTimer(asio::io_context& io, Dispatcher& d, config::TimerSpec spec, bool from_config)
      : dispatcher_(d), spec_(std::move(spec)), from_config_(from_config), fd_(io) {}

  Result<void> start(const Clock& clock, Retire retire, const Claimer* claimer) {
    retire_ = std::move(retire);
    clock_ = &clock;
    claimer_ = claimer;
    // A cluster timer runs on the wall clock's grid (multiples of `every` since the epoch), the
    // same on every daemon, so that each period is one slot everywhere (docs/cluster.md).
    ClockId c = spec_.cluster ? ClockId::realtime : to_clock_id(spec_.clock);
    clock_id_ = c;
    int fd = ::timerfd_create(kernel_clock(c), TFD_NONBLOCK | TFD_CLOEXEC);
    if (fd < 0) return Error{std::string("timerfd_create: ") + std::strerror(errno)};
    fd_.assign(fd);
    period_ns_ = spec_.every.count() * kNsPerMs;
    first_ns_ = clock.now_ns(c) + spec_.after.value_or(spec_.every).count() * kNsPerMs;
    if (spec_.cluster) first_ns_ = (first_ns_ / period_ns_ + 1) * period_ns_;
    itimerspec its{};
    its.it_value = to_timespec(first_ns_);
    its.it_interval = to_timespec(period_ns_);
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

  TimerInfo info() const {
    return TimerInfo{spec_.id,  SourceKind::timer, spec_.signal, spec_.every.count(),
                     clock_id_, spec_.iterations, fired_, overruns_,
                     first_ns_ + static_cast<std::int64_t>(fired_) * period_ns_, from_config_};
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
    std::int64_t late = clock_->now_ns(clock_id_) - due;
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
    if (spec_.cluster) {
      claim_and_raise(due / period_ns_, timer_payload(n, late), iteration);
    } else {
      dispatcher_.raise(spec_.signal, SourceRef{SourceKind::timer, spec_.id},
                        timer_payload(n, late), iteration);
    }
    if (!fd_.is_open()) return;  // removed meanwhile
    if (last) {
      stop();
      spdlog::info("timer {}: retired after {} iteration(s)", spec_.id, spec_.iterations);
      if (retire_) retire_(spec_.id);
      return;
    }
    wait();
  }

  void claim_and_raise(std::int64_t slot, std::string payload, std::uint64_t iteration) {
    if (claimer_ == nullptr || !*claimer_) {
      spdlog::warn("timer {}: cluster: true but no plugin makes claims; slot not fired", spec_.id);
      return;
    }
    std::weak_ptr<KernelTimer> weak = shared_from_this();
    (*claimer_)(spec_.id, slot,
                [weak, payload = std::move(payload), iteration, slot](bool claimed,
                                                                      const std::string& why) {
                  auto self = weak.lock();
                  if (!self || !self->fd_.is_open()) return;
                  if (claimed) {
                    self->dispatcher_.raise(self->spec_.signal,
                                            SourceRef{SourceKind::timer, self->spec_.id},
                                            payload, iteration);
                  } else if (why != "claimed by another daemon") {
                    spdlog::warn("timer {}: slot {} not fired: {}", self->spec_.id, slot, why);
                  }
                });
  }

  Dispatcher& dispatcher_;
  config::TimerSpec spec_;
  bool from_config_;
  asio::posix::stream_descriptor fd_;
  Retire retire_;
  const Claimer* claimer_ = nullptr;
  ClockId clock_id_ = ClockId::monotonic;
  const Clock* clock_ = nullptr;
  std::int64_t period_ns_ = 0;
  std::int64_t first_ns_ = 0;
  std::uint64_t fired_ = 0;
  std::uint64_t overruns_ = 0;
};

// ---- rb_timers ----------------------------------------------------------------------------------

using IdHook = bi::unordered_set_member_hook<bi::link_mode<bi::normal_link>>;

// Laid out to stay within one 80-byte malloc chunk (72 bytes): with its heap entry (24) and its
// share of the id index's buckets (8), a pending rb_timer costs about 110 bytes.
struct RbTimer : public TimerNode {
  std::uint32_t iterations = 0;  // 0 = forever; at most kMaxRbIterations (next to the 4-byte slot)
  IdHook id_hook;
  std::string id;
  std::int64_t period_ns = 0;
  std::uint64_t fired = 0;
  std::uint16_t overruns = 0;    // saturates; status only
  SignalId signal = 0;
  ClockId clock = ClockId::monotonic;
  bool from_config = false;
};
constexpr std::uint64_t kMaxRbIterations = UINT32_MAX;
static_assert(sizeof(RbTimer) <= 72, "keep an rb_timer at 72 bytes (see docs/BENCHMARKS.md)");

// RbTimers come from slabs of kSlab objects with a free list: no per-timer malloc header, and a
// million timers do not land in the holes a big configuration's parse left in the heap (which
// would keep those pages resident). Slabs are kept once allocated; freed timers are reused.
class RbTimerPool {
 public:
  static constexpr std::size_t kSlab = 4096;
  RbTimerPool() = default;
  RbTimerPool(const RbTimerPool&) = delete;
  RbTimerPool& operator=(const RbTimerPool&) = delete;

  RbTimer* make() {
    if (free_.empty()) {
      slabs_.push_back(std::make_unique<Slot[]>(kSlab));
      Slot* slab = slabs_.back().get();
      for (std::size_t i = kSlab; i-- > 0;) free_.push_back(&slab[i]);
    }
    Slot* slot = free_.back();
    free_.pop_back();
    return new (slot->bytes) RbTimer();
  }
  void destroy(RbTimer* t) {
    t->~RbTimer();
    free_.push_back(reinterpret_cast<Slot*>(t));
  }

 private:
  struct Slot {
    alignas(RbTimer) unsigned char bytes[sizeof(RbTimer)];
  };
  std::vector<std::unique_ptr<Slot[]>> slabs_;
  std::vector<Slot*> free_;
};

struct IdOf {
  using type = std::string;
  const type& operator()(const RbTimer& t) const { return t.id; }
};

using IdSet = bi::unordered_set<RbTimer, bi::member_hook<RbTimer, IdHook, &RbTimer::id_hook>,
                                bi::key_of_value<IdOf>, bi::power_2_buckets<true>,
                                bi::constant_time_size<true>>;

// One clock's queue and kernel timer.
struct Wheel {
  explicit Wheel(asio::io_context& io) : fd(io) {}
  TimerQueue queue;
  asio::posix::stream_descriptor fd;
  std::int64_t armed_for = LLONG_MAX;  // what the timerfd is set to; LLONG_MAX = disarmed
  bool waiting = false;
  bool firing = false;  // a batch is being fired (or a continuation is posted)
};

}  // namespace

class TimerSources::Impl {
 public:
  Impl(asio::io_context& io, Dispatcher& d, const Clock& clock)
      : io_(io), dispatcher_(d), clock_(clock), buckets_(16), ids_(bucket_traits()) {}

  ~Impl() { stop(); }

  Result<void> add(const config::TimerSpec& spec, SourceKind kind, bool from_config) {
    if (contains(spec.id)) return Error{"a source with id \"" + spec.id + "\" exists", -32602};
    if (spec.every.count() < 1) return Error{"every: at least 1ms", -32602};
    if (kind == SourceKind::timer) {
      auto t = std::make_shared<KernelTimer>(io_, dispatcher_, spec, from_config);
      if (auto r = t->start(
              clock_, [this](const std::string& id) { retired_kernel(id); }, &claimer_);
          !r) {
        return r;
      }
      kernel_.emplace(spec.id, std::move(t));
      return ok();
    }
    if (spec.cluster) {
      return Error{"cluster: true is for timers and cron jobs; an rb_timer cannot be clustered",
                   -32602};
    }
    if (spec.iterations > kMaxRbIterations) {
      return Error{"iterations: at most " + std::to_string(kMaxRbIterations) + " for an rb_timer",
                   -32602};
    }
    auto* t = pool_.make();
    t->id = spec.id;
    t->period_ns = spec.every.count() * kNsPerMs;
    t->iterations = static_cast<std::uint32_t>(spec.iterations);
    t->signal = spec.signal;
    t->clock = to_clock_id(spec.clock);
    t->from_config = from_config;
    auto& w = wheel(t->clock);
    if (!w.fd.is_open()) {
      if (auto r = open_wheel(t->clock); !r) {
        pool_.destroy(t);
        return r;
      }
    }
    insert_id(*t);
    std::int64_t first = clock_.now_ns(t->clock) + spec.after.value_or(spec.every).count() * kNsPerMs;
    if (w.queue.arm(*t, first)) rearm(t->clock);
    return ok();
  }

  bool remove(const std::string& id) {
    if (auto it = kernel_.find(id); it != kernel_.end()) {
      it->second->stop();
      kernel_.erase(it);
      return true;
    }
    auto it = ids_.find(id);
    if (it == ids_.end()) return false;
    destroy_rb(&*it);
    return true;
  }

  bool contains(const std::string& id) const {
    return kernel_.contains(id) || ids_.find(id) != ids_.end();
  }

  std::optional<TimerInfo> find(const std::string& id) const {
    if (auto it = kernel_.find(id); it != kernel_.end()) return it->second->info();
    auto it = ids_.find(id);
    if (it == ids_.end()) return std::nullopt;
    return info(*it);
  }

  Result<void> apply_config(const std::vector<config::TimerSpec>& timers,
                            const std::vector<config::TimerSpec>& rb_timers) {
    // First check, then change: a reload either applies whole or not at all.
    for (const auto* list : {&timers, &rb_timers}) {
      for (const auto& s : *list) {
        if (auto it = kernel_.find(s.id); it != kernel_.end() && !it->second->from_config()) {
          return Error{config::to_string(s.where) + ": id \"" + s.id +
                       "\" is taken by a timer added at run time (remove_source it first)"};
        }
        if (auto it = ids_.find(s.id); it != ids_.end() && !it->from_config) {
          return Error{config::to_string(s.where) + ": id \"" + s.id +
                       "\" is taken by an rb_timer added at run time (remove_source it first)"};
        }
      }
    }
    auto keep_kernel = [&](const std::string& id) {
      auto it = kernel_.find(id);
      if (it == kernel_.end()) return false;
      for (const auto& s : timers) {
        if (s.id == id) return it->second->spec().same_as(s);
      }
      return false;
    };
    std::vector<std::string> drop;
    for (const auto& [id, t] : kernel_) {
      if (t->from_config() && !keep_kernel(id)) drop.push_back(id);
    }
    for (const auto& t : ids_) {
      if (!t.from_config) continue;
      bool keep = false;
      for (const auto& s : rb_timers) {
        if (s.id == t.id) keep = same_rb(t, s);
      }
      if (!keep) drop.push_back(t.id);
    }
    for (const auto& id : drop) remove(id);
    for (const auto& s : timers) {
      if (!contains(s.id)) {
        if (auto r = add(s, SourceKind::timer, true); !r) return r;
      }
    }
    for (const auto& s : rb_timers) {
      if (!contains(s.id)) {
        if (auto r = add(s, SourceKind::rb_timer, true); !r) return r;
      }
    }
    return ok();
  }

  std::size_t timer_count() const { return kernel_.size(); }
  std::size_t rb_timer_count() const { return ids_.size(); }

  std::vector<TimerInfo> list(std::size_t limit) const {
    std::vector<TimerInfo> out;
    for (const auto& [id, t] : kernel_) {
      if (out.size() >= limit) break;
      out.push_back(t->info());
    }
    std::size_t rb = 0;
    for (const auto& t : ids_) {
      if (rb++ >= limit) break;
      out.push_back(info(t));
    }
    return out;
  }

  void set_claimer(Claimer claimer) { claimer_ = std::move(claimer); }

  void stop() {
    for (auto& [id, t] : kernel_) t->stop();
    kernel_.clear();
    while (!ids_.empty()) destroy_rb(&*ids_.begin());
    for (auto& w : wheels_) {
      if (!w) continue;
      boost::system::error_code ignored;
      w->fd.close(ignored);
    }
  }

 private:
  static bool same_rb(const RbTimer& t, const config::TimerSpec& s) {
    return t.signal == s.signal && t.period_ns == s.every.count() * kNsPerMs &&
           t.iterations == s.iterations && t.clock == to_clock_id(s.clock);
  }

  TimerInfo info(const RbTimer& t) const {
    const TimerQueue& q = wheels_[static_cast<std::size_t>(t.clock)]->queue;
    return TimerInfo{t.id,    SourceKind::rb_timer, t.signal,  t.period_ns / kNsPerMs,
                     t.clock, t.iterations,         t.fired,   t.overruns,
                     t.armed() ? q.deadline(t) : 0, t.from_config};
  }

  IdSet::bucket_traits bucket_traits() {
    return IdSet::bucket_traits(buckets_.data(), buckets_.size());
  }

  void insert_id(RbTimer& t) {
    if (ids_.size() + 1 > buckets_.size()) {
      std::vector<IdSet::bucket_type> bigger(buckets_.size() * 2);
      ids_.rehash(IdSet::bucket_traits(bigger.data(), bigger.size()));
      buckets_.swap(bigger);
    }
    ids_.insert(t);
  }

  void destroy_rb(RbTimer* t) {
    ids_.erase(ids_.iterator_to(*t));
    Wheel& w = wheel(t->clock);
    if (w.queue.cancel(*t)) rearm(t->clock);
    pool_.destroy(t);
  }

  void retired_kernel(const std::string& id) {
    // Deferred: the timer is still on the stack of its own completion handler.
    asio::post(io_, [this, id] {
      auto it = kernel_.find(id);
      if (it != kernel_.end()) kernel_.erase(it);
    });
  }

  Wheel& wheel(ClockId c) {
    auto& w = wheels_[static_cast<std::size_t>(c)];
    if (!w) w = std::make_unique<Wheel>(io_);
    return *w;
  }

  Result<void> open_wheel(ClockId c) {
    int fd = ::timerfd_create(kernel_clock(c), TFD_NONBLOCK | TFD_CLOEXEC);
    if (fd < 0) return Error{std::string("timerfd_create: ") + std::strerror(errno)};
    wheel(c).fd.assign(fd);
    return ok();
  }

  // Sets the wheel's timerfd to its earliest deadline (or disarms it) if that changed.
  void rearm(ClockId c) {
    Wheel& w = wheel(c);
    if (w.firing || !w.fd.is_open()) return;  // the firing loop re-arms when it is done
    TimerNode* first = w.queue.earliest();
    std::int64_t target = first ? w.queue.earliest_deadline() : LLONG_MAX;
    if (target == w.armed_for) return;
    itimerspec its{};
    if (first) its.it_value = to_timespec(std::max<std::int64_t>(target, 1));
    if (::timerfd_settime(w.fd.native_handle(), TFD_TIMER_ABSTIME, &its, nullptr) != 0) {
      spdlog::error("rb_timer: timerfd_settime: {}", std::strerror(errno));
      return;
    }
    w.armed_for = target;
    if (first && !w.waiting) {
      w.waiting = true;
      w.fd.async_wait(asio::posix::descriptor_base::wait_read,
                      [this, c](boost::system::error_code ec) {
                        Wheel& wh = wheel(c);
                        wh.waiting = false;
                        if (ec) return;
                        std::uint64_t n;
                        while (::read(wh.fd.native_handle(), &n, sizeof n) == sizeof n) {
                        }
                        wh.armed_for = LLONG_MAX;  // it fired: the kernel timer is disarmed
                        fire(c);
                      });
    }
  }

  void fire(ClockId c) {
    Wheel& w = wheel(c);
    w.firing = true;
    std::int64_t now = clock_.now_ns(c);
    std::size_t fired = 0;
    while (fired < kFireBatch) {
      if (w.queue.empty()) break;
      std::int64_t due = w.queue.earliest_deadline();
      TimerNode* node = w.queue.pop_due(now);
      if (!node) break;
      ++fired;
      auto* t = static_cast<RbTimer*>(node);
      std::uint64_t expirations = 1;
      if (now - due >= t->period_ns) {
        expirations += static_cast<std::uint64_t>((now - due) / t->period_ns);
      }
      t->fired += expirations;
      t->overruns = static_cast<std::uint16_t>(
          std::min<std::uint64_t>(t->overruns + expirations - 1, UINT16_MAX));
      bool last = t->iterations != 0 && t->fired >= t->iterations;
      std::uint64_t iteration = last ? t->iterations : t->fired;
      std::int64_t next = due + static_cast<std::int64_t>(expirations) * t->period_ns;
      std::int64_t late = now - (next - t->period_ns);
      if (!last) w.queue.arm(*t, next);  // before raising: a handler may remove it
      SignalId signal = t->signal;
      std::string id = t->id;
      if (last) {
        ids_.erase(ids_.iterator_to(*t));
        pool_.destroy(t);
        spdlog::info("rb_timer {}: retired after {} iteration(s)", id, iteration);
      }
      dispatcher_.raise(signal, SourceRef{SourceKind::rb_timer, std::move(id)},
                        timer_payload(expirations, late), iteration);
    }
    if (fired == kFireBatch && !w.queue.empty() && w.queue.earliest_deadline() <= now) {
      // More are due: let the reactor serve clients, then go on.
      asio::post(io_, [this, c] { fire(c); });
      return;
    }
    w.firing = false;
    rearm(c);
  }

  asio::io_context& io_;
  Dispatcher& dispatcher_;
  const Clock& clock_;
  Claimer claimer_;  // for cluster timers; KernelTimers keep a pointer to it
  std::map<std::string, std::shared_ptr<KernelTimer>> kernel_;
  RbTimerPool pool_;  // before the index and the wheels, which point into it
  std::vector<IdSet::bucket_type> buckets_;
  IdSet ids_;
  std::array<std::unique_ptr<Wheel>, 3> wheels_;
};

TimerSources::TimerSources(asio::io_context& io, Dispatcher& dispatcher, const Clock& clock)
    : impl_(std::make_unique<Impl>(io, dispatcher, clock)) {}
TimerSources::~TimerSources() = default;

Result<void> TimerSources::add(const config::TimerSpec& spec, SourceKind kind, bool from_config) {
  return impl_->add(spec, kind, from_config);
}
bool TimerSources::remove(const std::string& id) { return impl_->remove(id); }
bool TimerSources::contains(const std::string& id) const { return impl_->contains(id); }
std::optional<TimerInfo> TimerSources::find(const std::string& id) const {
  return impl_->find(id);
}
Result<void> TimerSources::apply_config(const std::vector<config::TimerSpec>& timers,
                                        const std::vector<config::TimerSpec>& rb_timers) {
  return impl_->apply_config(timers, rb_timers);
}
std::size_t TimerSources::timer_count() const { return impl_->timer_count(); }
std::size_t TimerSources::rb_timer_count() const { return impl_->rb_timer_count(); }
std::vector<TimerInfo> TimerSources::list(std::size_t limit) const { return impl_->list(limit); }
void TimerSources::stop() { impl_->stop(); }
void TimerSources::set_claimer(Claimer claimer) { impl_->set_claimer(std::move(claimer)); }

}  // namespace tocsin
