//! IPv6 (RFC 8200): the fixed header here; extension headers and the walk over them in the
//! `ext` submodule, whose items are re-exported here.
//!
//! [`Packet`] is a view over a packet's bytes. [`Packet::new_checked`] checks the version and
//! that the buffer holds the 40-byte header and the payload length (RFC 8200 §3); a longer
//! buffer is accepted (a short packet in a minimum-size Ethernet frame arrives padded) and
//! [`Packet::payload`] stops at the payload length. After that no accessor can panic.
//!
//! The payload length counts extension headers too. To find the upper-layer header, walk the
//! chain with [`Packet::header_chain`] (or [`Chain::walk`] on any payload): the walk is bounded
//! in the number of headers and their total length, checks every length, and reports where
//! the upper layer starts and the fragment header if there is one.
//!
//! Jumbograms (RFC 2675, payload length 0 with a hop-by-hop Jumbo Payload option) are not
//! supported: such a packet has an empty payload here and its chain walk fails.
//!
//! A packet quoted inside an ICMPv6 error is cut short by design (RFC 4443 §2.4(c): as much as
//! fits in the minimum MTU): read it with [`Packet::new_quoted`], which checks the header but
//! lets the payload end early.

use super::ip::Protocol;
use core::net::Ipv6Addr;

mod ext;

pub use ext::{
    Chain, ChainError, ExtHeader, ExtHeaderRepr, ExtSpan, FRAGMENT_HEADER_LEN, Fragment,
    FragmentHeader, FragmentRepr, MAX_CHAIN_LEN, MAX_EXT_HEADERS, OptionAction, OptionTlv, Options,
    option, routing_type,
};

/// Why a buffer is not an IPv6 packet we accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Error {
    #[error("buffer shorter than the 40-byte IPv6 header or than its payload length says")]
    Truncated,
    #[error("IP version is not 6")]
    BadVersion,
}

mod field {
    use core::ops::Range;

    /// Version (4 bits), traffic class (8 bits), flow label (20 bits).
    pub(super) const VER_TC_FLOW: Range<usize> = 0..4;
    pub(super) const PAYLOAD_LEN: Range<usize> = 4..6;
    pub(super) const NEXT_HEADER: usize = 6;
    pub(super) const HOP_LIMIT: usize = 7;
    pub(super) const SRC_ADDR: Range<usize> = 8..24;
    pub(super) const DST_ADDR: Range<usize> = 24..40;
}

/// Length of the fixed header (RFC 8200 §3).
pub const HEADER_LEN: usize = field::DST_ADDR.end;

/// The minimum link MTU every IPv6 link must support (RFC 8200 §5).
pub const MIN_MTU: usize = 1280;

/// The largest payload the 16-bit payload length field can describe.
pub const MAX_PAYLOAD_LEN: usize = u16::MAX as usize;

/// The flow label's 20 bits (RFC 8200 §6, RFC 6437).
const FLOW_LABEL_MASK: u32 = 0x000f_ffff;

