//! The L2 learning table: which port a MAC address was last seen on.
//!
//! Contracts:
//! - **Hash lookups only** on the per-frame path: [`MacTable::learn`] and [`MacTable::lookup`]
//!   are one `HashMap` access each (SipHash, so guest-chosen addresses cannot force collisions).
//! - **Aged**: a dynamic entry not refreshed for `max_age` (300 s by default, the IEEE 802.1D
//!   default ageing time) is invisible to lookups at once and removed by [`MacTable::expire`],
//!   which the owner calls periodically (once a second is plenty); time is passed in.
//! - **Bounded**: at most `max_entries` dynamic entries. When full, a new address is not
//!   learned (its frames are flooded as unknown unicast) and `table_full` is bumped; nothing is
//!   evicted to make room. Once a second at most, a full table first sweeps aged entries.
//! - **Static entries** (the gateway's MAC) never age, are not counted against the bound, cannot
//!   be moved by learning (an attempt is counted as `static_conflicts`), and are only removed
//!   with [`MacTable::remove_static`].
//! - Only valid unicast source addresses are learned (not group addresses, not all-zero).
//! - **Remembered per port past ageing**: besides the table, every address learned is kept with
//!   the port it was last learned on until that port is flushed ([`MacTable::flush_port`]), so
//!   a port that goes away reports every guest it had, the ones whose entries aged out and were
//!   swept included (their flows in the forwarder may outlive the entry). An address that moves
//!   is remembered on its new port only. This memory is bounded like the table, at
//!   `max_entries` addresses: past it a new address is not remembered, counted as
//!   `remembered_full`. It is touched only when an entry is created or moves, never on a
//!   refresh, so the per-frame cost stays one hash access.
//!
//! The table is owned by one thread (the switch); it has no internal locking.

use std::collections::HashMap;
use std::collections::hash_map::Entry as MapEntry;
use std::time::Duration;

use stack::time::Instant;
use stack::wire::EthernetAddress;

/// A switch port: a guest link, or the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId(pub u32);

impl core::fmt::Display for PortId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "port{}", self.0)
    }
}

/// IEEE 802.1D's default ageing time.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);
/// Default bound on dynamic entries.
pub const DEFAULT_MAX_ENTRIES: usize = 4096;
/// How often, at most, a full table sweeps aged entries before refusing a new address.
const FULL_SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Event counters; they only ever grow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MacTableCounters {
    /// New addresses entered into the table.
    pub learned: u64,
    /// Addresses seen on a different port than the one they were learned on.
    pub moved: u64,
    /// Entries that expired (removed by a sweep, or replaced when relearned).
    pub aged: u64,
    /// New addresses not learned because the table was full.
    pub table_full: u64,
    /// Frames claiming a static entry's address from another port (not learned).
    pub static_conflicts: u64,
    /// Source addresses refused: group (multicast/broadcast) or all-zero.
    pub invalid_sources: u64,
    /// Entries removed because their port went away.
    pub flushed: u64,
    /// Addresses learned but not remembered for their port's flush, the memory being full.
    pub remembered_full: u64,
}

/// What [`MacTable::learn`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learn {
    /// A new entry.
    Learned,
    /// The entry already pointed at this port; its age was reset.
    Refreshed,
    /// The entry moved from another port.
    Moved { from: PortId },
    /// Not learned: the table is full.
    TableFull,
    /// Not learned: the address belongs to a static entry on another port.
    StaticConflict { owner: PortId },
    /// Not learned: the address is a group address or all-zero.
    InvalidSource,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    port: PortId,
    /// `None` for a static entry.
    last_seen: Option<Instant>,
}

/// MAC address → port, learned from source addresses. See the module docs.
#[derive(Debug)]
pub struct MacTable {
    entries: HashMap<EthernetAddress, Entry>,
    dynamic_len: usize,
    max_entries: usize,
    max_age: Duration,
    last_full_sweep: Option<Instant>,
    /// Every address learned → the port it was last learned on, independent of ageing; at most
    /// `max_entries` (see the module docs).
    remembered: HashMap<EthernetAddress, PortId>,
    counters: MacTableCounters,
}

