"""By-hand benchmarks (run from the repository root; results in docs/benchmarks.md). Not shipped."""
