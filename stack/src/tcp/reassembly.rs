//! Bookkeeping for out-of-order data: which byte ranges past RCV.NXT have arrived.
//!
//! The bytes themselves go straight into the receive ring's free space
//! (`Ring::write_at`); this only remembers where. Offsets are relative to RCV.NXT. At most
//! [`MAX_RANGES`] disjoint ranges are tracked; a segment that would need more is refused
//! (and retransmitted by the peer later), so memory stays fixed whatever arrives. The
//! caller bounds the byte span by the receive window and the configured out-of-order limit.

/// The most disjoint out-of-order ranges held; a fixed array, so the bookkeeping never
/// allocates.
pub(crate) const MAX_RANGES: usize = 8;

/// Why an out-of-order segment could not be recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooManyRanges;

/// Sorted, disjoint, non-adjacent ranges `[start, end)` of offsets past RCV.NXT.
#[derive(Debug, Clone, Default)]
pub(crate) struct Assembler {
    ranges: [(u32, u32); MAX_RANGES],
    count: usize,
}

impl Assembler {
    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn live(&self) -> &[(u32, u32)] {
        self.ranges.get(..self.count).unwrap_or(&[])
    }

    /// The ranges, nearest first (for SACK blocks).
    pub(crate) fn ranges(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.live().iter().map(|&(s, e)| (s as usize, e as usize))
    }

    /// Records `[offset, offset + len)`, merging with what touches it. On
    /// [`TooManyRanges`] nothing changes.
    pub(crate) fn add(&mut self, offset: usize, len: usize) -> Result<(), TooManyRanges> {
        if len == 0 {
            return Ok(());
        }
        let (mut start, mut end) = (offset as u32, offset.saturating_add(len) as u32);
        // The ranges that overlap or touch the new one, `first..last`.
        let live = self.live();
        let first = live.iter().position(|r| r.1 >= start).unwrap_or(live.len());
        let last = live
            .iter()
            .rposition(|r| r.0 <= end)
            .map_or(first, |i| (i + 1).max(first));
        if first == last && self.count == MAX_RANGES {
            return Err(TooManyRanges);
        }
        if let (Some(a), Some(b)) = (
            live.get(first),
            last.checked_sub(1).and_then(|i| live.get(i)),
        ) {
            if first < last {
                start = start.min(a.0);
                end = end.max(b.1);
            }
        }
        // Replace ranges first..last by the merged one.
        let mut merged = [(0u32, 0u32); MAX_RANGES];
        let mut n = 0;
        for (i, r) in self.live().iter().enumerate() {
            if i == first {
                merged[n] = (start, end);
                n += 1;
            }
            if i < first || i >= last {
                if let Some(slot) = merged.get_mut(n) {
                    *slot = *r;
                    n += 1;
                }
            }
        }
        if first >= self.count {
            if let Some(slot) = merged.get_mut(n) {
                *slot = (start, end);
                n += 1;
            }
        }
        self.ranges = merged;
        self.count = n;
        Ok(())
    }

    /// If a range starts at offset 0, removes it and returns its length: those bytes are
    /// now in order. All offsets then move down by that length.
    pub(crate) fn take_front(&mut self) -> usize {
        match self.live().first() {
            Some(&(0, end)) => {
                self.ranges.copy_within(1..self.count, 0);
                self.count -= 1;
                self.shift(end as usize);
                end as usize
            }
            _ => 0,
        }
    }

    /// Moves every offset down by `n` (RCV.NXT advanced by `n`), dropping what falls below 0.
    pub(crate) fn shift(&mut self, n: usize) {
        let n = n.min(u32::MAX as usize) as u32;
        let mut kept = 0;
        for i in 0..self.count {
            let (s, e) = self.ranges[i];
            if e > n {
                self.ranges[kept] = (s.saturating_sub(n), e - n);
                kept += 1;
            }
        }
        self.count = kept;
    }

    pub(crate) fn clear(&mut self) {
        self.count = 0;
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
        assert_eq!(a.add(1000, 1), Err(TooManyRanges));
        // One that merges is still fine.
        a.add(0, 1000).unwrap();
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
