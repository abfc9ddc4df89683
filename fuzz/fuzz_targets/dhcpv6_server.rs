//! The DHCPv6 server (`dhcp::v6::Server::handle`, host-switch's layout of a /64 with a pool of
//! 16) on a sequence of arbitrary messages from a few MACs, with a clock that advances. Record
//! format, repeated: the MAC's last byte (1 byte), length (2 bytes, little-endian), that many
//! bytes of UDP payload, then seconds to advance (1 byte). Nothing may panic; every reply
//! re-parses whole, every option in it included, as an Advertise or Reply with the request's
//! transaction id and our server identifier; bindings stay within the pool and the static
//! leases.
#![no_main]

use dhcp::v6::{Config, DhcpOption, MessageType, Packet, Repr, Server};
use libfuzzer_sys::fuzz_target;
use stack::wire::EthernetAddress;
use std::time::{Duration, Instant};

fuzz_target!(|data: &[u8]| {
    let gateway = EthernetAddress([0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xdd]);
    let guest = EthernetAddress([0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xee]);
    let prefix = "fd9d:b9a2:e1c4:127::"
        .parse()
        .unwrap_or(std::net::Ipv6Addr::UNSPECIFIED);
    let mut config = Config::for_prefix(prefix, gateway, guest);
    config.pool_end = dhcp::v6::config::nth(config.prefix, 0x10f);
    config.search_domains = vec!["containers.internal".to_owned()];
    let duid = config.server_duid.clone();
    let Ok(mut server) = Server::new(config) else {
        panic!("the configuration is valid");
    };
    let mut now = Instant::now();
    let mut rest = data;
    let mut steps = 0;
    while rest.len() >= 3 && steps < 256 {
        steps += 1;
        let mac = if rest[0] == 0xee {
            guest
        } else {
            EthernetAddress([2, 0, 0, 0, 0, rest[0] & 7])
        };
        let len = usize::from(u16::from_le_bytes([rest[1], rest[2]]));
        let body = &rest[3..];
        let (request, after) = body.split_at(len.min(body.len()));
        if let Some(reply) = server.handle(now, mac, request) {
            let repr = Repr::parse(&Packet::new_checked(&reply[..]).expect("a reply's header"))
                .expect("a reply parses");
            assert!(matches!(
                repr.msg_type,
                MessageType::Advertise | MessageType::Reply
            ));
            let asked = Repr::parse(&Packet::new_checked(request).expect("it was answered"))
                .expect("it was answered");
            assert_eq!(repr.transaction_id, asked.transaction_id);
            assert!(
                repr.options.iter().all(|o| o.is_ok()),
                "every option parses"
            );
            assert_eq!(
                repr.options.find(dhcp::v6::message::code::SERVERID),
                Some(DhcpOption::ServerId(&duid))
            );
        }
        let (&step, after) = after.split_first().unwrap_or((&0, &[]));
        now += Duration::from_secs(u64::from(step) * 60);
        server.handle_timeout(now);
        rest = after;
    }
    let stats = server.stats();
    assert!(stats.leases <= 17, "{stats:?}");
    assert!(server.leases().len() <= 17);
});
