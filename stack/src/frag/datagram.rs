//! One datagram being reassembled, family-blind: fragment data at its offsets, the ranges
//! received, and the first fragment's header once it has come.

use super::{FragDropReason, Key};
use crate::time::Instant;

/// One fragment, as the family modules read it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Piece<'a> {
    pub(super) key: Key,
    /// Where `data` goes in the fragmentable part, in bytes.
    pub(super) offset: usize,
    pub(super) data: &'a [u8],
    /// More fragments follow (IPv4 MF, IPv6 M).
    pub(super) more: bool,
    /// Bytes the rebuilt datagram's length counts besides the data, as far as this fragment
    /// tells: its IPv4 header length (20 at least), or its IPv6 unfragmentable extension
    /// headers' length.
    pub(super) header_extra: usize,
    /// For the fragment at offset 0: what the rebuilt header is made from.
    pub(super) first: Option<First<'a>>,
}

/// The first fragment's header, from which the reassembled one is made.
#[derive(Debug, Clone, Copy)]
pub(super) struct First<'a> {
    /// IPv4: the header with its options. IPv6: the fixed header and the unfragmentable
    /// extension headers, up to the fragment header.
    pub(super) header: &'a [u8],
    /// IPv6: where in `header` the next-header byte that names the fragment header is.
    pub(super) next_header_at: usize,
    /// IPv6: the fragment header's next header, which takes that byte's place.
    pub(super) next_header: u8,
}

/// What a fragment did to its datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Progress {
    Kept,
    Duplicate,
    Complete,
}

/// A received range of the fragmentable part, `start..end`.
type Range = (u32, u32);

/// The smallest range list allocated, so a typical three-fragment datagram allocates once.
const MIN_RANGES: usize = 4;

#[derive(Debug)]
pub(super) struct Datagram {
    deadline: (Instant, u64),
    /// The fragmentable part, zeros where nothing has arrived.
    pub(super) data: Vec<u8>,
    /// Ranges received, sorted by start, never overlapping.
    ranges: Vec<Range>,
    /// Bytes received: the sum of the ranges' lengths.
    received: usize,
    /// The fragmentable part's length, once the last fragment has come.
    pub(super) total: Option<usize>,
    /// The first fragment's header (see [`First::header`]); empty until it comes.
    pub(super) header: Vec<u8>,
    /// The rebuilt datagram's length besides the data, once the first fragment has come.
    header_extra: usize,
    pub(super) next_header_at: usize,
    pub(super) next_header: u8,
    /// The first fragment's data length, for the quote in an ICMP error.
    pub(super) first_len: usize,
    /// The caller's tag given with the first fragment (`Reassembler::handle_tagged`).
    pub(super) tag: u64,
}

impl Datagram {
    pub(super) fn new(deadline: (Instant, u64)) -> Datagram {
        Datagram {
            deadline,
            data: Vec::new(),
            ranges: Vec::new(),
            received: 0,
            total: None,
            header: Vec::new(),
            header_extra: 0,
            next_header_at: 0,
            next_header: 0,
            first_len: 0,
            tag: 0,
        }
    }

    pub(super) fn deadline(&self) -> (Instant, u64) {
        self.deadline
    }

    /// The bytes this datagram holds, by capacity.
    pub(super) fn footprint(&self) -> usize {
        self.data
            .capacity()
            .saturating_add(self.header.capacity())
            .saturating_add(self.ranges.capacity().saturating_mul(size_of::<Range>()))
    }

    /// The first fragment's header followed by the datagram's data, up to its known total
    /// length: the reassembled packet before its header fields are fixed up.
    pub(super) fn joined(&self) -> Vec<u8> {
        let total = self.total.unwrap_or(0).min(self.data.len());
        let data = self.data.get(..total).unwrap_or_default();
        let mut out = Vec::with_capacity(self.header.len().saturating_add(total));
        out.extend_from_slice(&self.header);
        out.extend_from_slice(data);
        out
    }

    /// The highest end received.
    fn highest_end(&self) -> usize {
        self.ranges.last().map_or(0, |r| r.1 as usize)
    }

