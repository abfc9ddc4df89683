//! IGMP, the Internet Group Management Protocol: version 2 (RFC 2236), version 3 (RFC 3376),
//! and version 1's report (RFC 1112 appendix I), as a switch snooping on them and a querier
//! need them.
//!
//! [`Packet`] views a whole IGMP message (the IPv4 payload, protocol 2). Once
//! [`Packet::new_checked`] has accepted a buffer (at least the 8-byte common header) no
//! accessor can panic. [`Repr::parse`] verifies the checksum (RFC 3376 §4.1.2: over the whole
//! message), tells the versions apart the way RFC 3376 §7.1 does (a query of 8 bytes is
//! version 1 or 2, of 12 or more version 3, anything between is not a query), and checks
//! that every source and group record a version 3 message announces lies inside it
//! ([`super::group_record`]). Bytes past what a message describes are ignored.
//! [`Repr::emit`] writes the message and its checksum.
//!
//! Which addresses a message may travel to, and whether a group is one to snoop, is the
//! caller's business; [`is_snooped`] says which groups RFC 4541 §2.1.2 leaves alone.

use core::net::Ipv4Addr;

use super::checksum::Sum;
use super::group_record::{
    GroupRecord, RecordError, Records as RecordList, Sources as SourceList, decode_code8,
};

/// The IPv4 protocol number of IGMP.
pub const PROTOCOL: u8 = 2;
/// All systems on this subnet: where general queries go (RFC 3376 §4.1.12).
pub const ALL_SYSTEMS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 1);
/// All routers on this subnet: where version 2 leaves go (RFC 2236 §3).
pub const ALL_ROUTERS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 2);
/// All IGMPv3-capable multicast routers: where version 3 reports go (RFC 3376 §4.2.14).
pub const ALL_V3_ROUTERS: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 22);

/// Sources of a version 3 query or record.
pub type Sources<'a> = SourceList<'a, Ipv4Addr>;
/// Group records of a version 3 report.
pub type Records<'a> = RecordList<'a, Ipv4Addr>;
/// One group record.
pub type Record<'a> = GroupRecord<'a, Ipv4Addr>;

/// Whether a switch snoops on `group`: RFC 4541 §2.1.2 floods 224.0.0.0/24 (the local
/// network control block) to every port whatever the reports say.
pub fn is_snooped(group: Ipv4Addr) -> bool {
    group.is_multicast() && !matches!(group.octets(), [224, 0, 0, _])
}

/// Why a buffer is not an IGMP message we accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Error {
    #[error("buffer shorter than the 8-byte IGMP header")]
    Truncated,
    #[error("IGMP checksum mismatch")]
    BadChecksum,
    #[error("IGMP query of 9 to 11 bytes (RFC 3376 §7.1)")]
    BadQueryLength,
    #[error("IGMP message of an unknown type")]
    UnknownType,
    #[error("IGMPv3 sources or group records past the end of the message")]
    RecordsTruncated,
}

impl From<RecordError> for Error {
    fn from(_: RecordError) -> Error {
        Error::RecordsTruncated
    }
}

mod field {
    use core::ops::Range;

    pub(super) const TYPE: usize = 0;
    pub(super) const MAX_RESP: usize = 1;
    pub(super) const CHECKSUM: Range<usize> = 2..4;
    pub(super) const GROUP: Range<usize> = 4..8;
    /// Version 3 query (RFC 3376 §4.1): Resv, S, QRV; QQIC; number of sources.
    pub(super) const FLAGS: usize = 8;
    pub(super) const QQIC: usize = 9;
    pub(super) const NUM_SOURCES: Range<usize> = 10..12;
    pub(super) const SOURCES: usize = 12;
    /// Version 3 report (RFC 3376 §4.2): number of group records.
    pub(super) const NUM_RECORDS: Range<usize> = 6..8;
    pub(super) const RECORDS: usize = 8;
}

/// The common header's length, and that of every version 1 and 2 message.
pub const HEADER_LEN: usize = field::GROUP.end;
/// A version 3 query's length without sources.
pub const V3_QUERY_LEN: usize = field::SOURCES;

