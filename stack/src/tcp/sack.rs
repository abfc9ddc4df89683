//! The sender's SACK scoreboard (RFC 2018, used as in RFC 6675): which sequence ranges
//! above SND.UNA the peer reports holding, so that loss recovery retransmits only the holes
//! and a go-back after a timeout skips what arrived.
//!
//! Bounded ([`MAX_BLOCKS`] merged ranges); a block that fits nowhere is forgotten, which
//! only costs a needless retransmission. Ranges are validated against SND.UNA and SND.MAX
//! before they are recorded (RFC 2018 §4 blocks must lie in the sent space), so peer data
//! cannot make the scoreboard claim anything unsent.

use crate::wire::tcp::SeqNumber;

/// The most disjoint SACKed ranges remembered (8 bytes each, allocated on demand).
pub(crate) const MAX_BLOCKS: usize = 64;

#[derive(Debug, Clone, Default)]
pub(crate) struct Scoreboard {
    /// Sorted, disjoint `[start, end)` ranges, all within (SND.UNA, SND.MAX]; allocated
    /// only while the peer reports holes.
    blocks: Vec<(SeqNumber, SeqNumber)>,
}

impl Scoreboard {
    fn live(&self) -> &[(SeqNumber, SeqNumber)] {
        &self.blocks
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    pub(crate) fn clear(&mut self) {
        self.blocks = Vec::new();
    }

    /// Records the block `[start, end)` if it lies within `(snd_una, snd_max]`.
    pub(crate) fn add(
        &mut self,
        start: SeqNumber,
        end: SeqNumber,
        snd_una: SeqNumber,
        snd_max: SeqNumber,
    ) {
        if !(start < end && start >= snd_una && end <= snd_max) {
            return;
        }
        // The blocks that overlap or touch the new one are `first..last`.
        let first = self.blocks.partition_point(|b| b.1 < start);
        let last = self.blocks.partition_point(|b| b.0 <= end);
        if first >= last {
            if self.blocks.len() >= MAX_BLOCKS {
                // Full: keep the lower blocks, which the next holes are found among.
                if first >= self.blocks.len() {
                    return;
                }
                self.blocks.pop();
            }
            self.blocks.insert(first, (start, end));
            return;
        }
        let merged_start = self.blocks.get(first).map_or(start, |b| b.0.min(start));
        let merged_end = last
            .checked_sub(1)
            .and_then(|i| self.blocks.get(i))
            .map_or(end, |b| b.1.max(end));
        self.blocks.drain(first..last);
        self.blocks.insert(first, (merged_start, merged_end));
    }

    /// Forgets everything at or below SND.UNA.
    pub(crate) fn prune(&mut self, snd_una: SeqNumber) {
        self.blocks.retain_mut(|b| {
            if b.1 <= snd_una {
                return false;
            }
            b.0 = b.0.max(snd_una);
            true
        });
        if self.blocks.is_empty() {
            self.blocks = Vec::new();
        }
    }

    /// The highest SACKed sequence number, if any.
    #[cfg(test)]
    pub(crate) fn highest(&self) -> Option<SeqNumber> {
        self.live().last().map(|b| b.1)
    }

    /// Bytes SACKed at or above `seq`.
    pub(crate) fn sacked_above(&self, seq: SeqNumber) -> usize {
        self.live()
            .iter()
            .filter(|b| b.1 > seq)
            .map(|b| b.1.distance_from(b.0.max(seq)))
            .sum()
    }

    /// The first hole at or after `from` and below the highest SACKed byte: its start and
    /// length.
    pub(crate) fn next_hole(&self, from: SeqNumber) -> Option<(SeqNumber, usize)> {
        let mut at = from;
        for &(s, e) in self.live() {
            if e <= at {
                continue;
            }
            if s > at {
                return Some((at, s.distance_from(at)));
            }
            at = e;
        }
        None
    }

    /// The first hole at or after `from` that counts as lost (RFC 6675 §4 IsLost): more
    /// than `threshold` bytes SACKed above its start. Holes with less above them may just
    /// be reordered, and are left alone.
    pub(crate) fn lost_hole(
        &self,
        from: SeqNumber,
        threshold: usize,
    ) -> Option<(SeqNumber, usize)> {
        let (start, len) = self.next_hole(from)?;
        (self.sacked_above(start) > threshold).then_some((start, len))
    }

    /// If `seq` lies in a SACKed range, where that range ends; and where the next SACKed
    /// range after `seq` starts. For skipping SACKed data when going back after a timeout.
    pub(crate) fn skip(&self, seq: SeqNumber) -> (SeqNumber, Option<SeqNumber>) {
        let mut at = seq;
        for &(s, e) in self.live() {
            if e <= at {
                continue;
            }
            if s <= at {
                at = e;
                continue;
            }
            return (at, Some(s));
        }
        (at, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sq(n: u32) -> SeqNumber {
        SeqNumber(n)
    }

    #[test]
    fn holes_and_skips() {
        let mut sb = Scoreboard::default();
        let (una, max) = (sq(u32::MAX - 99), sq(5000));
        // Across the wrap.
        sb.add(sq(100), sq(200), una, max);
        sb.add(sq(300), sq(400), una, max);
        sb.add(sq(150), sq(250), una, max);
        // Outside the sent space: ignored.
        sb.add(sq(6000), sq(7000), una, max);
        sb.add(una - 10, una + 5, una, max);
        assert_eq!(sb.highest(), Some(sq(400)));
        assert_eq!(sb.next_hole(una), Some((una, 200)));
        assert_eq!(sb.next_hole(sq(100)), Some((sq(250), 50)));
        assert_eq!(sb.next_hole(sq(400)), None);
        assert_eq!(sb.lost_hole(sq(100), 99), Some((sq(250), 50)));
        assert_eq!(sb.lost_hole(sq(100), 100), None);
        assert_eq!(sb.sacked_above(sq(0)), 250);
        assert_eq!(sb.skip(sq(120)), (sq(250), Some(sq(300))));
        assert_eq!(sb.skip(sq(260)), (sq(260), Some(sq(300))));
        assert_eq!(sb.skip(sq(390)), (sq(400), None));
        sb.prune(sq(180));
        assert_eq!(sb.sacked_above(sq(0)), 170);
        sb.prune(sq(400));
        assert!(sb.is_empty());
    }

    #[test]
    fn bounded() {
        let mut sb = Scoreboard::default();
        for i in 0..100u32 {
            sb.add(sq(i * 10 + 3), sq(i * 10 + 5), sq(0), sq(10_000));
        }
        assert_eq!(sb.blocks.len(), MAX_BLOCKS);
        let top = (MAX_BLOCKS as u32 - 1) * 10 + 5;
        assert_eq!(sb.highest(), Some(sq(top)));
        // A lower block still gets in, pushing out the highest.
        sb.add(sq(0), sq(1), sq(0), sq(10_000));
        assert_eq!(sb.highest(), Some(sq(top - 10)));
    }
}
