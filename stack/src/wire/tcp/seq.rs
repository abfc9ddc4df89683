//! TCP sequence numbers and their modular arithmetic (RFC 9293 §3.4).
//!
//! Sequence numbers live on a circle of 2^32 values, so "before" and "after" only make sense
//! between numbers less than 2^31 apart: `a` is before `b` when `b - a`, taken as a signed
//! 32-bit difference, is positive (RFC 1982 serial number arithmetic, as RFC 9293 §3.4 uses
//! it). That order is not total and not transitive over the whole circle, so [`SeqNumber`]
//! implements [`PartialOrd`] but not `Ord`: comparisons are meaningful for numbers within
//! 2^31 − 1 of each other, which TCP guarantees for any two numbers of one connection's
//! window. Numbers exactly 2^31 apart are incomparable (`partial_cmp` is `None`, every
//! comparison operator is false). Nothing here can overflow or panic.

use core::cmp::Ordering;
use core::fmt;
use core::ops::{Add, AddAssign, Sub, SubAssign};

/// A 32-bit TCP sequence (or acknowledgment) number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SeqNumber(pub u32);

impl SeqNumber {
    /// The signed distance from `other` to `self`: positive when `self` is after `other`.
    /// Exactly 2^31 apart gives `i32::MIN` either way round.
    pub const fn signed_distance(self, other: SeqNumber) -> i32 {
        self.0.wrapping_sub(other.0) as i32
    }

    /// How far `self` lies ahead of `origin` going forward round the circle, in
    /// `0..2^32`: the number of sequence numbers in `origin..self`. This is the right
    /// measure when the caller knows `self` is not before `origin` (bytes in flight are
    /// `snd_nxt.distance_from(snd_una)`); if `self` is before `origin` it is 2^32 minus the
    /// gap, a huge number, never a panic.
    pub const fn distance_from(self, origin: SeqNumber) -> usize {
        self.0.wrapping_sub(origin.0) as usize
    }

    /// [`distance_from`](Self::distance_from) when `self` is at or after `origin` (less than
    /// 2^31 ahead), `None` when it is before.
    pub const fn checked_distance_from(self, origin: SeqNumber) -> Option<usize> {
        match self.signed_distance(origin) {
            d if d >= 0 => Some(d as usize),
            _ => None,
        }
    }

    /// Whether `self` lies in the `len` sequence numbers starting at `start`, that is
    /// `start <= self < start + len` round the circle. Well defined for every `len` up to
    /// 2^32 (a larger `len` covers the whole circle); an empty window holds nothing.
    /// This is the building block of RFC 9293 §3.10.7.4's acceptability test.
    pub const fn in_window(self, start: SeqNumber, len: usize) -> bool {
        // The forward distance is below 2^32, so widening it to u64 makes the test exact
        // even for windows of 2^32 or more on 64-bit and 32-bit targets alike.
        (self.0.wrapping_sub(start.0) as u64) < len as u64
    }

    /// The later of two numbers (`self` when they are equal or incomparable).
    #[must_use]
    pub fn max(self, other: SeqNumber) -> SeqNumber {
        if other > self { other } else { self }
    }

    /// The earlier of two numbers (`self` when they are equal or incomparable).
    #[must_use]
    pub fn min(self, other: SeqNumber) -> SeqNumber {
        if other < self { other } else { self }
    }
}

impl PartialOrd for SeqNumber {
    /// The RFC 9293 §3.4 order: valid for numbers less than 2^31 apart, `None` at exactly
    /// 2^31, where neither is before the other.
    fn partial_cmp(&self, other: &SeqNumber) -> Option<Ordering> {
        match self.signed_distance(*other) {
            i32::MIN => None,
            d => Some(d.cmp(&0)),
        }
    }
}

impl Add<usize> for SeqNumber {
    type Output = SeqNumber;

    /// Moves forward by `rhs` modulo 2^32 (so any `usize`, even past 2^32, is correct).
    fn add(self, rhs: usize) -> SeqNumber {
        SeqNumber(self.0.wrapping_add(rhs as u32))
    }
}

impl AddAssign<usize> for SeqNumber {
    fn add_assign(&mut self, rhs: usize) {
        *self = *self + rhs;
    }
}

impl Sub<usize> for SeqNumber {
    type Output = SeqNumber;

    /// Moves backward by `rhs` modulo 2^32.
    fn sub(self, rhs: usize) -> SeqNumber {
        SeqNumber(self.0.wrapping_sub(rhs as u32))
    }
}

impl SubAssign<usize> for SeqNumber {
    fn sub_assign(&mut self, rhs: usize) {
        *self = *self - rhs;
    }
}

impl Sub for SeqNumber {
    type Output = i32;

    /// The signed distance `self - rhs`, as [`SeqNumber::signed_distance`]; never panics.
    fn sub(self, rhs: SeqNumber) -> i32 {
        self.signed_distance(rhs)
    }
}

