// exec_handler.h — `exec: [argv...]` (SPEC §2): runs a program for each event, without a shell.
// The child gets the event as environment (TOCSIN_SIGNAL, TOCSIN_NAME, TOCSIN_SEQ, TOCSIN_SOURCE,
// TOCSIN_SOURCE_ID, TOCSIN_ITERATION, TOCSIN_TIME) and the payload on stdin; its output lines,
// exit status and run time are logged under the handler's name.
//
// At most `concurrency` children run at once. When one more event arrives:
//   queue — it waits in a FIFO of at most limits.exec_queue events (when full, the oldest queued
//           event is dropped, logged and counted: never silently);
//   skip  — it is dropped, logged and counted;
//   kill  — the oldest running child's process group is killed and the event starts once that
//           child is reaped.
// Each child's run time goes into durations() when it exits.
// Counting: delivered on exit 0; failed on spawn error, exit != 0, timeout or death by signal;
// dropped for events skipped or pushed out of the queue (or killed by overlap: kill).
//
// The handler's state lives in a shared object that the children's callbacks keep alive, so a
// reload that removes the handler lets its running children finish (their timeouts still apply);
// events still queued then are dropped and logged. Reactor thread only.
#pragma once

#include <memory>

#include "dispatch/histogram.h"
#include "os/process.h"
#include "tocsin/config.h"
#include "tocsin/dispatcher.h"

namespace tocsin {

class ExecHandler final : public Handler {
 public:
  ExecHandler(os::ProcessSupervisor& supervisor, SignalStats& stats, config::ExecHandler spec,
              std::size_t queue_limit);
  ~ExecHandler() override;

  Result<void> handle(const EventPtr& event) override;
  std::string describe() const override;

  std::size_t running() const;
  std::size_t queued() const;
  // Every child's run time, spawn to exit, whatever the outcome (tocsin_exec_duration_seconds).
  const Histogram& durations() const;

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace tocsin
