//! ICMP Time Exceeded for datagrams whose reassembly timed out (`gateway/frag_errors.rs`).

use super::testing::{
    GUEST, GUEST_MAC, GUEST6, GW, GW_MAC, HOST, echo_request, fragment, frame, gw6, split,
};
use super::*;
use stack::frag::FragDropReason;
use stack::wire::{
    Icmpv4Packet, Icmpv4TimeExceeded, Icmpv6TimeExceeded, Ipv6FragmentHeader, Ipv6FragmentRepr,
};

const T0: Instant = Instant::ZERO;

fn gateway() -> Gateway {
    Gateway::new(
        GatewayConfig::default(),
        Epoch::new(std::time::Instant::now()),
    )
    .unwrap()
}

/// The fragments, at a 1500-byte MTU, of a 3000-byte echo request from the guest to `dst`.
fn echo_pieces(dst: Ipv4Addr) -> Vec<Vec<u8>> {
    let data: Vec<u8> = (0..3000u32).map(|i| (i * 11) as u8).collect();
    let pieces = fragment(&echo_request(dst, &data), 1500);
    assert_eq!(pieces.len(), 3);
    pieces
}

/// Feeds `pieces` to a fresh gateway, runs its timers past the reassembly deadline and
/// returns it with every frame it then had to send.
fn expire(pieces: &[Vec<u8>]) -> (Gateway, Vec<Bytes>) {
    let mut gw = gateway();
    for piece in pieces {
        gw.handle_frame(T0, piece);
    }
    assert_eq!(gw.poll_transmit(), None, "nothing before the timeout");
    let deadline = gw.poll_timeout().expect("a reassembly timer");
    gw.handle_timeout(deadline);
    let sent = std::iter::from_fn(|| gw.poll_transmit()).collect();
    assert_eq!(gw.frag_stats().datagrams, 0);
    (gw, sent)
}

/// Edits the IPv4 header of a fragment frame, checksum refilled.
fn edit_ipv4(f: &mut [u8], edit: impl FnOnce(&mut Ipv4Packet<&mut [u8]>)) {
    let mut p = Ipv4Packet::new_unchecked(&mut f[ethernet::HEADER_LEN..]);
    edit(&mut p);
    p.fill_checksum();
}

#[test]
fn ipv4_first_fragment_then_timeout_is_time_exceeded() {
    // To the host's address, which the gateway stands in for: the error comes from there.
    let pieces = echo_pieces(HOST);
    let (gw, sent) = expire(&pieces[..1]);
    assert_eq!(sent.len(), 1, "one Time Exceeded");
    let (eth, body) = split(&sent[0]);
    assert_eq!((eth.src_addr, eth.dst_addr), (GW_MAC, GUEST_MAC));
    let ip_packet = Ipv4Packet::new_checked(body).unwrap();
    // parse verifies the IPv4 and ICMP checksums.
    let ip = Ipv4Repr::parse(&ip_packet).unwrap();
    assert_eq!((ip.src_addr, ip.dst_addr), (HOST, GUEST));
    assert_eq!(
        (ip.next_header, ip.hop_limit),
        (IpProtocol::Icmp, DEFAULT_TTL)
    );
    let icmp_packet = Icmpv4Packet::new_checked(ip_packet.payload()).unwrap();
    // RFC 792: the first fragment's IP header and the first 8 bytes of its data.
    let first = &pieces[0][ethernet::HEADER_LEN..];
    assert_eq!(
        Icmpv4Repr::parse(&icmp_packet).unwrap(),
        Icmpv4Repr::TimeExceeded {
            reason: Icmpv4TimeExceeded::FragReassembly,
            data: &first[..ipv4::HEADER_LEN + 8],
        }
    );
    assert_eq!(icmp_packet.msg_code(), 1);
    assert_eq!(gw.counters().time_exceeded_sent, 1);
}

#[test]
fn ipv4_without_its_first_fragment_gets_no_time_exceeded() {
    let pieces = echo_pieces(GW);
    // A middle fragment, then the last one: the first never comes (RFC 1122 §3.3.2).
    let (gw, sent) = expire(&pieces[1..]);
    assert!(sent.is_empty(), "{sent:?}");
    assert_eq!(gw.counters().time_exceeded_sent, 0);
    assert_eq!(gw.frag_stats().dropped(FragDropReason::Timeout), 1);
    assert_eq!(gw.frag_stats().expired_notices, 0);
}

