//! The running data plane: one worker thread per core, each running frames from its links
//! to its host sockets and back in one call stack ([`worker`]), and the DNS service.
//!
//! [`Runtime::start`] starts, from a [`RuntimeConfig`]:
//! - **the workers** ([`worker`]), each with one mio poller over its links and its flows'
//!   host sockets. Each owns a [`Gateway`] (ARP, ICMP echo, NDP and IP reassembly per worker;
//!   the DHCP server's leases are shared) and a flow handler from
//!   [`RuntimeConfig::forwarder`] ([`forwarder::NoForwarder`] until one is plugged in). What
//!   they share — the switch's MAC table, the ports, their inboxes, the capture — is the
//!   [`fabric`], touched off the common path only.
//! - **the DNS thread** ([`dns_thread`]), owning the [`dns::Resolver`] and the upstream
//!   sockets: workers hand it every query to the gateway's port 53 over a bounded queue; it
//!   answers local zones ([`Runtime::dns_zones`], shared with the control API) and forwards
//!   the rest to [`DnsConfig::upstreams`]; its answers go back through a worker.
//!
//! TAP devices are served inside the workers ([`Runtime::attach_tap`]: one queue per worker);
//! every other link gets ports from [`Runtime::attacher`], each served by one worker. Every
//! queue is bounded and a full one drops and counts. [`Runtime::stats`] and
//! [`Runtime::leases`] gather a snapshot. [`Runtime::drain`] winds the flows down for exit
//! while the links still run: what guests were acknowledged reaches their hosts, within a
//! deadline. [`Runtime::shutdown`] stops and joins every thread (each worker finishing its
//! flows last); it is idempotent and runs on drop.
//!
//! Time: one [`Epoch`], taken at start, converts between `std::time::Instant` (the DHCP
//! server's) and [`stack::time::Instant`] (everything else's).

pub mod dns_tcp;
pub mod dns_thread;
mod dns_upstream;
mod dns_upstream_udp;
mod fabric;
#[cfg(test)]
mod hostile_answers_tests;
#[cfg(test)]
mod hostile_mcast_tests;
#[cfg(test)]
mod hostile_offload_tests;
#[cfg(test)]
mod hostile_tests;
mod mcast;
mod stream_link;
#[cfg(test)]
mod tests;
mod v6;
mod worker;

use std::hash::BuildHasher;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use std::sync::atomic::Ordering;

use crossbeam_channel::Sender;
use dhcp::{Lease, StaticLease, Subnet};
use forwarder::{DrainEnd, HandlerFactory, NoForwarder, WorkerStats};
use stack::ingress::DropCounters;
use stack::time::Epoch;
use stack::wire::EthernetAddress;

use self::dns_thread::DnsStats;
use self::fabric::{Fabric, GatewayTx, WorkerControl, WorkerHandle};
use crate::forward::{DEFAULT_GATEWAY_MAC, Switch, SwitchConfig, SwitchCounters};
use crate::gateway::{Gateway, GatewayConfig, GatewayCounters, SharedServices};
use crate::mac_table::{DEFAULT_MAX_AGE, DEFAULT_MAX_ENTRIES, MacTableCounters, PortId};
use crate::pcap::{PcapCounters, PcapSink};
use crate::port::{self, Attacher};

/// Bounds of the data plane's queues, in frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    /// Frames waiting for the transmit side of each port whose link runs its own threads.
    pub port_egress: usize,
    /// Frames handed to each worker: from links with threads of their own, from other workers
    /// (a flow or a link they do not serve), from the DNS service.
    pub worker: usize,
}

impl Default for QueueConfig {
    fn default() -> QueueConfig {
        QueueConfig {
            port_egress: 1024,
            worker: 1024,
        }
    }
}

/// Called by the workers' gateways with a guest's address and MAC.
pub type NeighbourHook = Arc<dyn Fn(std::net::IpAddr, stack::wire::EthernetAddress) + Send + Sync>;

/// Called when a port detaches, with the MACs that had been learned on it: the guests behind
/// it are gone, and so may be their flows. It must not block.
pub type GuestGoneHook = Arc<dyn Fn(&[EthernetAddress]) + Send + Sync>;

