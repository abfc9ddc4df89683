//! Whether a worker polls without sleeping before it waits, and for how long.
//!
//! A worker that sleeps in `epoll_wait` is woken by the kernel when a frame or a reply
//! arrives, and on a ping-pong those wake-ups (a context switch on our side, often an
//! inter-processor interrupt) cost about a third of a round trip (benches/RESULTS.md, "Busy
//! polling and the saved read"). So a worker whose last wait was short
//! expects the next to be short too and polls with a zero timeout for up to a budget
//! (`--busy-poll`) before it sleeps. One whose last wait was longer than the budget sleeps at
//! once: an idle or trickling guest costs nothing, and a worker that gives up after a budget
//! spent in vain spends at most one budget per long gap. A timer that falls due within the
//! budget says nothing either way and leaves the guess as it was: a busy worker has timers
//! due all the time (thousands of flows in TIME-WAIT expiring), and taking each one for the
//! end of the traffic made it sleep through the next frame.
//!
//! While it polls, the worker yields its core to any thread that wants it, and it stays
//! unparked, so other threads hand it frames without waking it.

use std::time::Duration;

/// The worker's guess about its next wait.
#[derive(Debug, Clone, Copy)]
pub(super) struct BusyPoll {
    budget: Duration,
    /// The last wait ended with something ready within the budget.
    hot: bool,
}

impl BusyPoll {
    /// A budget of zero never polls.
    pub(super) fn new(budget: Duration) -> BusyPoll {
        BusyPoll { budget, hot: false }
    }

    /// How long to poll without sleeping before a wait that would otherwise last up to
    /// `timeout` (`None`: no timer due); zero to sleep at once.
    pub(super) fn spin_for(&self, timeout: Option<Duration>) -> Duration {
        if !self.hot {
            return Duration::ZERO;
        }
        timeout.map_or(self.budget, |t| t.min(self.budget))
    }

    /// A wait, polling and sleeping together, took `waited` and ended with something ready
    /// (`ready`) or on its timeout.
    pub(super) fn waited(&mut self, waited: Duration, ready: bool) {
        if self.budget.is_zero() || waited > self.budget {
            self.hot = false;
        } else if ready {
            self.hot = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: Duration = Duration::from_micros(50);

    #[test]
    fn a_worker_polls_only_after_a_wait_within_the_budget() {
        let mut b = BusyPoll::new(BUDGET);
        assert_eq!(b.spin_for(None), Duration::ZERO, "a fresh worker sleeps");
        b.waited(Duration::from_micros(20), true);
        assert_eq!(b.spin_for(None), BUDGET);
        b.waited(Duration::from_micros(50), true);
        assert_eq!(
            b.spin_for(None),
            BUDGET,
            "the budget itself still counts as short"
        );
        b.waited(Duration::from_micros(51), true);
        assert_eq!(
            b.spin_for(None),
            Duration::ZERO,
            "a long gap: sleep next time"
        );
        b.waited(Duration::from_micros(5), true);
        assert_eq!(b.spin_for(None), BUDGET, "and a short one turns it back on");
    }

    #[test]
    fn a_timer_within_the_budget_leaves_the_guess_as_it_was() {
        let mut b = BusyPoll::new(BUDGET);
        b.waited(Duration::from_micros(10), true);
        b.waited(Duration::from_micros(10), false);
        assert_eq!(b.spin_for(None), BUDGET, "still polling");
        b.waited(Duration::from_micros(51), false);
        assert_eq!(b.spin_for(None), Duration::ZERO, "a long wait for a timer");
        b.waited(Duration::from_micros(10), false);
        assert_eq!(b.spin_for(None), Duration::ZERO, "still sleeping");
    }

    #[test]
    fn polling_stops_before_a_timer_that_is_due_sooner() {
        let mut b = BusyPoll::new(BUDGET);
        b.waited(Duration::ZERO, true);
        let soon = Duration::from_micros(7);
        assert_eq!(b.spin_for(Some(soon)), soon);
        assert_eq!(b.spin_for(Some(Duration::from_secs(1))), BUDGET);
    }

    #[test]
    fn a_budget_of_zero_never_polls() {
        let mut b = BusyPoll::new(Duration::ZERO);
        b.waited(Duration::ZERO, true);
        assert_eq!(b.spin_for(None), Duration::ZERO);
    }
}