impl fmt::Display for SeqNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HALF: u32 = 1 << 31;

    #[test]
    fn order_across_the_wrap() {
        let a = SeqNumber(u32::MAX - 1);
        let b = a + 3usize;
        assert_eq!(b, SeqNumber(1));
        assert_eq!([a < b, b > a, a <= b, b >= a, a != b], [true; 5]);
        assert_eq!(b - a, 3);
        assert_eq!(a - b, -3);
        assert_eq!(b.distance_from(a), 3);
        assert_eq!(b.checked_distance_from(a), Some(3));
        assert_eq!(a.checked_distance_from(b), None);
        assert_eq!(a.distance_from(b), (1usize << 32) - 3);
        assert_eq!(a.max(b), b);
        assert_eq!(b.min(a), a);
        assert_eq!(b - 3usize, a);
        let mut c = a;
        c += 3;
        c -= 1;
        assert_eq!(c, SeqNumber(0));
    }

    #[test]
    fn half_circle_is_incomparable() {
        let a = SeqNumber(7);
        let b = a + HALF as usize;
        assert_eq!(a.partial_cmp(&b), None);
        assert_eq!(b.partial_cmp(&a), None);
        assert_eq!([a < b, a > b, a <= b, a >= b], [false; 4]);
        assert_eq!(a.max(b), a);
        assert_eq!(b.min(a), b);
        assert_eq!(b - a, i32::MIN);
        assert_eq!(b.checked_distance_from(a), None);
        assert_eq!(b.distance_from(a), HALF as usize);
    }

    #[test]
    fn windows() {
        let start = SeqNumber(u32::MAX - 9);
        assert!(start.in_window(start, 1));
        assert!(!start.in_window(start, 0));
        assert!((start + 19usize).in_window(start, 20));
        assert!(!(start + 20usize).in_window(start, 20));
        assert!(!(start - 1usize).in_window(start, 20));
        // A window of the whole circle holds everything.
        assert!((start - 1usize).in_window(start, 1 << 32));
        assert!((start - 1usize).in_window(start, usize::MAX));
    }

    #[test]
    fn adding_more_than_the_circle_wraps() {
        assert_eq!(SeqNumber(5) + ((1usize << 32) + 2), SeqNumber(7));
        assert_eq!(SeqNumber(5) - ((1usize << 32) + 6), SeqNumber(u32::MAX));
        assert_eq!(SeqNumber(5) + usize::MAX, SeqNumber(4));
    }

    proptest! {
        #[test]
        fn forward_is_after(a in any::<u32>(), n in 1u32..HALF) {
            let a = SeqNumber(a);
            let b = a + n as usize;
            prop_assert!(b > a);
            prop_assert!(a < b);
            prop_assert_eq!([b >= a, a <= b, a != b], [true; 3]);
            prop_assert_eq!(b.partial_cmp(&a), Some(Ordering::Greater));
            prop_assert_eq!(b - a, n as i32);
            prop_assert_eq!(a - b, -(n as i32));
            prop_assert_eq!(b.distance_from(a), n as usize);
            prop_assert_eq!(b.checked_distance_from(a), Some(n as usize));
            prop_assert_eq!(a.checked_distance_from(b), None);
            prop_assert_eq!(a.max(b), b);
            prop_assert_eq!(b.max(a), b);
            prop_assert_eq!(a.min(b), a);
            prop_assert_eq!(b.min(a), a);
            prop_assert_eq!(b - n as usize, a);
        }

        #[test]
        fn add_then_sub_is_identity(a in any::<u32>(), n in any::<usize>()) {
            let a = SeqNumber(a);
            prop_assert_eq!((a + n) - n, a);
            prop_assert_eq!((a - n) + n, a);
        }

        #[test]
        fn exactly_one_relation(a in any::<u32>(), b in any::<u32>()) {
            let (a, b) = (SeqNumber(a), SeqNumber(b));
            let relations = [a < b, a == b, a > b];
            let count = relations.iter().filter(|&&r| r).count();
            if b.0.wrapping_sub(a.0) == HALF {
                prop_assert_eq!(count, 0);
            } else {
                prop_assert_eq!(count, 1);
            }
            // Antisymmetry: the order seen from either side agrees.
            prop_assert_eq!(a < b, b > a);
            prop_assert_eq!(a <= b, b >= a);
            prop_assert_eq!(a.partial_cmp(&b).map(Ordering::reverse), b.partial_cmp(&a));
            // Distances agree with the order.
            prop_assert_eq!(a.checked_distance_from(b).is_some(), a >= b);
            prop_assert_eq!(a.wrapping_add_distance(b), a);
        }

        #[test]
        fn order_is_shift_invariant(a in any::<u32>(), b in any::<u32>(), k in any::<usize>()) {
            let (a, b) = (SeqNumber(a), SeqNumber(b));
            prop_assert_eq!(a.partial_cmp(&b), (a + k).partial_cmp(&(b + k)));
            prop_assert_eq!(a - b, (a + k) - (b + k));
        }

        #[test]
        fn in_window_matches_order(s in any::<u32>(), len in 0usize..(HALF as usize),
                                   off in any::<u32>()) {
            let start = SeqNumber(s);
            let x = start + off as usize;
            let expected = x >= start && x < start + len;
            prop_assert_eq!(x.in_window(start, len), expected);
        }
    }

    impl SeqNumber {
        /// `other` moved forward by the distance from `other` to `self`: always `self`.
        fn wrapping_add_distance(self, other: SeqNumber) -> SeqNumber {
            other + self.distance_from(other)
        }
    }
}
