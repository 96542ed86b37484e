// One-of delivery cost in the Hub (issue 15), without sockets: deliver an event to one of N
// acking subscribers (the credit pools pick the one holding fewest), take its line as a session
// would, ack it. Baseline in the same binary: the same event broadcast to one subscriber and
// its line taken, so the ratio is what credit, the unacked map and the ack cost on top; the
// N = 1, 4, 100, 1000 series shows how the choice grows with the subscribers of a signal.
//   build/bench/tocsin_bench_hub --benchmark_repetitions=5 --benchmark_report_aggregates_only
#include <benchmark/benchmark.h>

#include <memory>
#include <optional>
#include <vector>

#include "dispatch/hub.h"

namespace {

using namespace tocsin;

EventPtr make_event(std::uint64_t seq) {
  auto e = std::make_shared<Event>();
  e->seq = seq;
  e->signal = 26;
  e->name = "jobs";
  e->source = SourceRef{SourceKind::raise, "bench"};
  e->payload = "00000000000000000000payload";
  return e;
}

// `n` clients subscribed to signal 26, acking with this credit or listening.
std::vector<ClientId> subscribers(Hub& hub, int n, bool ack, std::uint32_t prefetch) {
  std::vector<ClientId> clients;
  for (int i = 0; i < n; ++i) {
    ClientId id = hub.connect(nullptr);
    SubscriptionSpec s;
    s.signals.set(26);
    s.ack = ack;
    s.prefetch = prefetch;
    (void)hub.subscribe(id, std::move(s));
    clients.push_back(id);
  }
  return clients;
}

void BM_OneOfDeliverAndAck(benchmark::State& state) {
  SystemClock clock;
  SignalStats stats;
  Hub hub(clock, stats);
  std::vector<ClientId> clients = subscribers(hub, static_cast<int>(state.range(0)), true, 32);
  const config::TargetHandler target{config::TargetKind::subscriber, ""};
  std::uint64_t seq = 0;
  std::size_t next = 0;  // the pools go round robin among equals: so do we, to find the holder
  for (auto _ : state) {
    hub.deliver_one(make_event(++seq), target);
    ClientId holder = clients[next];
    next = (next + 1) % clients.size();
    auto line = hub.pop(holder);
    if (!line) state.SkipWithError("the event did not go to the expected subscriber");
    benchmark::DoNotOptimize(line);
    (void)hub.ack(holder, seq);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_OneOfDeliverAndAck)->Arg(1)->Arg(4)->Arg(100)->Arg(1000);

// Acks batched as a worker sends them (32 seqs per ack, prefetch 64), 4 subscribers.
void BM_OneOfBatchedAcks(benchmark::State& state) {
  SystemClock clock;
  SignalStats stats;
  Hub hub(clock, stats);
  std::vector<ClientId> clients = subscribers(hub, 4, true, 64);
  const config::TargetHandler target{config::TargetKind::subscriber, ""};
  std::uint64_t seq = 0;
  std::vector<std::vector<std::uint64_t>> held(clients.size());
  for (auto _ : state) {
    hub.deliver_one(make_event(++seq), target);
    // Whoever got it (the fewest held: not a fixed rotation once acks come in batches).
    std::size_t k = 0;
    std::optional<Outgoing> line;
    for (; k < clients.size() && !(line = hub.pop(clients[k])); ++k) {
    }
    if (!line) {
      state.SkipWithError("no subscriber got the event");
      break;
    }
    benchmark::DoNotOptimize(line);
    held[k].push_back(seq);
    if (held[k].size() == 32) {
      (void)hub.ack_many(clients[k], held[k]);
      held[k].clear();
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_OneOfBatchedAcks);

void BM_BroadcastBaseline(benchmark::State& state) {
  SystemClock clock;
  SignalStats stats;
  Hub hub(clock, stats);
  ClientId id = subscribers(hub, 1, false, 0).front();
  std::uint64_t seq = 0;
  for (auto _ : state) {
    hub.broadcast(make_event(++seq));
    auto line = hub.pop(id);
    benchmark::DoNotOptimize(line);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_BroadcastBaseline);

}  // namespace

BENCHMARK_MAIN();
