//! What the soak counts, shared by every thread.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// How many failure messages are kept (the counters count them all).
const MAX_FAILURES: usize = 50;

#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Guest→host bytes the host server compared with the pattern and found right.
    pub(crate) up_verified: AtomicU64,
    /// Host→guest bytes the guest compared with the pattern and found right.
    pub(crate) down_verified: AtomicU64,
    /// Transfers (either direction) or datagrams with a byte that differs from the pattern.
    pub(crate) mismatches: AtomicU64,
    pub(crate) tcp_ok: AtomicU64,
    pub(crate) tcp_failed: AtomicU64,
    /// Connections the host server handled badly (timeouts, resets) — also seen by the guest.
    pub(crate) server_errors: AtomicU64,
    pub(crate) udp_sent: AtomicU64,
    /// Echoes received and verified (in time or late).
    pub(crate) udp_echoed: AtomicU64,
    /// Echoes that arrived after the next datagram was sent (included in `udp_echoed`).
    pub(crate) udp_late: AtomicU64,
    /// Echoes of a datagram already echoed.
    pub(crate) udp_duplicate: AtomicU64,
    pub(crate) ping_sent: AtomicU64,
    pub(crate) ping_received: AtomicU64,
    pub(crate) dns_ok: AtomicU64,
    pub(crate) dns_failed: AtomicU64,
    /// Queries the upstream (on the host's loopback) answered.
    pub(crate) upstream_queries: AtomicU64,
    pub(crate) frames_to_switch: AtomicU64,
    pub(crate) frames_to_guest: AtomicU64,
    pub(crate) dropped_to_switch: AtomicU64,
    pub(crate) dropped_to_guest: AtomicU64,
    /// Relay errors (a TAP write refused, the switch's socket failing).
    pub(crate) relay_errors: AtomicU64,
    failures: Mutex<Vec<String>>,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Records why something failed (the first [`MAX_FAILURES`] reasons are kept) and prints it.
    pub(crate) fn failure(&self, what: String) {
        eprintln!("soak: {what}");
        if let Ok(mut f) = self.failures.lock()
            && f.len() < MAX_FAILURES
        {
            f.push(what);
        }
    }

    pub(crate) fn failures(&self) -> Vec<String> {
        self.failures.lock().map(|f| f.clone()).unwrap_or_default()
    }
}
