use super::*;
use crate::wire::{ethernet, fixtures};
use core::net::Ipv6Addr;
use proptest::prelude::*;

const ECHO: &[u8] = include_bytes!("../fixtures/icmpv6_echo.pcap");
const ERRORS: &[u8] = include_bytes!("../fixtures/icmpv6_errors.pcap");
const FRAGMENTS: &[u8] = include_bytes!("../fixtures/ipv6_fragments.pcap");
const NEIGHBOUR: &[u8] = include_bytes!("../fixtures/ndp_neighbour.pcap");
const DAD: &[u8] = include_bytes!("../fixtures/ndp_dad.pcap");
const ROUTER: &[u8] = include_bytes!("../fixtures/ndp_router.pcap");
const REDIRECT: &[u8] = include_bytes!("../fixtures/ndp_redirect.pcap");
const HOP_BY_HOP: &[u8] = include_bytes!("../fixtures/ipv6_hopbyhop.pcap");

/// The captures whose frames are all whole ICMPv6 messages we represent.
const MESSAGES: [&[u8]; 5] = [ECHO, NEIGHBOUR, DAD, ROUTER, REDIRECT];

const GUEST: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x127, 0, 0, 0, 0, 0, 2);
const GATEWAY: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x127, 0, 0, 0, 0, 0, 1);

/// The IPv6 packet in frame `index` of a capture.
fn ip(pcap: &'static [u8], index: usize) -> &'static [u8] {
    ethernet::Packet::new_checked(fixtures::frame(pcap, index))
        .unwrap()
        .payload()
}

/// The upper-layer bytes and the address pair of frame `index`.
fn upper(pcap: &'static [u8], index: usize) -> (&'static [u8], Addresses) {
    let (addrs, bytes) = fixtures::transport(fixtures::frame(pcap, index));
    (bytes, addrs)
}

fn parse<'a>(bytes: &'a [u8], addrs: &Addresses) -> Result<Repr<'a>, Error> {
    Repr::parse(&Packet::new_checked(bytes)?, addrs)
}

/// Every frame of every capture that holds an ICMPv6 message we represent.
fn all_messages() -> Vec<(&'static [u8], Addresses)> {
    let mut out = Vec::new();
    for pcap in MESSAGES {
        for index in 0..fixtures::frames(pcap).len() {
            out.push(upper(pcap, index));
        }
    }
    for index in [1, 3, 5, 7, 9] {
        out.push(upper(ERRORS, index));
    }
    out
}

/// `bytes` with the checksum made right again for `addrs`.
fn fixed(mut bytes: Vec<u8>, addrs: &Addresses) -> Vec<u8> {
    Packet::new_unchecked(&mut bytes[..]).fill_checksum(addrs);
    bytes
}

#[test]
fn test_parse_echo() {
    let (bytes, addrs) = upper(ECHO, 0);
    let ident = u16::from_be_bytes([bytes[4], bytes[5]]);
    let request = parse(bytes, &addrs).unwrap();
    assert_eq!(
        request,
        Repr::EchoRequest {
            ident,
            seq_no: 1,
            data: &bytes[8..],
        }
    );
    let Repr::EchoRequest { data, .. } = request else {
        unreachable!()
    };
    // ping's 16-byte timestamp, then the pattern the capture script gave (-p 6873: "hs").
    assert_eq!(data.len(), 56);
    assert!(data[16..].chunks(2).all(|c| c == b"hs"));

    let (bytes, addrs) = upper(ECHO, 1);
    assert_eq!(
        addrs,
        Addresses::V6 {
            src: GATEWAY,
            dst: GUEST
        }
    );
    assert_eq!(
        parse(bytes, &addrs).unwrap(),
        Repr::EchoReply {
            ident,
            seq_no: 1,
            data,
        }
    );
}

