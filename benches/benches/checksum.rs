//! The Internet checksum over buffer sizes seen on the per-packet path: a small segment, a
//! full Ethernet-MTU frame, and a 64 KiB TSO-sized segment. `bytewise` is the textbook
//! RFC 1071 loop, measured in the same run as the baseline the word-at-a-time sum is judged by.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use stack::wire::checksum::Sum;
use std::hint::black_box;

/// RFC 1071 one 16-bit word at a time, folding as it goes.
fn bytewise(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for pair in data.chunks(2) {
        let word = match *pair {
            [hi, lo] => u16::from_be_bytes([hi, lo]),
            [hi] => u16::from_be_bytes([hi, 0]),
            _ => 0,
        };
        sum += u32::from(word);
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn checksum(c: &mut Criterion) {
    let mut group = c.benchmark_group("checksum");
    for size in [64usize, 1500, 65536] {
        let data: Vec<u8> = (0..size).map(|i| (i * 7 + 3) as u8).collect();
        assert_eq!(bytewise(&data), Sum::of(&data).checksum());
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("word", size), &data, |b, data| {
            b.iter(|| Sum::of(black_box(data)).checksum())
        });
        group.bench_with_input(BenchmarkId::new("bytewise", size), &data, |b, data| {
            b.iter(|| bytewise(black_box(data)))
        });
    }
    group.finish();
}

criterion_group!(benches, checksum);
criterion_main!(benches);
