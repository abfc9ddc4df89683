//! IGMP and MLD snooping with the gateway as the link's querier, sans-IO: which ports a
//! multicast frame goes to.
//!
//! The switch asks [`Snooper::handle_frame`] about every frame it would flood to a group
//! address, with the ingress port and the time, and gets a [`Verdict`]:
//! - [`Verdict::Flood`]: not IP multicast, or a group that is always flooded — 224.0.0.0/24
//!   (RFC 4541 §2.1.2) and IPv6 groups of interface- or link-local scope (ff02::1, the
//!   solicited-node groups of Neighbor Discovery, mDNS; see [`mld::is_snooped`]).
//! - [`Verdict::Group`]: data for a tracked group: it goes to the ports whose guests joined
//!   it ([`Snooper::members`]) and to the gateway's port, the router port, which relays it to
//!   the host. A group nobody joined reaches no other guest (RFC 4541 §2.1.2 leaves unknown
//!   groups to the implementation).
//! - [`Verdict::Consumed`]: a membership report or leave (IGMPv1/v2/v3, MLDv1/v2), applied to
//!   the table. Reports go to router ports only (RFC 4541 §2.1.1), and the router is the
//!   gateway itself, so they go nowhere.
//! - [`Verdict::Drop`]: a query from a guest (the gateway is the link's only querier; a guest
//!   cannot take that role and silence it), or a membership message that is malformed or
//!   fails RFC 3810 §5's checks (hop limit 1, router alert, link-local source), counted by
//!   reason.
//!
//! Memberships live in a [`GroupTable`], bounded in total and per port. Each report sets its
//! membership to expire after the Group Membership Interval (robustness × query interval +
//! query response interval, RFC 3376 §8.4: 260 s by default). The querier sends general
//! queries (IGMPv3 and, with IPv6, MLDv2) every query interval, more often at start-up (RFC
//! 3376 §8.6-8.7) and when a port attaches; a leave cuts the membership to the Last Member
//! Query Time and triggers group-specific queries (RFC 3376 §6.6.3.1, RFC 3810 §7.6.3.1),
//! so a remaining listener behind the port keeps it. Queries wait in
//! [`Snooper::poll_transmit`] for the switch to send to every guest port; group events (first
//! member, last member gone) in [`Snooper::poll_event`] for the multicast relay.
//!
//! Per frame the cost is one parse of the Ethernet and IP headers for group frames only, and a
//! hash lookup; nothing scans.

mod classify;
pub(crate) mod query;
pub mod table;

#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use bytes::Bytes;
use stack::time::Instant;
use stack::wire::group_record::GroupAddr;
use stack::wire::{EthernetAddress, GroupRecord, IgmpRepr, MldRepr, igmp, mld};

pub use self::classify::BadMessage;
use self::classify::{Class, classify};
use self::query::QueryParams;
pub use self::table::{GroupEvent, GroupTable, Join, Limits, TableCounters};
use crate::mac_table::PortId;

/// Group-specific queries waiting at most; beyond, a leave triggers none (counted) and its
/// membership simply runs out at the Last Member Query Time.
const MAX_PENDING_QUERIES: usize = 256;
/// Query frames waiting for the switch at most.
const MAX_TX: usize = 64;
/// The least time between two general queries sent because a port attached.
const ATTACH_QUERY_GAP: Duration = Duration::from_secs(1);

/// The querier's timers (RFC 3376 §8, RFC 3810 §9; the defaults are theirs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Robustness Variable.
    pub robustness: u8,
    /// Query Interval.
    pub query_interval: Duration,
    /// Query Response Interval: the Max Resp Time of general queries.
    pub response_interval: Duration,
    /// Last Member Query Interval: the Max Resp Time of group-specific queries and the gap
    /// between them.
    pub last_member_interval: Duration,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            robustness: 2,
            query_interval: Duration::from_secs(125),
            response_interval: Duration::from_secs(10),
            last_member_interval: Duration::from_secs(1),
        }
    }
}

impl Timing {
    /// Group Membership Interval (RFC 3376 §8.4).
    pub fn membership_interval(&self) -> Duration {
        self.query_interval * u32::from(self.robustness.max(1)) + self.response_interval
    }

    /// Last Member Query Time (RFC 3376 §8.14): count × interval, count = robustness.
    pub fn last_member_time(&self) -> Duration {
        self.last_member_interval * u32::from(self.robustness.max(1))
    }
}

/// What the snooper is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnoopConfig {
    /// The querier's MAC and addresses: the gateway's.
    pub mac: EthernetAddress,
    pub ipv4: Ipv4Addr,
    /// The link-local source of MLD queries; `None`: no MLD queries (IPv6 off).
    pub ipv6: Option<Ipv6Addr>,
    pub limits: Limits,
    pub timing: Timing,
}

