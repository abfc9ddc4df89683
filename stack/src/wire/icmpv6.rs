//! ICMPv6 (RFC 4443): echo, the four error messages, and Neighbor Discovery dispatched to
//! [`ndp`].
//!
//! [`Packet`] is a view over one ICMPv6 message: the whole IPv6 payload after the extension
//! headers. [`Packet::new_checked`] checks it holds the 8-byte header every message we handle
//! starts with; after that no accessor can panic. [`Repr::parse`] verifies the checksum over
//! the IPv6 pseudo-header (RFC 4443 §2.3, RFC 8200 §8.1), so it takes the packet's
//! [`Addresses`]; [`Repr::emit`] fills the checksum in.
//!
//! Neighbor Discovery messages (types 133–137) are ICMPv6 messages: [`Repr::parse`] hands
//! them to [`ndp::Repr::parse`] and returns [`Repr::Ndp`], and [`Repr::emit`] writes them
//! through [`ndp::Repr::emit`] and then fills the checksum, so there is one entry point for
//! everything that arrives with next header 58. The IPv6 checks Neighbor Discovery makes on
//! top (hop limit 255 and the addresses, RFC 4861 §6.1, §7.1, §8.1) are
//! [`ndp::Repr::validate`]'s, for the caller to apply.
//!
//! An error message carries as much of the invoking packet as fits in the minimum MTU
//! (RFC 4443 §2.4(c)): [`Repr`] borrows it as bytes, to be read with
//! [`ipv6::Packet::new_quoted`](super::ipv6::Packet::new_quoted). Multicast Listener
//! Discovery and informational types we do not know are refused with
//! [`Error::UnsupportedType`] (RFC 4443 §2.4(b): unknown informational messages are discarded).

use super::checksum::Sum;
use super::ip::{Addresses, Protocol};
use super::{ipv6, ndp};

/// Why a buffer is not an ICMPv6 message we accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Error {
    #[error("ICMPv6 message shorter than its 8-byte header")]
    Truncated,
    #[error("ICMPv6 checksum over IPv4 addresses")]
    NotIpv6,
    #[error("ICMPv6 checksum mismatch")]
    BadChecksum,
    #[error("ICMPv6 echo with a code other than 0")]
    BadCode,
    #[error("ICMPv6 message type not handled here")]
    UnsupportedType,
    #[error(transparent)]
    Ndp(#[from] ndp::Error),
}

/// The ICMPv6 message type (IANA "ICMPv6 Parameters").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Message {
    /// RFC 4443 §3.1.
    DstUnreachable,
    /// RFC 4443 §3.2.
    PacketTooBig,
    /// RFC 4443 §3.3.
    TimeExceeded,
    /// RFC 4443 §3.4.
    ParamProblem,
    /// RFC 4443 §4.1.
    EchoRequest,
    /// RFC 4443 §4.2.
    EchoReply,
    /// Multicast listener query (RFC 2710 §3, RFC 3810 §5.1).
    MldQuery,
    /// MLDv1 report (RFC 2710 §3).
    MldReport,
    /// MLDv1 done (RFC 2710 §3).
    MldDone,
    /// RFC 4861 §4.1.
    RouterSolicit,
    /// RFC 4861 §4.2.
    RouterAdvert,
    /// RFC 4861 §4.3.
    NeighborSolicit,
    /// RFC 4861 §4.4.
    NeighborAdvert,
    /// RFC 4861 §4.5.
    Redirect,
    /// MLDv2 report (RFC 3810 §5.2).
    MldV2Report,
    Unknown(u8),
}

impl Message {
    /// Error messages have types 0–127, informational ones 128–255 (RFC 4443 §2.1).
    pub fn is_error(self) -> bool {
        u8::from(self) < 128
    }

    /// Neighbor Discovery messages, parsed by [`ndp`].
    pub fn is_ndp(self) -> bool {
        matches!(
            self,
            Message::RouterSolicit
                | Message::RouterAdvert
                | Message::NeighborSolicit
                | Message::NeighborAdvert
                | Message::Redirect
        )
    }
}

