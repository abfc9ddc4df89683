//! Offloads: what a link does for us, and the same work done in software when a frame must
//! reach a receiver that does not do it.
//!
//! [`LinkOffloads`] belongs to one link (never to the process): whether what we send over it
//! may leave the TCP checksum partial and may be a TCP super-segment that the link cuts to
//! the MSS itself (TSO). A TAP opened with a virtio-net header takes both.
//!
//! [`finish`] turns a frame and its virtio-net header ([`crate::wire::virtio_net`]) into what
//! a link without offloads carries: a partial checksum completed, a TCP or UDP super-segment
//! cut into frames of `gso_size` payload bytes each, every one with its own lengths, IPv4
//! identification and header checksum, TCP sequence number and flags (FIN and PSH on the last
//! segment only, CWR on the first only, as Linux's `tcp_gso_segment` does) and a complete
//! transport checksum. It is used for frames that cross from a link with offloads to one
//! without (guest to guest, a flood) and for a guest's UDP super-datagrams, which become one
//! datagram each. A super-segment is refused if it would become more than [`MAX_SEGMENTS`]
//! frames, so a tiny `gso_size` cannot multiply one frame into tens of thousands. Nothing in
//! the frame or the header can make it panic: every header is read through a checked view.

use crate::wire::checksum::Sum;
use crate::wire::ip::Addresses;
use crate::wire::virtio_net::{Error as HeaderError, Gso, Repr as VirtioNetRepr};
use crate::wire::{Ipv4Packet, Ipv6Packet, TcpPacket, UdpPacket, ethernet, ipv6};

/// The most frames one super-segment may be cut into, here or by the link for what we send.
pub const MAX_SEGMENTS: usize = 256;

/// The most payload a TCP super-segment we build carries: what an IP packet of 65535 bytes
/// holds behind an IPv4 header and the longest TCP header (IPv6's payload length leaves the
/// same room after a 60-byte TCP header and more).
pub const MAX_SUPER_PAYLOAD: usize = u16::MAX as usize - 20 - 60;

/// What one link does for what we send over it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct LinkOffloads {
    /// The link completes a partial TCP checksum ([`crate::wire::checksum::Checksum`]).
    pub tx_checksum: bool,
    /// The link cuts TCP/IPv4 super-segments to their MSS.
    pub tso4: bool,
    /// The link cuts TCP/IPv6 super-segments to their MSS.
    pub tso6: bool,
    /// The most payload one super-segment may carry on this link.
    pub super_payload: usize,
}

impl LinkOffloads {
    /// A link that does nothing for us.
    pub const NONE: LinkOffloads = LinkOffloads {
        tx_checksum: false,
        tso4: false,
        tso6: false,
        super_payload: 0,
    };

    /// A link with a virtio-net header (a TAP opened with `IFF_VNET_HDR`): the kernel
    /// completes checksums and cuts super-segments of either family.
    pub const VIRTIO_NET: LinkOffloads = LinkOffloads {
        tx_checksum: true,
        tso4: true,
        tso6: true,
        super_payload: MAX_SUPER_PAYLOAD,
    };

    /// These offloads on a link whose frames (Ethernet header included) are at most
    /// `max_frame` bytes: super-segments shrink to what such a frame holds behind an
    /// Ethernet header, an IPv6 header and the longest TCP header.
    pub const fn within_frame(self, max_frame: usize) -> LinkOffloads {
        let room = max_frame.saturating_sub(ethernet::HEADER_LEN + ipv6::HEADER_LEN + 60);
        LinkOffloads {
            super_payload: if room < self.super_payload {
                room
            } else {
                self.super_payload
            },
            ..self
        }
    }

    /// Whether TCP super-segments between `addrs` may go over this link.
    pub fn tso(&self, addrs: &Addresses) -> bool {
        match addrs {
            Addresses::V4 { .. } => self.tso4,
            Addresses::V6 { .. } => self.tso6,
        }
    }

    /// The most payload one TCP segment between `addrs` may carry on this link for a
    /// connection whose segments are `mss` bytes: a super-segment's worth with TSO, `mss`
    /// without.
    pub fn max_tcp_payload(&self, addrs: &Addresses, mss: usize) -> usize {
        if self.tso(addrs) {
            self.super_payload
                .min(mss.saturating_mul(MAX_SEGMENTS))
                .max(mss)
        } else {
            mss
        }
    }
}

