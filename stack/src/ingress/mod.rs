//! The gateway's ingress: each frame parsed once into a typed event that borrows it.
//!
//! [`parse`] takes a frame that reached the gateway's switch port and the gateway's MAC, and
//! returns a [`Parsed`]: the Ethernet header and one [`Event`] — an ARP packet, an ICMPv4 or
//! ICMPv6 message (Neighbor Discovery included), a UDP datagram or TCP segment over either
//! family ([`IpHeader`]), or an IPv4 or IPv6 fragment (reassembly is a later step, so they are
//! events of their own). Every header on the way is validated by its wire module, checksums
//! included (but those the link vouched for: [`parse_with`]), IPv6 extension headers walked
//! with their bounds; whatever fails is a [`DropReason`] naming the layer and the cause,
//! counted in [`DropCounters`].
//!
//! Contracts:
//! - Nothing in the frame can make it panic (`#![forbid(unsafe_code)]`, checked views only).
//! - Each byte is looked at by one parser, once; the event's slices point into the frame.
//! - Ingress enforces what needs no configuration beyond the MAC: unicast frames for another
//!   station are [`DropReason::NotForUs`] (the switch floods unknown unicast to every port);
//!   IPv4 broadcast, at L2 or L3, is only accepted as UDP to the DHCP server port (RFC 2131
//!   §4.1: clients without an address broadcast to port 67); IP multicast only as UDP to the
//!   group (DHCPv6 clients send to ff02::1:2, RFC 8415 §7.1; the gateway relays the rest or
//!   drops it) and as ICMPv6 Neighbor Discovery (RFC 4861 sends solicitations to multicast
//!   groups); a multicast or broadcast source is refused (RFC 1122 §3.2.1.3, RFC 4291 §2.7);
//!   Neighbor Discovery in an atomic fragment is refused (RFC 6980 §5; the gateway refuses it
//!   in a reassembled packet too). Which addresses the gateway owns is the gateway's business.
//! - [`Parsed::flow`] turns a TCP, UDP, ICMP or ICMPv6 event into an owned [`FlowPacket`] keyed by
//!   [`FlowKey`], to hand to a worker together with the frame's bytes.

mod drop;
mod flow;
#[cfg(test)]
mod tests;

pub use drop::{DropCounters, DropReason};
pub use flow::{FlowKey, FlowL4, FlowPacket, IpHeader};

use core::net::SocketAddr;
use core::ops::Range;

use crate::wire::checksum::ChecksumCapabilities;
use crate::wire::{
    ArpPacket, ArpRepr, EtherType, EthernetAddress, EthernetFrame, EthernetRepr, Icmpv4Packet,
    Icmpv4Repr, Icmpv6Packet, Icmpv6Repr, IpAddresses, IpProtocol, Ipv4Packet, Ipv4Repr, Ipv6Chain,
    Ipv6Packet, Ipv6Repr, TcpPacket, TcpRepr, UdpPacket, UdpRepr,
};

/// The DHCP server's UDP port (RFC 2131 §4.1), the one service broadcasts may reach.
pub const DHCP_SERVER_PORT: u16 = 67;

/// One frame's content, as far as the gateway cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    Arp(ArpRepr),
    Icmpv4 {
        ip: Ipv4Repr,
        icmp: Icmpv4Repr<'a>,
    },
    /// An ICMPv6 message, Neighbor Discovery included. `ip` is as in [`IpHeader::V6`].
    Icmpv6 {
        ip: Ipv6Repr,
        icmp: Icmpv6Repr<'a>,
    },
    Udp {
        ip: IpHeader,
        udp: UdpRepr,
        payload: &'a [u8],
    },
    Tcp {
        ip: IpHeader,
        tcp: TcpRepr,
        payload: &'a [u8],
    },
    /// A piece of a fragmented IPv4 datagram; `payload` is this fragment's data.
    Ipv4Fragment {
        ip: Ipv4Repr,
        payload: &'a [u8],
    },
    /// A piece of a fragmented IPv6 packet; `payload` is the data after the fragment header.
    Ipv6Fragment {
        ip: Ipv6Repr,
        payload: &'a [u8],
    },
}

/// A parsed frame: its Ethernet header and its event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed<'a> {
    pub eth: EthernetRepr,
    pub event: Event<'a>,
    frame: &'a [u8],
}

/// Parses `frame`, which reached the gateway whose MAC is `our_mac`.
pub fn parse(frame: &[u8], our_mac: EthernetAddress) -> Result<Parsed<'_>, DropReason> {
    parse_with(frame, our_mac, &ChecksumCapabilities::default())
}

