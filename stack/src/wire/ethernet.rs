//! Ethernet II frames.
//!
//! [`Packet`] is a view over a frame's bytes; once [`Packet::new_checked`] has accepted a
//! buffer, no accessor can panic. [`Repr`] holds the header's meaningful fields. Frames whose
//! type field is an IEEE 802.3 length (below 0x0600) or an 802.1Q / 802.1ad tag are recognised
//! and refused by [`Repr::parse`] with their own [`Error`] so the caller can count them: we do
//! not switch VLANs. The frame check sequence is never present (links hand us frames without it).

use core::fmt;

/// A 48-bit MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Address(pub [u8; 6]);

impl Address {
    /// ff:ff:ff:ff:ff:ff
    pub const BROADCAST: Address = Address([0xff; 6]);

    /// The address in `bytes`, which must be six bytes long.
    pub fn from_bytes(bytes: &[u8]) -> Option<Address> {
        Some(Address(bytes.try_into().ok()?))
    }

    /// The six bytes.
    pub const fn as_bytes(&self) -> &[u8; 6] {
        &self.0
    }

    pub const fn is_broadcast(&self) -> bool {
        matches!(self.0, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
    }

    /// Group addresses (the I/G bit set), broadcast included.
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    pub const fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }

    /// Locally administered (the U/L bit set).
    pub const fn is_local(&self) -> bool {
        self.0[0] & 0x02 != 0
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// The parse error of [`Address`]'s `FromStr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a MAC address (expected six hex octets separated by ':')")]
pub struct AddressParseError;

impl core::str::FromStr for Address {
    type Err = AddressParseError;

    fn from_str(s: &str) -> Result<Address, AddressParseError> {
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in &mut out {
            let part = parts.next().ok_or(AddressParseError)?;
            if part.is_empty() || part.len() > 2 {
                return Err(AddressParseError);
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| AddressParseError)?;
        }
        match parts.next() {
            Some(_) => Err(AddressParseError),
            None => Ok(Address(out)),
        }
    }
}

/// The EtherType field (IEEE 802 numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EtherType {
    Ipv4,
    Arp,
    Ipv6,
    /// An 802.1Q VLAN tag follows.
    Vlan,
    /// An 802.1ad (QinQ) service tag follows.
    QinQ,
    Unknown(u16),
}

impl From<u16> for EtherType {
    fn from(value: u16) -> Self {
        match value {
            0x0800 => EtherType::Ipv4,
            0x0806 => EtherType::Arp,
            0x86dd => EtherType::Ipv6,
            0x8100 => EtherType::Vlan,
            0x88a8 => EtherType::QinQ,
            other => EtherType::Unknown(other),
        }
    }
}

impl From<EtherType> for u16 {
    fn from(value: EtherType) -> Self {
        match value {
            EtherType::Ipv4 => 0x0800,
            EtherType::Arp => 0x0806,
            EtherType::Ipv6 => 0x86dd,
            EtherType::Vlan => 0x8100,
            EtherType::QinQ => 0x88a8,
            EtherType::Unknown(other) => other,
        }
    }
}

/// Why a buffer is not an Ethernet II frame we handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Error {
    #[error("frame shorter than the 14-byte Ethernet header")]
    Truncated,
    #[error("802.1Q/802.1ad VLAN-tagged frame")]
    VlanTagged,
    #[error("IEEE 802.3 length field instead of an EtherType")]
    NotEthernetII,
}

mod field {
    use core::ops::{Range, RangeFrom};

    pub(super) const DESTINATION: Range<usize> = 0..6;
    pub(super) const SOURCE: Range<usize> = 6..12;
    pub(super) const ETHERTYPE: Range<usize> = 12..14;
    pub(super) const PAYLOAD: RangeFrom<usize> = 14..;
}

/// Length of the Ethernet II header.
pub const HEADER_LEN: usize = field::PAYLOAD.start;

/// A read/write view of an Ethernet II frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` without checking it; accessors may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps `buffer` after checking it holds a whole header.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let packet = Packet::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks the buffer is long enough for every accessor.
    pub fn check_len(&self) -> Result<(), Error> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn destination(&self) -> Address {
        let mut a = [0; 6];
        a.copy_from_slice(&self.buffer.as_ref()[field::DESTINATION]);
        Address(a)
    }

    pub fn source(&self) -> Address {
        let mut a = [0; 6];
        a.copy_from_slice(&self.buffer.as_ref()[field::SOURCE]);
        Address(a)
    }

    pub fn ethertype(&self) -> EtherType {
        let b = &self.buffer.as_ref()[field::ETHERTYPE];
        EtherType::from(u16::from_be_bytes([b[0], b[1]]))
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The bytes after the header, with the lifetime of the underlying buffer.
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_destination(&mut self, value: Address) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&value.0);
    }

    pub fn set_source(&mut self, value: Address) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&value.0);
    }

    pub fn set_ethertype(&mut self, value: EtherType) {
        self.buffer.as_mut()[field::ETHERTYPE].copy_from_slice(&u16::from(value).to_be_bytes());
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

/// The meaningful fields of an Ethernet II header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    pub src_addr: Address,
    pub dst_addr: Address,
    pub ethertype: EtherType,
}

