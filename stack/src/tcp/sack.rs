//! The sender's SACK scoreboard (RFC 2018, used as in RFC 6675): which sequence ranges
//! above SND.UNA the peer reports holding, so that loss recovery retransmits only the holes
//! and a go-back after a timeout skips what arrived.
//!
//! Fixed size ([`MAX_BLOCKS`] merged ranges); a block that fits nowhere is forgotten, which
//! only costs a needless retransmission. Ranges are validated against SND.UNA and SND.MAX
//! before they are recorded (RFC 2018 §4 blocks must lie in the sent space), so peer data
//! cannot make the scoreboard claim anything unsent.

use crate::wire::tcp::SeqNumber;

/// The most disjoint SACKed ranges remembered.
pub(crate) const MAX_BLOCKS: usize = 8;

#[derive(Debug, Clone, Default)]
pub(crate) struct Scoreboard {
    /// Sorted, disjoint `[start, end)` ranges, all within (SND.UNA, SND.MAX].
    blocks: [(SeqNumber, SeqNumber); MAX_BLOCKS],
    count: usize,
}

impl Scoreboard {
    fn live(&self) -> &[(SeqNumber, SeqNumber)] {
        self.blocks.get(..self.count).unwrap_or(&[])
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub(crate) fn clear(&mut self) {
        self.count = 0;
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
        let (mut start, mut end) = (start, end);
        let mut merged = [(SeqNumber(0), SeqNumber(0)); MAX_BLOCKS + 1];
        let mut n = 0;
        let mut placed = false;
        for &(s, e) in self.live() {
            if e < start {
                merged[n] = (s, e);
                n += 1;
            } else if s > end {
                if !placed {
                    merged[n] = (start, end);
                    n += 1;
                    placed = true;
                }
                merged[n] = (s, e);
                n += 1;
            } else {
                // Overlapping or touching: absorb.
                start = start.min(s);
                end = end.max(e);
            }
        }
        if !placed {
            merged[n] = (start, end);
            n += 1;
        }
        // Over capacity, the highest range goes (the least useful for the next hole).
        let n = n.min(MAX_BLOCKS);
        self.blocks.copy_from_slice(&merged[..MAX_BLOCKS]);
        self.count = n;
    }

    /// Forgets everything at or below SND.UNA.
    pub(crate) fn prune(&mut self, snd_una: SeqNumber) {
        let mut kept = 0;
        for i in 0..self.count {
            let (s, e) = self.blocks[i];
            if e > snd_una {
                self.blocks[kept] = (s.max(snd_una), e);
                kept += 1;
            }
        }
        self.count = kept;
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
        for i in 0..20u32 {
            sb.add(sq(i * 10 + 1), sq(i * 10 + 5), sq(0), sq(1000));
        }
        assert_eq!(sb.count, MAX_BLOCKS);
        assert_eq!(sb.highest(), Some(sq(75)));
    }
}