/// Where a frame goes. See the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Flood,
    Group(IpAddr),
    Consumed,
    Drop,
}

/// The snooper's counters; all but the gauges only grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnoopCounters {
    /// IGMP messages and MLD messages taken (reports and leaves).
    pub igmp_messages: u64,
    pub mld_messages: u64,
    /// Leaves (IGMPv2 leave, MLDv1 done, a record of no source in include mode).
    pub leaves: u64,
    /// Queries from guests, dropped.
    pub guest_queries: u64,
    /// Membership messages refused as malformed or invalid.
    pub bad_messages: u64,
    /// General and group-specific queries sent.
    pub queries_sent: u64,
    /// Group-specific queries not sent: too many waiting.
    pub queries_dropped: u64,
    /// Frames to a tracked group, and those of them that no guest port had joined.
    pub group_frames: u64,
    pub unjoined_frames: u64,
    pub table: TableCounters,
    /// Groups with members, and memberships, now.
    pub groups: usize,
    pub memberships: usize,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    due: Instant,
    group: IpAddr,
    left: u8,
}

/// See the module docs.
#[derive(Debug)]
pub struct Snooper {
    config: SnoopConfig,
    table: GroupTable,
    next_general: Option<Instant>,
    startup_left: u8,
    last_attach_query: Option<Instant>,
    pending: VecDeque<Pending>,
    tx: VecDeque<Bytes>,
    counters: SnoopCounters,
}

impl Snooper {
    /// A snooper whose querier starts at the first [`Snooper::handle_timeout`].
    pub fn new(config: SnoopConfig) -> Snooper {
        Snooper {
            table: GroupTable::new(config.limits),
            startup_left: config.timing.robustness.max(1),
            config,
            next_general: None,
            last_attach_query: None,
            pending: VecDeque::new(),
            tx: VecDeque::new(),
            counters: SnoopCounters::default(),
        }
    }

    /// Decides where a frame to a group MAC address, received on `port` at `now`, goes.
    pub fn handle_frame(&mut self, now: Instant, port: PortId, frame: &[u8]) -> Verdict {
        match classify(frame) {
            Class::NotMulticast | Class::Unsnooped => Verdict::Flood,
            Class::Data(group) => {
                self.counters.group_frames += 1;
                if self.table.members(group).all(|p| p == port) {
                    self.counters.unjoined_frames += 1;
                }
                Verdict::Group(group)
            }
            Class::Igmp(message) => {
                self.counters.igmp_messages += 1;
                self.igmp(now, port, message)
            }
            Class::Mld(message) => {
                self.counters.mld_messages += 1;
                self.mld(now, port, message)
            }
            Class::Bad(_) => {
                self.counters.bad_messages += 1;
                Verdict::Drop
            }
        }
    }

    fn igmp(&mut self, now: Instant, port: PortId, message: IgmpRepr<'_>) -> Verdict {
        match message {
            IgmpRepr::Query { .. } => return self.guest_query(),
            IgmpRepr::ReportV1 { group } | IgmpRepr::ReportV2 { group } => {
                self.report(now, port, IpAddr::V4(group), true);
            }
            IgmpRepr::Leave { group } => self.report(now, port, IpAddr::V4(group), false),
            IgmpRepr::ReportV3 { records } => {
                for record in records.iter() {
                    self.record(now, port, record);
                }
            }
        }
        Verdict::Consumed
    }

    fn mld(&mut self, now: Instant, port: PortId, message: MldRepr<'_>) -> Verdict {
        match message {
            MldRepr::Query { .. } => return self.guest_query(),
            MldRepr::ReportV1 { group } => self.report(now, port, IpAddr::V6(group), true),
            MldRepr::Done { group } => self.report(now, port, IpAddr::V6(group), false),
            MldRepr::ReportV2 { records } => {
                for record in records.iter() {
                    self.record(now, port, record);
                }
            }
        }
        Verdict::Consumed
    }

    fn guest_query(&mut self) -> Verdict {
        self.counters.guest_queries += 1;
        Verdict::Drop
    }

    fn record<A: GroupAddr + Into<IpAddr>>(
        &mut self,
        now: Instant,
        port: PortId,
        record: GroupRecord<'_, A>,
    ) {
        if let Some(listening) = record.listening() {
            self.report(now, port, record.group.into(), listening);
        }
    }

    /// `port` reports listening to `group` or no longer listening.
    fn report(&mut self, now: Instant, port: PortId, group: IpAddr, listening: bool) {
        let tracked = match group {
            IpAddr::V4(g) => igmp::is_snooped(g),
            IpAddr::V6(g) => mld::is_snooped(g),
        };
        if !tracked {
            return;
        }
        let timing = self.config.timing;
        if listening {
            self.table
                .join(group, port, now + timing.membership_interval());
            return;
        }
        self.counters.leaves += 1;
        if self
            .table
            .leave(group, port, now + timing.last_member_time())
        {
            self.queue_specific(now, group);
        }
    }

