// Dispatch throughput: events per second through Dispatcher::raise to no-op handlers.
// Baseline in the same binary: building the same Event and calling the handlers directly, so the
// ratio shows what the dispatcher itself costs (table lookup, counters, failure isolation).
//   build/release/tocsin_bench_dispatch --benchmark_repetitions=5 --benchmark_report_aggregates_only
#include <benchmark/benchmark.h>

#include <memory>

#include "tocsin/dispatcher.h"

namespace {

using namespace tocsin;

struct NoopHandler final : Handler {
  std::uint64_t seen = 0;
  Result<void> handle(const EventPtr& e) override {
    seen += e->seq;
    return ok();
  }
  std::string describe() const override { return "noop"; }
};

std::shared_ptr<SignalTable> table_with(int handlers, std::vector<std::shared_ptr<NoopHandler>>* out) {
  auto t = std::make_shared<SignalTable>();
  SignalEntry e{.number = 17, .name = "bench"};
  for (int i = 0; i < handlers; ++i) {
    auto h = std::make_shared<NoopHandler>();
    out->push_back(h);
    e.handlers.push_back(h);
  }
  (void)t->add(std::move(e));
  return t;
}

void BM_Dispatch(benchmark::State& state) {
  SystemClock clock;
  SignalStats stats;
  Dispatcher d(clock, stats);
  std::vector<std::shared_ptr<NoopHandler>> hs;
  d.set_table(table_with(static_cast<int>(state.range(0)), &hs));
  for (auto _ : state) {
    auto ev = d.raise(17, SourceRef{SourceKind::raise, "bench"}, "payload");
    benchmark::DoNotOptimize(ev);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Dispatch)->Arg(1)->Arg(4);

// Baseline: the same event built and handed to the same handlers, without the dispatcher.
void BM_DirectCallBaseline(benchmark::State& state) {
  SystemClock clock;
  std::vector<std::shared_ptr<NoopHandler>> hs;
  auto t = table_with(static_cast<int>(state.range(0)), &hs);
  std::vector<std::shared_ptr<Handler>> handlers(hs.begin(), hs.end());
  std::uint64_t seq = 0;
  for (auto _ : state) {
    auto e = std::make_shared<Event>();
    e->seq = ++seq;
    e->signal = 17;
    e->name = "bench";
    e->source = SourceRef{SourceKind::raise, "bench"};
    e->time = clock.wall_now();
    e->payload = "payload";
    EventPtr ev = std::move(e);
    for (auto& h : handlers) (void)h->handle(ev);
    benchmark::DoNotOptimize(ev);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DirectCallBaseline)->Arg(1)->Arg(4);

}  // namespace

BENCHMARK_MAIN();
