//! The Linux kernel's TCP as the peer of host-switch's TCP engine, over a TAP device in a
//! network namespace this test creates. A minimal loop in the test moves frames between the
//! TAP and the engine (answering ARP for the gateway address, building Ethernet and IPv4
//! headers); the kernel connects to the engine and the engine connects to the kernel, and
//! 64 MiB go each way on both connections, checked byte for byte and by hash. Then again
//! with 1 % of frames dropped in each direction by a fault injector in that loop.
//!
//! Needs root. Without it the tests skip loudly, unless CI=true, where they must run.
//! Traffic stays inside the namespace created here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant as WallClock};

mod support;

use support::{NetnsGuard, privileged};

use stack::tcp::{Config, Connection, Endpoints, Event, State, reset_for_unknown};
use stack::time::Instant;
use stack::wire::{
    ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetAddress, EthernetFrame, EthernetRepr,
    IpAddresses, IpProtocol, Ipv4Packet, Ipv4Repr, TcpPacket, TcpRepr,
};
use switch::tap::{Tap, TapConfig, TapOptions};

const GATEWAY_MAC: EthernetAddress = EthernetAddress([0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xdd]);
const GUEST_MAC: EthernetAddress = EthernetAddress([0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xee]);
const GATEWAY: Ipv4Addr = Ipv4Addr::new(192, 168, 127, 1);
const GUEST: Ipv4Addr = Ipv4Addr::new(192, 168, 127, 2);
/// The engine listens here (the kernel connects in).
const ENGINE_PORT: u16 = 7001;
/// The kernel listens here (the engine connects out).
const KERNEL_PORT: u16 = 7002;
const SIZE: usize = 64 << 20;
/// The most the engine side checks per loop turn.
const READ_BITE: usize = 128 * 1024;
/// The pattern repeats with a prime period, so no two segments look alike.
const PERIOD: usize = 65521;

/// The byte stream both sides send: `seed` picks the pattern.
struct Pattern(Vec<u8>);

