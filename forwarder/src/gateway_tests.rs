use super::testing::*;
use super::*;
use dhcp::{DhcpOp, DhcpRepr, MessageType};
use stack::wire::{Icmpv4Packet, Ipv4Packet};
use stack::wire::{NdpOptions, NdpRepr};
use std::net::Ipv6Addr;
const RELAY_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x50]);
const T0: Instant = Instant::ZERO;

#[test]
fn arp_for_the_gateway_is_answered() {
    let mut gw = gateway();
    let f = reply(gw.handle_frame(T0, &arp_request(GW, GUEST)));
    assert_eq!(f.len(), MIN_FRAME_LEN);
    let (eth, arp) = parse_arp(&f);
    assert_eq!((eth.src_addr, eth.dst_addr), (GW_MAC, GUEST_MAC));
    assert_eq!(eth.ethertype, EtherType::Arp);
    assert_eq!(
        arp,
        ArpRepr {
            operation: ArpOperation::Reply,
            source_hardware_addr: GW_MAC,
            source_protocol_addr: GW,
            target_hardware_addr: GUEST_MAC,
            target_protocol_addr: GUEST,
        }
    );
    assert_eq!(gw.counters().arp_replies, 1);
}

#[test]
fn arp_for_a_virtual_address_is_answered() {
    let mut gw = gateway();
    let (_, arp) = parse_arp(&reply(gw.handle_frame(T0, &arp_request(HOST, GUEST))));
    assert_eq!(arp.source_protocol_addr, HOST);
    assert_eq!(arp.source_hardware_addr, GW_MAC);
    // An RFC 5227 probe (sender 0.0.0.0) for an address we own is answered too.
    let (_, arp) = parse_arp(&reply(
        gw.handle_frame(T0, &arp_request(GW, Ipv4Addr::UNSPECIFIED)),
    ));
    assert_eq!(arp.target_protocol_addr, Ipv4Addr::UNSPECIFIED);
}

#[test]
fn arp_for_other_addresses_is_not_answered() {
    let mut gw = gateway();
    let other = Ipv4Addr::new(192, 168, 127, 3);
    assert_eq!(
        gw.handle_frame(T0, &arp_request(other, GUEST)),
        Outcome::Dropped(DropReason::ArpNotOurs)
    );
    // Gratuitous: sender and target are the same.
    assert_eq!(
        gw.handle_frame(T0, &arp_request(GW, GW)),
        Outcome::Dropped(DropReason::ArpNotOurs)
    );
    let mut rep = arp_request(GUEST, GW);
    rep[ethernet::HEADER_LEN + 7] = 2;
    assert_eq!(
        gw.handle_frame(T0, &rep),
        Outcome::Dropped(DropReason::ArpReply)
    );
    assert_eq!(gw.drops().get(DropReason::ArpNotOurs), 2);
    assert_eq!(gw.drops().get(DropReason::ArpReply), 1);
}

#[test]
fn arp_senders_in_the_subnet_are_reported_as_neighbours() {
    let mut gw = gateway();
    let other = Ipv4Addr::new(192, 168, 127, 3);
    // A request (answered or not) and a reply both tell where their sender is.
    gw.handle_frame(T0, &arp_request(GW, GUEST));
    assert_eq!(gw.take_neighbour(), Some((GUEST.into(), GUEST_MAC)));
    assert_eq!(gw.take_neighbour(), None);
    let mut rep = arp_request(GW, other);
    rep[ethernet::HEADER_LEN + 7] = 2;
    gw.handle_frame(T0, &rep);
    assert_eq!(gw.take_neighbour(), Some((other.into(), GUEST_MAC)));
    // Not a guest: outside the subnet, unspecified, our own addresses, the broadcast.
    for sender in [
        Ipv4Addr::new(10, 0, 0, 2),
        Ipv4Addr::UNSPECIFIED,
        GW,
        HOST,
        Ipv4Addr::new(192, 168, 127, 255),
    ] {
        gw.handle_frame(T0, &arp_request(GW, sender));
        assert_eq!(gw.take_neighbour(), None, "{sender}");
    }
    // A sender hardware address that is not the frame's source is not believed.
    let mut spoof = arp_request(GW, GUEST);
    spoof[ethernet::HEADER_LEN + 8] ^= 0x02;
    gw.handle_frame(T0, &spoof);
    assert_eq!(gw.take_neighbour(), None);
}