#[test]
fn test_parse_errors() {
    // Each error quotes the packet before it, as the guest sent it; the packet too big cuts
    // it to fit the minimum MTU.
    let expected = [
        (1, Message::DstUnreachable, 4),
        (3, Message::DstUnreachable, 0),
        (5, Message::TimeExceeded, 0),
        (7, Message::PacketTooBig, 0),
        (9, Message::ParamProblem, 1),
    ];
    for (index, msg_type, code) in expected {
        let (bytes, addrs) = upper(ERRORS, index);
        let packet = Packet::new_checked(bytes).unwrap();
        assert_eq!((packet.msg_type(), packet.msg_code()), (msg_type, code));
        assert!(msg_type.is_error() && !msg_type.is_ndp());
        let repr = parse(bytes, &addrs).unwrap();
        let (Repr::DstUnreachable { invoking, .. }
        | Repr::PacketTooBig { invoking, .. }
        | Repr::TimeExceeded { invoking, .. }
        | Repr::ParamProblem { invoking, .. }) = repr
        else {
            panic!("not an error: {repr:?}");
        };
        let original = ip(ERRORS, index - 1);
        assert_eq!(invoking, &original[..invoking.len()]);
        assert!(invoking.len() <= MAX_QUOTE_LEN);
    }
    let reprs: Vec<_> = expected
        .iter()
        .map(|&(index, ..)| {
            let (bytes, addrs) = upper(ERRORS, index);
            parse(bytes, &addrs).unwrap()
        })
        .collect();
    assert!(matches!(
        reprs[0],
        Repr::DstUnreachable {
            reason: DstUnreachable::PortUnreachable,
            ..
        }
    ));
    assert!(matches!(
        reprs[1],
        Repr::DstUnreachable {
            reason: DstUnreachable::NoRoute,
            ..
        }
    ));
    assert!(matches!(
        reprs[2],
        Repr::TimeExceeded {
            reason: TimeExceeded::HopLimitExceeded,
            ..
        }
    ));
    assert!(
        matches!(reprs[3], Repr::PacketTooBig { mtu: 1280, invoking } if invoking.len() == MAX_QUOTE_LEN)
    );
    // RFC 4443 §3.4: the pointer is the offset of the next header field.
    assert!(matches!(
        reprs[4],
        Repr::ParamProblem {
            reason: ParamProblem::UnrecognizedNextHeader,
            pointer: 6,
            ..
        }
    ));
}

#[test]
fn test_parse_reassembled_echo() {
    // The fragments of a 3000-byte ping put back together are one echo request.
    let mut message = Vec::new();
    let mut addrs = None;
    for index in 0..3 {
        let packet = ipv6::Packet::new_checked(ip(FRAGMENTS, index)).unwrap();
        let chain = packet.header_chain().unwrap();
        message.extend_from_slice(&packet.payload()[chain.offset..]);
        addrs = Some(Addresses::V6 {
            src: packet.src_addr(),
            dst: packet.dst_addr(),
        });
    }
    let repr = parse(&message, &addrs.unwrap()).unwrap();
    assert!(matches!(repr, Repr::EchoRequest { data, .. } if data.len() == 3000));
}

#[test]
fn test_emit() {
    // Every message, NDP included, rebuilt from its Repr with the kernel's checksum.
    for (bytes, addrs) in all_messages() {
        let repr = parse(bytes, &addrs).unwrap();
        assert_eq!(repr.buffer_len(), bytes.len(), "{repr:?}");
        let mut out = vec![0xa5u8; repr.buffer_len()];
        repr.emit(&mut Packet::new_unchecked(&mut out[..]), &addrs);
        assert_eq!(out, bytes, "{repr:?}");
    }
}

#[test]
fn bad_checksum_is_refused() {
    for (bytes, addrs) in all_messages() {
        let mut bytes = bytes.to_vec();
        bytes[2] ^= 0x01;
        assert_eq!(parse(&bytes, &addrs), Err(Error::BadChecksum));
    }
    // The pseudo-header counts: the same message to another address is refused.
    let (bytes, _) = upper(ECHO, 0);
    let elsewhere = Addresses::V6 {
        src: GUEST,
        dst: "fd00:127::3".parse().unwrap(),
    };
    assert_eq!(parse(bytes, &elsewhere), Err(Error::BadChecksum));
    let v4 = Addresses::V4 {
        src: [192, 168, 127, 2].into(),
        dst: [192, 168, 127, 1].into(),
    };
    assert_eq!(parse(bytes, &v4), Err(Error::NotIpv6));
    assert!(!Packet::new_checked(bytes).unwrap().verify_checksum(&v4));
}

#[test]
fn every_truncation_is_refused() {
    for (bytes, addrs) in all_messages() {
        for cut in 0..bytes.len() {
            let result = parse(&bytes[..cut], &addrs);
            let expected = if cut < HEADER_LEN {
                Error::Truncated
            } else {
                Error::BadChecksum
            };
            assert_eq!(result, Err(expected), "cut at {cut}");
        }
    }
}

#[test]
fn unsupported_types_are_refused() {
    // MLDv2 reports (RFC 3810) behind a hop-by-hop header.
    for index in 0..4 {
        let (bytes, addrs) = upper(HOP_BY_HOP, index);
        assert_eq!(
            Packet::new_checked(bytes).unwrap().msg_type(),
            Message::MldV2Report
        );
        assert_eq!(parse(bytes, &addrs), Err(Error::UnsupportedType));
    }
    let (bytes, addrs) = upper(ECHO, 0);
    let mut unknown = bytes.to_vec();
    unknown[0] = 200;
    let unknown = fixed(unknown, &addrs);
    assert_eq!(parse(&unknown, &addrs), Err(Error::UnsupportedType));
}

#[test]
fn echo_code_must_be_zero() {
    let (bytes, addrs) = upper(ECHO, 0);
    let mut changed = bytes.to_vec();
    changed[1] = 1;
    let changed = fixed(changed, &addrs);
    assert_eq!(parse(&changed, &addrs), Err(Error::BadCode));
}

