#include "tocsin/dispatcher.h"

#include <spdlog/spdlog.h>

#include <exception>

#include "log/scope.h"

namespace tocsin {

Dispatcher::Dispatcher(const Clock& clock, SignalStats& stats)
    : clock_(clock), stats_(stats), table_(std::make_shared<SignalTable>()) {}

void Dispatcher::set_table(std::shared_ptr<const SignalTable> table) {
  if (raising_ > 0 && table_) retired_.push_back(std::move(table_));
  table_ = std::move(table);
}

EventPtr Dispatcher::raise(SignalId signal, SourceRef source, std::string payload,
                           std::uint64_t iteration) {
  // The table stays alive for the whole raise although a handler may cause a reload that swaps
  // it (set_table keeps it in retired_). A published table is immutable, so its handler lists
  // can be walked without a copy.
  struct Raising {
    Dispatcher& d;
    explicit Raising(Dispatcher& dispatcher) : d(dispatcher) { ++d.raising_; }
    ~Raising() {
      if (--d.raising_ == 0 && !d.retired_.empty()) d.retired_.clear();
    }
  } raising(*this);
  const SignalEntry* entry = table_->find(signal);

  auto event = std::make_shared<Event>();
  event->seq = ++seq_;
  event->signal = signal;
  if (entry) event->name = entry->name;
  event->source = std::move(source);
  event->time = clock_.wall_now();
  event->iteration = iteration;
  event->payload = std::move(payload);
  EventPtr ev = std::move(event);
  logging::Scope scope(*ev);  // what the handlers log names this event (journal fields)

  SignalCounters& counters = stats_[signal];
  ++counters.raised;
  counters.last_raised = ev->time;

  if (!entry || entry->handlers.empty()) {
    if (unhandled_sink_ && unhandled_sink_(ev)) return ev;
    ++counters.unhandled;
    spdlog::debug("signal {}: unhandled (source {}:{})", describe_event(*ev),
                  to_string(ev->source.kind), ev->source.id);
    return ev;
  }

  for (const auto& handler : entry->handlers) {
    ++handler->counters().runs;
    try {
      Result<void> r = handler->handle(ev);
      if (!r) {
        ++handler->counters().failures;
        ++counters.failed;
        spdlog::warn("signal {}: handler {} failed: {}", describe_event(*ev), handler->describe(),
                     r.error().message);
      }
    } catch (const std::exception& e) {
      ++handler->counters().failures;
      ++counters.failed;
      spdlog::error("signal {}: handler {} threw: {}", describe_event(*ev), handler->describe(),
                    e.what());
    } catch (...) {
      ++handler->counters().failures;
      ++counters.failed;
      spdlog::error("signal {}: handler {} threw a non-standard exception", describe_event(*ev),
                    handler->describe());
    }
  }
  return ev;
}

}  // namespace tocsin
