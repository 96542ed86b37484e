// timer_queue.h — the pure structure behind rb_timers (SPEC §3): pending timers ordered by
// deadline in an intrusive red-black tree (Boost.Intrusive), so inserting or cancelling a timer
// allocates nothing and costs O(log n); the earliest deadline is O(1).
//
// The queue does not own its timers: a TimerNode lives in its owner (the rb_timer source's
// RbTimer objects) and unlinks itself from the queue when destroyed (auto_unlink is not used:
// the owner calls cancel() first; a linked node's destructor asserts in debug builds).
// Deadlines are plain nanosecond counts on one clock, so the structure is tested with numbers.
// Ties keep insertion order (a multiset inserts after the equal keys already there), so two timers
// due at the same instant fire in the order they were armed. Not thread safe.
#pragma once

#include <boost/intrusive/set.hpp>
#include <cstdint>
#include <functional>

namespace tocsin {

using TimerHook = boost::intrusive::set_base_hook<boost::intrusive::optimize_size<true>,
                                                  boost::intrusive::link_mode<
                                                      boost::intrusive::safe_link>>;

struct TimerNode : public TimerHook {
  std::int64_t deadline_ns = 0;
  bool armed() const { return is_linked(); }
};

class TimerQueue {
 public:
  TimerQueue() = default;
  TimerQueue(const TimerQueue&) = delete;
  TimerQueue& operator=(const TimerQueue&) = delete;
  ~TimerQueue() { set_.clear(); }

  // Arms `node` for `deadline_ns` (re-arms it if already armed). Returns true when it became the
  // earliest, i.e. when the kernel timer must be re-armed.
  bool arm(TimerNode& node, std::int64_t deadline_ns);
  // Disarms; returns true when it was the earliest (the kernel timer may be re-armed later).
  bool cancel(TimerNode& node);
  // The earliest armed node, or nullptr.
  TimerNode* earliest();
  // Unlinks and returns the earliest node if it is due at `now_ns`, else nullptr. Fire it, then
  // arm it again for its next deadline if it repeats.
  TimerNode* pop_due(std::int64_t now_ns);

  std::size_t size() const { return set_.size(); }
  bool empty() const { return set_.empty(); }

 private:
  struct Less {
    bool operator()(const TimerNode& a, const TimerNode& b) const {
      return a.deadline_ns < b.deadline_ns;
    }
  };
  using Set = boost::intrusive::multiset<TimerNode, boost::intrusive::compare<Less>,
                                         boost::intrusive::constant_time_size<true>>;
  Set set_;
};

}  // namespace tocsin
