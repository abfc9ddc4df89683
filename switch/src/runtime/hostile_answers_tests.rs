//! Probes a scanner sends, through the running pipeline (see `hostile_tests.rs` for the rig):
//! Neighbor Discovery in fragments, FIN, NULL and Xmas scans of the DNS port, a ping cut
//! into 8-byte fragments. Each checks what the guest gets back, and that nothing else comes.

use super::hostile_tests::{Rig, big_echo, drop_delta, piece};
use crate::gateway::DNS_PORT;
use crate::gateway::testing::{
    GUEST, GUEST_MAC, GUEST6, GW, GW_MAC, frame, gw6, icmpv6_frame, ipv4, split,
};
use stack::ingress::{self, DropReason, Event};
use stack::wire::{
    EtherType, Icmpv4Packet, Icmpv4Repr, IpAddresses, IpProtocol, Ipv4Packet, Ipv6FragmentHeader,
    Ipv6FragmentRepr, Ipv6Packet, NdpOption, NdpOptions, NdpRepr, TcpControl, TcpPacket, TcpRepr,
    TcpSeqNumber, ethernet, ipv6,
};

/// A unicast Neighbor Solicitation for the gateway's link-local address, as a guest checking
/// its neighbour's reachability sends it (RFC 4861 §7.2.2).
fn unicast_solicitation() -> Vec<u8> {
    let lladdr = [NdpOption::SourceLinkLayerAddr(GUEST_MAC)];
    let ns = stack::wire::Icmpv6Repr::Ndp(NdpRepr::NeighborSolicit {
        target_addr: gw6(),
        options: NdpOptions::new(&lladdr),
    });
    icmpv6_frame(GW_MAC, GUEST6, gw6(), 255, &ns)
}

/// The IPv6 packet in `f` cut into fragments at the byte offsets `cuts` of its payload (each
/// a multiple of 8), every piece with a fragment header after the fixed header; with no cuts,
/// one atomic fragment (RFC 6946).
fn v6_fragments(f: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let (eth, ip) = f.split_at(ethernet::HEADER_LEN);
    let (fixed, payload) = ip.split_at(ipv6::HEADER_LEN);
    let mut bounds = vec![0];
    bounds.extend_from_slice(cuts);
    bounds.push(payload.len());
    bounds
        .windows(2)
        .map(|w| {
            let header = Ipv6FragmentRepr {
                next_header: IpProtocol::from(fixed[6]),
                offset: u16::try_from(w[0]).unwrap(),
                more_frags: w[1] < payload.len(),
                ident: 0x5eed,
            };
            let mut frag = [0u8; ipv6::FRAGMENT_HEADER_LEN];
            header.emit(&mut Ipv6FragmentHeader::new_unchecked(&mut frag[..]));
            let mut out = [eth, fixed, &frag, &payload[w[0]..w[1]]].concat();
            let mut p = Ipv6Packet::new_unchecked(&mut out[ethernet::HEADER_LEN..]);
            p.set_next_header(IpProtocol::Ipv6Frag);
            p.set_payload_len(u16::try_from(ipv6::FRAGMENT_HEADER_LEN + w[1] - w[0]).unwrap());
            out
        })
        .collect()
}

#[test]
fn neighbour_discovery_in_fragments_is_not_answered() {
    let rig = Rig::start();
    let ns = unicast_solicitation();
    // Whole, it is answered.
    rig.send(ns.clone());
    let (eth, _) = split(&rig.recv());
    assert_eq!(eth.ethertype, EtherType::Ipv6, "the advertisement");
    // RFC 6980 §5: the same message in one atomic fragment, or in two fragments that
    // reassemble, is dropped unanswered; the ARP reply is the next frame the guest gets.
    let (before, after) = rig.inject(v6_fragments(&ns, &[]).remove(0));
    assert_eq!(
        drop_delta(&before, &after),
        [(DropReason::NdpFragmented, 1)]
    );
    let mut pieces = v6_fragments(&ns, &[16]);
    assert_eq!(pieces.len(), 2);
    rig.inject(pieces.remove(0));
    let before = rig.rt.stats();
    rig.send(pieces.remove(0));
    let after = rig.wait_stats("the reassembled solicitation", |s| {
        s.reassembly.reassembled > before.reassembly.reassembled
            && s.drops.total() > before.drops.total()
    });
    assert_eq!(
        drop_delta(&before, &after),
        [(DropReason::NdpFragmented, 1)]
    );
    assert_eq!(after.gateway.ndp_replies, 1);
    rig.assert_serves();
}

