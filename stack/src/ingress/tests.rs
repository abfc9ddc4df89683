use super::*;
use crate::wire::{
    ArpError, ArpOperation, EthernetAddress, EthernetError, Icmpv4DstUnreachable, Icmpv4Error,
    Icmpv6Error, Ipv4Error, Ipv6ChainError, Ipv6Error, NdpError, NdpOption, NdpOptions, NdpRepr,
    TcpControl, TcpError, TcpSeqNumber, UdpError, arp, ethernet, icmpv4, ipv4, tcp, udp,
};
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const GW_MAC: EthernetAddress = EthernetAddress([0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xdd]);
const GUEST_MAC: EthernetAddress = EthernetAddress([0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xee]);
const OTHER_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 9]);
const GUEST: Ipv4Addr = Ipv4Addr::new(192, 168, 127, 2);
const GW: Ipv4Addr = Ipv4Addr::new(192, 168, 127, 1);
const HOST: Ipv4Addr = Ipv4Addr::new(192, 168, 127, 254);

fn eth(dst: EthernetAddress, ethertype: EtherType, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; ethernet::HEADER_LEN + payload.len()];
    let repr = EthernetRepr {
        src_addr: GUEST_MAC,
        dst_addr: dst,
        ethertype,
    };
    repr.emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
    f[ethernet::HEADER_LEN..].copy_from_slice(payload);
    f
}

fn ip(src: Ipv4Addr, dst: Ipv4Addr, proto: IpProtocol, payload: &[u8]) -> Vec<u8> {
    let repr = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: proto,
        payload_len: payload.len(),
        hop_limit: 64,
        ident: 7,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
        dscp: 0,
        ecn: 0,
    };
    let mut b = vec![0u8; repr.total_len()];
    b[ipv4::HEADER_LEN..].copy_from_slice(payload);
    repr.emit(&mut Ipv4Packet::new_unchecked(&mut b[..]));
    b
}

fn udp_bytes(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
    let repr = UdpRepr {
        src_port: sport,
        dst_port: dport,
        payload_len: data.len(),
    };
    let mut b = vec![0u8; udp::HEADER_LEN + data.len()];
    b[udp::HEADER_LEN..].copy_from_slice(data);
    repr.emit(
        &mut UdpPacket::new_unchecked(&mut b[..]),
        &IpAddresses::V4 { src, dst },
    );
    b
}

fn udp_frame(dst_mac: EthernetAddress, dst: Ipv4Addr, dport: u16) -> Vec<u8> {
    let u = udp_bytes(GUEST, dst, 5000, dport, b"hello");
    eth(
        dst_mac,
        EtherType::Ipv4,
        &ip(GUEST, dst, IpProtocol::Udp, &u),
    )
}

fn tcp_bytes(src: Ipv4Addr, dst: Ipv4Addr, data: &[u8]) -> Vec<u8> {
    let repr = TcpRepr {
        src_port: 40000,
        dst_port: 80,
        seq_number: TcpSeqNumber(1),
        control: TcpControl::Syn,
        window_len: 1000,
        max_seg_size: Some(1460),
        payload_len: data.len(),
        ..TcpRepr::default()
    };
    let hl = repr.buffer_len();
    let mut b = vec![0u8; hl + data.len()];
    b[hl..].copy_from_slice(data);
    repr.emit(
        &mut TcpPacket::new_unchecked(&mut b[..]),
        &IpAddresses::V4 { src, dst },
    );
    b
}

fn icmp_bytes(repr: &Icmpv4Repr<'_>) -> Vec<u8> {
    let mut b = vec![0u8; repr.buffer_len()];
    repr.emit(&mut Icmpv4Packet::new_unchecked(&mut b[..]));
    b
}

fn echo_frame(dst: Ipv4Addr) -> Vec<u8> {
    let icmp = icmp_bytes(&Icmpv4Repr::EchoRequest {
        ident: 0x1234,
        seq_no: 1,
        data: b"pingdata",
    });
    eth(
        GW_MAC,
        EtherType::Ipv4,
        &ip(GUEST, dst, IpProtocol::Icmp, &icmp),
    )
}

