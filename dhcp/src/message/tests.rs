use super::*;
use crate::fixtures::{self, DHCLIENT, UDHCPC};
use proptest::prelude::*;

fn mac(s: &str) -> EthernetAddress {
    s.parse().unwrap()
}

fn parse(bytes: &[u8]) -> Result<Repr, Error> {
    Repr::parse(&Packet::new_checked(bytes)?)
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

#[test]
fn test_parse_udhcpc_discover() {
    let repr = parse(fixtures::payload(UDHCPC, 0)).unwrap();
    assert_eq!(repr.op, Op::Request);
    assert_eq!(repr.message_type, MessageType::Discover);
    assert_eq!(repr.xid, 0x85b3_b718);
    assert!(!repr.broadcast);
    assert_eq!(repr.chaddr, mac("5a:94:ef:e4:0c:ee"));
    assert_eq!(repr.ciaddr, Ipv4Addr::UNSPECIFIED);
    assert_eq!(repr.max_message_size, Some(576));
    assert_eq!(
        repr.parameter_request_list.as_deref(),
        Some(&[1, 3, 6, 12, 15, 28, 42][..])
    );
    assert_eq!(repr.hostname.as_deref(), Some("hs-guest"));
    assert_eq!(
        repr.client_id.as_deref(),
        Some(&[1, 0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xee][..])
    );
    assert_eq!(repr.requested_ip, None);
    assert_eq!(repr.server_id, None);
}

#[test]
fn test_parse_udhcpc_request_renew_release() {
    let request = parse(fixtures::payload(UDHCPC, 2)).unwrap();
    assert_eq!(request.message_type, MessageType::Request);
    assert_eq!(request.requested_ip, Some(ip("192.168.127.2")));
    assert_eq!(request.server_id, Some(ip("192.168.127.1")));
    let renew = parse(fixtures::payload(UDHCPC, 4)).unwrap();
    assert_eq!(renew.message_type, MessageType::Request);
    assert_eq!(renew.ciaddr, ip("192.168.127.2"));
    assert_eq!((renew.requested_ip, renew.server_id), (None, None));
    let release = parse(fixtures::payload(UDHCPC, 6)).unwrap();
    assert_eq!(release.message_type, MessageType::Release);
    assert_eq!(release.ciaddr, ip("192.168.127.2"));
    assert_eq!(release.server_id, Some(ip("192.168.127.1")));
}

#[test]
fn test_parse_dhclient() {
    let discover = parse(fixtures::payload(DHCLIENT, 0)).unwrap();
    assert_eq!(discover.message_type, MessageType::Discover);
    assert_eq!(discover.xid, 0x03e3_8758);
    assert_eq!(discover.chaddr, mac("52:54:00:12:34:56"));
    assert_eq!(discover.hostname.as_deref(), Some("vm"));
    assert_eq!(discover.client_id, None);
    assert_eq!(
        discover.parameter_request_list.as_deref(),
        Some(&[1, 28, 2, 3, 15, 6, 119, 12, 44, 47, 26, 121, 42][..])
    );
    let reboot = parse(fixtures::payload(DHCLIENT, 4)).unwrap();
    assert_eq!(reboot.message_type, MessageType::Request);
    assert_eq!(reboot.requested_ip, Some(ip("192.168.127.148")));
    assert_eq!(reboot.server_id, None);
    assert_eq!(reboot.ciaddr, Ipv4Addr::UNSPECIFIED);
}

#[test]
fn test_parse_server_replies() {
    // udhcpd's OFFER to udhcpc.
    let offer = parse(fixtures::payload(UDHCPC, 1)).unwrap();
    assert_eq!(offer.op, Op::Reply);
    assert_eq!(offer.message_type, MessageType::Offer);
    assert_eq!(offer.yiaddr, ip("192.168.127.2"));
    assert_eq!(offer.server_id, Some(ip("192.168.127.1")));
    assert_eq!(offer.lease_time, Some(3600));
    assert_eq!(offer.subnet_mask, Some(ip("255.255.255.0")));
    assert_eq!(offer.routers, [ip("192.168.127.1")]);
    assert_eq!(offer.dns_servers, [ip("192.168.127.1")]);
    assert_eq!(offer.domain_name.as_deref(), Some("example.internal"));
}

#[test]
fn every_fixture_frame_parses() {
    for pcap in [UDHCPC, DHCLIENT] {
        for i in 0..fixtures::frames(pcap).len() {
            parse(fixtures::payload(pcap, i)).unwrap();
        }
    }
}

#[test]
fn test_emit() {
    // Our option order and padding match udhcpd's replies byte for byte.
    for (pcap, i) in [
        (UDHCPC, 1),
        (UDHCPC, 3),
        (UDHCPC, 5),
        (DHCLIENT, 1),
        (DHCLIENT, 5),
    ] {
        let captured = fixtures::payload(pcap, i);
        let repr = parse(captured).unwrap();
        assert_eq!(repr.buffer_len(), captured.len());
        assert_eq!(repr.to_bytes().unwrap(), captured, "frame {i}");
    }
}

#[test]
fn emit_pads_to_bootp_minimum() {
    let repr = Repr::new(Op::Reply, MessageType::Nak, 1, mac("02:00:00:00:00:01"));
    let bytes = repr.to_bytes().unwrap();
    assert_eq!(bytes.len(), MIN_LEN);
    assert_eq!(&bytes[HEADER_LEN..HEADER_LEN + 4], &[53, 1, 6, 255]);
    assert!(bytes[HEADER_LEN + 4..].iter().all(|&b| b == 0));
    let mut short = vec![0u8; MIN_LEN - 1];
    assert_eq!(
        repr.emit(&mut Packet::new_unchecked(&mut short[..])),
        Err(EmitError::BufferTooSmall)
    );
}

/// A DISCOVER with only option 53 and the given extra option bytes before End.
fn discover_with(extra: &[u8]) -> Vec<u8> {
    let mut bytes = fixtures::payload(UDHCPC, 0)[..HEADER_LEN].to_vec();
    bytes.extend_from_slice(&[53, 1, 1]);
    bytes.extend_from_slice(extra);
    bytes.push(255);
    bytes
}

#[test]
fn header_errors() {
    let good = fixtures::payload(UDHCPC, 0);
    assert_eq!(parse(&good[..HEADER_LEN - 1]), Err(Error::Truncated));
    let mut bytes = good.to_vec();
    bytes[236] = 0;
    assert_eq!(parse(&bytes), Err(Error::BadMagic));
    let mut bytes = good.to_vec();
    bytes[0] = 3;
    assert_eq!(parse(&bytes), Err(Error::BadOp(3)));
    let mut bytes = good.to_vec();
    bytes[1] = 6;
    assert_eq!(parse(&bytes), Err(Error::NotEthernet { htype: 6, hlen: 6 }));
    let mut bytes = good.to_vec();
    bytes[2] = 16;
    assert_eq!(
        parse(&bytes),
        Err(Error::NotEthernet { htype: 1, hlen: 16 })
    );
}

#[test]
fn option_errors() {
    assert!(parse(&discover_with(&[])).is_ok());
    // Zero length where a value is required.
    for code in [50, 54, 55, 61, 12, 1, 3, 6, 15, 26, 51, 57, 119] {
        assert_eq!(
            parse(&discover_with(&[code, 0])),
            Err(Error::BadOptionLength { code }),
            "option {code}"
        );
    }
    // Wrong fixed lengths.
    assert_eq!(
        parse(&discover_with(&[50, 3, 1, 2, 3])),
        Err(Error::BadOptionLength { code: 50 })
    );
    assert_eq!(
        parse(&discover_with(&[3, 6, 1, 2, 3, 4, 5, 6])),
        Err(Error::BadOptionLength { code: 3 })
    );
    assert_eq!(
        parse(&discover_with(&[61, 1, 1])),
        Err(Error::BadOptionLength { code: 61 })
    );
    // A second message type is concatenated with the first (RFC 3396): two bytes, refused.
    assert_eq!(
        parse(&discover_with(&[53, 1, 3])),
        Err(Error::BadOptionLength { code: 53 })
    );
    // Past the end of the field.
    let mut bytes = discover_with(&[12, 40, b'x']);
    bytes.pop();
    assert_eq!(parse(&bytes), Err(Error::OptionOverrun { code: 12 }));
    // No End.
    let mut bytes = discover_with(&[]);
    bytes.pop();
    assert_eq!(parse(&bytes), Err(Error::MissingEnd));
    // Bad domain search list.
    assert_eq!(
        parse(&discover_with(&[119, 2, 0xc0, 0x00])),
        Err(Error::BadDomainSearch)
    );
    // Options we do not use are not checked.
    assert!(parse(&discover_with(&[80, 0, 42, 1, 9])).is_ok());
}

#[test]
fn missing_message_type_is_bootp() {
    let mut bytes = fixtures::payload(UDHCPC, 0)[..HEADER_LEN].to_vec();
    bytes.extend_from_slice(&[12, 2, b'v', b'm', 255]);
    assert_eq!(parse(&bytes), Err(Error::MissingMessageType));
}

#[test]
fn split_options_are_concatenated() {
    let repr = parse(&discover_with(&[
        12, 2, b'v', b'm', 12, 3, b'-', b'0', b'1',
    ]))
    .unwrap();
    assert_eq!(repr.hostname.as_deref(), Some("vm-01"));
}

#[test]
fn overload_walks_file_then_sname() {
    let mut bytes = discover_with(&[52, 1, 3]);
    let file = field::FILE.start;
    bytes[file..file + 6].copy_from_slice(&[12, 3, b'a', b'b', b'c', 255]);
    let sname = field::SNAME.start;
    bytes[sname..sname + 9].copy_from_slice(&[12, 1, b'd', 50, 4, 10, 0, 0, 9]);
    bytes[sname + 9] = 255;
    let repr = parse(&bytes).unwrap();
    assert_eq!(repr.hostname.as_deref(), Some("abcd"));
    assert_eq!(repr.requested_ip, Some(ip("10.0.0.9")));

    // file only: sname is not read as options.
    bytes[HEADER_LEN + 5] = 1;
    assert_eq!(parse(&bytes).unwrap().hostname.as_deref(), Some("abc"));
    // An overload of 0 or 4 is ignored; so is overload inside `file`.
    bytes[HEADER_LEN + 5] = 4;
    assert_eq!(parse(&bytes).unwrap().hostname, None);
    bytes[HEADER_LEN + 5] = 1;
    bytes[file..file + 9].copy_from_slice(&[52, 1, 2, 12, 1, b'z', 255, 0, 0]);
    assert_eq!(parse(&bytes).unwrap().hostname.as_deref(), Some("z"));
    // An overloaded field must end with End too.
    bytes[file + 6] = 0;
    assert_eq!(parse(&bytes), Err(Error::MissingEnd));
    // A bad overload length is refused.
    let bytes = discover_with(&[52, 2, 1, 1]);
    assert_eq!(parse(&bytes), Err(Error::BadOptionLength { code: 52 }));
}

#[test]
fn long_values_round_trip() {
    let mut repr = Repr::new(Op::Reply, MessageType::Ack, 7, mac("02:00:00:00:00:01"));
    repr.hostname = Some("h".repeat(600));
    repr.dns_servers = (0..100).map(|i| Ipv4Addr::new(10, 0, 0, i)).collect();
    repr.domain_search = DomainList::new(["a.example", "b.example", "example.org"]).unwrap();
    let bytes = repr.to_bytes().unwrap();
    assert!(bytes.len() > 1000);
    assert_eq!(parse(&bytes).unwrap(), repr);
}

fn arb_addr() -> impl Strategy<Value = Ipv4Addr> {
    any::<[u8; 4]>().prop_map(Ipv4Addr::from)
}

fn arb_text() -> impl Strategy<Value = String> {
    "\\PC{1,40}"
}

fn arb_header() -> impl Strategy<Value = Repr> {
    (
        any::<bool>(),
        any::<u8>(),
        any::<u32>(),
        any::<u16>(),
        any::<bool>(),
        [arb_addr(), arb_addr(), arb_addr(), arb_addr()],
        any::<[u8; 6]>(),
    )
        .prop_map(|(request, t, xid, secs, broadcast, [c, y, s, g], chaddr)| {
            let op = if request { Op::Request } else { Op::Reply };
            let mut repr = Repr::new(op, MessageType::from(t), xid, EthernetAddress(chaddr));
            repr.secs = secs;
            repr.broadcast = broadcast;
            (repr.ciaddr, repr.yiaddr, repr.siaddr, repr.giaddr) = (c, y, s, g);
            repr
        })
}

fn arb_repr() -> impl Strategy<Value = Repr> {
    let client = (
        proptest::option::of(arb_addr()),
        proptest::option::of(arb_addr()),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 1..300)),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 2..40)),
        proptest::option::of(arb_text()),
        proptest::option::of(any::<u16>()),
    );
    let lease = (
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<u32>()),
        proptest::option::of(arb_addr()),
        proptest::option::of(arb_addr()),
        proptest::option::of(any::<u16>()),
        proptest::option::of(arb_text()),
    );
    let lists = (
        proptest::collection::vec(arb_addr(), 0..4),
        proptest::collection::vec(arb_addr(), 0..70),
        proptest::option::of(arb_text()),
        proptest::collection::vec("[a-z0-9-]{1,10}(\\.[a-z]{1,6}){0,3}", 0..6),
    );
    (arb_header(), client, lease, lists).prop_map(|(mut repr, client, lease, lists)| {
        (
            repr.requested_ip,
            repr.server_id,
            repr.parameter_request_list,
            repr.client_id,
            repr.hostname,
            repr.max_message_size,
        ) = client;
        (
            repr.lease_time,
            repr.renewal_time,
            repr.rebinding_time,
            repr.subnet_mask,
            repr.broadcast_address,
            repr.interface_mtu,
            repr.message,
        ) = lease;
        let (routers, dns, domain, search) = lists;
        repr.routers = routers;
        repr.dns_servers = dns;
        repr.domain_name = domain;
        repr.domain_search = DomainList::new(search).unwrap();
        repr
    })
}

