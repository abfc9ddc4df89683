//! UDP datagrams (RFC 768) over IPv4 and IPv6.
//!
//! [`Packet`] is a view over a datagram's bytes, the IP payload; once [`Packet::new_checked`]
//! has accepted a buffer, no accessor can panic. The length field is authoritative: it must
//! be at least the 8-byte header and at most the buffer, and the payload stops where it says,
//! so bytes after it (link padding) are ignored.
//!
//! Checksums need the IP addresses, so [`Repr::parse`] and [`Repr::emit`] take an
//! [`Addresses`]. A zero checksum field means "not computed": accepted on IPv4 (RFC 768),
//! refused on IPv6 (RFC 8200 §8.1). A computed checksum of zero is sent as 0xffff (RFC 768),
//! its ones' complement twin, so it is never mistaken for "none".

use super::checksum::{ChecksumCapabilities, Sum};
use super::ip::{Addresses, Protocol};

/// Why a buffer is not a UDP datagram we accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Error {
    #[error("buffer shorter than the 8-byte UDP header")]
    Truncated,
    #[error("UDP length field below 8 or past the end of the buffer")]
    BadLength,
    #[error("UDP checksum mismatch")]
    BadChecksum,
    #[error("UDP over IPv6 without a checksum")]
    MissingChecksum,
}

mod field {
    use core::ops::Range;

    pub(super) const SRC_PORT: Range<usize> = 0..2;
    pub(super) const DST_PORT: Range<usize> = 2..4;
    pub(super) const LENGTH: Range<usize> = 4..6;
    pub(super) const CHECKSUM: Range<usize> = 6..8;
}

/// Length of the UDP header.
pub const HEADER_LEN: usize = field::CHECKSUM.end;

/// The largest payload the 16-bit length field can describe.
pub const MAX_PAYLOAD_LEN: usize = u16::MAX as usize - HEADER_LEN;

/// A read/write view of a UDP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` without checking it; accessors may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps `buffer` after checking its header and length field.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let packet = Packet::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks the buffer holds the header and the length field lies within `HEADER_LEN..=len`.
    pub fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let field = usize::from(self.length());
        if field < HEADER_LEN || field > len {
            return Err(Error::BadLength);
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

    pub fn src_port(&self) -> u16 {
        self.read_u16(field::SRC_PORT)
    }

    pub fn dst_port(&self) -> u16 {
        self.read_u16(field::DST_PORT)
    }

    /// The length field: header plus payload.
    pub fn length(&self) -> u16 {
        self.read_u16(field::LENGTH)
    }

    /// The checksum field as sent; 0 means none.
    pub fn checksum(&self) -> u16 {
        self.read_u16(field::CHECKSUM)
    }

    /// The bytes the length field covers, or the whole buffer if it claims more.
    fn datagram(&self) -> &[u8] {
        let buffer = self.buffer.as_ref();
        buffer.get(..usize::from(self.length())).unwrap_or(buffer)
    }

    /// Whether the checksum field is right for `addrs`, a zero field counting as right on
    /// IPv4 only (RFC 768: "all zero ... means that the transmitter generated no checksum";
    /// RFC 8200 §8.1: on IPv6 it is mandatory).
    pub fn verify_checksum(&self, addrs: &Addresses) -> bool {
        if self.checksum() == 0 {
            return matches!(addrs, Addresses::V4 { .. });
        }
        let datagram = self.datagram();
        let sum = addrs.pseudo_header(Protocol::Udp, datagram.len()) + Sum::of(datagram);
        sum.value() == 0xffff
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The payload as delimited by the length field, with the underlying buffer's lifetime.
    pub fn payload(&self) -> &'a [u8] {
        let buffer = self.buffer.as_ref();
        let end = usize::from(self.length()).min(buffer.len());
        buffer.get(HEADER_LEN..end).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn write_u16(&mut self, range: core::ops::Range<usize>, value: u16) {
        self.buffer.as_mut()[range].copy_from_slice(&value.to_be_bytes());
    }

    pub fn set_src_port(&mut self, value: u16) {
        self.write_u16(field::SRC_PORT, value);
    }

    pub fn set_dst_port(&mut self, value: u16) {
        self.write_u16(field::DST_PORT, value);
    }

    pub fn set_length(&mut self, value: u16) {
        self.write_u16(field::LENGTH, value);
    }

    pub fn set_checksum(&mut self, value: u16) {
        self.write_u16(field::CHECKSUM, value);
    }

    /// The payload as delimited by the length field (empty if the buffer is shorter).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.length());
        let buffer = self.buffer.as_mut();
        let end = end.min(buffer.len());
        buffer.get_mut(HEADER_LEN..end).unwrap_or(&mut [])
    }

    /// Computes the checksum over the pseudo-header for `addrs` and the bytes the length field
    /// covers, and writes it, a computed 0 as 0xffff (RFC 768).
    pub fn fill_checksum(&mut self, addrs: &Addresses) {
        self.set_checksum(0);
        let datagram = self.datagram();
        let sum = addrs.pseudo_header(Protocol::Udp, datagram.len()) + Sum::of(datagram);
        let checksum = match sum.checksum() {
            0 => 0xffff,
            c => c,
        };
        self.set_checksum(checksum);
    }
}

