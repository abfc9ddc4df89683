//! The gateway's answers to probes a scanner sends (nmap's OS detection, hping3): echo
//! requests with an odd code or a TOS, UDP to a closed port of its IPv6 address, Neighbor
//! Discovery inside a fragment.

use super::testing::{
    GUEST, GUEST_MAC, GUEST6, GW, GW_MAC, echo_request, frame, gw6, solicitation, split,
};
use super::*;
use stack::wire::{Icmpv4Packet, Icmpv6DstUnreachable, Ipv6FragmentHeader, Ipv6FragmentRepr};
use std::net::Ipv6Addr;

const T0: Instant = Instant::ZERO;

fn gateway() -> Gateway {
    Gateway::new(
        GatewayConfig::default(),
        Epoch::new(std::time::Instant::now()),
    )
    .unwrap()
}

/// `f` (an IPv4 echo request in a frame) with ICMP code `code` and TOS `dscp`/`ecn`, its
/// checksums made right again.
fn odd_echo(mut f: Vec<u8>, code: u8, dscp: u8, ecn: u8) -> Vec<u8> {
    let ip = ethernet::HEADER_LEN;
    let icmp = ip + ipv4::HEADER_LEN;
    let mut p = Icmpv4Packet::new_unchecked(&mut f[icmp..]);
    p.set_msg_code(code);
    p.fill_checksum();
    let mut p = Ipv4Packet::new_unchecked(&mut f[ip..]);
    p.set_dscp_ecn(dscp, ecn);
    p.fill_checksum();
    f
}

#[test]
fn echo_with_a_nonzero_code_is_answered_with_the_requests_tos() {
    let mut gw = gateway();
    // nmap's OS detection sends code 9 and TOS 0 in one probe, code 0 and TOS 4 in the
    // other; Linux answers both (code 0 in the reply) and reflects the TOS byte.
    for (code, dscp, ecn) in [(9, 0, 0), (0, 1, 0), (9, 46, 1)] {
        let f = odd_echo(echo_request(GW, b"probe"), code, dscp, ecn);
        let Outcome::Reply(reply) = gw.handle_frame(T0, &f) else {
            panic!("code {code} TOS {dscp}/{ecn} is answered");
        };
        let (eth, body) = split(&reply);
        assert_eq!((eth.src_addr, eth.dst_addr), (GW_MAC, GUEST_MAC));
        let ip = Ipv4Repr::parse(&Ipv4Packet::new_checked(body).unwrap()).unwrap();
        assert_eq!((ip.src_addr, ip.dst_addr), (GW, GUEST));
        assert_eq!((ip.dscp, ip.ecn), (dscp, ecn), "the request's TOS");
        let icmp = Icmpv4Packet::new_checked(&body[ipv4::HEADER_LEN..ip.total_len()]).unwrap();
        assert_eq!(icmp.msg_code(), 0);
        assert_eq!(
            Icmpv4Repr::parse(&icmp).unwrap(),
            Icmpv4Repr::EchoReply {
                ident: 0xbeef,
                seq_no: 7,
                data: b"probe"
            }
        );
    }
    assert_eq!(gw.counters().echo_replies, 3);
}

/// An IPv6 packet from the guest to `dst` carrying `next` and `body`, hop limit 64, in a
/// frame to the gateway.
fn ipv6_frame(dst: Ipv6Addr, next: IpProtocol, body: &[u8], traffic_class: u8) -> Vec<u8> {
    let ip = Ipv6Repr {
        src_addr: GUEST6,
        dst_addr: dst,
        next_header: next,
        payload_len: body.len(),
        hop_limit: 64,
        dscp: traffic_class >> 2,
        ecn: traffic_class & 3,
        flow_label: 0x12345,
    };
    let mut b = vec![0u8; ipv6::HEADER_LEN + body.len()];
    ip.emit(&mut Ipv6Packet::new_unchecked(&mut b[..]));
    b[ipv6::HEADER_LEN..].copy_from_slice(body);
    frame(GUEST_MAC, GW_MAC, EtherType::Ipv6, &b)
}

fn udp6(dst: Ipv6Addr, dst_port: u16, data: &[u8]) -> Vec<u8> {
    let repr = UdpRepr {
        src_port: 40000,
        dst_port,
        payload_len: data.len(),
    };
    let mut b = vec![0u8; udp::HEADER_LEN + data.len()];
    b[udp::HEADER_LEN..].copy_from_slice(data);
    repr.emit(
        &mut UdpPacket::new_unchecked(&mut b[..]),
        &IpAddresses::V6 { src: GUEST6, dst },
    );
    ipv6_frame(dst, IpProtocol::Udp, &b, 0)
}

