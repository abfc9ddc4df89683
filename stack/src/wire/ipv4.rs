//! IPv4 headers (RFC 791 §3.1).
//!
//! [`Packet`] is a view over a datagram's bytes. [`Packet::new_checked`] checks the version
//! and every length once: the header length (IHL) is at least 20 bytes and fits the buffer,
//! and the total length covers the header and fits the buffer. A buffer longer than the total
//! length is accepted (a short datagram in a minimum-size Ethernet frame arrives padded) and
//! [`Packet::payload`] stops at the total length. After that no accessor can panic.
//!
//! Options are length-checked and skipped: [`Packet::options`] exposes their bytes, nothing
//! interprets them, and [`Repr::emit`] always writes a 20-byte header without options.
//! [`Repr::parse`] verifies the header checksum (RFC 1122 §3.2.1.2) and refuses fragments that
//! could not be reassembled; [`Repr::emit`] fills the checksum in. The fragment fields are
//! kept in [`Repr`] so reassembly can work from it; offsets are in bytes, not 8-byte units.
//!
//! A datagram quoted inside an ICMP error is cut short by design (RFC 792: the header and the
//! first 8 bytes of data; RFC 1812 §4.3.2.3: up to 576 bytes in all): read it with
//! [`Packet::new_quoted`], which checks the header but lets the payload end early.

use super::checksum;
use super::ip::Protocol;
use core::net::Ipv4Addr;

/// Why a buffer is not an IPv4 datagram we accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Error {
    #[error("buffer shorter than the IPv4 header or total length says")]
    Truncated,
    #[error("IP version is not 4")]
    BadVersion,
    #[error("IPv4 header length (IHL) below 5 words")]
    BadHeaderLength,
    #[error("IPv4 total length shorter than its header")]
    BadTotalLength,
    #[error("IPv4 header checksum mismatch")]
    BadChecksum,
    #[error("IPv4 fragment misaligned or reaching past 65535 bytes")]
    BadFragment,
}

mod field {
    use core::ops::Range;

    pub(super) const VER_IHL: usize = 0;
    pub(super) const DSCP_ECN: usize = 1;
    pub(super) const LENGTH: Range<usize> = 2..4;
    pub(super) const IDENT: Range<usize> = 4..6;
    pub(super) const FLG_OFF: Range<usize> = 6..8;
    pub(super) const TTL: usize = 8;
    pub(super) const PROTOCOL: usize = 9;
    pub(super) const CHECKSUM: Range<usize> = 10..12;
    pub(super) const SRC_ADDR: Range<usize> = 12..16;
    pub(super) const DST_ADDR: Range<usize> = 16..20;
}

/// Length of a header without options (RFC 791 §3.1: the minimum IHL is 5 words).
pub const HEADER_LEN: usize = field::DST_ADDR.end;

/// The largest datagram the 16-bit total length field can describe.
pub const MAX_PACKET_LEN: usize = u16::MAX as usize;

/// RFC 791 §3.1 "Flags", bit 1: Don't Fragment. (Bit 0, 0x8000, is reserved and must be zero;
/// we ignore it on receipt and never set it.)
const FLAG_DF: u16 = 0x4000;
/// RFC 791 §3.1 "Flags", bit 2: More Fragments.
const FLAG_MF: u16 = 0x2000;
/// RFC 791 §3.1 "Fragment Offset": 13 bits, in units of 8 octets.
const OFFSET_MASK: u16 = 0x1fff;