#[test]
fn ipv4_time_exceeded_only_to_sources_the_gateway_serves() {
    let first = || echo_pieces(GW).swap_remove(0);
    let mut outside = first();
    edit_ipv4(&mut outside, |p| p.set_src_addr(Ipv4Addr::new(10, 0, 0, 9)));
    let mut ours = first();
    edit_ipv4(&mut ours, |p| p.set_src_addr(HOST));
    let mut unspecified = first();
    edit_ipv4(&mut unspecified, |p| p.set_src_addr(Ipv4Addr::UNSPECIFIED));
    let mut subnet_broadcast = first();
    edit_ipv4(&mut subnet_broadcast, |p| {
        p.set_dst_addr(Ipv4Addr::new(192, 168, 127, 255));
    });
    // RFC 1122 §3.2.2: no error about an error (type 3, destination unreachable).
    let mut about_error = first();
    about_error[ethernet::HEADER_LEN + ipv4::HEADER_LEN] = 3;
    let mut multicast_mac = first();
    multicast_mac[6] |= 0x01;
    for (what, piece) in [
        ("outside the subnet", outside),
        ("one of the gateway's addresses", ours),
        ("unspecified", unspecified),
        ("to the subnet's broadcast", subnet_broadcast),
        ("an ICMP error", about_error),
        ("from a multicast MAC", multicast_mac),
    ] {
        let (gw, sent) = expire(&[piece]);
        assert!(sent.is_empty(), "{what}: {sent:?}");
        assert_eq!(gw.counters().time_exceeded_sent, 0, "{what}");
        // Held and given up like any other: only the error is withheld.
        assert_eq!(gw.frag_stats().expired_notices, 1, "{what}");
    }
}

/// An IPv6 fragment from the guest to `dst`: a fragment header (identification 77) with
/// `offset` and `more`, then `data`.
fn ipv6_fragment(dst: Ipv6Addr, offset: u16, more: bool, data: &[u8]) -> Vec<u8> {
    let ip = Ipv6Repr {
        src_addr: GUEST6,
        dst_addr: dst,
        next_header: IpProtocol::Ipv6Frag,
        payload_len: ipv6::FRAGMENT_HEADER_LEN + data.len(),
        hop_limit: 64,
        dscp: 0,
        ecn: 0,
        flow_label: 0,
    };
    let mut b = vec![0u8; ipv6::HEADER_LEN + ip.payload_len];
    ip.emit(&mut Ipv6Packet::new_unchecked(&mut b[..]));
    let (_, rest) = b.split_at_mut(ipv6::HEADER_LEN);
    let (header, payload) = rest.split_at_mut(ipv6::FRAGMENT_HEADER_LEN);
    Ipv6FragmentRepr {
        next_header: IpProtocol::Icmpv6,
        offset,
        more_frags: more,
        ident: 77,
    }
    .emit(&mut Ipv6FragmentHeader::new_unchecked(header));
    payload.copy_from_slice(data);
    frame(GUEST_MAC, GW_MAC, EtherType::Ipv6, &b)
}

/// The start of an ICMPv6 echo request (type 128), as a first fragment carries it.
fn echo6_start() -> Vec<u8> {
    let mut data = vec![128, 0, 0x12, 0x34, 0, 5, 0, 6];
    data.extend((0..56u8).map(|i| i.wrapping_mul(3)));
    data
}

#[test]
fn ipv6_first_fragment_then_timeout_is_time_exceeded() {
    let first = ipv6_fragment(gw6(), 0, true, &echo6_start());
    let (gw, sent) = expire(std::slice::from_ref(&first));
    assert_eq!(sent.len(), 1, "one Time Exceeded");
    let (eth, body) = split(&sent[0]);
    assert_eq!((eth.src_addr, eth.dst_addr), (GW_MAC, GUEST_MAC));
    let packet = Ipv6Packet::new_checked(body).unwrap();
    let ip = Ipv6Repr::parse(&packet).unwrap();
    assert_eq!((ip.src_addr, ip.dst_addr), (gw6(), GUEST6));
    assert_eq!(ip.next_header, IpProtocol::Icmpv6);
    let addrs = IpAddresses::V6 {
        src: gw6(),
        dst: GUEST6,
    };
    let icmp = Icmpv6Packet::new_checked(packet.payload()).unwrap();
    // parse verifies the checksum. RFC 4443 §3.3: as much of the invoking packet as fits
    // 1280 bytes; this first fragment fits whole.
    assert_eq!(
        Icmpv6Repr::parse(&icmp, &addrs).unwrap(),
        Icmpv6Repr::TimeExceeded {
            reason: Icmpv6TimeExceeded::FragReassemblyExceeded,
            invoking: &first[ethernet::HEADER_LEN..],
        }
    );
    assert_eq!(gw.counters().time_exceeded_sent, 1);
}

#[test]
fn ipv6_without_its_first_fragment_or_about_an_error_gets_none() {
    let middle = ipv6_fragment(gw6(), 64, true, &[9; 64]);
    let mut error_start = echo6_start();
    // Type 1, destination unreachable: RFC 4443 §2.4(e.1), no error about an error.
    error_start[0] = 1;
    let about_error = ipv6_fragment(gw6(), 0, true, &error_start);
    for (what, piece) in [
        ("a middle fragment", middle),
        ("an ICMPv6 error", about_error),
    ] {
        let (gw, sent) = expire(&[piece]);
        assert!(sent.is_empty(), "{what}: {sent:?}");
        assert_eq!(gw.counters().time_exceeded_sent, 0, "{what}");
        assert_eq!(
            gw.frag_stats().dropped(FragDropReason::Timeout),
            1,
            "{what}"
        );
    }
}

#[test]
fn a_completed_datagram_leaves_no_time_exceeded() {
    let mut gw = gateway();
    for piece in echo_pieces(GW) {
        gw.handle_frame(T0, &piece);
    }
    assert_eq!(gw.poll_timeout(), None, "nothing held, no timer");
    assert_eq!(gw.poll_transmit(), None);
}