fn arp_frame(operation: ArpOperation) -> Vec<u8> {
    let repr = ArpRepr {
        operation,
        source_hardware_addr: GUEST_MAC,
        source_protocol_addr: GUEST,
        target_hardware_addr: EthernetAddress::default(),
        target_protocol_addr: GW,
    };
    let mut b = vec![0u8; repr.buffer_len()];
    repr.emit(&mut ArpPacket::new_unchecked(&mut b[..]));
    eth(EthernetAddress::BROADCAST, EtherType::Arp, &b)
}

fn err(frame: &[u8]) -> DropReason {
    parse(frame, GW_MAC).unwrap_err()
}

#[test]
fn drop_index_is_dense_and_names_unique() {
    for (i, r) in DropReason::ALL.iter().enumerate() {
        assert_eq!(r.index(), i, "{r:?}");
    }
    let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), DropReason::COUNT);
    let mut c = DropCounters::default();
    c.count(DropReason::NotForUs);
    c.count(DropReason::NotForUs);
    c.count(DropReason::Tcp(TcpError::BadChecksum));
    assert_eq!(c.get(DropReason::NotForUs), 2);
    assert_eq!(c.total(), 3);
    assert_eq!(c.iter().count(), 2);
}

#[test]
fn arp_request_parses() {
    let f = arp_frame(ArpOperation::Request);
    let p = parse(&f, GW_MAC).unwrap();
    assert!(matches!(p.event, Event::Arp(a) if a.target_protocol_addr == GW));
    assert!(p.flow().is_none());
}

#[test]
fn drop_ethernet_errors() {
    assert_eq!(
        err(&[0u8; 10]),
        DropReason::Ethernet(EthernetError::Truncated)
    );
    let mut f = udp_frame(GW_MAC, GW, 53);
    f[12..14].copy_from_slice(&[0x81, 0x00]);
    assert_eq!(err(&f), DropReason::Ethernet(EthernetError::VlanTagged));
    f[12..14].copy_from_slice(&[0x00, 0x40]);
    assert_eq!(err(&f), DropReason::Ethernet(EthernetError::NotEthernetII));
}

#[test]
fn drop_not_for_us_and_unsupported_ethertype() {
    assert_eq!(err(&udp_frame(OTHER_MAC, GW, 53)), DropReason::NotForUs);
    let f = eth(GW_MAC, EtherType::Unknown(0x88cc), &[0u8; 46]);
    assert_eq!(err(&f), DropReason::UnsupportedEtherType);
}

#[test]
fn drop_arp_errors() {
    let mut f = arp_frame(ArpOperation::Request);
    f.truncate(ethernet::HEADER_LEN + 20);
    assert_eq!(err(&f), DropReason::Arp(ArpError::Truncated));
    let mut f = arp_frame(ArpOperation::Request);
    f[ethernet::HEADER_LEN + 7] = 9;
    assert_eq!(err(&f), DropReason::Arp(ArpError::UnknownOperation));
    let _ = arp::PACKET_LEN;
}

#[test]
fn drop_ipv4_errors() {
    let mut f = udp_frame(GW_MAC, GW, 53);
    f[ethernet::HEADER_LEN + 10] ^= 0xff;
    assert_eq!(err(&f), DropReason::Ipv4(Ipv4Error::BadChecksum));
    let mut f = udp_frame(GW_MAC, GW, 53);
    f[ethernet::HEADER_LEN] = 0x65;
    assert_eq!(err(&f), DropReason::Ipv4(Ipv4Error::BadVersion));
}

#[test]
fn drop_invalid_source() {
    let u = udp_bytes(Ipv4Addr::new(224, 0, 0, 1), GW, 1, 2, b"x");
    let f = eth(
        GW_MAC,
        EtherType::Ipv4,
        &ip(Ipv4Addr::new(224, 0, 0, 1), GW, IpProtocol::Udp, &u),
    );
    assert_eq!(err(&f), DropReason::InvalidSource);
}

#[test]
fn drop_unsupported_protocol() {
    let f = eth(
        GW_MAC,
        EtherType::Ipv4,
        &ip(GUEST, HOST, IpProtocol::Unknown(132), &[0u8; 12]),
    );
    assert_eq!(err(&f), DropReason::UnsupportedProtocol);
}