pub use self::mcast::GroupHook;
pub use self::v6::{DEFAULT_PREFIX6, MulticastConfig};

/// How to run host-switch's pipeline.
#[derive(Clone)]
pub struct RuntimeConfig {
    pub subnet: Subnet,
    pub gateway_ip: Ipv4Addr,
    pub gateway_mac: EthernetAddress,
    /// The host's virtual address (traffic to it reaches the host's loopback).
    pub host_ip: Ipv4Addr,
    /// Further virtual addresses the gateway answers ARP for.
    pub virtual_ips: Vec<Ipv4Addr>,
    /// The gateway's IPv6 addresses besides its link-local one (derived from its MAC).
    pub gateway_ipv6: Vec<Ipv6Addr>,
    /// The MTU of links that do not say their own (a link's own MTU is what DHCP announces to
    /// its guests, option 26, and what its flows' segments fit).
    pub mtu: u16,
    /// The DHCP server's configuration. At start its `server_addr` and `subnet` are set from
    /// the fields above, `mtu` to `Some(mtu)`, the host's address is reserved, and empty
    /// `routers` / `dns_servers` become the gateway.
    pub dhcp: dhcp::Config,
    pub queues: QueueConfig,
    /// Worker threads; 0 means one per available core.
    pub workers: usize,
    /// Dynamic MAC table entries at most; a new address beyond is not learned (its frames
    /// are flooded), counted in `table_full`.
    pub mac_table_size: usize,
    pub mac_table_age: Duration,
    /// Where to capture every frame that crosses the switch.
    pub pcap: Option<PcapSink>,
    /// Builds each worker's flow handler; `None` drops flows as "no forwarder".
    pub forwarder: Option<HandlerFactory>,
    /// Told of every guest the gateway sees in ARP (address, MAC): the forwarder's control
    /// plane, which needs guests' MACs for connections into them.
    pub neighbours: Option<NeighbourHook>,
    /// Told of the guests behind every port that detaches: the forwarder's control plane,
    /// which drops their flows.
    pub guest_gone: Option<GuestGoneHook>,
    /// The DNS service.
    pub dns: DnsConfig,
    /// IP fragment reassembly's limits (datagrams, bytes held, timeouts).
    pub reassembly: stack::frag::Config,
    /// IPv6 services: router advertisements (SLAAC), DHCPv6, DNS on the gateway's IPv6
    /// addresses, the host's virtual IPv6 address; `None`: link-local only.
    pub ipv6: Option<crate::gateway::V6Config>,
    /// Drop every IPv6 frame (`--disable-ipv6`).
    pub disable_ipv6: bool,
    /// Guests' UDP to multicast groups goes to the forwarder, which relays it to the host.
    pub multicast_relay: bool,
    /// IGMP/MLD snooping with the gateway as querier; `None` floods every group.
    pub multicast: Option<MulticastConfig>,
    /// Told of every group that gains its first guest member or loses its last: the
    /// multicast relay, which joins and leaves it on the host.
    pub group_hook: Option<GroupHook>,
}

/// The DNS service's configuration.
#[derive(Debug, Clone)]
pub struct DnsConfig {
    /// Where non-local queries go, in order (failover on timeout). Empty: they get SERVFAIL.
    pub upstreams: Vec<std::net::SocketAddr>,
    /// One attempt's wait for an upstream.
    pub timeout: Duration,
    /// Attempts per query before SERVFAIL.
    pub attempts: usize,
    /// Queries waiting upstream at most (beyond: SERVFAIL, counted).
    pub max_pending: usize,
    /// Queries waiting for the DNS thread at most (beyond: dropped, counted).
    pub queue: usize,
    /// The local zones; `None`: gvproxy's defaults for the gateway and host addresses.
    pub zones: Option<dns::SharedZones>,
    /// Guest TCP connections to port 53 at most (beyond: RST, counted).
    pub tcp_connections: usize,
    /// A guest TCP connection with nothing outstanding is closed after this long.
    pub tcp_idle_timeout: Duration,
    /// Queries one guest TCP connection may have unanswered (beyond: it is not read).
    pub tcp_pipeline: usize,
}