impl Pattern {
    fn new(seed: u64) -> Pattern {
        let mut x = seed | 1;
        let bytes = (0..PERIOD)
            .map(|_| {
                // xorshift64
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        Pattern(bytes)
    }

    /// Fills `out` with the stream from position `pos`.
    fn fill(&self, pos: usize, out: &mut [u8]) {
        let mut done = 0;
        while done < out.len() {
            let at = (pos + done) % PERIOD;
            let n = (PERIOD - at).min(out.len() - done);
            out[done..done + n].copy_from_slice(&self.0[at..at + n]);
            done += n;
        }
    }
}

/// Checks a received stream against its pattern, and hashes it (FNV-1a 64).
struct Verifier {
    pattern: Pattern,
    pos: usize,
    hash: u64,
    scratch: Vec<u8>,
}

impl Verifier {
    fn new(seed: u64) -> Verifier {
        Verifier {
            pattern: Pattern::new(seed),
            pos: 0,
            hash: 0xcbf2_9ce4_8422_2325,
            scratch: Vec::new(),
        }
    }

    fn feed(&mut self, data: &[u8]) {
        assert!(
            self.pos + data.len() <= SIZE,
            "more than {SIZE} bytes arrived"
        );
        self.scratch.resize(data.len(), 0);
        self.pattern.fill(self.pos, &mut self.scratch);
        if self.scratch != data {
            let at = self.scratch.iter().zip(data).position(|(a, b)| a != b);
            panic!("stream differs at byte {}", self.pos + at.unwrap_or(0));
        }
        for &b in data {
            self.hash = (self.hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.pos += data.len();
    }

    fn expected_hash(seed: u64) -> u64 {
        let mut v = Verifier::new(seed);
        let mut buf = vec![0u8; 1 << 20];
        let mut pos = 0;
        while pos < SIZE {
            let n = buf.len().min(SIZE - pos);
            v.pattern.fill(pos, &mut buf[..n]);
            for &b in &buf[..n] {
                v.hash = (v.hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
            }
            pos += n;
        }
        v.hash
    }
}

/// The kernel's side of one connection: write the whole stream, half-close, read the other
/// whole stream until EOF. Returns the received stream's hash.
fn kernel_side(stream: TcpStream, send_seed: u64, recv_seed: u64) -> u64 {
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let write = std::thread::spawn(move || {
        let pattern = Pattern::new(send_seed);
        let mut buf = vec![0u8; 256 * 1024];
        let mut pos = 0;
        while pos < SIZE {
            let n = buf.len().min(SIZE - pos);
            pattern.fill(pos, &mut buf[..n]);
            writer.write_all(&buf[..n]).unwrap();
            pos += n;
        }
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let mut verifier = Verifier::new(recv_seed);
    let mut reader = stream;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = reader.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        verifier.feed(&buf[..n]);
    }
    assert_eq!(verifier.pos, SIZE, "kernel received a short stream");
    write.join().unwrap();
    verifier.hash
}

/// The engine's side of one connection, driven by the test loop.
struct EngineSide {
    conn: Connection,
    pattern: Pattern,
    sent: usize,
    verifier: Verifier,
    peer_fin: bool,
    chunk: Vec<u8>,
}

impl EngineSide {
    fn new(conn: Connection, send_seed: u64, recv_seed: u64) -> EngineSide {
        EngineSide {
            conn,
            pattern: Pattern::new(send_seed),
            sent: 0,
            verifier: Verifier::new(recv_seed),
            peer_fin: false,
            chunk: vec![0u8; 64 * 1024],
        }
    }

    fn app(&mut self, now: Instant) {
        while let Some(event) = self.conn.poll_event() {
            match event {
                Event::PeerFin => self.peer_fin = true,
                Event::Reset | Event::TimedOut => {
                    panic!("engine connection failed: {event:?} in {:?}", self.conn)
                }
                _ => {}
            }
        }
        while self.sent < SIZE && self.conn.send_capacity() > 0 {
            let n = self
                .chunk
                .len()
                .min(SIZE - self.sent)
                .min(self.conn.send_capacity());
            self.pattern.fill(self.sent, &mut self.chunk[..n]);
            self.sent += self.conn.send(&self.chunk[..n]);
        }
        if self.sent == SIZE && matches!(self.conn.state(), State::Established | State::CloseWait) {
            self.conn.close(now);
        }
        // A bounded bite per turn, so that checking (slow in debug builds) does not keep
        // the loop from the TAP long enough for the kernel's RTO to fire.
        let (a, b) = self.conn.recv_slices();
        let a = &a[..a.len().min(READ_BITE)];
        let b = &b[..b.len().min(READ_BITE - a.len())];
        let n = a.len() + b.len();
        self.verifier.feed(a);
        self.verifier.feed(b);
        self.conn.consume(n);
    }

    fn done(&self) -> bool {
        self.verifier.pos == SIZE
            && self.peer_fin
            && matches!(self.conn.state(), State::TimeWait | State::Closed)
    }
}

/// Drops a fraction of frames, deterministically (xorshift).
struct FaultInjector {
    state: u64,
    /// Drop when a draw in 0..10_000 is below this.
    per_10k: u64,
    dropped: u64,
}

impl FaultInjector {
    fn drop_this(&mut self) -> bool {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        let drop = self.state % 10_000 < self.per_10k;
        self.dropped += u64::from(drop);
        drop
    }
}

fn frame_for(repr: &TcpRepr, payload: (&[u8], &[u8])) -> Vec<u8> {
    let tcp_len = repr.buffer_len() + repr.payload_len;
    let mut buf = vec![0u8; 14 + 20 + tcp_len];
    EthernetRepr {
        src_addr: GATEWAY_MAC,
        dst_addr: GUEST_MAC,
        ethertype: EtherType::Ipv4,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
    Ipv4Repr {
        src_addr: GATEWAY,
        dst_addr: GUEST,
        next_header: IpProtocol::Tcp,
        payload_len: tcp_len,
        hop_limit: 64,
        ident: 0,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
        dscp: 0,
        ecn: 0,
    }
    .emit(&mut Ipv4Packet::new_unchecked(&mut buf[14..]));
    let start = 34 + repr.buffer_len();
    buf[start..start + payload.0.len()].copy_from_slice(payload.0);
    buf[start + payload.0.len()..start + repr.payload_len].copy_from_slice(payload.1);
    let addrs = IpAddresses::V4 {
        src: GATEWAY,
        dst: GUEST,
    };
    repr.emit(&mut TcpPacket::new_unchecked(&mut buf[34..]), &addrs);
    buf
}

fn arp_reply(request: &ArpRepr) -> Vec<u8> {
    let mut buf = vec![0u8; 14 + 28];
    EthernetRepr {
        src_addr: GATEWAY_MAC,
        dst_addr: request.source_hardware_addr,
        ethertype: EtherType::Arp,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
    ArpRepr {
        operation: ArpOperation::Reply,
        source_hardware_addr: GATEWAY_MAC,
        source_protocol_addr: GATEWAY,
        target_hardware_addr: request.source_hardware_addr,
        target_protocol_addr: request.source_protocol_addr,
    }
    .emit(&mut ArpPacket::new_unchecked(&mut buf[14..]));
    buf
}

/// Moves frames between the TAP and the engine until both connections are done.
fn run(loss_per_10k: u64) {
    let ns = NetnsGuard::new("tcp");
    let netns = ns.netns();
    let options = TapOptions {
        multi_queue: false,
        offload: false,
        configure: Some(TapConfig {
            mac: Some(GUEST_MAC),
            mtu: 1500,
            ..TapConfig::default()
        }),
    };
    let tap = Tap::open_with("hs0", &netns, &options).unwrap();
    tap.set_nonblocking(true).unwrap();
    let listener: TcpListener = netns
        .run(|| TcpListener::bind((GUEST, KERNEL_PORT)).unwrap())
        .unwrap();
    let kernel_server: JoinHandle<u64> = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        kernel_side(stream, 3, 4)
    });
    let client_ns = netns.clone();
    let kernel_client: JoinHandle<u64> = std::thread::spawn(move || {
        let stream = client_ns
            .run(|| {
                TcpStream::connect_timeout(
                    &SocketAddr::from((GATEWAY, ENGINE_PORT)),
                    Duration::from_secs(20),
                )
                .unwrap()
            })
            .unwrap();
        kernel_side(stream, 1, 2)
    });

    let config = Config {
        isn_secret: *b"host-switch-test",
        ..Config::default()
    };
    let start = WallClock::now();
    let clock = || Instant::from_micros(start.elapsed().as_micros() as u64);
    let mut conns: HashMap<(u16, u16), EngineSide> = HashMap::new();
    let outgoing = Endpoints {
        addrs: IpAddresses::V4 {
            src: GATEWAY,
            dst: GUEST,
        },
        local_port: 40001,
        remote_port: KERNEL_PORT,
    };
    conns.insert(
        (40001, KERNEL_PORT),
        EngineSide::new(Connection::connect(clock(), &config, outgoing), 4, 3),
    );
    let mut inbound_faults = FaultInjector {
        state: 0x1234_5678,
        per_10k: loss_per_10k,
        dropped: 0,
    };
    let mut outbound_faults = FaultInjector {
        state: 0x9abc_def0,
        per_10k: loss_per_10k,
        dropped: 0,
    };
    let mut buf = vec![0u8; 65536];
    let mut frames_in = 0u64;
    let mut frames_out = 0u64;
    loop {
        assert!(
            start.elapsed() < Duration::from_secs(240),
            "transfer too slow: {:?}",
            conns
                .values()
                .map(|s| (s.conn.state(), s.sent, s.verifier.pos))
                .collect::<Vec<_>>()
        );
        let now = clock();
        // Ingress.
        loop {
            let n = match tap.read_frame(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("TAP read: {e}"),
            };
            frames_in += 1;
            if inbound_faults.drop_this() {
                continue;
            }
            let Ok(frame) = EthernetFrame::new_checked(&buf[..n]) else {
                continue;
            };
            match frame.ethertype() {
                EtherType::Arp => {
                    let Ok(packet) = ArpPacket::new_checked(frame.payload()) else {
                        continue;
                    };
                    if let Ok(arp) = ArpRepr::parse(&packet)
                        && arp.operation == ArpOperation::Request
                        && arp.target_protocol_addr == GATEWAY
                    {
                        tap.write_frame(&arp_reply(&arp)).unwrap();
                    }
                }
                EtherType::Ipv4 => {
                    let Ok(packet) = Ipv4Packet::new_checked(frame.payload()) else {
                        continue;
                    };
                    let Ok(ip) = Ipv4Repr::parse(&packet) else {
                        continue;
                    };
                    if ip.dst_addr != GATEWAY || ip.next_header != IpProtocol::Tcp {
                        continue;
                    }
                    let addrs = IpAddresses::V4 {
                        src: ip.src_addr,
                        dst: ip.dst_addr,
                    };
                    let Ok(segment) = TcpPacket::new_checked(packet.payload()) else {
                        continue;
                    };
                    let Ok(repr) = TcpRepr::parse(&segment, &addrs) else {
                        continue;
                    };
                    let key = (repr.dst_port, repr.src_port);
                    if let Some(side) = conns.get_mut(&key) {
                        side.conn.handle_segment(now, &repr, segment.payload());
                    } else if repr.dst_port == ENGINE_PORT
                        && repr.control == stack::wire::TcpControl::Syn
                        && repr.ack_number.is_none()
                    {
                        let ends = Endpoints::of_incoming(&addrs, &repr);
                        let mut conn = Connection::syn_received(now, &config, ends, &repr);
                        // The "host connect" succeeds at once.
                        conn.accept(now);
                        conns.insert(key, EngineSide::new(conn, 2, 1));
                    } else if let Some(rst) = reset_for_unknown(&repr) {
                        tap.write_frame(&frame_for(&rst, (&[], &[]))).unwrap();
                    }
                }
                _ => {}
            }
        }
        // Timers, the application, egress.
        let now = clock();
        for side in conns.values_mut() {
            if side.conn.poll_timeout().is_some_and(|t| t <= now) {
                side.conn.handle_timeout(now);
            }
            side.app(now);
            while let Some(segment) = side.conn.poll_transmit(now) {
                let frame = frame_for(&segment.repr, segment.payload);
                frames_out += 1;
                if !outbound_faults.drop_this() {
                    tap.write_frame(&frame).unwrap();
                }
            }
            side.app(now);
        }
        if conns.len() == 2 && conns.values().all(EngineSide::done) {
            break;
        }
        let next = conns
            .values()
            .filter_map(|s| s.conn.poll_timeout())
            .min()
            .map_or(Duration::from_millis(1), |t| {
                t.saturating_duration_since(clock())
                    .min(Duration::from_millis(1))
            });
        tap.wait_readable(Some(next)).unwrap();
    }
    let elapsed = start.elapsed();
    let server_hash = kernel_server.join().unwrap();
    let client_hash = kernel_client.join().unwrap();
    assert_eq!(client_hash, Verifier::expected_hash(2));
    assert_eq!(server_hash, Verifier::expected_hash(4));
    for (key, side) in &conns {
        let expect = if key.0 == ENGINE_PORT { 1 } else { 3 };
        assert_eq!(side.verifier.hash, Verifier::expected_hash(expect));
    }
    let stats: Vec<_> = conns.values().map(|s| *s.conn.stats()).collect();
    println!(
        "kernel <-> engine, {} % loss: 4 x 64 MiB in {elapsed:?} ({:.0} MB/s total); \
         frames in {frames_in} out {frames_out}, dropped in {} out {}; retransmits {:?}",
        loss_per_10k as f64 / 100.0,
        (4 * SIZE) as f64 / 1e6 / elapsed.as_secs_f64(),
        inbound_faults.dropped,
        outbound_faults.dropped,
        stats
    );
}

#[test]
fn kernel_tcp_both_ways() {
    if !privileged("kernel_tcp_both_ways", &["ip"]) {
        return;
    }
    run(0);
}

#[test]
fn kernel_tcp_both_ways_with_loss() {
    if !privileged("kernel_tcp_both_ways_with_loss", &["ip"]) {
        return;
    }
    run(100);
}
