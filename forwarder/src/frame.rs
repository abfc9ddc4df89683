//! Frames for guests, each built once, in place, into the buffer the link will write
//! (through [`FrameSink::send_with`]): Ethernet, IPv4 or IPv6, and the transport header with
//! its payload copied in once. A builder returns a [`Built`] frame — its length and the
//! closure that writes every one of its bytes — and nothing is written until the sink
//! provides the room; headers are cleared before their fields are set, payloads are copied
//! over whatever the buffer held, and frames are padded with zeros to Ethernet's minimum.
//! Datagrams longer than their link's MTU go out as IP fragments
//! ([`Framer::send_fragments`]; RFC 791 §3.2, RFC 8200 §4.5). TCP segments for a link with
//! offloads ([`Framer::tcp_offloaded`]) leave their checksum to the link and may be
//! super-segments it cuts to the MSS; they go with the virtio-net header that says so
//! ([`FrameSink::send_offloaded`]).

use std::net::IpAddr;

use bytes::Bytes;
use std::net::{Ipv4Addr, Ipv6Addr};

use stack::offload::LinkOffloads;
use stack::wire::checksum::ChecksumCapabilities;
use stack::wire::virtio_net::{self, PartialChecksum};
use stack::wire::{
    ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetAddress, EthernetFrame, EthernetRepr,
    Icmpv4Packet, Icmpv4Repr, Icmpv6Packet, Icmpv6Repr, IpAddresses, IpProtocol, Ipv4Packet,
    Ipv4Repr, Ipv6FragmentHeader, Ipv6FragmentRepr, Ipv6Packet, Ipv6Repr, NdpOption, NdpOptions,
    NdpRepr, TcpPacket, TcpRepr, UdpPacket, UdpRepr, VirtioNetGso, VirtioNetRepr, ethernet, ipv4,
    ipv6, ndp, udp,
};

use crate::worker::FrameSink;

/// The TTL / hop limit of what we originate.
pub const TTL: u8 = 64;
const MIN_FRAME_LEN: usize = 60;
/// The ICMP header before an echo's identifier or an error's quote.
const ICMP_HEADER_LEN: usize = 8;

/// A frame ready to be written: `len` bytes, every one of which `fill` writes, and the
/// virtio-net header of a frame the link is to finish (a TCP segment whose checksum is
/// partial, a super-segment).
#[derive(Debug)]
pub struct Built<F> {
    len: usize,
    fill: F,
    offload: Option<VirtioNetRepr>,
}

impl<F: FnOnce(&mut [u8])> Built<F> {
    /// The frame's length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never: a frame has an Ethernet header at least.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Writes the frame into `buf`, which must be exactly [`Built::len`] bytes.
    pub fn write(self, buf: &mut [u8]) {
        (self.fill)(buf);
    }

    /// The virtio-net header the frame goes with, if the link is to finish it.
    pub fn offload(&self) -> Option<&VirtioNetRepr> {
        self.offload.as_ref()
    }

    /// Sends the frame through `out`, built in the room it provides.
    pub fn send(self, out: &dyn FrameSink) -> bool {
        let mut fill = Some(self.fill);
        let mut fill = |buf: &mut [u8]| {
            if let Some(f) = fill.take() {
                f(buf);
            }
        };
        match &self.offload {
            Some(header) => out.send_offloaded(self.len, header, &mut fill),
            None => out.send_with(self.len, &mut fill),
        }
    }

    /// The frame in a buffer of its own (as it is, a partial checksum left partial).
    pub fn into_bytes(self) -> Bytes {
        let mut buf = vec![0u8; self.len];
        (self.fill)(&mut buf);
        Bytes::from(buf)
    }
}

/// Builds frames from the gateway's MAC.
#[derive(Debug)]
pub struct Framer {
    pub gateway_mac: EthernetAddress,
    ident: u16,
    /// The IPv6 fragment identification of the last fragmented datagram.
    ident6: u32,
}

/// The address pair of a packet, `None` when the families differ.
pub fn addresses(src: IpAddr, dst: IpAddr) -> Option<IpAddresses> {
    match (src, dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => Some(IpAddresses::V4 { src, dst }),
        (IpAddr::V6(src), IpAddr::V6(dst)) => Some(IpAddresses::V6 { src, dst }),
        _ => None,
    }
}

