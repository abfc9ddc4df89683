//! Segments per second through one established TCP connection of the engine, both ways:
//! `receive` feeds in-order data segments and drains the ACKs they cause and the received
//! bytes (as the forwarder would, into a host socket); `send` queues data, takes the
//! segments out with their payload copied into a frame buffer, and feeds back an ACK for
//! every second segment. Time moves 10 µs per segment.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use stack::tcp::{Config, Connection, Endpoints, State};
use stack::time::Instant;
use stack::wire::ip::Addresses;
use stack::wire::tcp::{Control, Repr, SeqNumber};
use std::hint::black_box;
use std::net::Ipv4Addr;

const MSS: usize = 1448;

fn endpoints() -> Endpoints {
    Endpoints {
        addrs: Addresses::V4 {
            src: Ipv4Addr::new(192, 168, 127, 254),
            dst: Ipv4Addr::new(192, 168, 127, 2),
        },
        local_port: 80,
        remote_port: 40000,
    }
}

/// A guest segment to us.
fn guest(seq: SeqNumber, ack: SeqNumber, len: usize) -> Repr {
    Repr {
        src_port: 40000,
        dst_port: 80,
        seq_number: seq,
        ack_number: Some(ack),
        window_len: 0xffff,
        payload_len: len,
        ..Repr::default()
    }
}

/// An established connection; returns it, the guest's next sequence number, and ours.
fn established() -> (Connection, SeqNumber, SeqNumber) {
    let config = Config {
        mss: MSS as u16,
        ..Config::default()
    };
    let now = Instant::ZERO;
    let syn = Repr {
        src_port: 40000,
        dst_port: 80,
        seq_number: SeqNumber(1),
        control: Control::Syn,
        window_len: 0xffff,
        max_seg_size: Some(MSS as u16),
        window_scale: Some(7),
        sack_permitted: true,
        ..Repr::default()
    };
    let mut conn = Connection::syn_received(now, &config, endpoints(), &syn);
    conn.accept(now);
    let iss = conn
        .poll_transmit(now)
        .map(|s| s.repr.seq_number)
        .unwrap_or_default();
    let (gseq, ours) = (SeqNumber(2), iss + 1);
    conn.handle_segment(now, &guest(gseq, ours, 0), &[]);
    assert_eq!(conn.state(), State::Established);
    while conn.poll_event().is_some() {}
    (conn, gseq, ours)
}

fn receive(c: &mut Criterion) {
    let mut group = c.benchmark_group("tcp");
    group.throughput(Throughput::Elements(1));
    let payload = vec![0x5au8; MSS];
    group.bench_function("receive", |b| {
        let (mut conn, mut gseq, ours) = established();
        let mut now = Instant::ZERO;
        let mut sink = 0usize;
        b.iter(|| {
            now = Instant::from_micros(now.as_micros() + 10);
            let repr = guest(gseq, ours, MSS);
            conn.handle_segment(now, &repr, black_box(&payload));
            gseq += MSS;
            let (a, bb) = conn.recv_slices();
            sink += a.len() + bb.len();
            conn.consume(a.len() + bb.len());
            while let Some(seg) = conn.poll_transmit(now) {
                black_box(seg.repr);
            }
            while conn.poll_event().is_some() {}
        });
        black_box(sink);
    });
    group.finish();
}

fn send(c: &mut Criterion) {
    let mut group = c.benchmark_group("tcp");
    group.throughput(Throughput::Elements(1));
    let data = vec![0xa5u8; MSS];
    group.bench_function("send", |b| {
        let (mut conn, gseq, _) = established();
        let mut now = Instant::ZERO;
        let mut frame = vec![0u8; 2048];
        let mut count = 0u64;
        b.iter(|| {
            now = Instant::from_micros(now.as_micros() + 10);
            conn.send(black_box(&data));
            let mut last = None;
            while let Some(seg) = conn.poll_transmit(now) {
                let (x, y) = seg.payload;
                frame[..x.len()].copy_from_slice(x);
                frame[x.len()..x.len() + y.len()].copy_from_slice(y);
                last = Some(seg.repr.seq_number + seg.repr.payload_len);
                count += 1;
            }
            if let Some(end) = last.filter(|_| count.is_multiple_of(2)) {
                conn.handle_segment(now, &guest(gseq, end, 0), &[]);
            }
            while conn.poll_event().is_some() {}
            black_box(&frame);
        });
    });
    group.finish();
}

criterion_group!(benches, receive, send);
criterion_main!(benches);
