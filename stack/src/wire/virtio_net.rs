//! The virtio-net header (virtio 1.2 §5.1.6, `struct virtio_net_hdr`): the few bytes a TAP
//! device opened with `IFF_VNET_HDR` puts before every frame, in both directions, to say
//! what was left undone for offloads.
//!
//! - `NEEDS_CSUM`: the transport checksum is partial; the link (or we) completes it by
//!   summing from `csum_start` to the end and storing the complement at `csum_start +
//!   csum_offset`. The data itself is as its sender wrote it: on receive it is vouched for.
//! - `DATA_VALID`: the checksums were verified already (receive only).
//! - `gso_type` / `gso_size`: the frame is a TCP (IPv4 or IPv6) or UDP super-segment that the
//!   receiver may cut into segments of `gso_size` payload bytes each (Linux's GSO). It always
//!   comes with `NEEDS_CSUM`.
//!
//! The header is little-endian (virtio 1.0 and later; a legacy TAP on a little-endian machine
//! uses the same layout) and [`HEADER_LEN`] bytes long: the 10-byte base and `num_buffers`,
//! the length host-switch sets with `TUNSETVNETHDRSZ`. [`Header::new_checked`] accepts a
//! buffer of that length; [`Repr::parse`] refuses flags and GSO types it does not know, a GSO
//! type without `NEEDS_CSUM` or with a zero segment size. [`Repr::check_frame`] then checks the
//! header against the frame it came with: the checksum's place inside the frame, a GSO type
//! that matches the frame's own IP version and transport. A frame whose header fails either
//! is dropped and counted by the caller; nothing here can panic.

use super::checksum::ChecksumCapabilities;
use super::ethernet;

/// The header length host-switch uses (with `num_buffers`, as virtio 1.0 defines it).
pub const HEADER_LEN: usize = 12;

/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`.
const F_NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_F_DATA_VALID`.
const F_DATA_VALID: u8 = 2;
/// `VIRTIO_NET_HDR_GSO_NONE`, `_TCPV4`, `_UDP` (UFO, long gone), `_TCPV6`, `_UDP_L4` (USO)
/// and the ECN bit.
const GSO_NONE: u8 = 0;
const GSO_TCPV4: u8 = 1;
const GSO_TCPV6: u8 = 4;
const GSO_UDP_L4: u8 = 5;
const GSO_ECN: u8 = 0x80;

/// The TCP checksum's offset within its header, and UDP's (RFC 9293 §3.1, RFC 768).
pub const TCP_CSUM_OFFSET: u16 = 16;
pub const UDP_CSUM_OFFSET: u16 = 6;

/// Why a virtio-net header (with its frame) is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Error {
    #[error("frame shorter than its virtio-net header")]
    Truncated,
    #[error("virtio-net header with unknown flags")]
    UnknownFlags,
    #[error("virtio-net header with an unknown GSO type")]
    UnknownGsoType,
    #[error("virtio-net GSO header with a zero segment size")]
    ZeroGsoSize,
    #[error("virtio-net GSO header without NEEDS_CSUM")]
    GsoWithoutChecksum,
    #[error("virtio-net checksum start or offset outside the frame")]
    BadChecksumOffset,
    #[error("virtio-net GSO type does not match the frame's protocol")]
    GsoMismatch,
}

mod field {
    use core::ops::Range;

    pub(super) const FLAGS: usize = 0;
    pub(super) const GSO_TYPE: usize = 1;
    pub(super) const HDR_LEN: Range<usize> = 2..4;
    pub(super) const GSO_SIZE: Range<usize> = 4..6;
    pub(super) const CSUM_START: Range<usize> = 6..8;
    pub(super) const CSUM_OFFSET: Range<usize> = 8..10;
    pub(super) const NUM_BUFFERS: Range<usize> = 10..12;
}