impl Default for DnsConfig {
    fn default() -> DnsConfig {
        let r = dns::ResolverConfig::default();
        DnsConfig {
            upstreams: Vec::new(),
            // Three attempts of 1.5 s: SERVFAIL within 4.5 s, before glibc's resolver gives
            // up on its first try (5 s, resolv.conf(5)) and while the guest still waits.
            timeout: Duration::from_millis(1500),
            attempts: r.attempts,
            max_pending: r.max_pending,
            queue: 4096,
            zones: None,
            tcp_connections: dns_tcp::Limits::default().max_connections,
            tcp_idle_timeout: dns_tcp::Limits::default().idle_timeout,
            tcp_pipeline: dns_tcp::Limits::default().max_pipeline,
        }
    }
}

impl std::fmt::Debug for RuntimeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeConfig")
            .field("subnet", &self.subnet)
            .field("gateway_ip", &self.gateway_ip)
            .field("gateway_mac", &self.gateway_mac)
            .field("host_ip", &self.host_ip)
            .field("virtual_ips", &self.virtual_ips)
            .field("gateway_ipv6", &self.gateway_ipv6)
            .field("mtu", &self.mtu)
            .field("dhcp", &self.dhcp)
            .field("queues", &self.queues)
            .field("workers", &self.workers)
            .field("mac_table_size", &self.mac_table_size)
            .field("mac_table_age", &self.mac_table_age)
            .field("reassembly", &self.reassembly)
            .field("pcap", &self.pcap.is_some())
            .field("forwarder", &self.forwarder.is_some())
            .field("dns", &self.dns)
            .field("reassembly", &self.reassembly)
            .field("multicast", &self.multicast)
            .finish()
    }
}

/// The guest that gets a static lease by default (gvproxy's).
pub const DEFAULT_GUEST_MAC: EthernetAddress =
    EthernetAddress([0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xee]);

fn nth(subnet: &Subnet, n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(subnet.network()).wrapping_add(n))
}

impl RuntimeConfig {
    /// gvproxy's layout in any subnet: the gateway at host number 1, the default guest's
    /// static lease at 2, the host at the last host number, the pool in between.
    pub fn for_subnet(subnet: Subnet) -> RuntimeConfig {
        let broadcast = u32::from(subnet.broadcast());
        let last = Ipv4Addr::from(broadcast.wrapping_sub(1));
        let gateway = nth(&subnet, 1);
        let dhcp = dhcp::Config {
            server_addr: gateway,
            subnet,
            pool_start: nth(&subnet, 3),
            pool_end: Ipv4Addr::from(broadcast.wrapping_sub(2)),
            reserved: vec![last],
            static_leases: vec![StaticLease {
                mac: DEFAULT_GUEST_MAC,
                ip: nth(&subnet, 2),
            }],
            routers: Vec::new(),
            dns_servers: Vec::new(),
            ..dhcp::Config::default()
        };
        RuntimeConfig {
            subnet,
            gateway_ip: gateway,
            gateway_mac: DEFAULT_GATEWAY_MAC,
            host_ip: last,
            virtual_ips: Vec::new(),
            gateway_ipv6: Vec::new(),
            mtu: 1500,
            dhcp,
            queues: QueueConfig::default(),
            workers: 0,
            mac_table_size: DEFAULT_MAX_ENTRIES,
            mac_table_age: DEFAULT_MAX_AGE,
            pcap: None,
            forwarder: None,
            neighbours: None,
            guest_gone: None,
            dns: DnsConfig::default(),
            reassembly: stack::frag::Config::default(),
            ipv6: Some(crate::gateway::V6Config::for_prefix(
                DEFAULT_PREFIX6,
                DEFAULT_GATEWAY_MAC,
                DEFAULT_GUEST_MAC,
            )),
            disable_ipv6: false,
            multicast_relay: true,
            multicast: Some(MulticastConfig::default()),
            group_hook: None,
        }
    }

    /// The DHCP configuration with the derived fields filled in (see [`RuntimeConfig::dhcp`]).
    pub fn dhcp_config(&self) -> dhcp::Config {
        let mut c = self.dhcp.clone();
        c.server_addr = self.gateway_ip;
        c.subnet = self.subnet;
        c.mtu = Some(self.mtu);
        if !c.reserved.contains(&self.host_ip) {
            c.reserved.push(self.host_ip);
        }
        if c.routers.is_empty() {
            c.routers.push(self.gateway_ip);
        }
        if c.dns_servers.is_empty() {
            c.dns_servers.push(self.gateway_ip);
        }
        c
    }

