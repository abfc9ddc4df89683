//! ICMP for IPv4 (RFC 792): echo, destination unreachable and time exceeded.
//!
//! [`Packet`] is a view over one ICMP message, which is the whole payload of its IPv4
//! datagram (ICMP has no length field of its own). [`Packet::new_checked`] only needs the
//! 8-byte header; after it no accessor can panic.
//!
//! [`Repr::parse`] verifies the checksum over the whole message and accepts the messages the
//! stack uses: echo request and reply, destination unreachable and time exceeded. Every other
//! type (redirect, parameter problem, timestamp, router discovery, deprecated and unassigned
//! numbers) is refused with [`Error::UnsupportedType`]; RFC 1122 §3.2.2 has hosts discard
//! unknown types, and a caller can still read the number with [`Packet::msg_type`]. Codes a
//! type does not define are refused with [`Error::BadCode`].
//!
//! Error messages quote the datagram that caused them: its IPv4 header and at least the first
//! 8 bytes of its data (RFC 792), often more (RFC 1812 §4.3.2.3 allows up to 576 bytes in all).
//! [`Repr::parse`] checks the quote holds that much, and [`Repr::quoted_packet`] reads it as
//! an [`ipv4::Packet`] whose payload may be cut short. RFC 4884 extension structures are not
//! recognised: everything after the header is the quote.
//!
//! A [`Repr`] borrows its data from the packet it was parsed from; [`Repr::emit`] copies it.

use super::checksum;
use super::ipv4;

/// The ICMP type (IANA "ICMP Type Numbers").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Message {
    EchoReply,
    DstUnreachable,
    /// Redirect (RFC 792); not accepted.
    Redirect,
    EchoRequest,
    /// Router advertisement (RFC 1256); not accepted.
    RouterAdvert,
    /// Router solicitation (RFC 1256); not accepted.
    RouterSolicit,
    TimeExceeded,
    /// Parameter problem (RFC 792); not accepted.
    ParamProblem,
    /// Timestamp (RFC 792); not accepted.
    Timestamp,
    /// Timestamp reply (RFC 792); not accepted.
    TimestampReply,
    Unknown(u8),
}

impl From<u8> for Message {
    fn from(value: u8) -> Self {
        match value {
            0 => Message::EchoReply,
            3 => Message::DstUnreachable,
            5 => Message::Redirect,
            8 => Message::EchoRequest,
            9 => Message::RouterAdvert,
            10 => Message::RouterSolicit,
            11 => Message::TimeExceeded,
            12 => Message::ParamProblem,
            13 => Message::Timestamp,
            14 => Message::TimestampReply,
            other => Message::Unknown(other),
        }
    }
}

impl From<Message> for u8 {
    fn from(value: Message) -> Self {
        match value {
            Message::EchoReply => 0,
            Message::DstUnreachable => 3,
            Message::Redirect => 5,
            Message::EchoRequest => 8,
            Message::RouterAdvert => 9,
            Message::RouterSolicit => 10,
            Message::TimeExceeded => 11,
            Message::ParamProblem => 12,
            Message::Timestamp => 13,
            Message::TimestampReply => 14,
            Message::Unknown(other) => other,
        }
    }
}

/// The codes of destination unreachable (RFC 792, RFC 1122 §3.2.2.1, RFC 1812 §5.2.7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DstUnreachable {
    /// 0
    NetUnreachable,
    /// 1
    HostUnreachable,
    /// 2
    ProtoUnreachable,
    /// 3
    PortUnreachable,
    /// 4: the datagram had DF set and is larger than the next hop's MTU. The MTU is given in
    /// the header's last 16 bits (RFC 1191 §4); routers older than that send 0 there.
    FragNeeded { next_hop_mtu: u16 },
    /// 5
    SrcRouteFailed,
    /// 6
    DstNetUnknown,
    /// 7
    DstHostUnknown,
    /// 8
    SrcHostIsolated,
    /// 9: communication with the destination network administratively prohibited.
    NetProhibited,
    /// 10: communication with the destination host administratively prohibited.
    HostProhibited,
    /// 11: network unreachable for the type of service.
    NetUnreachableForTos,
    /// 12: host unreachable for the type of service.
    HostUnreachableForTos,
    /// 13: communication administratively prohibited (a filter), RFC 1812 §5.2.7.1.
    AdminProhibited,
    /// 14: host precedence violation, RFC 1812 §5.2.7.1.
    HostPrecedenceViolation,
    /// 15: precedence cutoff in effect, RFC 1812 §5.2.7.1.
    PrecedenceCutoff,
}

