//! The forwarder's shared budget: bounds that hold across every worker.
//!
//! Workers own their flows (sharded by flow hash), so a guest's connections are spread over
//! all of them and a per-worker share of a bound would refuse early or late depending on the
//! hash. The budget counts instead, in one place:
//! - live TCP flows, in total and per guest (source address); a flow in TIME-WAIT no longer
//!   counts (it gave its unit back when it entered TIME-WAIT; the worker's table reclaims
//!   such flows when it is full);
//! - UDP mappings, in total and per guest;
//! - host connects in flight, in total.
//!
//! It is touched only when a flow opens or closes (never per packet): totals are atomics,
//! the per-guest counts a `parking_lot` mutex around a map. The map holds only guests with at
//! least one unit taken, so it has at most as many entries as units are taken, and never more
//! than [`MAX_GUESTS`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;
use serde::Serialize;

use crate::config::Config;

/// Guests the per-guest counts remember at most; a new guest beyond this is refused as if
/// it were over its own bound.
pub const MAX_GUESTS: usize = 65536;

/// Why a unit was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The bound over every guest was reached.
    Total,
    /// This guest's bound was reached.
    Guest,
}

/// A counter with a bound.
#[derive(Debug)]
pub(crate) struct Gauge {
    max: usize,
    now: AtomicUsize,
}

impl Gauge {
    fn new(max: usize) -> Gauge {
        Gauge {
            max,
            now: AtomicUsize::new(0),
        }
    }

    /// Takes one unit, or returns false at the bound.
    pub(crate) fn take(&self) -> bool {
        self.now
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok()
    }

    /// Gives one unit back.
    pub(crate) fn give(&self) {
        let _ = self
            .now
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    pub(crate) fn get(&self) -> usize {
        self.now.load(Ordering::Acquire)
    }
}

/// A bound in total and a bound per guest.
#[derive(Debug)]
pub(crate) struct Pool {
    total: Gauge,
    per_guest: u32,
    guests: Mutex<HashMap<IpAddr, u32>>,
}

impl Pool {
    fn new(total: usize, per_guest: usize) -> Pool {
        Pool {
            total: Gauge::new(total),
            per_guest: u32::try_from(per_guest).unwrap_or(u32::MAX),
            guests: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one unit for `guest`.
    pub(crate) fn take(&self, guest: IpAddr) -> Result<(), Refusal> {
        let mut guests = self.guests.lock();
        let held = guests.get(&guest).copied().unwrap_or(0);
        if held >= self.per_guest || (held == 0 && guests.len() >= MAX_GUESTS) {
            return Err(Refusal::Guest);
        }
        if !self.total.take() {
            return Err(Refusal::Total);
        }
        guests.insert(guest, held + 1);
        Ok(())
    }

    /// Gives back one unit `guest` took.
    pub(crate) fn give(&self, guest: IpAddr) {
        let mut guests = self.guests.lock();
        let Some(held) = guests.get_mut(&guest) else {
            return;
        };
        *held = held.saturating_sub(1);
        if *held == 0 {
            guests.remove(&guest);
        }
        self.total.give();
    }

    pub(crate) fn open(&self) -> usize {
        self.total.get()
    }

    /// Guests holding at least one unit.
    fn guests(&self) -> usize {
        self.guests.lock().len()
    }
}

/// Every shared bound of the forwarder. See the module docs.
#[derive(Debug)]
pub(crate) struct Budget {
    pub tcp: Pool,
    pub udp: Pool,
    pub connects: Gauge,
    /// Echo requests awaiting replies, over all workers (each holds its share; shown only).
    pub max_icmp_requests: usize,
}

impl Budget {
    pub(crate) fn new(config: &Config) -> Budget {
        Budget {
            tcp: Pool::new(config.max_tcp_flows, config.max_tcp_flows_per_guest),
            udp: Pool::new(config.max_udp_flows, config.max_udp_flows_per_guest),
            connects: Gauge::new(config.max_connects_in_flight),
            max_icmp_requests: config.max_icmp_requests,
        }
    }

    pub(crate) fn usage(&self) -> BudgetUsage {
        BudgetUsage {
            max_tcp_flows: self.tcp.total.max,
            max_tcp_flows_per_guest: self.tcp.per_guest as usize,
            tcp_flows: self.tcp.open(),
            tcp_guests: self.tcp.guests(),
            max_udp_flows: self.udp.total.max,
            max_udp_flows_per_guest: self.udp.per_guest as usize,
            udp_flows: self.udp.open(),
            udp_guests: self.udp.guests(),
            max_connects: self.connects.max,
            connects: self.connects.get(),
            max_icmp_requests: self.max_icmp_requests,
        }
    }
}

/// The budget's bounds and what is taken of them now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct BudgetUsage {
    pub max_tcp_flows: usize,
    pub max_tcp_flows_per_guest: usize,
    /// Live TCP flows (TIME-WAIT not included).
    pub tcp_flows: usize,
    /// Guests with at least one live TCP flow.
    pub tcp_guests: usize,
    pub max_udp_flows: usize,
    pub max_udp_flows_per_guest: usize,
    pub udp_flows: usize,
    pub udp_guests: usize,
    pub max_connects: usize,
    pub connects: usize,
    pub max_icmp_requests: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ip(n: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 168, 127, n))
    }

    #[test]
    fn per_guest_then_total() {
        let pool = Pool::new(3, 2);
        assert_eq!(pool.take(ip(2)), Ok(()));
        assert_eq!(pool.take(ip(2)), Ok(()));
        assert_eq!(pool.take(ip(2)), Err(Refusal::Guest));
        assert_eq!(pool.take(ip(3)), Ok(()));
        assert_eq!(pool.take(ip(4)), Err(Refusal::Total));
        assert_eq!(pool.open(), 3);
        assert_eq!(pool.guests(), 2);
        pool.give(ip(2));
        assert_eq!(pool.take(ip(4)), Ok(()));
        assert_eq!(pool.take(ip(2)), Err(Refusal::Total));
    }

    #[test]
    fn giving_back_forgets_the_guest_and_never_underflows() {
        let pool = Pool::new(10, 10);
        pool.take(ip(2)).unwrap();
        pool.give(ip(2));
        assert_eq!(pool.guests(), 0);
        assert_eq!(pool.open(), 0);
        // A guest that holds nothing gives nothing back.
        pool.give(ip(2));
        pool.give(ip(9));
        assert_eq!(pool.open(), 0);
        assert_eq!(pool.take(ip(2)), Ok(()));
    }

    #[test]
    fn the_guest_map_is_bounded() {
        let pool = Pool::new(MAX_GUESTS + 10, 1);
        for n in 0..MAX_GUESTS {
            let guest = IpAddr::V6(std::net::Ipv6Addr::from(n as u128));
            pool.take(guest).unwrap();
        }
        assert_eq!(pool.take(ip(2)), Err(Refusal::Guest));
        assert_eq!(pool.guests(), MAX_GUESTS);
    }

    #[test]
    fn gauge_bound() {
        let g = Gauge::new(1);
        assert!(g.take());
        assert!(!g.take());
        g.give();
        g.give();
        assert_eq!(g.get(), 0);
        assert!(g.take());
    }

    #[test]
    fn shared_across_threads() {
        let pool = std::sync::Arc::new(Pool::new(100, 100));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let pool = pool.clone();
                std::thread::spawn(move || (0..50).filter(|_| pool.take(ip(2)).is_ok()).count())
            })
            .collect();
        let taken: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(taken, 100);
        assert_eq!(pool.open(), 100);
    }
}
