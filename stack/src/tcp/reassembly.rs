//! Bookkeeping for out-of-order data: which byte ranges past RCV.NXT have arrived.
//!
//! The bytes themselves go straight into the receive ring's free space
//! (`Ring::write_at`); this only remembers where. Offsets are relative to RCV.NXT. At most
//! [`MAX_RANGES`] disjoint ranges are tracked; a segment that would need more is refused
//! (and retransmitted by the peer later), so memory stays bounded whatever arrives. The
//! caller bounds the byte span by the receive window and the configured out-of-order limit.

/// The most disjoint out-of-order ranges held. A burst of drops on a fast path leaves a
/// hole every other segment, so this is generous; the list is allocated only while holes
/// exist, at 8 bytes a range.
pub(crate) const MAX_RANGES: usize = 256;

/// Why an out-of-order segment could not be recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooManyRanges;

/// Sorted, disjoint, non-adjacent ranges `[start, end)` of offsets past RCV.NXT.
#[derive(Debug, Clone, Default)]
pub(crate) struct Assembler {
    ranges: Vec<(u32, u32)>,
}

impl Assembler {
    pub(crate) fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The ranges, nearest first (for SACK blocks).
    pub(crate) fn ranges(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.ranges.iter().map(|&(s, e)| (s as usize, e as usize))
    }

    /// Records `[offset, offset + len)`, merging with what touches it. On
    /// [`TooManyRanges`] nothing changes.
    pub(crate) fn add(&mut self, offset: usize, len: usize) -> Result<(), TooManyRanges> {
        if len == 0 {
            return Ok(());
        }
        let start = offset.min(u32::MAX as usize) as u32;
        let end = offset.saturating_add(len).min(u32::MAX as usize) as u32;
        // The ranges that overlap or touch the new one are `first..last`.
        let first = self.ranges.partition_point(|r| r.1 < start);
        let last = self.ranges.partition_point(|r| r.0 <= end);
        if first >= last {
            if self.ranges.len() >= MAX_RANGES {
                return Err(TooManyRanges);
            }
            self.ranges.insert(first, (start, end));
            return Ok(());
        }
        let merged_start = self.ranges.get(first).map_or(start, |r| r.0.min(start));
        let merged_end = last
            .checked_sub(1)
            .and_then(|i| self.ranges.get(i))
            .map_or(end, |r| r.1.max(end));
        self.ranges.drain(first..last);
        self.ranges.insert(first, (merged_start, merged_end));
        Ok(())
    }

    /// If a range starts at offset 0, removes it and returns its length: those bytes are
    /// now in order. All offsets then move down by that length.
    pub(crate) fn take_front(&mut self) -> usize {
        match self.ranges.first() {
            Some(&(0, end)) => {
                self.shift(end as usize);
                end as usize
            }
            _ => 0,
        }
    }

    /// Moves every offset down by `n` (RCV.NXT advanced by `n`), dropping what falls below 0.
    pub(crate) fn shift(&mut self, n: usize) {
        let n = n.min(u32::MAX as usize) as u32;
        self.ranges.retain_mut(|r| {
            if r.1 <= n {
                return false;
            }
            *r = (r.0.saturating_sub(n), r.1 - n);
            true
        });
        if self.ranges.is_empty() {
            self.ranges = Vec::new();
        }
    }

    pub(crate) fn clear(&mut self) {
        self.ranges = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(a: &Assembler) -> Vec<(usize, usize)> {
        a.ranges().collect()
    }

    #[test]
    fn merges_and_takes_front() {
        let mut a = Assembler::default();
        a.add(10, 5).unwrap();
        a.add(30, 5).unwrap();
        a.add(20, 5).unwrap();
        assert_eq!(ranges(&a), [(10, 15), (20, 25), (30, 35)]);
        // Bridges two ranges.
        a.add(14, 7).unwrap();
        assert_eq!(ranges(&a), [(10, 25), (30, 35)]);
        // Touching ranges merge.
        a.add(25, 5).unwrap();
        assert_eq!(ranges(&a), [(10, 35)]);
        assert_eq!(a.take_front(), 0);
        a.add(0, 10).unwrap();
        assert_eq!(a.take_front(), 35);
        assert!(a.is_empty());
    }

    #[test]
    fn covering_range_and_limit() {
        let mut a = Assembler::default();
        for i in 0..MAX_RANGES {
            a.add(10 * i + 5, 2).unwrap();
        }
        assert_eq!(a.add(10 * MAX_RANGES + 100, 1), Err(TooManyRanges));
        // One that merges is still fine.
        a.add(0, 10 * MAX_RANGES).unwrap();
        assert_eq!(ranges(&a), [(0, 10 * MAX_RANGES)]);
        a.shift(10 * MAX_RANGES - 1000);
        assert_eq!(ranges(&a), [(0, 1000)]);
        a.shift(100);
        assert_eq!(ranges(&a), [(0, 900)]);
        a.shift(1000);
        assert!(a.is_empty());
    }

    #[test]
    fn shift_keeps_partial() {
        let mut a = Assembler::default();
        a.add(10, 10).unwrap();
        a.add(40, 10).unwrap();
        a.shift(15);
        assert_eq!(ranges(&a), [(0, 5), (25, 35)]);
    }
}