/// [`parse`], verifying only the checksums `caps` says are ours to verify: a frame whose
/// link vouched for its transport checksum (a virtio-net header's `NEEDS_CSUM` or
/// `DATA_VALID`) is not summed again.
pub fn parse_with<'a>(
    frame: &'a [u8],
    our_mac: EthernetAddress,
    caps: &ChecksumCapabilities,
) -> Result<Parsed<'a>, DropReason> {
    let packet = EthernetFrame::new_checked(frame).map_err(DropReason::Ethernet)?;
    let eth = EthernetRepr::parse(&packet).map_err(DropReason::Ethernet)?;
    if eth.dst_addr.is_unicast() && eth.dst_addr != our_mac {
        return Err(DropReason::NotForUs);
    }
    let payload = packet.payload();
    let group = eth.dst_addr.is_multicast();
    let event = match eth.ethertype {
        EtherType::Arp => {
            let arp = ArpPacket::new_checked(payload).map_err(DropReason::Arp)?;
            Event::Arp(ArpRepr::parse(&arp).map_err(DropReason::Arp)?)
        }
        EtherType::Ipv4 => parse_ipv4(payload, group, caps)?,
        EtherType::Ipv6 => parse_ipv6(payload, group, caps)?,
        EtherType::Vlan | EtherType::QinQ | EtherType::Unknown(_) => {
            return Err(DropReason::UnsupportedEtherType);
        }
    };
    Ok(Parsed { eth, event, frame })
}

fn parse_ipv4<'a>(
    bytes: &'a [u8],
    l2_group: bool,
    caps: &ChecksumCapabilities,
) -> Result<Event<'a>, DropReason> {
    let packet = Ipv4Packet::new_checked(bytes).map_err(DropReason::Ipv4)?;
    let ip = Ipv4Repr::parse(&packet).map_err(DropReason::Ipv4)?;
    if ip.src_addr.is_multicast() || ip.src_addr.is_broadcast() {
        return Err(DropReason::InvalidSource);
    }
    let group = l2_group || ip.dst_addr.is_multicast() || ip.dst_addr.is_broadcast();
    let payload = packet.payload();
    if ip.is_fragment() {
        if group {
            return Err(DropReason::BroadcastToNonService);
        }
        return Ok(Event::Ipv4Fragment { ip, payload });
    }
    match ip.next_header {
        IpProtocol::Icmp if !group => {
            let icmp_packet = Icmpv4Packet::new_checked(payload).map_err(DropReason::Icmpv4)?;
            let icmp = Icmpv4Repr::parse(&icmp_packet).map_err(DropReason::Icmpv4)?;
            Ok(Event::Icmpv4 { ip, icmp })
        }
        protocol => transport(IpHeader::V4(ip), protocol, payload, group, caps),
    }
}

/// RFC 8200: the fixed header, the extension header chain, then the upper layer. Multicast
/// is accepted for ICMPv6 (Neighbor Discovery lives on it) and refused for the rest.
fn parse_ipv6<'a>(
    bytes: &'a [u8],
    l2_group: bool,
    caps: &ChecksumCapabilities,
) -> Result<Event<'a>, DropReason> {
    let packet = Ipv6Packet::new_checked(bytes).map_err(DropReason::Ipv6)?;
    let mut ip = Ipv6Repr::parse(&packet).map_err(DropReason::Ipv6)?;
    // RFC 4291 §2.7: multicast addresses must not be used as source addresses.
    if ip.src_addr.is_multicast() {
        return Err(DropReason::InvalidSource);
    }
    let group = l2_group || ip.dst_addr.is_multicast();
    let payload = packet.payload();
    let chain = Ipv6Chain::walk(ip.next_header, payload).map_err(DropReason::Ipv6Chain)?;
    let upper = payload.get(chain.offset..).unwrap_or_default();
    ip.next_header = chain.protocol;
    ip.payload_len = upper.len();
    if chain.is_fragment() {
        if group {
            return Err(DropReason::BroadcastToNonService);
        }
        return Ok(Event::Ipv6Fragment { ip, payload: upper });
    }
    match chain.protocol {
        IpProtocol::Icmpv6 => {
            let addrs = IpAddresses::V6 {
                src: ip.src_addr,
                dst: ip.dst_addr,
            };
            let icmp_packet = Icmpv6Packet::new_checked(upper).map_err(DropReason::from)?;
            let icmp = Icmpv6Repr::parse(&icmp_packet, &addrs).map_err(DropReason::from)?;
            if group && !matches!(icmp, Icmpv6Repr::Ndp(_)) {
                return Err(DropReason::BroadcastToNonService);
            }
            // RFC 6980 §5: Neighbor Discovery in a fragment, even an atomic one, is ignored.
            if chain.fragment.is_some() && matches!(icmp, Icmpv6Repr::Ndp(_)) {
                return Err(DropReason::NdpFragmented);
            }
            Ok(Event::Icmpv6 { ip, icmp })
        }
        protocol => transport(IpHeader::V6(ip), protocol, upper, group, caps),
    }
}

