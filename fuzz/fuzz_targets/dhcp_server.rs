//! The DHCP server (`dhcp::Server::handle`, default configuration) on a sequence of arbitrary
//! requests with a clock that advances between them. Record format, repeated: length (2 bytes,
//! little-endian), that many bytes of UDP payload, then seconds to advance (1 byte). Nothing
//! may panic; every reply re-parses as a BOOTREPLY of the message type it claims; the leases
//! listed stay within the pool's size.
#![no_main]

use dhcp::message::{Op, Packet, Repr};
use dhcp::{Config, Server};
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};

fuzz_target!(|data: &[u8]| {
    let Ok(mut server) = Server::new(Config::default()) else {
        panic!("the default configuration is valid");
    };
    let start = Instant::now();
    let mut now = start;
    let mut rest = data;
    let mut steps = 0;
    while rest.len() >= 2 && steps < 256 {
        steps += 1;
        let len = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
        let body = &rest[2..];
        let (request, after) = body.split_at(len.min(body.len()));
        if let Some(reply) = server.handle(now, request) {
            let packet = Packet::new_checked(&reply.payload[..]).expect("reply is a DHCP packet");
            let repr = Repr::parse(&packet).expect("reply re-parses");
            assert_eq!(repr.op, Op::Reply);
            assert_eq!(repr.message_type, reply.message_type);
        }
        let (&step, after) = after.split_first().unwrap_or((&0, &[]));
        now += Duration::from_secs(u64::from(step));
        server.handle_timeout(now);
        rest = after;
    }
    assert!(server.leases().len() <= 256);
    let _ = server.stats();
    let _ = server.poll_timeout();
});
