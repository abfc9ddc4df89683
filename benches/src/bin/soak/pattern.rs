//! Seeded pseudo-random numbers and the payload pattern both ends regenerate to verify bytes.

/// SplitMix64's finaliser: a good 64-bit mix of `x`.
pub(crate) fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A seeded generator (SplitMix64): the same seed gives the same run.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    /// Uniform in `0..n` (`n` > 0; the modulo bias is irrelevant here).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `per_million` / 1,000,000.
    pub(crate) fn chance(&mut self, per_million: u32) -> bool {
        self.below(1_000_000) < u64::from(per_million)
    }

    /// Log-uniform in `lo..=hi`: as many small transfers as large ones.
    pub(crate) fn log_uniform(&mut self, lo: u64, hi: u64) -> u64 {
        let (l, h) = ((lo.max(1) as f64).ln(), (hi.max(lo) as f64).ln());
        let f = self.below(1 << 20) as f64 / f64::from(1u32 << 20);
        ((l + (h - l) * f).exp() as u64).clamp(lo, hi)
    }
}

/// Writes bytes `offset..offset + buf.len()` of the pattern for `seed` into `buf`.
pub(crate) fn fill(seed: u64, offset: u64, buf: &mut [u8]) {
    let mut word_index = u64::MAX;
    let mut word = [0u8; 8];
    for (i, b) in (offset..).zip(buf.iter_mut()) {
        if i / 8 != word_index {
            word_index = i / 8;
            word = mix(seed ^ word_index.wrapping_mul(0xd6e8_feb8_6659_fd93)).to_le_bytes();
        }
        *b = word[(i % 8) as usize];
    }
}

/// Compares `data` with the pattern at `offset`; the index in `data` of the first wrong byte.
pub(crate) fn check(seed: u64, offset: u64, data: &[u8], scratch: &mut Vec<u8>) -> Option<usize> {
    scratch.resize(data.len(), 0);
    fill(seed, offset, scratch);
    data.iter().zip(scratch.iter()).position(|(a, b)| a != b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pattern_does_not_depend_on_how_it_is_cut() {
        let mut whole = vec![0; 1000];
        fill(7, 3, &mut whole);
        let mut parts = vec![0; 1000];
        let (a, b) = parts.split_at_mut(333);
        fill(7, 3, a);
        fill(7, 336, b);
        assert_eq!(whole, parts);
        let mut scratch = Vec::new();
        assert_eq!(check(7, 3, &whole, &mut scratch), None);
        whole[500] ^= 1;
        assert_eq!(check(7, 3, &whole, &mut scratch), Some(500));
        let mut other = vec![0; 1000];
        fill(8, 3, &mut other);
        assert_ne!(whole, other);
    }

    #[test]
    fn log_uniform_stays_in_range() {
        let mut r = Rng::new(1);
        for _ in 0..10_000 {
            let v = r.log_uniform(1024, 4 << 20);
            assert!((1024..=4 << 20).contains(&v));
        }
        let drops = (0..100_000).filter(|_| r.chance(10_000)).count();
        assert!((700..1300).contains(&drops), "{drops}");
    }
}