impl Default for MacTable {
    fn default() -> MacTable {
        MacTable::new(DEFAULT_MAX_ENTRIES, DEFAULT_MAX_AGE)
    }
}

impl MacTable {
    /// An empty table holding at most `max_entries` dynamic entries, each for `max_age` idle.
    pub fn new(max_entries: usize, max_age: Duration) -> MacTable {
        MacTable {
            // Pre-size modestly; the map grows up to the bound, never past it.
            entries: HashMap::with_capacity(max_entries.min(256)),
            dynamic_len: 0,
            max_entries,
            max_age,
            last_full_sweep: None,
            remembered: HashMap::with_capacity(max_entries.min(256)),
            counters: MacTableCounters::default(),
        }
    }

    /// Pins `mac` to `port` for good (the gateway's own address). Replaces any entry for it.
    pub fn insert_static(&mut self, mac: EthernetAddress, port: PortId) {
        self.remembered.remove(&mac);
        let old = self.entries.insert(
            mac,
            Entry {
                port,
                last_seen: None,
            },
        );
        if matches!(
            old,
            Some(Entry {
                last_seen: Some(_),
                ..
            })
        ) {
            self.dynamic_len -= 1;
        }
    }

    /// Removes a static entry; returns whether there was one.
    pub fn remove_static(&mut self, mac: EthernetAddress) -> bool {
        match self.entries.entry(mac) {
            MapEntry::Occupied(e) if e.get().last_seen.is_none() => {
                e.remove();
                true
            }
            _ => false,
        }
    }

    /// Records that `mac` was seen as a source on `port` at `now`.
    pub fn learn(&mut self, now: Instant, mac: EthernetAddress, port: PortId) -> Learn {
        if mac.is_multicast() || mac == EthernetAddress([0; 6]) {
            self.counters.invalid_sources += 1;
            return Learn::InvalidSource;
        }
        let max_age = self.max_age;
        let learn = match self.entries.get_mut(&mac) {
            Some(entry) => match entry.last_seen {
                None if entry.port == port => Learn::Refreshed,
                None => {
                    self.counters.static_conflicts += 1;
                    Learn::StaticConflict { owner: entry.port }
                }
                Some(seen) if now.saturating_duration_since(seen) >= max_age => {
                    // Expired but not yet swept: start afresh.
                    self.counters.aged += 1;
                    self.counters.learned += 1;
                    *entry = Entry {
                        port,
                        last_seen: Some(now),
                    };
                    Learn::Learned
                }
                Some(_) => {
                    let from = entry.port;
                    entry.last_seen = Some(now);
                    if from == port {
                        Learn::Refreshed
                    } else {
                        entry.port = port;
                        self.counters.moved += 1;
                        Learn::Moved { from }
                    }
                }
            },
            None => self.insert_new(now, mac, port),
        };
        if matches!(learn, Learn::Learned | Learn::Moved { .. }) {
            self.remember(mac, port);
        }
        learn
    }

    /// Notes that `mac` now lives on `port`, for [`MacTable::flush_port`], within the bound.
    fn remember(&mut self, mac: EthernetAddress, port: PortId) {
        if let Some(known) = self.remembered.get_mut(&mac) {
            *known = port;
        } else if self.remembered.len() < self.max_entries {
            self.remembered.insert(mac, port);
        } else {
            self.counters.remembered_full += 1;
        }
    }

    fn insert_new(&mut self, now: Instant, mac: EthernetAddress, port: PortId) -> Learn {
        if self.dynamic_len >= self.max_entries {
            let due = self
                .last_full_sweep
                .is_none_or(|t| now.saturating_duration_since(t) >= FULL_SWEEP_INTERVAL);
            if due {
                self.last_full_sweep = Some(now);
                self.expire(now);
            }
            if self.dynamic_len >= self.max_entries {
                self.counters.table_full += 1;
                return Learn::TableFull;
            }
        }
        self.entries.insert(
            mac,
            Entry {
                port,
                last_seen: Some(now),
            },
        );
        self.dynamic_len += 1;
        self.counters.learned += 1;
        Learn::Learned
    }

