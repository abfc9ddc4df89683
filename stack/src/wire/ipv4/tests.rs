use super::*;
use crate::wire::{ethernet, fixtures};
use proptest::prelude::*;

const ECHO: &[u8] = include_bytes!("../fixtures/icmpv4_echo.pcap");
const UNREACHABLE: &[u8] = include_bytes!("../fixtures/icmpv4_unreachable.pcap");
const OPTIONS: &[u8] = include_bytes!("../fixtures/ipv4_options.pcap");
const FRAGMENTS: &[u8] = include_bytes!("../fixtures/ipv4_fragments.pcap");
const TIME_EXCEEDED: &[u8] = include_bytes!("../fixtures/icmpv4_time_exceeded.pcap");
const FRAG_NEEDED: &[u8] = include_bytes!("../fixtures/icmpv4_frag_needed.pcap");

/// Every capture holding IPv4 frames.
const ALL: [&[u8]; 6] = [
    ECHO,
    UNREACHABLE,
    OPTIONS,
    FRAGMENTS,
    TIME_EXCEEDED,
    FRAG_NEEDED,
];

const GUEST: Ipv4Addr = Ipv4Addr::new(192, 168, 127, 2);
const GATEWAY: Ipv4Addr = Ipv4Addr::new(192, 168, 127, 1);

