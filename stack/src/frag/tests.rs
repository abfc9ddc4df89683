//! Reassembly of captured fragments, each drop reason at its limit, and proptests.

use super::*;
use crate::ingress::{self, Event};
use crate::wire::fixtures;
use crate::wire::ip::Protocol;
use crate::wire::{
    EthernetFrame, Icmpv4Repr, Icmpv6Repr, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr,
};
use proptest::prelude::*;

const V4_PCAP: &[u8] = include_bytes!("../wire/fixtures/ipv4_fragments.pcap");
const V6_PCAP: &[u8] = include_bytes!("../wire/fixtures/ipv6_fragments.pcap");
const V6_EXT_PCAP: &[u8] = include_bytes!("../wire/fixtures/ipv6_ext.pcap");

const SRC4: Ipv4Addr = Ipv4Addr::new(192, 168, 127, 2);
const DST4: Ipv4Addr = Ipv4Addr::new(192, 168, 127, 1);
const SRC6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x127, 0, 0, 0, 0, 0, 2);
const DST6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x127, 0, 0, 0, 0, 0, 1);

fn at(millis: u64) -> Instant {
    Instant::from_millis(millis)
}

/// The IP packets of frames `range` of a capture.
fn captured(pcap: &'static [u8], range: core::ops::Range<usize>) -> Vec<&'static [u8]> {
    fixtures::frames(pcap)[range]
        .iter()
        .map(|f| EthernetFrame::new_checked(*f).unwrap().payload())
        .collect()
}

/// Feeds `packets` in order; returns the reassembled packet, checking nothing completes early.
fn feed(r: &mut Reassembler, packets: &[&[u8]]) -> Vec<u8> {
    let (last, rest) = packets.split_last().unwrap();
    for p in rest {
        assert_eq!(r.handle(at(0), p), Ok(None));
    }
    r.handle(at(0), last).unwrap().unwrap().into_packet()
}

/// Puts `packet` back in the captured frame's Ethernet header and runs it through ingress.
fn ingress_event(pcap: &'static [u8], index: usize, packet: &[u8]) -> Vec<u8> {
    let frame = fixtures::frame(pcap, index);
    let mut whole = frame[..14].to_vec();
    whole.extend_from_slice(packet);
    let mac = EthernetFrame::new_checked(frame).unwrap().destination();
    let parsed = ingress::parse(&whole, mac).unwrap();
    match parsed.event {
        Event::Icmpv4 {
            icmp: Icmpv4Repr::EchoRequest { data, .. } | Icmpv4Repr::EchoReply { data, .. },
            ..
        } => data.to_vec(),
        Event::Icmpv6 {
            icmp: Icmpv6Repr::EchoRequest { data, .. } | Icmpv6Repr::EchoReply { data, .. },
            ..
        } => data.to_vec(),
        Event::Udp { payload, .. } => payload.to_vec(),
        other => panic!("{other:?}"),
    }
}

/// Every order of three fragments, and each with a fragment sent twice.
fn orders() -> Vec<Vec<usize>> {
    let mut out = vec![
        vec![0, 1, 2],
        vec![0, 2, 1],
        vec![1, 0, 2],
        vec![1, 2, 0],
        vec![2, 0, 1],
        vec![2, 1, 0],
    ];
    out.push(vec![0, 0, 1, 1, 2]);
    out.push(vec![2, 1, 1, 0]);
    out.push(vec![1, 2, 2, 0]);
    out
}

#[test]
fn ipv4_capture_reassembles_in_any_order() {
    for (first, icmp_len) in [(0, 3008), (3, 3008)] {
        let packets = captured(V4_PCAP, first..first + 3);
        for order in orders() {
            let mut r = Reassembler::new(Config::default());
            let seq: Vec<&[u8]> = order.iter().map(|&i| packets[i]).collect();
            let whole = feed(&mut r, &seq);
            let packet = Ipv4Packet::new_checked(&whole[..]).unwrap();
            let repr = Ipv4Repr::parse(&packet).unwrap();
            assert!(!repr.is_fragment());
            assert_eq!(repr.total_len(), 20 + icmp_len);
            let data = ingress_event(V4_PCAP, first, &whole);
            assert_eq!(data.len(), icmp_len - 8);
            let stats = r.stats();
            assert_eq!(stats.reassembled, 1);
            assert_eq!(stats.duplicates, (order.len() - 3) as u64);
            assert_eq!((stats.datagrams, stats.bytes_held), (0, 0));
        }
    }
}

#[test]
fn ipv6_capture_reassembles_in_any_order() {
    for first in [0, 3] {
        let packets = captured(V6_PCAP, first..first + 3);
        for order in orders() {
            let mut r = Reassembler::new(Config::default());
            let seq: Vec<&[u8]> = order.iter().map(|&i| packets[i]).collect();
            let whole = feed(&mut r, &seq);
            let packet = Ipv6Packet::new_checked(&whole[..]).unwrap();
            let repr = Ipv6Repr::parse(&packet).unwrap();
            assert_eq!(repr.next_header, Protocol::Icmpv6);
            assert_eq!(repr.payload_len, 3008);
            assert_eq!(ingress_event(V6_PCAP, first, &whole).len(), 3000);
            assert_eq!(r.stats().reassembled, 1);
            assert_eq!(r.stats().bytes_held, 0);
        }
    }
}

#[test]
fn ipv6_capture_with_extension_headers_reassembles() {
    // Hop-by-hop, destination options and a routing header before the fragment header; a
    // destination options header and UDP after it, in the first fragment.
    let packets = captured(V6_EXT_PCAP, 3..5);
    for order in [[0, 1], [1, 0]] {
        let mut r = Reassembler::new(Config::default());
        let whole = feed(&mut r, &[packets[order[0]], packets[order[1]]]);
        let chain = Ipv6Packet::new_checked(&whole[..])
            .unwrap()
            .header_chain()
            .unwrap();
        assert!(chain.fragment.is_none());
        assert_eq!(chain.protocol, Protocol::Udp);
        assert_eq!(ingress_event(V6_EXT_PCAP, 3, &whole).len(), 2000);
    }
}

#[test]
fn captured_fragments_of_two_datagrams_interleave() {
    let v4 = captured(V4_PCAP, 0..6);
    let v6 = captured(V6_PCAP, 0..6);
    let mut r = Reassembler::new(Config::default());
    let mut done = 0;
    for i in [0, 3, 1, 4, 5, 2] {
        for p in [v4[i], v6[i]] {
            if r.handle(at(0), p).unwrap().is_some() {
                done += 1;
            }
        }
    }
    assert_eq!(done, 4);
    assert_eq!(r.stats().datagrams, 0);
}

// ---------------------------------------------------------------------------------------------
// Crafted fragments.

/// An IPv4 fragment of datagram `ident` (ICMP, 192.168.127.2 → .1).
fn v4(ident: u16, offset: u16, more: bool, data: &[u8]) -> Vec<u8> {
    let repr = Ipv4Repr {
        src_addr: SRC4,
        dst_addr: DST4,
        next_header: Protocol::Udp,
        payload_len: data.len(),
        hop_limit: 64,
        ident,
        dont_frag: false,
        more_frags: more,
        frag_offset: offset,
        dscp: 0,
        ecn: 0,
    };
    let mut out = vec![0; repr.total_len()];
    repr.emit(&mut Ipv4Packet::new_unchecked(&mut out[..]));
    out[20..].copy_from_slice(data);
    out
}

/// An IPv6 fragment of packet `ident` (UDP, fd00:127::2 → ::1), fragment header right after
/// the fixed header.
fn v6(ident: u32, offset: u16, more: bool, data: &[u8]) -> Vec<u8> {
    let repr = Ipv6Repr {
        src_addr: SRC6,
        dst_addr: DST6,
        next_header: Protocol::Ipv6Frag,
        payload_len: 8 + data.len(),
        hop_limit: 64,
        dscp: 0,
        ecn: 0,
        flow_label: 0,
    };
    let mut out = vec![0; 40];
    repr.emit(&mut Ipv6Packet::new_unchecked(&mut out[..]));
    let off_m = (offset & !7) | u16::from(more);
    out.extend_from_slice(&[17, 0]);
    out.extend_from_slice(&off_m.to_be_bytes());
    out.extend_from_slice(&ident.to_be_bytes());
    out.extend_from_slice(data);
    out
}

type Maker = fn(u16, u16, bool, &[u8]) -> Vec<u8>;

fn make_v4(ident: u16, offset: u16, more: bool, data: &[u8]) -> Vec<u8> {
    v4(ident, offset, more, data)
}

fn make_v6(ident: u16, offset: u16, more: bool, data: &[u8]) -> Vec<u8> {
    v6(u32::from(ident) << 8, offset, more, data)
}

const BOTH: [Maker; 2] = [make_v4, make_v6];

/// Asserts `packet` is dropped for `reason`, counted once, and nothing is left held.
fn assert_drop(r: &mut Reassembler, packet: &[u8], reason: FragDropReason) {
    let before = r.stats().dropped(reason);
    assert_eq!(r.handle(at(0), packet), Err(reason));
    assert_eq!(r.stats().dropped(reason), before + 1);
}

#[test]
fn drop_overlap_abandons_the_datagram() {
    for make in BOTH {
        let mut r = Reassembler::new(Config::default());
        assert_eq!(r.handle(at(0), &make(1, 0, true, &[1; 16])), Ok(None));
        assert_eq!(r.handle(at(0), &make(1, 32, false, &[3; 8])), Ok(None));
        assert_drop(&mut r, &make(1, 8, true, &[2; 16]), FragDropReason::Overlap);
        let stats = r.stats();
        assert_eq!(
            (stats.datagrams, stats.bytes_held, stats.abandoned),
            (0, 0, 1)
        );
        // The missing piece alone now starts a new datagram that cannot complete.
        assert_eq!(r.handle(at(0), &make(1, 16, true, &[2; 16])), Ok(None));
    }
}

#[test]
fn drop_overlap_from_behind_and_changed_duplicate() {
    for make in BOTH {
        let mut r = Reassembler::new(Config::default());
        r.handle(at(0), &make(2, 8, true, &[1; 16])).unwrap();
        assert_drop(&mut r, &make(2, 0, true, &[1; 16]), FragDropReason::Overlap);
        r.handle(at(0), &make(3, 8, true, &[1; 16])).unwrap();
        assert_eq!(r.handle(at(0), &make(3, 8, true, &[1; 16])), Ok(None));
        assert_eq!(r.stats().duplicates, 1);
        assert_drop(&mut r, &make(3, 8, true, &[9; 16]), FragDropReason::Overlap);
        assert_eq!(r.stats().bytes_held, 0);
    }
}

#[test]
fn drop_too_big() {
    for make in BOTH {
        let mut r = Reassembler::new(Config::default());
        // 65528 + 16 bytes of data ends past any 65535-byte datagram: the ping of death.
        assert_drop(
            &mut r,
            &make(4, 65528, false, &[0; 16]),
            FragDropReason::TooBig,
        );
    }
    // Just inside, then the header makes it too long: 65515 bytes of data fit beside a 20-byte
    // IPv4 header, 65535 beside no IPv6 extension headers.
    let mut r = Reassembler::new(Config::default());
    assert_drop(
        &mut r,
        &v4(5, 65512, false, &[0; 8]),
        FragDropReason::TooBig,
    );
    assert_eq!(r.handle(at(0), &v4(5, 65488, false, &[0; 8])), Ok(None));
    assert_eq!(r.handle(at(0), &v6(5, 65520, false, &[0; 15])), Ok(None));
    // A configured smaller limit.
    let mut r = Reassembler::new(Config {
        max_datagram_len: 1500,
        ..Config::default()
    });
    assert_drop(&mut r, &v4(6, 1480, false, &[0; 8]), FragDropReason::TooBig);
    assert_drop(&mut r, &v6(6, 1496, false, &[0; 8]), FragDropReason::TooBig);
}

#[test]
fn drop_misaligned_and_empty() {
    for make in BOTH {
        let mut r = Reassembler::new(Config::default());
        assert_drop(
            &mut r,
            &make(7, 0, true, &[0; 12]),
            FragDropReason::Misaligned,
        );
        assert_drop(&mut r, &make(7, 8, true, &[]), FragDropReason::Empty);
        assert_eq!(r.stats().datagrams, 0);
    }
}

#[test]
fn drop_inconsistent_ends() {
    for make in BOTH {
        let mut r = Reassembler::new(Config::default());
        r.handle(at(0), &make(8, 16, false, &[0; 8])).unwrap();
        // A second last fragment with another end.
        assert_drop(
            &mut r,
            &make(8, 32, false, &[0; 8]),
            FragDropReason::Inconsistent,
        );
        r.handle(at(0), &make(9, 16, false, &[0; 8])).unwrap();
        // Data past the end the last fragment gave.
        assert_drop(
            &mut r,
            &make(9, 24, true, &[0; 8]),
            FragDropReason::Inconsistent,
        );
        r.handle(at(0), &make(10, 32, true, &[0; 8])).unwrap();
        // A last fragment ending before data already held.
        assert_drop(
            &mut r,
            &make(10, 8, false, &[0; 8]),
            FragDropReason::Inconsistent,
        );
        assert_eq!(r.stats().bytes_held, 0);
    }
}

#[test]
fn drop_not_fragment_and_malformed() {
    let mut r = Reassembler::new(Config::default());
    assert_drop(
        &mut r,
        &v4(1, 0, false, &[0; 8]),
        FragDropReason::NotFragment,
    );
    assert_drop(
        &mut r,
        &v6(1, 0, false, &[0; 8]),
        FragDropReason::NotFragment,
    );
    let mut bad = v4(1, 0, true, &[0; 8]);
    bad[10] ^= 1;
    assert_drop(&mut r, &bad, FragDropReason::Malformed);
    assert_drop(&mut r, &[], FragDropReason::Malformed);
    assert_drop(&mut r, &[0x45; 10], FragDropReason::Malformed);
    assert_drop(&mut r, &[0x60; 30], FragDropReason::Malformed);
}

#[test]
fn timeout_expires_and_quotes_the_first_fragment() {
    let mut r = Reassembler::new(Config::default());
    let first = v4(11, 0, true, &[7; 16]);
    r.handle(at(0), &first).unwrap();
    r.handle(at(1000), &v6(11, 0, true, &[7; 16])).unwrap();
    // No first fragment: no notice.
    r.handle(at(2000), &v4(12, 8, true, &[7; 16])).unwrap();
    assert_eq!(r.poll_timeout(), Some(at(30_000)));
    r.handle_timeout(at(29_999));
    assert_eq!(r.stats().datagrams, 3);
    r.handle_timeout(at(32_000));
    assert_eq!(r.stats().datagrams, 1);
    assert_eq!(r.stats().dropped(FragDropReason::Timeout), 2);
    let notice = r.poll_expired().unwrap();
    assert_eq!(notice.key.src(), IpAddr::V4(SRC4));
    // RFC 792: the header and 8 bytes.
    assert_eq!(notice.quote, first[..28]);
    assert!(r.poll_expired().is_none());
    assert_eq!(r.poll_timeout(), Some(at(61_000)));
    r.handle_timeout(at(61_000));
    let notice = r.poll_expired().unwrap();
    assert_eq!(notice.key.src(), IpAddr::V6(SRC6));
    // The whole first fragment, as it came.
    assert_eq!(notice.quote.len(), 40 + 8 + 16);
    let stats = r.stats();
    assert_eq!((stats.datagrams, stats.bytes_held), (0, 0));
    assert_eq!(stats.expired_notices, 2);
    assert_eq!(r.poll_timeout(), None);
}

#[test]
fn ipv6_quote_fits_the_minimum_mtu() {
    let mut r = Reassembler::new(Config::default());
    r.handle(at(0), &v6(16, 0, true, &[7; 1400])).unwrap();
    r.handle_timeout(at(60_000));
    let notice = r.poll_expired().unwrap();
    // RFC 4443 §2.4(c): 1280 - 40 (IPv6) - 8 (ICMPv6).
    assert_eq!(notice.quote.len(), 1232);
    assert_eq!(notice.quote[40..44], [17, 0, 0, 1]);
}

#[test]
fn expired_notice_carries_the_first_fragments_tag() {
    let mut r = Reassembler::new(Config::default());
    // The tag of a later fragment, a duplicate of the first, or a fragment before the first
    // does not count: only the one whose header was kept.
    r.handle_tagged(at(0), &v4(18, 16, true, &[3; 8]), 1)
        .unwrap();
    r.handle_tagged(at(0), &v4(18, 0, true, &[1; 8]), 2)
        .unwrap();
    r.handle_tagged(at(0), &v4(18, 0, true, &[1; 8]), 3)
        .unwrap();
    r.handle_tagged(at(0), &v4(18, 8, true, &[2; 8]), 4)
        .unwrap();
    r.handle_tagged(at(0), &v6(19, 0, true, &[1; 8]), 5)
        .unwrap();
    r.handle_timeout(at(60_000));
    let tags: Vec<u64> = std::iter::from_fn(|| r.poll_expired())
        .map(|n| n.tag)
        .collect();
    assert_eq!(tags, [2, 5]);
}

#[test]
fn ipv6_first_fragment_must_hold_the_chain() {
    // RFC 8200 §4.5 (RFC 7112): a first fragment whose fragmentable part starts a destination
    // options header it does not hold whole.
    let mut p = v6(17, 0, true, &[17, 4, 0, 0, 0, 0, 0, 0]);
    p[40] = 60;
    let mut r = Reassembler::new(Config::default());
    assert_drop(&mut r, &p, FragDropReason::Malformed);
    assert_eq!(r.stats().datagrams, 0);
}

#[test]
fn late_fragment_after_timeout_starts_afresh() {
    let mut r = Reassembler::new(Config::default());
    r.handle(at(0), &v4(13, 0, true, &[1; 8])).unwrap();
    // handle expires first: the old half is gone, so this cannot complete it.
    assert_eq!(r.handle(at(30_000), &v4(13, 8, false, &[2; 8])), Ok(None));
    assert_eq!(r.stats().dropped(FragDropReason::Timeout), 1);
}

#[test]
fn expired_notices_are_bounded() {
    let mut r = Reassembler::new(Config::default());
    for id in 0..(MAX_PENDING_EXPIRED as u16 + 5) {
        r.handle(at(0), &v4(id, 0, true, &[1; 8])).unwrap();
    }
    r.handle_timeout(at(60_000));
    let stats = r.stats();
    assert_eq!(stats.expired_notices, MAX_PENDING_EXPIRED as u64);
    assert_eq!(stats.expired_notices_dropped, 5);
}

#[test]
fn drop_too_many_datagrams_keeps_the_ones_in_progress() {
    let mut r = Reassembler::new(Config {
        max_datagrams: 2,
        ..Config::default()
    });
    r.handle(at(0), &v4(1, 0, true, &[1; 8])).unwrap();
    r.handle(at(0), &v6(2, 0, true, &[1; 8])).unwrap();
    assert_drop(
        &mut r,
        &v4(3, 0, true, &[1; 8]),
        FragDropReason::TooManyDatagrams,
    );
    assert_drop(
        &mut r,
        &v6(3, 0, true, &[1; 8]),
        FragDropReason::TooManyDatagrams,
    );
    assert!(
        r.handle(at(0), &v4(1, 8, false, &[2; 8]))
            .unwrap()
            .is_some()
    );
    assert!(
        r.handle(at(0), &v6(2, 8, false, &[2; 8]))
            .unwrap()
            .is_some()
    );
    // Room again.
    assert_eq!(r.handle(at(0), &v4(3, 0, true, &[1; 8])), Ok(None));
}

#[test]
fn drop_memory_limit_never_exceeds_the_bound() {
    let max_bytes = 4000;
    let mut r = Reassembler::new(Config {
        max_bytes,
        ..Config::default()
    });
    r.handle(at(0), &v4(1, 0, true, &[1; 1480])).unwrap();
    r.handle(at(0), &v4(2, 0, true, &[1; 1480])).unwrap();
    assert!(r.stats().bytes_held <= max_bytes);
    // A third needs more than is left: refused, its datagram abandoned, the others kept.
    r.handle(at(0), &v4(3, 0, true, &[1; 8])).unwrap();
    assert_drop(
        &mut r,
        &v4(3, 8, true, &[1; 1480]),
        FragDropReason::MemoryLimit,
    );
    assert!(r.stats().peak_bytes_held <= max_bytes);
    assert_eq!(r.stats().datagrams, 2);
    assert!(
        r.handle(at(0), &v4(1, 1480, false, &[2; 8]))
            .unwrap()
            .is_some()
    );
}

#[test]
fn drop_too_many_fragments() {
    for make in BOTH {
        let mut r = Reassembler::new(Config {
            max_fragments: 3,
            ..Config::default()
        });
        for i in 0..3 {
            r.handle(at(0), &make(14, i * 8, true, &[1; 8])).unwrap();
        }
        assert_drop(
            &mut r,
            &make(14, 24, false, &[1; 8]),
            FragDropReason::TooManyFragments,
        );
        assert_eq!(r.stats().bytes_held, 0);
    }
}

#[test]
fn ipv4_options_in_the_first_fragment_are_kept() {
    // A first fragment with a 4-byte option (NOP × 3, EOL); the next one without options.
    let mut first = v4(15, 0, true, &[5; 8]);
    first.splice(20..20, [1, 1, 1, 0]);
    {
        let mut p = Ipv4Packet::new_unchecked(&mut first[..]);
        p.set_version_and_header_len(24);
        p.set_total_len(32);
        p.fill_checksum();
    }
    let mut r = Reassembler::new(Config::default());
    r.handle(at(0), &first).unwrap();
    let whole = r
        .handle(at(0), &v4(15, 8, false, &[6; 4]))
        .unwrap()
        .unwrap()
        .into_packet();
    let packet = Ipv4Packet::new_checked(&whole[..]).unwrap();
    let repr = Ipv4Repr::parse(&packet).unwrap();
    assert_eq!(packet.options(), [1, 1, 1, 0]);
    assert!(!repr.is_fragment());
    assert_eq!(packet.payload(), [5, 5, 5, 5, 5, 5, 5, 5, 6, 6, 6, 6]);
}

// ---------------------------------------------------------------------------------------------
// Properties.

/// One step of an arbitrary fragment sequence.
#[derive(Debug, Clone)]
enum Step {
    Fragment {
        v6: bool,
        ident: u16,
        offset: u16,
        more: bool,
        len: usize,
        fill: u8,
    },
    Raw(Vec<u8>),
    Wait(u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (any::<bool>(), 0u16..4, prop_oneof![0u16..64, any::<u16>()], any::<bool>(),
              prop_oneof![0usize..64, 0usize..2000], any::<u8>())
            .prop_map(|(v6, ident, offset, more, len, fill)| Step::Fragment {
                v6, ident, offset: offset & !7, more, len, fill,
            }),
        1 => proptest::collection::vec(any::<u8>(), 0..80).prop_map(Step::Raw),
        1 => (0u64..40_000).prop_map(Step::Wait),
    ]
}

proptest! {
    #[test]
    fn arbitrary_fragments_stay_within_bounds(steps in proptest::collection::vec(step(), 0..60)) {
        let config = Config {
            max_datagrams: 4,
            max_bytes: 6000,
            max_fragments: 8,
            ..Config::default()
        };
        let mut r = Reassembler::new(config);
        let mut now = 0;
        for step in steps {
            let result = match step {
                Step::Fragment { v6: false, ident, offset, more, len, fill } => {
                    let len = len.min(65515);
                    r.handle(at(now), &v4(ident, offset, more, &vec![fill; len]))
                }
                Step::Fragment { v6: true, ident, offset, more, len, fill } => {
                    let len = len.min(65527);
                    r.handle(at(now), &v6(u32::from(ident), offset, more, &vec![fill; len]))
                }
                Step::Raw(bytes) => r.handle(at(now), &bytes),
                Step::Wait(ms) => {
                    now += ms;
                    r.handle_timeout(at(now));
                    Ok(None)
                }
            };
            if let Ok(Some(done)) = result {
                prop_assert!(done.packet().len() <= 65535 + 40);
            }
            let stats = r.stats();
            prop_assert!(stats.bytes_held <= config.max_bytes);
            prop_assert!(stats.peak_bytes_held <= config.max_bytes);
            prop_assert!(stats.datagrams <= config.max_datagrams);
            while r.poll_expired().is_some() {}
        }
        r.handle_timeout(at(now + 60_000));
        prop_assert_eq!((r.stats().datagrams, r.stats().bytes_held), (0, 0));
    }

    #[test]
    fn split_and_shuffled_datagram_reassembles(
        v6_family in any::<bool>(),
        data in proptest::collection::vec(any::<u8>(), 1..4000),
        cuts in proptest::collection::vec(1usize..500, 0..12),
        dups in proptest::collection::vec(any::<prop::sample::Index>(), 0..3),
        seed in any::<u64>(),
    ) {
        // Cut points on 8-byte boundaries, strictly inside the data.
        let mut points: Vec<usize> = cuts.iter().map(|c| c * 8).filter(|&c| c < data.len()).collect();
        points.push(0);
        points.push(data.len());
        points.sort_unstable();
        points.dedup();
        let mut packets: Vec<Vec<u8>> = points.windows(2).map(|w| {
            let more = w[1] != data.len();
            let (offset, chunk) = (w[0] as u16, &data[w[0]..w[1]]);
            if v6_family { v6(77, offset, more, chunk) } else { v4(77, offset, more, chunk) }
        }).collect();
        prop_assume!(packets.len() > 1);
        for d in &dups {
            let copy = d.get(&packets).clone();
            packets.push(copy);
        }
        // A deterministic shuffle from the seed.
        let mut state = seed | 1;
        for i in (1..packets.len()).rev() {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17;
            packets.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let mut r = Reassembler::new(Config::default());
        // Duplicates arriving after completion may start (and even complete) a datagram anew.
        let mut outs = Vec::new();
        for p in &packets {
            if let Some(done) = r.handle(at(0), p).unwrap() {
                outs.push(done.into_packet());
            }
        }
        let out = outs.first().cloned();
        let expected = if v6_family {
            let mut e = v6(77, 0, false, &data);
            // The unfragmented packet: fixed header naming UDP, no fragment header.
            e.drain(40..48);
            e[6] = 17;
            e[4..6].copy_from_slice(&(data.len() as u16).to_be_bytes());
            e
        } else {
            v4(77, 0, false, &data)
        };
        prop_assert!(outs.iter().all(|o| *o == expected));
        prop_assert_eq!(out, Some(expected));
    }
}