#[test]
fn echo_to_the_gateway_is_answered() {
    let mut gw = gateway();
    let data: Vec<u8> = (0..100u8).collect();
    let f = reply(gw.handle_frame(T0, &echo_request(GW, &data)));
    let (eth, body) = split(&f);
    assert_eq!((eth.src_addr, eth.dst_addr), (GW_MAC, GUEST_MAC));
    let ip_packet = Ipv4Packet::new_checked(body).unwrap();
    // parse verifies the IPv4 and ICMP checksums.
    let ip = Ipv4Repr::parse(&ip_packet).unwrap();
    assert_eq!((ip.src_addr, ip.dst_addr), (GW, GUEST));
    assert_eq!(ip.hop_limit, DEFAULT_TTL);
    assert_eq!(ip.next_header, IpProtocol::Icmp);
    let icmp_packet = Icmpv4Packet::new_checked(ip_packet.payload()).unwrap();
    assert_eq!(
        Icmpv4Repr::parse(&icmp_packet).unwrap(),
        Icmpv4Repr::EchoReply {
            ident: 0xbeef,
            seq_no: 7,
            data: &data,
        }
    );
    assert_eq!(gw.counters().echo_replies, 1);
}

/// Reassembles the IPv4 or IPv6 fragments of a reply, each checked to fit a 1500-byte MTU.
fn reassemble_reply(pieces: &[Bytes]) -> Vec<u8> {
    let mut r = stack::frag::Reassembler::new(FragConfig::default());
    let mut whole = None;
    for piece in pieces {
        assert!(
            piece.len() <= ethernet::HEADER_LEN + 1500,
            "{}",
            piece.len()
        );
        let (eth, body) = split(piece);
        assert_eq!((eth.src_addr, eth.dst_addr), (GW_MAC, GUEST_MAC));
        assert!(whole.is_none(), "nothing after the last piece");
        whole = r.handle(T0, body).unwrap();
    }
    whole.expect("the pieces make a whole").into_packet()
}

#[test]
fn a_fragmented_echo_is_reassembled_and_answered_in_fragments() {
    let mut gw = gateway();
    let data: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
    let mut pieces = fragment(&echo_request(GW, &data), 1500);
    assert_eq!(pieces.len(), 3);
    // Out of order: the last fragment first, the first one last.
    pieces.reverse();
    let last = pieces.pop().unwrap();
    for piece in &pieces {
        assert_eq!(gw.handle_frame(T0, piece), Outcome::Held);
    }
    let Outcome::Reassembled(whole) = gw.handle_frame(T0, &last) else {
        panic!("the last fragment completes the datagram");
    };
    assert_eq!(
        &whole[..],
        &echo_request(GW, &data)[..],
        "the datagram as sent"
    );
    // The reply does not fit the 1500-byte MTU either: it goes out in fragments.
    let Outcome::Replies(reply) = gw.handle_frame(T0, &whole) else {
        panic!("a fragmented reply");
    };
    assert_eq!(reply.len(), 3);
    let packet = reassemble_reply(&reply);
    let ip_packet = Ipv4Packet::new_checked(&packet[..]).unwrap();
    assert_eq!(Ipv4Repr::parse(&ip_packet).unwrap().dst_addr, GUEST);
    let icmp = Icmpv4Packet::new_checked(ip_packet.payload()).unwrap();
    let Icmpv4Repr::EchoReply { data: echoed, .. } = Icmpv4Repr::parse(&icmp).unwrap() else {
        panic!("an echo reply");
    };
    assert_eq!(echoed, &data[..]);
    assert_eq!((gw.counters().fragments, gw.counters().reassembled), (3, 1));
    assert_eq!(gw.counters().echo_replies, 1);
    assert_eq!(gw.frag_stats().datagrams, 0, "nothing left held");
}

#[test]
fn an_incomplete_datagram_is_given_up_at_its_timeout() {
    let mut gw = gateway();
    let data = vec![0x55u8; 3000];
    let pieces = fragment(&echo_request(GW, &data), 1500);
    assert_eq!(gw.handle_frame(T0, &pieces[0]), Outcome::Held);
    assert_eq!(gw.frag_stats().datagrams, 1);
    let deadline = gw.poll_timeout().expect("a reassembly timer");
    gw.handle_timeout(deadline);
    assert_eq!(gw.frag_stats().datagrams, 0);
    assert_eq!(gw.frag_stats().bytes_held, 0);
}

#[test]
fn echo_to_the_host_is_a_flow() {
    let mut gw = gateway();
    let Outcome::Flow(flow) = gw.handle_frame(T0, &echo_request(HOST, b"x")) else {
        panic!("expected a flow");
    };
    assert_eq!(flow.key.remote.ip(), HOST);
    assert_eq!(gw.counters().flows, 1);
}

