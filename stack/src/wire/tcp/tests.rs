//! Segment tests against frames captured from the Linux kernel (see `fixtures/README.md`).

use super::*;
use crate::wire::fixtures;
use core::net::{Ipv4Addr, Ipv6Addr};
use proptest::prelude::*;

const TCP4: &[u8] = include_bytes!("../fixtures/tcp4_connection.pcap");
const TCP6: &[u8] = include_bytes!("../fixtures/tcp6_connection.pcap");
const RST: &[u8] = include_bytes!("../fixtures/tcp_rst.pcap");
const SACK: &[u8] = include_bytes!("../fixtures/tcp_sack.pcap");

fn segments(pcap: &'static [u8]) -> Vec<(Addresses, &'static [u8])> {
    fixtures::frames(pcap)
        .into_iter()
        .map(fixtures::transport)
        .collect()
}

fn all_segments() -> Vec<(Addresses, &'static [u8])> {
    [TCP4, TCP6, RST, SACK]
        .into_iter()
        .flat_map(segments)
        .collect()
}

fn parse(addrs: &Addresses, bytes: &[u8]) -> Result<Repr, Error> {
    Repr::parse(&Packet::new_checked(bytes)?, addrs)
}

/// The guest's SYN in tcp4_connection.pcap, as `tcpdump -v` shows it.
fn guest_syn() -> Repr {
    Repr {
        src_port: 48474,
        dst_port: 8080,
        seq_number: SeqNumber(1966246218),
        ack_number: None,
        control: Control::Syn,
        psh: false,
        window_len: 64240,
        urgent_pointer: None,
        max_seg_size: Some(1460),
        window_scale: Some(10),
        sack_permitted: true,
        sack_ranges: [None; 3],
        timestamp: Some(TimestampOption {
            tsval: 3677494942,
            tsecr: 0,
        }),
        payload_len: 0,
    }
}

#[test]
fn test_parse_syn() {
    let (addrs, bytes) = segments(TCP4)[0];
    let packet = Packet::new_checked(bytes).unwrap();
    assert_eq!(Repr::parse(&packet, &addrs), Ok(guest_syn()));
    assert_eq!(packet.header_len(), 40);
    assert_eq!(packet.segment_len(), 1);
    assert_eq!(
        packet.option_iter().collect::<Result<Vec<_>, _>>().unwrap(),
        [
            TcpOption::MaxSegmentSize(1460),
            TcpOption::SackPermitted,
            TcpOption::Timestamp(TimestampOption {
                tsval: 3677494942,
                tsecr: 0
            }),
            TcpOption::NoOperation,
            TcpOption::WindowScale(10),
        ]
    );
}

#[test]
fn test_parse_connection() {
    for pcap in [TCP4, TCP6] {
        let reprs: Vec<Repr> = segments(pcap)
            .into_iter()
            .map(|(addrs, bytes)| parse(&addrs, bytes).unwrap())
            .collect();
        let [
            syn,
            syn_ack,
            ack,
            hello,
            ack2,
            world,
            ack3,
            gw_fin,
            guest_fin,
            last,
        ] = &reprs[..]
        else {
            panic!("{} segments", reprs.len());
        };
        let guest_isn = syn.seq_number;
        let gw_isn = syn_ack.seq_number;
        assert_eq!(syn_ack.control, Control::Syn);
        assert_eq!(syn_ack.ack_number, Some(guest_isn + 1));
        assert_eq!(
            syn_ack.timestamp.unwrap().tsecr,
            syn.timestamp.unwrap().tsval
        );
        assert_eq!(
            (syn_ack.window_scale, syn_ack.sack_permitted),
            (Some(10), true)
        );
        for r in [ack, hello, ack2, world, ack3, gw_fin, guest_fin, last] {
            assert!(r.ack_number.is_some() && r.timestamp.is_some());
            assert_eq!(
                (r.max_seg_size, r.window_scale, r.sack_permitted),
                (None, None, false)
            );
        }
        assert_eq!(ack.control, Control::None);
        assert_eq!((hello.payload_len, hello.psh), (6, true));
        assert_eq!(hello.seq_number, guest_isn + 1);
        assert_eq!(ack2.ack_number, Some(guest_isn + 7));
        assert_eq!((world.payload_len, world.seq_number), (6, gw_isn + 1));
        assert_eq!(
            (gw_fin.control, gw_fin.seq_number),
            (Control::Fin, gw_isn + 7)
        );
        assert_eq!(gw_fin.segment_len(), 1);
        assert_eq!(guest_fin.control, Control::Fin);
        assert_eq!(guest_fin.ack_number, Some(gw_isn + 8));
        assert_eq!(last.ack_number, Some(guest_isn + 8));
        assert_eq!(world.segment_len(), 6);
        assert_eq!(syn.segment_len(), 1);
    }
}

