//! ARP for IPv4 over Ethernet (RFC 826).
//!
//! Only the one combination host-switch speaks is accepted: hardware type Ethernet (1) with
//! 6-byte addresses, protocol type IPv4 (0x0800) with 4-byte addresses, operation request or
//! reply. [`Packet`]'s field ranges are fixed to that layout; once [`Packet::new_checked`] has
//! accepted a buffer (28 bytes or more: Ethernet padding may follow), no accessor can panic.
//! [`Repr::parse`] refuses every other combination with its own [`Error`] variant, so callers
//! can count what they dropped and why. Address plausibility (a multicast sender, a probe's
//! 0.0.0.0 sender per RFC 5227) is the responder's business, not this module's.

use super::ethernet::Address as EthernetAddress;
use core::net::Ipv4Addr;

/// The hardware type for Ethernet (RFC 826; IANA "ARP Parameters", hardware types).
pub const HARDWARE_ETHERNET: u16 = 1;
/// The protocol type for IPv4: its EtherType (RFC 826, "ar$pro").
pub const PROTOCOL_IPV4: u16 = 0x0800;

/// The ARP operation (RFC 826 "ar$op").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// ares_op$REQUEST, 1.
    Request,
    /// ares_op$REPLY, 2.
    Reply,
}

impl TryFrom<u16> for Operation {
    type Error = Error;

    fn try_from(value: u16) -> Result<Operation, Error> {
        match value {
            1 => Ok(Operation::Request),
            2 => Ok(Operation::Reply),
            _ => Err(Error::UnknownOperation),
        }
    }
}

impl From<Operation> for u16 {
    fn from(value: Operation) -> Self {
        match value {
            Operation::Request => 1,
            Operation::Reply => 2,
        }
    }
}

/// Why a buffer is not an Ethernet/IPv4 ARP request or reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Error {
    #[error("ARP packet shorter than 28 bytes")]
    Truncated,
    #[error("ARP hardware type is not Ethernet")]
    BadHardwareType,
    #[error("ARP protocol type is not IPv4")]
    BadProtocolType,
    #[error("ARP hardware address length is not 6")]
    BadHardwareLen,
    #[error("ARP protocol address length is not 4")]
    BadProtocolLen,
    #[error("ARP operation is neither request nor reply")]
    UnknownOperation,
}

mod field {
    use core::ops::Range;

    pub(super) const HTYPE: Range<usize> = 0..2;
    pub(super) const PTYPE: Range<usize> = 2..4;
    pub(super) const HLEN: usize = 4;
    pub(super) const PLEN: usize = 5;
    pub(super) const OPER: Range<usize> = 6..8;
    pub(super) const SHA: Range<usize> = 8..14;
    pub(super) const SPA: Range<usize> = 14..18;
    pub(super) const THA: Range<usize> = 18..24;
    pub(super) const TPA: Range<usize> = 24..28;
}

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = field::TPA.end;

