//! Frames and checks shared by the gateway's tests and by the data plane's tests in `switch`
//! (built with the `testing` feature): the guest and gateway addresses of the default set-up,
//! a gateway with the default configuration, builders of the frames a guest sends (Ethernet,
//! IPv4, UDP, ARP, echo, TCP SYN, DHCP, ICMPv6, DNS), fragmenting, and parsers of the
//! gateway's replies that panic on anything unexpected.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use dhcp::{DhcpPacket, DhcpRepr};
use stack::wire::{Icmpv4Packet, Ipv4Packet, TcpControl, TcpPacket, TcpRepr, TcpSeqNumber};
use stack::wire::{NdpOption, NdpOptions, NdpRepr, ndp};
use std::net::Ipv6Addr;

pub const GW_MAC: EthernetAddress = EthernetAddress([0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xdd]);

pub const GUEST_MAC: EthernetAddress = EthernetAddress([0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xee]);

pub const GW: Ipv4Addr = Ipv4Addr::new(192, 168, 127, 1);

pub const GUEST: Ipv4Addr = Ipv4Addr::new(192, 168, 127, 2);

pub const HOST: Ipv4Addr = Ipv4Addr::new(192, 168, 127, 254);

pub fn gateway() -> Gateway {
    Gateway::new(
        GatewayConfig::default(),
        Epoch::new(std::time::Instant::now()),
    )
    .unwrap()
}

pub fn frame(src: EthernetAddress, dst: EthernetAddress, ty: EtherType, body: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; ethernet::HEADER_LEN + body.len()];
    EthernetRepr {
        src_addr: src,
        dst_addr: dst,
        ethertype: ty,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
    f[ethernet::HEADER_LEN..].copy_from_slice(body);
    f
}

pub fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: IpProtocol, payload: &[u8]) -> Vec<u8> {
    let repr = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: proto,
        payload_len: payload.len(),
        hop_limit: 64,
        ident: 1,
        dont_frag: false,
        more_frags: false,
        frag_offset: 0,
        dscp: 0,
        ecn: 0,
    };
    let mut b = vec![0u8; repr.total_len()];
    b[ipv4::HEADER_LEN..].copy_from_slice(payload);
    repr.emit(&mut Ipv4Packet::new_unchecked(&mut b[..]));
    b
}

pub fn udp_datagram(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
    let repr = UdpRepr {
        src_port: sport,
        dst_port: dport,
        payload_len: data.len(),
    };
    let mut b = vec![0u8; udp::HEADER_LEN + data.len()];
    b[udp::HEADER_LEN..].copy_from_slice(data);
    repr.emit(
        &mut UdpPacket::new_unchecked(&mut b[..]),
        &IpAddresses::V4 { src, dst },
    );
    ipv4(src, dst, IpProtocol::Udp, &b)
}

pub fn arp_request(target: Ipv4Addr, sender: Ipv4Addr) -> Vec<u8> {
    arp_request_from(GUEST_MAC, target, sender)
}

/// [`arp_request`] from a guest whose MAC is `mac`.
pub fn arp_request_from(mac: EthernetAddress, target: Ipv4Addr, sender: Ipv4Addr) -> Vec<u8> {
    let repr = ArpRepr {
        operation: ArpOperation::Request,
        source_hardware_addr: mac,
        source_protocol_addr: sender,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: target,
    };
    let mut b = vec![0u8; repr.buffer_len()];
    repr.emit(&mut ArpPacket::new_unchecked(&mut b[..]));
    frame(mac, EthernetAddress::BROADCAST, EtherType::Arp, &b)
}

pub fn reply(outcome: Outcome) -> Bytes {
    match outcome {
        Outcome::Reply(f) => f,
        other => panic!("expected a reply, got {other:?}"),
    }
}

/// The Ethernet header and payload of a reply.
pub fn split(f: &[u8]) -> (EthernetRepr, &[u8]) {
    let eth = EthernetFrame::new_checked(f).unwrap();
    (EthernetRepr::parse(&eth).unwrap(), eth.payload())
}

pub fn parse_arp(f: &[u8]) -> (EthernetRepr, ArpRepr) {
    let (eth, body) = split(f);
    (
        eth,
        ArpRepr::parse(&ArpPacket::new_checked(body).unwrap()).unwrap(),
    )
}

pub fn echo_request(dst: Ipv4Addr, data: &[u8]) -> Vec<u8> {
    let icmp = Icmpv4Repr::EchoRequest {
        ident: 0xbeef,
        seq_no: 7,
        data,
    };
    let mut b = vec![0u8; icmp.buffer_len()];
    icmp.emit(&mut Icmpv4Packet::new_unchecked(&mut b[..]));
    frame(
        GUEST_MAC,
        GW_MAC,
        EtherType::Ipv4,
        &ipv4(GUEST, dst, IpProtocol::Icmp, &b),
    )
}

/// Cuts the IPv4 packet in an Ethernet frame into fragments of at most `mtu` bytes each, as
/// a sender's IP layer does (RFC 791 §3.2): data in multiples of 8 bytes, MF on all but the
/// last.
pub fn fragment(frame: &[u8], mtu: usize) -> Vec<Vec<u8>> {
    let (eth, ip) = frame.split_at(ethernet::HEADER_LEN);
    let (header, data) = ip.split_at(ipv4::HEADER_LEN);
    let step = (mtu - ipv4::HEADER_LEN) / 8 * 8;
    data.chunks(step)
        .enumerate()
        .map(|(i, chunk)| {
            let mut f = [eth, header, chunk].concat();
            let more = (i + 1) * step < data.len();
            let mut packet = Ipv4Packet::new_unchecked(&mut f[ethernet::HEADER_LEN..]);
            packet.set_total_len((ipv4::HEADER_LEN + chunk.len()) as u16);
            packet.set_fragment(false, more, (i * step) as u16);
            packet.fill_checksum();
            f
        })
        .collect()
}

