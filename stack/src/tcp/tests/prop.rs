//! Property test: arbitrary segments and API calls never panic and keep the invariants
//! (SND.UNA ≤ SND.NXT ≤ SND.MAX, buffers within their limits, nothing in flight that is
//! not queued).

use super::sim::check_invariants;
use super::*;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// A guest segment with sequence and acknowledgment numbers near the interesting
    /// edges (offsets from RCV.NXT and SND.UNA), or anywhere when `wild`.
    Segment {
        seq_off: i32,
        ack_off: Option<i32>,
        control: u8,
        window: u16,
        len: u16,
        wild: Option<(u32, u32)>,
        options: bool,
    },
    Send(u16),
    Consume(u16),
    Close,
    Abort,
    Accept,
    Refuse,
    Advance(u16),
    Transmit,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (
            -3000i32..70_000,
            proptest::option::weighted(0.9, -3000i32..70_000),
            0u8..6,
            any::<u16>(),
            prop_oneof![Just(0u16), 1u16..1500],
            proptest::option::weighted(0.05, (any::<u32>(), any::<u32>())),
            proptest::bool::weighted(0.1),
        )
            .prop_map(|(seq_off, ack_off, control, window, len, wild, options)| {
                Op::Segment { seq_off, ack_off, control, window, len, wild, options }
            }),
        2 => (0u16..20_000).prop_map(Op::Send),
        2 => any::<u16>().prop_map(Op::Consume),
        1 => Just(Op::Close),
        1 => Just(Op::Abort).prop_filter("rare", |_| true),
        1 => Just(Op::Accept),
        1 => Just(Op::Refuse),
        3 => (0u16..3000).prop_map(Op::Advance),
        4 => Just(Op::Transmit),
    ]
}

fn control(n: u8) -> Control {
    match n {
        0 | 1 => Control::None,
        2 => Control::Fin,
        3 => Control::Syn,
        4 => Control::Rst,
        _ => Control::SynFin,
    }
}

fn apply(h: &mut Harness, op: &Op, scratch: &mut [u8]) {
    match *op {
        Op::Segment {
            seq_off,
            ack_off,
            control: c,
            window,
            len,
            wild,
            options,
        } => {
            let rcv_nxt = h.conn.rcv_nxt;
            let snd_una = h.conn.snd_una;
            let (seq, ack) = match wild {
                Some((s, a)) => (SeqNumber(s), ack_off.map(|_| SeqNumber(a))),
                None => (
                    SeqNumber(rcv_nxt.0.wrapping_add(seq_off as u32)),
                    ack_off.map(|a| SeqNumber(snd_una.0.wrapping_add(a as u32))),
                ),
            };
            let repr = Repr {
                src_port: GUEST_PORT,
                dst_port: OUR_PORT,
                seq_number: seq,
                ack_number: ack,
                control: control(c),
                window_len: window,
                max_seg_size: options.then_some(window),
                window_scale: options.then_some((window & 0xff) as u8),
                sack_permitted: options,
                payload_len: usize::from(len),
                ..Repr::default()
            };
            let payload = scratch.get(..usize::from(len)).unwrap_or(&[]);
            h.conn.handle_segment(h.now, &repr, payload);
        }
        Op::Send(n) => {
            let data = scratch.get(..usize::from(n)).unwrap_or(&[]);
            let cap = h.conn.send_capacity();
            let took = h.conn.send(data);
            assert!(took <= cap);
        }
        Op::Consume(n) => {
            let before = h.conn.recv_queued();
            let (a, b) = h.conn.recv_slices();
            assert_eq!(a.len() + b.len(), before);
            let n = h.conn.consume(usize::from(n));
            assert_eq!(h.conn.recv_queued(), before - n);
        }
        Op::Close => h.conn.close(h.now),
        Op::Abort => h.conn.abort(h.now),
        Op::Accept => h.conn.accept(h.now),
        Op::Refuse => h.conn.refuse(h.now),
        Op::Advance(ms) => {
            h.now = h.now + Duration::from_millis(u64::from(ms));
            if h.conn.poll_timeout().is_some_and(|t| t <= h.now) {
                h.conn.handle_timeout(h.now);
            }
            // Deadlines are never in the past after handling.
            assert!(h.conn.poll_timeout().is_none_or(|t| t > h.now));
        }
        Op::Transmit => {
            let mut count = 0;
            while let Some(seg) = h.conn.poll_transmit(h.now) {
                assert_eq!(seg.payload_len(), seg.repr.payload_len);
                assert!(seg.payload_len() <= 1000);
                count += 1;
                assert!(count < 10_000, "poll_transmit never ends");
            }
        }
    }
    while h.conn.poll_event().is_some() {}
    check_invariants(&h.conn);
}

fn start(kind: u8) -> Harness {
    match kind {
        0 => Harness::established(),
        1 => Harness::established_with(&config(), u32::MAX - 2000),
        2 => {
            let now = Instant::from_millis(1);
            let syn = Repr {
                src_port: GUEST_PORT,
                dst_port: OUR_PORT,
                seq_number: SeqNumber(77),
                control: Control::Syn,
                window_scale: Some(20),
                max_seg_size: Some(0),
                ..Repr::default()
            };
            Harness {
                conn: Connection::syn_received(now, &config(), endpoints(), &syn),
                now,
                gseq: SeqNumber(78),
                girs: SeqNumber(77),
            }
        }
        _ => {
            let now = Instant::from_millis(1);
            Harness {
                conn: Connection::connect(now, &config(), endpoints()),
                now,
                gseq: SeqNumber(1),
                girs: SeqNumber(1),
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_inputs_keep_invariants(
        kind in 0u8..4,
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let mut h = start(kind);
        let mut scratch = vec![0u8; 20_000];
        for (i, b) in scratch.iter_mut().enumerate() {
            *b = i as u8;
        }
        for op in &ops {
            apply(&mut h, op, &mut scratch);
        }
    }
}
