use super::*;
use crate::wire::{ethernet, fixtures};
use proptest::prelude::*;

const ECHO: &[u8] = include_bytes!("../fixtures/icmpv6_echo.pcap");
const NEIGHBOUR: &[u8] = include_bytes!("../fixtures/ndp_neighbour.pcap");
const DAD: &[u8] = include_bytes!("../fixtures/ndp_dad.pcap");
const HOP_BY_HOP: &[u8] = include_bytes!("../fixtures/ipv6_hopbyhop.pcap");
const FRAGMENTS: &[u8] = include_bytes!("../fixtures/ipv6_fragments.pcap");
const EXT: &[u8] = include_bytes!("../fixtures/ipv6_ext.pcap");
const ROUTER: &[u8] = include_bytes!("../fixtures/ndp_router.pcap");
const REDIRECT: &[u8] = include_bytes!("../fixtures/ndp_redirect.pcap");
const ERRORS: &[u8] = include_bytes!("../fixtures/icmpv6_errors.pcap");

/// Every capture; all their frames are IPv6.
const ALL: [&[u8]; 9] = [
    ECHO, NEIGHBOUR, DAD, HOP_BY_HOP, FRAGMENTS, EXT, ROUTER, REDIRECT, ERRORS,
];

const GUEST: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x127, 0, 0, 0, 0, 0, 2);
const GATEWAY: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x127, 0, 0, 0, 0, 0, 1);

/// The IPv6 packet in frame `index` of a capture.
fn ip(pcap: &'static [u8], index: usize) -> &'static [u8] {
    ethernet::Packet::new_checked(fixtures::frame(pcap, index))
        .unwrap()
        .payload()
}

/// Every IPv6 packet of every capture.
fn all_packets() -> impl Iterator<Item = &'static [u8]> {
    ALL.into_iter().flat_map(fixtures::frames).map(|frame| {
        let frame = ethernet::Packet::new_checked(frame).unwrap();
        assert_eq!(
            ethernet::Repr::parse(&frame).unwrap().ethertype,
            ethernet::EtherType::Ipv6
        );
        frame.payload()
    })
}

fn parse(bytes: &[u8]) -> Result<Repr, Error> {
    Repr::parse(&Packet::new_checked(bytes)?)
}

/// The flow label read byte by byte, independently of the accessor.
fn flow_label_of(bytes: &[u8]) -> u32 {
    (u32::from(bytes[1] & 0x0f) << 16) | (u32::from(bytes[2]) << 8) | u32::from(bytes[3])
}

#[test]
fn test_parse() {
    let bytes = ip(ECHO, 0);
    let request = parse(bytes).unwrap();
    assert_eq!(
        request,
        Repr {
            src_addr: GUEST,
            dst_addr: GATEWAY,
            next_header: Protocol::Icmpv6,
            payload_len: 64,
            hop_limit: 64,
            dscp: 0,
            ecn: 0,
            flow_label: flow_label_of(bytes),
        }
    );
    assert_ne!(request.flow_label, 0, "Linux labels its flows (RFC 6437)");
    let packet = Packet::new_checked(bytes).unwrap();
    assert_eq!(packet.version(), 6);
    assert_eq!(packet.payload().len(), 64);
    assert_eq!(packet.payload()[0], 128, "an echo request follows");

    let reply = parse(ip(ECHO, 1)).unwrap();
    assert_eq!((reply.src_addr, reply.dst_addr), (GATEWAY, GUEST));

    // The neighbour solicitation goes to the solicited-node group with hop limit 255.
    let ns = parse(ip(NEIGHBOUR, 0)).unwrap();
    assert_eq!(ns.dst_addr, "ff02::1:ff00:1".parse::<Ipv6Addr>().unwrap());
    assert_eq!(ns.hop_limit, 255);
    assert_eq!(ns.flow_label, 0);

    // The MLD report starts with a hop-by-hop header.
    let mld = parse(ip(HOP_BY_HOP, 0)).unwrap();
    assert_eq!(mld.next_header, Protocol::HopByHop);
    assert_eq!(mld.hop_limit, 1);
    assert!(mld.src_addr.is_unicast_link_local());

    let fragment = parse(ip(FRAGMENTS, 0)).unwrap();
    assert_eq!(fragment.next_header, Protocol::Ipv6Frag);
    assert_eq!(fragment.payload_len, 1456);
}

#[test]
fn test_emit() {
    // Every fixed header of every capture, rebuilt from its Repr.
    for bytes in all_packets() {
        let repr = parse(bytes).unwrap();
        assert_eq!(repr.buffer_len(), HEADER_LEN);
        let mut out = bytes.to_vec();
        out[..HEADER_LEN].fill(0);
        repr.emit(&mut Packet::new_unchecked(&mut out[..]));
        assert_eq!(out, bytes);
    }
}