#[test]
fn test_parse_payload() {
    let (addrs, bytes) = segments(TCP6)[3];
    let packet = Packet::new_checked(bytes).unwrap();
    assert_eq!(packet.payload(), b"hello\n");
    assert_eq!(parse(&addrs, bytes).unwrap().payload_len, 6);
    let (_, bytes) = segments(TCP6)[5];
    assert_eq!(Packet::new_checked(bytes).unwrap().payload(), b"world\n");
}

#[test]
fn test_parse_rst() {
    for pair in segments(RST).chunks(2) {
        let [(a, syn), (b, rst)] = pair else { panic!() };
        let syn = parse(a, syn).unwrap();
        let rst = parse(b, rst).unwrap();
        assert_eq!(rst.control, Control::Rst);
        assert_eq!(rst.seq_number, SeqNumber(0));
        assert_eq!(rst.ack_number, Some(syn.seq_number + 1));
        assert_eq!(
            (rst.window_len, rst.timestamp, rst.segment_len()),
            (0, None, 0)
        );
        assert_eq!(Repr { ..rst }.buffer_len(), HEADER_LEN);
    }
}

#[test]
fn test_parse_sack() {
    let reprs: Vec<Repr> = segments(SACK)
        .into_iter()
        .map(|(addrs, bytes)| parse(&addrs, bytes).unwrap())
        .collect();
    let gw_isn = reprs[1].seq_number;
    let block = |a: usize, b: usize| Some((gw_isn + a, gw_isn + b));
    // "later\n" 100 bytes ahead of "world\n": one block, the hole's far side.
    assert_eq!(reprs[8].sack_ranges, [block(101, 107), None, None]);
    // The duplicate "world\n": a D-SACK block first (RFC 2883), then the block above.
    assert_eq!(reprs[10].sack_ranges, [block(1, 7), block(101, 107), None]);
    assert_eq!(reprs[10].ack_number, Some(gw_isn + 7));
    assert_eq!(reprs[11].control, Control::Fin);
    assert_eq!(reprs[11].sack_ranges, [block(101, 107), None, None]);
}

#[test]
fn test_emit() {
    // Every captured segment, re-emitted from its Repr, is the kernel's bytes exactly:
    // flags, option layout (SYN: MSS, SACK-permitted, timestamps, NOP, window scale; then
    // NOP NOP timestamps, NOP NOP SACK) and checksum.
    for (addrs, bytes) in all_segments() {
        let repr = parse(&addrs, bytes).unwrap();
        assert_eq!(
            repr.buffer_len(),
            Packet::new_checked(bytes).unwrap().header_len()
        );
        let mut out = bytes.to_vec();
        out[..repr.buffer_len()].fill(0xcc);
        repr.emit(&mut Packet::new_unchecked(&mut out), &addrs);
        assert_eq!(out, bytes, "{repr:?}");
    }
}

#[test]
fn emit_checksums_header_and_payload_only() {
    // The buffer may be longer than the segment (a reused frame buffer); the checksum
    // covers buffer_len() + payload_len bytes and what follows is left alone.
    let (addrs, bytes) = segments(TCP4)[3];
    let repr = parse(&addrs, bytes).unwrap();
    let mut out = bytes.to_vec();
    out.extend_from_slice(&[0xee; 7]);
    out[..repr.buffer_len()].fill(0);
    repr.emit(&mut Packet::new_unchecked(&mut out), &addrs);
    assert_eq!(out[..bytes.len()], bytes[..]);
    assert_eq!(out[bytes.len()..], [0xee; 7]);
}