    /// Takes `piece`, whose data ends at `end` in the fragmentable part, growing by at most
    /// `budget` bytes. On an error the caller abandons the datagram.
    pub(super) fn insert(
        &mut self,
        piece: &Piece<'_>,
        end: usize,
        budget: usize,
        max_len: usize,
        max_fragments: usize,
    ) -> Result<Progress, FragDropReason> {
        let offset = piece.offset;
        self.check_end(piece.more, end)?;
        let (start32, end32) = (
            u32::try_from(offset).map_err(|_| FragDropReason::TooBig)?,
            u32::try_from(end).map_err(|_| FragDropReason::TooBig)?,
        );
        let at = self.ranges.partition_point(|r| r.0 < start32);
        if let Some(&(s, e)) = self.ranges.get(at)
            && (s, e) == (start32, end32)
        {
            // RFC 8200 §4.5: an exact duplicate may be dropped alone, the datagram kept.
            return match self.data.get(offset..end) {
                Some(held) if held == piece.data => Ok(Progress::Duplicate),
                _ => Err(FragDropReason::Overlap),
            };
        }
        let overlaps_before = at
            .checked_sub(1)
            .and_then(|i| self.ranges.get(i))
            .is_some_and(|r| r.1 > start32);
        let overlaps_after = self.ranges.get(at).is_some_and(|r| r.0 < end32);
        // RFC 5722 §4 (and our IPv4 policy): any other overlap abandons the datagram.
        if overlaps_before || overlaps_after {
            return Err(FragDropReason::Overlap);
        }
        if self.ranges.len() >= max_fragments {
            return Err(FragDropReason::TooManyFragments);
        }
        // Once the first fragment has come its header counts; before, this fragment's.
        let header_extra = if self.header.is_empty() {
            piece.header_extra
        } else {
            self.header_extra
        };
        let longest = end
            .max(self.highest_end())
            .max(self.total.unwrap_or(0))
            .saturating_add(header_extra);
        if longest > max_len {
            return Err(FragDropReason::TooBig);
        }
        self.reserve(piece, end, budget, max_len, max_fragments)?;
        if self.data.len() < end {
            self.data.resize(end, 0);
        }
        let Some(slot) = self.data.get_mut(offset..end) else {
            return Err(FragDropReason::Malformed);
        };
        slot.copy_from_slice(piece.data);
        self.ranges.insert(at, (start32, end32));
        self.received = self.received.saturating_add(piece.data.len());
        if !piece.more {
            self.total = Some(end);
        }
        if let Some(first) = &piece.first
            && self.header.is_empty()
        {
            self.header.extend_from_slice(first.header);
            self.header_extra = header_extra;
            self.next_header_at = first.next_header_at;
            self.next_header = first.next_header;
            self.first_len = piece.data.len();
        }
        if self.total == Some(self.received) && !self.header.is_empty() {
            return Ok(Progress::Complete);
        }
        Ok(Progress::Kept)
    }

    /// The length checks against a last fragment, this one or an earlier one.
    fn check_end(&self, more: bool, end: usize) -> Result<(), FragDropReason> {
        match self.total {
            // Data past the end, or a second last fragment with another end.
            Some(total) if end > total || (!more && end != total) => {
                Err(FragDropReason::Inconsistent)
            }
            Some(_) => Ok(()),
            // A last fragment that ends before data already received.
            None if !more && end < self.highest_end() => Err(FragDropReason::Inconsistent),
            None => Ok(()),
        }
    }

    /// Makes room for `piece` within `budget` bytes of growth: the data buffer grows to
    /// the known length exactly, or else doubles (to at most `max_len`) when the budget
    /// allows and to `end` when it does not; the range list doubles up to `max_fragments`.
    fn reserve(
        &mut self,
        piece: &Piece<'_>,
        end: usize,
        budget: usize,
        max_len: usize,
        max_fragments: usize,
    ) -> Result<(), FragDropReason> {
        let header_growth = match &piece.first {
            Some(first) if self.header.is_empty() => first.header.len(),
            _ => 0,
        };
        let ranges_cap = if self.ranges.len() < self.ranges.capacity() {
            self.ranges.capacity()
        } else {
            self.ranges
                .capacity()
                .saturating_mul(2)
                .max(MIN_RANGES)
                .min(max_fragments)
                .max(self.ranges.len().saturating_add(1))
        };
        let ranges_growth = ranges_cap
            .saturating_sub(self.ranges.capacity())
            .saturating_mul(size_of::<Range>());
        let cap = self.data.capacity();
        let known = self.total.or((!piece.more).then_some(end));
        let exact = end.max(cap);
        let generous = match known {
            Some(total) => total.max(cap),
            None => cap.saturating_mul(2).min(max_len).max(exact),
        };
        let fixed = header_growth.saturating_add(ranges_growth);
        let data_cap = [generous, exact]
            .into_iter()
            .find(|&c| c.saturating_sub(cap).saturating_add(fixed) <= budget)
            .ok_or(FragDropReason::MemoryLimit)?;
        self.data
            .reserve_exact(data_cap.saturating_sub(self.data.len()));
        self.ranges
            .reserve_exact(ranges_cap.saturating_sub(self.ranges.len()));
        if header_growth > 0 {
            self.header.reserve_exact(header_growth);
        }
        Ok(())
    }

    /// What an ICMP error may quote, if the first fragment came.
    pub(super) fn quote(&self, key: &Key) -> Option<Vec<u8>> {
        if self.header.is_empty() {
            return None;
        }
        Some(match key {
            Key::V4 { .. } => super::v4::quote(self),
            Key::V6 { ident, .. } => super::v6::quote(self, *ident),
        })
    }
}