/// A read/write view of a virtio-net header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Header<T> {
    /// Wraps `buffer` without checking it; accessors may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Header<T> {
        Header { buffer }
    }

    /// Wraps `buffer` once it is at least [`HEADER_LEN`] bytes.
    pub fn new_checked(buffer: T) -> Result<Header<T>, Error> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Header { buffer })
    }

    fn read_u16(&self, at: core::ops::Range<usize>) -> u16 {
        let b = &self.buffer.as_ref()[at];
        u16::from_le_bytes([b[0], b[1]])
    }

    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    pub fn gso_type(&self) -> u8 {
        self.buffer.as_ref()[field::GSO_TYPE]
    }

    /// The length of the headers before the payload (a hint; checked by nobody here).
    pub fn hdr_len(&self) -> u16 {
        self.read_u16(field::HDR_LEN)
    }

    pub fn gso_size(&self) -> u16 {
        self.read_u16(field::GSO_SIZE)
    }

    pub fn csum_start(&self) -> u16 {
        self.read_u16(field::CSUM_START)
    }

    pub fn csum_offset(&self) -> u16 {
        self.read_u16(field::CSUM_OFFSET)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Header<T> {
    fn write_u16(&mut self, at: core::ops::Range<usize>, value: u16) {
        self.buffer.as_mut()[at].copy_from_slice(&value.to_le_bytes());
    }

    pub fn set_flags(&mut self, value: u8) {
        self.buffer.as_mut()[field::FLAGS] = value;
    }

    pub fn set_gso_type(&mut self, value: u8) {
        self.buffer.as_mut()[field::GSO_TYPE] = value;
    }

    pub fn set_hdr_len(&mut self, value: u16) {
        self.write_u16(field::HDR_LEN, value);
    }

    pub fn set_gso_size(&mut self, value: u16) {
        self.write_u16(field::GSO_SIZE, value);
    }

    pub fn set_csum_start(&mut self, value: u16) {
        self.write_u16(field::CSUM_START, value);
    }

    pub fn set_csum_offset(&mut self, value: u16) {
        self.write_u16(field::CSUM_OFFSET, value);
    }

    pub fn set_num_buffers(&mut self, value: u16) {
        self.write_u16(field::NUM_BUFFERS, value);
    }
}

/// What a super-segment is, for the receiver to cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Gso {
    /// An ordinary frame.
    #[default]
    None,
    /// A TCP super-segment over IPv4.
    Tcpv4,
    /// A TCP super-segment over IPv6.
    Tcpv6,
    /// UDP datagrams of `gso_size` payload bytes sent as one (UDP segmentation offload).
    Udp,
}

/// Where a partial transport checksum is completed (`NEEDS_CSUM`): the sum runs from `start`
/// (an offset in the Ethernet frame) to the frame's end, and its complement goes at `start +
/// offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PartialChecksum {
    pub start: u16,
    pub offset: u16,
}

/// The meaningful fields of a virtio-net header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Repr {
    /// `NEEDS_CSUM`, with where.
    pub partial: Option<PartialChecksum>,
    /// `DATA_VALID`.
    pub data_valid: bool,
    pub gso: Gso,
    /// The ECN bit of `gso_type`: the TCP super-segment carries CWR, which only its first
    /// segment may keep.
    pub ecn: bool,
    /// The payload bytes of each segment, for a super-segment.
    pub gso_size: u16,
    /// The length of the headers before the payload.
    pub hdr_len: u16,
}

impl Repr {
    /// The header of an ordinary frame: all zeros.
    pub const PLAIN: Repr = Repr {
        partial: None,
        data_valid: false,
        gso: Gso::None,
        ecn: false,
        gso_size: 0,
        hdr_len: 0,
    };

