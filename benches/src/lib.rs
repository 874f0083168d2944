//! Shared helpers of the benchmarks live in the bench targets.
