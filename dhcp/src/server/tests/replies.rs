//! What replies carry and where they go: options chosen by the parameter request list,
//! trimming to the client's maximum message size, the broadcast bit, relays, host names.

use super::*;

#[test]
fn init_discover_with_broadcast_flag_is_broadcast() {
    let mut net = Net::new(Config::default());
    let mut req = discover(mac(1));
    req.broadcast = true;
    let (reply, offer) = net.send(&req).unwrap();
    assert!(offer.broadcast);
    assert_eq!(reply.destination, Destination::Broadcast);
    assert_eq!(reply.destination.ip(), Ipv4Addr::BROADCAST);
    assert_eq!(reply.destination.mac(), Some(EthernetAddress::BROADCAST));
}

#[test]
fn parameter_request_list_selects_optional_options() {
    let mut net = Net::new(Config {
        domain_name: Some("example.internal".into()),
        search_domains: vec!["example.internal".into(), "corp.example".into()],
        ..Config::default()
    });
    let (_, all) = net.send(&discover(mac(1))).unwrap();
    assert_eq!(all.domain_name.as_deref(), Some("example.internal"));
    assert_eq!(
        all.domain_search.names(),
        ["example.internal", "corp.example"]
    );
    assert_eq!(all.interface_mtu, Some(1500));
    assert_eq!(all.broadcast_address, Some(ip(255)));

    let mut req = discover(mac(2));
    req.parameter_request_list = Some(vec![1, 3, 6]);
    let (_, few) = net.send(&req).unwrap();
    assert_eq!(few.domain_name, None);
    assert!(few.domain_search.is_empty());
    assert_eq!((few.interface_mtu, few.broadcast_address), (None, None));
    // The essentials are sent whatever the list says.
    assert!(few.subnet_mask.is_some() && !few.routers.is_empty() && !few.dns_servers.is_empty());
    assert!(few.lease_time.is_some() && few.server_id.is_some());
}

#[test]
fn small_max_message_size_sheds_optional_options() {
    let names: Vec<String> = (0..12)
        .map(|i| format!("{i}-{}.example", "x".repeat(40)))
        .collect();
    let mut net = Net::new(Config {
        search_domains: names,
        ..Config::default()
    });
    let mut req = discover(mac(1));
    req.max_message_size = Some(1500);
    let (reply, big) = net.send(&req).unwrap();
    assert!(reply.payload.len() > message::DEFAULT_MAX_LEN);
    assert_eq!(big.domain_search.names().len(), 12);
    req.max_message_size = None;
    let (reply, small) = net.send(&req).unwrap();
    assert!(reply.payload.len() <= message::DEFAULT_MAX_LEN);
    assert!(small.domain_search.is_empty());
    assert_eq!(small.interface_mtu, Some(1500));
}

/// A configuration with everything at its largest: eight DNS servers, a domain name and a
/// search list far longer than a small link carries, on a link of `mtu` bytes.
fn large_config(mtu: u16) -> Config {
    Config {
        mtu: Some(mtu),
        dns_servers: (10..18).map(ip).collect(),
        domain_name: Some("example.internal".into()),
        search_domains: (0..12)
            .map(|i| format!("{i}-{}.example", "x".repeat(40)))
            .collect(),
        ..Config::default()
    }
}

#[test]
fn small_link_mtu_bounds_the_reply() {
    let mut net = Net::new(large_config(400));
    let mut req = discover(mac(1));
    // The client could take 1500 bytes; the link carries 400-byte datagrams.
    req.max_message_size = Some(1500);
    for (reply, repr) in [net.send(&req).unwrap(), {
        let ack = select(mac(1), ip(3));
        net.send(&ack).unwrap()
    }] {
        assert!(reply.payload.len() <= 400 - 28, "{}", reply.payload.len());
        // The required options are all there, whole.
        assert!(repr.server_id.is_some() && repr.lease_time.is_some());
        assert_eq!(repr.subnet_mask, Some(Ipv4Addr::new(255, 255, 255, 0)));
        assert_eq!(repr.routers, [ip(1)]);
        assert_eq!(repr.dns_servers.len(), 8);
        // The search list does not fit; what comes after it in importance and does fit is
        // still sent.
        assert!(repr.domain_search.is_empty());
        assert_eq!(repr.interface_mtu, Some(400));
        assert_eq!(repr.domain_name.as_deref(), Some("example.internal"));
        assert!(repr.renewal_time.is_some() && repr.broadcast_address.is_some());
    }
    // At 1500 bytes everything fits.
    let mut net = Net::new(large_config(1500));
    let (reply, repr) = net.send(&req).unwrap();
    assert!(reply.payload.len() > 400 - 28);
    assert_eq!(repr.domain_search.names().len(), 12);
    // The client's own limit still applies below the MTU: 576 without option 57.
    req.max_message_size = None;
    let (reply, repr) = net.send(&req).unwrap();
    assert!(reply.payload.len() <= message::DEFAULT_MAX_LEN);
    assert!(repr.domain_search.is_empty());
}

#[test]
fn reply_whose_required_options_exceed_the_mtu_is_dropped() {
    // 300 - 28 bytes cannot hold even a bare BOOTP message (300 bytes, RFC 951).
    let mut net = Net::new(large_config(300));
    assert!(net.send(&discover(mac(1))).is_none());
    assert_eq!(net.dropped(DropReason::ReplyTooLarge), 1);
}

#[test]
fn relayed_requests_go_back_to_the_relay() {
    let mut net = Net::new(Config::default());
    let mut req = discover(mac(1));
    req.giaddr = ip(200);
    let (reply, offer) = net.send(&req).unwrap();
    assert_eq!(offer.giaddr, ip(200));
    assert_eq!(reply.destination, Destination::Relay(ip(200)));
    assert_eq!(reply.destination.port(), 67);
    assert_eq!(reply.destination.mac(), None);
    // A relayed NAK has the broadcast bit set (RFC 2131 §4.1).
    let mut req = init_reboot(mac(1), Ipv4Addr::new(10, 0, 0, 1));
    req.giaddr = ip(200);
    let (reply, nak) = net.send(&req).unwrap();
    assert_eq!(nak.message_type, MessageType::Nak);
    assert!(nak.broadcast);
    assert_eq!(reply.destination, Destination::Relay(ip(200)));
    // A relay outside our subnet is not ours to serve.
    let mut req = discover(mac(1));
    req.giaddr = Ipv4Addr::new(10, 1, 1, 1);
    assert!(net.send(&req).is_none());
    assert_eq!(net.dropped(DropReason::WrongSubnet), 1);
}

#[test]
fn hostname_is_recorded() {
    let mut net = Net::new(Config::default());
    let mut req = discover(mac(1));
    req.hostname = Some("guest\0".into());
    net.send(&req).unwrap();
    net.send(&select(mac(1), ip(3))).unwrap();
    let lease = net
        .server
        .leases()
        .into_iter()
        .find(|l| l.ip == ip(3))
        .unwrap();
    assert_eq!(lease.hostname.as_deref(), Some("guest"));
    assert_eq!(bounded(&"é".repeat(200), 255).len(), 254);
}