impl From<u8> for Message {
    fn from(value: u8) -> Self {
        match value {
            1 => Message::DstUnreachable,
            2 => Message::PacketTooBig,
            3 => Message::TimeExceeded,
            4 => Message::ParamProblem,
            128 => Message::EchoRequest,
            129 => Message::EchoReply,
            130 => Message::MldQuery,
            131 => Message::MldReport,
            132 => Message::MldDone,
            133 => Message::RouterSolicit,
            134 => Message::RouterAdvert,
            135 => Message::NeighborSolicit,
            136 => Message::NeighborAdvert,
            137 => Message::Redirect,
            143 => Message::MldV2Report,
            other => Message::Unknown(other),
        }
    }
}

impl From<Message> for u8 {
    fn from(value: Message) -> Self {
        match value {
            Message::DstUnreachable => 1,
            Message::PacketTooBig => 2,
            Message::TimeExceeded => 3,
            Message::ParamProblem => 4,
            Message::EchoRequest => 128,
            Message::EchoReply => 129,
            Message::MldQuery => 130,
            Message::MldReport => 131,
            Message::MldDone => 132,
            Message::RouterSolicit => 133,
            Message::RouterAdvert => 134,
            Message::NeighborSolicit => 135,
            Message::NeighborAdvert => 136,
            Message::Redirect => 137,
            Message::MldV2Report => 143,
            Message::Unknown(other) => other,
        }
    }
}

/// Defines a code enum with its numbers both ways and an `Unknown` catch-all.
macro_rules! codes {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $n:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)*
            Unknown(u8),
        }

        impl From<u8> for $name {
            fn from(value: u8) -> Self {
                match value {
                    $($n => $name::$variant,)*
                    other => $name::Unknown(other),
                }
            }
        }

        impl From<$name> for u8 {
            fn from(value: $name) -> Self {
                match value {
                    $($name::$variant => $n,)*
                    $name::Unknown(other) => other,
                }
            }
        }
    };
}

codes! {
    /// Destination unreachable codes (RFC 4443 §3.1).
    DstUnreachable {
        NoRoute = 0,
        AdminProhibited = 1,
        BeyondScope = 2,
        AddrUnreachable = 3,
        PortUnreachable = 4,
        FailedPolicy = 5,
        RejectRoute = 6,
        /// Error in the source routing header (RFC 6550 §20.17).
        SourceRoutingError = 7,
    }
}

codes! {
    /// Time exceeded codes (RFC 4443 §3.3).
    TimeExceeded {
        HopLimitExceeded = 0,
        FragReassemblyExceeded = 1,
    }
}

codes! {
    /// Parameter problem codes (RFC 4443 §3.4).
    ParamProblem {
        ErroneousHeaderField = 0,
        UnrecognizedNextHeader = 1,
        UnrecognizedOption = 2,
        /// The first fragment lacks part of the header chain (RFC 7112 §5).
        IncompleteHeaderChain = 3,
    }
}

mod field {
    use core::ops::{Range, RangeFrom};

    pub(super) const TYPE: usize = 0;
    pub(super) const CODE: usize = 1;
    pub(super) const CHECKSUM: Range<usize> = 2..4;
    /// Echo (RFC 4443 §4.1).
    pub(super) const ECHO_IDENT: Range<usize> = 4..6;
    pub(super) const ECHO_SEQ_NO: Range<usize> = 6..8;
    /// Packet too big's MTU, parameter problem's pointer, unused in the other errors.
    pub(super) const WORD: Range<usize> = 4..8;
    pub(super) const PAYLOAD: RangeFrom<usize> = 8..;
}

/// Length of the header: type, code, checksum and one 32-bit word.
pub const HEADER_LEN: usize = field::PAYLOAD.start;

/// The most bytes of invoking packet an error can carry without exceeding the minimum MTU
/// (RFC 4443 §2.4(c)).
pub const MAX_QUOTE_LEN: usize = ipv6::MIN_MTU - ipv6::HEADER_LEN - HEADER_LEN;