/// `bytes` with its checksum made right again after an edit.
fn refilled(addrs: &Addresses, mut bytes: Vec<u8>) -> Vec<u8> {
    Packet::new_unchecked(&mut bytes[..]).fill_checksum(addrs);
    bytes
}

/// The same addresses with the destination changed (not swapped: the sum is symmetric).
fn elsewhere(addrs: &Addresses) -> Addresses {
    match *addrs {
        Addresses::V4 { src, .. } => Addresses::V4 {
            src,
            dst: Ipv4Addr::new(192, 168, 127, 3),
        },
        Addresses::V6 { src, .. } => Addresses::V6 {
            src,
            dst: Ipv6Addr::new(0xfd00, 0x127, 0, 0, 0, 0, 0, 3),
        },
    }
}

#[test]
fn bad_checksum_is_refused() {
    for (addrs, bytes) in all_segments() {
        let mut flipped = bytes.to_vec();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x20;
        assert_eq!(parse(&addrs, &flipped), Err(Error::BadChecksum));
        // The pseudo-header counts: the same bytes from another address are refused.
        assert_eq!(parse(&elsewhere(&addrs), bytes), Err(Error::BadChecksum));
    }
}

#[test]
fn data_offset_is_checked() {
    let (addrs, bytes) = segments(TCP4)[0];
    let mut bytes = bytes.to_vec();
    for words in 0..5u8 {
        bytes[12] = words << 4;
        assert_eq!(Packet::new_checked(&bytes[..]), Err(Error::BadDataOffset));
    }
    // 44 bytes of header in a 40-byte segment.
    bytes[12] = 11 << 4;
    assert_eq!(Packet::new_checked(&bytes[..]), Err(Error::Truncated));
    // Five words: the options become payload.
    bytes[12] = 5 << 4;
    let bytes = refilled(&addrs, bytes);
    let repr = parse(&addrs, &bytes).unwrap();
    assert_eq!(
        (repr.payload_len, repr.max_seg_size, repr.timestamp),
        (20, None, None)
    );
}

#[test]
fn syn_with_rst_is_refused() {
    let (addrs, bytes) = segments(TCP4)[0];
    let mut bytes = bytes.to_vec();
    bytes[13] |= 0x04;
    assert_eq!(
        parse(&addrs, &refilled(&addrs, bytes)),
        Err(Error::SynWithRst)
    );
}

#[test]
fn flag_combinations() {
    let (addrs, bytes) = segments(TCP4)[3];
    let with_flags = |set: u8| {
        let mut b = bytes.to_vec();
        b[13] = 0x10 | set;
        parse(&addrs, &refilled(&addrs, b)).unwrap()
    };
    let syn_fin = with_flags(0x03);
    assert_eq!(syn_fin.control, Control::SynFin);
    assert_eq!(syn_fin.segment_len(), 6 + 2);
    // RST wins over FIN (RFC 9293 §3.10.7.4 checks RST first); ECE, CWR are ignored.
    assert_eq!(with_flags(0x05).control, Control::Rst);
    assert_eq!(with_flags(0xc0).control, Control::None);
    let urgent = with_flags(0x20);
    assert_eq!(urgent.urgent_pointer, Some(0));
}

#[test]
fn malformed_options_are_skipped_as_linux_does() {
    // The SYN's options are MSS, SACK-permitted, TS, NOP, WS at offsets 20, 24, 26, 36, 37.
    let (addrs, bytes) = segments(TCP4)[0];
    let edit = |at: usize, with: &[u8]| {
        let mut b = bytes.to_vec();
        b[at..at + with.len()].copy_from_slice(with);
        parse(&addrs, &refilled(&addrs, b)).expect("the segment is kept")
    };
    let seen = |r: Repr| {
        (
            r.max_seg_size.is_some(),
            r.sack_permitted,
            r.timestamp.is_some(),
            r.window_scale.is_some(),
        )
    };
    // A length below 2 loses the walk's place: it ends there, the segment is kept.
    assert_eq!(seen(edit(21, &[0])), (false, false, false, false));
    assert_eq!(seen(edit(21, &[1])), (false, false, false, false));
    // A length past the options area ends the walk too.
    assert_eq!(seen(edit(27, &[15])), (true, true, false, false));
    assert_eq!(seen(edit(38, &[4])), (true, true, true, false));
    // A known kind with a wrong but sound length is skipped by it; the walk goes on.
    assert_eq!(seen(edit(27, &[11])), (true, true, false, true));
    assert_eq!(seen(edit(21, &[2, 1, 1])), (false, true, true, true));
    assert_eq!(edit(27, &[11]).window_scale, Some(10));
    // An unknown kind in the MSS's place is skipped by its length.
    let repr = edit(20, &[99]);
    assert_eq!(repr.max_seg_size, None);
    assert_eq!(repr.window_scale, Some(10));
    // End of list in the NOP's place hides the window scale.
    assert_eq!(edit(36, &[0]).window_scale, None);
}

