//! When the workers hand the allocator's free memory back to the system.
//!
//! glibc gives memory back by itself only from the top of a heap: the pages of free blocks
//! that lie below a live one stay resident until `malloc_trim` walks the free lists
//! ([`crate::sys::release_free_memory`]). A worker's flow buffers come and go with every
//! transfer, in sizes that double from 4 KiB, and those below the allocator's mmap threshold
//! (host-switch fixes it at 128 KiB) are carved from the worker's arena, so under steady load
//! the arena collects free space between live blocks, kept and counted in the process's RSS
//! (benches/RESULTS.md, "malloc_stats").
//!
//! The policy, looked at on each worker's sweep (once a second), never per packet. A worker
//! owes a trim
//! - when one of its tables shrank (a burst's memory is free), or
//! - when its TCP flows gave back [`FREED_STEP`] bytes of buffers or more since its last
//!   trim (closed flows and idle buffers alike), or
//! - when it holds no TCP flow and gave back any buffer since its last trim (it went quiet).
//!
//! What it owes is paid through a [`Gate`] shared by every worker: the process trims at most
//! once per [`MIN_INTERVAL`], since one trim walks every thread's arena, taking each one's
//! lock in turn. A worker the gate turns away keeps what it owes and asks again on its next
//! sweep, so what it freed goes back within [`MIN_INTERVAL`] and a sweep. A worker that
//! frees nothing never trims: an idle process costs nothing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use stack::time::Instant;

/// Buffer bytes a worker's flows give back before it owes a trim while it has flows.
pub(crate) const FREED_STEP: usize = 1 << 20;

/// The least time between two trims of the process.
pub(crate) const MIN_INTERVAL: Duration = Duration::from_secs(5);

/// Lets one trim through per [`MIN_INTERVAL`], whichever worker asks; shared by them all.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    /// When the last trim was let through, in microseconds since the epoch, plus one (0 when
    /// none was yet).
    last: AtomicU64,
}

impl Gate {
    /// Whether a trim may run at `now`; if so, `now` is the last trim's time from here on.
    /// Of two workers asking at once, one gets it.
    pub(crate) fn pass(&self, now: Instant) -> bool {
        let at = now.as_micros().saturating_add(1);
        let last = self.last.load(Ordering::Relaxed);
        let interval = u64::try_from(MIN_INTERVAL.as_micros()).unwrap_or(u64::MAX);
        if last != 0 && at.saturating_sub(last) < interval {
            return false;
        }
        self.last
            .compare_exchange(last, at, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }
}

/// What one worker owes since its last trim.
#[derive(Debug, Default)]
pub(crate) struct Owed {
    /// Buffer bytes its flows gave back.
    freed: usize,
    /// Whether one of its tables shrank.
    shrank: bool,
}

impl Owed {
    /// One sweep: its flows gave back `freed` bytes since the last, a table `shrank`, and
    /// `idle` when the worker holds no TCP flow now. Whether to trim now: the policy of the
    /// module docs says one is owed and `gate` lets it through (what is owed is then paid).
    pub(crate) fn sweep(
        &mut self,
        gate: &Gate,
        now: Instant,
        freed: usize,
        shrank: bool,
        idle: bool,
    ) -> bool {
        self.freed = self.freed.saturating_add(freed);
        self.shrank |= shrank;
        let owed = self.shrank || self.freed >= FREED_STEP || (idle && self.freed > 0);
        if owed && gate.pass(now) {
            *self = Owed::default();
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> Instant {
        Instant::from_millis(secs * 1000)
    }

    #[test]
    fn gate_lets_one_trim_through_per_interval() {
        let gate = Gate::default();
        assert!(gate.pass(at(0)), "the first trim passes at the epoch too");
        assert!(!gate.pass(at(0)));
        assert!(!gate.pass(at(4)));
        assert!(gate.pass(at(5)));
        assert!(!gate.pass(at(9)));
        assert!(gate.pass(at(12)));
    }

    #[test]
    fn nothing_freed_owes_nothing() {
        let gate = Gate::default();
        let mut owed = Owed::default();
        assert!(!owed.sweep(&gate, at(10), 0, false, true));
        assert!(!owed.sweep(&gate, at(11), 0, false, false));
    }

    #[test]
    fn busy_worker_trims_once_a_step_is_freed() {
        let gate = Gate::default();
        let mut owed = Owed::default();
        assert!(!owed.sweep(&gate, at(10), FREED_STEP / 2, false, false));
        assert!(owed.sweep(&gate, at(11), FREED_STEP / 2, false, false));
        assert!(!owed.sweep(&gate, at(12), FREED_STEP / 2, false, false));
    }

    #[test]
    fn quiet_worker_trims_what_little_it_freed() {
        let gate = Gate::default();
        let mut owed = Owed::default();
        assert!(!owed.sweep(&gate, at(10), 4096, false, false));
        assert!(owed.sweep(&gate, at(11), 0, false, true));
    }

    #[test]
    fn shrunk_table_owes_a_trim() {
        let gate = Gate::default();
        let mut owed = Owed::default();
        assert!(owed.sweep(&gate, at(10), 0, true, false));
        assert!(!owed.sweep(&gate, at(11), 0, false, false), "paid");
    }

    #[test]
    fn turned_away_worker_keeps_its_debt_until_the_gate_opens() {
        let gate = Gate::default();
        let (mut a, mut b) = (Owed::default(), Owed::default());
        assert!(a.sweep(&gate, at(10), FREED_STEP, false, false));
        assert!(!b.sweep(&gate, at(10), FREED_STEP, false, false));
        for s in 11..15 {
            assert!(!b.sweep(&gate, at(s), 0, false, false));
        }
        assert!(b.sweep(&gate, at(15), 0, false, false));
    }
}
