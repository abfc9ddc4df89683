//! Multicast Listener Discovery: version 1 (RFC 2710) and version 2 (RFC 3810), the ICMPv6
//! messages through which IPv6 nodes tell routers (and snooping switches) which groups they
//! listen to.
//!
//! [`Packet`] views a whole MLD message (ICMPv6 types 130, 131, 132 and 143). Once
//! [`Packet::new_checked`] has accepted a buffer (one of those types, and the 24-byte fixed
//! part of version 1 or the 8-byte one of a version 2 report) no accessor can panic.
//! [`Repr::parse`] verifies the ICMPv6 checksum over the pseudo-header of the addresses the
//! message came with (RFC 4443 §2.3), tells the query versions apart by length (RFC 3810
//! §8.1: 24 bytes is version 1, 28 or more version 2, anything else is not a query), and
//! checks that every source and group record a version 2 message announces lies inside it
//! ([`super::group_record`]). [`Repr::emit`] writes the message and its checksum.
//!
//! [`Repr::validate`] applies the checks RFC 3810 §5.1.14 and §5.2.13 make on the IPv6
//! header; [`is_snooped`] says which groups a snooping switch leaves alone.

use core::net::Ipv6Addr;

use super::checksum::Sum;
use super::group_record::{
    GroupRecord, RecordError, Records as RecordList, Sources as SourceList, decode_code16,
};
use super::ip::{Addresses, Protocol};

/// All nodes on the link: where general queries go.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// All routers on the link: where version 1 Done messages go (RFC 2710 §3.7).
pub const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);
/// All MLDv2-capable routers: where version 2 reports go (RFC 3810 §5.2.14).
pub const ALL_MLDV2_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x16);
/// The hop limit every MLD message carries (RFC 3810 §5).
pub const HOP_LIMIT: u8 = 1;

/// Sources of a version 2 query or record.
pub type Sources<'a> = SourceList<'a, Ipv6Addr>;
/// Group records of a version 2 report.
pub type Records<'a> = RecordList<'a, Ipv6Addr>;
/// One group record.
pub type Record<'a> = GroupRecord<'a, Ipv6Addr>;

/// Whether a snooping switch tracks `group`. RFC 4541 §3 floods ff02::1 (nobody reports it)
/// and RFC 3810 §6 never reports ff00::/15 (reserved and interface-local). Link-local groups
/// (ff02::/16: solicited-node groups, mDNS and the like) are flooded too: Neighbor Discovery
/// between guests must work even before, or without, their reports.
pub fn is_snooped(group: Ipv6Addr) -> bool {
    let scope = group.octets().get(1).map_or(0, |b| b & 0x0f);
    group.is_multicast() && scope > 2
}

/// Why a buffer is not an MLD message we accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Error {
    #[error("buffer shorter than the MLD message's fixed part")]
    Truncated,
    #[error("ICMPv6 type is not an MLD message")]
    NotMld,
    #[error("MLD message is not over IPv6")]
    NotIpv6,
    #[error("ICMPv6 checksum mismatch")]
    BadChecksum,
    #[error("MLD query of 25 to 27 bytes (RFC 3810 §8.1)")]
    BadQueryLength,
    #[error("MLDv2 sources or group records past the end of the message")]
    RecordsTruncated,
    #[error("MLD message with an IPv6 hop limit other than 1")]
    BadHopLimit,
    #[error("MLD message from a source that is not link-local")]
    SourceNotLinkLocal,
    #[error("MLD message without a hop-by-hop router alert")]
    NoRouterAlert,
}

impl From<RecordError> for Error {
    fn from(_: RecordError) -> Error {
        Error::RecordsTruncated
    }
}

mod field {
    use core::ops::Range;

    pub(super) const TYPE: usize = 0;
    pub(super) const CODE: usize = 1;
    pub(super) const CHECKSUM: Range<usize> = 2..4;
    /// Queries, version 1 reports and Done (RFC 3810 §5.1, RFC 2710 §3).
    pub(super) const MAX_RESP: Range<usize> = 4..6;
    pub(super) const ADDR: Range<usize> = 8..24;
    /// Version 2 query: Resv, S, QRV; QQIC; number of sources.
    pub(super) const FLAGS: usize = 24;
    pub(super) const QQIC: usize = 25;
    pub(super) const NUM_SOURCES: Range<usize> = 26..28;
    pub(super) const SOURCES: usize = 28;
    /// Version 2 report (RFC 3810 §5.2).
    pub(super) const NUM_RECORDS: Range<usize> = 6..8;
    pub(super) const RECORDS: usize = 8;
}

/// The length of a version 1 message.
pub const V1_LEN: usize = field::ADDR.end;
/// A version 2 query's length without sources.
pub const V2_QUERY_LEN: usize = field::SOURCES;