#[test]
fn broadcast_only_reaches_dhcp() {
    let bcast = Ipv4Addr::BROADCAST;
    let ok = udp_frame(EthernetAddress::BROADCAST, bcast, DHCP_SERVER_PORT);
    assert!(matches!(
        parse(&ok, GW_MAC).unwrap().event,
        Event::Udp { udp, .. } if udp.dst_port == DHCP_SERVER_PORT
    ));
    assert_eq!(
        err(&udp_frame(EthernetAddress::BROADCAST, bcast, 137)),
        DropReason::BroadcastToNonService
    );
    // L3 broadcast in an L2 unicast frame, and L3 multicast.
    assert_eq!(
        err(&udp_frame(GW_MAC, bcast, 137)),
        DropReason::BroadcastToNonService
    );
    // L3 multicast UDP is the gateway's to relay or drop: it comes through, as a flow
    // to the group.
    let mdns = udp_frame(
        EthernetAddress([0x01, 0, 0x5e, 0, 0, 0xfb]),
        Ipv4Addr::new(224, 0, 0, 251),
        5353,
    );
    let flow = parse(&mdns, GW_MAC).unwrap().flow().unwrap();
    assert_eq!(
        flow.key.remote,
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(224, 0, 0, 251)), 5353)
    );
    // L2 multicast carrying a unicast IP destination is not.
    let odd = udp_frame(
        EthernetAddress([0x01, 0, 0x5e, 0, 0, 0xfb]),
        Ipv4Addr::new(10, 0, 0, 1),
        5353,
    );
    assert_eq!(err(&odd), DropReason::BroadcastToNonService);
    let icmp = icmp_bytes(&Icmpv4Repr::EchoRequest {
        ident: 1,
        seq_no: 1,
        data: b"",
    });
    let f = eth(
        EthernetAddress::BROADCAST,
        EtherType::Ipv4,
        &ip(GUEST, bcast, IpProtocol::Icmp, &icmp),
    );
    assert_eq!(err(&f), DropReason::BroadcastToNonService);
}

#[test]
fn drop_udp_errors() {
    let mut f = udp_frame(GW_MAC, GW, 53);
    let at = ethernet::HEADER_LEN + ipv4::HEADER_LEN + 8;
    f[at] ^= 0x55;
    assert_eq!(err(&f), DropReason::Udp(UdpError::BadChecksum));
    let mut f = udp_frame(GW_MAC, GW, 53);
    let len_at = ethernet::HEADER_LEN + ipv4::HEADER_LEN + 4;
    f[len_at..len_at + 2].copy_from_slice(&200u16.to_be_bytes());
    assert_eq!(err(&f), DropReason::Udp(UdpError::BadLength));
}

#[test]
fn drop_tcp_errors() {
    let mut t = tcp_bytes(GUEST, HOST, b"data");
    t[tcp::HEADER_LEN + 4] ^= 1;
    let f = eth(
        GW_MAC,
        EtherType::Ipv4,
        &ip(GUEST, HOST, IpProtocol::Tcp, &t),
    );
    assert_eq!(err(&f), DropReason::Tcp(TcpError::BadChecksum));
    let f = eth(
        GW_MAC,
        EtherType::Ipv4,
        &ip(GUEST, HOST, IpProtocol::Tcp, &[0u8; 10]),
    );
    assert_eq!(err(&f), DropReason::Tcp(TcpError::Truncated));
}

#[test]
fn drop_icmp_errors() {
    let mut icmp = icmp_bytes(&Icmpv4Repr::EchoRequest {
        ident: 1,
        seq_no: 1,
        data: b"abc",
    });
    icmp[9] ^= 1;
    let f = eth(
        GW_MAC,
        EtherType::Ipv4,
        &ip(GUEST, GW, IpProtocol::Icmp, &icmp),
    );
    assert_eq!(err(&f), DropReason::Icmpv4(Icmpv4Error::BadChecksum));
}

#[test]
fn fragments_and_ipv6_are_their_own_events() {
    let mut f = udp_frame(GW_MAC, HOST, 53);
    // Set MF and refill the header checksum: a first fragment (payload of 13 bytes is not a
    // multiple of 8, so use offset != 0 with MF clear: a last fragment).
    {
        let mut p = Ipv4Packet::new_unchecked(&mut f[ethernet::HEADER_LEN..]);
        p.set_fragment(false, false, 8);
        p.fill_checksum();
    }
    assert!(matches!(
        parse(&f, GW_MAC).unwrap().event,
        Event::Ipv4Fragment { ip, .. } if ip.frag_offset == 8
    ));
}