    fn gateway_config(&self) -> GatewayConfig {
        let mut virtual_ips = vec![self.host_ip];
        virtual_ips.extend(self.virtual_ips.iter().copied());
        GatewayConfig {
            mac: self.gateway_mac,
            ip: self.gateway_ip,
            virtual_ips,
            ipv6: self.gateway_ipv6.clone(),
            dhcp: self.dhcp_config(),
            mtu: self.mtu,
            reassembly: self.reassembly,
            v6: self.ipv6_services(),
            disable_ipv6: self.disable_ipv6,
            multicast_relay: self.multicast_relay,
        }
    }

    /// The bounds the pipeline enforces, as they take effect.
    fn limits(&self) -> RuntimeLimits {
        RuntimeLimits {
            mac_entries: self.mac_table_size,
            reassembly: self.reassembly,
            dns_pending: self.dns.max_pending.min(dns::resolver::MAX_PENDING),
            dns_tcp: self.dns.tcp_connections.max(1),
            dns_tcp_pipeline: self.dns.tcp_pipeline.max(1),
            dhcp_offers: self.dhcp.max_offers,
            dhcp_offers_per_mac: self.dhcp.max_offers_per_mac,
            multicast: self.multicast.map(|m| m.limits),
        }
    }

    /// Plugs in host-switch's forwarder: its workers' handler, and the hooks through which
    /// the workers tell its control plane where guests are (ARP), which
    /// are gone (a detached port), and which multicast groups guests joined (the relay).
    pub fn use_forwarder(&mut self, config: forwarder::Config, control: &Arc<forwarder::Control>) {
        self.forwarder = Some(forwarder::Forwarder::factory(config, control.clone()));
        let neighbours = control.clone();
        self.neighbours = Some(Arc::new(move |ip, mac| {
            let _ = neighbours.learn_neighbour(ip, mac);
        }));
        let gone = control.clone();
        self.guest_gone = Some(Arc::new(move |macs| {
            let _ = gone.guest_gone(macs);
        }));
        self.group_hook = Some(v6::relay_hook(control));
    }