/// UDP and TCP over either family; `group` says the packet was broadcast or multicast.
fn transport<'a>(
    ip: IpHeader,
    protocol: IpProtocol,
    payload: &'a [u8],
    group: bool,
    caps: &ChecksumCapabilities,
) -> Result<Event<'a>, DropReason> {
    let addrs = ip.addresses();
    match protocol {
        IpProtocol::Udp => {
            let udp_packet = UdpPacket::new_checked(payload).map_err(DropReason::Udp)?;
            let udp = UdpRepr::parse_with(&udp_packet, &addrs, caps).map_err(DropReason::Udp)?;
            // Only DHCPv4 clients, which have no address yet, may broadcast to us; a datagram
            // to an IP multicast group (DHCPv6's ff02::1:2 among them) is the gateway's to
            // answer, relay or drop.
            let to_group = ip.addresses().dst().is_multicast();
            let dhcpv4 = udp.dst_port == DHCP_SERVER_PORT && matches!(ip, IpHeader::V4(_));
            if group && !to_group && !dhcpv4 {
                return Err(DropReason::BroadcastToNonService);
            }
            Ok(Event::Udp {
                ip,
                udp,
                payload: udp_packet.payload(),
            })
        }
        _ if group => Err(DropReason::BroadcastToNonService),
        IpProtocol::Tcp => {
            let tcp_packet = TcpPacket::new_checked(payload).map_err(DropReason::Tcp)?;
            let tcp = TcpRepr::parse_with(&tcp_packet, &addrs, caps).map_err(DropReason::Tcp)?;
            Ok(Event::Tcp {
                ip,
                tcp,
                payload: tcp_packet.payload(),
            })
        }
        _ => Err(DropReason::UnsupportedProtocol),
    }
}

/// Where `part`, a sub-slice of `whole`, sits in it; empty if it is not one.
fn range_in(whole: &[u8], part: &[u8]) -> Range<usize> {
    let start = (part.as_ptr() as usize).wrapping_sub(whole.as_ptr() as usize);
    match start.checked_add(part.len()) {
        Some(end) if start <= whole.len() && end <= whole.len() => start..end,
        _ => 0..0,
    }
}

impl<'a> Parsed<'a> {
    /// The frame this was parsed from.
    pub fn frame(&self) -> &'a [u8] {
        self.frame
    }

    /// The flow this frame belongs to, for TCP, UDP, ICMP and ICMPv6 (echo and errors)
    /// events: the owned summary a worker needs. `None` for ARP, Neighbor Discovery,
    /// fragments, and an ICMP error whose quote names no flow.
    pub fn flow(&self) -> Option<FlowPacket> {
        let (key, ip, l4, payload) = match self.event {
            Event::Tcp { ip, tcp, payload } => {
                let key = key_for(IpProtocol::Tcp, &ip, tcp.src_port, tcp.dst_port);
                (key, ip, FlowL4::Tcp(tcp), payload)
            }
            Event::Udp { ip, udp, payload } => {
                let key = key_for(IpProtocol::Udp, &ip, udp.src_port, udp.dst_port);
                (key, ip, FlowL4::Udp(udp), payload)
            }
            Event::Icmpv4 { ip, icmp } => {
                let (key, l4, payload) = icmpv4_flow(&ip, &icmp)?;
                (key, IpHeader::V4(ip), l4, payload)
            }
            Event::Icmpv6 { ip, icmp } => {
                let (key, l4, payload) = icmpv6_flow(&ip, &icmp)?;
                (key, IpHeader::V6(ip), l4, payload)
            }
            Event::Arp(_) | Event::Ipv4Fragment { .. } | Event::Ipv6Fragment { .. } => {
                return None;
            }
        };
        Some(FlowPacket {
            key,
            eth: self.eth,
            ip,
            l4,
            payload: range_in(self.frame, payload),
        })
    }
}

fn key_for(protocol: IpProtocol, ip: &IpHeader, src_port: u16, dst_port: u16) -> FlowKey {
    let addrs = ip.addresses();
    FlowKey {
        protocol,
        guest: SocketAddr::new(addrs.src(), src_port),
        remote: SocketAddr::new(addrs.dst(), dst_port),
    }
}

/// An echo's key: the identifier plays the guest's port, the remote port is 0.
fn echo_key(protocol: IpProtocol, addrs: IpAddresses, ident: u16) -> FlowKey {
    FlowKey {
        protocol,
        guest: SocketAddr::new(addrs.src(), ident),
        remote: SocketAddr::new(addrs.dst(), 0),
    }
}