impl Repr {
    /// Reads the header, refusing VLAN-tagged and 802.3 frames.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr, Error> {
        packet.check_len()?;
        let ethertype = packet.ethertype();
        match ethertype {
            EtherType::Vlan | EtherType::QinQ => return Err(Error::VlanTagged),
            EtherType::Unknown(n) if n < 0x0600 => return Err(Error::NotEthernetII),
            _ => {}
        }
        Ok(Repr {
            src_addr: packet.source(),
            dst_addr: packet.destination(),
            ethertype,
        })
    }

    /// The length of the header this emits.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header; `packet` must hold at least [`Repr::buffer_len`] bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_source(self.src_addr);
        packet.set_destination(self.dst_addr);
        packet.set_ethertype(self.ethertype);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::fixtures;
    use proptest::prelude::*;

    #[test]
    fn test_parse() {
        // The kernel's ARP request for the gateway, as captured: broadcast from 5a:94:ef:e4:0c:ee.
        let frame = fixtures::frame(fixtures::ARP, 0);
        let packet = Packet::new_checked(frame).unwrap();
        let repr = Repr::parse(&packet).unwrap();
        assert_eq!(repr.dst_addr, Address::BROADCAST);
        assert_eq!(repr.src_addr, "5a:94:ef:e4:0c:ee".parse().unwrap());
        assert_eq!(repr.ethertype, EtherType::Arp);
        assert_eq!(packet.payload().len(), frame.len() - HEADER_LEN);
    }

    #[test]
    fn test_emit() {
        let frame = fixtures::frame(fixtures::ARP, 0);
        let repr = Repr::parse(&Packet::new_checked(frame).unwrap()).unwrap();
        let mut bytes = frame.to_vec();
        bytes[..HEADER_LEN].fill(0);
        repr.emit(&mut Packet::new_unchecked(&mut bytes));
        assert_eq!(bytes, frame);
    }

    #[test]
    fn vlan_tagged_is_refused() {
        let mut bytes = fixtures::frame(fixtures::ARP, 0).to_vec();
        bytes[12..14].copy_from_slice(&[0x81, 0x00]);
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(Repr::parse(&packet), Err(Error::VlanTagged));
        bytes[12..14].copy_from_slice(&[0x88, 0xa8]);
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(Repr::parse(&packet), Err(Error::VlanTagged));
    }

    #[test]
    fn ieee8023_length_is_refused() {
        let mut bytes = fixtures::frame(fixtures::ARP, 0).to_vec();
        bytes[12..14].copy_from_slice(&[0x00, 0x26]);
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(Repr::parse(&packet), Err(Error::NotEthernetII));
    }

    #[test]
    fn address_display_and_parse() {
        let a: Address = "5a:94:ef:e4:0c:dd".parse().unwrap();
        assert_eq!(a.to_string(), "5a:94:ef:e4:0c:dd");
        assert!(a.is_unicast() && a.is_local());
        assert!("5a:94:ef:e4:0c".parse::<Address>().is_err());
        assert!("5a:94:ef:e4:0c:dd:00".parse::<Address>().is_err());
        assert!("5a:94:ef:e4:0c:zz".parse::<Address>().is_err());
    }

    fn arb_repr() -> impl Strategy<Value = Repr> {
        (any::<[u8; 6]>(), any::<[u8; 6]>(), 0x0600u16..)
            .prop_filter("not a VLAN tag", |(_, _, t)| *t != 0x8100 && *t != 0x88a8)
            .prop_map(|(s, d, t)| Repr {
                src_addr: Address(s),
                dst_addr: Address(d),
                ethertype: EtherType::from(t),
            })
    }

    proptest! {
        #[test]
        fn emit_parse_round_trip(repr in arb_repr()) {
            let mut bytes = vec![0u8; repr.buffer_len()];
            repr.emit(&mut Packet::new_unchecked(&mut bytes));
            prop_assert_eq!(Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()), Ok(repr));
        }

        #[test]
        fn truncation_is_rejected(cut in 0usize..HEADER_LEN) {
            let frame = fixtures::frame(fixtures::ARP, 0);
            prop_assert_eq!(Packet::new_checked(&frame[..cut]).err(), Some(Error::Truncated));
        }

        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(packet) = Packet::new_checked(&bytes[..]) {
                let _ = Repr::parse(&packet);
                let _ = packet.payload();
            }
        }
    }
}