/// A read/write view of an IPv4 datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` without checking it; accessors may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps `buffer` after checking the version and every length field against it.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let packet = Packet::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Wraps the datagram quoted by an ICMP error: the header must be whole and consistent,
    /// the payload may end before the total length says (the quote is cut short), and
    /// [`Packet::payload`] then returns what is there.
    pub fn new_quoted(buffer: T) -> Result<Packet<T>, Error> {
        let packet = Packet::new_unchecked(buffer);
        packet.check_header_len()?;
        Ok(packet)
    }

    /// Checks the version and the lengths, so every accessor is safe: the buffer holds the
    /// header (options included) and the total length. The version is checked here rather than
    /// in [`Repr::parse`] because the IHL field means nothing in another version's header.
    pub fn check_len(&self) -> Result<(), Error> {
        self.check_header_len()?;
        if self.buffer.as_ref().len() < usize::from(self.total_len()) {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// [`Packet::check_len`] without requiring the buffer to reach the total length.
    fn check_header_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        // RFC 1122 §3.2.1.1: a datagram whose version is not 4 is discarded.
        if self.version() != 4 {
            return Err(Error::BadVersion);
        }
        let header_len = usize::from(self.header_len());
        if header_len < HEADER_LEN {
            return Err(Error::BadHeaderLength);
        }
        if len < header_len {
            return Err(Error::Truncated);
        }
        if usize::from(self.total_len()) < header_len {
            return Err(Error::BadTotalLength);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn read_u16(&self, range: core::ops::Range<usize>) -> u16 {
        let b = &self.buffer.as_ref()[range];
        u16::from_be_bytes([b[0], b[1]])
    }

    fn read_addr(&self, range: core::ops::Range<usize>) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[range];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// The header length in bytes (IHL × 4), options included.
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// The Differentiated Services codepoint (RFC 2474 §3): the top six bits of the second
    /// byte, formerly the type of service.
    pub fn dscp(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] >> 2
    }

    /// The ECN codepoint (RFC 3168 §5): the low two bits of the second byte.
    pub fn ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] & 0x03
    }

    /// The total length in bytes, header included.
    pub fn total_len(&self) -> u16 {
        self.read_u16(field::LENGTH)
    }

    pub fn ident(&self) -> u16 {
        self.read_u16(field::IDENT)
    }

    pub fn dont_frag(&self) -> bool {
        self.read_u16(field::FLG_OFF) & FLAG_DF != 0
    }

    pub fn more_frags(&self) -> bool {
        self.read_u16(field::FLG_OFF) & FLAG_MF != 0
    }

    /// The fragment offset in bytes (the field counts 8-byte units), at most 65528.
    pub fn frag_offset(&self) -> u16 {
        (self.read_u16(field::FLG_OFF) & OFFSET_MASK) << 3
    }

    /// Whether this is a piece of a larger datagram: more follow, or it does not start at 0.
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }

    /// The time to live.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    pub fn next_header(&self) -> Protocol {
        Protocol::from(self.buffer.as_ref()[field::PROTOCOL])
    }

    pub fn checksum(&self) -> u16 {
        self.read_u16(field::CHECKSUM)
    }

    pub fn src_addr(&self) -> Ipv4Addr {
        self.read_addr(field::SRC_ADDR)
    }

    pub fn dst_addr(&self) -> Ipv4Addr {
        self.read_addr(field::DST_ADDR)
    }

    /// Whether the header checksum (RFC 791 §3.1, over the header with its options) is right.
    pub fn verify_checksum(&self) -> bool {
        let header = &self.buffer.as_ref()[..usize::from(self.header_len())];
        checksum::checksum(header) == 0
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The options' bytes, uninterpreted (empty for a 20-byte header).
    pub fn options(&self) -> &'a [u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.header_len())]
    }

    /// The bytes after the header up to the total length: Ethernet padding past it is left
    /// out. In a packet from [`Packet::new_quoted`] this ends early if the quote does.
    pub fn payload(&self) -> &'a [u8] {
        let buffer = self.buffer.as_ref();
        let end = usize::from(self.total_len()).min(buffer.len());
        let start = usize::from(self.header_len()).min(end);
        &buffer[start..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn write_u16(&mut self, range: core::ops::Range<usize>, value: u16) {
        self.buffer.as_mut()[range].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the version to 4 and the header length, in bytes (a multiple of 4, 20 to 60).
    pub fn set_version_and_header_len(&mut self, header_len: u8) {
        self.buffer.as_mut()[field::VER_IHL] = 0x40 | ((header_len / 4) & 0x0f);
    }

    /// Sets the DSCP (six bits) and ECN (two bits) codepoints; higher bits are dropped.
    pub fn set_dscp_ecn(&mut self, dscp: u8, ecn: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = (dscp << 2) | (ecn & 0x03);
    }

    pub fn set_total_len(&mut self, value: u16) {
        self.write_u16(field::LENGTH, value);
    }

    pub fn set_ident(&mut self, value: u16) {
        self.write_u16(field::IDENT, value);
    }

    /// Sets the flags and fragment offset in one go; the reserved flag is cleared and
    /// `frag_offset` (in bytes) is rounded down to a multiple of 8.
    pub fn set_fragment(&mut self, dont_frag: bool, more_frags: bool, frag_offset: u16) {
        let mut value = (frag_offset >> 3) & OFFSET_MASK;
        if dont_frag {
            value |= FLAG_DF;
        }
        if more_frags {
            value |= FLAG_MF;
        }
        self.write_u16(field::FLG_OFF, value);
    }

    pub fn set_hop_limit(&mut self, value: u8) {
        self.buffer.as_mut()[field::TTL] = value;
    }

    pub fn set_next_header(&mut self, value: Protocol) {
        self.buffer.as_mut()[field::PROTOCOL] = value.into();
    }

    pub fn set_checksum(&mut self, value: u16) {
        self.write_u16(field::CHECKSUM, value);
    }

    pub fn set_src_addr(&mut self, value: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&value.octets());
    }

    pub fn set_dst_addr(&mut self, value: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&value.octets());
    }

    /// Computes the header checksum over the header length the packet states and stores it.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let header_len = usize::from(self.header_len());
        let sum = checksum::checksum(&self.buffer.as_ref()[..header_len]);
        self.set_checksum(sum);
    }

    /// The bytes after the header up to the total length, for writing.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.total_len()).min(self.buffer.as_ref().len());
        let start = usize::from(self.header_len()).min(end);
        &mut self.buffer.as_mut()[start..end]
    }
}