fn icmpv4_flow<'a>(ip: &Ipv4Repr, icmp: &Icmpv4Repr<'a>) -> Option<(FlowKey, FlowL4, &'a [u8])> {
    let addrs = IpAddresses::V4 {
        src: ip.src_addr,
        dst: ip.dst_addr,
    };
    let echo = |request: bool, ident: u16, seq_no: u16| {
        let l4 = FlowL4::IcmpEcho {
            request,
            ident,
            seq_no,
        };
        (echo_key(IpProtocol::Icmp, addrs, ident), l4)
    };
    match *icmp {
        Icmpv4Repr::EchoRequest {
            ident,
            seq_no,
            data,
        } => {
            let (key, l4) = echo(true, ident, seq_no);
            Some((key, l4, data))
        }
        Icmpv4Repr::EchoReply {
            ident,
            seq_no,
            data,
        } => {
            let (key, l4) = echo(false, ident, seq_no);
            Some((key, l4, data))
        }
        Icmpv4Repr::DstUnreachable { reason, data } => {
            Some((quoted_v4(data)?, FlowL4::IcmpDstUnreachable(reason), data))
        }
        Icmpv4Repr::TimeExceeded { reason, data } => {
            Some((quoted_v4(data)?, FlowL4::IcmpTimeExceeded(reason), data))
        }
    }
}

fn icmpv6_flow<'a>(ip: &Ipv6Repr, icmp: &Icmpv6Repr<'a>) -> Option<(FlowKey, FlowL4, &'a [u8])> {
    let addrs = IpAddresses::V6 {
        src: ip.src_addr,
        dst: ip.dst_addr,
    };
    let echo = |request: bool, ident: u16, seq_no: u16| {
        let l4 = FlowL4::IcmpEcho {
            request,
            ident,
            seq_no,
        };
        (echo_key(IpProtocol::Icmpv6, addrs, ident), l4)
    };
    match *icmp {
        Icmpv6Repr::EchoRequest {
            ident,
            seq_no,
            data,
        } => {
            let (key, l4) = echo(true, ident, seq_no);
            Some((key, l4, data))
        }
        Icmpv6Repr::EchoReply {
            ident,
            seq_no,
            data,
        } => {
            let (key, l4) = echo(false, ident, seq_no);
            Some((key, l4, data))
        }
        Icmpv6Repr::DstUnreachable { reason, invoking } => Some((
            quoted_v6(invoking)?,
            FlowL4::Icmpv6DstUnreachable(reason),
            invoking,
        )),
        Icmpv6Repr::PacketTooBig { mtu, invoking } => Some((
            quoted_v6(invoking)?,
            FlowL4::Icmpv6PacketTooBig { mtu },
            invoking,
        )),
        Icmpv6Repr::TimeExceeded { reason, invoking } => Some((
            quoted_v6(invoking)?,
            FlowL4::Icmpv6TimeExceeded(reason),
            invoking,
        )),
        Icmpv6Repr::ParamProblem {
            reason,
            pointer,
            invoking,
        } => Some((
            quoted_v6(invoking)?,
            FlowL4::Icmpv6ParamProblem { reason, pointer },
            invoking,
        )),
        Icmpv6Repr::Ndp(_) => None,
    }
}

/// The flow a guest's ICMP error is about. The quote is a packet sent *to* the guest, so its
/// destination is the guest's end.
fn quoted_key(
    protocol: IpProtocol,
    addrs: IpAddresses,
    l4: &[u8],
    echo: IpProtocol,
) -> Option<FlowKey> {
    let word = |at: usize| -> Option<u16> {
        let b = l4.get(at..at.checked_add(2)?)?;
        Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
    };
    let (remote_port, guest_port) = match protocol {
        IpProtocol::Tcp | IpProtocol::Udp => (word(0)?, word(2)?),
        // An echo sent to the guest: the identifier plays the guest's port.
        p if p == echo => (0, word(4)?),
        _ => return None,
    };
    Some(FlowKey {
        protocol,
        guest: SocketAddr::new(addrs.dst(), guest_port),
        remote: SocketAddr::new(addrs.src(), remote_port),
    })
}

fn quoted_v4(quote: &[u8]) -> Option<FlowKey> {
    let packet = Ipv4Packet::new_quoted(quote).ok()?;
    let addrs = IpAddresses::V4 {
        src: packet.src_addr(),
        dst: packet.dst_addr(),
    };
    quoted_key(
        packet.next_header(),
        addrs,
        packet.payload(),
        IpProtocol::Icmp,
    )
}

fn quoted_v6(quote: &[u8]) -> Option<FlowKey> {
    let packet = Ipv6Packet::new_quoted(quote).ok()?;
    let addrs = IpAddresses::V6 {
        src: packet.src_addr(),
        dst: packet.dst_addr(),
    };
    let payload = packet.payload();
    let chain = Ipv6Chain::walk(packet.next_header(), payload).ok()?;
    let l4 = payload.get(chain.offset..)?;
    quoted_key(chain.protocol, addrs, l4, IpProtocol::Icmpv6)
}
