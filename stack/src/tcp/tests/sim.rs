//! Deterministic simulation: two engines joined by a seeded link with a virtual clock.
//!
//! The link has a rate (serialisation delay), a drop-tail queue, propagation delay, and
//! random loss, duplication and reordering. Engine A connects to B (B is created from
//! A's SYN and accepts at once); both send a known byte stream, then close. The test
//! checks that every byte arrives exactly, that both ends close cleanly, and prints the
//! goodput in simulated time. With [`Tso`], the ends send super-segments
//! ([`Connection::poll_transmit_max`]) that the link either cuts to the MSS (as a NIC or the
//! kernel's GSO does) or carries whole (a guest's kernel takes them as one), and nothing sent
//! again may be larger than one MSS.

use super::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[derive(Debug, Clone)]
struct Packet {
    repr: Repr,
    payload: Vec<u8>,
}

/// One direction of the link.
struct Link {
    rng: StdRng,
    loss: f64,
    duplicate: f64,
    reorder: f64,
    delay: Duration,
    /// Nanoseconds per byte on the wire.
    ns_per_byte: u64,
    /// The most bytes queued for serialisation before drops.
    queue_limit: usize,
    busy_until: Instant,
    in_flight: Vec<(Instant, u64, Packet)>,
    counter: u64,
    dropped: u64,
}

impl Link {
    fn new(seed: u64, loss: f64) -> Link {
        Link {
            rng: StdRng::seed_from_u64(seed),
            loss,
            duplicate: loss / 2.0,
            reorder: loss,
            // A local link: 100 µs each way, 8 Gbit/s.
            delay: Duration::from_micros(100),
            ns_per_byte: 1,
            queue_limit: 1 << 20,
            busy_until: Instant::ZERO,
            in_flight: Vec::new(),
            counter: 0,
            dropped: 0,
        }
    }

    fn send(&mut self, now: Instant, packet: Packet) {
        let wire_len = packet.payload.len() as u64 + 54;
        let start = self.busy_until.max(now);
        let backlog = (start - now).as_nanos() as u64 / self.ns_per_byte;
        if backlog > self.queue_limit as u64 {
            self.dropped += 1;
            return;
        }
        self.busy_until = start + Duration::from_nanos(wire_len * self.ns_per_byte);
        if self.rng.gen_bool(self.loss) {
            self.dropped += 1;
            return;
        }
        let mut at = self.busy_until + self.delay;
        if self.rng.gen_bool(self.reorder) {
            at = at + Duration::from_micros(self.rng.gen_range(10..300));
        }
        if self.rng.gen_bool(self.duplicate) {
            let later = at + Duration::from_micros(self.rng.gen_range(0..200));
            self.push(later, packet.clone());
        }
        self.push(at, packet);
    }

    fn push(&mut self, at: Instant, packet: Packet) {
        self.counter += 1;
        self.in_flight.push((at, self.counter, packet));
    }

    fn next(&self) -> Option<Instant> {
        self.in_flight.iter().map(|p| p.0).min()
    }

    /// The packets due by `now`, in arrival order.
    fn due(&mut self, now: Instant) -> Vec<Packet> {
        let (mut due, keep): (Vec<_>, Vec<_>) = self.in_flight.drain(..).partition(|p| p.0 <= now);
        self.in_flight = keep;
        due.sort_by_key(|p| (p.0, p.1));
        due.into_iter().map(|p| p.2).collect()
    }
}

/// The byte at `index` of the stream with `seed`.
fn stream_byte(seed: u8, index: usize) -> u8 {
    let x = (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(seed);
    (x >> 29) as u8 ^ (index as u8)
}

/// One end: its engine and its application.
struct Peer {
    conn: Option<Connection>,
    seed: u8,
    to_send: usize,
    sent: usize,
    received: usize,
    peer_fin: bool,
    closed: bool,
    done_at: Option<Instant>,
}

impl Peer {
    fn new(conn: Option<Connection>, seed: u8, to_send: usize) -> Peer {
        Peer {
            conn,
            seed,
            to_send,
            sent: 0,
            received: 0,
            peer_fin: false,
            closed: false,
            done_at: None,
        }
    }

    /// The application: write what fits, read and check what came, close when done.
    fn app(&mut self, now: Instant, expect_seed: u8, expect_len: usize) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        while let Some(event) = conn.poll_event() {
            match event {
                Event::PeerFin => self.peer_fin = true,
                Event::Closed => self.closed = true,
                Event::Reset | Event::TimedOut => {
                    panic!("connection failed at {now:?}: {event:?} {conn:#?}")
                }
                _ => {}
            }
        }
        let mut chunk = [0u8; 16 * 1024];
        while self.sent < self.to_send && conn.send_capacity() > 0 {
            let n = chunk.len().min(self.to_send - self.sent);
            for (i, b) in chunk.iter_mut().take(n).enumerate() {
                *b = stream_byte(self.seed, self.sent + i);
            }
            let took = conn.send(&chunk[..n]);
            self.sent += took;
            if took == 0 {
                break;
            }
        }
        if self.sent == self.to_send
            && matches!(conn.state(), State::Established | State::CloseWait)
        {
            conn.close(now);
        }
        let (a, b) = conn.recv_slices();
        for (i, &byte) in a.iter().chain(b).enumerate() {
            let index = self.received + i;
            assert!(index < expect_len, "more bytes than sent");
            assert_eq!(
                byte,
                stream_byte(expect_seed, index),
                "byte {index} differs"
            );
        }
        let n = a.len() + b.len();
        conn.consume(n);
        self.received += n;
        if self.received == expect_len && self.done_at.is_none() {
            self.done_at = Some(now);
        }
    }
}

