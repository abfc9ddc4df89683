//! The forwarder's shared budget: bounds that hold across every worker.
//!
//! Workers own their flows (sharded by flow hash), so a guest's connections are spread over
//! all of them and a per-worker share of a bound would refuse early or late depending on the
//! hash. The budget counts instead, in one place:
//! - live TCP flows, in total and per guest (source address), the in-guest API's connections
//!   included; a flow in TIME-WAIT no longer counts (it gave its unit back when it entered
//!   TIME-WAIT; the worker's table reclaims such flows when it is full);
//! - the in-guest API's connections, in total (each also a TCP flow above);
//! - UDP mappings, in total and per guest;
//! - host connects in flight, in total and as a fair share ([`Connects`]): one guest, or one
//!   destination, holds at most `max / (n + 1)` of them while `n` guests (destinations) hold
//!   some, so a SYN flood at a server that never answers leaves room for everyone else;
//! - host sockets, in total ([`Budget::descriptors`]): what the open-file limit leaves for
//!   flows once descriptors are set aside for the control API, the links and DNS (see
//!   [`crate::descriptors`]).
//!
//! It is touched only when a flow opens or closes (never per packet): totals are atomics,
//! the per-guest counts a `parking_lot` mutex around a map. The map holds only guests with at
//! least one unit taken, so it has at most as many entries as units are taken, and never more
//! than [`MAX_GUESTS`].

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
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

