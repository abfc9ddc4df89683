//! Frames for guests, each built straight into one buffer: Ethernet, IPv4 or IPv6, and the
//! transport header with its payload copied in once. Frames are padded to Ethernet's minimum.

use std::net::IpAddr;

use bytes::{Bytes, BytesMut};
use std::net::Ipv4Addr;

use stack::wire::{
    ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetAddress, EthernetFrame, EthernetRepr,
    Icmpv4Packet, Icmpv4Repr, Icmpv6Packet, Icmpv6Repr, IpAddresses, IpProtocol, Ipv4Packet,
    Ipv4Repr, Ipv6Packet, Ipv6Repr, TcpPacket, TcpRepr, UdpPacket, UdpRepr, ethernet, ipv4, ipv6,
    udp,
};

/// The TTL / hop limit of what we originate.
pub const TTL: u8 = 64;
const MIN_FRAME_LEN: usize = 60;

/// Builds frames from the gateway's MAC.
#[derive(Debug)]
pub struct Framer {
    pub gateway_mac: EthernetAddress,
    ident: u16,
}

/// The address pair of a packet, `None` when the families differ.
pub fn addresses(src: IpAddr, dst: IpAddr) -> Option<IpAddresses> {
    match (src, dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => Some(IpAddresses::V4 { src, dst }),
        (IpAddr::V6(src), IpAddr::V6(dst)) => Some(IpAddresses::V6 { src, dst }),
        _ => None,
    }
}

impl Framer {
    pub fn new(gateway_mac: EthernetAddress) -> Framer {
        Framer {
            gateway_mac,
            ident: 0,
        }
    }

