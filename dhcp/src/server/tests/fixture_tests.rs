//! The captured udhcpc and dhclient exchanges (`src/fixtures/`) replayed against the server.

use super::{Net, STATIC_MAC, ip};
use crate::fixtures::{self, DHCLIENT, UDHCPC};
use crate::message::{self, MessageType, Packet, Repr};
use crate::server::Destination;
use crate::{Config, DropReason};
use core::net::Ipv4Addr;
use stack::wire::EthernetAddress;

const DHCLIENT_MAC: EthernetAddress = EthernetAddress([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);

fn config() -> Config {
    Config {
        domain_name: Some("example.internal".into()),
        search_domains: vec!["example.internal".into()],
        ..Config::default()
    }
}

fn request(pcap: &'static [u8], index: usize) -> Repr {
    Repr::parse(&Packet::new_checked(fixtures::payload(pcap, index)).unwrap()).unwrap()
}

/// Checks what every OFFER and ACK to a captured client carries.
fn check_configuration(reply: &Repr, req: &Repr) {
    assert_eq!(reply.xid, req.xid);
    assert_eq!(reply.chaddr, req.chaddr);
    assert_eq!(reply.broadcast, req.broadcast);
    assert_eq!(reply.server_id, Some(ip(1)));
    assert_eq!(reply.lease_time, Some(3600));
    assert_eq!(reply.subnet_mask, Some(Ipv4Addr::new(255, 255, 255, 0)));
    assert_eq!(reply.routers, [ip(1)]);
    assert_eq!(reply.dns_servers, [ip(1)]);
    assert_eq!(reply.domain_name.as_deref(), Some("example.internal"));
    assert_eq!(reply.broadcast_address, Some(ip(255)));
    assert_eq!(reply.client_id, req.client_id);
}

#[test]
fn udhcpc_exchange() {
    let mut net = Net::new(config());
    // DISCOVER: the static lease's MAC is offered its address.
    let discover = request(UDHCPC, 0);
    let (reply, offer) = net.raw(fixtures::payload(UDHCPC, 0)).unwrap();
    assert_eq!(offer.message_type, MessageType::Offer);
    assert_eq!(offer.yiaddr, ip(2));
    check_configuration(&offer, &discover);
    // udhcpc asks for neither the MTU nor the search list.
    assert_eq!(offer.interface_mtu, None);
    assert!(offer.domain_search.is_empty());
    assert_eq!(
        reply.destination,
        Destination::Client {
            ip: ip(2),
            mac: STATIC_MAC
        }
    );
    assert!(reply.payload.len() <= usize::from(discover.max_message_size.unwrap()) - 28);

    // REQUEST (selecting).
    let req = request(UDHCPC, 2);
    let (_, ack) = net.raw(fixtures::payload(UDHCPC, 2)).unwrap();
    assert_eq!(ack.message_type, MessageType::Ack);
    assert_eq!(ack.yiaddr, ip(2));
    check_configuration(&ack, &req);
    let leases = net.server.leases();
    assert_eq!((leases[0].ip, leases[0].mac), (ip(2), STATIC_MAC));
    assert_eq!(leases[0].hostname.as_deref(), Some("hs-guest"));
    assert!(leases[0].expires.is_some());

    // REQUEST (renewing, unicast from .2): ACKed back to `ciaddr`.
    let req = request(UDHCPC, 4);
    let (reply, ack) = net.raw(fixtures::payload(UDHCPC, 4)).unwrap();
    assert_eq!(ack.message_type, MessageType::Ack);
    assert_eq!((ack.ciaddr, ack.yiaddr), (ip(2), ip(2)));
    check_configuration(&ack, &req);
    assert_eq!(reply.destination.ip(), ip(2));

    // RELEASE: no reply, the lease is gone (the static lease stays listed, unbound).
    assert!(net.raw(fixtures::payload(UDHCPC, 6)).is_none());
    let leases = net.server.leases();
    assert_eq!(leases.len(), 1);
    assert_eq!(leases[0].expires, None);
    let stats = net.server.stats();
    assert_eq!((stats.offers, stats.acks, stats.leases_released), (1, 2, 1));
    assert_eq!(stats.dropped.total(), 0);
}

#[test]
fn udhcpc_discover_from_a_pool_mac() {
    let mut net = Net::new(config());
    let mut bytes = fixtures::payload(UDHCPC, 0).to_vec();
    // Another MAC in chaddr (the client identifier still names the static MAC, as it would if
    // the MAC were changed after udhcpc built it; only chaddr picks static leases).
    bytes[28 + 5] = 0x01;
    let (_, offer) = net.raw(&bytes).unwrap();
    assert_eq!(offer.yiaddr, ip(3));
}

#[test]
fn udhcpc_discover_with_broadcast_flag() {
    let mut net = Net::new(config());
    let mut bytes = fixtures::payload(UDHCPC, 0).to_vec();
    bytes[10] |= 0x80;
    let (reply, offer) = net.raw(&bytes).unwrap();
    assert!(offer.broadcast);
    assert_eq!(reply.destination, Destination::Broadcast);
}

#[test]
fn dhclient_exchange() {
    let mut net = Net::new(config());
    let discover = request(DHCLIENT, 0);
    let (reply, offer) = net.raw(fixtures::payload(DHCLIENT, 0)).unwrap();
    assert_eq!(offer.message_type, MessageType::Offer);
    assert_eq!(offer.yiaddr, ip(3));
    check_configuration(&offer, &discover);
    // dhclient asks for the MTU and the search list.
    assert_eq!(offer.interface_mtu, Some(1500));
    assert_eq!(offer.domain_search.names(), ["example.internal"]);
    assert_eq!(
        reply.destination,
        Destination::Client {
            ip: ip(3),
            mac: DHCLIENT_MAC
        }
    );
    assert!(reply.payload.len() <= message::DEFAULT_MAX_LEN);

    // Its REQUEST names udhcpd's offer of .148, which is free here: we are authoritative and
    // grant it, giving up our own offer.
    let req = request(DHCLIENT, 2);
    let (_, ack) = net.raw(fixtures::payload(DHCLIENT, 2)).unwrap();
    assert_eq!(ack.message_type, MessageType::Ack);
    assert_eq!(ack.yiaddr, ip(148));
    check_configuration(&ack, &req);
    assert_eq!(net.server.stats().offers_outstanding, 0);

    // INIT-REBOOT with the same address: ACKed.
    let req = request(DHCLIENT, 4);
    let (reply, ack) = net.raw(fixtures::payload(DHCLIENT, 4)).unwrap();
    assert_eq!(ack.message_type, MessageType::Ack);
    assert_eq!(ack.yiaddr, ip(148));
    check_configuration(&ack, &req);
    assert_eq!(reply.destination.ip(), ip(148));
    let leases = net.server.leases();
    let lease = leases.iter().find(|l| l.ip == ip(148)).unwrap();
    assert_eq!(lease.mac, DHCLIENT_MAC);
    assert_eq!(lease.hostname.as_deref(), Some("vm"));
}

#[test]
fn dhclient_init_reboot_for_a_taken_address() {
    let mut net = Net::new(config());
    // Someone else holds .148 (SELECTING, naming us).
    let mut other = request(DHCLIENT, 4);
    other.chaddr = EthernetAddress([2, 0, 0, 0, 0, 9]);
    other.client_id = None;
    other.server_id = Some(ip(1));
    let (_, ack) = net.raw(&other.to_bytes().unwrap()).unwrap();
    assert_eq!(ack.message_type, MessageType::Ack);
    // dhclient, of which we have no record, is not answered (RFC 2131 §4.3.2) ...
    assert!(net.raw(fixtures::payload(DHCLIENT, 4)).is_none());
    assert_eq!(net.dropped(DropReason::UnknownClient), 1);
    // ... and once it holds another address, it is told off.
    let mut known = request(DHCLIENT, 4);
    known.requested_ip = Some(ip(150));
    known.server_id = Some(ip(1));
    let (_, ack) = net.raw(&known.to_bytes().unwrap()).unwrap();
    assert_eq!((ack.message_type, ack.yiaddr), (MessageType::Ack, ip(150)));
    let (reply, nak) = net.raw(fixtures::payload(DHCLIENT, 4)).unwrap();
    assert_eq!(nak.message_type, MessageType::Nak);
    assert_eq!(reply.destination, Destination::Broadcast);
}

#[test]
fn server_replies_in_the_captures_are_ignored() {
    let mut net = Net::new(config());
    for (pcap, index) in [(UDHCPC, 1), (UDHCPC, 3), (DHCLIENT, 1), (DHCLIENT, 5)] {
        assert!(net.raw(fixtures::payload(pcap, index)).is_none());
    }
    assert_eq!(net.server.stats().dropped.get(DropReason::NotRequest), 4);
}

#[test]
fn truncated_captured_requests_are_dropped() {
    for (pcap, index) in [
        (UDHCPC, 0),
        (UDHCPC, 2),
        (UDHCPC, 4),
        (DHCLIENT, 0),
        (DHCLIENT, 4),
    ] {
        let bytes = fixtures::payload(pcap, index);
        let mut net = Net::new(config());
        // Anything shorter than the End option is refused.
        let end = bytes.iter().rposition(|&b| b == 255).unwrap();
        for cut in 0..end {
            assert!(net.raw(&bytes[..cut]).is_none(), "cut at {cut}");
        }
        assert_eq!(net.server.stats().dropped.malformed(), end as u64);
    }
}
