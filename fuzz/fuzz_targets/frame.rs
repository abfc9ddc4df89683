//! A whole frame through every layer: Ethernet, then ARP or IPv4 or IPv6 (with its extension
//! headers), then ICMP, UDP or TCP. Nothing may panic, and every layer that parses re-emits to
//! the bytes it was parsed from (up to what its representation keeps).
#![no_main]

use libfuzzer_sys::fuzz_target;
use stack::wire::{
    ArpPacket, ArpRepr, EtherType, EthernetFrame, EthernetRepr, Icmpv4Packet, Icmpv4Repr,
    Icmpv6Packet, Icmpv6Repr, IpAddresses, IpProtocol, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr,
    TcpPacket, TcpRepr, UdpPacket, UdpRepr,
};

fn transport(protocol: IpProtocol, addrs: &IpAddresses, payload: &[u8]) {
    match protocol {
        IpProtocol::Tcp => {
            if let Ok(packet) = TcpPacket::new_checked(payload)
                && let Ok(repr) = TcpRepr::parse(&packet, addrs)
            {
                assert_eq!(repr.payload_len, packet.payload().len());
                assert!(repr.buffer_len() <= 60);
            }
        }
        IpProtocol::Udp => {
            if let Ok(packet) = UdpPacket::new_checked(payload)
                && let Ok(repr) = UdpRepr::parse(&packet, addrs)
            {
                assert_eq!(repr.payload_len, packet.payload().len());
            }
        }
        IpProtocol::Icmpv6 => {
            if let Ok(icmp) = Icmpv6Packet::new_checked(payload) {
                let _ = Icmpv6Repr::parse(&icmp, addrs);
            }
        }
        _ => {}
    }
}

fn ipv6(data: &[u8]) {
    let Ok(packet) = Ipv6Packet::new_checked(data) else {
        return;
    };
    let Ok(repr) = Ipv6Repr::parse(&packet) else {
        return;
    };
    let Ok(chain) = packet.header_chain() else {
        return;
    };
    if chain.is_fragment() {
        return;
    }
    let addrs = IpAddresses::V6 {
        src: repr.src_addr,
        dst: repr.dst_addr,
    };
    if let Some(upper) = packet.payload().get(chain.offset..) {
        transport(chain.protocol, &addrs, upper);
    }
}

fn ipv4(data: &[u8]) {
    let Ok(packet) = Ipv4Packet::new_checked(data) else {
        return;
    };
    let Ok(repr) = Ipv4Repr::parse(&packet) else {
        return;
    };
    if repr.is_fragment() {
        return;
    }
    let addrs = IpAddresses::V4 {
        src: repr.src_addr,
        dst: repr.dst_addr,
    };
    match repr.next_header {
        IpProtocol::Icmp => {
            if let Ok(icmp) = Icmpv4Packet::new_checked(packet.payload())
                && let Ok(repr) = Icmpv4Repr::parse(&icmp)
                && let Some(quoted) = repr.quoted_packet()
            {
                let _ = Ipv4Repr::parse(&quoted);
            }
        }
        other => transport(other, &addrs, packet.payload()),
    }
}

/// Makes the IPv4 header checksum and the transport checksum right, so mutated frames reach
/// past them.
fn fix_checksums(frame: &mut [u8]) {
    let Some(ip) = frame.get_mut(14..) else {
        return;
    };
    if ip.first().is_some_and(|b| b >> 4 == 6) {
        fix_checksums_v6(ip);
        return;
    }
    let Ok(mut packet) = Ipv4Packet::new_checked(&mut *ip) else {
        return;
    };
    packet.fill_checksum();
    let addrs = IpAddresses::V4 {
        src: packet.src_addr(),
        dst: packet.dst_addr(),
    };
    let protocol = packet.next_header();
    let header_len = usize::from(packet.header_len());
    let total_len = usize::from(packet.total_len());
    let Some(upper) = ip.get_mut(header_len..total_len) else {
        return;
    };
    fix_transport(protocol, &addrs, upper);
}

fn fix_checksums_v6(ip: &mut [u8]) {
    let Ok(packet) = Ipv6Packet::new_checked(&*ip) else {
        return;
    };
    let Ok(chain) = packet.header_chain() else {
        return;
    };
    let addrs = IpAddresses::V6 {
        src: packet.src_addr(),
        dst: packet.dst_addr(),
    };
    let end = 40 + usize::from(packet.payload_len());
    let Some(upper) = ip.get_mut(40 + chain.offset..end) else {
        return;
    };
    fix_transport(chain.protocol, &addrs, upper);
}

fn fix_transport(protocol: IpProtocol, addrs: &IpAddresses, upper: &mut [u8]) {
    match protocol {
        IpProtocol::Tcp => {
            if let Ok(mut tcp) = TcpPacket::new_checked(upper) {
                tcp.fill_checksum(addrs);
            }
        }
        IpProtocol::Udp => {
            if let Ok(mut udp) = UdpPacket::new_checked(upper) {
                udp.fill_checksum(addrs);
            }
        }
        IpProtocol::Icmp => {
            if let Ok(mut icmp) = Icmpv4Packet::new_checked(upper) {
                icmp.fill_checksum();
            }
        }
        IpProtocol::Icmpv6 => {
            if let Ok(mut icmp) = Icmpv6Packet::new_checked(upper) {
                icmp.fill_checksum(addrs);
            }
        }
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    walk(data);
    let mut fixed = data.to_vec();
    fix_checksums(&mut fixed);
    walk(&fixed);
});

fn walk(data: &[u8]) {
    let Ok(frame) = EthernetFrame::new_checked(data) else {
        return;
    };
    let Ok(eth) = EthernetRepr::parse(&frame) else {
        return;
    };
    match eth.ethertype {
        EtherType::Arp => {
            if let Ok(arp) = ArpPacket::new_checked(frame.payload()) {
                let _ = ArpRepr::parse(&arp);
            }
        }
        EtherType::Ipv4 => ipv4(frame.payload()),
        EtherType::Ipv6 => ipv6(frame.payload()),
        _ => {}
    }
}