    /// Reads a header, refusing flags and GSO types we do not know, and GSO without
    /// `NEEDS_CSUM` or with a zero segment size.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(header: &Header<&T>) -> Result<Repr, Error> {
        let flags = header.flags();
        if flags & !(F_NEEDS_CSUM | F_DATA_VALID) != 0 {
            return Err(Error::UnknownFlags);
        }
        let gso_type = header.gso_type();
        let gso = match gso_type & !GSO_ECN {
            GSO_NONE => Gso::None,
            GSO_TCPV4 => Gso::Tcpv4,
            GSO_TCPV6 => Gso::Tcpv6,
            GSO_UDP_L4 => Gso::Udp,
            _ => return Err(Error::UnknownGsoType),
        };
        let ecn = gso_type & GSO_ECN != 0;
        if ecn && !matches!(gso, Gso::Tcpv4 | Gso::Tcpv6) {
            return Err(Error::UnknownGsoType);
        }
        let partial = (flags & F_NEEDS_CSUM != 0).then(|| PartialChecksum {
            start: header.csum_start(),
            offset: header.csum_offset(),
        });
        if gso != Gso::None {
            if partial.is_none() {
                return Err(Error::GsoWithoutChecksum);
            }
            if header.gso_size() == 0 {
                return Err(Error::ZeroGsoSize);
            }
        }
        Ok(Repr {
            partial,
            data_valid: flags & F_DATA_VALID != 0,
            gso,
            ecn,
            gso_size: if gso == Gso::None {
                0
            } else {
                header.gso_size()
            },
            hdr_len: header.hdr_len(),
        })
    }

    /// Reads the header in front of `frame` (its first [`HEADER_LEN`] bytes of `header`)
    /// and checks it against the frame: [`Repr::parse`], then [`Repr::check_frame`].
    pub fn parse_for(header: &[u8], frame: &[u8]) -> Result<Repr, Error> {
        let repr = Repr::parse(&Header::new_checked(header)?)?;
        repr.check_frame(frame)?;
        Ok(repr)
    }

    /// Writes the header (`num_buffers` zero: only a receiver that merges buffers reads it).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, header: &mut Header<T>) {
        let mut flags = 0;
        if self.partial.is_some() {
            flags |= F_NEEDS_CSUM;
        }
        if self.data_valid {
            flags |= F_DATA_VALID;
        }
        let mut gso_type = match self.gso {
            Gso::None => GSO_NONE,
            Gso::Tcpv4 => GSO_TCPV4,
            Gso::Tcpv6 => GSO_TCPV6,
            Gso::Udp => GSO_UDP_L4,
        };
        if self.ecn {
            gso_type |= GSO_ECN;
        }
        let partial = self.partial.unwrap_or(PartialChecksum {
            start: 0,
            offset: 0,
        });
        header.set_flags(flags);
        header.set_gso_type(gso_type);
        header.set_hdr_len(self.hdr_len);
        header.set_gso_size(self.gso_size);
        header.set_csum_start(partial.start);
        header.set_csum_offset(partial.offset);
        header.set_num_buffers(0);
    }

    /// The header's bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut bytes = [0u8; HEADER_LEN];
        self.emit(&mut Header::new_unchecked(&mut bytes[..]));
        bytes
    }

    /// Whether this is a super-segment.
    pub fn is_gso(&self) -> bool {
        self.gso != Gso::None
    }

    /// Whether the frame must be completed (checksum) or cut (GSO) before a receiver that
    /// takes no offloads may have it.
    pub fn needs_finishing(&self) -> bool {
        self.partial.is_some() || self.is_gso()
    }

    /// Which checksums of the frame are still ours to verify: none of TCP's and UDP's when
    /// the link vouched for them (`NEEDS_CSUM` — the data is exactly what its sender wrote,
    /// the sum was just never taken — or `DATA_VALID`).
    pub fn checksums(&self) -> ChecksumCapabilities {
        if self.partial.is_some() || self.data_valid {
            ChecksumCapabilities::transport_vouched()
        } else {
            ChecksumCapabilities::default()
        }
    }

    /// Checks the header against the Ethernet `frame` it came with: a partial checksum's
    /// field lies inside the frame, past the Ethernet header; a GSO type names the frame's
    /// own IP version with TCP (or UDP) right after the fixed IP header, not a fragment.
    pub fn check_frame(&self, frame: &[u8]) -> Result<(), Error> {
        if let Some(p) = self.partial {
            let field_end = usize::from(p.start) + usize::from(p.offset) + 2;
            if usize::from(p.start) < ethernet::HEADER_LEN || field_end > frame.len() {
                return Err(Error::BadChecksumOffset);
            }
        }
        let (v4, v6, transport) = match self.gso {
            Gso::None => return Ok(()),
            Gso::Tcpv4 => (true, false, TCP),
            Gso::Tcpv6 => (false, true, TCP),
            Gso::Udp => (true, true, UDP),
        };
        match frame_l4(frame) {
            Some((L3::V4, protocol)) if v4 && protocol == transport => Ok(()),
            Some((L3::V6, protocol)) if v6 && protocol == transport => Ok(()),
            _ => Err(Error::GsoMismatch),
        }
    }
}

const TCP: u8 = 6;
const UDP: u8 = 17;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum L3 {
    V4,
    V6,
}

/// The IP version and the transport protocol of an unfragmented IPv4 packet or of an IPv6
/// packet without extension headers, read from the fixed places in an untagged Ethernet
/// frame; `None` otherwise.
fn frame_l4(frame: &[u8]) -> Option<(L3, u8)> {
    let ethertype = frame.get(12..14)?;
    let ip = frame.get(ethernet::HEADER_LEN..)?;
    match ethertype {
        [0x08, 0x00] => {
            let version_ihl = *ip.first()?;
            let frag = u16::from_be_bytes([*ip.get(6)?, *ip.get(7)?]);
            // More fragments, or a non-zero offset: a fragment.
            if version_ihl >> 4 != 4 || frag & 0x3fff != 0 {
                return None;
            }
            Some((L3::V4, *ip.get(9)?))
        }
        [0x86, 0xdd] => {
            if ip.first()? >> 4 != 6 {
                return None;
            }
            Some((L3::V6, *ip.get(6)?))
        }
        _ => None,
    }
}

#[cfg(test)]
#[path = "virtio_net_tests.rs"]
mod tests;