/// Whether the ends send super-segments, and what the link makes of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tso {
    Off,
    /// Cut into segments of the MSS before the wire.
    Cut,
    /// Carried whole, and lost whole.
    Whole,
}

/// What the link carries for one segment the engine gave: the segment, or its MSS-sized
/// pieces (FIN and PSH on the last).
fn on_the_wire(repr: Repr, payload: Vec<u8>, mss: usize, tso: Tso) -> Vec<Packet> {
    if tso != Tso::Cut || payload.len() <= mss {
        return vec![Packet { repr, payload }];
    }
    let pieces = payload.len().div_ceil(mss);
    payload
        .chunks(mss)
        .enumerate()
        .map(|(i, chunk)| {
            let last = i + 1 == pieces;
            let control = if last { repr.control } else { Control::None };
            Packet {
                repr: Repr {
                    seq_number: repr.seq_number + i * mss,
                    control,
                    psh: repr.psh && last,
                    payload_len: chunk.len(),
                    ..repr
                },
                payload: chunk.to_vec(),
            }
        })
        .collect()
}

struct Outcome {
    goodput_mb_s: f64,
    retransmits: u64,
    duration: Duration,
}

fn run(seed: u64, loss: f64, a_to_b: usize, b_to_a: usize) -> Outcome {
    run_with(seed, loss, a_to_b, b_to_a, Tso::Off)
}

