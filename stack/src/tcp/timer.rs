//! The connection's timers as one table: each [`Timer`] is either unset or due at an
//! [`Instant`]; [`Timers::next`] is the earliest deadline, which is what
//! `Connection::poll_timeout` reports. Expired timers are taken one at a time by
//! [`Timers::expired`] so the handler sees each exactly once.

use crate::time::Instant;

/// What a deadline is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// Retransmission of the oldest unacknowledged segment, SYN and FIN included
    /// (RFC 6298).
    Retransmit,
    /// A delayed acknowledgment is owed (RFC 9293 §3.8.6.3, RFC 1122 §4.2.3.2).
    DelayedAck,
    /// Zero-window probing (RFC 9293 §3.8.6.1).
    Persist,
    /// TIME-WAIT's 2 MSL (RFC 9293 §3.6.1).
    Close,
    /// A tail loss probe (RFC 8985 §7): well before the RTO, resend the last segment so that
    /// a loss at the end of a flight is repaired by fast recovery instead of a timeout.
    Probe,
}

const COUNT: usize = 5;

impl Timer {
    const ALL: [Timer; COUNT] = [
        Timer::Retransmit,
        Timer::DelayedAck,
        Timer::Persist,
        Timer::Close,
        Timer::Probe,
    ];

    const fn index(self) -> usize {
        match self {
            Timer::Retransmit => 0,
            Timer::DelayedAck => 1,
            Timer::Persist => 2,
            Timer::Close => 3,
            Timer::Probe => 4,
        }
    }
}

/// A deadline per timer.
#[derive(Debug, Clone, Default)]
pub(crate) struct Timers {
    due: [Option<Instant>; COUNT],
}

impl Timers {
    pub(crate) fn set(&mut self, timer: Timer, at: Instant) {
        self.due[timer.index()] = Some(at);
    }

    pub(crate) fn stop(&mut self, timer: Timer) {
        self.due[timer.index()] = None;
    }

    pub(crate) fn get(&self, timer: Timer) -> Option<Instant> {
        self.due[timer.index()]
    }

    pub(crate) fn is_set(&self, timer: Timer) -> bool {
        self.get(timer).is_some()
    }

    pub(crate) fn stop_all(&mut self) {
        self.due = [None; COUNT];
    }

    /// The earliest deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.due.iter().flatten().min().copied()
    }

    /// Takes (unsets and returns) one timer due at or before `now`, earliest first.
    pub(crate) fn expired(&mut self, now: Instant) -> Option<Timer> {
        let timer = Timer::ALL
            .into_iter()
            .filter(|t| self.get(*t).is_some_and(|at| at <= now))
            .min_by_key(|t| self.get(*t))?;
        self.stop(timer);
        Some(timer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_the_minimum_and_expiry_takes_in_order() {
        let mut timers = Timers::default();
        assert_eq!(timers.next(), None);
        timers.set(Timer::Close, Instant::from_millis(30));
        timers.set(Timer::Retransmit, Instant::from_millis(20));
        timers.set(Timer::DelayedAck, Instant::from_millis(10));
        assert_eq!(timers.next(), Some(Instant::from_millis(10)));
        assert_eq!(timers.expired(Instant::from_millis(5)), None);
        let now = Instant::from_millis(25);
        assert_eq!(timers.expired(now), Some(Timer::DelayedAck));
        assert_eq!(timers.expired(now), Some(Timer::Retransmit));
        assert_eq!(timers.expired(now), None);
        assert_eq!(timers.next(), Some(Instant::from_millis(30)));
    }
}
