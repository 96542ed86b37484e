// Placeholder replaced by the timer structure benchmark.
#include <benchmark/benchmark.h>
BENCHMARK_MAIN();