/// A segment from the guest's port `src_port` to the gateway's DNS port, with `flags` (the
/// TCP header's flag byte) and no options or data.
fn to_dns(src_port: u16, flags: u8) -> Vec<u8> {
    let repr = TcpRepr {
        src_port,
        dst_port: DNS_PORT,
        seq_number: TcpSeqNumber(1000),
        window_len: 1000,
        ..TcpRepr::default()
    };
    let addrs = IpAddresses::V4 {
        src: GUEST,
        dst: GW,
    };
    let mut b = vec![0u8; repr.buffer_len()];
    repr.emit(&mut TcpPacket::new_unchecked(&mut b[..]), &addrs);
    b[13] = flags;
    if flags & 0x10 != 0 {
        b[8..12].copy_from_slice(&77u32.to_be_bytes());
    }
    TcpPacket::new_unchecked(&mut b[..]).fill_checksum(&addrs);
    frame(
        GUEST_MAC,
        GW_MAC,
        EtherType::Ipv4,
        &ipv4(GUEST, GW, IpProtocol::Tcp, &b),
    )
}

#[test]
fn fin_null_and_xmas_scans_of_the_dns_port_are_not_answered() {
    let rig = Rig::start();
    // FIN, NULL, Xmas (FIN PSH URG) and SYN+FIN: RFC 9293 §3.10.7.2 has a listening port
    // drop a segment with neither SYN, ACK nor RST (and Linux drops SYN+FIN).
    for (port, flags) in [(41001, 0x01), (41002, 0x00), (41003, 0x29), (41004, 0x03)] {
        rig.send(to_dns(port, flags));
    }
    // A lone ACK of no connection still gets RST; it is the first frame back, so none of
    // the probes before it was answered (the DNS thread takes segments in order).
    rig.send(to_dns(41005, 0x10));
    let reply = rig.recv();
    let parsed = ingress::parse(&reply, GUEST_MAC).unwrap();
    let Event::Tcp { tcp, .. } = parsed.event else {
        panic!("not TCP: {:?}", parsed.event);
    };
    assert_eq!((tcp.dst_port, tcp.control), (41005, TcpControl::Rst));
    assert_eq!(tcp.seq_number, TcpSeqNumber(77));
    let s = rig.wait_stats("the probes counted", |s| s.dns.tcp.probes_dropped == 4);
    assert_eq!(s.dns.tcp.resets_sent, 1);
    rig.assert_serves();
    rig.assert_dns_serves();
}

#[test]
fn a_ping_in_eight_byte_fragments_is_answered() {
    let rig = Rig::start();
    // `ping -s 2100` sent as hping3 or nmap's -f would: 2108 bytes of ICMP in 264 pieces.
    let whole = big_echo(2100);
    let icmp_len = 2108;
    let mut start = 0;
    while start < icmp_len {
        let end = (start + 8).min(icmp_len);
        rig.send(piece(&whole, 42, start, end, end < icmp_len));
        start = end;
    }
    // The reply does not fit 1500 bytes: it comes in two fragments.
    let mut got = Vec::new();
    for _ in 0..2 {
        let f = rig.recv();
        let (eth, body) = split(&f);
        assert_eq!(eth.dst_addr, GUEST_MAC);
        got.push(body.to_vec());
    }
    let mut r = stack::frag::Reassembler::new(stack::frag::Config::default());
    assert!(
        r.handle(stack::time::Instant::ZERO, &got[0])
            .unwrap()
            .is_none()
    );
    let packet = r
        .handle(stack::time::Instant::ZERO, &got[1])
        .unwrap()
        .expect("the reply's two pieces")
        .into_packet();
    let ip = Ipv4Packet::new_checked(&packet[..]).unwrap();
    let icmp = Icmpv4Repr::parse(&Icmpv4Packet::new_checked(ip.payload()).unwrap()).unwrap();
    let Icmpv4Repr::EchoReply { data, .. } = icmp else {
        panic!("an echo reply: {icmp:?}");
    };
    assert_eq!(data.len(), 2100);
    let s = rig.rt.stats();
    assert_eq!(s.reassembly.reassembled, 1);
    assert_eq!(s.gateway.echo_replies, 1);
}
