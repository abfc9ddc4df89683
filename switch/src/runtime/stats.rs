//! What the running data plane reports: [`Stats`], gathered from every worker by a
//! [`RuntimeHandle`] from any thread, and its bounds ([`RuntimeLimits`]).

use std::sync::Arc;
use std::time::Duration;

use std::sync::atomic::Ordering;

use crossbeam_channel::Sender;
use dhcp::Lease;
use forwarder::WorkerStats;
use forwarder::dns_service::DnsStats;
use stack::ingress::DropCounters;

use super::fabric::{Fabric, WorkerControl};
use crate::forward::SwitchCounters;
use crate::gateway::{GatewayCounters, SharedServices};
use crate::mac_table::{MacTableCounters, PortId};
use crate::pcap::PcapCounters;

/// One port's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortStats {
    pub id: PortId,
    pub name: Arc<str>,
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub rx_dropped: u64,
    pub tx_frames: u64,
    pub tx_bytes: u64,
    pub tx_dropped: u64,
}

/// The bounds of the pipeline's tables, as configured (see [`RuntimeConfig`](super::RuntimeConfig)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RuntimeLimits {
    /// Dynamic MAC table entries.
    pub mac_entries: usize,
    /// IP fragment reassembly.
    pub reassembly: stack::frag::Config,
    /// DNS queries waiting upstream.
    pub dns_pending: usize,
    /// Guest TCP connections to the DNS service.
    pub dns_tcp: usize,
    /// Unanswered queries per guest TCP connection to the DNS service.
    pub dns_tcp_pipeline: usize,
    /// Outstanding DHCP offers, in all and per client MAC.
    pub dhcp_offers: usize,
    pub dhcp_offers_per_mac: usize,
    /// IGMP/MLD snooping's group table, when on.
    pub multicast: Option<crate::snoop::Limits>,
}

/// A snapshot of every counter of the pipeline.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Per port, by id; the gateway's port is `port0`.
    pub ports: Vec<PortStats>,
    pub switch: SwitchCounters,
    pub mac_table: MacTableCounters,
    pub mac_entries: usize,
    pub gateway: GatewayCounters,
    /// Drops by reason: the gateway's and every worker's, merged.
    pub drops: DropCounters,
    pub workers: Vec<WorkerStats>,
    pub dhcp: dhcp::Stats,
    pub leases: Vec<Lease>,
    pub pcap: Option<PcapCounters>,
    pub dns: DnsStats,
    /// IP fragment reassembly (its drops by [`stack::frag::FragDropReason`]; every refused
    /// fragment is also a [`DropReason::Fragment`](stack::ingress::DropReason::Fragment)).
    pub reassembly: stack::frag::Stats,
    /// IGMP/MLD snooping and the querier, when on.
    pub multicast: Option<crate::snoop::SnoopCounters>,
    /// The DHCPv6 server, when IPv6 services are on.
    pub dhcpv6: Option<dhcp::v6::Stats>,
}

/// How long [`Runtime::stats`](super::Runtime::stats) waits for a worker's answer.
pub(super) const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// Answers statistics and leases for a [`Runtime`](super::Runtime) from any thread.
#[derive(Debug, Clone)]
pub struct RuntimeHandle {
    pub(super) fabric: Arc<Fabric>,
    pub(super) services: SharedServices,
    /// Questions to the DNS thread, each with where to answer.
    pub(super) dns_query: Sender<Sender<DnsStats>>,
    pub(super) limits: RuntimeLimits,
}

impl RuntimeHandle {
    /// The data plane's bounds.
    pub fn limits(&self) -> RuntimeLimits {
        self.limits
    }

    /// See [`Runtime::stats`](super::Runtime::stats).
    pub fn stats(&self) -> Stats {
        let mut stats = Stats::default();
        let mut replies = Vec::new();
        for worker in self.fabric.workers() {
            let (tx, rx) = crossbeam_channel::bounded(1);
            let asked = worker.tell(WorkerControl::Stats(tx));
            replies.push((worker, asked.then_some(rx)));
        }
        let deadline = std::time::Instant::now() + QUERY_TIMEOUT;
        for (worker, reply) in replies {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match reply.and_then(|r| r.recv_timeout(left).ok()) {
                // The worker's counters and its gateway's, from one point of its loop.
                Some(w) => {
                    stats.gateway.merge(&w.gateway);
                    stats.drops.merge(&w.drops);
                    stats.reassembly.merge(&w.reassembly);
                    stats.workers.push(w.counters);
                }
                None => stats.workers.push(worker.counters.snapshot()),
            }
        }
        for w in &stats.workers {
            stats.drops.merge(&w.drops);
        }
        let now = self.fabric.epoch.instant(std::time::Instant::now());
        self.fabric.with_switch(|s| {
            stats.switch = s.counters().clone();
            stats.mac_table = s.table().counters().clone();
            stats.mac_entries = s.table().entries(now).count();
        });
        stats.ports = self
            .fabric
            .ports()
            .into_iter()
            .map(|(id, name, c)| {
                let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
                PortStats {
                    id,
                    name,
                    rx_frames: load(&c.rx_frames),
                    rx_bytes: load(&c.rx_bytes),
                    rx_dropped: load(&c.rx_dropped),
                    tx_frames: load(&c.tx_frames),
                    tx_bytes: load(&c.tx_bytes),
                    tx_dropped: load(&c.tx_dropped),
                }
            })
            .collect();
        stats.dhcp = self.services.dhcp_stats();
        stats.leases = self.services.leases();
        stats.dhcpv6 = self.services.dhcpv6_stats();
        stats.multicast = self.fabric.multicast_counters();
        stats.pcap = self.fabric.pcap.as_ref().map(|p| p.counters());
        stats.dns = ask(&self.dns_query);
        stats
    }

    /// The DHCP server's leases (bound, and every static one).
    pub fn leases(&self) -> Vec<Lease> {
        self.services.leases()
    }
}

pub(super) fn ask<T: Default>(query: &Sender<Sender<T>>) -> T {
    let (tx, rx) = crossbeam_channel::bounded(1);
    if query.send_timeout(tx, QUERY_TIMEOUT).is_err() {
        return T::default();
    }
    rx.recv_timeout(QUERY_TIMEOUT).unwrap_or_default()
}