/// A read/write view of an IPv6 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` without checking it; accessors may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps `buffer` after checking the version and that it holds the header and payload.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let packet = Packet::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Wraps the packet quoted by an ICMPv6 error: the header must be whole and of version 6,
    /// the payload may end before the payload length says, and [`Packet::payload`] then
    /// returns what is there.
    pub fn new_quoted(buffer: T) -> Result<Packet<T>, Error> {
        let packet = Packet::new_unchecked(buffer);
        packet.check_header()?;
        Ok(packet)
    }

    /// Checks the version and that the buffer reaches the end of the payload, so every
    /// accessor is safe. The version is checked here, as in IPv4, so that a packet of another
    /// version is never read with IPv6's layout.
    pub fn check_len(&self) -> Result<(), Error> {
        self.check_header()?;
        if self.buffer.as_ref().len() < HEADER_LEN + usize::from(self.payload_len()) {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// [`Packet::check_len`] without requiring the buffer to reach the payload length.
    fn check_header(&self) -> Result<(), Error> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 6 {
            return Err(Error::BadVersion);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn ver_tc_flow(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::VER_TC_FLOW];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    fn read_addr(&self, range: core::ops::Range<usize>) -> Ipv6Addr {
        let mut a = [0; 16];
        a.copy_from_slice(&self.buffer.as_ref()[range]);
        Ipv6Addr::from(a)
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }

    /// The traffic class (RFC 8200 §7): DSCP in the top six bits, ECN in the low two.
    pub fn traffic_class(&self) -> u8 {
        (self.ver_tc_flow() >> 20) as u8
    }

    /// The Differentiated Services codepoint (RFC 2474 §3).
    pub fn dscp(&self) -> u8 {
        self.traffic_class() >> 2
    }

    /// The ECN codepoint (RFC 3168 §5).
    pub fn ecn(&self) -> u8 {
        self.traffic_class() & 0x03
    }

    /// The 20-bit flow label (RFC 6437).
    pub fn flow_label(&self) -> u32 {
        self.ver_tc_flow() & FLOW_LABEL_MASK
    }

    /// The bytes after the fixed header, extension headers included.
    pub fn payload_len(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::PAYLOAD_LEN];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// The header right after the fixed header: an extension header or the upper layer.
    pub fn next_header(&self) -> Protocol {
        Protocol::from(self.buffer.as_ref()[field::NEXT_HEADER])
    }

    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    pub fn src_addr(&self) -> Ipv6Addr {
        self.read_addr(field::SRC_ADDR)
    }

    pub fn dst_addr(&self) -> Ipv6Addr {
        self.read_addr(field::DST_ADDR)
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The bytes after the fixed header up to the payload length: Ethernet padding past it is
    /// left out. In a packet from [`Packet::new_quoted`] this ends early if the quote does.
    pub fn payload(&self) -> &'a [u8] {
        let buffer = self.buffer.as_ref();
        let end = (HEADER_LEN + usize::from(self.payload_len())).min(buffer.len());
        buffer.get(HEADER_LEN..end).unwrap_or(&[])
    }

    /// Walks the extension headers of the payload (see [`Chain::walk`]).
    pub fn header_chain(&self) -> Result<Chain, ChainError> {
        Chain::walk(self.next_header(), self.payload())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_ver_tc_flow(&mut self, value: u32) {
        self.buffer.as_mut()[field::VER_TC_FLOW].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the version to 6.
    pub fn set_version(&mut self) {
        let v = self.ver_tc_flow();
        self.set_ver_tc_flow((v & 0x0fff_ffff) | (6 << 28));
    }

    pub fn set_traffic_class(&mut self, value: u8) {
        let v = self.ver_tc_flow();
        self.set_ver_tc_flow((v & 0xf00f_ffff) | (u32::from(value) << 20));
    }

    /// Sets the flow label; bits above the low 20 are ignored.
    pub fn set_flow_label(&mut self, value: u32) {
        let v = self.ver_tc_flow();
        self.set_ver_tc_flow((v & !FLOW_LABEL_MASK) | (value & FLOW_LABEL_MASK));
    }

    pub fn set_payload_len(&mut self, value: u16) {
        self.buffer.as_mut()[field::PAYLOAD_LEN].copy_from_slice(&value.to_be_bytes());
    }

    pub fn set_next_header(&mut self, value: Protocol) {
        self.buffer.as_mut()[field::NEXT_HEADER] = value.into();
    }

    pub fn set_hop_limit(&mut self, value: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = value;
    }

    pub fn set_src_addr(&mut self, value: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&value.octets());
    }

    pub fn set_dst_addr(&mut self, value: Ipv6Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&value.octets());
    }

    /// The payload, up to the payload length or the end of the buffer.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = HEADER_LEN + usize::from(self.payload_len());
        let buffer = self.buffer.as_mut();
        let end = end.min(buffer.len());
        buffer.get_mut(HEADER_LEN..end).unwrap_or(&mut [])
    }
}

/// The meaningful fields of an IPv6 fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    pub src_addr: Ipv6Addr,
    pub dst_addr: Ipv6Addr,
    /// The header after the fixed header: an extension header or the upper layer.
    pub next_header: Protocol,
    /// Bytes after the fixed header, extension headers included; at most 65535.
    pub payload_len: usize,
    pub hop_limit: u8,
    /// The DSCP (RFC 2474 §3), six bits.
    pub dscp: u8,
    /// The ECN codepoint (RFC 3168 §5), two bits.
    pub ecn: u8,
    /// The flow label (RFC 6437), 20 bits.
    pub flow_label: u32,
}

impl Repr {
    /// Reads the fixed header of a packet that [`Packet::check_len`] accepts.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr, Error> {
        packet.check_len()?;
        Ok(Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: usize::from(packet.payload_len()),
            hop_limit: packet.hop_limit(),
            dscp: packet.dscp(),
            ecn: packet.ecn(),
            flow_label: packet.flow_label(),
        })
    }

    /// The length of the header this emits (the fixed header; extension headers and payload
    /// are the caller's).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the fixed header; `packet` must hold at least [`Repr::buffer_len`] bytes,
    /// `payload_len` must be at most 65535, `dscp` six bits, `ecn` two, `flow_label` 20.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        debug_assert!(self.payload_len <= MAX_PAYLOAD_LEN, "IPv6 payload too long");
        packet.set_version();
        packet.set_traffic_class((self.dscp << 2) | (self.ecn & 0x03));
        packet.set_flow_label(self.flow_label);
        packet.set_payload_len(self.payload_len.min(MAX_PAYLOAD_LEN) as u16);
        packet.set_next_header(self.next_header);
        packet.set_hop_limit(self.hop_limit);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
    }
}

#[cfg(test)]
mod tests;
