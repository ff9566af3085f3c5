//! Benchmarks of orchestrator-core (written below).

fn main() {}