/// Message types (RFC 3376 §4, RFC 2236 §2.1).
pub mod message_type {
    pub const QUERY: u8 = 0x11;
    pub const REPORT_V1: u8 = 0x12;
    pub const REPORT_V2: u8 = 0x16;
    pub const LEAVE: u8 = 0x17;
    pub const REPORT_V3: u8 = 0x22;
}

/// A read/write view of an IGMP message.
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

    fn byte(&self, at: usize) -> u8 {
        self.buffer.as_ref().get(at).copied().unwrap_or(0)
    }

    fn read_u16(&self, range: core::ops::Range<usize>) -> u16 {
        match self.buffer.as_ref().get(range) {
            Some(&[a, b]) => u16::from_be_bytes([a, b]),
            _ => 0,
        }
    }

    pub fn msg_type(&self) -> u8 {
        self.byte(field::TYPE)
    }

    /// Max Resp Time (version 2, tenths of a second) or Max Resp Code (version 3).
    pub fn max_resp_code(&self) -> u8 {
        self.byte(field::MAX_RESP)
    }

    pub fn checksum(&self) -> u16 {
        self.read_u16(field::CHECKSUM)
    }

    pub fn group_addr(&self) -> Ipv4Addr {
        match self.buffer.as_ref().get(field::GROUP) {
            Some(&[a, b, c, d]) => Ipv4Addr::new(a, b, c, d),
            _ => Ipv4Addr::UNSPECIFIED,
        }
    }

    /// Version 3 query: S, suppress router-side processing.
    pub fn suppress(&self) -> bool {
        self.byte(field::FLAGS) & 0x08 != 0
    }

    /// Version 3 query: the querier's robustness variable.
    pub fn qrv(&self) -> u8 {
        self.byte(field::FLAGS) & 0x07
    }

    /// Version 3 query: the querier's query interval code.
    pub fn qqic(&self) -> u8 {
        self.byte(field::QQIC)
    }

    pub fn num_sources(&self) -> u16 {
        self.read_u16(field::NUM_SOURCES)
    }

    pub fn num_records(&self) -> u16 {
        self.read_u16(field::NUM_RECORDS)
    }

    /// Whether the checksum over the whole buffer is right.
    pub fn verify_checksum(&self) -> bool {
        Sum::of(self.buffer.as_ref()).value() == 0xffff
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The bytes after the fixed part of a version 3 query or report.
    fn tail(&self, from: usize) -> &'a [u8] {
        self.buffer.as_ref().get(from..).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_msg_type(&mut self, value: u8) {
        self.buffer.as_mut()[field::TYPE] = value;
    }

    pub fn set_max_resp_code(&mut self, value: u8) {
        self.buffer.as_mut()[field::MAX_RESP] = value;
    }

    pub fn set_checksum(&mut self, value: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&value.to_be_bytes());
    }

    pub fn set_group_addr(&mut self, value: Ipv4Addr) {
        self.buffer.as_mut()[field::GROUP].copy_from_slice(&value.octets());
    }

    /// Computes the checksum over the whole buffer and writes it.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = Sum::of(self.buffer.as_ref());
        self.set_checksum(sum.checksum());
    }
}

/// What a version 3 query adds to a version 2 one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryV3<'a> {
    /// S: routers skip their timer updates (RFC 3376 §4.1.5).
    pub suppress: bool,
    /// The querier's robustness variable, 0 to 7 (RFC 3376 §4.1.6).
    pub qrv: u8,
    /// The querier's query interval code (RFC 3376 §4.1.7).
    pub qqic: u8,
    pub sources: Sources<'a>,
}

/// An IGMP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repr<'a> {
    /// A membership query: general when `group` is 0.0.0.0, else group-specific (and
    /// group-and-source-specific with version 3 sources). `max_resp_code` is in tenths of a
    /// second, for version 3 encoded as [`decode_code8`] reads it.
    Query {
        max_resp_code: u8,
        group: Ipv4Addr,
        v3: Option<QueryV3<'a>>,
    },
    ReportV1 {
        group: Ipv4Addr,
    },
    ReportV2 {
        group: Ipv4Addr,
    },
    Leave {
        group: Ipv4Addr,
    },
    ReportV3 {
        records: Records<'a>,
    },
}

