//! Descriptors: how many host sockets flows may hold, and the socket that gives its unit of
//! that budget back when it closes.
//!
//! Every TCP flow to or from the host, UDP mapping, ping socket and multicast group socket (the
//! relay's, `mcast`) is one descriptor. The open-file limit is shared out once, at start
//! ([`DescriptorPlan`]): what is open already, a reserve that flows never touch — for the
//! control API's connections, the links, DNS upstream sockets and the like — and the rest for
//! flows ([`Config::max_host_sockets`]).
//! The flow bounds are lowered to that rest where they asked for more ([`fit`]), so a guest
//! that opens more connections than descriptors allow meets a bound that says so in `/stats`,
//! not a failing `socket()`.
//!
//! [`HostSocket`] carries its unit of the budget's descriptor gauge and gives it back when
//! the socket closes, whenever that is: a flow in TIME-WAIT that owes its host nothing holds
//! no socket and no unit, while one still writing its guest's bytes to the host (see the TCP
//! table's `drain`) keeps both until it is done.
//! Should `socket()` or `accept()` still fail with `EMFILE`/`ENFILE` (descriptors taken
//! elsewhere, or by another process for `ENFILE`), [`note_exhausted`] counts it under its own
//! name and warns at most once every [`WARN_EVERY`].

use std::io;
use std::ops::Deref;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use socket2::Socket;
use stack::time::Instant;

use crate::budget::Budget;
use crate::config::Config;
use crate::stats::Counters;

/// Descriptors set aside for everything but flows: an eighth of the limit, at least this many…
pub const RESERVED_MIN: usize = 128;
/// …and at most this many.
pub const RESERVED_MAX: usize = 4096;
/// Flows get at least this many host sockets, however low the limit.
pub const MIN_HOST_SOCKETS: usize = 16;
/// The least time between two warnings about exhausted descriptors.
pub const WARN_EVERY: Duration = Duration::from_secs(10);

/// How the open-file limit is shared out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DescriptorPlan {
    /// The soft `RLIMIT_NOFILE`.
    pub limit: usize,
    /// Open when the plan was made.
    pub in_use: usize,
    /// Never taken by flows.
    pub reserved: usize,
    /// What flows may hold.
    pub host_sockets: usize,
}

impl DescriptorPlan {
    /// The plan for a soft limit of `limit` with `in_use` descriptors open now.
    pub fn new(limit: u64, in_use: usize) -> DescriptorPlan {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let reserved = (limit / 8).clamp(RESERVED_MIN, RESERVED_MAX);
        let host_sockets = limit
            .saturating_sub(in_use)
            .saturating_sub(reserved)
            .max(MIN_HOST_SOCKETS);
        DescriptorPlan {
            limit,
            in_use,
            reserved,
            host_sockets,
        }
    }
}

/// A bound [`fit`] lowered: its name, what was asked, what it is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lowered {
    pub bound: &'static str,
    pub asked: usize,
    pub now: usize,
}

/// Gives flows `plan`'s host sockets and lowers every flow bound that asked for more than
/// that; returns what it lowered.
pub fn fit(config: &mut Config, plan: &DescriptorPlan) -> Vec<Lowered> {
    let max = plan.host_sockets;
    config.max_host_sockets = max;
    let mut lowered = Vec::new();
    for (bound, value) in [
        ("--max-tcp-flows", &mut config.max_tcp_flows),
        (
            "--max-tcp-flows-per-guest",
            &mut config.max_tcp_flows_per_guest,
        ),
        ("--max-udp-flows", &mut config.max_udp_flows),
        (
            "--max-udp-flows-per-guest",
            &mut config.max_udp_flows_per_guest,
        ),
    ] {
        if *value > max {
            lowered.push(Lowered {
                bound,
                asked: *value,
                now: max,
            });
            *value = max;
        }
    }
    lowered
}

/// One unit of the descriptor gauge, given back on drop.
#[derive(Debug)]
pub(crate) struct Unit(Arc<Budget>);

impl Unit {
    /// Takes a unit, or `None` when flows hold every host socket they may.
    pub(crate) fn take(budget: &Arc<Budget>) -> Option<Unit> {
        budget.descriptors.take().then(|| Unit(budget.clone()))
    }
}

impl Drop for Unit {
    fn drop(&mut self) {
        self.0.descriptors.give();
    }
}

/// A flow's host socket with its unit of the descriptor budget.
#[derive(Debug)]
pub(crate) struct HostSocket {
    socket: Socket,
    _unit: Unit,
}

