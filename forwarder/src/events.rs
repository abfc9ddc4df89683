//! Flows refused or failed, told at debug level (`--debug`, or `RUST_LOG=debug`): a host
//! connect refused, unreachable or timed out, NAT policy, a bound hit. One line each, with
//! the guest and the destination it asked for, at most [`LINES_PER_SECOND`] per worker; a
//! line after a quiet spell says how many were left out (`skipped`). Nothing is formatted
//! unless debug logging is on.

use std::net::SocketAddr;

use stack::time::Instant;

/// Lines a worker writes per second at most.
pub(crate) const LINES_PER_SECOND: u32 = 20;

/// One worker's rate limit.
#[derive(Debug, Default)]
pub(crate) struct FlowLog {
    /// The second the count is for (µs since the epoch, divided down).
    second: u64,
    lines: u32,
    skipped: u64,
}

impl FlowLog {
    /// Whether a line may be written at `now`; with it, how many were left out before.
    fn allow(&mut self, now: Instant) -> Option<u64> {
        let second = now.as_micros() / 1_000_000;
        if second != self.second {
            self.second = second;
            self.lines = 0;
        }
        if self.lines >= LINES_PER_SECOND {
            self.skipped = self.skipped.saturating_add(1);
            return None;
        }
        self.lines += 1;
        Some(std::mem::take(&mut self.skipped))
    }

    /// Tells that the flow from `guest` to `remote` was refused or failed: `what`.
    pub(crate) fn note(
        &mut self,
        now: Instant,
        what: impl std::fmt::Display,
        guest: SocketAddr,
        remote: SocketAddr,
    ) {
        if !tracing::enabled!(tracing::Level::DEBUG) {
            return;
        }
        if let Some(skipped) = self.allow(now) {
            tracing::debug!(%guest, %remote, skipped, "flow: {what}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_the_rate_and_the_skipped_are_counted() {
        let mut log = FlowLog::default();
        let t = |ms: u64| Instant::from_micros(ms * 1000);
        let allowed = (0..100).filter(|_| log.allow(t(1500)).is_some()).count();
        assert_eq!(allowed, LINES_PER_SECOND as usize);
        assert_eq!(log.allow(t(2000)), Some(100 - u64::from(LINES_PER_SECOND)));
        assert_eq!(log.allow(t(2001)), Some(0));
    }
}