pub fn tcp_syn(dst: Ipv4Addr, dst_port: u16) -> Vec<u8> {
    {
        let repr = TcpRepr {
            src_port: 40000,
            dst_port,
            seq_number: TcpSeqNumber(9),
            control: TcpControl::Syn,
            window_len: 100,
            ..TcpRepr::default()
        };
        let mut b = vec![0u8; repr.buffer_len()];
        repr.emit(
            &mut TcpPacket::new_unchecked(&mut b[..]),
            &IpAddresses::V4 { src: GUEST, dst },
        );
        frame(
            GUEST_MAC,
            GW_MAC,
            EtherType::Ipv4,
            &ipv4(GUEST, dst, IpProtocol::Tcp, &b),
        )
    }
}

pub fn dhcp_frame(src_mac: EthernetAddress, src_ip: Ipv4Addr, repr: &DhcpRepr) -> Vec<u8> {
    let payload = repr.to_bytes().unwrap();
    frame(
        src_mac,
        EthernetAddress::BROADCAST,
        EtherType::Ipv4,
        &udp_datagram(src_ip, Ipv4Addr::BROADCAST, 68, 67, &payload),
    )
}

/// The reply's Ethernet header, IPv4 header, UDP header and DHCP message.
pub fn parse_dhcp(f: &[u8]) -> (EthernetRepr, Ipv4Repr, UdpRepr, DhcpRepr) {
    let (eth, body) = split(f);
    let ip_packet = Ipv4Packet::new_checked(body).unwrap();
    let ip = Ipv4Repr::parse(&ip_packet).unwrap();
    let addrs = IpAddresses::V4 {
        src: ip.src_addr,
        dst: ip.dst_addr,
    };
    let udp_packet = UdpPacket::new_checked(ip_packet.payload()).unwrap();
    let udp = UdpRepr::parse(&udp_packet, &addrs).unwrap();
    let msg = DhcpRepr::parse(&DhcpPacket::new_checked(udp_packet.payload()).unwrap()).unwrap();
    (eth, ip, udp, msg)
}

// IPv6: Neighbor Discovery and echo.

pub const GUEST6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0x5894, 0xefff, 0xfee4, 0x0cee);

pub fn gw6() -> Ipv6Addr {
    link_local(GW_MAC)
}

pub fn icmpv6_frame(
    dst_mac: EthernetAddress,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hop_limit: u8,
    icmp: &Icmpv6Repr<'_>,
) -> Vec<u8> {
    let ip = Ipv6Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Icmpv6,
        payload_len: icmp.buffer_len(),
        hop_limit,
        dscp: 0,
        ecn: 0,
        flow_label: 0,
    };
    let mut b = vec![0u8; ipv6::HEADER_LEN + icmp.buffer_len()];
    icmp.emit(
        &mut Icmpv6Packet::new_unchecked(&mut b[ipv6::HEADER_LEN..]),
        &IpAddresses::V6 { src, dst },
    );
    ip.emit(&mut Ipv6Packet::new_unchecked(&mut b[..]));
    frame(GUEST_MAC, dst_mac, EtherType::Ipv6, &b)
}

pub fn solicitation(src: Ipv6Addr, target: Ipv6Addr, hop_limit: u8) -> Vec<u8> {
    let lladdr = [NdpOption::SourceLinkLayerAddr(GUEST_MAC)];
    let options = if src.is_unspecified() {
        NdpOptions::EMPTY
    } else {
        NdpOptions::new(&lladdr)
    };
    let ns = Icmpv6Repr::Ndp(NdpRepr::NeighborSolicit {
        target_addr: target,
        options,
    });
    let group = ndp::solicited_node(target);
    let o = target.octets();
    let mac = EthernetAddress([0x33, 0x33, 0xff, o[13], o[14], o[15]]);
    icmpv6_frame(mac, src, group, hop_limit, &ns)
}

/// The reply's Ethernet header, IPv6 header and ICMPv6 message, checksums verified.
pub fn parse_icmpv6(f: &[u8], check: impl FnOnce(EthernetRepr, Ipv6Repr, Icmpv6Repr<'_>)) {
    let (eth, body) = split(f);
    let packet = Ipv6Packet::new_checked(body).unwrap();
    let ip = Ipv6Repr::parse(&packet).unwrap();
    let addrs = IpAddresses::V6 {
        src: ip.src_addr,
        dst: ip.dst_addr,
    };
    let icmp_packet = Icmpv6Packet::new_checked(packet.payload()).unwrap();
    check(eth, ip, Icmpv6Repr::parse(&icmp_packet, &addrs).unwrap());
}

pub fn dns_frame(dst: Ipv4Addr, payload: &[u8]) -> Vec<u8> {
    frame(
        GUEST_MAC,
        GW_MAC,
        EtherType::Ipv4,
        &udp_datagram(GUEST, dst, 5353, DNS_PORT, payload),
    )
}
