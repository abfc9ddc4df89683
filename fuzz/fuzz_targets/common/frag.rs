//! Shared by `frag_v4` and `frag_v6`: decodes the input into a sequence of fragments (crafted
//! from a few fields, or raw packets, or replays) and clock steps, drives a
//! `stack::frag::Reassembler` with them and checks its invariants after every step.
//!
//! Record format, repeated: an op byte, then its operands (zeros once the input runs out).
//! - op % 4 == 0: a crafted fragment: ident (1 byte, few values so fragments meet), offset
//!   (2 bytes, 8-byte units), flags (1 byte: bit 0 more, bit 1 an extra header), length
//!   (2 bytes, modulo 2048), fill byte.
//! - op % 4 == 1: a raw packet: length (2 bytes, little-endian), then that many bytes.
//! - op % 4 == 2: the clock advances by (2 bytes) × 10 ms; timeouts run, notices drained.
//! - op % 4 == 3: the previous packet again (a duplicate).
//! The first byte picks the limits: the defaults, or small ones that are hit quickly.

use stack::frag::{Config, FragDropReason, Reassembler};
use stack::time::Instant;
use std::time::Duration;

pub struct Bytes<'a>(pub &'a [u8]);

impl<'a> Bytes<'a> {
    pub fn u8(&mut self) -> u8 {
        let (first, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        *first
    }
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What a crafted fragment is made of; the family's target turns it into a packet.
pub struct Fields<'a> {
    pub ident: u8,
    pub offset: u16,
    pub more: bool,
    pub extra_header: bool,
    pub data: &'a [u8],
}

pub fn run(data: &[u8], craft: fn(&Fields<'_>) -> Vec<u8>, check: fn(&[u8])) {
    let mut input = Bytes(data);
    let config = if input.u8() & 1 == 0 {
        Config::default()
    } else {
        Config {
            max_datagrams: 4,
            max_bytes: 80 * 1024,
            max_datagram_len: 65535,
            max_fragments: 12,
            timeout_v4: Duration::from_secs(30),
            timeout_v6: Duration::from_secs(60),
        }
    };
    let mut r = Reassembler::new(config);
    let mut now = Instant::ZERO;
    let mut last: Vec<u8> = Vec::new();
    let mut steps = 0;
    while !input.is_empty() && steps < 4096 {
        steps += 1;
        let packet = match input.u8() % 4 {
            0 => {
                let ident = input.u8() % 4;
                let offset = input.u16().wrapping_mul(8);
                let flags = input.u8();
                let len = usize::from(input.u16() % 2048);
                let byte = input.u8();
                let data = vec![byte; len];
                craft(&Fields {
                    ident,
                    offset,
                    more: flags & 1 != 0,
                    extra_header: flags & 2 != 0,
                    data: &data,
                })
            }
            1 => {
                let len = usize::from(input.u16());
                input.take(len).to_vec()
            }
            2 => {
                now = now + Duration::from_millis(u64::from(input.u16()) * 10);
                if let Some(deadline) = r.poll_timeout() {
                    assert!(deadline > Instant::ZERO);
                }
                r.handle_timeout(now);
                while let Some(notice) = r.poll_expired() {
                    assert!(!notice.quote.is_empty() && notice.quote.len() <= 1232);
                }
                continue;
            }
            _ => last.clone(),
        };
        let before = r.stats();
        match r.handle(now, &packet) {
            Ok(Some(done)) => check(done.packet()),
            Ok(None) => {}
            Err(reason) => {
                assert!(reason.index() < FragDropReason::COUNT);
                assert_eq!(r.stats().dropped(reason), before.dropped(reason) + 1);
            }
        }
        let stats = r.stats();
        assert!(stats.bytes_held <= config.max_bytes);
        assert!(stats.peak_bytes_held <= config.max_bytes);
        assert!(stats.datagrams <= config.max_datagrams);
        last = packet;
    }
    // Everything expires; the accounting returns to zero.
    r.handle_timeout(now + Duration::from_secs(120));
    let stats = r.stats();
    assert_eq!((stats.datagrams, stats.bytes_held), (0, 0));
    assert_eq!(r.poll_timeout(), None);
}
