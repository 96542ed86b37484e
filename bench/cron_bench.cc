// cron_bench — next-fire cost (issue 6: at most 1 µs per call for typical expressions).
// Baselines in the same run: the zone lookup every call needs anyway (date::time_zone::get_info),
// and a naive minute-by-minute scan, which is how a simple cron finds the next run.
//   build/bench/tocsin_bench_cron --benchmark_repetitions=5 --benchmark_report_aggregates_only
#include <benchmark/benchmark.h>
#include <date/tz.h>

#include "cron/expression.h"

namespace {

using tocsin::cron::Seconds;

struct Case {
  const char* expr;
  const char* zone;
};
constexpr Case kCases[] = {
    {"*/5 * * * *", "UTC"},
    {"0 3 * * *", "Europe/Berlin"},
    {"30 8 * * mon-fri", "America/New_York"},
    {"@hourly", "Australia/Lord_Howe"},
    {"0 0 L * *", "Asia/Tokyo"},
    {"0 9 * * fri#3", "Europe/Berlin"},
    {"*/15 * * * * *", "UTC"},
    {"0 0 29 2 *", "UTC"},  // not typical: the next is years away
};

const Seconds kStart{std::chrono::seconds{1795000000}};  // 2026-11-18

void BM_NextFire(benchmark::State& state) {
  const Case& c = kCases[state.range(0)];
  auto s = *tocsin::cron::parse(c.expr).schedule;
  const date::time_zone* z = tocsin::cron::find_zone(c.zone, nullptr);
  Seconds t = kStart;
  std::int64_t step = 0;
  for (auto _ : state) {
    // A different instant each call (over ~3 days), so no answer is cached by the branch
    // predictor alone.
    auto n = tocsin::cron::next_fire(s, *z, t + std::chrono::seconds{(step++ * 7919) % 259200});
    benchmark::DoNotOptimize(n);
  }
  state.SetLabel(std::string(c.expr) + " " + c.zone);
}
BENCHMARK(BM_NextFire)->DenseRange(0, std::size(kCases) - 1);

void BM_Baseline_ZoneLookup(benchmark::State& state) {
  const date::time_zone* z = tocsin::cron::find_zone("Europe/Berlin", nullptr);
  std::int64_t step = 0;
  for (auto _ : state) {
    auto info = z->get_info(kStart + std::chrono::seconds{(step++ * 7919) % 259200});
    benchmark::DoNotOptimize(info);
  }
}
BENCHMARK(BM_Baseline_ZoneLookup);

// What a simple cron does: test every minute from t on (here with the same matcher).
void BM_Baseline_MinuteScan(benchmark::State& state) {
  const Case& c = kCases[state.range(0)];
  auto s = *tocsin::cron::parse(c.expr).schedule;
  const date::time_zone* z = tocsin::cron::find_zone(c.zone, nullptr);
  std::int64_t step = 0;
  for (auto _ : state) {
    std::int64_t t = kStart.time_since_epoch().count() + (step++ * 7919) % 259200;
    t = (t / 60 + 1) * 60;
    for (int i = 0; i < 60 * 24 * 40; ++i, t += 60) {
      auto info = z->get_info(Seconds{std::chrono::seconds{t}});
      std::int64_t local = t + info.offset.count();
      auto m = tocsin::cron::next_local_match(s, local);
      if (m && *m == local) break;
    }
    benchmark::DoNotOptimize(t);
  }
  state.SetLabel(std::string(c.expr) + " " + c.zone);
}
BENCHMARK(BM_Baseline_MinuteScan)->Arg(0)->Arg(1)->Arg(2);

void BM_Parse(benchmark::State& state) {
  for (auto _ : state) {
    auto p = tocsin::cron::parse("0,30 8-18/2 * jan-jun mon-fri");
    benchmark::DoNotOptimize(p);
  }
}
BENCHMARK(BM_Parse);

}  // namespace

BENCHMARK_MAIN();