/// A read/write view of an ICMPv6 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` without checking it; accessors may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps `buffer` after checking it holds the 8-byte header.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let packet = Packet::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    pub fn check_len(&self) -> Result<(), Error> {
        if self.buffer.as_ref().len() < HEADER_LEN {
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

    fn word(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::WORD];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    pub fn msg_type(&self) -> Message {
        Message::from(self.buffer.as_ref()[field::TYPE])
    }

    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    pub fn checksum(&self) -> u16 {
        self.read_u16(field::CHECKSUM)
    }

    pub fn echo_ident(&self) -> u16 {
        self.read_u16(field::ECHO_IDENT)
    }

    pub fn echo_seq_no(&self) -> u16 {
        self.read_u16(field::ECHO_SEQ_NO)
    }

    /// Packet too big: the next hop's MTU.
    pub fn mtu(&self) -> u32 {
        self.word()
    }

    /// Parameter problem: the offset in the invoking packet where the problem lies.
    pub fn pointer(&self) -> u32 {
        self.word()
    }

    /// Whether the checksum over the IPv6 pseudo-header and the message is right. Always
    /// false for IPv4 addresses.
    pub fn verify_checksum(&self, addrs: &Addresses) -> bool {
        let Addresses::V6 { .. } = addrs else {
            return false;
        };
        let data = self.buffer.as_ref();
        (addrs.pseudo_header(Protocol::Icmpv6, data.len()) + Sum::of(data)).checksum() == 0
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The whole message, header included.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.buffer.as_ref()
    }

    /// The bytes after the 8-byte header: echo data, or the invoking packet of an error.
    pub fn payload(&self) -> &'a [u8] {
        self.buffer.as_ref().get(field::PAYLOAD).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn write_u16(&mut self, range: core::ops::Range<usize>, value: u16) {
        self.buffer.as_mut()[range].copy_from_slice(&value.to_be_bytes());
    }

    fn set_word(&mut self, value: u32) {
        self.buffer.as_mut()[field::WORD].copy_from_slice(&value.to_be_bytes());
    }

    pub fn set_msg_type(&mut self, value: Message) {
        self.buffer.as_mut()[field::TYPE] = value.into();
    }

    pub fn set_msg_code(&mut self, value: u8) {
        self.buffer.as_mut()[field::CODE] = value;
    }

    pub fn set_checksum(&mut self, value: u16) {
        self.write_u16(field::CHECKSUM, value);
    }

    pub fn set_echo_ident(&mut self, value: u16) {
        self.write_u16(field::ECHO_IDENT, value);
    }

    pub fn set_echo_seq_no(&mut self, value: u16) {
        self.write_u16(field::ECHO_SEQ_NO, value);
    }

    pub fn set_mtu(&mut self, value: u32) {
        self.set_word(value);
    }

    pub fn set_pointer(&mut self, value: u32) {
        self.set_word(value);
    }

    /// Zeroes the unused word of destination unreachable and time exceeded (RFC 4443 §3.1,
    /// §3.3: zero from the sender, ignored by the receiver).
    pub fn clear_unused(&mut self) {
        self.set_word(0);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        self.buffer
            .as_mut()
            .get_mut(field::PAYLOAD)
            .unwrap_or(&mut [])
    }

    /// Computes and writes the checksum over the pseudo-header of `addrs` and the whole
    /// buffer, which must be exactly the message.
    pub fn fill_checksum(&mut self, addrs: &Addresses) {
        self.set_checksum(0);
        let data = self.buffer.as_ref();
        let sum = addrs.pseudo_header(Protocol::Icmpv6, data.len()) + Sum::of(data);
        self.set_checksum(sum.checksum());
    }
}

/// An ICMPv6 message, borrowing its variable-length parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repr<'a> {
    EchoRequest {
        ident: u16,
        seq_no: u16,
        data: &'a [u8],
    },
    EchoReply {
        ident: u16,
        seq_no: u16,
        data: &'a [u8],
    },
    DstUnreachable {
        reason: DstUnreachable,
        /// As much of the invoking packet as fits (at most [`MAX_QUOTE_LEN`] when emitting).
        invoking: &'a [u8],
    },
    PacketTooBig {
        mtu: u32,
        invoking: &'a [u8],
    },
    TimeExceeded {
        reason: TimeExceeded,
        invoking: &'a [u8],
    },
    ParamProblem {
        reason: ParamProblem,
        /// The offset in the invoking packet where the problem lies.
        pointer: u32,
        invoking: &'a [u8],
    },
    /// A Neighbor Discovery message (RFC 4861).
    Ndp(ndp::Repr<'a>),
}

