//! The forwarder's settings: NAT of virtual addresses, timeouts and table bounds.
//!
//! Defaults follow gvproxy where it has one (192.168.127.254 → 127.0.0.1) and the issue's
//! numbers elsewhere: a UDP mapping lives 300 s without traffic (RFC 4787 §4.3 asks for at
//! least 2 minutes), a host connect gets 30 s.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use stack::wire::EthernetAddress;

/// How the forwarder behaves. Shared read-only by every worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The gateway's address: TCP to its port [`Config::api_port`] is the in-guest API.
    pub gateway_ip: Ipv4Addr,
    /// Virtual destination → real host destination (gvproxy's `nat`), e.g. the host's
    /// virtual address → 127.0.0.1.
    pub nat: Vec<(IpAddr, IpAddr)>,
    /// Refuse every NAT rule whose target is a loopback address (`--disable-host-loopback`).
    pub disable_host_loopback: bool,
    /// Let guests reach 169.254.0.0/16 (`-ec2-metadata-access`).
    pub ec2_metadata_access: bool,
    /// Destinations guests may never reach besides the defaults (the guest subnet itself is
    /// always refused apart from NAT rules: those addresses are ours, not the host's).
    pub guest_subnet: Option<(Ipv4Addr, u8)>,
    /// The guests' IPv6 prefix, refused like the IPv4 subnet (NAT rules aside).
    pub guest_subnet6: Option<(Ipv6Addr, u8)>,
    /// The gateway's IPv6 address, where it has one: inbound forwards into a guest's IPv6
    /// address come from it, as those into its IPv4 address come from [`Config::gateway_ip`].
    pub gateway_ip6: Option<Ipv6Addr>,
    /// The gateway's port serving the forwarder API to guests; `None` disables it.
    pub api_port: Option<u16>,
    pub udp_idle_timeout: Duration,
    pub icmp_timeout: Duration,
    pub tcp_connect_timeout: Duration,
    /// Host connects in progress at once, over all workers (counted exactly, in the shared
    /// [`crate::budget`]). Each guest and each destination holds at most a fair share of
    /// them (see [`crate::budget`]), and at most the two caps below.
    pub max_connects_in_flight: usize,
    /// Connects in flight of one guest (source address), at most.
    pub max_connects_per_guest: usize,
    /// Connects in flight to one destination (address and port), at most.
    pub max_connects_per_destination: usize,
    /// Live TCP connections, over all workers (TIME-WAIT not counted; each worker's table
    /// holds at most this many entries, TIME-WAIT included, and reclaims the oldest
    /// TIME-WAIT flow when full).
    pub max_tcp_flows: usize,
    /// Live TCP connections of one guest (source address), over all workers.
    pub max_tcp_flows_per_guest: usize,
    /// UDP mappings (one host socket each), over all workers.
    pub max_udp_flows: usize,
    /// UDP mappings of one guest (source address), over all workers.
    pub max_udp_flows_per_guest: usize,
    /// ICMP echo requests awaiting a reply, over all workers (split evenly).
    pub max_icmp_requests: usize,
    /// Per-connection receive and send buffers of the TCP engine.
    pub tcp_buffer: usize,
    /// The most bytes of one request to the in-guest API.
    pub api_max_request: usize,
    /// How long a TCP flow whose guest went away (its link detached, or it stopped
    /// answering) may take to write what the guest had been acknowledged to the host, before
    /// its host peer is reset (`--drain-timeout`; exit uses the same grace).
    pub drain_timeout: Duration,
    /// In-guest API connections open at once, over all workers (each is a TCP flow too).
    pub max_api_connections: usize,
    /// An in-guest API connection must have sent its whole request this long after its SYN,
    /// and taken the whole answer this long after the request; otherwise it is reset.
    pub api_header_timeout: Duration,
    /// Host sockets (descriptors) every flow together may hold: what the open-file limit
    /// leaves once descriptors are set aside for everything else (see
    /// [`crate::descriptors`]). A TCP flow, UDP mapping or echo request beyond it is refused.
    pub max_host_sockets: usize,
    /// Guests known before they send anything (static DHCP leases): where inbound forwards
    /// send their frames.
    pub static_neighbours: Vec<(IpAddr, EthernetAddress)>,
    /// The gateway's address is also the host (`--map-gateway`, as pasta's `--map-gw`): TCP
    /// and UDP to its ports other than the API port (DNS and DHCP never reach the forwarder)
    /// follow the NAT rule for [`Config::gateway_ip`], which the caller adds to [`Config::nat`].
    pub map_gateway: bool,
    /// The UDP ports on which a multicast group a guest joined is received on the host and
    /// relayed in (see `mcast`).
    pub multicast_ports: Vec<u16>,
    /// The interface (index) IPv4 and IPv6 multicast is sent from and joined on; 0: the
    /// kernel's choice by route (the default route's interface).
    pub multicast_interface_v4: u32,
    pub multicast_interface_v6: u32,
    /// Groups joined on the host at once at most.
    pub max_multicast_groups: usize,
}

