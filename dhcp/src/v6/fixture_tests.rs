//! DHCPv6 as real peers speak it: ISC dhclient's messages and dnsmasq's answers
//! (`fixtures/dhclient6.pcap`) parse option by option and re-emit to their own bytes, and our
//! server answers dhclient's messages.

use crate::fixtures::{DHCLIENT6, payload6};
use crate::v6::config::{Config, nth};
use crate::v6::message::{DhcpOption, MessageType, Packet, Repr, code, dns_servers, requested};
use crate::v6::{DropReason, Server};
use core::net::Ipv6Addr;
use stack::wire::EthernetAddress;

fn repr(bytes: &[u8]) -> Repr<'_> {
    Repr::parse(&Packet::new_checked(bytes).unwrap()).unwrap()
}

const TYPES: [MessageType; 8] = [
    MessageType::InformationRequest,
    MessageType::Reply,
    MessageType::Solicit,
    MessageType::Advertise,
    MessageType::Request,
    MessageType::Reply,
    MessageType::Release,
    MessageType::Reply,
];

#[test]
fn every_message_parses_and_re_emits_to_its_bytes() {
    for (i, want) in TYPES.iter().enumerate() {
        let (_, bytes) = payload6(DHCLIENT6, i);
        let r = repr(bytes);
        assert_eq!(r.msg_type, *want, "frame {i}");
        assert!(r.options.iter().all(|o| o.is_ok()), "frame {i}: {r:?}");
        assert_eq!(r.emit(), bytes, "frame {i}");
    }
}

#[test]
fn what_dhclient_and_dnsmasq_say() {
    let (mac, inform) = payload6(DHCLIENT6, 0);
    assert_eq!(mac, EthernetAddress([0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xee]));
    let r = repr(inform);
    assert_eq!(r.transaction_id, 0x7b_23c6);
    assert_eq!(
        r.options.find(code::CLIENTID),
        Some(DhcpOption::ClientId(&[
            0, 3, 0, 1, 0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xee
        ]))
    );
    let Some(DhcpOption::Oro(oro)) = r.options.find(code::ORO) else {
        panic!("no ORO");
    };
    let asked: Vec<u16> = requested(oro).collect();
    assert!(asked.contains(&code::DNS_SERVERS) && asked.contains(&code::DOMAIN_LIST));
    // dnsmasq's answer: DNS server, search list (uncompressed, RFC 8415 §10).
    let (_, reply) = payload6(DHCLIENT6, 1);
    let r = repr(reply);
    let Some(DhcpOption::DnsServers(dns)) = r.options.find(code::DNS_SERVERS) else {
        panic!("no DNS servers");
    };
    let fd00_1: Ipv6Addr = "fd00:127::1".parse().unwrap();
    assert_eq!(dns_servers(dns).collect::<Vec<_>>(), [fd00_1]);
    assert_eq!(
        r.options.find(code::DOMAIN_LIST),
        Some(DhcpOption::DomainList(b"\x0acontainers\x08internal\x00"))
    );
    // The Advertise: one IA_NA with the address dnsmasq picked.
    let (_, advertise) = payload6(DHCLIENT6, 3);
    let r = repr(advertise);
    let Some(DhcpOption::IaNa {
        iaid, t1, options, ..
    }) = r.options.find(code::IA_NA)
    else {
        panic!("no IA_NA");
    };
    assert_eq!((iaid, t1), (4_024_700_142, 1800));
    let Some(DhcpOption::IaAddr { addr, valid, .. }) = options.find(code::IAADDR) else {
        panic!("no IA address");
    };
    assert_eq!(
        (addr, valid),
        ("fd00:127::13d".parse::<Ipv6Addr>().unwrap(), 3600)
    );
}

#[test]
fn our_server_answers_dhclient() {
    let prefix: Ipv6Addr = "fd00:127::".parse().unwrap();
    let gateway = EthernetAddress([0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xdd]);
    let guest = EthernetAddress([0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xee]);
    let mut config = Config::for_prefix(prefix, gateway, guest);
    config.dns_servers = vec![nth(prefix, 1)];
    config.search_domains = vec!["containers.internal".into()];
    let mut server = Server::new(config).unwrap();
    let now = std::time::Instant::now();
    // The Information-request.
    let (mac, inform) = payload6(DHCLIENT6, 0);
    let r = server.handle(now, mac, inform).unwrap();
    let ours = repr(&r);
    assert_eq!(ours.msg_type, MessageType::Reply);
    assert_eq!(ours.transaction_id, 0x7b_23c6);
    let theirs = repr(payload6(DHCLIENT6, 1).1);
    assert_eq!(
        ours.options.find(code::DNS_SERVERS),
        theirs.options.find(code::DNS_SERVERS)
    );
    assert_eq!(
        ours.options.find(code::DOMAIN_LIST),
        theirs.options.find(code::DOMAIN_LIST)
    );
    // The Solicit: an Advertise with the static lease of this MAC.
    let (mac, solicit) = payload6(DHCLIENT6, 2);
    let advertise = server.handle(now, mac, solicit).unwrap();
    let ours = repr(&advertise);
    assert_eq!(ours.msg_type, MessageType::Advertise);
    let Some(DhcpOption::IaNa { iaid, options, .. }) = ours.options.find(code::IA_NA) else {
        panic!("no IA_NA");
    };
    assert_eq!(iaid, 4_024_700_142);
    assert!(matches!(
        options.find(code::IAADDR),
        Some(DhcpOption::IaAddr { addr, .. }) if addr == nth(prefix, 2)
    ));
    // The Request names dnsmasq's server identifier: not ours, so not ours to answer.
    let (mac, request) = payload6(DHCLIENT6, 4);
    assert!(server.handle(now, mac, request).is_none());
    assert_eq!(server.stats().dropped.get(DropReason::ForeignServer), 1);
}