impl<'a> Repr<'a> {
    /// Reads a message after verifying its checksum over the pseudo-header of `addrs`, the
    /// IPv6 source and destination it arrived with.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &Packet<&'a T>,
        addrs: &Addresses,
    ) -> Result<Repr<'a>, Error> {
        packet.check_len()?;
        let Addresses::V6 { .. } = addrs else {
            return Err(Error::NotIpv6);
        };
        // RFC 4443 §2.3: a message with a wrong checksum is discarded.
        if !packet.verify_checksum(addrs) {
            return Err(Error::BadChecksum);
        }
        let code = packet.msg_code();
        let msg_type = packet.msg_type();
        let repr = match msg_type {
            Message::EchoRequest | Message::EchoReply => {
                // RFC 4443 §4.1, §4.2: the code is 0.
                if code != 0 {
                    return Err(Error::BadCode);
                }
                let (ident, seq_no, data) =
                    (packet.echo_ident(), packet.echo_seq_no(), packet.payload());
                if msg_type == Message::EchoRequest {
                    Repr::EchoRequest {
                        ident,
                        seq_no,
                        data,
                    }
                } else {
                    Repr::EchoReply {
                        ident,
                        seq_no,
                        data,
                    }
                }
            }
            Message::DstUnreachable => Repr::DstUnreachable {
                reason: DstUnreachable::from(code),
                invoking: packet.payload(),
            },
            Message::PacketTooBig => Repr::PacketTooBig {
                mtu: packet.mtu(),
                invoking: packet.payload(),
            },
            Message::TimeExceeded => Repr::TimeExceeded {
                reason: TimeExceeded::from(code),
                invoking: packet.payload(),
            },
            Message::ParamProblem => Repr::ParamProblem {
                reason: ParamProblem::from(code),
                pointer: packet.pointer(),
                invoking: packet.payload(),
            },
            m if m.is_ndp() => {
                let message = ndp::Packet::new_checked(packet.as_bytes())?;
                Repr::Ndp(ndp::Repr::parse(&message)?)
            }
            _ => return Err(Error::UnsupportedType),
        };
        Ok(repr)
    }

    /// The length of the message this emits.
    pub fn buffer_len(&self) -> usize {
        match self {
            Repr::EchoRequest { data, .. } | Repr::EchoReply { data, .. } => {
                HEADER_LEN + data.len()
            }
            Repr::DstUnreachable { invoking, .. }
            | Repr::PacketTooBig { invoking, .. }
            | Repr::TimeExceeded { invoking, .. }
            | Repr::ParamProblem { invoking, .. } => HEADER_LEN + invoking.len(),
            Repr::Ndp(ndp) => ndp.buffer_len(),
        }
    }

    /// Writes the message and its checksum over the pseudo-header of `addrs` (the IPv6
    /// source and destination it will carry). `packet` must be exactly
    /// [`Repr::buffer_len`] bytes long, as the checksum covers all of it.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>, addrs: &Addresses) {
        let (msg_type, code, payload) = match *self {
            Repr::EchoRequest {
                ident,
                seq_no,
                data,
            }
            | Repr::EchoReply {
                ident,
                seq_no,
                data,
            } => {
                packet.set_echo_ident(ident);
                packet.set_echo_seq_no(seq_no);
                let msg_type = match self {
                    Repr::EchoRequest { .. } => Message::EchoRequest,
                    _ => Message::EchoReply,
                };
                (msg_type, 0, data)
            }
            Repr::DstUnreachable { reason, invoking } => {
                packet.clear_unused();
                (Message::DstUnreachable, reason.into(), invoking)
            }
            Repr::PacketTooBig { mtu, invoking } => {
                packet.set_mtu(mtu);
                (Message::PacketTooBig, 0, invoking)
            }
            Repr::TimeExceeded { reason, invoking } => {
                packet.clear_unused();
                (Message::TimeExceeded, reason.into(), invoking)
            }
            Repr::ParamProblem {
                reason,
                pointer,
                invoking,
            } => {
                packet.set_pointer(pointer);
                (Message::ParamProblem, reason.into(), invoking)
            }
            Repr::Ndp(ref ndp) => {
                ndp.emit(&mut ndp::Packet::new_unchecked(packet.buffer.as_mut()));
                packet.fill_checksum(addrs);
                return;
            }
        };
        packet.set_msg_type(msg_type);
        packet.set_msg_code(code);
        let out = packet.payload_mut();
        let n = payload.len().min(out.len());
        out[..n].copy_from_slice(&payload[..n]);
        packet.fill_checksum(addrs);
    }
}

#[cfg(test)]
mod tests;
