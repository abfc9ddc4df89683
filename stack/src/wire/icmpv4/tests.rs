use super::*;
use crate::wire::ip::Protocol;
use crate::wire::{ethernet, fixtures};
use core::net::Ipv4Addr;
use proptest::prelude::*;

const ECHO: &[u8] = include_bytes!("../fixtures/icmpv4_echo.pcap");
const UNREACHABLE: &[u8] = include_bytes!("../fixtures/icmpv4_unreachable.pcap");
const OPTIONS: &[u8] = include_bytes!("../fixtures/ipv4_options.pcap");
const TIME_EXCEEDED: &[u8] = include_bytes!("../fixtures/icmpv4_time_exceeded.pcap");
const FRAG_NEEDED: &[u8] = include_bytes!("../fixtures/icmpv4_frag_needed.pcap");

/// Every whole ICMP message the kernel sent in the captures: (capture, frame).
const MESSAGES: [(&[u8], usize); 7] = [
    (ECHO, 0),
    (ECHO, 1),
    (OPTIONS, 0),
    (OPTIONS, 1),
    (UNREACHABLE, 1),
    (TIME_EXCEEDED, 1),
    (FRAG_NEEDED, 1),
];

/// The IPv4 datagram in frame `index` of a capture.
fn ip(pcap: &'static [u8], index: usize) -> &'static [u8] {
    ethernet::Packet::new_checked(fixtures::frame(pcap, index))
        .unwrap()
        .payload()
}

/// The ICMP message in frame `index` of a capture.
fn icmp(pcap: &'static [u8], index: usize) -> &'static [u8] {
    ipv4::Packet::new_checked(ip(pcap, index))
        .unwrap()
        .payload()
}

fn parse(bytes: &[u8]) -> Result<Repr<'_>, Error> {
    Repr::parse(&Packet::new_checked(bytes)?)
}

fn emit(repr: &Repr<'_>) -> Vec<u8> {
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut Packet::new_unchecked(&mut out[..]));
    out
}

/// `bytes` changed by `change`, with the checksum made right again.
fn changed(bytes: &[u8], change: impl FnOnce(&mut [u8])) -> Vec<u8> {
    let mut bytes = bytes.to_vec();
    change(&mut bytes);
    Packet::new_unchecked(&mut bytes[..]).fill_checksum();
    bytes
}

#[test]
fn test_parse_echo() {
    let request = icmp(ECHO, 0);
    let repr = parse(request).unwrap();
    assert_eq!(
        repr,
        Repr::EchoRequest {
            ident: 10662,
            seq_no: 1,
            data: &request[8..],
        }
    );
    assert_eq!(repr.buffer_len(), 64);
    // ping's data: a 16-byte timestamp, then its -p pattern repeated.
    assert!(request[24..].starts_with(b"switchhost-switch"));
    assert_eq!(repr.quoted(), None);
    let reply = parse(icmp(ECHO, 1)).unwrap();
    assert_eq!(
        reply,
        Repr::EchoReply {
            ident: 10662,
            seq_no: 1,
            data: &request[8..],
        }
    );
}

#[test]
fn test_parse_port_unreachable() {
    let repr = parse(icmp(UNREACHABLE, 1)).unwrap();
    let datagram = ip(UNREACHABLE, 0);
    assert_eq!(
        repr,
        Repr::DstUnreachable {
            reason: DstUnreachable::PortUnreachable,
            data: datagram,
        }
    );
    // The quote is the guest's whole UDP datagram: enough to find the flow it belongs to.
    let quoted = repr.quoted_packet().unwrap();
    assert_eq!(quoted.src_addr(), Ipv4Addr::new(192, 168, 127, 2));
    assert_eq!(quoted.dst_addr(), Ipv4Addr::new(192, 168, 127, 1));
    assert_eq!(quoted.next_header(), Protocol::Udp);
    assert_eq!(quoted.payload()[..4], [0x81, 0xfa, 0, 9], "ports 33274 → 9");
    assert!(ipv4::Repr::parse(&quoted).is_ok());
}

#[test]
fn test_parse_time_exceeded() {
    let repr = parse(icmp(TIME_EXCEEDED, 1)).unwrap();
    assert_eq!(
        repr,
        Repr::TimeExceeded {
            reason: TimeExceeded::TtlExpired,
            data: ip(TIME_EXCEEDED, 0),
        }
    );
    assert_eq!(repr.quoted_packet().unwrap().hop_limit(), 1);
}