/// The IP header length of `addrs`' family.
fn ip_header_len(addrs: IpAddresses) -> usize {
    match addrs {
        IpAddresses::V4 { .. } => ipv4::HEADER_LEN,
        IpAddresses::V6 { .. } => ipv6::HEADER_LEN,
    }
}

impl Framer {
    pub fn new(gateway_mac: EthernetAddress) -> Framer {
        Framer {
            gateway_mac,
            ident: 0,
            ident6: 0,
        }
    }

    /// Whether an IP packet carrying `l4_len` bytes over `addrs` fits a link of `mtu`.
    pub fn fits(addrs: IpAddresses, l4_len: usize, mtu: usize) -> bool {
        ip_header_len(addrs).saturating_add(l4_len) <= mtu
    }

    fn next_ident(&mut self) -> u16 {
        self.ident = self.ident.wrapping_add(1);
        self.ident
    }

    /// An IP packet to `dst_mac` carrying `l4_len` bytes of `protocol` that `fill` writes
    /// (it gets exactly `l4_len` bytes, the first `l4_header` of them cleared). `None` if too
    /// long for IP.
    pub fn ip<F: FnOnce(&mut [u8])>(
        &mut self,
        dst_mac: EthernetAddress,
        addrs: IpAddresses,
        protocol: IpProtocol,
        l4_len: usize,
        l4_header: usize,
        fill: F,
    ) -> Option<Built<impl FnOnce(&mut [u8]) + use<F>>> {
        self.ip_tos(dst_mac, addrs, protocol, (0, 0), l4_len, l4_header, fill)
    }

    /// [`Framer::ip`] with a TOS or traffic class, `(dscp, ecn)`.
    #[allow(clippy::too_many_arguments)]
    pub fn ip_tos<F: FnOnce(&mut [u8])>(
        &mut self,
        dst_mac: EthernetAddress,
        addrs: IpAddresses,
        protocol: IpProtocol,
        tos: (u8, u8),
        l4_len: usize,
        l4_header: usize,
        fill: F,
    ) -> Option<Built<impl FnOnce(&mut [u8]) + use<F>>> {
        let (ethertype, ip_header) = match addrs {
            IpAddresses::V4 { .. } => (EtherType::Ipv4, ipv4::HEADER_LEN),
            IpAddresses::V6 { .. } => (EtherType::Ipv6, ipv6::HEADER_LEN),
        };
        if l4_len > usize::from(u16::MAX) - ip_header {
            return None;
        }
        let len = ethernet::HEADER_LEN + ip_header + l4_len;
        let eth = EthernetRepr {
            src_addr: self.gateway_mac,
            dst_addr: dst_mac,
            ethertype,
        };
        let ident = match addrs {
            IpAddresses::V4 { .. } => self.next_ident(),
            IpAddresses::V6 { .. } => 0,
        };
        let headers = ethernet::HEADER_LEN + ip_header + l4_header.min(l4_len);
        Some(Built {
            len: len.max(MIN_FRAME_LEN),
            offload: None,
            fill: move |buf: &mut [u8]| {
                if let Some(h) = buf.get_mut(..headers) {
                    h.fill(0);
                }
                if let Some(pad) = buf.get_mut(len..) {
                    pad.fill(0);
                }
                eth.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
                let Some(body) = buf.get_mut(ethernet::HEADER_LEN..len) else {
                    return;
                };
                let Some((header, l4)) = body.split_at_mut_checked(ip_header) else {
                    return;
                };
                fill(l4);
                emit_ip(header, addrs, protocol, tos, l4_len, ident, (0, false));
            },
        })
    }