#[test]
fn tcp_flow_key_and_payload_range() {
    let t = tcp_bytes(GUEST, HOST, b"payload!");
    let f = eth(
        GW_MAC,
        EtherType::Ipv4,
        &ip(GUEST, HOST, IpProtocol::Tcp, &t),
    );
    let p = parse(&f, GW_MAC).unwrap();
    let flow = p.flow().unwrap();
    assert_eq!(flow.key.protocol, IpProtocol::Tcp);
    assert_eq!(flow.key.guest, "192.168.127.2:40000".parse().unwrap());
    assert_eq!(flow.key.remote, "192.168.127.254:80".parse().unwrap());
    assert_eq!(flow.payload(&f), b"payload!");
    assert!(matches!(flow.l4, FlowL4::Tcp(t) if t.control == TcpControl::Syn));
}

#[test]
fn echo_and_icmp_error_flows() {
    let f = echo_frame(HOST);
    let flow = parse(&f, GW_MAC).unwrap().flow().unwrap();
    assert_eq!(flow.key.guest, "192.168.127.2:4660".parse().unwrap());
    assert_eq!(flow.key.remote, "192.168.127.254:0".parse().unwrap());
    assert_eq!(flow.payload(&f), b"pingdata");

    // The guest says port unreachable about a datagram HOST:53 -> GUEST:5000.
    let quoted = ip(
        HOST,
        GUEST,
        IpProtocol::Udp,
        &udp_bytes(HOST, GUEST, 53, 5000, b"answer"),
    );
    let icmp = icmp_bytes(&Icmpv4Repr::DstUnreachable {
        reason: Icmpv4DstUnreachable::PortUnreachable,
        data: &quoted,
    });
    let f = eth(
        GW_MAC,
        EtherType::Ipv4,
        &ip(GUEST, HOST, IpProtocol::Icmp, &icmp),
    );
    let flow = parse(&f, GW_MAC).unwrap().flow().unwrap();
    assert_eq!(flow.key.protocol, IpProtocol::Udp);
    assert_eq!(flow.key.guest, "192.168.127.2:5000".parse().unwrap());
    assert_eq!(flow.key.remote, "192.168.127.254:53".parse().unwrap());
    assert_eq!(flow.payload(&f), &quoted[..]);
    let _ = icmpv4::HEADER_LEN;
}

#[test]
fn flow_hash_is_seeded_and_spreads() {
    let key = |port: u16| FlowKey {
        protocol: IpProtocol::Tcp,
        guest: SocketAddr::new(IpAddr::V4(GUEST), port),
        remote: SocketAddr::new(IpAddr::V4(HOST), 80),
    };
    assert_eq!(key(1).hash(7), key(1).hash(7));
    assert_ne!(key(1).hash(7), key(1).hash(8));
    assert_ne!(key(1).hash(7), key(2).hash(7));
    let mut buckets = [0u32; 4];
    for port in 0..4000 {
        buckets[key(port).worker(42, 4)] += 1;
    }
    for b in buckets {
        assert!((800..1200).contains(&b), "{buckets:?}");
    }
    assert_eq!(key(1).worker(1, 1), 0);
    assert_eq!(key(1).worker(1, 0), 0);
}

proptest::proptest! {
    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
        if let Ok(p) = parse(&bytes, GW_MAC) {
            let _ = p.flow();
        }
    }
}

// IPv6.

const GUEST6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0x5894, 0xefff, 0xfee4, 0x0cee);
const GW6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0x5894, 0xefff, 0xfee4, 0x0cdd);
const REMOTE6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);

fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, next: IpProtocol, hop: u8, payload: &[u8]) -> Vec<u8> {
    let repr = Ipv6Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: next,
        payload_len: payload.len(),
        hop_limit: hop,
        dscp: 0,
        ecn: 0,
        flow_label: 0,
    };
    let mut b = vec![0u8; crate::wire::ipv6::HEADER_LEN + payload.len()];
    b[crate::wire::ipv6::HEADER_LEN..].copy_from_slice(payload);
    repr.emit(&mut Ipv6Packet::new_unchecked(&mut b[..]));
    b
}