#[test]
fn traffic_class_fields() {
    let mut bytes = ip(ECHO, 0).to_vec();
    let mut packet = Packet::new_unchecked(&mut bytes[..]);
    packet.set_traffic_class(0xb9);
    assert_eq!(packet.traffic_class(), 0xb9);
    assert_eq!((packet.dscp(), packet.ecn()), (0x2e, 0x01));
    assert_eq!(packet.version(), 6);
    assert_eq!(packet.flow_label(), flow_label_of(ip(ECHO, 0)));
}

#[test]
fn payload_stops_at_payload_length() {
    // A short packet in a padded Ethernet frame: the padding is not payload.
    let mut bytes = ip(ECHO, 0).to_vec();
    bytes.extend_from_slice(&[0xee; 10]);
    let packet = Packet::new_checked(&bytes[..]).unwrap();
    assert_eq!(packet.payload(), ip(ECHO, 0)[HEADER_LEN..].as_ref());
}

#[test]
fn bad_version_is_refused() {
    let mut bytes = ip(ECHO, 0).to_vec();
    bytes[0] = 0x45;
    assert_eq!(parse(&bytes), Err(Error::BadVersion));
    assert_eq!(
        Packet::new_quoted(&bytes[..]).err(),
        Some(Error::BadVersion)
    );
}

#[test]
fn every_truncation_is_refused() {
    for bytes in all_packets() {
        for cut in 0..bytes.len() {
            assert_eq!(parse(&bytes[..cut]), Err(Error::Truncated), "cut at {cut}");
        }
    }
}

#[test]
fn quoted_packet_may_end_early() {
    // The packet too big quotes the invoking packet cut to fit 1280 bytes (RFC 4443 §2.4(c)).
    let error = Packet::new_checked(ip(ERRORS, 7)).unwrap();
    let quote = &error.payload()[8..];
    assert_eq!(HEADER_LEN + 8 + quote.len(), MIN_MTU);
    assert_eq!(Packet::new_checked(quote).err(), Some(Error::Truncated));
    let quoted = Packet::new_quoted(quote).unwrap();
    assert_eq!(
        quoted.dst_addr(),
        "fd00:129::5".parse::<Ipv6Addr>().unwrap()
    );
    assert_eq!(usize::from(quoted.payload_len()), 1360);
    assert_eq!(quoted.payload().len(), quote.len() - HEADER_LEN);
    assert_eq!(quoted.header_chain().unwrap().protocol, Protocol::Udp);
    assert_eq!(
        Packet::new_quoted(&quote[..HEADER_LEN - 1]).err(),
        Some(Error::Truncated)
    );
}

#[test]
fn setters_write_what_getters_read() {
    let mut bytes = [0u8; HEADER_LEN + 4];
    let mut packet = Packet::new_unchecked(&mut bytes[..]);
    packet.set_version();
    packet.set_flow_label(0xfff_ffff);
    packet.set_payload_len(4);
    packet.payload_mut().copy_from_slice(b"abcd");
    assert_eq!(packet.flow_label(), 0xf_ffff);
    assert_eq!(packet.traffic_class(), 0);
    assert_eq!(packet.version(), 6);
    let packet = Packet::new_checked(&bytes[..]).unwrap();
    assert_eq!(packet.payload(), b"abcd");
}

fn arb_repr() -> impl Strategy<Value = Repr> {
    (
        any::<[u8; 16]>(),
        any::<[u8; 16]>(),
        any::<u8>(),
        0..=MAX_PAYLOAD_LEN,
        any::<u8>(),
        0u8..64,
        0u8..4,
        0u32..=FLOW_LABEL_MASK,
    )
        .prop_map(
            |(src, dst, nh, payload_len, hop_limit, dscp, ecn, flow_label)| Repr {
                src_addr: Ipv6Addr::from(src),
                dst_addr: Ipv6Addr::from(dst),
                next_header: Protocol::from(nh),
                payload_len,
                hop_limit,
                dscp,
                ecn,
                flow_label,
            },
        )
}

proptest! {
    #[test]
    fn emit_parse_round_trip(repr in arb_repr()) {
        let mut bytes = vec![0u8; repr.buffer_len() + repr.payload_len];
        repr.emit(&mut Packet::new_unchecked(&mut bytes[..]));
        prop_assert_eq!(parse(&bytes), Ok(repr));
    }

    #[test]
    fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(packet) = Packet::new_checked(&bytes[..]) {
            let _ = Repr::parse(&packet);
            prop_assert!(packet.payload().len() <= bytes.len() - HEADER_LEN);
            let _ = packet.header_chain();
        }
        if let Ok(packet) = Packet::new_quoted(&bytes[..]) {
            let _ = packet.payload();
            let _ = packet.header_chain();
        }
    }

    #[test]
    fn mangled_fixtures_never_panic(index in 0usize..64, at in 0usize..2000, byte in any::<u8>()) {
        let packets: Vec<&[u8]> = all_packets().collect();
        let mut bytes = packets[index % packets.len()].to_vec();
        let at = at % bytes.len();
        bytes[at] = byte;
        if let Ok(packet) = Packet::new_checked(&bytes[..]) {
            let _ = Repr::parse(&packet);
            let _ = packet.header_chain();
        }
    }
}