/// The meaningful fields of a UDP header. The payload stays in the packet buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Repr {
    pub src_port: u16,
    pub dst_port: u16,
    /// Payload bytes, at most [`MAX_PAYLOAD_LEN`].
    pub payload_len: usize,
}

impl Repr {
    /// Reads the header after checking the length field and the checksum against `addrs`.
    /// Port 0 is not refused here: whether it is acceptable is up to the demultiplexer.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &Packet<&T>,
        addrs: &Addresses,
    ) -> Result<Repr, Error> {
        Repr::parse_with(packet, addrs, &ChecksumCapabilities::default())
    }

    /// [`Repr::parse`], checking the checksum only if `caps.udp` says received checksums are
    /// ours (the link did not vouch for this datagram).
    pub fn parse_with<T: AsRef<[u8]> + ?Sized>(
        packet: &Packet<&T>,
        addrs: &Addresses,
        caps: &ChecksumCapabilities,
    ) -> Result<Repr, Error> {
        packet.check_len()?;
        if !caps.udp.rx() {
            return Ok(Repr::of(packet));
        }
        if packet.checksum() == 0 && matches!(addrs, Addresses::V6 { .. }) {
            return Err(Error::MissingChecksum);
        }
        if !packet.verify_checksum(addrs) {
            return Err(Error::BadChecksum);
        }
        Ok(Repr::of(packet))
    }

    /// The fields of a packet whose lengths were checked.
    fn of<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Repr {
        Repr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            payload_len: usize::from(packet.length()).saturating_sub(HEADER_LEN),
        }
    }

    /// The length of the header this emits; the payload goes right after it.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header and fills the checksum for `addrs`.
    ///
    /// Contract: the caller has already placed the `payload_len` payload bytes at
    /// `buffer_len()..` in `packet`'s buffer, which must hold at least
    /// `buffer_len() + payload_len` bytes, and `payload_len` is at most [`MAX_PAYLOAD_LEN`].
    /// The checksum covers exactly the header and those bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>, addrs: &Addresses) {
        debug_assert!(self.payload_len <= MAX_PAYLOAD_LEN);
        let len = u16::try_from(HEADER_LEN.saturating_add(self.payload_len)).unwrap_or(u16::MAX);
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_length(len);
        packet.fill_checksum(addrs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::fixtures;
    use core::net::{Ipv4Addr, Ipv6Addr};
    use proptest::prelude::*;

    const UDP4: &[u8] = include_bytes!("fixtures/udp4.pcap");
    const UDP6: &[u8] = include_bytes!("fixtures/udp6.pcap");

    fn captured(pcap: &'static [u8]) -> Vec<(Addresses, &'static [u8])> {
        fixtures::frames(pcap)
            .into_iter()
            .map(fixtures::transport)
            .collect()
    }

    #[test]
    fn test_parse() {
        for pcap in [UDP4, UDP6] {
            let datagrams = captured(pcap);
            // The guest's "hello" to the gateway's echo server, and the echo.
            let (addrs, bytes) = datagrams[0];
            let packet = Packet::new_checked(bytes).unwrap();
            let repr = Repr::parse(&packet, &addrs).unwrap();
            assert_eq!(
                repr,
                Repr {
                    src_port: 40000,
                    dst_port: 9999,
                    payload_len: 5
                }
            );
            assert_eq!(packet.payload(), b"hello");
            let (addrs, bytes) = datagrams[1];
            let repr = Repr::parse(&Packet::new_checked(bytes).unwrap(), &addrs).unwrap();
            assert_eq!((repr.src_port, repr.dst_port), (9999, 40000));
            // Every datagram of the capture parses.
            for (addrs, bytes) in datagrams {
                Repr::parse(&Packet::new_checked(bytes).unwrap(), &addrs).unwrap();
            }
        }
    }

    #[test]
    fn test_emit() {
        for pcap in [UDP4, UDP6] {
            for (addrs, bytes) in captured(pcap) {
                let packet = Packet::new_checked(bytes).unwrap();
                if packet.checksum() == 0 {
                    continue; // sent without a checksum; emit always computes one
                }
                let repr = Repr::parse(&packet, &addrs).unwrap();
                let mut out = bytes.to_vec();
                out[..HEADER_LEN].fill(0);
                repr.emit(&mut Packet::new_unchecked(&mut out), &addrs);
                assert_eq!(out, bytes);
            }
        }
    }

    #[test]
    fn no_checksum_is_accepted_on_ipv4() {
        // udp4.pcap frame 2 was sent with SO_NO_CHECK.
        let (addrs, bytes) = captured(UDP4)[2];
        let packet = Packet::new_checked(bytes).unwrap();
        assert_eq!(packet.checksum(), 0);
        assert!(packet.verify_checksum(&addrs));
        assert_eq!(Repr::parse(&packet, &addrs).unwrap().payload_len, 5);
    }

    #[test]
    fn no_checksum_is_refused_on_ipv6() {
        let (addrs, bytes) = captured(UDP6)[0];
        let mut bytes = bytes.to_vec();
        bytes[field::CHECKSUM].fill(0);
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert!(!packet.verify_checksum(&addrs));
        assert_eq!(Repr::parse(&packet, &addrs), Err(Error::MissingChecksum));
    }

    #[test]
    fn computed_zero_is_sent_as_ffff() {
        // The last two datagrams of each capture carry a payload chosen so that the
        // checksum computes to 0; the kernel sent 0xffff, and so must we.
        for pcap in [UDP4, UDP6] {
            let datagrams = captured(pcap);
            for &(addrs, bytes) in &datagrams[datagrams.len() - 2..] {
                let packet = Packet::new_checked(bytes).unwrap();
                assert_eq!(packet.checksum(), 0xffff);
                let mut out = bytes.to_vec();
                out[field::CHECKSUM].fill(0);
                let mut out = Packet::new_unchecked(&mut out[..]);
                out.fill_checksum(&addrs);
                assert_eq!(out.checksum(), 0xffff);
                assert!(out.verify_checksum(&addrs));
            }
        }
    }

    #[test]
    fn bad_checksum_is_refused() {
        for pcap in [UDP4, UDP6] {
            let (addrs, bytes) = captured(pcap)[0];
            let mut bytes = bytes.to_vec();
            bytes[HEADER_LEN] ^= 0x01;
            let packet = Packet::new_checked(&bytes[..]).unwrap();
            assert_eq!(Repr::parse(&packet, &addrs), Err(Error::BadChecksum));
            // The addresses are covered: the same bytes to another address are refused
            // (swapping them would not do: the sum is symmetric).
            let (addrs, bytes) = captured(pcap)[0];
            let elsewhere = match addrs {
                Addresses::V4 { src, .. } => Addresses::V4 {
                    src,
                    dst: Ipv4Addr::new(192, 168, 127, 3),
                },
                Addresses::V6 { src, .. } => Addresses::V6 {
                    src,
                    dst: Ipv6Addr::new(0xfd00, 0x127, 0, 0, 0, 0, 0, 3),
                },
            };
            let packet = Packet::new_checked(bytes).unwrap();
            assert_eq!(Repr::parse(&packet, &elsewhere), Err(Error::BadChecksum));
        }
    }

    #[test]
    fn payload_stops_at_length_field() {
        // Link padding after the datagram is not payload and not checksummed.
        let (addrs, bytes) = captured(UDP4)[0];
        let mut padded = bytes.to_vec();
        padded.extend_from_slice(&[0xa5; 13]);
        let packet = Packet::new_checked(&padded[..]).unwrap();
        assert_eq!(packet.payload(), b"hello");
        assert_eq!(Repr::parse(&packet, &addrs).unwrap().payload_len, 5);
    }

    #[test]
    fn length_field_is_checked() {
        let (_, bytes) = captured(UDP4)[0];
        let mut bytes = bytes.to_vec();
        for bad in [0u16, 7, bytes.len() as u16 + 1, u16::MAX] {
            bytes[field::LENGTH].copy_from_slice(&bad.to_be_bytes());
            assert_eq!(Packet::new_checked(&bytes[..]), Err(Error::BadLength));
        }
        bytes[field::LENGTH].copy_from_slice(&8u16.to_be_bytes());
        assert_eq!(Packet::new_checked(&bytes[..]).unwrap().payload(), b"");
    }

    #[test]
    fn every_truncation_is_rejected() {
        for (addrs, bytes) in [captured(UDP4), captured(UDP6)].concat() {
            for cut in 0..bytes.len() {
                match Packet::new_checked(&bytes[..cut]) {
                    Err(Error::Truncated) => assert!(cut < HEADER_LEN),
                    Err(Error::BadLength) => assert!(cut >= HEADER_LEN),
                    other => panic!("{cut} of {} bytes: {other:?}", bytes.len()),
                }
            }
            // The whole datagram is accepted.
            assert!(Repr::parse(&Packet::new_checked(bytes).unwrap(), &addrs).is_ok());
        }
    }

    fn arb_addrs() -> impl Strategy<Value = Addresses> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<[u8; 4]>()).prop_map(|(s, d)| Addresses::V4 {
                src: Ipv4Addr::from(s),
                dst: Ipv4Addr::from(d),
            }),
            (any::<[u8; 16]>(), any::<[u8; 16]>()).prop_map(|(s, d)| Addresses::V6 {
                src: Ipv6Addr::from(s),
                dst: Ipv6Addr::from(d),
            }),
        ]
    }

    proptest! {
        #[test]
        fn emit_parse_round_trip(src_port in any::<u16>(), dst_port in any::<u16>(),
                                 payload in proptest::collection::vec(any::<u8>(), 0..100),
                                 addrs in arb_addrs()) {
            let repr = Repr { src_port, dst_port, payload_len: payload.len() };
            let mut bytes = vec![0u8; repr.buffer_len() + payload.len()];
            bytes[repr.buffer_len()..].copy_from_slice(&payload);
            repr.emit(&mut Packet::new_unchecked(&mut bytes), &addrs);
            let packet = Packet::new_checked(&bytes[..]).unwrap();
            prop_assert_ne!(packet.checksum(), 0);
            prop_assert_eq!(Repr::parse(&packet, &addrs), Ok(repr));
            prop_assert_eq!(packet.payload(), &payload[..]);
        }

        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64),
                                 addrs in arb_addrs()) {
            let packet = Packet::new_unchecked(&bytes[..]);
            let _ = packet.check_len();
            if let Ok(packet) = Packet::new_checked(&bytes[..]) {
                let _ = Repr::parse(&packet, &addrs);
                let _ = packet.payload();
                let _ = packet.verify_checksum(&addrs);
            }
        }
    }
}