/// The meaningful fields of an IPv4 header. Options are not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    pub src_addr: Ipv4Addr,
    pub dst_addr: Ipv4Addr,
    pub next_header: Protocol,
    /// Bytes after the header (options excluded) up to the total length.
    pub payload_len: usize,
    /// The time to live.
    pub hop_limit: u8,
    /// The identification, which groups the fragments of one datagram (RFC 791 §3.2).
    pub ident: u16,
    pub dont_frag: bool,
    pub more_frags: bool,
    /// The fragment offset in bytes: a multiple of 8, at most 65528.
    pub frag_offset: u16,
    /// The DSCP (RFC 2474 §3), six bits.
    pub dscp: u8,
    /// The ECN codepoint (RFC 3168 §5), two bits.
    pub ecn: u8,
}

impl Repr {
    /// Reads the header of a datagram that [`Packet::check_len`] accepts, verifying the header
    /// checksum and that a fragment could take part in a reassembly.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr, Error> {
        packet.check_len()?;
        // RFC 1122 §3.2.1.2: a datagram with a bad header checksum is discarded.
        if !packet.verify_checksum() {
            return Err(Error::BadChecksum);
        }
        let payload_len = packet.payload().len();
        // RFC 791 §3.2: every fragment but the last carries a multiple of 8 bytes, for the
        // next one's offset counts 8-byte units ...
        if packet.more_frags() && !payload_len.is_multiple_of(8) {
            return Err(Error::BadFragment);
        }
        // ... and the reassembled datagram, with at least a 20-byte header, must still fit the
        // 16-bit total length. (A fragment reaching past it is the "ping of death" of 1996.)
        let end = usize::from(packet.frag_offset())
            .saturating_add(HEADER_LEN)
            .saturating_add(payload_len);
        if end > MAX_PACKET_LEN {
            return Err(Error::BadFragment);
        }
        Ok(Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len,
            hop_limit: packet.hop_limit(),
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
            more_frags: packet.more_frags(),
            frag_offset: packet.frag_offset(),
            dscp: packet.dscp(),
            ecn: packet.ecn(),
        })
    }

    /// Whether this is a piece of a larger datagram.
    pub const fn is_fragment(&self) -> bool {
        self.more_frags || self.frag_offset != 0
    }

    /// The length of the header this emits: always 20, as it writes no options.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// The total length of the datagram this header describes.
    pub const fn total_len(&self) -> usize {
        HEADER_LEN.saturating_add(self.payload_len)
    }

    /// Writes a 20-byte header and its checksum; `packet` must hold at least
    /// [`Repr::buffer_len`] bytes, `payload_len` must be at most 65515 and `frag_offset` a
    /// multiple of 8. The payload is the caller's to write.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        debug_assert!(self.total_len() <= MAX_PACKET_LEN, "IPv4 payload too long");
        packet.set_version_and_header_len(HEADER_LEN as u8);
        packet.set_dscp_ecn(self.dscp, self.ecn);
        packet.set_total_len(self.total_len() as u16);
        packet.set_ident(self.ident);
        packet.set_fragment(self.dont_frag, self.more_frags, self.frag_offset);
        packet.set_hop_limit(self.hop_limit);
        packet.set_next_header(self.next_header);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        packet.fill_checksum();
    }
}

#[cfg(test)]
mod tests;