    fn worker_count(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

impl Default for RuntimeConfig {
    /// 192.168.127.0/24 as gvproxy sets it up.
    fn default() -> RuntimeConfig {
        let subnet = Subnet::new(Ipv4Addr::new(192, 168, 127, 0), 24)
            .unwrap_or_else(|_| dhcp::Config::default().subnet);
        RuntimeConfig::for_subnet(subnet)
    }
}

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

/// The bounds of the pipeline's tables, as configured (see [`RuntimeConfig`]).
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

/// A question to the DNS thread, with where to answer.
type Query<T> = Sender<T>;

/// How often [`Runtime::drain`] looks at the workers and its caller.
const DRAIN_POLL: Duration = Duration::from_millis(10);

/// How long [`Runtime::stats`] waits for a worker's answer.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// Answers statistics and leases for a [`Runtime`] from any thread.
#[derive(Debug, Clone)]
pub struct RuntimeHandle {
    fabric: Arc<Fabric>,
    services: SharedServices,
    dns_query: Sender<Sender<DnsStats>>,
    limits: RuntimeLimits,
}

impl RuntimeHandle {
    /// The data plane's bounds.
    pub fn limits(&self) -> RuntimeLimits {
        self.limits
    }

    /// See [`Runtime::stats`].
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

fn ask<T: Default>(query: &Sender<Sender<T>>) -> T {
    let (tx, rx) = crossbeam_channel::bounded(1);
    if query.send_timeout(tx, QUERY_TIMEOUT).is_err() {
        return T::default();
    }
    rx.recv_timeout(QUERY_TIMEOUT).unwrap_or_default()
}

/// The running data plane. See the module docs.
#[derive(Debug)]
pub struct Runtime {
    attacher: Attacher,
    handle: RuntimeHandle,
    /// Dropped to stop the DNS thread.
    stop: Option<Sender<()>>,
    dns_zones: dns::SharedZones,
    threads: Vec<JoinHandle<()>>,
    workers: Vec<JoinHandle<()>>,
    epoch: Epoch,
}

/// Whether a read with a timeout (or a non-blocking one) simply found nothing yet.
fn nothing_yet(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e.to_string())
}

impl Runtime {
    /// Validates `config` and starts every thread.
    pub fn start(config: RuntimeConfig) -> io::Result<Runtime> {
        let epoch = Epoch::new(std::time::Instant::now());
        let gateway_config = config.gateway_config();
        let services = SharedServices::new(&gateway_config).map_err(invalid)?;
        // Validate once, before any thread starts.
        Gateway::with_shared(gateway_config.clone(), epoch, services.clone(), false)
            .map_err(invalid)?;
        let switch = Switch::new(&SwitchConfig {
            gateway_port: port::GATEWAY_PORT,
            gateway_mac: config.gateway_mac,
            max_entries: config.mac_table_size,
            max_age: config.mac_table_age,
        });
        // A guest gone is news for the forwarder (its flows) and the DNS service (its queries).
        let dns_inputs = crossbeam_channel::bounded(config.dns.queue.max(1));
        let queue_full = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (dns_gone, gone_full) = (dns_inputs.0.clone(), queue_full.clone());
        let forwarder_gone = config.guest_gone.clone();
        let guest_gone: GuestGoneHook = Arc::new(move |macs: &[EthernetAddress]| {
            if let Some(hook) = &forwarder_gone {
                hook(macs);
            }
            // A notice that finds the queue full is counted; the queries then time out.
            let notice = dns_thread::Input::GuestGone(macs.to_vec());
            if dns_gone.try_send(notice).is_err() {
                gone_full.fetch_add(1, Ordering::Relaxed);
            }
        });
        let fabric = Arc::new(Fabric::new(
            switch,
            config.pcap.clone(),
            Some(guest_gone),
            config.gateway_mac,
            epoch,
            config
                .snooper()
                .map(|snooper| mcast::Multicast::new(snooper, config.group_hook.clone())),
        ));
        let workers = config.worker_count().max(1);
        let mut polls = Vec::with_capacity(workers);
        let mut handles = Vec::with_capacity(workers);
        let mut inboxes = Vec::with_capacity(workers);
        for _ in 0..workers {
            let poll = mio::Poll::new()?;
            let waker = mio::Waker::new(poll.registry(), mio::Token(0))?;
            let (frames_tx, frames) = crossbeam_channel::bounded(config.queues.worker.max(1));
            let (control_tx, control) = crossbeam_channel::unbounded();
            let counters = Arc::new(forwarder::WorkerCounters::default());
            handles.push(Arc::new(WorkerHandle::new(
                frames_tx, control_tx, waker, counters,
            )));
            polls.push(poll);
            inboxes.push((frames, control));
        }
        fabric.set_workers(handles.clone());

        let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
        let (dns_query, dns_queries) = crossbeam_channel::bounded(4);
        let dns_zones = config
            .dns
            .zones
            .clone()
            .unwrap_or_else(|| config.default_zones().shared());
        let seed = std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64);
        let dns_sender = dns_inputs.0.clone();
        let resolver = dns::Resolver::new(dns::ResolverConfig {
            upstreams: config.dns.upstreams.clone(),
            timeout: config.dns.timeout,
            attempts: config.dns.attempts,
            max_pending: config.dns.max_pending,
            max_reply: config.dns_max_reply(),
            seed: seed.rotate_left(17),
        });
        let dns = dns_thread::DnsThread::new(dns_thread::DnsParts {
            resolver,
            tcp_limits: dns_tcp::Limits {
                max_connections: config.dns.tcp_connections.max(1),
                idle_timeout: config.dns.tcp_idle_timeout,
                max_pipeline: config.dns.tcp_pipeline.max(1),
                ..dns_tcp::Limits::default()
            },
            zones: dns_zones.clone(),
            port: Arc::new(GatewayTx::new(fabric.clone())),
            mac: config.gateway_mac,
            inputs: dns_inputs,
            queries: dns_queries,
            stop: stop_rx,
            epoch,
            queue_full: queue_full.clone(),
        });
        let mut runtime = Runtime {
            attacher: Attacher::new(fabric.clone(), config.queues.port_egress, config.mtu),
            handle: RuntimeHandle {
                fabric: fabric.clone(),
                services: services.clone(),
                dns_query,
                limits: config.limits(),
            },
            stop: Some(stop_tx),
            dns_zones,
            threads: Vec::new(),
            workers: Vec::new(),
            epoch,
        };
        runtime.threads.push(
            std::thread::Builder::new()
                .name("dns".into())
                .spawn(move || dns.run())?,
        );

        let factory = config
            .forwarder
            .clone()
            .unwrap_or_else(NoForwarder::factory);
        // Any link's frames: a TAP's MTU reaches 65535.
        let max_frame = crate::framing::max_frame_len(u32::from(u16::MAX));
        for (index, (poll, (frames, control))) in polls.into_iter().zip(inboxes).enumerate() {
            let me = handles[index].clone();
            let ctx = forwarder::WorkerContext {
                index,
                workers,
                seed,
                epoch,
                mtu: config.mtu,
                gateway_mac: config.gateway_mac,
                counters: me.counters.clone(),
                notify: me.clone(),
            };
            let handler = factory(&ctx, poll.registry());
            let gateway =
                Gateway::with_shared(gateway_config.clone(), epoch, services.clone(), index == 0)
                    .map_err(invalid)?;
            let worker = worker::Worker::new(worker::WorkerParts {
                index,
                poll,
                me,
                frames,
                control,
                fabric: fabric.clone(),
                gateway,
                handler,
                dns: (dns_sender.clone(), queue_full.clone()),
                neighbours: config.neighbours.clone(),
                max_frame,
            });
            runtime.workers.push(
                std::thread::Builder::new()
                    .name(format!("worker-{index}"))
                    .spawn(move || worker.run())?,
            );
        }
        Ok(runtime)
    }

    /// Hands out ports to links that run threads of their own.
    pub fn attacher(&self) -> Attacher {
        self.attacher.clone()
    }

    /// How many workers run.
    pub fn workers(&self) -> usize {
        self.handle.fabric.workers().len()
    }

    /// The process epoch every thread's [`stack::time::Instant`] counts from.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// A cloneable handle that answers [`Runtime::stats`] and [`Runtime::leases`] from any
    /// thread (the control API's).
    pub fn handle(&self) -> RuntimeHandle {
        self.handle.clone()
    }

    /// The local DNS zones, for the control API's `/services/dns/{add,all}` ([`dns::api`]).
    pub fn dns_zones(&self) -> dns::SharedZones {
        self.dns_zones.clone()
    }

    /// A snapshot of every counter. A stopped worker's part is empty.
    pub fn stats(&self) -> Stats {
        self.handle.stats()
    }

    /// The DHCP server's leases (bound, and every static one).
    pub fn leases(&self) -> Vec<Lease> {
        self.handle.leases()
    }

    /// Lets every flow finish what it owes its host for at most `timeout` (or until `cancel`
    /// says stop): each worker winds its flows down ([`forwarder::FlowHandler::begin_drain`])
    /// while it keeps serving its links, so guests can still finish their streams. Returns
    /// how it ended; the workers go on running until [`Runtime::shutdown`], which finishes
    /// (resets) whatever is left. Call it once, before `shutdown`.
    pub fn drain(&mut self, timeout: Duration, cancel: &mut dyn FnMut() -> bool) -> DrainEnd {
        let workers = self.handle.fabric.workers();
        for worker in workers {
            worker.tell(WorkerControl::Drain);
        }
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if workers.iter().all(|w| w.settled()) {
                return DrainEnd::Settled;
            }
            if cancel() {
                return DrainEnd::Cancelled;
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return DrainEnd::TimedOut;
            }
            std::thread::sleep(DRAIN_POLL.min(deadline - now));
        }
    }

    /// Stops and joins every thread (also done on drop).
    pub fn shutdown(mut self) {
        self.stop_all();
    }

    fn stop_all(&mut self) {
        self.handle.fabric.stop();
        for handle in self.workers.drain(..) {
            // A worker that panicked is already gone.
            let _ = handle.join();
        }
        self.stop = None;
        for handle in self.threads.drain(..) {
            let _ = handle.join();
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop_all();
    }
}