/// ICMPv6 types of MLD (RFC 3810 §5, RFC 2710 §3).
pub mod message_type {
    pub const QUERY: u8 = 130;
    pub const REPORT_V1: u8 = 131;
    pub const DONE: u8 = 132;
    pub const REPORT_V2: u8 = 143;
}

/// Whether an ICMPv6 type is one of MLD's.
pub const fn is_mld_type(msg_type: u8) -> bool {
    matches!(
        msg_type,
        message_type::QUERY
            | message_type::REPORT_V1
            | message_type::DONE
            | message_type::REPORT_V2
    )
}

fn fixed_len(msg_type: u8) -> Option<usize> {
    match msg_type {
        message_type::QUERY | message_type::REPORT_V1 | message_type::DONE => Some(V1_LEN),
        message_type::REPORT_V2 => Some(field::RECORDS),
        _ => None,
    }
}

/// A read/write view of an MLD message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` without checking it; accessors may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps `buffer` after checking its type is MLD's and it holds its fixed part.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let packet = Packet::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    pub fn check_len(&self) -> Result<(), Error> {
        let buffer = self.buffer.as_ref();
        let msg_type = *buffer.first().ok_or(Error::Truncated)?;
        let fixed = fixed_len(msg_type).ok_or(Error::NotMld)?;
        if buffer.len() < fixed {
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

    pub fn msg_code(&self) -> u8 {
        self.byte(field::CODE)
    }

    pub fn checksum(&self) -> u16 {
        self.read_u16(field::CHECKSUM)
    }

    /// Maximum Response Delay (version 1, ms) or Code (version 2).
    pub fn max_resp_code(&self) -> u16 {
        self.read_u16(field::MAX_RESP)
    }

    pub fn multicast_addr(&self) -> Ipv6Addr {
        let mut a = [0u8; 16];
        if let Some(b) = self.buffer.as_ref().get(field::ADDR) {
            a.copy_from_slice(b);
        }
        Ipv6Addr::from(a)
    }

    pub fn suppress(&self) -> bool {
        self.byte(field::FLAGS) & 0x08 != 0
    }

    pub fn qrv(&self) -> u8 {
        self.byte(field::FLAGS) & 0x07
    }

    pub fn qqic(&self) -> u8 {
        self.byte(field::QQIC)
    }

    pub fn num_sources(&self) -> u16 {
        self.read_u16(field::NUM_SOURCES)
    }

    pub fn num_records(&self) -> u16 {
        self.read_u16(field::NUM_RECORDS)
    }

    /// Whether the checksum over the pseudo-header of `addrs` and the buffer is right.
    pub fn verify_checksum(&self, addrs: &Addresses) -> bool {
        let buffer = self.buffer.as_ref();
        let sum = addrs.pseudo_header(Protocol::Icmpv6, buffer.len()) + Sum::of(buffer);
        sum.value() == 0xffff
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    fn tail(&self, from: usize) -> &'a [u8] {
        self.buffer.as_ref().get(from..).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_checksum(&mut self, value: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&value.to_be_bytes());
    }

    /// Computes the checksum over the pseudo-header of `addrs` and the buffer and writes it.
    pub fn fill_checksum(&mut self, addrs: &Addresses) {
        self.set_checksum(0);
        let buffer = self.buffer.as_ref();
        let sum = addrs.pseudo_header(Protocol::Icmpv6, buffer.len()) + Sum::of(buffer);
        self.set_checksum(sum.checksum());
    }
}

/// What a version 2 query adds to a version 1 one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryV2<'a> {
    /// S: routers skip their timer updates (RFC 3810 §5.1.7).
    pub suppress: bool,
    /// The querier's robustness variable, 0 to 7 (RFC 3810 §5.1.8).
    pub qrv: u8,
    /// The querier's query interval code (RFC 3810 §5.1.9).
    pub qqic: u8,
    pub sources: Sources<'a>,
}

/// An MLD message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repr<'a> {
    /// A query: general when `group` is ::, else multicast-address-specific (and
    /// source-specific with version 2 sources). `max_resp_code` is in milliseconds, for
    /// version 2 encoded as [`decode_code16`] reads it.
    Query {
        max_resp_code: u16,
        group: Ipv6Addr,
        v2: Option<QueryV2<'a>>,
    },
    ReportV1 {
        group: Ipv6Addr,
    },
    Done {
        group: Ipv6Addr,
    },
    ReportV2 {
        records: Records<'a>,
    },
}