fn icmpv6_frame(
    dst_mac: EthernetAddress,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hop: u8,
    repr: &Icmpv6Repr<'_>,
) -> Vec<u8> {
    let mut b = vec![0u8; repr.buffer_len()];
    repr.emit(
        &mut Icmpv6Packet::new_unchecked(&mut b[..]),
        &IpAddresses::V6 { src, dst },
    );
    eth(
        dst_mac,
        EtherType::Ipv6,
        &ipv6(src, dst, IpProtocol::Icmpv6, hop, &b),
    )
}

fn solicited_node_mac(addr: Ipv6Addr) -> EthernetAddress {
    let o = addr.octets();
    EthernetAddress([0x33, 0x33, 0xff, o[13], o[14], o[15]])
}

#[test]
fn neighbour_solicitation_to_a_multicast_group_parses() {
    let opts = [NdpOption::SourceLinkLayerAddr(GUEST_MAC)];
    let ns = Icmpv6Repr::Ndp(NdpRepr::NeighborSolicit {
        target_addr: GW6,
        options: NdpOptions::new(&opts),
    });
    let group = crate::wire::ndp::solicited_node(GW6);
    let f = icmpv6_frame(solicited_node_mac(GW6), GUEST6, group, 255, &ns);
    let p = parse(&f, GW_MAC).unwrap();
    let Event::Icmpv6 {
        ip,
        icmp: Icmpv6Repr::Ndp(NdpRepr::NeighborSolicit { target_addr, .. }),
    } = p.event
    else {
        panic!("{:?}", p.event);
    };
    assert_eq!(target_addr, GW6);
    assert_eq!(ip.hop_limit, 255);
    assert!(p.flow().is_none());
}

#[test]
fn echo_v6_is_a_flow_and_not_to_multicast() {
    let echo = Icmpv6Repr::EchoRequest {
        ident: 9,
        seq_no: 1,
        data: b"six",
    };
    let f = icmpv6_frame(GW_MAC, GUEST6, REMOTE6, 64, &echo);
    let flow = parse(&f, GW_MAC).unwrap().flow().unwrap();
    assert_eq!(flow.key.protocol, IpProtocol::Icmpv6);
    assert_eq!(flow.key.guest, SocketAddr::new(IpAddr::V6(GUEST6), 9));
    assert_eq!(flow.payload(&f), b"six");
    let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
    let f = icmpv6_frame(
        EthernetAddress([0x33, 0x33, 0, 0, 0, 1]),
        GUEST6,
        all_nodes,
        64,
        &echo,
    );
    assert_eq!(err(&f), DropReason::BroadcastToNonService);
}

#[test]
fn udp_and_tcp_over_ipv6() {
    let data = b"v6 data";
    let repr = UdpRepr {
        src_port: 4000,
        dst_port: 53,
        payload_len: data.len(),
    };
    let mut u = vec![0u8; udp::HEADER_LEN + data.len()];
    u[udp::HEADER_LEN..].copy_from_slice(data);
    repr.emit(
        &mut UdpPacket::new_unchecked(&mut u[..]),
        &IpAddresses::V6 {
            src: GUEST6,
            dst: REMOTE6,
        },
    );
    let f = eth(
        GW_MAC,
        EtherType::Ipv6,
        &ipv6(GUEST6, REMOTE6, IpProtocol::Udp, 64, &u),
    );
    let flow = parse(&f, GW_MAC).unwrap().flow().unwrap();
    assert_eq!(flow.key.remote, SocketAddr::new(IpAddr::V6(REMOTE6), 53));
    assert_eq!(flow.payload(&f), data);
    assert!(matches!(flow.ip, IpHeader::V6(ip) if ip.next_header == IpProtocol::Udp));
    // mDNS over IPv6 multicast comes through for the gateway to relay or drop.
    let mdns = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0xfb);
    let mut m = vec![0u8; udp::HEADER_LEN + data.len()];
    m[udp::HEADER_LEN..].copy_from_slice(data);
    UdpRepr {
        src_port: 5353,
        dst_port: 5353,
        payload_len: data.len(),
    }
    .emit(
        &mut UdpPacket::new_unchecked(&mut m[..]),
        &IpAddresses::V6 {
            src: GUEST6,
            dst: mdns,
        },
    );
    let f = eth(
        EthernetAddress([0x33, 0x33, 0, 0, 0, 0xfb]),
        EtherType::Ipv6,
        &ipv6(GUEST6, mdns, IpProtocol::Udp, 255, &m),
    );
    let flow = parse(&f, GW_MAC).unwrap().flow().unwrap();
    assert_eq!(flow.key.remote, SocketAddr::new(IpAddr::V6(mdns), 5353));
}