impl FinishError {
    /// The drop it is counted as.
    pub fn drop_reason(self) -> crate::ingress::DropReason {
        match self {
            FinishError::Header(e) => crate::ingress::DropReason::VirtioNet(e),
            FinishError::Malformed | FinishError::TooManySegments => {
                crate::ingress::DropReason::SuperSegmentRefused
            }
        }
    }
}

/// Why a frame could not be finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum FinishError {
    /// The header does not fit the frame.
    #[error(transparent)]
    Header(#[from] HeaderError),
    /// The IP or transport header of a super-segment does not parse, or its lengths do not
    /// add up.
    #[error("malformed super-segment")]
    Malformed,
    /// More than [`MAX_SEGMENTS`] segments.
    #[error("super-segment of too many segments")]
    TooManySegments,
}

/// Finishes `frame` as `header` describes it, for a receiver without offloads: each
/// resulting frame, built in `scratch`, is handed to `each` in order. A frame that needs
/// nothing is handed on as it is. Returns how many frames `each` got.
pub fn finish(
    frame: &[u8],
    header: &VirtioNetRepr,
    scratch: &mut Vec<u8>,
    each: &mut dyn FnMut(&[u8]),
) -> Result<usize, FinishError> {
    header.check_frame(frame)?;
    match header.gso {
        Gso::None => match header.partial {
            None => {
                each(frame);
                Ok(1)
            }
            Some(p) => {
                scratch.clear();
                scratch.extend_from_slice(frame);
                complete(scratch, usize::from(p.start), usize::from(p.offset));
                each(scratch);
                Ok(1)
            }
        },
        Gso::Tcpv4 | Gso::Tcpv6 => cut_tcp(frame, usize::from(header.gso_size), scratch, each),
        Gso::Udp => cut_udp(frame, usize::from(header.gso_size), scratch, each),
    }
}

/// Completes a partial checksum in place: the sum from `start` to the end (the field holding
/// the pseudo-header's sum), complemented into the field; a zero result is sent as 0xffff,
/// its twin, as UDP needs (RFC 768) and Linux does for every protocol.
fn complete(frame: &mut [u8], start: usize, offset: usize) {
    let Some(covered) = frame.get(start..) else {
        return;
    };
    let checksum = match Sum::of(covered).checksum() {
        0 => 0xffff,
        c => c,
    };
    let at = start.saturating_add(offset);
    if let Some(field) = frame.get_mut(at..at.saturating_add(2)) {
        field.copy_from_slice(&checksum.to_be_bytes());
    }
}

/// Where the IP packet of an Ethernet frame keeps what a segment needs.
struct Layout {
    /// The IP packet's addresses (for the pseudo-header).
    addrs: Addresses,
    /// The IPv4 identification, for IPv4.
    ident: Option<u16>,
    /// Where the transport header starts, in the frame.
    l4: usize,
    /// Where the IP packet ends, in the frame (Ethernet padding after it is left out).
    end: usize,
}

/// The IP layout of `frame`: an unfragmented IPv4 packet, or an IPv6 packet whose fixed
/// header is followed by the transport header (as [`VirtioNetRepr::check_frame`] demands).
fn layout(frame: &[u8]) -> Result<Layout, FinishError> {
    let ip = frame
        .get(ethernet::HEADER_LEN..)
        .ok_or(FinishError::Malformed)?;
    match frame.get(12..14) {
        Some([0x08, 0x00]) => {
            let packet = Ipv4Packet::new_checked(ip).map_err(|_| FinishError::Malformed)?;
            Ok(Layout {
                addrs: Addresses::V4 {
                    src: packet.src_addr(),
                    dst: packet.dst_addr(),
                },
                ident: Some(packet.ident()),
                l4: ethernet::HEADER_LEN + usize::from(packet.header_len()),
                end: ethernet::HEADER_LEN + usize::from(packet.total_len()),
            })
        }
        Some([0x86, 0xdd]) => {
            let packet = Ipv6Packet::new_checked(ip).map_err(|_| FinishError::Malformed)?;
            Ok(Layout {
                addrs: Addresses::V6 {
                    src: packet.src_addr(),
                    dst: packet.dst_addr(),
                },
                ident: None,
                l4: ethernet::HEADER_LEN + ipv6::HEADER_LEN,
                end: ethernet::HEADER_LEN + ipv6::HEADER_LEN + usize::from(packet.payload_len()),
            })
        }
        _ => Err(FinishError::Malformed),
    }
}