impl<'a> Repr<'a> {
    /// Reads a message after verifying its checksum against `addrs`. See the module docs.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &Packet<&'a T>,
        addrs: &Addresses,
    ) -> Result<Repr<'a>, Error> {
        packet.check_len()?;
        let Addresses::V6 { .. } = addrs else {
            return Err(Error::NotIpv6);
        };
        if !packet.verify_checksum(addrs) {
            return Err(Error::BadChecksum);
        }
        let len = packet.buffer.as_ref().len();
        let group = packet.multicast_addr();
        match packet.msg_type() {
            message_type::QUERY if len == V1_LEN => Ok(Repr::Query {
                max_resp_code: packet.max_resp_code(),
                group,
                v2: None,
            }),
            message_type::QUERY if len >= V2_QUERY_LEN => {
                let count = usize::from(packet.num_sources());
                let (sources, _) = Sources::parse(packet.tail(field::SOURCES), count)?;
                Ok(Repr::Query {
                    max_resp_code: packet.max_resp_code(),
                    group,
                    v2: Some(QueryV2 {
                        suppress: packet.suppress(),
                        qrv: packet.qrv(),
                        qqic: packet.qqic(),
                        sources,
                    }),
                })
            }
            message_type::QUERY => Err(Error::BadQueryLength),
            message_type::REPORT_V1 => Ok(Repr::ReportV1 { group }),
            message_type::DONE => Ok(Repr::Done { group }),
            message_type::REPORT_V2 => {
                let count = usize::from(packet.num_records());
                let records = Records::parse(packet.tail(field::RECORDS), count)?;
                Ok(Repr::ReportV2 { records })
            }
            _ => Err(Error::NotMld),
        }
    }

    /// RFC 3810 §5.1.14, §5.2.13 (and RFC 2710 §3): an MLD message is only processed when it
    /// came with hop limit 1 and a hop-by-hop router alert, from a link-local source — or,
    /// for a report, from the unspecified address (a node that has no link-local address
    /// yet, during duplicate address detection).
    pub fn validate(&self, src: Ipv6Addr, hop_limit: u8, router_alert: bool) -> Result<(), Error> {
        if hop_limit != HOP_LIMIT {
            return Err(Error::BadHopLimit);
        }
        if !router_alert {
            return Err(Error::NoRouterAlert);
        }
        let unspecified_ok = !matches!(self, Repr::Query { .. });
        if !(src.is_unicast_link_local() || (unspecified_ok && src.is_unspecified())) {
            return Err(Error::SourceNotLinkLocal);
        }
        Ok(())
    }

    /// The length of the message this emits.
    pub fn buffer_len(&self) -> usize {
        match self {
            Repr::Query { v2: None, .. } | Repr::ReportV1 { .. } | Repr::Done { .. } => V1_LEN,
            Repr::Query { v2: Some(q), .. } => V2_QUERY_LEN + q.sources.buffer_len(),
            Repr::ReportV2 { records } => field::RECORDS + records.buffer_len(),
        }
    }

    /// Writes the message and its checksum over the pseudo-header of `addrs`; `packet` must
    /// be exactly [`Repr::buffer_len`] bytes long.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>, addrs: &Addresses) {
        let buffer = packet.buffer.as_mut();
        buffer.fill(0);
        match *self {
            Repr::Query {
                max_resp_code,
                group,
                v2,
            } => {
                buffer[field::TYPE] = message_type::QUERY;
                buffer[field::MAX_RESP].copy_from_slice(&max_resp_code.to_be_bytes());
                buffer[field::ADDR].copy_from_slice(&group.octets());
                if let Some(q) = v2 {
                    buffer[field::FLAGS] = if q.suppress { 0x08 } else { 0 } | (q.qrv & 0x07);
                    buffer[field::QQIC] = q.qqic;
                    let count = q.sources.len().min(usize::from(u16::MAX)) as u16;
                    buffer[field::NUM_SOURCES].copy_from_slice(&count.to_be_bytes());
                    q.sources.emit(&mut buffer[field::SOURCES..]);
                }
            }
            Repr::ReportV1 { group } | Repr::Done { group } => {
                buffer[field::TYPE] = if matches!(self, Repr::Done { .. }) {
                    message_type::DONE
                } else {
                    message_type::REPORT_V1
                };
                buffer[field::ADDR].copy_from_slice(&group.octets());
            }
            Repr::ReportV2 { records } => {
                buffer[field::TYPE] = message_type::REPORT_V2;
                let count = records.len().min(usize::from(u16::MAX)) as u16;
                buffer[field::NUM_RECORDS].copy_from_slice(&count.to_be_bytes());
                records.emit(&mut buffer[field::RECORDS..]);
            }
        }
        packet.fill_checksum(addrs);
    }

    /// The query's maximum response delay in milliseconds; `None` for reports.
    pub fn max_resp_delay(&self) -> Option<u32> {
        match *self {
            Repr::Query {
                max_resp_code,
                v2: Some(_),
                ..
            } => Some(decode_code16(max_resp_code)),
            Repr::Query { max_resp_code, .. } => Some(u32::from(max_resp_code)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