    /// An IP packet to `dst_mac` carrying `l4_len` bytes of `protocol` that `fill` writes
    /// (it gets exactly `l4_len` bytes). `None` if too long for IP.
    pub fn ip(
        &mut self,
        dst_mac: EthernetAddress,
        addrs: IpAddresses,
        protocol: IpProtocol,
        l4_len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Option<Bytes> {
        self.ip_tos(dst_mac, addrs, protocol, (0, 0), l4_len, fill)
    }

    /// [`Framer::ip`] with a TOS or traffic class, `(dscp, ecn)`.
    pub fn ip_tos(
        &mut self,
        dst_mac: EthernetAddress,
        addrs: IpAddresses,
        protocol: IpProtocol,
        (dscp, ecn): (u8, u8),
        l4_len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Option<Bytes> {
        let (ethertype, ip_header) = match addrs {
            IpAddresses::V4 { .. } => (EtherType::Ipv4, ipv4::HEADER_LEN),
            IpAddresses::V6 { .. } => (EtherType::Ipv6, ipv6::HEADER_LEN),
        };
        if l4_len > usize::from(u16::MAX) - ip_header {
            return None;
        }
        let len = ethernet::HEADER_LEN + ip_header + l4_len;
        let mut buf = BytesMut::zeroed(len.max(MIN_FRAME_LEN));
        let eth = EthernetRepr {
            src_addr: self.gateway_mac,
            dst_addr: dst_mac,
            ethertype,
        };
        eth.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
        let body = buf.get_mut(ethernet::HEADER_LEN..len)?;
        let (header, l4) = body.split_at_mut_checked(ip_header)?;
        fill(l4);
        match addrs {
            IpAddresses::V4 { src, dst } => {
                self.ident = self.ident.wrapping_add(1);
                let ip = Ipv4Repr {
                    src_addr: src,
                    dst_addr: dst,
                    next_header: protocol,
                    payload_len: l4_len,
                    hop_limit: TTL,
                    ident: self.ident,
                    dont_frag: true,
                    more_frags: false,
                    frag_offset: 0,
                    dscp,
                    ecn,
                };
                ip.emit(&mut Ipv4Packet::new_unchecked(header));
            }
            IpAddresses::V6 { src, dst } => {
                let ip = Ipv6Repr {
                    src_addr: src,
                    dst_addr: dst,
                    next_header: protocol,
                    payload_len: l4_len,
                    hop_limit: TTL,
                    dscp,
                    ecn,
                    flow_label: 0,
                };
                ip.emit(&mut Ipv6Packet::new_unchecked(header));
            }
        }
        Some(buf.freeze())
    }

    /// An ARP request from the gateway (`ours`) asking who has `target`, broadcast (RFC 826).
    pub fn arp_request(&self, ours: Ipv4Addr, target: Ipv4Addr) -> Bytes {
        let arp = ArpRepr {
            operation: ArpOperation::Request,
            source_hardware_addr: self.gateway_mac,
            source_protocol_addr: ours,
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: target,
        };
        let len = ethernet::HEADER_LEN + arp.buffer_len();
        let mut buf = BytesMut::zeroed(len.max(MIN_FRAME_LEN));
        EthernetRepr {
            src_addr: self.gateway_mac,
            dst_addr: EthernetAddress::BROADCAST,
            ethertype: EtherType::Arp,
        }
        .emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
        if let Some(body) = buf.get_mut(ethernet::HEADER_LEN..len) {
            arp.emit(&mut ArpPacket::new_unchecked(body));
        }
        buf.freeze()
    }

    /// A UDP datagram.
    pub fn udp(
        &mut self,
        dst_mac: EthernetAddress,
        addrs: IpAddresses,
        src_port: u16,
        dst_port: u16,
        payload: &[u8],
    ) -> Option<Bytes> {
        let repr = UdpRepr {
            src_port,
            dst_port,
            payload_len: payload.len(),
        };
        let l4_len = udp::HEADER_LEN + payload.len();
        self.ip(dst_mac, addrs, IpProtocol::Udp, l4_len, |l4| {
            if let Some(room) = l4.get_mut(udp::HEADER_LEN..) {
                room.copy_from_slice(payload);
            }
            repr.emit(&mut UdpPacket::new_unchecked(l4), &addrs);
        })
    }

    /// A TCP segment whose payload is the two slices (of the engine's send ring).
    pub fn tcp(
        &mut self,
        dst_mac: EthernetAddress,
        addrs: IpAddresses,
        repr: &TcpRepr,
        payload: (&[u8], &[u8]),
    ) -> Option<Bytes> {
        let header = repr.buffer_len();
        let l4_len = header + payload.0.len() + payload.1.len();
        self.ip(dst_mac, addrs, IpProtocol::Tcp, l4_len, |l4| {
            let first_end = header + payload.0.len();
            if let Some(room) = l4.get_mut(header..first_end) {
                room.copy_from_slice(payload.0);
            }
            if let Some(room) = l4.get_mut(first_end..) {
                room.copy_from_slice(payload.1);
            }
            repr.emit(&mut TcpPacket::new_unchecked(l4), &addrs);
        })
    }

    /// An ICMP or ICMPv6 echo reply with the TOS or traffic class `tos` (the request's: a
    /// host reflects it, as Linux does).
    pub fn echo_reply(
        &mut self,
        dst_mac: EthernetAddress,
        addrs: IpAddresses,
        tos: (u8, u8),
        (ident, seq_no): (u16, u16),
        data: &[u8],
    ) -> Option<Bytes> {
        match addrs {
            IpAddresses::V4 { .. } => {
                let icmp = Icmpv4Repr::EchoReply {
                    ident,
                    seq_no,
                    data,
                };
                self.ip_tos(
                    dst_mac,
                    addrs,
                    IpProtocol::Icmp,
                    tos,
                    icmp.buffer_len(),
                    |l4| icmp.emit(&mut Icmpv4Packet::new_unchecked(l4)),
                )
            }
            IpAddresses::V6 { .. } => {
                let icmp = Icmpv6Repr::EchoReply {
                    ident,
                    seq_no,
                    data,
                };
                self.ip_tos(
                    dst_mac,
                    addrs,
                    IpProtocol::Icmpv6,
                    tos,
                    icmp.buffer_len(),
                    |l4| {
                        icmp.emit(&mut Icmpv6Packet::new_unchecked(l4), &addrs);
                    },
                )
            }
        }
    }

    /// Destination unreachable about `quote` (the guest's own packet, IP header first), from
    /// `addrs.src()` to the guest. `port` picks port unreachable, else host unreachable.
    pub fn unreachable(
        &mut self,
        dst_mac: EthernetAddress,
        addrs: IpAddresses,
        port: bool,
        quote: &[u8],
    ) -> Option<Bytes> {
        match addrs {
            IpAddresses::V4 { .. } => {
                // RFC 792: the IP header and the first 64 bits of the datagram's data.
                let quote = quote.get(..quote.len().min(ipv4::HEADER_LEN + 8))?;
                let reason = if port {
                    stack::wire::Icmpv4DstUnreachable::PortUnreachable
                } else {
                    stack::wire::Icmpv4DstUnreachable::HostUnreachable
                };
                let icmp = Icmpv4Repr::DstUnreachable {
                    reason,
                    data: quote,
                };
                self.ip(dst_mac, addrs, IpProtocol::Icmp, icmp.buffer_len(), |l4| {
                    icmp.emit(&mut Icmpv4Packet::new_unchecked(l4));
                })
            }
            IpAddresses::V6 { .. } => {
                let quote = quote.get(..quote.len().min(ipv6::HEADER_LEN + 8))?;
                let reason = if port {
                    stack::wire::Icmpv6DstUnreachable::PortUnreachable
                } else {
                    stack::wire::Icmpv6DstUnreachable::AddrUnreachable
                };
                let icmp = Icmpv6Repr::DstUnreachable {
                    reason,
                    invoking: quote,
                };
                self.ip(
                    dst_mac,
                    addrs,
                    IpProtocol::Icmpv6,
                    icmp.buffer_len(),
                    |l4| {
                        icmp.emit(&mut Icmpv6Packet::new_unchecked(l4), &addrs);
                    },
                )
            }
        }
    }
}

/// The longest quote [`quote_of`] takes: an IPv4 header with 40 bytes of options, or the
/// IPv6 fixed header, and 8 bytes.
pub const MAX_QUOTE: usize = 60 + 8;

/// What [`quote_of`] takes, in fixed space (no allocation), to keep beside a flow.
#[derive(Debug, Clone, Copy)]
pub struct Quote {
    bytes: [u8; MAX_QUOTE],
    len: u8,
}

impl Quote {
    /// The quote of the guest's packet in `frame`.
    pub fn of(frame: &[u8]) -> Quote {
        let mut bytes = [0u8; MAX_QUOTE];
        let taken = quote_range(frame);
        let len = taken.len().min(MAX_QUOTE);
        if let (Some(dst), Some(src)) = (bytes.get_mut(..len), taken.get(..len)) {
            dst.copy_from_slice(src);
        }
        Quote {
            bytes,
            len: len as u8,
        }
    }

    pub fn bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or_default()
    }
}

/// The first bytes of the guest's packet as ICMP errors quote it: its IP header and the
/// first 8 bytes after it, copied out of `frame`.
pub fn quote_of(frame: &[u8]) -> Vec<u8> {
    quote_range(frame).to_vec()
}

fn quote_range(frame: &[u8]) -> &[u8] {
    let ip = frame.get(ethernet::HEADER_LEN..).unwrap_or_default();
    let header = match ip.first().map(|b| b >> 4) {
        Some(4) => usize::from(ip.first().copied().unwrap_or(0x45) & 0x0f) * 4,
        _ => ipv6::HEADER_LEN,
    };
    ip.get(..ip.len().min(header + 8)).unwrap_or_default()
}

/// The quote an ICMP error about a guest's UDP or TCP packet carries, rebuilt from what we
/// know of it: its IP header (from the guest to `remote`) and its first 8 bytes (the ports).
pub fn synth_quote(
    addrs: IpAddresses,
    protocol: IpProtocol,
    src_port: u16,
    dst_port: u16,
) -> Vec<u8> {
    let mut out = match addrs {
        IpAddresses::V4 { src, dst } => {
            let mut buf = vec![0u8; ipv4::HEADER_LEN];
            Ipv4Repr {
                src_addr: src,
                dst_addr: dst,
                next_header: protocol,
                payload_len: 8,
                hop_limit: TTL,
                ident: 0,
                dont_frag: true,
                more_frags: false,
                frag_offset: 0,
                dscp: 0,
                ecn: 0,
            }
            .emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]));
            buf
        }
        IpAddresses::V6 { src, dst } => {
            let mut buf = vec![0u8; ipv6::HEADER_LEN];
            Ipv6Repr {
                src_addr: src,
                dst_addr: dst,
                next_header: protocol,
                payload_len: 8,
                hop_limit: TTL,
                dscp: 0,
                ecn: 0,
                flow_label: 0,
            }
            .emit(&mut Ipv6Packet::new_unchecked(&mut buf[..]));
            buf
        }
    };
    out.extend_from_slice(&src_port.to_be_bytes());
    out.extend_from_slice(&dst_port.to_be_bytes());
    out.extend_from_slice(&[0, 8, 0, 0]);
    out
}