/// Sets the IP lengths of the segment in `seg` (whose transport part is `l4_len` bytes) and,
/// for IPv4, its identification and header checksum.
fn fix_ip(seg: &mut [u8], layout: &Layout, l4_len: usize, index: usize) {
    let Some(ip) = seg.get_mut(ethernet::HEADER_LEN..) else {
        return;
    };
    let l3_len = layout.l4 - ethernet::HEADER_LEN;
    match layout.ident {
        Some(ident) => {
            let mut packet = Ipv4Packet::new_unchecked(ip);
            packet.set_total_len((l3_len + l4_len) as u16);
            packet.set_ident(ident.wrapping_add(index as u16));
            packet.fill_checksum();
        }
        None => Ipv6Packet::new_unchecked(ip).set_payload_len(l4_len as u16),
    }
}

/// How many segments of `size` bytes `payload` bytes make (one for none), within bounds.
fn count(payload: usize, size: usize) -> Result<usize, FinishError> {
    let n = payload.div_ceil(size.max(1)).max(1);
    if n > MAX_SEGMENTS {
        return Err(FinishError::TooManySegments);
    }
    Ok(n)
}

fn cut_tcp(
    frame: &[u8],
    size: usize,
    scratch: &mut Vec<u8>,
    each: &mut dyn FnMut(&[u8]),
) -> Result<usize, FinishError> {
    let layout = layout(frame)?;
    let segment = frame
        .get(layout.l4..layout.end)
        .ok_or(FinishError::Malformed)?;
    let tcp = TcpPacket::new_checked(segment).map_err(|_| FinishError::Malformed)?;
    let header_len = tcp.header_len();
    let (seq, fin, psh, cwr) = (tcp.seq_number(), tcp.fin(), tcp.psh(), tcp.cwr());
    let headers = frame
        .get(..layout.l4 + header_len)
        .ok_or(FinishError::Malformed)?;
    let payload = segment.get(header_len..).ok_or(FinishError::Malformed)?;
    let n = count(payload.len(), size)?;
    for index in 0..n {
        let from = index * size;
        let chunk = payload
            .get(from..payload.len().min(from + size))
            .unwrap_or_default();
        scratch.clear();
        scratch.extend_from_slice(headers);
        scratch.extend_from_slice(chunk);
        let l4_len = header_len + chunk.len();
        fix_ip(scratch, &layout, l4_len, index);
        if let Some(l4) = scratch.get_mut(layout.l4..) {
            let last = index + 1 == n;
            let mut tcp = TcpPacket::new_unchecked(l4);
            tcp.set_seq_number(seq + from);
            tcp.set_fin(fin && last);
            tcp.set_psh(psh && last);
            tcp.set_cwr(cwr && index == 0);
            tcp.fill_checksum(&layout.addrs);
        }
        each(scratch);
    }
    Ok(n)
}

fn cut_udp(
    frame: &[u8],
    size: usize,
    scratch: &mut Vec<u8>,
    each: &mut dyn FnMut(&[u8]),
) -> Result<usize, FinishError> {
    let layout = layout(frame)?;
    let datagram = frame
        .get(layout.l4..layout.end)
        .ok_or(FinishError::Malformed)?;
    // The length field of a super-datagram is not to be trusted; the IP length is.
    let payload = datagram.get(8..).ok_or(FinishError::Malformed)?;
    let headers = frame.get(..layout.l4 + 8).ok_or(FinishError::Malformed)?;
    let n = count(payload.len(), size)?;
    for index in 0..n {
        let from = index * size;
        let chunk = payload
            .get(from..payload.len().min(from + size))
            .unwrap_or_default();
        scratch.clear();
        scratch.extend_from_slice(headers);
        scratch.extend_from_slice(chunk);
        let l4_len = 8 + chunk.len();
        fix_ip(scratch, &layout, l4_len, index);
        if let Some(l4) = scratch.get_mut(layout.l4..) {
            let mut udp = UdpPacket::new_unchecked(l4);
            udp.set_length(l4_len as u16);
            udp.fill_checksum(&layout.addrs);
        }
        each(scratch);
    }
    Ok(n)
}

#[cfg(test)]
#[path = "offload_tests.rs"]
mod tests;
