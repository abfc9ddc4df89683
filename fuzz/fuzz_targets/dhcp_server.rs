//! The DHCP server (`dhcp::Server::handle`) on a sequence of arbitrary requests with a clock
//! that advances between them. The first byte picks the offer bounds: the defaults, or a few
//! offers in all and per MAC, which a handful of DISCOVERs reach. Then records, repeated:
//! length (2 bytes, little-endian), that many bytes of UDP payload, then seconds to advance
//! (1 byte). Nothing may panic; every reply re-parses as a BOOTREPLY of the message type it
//! claims; the leases listed stay within the pool's size; outstanding offers never pass their
//! bound, and an INIT-REBOOT (REQUEST without server identifier or `ciaddr`) from a client
//! with no binding before it is never ACKed.
#![no_main]

use dhcp::message::{MessageType, Op, Packet, Repr};
use dhcp::{Config, Server};
use libfuzzer_sys::fuzz_target;
use stack::wire::EthernetAddress;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// The default configuration's static lease.
const STATIC_MAC: EthernetAddress = EthernetAddress([0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xee]);

fuzz_target!(|data: &[u8]| {
    let Some((&selector, data)) = data.split_first() else {
        return;
    };
    let config = if selector & 1 == 0 {
        Config::default()
    } else {
        Config {
            max_offers: usize::from(selector >> 4) + 1,
            max_offers_per_mac: usize::from((selector >> 1) & 7) + 1,
            ..Config::default()
        }
    };
    let max_offers = config.max_offers;
    let Ok(mut server) = Server::new(config) else {
        panic!("the configuration is valid");
    };
    let start = Instant::now();
    let mut now = start;
    // Client hardware addresses and identifiers that have been given an address (offered or
    // ACKed): the server may know them.
    let mut known = HashSet::new();
    let mut known_ids: HashSet<Vec<u8>> = HashSet::new();
    let mut rest = data;
    let mut steps = 0;
    while rest.len() >= 2 && steps < 256 {
        steps += 1;
        let len = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
        let body = &rest[2..];
        let (request, after) = body.split_at(len.min(body.len()));
        let asked = Packet::new_checked(request)
            .ok()
            .and_then(|p| Repr::parse(&p).ok());
        if let Some(reply) = server.handle(now, request) {
            let packet = Packet::new_checked(&reply.payload[..]).expect("reply is a DHCP packet");
            let repr = Repr::parse(&packet).expect("reply re-parses");
            assert_eq!(repr.op, Op::Reply);
            assert_eq!(repr.message_type, reply.message_type);
            if let Some(req) = &asked
                && req.message_type == MessageType::Request
                && req.server_id.is_none()
                && req.ciaddr.is_unspecified()
                && !known.contains(&req.chaddr)
                && req
                    .client_id
                    .as_ref()
                    .is_none_or(|id| !known_ids.contains(id))
                && req.chaddr != STATIC_MAC
            {
                assert_ne!(
                    repr.message_type,
                    MessageType::Ack,
                    "an unknown client ACKed"
                );
            }
            if matches!(repr.message_type, MessageType::Offer | MessageType::Ack)
                && let Some(req) = asked
            {
                known.insert(req.chaddr);
                known_ids.extend(req.client_id);
            }
        }
        assert!(server.stats().offers_outstanding <= max_offers);
        let (&step, after) = after.split_first().unwrap_or((&0, &[]));
        now += Duration::from_secs(u64::from(step));
        server.handle_timeout(now);
        rest = after;
    }
    assert!(server.leases().len() <= 256);
    let _ = server.stats();
    let _ = server.poll_timeout();
});
