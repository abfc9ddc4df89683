//! What IGMPv3 (RFC 3376 §4.2) and MLDv2 (RFC 3810 §5.2) share: the group records of a
//! membership report, and the source lists of queries and records, over 4- or 16-byte
//! addresses ([`GroupAddr`]).
//!
//! A report carries a record count and then the records back to back, each a 4-byte head
//! (type, auxiliary data length in 32-bit words, source count), the group address, the
//! sources and the auxiliary data. [`Records::parse`] checks that every record the count
//! announces lies inside the message before anything reads it, so iterating never fails and
//! never allocates; its [`Records::len`] is bounded by the message's length.
//!
//! Both the parsed form (bytes of the message) and a built form (slices of values, for
//! emitting) are the same types; they compare equal when their contents are.

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::ethernet::Address as EthernetAddress;

/// The Ethernet address frames to an IP multicast group go to: 01:00:5e and the group's low
/// 23 bits for IPv4 (RFC 1112 §6.4), 33:33 and its low 32 bits for IPv6 (RFC 2464 §7).
/// `None` for an address that is not multicast.
pub fn multicast_mac(group: IpAddr) -> Option<EthernetAddress> {
    match group {
        IpAddr::V4(g) if g.is_multicast() => {
            let [_, b, c, d] = g.octets();
            Some(EthernetAddress([0x01, 0x00, 0x5e, b & 0x7f, c, d]))
        }
        IpAddr::V6(g) if g.is_multicast() => {
            let [.., a, b, c, d] = g.octets();
            Some(EthernetAddress([0x33, 0x33, a, b, c, d]))
        }
        _ => None,
    }
}

/// An address of a multicast group or a source: IPv4 for IGMP, IPv6 for MLD.
pub trait GroupAddr: Copy + Eq + fmt::Debug {
    /// Its length on the wire.
    const LEN: usize;
    /// Reads one from exactly [`GroupAddr::LEN`] bytes.
    fn read(bytes: &[u8]) -> Option<Self>;
    /// Writes it into the first [`GroupAddr::LEN`] bytes of `out` (nothing if shorter).
    fn write(&self, out: &mut [u8]);
}

impl GroupAddr for Ipv4Addr {
    const LEN: usize = 4;

    fn read(bytes: &[u8]) -> Option<Ipv4Addr> {
        let b: [u8; 4] = bytes.try_into().ok()?;
        Some(Ipv4Addr::from(b))
    }

    fn write(&self, out: &mut [u8]) {
        if let Some(o) = out.get_mut(..4) {
            o.copy_from_slice(&self.octets());
        }
    }
}

impl GroupAddr for Ipv6Addr {
    const LEN: usize = 16;

    fn read(bytes: &[u8]) -> Option<Ipv6Addr> {
        let b: [u8; 16] = bytes.try_into().ok()?;
        Some(Ipv6Addr::from(b))
    }

    fn write(&self, out: &mut [u8]) {
        if let Some(o) = out.get_mut(..16) {
            o.copy_from_slice(&self.octets());
        }
    }
}

/// Why a report's records or a query's sources do not fit their message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum RecordError {
    #[error("group record or source list runs past the end of the message")]
    Truncated,
}

/// A list of addresses: sources of a query or of a group record.
#[derive(Clone, Copy)]
pub struct Sources<'a, A: GroupAddr>(SourcesRepr<'a, A>);

