use super::*;
use proptest::prelude::*;

/// A header as Linux's tun writes it before a TCP/IPv4 super-segment of a connection with
/// timestamps: NEEDS_CSUM, TCPV4, 66 bytes of headers, 1448-byte segments, the checksum at
/// 34 + 16.
const TSO4: [u8; 12] = [
    0x01, 0x01, 0x42, 0x00, 0xa8, 0x05, 0x22, 0x00, 0x10, 0x00, 0x00, 0x00,
];

fn ipv4_tcp_frame(len: usize) -> Vec<u8> {
    let mut frame = vec![0u8; len.max(54)];
    frame[12] = 0x08;
    frame[13] = 0x00;
    frame[14] = 0x45;
    frame[14 + 9] = 6;
    frame
}

fn ipv6_frame(next_header: u8) -> Vec<u8> {
    let mut frame = vec![0u8; 14 + 40 + 20];
    frame[12] = 0x86;
    frame[13] = 0xdd;
    frame[14] = 0x60;
    frame[14 + 6] = next_header;
    frame
}

#[test]
fn test_parse() {
    let repr = Repr::parse(&Header::new_checked(&TSO4[..]).unwrap()).unwrap();
    assert_eq!(
        repr,
        Repr {
            partial: Some(PartialChecksum {
                start: 34,
                offset: 16
            }),
            data_valid: false,
            gso: Gso::Tcpv4,
            ecn: false,
            gso_size: 1448,
            hdr_len: 66,
        }
    );
    assert!(repr.is_gso() && repr.needs_finishing());
    assert_eq!(repr.checksums(), ChecksumCapabilities::transport_vouched());
}

#[test]
fn test_emit() {
    let repr = Repr::parse(&Header::new_checked(&TSO4[..]).unwrap()).unwrap();
    assert_eq!(repr.to_bytes(), TSO4);
    assert_eq!(Repr::PLAIN.to_bytes(), [0u8; HEADER_LEN]);
}

#[test]
fn plain_header_changes_nothing() {
    let repr = Repr::parse(&Header::new_checked(&[0u8; 12][..]).unwrap()).unwrap();
    assert_eq!(repr, Repr::PLAIN);
    assert!(!repr.needs_finishing());
    assert_eq!(repr.checksums(), ChecksumCapabilities::default());
    assert_eq!(repr.check_frame(&[]), Ok(()));
}

#[test]
fn data_valid_vouches_for_the_transport() {
    let mut bytes = [0u8; 12];
    bytes[0] = 2;
    let repr = Repr::parse(&Header::new_checked(&bytes[..]).unwrap()).unwrap();
    assert!(repr.data_valid && !repr.needs_finishing());
    assert!(!repr.checksums().tcp.rx());
}

#[test]
fn short_buffers_are_refused() {
    for n in 0..HEADER_LEN {
        assert_eq!(
            Header::new_checked(&TSO4[..n]).unwrap_err(),
            Error::Truncated
        );
    }
}

#[test]
fn unknown_or_inconsistent_headers_are_refused() {
    let parse = |bytes: [u8; 12]| Repr::parse(&Header::new_checked(&bytes[..]).unwrap());
    let mut b = TSO4;
    b[0] = 0x04; // RSC_INFO: a receive-side flag no TAP sends.
    assert_eq!(parse(b), Err(Error::UnknownFlags));
    let mut b = TSO4;
    b[1] = 3; // UFO.
    assert_eq!(parse(b), Err(Error::UnknownGsoType));
    let mut b = TSO4;
    b[1] = 0x80 | 5; // ECN on UDP.
    assert_eq!(parse(b), Err(Error::UnknownGsoType));
    let mut b = TSO4;
    b[0] = 0;
    assert_eq!(parse(b), Err(Error::GsoWithoutChecksum));
    let mut b = TSO4;
    b[4] = 0;
    b[5] = 0;
    assert_eq!(parse(b), Err(Error::ZeroGsoSize));
    let mut b = TSO4;
    b[1] = 0x81;
    assert!(parse(b).unwrap().ecn);
}

