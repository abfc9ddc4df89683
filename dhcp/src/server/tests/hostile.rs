//! What a hostile or confused client cannot do: exhaust the outstanding offers from one MAC
//! or from many, or be told off (NAK) for an address it remembers when we know nothing of
//! it (RFC 2131 §4.3.2).

use super::*;

/// A DISCOVER from `mac` with client identifier `id` (option 61).
fn discover_as(mac: EthernetAddress, id: u16) -> Repr {
    let mut r = discover(mac);
    r.client_id = Some([&[0xff][..], &id.to_be_bytes()].concat());
    r
}

#[test]
fn init_discover_flood_from_one_mac_leaves_offers_for_others() {
    let mut net = Net::new(Config::default());
    // 400 DISCOVERs with distinct client identifiers from one MAC.
    for id in 0..400 {
        net.send(&discover_as(mac(1), id));
    }
    let held = net.server.stats().offers_outstanding;
    assert_eq!(held, Config::default().max_offers_per_mac);
    assert_eq!(net.dropped(DropReason::MacOffersFull), 400 - held as u64);
    // A new client still gets its OFFER, and its lease.
    assert_eq!(net.lease(mac(2)), ip(3 + held as u8));
}

#[test]
fn init_discover_flood_from_many_macs_leaves_an_offer_for_the_next() {
    let mut net = Net::new(Config::default());
    for n in 1..=200 {
        net.send(&discover(mac(n)));
    }
    let held = net.server.stats().offers_outstanding;
    assert_eq!(held, Config::default().max_offers);
    assert_eq!(net.server.stats().offers_reclaimed, 200 - held as u64);
    // The next client gets an OFFER at once, and the lease it asks for.
    let (_, offer) = net.send(&discover(mac(201))).expect("an offer");
    let (_, ack) = net.send(&select(mac(201), offer.yiaddr)).unwrap();
    assert_eq!(ack.message_type, MessageType::Ack);
}

#[test]
fn init_reboot_of_an_unknown_client_is_not_answered() {
    let mut net = Net::new(Config::default());
    // No record of this client (say we restarted): silence, so that it falls back to INIT.
    assert!(net.send(&init_reboot(mac(2), ip(77))).is_none());
    assert!(bound(&net).is_empty());
    let stats = net.server.stats();
    assert_eq!((stats.acks, stats.naks), (0, 0));
    assert_eq!(net.dropped(DropReason::UnknownClient), 1);
    // A client we know is answered: ACK for its own address, NAK for another client's.
    let a = net.lease(mac(1));
    let b = net.lease(mac(3));
    let (_, ack) = net.send(&init_reboot(mac(1), a)).unwrap();
    assert_eq!((ack.message_type, ack.yiaddr), (MessageType::Ack, a));
    let (_, nak) = net.send(&init_reboot(mac(1), b)).unwrap();
    assert_eq!(nak.message_type, MessageType::Nak);
    // A wrong network is NAKed whoever asks (RFC 2131 §4.3.2 checks it first).
    let (_, nak) = net
        .send(&init_reboot(mac(4), Ipv4Addr::new(10, 0, 2, 15)))
        .unwrap();
    assert_eq!(nak.message_type, MessageType::Nak);
}

#[test]
fn init_discover_past_max_offers_withdraws_the_oldest() {
    let mut net = Net::new(Config {
        max_offers: 2,
        ..Config::default()
    });
    net.send(&discover(mac(1))).unwrap();
    net.at(1).send(&discover(mac(2))).unwrap();
    // A third client gets its offer; the oldest (mac 1's, ip 3) is withdrawn, counted.
    let (_, offer) = net.at(2).send(&discover(mac(3))).unwrap();
    assert_eq!(offer.yiaddr, ip(5));
    let stats = net.server.stats();
    assert_eq!((stats.offers_outstanding, stats.offers_reclaimed), (2, 1));
    // Asking again for an offer already held is not a new offer.
    net.send(&discover(mac(2))).unwrap();
    assert_eq!(net.server.stats().offers_reclaimed, 1);
    // The client whose offer was withdrawn still gets its address while it is free.
    let (_, ack) = net.send(&select(mac(1), ip(3))).unwrap();
    assert_eq!((ack.message_type, ack.yiaddr), (MessageType::Ack, ip(3)));
}

#[test]
fn init_discover_past_max_offers_per_mac_is_dropped() {
    let mut net = Net::new(Config {
        max_offers_per_mac: 2,
        ..Config::default()
    });
    for id in 0..3u8 {
        let mut req = discover(mac(1));
        req.client_id = Some(vec![0xff, id]);
        let reply = net.send(&req);
        assert_eq!(reply.is_some(), id < 2, "client id {id}");
    }
    assert_eq!(net.dropped(DropReason::MacOffersFull), 1);
    assert!(
        net.send(&discover(mac(2))).is_some(),
        "another MAC is served"
    );
}