    /// A neighbour solicitation from the gateway's `ours` asking for `target`'s link-layer
    /// address, sent to its solicited-node group with hop limit 255 and our own link-layer
    /// address as an option, so the guest can answer at once (RFC 4861 §4.3, §7.2.2).
    pub fn neighbor_solicit(
        &self,
        ours: Ipv6Addr,
        target: Ipv6Addr,
    ) -> Built<impl FnOnce(&mut [u8]) + use<>> {
        let group = ndp::solicited_node(target);
        let [.., a, b, c, d] = group.octets();
        let mac = self.gateway_mac;
        let lladdr = [NdpOption::SourceLinkLayerAddr(mac)];
        let l4_len = solicitation(target, &lladdr).buffer_len();
        let len = ethernet::HEADER_LEN + ipv6::HEADER_LEN + l4_len;
        let eth = EthernetRepr {
            src_addr: mac,
            dst_addr: EthernetAddress([0x33, 0x33, a, b, c, d]),
            ethertype: EtherType::Ipv6,
        };
        let ip = Ipv6Repr {
            src_addr: ours,
            dst_addr: group,
            next_header: IpProtocol::Icmpv6,
            payload_len: l4_len,
            hop_limit: ndp::HOP_LIMIT,
            dscp: 0,
            ecn: 0,
            flow_label: 0,
        };
        zeroed_frame(eth, len, move |body| {
            let Some((header, l4)) = body.split_at_mut_checked(ipv6::HEADER_LEN) else {
                return;
            };
            ip.emit(&mut Ipv6Packet::new_unchecked(header));
            solicitation(target, &lladdr).emit(
                &mut Icmpv6Packet::new_unchecked(l4),
                &IpAddresses::V6 {
                    src: ours,
                    dst: group,
                },
            );
        })
    }

    /// An ARP request from the gateway (`ours`) asking who has `target`, broadcast (RFC 826).
    pub fn arp_request(
        &self,
        ours: Ipv4Addr,
        target: Ipv4Addr,
    ) -> Built<impl FnOnce(&mut [u8]) + use<>> {
        let arp = ArpRepr {
            operation: ArpOperation::Request,
            source_hardware_addr: self.gateway_mac,
            source_protocol_addr: ours,
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: target,
        };
        let len = ethernet::HEADER_LEN + arp.buffer_len();
        let eth = EthernetRepr {
            src_addr: self.gateway_mac,
            dst_addr: EthernetAddress::BROADCAST,
            ethertype: EtherType::Arp,
        };
        zeroed_frame(eth, len, move |body| {
            arp.emit(&mut ArpPacket::new_unchecked(body));
        })
    }