#[test]
fn test_parse_frag_needed() {
    let repr = parse(icmp(FRAG_NEEDED, 1)).unwrap();
    // 576 bytes in all: 20 of IPv4 header and 8 of ICMP header leave 548 of the quote.
    let quote = &ip(FRAG_NEEDED, 0)[..548];
    assert_eq!(
        repr,
        Repr::DstUnreachable {
            reason: DstUnreachable::FragNeeded { next_hop_mtu: 1000 },
            data: quote,
        }
    );
    let quoted = repr.quoted_packet().unwrap();
    assert_eq!((quoted.total_len(), quoted.payload().len()), (1228, 528));
    assert_eq!(quoted.payload()[..8], icmp(FRAG_NEEDED, 0)[..8]);
}

#[test]
fn test_emit() {
    for (pcap, index) in MESSAGES {
        let bytes = icmp(pcap, index);
        assert_eq!(emit(&parse(bytes).unwrap()), bytes, "frame {index}");
    }
}

#[test]
fn echo_reply_from_request_matches_the_kernel() {
    // What an echo responder does: the request's ident, sequence number and data, returned.
    let Ok(Repr::EchoRequest {
        ident,
        seq_no,
        data,
    }) = parse(icmp(ECHO, 0))
    else {
        panic!("not an echo request");
    };
    let reply = Repr::EchoReply {
        ident,
        seq_no,
        data,
    };
    assert_eq!(emit(&reply), icmp(ECHO, 1));
}

#[test]
fn every_code_round_trips() {
    let quote = ip(UNREACHABLE, 0);
    for code in 0..=255u8 {
        match DstUnreachable::from_code(code, 1280) {
            Some(reason) => {
                assert_eq!(reason.code(), code);
                let repr = Repr::DstUnreachable {
                    reason,
                    data: quote,
                };
                assert_eq!(parse(&emit(&repr)), Ok(repr));
            }
            None => assert!(code > 15),
        }
        match TimeExceeded::from_code(code) {
            Some(reason) => assert_eq!(reason.code(), code),
            None => assert!(code > 1),
        }
        assert_eq!(u8::from(Message::from(code)), code);
    }
}

#[test]
fn truncated_is_refused() {
    let bytes = icmp(ECHO, 0);
    for cut in 0..HEADER_LEN {
        assert_eq!(parse(&bytes[..cut]), Err(Error::Truncated));
    }
}

#[test]
fn bad_checksum_is_refused() {
    let mut bytes = icmp(ECHO, 0).to_vec();
    bytes[63] ^= 0x20;
    assert_eq!(parse(&bytes), Err(Error::BadChecksum));
    let mut bytes = icmp(UNREACHABLE, 1).to_vec();
    bytes[2] ^= 0x01;
    assert_eq!(parse(&bytes), Err(Error::BadChecksum));
}

#[test]
fn unsupported_type_is_refused() {
    // Redirect, router advertisement, parameter problem, timestamp, an unassigned number.
    for msg_type in [5, 9, 12, 13, 200] {
        let bytes = changed(icmp(UNREACHABLE, 1), |b| b[0] = msg_type);
        assert_eq!(
            parse(&bytes),
            Err(Error::UnsupportedType),
            "type {msg_type}"
        );
    }
}

#[test]
fn bad_code_is_refused() {
    for (pcap, index, code) in [(UNREACHABLE, 1, 16), (TIME_EXCEEDED, 1, 2)] {
        let bytes = changed(icmp(pcap, index), |b| b[1] = code);
        assert_eq!(parse(&bytes), Err(Error::BadCode), "code {code}");
    }
}

#[test]
fn echo_code_is_ignored() {
    // RFC 792 gives echo code 0 only, but Linux answers any (nmap's OS detection sends 9).
    for (index, code) in [(0, 1), (0, 9), (1, 8)] {
        let original = parse(icmp(ECHO, index)).unwrap();
        let bytes = changed(icmp(ECHO, index), |b| b[1] = code);
        assert_eq!(parse(&bytes), Ok(original), "code {code}");
    }
}

