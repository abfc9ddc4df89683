//! Benchmarks for host-switch. The criterion micro-benchmarks live in `benches/`; run them with
//! `cargo bench -p host-switch-benches`. The binaries: `compare` (host-switch side by side with
//! its peers) and `soak` (the real binary under long mixed traffic, bytes verified, memory
//! sampled); [`sys`] is what they share.

pub mod sys;
