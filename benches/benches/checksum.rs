//! The Internet checksum over buffer sizes seen on the per-packet path: a small segment, a
//! full Ethernet-MTU frame, and a 64 KiB TSO-sized segment.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use stack::wire::checksum::Sum;
use std::hint::black_box;

fn checksum(c: &mut Criterion) {
    let mut group = c.benchmark_group("checksum");
    for size in [64usize, 1500, 65536] {
        let data: Vec<u8> = (0..size).map(|i| (i * 7 + 3) as u8).collect();
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &data, |b, data| {
            b.iter(|| Sum::of(black_box(data)).checksum())
        });
    }
    group.finish();
}

criterion_group!(benches, checksum);
criterion_main!(benches);