    /// A UDP datagram.
    pub fn udp<'a>(
        &mut self,
        dst_mac: EthernetAddress,
        addrs: IpAddresses,
        src_port: u16,
        dst_port: u16,
        payload: &'a [u8],
    ) -> Option<Built<impl FnOnce(&mut [u8]) + use<'a>>> {
        let repr = UdpRepr {
            src_port,
            dst_port,
            payload_len: payload.len(),
        };
        let l4_len = udp::HEADER_LEN + payload.len();
        self.ip(
            dst_mac,
            addrs,
            IpProtocol::Udp,
            l4_len,
            udp::HEADER_LEN,
            move |l4| {
                if let Some(room) = l4.get_mut(udp::HEADER_LEN..) {
                    room.copy_from_slice(payload);
                }
                repr.emit(&mut UdpPacket::new_unchecked(l4), &addrs);
            },
        )
    }

    /// A UDP datagram on a link of `mtu`, sent through `out`: in one frame, or as fragments
    /// when it does not fit. Returns the frames sent.
    #[allow(clippy::too_many_arguments)]
    pub fn send_udp(
        &mut self,
        out: &dyn FrameSink,
        mtu: usize,
        dst_mac: EthernetAddress,
        addrs: IpAddresses,
        src_port: u16,
        dst_port: u16,
        payload: &[u8],
    ) -> usize {
        let l4_len = udp::HEADER_LEN + payload.len();
        if Framer::fits(addrs, l4_len, mtu) {
            return self
                .udp(dst_mac, addrs, src_port, dst_port, payload)
                .map_or(0, |f| usize::from(f.send(out)));
        }
        let mut upper = vec![0u8; l4_len];
        if let Some(room) = upper.get_mut(udp::HEADER_LEN..) {
            room.copy_from_slice(payload);
        }
        UdpRepr {
            src_port,
            dst_port,
            payload_len: payload.len(),
        }
        .emit(&mut UdpPacket::new_unchecked(&mut upper[..]), &addrs);
        self.send_fragments(out, mtu, dst_mac, addrs, IpProtocol::Udp, (0, 0), &upper)
    }

    /// `upper` (an upper-layer message, checksum filled in) as IP fragments that each fit
    /// `mtu`, sent through `out` in order: a multiple of 8 data bytes in all but the last
    /// (RFC 791 §3.2); for IPv6 behind a fragment header (RFC 8200 §4.5). Returns the frames
    /// sent; none if `upper` is too long for IP.
    #[allow(clippy::too_many_arguments)]
    pub fn send_fragments(
        &mut self,
        out: &dyn FrameSink,
        mtu: usize,
        dst_mac: EthernetAddress,
        addrs: IpAddresses,
        protocol: IpProtocol,
        tos: (u8, u8),
        upper: &[u8],
    ) -> usize {
        let (ethertype, fixed) = match addrs {
            IpAddresses::V4 { .. } => (EtherType::Ipv4, ipv4::HEADER_LEN),
            IpAddresses::V6 { .. } => (
                EtherType::Ipv6,
                ipv6::HEADER_LEN + ipv6::FRAGMENT_HEADER_LEN,
            ),
        };
        if upper.len() > usize::from(u16::MAX) - fixed {
            return 0;
        }
        let step = (mtu.saturating_sub(fixed) / 8 * 8).max(8);
        let ident = match addrs {
            IpAddresses::V4 { .. } => u32::from(self.next_ident()),
            IpAddresses::V6 { .. } => {
                self.ident6 = self.ident6.wrapping_add(1);
                self.ident6
            }
        };
        let eth = EthernetRepr {
            src_addr: self.gateway_mac,
            dst_addr: dst_mac,
            ethertype,
        };
        let mut sent = 0;
        for (i, chunk) in upper.chunks(step).enumerate() {
            let offset = i.saturating_mul(step);
            let more = offset.saturating_add(chunk.len()) < upper.len();
            let len = ethernet::HEADER_LEN + fixed + chunk.len();
            let frame = Built {
                len: len.max(MIN_FRAME_LEN),
                offload: None,
                fill: |buf: &mut [u8]| {
                    if let Some(h) = buf.get_mut(..ethernet::HEADER_LEN + fixed) {
                        h.fill(0);
                    }
                    if let Some(pad) = buf.get_mut(len..) {
                        pad.fill(0);
                    }
                    eth.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
                    let Some(body) = buf.get_mut(ethernet::HEADER_LEN..len) else {
                        return;
                    };
                    let Some((headers, data)) = body.split_at_mut_checked(fixed) else {
                        return;
                    };
                    data.copy_from_slice(chunk);
                    let offset = u16::try_from(offset).unwrap_or(u16::MAX);
                    match addrs {
                        IpAddresses::V4 { .. } => emit_ip(
                            headers,
                            addrs,
                            protocol,
                            tos,
                            chunk.len(),
                            ident as u16,
                            (offset, more),
                        ),
                        IpAddresses::V6 { .. } => {
                            let Some((fixed_part, frag)) =
                                headers.split_at_mut_checked(ipv6::HEADER_LEN)
                            else {
                                return;
                            };
                            Ipv6FragmentRepr {
                                next_header: protocol,
                                offset,
                                more_frags: more,
                                ident,
                            }
                            .emit(&mut Ipv6FragmentHeader::new_unchecked(frag));
                            emit_ip(
                                fixed_part,
                                addrs,
                                IpProtocol::Ipv6Frag,
                                tos,
                                ipv6::FRAGMENT_HEADER_LEN + chunk.len(),
                                0,
                                (0, false),
                            );
                        }
                    }
                },
            };
            sent += usize::from(frame.send(out));
        }
        sent
    }

    /// A TCP segment whose payload is the two slices (of the engine's send ring).
    pub fn tcp<'a>(
        &mut self,
        dst_mac: EthernetAddress,
        addrs: IpAddresses,
        repr: &'a TcpRepr,
        payload: (&'a [u8], &'a [u8]),
    ) -> Option<Built<impl FnOnce(&mut [u8]) + use<'a>>> {
        self.tcp_with(
            dst_mac,
            addrs,
            repr,
            payload,
            ChecksumCapabilities::default(),
        )
    }

    /// A TCP segment for a link that takes offloads (`offloads`), whose segments are `mss`
    /// bytes: with data, its checksum is left partial for the link to complete and, longer
    /// than `mss` (a super-segment, [`stack::tcp::Connection::poll_transmit_max`]), it goes
    /// with a GSO header for the link to cut it (the virtio-net header Linux expects:
    /// `NEEDS_CSUM` at the TCP checksum, the pseudo-header's sum in the field, `gso_size` the
    /// MSS). Without data, or on a link without offloads, it is [`Framer::tcp`]'s.
    pub fn tcp_offloaded<'a>(
        &mut self,
        dst_mac: EthernetAddress,
        addrs: IpAddresses,
        repr: &'a TcpRepr,
        payload: (&'a [u8], &'a [u8]),
        offloads: LinkOffloads,
        mss: usize,
    ) -> Option<Built<impl FnOnce(&mut [u8]) + use<'a>>> {
        let data = payload.0.len() + payload.1.len();
        let gso = data > mss && offloads.tso(&addrs);
        let partial = data > 0 && (offloads.tx_checksum || gso);
        let caps = if partial {
            ChecksumCapabilities::tcp_offloaded()
        } else {
            ChecksumCapabilities::default()
        };
        let mut built = self.tcp_with(dst_mac, addrs, repr, payload, caps)?;
        if partial {
            let start = ethernet::HEADER_LEN + ip_header_len(addrs);
            built.offload = Some(VirtioNetRepr {
                partial: Some(PartialChecksum {
                    start: start as u16,
                    offset: virtio_net::TCP_CSUM_OFFSET,
                }),
                gso: match (gso, addrs) {
                    (false, _) => VirtioNetGso::None,
                    (true, IpAddresses::V4 { .. }) => VirtioNetGso::Tcpv4,
                    (true, IpAddresses::V6 { .. }) => VirtioNetGso::Tcpv6,
                },
                gso_size: if gso {
                    mss.min(usize::from(u16::MAX)) as u16
                } else {
                    0
                },
                hdr_len: (start + repr.buffer_len()) as u16,
                ..VirtioNetRepr::PLAIN
            });
        }
        Some(built)
    }

    fn tcp_with<'a>(
        &mut self,
        dst_mac: EthernetAddress,
        addrs: IpAddresses,
        repr: &'a TcpRepr,
        payload: (&'a [u8], &'a [u8]),
        caps: ChecksumCapabilities,
    ) -> Option<Built<impl FnOnce(&mut [u8]) + use<'a>>> {
        let header = repr.buffer_len();
        let l4_len = header + payload.0.len() + payload.1.len();
        self.ip(dst_mac, addrs, IpProtocol::Tcp, l4_len, header, move |l4| {
            let first_end = header + payload.0.len();
            if let Some(room) = l4.get_mut(header..first_end) {
                room.copy_from_slice(payload.0);
            }
            if let Some(room) = l4.get_mut(first_end..) {
                room.copy_from_slice(payload.1);
            }
            repr.emit_with(&mut TcpPacket::new_unchecked(l4), &addrs, &caps);
        })
    }

    /// An ICMP or ICMPv6 echo reply on a link of `mtu`, sent through `out`: in one frame, or
    /// as fragments when it does not fit (a reply to a request that was itself fragmented).
    /// Returns the frames sent.
    #[allow(clippy::too_many_arguments)]
    pub fn send_echo_reply(
        &mut self,
        out: &dyn FrameSink,
        mtu: usize,
        dst_mac: EthernetAddress,
        addrs: IpAddresses,
        tos: (u8, u8),
        (ident, seq_no): (u16, u16),
        data: &[u8],
    ) -> usize {
        let (protocol, len) = match addrs {
            IpAddresses::V4 { .. } => (
                IpProtocol::Icmp,
                Icmpv4Repr::EchoReply {
                    ident,
                    seq_no,
                    data,
                }
                .buffer_len(),
            ),
            IpAddresses::V6 { .. } => (
                IpProtocol::Icmpv6,
                Icmpv6Repr::EchoReply {
                    ident,
                    seq_no,
                    data,
                }
                .buffer_len(),
            ),
        };
        let emit = move |l4: &mut [u8]| match addrs {
            IpAddresses::V4 { .. } => Icmpv4Repr::EchoReply {
                ident,
                seq_no,
                data,
            }
            .emit(&mut Icmpv4Packet::new_unchecked(l4)),
            IpAddresses::V6 { .. } => Icmpv6Repr::EchoReply {
                ident,
                seq_no,
                data,
            }
            .emit(&mut Icmpv6Packet::new_unchecked(l4), &addrs),
        };
        if Framer::fits(addrs, len, mtu) {
            return self
                .ip_tos(dst_mac, addrs, protocol, tos, len, ICMP_HEADER_LEN, emit)
                .map_or(0, |f| usize::from(f.send(out)));
        }
        let mut upper = vec![0u8; len];
        emit(&mut upper);
        self.send_fragments(out, mtu, dst_mac, addrs, protocol, tos, &upper)
    }

    /// Destination unreachable about `quote` (the guest's own packet, IP header first), from
    /// `addrs.src()` to the guest. `port` picks port unreachable, else host unreachable.
    pub fn unreachable<'a>(
        &mut self,
        dst_mac: EthernetAddress,
        addrs: IpAddresses,
        port: bool,
        quote: &'a [u8],
    ) -> Option<Built<impl FnOnce(&mut [u8]) + use<'a>>> {
        // RFC 792: the IP header and the first 64 bits of the datagram's data; RFC 4443 §3.1
        // asks for as much as fits, and the guest's own header and ports are what matter.
        let (protocol, quote, len) = match addrs {
            IpAddresses::V4 { .. } => {
                let quote = quote.get(..quote.len().min(ipv4::HEADER_LEN + 8))?;
                (IpProtocol::Icmp, quote, ICMP_HEADER_LEN + quote.len())
            }
            IpAddresses::V6 { .. } => {
                let quote = quote.get(..quote.len().min(ipv6::HEADER_LEN + 8))?;
                (IpProtocol::Icmpv6, quote, ICMP_HEADER_LEN + quote.len())
            }
        };
        self.ip(
            dst_mac,
            addrs,
            protocol,
            len,
            ICMP_HEADER_LEN,
            move |l4| match addrs {
                IpAddresses::V4 { .. } => {
                    let reason = if port {
                        stack::wire::Icmpv4DstUnreachable::PortUnreachable
                    } else {
                        stack::wire::Icmpv4DstUnreachable::HostUnreachable
                    };
                    Icmpv4Repr::DstUnreachable {
                        reason,
                        data: quote,
                    }
                    .emit(&mut Icmpv4Packet::new_unchecked(l4));
                }
                IpAddresses::V6 { .. } => {
                    let reason = if port {
                        stack::wire::Icmpv6DstUnreachable::PortUnreachable
                    } else {
                        stack::wire::Icmpv6DstUnreachable::AddrUnreachable
                    };
                    Icmpv6Repr::DstUnreachable {
                        reason,
                        invoking: quote,
                    }
                    .emit(&mut Icmpv6Packet::new_unchecked(l4), &addrs);
                }
            },
        )
    }
}

