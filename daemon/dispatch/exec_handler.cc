#include "dispatch/exec_handler.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <deque>
#include <vector>

#include "log/scope.h"

namespace tocsin {

struct ExecHandler::State {
  struct Run {
    pid_t pid;
    EventPtr event;
    bool killed = false;
  };

  os::ProcessSupervisor& supervisor;
  SignalStats& stats;
  std::shared_ptr<HandlerCounters> handler_counters;  // set by the ExecHandler that owns this
  config::ExecHandler spec;
  std::size_t queue_limit;
  std::string label;
  std::vector<Run> running;  // in start order
  std::deque<EventPtr> queue;
  bool retired = false;  // the handler was removed (reload); no new starts
  Histogram durations{kExecDurationBuckets};
};

namespace {

using State = ExecHandler::State;

void pump(const std::shared_ptr<State>& state);

void drop(State& s, const EventPtr& event, std::string_view why) {
  ++s.stats[event->signal].dropped;
  logging::Scope scope(*event);
  spdlog::warn("signal {}: {} dropped the event: {}", describe_event(*event), s.label, why);
}

void on_exit(const std::shared_ptr<State>& state, pid_t pid, const os::ChildExit& exit) {
  State& s = *state;
  auto it = std::find_if(s.running.begin(), s.running.end(),
                         [pid](const State::Run& r) { return r.pid == pid; });
  if (it == s.running.end()) return;  // cannot happen: every start registers its run
  EventPtr event = it->event;
  s.running.erase(it);
  logging::Scope scope(*event);
  s.durations.observe(exit.elapsed);
  SignalCounters& counters = s.stats[event->signal];
  if (exit.success()) {
    ++counters.delivered;
    spdlog::info("signal {}: {} pid {} {} after {}ms", describe_event(*event), s.label, pid,
                 exit.describe(), exit.runtime.count());
  } else if (exit.killed && !exit.timed_out) {
    ++counters.dropped;
    spdlog::warn("signal {}: {} pid {} {} after {}ms (overlap: kill or stop)",
                 describe_event(*event), s.label, pid, exit.describe(), exit.runtime.count());
  } else {
    ++counters.failed;
    if (s.handler_counters) ++s.handler_counters->failures;
    std::string why = exit.describe();
    if (exit.timed_out && s.spec.timeout) {
      why += ": its process group was killed at the " + config::format_duration(*s.spec.timeout) +
             " timeout";
    }
    spdlog::warn("signal {}: {} pid {} failed: {} (ran {}ms)", describe_event(*event), s.label,
                 pid, why, exit.runtime.count());
  }
  pump(state);
}

void start(const std::shared_ptr<State>& state, EventPtr event) {
  State& s = *state;
  logging::Scope scope(*event);
  os::SpawnRequest req;
  req.argv = s.spec.argv;
  req.env = {
      {"TOCSIN_SIGNAL", std::to_string(event->signal)},
      {"TOCSIN_NAME", event->name},
      {"TOCSIN_SEQ", std::to_string(event->seq)},
      {"TOCSIN_SOURCE", std::string(to_string(event->source.kind))},
      {"TOCSIN_SOURCE_ID", event->source.id},
      {"TOCSIN_ITERATION", std::to_string(event->iteration)},
      {"TOCSIN_TIME", format_rfc3339(event->time)},
  };
  // Aliasing pointer: the payload is shared with the event, not copied.
  req.stdin_data = std::shared_ptr<const std::string>(event, &event->payload);
  req.timeout = s.spec.timeout;

  std::weak_ptr<State> weak = state;
  auto on_line = [weak, event](pid_t pid, bool is_stderr, std::string_view line) {
    auto st = weak.lock();
    logging::Scope scope(*event);
    spdlog::info("signal {}: {} pid {} {}: {}", describe_event(*event),
                 st ? st->label : std::string("exec"), pid, is_stderr ? "stderr" : "stdout",
                 line);
  };
  // The exit callback owns the state: a retired handler's children still report.
  auto on_child_exit = [state](pid_t pid, const os::ChildExit& exit) {
    on_exit(state, pid, exit);
  };
  auto pid = s.supervisor.spawn(std::move(req), std::move(on_line), std::move(on_child_exit));
  if (!pid) {
    ++s.stats[event->signal].failed;
    if (s.handler_counters) ++s.handler_counters->failures;
    spdlog::error("signal {}: {} could not start: {}", describe_event(*event), s.label,
                  pid.error().message);
    return;
  }
  spdlog::debug("signal {}: {} started pid {}", describe_event(*event), s.label, *pid);
  s.running.push_back({*pid, std::move(event)});
}

void pump(const std::shared_ptr<State>& state) {
  State& s = *state;
  if (s.retired) {
    while (!s.queue.empty()) {
      drop(s, s.queue.front(), "the handler was removed by a reload");
      s.queue.pop_front();
    }
    return;
  }
  while (s.running.size() < s.spec.concurrency && !s.queue.empty()) {
    EventPtr next = std::move(s.queue.front());
    s.queue.pop_front();
    start(state, std::move(next));
  }
}

std::string make_label(const config::ExecHandler& spec) {
  return "exec[" + (spec.argv.empty() ? std::string() : spec.argv[0]) + "]";
}

}  // namespace

ExecHandler::ExecHandler(os::ProcessSupervisor& supervisor, SignalStats& stats,
                         config::ExecHandler spec, std::size_t queue_limit)
    : state_(std::make_shared<State>(State{supervisor, stats, nullptr, std::move(spec),
                                           std::max<std::size_t>(queue_limit, 1), {}, {}, {}})) {
  state_->label = make_label(state_->spec);
  state_->handler_counters = shared_counters();
  if (state_->spec.concurrency == 0) state_->spec.concurrency = 1;
}

ExecHandler::~ExecHandler() {
  state_->retired = true;
  pump(state_);
}

Result<void> ExecHandler::handle(const EventPtr& event) {
  State& s = *state_;
  if (s.running.size() < s.spec.concurrency && s.queue.empty()) {
    start(state_, event);
    return ok();
  }
  switch (s.spec.overlap) {
    case config::Overlap::queue:
      s.queue.push_back(event);
      if (s.queue.size() > s.queue_limit) {
        drop(s, s.queue.front(),
             "its queue is full (limits.exec_queue = " + std::to_string(s.queue_limit) + ")");
        s.queue.pop_front();
      }
      break;
    case config::Overlap::skip:
      drop(s, event,
           "overlap: skip and " + std::to_string(s.running.size()) + " run(s) still going");
      break;
    case config::Overlap::kill: {
      auto victim = std::find_if(s.running.begin(), s.running.end(),
                                 [](const State::Run& r) { return !r.killed; });
      if (victim != s.running.end()) {
        victim->killed = true;
        spdlog::info("signal {}: {} kills pid {} (overlap: kill) for seq {}",
                     describe_event(*victim->event), s.label, victim->pid, event->seq);
        s.supervisor.kill(victim->pid);
      }
      s.queue.push_back(event);
      // Only the newest events matter when older runs are being killed for them.
      while (s.queue.size() > s.spec.concurrency) {
        drop(s, s.queue.front(), "overlap: kill and a newer event replaced it");
        s.queue.pop_front();
      }
      break;
    }
  }
  return ok();
}

std::string ExecHandler::describe() const { return state_->label; }
std::size_t ExecHandler::running() const { return state_->running.size(); }
std::size_t ExecHandler::queued() const { return state_->queue.size(); }
const Histogram& ExecHandler::durations() const { return state_->durations; }

}  // namespace tocsin