impl DstUnreachable {
    /// The reason for `code`, with the MTU from the header for code 4; `None` past 15.
    pub fn from_code(code: u8, next_hop_mtu: u16) -> Option<DstUnreachable> {
        use DstUnreachable::*;
        Some(match code {
            0 => NetUnreachable,
            1 => HostUnreachable,
            2 => ProtoUnreachable,
            3 => PortUnreachable,
            4 => FragNeeded { next_hop_mtu },
            5 => SrcRouteFailed,
            6 => DstNetUnknown,
            7 => DstHostUnknown,
            8 => SrcHostIsolated,
            9 => NetProhibited,
            10 => HostProhibited,
            11 => NetUnreachableForTos,
            12 => HostUnreachableForTos,
            13 => AdminProhibited,
            14 => HostPrecedenceViolation,
            15 => PrecedenceCutoff,
            _ => return None,
        })
    }

    pub const fn code(&self) -> u8 {
        use DstUnreachable::*;
        match self {
            NetUnreachable => 0,
            HostUnreachable => 1,
            ProtoUnreachable => 2,
            PortUnreachable => 3,
            FragNeeded { .. } => 4,
            SrcRouteFailed => 5,
            DstNetUnknown => 6,
            DstHostUnknown => 7,
            SrcHostIsolated => 8,
            NetProhibited => 9,
            HostProhibited => 10,
            NetUnreachableForTos => 11,
            HostUnreachableForTos => 12,
            AdminProhibited => 13,
            HostPrecedenceViolation => 14,
            PrecedenceCutoff => 15,
        }
    }
}

/// The codes of time exceeded (RFC 792).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeExceeded {
    /// 0: the time to live reached zero in transit.
    TtlExpired,
    /// 1: a fragment reassembly timed out.
    FragReassembly,
}

impl TimeExceeded {
    /// The reason for `code`; `None` past 1.
    pub const fn from_code(code: u8) -> Option<TimeExceeded> {
        match code {
            0 => Some(TimeExceeded::TtlExpired),
            1 => Some(TimeExceeded::FragReassembly),
            _ => None,
        }
    }

    pub const fn code(&self) -> u8 {
        match self {
            TimeExceeded::TtlExpired => 0,
            TimeExceeded::FragReassembly => 1,
        }
    }
}

/// Why a buffer is not an ICMPv4 message we accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Error {
    #[error("ICMP message shorter than its 8-byte header")]
    Truncated,
    #[error("ICMP checksum mismatch")]
    BadChecksum,
    #[error("ICMP type not handled")]
    UnsupportedType,
    #[error("ICMP code not defined for its type")]
    BadCode,
    #[error("ICMP error does not quote an IPv4 header and 8 bytes of its data")]
    BadQuote,
}

mod field {
    use core::ops::{Range, RangeFrom};

    pub(super) const TYPE: usize = 0;
    pub(super) const CODE: usize = 1;
    pub(super) const CHECKSUM: Range<usize> = 2..4;
    /// The second word, whose meaning depends on the type ("rest of header").
    pub(super) const REST: Range<usize> = 4..8;
    pub(super) const ECHO_IDENT: Range<usize> = 4..6;
    pub(super) const ECHO_SEQ_NO: Range<usize> = 6..8;
    /// RFC 1191 §4: the low 16 bits of the second word of "fragmentation needed".
    pub(super) const NEXT_HOP_MTU: Range<usize> = 6..8;
    pub(super) const DATA: RangeFrom<usize> = 8..;
}

/// Length of the ICMP header: type, code, checksum and the type-specific second word.
pub const HEADER_LEN: usize = field::DATA.start;

/// A read/write view of an ICMPv4 message.
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

    fn read_u16(&self, range: core::ops::Range<usize>) -> u16 {
        let b = &self.buffer.as_ref()[range];
        u16::from_be_bytes([b[0], b[1]])
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

    /// The identifier of an echo request or reply.
    pub fn echo_ident(&self) -> u16 {
        self.read_u16(field::ECHO_IDENT)
    }

    /// The sequence number of an echo request or reply.
    pub fn echo_seq_no(&self) -> u16 {
        self.read_u16(field::ECHO_SEQ_NO)
    }

    /// The next-hop MTU of "fragmentation needed" (RFC 1191 §4).
    pub fn next_hop_mtu(&self) -> u16 {
        self.read_u16(field::NEXT_HOP_MTU)
    }

    /// Whether the checksum over the whole message, from the type on (RFC 792), is right.
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(self.buffer.as_ref()) == 0
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The bytes after the header: echo data, or the quoted datagram of an error.
    pub fn data(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::DATA]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn write_u16(&mut self, range: core::ops::Range<usize>, value: u16) {
        self.buffer.as_mut()[range].copy_from_slice(&value.to_be_bytes());
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

    /// Zeroes the type-specific second word, as error messages want it ("unused").
    pub fn clear_rest_of_header(&mut self) {
        self.buffer.as_mut()[field::REST].fill(0);
    }

    pub fn set_echo_ident(&mut self, value: u16) {
        self.write_u16(field::ECHO_IDENT, value);
    }

    pub fn set_echo_seq_no(&mut self, value: u16) {
        self.write_u16(field::ECHO_SEQ_NO, value);
    }

    pub fn set_next_hop_mtu(&mut self, value: u16) {
        self.write_u16(field::NEXT_HOP_MTU, value);
    }

    /// Computes the checksum over the whole buffer and stores it.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(sum);
    }

    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA]
    }
}