/// A neighbour solicitation for `target` with `lladdr` as its options.
fn solicitation<'a>(target: Ipv6Addr, lladdr: &'a [NdpOption<'a>]) -> Icmpv6Repr<'a> {
    Icmpv6Repr::Ndp(NdpRepr::NeighborSolicit {
        target_addr: target,
        options: NdpOptions::new(lladdr),
    })
}

/// A frame of `len` bytes (padded to the minimum) with every byte cleared, `eth` at its head
/// and its body written by `body`: the gateway's own small messages (ARP, neighbour
/// solicitations).
fn zeroed_frame<F: FnOnce(&mut [u8])>(
    eth: EthernetRepr,
    len: usize,
    body: F,
) -> Built<impl FnOnce(&mut [u8]) + use<F>> {
    Built {
        len: len.max(MIN_FRAME_LEN),
        offload: None,
        fill: move |buf: &mut [u8]| {
            buf.fill(0);
            eth.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
            if let Some(rest) = buf.get_mut(ethernet::HEADER_LEN..len) {
                body(rest);
            }
        },
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

/// The IP header of a packet we originate, over a cleared `header`, with the TOS or traffic
/// class `(dscp, ecn)`: IPv4 with `ident` and the fragment's `(offset, more)` (don't-fragment
/// set on an unfragmented one), or IPv6.
fn emit_ip(
    header: &mut [u8],
    addrs: IpAddresses,
    protocol: IpProtocol,
    (dscp, ecn): (u8, u8),
    payload_len: usize,
    ident: u16,
    (frag_offset, more_frags): (u16, bool),
) {
    match addrs {
        IpAddresses::V4 { src, dst } => Ipv4Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: protocol,
            payload_len,
            hop_limit: TTL,
            ident,
            dont_frag: frag_offset == 0 && !more_frags,
            more_frags,
            frag_offset,
            dscp,
            ecn,
        }
        .emit(&mut Ipv4Packet::new_unchecked(header)),
        IpAddresses::V6 { src, dst } => Ipv6Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: protocol,
            payload_len,
            hop_limit: TTL,
            dscp,
            ecn,
            flow_label: 0,
        }
        .emit(&mut Ipv6Packet::new_unchecked(header)),
    }
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
