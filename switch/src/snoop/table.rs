//! The group table: which ports have listeners for which multicast group, each membership with
//! its own expiry, bounded in total and per port.
//!
//! A membership is (group, port). [`GroupTable::join`] adds or refreshes one; beyond
//! [`Limits::max_memberships`] in all, or [`Limits::max_per_port`] on one port, a new one is
//! refused and counted (so one guest flooding reports cannot keep the others from joining).
//! [`GroupTable::leave`] shortens a membership to the last-member query time rather than
//! dropping it (another listener behind the same port answers the group-specific query);
//! [`GroupTable::expire`] drops those whose time has come. The first membership of a group
//! and the removal of its last are [`GroupEvent`]s, kept in a bounded queue for the caller
//! (the multicast relay joins and leaves the group on the host).
//!
//! Lookups are hash lookups; expiries sit in an ordered set, so the sweep touches only what
//! expires. Nothing scans the table per frame.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;

use stack::time::Instant;

use crate::mac_table::PortId;

/// Events waiting for the caller at most; beyond, the oldest is dropped and counted.
pub const MAX_EVENTS: usize = 4096;

/// The table's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// (group, port) memberships in all.
    pub max_memberships: usize,
    /// Memberships of one port.
    pub max_per_port: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_memberships: 4096,
            max_per_port: 512,
        }
    }
}

/// A group gained its first member port or lost its last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupEvent {
    Joined(IpAddr),
    Left(IpAddr),
}

/// What [`GroupTable::join`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Join {
    /// A new membership.
    Added,
    /// An existing one, its expiry pushed back.
    Refreshed,
    /// Refused: the table holds its most memberships.
    TableFull,
    /// Refused: the port holds its most memberships.
    PortFull,
}

/// The table's counters; all but the gauges only grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableCounters {
    /// Memberships added.
    pub joined: u64,
    /// Memberships that ran out (no report after a query, or after a leave).
    pub expired: u64,
    /// Memberships removed with their port.
    pub removed: u64,
    /// Joins refused by [`Limits::max_memberships`].
    pub table_full: u64,
    /// Joins refused by [`Limits::max_per_port`].
    pub port_full: u64,
    /// Events dropped because the caller did not take them.
    pub events_dropped: u64,
}

/// See the module docs.
#[derive(Debug)]
pub struct GroupTable {
    groups: HashMap<IpAddr, HashMap<PortId, Instant>>,
    per_port: HashMap<PortId, usize>,
    timers: BTreeSet<(Instant, IpAddr, PortId)>,
    memberships: usize,
    limits: Limits,
    events: VecDeque<GroupEvent>,
    counters: TableCounters,
}

impl GroupTable {
    pub fn new(limits: Limits) -> GroupTable {
        GroupTable {
            groups: HashMap::new(),
            per_port: HashMap::new(),
            timers: BTreeSet::new(),
            memberships: 0,
            limits,
            events: VecDeque::new(),
            counters: TableCounters::default(),
        }
    }

    fn event(&mut self, event: GroupEvent) {
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
            self.counters.events_dropped += 1;
        }
        self.events.push_back(event);
    }

    /// Adds `port` to `group`, or refreshes it, until `expires`.
    pub fn join(&mut self, group: IpAddr, port: PortId, expires: Instant) -> Join {
        if let Some(old) = self.groups.get_mut(&group).and_then(|g| g.get_mut(&port)) {
            let previous = *old;
            *old = expires;
            self.timers.remove(&(previous, group, port));
            self.timers.insert((expires, group, port));
            return Join::Refreshed;
        }
        if self.memberships >= self.limits.max_memberships {
            self.counters.table_full += 1;
            return Join::TableFull;
        }
        let on_port = self.per_port.get(&port).copied().unwrap_or(0);
        if on_port >= self.limits.max_per_port {
            self.counters.port_full += 1;
            return Join::PortFull;
        }
        let members = self.groups.entry(group).or_default();
        let first = members.is_empty();
        members.insert(port, expires);
        self.timers.insert((expires, group, port));
        self.per_port.insert(port, on_port + 1);
        self.memberships += 1;
        self.counters.joined += 1;
        if first {
            self.event(GroupEvent::Joined(group));
        }
        Join::Added
    }

    /// `port` said it stops listening to `group`: its membership runs out at `expires` at the
    /// latest, unless a report refreshes it. Returns whether it was a member.
    pub fn leave(&mut self, group: IpAddr, port: PortId, expires: Instant) -> bool {
        let Some(at) = self.groups.get_mut(&group).and_then(|g| g.get_mut(&port)) else {
            return false;
        };
        if *at > expires {
            let previous = *at;
            *at = expires;
            self.timers.remove(&(previous, group, port));
            self.timers.insert((expires, group, port));
        }
        true
    }

    fn remove(&mut self, group: IpAddr, port: PortId) -> bool {
        let Some(members) = self.groups.get_mut(&group) else {
            return false;
        };
        let Some(at) = members.remove(&port) else {
            return false;
        };
        self.timers.remove(&(at, group, port));
        if members.is_empty() {
            self.groups.remove(&group);
            self.event(GroupEvent::Left(group));
        }
        self.memberships = self.memberships.saturating_sub(1);
        if let Some(n) = self.per_port.get_mut(&port) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_port.remove(&port);
            }
        }
        true
    }

    /// Drops the memberships whose time has come.
    pub fn expire(&mut self, now: Instant) {
        while let Some(&(at, group, port)) = self.timers.first() {
            if at > now {
                break;
            }
            if self.remove(group, port) {
                self.counters.expired += 1;
            } else {
                self.timers.pop_first();
            }
        }
    }

    /// Drops every membership of `port` (it detached).
    pub fn remove_port(&mut self, port: PortId) {
        if !self.per_port.contains_key(&port) {
            return;
        }
        let groups: Vec<IpAddr> = self
            .groups
            .iter()
            .filter(|(_, members)| members.contains_key(&port))
            .map(|(g, _)| *g)
            .collect();
        for group in groups {
            if self.remove(group, port) {
                self.counters.removed += 1;
            }
        }
    }

    /// The ports listening to `group`.
    pub fn members(&self, group: IpAddr) -> impl Iterator<Item = PortId> + '_ {
        self.groups
            .get(&group)
            .into_iter()
            .flat_map(|members| members.keys().copied())
    }

    pub fn is_member(&self, group: IpAddr, port: PortId) -> bool {
        self.groups
            .get(&group)
            .is_some_and(|m| m.contains_key(&port))
    }

    /// When the next membership runs out.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|&(at, _, _)| at)
    }

    /// The next group event, oldest first.
    pub fn poll_event(&mut self) -> Option<GroupEvent> {
        self.events.pop_front()
    }

    /// Groups with at least one member port.
    pub fn groups(&self) -> usize {
        self.groups.len()
    }

    /// (group, port) memberships.
    pub fn memberships(&self) -> usize {
        self.memberships
    }

    /// Every group with members, and how many ports.
    pub fn list(&self) -> impl Iterator<Item = (IpAddr, usize)> + '_ {
        self.groups.iter().map(|(g, m)| (*g, m.len()))
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    pub fn counters(&self) -> TableCounters {
        self.counters
    }
}