#[derive(Clone, Copy)]
enum SourcesRepr<'a, A> {
    /// A multiple of `A::LEN` bytes.
    Wire(&'a [u8]),
    List(&'a [A]),
}

impl<'a, A: GroupAddr> Sources<'a, A> {
    /// Addresses to emit.
    pub const fn new(list: &'a [A]) -> Sources<'a, A> {
        Sources(SourcesRepr::List(list))
    }

    /// `count` addresses at the start of `bytes`, and the bytes after them.
    pub fn parse(bytes: &'a [u8], count: usize) -> Result<(Sources<'a, A>, &'a [u8]), RecordError> {
        let len = count.checked_mul(A::LEN).ok_or(RecordError::Truncated)?;
        let (wire, rest) = bytes.split_at_checked(len).ok_or(RecordError::Truncated)?;
        Ok((Sources(SourcesRepr::Wire(wire)), rest))
    }

    pub fn iter(&self) -> impl Iterator<Item = A> + 'a {
        let (wire, list): (&'a [u8], &'a [A]) = match self.0 {
            SourcesRepr::Wire(bytes) => (bytes, &[]),
            SourcesRepr::List(list) => (&[], list),
        };
        wire.chunks_exact(A::LEN)
            .filter_map(A::read)
            .chain(list.iter().copied())
    }

    pub fn len(&self) -> usize {
        match self.0 {
            SourcesRepr::Wire(bytes) => bytes.len() / A::LEN,
            SourcesRepr::List(list) => list.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes on the wire.
    pub fn buffer_len(&self) -> usize {
        self.len() * A::LEN
    }

    /// Writes the addresses into `out` (which holds [`Sources::buffer_len`] bytes).
    pub fn emit(&self, out: &mut [u8]) {
        for (addr, slot) in self.iter().zip(out.chunks_exact_mut(A::LEN)) {
            addr.write(slot);
        }
    }
}

impl<A: GroupAddr> PartialEq for Sources<'_, A> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl<A: GroupAddr> Eq for Sources<'_, A> {}

impl<A: GroupAddr> fmt::Debug for Sources<'_, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// A group record's type (RFC 3376 §4.2.12, RFC 3810 §5.2.12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordType {
    /// Current state: listening to the sources listed (include mode).
    ModeIsInclude,
    /// Current state: listening to every source but those listed (exclude mode).
    ModeIsExclude,
    /// The filter changed to include mode (an empty list is a leave).
    ChangeToInclude,
    /// The filter changed to exclude mode (an empty list is a join of every source).
    ChangeToExclude,
    AllowNewSources,
    BlockOldSources,
    /// Any other value: RFC 3376 §4.2.12 has receivers ignore such records.
    Unknown(u8),
}

impl From<u8> for RecordType {
    fn from(value: u8) -> RecordType {
        match value {
            1 => RecordType::ModeIsInclude,
            2 => RecordType::ModeIsExclude,
            3 => RecordType::ChangeToInclude,
            4 => RecordType::ChangeToExclude,
            5 => RecordType::AllowNewSources,
            6 => RecordType::BlockOldSources,
            other => RecordType::Unknown(other),
        }
    }
}

impl From<RecordType> for u8 {
    fn from(value: RecordType) -> u8 {
        match value {
            RecordType::ModeIsInclude => 1,
            RecordType::ModeIsExclude => 2,
            RecordType::ChangeToInclude => 3,
            RecordType::ChangeToExclude => 4,
            RecordType::AllowNewSources => 5,
            RecordType::BlockOldSources => 6,
            RecordType::Unknown(other) => other,
        }
    }
}

/// The 4-byte head of a record before its group address.
const RECORD_HEAD: usize = 4;

/// One group record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupRecord<'a, A: GroupAddr> {
    pub kind: RecordType,
    pub group: A,
    pub sources: Sources<'a, A>,
    /// Auxiliary data, a multiple of 4 bytes long (none is defined; receivers skip it).
    pub aux: &'a [u8],
}

impl<'a, A: GroupAddr> GroupRecord<'a, A> {
    /// Whether, for snooping, this record means the sender now listens to the group (from
    /// some source) rather than not at all. RFC 3376 §6.4 / RFC 3810 §7.4: exclude mode is
    /// "listening", include mode with sources is too; include mode with none (TO_IN({})) is a
    /// leave. ALLOW adds sources (listening); BLOCK and unknown records change nothing here.
    pub fn listening(&self) -> Option<bool> {
        match self.kind {
            RecordType::ModeIsExclude | RecordType::ChangeToExclude => Some(true),
            RecordType::ModeIsInclude | RecordType::ChangeToInclude => {
                Some(!self.sources.is_empty())
            }
            RecordType::AllowNewSources => (!self.sources.is_empty()).then_some(true),
            RecordType::BlockOldSources | RecordType::Unknown(_) => None,
        }
    }

    /// One record at the start of `bytes`, and the bytes after it.
    fn parse(bytes: &'a [u8]) -> Result<(GroupRecord<'a, A>, &'a [u8]), RecordError> {
        let (head, rest) = bytes
            .split_at_checked(RECORD_HEAD)
            .ok_or(RecordError::Truncated)?;
        let [kind, aux_words, n_hi, n_lo] = head else {
            return Err(RecordError::Truncated);
        };
        let count = usize::from(u16::from_be_bytes([*n_hi, *n_lo]));
        let (group, rest) = rest
            .split_at_checked(A::LEN)
            .ok_or(RecordError::Truncated)?;
        let group = A::read(group).ok_or(RecordError::Truncated)?;
        let (sources, rest) = Sources::parse(rest, count)?;
        let (aux, rest) = rest
            .split_at_checked(usize::from(*aux_words) * 4)
            .ok_or(RecordError::Truncated)?;
        let record = GroupRecord {
            kind: RecordType::from(*kind),
            group,
            sources,
            aux,
        };
        Ok((record, rest))
    }

    /// Bytes on the wire: the head, the group, the sources and the auxiliary data rounded
    /// up to whole words.
    pub fn buffer_len(&self) -> usize {
        RECORD_HEAD + A::LEN + self.sources.buffer_len() + self.aux.len().div_ceil(4) * 4
    }

    /// Writes the record into `out`, which holds [`GroupRecord::buffer_len`] bytes. At most
    /// 65535 sources and 1020 bytes of auxiliary data are described.
    fn emit(&self, out: &mut [u8]) {
        let aux_words = self.aux.len().div_ceil(4).min(255);
        let count = self.sources.len().min(usize::from(u16::MAX)) as u16;
        let [c_hi, c_lo] = count.to_be_bytes();
        for (slot, value) in out
            .iter_mut()
            .zip([u8::from(self.kind), aux_words as u8, c_hi, c_lo])
        {
            *slot = value;
        }
        let Some(rest) = out.get_mut(RECORD_HEAD..) else {
            return;
        };
        self.group.write(rest);
        let Some(rest) = rest.get_mut(A::LEN..) else {
            return;
        };
        let sources_len = self.sources.buffer_len();
        if let Some(room) = rest.get_mut(..sources_len) {
            self.sources.emit(room);
        }
        if let Some(room) = rest.get_mut(sources_len..sources_len + aux_words * 4) {
            room.fill(0);
            for (slot, byte) in room.iter_mut().zip(self.aux) {
                *slot = *byte;
            }
        }
    }
}

/// The group records of a report.
#[derive(Clone, Copy)]
pub struct Records<'a, A: GroupAddr>(RecordsRepr<'a, A>);

#[derive(Clone, Copy)]
enum RecordsRepr<'a, A: GroupAddr> {
    /// `count` records, each checked to lie inside the bytes.
    Wire {
        bytes: &'a [u8],
        count: usize,
    },
    List(&'a [GroupRecord<'a, A>]),
}

