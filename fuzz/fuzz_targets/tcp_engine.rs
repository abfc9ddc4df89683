//! The TCP engine as a state machine: a connection (passive, active, or established) driven
//! by an operation sequence decoded from the input (guest segments with sequence and
//! acknowledgment numbers near the interesting edges or anywhere, API calls, clock steps).
//! Nothing may panic, and SND.UNA ≤ SND.NXT and the buffer bounds must hold throughout.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stack::tcp::{Config, Connection, Endpoints, State};
use stack::time::Instant;
use stack::wire::ip::Addresses;
use stack::wire::tcp::{Control, Repr, SeqNumber};
use std::net::Ipv4Addr;

/// Reads the input a few bytes at a time; zeros once it runs out.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        let (first, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        *first
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
}

const US: u16 = 80;
const GUEST: u16 = 40000;

fn endpoints() -> Endpoints {
    Endpoints {
        addrs: Addresses::V4 {
            src: Ipv4Addr::new(192, 168, 127, 1),
            dst: Ipv4Addr::new(192, 168, 127, 2),
        },
        local_port: US,
        remote_port: GUEST,
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Bytes(data);
    let config = Config {
        mss: 536,
        recv_buffer: 16 * 1024,
        send_buffer: 16 * 1024,
        out_of_order_limit: 8 * 1024,
        ..Config::default()
    };
    let mut now = Instant::from_millis(1);
    // The guest's idea of both sequence spaces, to aim near the windows.
    let mut their_seq = SeqNumber(input.u32());
    let mut our_seq = SeqNumber(0);
    let mut conn = if input.u8() & 1 == 0 {
        let syn = Repr {
            src_port: GUEST,
            dst_port: US,
            seq_number: their_seq,
            control: Control::Syn,
            window_len: input.u16(),
            max_seg_size: Some(input.u16()),
            window_scale: Some(input.u8()),
            sack_permitted: true,
            ..Repr::default()
        };
        their_seq += 1;
        Connection::syn_received(now, &config, endpoints(), &syn)
    } else {
        Connection::connect(now, &config, endpoints())
    };
    let payload = [0x5au8; 2048];
    let mut out = [0u8; 4096];
    for _ in 0..512 {
        if input.0.is_empty() {
            break;
        }
        match input.u8() % 10 {
            0..=3 => {
                let near = input.u8();
                let seq = if near & 1 == 0 {
                    their_seq + usize::from(input.u16()) - 1024usize
                } else {
                    SeqNumber(input.u32())
                };
                let ack = match near >> 1 & 3 {
                    0 => None,
                    1 => Some(SeqNumber(input.u32())),
                    _ => Some(our_seq + usize::from(input.u16() % 4096) - 1024usize),
                };
                let control = match input.u8() % 8 {
                    0 => Control::Syn,
                    1 => Control::Fin,
                    2 => Control::Rst,
                    3 => Control::SynFin,
                    _ => Control::None,
                };
                let len = usize::from(input.u16()) % payload.len();
                let sack = (input.u8() & 1 == 1).then(|| {
                    let start = our_seq + usize::from(input.u16());
                    (start, start + usize::from(input.u16()))
                });
                let repr = Repr {
                    src_port: GUEST,
                    dst_port: US,
                    seq_number: seq,
                    ack_number: ack,
                    control,
                    window_len: input.u16(),
                    sack_ranges: [sack, None, None],
                    payload_len: len,
                    ..Repr::default()
                };
                conn.handle_segment(now, &repr, &payload[..len]);
                if seq == their_seq {
                    their_seq += repr.segment_len();
                }
            }
            4 => {
                let n = usize::from(input.u16()) % payload.len();
                conn.send(&payload[..n]);
            }
            5 => {
                let n = usize::from(input.u16()) % out.len();
                conn.recv(&mut out[..n]);
            }
            6 => match input.u8() % 5 {
                0 => conn.accept(now),
                1 => conn.refuse(now),
                2 => conn.close(now),
                3 => conn.abort(now),
                _ => {
                    let n = usize::from(input.u16());
                    conn.consume(n);
                }
            },
            7 => {
                now = now + std::time::Duration::from_millis(u64::from(input.u16()));
                if conn.poll_timeout().is_some_and(|t| t <= now) {
                    conn.handle_timeout(now);
                }
            }
            _ => {
                let mut count = 0;
                while let Some(segment) = conn.poll_transmit(now) {
                    assert_eq!(
                        segment.payload.0.len() + segment.payload.1.len(),
                        segment.repr.payload_len
                    );
                    if segment.repr.control.syn() {
                        our_seq = segment.repr.seq_number + 1usize;
                    }
                    count += 1;
                    assert!(count < 100_000, "poll_transmit never ends");
                }
            }
        }
        while conn.poll_event().is_some() {}
        assert!(conn.send_queued() <= config.send_buffer);
        assert!(conn.recv_queued() <= config.recv_buffer);
        assert!(conn.buffer_memory() <= config.send_buffer + config.recv_buffer);
        if conn.state() == State::Closed {
            assert!(conn.poll_timeout().is_none());
        }
    }
});
