// Placeholder replaced by the load tool (see docs/BENCHMARKS.md).
int main() { return 1; }