#[test]
fn tcp_anywhere_is_a_flow_but_not_to_the_subnet_broadcast() {
    let mut gw = gateway();
    let tcp = |dst: Ipv4Addr| tcp_syn(dst, 22);
    assert!(matches!(gw.handle_frame(T0, &tcp(GW)), Outcome::Flow(_)));
    assert!(matches!(
        gw.handle_frame(T0, &tcp(Ipv4Addr::new(10, 1, 2, 3))),
        Outcome::Flow(_)
    ));
    assert_eq!(
        gw.handle_frame(T0, &tcp(Ipv4Addr::new(192, 168, 127, 255))),
        Outcome::Dropped(DropReason::BroadcastToNonService)
    );
}

#[test]
fn tcp_to_the_gateways_port_53_is_for_the_dns_service() {
    let mut gw = gateway();
    let Outcome::DnsTcp(flow) = gw.handle_frame(T0, &tcp_syn(GW, DNS_PORT)) else {
        panic!("not DNS over TCP");
    };
    assert_eq!(flow.key.guest.port(), 40000);
    assert_eq!(gw.counters().dns_tcp_segments, 1);
    // Port 53 anywhere else is an ordinary flow.
    assert!(matches!(
        gw.handle_frame(T0, &tcp_syn(Ipv4Addr::new(10, 0, 0, 1), DNS_PORT)),
        Outcome::Flow(_)
    ));
}

#[test]
fn dhcp_offer_broadcast_when_the_client_asks() {
    let mut gw = gateway();
    let mut discover = DhcpRepr::new(DhcpOp::Request, MessageType::Discover, 42, GUEST_MAC);
    discover.broadcast = true;
    let f = reply(gw.handle_frame(T0, &dhcp_frame(GUEST_MAC, Ipv4Addr::UNSPECIFIED, &discover)));
    let (eth, ip, udp, msg) = parse_dhcp(&f);
    assert_eq!(eth.dst_addr, EthernetAddress::BROADCAST);
    assert_eq!(eth.src_addr, GW_MAC);
    assert_eq!((ip.src_addr, ip.dst_addr), (GW, Ipv4Addr::BROADCAST));
    assert_eq!((udp.src_port, udp.dst_port), (67, 68));
    assert_eq!(msg.message_type, MessageType::Offer);
    assert_eq!(msg.yiaddr, GUEST);
    assert_eq!(msg.xid, 42);
    assert_eq!(gw.counters().dhcp_replies, 1);
}

#[test]
fn dhcp_offer_unicast_to_chaddr_without_arp() {
    let mut gw = gateway();
    let discover = DhcpRepr::new(DhcpOp::Request, MessageType::Discover, 43, GUEST_MAC);
    let f = reply(gw.handle_frame(T0, &dhcp_frame(GUEST_MAC, Ipv4Addr::UNSPECIFIED, &discover)));
    let (eth, ip, udp, msg) = parse_dhcp(&f);
    assert_eq!(eth.dst_addr, GUEST_MAC);
    assert_eq!(ip.dst_addr, GUEST);
    assert_eq!(udp.dst_port, 68);
    assert_eq!(msg.yiaddr, GUEST);
}

#[test]
fn dhcp_through_a_relay_goes_to_the_relay() {
    let mut gw = gateway();
    let relay = Ipv4Addr::new(192, 168, 127, 50);
    let mut discover = DhcpRepr::new(
        DhcpOp::Request,
        MessageType::Discover,
        44,
        EthernetAddress([0x02, 0, 0, 0, 0, 0x77]),
    );
    discover.giaddr = relay;
    let f = reply(gw.handle_frame(T0, &dhcp_frame(RELAY_MAC, relay, &discover)));
    let (eth, ip, udp, _msg) = parse_dhcp(&f);
    assert_eq!(eth.dst_addr, RELAY_MAC);
    assert_eq!(ip.dst_addr, relay);
    assert_eq!((udp.src_port, udp.dst_port), (67, 67));
}

#[test]
fn dhcp_garbage_is_counted() {
    let mut gw = gateway();
    let f = frame(
        GUEST_MAC,
        EthernetAddress::BROADCAST,
        EtherType::Ipv4,
        &udp_datagram(Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST, 68, 67, b"junk"),
    );
    assert_eq!(
        gw.handle_frame(T0, &f),
        Outcome::Dropped(DropReason::DhcpNoReply)
    );
    assert_eq!(gw.dhcp_stats().dropped.total(), 1);
}