fn run_with(seed: u64, loss: f64, a_to_b: usize, b_to_a: usize, tso: Tso) -> Outcome {
    let config = Config {
        isn_secret: [seed as u8; 16],
        ..Config::default()
    };
    let mut now = Instant::from_millis(1);
    let a_ends = endpoints();
    let b_ends = Endpoints {
        addrs: a_ends.addrs.reversed(),
        local_port: a_ends.remote_port,
        remote_port: a_ends.local_port,
    };
    let mut a = Peer::new(Some(Connection::connect(now, &config, a_ends)), 1, a_to_b);
    let mut b = Peer::new(None, 2, b_to_a);
    let mut ab = Link::new(seed, loss);
    let mut ba = Link::new(seed.wrapping_add(1), loss);
    let limit = Instant::from_millis(600_000);
    let mut steps = 0u64;
    // The end of the highest sequence each end has sent, and its largest segment.
    let mut sent_end = [None::<SeqNumber>; 2];
    let mut largest = [0usize; 2];
    let max_payload = if tso == Tso::Off { 0 } else { 65_000 };
    loop {
        steps += 1;
        assert!(steps < 50_000_000, "simulation does not converge");
        a.app(now, 2, b_to_a);
        b.app(now, 1, a_to_b);
        for (i, (peer, link)) in [(&mut a, &mut ab), (&mut b, &mut ba)]
            .into_iter()
            .enumerate()
        {
            if let Some(conn) = peer.conn.as_mut() {
                let mss = conn.send_mss();
                while let Some(seg) = conn.poll_transmit_max(now, max_payload) {
                    let payload = [seg.payload.0, seg.payload.1].concat();
                    let repr = seg.repr;
                    let end = repr.seq_number + payload.len();
                    if !payload.is_empty() {
                        if sent_end[i].is_some_and(|e| repr.seq_number < e) {
                            assert!(
                                payload.len() <= mss,
                                "a retransmission of {} bytes",
                                payload.len()
                            );
                        }
                        if sent_end[i].is_none_or(|e| end > e) {
                            sent_end[i] = Some(end);
                        }
                    }
                    largest[i] = largest[i].max(payload.len());
                    for packet in on_the_wire(repr, payload, mss, tso) {
                        link.send(now, packet);
                    }
                }
                check_invariants(conn);
            }
        }
        let finished = |p: &Peer| {
            p.closed
                || p.conn
                    .as_ref()
                    .is_some_and(|c| c.state() == State::TimeWait)
        };
        if finished(&a) && finished(&b) && a.done_at.is_some() && b.done_at.is_some() {
            break;
        }
        let next = [
            ab.next(),
            ba.next(),
            a.conn.as_ref().and_then(Connection::poll_timeout),
            b.conn.as_ref().and_then(Connection::poll_timeout),
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(next) = next else {
            panic!(
                "stuck at {now:?}: A {:?} B {:?}",
                a.conn.as_ref().map(Connection::state),
                b.conn.as_ref().map(Connection::state)
            );
        };
        assert!(
            next < limit,
            "too slow: A {:?} {}/{} B {:?} {}/{}",
            a.conn.as_ref().map(Connection::state),
            a.received,
            b_to_a,
            b.conn.as_ref().map(Connection::state),
            b.received,
            a_to_b
        );
        now = now.max(next);
        for packet in ba.due(now) {
            if let Some(conn) = a.conn.as_mut() {
                conn.handle_segment(now, &packet.repr, &packet.payload);
            }
        }
        for packet in ab.due(now) {
            match b.conn.as_mut() {
                Some(conn) => conn.handle_segment(now, &packet.repr, &packet.payload),
                None if packet.repr.control == Control::Syn => {
                    let mut conn = Connection::syn_received(now, &config, b_ends, &packet.repr);
                    conn.accept(now);
                    b.conn = Some(conn);
                }
                None => {}
            }
        }
        for peer in [&mut a, &mut b] {
            if let Some(conn) = peer.conn.as_mut()
                && conn.poll_timeout().is_some_and(|t| t <= now)
            {
                conn.handle_timeout(now);
            }
        }
    }
    assert_eq!(a.received, b_to_a);
    assert_eq!(b.received, a_to_b);
    let start = Instant::from_millis(1);
    let end = a.done_at.max(b.done_at).unwrap_or(now);
    let duration = end - start;
    let bytes = (a_to_b + b_to_a) as f64;
    if std::env::var_os("SIM_DEBUG").is_some() {
        for (name, p, link) in [("A", &a, &ab), ("B", &b, &ba)] {
            println!(
                "{name}: link drops {} stats {:?}",
                link.dropped,
                p.conn.as_ref().map(|c| *c.stats())
            );
        }
    }
    let stats = |p: &Peer| p.conn.as_ref().map_or(0, |c| c.stats().retransmits);
    let mss = usize::from(config.mss);
    if tso == Tso::Off {
        assert!(largest.iter().all(|&l| l <= mss));
    } else {
        assert!(
            largest.iter().all(|&l| l > 8 * mss),
            "super-segments: {largest:?}"
        );
    }
    Outcome {
        goodput_mb_s: bytes / 1e6 / duration.as_secs_f64(),
        retransmits: stats(&a) + stats(&b),
        duration,
    }
}

/// What must hold after every step, whatever happened.
pub(super) fn check_invariants(conn: &Connection) {
    assert!(conn.snd_una <= conn.snd_nxt, "SND.UNA > SND.NXT");
    assert!(conn.snd_nxt <= conn.snd_max, "SND.NXT > SND.MAX");
    assert!(conn.tx.len() <= conn.config.send_buffer);
    assert!(conn.rx.len() <= conn.config.recv_buffer);
    assert!(conn.rx.allocated() <= conn.config.recv_buffer.max(4096));
    assert!(conn.tx.allocated() <= conn.config.send_buffer.max(4096));
    if conn.state() != State::Closed {
        // SYN and FIN take one sequence number each beside the queued bytes.
        let in_flight = conn.snd_max.distance_from(conn.snd_una);
        assert!(in_flight <= conn.tx.len() + 2, "more in flight than queued");
    }
}

fn report(name: &str, seed: u64, loss: f64, size: usize) {
    let out = run(seed, loss, size, size);
    println!(
        "{name}: {} MiB each way at {:.0} % loss: {:.1} MB/s simulated goodput over {:?}, {} retransmits",
        size >> 20,
        loss * 100.0,
        out.goodput_mb_s,
        out.duration,
        out.retransmits
    );
}

#[test]
fn sim_lossless() {
    report("lossless", 1, 0.0, 8 << 20);
}

#[test]
fn sim_one_percent_loss() {
    report("1% loss", 2, 0.01, 4 << 20);
}

#[test]
fn sim_five_percent_loss() {
    report("5% loss", 3, 0.05, 4 << 20);
}

#[test]
fn sim_super_segments_cut_by_the_link() {
    for (seed, loss) in [(40, 0.0), (41, 0.01), (42, 0.05)] {
        let out = run_with(seed, loss, 4 << 20, 4 << 20, Tso::Cut);
        println!(
            "TSO, cut: {:.0} % loss: {:.1} MB/s, {} retransmits",
            loss * 100.0,
            out.goodput_mb_s,
            out.retransmits
        );
    }
}

#[test]
fn sim_super_segments_carried_whole() {
    for (seed, loss) in [(50, 0.0), (51, 0.01), (52, 0.05)] {
        let out = run_with(seed, loss, 4 << 20, 4 << 20, Tso::Whole);
        println!(
            "TSO, whole: {:.0} % loss: {:.1} MB/s, {} retransmits",
            loss * 100.0,
            out.goodput_mb_s,
            out.retransmits
        );
    }
}

#[test]
fn sim_many_seeds_small() {
    for seed in 10..30 {
        run(seed, 0.05, 200_000, 100_000);
    }
}