#[test]
fn four_sack_blocks_keep_the_first_three() {
    // A header of 20 + 36: NOP NOP and a SACK option with four blocks, no timestamps.
    let (addrs, bytes) = segments(SACK)[8];
    let mut b = bytes[..20].to_vec();
    b[12] = 14 << 4;
    b.extend_from_slice(&[1, 1, 5, 34]);
    for n in 1..=8u32 {
        b.extend_from_slice(&(n * 1000).to_be_bytes());
    }
    let repr = parse(&addrs, &refilled(&addrs, b)).unwrap();
    let block = |n: u32| Some((SeqNumber(n * 2000 - 1000), SeqNumber(n * 2000)));
    assert_eq!(repr.sack_ranges, [block(1), block(2), block(3)]);
}

#[test]
fn sack_blocks_that_do_not_fit_are_dropped() {
    let block = |n: u32| Some((SeqNumber(n), SeqNumber(n + 10)));
    let mut repr = Repr {
        ack_number: Some(SeqNumber(1)),
        sack_ranges: [block(100), block(200), block(300)],
        timestamp: Some(TimestampOption::default()),
        ..Repr::default()
    };
    // Timestamps (12) and three blocks (4 + 24) fill the 40 bytes exactly.
    assert_eq!(repr.buffer_len(), MAX_HEADER_LEN);
    // With a window scale option as well, only two blocks fit, and with MSS too.
    repr.window_scale = Some(7);
    assert_eq!(repr.buffer_len(), HEADER_LEN + 12 + 4 + 4 + 16);
    repr.max_seg_size = Some(1460);
    assert_eq!(repr.buffer_len(), HEADER_LEN + 4 + 12 + 4 + 4 + 16);
    let mut bytes = vec![0u8; repr.buffer_len()];
    let addrs = segments(TCP4)[0].0;
    repr.emit(&mut Packet::new_unchecked(&mut bytes), &addrs);
    let parsed = parse(&addrs, &bytes).unwrap();
    assert_eq!(parsed.sack_ranges, [block(100), block(200), None]);
    assert_eq!(
        parsed,
        Repr {
            sack_ranges: parsed.sack_ranges,
            ..repr
        }
    );
}

#[test]
fn every_truncation_is_rejected() {
    for (addrs, bytes) in all_segments() {
        for cut in 0..bytes.len() {
            let result = parse(&addrs, &bytes[..cut]);
            assert!(
                result.is_err(),
                "{cut} of {} bytes: {result:?}",
                bytes.len()
            );
        }
    }
}

fn arb_addrs() -> impl Strategy<Value = Addresses> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<[u8; 4]>()).prop_map(|(s, d)| Addresses::V4 {
            src: Ipv4Addr::from(s),
            dst: Ipv4Addr::from(d),
        }),
        (any::<[u8; 16]>(), any::<[u8; 16]>()).prop_map(|(s, d)| Addresses::V6 {
            src: Ipv6Addr::from(s),
            dst: Ipv6Addr::from(d),
        }),
    ]
}

fn arb_seq() -> impl Strategy<Value = SeqNumber> {
    any::<u32>().prop_map(SeqNumber)
}