#[test]
fn bad_quote_is_refused() {
    let bytes = icmp(TIME_EXCEEDED, 1);
    // An IPv4 header and 7 bytes of data: one short of what RFC 792 asks.
    let short = changed(&bytes[..HEADER_LEN + 27], |_| ());
    assert_eq!(parse(&short), Err(Error::BadQuote));
    // An IPv6 header is not an IPv4 header.
    let v6 = changed(bytes, |b| b[HEADER_LEN] = 0x60);
    assert_eq!(parse(&v6), Err(Error::BadQuote));
    // A quoted header with options needs them and 8 bytes more.
    let options = changed(&bytes[..HEADER_LEN + 31], |b| b[HEADER_LEN] = 0x46);
    assert_eq!(parse(&options), Err(Error::BadQuote));
    let options = changed(&bytes[..HEADER_LEN + 32], |b| b[HEADER_LEN] = 0x46);
    assert!(parse(&options).is_ok());
    // A datagram with less than 8 bytes of data is quoted whole, and that is enough.
    let whole = changed(&bytes[..HEADER_LEN + 24], |b| {
        b[HEADER_LEN + 2..HEADER_LEN + 4].copy_from_slice(&24u16.to_be_bytes());
    });
    assert!(parse(&whole).is_ok());
}

/// ICMP has no length of its own: a message is what its IPv4 total length says, and a cut
/// there is the IPv4 parser's to catch. Here every cut is caught by the header length, the
/// checksum or the quote check, except one the checksum cannot see: dropping trailing zero
/// bytes does not change a ones' complement sum (the captured echo data ends in a zero).
#[test]
fn every_truncation_is_rejected() {
    for (pcap, index) in MESSAGES {
        let bytes = icmp(pcap, index);
        for cut in 0..bytes.len() {
            let zeros_cut = bytes[cut..].iter().all(|&b| b == 0);
            assert!(
                parse(&bytes[..cut]).is_err() || zeros_cut,
                "frame {index} cut at {cut}"
            );
        }
    }
    let echo = icmp(ECHO, 0);
    assert_eq!(echo.last(), Some(&0));
    assert!(parse(&echo[..echo.len() - 1]).is_ok());
    assert!(ipv4::Packet::new_checked(&ip(ECHO, 0)[..83]).is_err());
}

/// A message of each kind, as owned parts, for [`with_repr`].
fn arb_parts() -> impl Strategy<Value = (u8, u16, u16, u8, Vec<u8>)> {
    (
        0u8..4,
        any::<u16>(),
        any::<u16>(),
        any::<u8>(),
        proptest::collection::vec(any::<u8>(), 0..600),
    )
}

/// The `Repr` that `parts` describe; an error's data is made a plausible quote.
fn with_repr<R>(parts: &mut (u8, u16, u16, u8, Vec<u8>), f: impl FnOnce(Repr<'_>) -> R) -> R {
    let (kind, a, b, code, data) = parts;
    if *kind >= 2 {
        data.resize(data.len().max(28), 0);
        data[0] = 0x45;
        data[2..4].copy_from_slice(&(*a).max(20).to_be_bytes());
    }
    let (a, b, code, data) = (*a, *b, *code, &data[..]);
    f(match kind {
        0 => Repr::EchoRequest {
            ident: a,
            seq_no: b,
            data,
        },
        1 => Repr::EchoReply {
            ident: a,
            seq_no: b,
            data,
        },
        2 => Repr::DstUnreachable {
            reason: DstUnreachable::from_code(code % 16, b).unwrap(),
            data,
        },
        _ => Repr::TimeExceeded {
            reason: TimeExceeded::from_code(code % 2).unwrap(),
            data,
        },
    })
}

proptest! {
    #[test]
    fn emit_parse_round_trip(mut parts in arb_parts()) {
        with_repr(&mut parts, |repr| {
            let bytes = emit(&repr);
            prop_assert_eq!(parse(&bytes), Ok(repr));
            Ok(())
        })?;
    }

    #[test]
    fn any_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..128),
                             fix_checksum in any::<bool>()) {
        if fix_checksum && bytes.len() >= HEADER_LEN {
            Packet::new_unchecked(&mut bytes[..]).fill_checksum();
        }
        if let Ok(packet) = Packet::new_checked(&bytes[..]) {
            let _ = (packet.msg_type(), packet.echo_ident(), packet.next_hop_mtu(), packet.data());
            if let Ok(repr) = Repr::parse(&packet)
                && let Some(quoted) = repr.quoted_packet() {
                    let _ = (quoted.payload(), quoted.options(), ipv4::Repr::parse(&quoted));
                }
        }
    }
}