/// Where the options of a valid message end: the byte after End.
fn options_end(bytes: &[u8]) -> usize {
    let mut at = HEADER_LEN;
    loop {
        match bytes[at] {
            0 => at += 1,
            255 => return at + 1,
            _ => at += 2 + usize::from(bytes[at + 1]),
        }
    }
}

proptest! {
    #[test]
    fn emit_parse_round_trip(repr in arb_repr()) {
        let bytes = repr.to_bytes().unwrap();
        prop_assert_eq!(bytes.len(), repr.buffer_len());
        prop_assert!(bytes.len() >= MIN_LEN);
        prop_assert_eq!(parse(&bytes), Ok(repr));
    }

    #[test]
    fn truncated_requests_are_refused(which in 0usize..4, cut in 0usize..400) {
        let bytes = match which {
            0 => fixtures::payload(UDHCPC, 0),
            1 => fixtures::payload(UDHCPC, 2),
            2 => fixtures::payload(DHCLIENT, 0),
            _ => fixtures::payload(DHCLIENT, 4),
        };
        let end = options_end(bytes);
        let cut = cut % end;
        prop_assert!(parse(&bytes[..cut]).is_err());
    }

    #[test]
    fn truncated_emitted_messages_are_refused(repr in arb_repr(), cut in any::<prop::sample::Index>()) {
        let bytes = repr.to_bytes().unwrap();
        let cut = cut.index(options_end(&bytes));
        prop_assert!(parse(&bytes[..cut]).is_err());
    }

    #[test]
    fn any_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = parse(&bytes);
        // And with a valid header, so the option walk sees the random part.
        if bytes.len() >= HEADER_LEN {
            bytes[..HEADER_LEN].copy_from_slice(&fixtures::payload(UDHCPC, 0)[..HEADER_LEN]);
            let _ = parse(&bytes);
        }
    }
}