    /// The port `mac` lives on, unless unknown or aged out.
    pub fn lookup(&self, now: Instant, mac: EthernetAddress) -> Option<PortId> {
        let entry = self.entries.get(&mac)?;
        match entry.last_seen {
            Some(seen) if now.saturating_duration_since(seen) >= self.max_age => None,
            _ => Some(entry.port),
        }
    }

    /// Removes every dynamic entry idle for `max_age` or longer. O(entries): call it from a
    /// timer, not per frame.
    pub fn expire(&mut self, now: Instant) {
        let max_age = self.max_age;
        let before = self.entries.len();
        self.entries.retain(|_, e| match e.last_seen {
            Some(seen) => now.saturating_duration_since(seen) < max_age,
            None => true,
        });
        let removed = before - self.entries.len();
        self.dynamic_len -= removed;
        self.counters.aged += removed as u64;
    }

    /// Forgets every dynamic entry on `port` (the port went away), aged ones not yet swept
    /// included, and returns their addresses together with those remembered on it whose
    /// entries were swept (see the module docs), each once. Static entries stay. O(entries):
    /// for a port going away, not per frame.
    pub fn flush_port(&mut self, port: PortId) -> Vec<EthernetAddress> {
        let mut flushed = Vec::new();
        self.entries.retain(|mac, e| {
            let keep = e.last_seen.is_none() || e.port != port;
            if !keep {
                flushed.push(*mac);
            }
            keep
        });
        self.dynamic_len -= flushed.len();
        self.counters.flushed += flushed.len() as u64;
        let mut gone = flushed;
        self.remembered.retain(|mac, p| {
            let keep = *p != port;
            if !keep {
                gone.push(*mac);
            }
            keep
        });
        gone.sort_unstable_by_key(|m| m.0);
        gone.dedup();
        gone
    }

    /// Addresses remembered for their ports' flush, swept ones included.
    pub fn remembered_len(&self) -> usize {
        self.remembered.len()
    }

    /// Entries of either kind, aged ones not yet swept included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Dynamic entries: the ones the bound applies to.
    pub fn dynamic_len(&self) -> usize {
        self.dynamic_len
    }

    pub fn max_entries(&self) -> usize {
        self.max_entries
    }

    pub fn counters(&self) -> &MacTableCounters {
        &self.counters
    }