#[test]
fn the_checksum_field_must_lie_inside_the_frame() {
    let repr = Repr::parse(&Header::new_checked(&TSO4[..]).unwrap()).unwrap();
    assert_eq!(repr.check_frame(&ipv4_tcp_frame(200)), Ok(()));
    // 34 + 16 + 2 = 52 bytes at least.
    assert_eq!(
        repr.check_frame(&ipv4_tcp_frame(54)[..51]),
        Err(Error::BadChecksumOffset)
    );
    let low = Repr {
        partial: Some(PartialChecksum {
            start: 13,
            offset: 0,
        }),
        gso: Gso::None,
        ..repr
    };
    assert_eq!(
        low.check_frame(&ipv4_tcp_frame(100)),
        Err(Error::BadChecksumOffset)
    );
    let huge = Repr {
        partial: Some(PartialChecksum {
            start: u16::MAX,
            offset: u16::MAX,
        }),
        ..low
    };
    assert_eq!(
        huge.check_frame(&ipv4_tcp_frame(100)),
        Err(Error::BadChecksumOffset)
    );
}

#[test]
fn the_gso_type_must_match_the_frame() {
    let tso4 = Repr::parse(&Header::new_checked(&TSO4[..]).unwrap()).unwrap();
    let tso6 = Repr {
        gso: Gso::Tcpv6,
        partial: Some(PartialChecksum {
            start: 54,
            offset: 16,
        }),
        ..tso4
    };
    let uso = Repr {
        gso: Gso::Udp,
        partial: Some(PartialChecksum {
            start: 54,
            offset: 6,
        }),
        ..tso4
    };
    assert_eq!(tso6.check_frame(&ipv6_frame(6)), Ok(()));
    assert_eq!(tso6.check_frame(&ipv6_frame(17)), Err(Error::GsoMismatch));
    assert_eq!(
        tso6.check_frame(&ipv4_tcp_frame(80)),
        Err(Error::GsoMismatch)
    );
    assert_eq!(tso4.check_frame(&ipv6_frame(6)), Err(Error::GsoMismatch));
    assert_eq!(uso.check_frame(&ipv6_frame(17)), Ok(()));
    assert_eq!(uso.check_frame(&ipv6_frame(6)), Err(Error::GsoMismatch));
    // A fragment is no super-segment.
    let mut fragment = ipv4_tcp_frame(80);
    fragment[14 + 6] = 0x20;
    assert_eq!(tso4.check_frame(&fragment), Err(Error::GsoMismatch));
    // A VLAN tag, an ARP frame: no.
    let mut arp = ipv4_tcp_frame(80);
    arp[12] = 0x08;
    arp[13] = 0x06;
    assert_eq!(tso4.check_frame(&arp), Err(Error::GsoMismatch));
}

proptest! {
    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..20),
                          frame in proptest::collection::vec(any::<u8>(), 0..120)) {
        if let Ok(header) = Header::new_checked(&bytes[..])
            && let Ok(repr) = Repr::parse(&header)
        {
            let _ = repr.check_frame(&frame);
            // What parses re-emits to the same meaning.
            let again = Repr::parse(&Header::new_checked(&repr.to_bytes()[..]).unwrap());
            prop_assert_eq!(again, Ok(repr));
        }
    }

    #[test]
    fn round_trip(gso in 0usize..4, ecn in any::<bool>(), size in 1u16.., hdr_len in any::<u16>(),
                  start in any::<u16>(), offset in any::<u16>(), valid in any::<bool>()) {
        let gso = [Gso::None, Gso::Tcpv4, Gso::Tcpv6, Gso::Udp][gso];
        let repr = Repr {
            partial: Some(PartialChecksum { start, offset }),
            data_valid: valid,
            gso,
            ecn: ecn && matches!(gso, Gso::Tcpv4 | Gso::Tcpv6),
            gso_size: if gso == Gso::None { 0 } else { size },
            hdr_len,
        };
        let bytes = repr.to_bytes();
        prop_assert_eq!(Repr::parse(&Header::new_checked(&bytes[..]).unwrap()), Ok(repr));
    }
}