/// The default grace for writing out acknowledged guest data at exit or on teardown.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(3);

/// The ports multicast groups are received on by default: mDNS, SSDP, WS-Discovery, LLMNR.
pub const DEFAULT_MULTICAST_PORTS: [u16; 4] = [5353, 1900, 3702, 5355];

/// gvproxy's host address in its default subnet.
pub const DEFAULT_HOST_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 127, 254);

impl Default for Config {
    fn default() -> Config {
        Config {
            gateway_ip: Ipv4Addr::new(192, 168, 127, 1),
            nat: vec![(IpAddr::V4(DEFAULT_HOST_IP), IpAddr::V4(Ipv4Addr::LOCALHOST))],
            disable_host_loopback: false,
            ec2_metadata_access: false,
            guest_subnet: Some((Ipv4Addr::new(192, 168, 127, 0), 24)),
            guest_subnet6: None,
            gateway_ip6: None,
            api_port: Some(80),
            udp_idle_timeout: Duration::from_secs(300),
            icmp_timeout: Duration::from_secs(10),
            tcp_connect_timeout: Duration::from_secs(30),
            max_connects_in_flight: 1024,
            max_connects_per_guest: 1024,
            max_connects_per_destination: 1024,
            max_tcp_flows: 16384,
            max_tcp_flows_per_guest: 16384,
            max_udp_flows: 4096,
            max_udp_flows_per_guest: 4096,
            max_icmp_requests: 1024,
            tcp_buffer: 1 << 20,
            api_max_request: 64 * 1024,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            max_api_connections: 64,
            api_header_timeout: Duration::from_secs(10),
            max_host_sockets: usize::MAX,
            static_neighbours: Vec::new(),
            map_gateway: false,
            multicast_ports: DEFAULT_MULTICAST_PORTS.to_vec(),
            multicast_interface_v4: 0,
            multicast_interface_v6: 0,
            max_multicast_groups: 256,
        }
    }
}

impl Config {
    /// The gateway's address in the family of `guest`: where an inbound forward into that
    /// guest address comes from. `None` for an IPv6 guest address without IPv6 services.
    pub fn gateway_for(&self, guest: IpAddr) -> Option<IpAddr> {
        match guest {
            IpAddr::V4(_) => Some(IpAddr::V4(self.gateway_ip)),
            IpAddr::V6(_) => self.gateway_ip6.map(IpAddr::V6),
        }
    }

    /// Whether `addr` is one of the gateway's addresses that inbound forwards come from.
    pub fn is_gateway(&self, addr: IpAddr) -> bool {
        self.gateway_for(addr) == Some(addr)
    }

    /// `total` split over `workers`, at least 1 each.
    pub(crate) fn share(total: usize, workers: usize) -> usize {
        (total / workers.max(1)).max(1)
    }
}