impl<'a> Repr<'a> {
    /// Reads a message, checksum first. See the module docs.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&'a T>) -> Result<Repr<'a>, Error> {
        packet.check_len()?;
        if !packet.verify_checksum() {
            return Err(Error::BadChecksum);
        }
        let len = packet.buffer.as_ref().len();
        let group = packet.group_addr();
        match packet.msg_type() {
            message_type::QUERY if len == HEADER_LEN => Ok(Repr::Query {
                max_resp_code: packet.max_resp_code(),
                group,
                v3: None,
            }),
            message_type::QUERY if len >= V3_QUERY_LEN => {
                let count = usize::from(packet.num_sources());
                let (sources, _) = Sources::parse(packet.tail(field::SOURCES), count)?;
                Ok(Repr::Query {
                    max_resp_code: packet.max_resp_code(),
                    group,
                    v3: Some(QueryV3 {
                        suppress: packet.suppress(),
                        qrv: packet.qrv(),
                        qqic: packet.qqic(),
                        sources,
                    }),
                })
            }
            message_type::QUERY => Err(Error::BadQueryLength),
            message_type::REPORT_V1 => Ok(Repr::ReportV1 { group }),
            message_type::REPORT_V2 => Ok(Repr::ReportV2 { group }),
            message_type::LEAVE => Ok(Repr::Leave { group }),
            message_type::REPORT_V3 => {
                if len < field::RECORDS {
                    return Err(Error::Truncated);
                }
                let count = usize::from(packet.num_records());
                let records = Records::parse(packet.tail(field::RECORDS), count)?;
                Ok(Repr::ReportV3 { records })
            }
            _ => Err(Error::UnknownType),
        }
    }

    /// The length of the message this emits.
    pub fn buffer_len(&self) -> usize {
        match self {
            Repr::Query { v3: None, .. }
            | Repr::ReportV1 { .. }
            | Repr::ReportV2 { .. }
            | Repr::Leave { .. } => HEADER_LEN,
            Repr::Query { v3: Some(q), .. } => V3_QUERY_LEN + q.sources.buffer_len(),
            Repr::ReportV3 { records } => field::RECORDS + records.buffer_len(),
        }
    }

    /// Writes the message and its checksum; `packet` must be exactly [`Repr::buffer_len`]
    /// bytes long, as the checksum covers all of it. At most 65535 sources or records are
    /// described.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        let buffer = packet.buffer.as_mut();
        buffer.fill(0);
        match *self {
            Repr::Query {
                max_resp_code,
                group,
                v3,
            } => {
                packet.set_msg_type(message_type::QUERY);
                packet.set_max_resp_code(max_resp_code);
                packet.set_group_addr(group);
                if let Some(q) = v3 {
                    let buffer = packet.buffer.as_mut();
                    buffer[field::FLAGS] = if q.suppress { 0x08 } else { 0 } | (q.qrv & 0x07);
                    buffer[field::QQIC] = q.qqic;
                    let count = q.sources.len().min(usize::from(u16::MAX)) as u16;
                    buffer[field::NUM_SOURCES].copy_from_slice(&count.to_be_bytes());
                    q.sources.emit(&mut buffer[field::SOURCES..]);
                }
            }
            Repr::ReportV1 { group } | Repr::ReportV2 { group } | Repr::Leave { group } => {
                let kind = match self {
                    Repr::ReportV1 { .. } => message_type::REPORT_V1,
                    Repr::ReportV2 { .. } => message_type::REPORT_V2,
                    _ => message_type::LEAVE,
                };
                packet.set_msg_type(kind);
                packet.set_group_addr(group);
            }
            Repr::ReportV3 { records } => {
                packet.set_msg_type(message_type::REPORT_V3);
                let buffer = packet.buffer.as_mut();
                let count = records.len().min(usize::from(u16::MAX)) as u16;
                buffer[field::NUM_RECORDS].copy_from_slice(&count.to_be_bytes());
                records.emit(&mut buffer[field::RECORDS..]);
            }
        }
        packet.fill_checksum();
    }

    /// The query's maximum response time in tenths of a second; `None` for reports.
    pub fn max_resp_time(&self) -> Option<u32> {
        match *self {
            Repr::Query {
                max_resp_code,
                v3: Some(_),
                ..
            } => Some(decode_code8(max_resp_code)),
            Repr::Query { max_resp_code, .. } => Some(u32::from(max_resp_code)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