/// Why a host connect was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectRefusal {
    /// Every connect slot is taken.
    Total,
    /// This guest holds its share.
    Guest,
    /// This destination holds its share.
    Destination,
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

    /// Takes one unit for `guest`. A guest bound no lower than the total's (the default)
    /// never refuses by itself: a guest holding it holds the total too.
    pub(crate) fn take(&self, guest: IpAddr) -> Result<(), Refusal> {
        let mut guests = self.guests.lock();
        let held = guests.get(&guest).copied().unwrap_or(0);
        let own_bound = (self.per_guest as usize) < self.total.max;
        if (own_bound && held >= self.per_guest) || (held == 0 && guests.len() >= MAX_GUESTS) {
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

/// Host connects in flight: a bound in total, and a fair share per guest and per
/// destination (address and port).
///
/// A key (guest or destination) may take a slot while it holds fewer than
/// `max(1, min(cap, max / (n + 1)))`, where `n` is the number of keys holding a slot once
/// this one does: a lone guest gets half, and the other half stays for the next guest; with
/// two holding, each gets a third, and so on. A key that held more before others came keeps
/// its slots until they complete or time out (nothing is taken back), so a newcomer may wait
/// for those, never longer than the connect timeout.
#[derive(Debug)]
pub(crate) struct Connects {
    max: usize,
    /// The static caps (`--max-connects-per-guest`, `--max-connects-per-destination`).
    per_guest: usize,
    per_destination: usize,
    held: Mutex<ConnectsHeld>,
}

#[derive(Debug, Default)]
struct ConnectsHeld {
    total: usize,
    guests: HashMap<IpAddr, usize>,
    destinations: HashMap<SocketAddr, usize>,
}

/// The share a key may hold when `holders` keys (itself included) hold some.
fn fair_share(max: usize, cap: usize, holders: usize) -> usize {
    (max / holders.saturating_add(1)).min(cap).max(1)
}

/// Whether a key holding `held` of its map may take one more.
fn under_share<K: std::hash::Hash + Eq>(
    map: &HashMap<K, usize>,
    key: &K,
    max: usize,
    cap: usize,
) -> bool {
    let held = map.get(key).copied().unwrap_or(0);
    let holders = map.len() + usize::from(held == 0);
    held < fair_share(max, cap, holders)
}

fn release<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: &K) -> bool {
    let Some(held) = map.get_mut(key) else {
        return false;
    };
    *held = held.saturating_sub(1);
    if *held == 0 {
        map.remove(key);
    }
    true
}

impl Connects {
    fn new(max: usize, per_guest: usize, per_destination: usize) -> Connects {
        Connects {
            max,
            per_guest,
            per_destination,
            held: Mutex::new(ConnectsHeld::default()),
        }
    }

    /// Takes a slot for a connect from `guest` to `destination`.
    pub(crate) fn take(
        &self,
        guest: IpAddr,
        destination: SocketAddr,
    ) -> Result<(), ConnectRefusal> {
        let mut held = self.held.lock();
        if held.total >= self.max {
            return Err(ConnectRefusal::Total);
        }
        if !under_share(&held.guests, &guest, self.max, self.per_guest) {
            return Err(ConnectRefusal::Guest);
        }
        if !under_share(
            &held.destinations,
            &destination,
            self.max,
            self.per_destination,
        ) {
            return Err(ConnectRefusal::Destination);
        }
        held.total += 1;
        *held.guests.entry(guest).or_insert(0) += 1;
        *held.destinations.entry(destination).or_insert(0) += 1;
        Ok(())
    }

    /// Gives back the slot a connect from `guest` to `destination` took.
    pub(crate) fn give(&self, guest: IpAddr, destination: SocketAddr) {
        let mut held = self.held.lock();
        let ConnectsHeld {
            total,
            guests,
            destinations,
        } = &mut *held;
        if release(guests, &guest) && release(destinations, &destination) {
            *total = total.saturating_sub(1);
        }
    }

    pub(crate) fn open(&self) -> usize {
        self.held.lock().total
    }

    /// (guests, destinations) holding a slot now.
    fn holders(&self) -> (usize, usize) {
        let held = self.held.lock();
        (held.guests.len(), held.destinations.len())
    }
}

/// Every shared bound of the forwarder. See the module docs.
#[derive(Debug)]
pub(crate) struct Budget {
    pub tcp: Pool,
    pub udp: Pool,
    pub connects: Connects,
    /// The in-guest API's connections.
    pub api: Gauge,
    /// Host sockets (each one descriptor) of every flow.
    pub descriptors: Gauge,
    /// Echo requests awaiting replies, over all workers (each holds its share; shown only).
    pub max_icmp_requests: usize,
    /// Multicast groups joined on the host (the relay keeps the count; shown only).
    pub max_multicast_groups: usize,
}

impl Budget {
    pub(crate) fn new(config: &Config) -> Budget {
        Budget {
            tcp: Pool::new(config.max_tcp_flows, config.max_tcp_flows_per_guest),
            udp: Pool::new(config.max_udp_flows, config.max_udp_flows_per_guest),
            connects: Connects::new(
                config.max_connects_in_flight,
                config.max_connects_per_guest,
                config.max_connects_per_destination,
            ),
            api: Gauge::new(config.max_api_connections),
            descriptors: Gauge::new(config.max_host_sockets),
            max_icmp_requests: config.max_icmp_requests,
            max_multicast_groups: config.max_multicast_groups,
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
            connects: self.connects.open(),
            max_connects_per_guest: self.connects.per_guest,
            connects_guests: self.connects.holders().0,
            max_connects_per_destination: self.connects.per_destination,
            connects_destinations: self.connects.holders().1,
            max_api_connections: self.api.max,
            api_connections: self.api.get(),
            max_host_sockets: self.descriptors.max,
            host_sockets: self.descriptors.get(),
            max_icmp_requests: self.max_icmp_requests,
            max_multicast_groups: self.max_multicast_groups,
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
    pub max_connects_per_guest: usize,
    /// Guests with a connect in flight.
    pub connects_guests: usize,
    pub max_connects_per_destination: usize,
    /// Destinations with a connect in flight.
    pub connects_destinations: usize,
    pub max_api_connections: usize,
    pub api_connections: usize,
    /// Host sockets flows may hold at once (descriptors).
    pub max_host_sockets: usize,
    pub host_sockets: usize,
    pub max_icmp_requests: usize,
    pub max_multicast_groups: usize,
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

    fn dst(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn a_lone_guest_gets_half_the_connects_and_the_next_guest_the_rest() {
        let c = Connects::new(8, 8, 8);
        // Guest .2 floods one destination: it holds half.
        let taken = (0..8).filter(|_| c.take(ip(2), dst(1)).is_ok()).count();
        assert_eq!(taken, 4);
        assert_eq!(c.take(ip(2), dst(2)), Err(ConnectRefusal::Guest));
        // Another guest still connects elsewhere; the flooded destination holds its share.
        assert_eq!(c.take(ip(3), dst(1)), Err(ConnectRefusal::Destination));
        assert_eq!(c.take(ip(3), dst(2)), Ok(()));
        // Two guests hold slots: each may hold a third (2 of 8); .3 holds 1.
        assert_eq!(c.take(ip(3), dst(3)), Ok(()));
        assert_eq!(c.take(ip(3), dst(4)), Err(ConnectRefusal::Guest));
        // A third guest gets what is left.
        assert_eq!(c.take(ip(4), dst(5)), Ok(()));
        assert_eq!(c.open(), 7);
        assert_eq!(c.holders(), (3, 4));
        // Slots come back; the flooder is still over its share of three holders (2).
        c.give(ip(2), dst(1));
        assert_eq!(c.take(ip(2), dst(1)), Err(ConnectRefusal::Guest));
        assert_eq!(c.open(), 6);
    }

    #[test]
    fn connect_shares_respect_the_total_and_the_static_caps() {
        let c = Connects::new(1, 1, 1);
        assert_eq!(c.take(ip(2), dst(1)), Ok(()));
        assert_eq!(c.take(ip(3), dst(2)), Err(ConnectRefusal::Total));
        c.give(ip(2), dst(1));
        // Giving back what was not taken changes nothing.
        c.give(ip(2), dst(1));
        c.give(ip(9), dst(9));
        assert_eq!(c.open(), 0);
        let c = Connects::new(100, 2, 100);
        assert_eq!(c.take(ip(2), dst(1)), Ok(()));
        assert_eq!(c.take(ip(2), dst(2)), Ok(()));
        assert_eq!(c.take(ip(2), dst(3)), Err(ConnectRefusal::Guest));
        let c = Connects::new(100, 100, 1);
        assert_eq!(c.take(ip(2), dst(1)), Ok(()));
        assert_eq!(c.take(ip(3), dst(1)), Err(ConnectRefusal::Destination));
        assert_eq!(c.holders(), (1, 1));
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
