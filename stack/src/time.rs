//! Time as the stack sees it: a monotonic instant handed in by the embedder.
//!
//! The stack never reads a clock. The embedder picks an epoch (its start, say) and passes
//! `Instant::from_micros(elapsed)` with every input; tests drive a virtual clock the same way.
//! Durations are `core::time::Duration`. Arithmetic saturates: no input time can panic it.
//! [`Epoch`] converts between `std::time::Instant` and [`Instant`] for embedders, in one place.

use core::ops::{Add, Sub};
use core::time::Duration;

/// A point in time, in microseconds since an epoch of the embedder's choosing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant {
    micros: u64,
}

impl Instant {
    /// The epoch.
    pub const ZERO: Instant = Instant { micros: 0 };

    pub const fn from_micros(micros: u64) -> Instant {
        Instant { micros }
    }

    pub const fn from_millis(millis: u64) -> Instant {
        Instant {
            micros: millis.saturating_mul(1000),
        }
    }

    pub const fn as_micros(self) -> u64 {
        self.micros
    }

    pub const fn as_millis(self) -> u64 {
        self.micros / 1000
    }

    /// Time since `earlier`, zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_micros(self.micros.saturating_sub(earlier.micros))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;

    fn add(self, rhs: Duration) -> Instant {
        let micros = u64::try_from(rhs.as_micros()).unwrap_or(u64::MAX);
        Instant {
            micros: self.micros.saturating_add(micros),
        }
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;

    fn sub(self, rhs: Duration) -> Instant {
        let micros = u64::try_from(rhs.as_micros()).unwrap_or(u64::MAX);
        Instant {
            micros: self.micros.saturating_sub(micros),
        }
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;

    /// Saturating: an earlier minus a later instant is zero.
    fn sub(self, rhs: Instant) -> Duration {
        self.saturating_duration_since(rhs)
    }
}

/// The bridge between `std::time::Instant` and [`Instant`]: an origin the embedder picks once
/// per process, so every thread converts the same way. It never reads the clock either; the
/// embedder passes `std::time::Instant::now()` in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Epoch {
    origin: std::time::Instant,
}

impl Epoch {
    pub const fn new(origin: std::time::Instant) -> Epoch {
        Epoch { origin }
    }

    /// `at` as a stack instant; instants before the origin are the epoch itself.
    pub fn instant(&self, at: std::time::Instant) -> Instant {
        let micros = at.saturating_duration_since(self.origin).as_micros();
        Instant::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
    }

    /// `at` as a `std::time::Instant` (saturating far in the future).
    pub fn std(&self, at: Instant) -> std::time::Instant {
        let since = Duration::from_micros(at.as_micros());
        const CENTURY: Duration = Duration::from_secs(86_400 * 365 * 100);
        self.origin
            .checked_add(since)
            .or_else(|| self.origin.checked_add(CENTURY))
            .unwrap_or(self.origin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Instant::from_millis(5);
        assert_eq!(t + Duration::from_millis(2), Instant::from_millis(7));
        assert_eq!(t - Duration::from_secs(1), Instant::ZERO);
        assert_eq!(Instant::ZERO - t, Duration::ZERO);
        assert_eq!(t - Instant::ZERO, Duration::from_millis(5));
        assert_eq!(
            Instant::from_micros(u64::MAX) + Duration::MAX,
            Instant::from_micros(u64::MAX)
        );
    }

    #[test]
    fn epoch_round_trips() {
        let origin = std::time::Instant::now();
        let epoch = Epoch::new(origin);
        let later = origin + Duration::from_millis(1500);
        assert_eq!(epoch.instant(later), Instant::from_millis(1500));
        assert_eq!(epoch.std(Instant::from_millis(1500)), later);
        assert_eq!(epoch.instant(origin), Instant::ZERO);
    }
}