impl HostSocket {
    pub(crate) fn new(socket: Socket, unit: Unit) -> HostSocket {
        HostSocket {
            socket,
            _unit: unit,
        }
    }
}

impl Deref for HostSocket {
    type Target = Socket;
    fn deref(&self) -> &Socket {
        &self.socket
    }
}

impl AsRawFd for HostSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

/// Whether `e` says the process (`EMFILE`) or the system (`ENFILE`) has no descriptor left.
pub(crate) fn is_exhausted(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// When the last warning went out, in microseconds of [`Instant`], plus one (0: never).
static LAST_WARNING: AtomicU64 = AtomicU64::new(0);

/// Counts a `socket()` or `accept()` that failed for want of descriptors, and warns at most
/// once every [`WARN_EVERY`] (over every worker).
pub(crate) fn note_exhausted(counters: &Counters, now: Instant, what: &str, e: &io::Error) {
    Counters::bump(&counters.no_descriptors);
    let stamp = now.as_micros().saturating_add(1);
    let every = WARN_EVERY.as_micros() as u64;
    let last = LAST_WARNING.load(Ordering::Relaxed);
    if (last == 0 || stamp.saturating_sub(last) >= every)
        && LAST_WARNING
            .compare_exchange(last, stamp, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::warn!(
            error = %e,
            "out of descriptors: {what} refused (counted in forwarder.no_descriptors; \
             raise the open-file limit or lower the flow bounds)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_keeps_a_reserve_and_the_rest_goes_to_flows() {
        let p = DescriptorPlan::new(1024, 20);
        assert_eq!(p.reserved, 128);
        assert_eq!(p.host_sockets, 1024 - 20 - 128);
        let p = DescriptorPlan::new(1 << 20, 30);
        assert_eq!(p.reserved, RESERVED_MAX);
        assert_eq!(p.host_sockets, (1 << 20) - 30 - RESERVED_MAX);
        let p = DescriptorPlan::new(100, 50);
        assert_eq!(p.host_sockets, MIN_HOST_SOCKETS);
        let p = DescriptorPlan::new(u64::MAX, 10);
        assert!(p.host_sockets > 1 << 40);
    }

    #[test]
    fn fit_lowers_only_the_bounds_above_the_plan() {
        let mut c = Config {
            max_tcp_flows: 16384,
            max_tcp_flows_per_guest: 100,
            max_udp_flows: 4096,
            max_udp_flows_per_guest: 4096,
            ..Config::default()
        };
        let plan = DescriptorPlan::new(1024, 24);
        let lowered = fit(&mut c, &plan);
        assert_eq!(c.max_host_sockets, 872);
        assert_eq!((c.max_tcp_flows, c.max_tcp_flows_per_guest), (872, 100));
        assert_eq!((c.max_udp_flows, c.max_udp_flows_per_guest), (872, 872));
        let names: Vec<_> = lowered.iter().map(|l| l.bound).collect();
        assert_eq!(
            names,
            [
                "--max-tcp-flows",
                "--max-udp-flows",
                "--max-udp-flows-per-guest"
            ]
        );
        assert_eq!(lowered[0].asked, 16384);
    }

    #[test]
    fn units_come_back_when_the_socket_closes() {
        let budget = Arc::new(Budget::new(&Config {
            max_host_sockets: 1,
            ..Config::default()
        }));
        let unit = Unit::take(&budget).unwrap();
        assert!(Unit::take(&budget).is_none());
        let socket = Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
        let held = HostSocket::new(socket, unit);
        assert!(held.as_raw_fd() >= 0);
        assert_eq!(budget.descriptors.get(), 1);
        drop(held);
        assert_eq!(budget.descriptors.get(), 0);
        assert!(Unit::take(&budget).is_some());
    }

    #[test]
    fn exhaustion_is_told_apart() {
        assert!(is_exhausted(&io::Error::from_raw_os_error(libc::EMFILE)));
        assert!(is_exhausted(&io::Error::from_raw_os_error(libc::ENFILE)));
        assert!(!is_exhausted(&io::Error::from_raw_os_error(
            libc::ECONNREFUSED
        )));
        let counters = Counters::default();
        let e = io::Error::from_raw_os_error(libc::EMFILE);
        note_exhausted(&counters, Instant::from_micros(5), "a connect", &e);
        note_exhausted(&counters, Instant::from_micros(6), "a connect", &e);
        assert_eq!(counters.no_descriptors.load(Ordering::Relaxed), 2);
    }
}