#[test]
fn drop_ipv6_errors() {
    assert_eq!(
        err(&eth(GW_MAC, EtherType::Ipv6, &[0x60; 20])),
        DropReason::Ipv6(Ipv6Error::Truncated)
    );
    let mut f = eth(
        GW_MAC,
        EtherType::Ipv6,
        &ipv6(GUEST6, REMOTE6, IpProtocol::Udp, 64, &[0; 8]),
    );
    f[ethernet::HEADER_LEN] = 0x40;
    assert_eq!(err(&f), DropReason::Ipv6(Ipv6Error::BadVersion));
    // A hop-by-hop header that claims more bytes than there are.
    let f = eth(
        GW_MAC,
        EtherType::Ipv6,
        &ipv6(
            GUEST6,
            REMOTE6,
            IpProtocol::HopByHop,
            64,
            &[17, 4, 0, 0, 0, 0, 0, 0],
        ),
    );
    assert_eq!(err(&f), DropReason::Ipv6Chain(Ipv6ChainError::Truncated));
    let f = eth(
        GW_MAC,
        EtherType::Ipv6,
        &ipv6(
            Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1),
            REMOTE6,
            IpProtocol::Udp,
            64,
            &[0; 8],
        ),
    );
    assert_eq!(err(&f), DropReason::InvalidSource);
}

#[test]
fn drop_icmpv6_and_ndp_errors() {
    let echo = Icmpv6Repr::EchoRequest {
        ident: 1,
        seq_no: 1,
        data: b"x",
    };
    let mut f = icmpv6_frame(GW_MAC, GUEST6, GW6, 64, &echo);
    let last = f.len() - 1;
    f[last] ^= 0xff;
    assert_eq!(err(&f), DropReason::Icmpv6(Icmpv6Error::BadChecksum));
    // A neighbour solicitation for a multicast target is refused by the NDP parser, and counted
    // as an NDP reason, not an ICMPv6 one.
    let ns = Icmpv6Repr::Ndp(NdpRepr::NeighborSolicit {
        target_addr: GW6,
        options: NdpOptions::EMPTY,
    });
    let mut f = icmpv6_frame(GW_MAC, GUEST6, GW6, 255, &ns);
    let at = ethernet::HEADER_LEN + crate::wire::ipv6::HEADER_LEN + 8;
    f[at] = 0xff;
    // Refill the checksum for the changed target.
    let start = ethernet::HEADER_LEN + crate::wire::ipv6::HEADER_LEN;
    Icmpv6Packet::new_unchecked(&mut f[start..]).fill_checksum(&IpAddresses::V6 {
        src: GUEST6,
        dst: GW6,
    });
    let reason = err(&f);
    assert_eq!(reason, DropReason::Ndp(NdpError::MulticastTarget));
    assert_eq!(
        DropReason::Icmpv6(Icmpv6Error::Ndp(NdpError::MulticastTarget)).index(),
        reason.index()
    );
}

#[test]
fn ipv6_fragment_is_its_own_event() {
    // A fragment header (RFC 8200 §4.5): UDP next, offset 8 bytes (1 unit), M clear.
    let mut payload = vec![17u8, 0, 0, 8, 0, 0, 0, 42];
    payload.extend_from_slice(b"fragment data");
    let f = eth(
        GW_MAC,
        EtherType::Ipv6,
        &ipv6(GUEST6, REMOTE6, IpProtocol::Ipv6Frag, 64, &payload),
    );
    let p = parse(&f, GW_MAC).unwrap();
    let Event::Ipv6Fragment { ip, payload } = p.event else {
        panic!("{:?}", p.event);
    };
    assert_eq!(payload, b"fragment data");
    assert_eq!(ip.next_header, IpProtocol::Udp);
    assert!(p.flow().is_none());
}
