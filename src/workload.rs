//! Synthetic API workload and history backfill for the demo and the benchmark.