    fn queue_specific(&mut self, now: Instant, group: IpAddr) {
        if self.pending.iter().any(|p| p.group == group) {
            return;
        }
        if self.pending.len() >= MAX_PENDING_QUERIES {
            self.counters.queries_dropped += 1;
            return;
        }
        self.pending.push_back(Pending {
            due: now,
            group,
            left: self.config.timing.robustness.max(1),
        });
    }

    /// A port attached: ask everyone at once, so a guest that joined groups before it was
    /// connected here reports them (at most once per [`ATTACH_QUERY_GAP`]).
    pub fn port_attached(&mut self, now: Instant) {
        if self
            .last_attach_query
            .is_some_and(|at| now.saturating_duration_since(at) < ATTACH_QUERY_GAP)
        {
            return;
        }
        self.last_attach_query = Some(now);
        self.general_queries();
    }

    /// A port detached: its memberships go.
    pub fn remove_port(&mut self, port: PortId) {
        self.table.remove_port(port);
    }

    /// The ports whose guests listen to `group`.
    pub fn members(&self, group: IpAddr) -> impl Iterator<Item = PortId> + '_ {
        self.table.members(group)
    }

    fn params(&self) -> QueryParams {
        QueryParams {
            robustness: self.config.timing.robustness,
            interval_secs: self.config.timing.query_interval.as_secs() as u32,
        }
    }

    fn push_tx(&mut self, frame: Bytes) {
        if self.tx.len() >= MAX_TX {
            self.counters.queries_dropped += 1;
            return;
        }
        self.counters.queries_sent += 1;
        self.tx.push_back(frame);
    }

    fn general_queries(&mut self) {
        let params = self.params();
        let timing = self.config.timing;
        let ds = (timing.response_interval.as_millis() / 100) as u32;
        let igmp = query::igmp_query(self.config.mac, self.config.ipv4, None, ds, params);
        self.push_tx(igmp);
        if let Some(ll) = self.config.ipv6 {
            let ms = timing.response_interval.as_millis().min(32767) as u16;
            let mld = query::mld_query(self.config.mac, ll, None, ms, params);
            self.push_tx(mld);
        }
    }

    fn specific_query(&mut self, group: IpAddr) {
        let params = self.params();
        let interval = self.config.timing.last_member_interval;
        match group {
            IpAddr::V4(g) => {
                let ds = (interval.as_millis() / 100) as u32;
                let frame =
                    query::igmp_query(self.config.mac, self.config.ipv4, Some(g), ds, params);
                self.push_tx(frame);
            }
            IpAddr::V6(g) => {
                if let Some(ll) = self.config.ipv6 {
                    let ms = interval.as_millis().min(32767) as u16;
                    let frame = query::mld_query(self.config.mac, ll, Some(g), ms, params);
                    self.push_tx(frame);
                }
            }
        }
    }

    /// When [`Snooper::handle_timeout`] next has work; `None` before the first call to it
    /// (which starts the querier), so call it once at start.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let pending = self.pending.iter().map(|p| p.due).min();
        [self.next_general, pending, self.table.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Sends the queries due and ages memberships out.
    pub fn handle_timeout(&mut self, now: Instant) {
        let timing = self.config.timing;
        if self.next_general.is_none_or(|at| at <= now) {
            self.general_queries();
            let gap = if self.startup_left > 1 {
                self.startup_left -= 1;
                // Startup Query Interval: a quarter of the Query Interval (RFC 3376 §8.6).
                timing.query_interval / 4
            } else {
                self.startup_left = 0;
                timing.query_interval
            };
            self.next_general = Some(now + gap);
        }
        let mut again = VecDeque::new();
        while let Some(p) = self.pending.pop_front() {
            if p.due > now {
                again.push_back(p);
                continue;
            }
            // Only while a member is still waiting to be asked: a report in between removes
            // nothing, and the queries are harmless.
            self.specific_query(p.group);
            if p.left > 1 {
                again.push_back(Pending {
                    due: now + timing.last_member_interval,
                    left: p.left - 1,
                    ..p
                });
            }
        }
        self.pending = again;
        self.table.expire(now);
    }

    /// The next query frame to send to every guest port.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.tx.pop_front()
    }

    /// The next group event (a group's first member, or its last gone).
    pub fn poll_event(&mut self) -> Option<GroupEvent> {
        self.table.poll_event()
    }

    pub fn table(&self) -> &GroupTable {
        &self.table
    }

    pub fn counters(&self) -> SnoopCounters {
        SnoopCounters {
            table: self.table.counters(),
            groups: self.table.groups(),
            memberships: self.table.memberships(),
            ..self.counters
        }
    }
}