#[test]
fn config_is_checked() {
    let epoch = Epoch::new(std::time::Instant::now());
    let c = GatewayConfig {
        ip: Ipv4Addr::new(192, 168, 127, 9),
        ..GatewayConfig::default()
    };
    assert!(matches!(
        Gateway::new(c, epoch),
        Err(GatewayError::ServerAddress { .. })
    ));
    let c = GatewayConfig {
        mac: EthernetAddress::BROADCAST,
        ..GatewayConfig::default()
    };
    assert!(matches!(
        Gateway::new(c, epoch),
        Err(GatewayError::BadMac(_))
    ));
}

#[test]
fn link_local_is_the_modified_eui64() {
    assert_eq!(
        gw6(),
        "fe80::5894:efff:fee4:cdd".parse::<Ipv6Addr>().unwrap()
    );
}

#[test]
fn neighbour_solicitation_is_answered() {
    let mut gw = gateway();
    let f = reply(gw.handle_frame(T0, &solicitation(GUEST6, gw6(), 255)));
    parse_icmpv6(&f, |eth, ip, icmp| {
        assert_eq!((eth.src_addr, eth.dst_addr), (GW_MAC, GUEST_MAC));
        assert_eq!((ip.src_addr, ip.dst_addr), (gw6(), GUEST6));
        assert_eq!(ip.hop_limit, 255);
        let Icmpv6Repr::Ndp(NdpRepr::NeighborAdvert {
            router,
            solicited,
            override_entry,
            target_addr,
            options,
        }) = icmp
        else {
            panic!("{icmp:?}");
        };
        assert!(router && solicited && override_entry);
        assert_eq!(target_addr, gw6());
        assert_eq!(options.target_lladdr(), Some(GW_MAC));
    });
    assert_eq!(gw.counters().ndp_replies, 1);
}

#[test]
fn duplicate_address_detection_is_answered_to_all_nodes() {
    let mut gw = gateway();
    let f = reply(gw.handle_frame(T0, &solicitation(Ipv6Addr::UNSPECIFIED, gw6(), 255)));
    parse_icmpv6(&f, |eth, ip, icmp| {
        assert_eq!(eth.dst_addr, EthernetAddress([0x33, 0x33, 0, 0, 0, 1]));
        assert_eq!(ip.dst_addr, ALL_NODES);
        assert!(matches!(
            icmp,
            Icmpv6Repr::Ndp(NdpRepr::NeighborAdvert {
                solicited: false,
                ..
            })
        ));
    });
}

#[test]
fn other_neighbour_discovery_is_dropped() {
    let mut gw = gateway();
    let other: Ipv6Addr = "fe80::99".parse().unwrap();
    assert_eq!(
        gw.handle_frame(T0, &solicitation(GUEST6, other, 255)),
        Outcome::Dropped(DropReason::NdpNotOurs)
    );
    assert_eq!(
        gw.handle_frame(T0, &solicitation(GUEST6, gw6(), 64)),
        Outcome::Dropped(DropReason::Ndp(stack::wire::NdpError::BadHopLimit))
    );
    let rs = Icmpv6Repr::Ndp(NdpRepr::RouterSolicit {
        options: NdpOptions::EMPTY,
    });
    let all_routers: Ipv6Addr = "ff02::2".parse().unwrap();
    let f = icmpv6_frame(
        EthernetAddress([0x33, 0x33, 0, 0, 0, 2]),
        GUEST6,
        all_routers,
        255,
        &rs,
    );
    assert_eq!(
        gw.handle_frame(T0, &f),
        Outcome::Dropped(DropReason::NdpUnhandled)
    );
}

#[test]
fn echo6_to_the_gateway_is_answered() {
    let mut gw = gateway();
    let data = b"ping six";
    let req = Icmpv6Repr::EchoRequest {
        ident: 3,
        seq_no: 4,
        data,
    };
    let f = reply(gw.handle_frame(T0, &icmpv6_frame(GW_MAC, GUEST6, gw6(), 64, &req)));
    parse_icmpv6(&f, |eth, ip, icmp| {
        assert_eq!(eth.dst_addr, GUEST_MAC);
        assert_eq!((ip.src_addr, ip.dst_addr), (gw6(), GUEST6));
        assert_eq!(ip.hop_limit, DEFAULT_TTL);
        assert_eq!(
            icmp,
            Icmpv6Repr::EchoReply {
                ident: 3,
                seq_no: 4,
                data,
            }
        );
    });
    // To another address it is a flow.
    let remote: Ipv6Addr = "2001:db8::1".parse().unwrap();
    assert!(matches!(
        gw.handle_frame(T0, &icmpv6_frame(GW_MAC, GUEST6, remote, 64, &req)),
        Outcome::Flow(_)
    ));
}