/// A read/write view of an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` without checking it; accessors may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps `buffer` after checking it holds a whole Ethernet/IPv4 ARP packet.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let packet = Packet::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks the buffer is long enough for every accessor. Bytes past [`PACKET_LEN`] (the
    /// padding of a minimum-size Ethernet frame) are ignored.
    pub fn check_len(&self) -> Result<(), Error> {
        if self.buffer.as_ref().len() < PACKET_LEN {
            return Err(Error::Truncated);
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

    fn read_ipv4(&self, range: core::ops::Range<usize>) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[range];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    fn read_mac(&self, range: core::ops::Range<usize>) -> EthernetAddress {
        let mut a = [0; 6];
        a.copy_from_slice(&self.buffer.as_ref()[range]);
        EthernetAddress(a)
    }

    /// The hardware type, as a number ([`HARDWARE_ETHERNET`] for one we accept).
    pub fn hardware_type(&self) -> u16 {
        self.read_u16(field::HTYPE)
    }

    /// The protocol type, as a number ([`PROTOCOL_IPV4`] for one we accept).
    pub fn protocol_type(&self) -> u16 {
        self.read_u16(field::PTYPE)
    }

    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    /// The operation, as a number; see [`Operation`] for the two we accept.
    pub fn operation(&self) -> u16 {
        self.read_u16(field::OPER)
    }

    pub fn source_hardware_addr(&self) -> EthernetAddress {
        self.read_mac(field::SHA)
    }

    pub fn source_protocol_addr(&self) -> Ipv4Addr {
        self.read_ipv4(field::SPA)
    }

    pub fn target_hardware_addr(&self) -> EthernetAddress {
        self.read_mac(field::THA)
    }

    pub fn target_protocol_addr(&self) -> Ipv4Addr {
        self.read_ipv4(field::TPA)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_hardware_type(&mut self, value: u16) {
        self.buffer.as_mut()[field::HTYPE].copy_from_slice(&value.to_be_bytes());
    }

    pub fn set_protocol_type(&mut self, value: u16) {
        self.buffer.as_mut()[field::PTYPE].copy_from_slice(&value.to_be_bytes());
    }

    pub fn set_hardware_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::HLEN] = value;
    }

    pub fn set_protocol_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::PLEN] = value;
    }

    pub fn set_operation(&mut self, value: u16) {
        self.buffer.as_mut()[field::OPER].copy_from_slice(&value.to_be_bytes());
    }

    pub fn set_source_hardware_addr(&mut self, value: EthernetAddress) {
        self.buffer.as_mut()[field::SHA].copy_from_slice(&value.0);
    }

    pub fn set_source_protocol_addr(&mut self, value: Ipv4Addr) {
        self.buffer.as_mut()[field::SPA].copy_from_slice(&value.octets());
    }

    pub fn set_target_hardware_addr(&mut self, value: EthernetAddress) {
        self.buffer.as_mut()[field::THA].copy_from_slice(&value.0);
    }

    pub fn set_target_protocol_addr(&mut self, value: Ipv4Addr) {
        self.buffer.as_mut()[field::TPA].copy_from_slice(&value.octets());
    }
}

/// An Ethernet/IPv4 ARP request or reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Repr {
    pub operation: Operation,
    pub source_hardware_addr: EthernetAddress,
    pub source_protocol_addr: Ipv4Addr,
    pub target_hardware_addr: EthernetAddress,
    pub target_protocol_addr: Ipv4Addr,
}