#[test]
fn udp_to_a_closed_port_of_the_gateways_ipv6_address_is_port_unreachable() {
    let mut gw = gateway();
    let data = vec![0x61u8; 100];
    let f = udp6(gw6(), 9, &data);
    let Outcome::Reply(reply) = gw.handle_frame(T0, &f) else {
        panic!("the gateway answers itself");
    };
    let (eth, body) = split(&reply);
    assert_eq!((eth.src_addr, eth.dst_addr), (GW_MAC, GUEST_MAC));
    let packet = Ipv6Packet::new_checked(body).unwrap();
    let ip = Ipv6Repr::parse(&packet).unwrap();
    assert_eq!((ip.src_addr, ip.dst_addr), (gw6(), GUEST6));
    let addrs = IpAddresses::V6 {
        src: gw6(),
        dst: GUEST6,
    };
    let icmp = Icmpv6Packet::new_checked(packet.payload()).unwrap();
    // RFC 4443 §3.1: code 4, port unreachable, quoting the guest's packet as it came.
    assert_eq!(
        Icmpv6Repr::parse(&icmp, &addrs).unwrap(),
        Icmpv6Repr::DstUnreachable {
            reason: Icmpv6DstUnreachable::PortUnreachable,
            invoking: &f[ethernet::HEADER_LEN..],
        }
    );
    // To another address it stays a flow.
    let remote: Ipv6Addr = "2001:db8::1".parse().unwrap();
    assert!(matches!(
        gw.handle_frame(T0, &udp6(remote, 9, b"x")),
        Outcome::Flow(_)
    ));
}

#[test]
fn echo6_reply_carries_the_requests_traffic_class() {
    let mut gw = gateway();
    let req = Icmpv6Repr::EchoRequest {
        ident: 1,
        seq_no: 2,
        data: b"tc",
    };
    let mut b = vec![0u8; req.buffer_len()];
    let addrs = IpAddresses::V6 {
        src: GUEST6,
        dst: gw6(),
    };
    req.emit(&mut Icmpv6Packet::new_unchecked(&mut b[..]), &addrs);
    let f = ipv6_frame(gw6(), IpProtocol::Icmpv6, &b, (46 << 2) | 2);
    let Outcome::Reply(reply) = gw.handle_frame(T0, &f) else {
        panic!("an echo reply");
    };
    let (_, body) = split(&reply);
    let ip = Ipv6Repr::parse(&Ipv6Packet::new_checked(body).unwrap()).unwrap();
    assert_eq!((ip.dscp, ip.ecn), (46, 2));
}

/// `f`, an IPv6 packet in a frame, with a fragment header put in after the fixed header:
/// `offset` (in bytes), `more`, the fixed header's next header moved into it.
fn in_fragment(f: &[u8], offset: u16, more: bool) -> Vec<u8> {
    let (eth, ip) = f.split_at(ethernet::HEADER_LEN);
    let (fixed, rest) = ip.split_at(ipv6::HEADER_LEN);
    let next = IpProtocol::from(fixed[6]);
    let header = Ipv6FragmentRepr {
        next_header: next,
        offset,
        more_frags: more,
        ident: 0x0bad_f00d,
    };
    let mut frag = [0u8; ipv6::FRAGMENT_HEADER_LEN];
    header.emit(&mut Ipv6FragmentHeader::new_unchecked(&mut frag[..]));
    let mut out = [eth, fixed, &frag, rest].concat();
    let mut p = Ipv6Packet::new_unchecked(&mut out[ethernet::HEADER_LEN..]);
    p.set_next_header(IpProtocol::Ipv6Frag);
    p.set_payload_len((ipv6::FRAGMENT_HEADER_LEN + rest.len()) as u16);
    out
}

#[test]
fn neighbour_solicitation_in_an_atomic_fragment_is_dropped() {
    let mut gw = gateway();
    let ns = solicitation(GUEST6, gw6(), 255);
    assert!(matches!(gw.handle_frame(T0, &ns), Outcome::Reply(_)));
    // RFC 6980 §5: Neighbor Discovery in a fragment, even an atomic one, is ignored.
    assert_eq!(
        gw.handle_frame(T0, &in_fragment(&ns, 0, false)),
        Outcome::Dropped(DropReason::NdpFragmented)
    );
    assert_eq!(gw.drops().get(DropReason::NdpFragmented), 1);
}
