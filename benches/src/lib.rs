//! Benchmarks for host-switch. The criterion micro-benchmarks live in `benches/`; run them with
//! `cargo bench -p host-switch-benches`.