#[test]
fn echo6_too_long_for_the_mtu_is_answered_in_fragments() {
    let mut gw = gateway();
    // An oversized frame (or a reassembled one): the reply still fits the MTU.
    let data: Vec<u8> = (0..4000u32).map(|i| (i * 3) as u8).collect();
    let req = Icmpv6Repr::EchoRequest {
        ident: 5,
        seq_no: 6,
        data: &data,
    };
    let Outcome::Replies(pieces) =
        gw.handle_frame(T0, &icmpv6_frame(GW_MAC, GUEST6, gw6(), 64, &req))
    else {
        panic!("a fragmented reply");
    };
    assert_eq!(pieces.len(), 3);
    let packet = reassemble_reply(&pieces);
    let ip = Ipv6Packet::new_checked(&packet[..]).unwrap();
    let addrs = IpAddresses::V6 {
        src: gw6(),
        dst: GUEST6,
    };
    let icmp = Icmpv6Packet::new_checked(ip.payload()).unwrap();
    assert_eq!(
        Icmpv6Repr::parse(&icmp, &addrs).unwrap(),
        Icmpv6Repr::EchoReply {
            ident: 5,
            seq_no: 6,
            data: &data,
        }
    );
}

#[test]
fn echo_reply_to_the_gateway_and_overlapping_fragments_are_dropped() {
    let mut gw = gateway();
    let icmp = Icmpv4Repr::EchoReply {
        ident: 1,
        seq_no: 1,
        data: b"x",
    };
    let mut b = vec![0u8; icmp.buffer_len()];
    icmp.emit(&mut Icmpv4Packet::new_unchecked(&mut b[..]));
    let f = frame(
        GUEST_MAC,
        GW_MAC,
        EtherType::Ipv4,
        &ipv4(GUEST, GW, IpProtocol::Icmp, &b),
    );
    assert_eq!(
        gw.handle_frame(T0, &f),
        Outcome::Dropped(DropReason::IcmpNotEcho)
    );
    let mut f = echo_request(GW, b"0123456789abcdef");
    {
        let mut p = Ipv4Packet::new_unchecked(&mut f[ethernet::HEADER_LEN..]);
        p.set_fragment(false, false, 16);
        p.fill_checksum();
    }
    // A lone last fragment waits for the rest; the same fragment with other bytes overlaps
    // it and the whole datagram is dropped (RFC 5722's rule, applied to IPv4 too).
    assert_eq!(gw.handle_frame(T0, &f), Outcome::Held);
    let last = f.len() - 1;
    f[last] ^= 0xff;
    assert_eq!(
        gw.handle_frame(T0, &f),
        Outcome::Dropped(DropReason::Fragment)
    );
    assert_eq!(gw.drops().total(), 2);
}

#[test]
fn dns_to_the_gateway_is_for_the_dns_service_and_its_answer_is_framed() {
    let mut gw = gateway();
    let Outcome::Dns(query) = gw.handle_frame(T0, &dns_frame(GW, b"query")) else {
        panic!("not a DNS query");
    };
    assert_eq!(query.client.mac, GUEST_MAC);
    assert_eq!(query.client.addr, SocketAddr::new(IpAddr::V4(GUEST), 5353));
    assert_eq!(query.client.server, IpAddr::V4(GW));
    assert_eq!(&query.payload[..], b"query");
    assert_eq!(gw.counters().dns_queries, 1);
    // DNS to anyone else is an ordinary flow.
    assert!(matches!(
        gw.handle_frame(T0, &dns_frame(Ipv4Addr::new(10, 0, 0, 1), b"q")),
        Outcome::Flow(_)
    ));

    let answer = dns_reply_frame(GW_MAC, &query.client, 7, b"answer");
    let (eth, body) = split(&answer);
    assert_eq!((eth.src_addr, eth.dst_addr), (GW_MAC, GUEST_MAC));
    let ip = Ipv4Packet::new_checked(body).unwrap();
    let ipr = Ipv4Repr::parse(&ip).unwrap();
    assert_eq!((ipr.src_addr, ipr.dst_addr), (GW, GUEST));
    let udp = UdpPacket::new_checked(ip.payload()).unwrap();
    let addrs = IpAddresses::V4 {
        src: GW,
        dst: GUEST,
    };
    let repr = UdpRepr::parse(&udp, &addrs).unwrap();
    assert_eq!((repr.src_port, repr.dst_port), (DNS_PORT, 5353));
    assert_eq!(udp.payload(), b"answer");
}