impl<'a, A: GroupAddr> Records<'a, A> {
    /// Records to emit.
    pub const fn new(list: &'a [GroupRecord<'a, A>]) -> Records<'a, A> {
        Records(RecordsRepr::List(list))
    }

    /// `count` records at the start of `bytes`, every one checked to fit; bytes after the
    /// last are ignored (RFC 3376 §4.2.16 has receivers ignore what follows the records).
    pub fn parse(bytes: &'a [u8], count: usize) -> Result<Records<'a, A>, RecordError> {
        let mut rest = bytes;
        for _ in 0..count {
            let (_, after) = GroupRecord::<A>::parse(rest)?;
            rest = after;
        }
        let used = bytes.len() - rest.len();
        let bytes = bytes.get(..used).ok_or(RecordError::Truncated)?;
        Ok(Records(RecordsRepr::Wire { bytes, count }))
    }

    pub fn iter(&self) -> RecordsIter<'a, A> {
        match self.0 {
            RecordsRepr::Wire { bytes, count } => RecordsIter::Wire { bytes, left: count },
            RecordsRepr::List(list) => RecordsIter::List(list.iter()),
        }
    }

    pub fn len(&self) -> usize {
        match self.0 {
            RecordsRepr::Wire { count, .. } => count,
            RecordsRepr::List(list) => list.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn buffer_len(&self) -> usize {
        match self.0 {
            RecordsRepr::Wire { bytes, .. } => bytes.len(),
            RecordsRepr::List(list) => list.iter().map(GroupRecord::buffer_len).sum(),
        }
    }

    /// Writes the records into `out`, which holds [`Records::buffer_len`] bytes.
    pub fn emit(&self, out: &mut [u8]) {
        let mut at = 0;
        for record in self.iter() {
            let len = record.buffer_len();
            if let Some(room) = out.get_mut(at..at + len) {
                record.emit(room);
            }
            at += len;
        }
    }
}

impl<A: GroupAddr> PartialEq for Records<'_, A> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl<A: GroupAddr> Eq for Records<'_, A> {}

impl<A: GroupAddr> fmt::Debug for Records<'_, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Iterates over [`Records`].
#[derive(Debug, Clone)]
pub enum RecordsIter<'a, A: GroupAddr> {
    #[doc(hidden)]
    Wire { bytes: &'a [u8], left: usize },
    #[doc(hidden)]
    List(core::slice::Iter<'a, GroupRecord<'a, A>>),
}

impl<'a, A: GroupAddr> Iterator for RecordsIter<'a, A> {
    type Item = GroupRecord<'a, A>;

    fn next(&mut self) -> Option<GroupRecord<'a, A>> {
        match self {
            RecordsIter::Wire { bytes, left } => {
                if *left == 0 {
                    return None;
                }
                // Checked by `Records::parse`; a failure here ends the iteration.
                let (record, rest) = GroupRecord::parse(bytes).ok()?;
                *bytes = rest;
                *left -= 1;
                Some(record)
            }
            RecordsIter::List(list) => list.next().copied(),
        }
    }
}

