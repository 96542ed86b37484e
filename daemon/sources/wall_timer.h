// wall_timer.h — one CLOCK_REALTIME timerfd in the reactor, armed absolute for a deadline in
// milliseconds since the epoch: the kernel fires it when the wall clock reaches the deadline, also
// after the clock is set or the machine resumes. With `notice_clock_set`
// (TFD_TIMER_CANCEL_ON_SET) a step of the wall clock also wakes it at once, reported as
// `clock_set` (cron re-plans then). Re-arming to the same deadline does nothing; `disarm` and an
// empty deadline leave no kernel timer armed: idle means no wake-ups. The fd is made by the first
// arm. `what` names it in log lines. Reactor thread only.
#pragma once

#include <climits>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace boost::asio {
class io_context;
}

namespace tocsin {

class WallTimer {
 public:
  using Fired = std::function<void(bool clock_set)>;

  WallTimer(boost::asio::io_context& io, std::string what, bool notice_clock_set, Fired fired);
  ~WallTimer();
  WallTimer(const WallTimer&) = delete;
  WallTimer& operator=(const WallTimer&) = delete;

  // Arms for `deadline_ms`, or disarms with nullopt. A deadline in the past fires at once.
  void arm(std::optional<std::int64_t> deadline_ms);
  void close();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tocsin
