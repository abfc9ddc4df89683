//! How to run the data plane: [`RuntimeConfig`], its DNS and queue settings, the hooks
//! through which the workers tell the forwarder's control plane about guests.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use dhcp::{StaticLease, Subnet};
use forwarder::HandlerFactory;
use forwarder::dns_service::tcp::Limits as DnsTcpLimits;
use stack::wire::EthernetAddress;

use super::stats::RuntimeLimits;
use super::{DEFAULT_PREFIX6, GroupHook, MulticastConfig, v6};
use crate::forward::DEFAULT_GATEWAY_MAC;
use crate::gateway::GatewayConfig;
use crate::mac_table::{DEFAULT_MAX_AGE, DEFAULT_MAX_ENTRIES};
use crate::pcap::PcapSink;

/// How long, by default, a worker whose last wait was this short polls without sleeping
/// (`--busy-poll`; see busy_poll.rs).
pub const DEFAULT_BUSY_POLL_MICROS: u64 = 50;
const DEFAULT_BUSY_POLL: Duration = Duration::from_micros(DEFAULT_BUSY_POLL_MICROS);

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
    /// How long a worker whose last wait was this short polls without sleeping before it
    /// sleeps; zero never does.
    pub busy_poll: Duration,
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
            tcp_connections: DnsTcpLimits::default().max_connections,
            tcp_idle_timeout: DnsTcpLimits::default().idle_timeout,
            tcp_pipeline: DnsTcpLimits::default().max_pipeline,
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
            .field("busy_poll", &self.busy_poll)
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

pub(super) fn nth(subnet: &Subnet, n: u32) -> Ipv4Addr {
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
            busy_poll: DEFAULT_BUSY_POLL,
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

    pub(super) fn gateway_config(&self) -> GatewayConfig {
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
    pub(super) fn limits(&self) -> RuntimeLimits {
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

    pub(super) fn worker_count(&self) -> usize {
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
