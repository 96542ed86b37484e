#include "sources/timer/rb_timer_source.h"

#include <sys/timerfd.h>
#include <unistd.h>

#include <spdlog/spdlog.h>
#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/intrusive/unordered_set.hpp>
#include <cerrno>
#include <climits>
#include <cstring>

#include "sources/timer/timer_queue.h"
#include "sources/timer/timerfd.h"

namespace tocsin {

namespace asio = boost::asio;
namespace bi = boost::intrusive;
using timerfd::kNsPerMs;

namespace {

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
  std::uint16_t overruns = 0;  // saturates; status only
  SignalId signal = 0;
  ClockId clock = ClockId::monotonic;
  bool from_config = false;
};
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

class RbTimerSource::Impl {
 public:
  explicit Impl(SourceContext& context) : context_(context), buckets_(16), ids_(bucket_traits()) {}

  ~Impl() { stop(); }

  Result<void> add(const config::TimerSpec& spec, bool from_config) {
    if (contains(spec.id)) {
      return Error{"a source with id \"" + spec.id + "\" exists", ErrorCode::invalid_params};
    }
    if (spec.every.count() < 1) return Error{"every: at least 1ms", ErrorCode::invalid_params};
    if (spec.iterations > kMaxRbIterations) {
      return Error{"iterations: at most " + std::to_string(kMaxRbIterations) + " for an rb_timer",
                   ErrorCode::invalid_params};
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
    std::int64_t first =
        context_.clock.now_ns(t->clock) + spec.after.value_or(spec.every).count() * kNsPerMs;
    if (w.queue.arm(*t, first)) rearm(t->clock);
    return ok();
  }

  bool remove(std::string_view id) {
    auto it = find(id);
    if (it == ids_.end()) return false;
    destroy_rb(&*it);
    return true;
  }

  bool contains(std::string_view id) const { return find(id) != ids_.end(); }

  bool unchanged(const config::TimerSpec& s) const {
    auto it = find(s.id);
    return it != ids_.end() && it->from_config && it->signal == s.signal &&
           it->period_ns == s.every.count() * kNsPerMs && it->iterations == s.iterations &&
           it->clock == to_clock_id(s.clock);
  }

  std::optional<bool> runtime(std::string_view id) const {
    auto it = find(id);
    if (it == ids_.end()) return std::nullopt;
    return !it->from_config;
  }

  std::vector<std::string> config_ids() const {
    std::vector<std::string> out;
    for (const auto& t : ids_) {
      if (t.from_config) out.push_back(t.id);
    }
    return out;
  }

  std::size_t count() const { return ids_.size(); }

  void status(std::vector<SourceStatus>& out, std::size_t limit) const {
    std::size_t n = 0;
    for (const auto& t : ids_) {
      if (n++ >= limit) break;
      out.push_back(status_of(t));
    }
  }

  void stop() {
    // Every timer at once, in one pass: the index's begin() scans its buckets from the first, so
    // removing timers one by one from the front would be quadratic (a million took minutes).
    for (auto& w : wheels_) {
      if (w) w->firing = true;  // no re-arming while the queues empty
    }
    ids_.clear_and_dispose([this](RbTimer* t) {
      wheel(t->clock).queue.cancel(*t);
      pool_.destroy(t);
    });
    for (auto& w : wheels_) {
      if (!w) continue;
      boost::system::error_code ignored;
      w->fd.close(ignored);
    }
  }

 private:
  IdSet::const_iterator find(std::string_view id) const { return ids_.find(std::string(id)); }
  IdSet::iterator find(std::string_view id) { return ids_.find(std::string(id)); }

  SourceStatus status_of(const RbTimer& t) const {
    const TimerQueue& q = wheels_[static_cast<std::size_t>(t.clock)]->queue;
    SourceStatus s;
    s.id = t.id;
    s.kind = SourceKind::rb_timer;
    s.signal = t.signal;
    s.from_config = t.from_config;
    s.iterations = t.iterations;
    s.fired = t.fired;
    const std::int64_t next_ns = t.armed() ? q.deadline(t) : 0;
    if (t.armed()) {
      s.next = timerfd::wall_time(context_.clock, t.clock, next_ns);
      if (t.fired > 0) s.last = timerfd::wall_time(context_.clock, t.clock, next_ns - t.period_ns);
    }
    s.schedule = timerfd::describe_period(t.period_ns / kNsPerMs, t.clock);
    s.details.add("every_ms", spec::Node::scalar(std::to_string(t.period_ns / kNsPerMs),
                                                 spec::Node::Style::number));
    s.details.add("clock",
                  spec::Node::scalar(std::string(to_string(t.clock)), spec::Node::Style::quoted));
    s.details.add("overruns",
                  spec::Node::scalar(std::to_string(t.overruns), spec::Node::Style::number));
    s.details.add(
        "next_in_ms",
        spec::Node::scalar(std::to_string((next_ns - context_.clock.now_ns(t.clock)) / kNsPerMs),
                           spec::Node::Style::number));
    return s;
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

  Wheel& wheel(ClockId c) {
    auto& w = wheels_[static_cast<std::size_t>(c)];
    if (!w) w = std::make_unique<Wheel>(context_.io);
    return *w;
  }

  Result<void> open_wheel(ClockId c) {
    int fd = ::timerfd_create(timerfd::kernel_clock(c), TFD_NONBLOCK | TFD_CLOEXEC);
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
    if (first) its.it_value = timerfd::to_timespec(std::max<std::int64_t>(target, 1));
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
    std::int64_t now = context_.clock.now_ns(c);
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
      context_.dispatcher.raise(signal, SourceRef{SourceKind::rb_timer, std::move(id)},
                                timerfd::payload(expirations, late), iteration);
    }
    if (fired == kFireBatch && !w.queue.empty() && w.queue.earliest_deadline() <= now) {
      // More are due: let the reactor serve clients, then go on.
      asio::post(context_.io, [this, c] { fire(c); });
      return;
    }
    w.firing = false;
    rearm(c);
  }

  SourceContext& context_;
  RbTimerPool pool_;  // before the index and the wheels, which point into it
  std::vector<IdSet::bucket_type> buckets_;
  IdSet ids_;
  std::array<std::unique_ptr<Wheel>, 3> wheels_;
};

RbTimerSource::RbTimerSource(SourceContext& context) : impl_(std::make_unique<Impl>(context)) {}
RbTimerSource::~RbTimerSource() = default;

Result<void> RbTimerSource::add(const SourceSpec& spec, bool from_config) {
  return impl_->add(static_cast<const config::TimerSpec&>(spec), from_config);
}
bool RbTimerSource::remove(std::string_view id) { return impl_->remove(id); }
bool RbTimerSource::contains(std::string_view id) const { return impl_->contains(id); }
bool RbTimerSource::unchanged(const SourceSpec& spec) const {
  return spec.kind == SourceKind::rb_timer &&
         impl_->unchanged(static_cast<const config::TimerSpec&>(spec));
}
std::optional<bool> RbTimerSource::runtime(std::string_view id) const { return impl_->runtime(id); }
std::vector<std::string> RbTimerSource::config_ids() const { return impl_->config_ids(); }
std::size_t RbTimerSource::count() const { return impl_->count(); }
void RbTimerSource::status(std::vector<SourceStatus>& out, std::size_t limit) const {
  impl_->status(out, limit);
}
void RbTimerSource::stop() { impl_->stop(); }

const SourceKindEntry& tocsin_source_kind_rb_timer() {
  static const SourceKindEntry entry{&rb_timer_schema(), [](SourceContext& c) {
                                       return std::unique_ptr<EventSource>(new RbTimerSource(c));
                                     }};
  return entry;
}

}  // namespace tocsin