/// The IPv4 datagram in frame `index` of a capture.
fn ip(pcap: &'static [u8], index: usize) -> &'static [u8] {
    ethernet::Packet::new_checked(fixtures::frame(pcap, index))
        .unwrap()
        .payload()
}

fn parse(bytes: &[u8]) -> Result<Repr, Error> {
    Repr::parse(&Packet::new_checked(bytes)?)
}

/// `bytes` changed by `change`, with the header checksum made right again.
fn changed(bytes: &[u8], change: impl FnOnce(&mut Packet<&mut [u8]>)) -> Vec<u8> {
    let mut bytes = bytes.to_vec();
    let mut packet = Packet::new_unchecked(&mut bytes[..]);
    change(&mut packet);
    packet.fill_checksum();
    bytes
}

#[test]
fn test_parse() {
    let request = parse(ip(ECHO, 0)).unwrap();
    assert_eq!(
        request,
        Repr {
            src_addr: GUEST,
            dst_addr: GATEWAY,
            next_header: Protocol::Icmp,
            payload_len: 64,
            hop_limit: 64,
            ident: 44272,
            dont_frag: true,
            more_frags: false,
            frag_offset: 0,
            dscp: 0,
            ecn: 0,
        }
    );
    assert!(!request.is_fragment());
    let reply = parse(ip(ECHO, 1)).unwrap();
    assert_eq!((reply.src_addr, reply.dst_addr), (GATEWAY, GUEST));
    assert_eq!((reply.ident, reply.dont_frag), (54643, false));
    let packet = Packet::new_checked(ip(ECHO, 1)).unwrap();
    assert_eq!(packet.header_len(), 20);
    assert!(packet.options().is_empty());
    assert_eq!(packet.payload()[0], 0, "an ICMP echo reply");
}

#[test]
fn test_parse_dscp() {
    // Linux sends its ICMP errors with TOS 0xc0: class selector 6, not ECN-capable.
    let repr = parse(ip(UNREACHABLE, 1)).unwrap();
    assert_eq!((repr.dscp, repr.ecn), (48, 0));
    assert_eq!(repr.payload_len, 38);
}

#[test]
fn test_parse_options() {
    for index in 0..2 {
        let bytes = ip(OPTIONS, index);
        let packet = Packet::new_checked(bytes).unwrap();
        assert_eq!(packet.header_len(), 60);
        assert_eq!(packet.options().len(), 40);
        let repr = Repr::parse(&packet).unwrap();
        assert_eq!(repr.payload_len, 64);
        assert_eq!(packet.payload(), &bytes[60..]);
    }
    // The request's options: NOP, then Record Route (type 7, 39 bytes, pointer 8) holding
    // the guest's address.
    let options = Packet::new_checked(ip(OPTIONS, 0)).unwrap().options();
    assert_eq!(options[..8], [1, 7, 39, 8, 192, 168, 127, 2]);
}

#[test]
fn test_parse_fragments() {
    // A 3008-byte ICMP message in 1480 + 1480 + 48 bytes, each way.
    let expected = [(0, true, 1480), (1480, true, 1480), (2960, false, 48)];
    for (direction, ident) in [(0, 44840), (3, 55320)] {
        for (i, &(offset, more, len)) in expected.iter().enumerate() {
            let repr = parse(ip(FRAGMENTS, direction + i)).unwrap();
            assert_eq!(repr.ident, ident);
            assert_eq!(repr.frag_offset, offset);
            assert_eq!(repr.more_frags, more);
            assert_eq!(repr.payload_len, len);
            assert!(repr.is_fragment() && !repr.dont_frag);
            let packet = Packet::new_checked(ip(FRAGMENTS, direction + i)).unwrap();
            assert!(packet.is_fragment());
            assert_eq!(packet.frag_offset(), offset);
        }
    }
}

#[test]
fn test_emit() {
    // Every option-less header the kernel sent, fragments and ICMP errors included.
    for pcap in [ECHO, UNREACHABLE, FRAGMENTS, TIME_EXCEEDED, FRAG_NEEDED] {
        for (index, frame) in fixtures::frames(pcap).into_iter().enumerate() {
            let bytes = ethernet::Packet::new_checked(frame).unwrap().payload();
            let repr = parse(bytes).unwrap();
            let mut out = vec![0u8; repr.total_len()];
            let mut packet = Packet::new_unchecked(&mut out[..]);
            repr.emit(&mut packet);
            packet.payload_mut().copy_from_slice(&bytes[HEADER_LEN..]);
            assert_eq!(out, bytes, "frame {index}");
        }
    }
}

#[test]
fn emit_drops_options() {
    let repr = parse(ip(OPTIONS, 0)).unwrap();
    let mut out = vec![0u8; repr.total_len()];
    repr.emit(&mut Packet::new_unchecked(&mut out[..]));
    let packet = Packet::new_checked(&out[..]).unwrap();
    assert_eq!((packet.header_len(), packet.total_len()), (20, 84));
    assert_eq!(Repr::parse(&packet), Ok(repr));
}

#[test]
fn payload_stops_at_total_length() {
    // The 30-byte UDP datagram, padded as it would be in a minimum-size Ethernet frame.
    let bytes = ip(UNREACHABLE, 0);
    assert_eq!(bytes.len(), 30);
    let mut padded = bytes.to_vec();
    padded.resize(46, 0);
    let packet = Packet::new_checked(&padded[..]).unwrap();
    assert_eq!(packet.payload(), &bytes[HEADER_LEN..]);
    assert_eq!(Repr::parse(&packet), parse(bytes));
}

#[test]
fn quoted_datagram_may_be_cut_short() {
    // The 1228-byte echo request, quoted in fragmentation needed after the 8-byte ICMP header
    // and cut at 576 bytes in all.
    let quote = &ip(FRAG_NEEDED, 1)[HEADER_LEN + 8..];
    assert_eq!(Packet::new_checked(quote).err(), Some(Error::Truncated));
    let packet = Packet::new_quoted(quote).unwrap();
    assert_eq!(packet.total_len(), 1228);
    assert_eq!(packet.payload(), &quote[HEADER_LEN..]);
    assert!(packet.verify_checksum() && packet.dont_frag());
    assert_eq!(packet.dst_addr(), Ipv4Addr::new(192, 168, 128, 2));
    // Shorter than its header, it is refused all the same.
    assert_eq!(
        Packet::new_quoted(&quote[..19]).err(),
        Some(Error::Truncated)
    );
}

#[test]
fn truncated_is_refused() {
    let bytes = ip(ECHO, 0);
    assert_eq!(parse(&bytes[..19]), Err(Error::Truncated));
    assert_eq!(parse(&bytes[..83]), Err(Error::Truncated));
    // The header length says 60, the buffer holds 40.
    let long_header = changed(bytes, |p| p.set_version_and_header_len(60));
    assert_eq!(parse(&long_header[..40]), Err(Error::Truncated));
}

#[test]
fn bad_version_is_refused() {
    let mut bytes = ip(ECHO, 0).to_vec();
    bytes[0] = 0x65;
    assert_eq!(parse(&bytes), Err(Error::BadVersion));
    bytes[0] = 0x05;
    assert_eq!(parse(&bytes), Err(Error::BadVersion));
}

#[test]
fn bad_header_length_is_refused() {
    for ihl in 0..5 {
        let mut bytes = ip(ECHO, 0).to_vec();
        bytes[0] = 0x40 | ihl;
        assert_eq!(parse(&bytes), Err(Error::BadHeaderLength), "IHL {ihl}");
    }
}

#[test]
fn bad_total_length_is_refused() {
    let short = changed(ip(ECHO, 0), |p| p.set_total_len(19));
    assert_eq!(parse(&short), Err(Error::BadTotalLength));
    // With options, the total length must cover them too.
    let short = changed(ip(OPTIONS, 0), |p| p.set_total_len(40));
    assert_eq!(parse(&short), Err(Error::BadTotalLength));
}

#[test]
fn bad_checksum_is_refused() {
    let mut bytes = ip(ECHO, 0).to_vec();
    bytes[8] -= 1; // the TTL, as a router would lower it without fixing the checksum
    assert_eq!(parse(&bytes), Err(Error::BadChecksum));
    let mut bytes = ip(OPTIONS, 0).to_vec();
    bytes[40] ^= 1; // inside the options
    assert_eq!(parse(&bytes), Err(Error::BadChecksum));
}

#[test]
fn any_header_bit_flip_is_refused() {
    for pcap in [ECHO, OPTIONS] {
        let bytes = ip(pcap, 0);
        let header_len = usize::from(Packet::new_checked(bytes).unwrap().header_len());
        for bit in 0..header_len * 8 {
            let mut flipped = bytes.to_vec();
            flipped[bit / 8] ^= 0x80 >> (bit % 8);
            assert!(parse(&flipped).is_err(), "bit {bit}");
        }
    }
}

#[test]
fn bad_fragment_is_refused() {
    // 10 bytes of UDP payload cannot be followed by another fragment.
    let misaligned = changed(ip(UNREACHABLE, 0), |p| p.set_fragment(false, true, 0));
    assert_eq!(parse(&misaligned), Err(Error::BadFragment));
    // 64 bytes at offset 65528 would reach past 65535.
    let oversize = changed(ip(ECHO, 0), |p| p.set_fragment(false, false, 65528));
    assert_eq!(parse(&oversize), Err(Error::BadFragment));
    // The last fragment of the largest datagram ends at 65535 exactly; one byte more is too many.
    for (payload_len, fits) in [(67, true), (68, false)] {
        let mut bytes = ip(ECHO, 0).to_vec();
        bytes.resize(HEADER_LEN + payload_len, 0);
        let last = changed(&bytes, |p| {
            p.set_total_len(bytes.len() as u16);
            p.set_fragment(false, false, 65448);
        });
        let expected = if fits {
            Ok(payload_len)
        } else {
            Err(Error::BadFragment)
        };
        assert_eq!(parse(&last).map(|r| r.payload_len), expected);
    }
}

#[test]
fn reserved_flag_is_ignored() {
    let mut evil = ip(ECHO, 0).to_vec();
    evil[6] |= 0x80;
    Packet::new_unchecked(&mut evil[..]).fill_checksum();
    assert_eq!(parse(&evil), parse(ip(ECHO, 0)));
}

#[test]
fn every_truncation_is_rejected() {
    for pcap in ALL {
        for frame in fixtures::frames(pcap) {
            let bytes = ethernet::Packet::new_checked(frame).unwrap().payload();
            for cut in 0..bytes.len() {
                assert!(parse(&bytes[..cut]).is_err(), "cut at {cut}");
            }
        }
    }
}

fn arb_repr() -> impl Strategy<Value = Repr> {
    (
        (
            any::<[u8; 4]>(),
            any::<[u8; 4]>(),
            any::<u8>(),
            0usize..1500,
        ),
        (any::<u8>(), any::<u16>(), any::<bool>(), any::<bool>()),
        (0u16..=8191, 0u8..64, 0u8..4),
    )
        .prop_map(
            |((src, dst, proto, len), (ttl, ident, df, mf), (units, dscp, ecn))| {
                // A fragment that is not the last carries a multiple of 8 bytes, and none reaches
                // past 65535.
                let payload_len = if mf { len & !7 } else { len };
                let frag_offset =
                    (units << 3).min((MAX_PACKET_LEN - HEADER_LEN - payload_len) as u16 & !7);
                Repr {
                    src_addr: Ipv4Addr::from(src),
                    dst_addr: Ipv4Addr::from(dst),
                    next_header: Protocol::from(proto),
                    payload_len,
                    hop_limit: ttl,
                    ident,
                    dont_frag: df,
                    more_frags: mf,
                    frag_offset,
                    dscp,
                    ecn,
                }
            },
        )
}

proptest! {
    #[test]
    fn emit_parse_round_trip(repr in arb_repr()) {
        let mut bytes = vec![0u8; repr.total_len()];
        repr.emit(&mut Packet::new_unchecked(&mut bytes[..]));
        prop_assert_eq!(parse(&bytes), Ok(repr));
    }

    #[test]
    fn any_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..128),
                             version_4 in any::<bool>()) {
        if version_4 && !bytes.is_empty() {
            bytes[0] = 0x40 | (bytes[0] & 0x0f);
        }
        for packet in [Packet::new_checked(&bytes[..]), Packet::new_quoted(&bytes[..])]
            .into_iter()
            .flatten()
        {
            let _ = Repr::parse(&packet);
            let _ = (packet.options(), packet.payload(), packet.verify_checksum());
            let _ = (packet.frag_offset(), packet.is_fragment(), packet.next_header());
        }
    }
}
