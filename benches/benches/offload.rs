//! What offloads save per 44 MSS of TCP data (62.7 KiB, what one super-segment carries at
//! MTU 1500), on each side of a worker:
//! - in: one super-segment parsed with its checksum vouched for by the link, against
//!   44 segments of 1460 bytes each parsed with their checksums verified;
//! - out: one super-segment framed with a partial checksum and its GSO header, against
//!   44 framed segments with checksums of their own;
//! - the fallback: cutting one super-segment into 44 checksummed frames in software, what a
//!   frame bound for a link without offloads costs.
#![allow(clippy::unwrap_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use forwarder::frame::Framer;
use stack::ingress;
use stack::offload::{LinkOffloads, finish};
use stack::wire::{EthernetAddress, IpAddresses, TcpRepr, TcpSeqNumber};
use std::hint::black_box;
use std::net::Ipv4Addr;

const GW_MAC: EthernetAddress = EthernetAddress([0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xdd]);
const GUEST_MAC: EthernetAddress = EthernetAddress([0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xee]);
const MSS: usize = 1460;
const SEGMENTS: usize = 44;
const DATA: usize = MSS * SEGMENTS;

fn from_guest() -> IpAddresses {
    IpAddresses::V4 {
        src: Ipv4Addr::new(192, 168, 127, 2),
        dst: Ipv4Addr::new(192, 168, 127, 254),
    }
}

fn repr(len: usize, seq: u32) -> TcpRepr {
    TcpRepr {
        src_port: 40000,
        dst_port: 8080,
        seq_number: TcpSeqNumber(seq),
        ack_number: Some(TcpSeqNumber(7)),
        window_len: 502,
        payload_len: len,
        ..TcpRepr::default()
    }
}

fn data() -> Vec<u8> {
    (0..DATA).map(|i| (i * 7) as u8).collect()
}

fn rx(c: &mut Criterion) {
    let data = data();
    let mut guest = Framer::new(GUEST_MAC);
    let addrs = from_guest();
    let whole = repr(DATA, 1);
    let offloaded = guest
        .tcp_offloaded(
            GW_MAC,
            addrs,
            &whole,
            (&data, &[]),
            LinkOffloads::VIRTIO_NET,
            MSS,
        )
        .unwrap();
    let header = *offloaded.offload().unwrap();
    let super_frame = offloaded.into_bytes();
    let vouched = header.checksums();
    assert!(ingress::parse_with(&super_frame, GW_MAC, &vouched).is_ok());
    let reprs: Vec<TcpRepr> = (0..SEGMENTS)
        .map(|i| repr(MSS, 1 + (i * MSS) as u32))
        .collect();
    let frames: Vec<_> = reprs
        .iter()
        .zip(data.chunks(MSS))
        .map(|(r, chunk)| {
            guest
                .tcp(GW_MAC, addrs, r, (chunk, &[]))
                .unwrap()
                .into_bytes()
        })
        .collect();
    assert!(frames.iter().all(|f| ingress::parse(f, GW_MAC).is_ok()));
    let mut group = c.benchmark_group("offload/in 44 MSS");
    group.throughput(Throughput::Bytes(DATA as u64));
    group.bench_function("one super-segment, checksum vouched", |b| {
        b.iter(|| ingress::parse_with(black_box(&super_frame), GW_MAC, &vouched).map(|p| p.flow()))
    });
    group.bench_function("44 segments, checksums verified", |b| {
        b.iter(|| {
            frames
                .iter()
                .filter_map(|f| ingress::parse(black_box(f), GW_MAC).ok()?.flow())
                .count()
        })
    });
    group.finish();
}

fn tx(c: &mut Criterion) {
    let data = data();
    let mut framer = Framer::new(GW_MAC);
    let addrs = from_guest().reversed();
    let mut buf = vec![0u8; DATA + 200];
    let mut group = c.benchmark_group("offload/out 44 MSS");
    group.throughput(Throughput::Bytes(DATA as u64));
    let whole = repr(DATA, 1);
    group.bench_function("one super-segment, partial checksum", |b| {
        b.iter(|| {
            let built = framer
                .tcp_offloaded(
                    GUEST_MAC,
                    addrs,
                    &whole,
                    (&data, &[]),
                    LinkOffloads::VIRTIO_NET,
                    MSS,
                )
                .unwrap();
            let len = built.len();
            built.write(&mut buf[..len]);
            black_box(&buf);
        })
    });
    let reprs: Vec<TcpRepr> = (0..SEGMENTS)
        .map(|i| repr(MSS, 1 + (i * MSS) as u32))
        .collect();
    group.bench_function("44 segments, checksums computed", |b| {
        b.iter(|| {
            for (r, chunk) in reprs.iter().zip(data.chunks(MSS)) {
                let built = framer.tcp(GUEST_MAC, addrs, r, (chunk, &[])).unwrap();
                let len = built.len();
                built.write(&mut buf[..len]);
            }
            black_box(&buf);
        })
    });
    let offloaded = framer
        .tcp_offloaded(
            GUEST_MAC,
            addrs,
            &whole,
            (&data, &[]),
            LinkOffloads::VIRTIO_NET,
            MSS,
        )
        .unwrap();
    let header = *offloaded.offload().unwrap();
    let super_frame = offloaded.into_bytes();
    let mut scratch = Vec::new();
    group.bench_function("one super-segment cut in software", |b| {
        b.iter(|| {
            let mut bytes = 0;
            finish(black_box(&super_frame), &header, &mut scratch, &mut |f| {
                bytes += f.len();
            })
            .unwrap();
            bytes
        })
    });
    group.finish();
}

criterion_group!(benches, rx, tx);
criterion_main!(benches);