/// An ICMPv4 message we handle. `data` is the echo data, or the datagram an error quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
        data: &'a [u8],
    },
    TimeExceeded {
        reason: TimeExceeded,
        data: &'a [u8],
    },
}

impl<'a> Repr<'a> {
    /// Reads a message, verifying its checksum, type, code (any for echo messages, whose
    /// code means nothing) and, for errors, the quote.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&'a T>) -> Result<Repr<'a>, Error> {
        packet.check_len()?;
        if !packet.verify_checksum() {
            return Err(Error::BadChecksum);
        }
        let code = packet.msg_code();
        let data = packet.data();
        match packet.msg_type() {
            // RFC 792 gives echo messages code 0; Linux answers whatever the code (nmap's OS
            // detection sends 9), and so does the gateway: the code is not kept.
            Message::EchoRequest => Ok(Repr::EchoRequest {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
                data,
            }),
            Message::EchoReply => Ok(Repr::EchoReply {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
                data,
            }),
            Message::DstUnreachable => {
                let reason =
                    DstUnreachable::from_code(code, packet.next_hop_mtu()).ok_or(Error::BadCode)?;
                check_quote(data)?;
                Ok(Repr::DstUnreachable { reason, data })
            }
            Message::TimeExceeded => {
                let reason = TimeExceeded::from_code(code).ok_or(Error::BadCode)?;
                check_quote(data)?;
                Ok(Repr::TimeExceeded { reason, data })
            }
            _ => Err(Error::UnsupportedType),
        }
    }

    /// The datagram an error message quotes; `None` for echo messages.
    pub const fn quoted(&self) -> Option<&'a [u8]> {
        match *self {
            Repr::DstUnreachable { data, .. } | Repr::TimeExceeded { data, .. } => Some(data),
            Repr::EchoRequest { .. } | Repr::EchoReply { .. } => None,
        }
    }

    /// The quoted datagram as an IPv4 view (see [`ipv4::Packet::new_quoted`]: its payload may
    /// stop short of its total length). `None` for echo messages, and for a quote that is not
    /// an IPv4 header, which a `Repr` from [`Repr::parse`] never has.
    pub fn quoted_packet(&self) -> Option<ipv4::Packet<&'a [u8]>> {
        ipv4::Packet::new_quoted(self.quoted()?).ok()
    }

    /// The length of the message this emits.
    pub const fn buffer_len(&self) -> usize {
        let data = match *self {
            Repr::EchoRequest { data, .. }
            | Repr::EchoReply { data, .. }
            | Repr::DstUnreachable { data, .. }
            | Repr::TimeExceeded { data, .. } => data,
        };
        HEADER_LEN + data.len()
    }

    /// Writes the message and its checksum. `packet` must be exactly [`Repr::buffer_len`]
    /// bytes long: the checksum covers the whole buffer, as a receiver's will.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.clear_rest_of_header();
        let (message, code, data) = match *self {
            Repr::EchoRequest {
                ident,
                seq_no,
                data,
            } => {
                packet.set_echo_ident(ident);
                packet.set_echo_seq_no(seq_no);
                (Message::EchoRequest, 0, data)
            }
            Repr::EchoReply {
                ident,
                seq_no,
                data,
            } => {
                packet.set_echo_ident(ident);
                packet.set_echo_seq_no(seq_no);
                (Message::EchoReply, 0, data)
            }
            Repr::DstUnreachable { reason, data } => {
                if let DstUnreachable::FragNeeded { next_hop_mtu } = reason {
                    packet.set_next_hop_mtu(next_hop_mtu);
                }
                (Message::DstUnreachable, reason.code(), data)
            }
            Repr::TimeExceeded { reason, data } => (Message::TimeExceeded, reason.code(), data),
        };
        packet.set_msg_type(message);
        packet.set_msg_code(code);
        packet.data_mut()[..data.len()].copy_from_slice(data);
        packet.fill_checksum();
    }
}

/// RFC 792: an error quotes "the internet header + 64 bits of original data datagram". A
/// datagram with less data than that is quoted whole.
fn check_quote(data: &[u8]) -> Result<(), Error> {
    let quoted = ipv4::Packet::new_quoted(data).map_err(|_| Error::BadQuote)?;
    let header_and_8 = usize::from(quoted.header_len()).saturating_add(8);
    if data.len() < header_and_8.min(usize::from(quoted.total_len())) {
        return Err(Error::BadQuote);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