impl Repr {
    /// Reads the packet, refusing anything but an Ethernet/IPv4 request or reply. The fields
    /// are checked in wire order, so the error names the first one that is wrong.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr, Error> {
        packet.check_len()?;
        if packet.hardware_type() != HARDWARE_ETHERNET {
            return Err(Error::BadHardwareType);
        }
        if packet.protocol_type() != PROTOCOL_IPV4 {
            return Err(Error::BadProtocolType);
        }
        if packet.hardware_len() != 6 {
            return Err(Error::BadHardwareLen);
        }
        if packet.protocol_len() != 4 {
            return Err(Error::BadProtocolLen);
        }
        Ok(Repr {
            operation: Operation::try_from(packet.operation())?,
            source_hardware_addr: packet.source_hardware_addr(),
            source_protocol_addr: packet.source_protocol_addr(),
            target_hardware_addr: packet.target_hardware_addr(),
            target_protocol_addr: packet.target_protocol_addr(),
        })
    }

    /// The length of the packet this emits.
    pub const fn buffer_len(&self) -> usize {
        PACKET_LEN
    }

    /// Writes the packet; `packet` must hold at least [`Repr::buffer_len`] bytes. Bytes past
    /// that are left alone.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_hardware_type(HARDWARE_ETHERNET);
        packet.set_protocol_type(PROTOCOL_IPV4);
        packet.set_hardware_len(6);
        packet.set_protocol_len(4);
        packet.set_operation(self.operation.into());
        packet.set_source_hardware_addr(self.source_hardware_addr);
        packet.set_source_protocol_addr(self.source_protocol_addr);
        packet.set_target_hardware_addr(self.target_hardware_addr);
        packet.set_target_protocol_addr(self.target_protocol_addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{ethernet, fixtures};
    use proptest::prelude::*;

    const GUEST_MAC: EthernetAddress = EthernetAddress([0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xee]);
    const GATEWAY_MAC: EthernetAddress = EthernetAddress([0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xdd]);
    const GUEST_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 127, 2);
    const GATEWAY_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 127, 1);

    /// The ARP payload of frame `index` of the captured exchange.
    fn arp_bytes(index: usize) -> &'static [u8] {
        ethernet::Packet::new_checked(fixtures::frame(fixtures::ARP, index))
            .unwrap()
            .payload()
    }

    fn parse(bytes: &[u8]) -> Result<Repr, Error> {
        Repr::parse(&Packet::new_checked(bytes)?)
    }

    #[test]
    fn test_parse() {
        // Frame 0: the guest asks who has the gateway's address; frame 1: the gateway answers.
        let request = parse(arp_bytes(0)).unwrap();
        assert_eq!(request.operation, Operation::Request);
        assert_eq!(request.source_hardware_addr, GUEST_MAC);
        assert_eq!(request.source_protocol_addr, GUEST_IP);
        assert_eq!(request.target_protocol_addr, GATEWAY_IP);
        let reply = parse(arp_bytes(1)).unwrap();
        assert_eq!(
            reply,
            Repr {
                operation: Operation::Reply,
                source_hardware_addr: GATEWAY_MAC,
                source_protocol_addr: GATEWAY_IP,
                target_hardware_addr: GUEST_MAC,
                target_protocol_addr: GUEST_IP,
            }
        );
    }

    #[test]
    fn test_emit() {
        for index in 0..2 {
            let bytes = arp_bytes(index);
            let repr = parse(bytes).unwrap();
            let mut out = vec![0u8; repr.buffer_len()];
            repr.emit(&mut Packet::new_unchecked(&mut out));
            assert_eq!(out, bytes, "frame {index}");
        }
    }

    #[test]
    fn padding_is_ignored() {
        let mut bytes = arp_bytes(1).to_vec();
        bytes.resize(46, 0xaa);
        assert_eq!(parse(&bytes), parse(arp_bytes(1)));
    }

    /// The captured reply with one byte replaced.
    fn mutated(at: usize, value: u8) -> Vec<u8> {
        let mut bytes = arp_bytes(1).to_vec();
        bytes[at] = value;
        bytes
    }

    #[test]
    fn each_field_is_checked() {
        assert_eq!(parse(&mutated(1, 6)), Err(Error::BadHardwareType)); // IEEE 802
        assert_eq!(parse(&mutated(2, 0x86)), Err(Error::BadProtocolType));
        assert_eq!(parse(&mutated(4, 8)), Err(Error::BadHardwareLen));
        assert_eq!(parse(&mutated(5, 16)), Err(Error::BadProtocolLen));
        for op in [0u8, 3, 4, 8, 9] {
            // RARP (3, 4) and InARP (8, 9) are not ARP requests or replies.
            assert_eq!(parse(&mutated(7, op)), Err(Error::UnknownOperation));
        }
    }

    #[test]
    fn every_truncation_is_rejected() {
        for index in 0..2 {
            let bytes = arp_bytes(index);
            for cut in 0..bytes.len() {
                assert_eq!(parse(&bytes[..cut]), Err(Error::Truncated), "cut at {cut}");
            }
        }
    }

    fn arb_repr() -> impl Strategy<Value = Repr> {
        (
            prop_oneof![Just(Operation::Request), Just(Operation::Reply)],
            any::<[u8; 6]>(),
            any::<[u8; 4]>(),
            any::<[u8; 6]>(),
            any::<[u8; 4]>(),
        )
            .prop_map(|(operation, sha, spa, tha, tpa)| Repr {
                operation,
                source_hardware_addr: EthernetAddress(sha),
                source_protocol_addr: Ipv4Addr::from(spa),
                target_hardware_addr: EthernetAddress(tha),
                target_protocol_addr: Ipv4Addr::from(tpa),
            })
    }

    proptest! {
        #[test]
        fn emit_parse_round_trip(repr in arb_repr()) {
            let mut bytes = vec![0u8; repr.buffer_len()];
            repr.emit(&mut Packet::new_unchecked(&mut bytes));
            prop_assert_eq!(parse(&bytes), Ok(repr));
        }

        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(packet) = Packet::new_checked(&bytes[..]) {
                let _ = Repr::parse(&packet);
            }
        }

        #[test]
        fn valid_header_any_addresses_parse(tail in proptest::collection::vec(any::<u8>(), 22..64),
                                            op in 1u16..=2) {
            let mut bytes = vec![0, 1, 8, 0, 6, 4];
            bytes.extend_from_slice(&tail);
            bytes[6..8].copy_from_slice(&op.to_be_bytes());
            prop_assert!(parse(&bytes).is_ok());
        }
    }
}
