//! The gateway's per-frame path: one ingress parse of a full-MTU TCP segment and of a small
//! one (checksums verified on the way), the owned flow summary a worker receives, and the
//! seeded flow hash that picks the worker.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use stack::ingress::{self, FlowKey};
use stack::wire::{
    EtherType, EthernetAddress, EthernetFrame, EthernetRepr, IpAddresses, IpProtocol, Ipv4Packet,
    Ipv4Repr, TcpControl, TcpPacket, TcpRepr, TcpSeqNumber, ethernet, ipv4,
};
use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr};

const GW_MAC: EthernetAddress = EthernetAddress([0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xdd]);
const GUEST_MAC: EthernetAddress = EthernetAddress([0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xee]);

/// An Ethernet frame carrying a TCP segment with `payload_len` bytes, guest to host.
fn tcp_frame(payload_len: usize) -> Vec<u8> {
    let (src, dst) = (
        Ipv4Addr::new(192, 168, 127, 2),
        Ipv4Addr::new(192, 168, 127, 254),
    );
    let tcp = TcpRepr {
        src_port: 40000,
        dst_port: 8080,
        seq_number: TcpSeqNumber(1000),
        ack_number: Some(TcpSeqNumber(2000)),
        control: TcpControl::None,
        window_len: 502,
        payload_len,
        ..TcpRepr::default()
    };
    let tcp_len = tcp.buffer_len() + payload_len;
    let ip = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Tcp,
        payload_len: tcp_len,
        hop_limit: 64,
        ident: 1,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
        dscp: 0,
        ecn: 0,
    };
    let mut f = vec![0u8; ethernet::HEADER_LEN + ip.total_len()];
    EthernetRepr {
        src_addr: GUEST_MAC,
        dst_addr: GW_MAC,
        ethertype: EtherType::Ipv4,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
    let l4 = ethernet::HEADER_LEN + ipv4::HEADER_LEN;
    for (i, b) in f[l4 + tcp.buffer_len()..].iter_mut().enumerate() {
        *b = i as u8;
    }
    tcp.emit(
        &mut TcpPacket::new_unchecked(&mut f[l4..]),
        &IpAddresses::V4 { src, dst },
    );
    ip.emit(&mut Ipv4Packet::new_unchecked(
        &mut f[ethernet::HEADER_LEN..],
    ));
    f
}

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("ingress");
    for payload in [0usize, 1460] {
        let frame = tcp_frame(payload);
        assert!(ingress::parse(&frame, GW_MAC).is_ok_and(|p| p.flow().is_some()));
        group.throughput(Throughput::Bytes(frame.len() as u64));
        group.bench_with_input(BenchmarkId::new("parse_tcp", payload), &frame, |b, f| {
            b.iter(|| ingress::parse(black_box(f), GW_MAC).map(|p| p.eth))
        });
        group.bench_with_input(BenchmarkId::new("parse_flow", payload), &frame, |b, f| {
            b.iter(|| ingress::parse(black_box(f), GW_MAC).map(|p| p.flow()))
        });
    }
    let key = FlowKey {
        protocol: IpProtocol::Tcp,
        guest: SocketAddr::from(([192, 168, 127, 2], 40000)),
        remote: SocketAddr::from(([192, 168, 127, 254], 8080)),
    };
    group.bench_function("flow_worker", |b| {
        b.iter(|| black_box(&key).worker(0x5eed, 8))
    });
    group.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
