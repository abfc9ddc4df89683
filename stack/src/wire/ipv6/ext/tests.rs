use super::*;
use crate::wire::ipv6::Packet;
use crate::wire::{ethernet, fixtures};
use proptest::prelude::*;

const HOP_BY_HOP: &[u8] = include_bytes!("../../fixtures/ipv6_hopbyhop.pcap");
const FRAGMENTS: &[u8] = include_bytes!("../../fixtures/ipv6_fragments.pcap");
const EXT: &[u8] = include_bytes!("../../fixtures/ipv6_ext.pcap");

/// The IPv6 packet in frame `index` of a capture.
fn packet(pcap: &'static [u8], index: usize) -> Packet<&'static [u8]> {
    let frame = ethernet::Packet::new_checked(fixtures::frame(pcap, index)).unwrap();
    Packet::new_checked(frame.payload()).unwrap()
}

/// The kinds and lengths of the headers a walk found.
fn shape(chain: &Chain) -> Vec<(Protocol, usize)> {
    chain.headers().iter().map(|h| (h.kind, h.len)).collect()
}

/// A walk's expected headers (kind and length), upper layer and its offset.
type Expected = (&'static [(Protocol, usize)], Protocol, usize);

/// The destination options the capture script sets: experiment option 0x1e, then PadN.
const DST_OPTS_DATA: [u8; 6] = [0x1e, 2, 0xab, 0xcd, 1, 0];

#[test]
fn test_parse_hop_by_hop() {
    for index in 0..4 {
        let packet = packet(HOP_BY_HOP, index);
        let chain = packet.header_chain().unwrap();
        assert_eq!(shape(&chain), [(Protocol::HopByHop, 8)]);
        assert_eq!((chain.protocol, chain.offset), (Protocol::Icmpv6, 8));
        assert_eq!(chain.fragment, None);
        let header = ExtHeader::new_checked(packet.payload()).unwrap();
        let options: Vec<_> = header.options().collect();
        // RFC 3810 §5: MLDv2 reports carry a router alert with value 0 (RFC 2711).
        assert_eq!(
            options,
            [Ok(OptionTlv {
                kind: option::ROUTER_ALERT,
                data: &[0, 0]
            })]
        );
        assert_eq!(options[0].unwrap().action(), OptionAction::Skip);
    }
}

#[test]
fn test_parse_ext_chains() {
    use Protocol::{HopByHop, Ipv6Frag, Ipv6Opts, Ipv6Route, Udp};
    let expected: [Expected; 5] = [
        (&[(Ipv6Opts, 8)], Udp, 8),
        (&[(HopByHop, 8), (Ipv6Opts, 8)], Udp, 16),
        (&[(Ipv6Opts, 8), (Ipv6Route, 24), (Ipv6Opts, 8)], Udp, 40),
        (
            &[
                (HopByHop, 8),
                (Ipv6Opts, 8),
                (Ipv6Route, 24),
                (Ipv6Frag, 8),
                (Ipv6Opts, 8),
            ],
            Udp,
            56,
        ),
        // A later fragment: the walk stops at the fragment header, whose next header is the
        // destination options header at the start of the fragmentable part.
        (
            &[(HopByHop, 8), (Ipv6Opts, 8), (Ipv6Route, 24), (Ipv6Frag, 8)],
            Ipv6Opts,
            48,
        ),
    ];
    for (index, (headers, protocol, offset)) in expected.into_iter().enumerate() {
        let packet = packet(EXT, index);
        let chain = packet.header_chain().unwrap();
        assert_eq!(shape(&chain), headers, "frame {index}");
        assert_eq!((chain.protocol, chain.offset), (protocol, offset));
        for span in chain.headers() {
            let bytes = &packet.payload()[span.range()];
            if span.kind == Ipv6Opts {
                let header = ExtHeader::new_checked(bytes).unwrap();
                assert_eq!(header.data(), DST_OPTS_DATA);
                let options: Vec<_> = header.options().map(Result::unwrap).collect();
                assert_eq!(options.len(), 1, "PadN is left out");
                assert_eq!(
                    (options[0].kind, options[0].data),
                    (0x1e, &[0xab, 0xcd][..])
                );
            }
            if span.kind == Ipv6Route {
                let header = ExtHeader::new_checked(bytes).unwrap();
                assert_eq!(header.routing_type(), routing_type::SEGMENT_ROUTING);
                assert_eq!(header.segments_left(), 0);
            }
        }
    }
    let first = packet(EXT, 3).header_chain().unwrap().fragment.unwrap();
    let second = packet(EXT, 4).header_chain().unwrap().fragment.unwrap();
    assert_eq!(first.header_offset, 40);
    assert_eq!((first.repr.offset, first.repr.more_frags), (0, true));
    assert_eq!((second.repr.offset, second.repr.more_frags), (1408, false));
    assert_eq!(first.repr.ident, second.repr.ident);
    assert_eq!(first.repr.next_header, Ipv6Opts);
    assert_eq!(first.data_offset(), 48);
    assert!(packet(EXT, 3).header_chain().unwrap().is_fragment());
    assert!(!packet(EXT, 2).header_chain().unwrap().is_fragment());
}

#[test]
fn test_parse_fragments() {
    // A 3008-byte ICMPv6 echo in fragments of 1448, 1448 and 112 bytes, both ways.
    for (index, (offset, more)) in [(0, true), (1448, true), (2896, false)]
        .into_iter()
        .cycle()
        .take(6)
        .enumerate()
    {
        let packet = packet(FRAGMENTS, index);
        let chain = packet.header_chain().unwrap();
        assert_eq!(shape(&chain), [(Protocol::Ipv6Frag, 8)]);
        assert_eq!((chain.protocol, chain.offset), (Protocol::Icmpv6, 8));
        let fragment = chain.fragment.unwrap();
        assert_eq!(fragment.header_offset, 0);
        assert_eq!(
            (fragment.repr.offset, fragment.repr.more_frags),
            (offset, more)
        );
        let header = FragmentHeader::new_checked(packet.payload()).unwrap();
        assert_eq!(header.ident(), fragment.repr.ident);
    }
    let request = packet(FRAGMENTS, 0).header_chain().unwrap();
    let reply = packet(FRAGMENTS, 3).header_chain().unwrap();
    assert_ne!(
        request.fragment.unwrap().repr.ident,
        reply.fragment.unwrap().repr.ident
    );
}

#[test]
fn test_emit() {
    // Every extension header of every capture, rebuilt from its Repr.
    for pcap in [HOP_BY_HOP, FRAGMENTS, EXT] {
        for index in 0..fixtures::frames(pcap).len() {
            let payload = packet(pcap, index).payload();
            let chain = Chain::walk(packet(pcap, index).next_header(), payload).unwrap();
            for span in chain.headers() {
                let bytes = &payload[span.range()];
                let mut out = vec![0xffu8; bytes.len()];
                if span.kind == Protocol::Ipv6Frag {
                    let repr =
                        FragmentRepr::parse(&FragmentHeader::new_checked(bytes).unwrap()).unwrap();
                    assert_eq!(repr.buffer_len(), bytes.len());
                    repr.emit(&mut FragmentHeader::new_unchecked(&mut out[..]));
                } else {
                    let repr =
                        ExtHeaderRepr::parse(&ExtHeader::new_checked(bytes).unwrap()).unwrap();
                    assert_eq!(repr.buffer_len(), bytes.len());
                    repr.emit(&mut ExtHeader::new_unchecked(&mut out[..]));
                }
                assert_eq!(out, bytes);
            }
        }
    }
}

/// A destination options header (8 bytes, PadN) announcing `next`.
fn dst_opts(next: Protocol) -> [u8; 8] {
    [next.into(), 0, option::PADN, 4, 0, 0, 0, 0]
}

/// Headers made from `kinds` in order, each naming the next, the last naming UDP.
fn chain_of(kinds: &[Protocol]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, _) in kinds.iter().enumerate() {
        let next = kinds.get(i + 1).copied().unwrap_or(Protocol::Udp);
        out.extend_from_slice(&dst_opts(next));
    }
    out
}

#[test]
fn many_headers_are_refused() {
    let eight = chain_of(&[Protocol::Ipv6Opts; MAX_EXT_HEADERS]);
    let chain = Chain::walk(Protocol::Ipv6Opts, &eight).unwrap();
    assert_eq!((chain.protocol, chain.offset), (Protocol::Udp, 64));
    assert_eq!(chain.headers().len(), MAX_EXT_HEADERS);

    let nine = chain_of(&[Protocol::Ipv6Opts; MAX_EXT_HEADERS + 1]);
    assert_eq!(
        Chain::walk(Protocol::Ipv6Opts, &nine),
        Err(ChainError::TooManyHeaders)
    );
    // A chain that names itself forever ends at the same limit, whatever the buffer's size.
    let looping = dst_opts(Protocol::Ipv6Opts).repeat(1000);
    assert_eq!(
        Chain::walk(Protocol::Ipv6Opts, &looping),
        Err(ChainError::TooManyHeaders)
    );
}

#[test]
fn long_chain_is_refused() {
    // One header of 2048 bytes, the most the length field can give.
    let mut long = vec![0u8; 2048 + 8];
    long[0] = Protocol::Udp.into();
    long[1] = 255;
    assert_eq!(
        Chain::walk(Protocol::Ipv6Opts, &long),
        Err(ChainError::ChainTooLong)
    );
    // Exactly the limit is fine: two headers of 512 bytes.
    let mut limit = vec![0u8; MAX_CHAIN_LEN];
    limit[0] = Protocol::Ipv6Route.into();
    limit[1] = 63;
    limit[512] = Protocol::Tcp.into();
    limit[513] = 63;
    let chain = Chain::walk(Protocol::Ipv6Opts, &limit).unwrap();
    assert_eq!(
        (chain.protocol, chain.offset),
        (Protocol::Tcp, MAX_CHAIN_LEN)
    );
}

#[test]
fn hop_by_hop_only_first() {
    let bytes = chain_of(&[Protocol::Ipv6Opts, Protocol::HopByHop]);
    assert_eq!(
        Chain::walk(Protocol::Ipv6Opts, &bytes),
        Err(ChainError::HopByHopNotFirst)
    );
    let bytes = chain_of(&[Protocol::HopByHop, Protocol::HopByHop]);
    assert_eq!(
        Chain::walk(Protocol::HopByHop, &bytes),
        Err(ChainError::HopByHopNotFirst)
    );
    let bytes = chain_of(&[Protocol::HopByHop]);
    assert!(Chain::walk(Protocol::HopByHop, &bytes).is_ok());
    assert_eq!(
        Chain::walk_reassembled(Protocol::HopByHop, &bytes),
        Err(ChainError::HopByHopNotFirst)
    );
}

#[test]
fn every_truncation_is_refused() {
    for index in 0..4 {
        let packet = packet(EXT, index);
        let payload = packet.payload();
        let full = packet.header_chain().unwrap();
        for cut in 0..full.offset {
            let expected = match full.fragment {
                Some(f) if cut >= f.data_offset() => ChainError::IncompleteFirstFragment,
                _ => ChainError::Truncated,
            };
            let result = Chain::walk(packet.next_header(), &payload[..cut]);
            // A first fragment cut short is also misaligned; either refusal is right.
            if expected == ChainError::IncompleteFirstFragment {
                assert!(result.is_err(), "frame {index} cut at {cut}");
            } else {
                assert_eq!(result, Err(expected), "frame {index} cut at {cut}");
            }
        }
    }
    assert_eq!(
        ExtHeader::new_checked(&[0u8][..]).err(),
        Some(ChainError::Truncated)
    );
    assert_eq!(
        FragmentHeader::new_checked(&[0u8; 7][..]).err(),
        Some(ChainError::Truncated)
    );
}

/// A fragment header with `offset` and `more`, then `data_len` bytes of data.
fn fragment(offset: u16, more: bool, data_len: usize) -> Vec<u8> {
    let mut out = vec![0u8; FRAGMENT_HEADER_LEN + data_len];
    FragmentRepr {
        next_header: Protocol::Udp,
        offset,
        more_frags: more,
        ident: 7,
    }
    .emit(&mut FragmentHeader::new_unchecked(&mut out[..]));
    out
}

#[test]
fn fragment_rules() {
    // RFC 8200 §4.5: with M set, the data is a multiple of 8 bytes.
    assert_eq!(
        Chain::walk(Protocol::Ipv6Frag, &fragment(0, true, 12)),
        Err(ChainError::FragmentMisaligned)
    );
    assert!(Chain::walk(Protocol::Ipv6Frag, &fragment(8, false, 12)).is_ok());
    // The reassembled payload would pass 65535 bytes.
    assert_eq!(
        Chain::walk(Protocol::Ipv6Frag, &fragment(65528, false, 8)),
        Err(ChainError::FragmentTooLong)
    );
    let last = Chain::walk(Protocol::Ipv6Frag, &fragment(65520, false, 7)).unwrap();
    assert!(last.is_fragment());
    // Two fragment headers.
    let mut twice = fragment(0, false, 0);
    twice[0] = Protocol::Ipv6Frag.into();
    twice.extend_from_slice(&fragment(0, false, 8));
    assert_eq!(
        Chain::walk(Protocol::Ipv6Frag, &twice),
        Err(ChainError::DuplicateFragment)
    );
    // An atomic fragment (RFC 6946) is walked through and is not one to reassemble.
    let atomic = Chain::walk(Protocol::Ipv6Frag, &fragment(0, false, 8)).unwrap();
    assert!(atomic.fragment.unwrap().repr.is_atomic());
    assert!(!atomic.is_fragment());
    assert_eq!((atomic.protocol, atomic.offset), (Protocol::Udp, 8));
    // A first fragment whose chain continues past its end (RFC 7112).
    let mut incomplete = fragment(0, true, 0);
    incomplete[0] = Protocol::Ipv6Opts.into();
    incomplete.extend_from_slice(&[Protocol::Udp.into(), 1, 0, 0, 0, 0, 0, 0]);
    assert_eq!(
        Chain::walk(Protocol::Ipv6Frag, &incomplete),
        Err(ChainError::IncompleteFirstFragment)
    );
}

#[test]
fn options_iteration() {
    // Pad1, router alert, PadN(2), an option to discard if unknown, then one cut short.
    let data = [0, 5, 2, 0, 0, 1, 2, 0, 0, 0x42, 1, 9, 0xc3, 4, 1];
    let options: Vec<_> = Options::new(&data).collect();
    assert_eq!(
        options,
        [
            Ok(OptionTlv {
                kind: option::ROUTER_ALERT,
                data: &[0, 0]
            }),
            Ok(OptionTlv {
                kind: 0x42,
                data: &[9]
            }),
            Err(ChainError::OptionTruncated),
        ]
    );
    assert_eq!(options[1].unwrap().action(), OptionAction::Discard);
    assert!(!options[1].unwrap().may_change());
    let jumbo = OptionTlv {
        kind: option::JUMBO_PAYLOAD,
        data: &[],
    };
    assert_eq!(
        jumbo.action(),
        OptionAction::DiscardAndReportUnlessMulticast
    );
    let changing = OptionTlv {
        kind: 0xa0,
        data: &[],
    };
    assert_eq!(changing.action(), OptionAction::DiscardAndReport);
    assert!(changing.may_change());
    // A type with no length byte.
    assert_eq!(
        Options::new(&[0x1e]).collect::<Vec<_>>(),
        [Err(ChainError::OptionTruncated)]
    );
}

fn arb_ext_kind() -> impl Strategy<Value = Protocol> {
    prop_oneof![
        Just(Protocol::Ipv6Opts),
        Just(Protocol::Ipv6Route),
        Just(Protocol::Ipv6Frag)
    ]
}

proptest! {
    #[test]
    fn ext_header_round_trip(nh in any::<u8>(), data in proptest::collection::vec(any::<u8>(), 0..40)) {
        // Data lengths of 6 + 8n come back as they went; others come back zero-padded.
        let repr = ExtHeaderRepr { next_header: Protocol::from(nh), data: &data };
        let mut bytes = vec![0xffu8; repr.buffer_len()];
        repr.emit(&mut ExtHeader::new_unchecked(&mut bytes[..]));
        let header = ExtHeader::new_checked(&bytes[..]).unwrap();
        let parsed = ExtHeaderRepr::parse(&header).unwrap();
        prop_assert_eq!(parsed.next_header, repr.next_header);
        prop_assert_eq!(&parsed.data[..data.len()], &data[..]);
        prop_assert!(parsed.data[data.len()..].iter().all(|&b| b == 0));
        prop_assert_eq!(parsed.data.len() % 8, 6);
    }

    #[test]
    fn fragment_round_trip(nh in any::<u8>(), units in 0u16..8192, more in any::<bool>(), ident in any::<u32>()) {
        let repr = FragmentRepr { next_header: Protocol::from(nh), offset: units * 8, more_frags: more, ident };
        let mut bytes = [0xffu8; FRAGMENT_HEADER_LEN];
        repr.emit(&mut FragmentHeader::new_unchecked(&mut bytes[..]));
        prop_assert_eq!(bytes[1], 0, "reserved");
        prop_assert_eq!(FragmentRepr::parse(&FragmentHeader::new_checked(&bytes[..]).unwrap()), Ok(repr));
    }

    #[test]
    fn built_chains_walk_back(kinds in proptest::collection::vec(arb_ext_kind(), 0..=MAX_EXT_HEADERS),
                              units in proptest::collection::vec(0u8..4, MAX_EXT_HEADERS)) {
        // At most one fragment header, and it first: a first fragment of aligned data.
        let mut kinds = kinds;
        let first_frag = kinds.iter().position(|&k| k == Protocol::Ipv6Frag);
        kinds.retain(|&k| k != Protocol::Ipv6Frag);
        if first_frag.is_some() {
            kinds.insert(0, Protocol::Ipv6Frag);
        }
        let mut bytes = Vec::new();
        let mut expected = Vec::new();
        for (i, &kind) in kinds.iter().enumerate() {
            let next = kinds.get(i + 1).copied().unwrap_or(Protocol::Tcp);
            if kind == Protocol::Ipv6Frag {
                let mut header = fragment(0, true, 0);
                header[0] = next.into();
                bytes.extend_from_slice(&header);
                expected.push((kind, 8));
            } else {
                let len = (usize::from(units[i]) + 1) * 8;
                let data = vec![0u8; len - 2];
                let repr = ExtHeaderRepr { next_header: next, data: &data };
                let start = bytes.len();
                bytes.resize(start + len, 0);
                repr.emit(&mut ExtHeader::new_unchecked(&mut bytes[start..]));
                expected.push((kind, len));
            }
        }
        let header_len = bytes.len();
        bytes.extend_from_slice(&[0u8; 16]);
        let first = kinds.first().copied().unwrap_or(Protocol::Tcp);
        let chain = Chain::walk(first, &bytes).unwrap();
        prop_assert_eq!(shape(&chain), expected);
        prop_assert_eq!((chain.protocol, chain.offset), (Protocol::Tcp, header_len));
        prop_assert_eq!(chain.fragment.is_some(), first_frag.is_some());
    }

    #[test]
    fn any_chain_never_panics(first in any::<u8>(), bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        for walk in [Chain::walk, Chain::walk_reassembled] {
            if let Ok(chain) = walk(Protocol::from(first), &bytes) {
                prop_assert!(chain.offset <= bytes.len());
                prop_assert!(chain.headers().len() <= MAX_EXT_HEADERS);
                for span in chain.headers() {
                    prop_assert!(span.range().end <= chain.offset);
                }
            }
        }
        let _ = Options::new(&bytes).count();
        if let Ok(header) = ExtHeader::new_checked(&bytes[..]) {
            let _ = ExtHeaderRepr::parse(&header);
            let _ = header.options().count();
        }
    }

    #[test]
    fn dense_chains_never_panic(kinds in proptest::collection::vec(prop_oneof![Just(0u8), Just(43), Just(44), Just(60), any::<u8>()], 1..12),
                                lens in proptest::collection::vec(0u8..3, 12),
                                offsets in proptest::collection::vec(any::<u16>(), 12),
                                cut in any::<usize>()) {
        // Random chains of real extension headers with random lengths and fragment fields.
        let mut bytes = Vec::new();
        for (i, _) in kinds.iter().enumerate() {
            let next = kinds.get(i + 1).copied().unwrap_or(6);
            let [hi, lo] = offsets[i].to_be_bytes();
            bytes.extend_from_slice(&[next, lens[i], hi, lo, 0, 0, 0, 1]);
            bytes.resize(bytes.len() + usize::from(lens[i]) * 8, 0);
        }
        let cut = cut % (bytes.len() + 1);
        let _ = Chain::walk(Protocol::from(kinds[0]), &bytes[..cut]);
    }
}