#[test]
fn ndp_errors_come_through() {
    // A neighbour solicitation whose option length is zero (RFC 4861 §4.6).
    let (bytes, addrs) = upper(NEIGHBOUR, 0);
    let mut changed = bytes.to_vec();
    changed[25] = 0;
    let changed = fixed(changed, &addrs);
    assert_eq!(
        parse(&changed, &addrs),
        Err(Error::Ndp(ndp::Error::OptionZeroLength))
    );
    // Cut inside its fixed part.
    let changed = fixed(bytes[..20].to_vec(), &addrs);
    assert_eq!(
        parse(&changed, &addrs),
        Err(Error::Ndp(ndp::Error::Truncated))
    );
}

#[test]
fn message_numbers_round_trip() {
    for n in 0..=255u8 {
        assert_eq!(u8::from(Message::from(n)), n);
        assert_eq!(u8::from(DstUnreachable::from(n)), n);
        assert_eq!(u8::from(TimeExceeded::from(n)), n);
        assert_eq!(u8::from(ParamProblem::from(n)), n);
        assert_eq!(Message::from(n).is_error(), n < 128);
    }
}

fn arb_bytes() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..100)
}

/// A message and the bytes it borrows.
#[derive(Debug, Clone)]
enum Owned {
    Echo(bool, u16, u16, Vec<u8>),
    Unreachable(u8, Vec<u8>),
    TooBig(u32, Vec<u8>),
    Exceeded(u8, Vec<u8>),
    Problem(u8, u32, Vec<u8>),
}

impl Owned {
    fn repr(&self) -> Repr<'_> {
        match self {
            Owned::Echo(true, ident, seq_no, data) => Repr::EchoRequest {
                ident: *ident,
                seq_no: *seq_no,
                data,
            },
            Owned::Echo(false, ident, seq_no, data) => Repr::EchoReply {
                ident: *ident,
                seq_no: *seq_no,
                data,
            },
            Owned::Unreachable(code, invoking) => Repr::DstUnreachable {
                reason: DstUnreachable::from(*code),
                invoking,
            },
            Owned::TooBig(mtu, invoking) => Repr::PacketTooBig {
                mtu: *mtu,
                invoking,
            },
            Owned::Exceeded(code, invoking) => Repr::TimeExceeded {
                reason: TimeExceeded::from(*code),
                invoking,
            },
            Owned::Problem(code, pointer, invoking) => Repr::ParamProblem {
                reason: ParamProblem::from(*code),
                pointer: *pointer,
                invoking,
            },
        }
    }
}

fn arb_owned() -> impl Strategy<Value = Owned> {
    prop_oneof![
        (any::<bool>(), any::<u16>(), any::<u16>(), arb_bytes())
            .prop_map(|(r, i, s, d)| Owned::Echo(r, i, s, d)),
        (any::<u8>(), arb_bytes()).prop_map(|(c, d)| Owned::Unreachable(c, d)),
        (any::<u32>(), arb_bytes()).prop_map(|(m, d)| Owned::TooBig(m, d)),
        (any::<u8>(), arb_bytes()).prop_map(|(c, d)| Owned::Exceeded(c, d)),
        (any::<u8>(), any::<u32>(), arb_bytes()).prop_map(|(c, p, d)| Owned::Problem(c, p, d)),
    ]
}

fn arb_addrs() -> impl Strategy<Value = Addresses> {
    (any::<[u8; 16]>(), any::<[u8; 16]>()).prop_map(|(s, d)| Addresses::V6 {
        src: s.into(),
        dst: d.into(),
    })
}

proptest! {
    #[test]
    fn emit_parse_round_trip(owned in arb_owned(), addrs in arb_addrs()) {
        let repr = owned.repr();
        let mut bytes = vec![0u8; repr.buffer_len()];
        repr.emit(&mut Packet::new_unchecked(&mut bytes[..]), &addrs);
        prop_assert_eq!(parse(&bytes, &addrs), Ok(repr));
    }

    #[test]
    fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..120),
                             addrs in arb_addrs(), msg_type in 0u8..8, fix in any::<bool>()) {
        // Bias the type towards the ones we parse, and make the checksum right half the time
        // so the parsers behind it are reached.
        let mut bytes = bytes;
        if let Some(first) = bytes.first_mut() {
            *first = [1, 2, 3, 4, 128, 133, 134, 135][usize::from(msg_type)];
        }
        if bytes.len() >= HEADER_LEN && fix {
            bytes = fixed(bytes, &addrs);
        }
        if let Ok(packet) = Packet::new_checked(&bytes[..]) {
            let _ = Repr::parse(&packet, &addrs);
            let _ = (packet.mtu(), packet.pointer(), packet.payload());
        }
    }
}