    /// Every live entry as (address, port, static?), in no particular order. For the API.
    pub fn entries(&self, now: Instant) -> impl Iterator<Item = (EthernetAddress, PortId, bool)> {
        let max_age = self.max_age;
        self.entries
            .iter()
            .filter_map(move |(mac, e)| match e.last_seen {
                None => Some((*mac, e.port, true)),
                Some(seen) if now.saturating_duration_since(seen) < max_age => {
                    Some((*mac, e.port, false))
                }
                Some(_) => None,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GW: EthernetAddress = EthernetAddress([0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xdd]);
    const P0: PortId = PortId(0);
    const P1: PortId = PortId(1);
    const P2: PortId = PortId(2);

    fn mac(n: u8) -> EthernetAddress {
        EthernetAddress([0x02, 0, 0, 0, 0, n])
    }

    fn secs(s: u64) -> Instant {
        Instant::from_millis(s * 1000)
    }

    #[test]
    fn learns_and_refreshes() {
        let mut t = MacTable::default();
        assert_eq!(t.lookup(secs(0), mac(1)), None);
        assert_eq!(t.learn(secs(0), mac(1), P1), Learn::Learned);
        assert_eq!(t.lookup(secs(0), mac(1)), Some(P1));
        assert_eq!(t.learn(secs(1), mac(1), P1), Learn::Refreshed);
        assert_eq!(t.counters().learned, 1);
        assert_eq!(t.dynamic_len(), 1);
    }

    #[test]
    fn moves_between_ports() {
        let mut t = MacTable::default();
        t.learn(secs(0), mac(1), P1);
        assert_eq!(t.learn(secs(1), mac(1), P2), Learn::Moved { from: P1 });
        assert_eq!(t.lookup(secs(1), mac(1)), Some(P2));
        assert_eq!(t.counters().moved, 1);
        assert_eq!(t.dynamic_len(), 1);
    }

    #[test]
    fn ages_out() {
        let mut t = MacTable::new(16, Duration::from_secs(300));
        t.learn(secs(0), mac(1), P1);
        t.learn(secs(100), mac(2), P1);
        assert_eq!(t.lookup(secs(299), mac(1)), Some(P1));
        // Invisible at once, removed by the sweep.
        assert_eq!(t.lookup(secs(300), mac(1)), None);
        assert_eq!(t.len(), 2);
        t.expire(secs(300));
        assert_eq!(t.len(), 1);
        assert_eq!(t.counters().aged, 1);
        assert_eq!(t.lookup(secs(300), mac(2)), Some(P1));
        // A refresh resets the age.
        t.learn(secs(350), mac(2), P1);
        assert_eq!(t.lookup(secs(600), mac(2)), Some(P1));
    }

    #[test]
    fn expired_unswept_entry_is_relearned() {
        let mut t = MacTable::new(16, Duration::from_secs(10));
        t.learn(secs(0), mac(1), P1);
        assert_eq!(t.learn(secs(10), mac(1), P2), Learn::Learned);
        assert_eq!(t.counters().aged, 1);
        assert_eq!(t.counters().moved, 0);
        assert_eq!(t.dynamic_len(), 1);
    }

    #[test]
    fn bounded_with_counter() {
        let mut t = MacTable::new(2, DEFAULT_MAX_AGE);
        t.insert_static(GW, P0);
        assert_eq!(t.learn(secs(0), mac(1), P1), Learn::Learned);
        assert_eq!(t.learn(secs(0), mac(2), P1), Learn::Learned);
        assert_eq!(t.learn(secs(0), mac(3), P1), Learn::TableFull);
        assert_eq!(t.learn(secs(0), mac(4), P2), Learn::TableFull);
        assert_eq!(t.counters().table_full, 2);
        assert_eq!(t.lookup(secs(0), mac(3)), None);
        // Known addresses still refresh and move when full; the static entry stays.
        assert_eq!(t.learn(secs(1), mac(1), P2), Learn::Moved { from: P1 });
        assert_eq!(t.lookup(secs(1), GW), Some(P0));
        assert_eq!(t.dynamic_len(), 2);
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn full_table_sweeps_aged_entries_first() {
        let mut t = MacTable::new(1, Duration::from_secs(10));
        t.learn(secs(0), mac(1), P1);
        assert_eq!(t.learn(secs(20), mac(2), P1), Learn::Learned);
        assert_eq!(t.counters().aged, 1);
        assert_eq!(t.lookup(secs(20), mac(2)), Some(P1));
    }

    #[test]
    fn static_entry_never_ages_moves_or_counts() {
        let mut t = MacTable::new(1, Duration::from_secs(10));
        t.insert_static(GW, P0);
        assert_eq!(
            t.learn(secs(0), GW, P1),
            Learn::StaticConflict { owner: P0 }
        );
        assert_eq!(t.learn(secs(0), GW, P0), Learn::Refreshed);
        assert_eq!(t.counters().static_conflicts, 1);
        t.expire(secs(1_000_000));
        t.flush_port(P0);
        assert_eq!(t.lookup(secs(1_000_000), GW), Some(P0));
        assert_eq!(t.dynamic_len(), 0);
        assert!(t.remove_static(GW));
        assert!(!t.remove_static(GW));
        assert!(t.is_empty());
    }

    #[test]
    fn static_replaces_a_dynamic_entry() {
        let mut t = MacTable::default();
        t.learn(secs(0), GW, P1);
        t.insert_static(GW, P0);
        assert_eq!(t.dynamic_len(), 0);
        assert_eq!(t.lookup(secs(0), GW), Some(P0));
        let all: Vec<_> = t.entries(secs(0)).collect();
        assert_eq!(all, vec![(GW, P0, true)]);
    }

    #[test]
    fn refuses_group_and_zero_sources() {
        let mut t = MacTable::default();
        assert_eq!(
            t.learn(secs(0), EthernetAddress::BROADCAST, P1),
            Learn::InvalidSource
        );
        assert_eq!(
            t.learn(secs(0), EthernetAddress([0x01, 0, 0x5e, 0, 0, 1]), P1),
            Learn::InvalidSource
        );
        assert_eq!(
            t.learn(secs(0), EthernetAddress([0; 6]), P1),
            Learn::InvalidSource
        );
        assert_eq!(t.counters().invalid_sources, 3);
        assert!(t.is_empty());
    }

    #[test]
    fn flushing_a_port() {
        let mut t = MacTable::default();
        t.learn(secs(0), mac(1), P1);
        t.learn(secs(0), mac(2), P2);
        t.learn(secs(0), mac(3), P1);
        let mut flushed = t.flush_port(P1);
        flushed.sort_by_key(|m| m.0);
        assert_eq!(flushed, vec![mac(1), mac(3)]);
        assert_eq!(t.lookup(secs(0), mac(1)), None);
        assert_eq!(t.lookup(secs(0), mac(2)), Some(P2));
        assert_eq!(t.counters().flushed, 2);
        assert_eq!(t.dynamic_len(), 1);
    }

    #[test]
    fn flushing_a_port_reports_addresses_swept_after_ageing() {
        let mut t = MacTable::new(16, Duration::from_secs(10));
        t.learn(secs(0), mac(1), P1);
        t.learn(secs(0), mac(2), P1);
        t.learn(secs(0), mac(4), P2);
        // mac(2) moves to P2: only P2 reports it.
        t.learn(secs(1), mac(2), P2);
        t.learn(secs(15), mac(3), P1);
        // mac(1) and mac(2) age out and are swept; mac(3) is live.
        t.expire(secs(20));
        assert_eq!(t.lookup(secs(20), mac(1)), None);
        assert_eq!((t.dynamic_len(), t.remembered_len()), (1, 4));
        assert_eq!(t.flush_port(P1), vec![mac(1), mac(3)]);
        assert_eq!(t.counters().flushed, 1, "one table entry was left to flush");
        // Forgotten once reported; P2's are still there.
        assert_eq!(t.flush_port(P1), Vec::new());
        assert_eq!(t.flush_port(P2), vec![mac(2), mac(4)]);
        assert_eq!(t.remembered_len(), 0);
    }

    #[test]
    fn remembered_addresses_are_bounded_with_counter() {
        let mut t = MacTable::new(2, Duration::from_secs(10));
        t.learn(secs(0), mac(1), P1);
        t.learn(secs(0), mac(2), P1);
        t.expire(secs(10));
        assert_eq!((t.dynamic_len(), t.remembered_len()), (0, 2));
        // The table has room again; the memory does not.
        assert_eq!(t.learn(secs(10), mac(3), P1), Learn::Learned);
        assert_eq!(t.remembered_len(), 2);
        assert_eq!(t.counters().remembered_full, 1);
        // A remembered address that moves is updated in place, full or not.
        assert_eq!(t.learn(secs(10), mac(1), P2), Learn::Learned);
        assert_eq!(t.counters().remembered_full, 1);
        assert_eq!(t.flush_port(P1), vec![mac(2), mac(3)]);
        assert_eq!(t.flush_port(P2), vec![mac(1)]);
    }
}