/// Decodes a Max Resp Code or QQIC of IGMPv3 (RFC 3376 §4.1.1, §4.1.7) or MLDv2's QQIC
/// (RFC 3810 §5.1.9): below 128 the value itself, else a floating point number with a 3-bit
/// exponent and a 4-bit mantissa, `(mant | 0x10) << (exp + 3)`.
pub fn decode_code8(code: u8) -> u32 {
    if code < 128 {
        return u32::from(code);
    }
    let exp = u32::from((code >> 4) & 0x07);
    let mant = u32::from(code & 0x0f);
    (mant | 0x10) << (exp + 3)
}

/// The code that [`decode_code8`] turns into `value` or the largest value below it that it
/// can express (values past 31744 are capped).
pub fn encode_code8(value: u32) -> u8 {
    if value < 128 {
        return value as u8;
    }
    for exp in (0..8u32).rev() {
        let mant = value >> (exp + 3);
        if mant >= 0x10 {
            let mant = mant.min(0x1f) & 0x0f;
            return 0x80 | ((exp as u8) << 4) | mant as u8;
        }
    }
    127
}

/// Decodes MLDv2's 16-bit Maximum Response Code (RFC 3810 §5.1.3), in milliseconds: below
/// 32768 the value itself, else `(mant | 0x1000) << (exp + 3)`.
pub fn decode_code16(code: u16) -> u32 {
    if code < 32768 {
        return u32::from(code);
    }
    let exp = u32::from((code >> 12) & 0x07);
    let mant = u32::from(code & 0x0fff);
    (mant | 0x1000) << (exp + 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_macs() {
        let v4 = IpAddr::V4(Ipv4Addr::new(239, 129, 2, 3));
        assert_eq!(
            multicast_mac(v4),
            Some(EthernetAddress([0x01, 0, 0x5e, 0x01, 2, 3]))
        );
        let v6 = IpAddr::V6(Ipv6Addr::new(0xff15, 0, 0, 0, 0, 0, 0x1234, 0x5678));
        assert_eq!(
            multicast_mac(v6),
            Some(EthernetAddress([0x33, 0x33, 0x12, 0x34, 0x56, 0x78]))
        );
        assert_eq!(multicast_mac(IpAddr::V4(Ipv4Addr::LOCALHOST)), None);
    }

    #[test]
    fn codes_decode_as_the_rfcs_say() {
        assert_eq!(decode_code8(100), 100);
        // RFC 3376 §4.1.1: 0x80 is 16 << 3 = 128.
        assert_eq!(decode_code8(0x80), 128);
        assert_eq!(decode_code8(0xff), 31 << 10);
        assert_eq!(decode_code16(10_000), 10_000);
        assert_eq!(decode_code16(0x8000), 0x1000 << 3);
        for v in [0u32, 1, 127, 128, 129, 130, 1000, 31744, 40000] {
            let back = decode_code8(encode_code8(v));
            assert!(back <= v.max(127), "{v} -> {back}");
            if v <= 31744 {
                // At most one mantissa step (1/16) below.
                assert!(back + back / 16 + 8 >= v, "{v} -> {back}");
            }
        }
    }

    #[test]
    fn records_must_fit_their_count() {
        // One IPv4 record: TO_EX, no aux, 1 source.
        let mut bytes = vec![4, 0, 0, 1, 239, 1, 2, 3, 10, 0, 0, 1];
        let records = Records::<Ipv4Addr>::parse(&bytes, 1).unwrap();
        let r = records.iter().next().unwrap();
        assert_eq!(r.kind, RecordType::ChangeToExclude);
        assert_eq!(r.group, Ipv4Addr::new(239, 1, 2, 3));
        assert_eq!(
            r.sources.iter().collect::<Vec<_>>(),
            [Ipv4Addr::new(10, 0, 0, 1)]
        );
        assert_eq!(r.listening(), Some(true));
        assert_eq!(
            Records::<Ipv4Addr>::parse(&bytes, 2),
            Err(RecordError::Truncated)
        );
        // A source count past the end.
        bytes[3] = 2;
        assert_eq!(
            Records::<Ipv4Addr>::parse(&bytes, 1),
            Err(RecordError::Truncated)
        );
        // Aux data past the end.
        bytes[3] = 1;
        bytes[1] = 1;
        assert_eq!(
            Records::<Ipv4Addr>::parse(&bytes, 1),
            Err(RecordError::Truncated)
        );
        // A huge count on a short message is refused without reading past it.
        assert!(Records::<Ipv6Addr>::parse(&[0; 3], usize::from(u16::MAX)).is_err());
    }

    #[test]
    fn include_with_no_source_is_a_leave() {
        let leave = GroupRecord::<Ipv4Addr> {
            kind: RecordType::ChangeToInclude,
            group: Ipv4Addr::new(239, 0, 0, 1),
            sources: Sources::new(&[]),
            aux: &[],
        };
        assert_eq!(leave.listening(), Some(false));
        let block = GroupRecord {
            kind: RecordType::BlockOldSources,
            ..leave
        };
        assert_eq!(block.listening(), None);
    }
}