prop_compose! {
    fn arb_repr()(
        (src_port, dst_port) in any::<(u16, u16)>(),
        seq_number in arb_seq(),
        ack_number in proptest::option::of(arb_seq()),
        control in prop_oneof![
            Just(Control::None), Just(Control::Syn), Just(Control::Fin),
            Just(Control::SynFin), Just(Control::Rst),
        ],
        (psh, window_len, urgent_pointer) in (any::<bool>(), any::<u16>(), any::<Option<u16>>()),
        max_seg_size in any::<Option<u16>>(),
        window_scale in any::<Option<u8>>(),
        sack_permitted in any::<bool>(),
        blocks in proptest::collection::vec((arb_seq(), arb_seq()), 0..=3),
        timestamp in proptest::option::of(any::<(u32, u32)>()),
    ) -> Repr {
        let mut sack_ranges = [None; 3];
        for (slot, block) in sack_ranges.iter_mut().zip(blocks) {
            *slot = Some(block);
        }
        Repr {
            src_port, dst_port, seq_number, ack_number, control, psh, window_len,
            urgent_pointer, max_seg_size, window_scale, sack_permitted, sack_ranges,
            timestamp: timestamp.map(|(tsval, tsecr)| TimestampOption { tsval, tsecr }),
            payload_len: 0,
        }
    }
}

/// `repr` as it parses back: with the SACK blocks that fit beside its other options.
fn as_parsed(repr: Repr) -> Repr {
    let mut used = 0;
    used += if repr.max_seg_size.is_some() { 4 } else { 0 };
    used += match (repr.timestamp, repr.sack_permitted) {
        (Some(_), _) => 12,
        (None, true) => 4,
        (None, false) => 0,
    };
    used += if repr.window_scale.is_some() { 4 } else { 0 };
    let fit = (MAX_OPTIONS_LEN - used - 4) / 8;
    let mut sack_ranges = repr.sack_ranges;
    for slot in sack_ranges.iter_mut().skip(fit) {
        *slot = None;
    }
    Repr {
        sack_ranges,
        ..repr
    }
}

proptest! {
    #[test]
    fn emit_parse_round_trip(repr in arb_repr(), addrs in arb_addrs(),
                             payload in proptest::collection::vec(any::<u8>(), 0..64)) {
        let repr = Repr { payload_len: payload.len(), ..repr };
        let header_len = repr.buffer_len();
        prop_assert!(header_len <= MAX_HEADER_LEN && header_len.is_multiple_of(4));
        let mut bytes = vec![0xa5; header_len + payload.len()];
        bytes[header_len..].copy_from_slice(&payload);
        repr.emit(&mut Packet::new_unchecked(&mut bytes), &addrs);
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        prop_assert_eq!(Repr::parse(&packet, &addrs), Ok(as_parsed(repr)));
        prop_assert_eq!(packet.payload(), &payload[..]);
        prop_assert_eq!(packet.segment_len(), repr.segment_len());
    }

    #[test]
    fn truncated_emitted_segment_is_rejected(repr in arb_repr(), addrs in arb_addrs(),
                                             cut in any::<prop::sample::Index>()) {
        let mut bytes = vec![0; repr.buffer_len()];
        repr.emit(&mut Packet::new_unchecked(&mut bytes), &addrs);
        let cut = cut.index(bytes.len());
        prop_assert!(parse(&addrs, &bytes[..cut]).is_err());
    }

    #[test]
    fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80),
                             addrs in arb_addrs()) {
        let _ = Packet::new_unchecked(&bytes[..]).check_len();
        if let Ok(packet) = Packet::new_checked(&bytes[..]) {
            let _ = Repr::parse(&packet, &addrs);
            let _ = packet.option_iter().count();
            let _ = (packet.payload(), packet.segment_len(), packet.verify_checksum(&addrs));
        }
    }

    #[test]
    fn any_header_with_right_checksum_never_panics(
        mut bytes in proptest::collection::vec(any::<u8>(), 20..80),
        words in 5u8..=15, addrs in arb_addrs(),
    ) {
        // Random bytes almost never pass the checksum; this fixes it so the option walk
        // and flag checks behind it see arbitrary input too.
        bytes[12] = (words << 4) | (bytes[12] & 0x0f);
        let bytes = refilled(&addrs, bytes);
        if let Ok(packet) = Packet::new_checked(&bytes[..])
            && let Ok(repr) = Repr::parse(&packet, &addrs) {
                prop_assert_eq!(repr.payload_len, bytes.len() - packet.header_len());
            }
    }
}
