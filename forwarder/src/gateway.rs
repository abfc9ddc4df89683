//! The gateway's own services, sans-IO: ARP, ICMP echo and DHCPv4 answered here; every other
//! IP packet handed on as a flow.
//!
//! [`Gateway::handle_frame`] takes a frame that the switch delivered to the gateway's port and
//! the time, parses it once ([`stack::ingress::parse`]) and returns an [`Outcome`]:
//! - ARP requests for an address we own — the gateway's and every virtual address (the host's
//!   192.168.127.254 by default) — get a reply (RFC 826). Gratuitous requests and requests
//!   for other addresses are dropped and counted. The gateway never needs ARP itself (every
//!   reply goes to the L2 source of the frame it answers), but every ARP sender in the
//!   subnet is reported ([`Gateway::take_neighbour`]) for the forwarder's connections into
//!   guests, which ask with ARP requests of their own.
//! - ICMP echo requests to the gateway's address get an echo reply (RFC 792) with the same
//!   identifier, sequence number and data, TTL 64; ICMPv6 echo requests to one of its IPv6
//!   addresses (its link-local one, derived from its MAC, and any configured) likewise
//!   (RFC 4443 §4.2).
//!   Echo replies carry the request's TOS or traffic class, and any echo code is answered
//!   (as Linux does).
//! - Neighbour solicitations for those IPv6 addresses, and for the virtual ones (the host's),
//!   get a neighbour advertisement (RFC 4861 §7.2.4) once they pass RFC 4861's checks (hop
//!   limit 255 and so on). Neighbor Discovery in a fragment (RFC 6980 §5), atomic or
//!   reassembled ([`Gateway::handle_reassembled`]), is dropped and counted.
//! - With IPv6 services on ([`GatewayConfig::v6`]): router solicitations get a router
//!   advertisement and periodic ones go to all nodes (`ra`: the prefix for SLAAC, the MTU,
//!   RDNSS and DNSSL); UDP to port 547 of ff02::1:2 or of the gateway goes to the DHCPv6
//!   server ([`dhcp::v6::Server`], `v6`); DNS is served on the gateway's IPv6 addresses as on
//!   its IPv4 one. Other Neighbor Discovery messages are dropped and counted. With IPv6
//!   off ([`GatewayConfig::disable_ipv6`]) every IPv6 frame is dropped.
//! - UDP to the gateway's IPv6 addresses on a port where it offers no service gets ICMPv6
//!   port unreachable (RFC 4443 §3.1, code 4) quoting the guest's packet.
//! - UDP to an IP multicast group is a flow for the multicast relay when
//!   [`GatewayConfig::multicast_relay`] is on and the group is not one of the link's own
//!   (`mcast`), dropped otherwise.
//! - A flow whose TTL or hop limit would run out here (1 or less, to an address beyond the
//!   gateway) is answered with Time Exceeded, code 0, instead (`hop_limit`).
//! - UDP to port 67 of the gateway or of the limited broadcast goes to the [`dhcp::Server`];
//!   its reply is framed per its [`Destination`] (RFC 2131 §4.1): broadcast to ff:ff:ff:ff:ff:ff
//!   and 255.255.255.255, unicast to `chaddr`/`yiaddr` without ARP, or to a relay agent at
//!   the L2 address its request came from.
//! - UDP to port 53 of the gateway's addresses is a DNS query: [`Outcome::Dns`] carries
//!   the guest's address and payload to the runtime's DNS thread, which answers it (local
//!   zones) or forwards it (the `dns` crate); [`dns_reply_frame`] frames its answers.
//!   TCP to that port is [`Outcome::DnsTcp`]: the DNS thread terminates it (RFC 7766).
//! - TCP, UDP and ICMP to any other address (the host's included) or to another service of the
//!   gateway is a flow: [`Outcome::Flow`] carries the owned [`FlowPacket`] to hand to a worker.
//! - Everything else is an [`Outcome::Dropped`] with its [`DropReason`], counted in
//!   [`Gateway::drops`].
//! - IPv4 and IPv6 fragments go to the reassembler ([`stack::frag`], bounded by
//!   [`GatewayConfig::reassembly`]): [`Outcome::Held`] until the datagram is complete, then
//!   [`Outcome::Reassembled`]; a fragment it refuses is a [`DropReason::Fragment`].
//! - A datagram whose reassembly times out after its first fragment (offset 0) came is
//!   answered with an ICMP Time Exceeded, code 1 (RFC 792, RFC 1122 §3.3.2), or ICMPv6 Time
//!   Exceeded, code 1 (RFC 8200 §4.5, RFC 4443 §3.3), quoting that fragment, from the
//!   datagram's destination to the L2 source of the first fragment, as an echo reply would
//!   be. These and periodic router advertisements are the only frames the gateway sends
//!   unasked: [`Gateway::poll_transmit`] hands them out after [`Gateway::handle_timeout`] and
//!   [`Gateway::handle_frame`]. No Time Exceeded goes to a source the gateway does not serve
//!   (outside the subnet, one of its own addresses, unspecified, from a multicast MAC), about
//!   a datagram to a broadcast address, or about an ICMP error (RFC 1122 §3.2.2, RFC 4443
//!   §2.4(e)). The reassembler's bound on datagrams and on pending notices bounds them.
//!
//! No reply carries an IP packet longer than [`GatewayConfig::mtu`]: an echo reply that would
//! (to a request reassembled from fragments, or one sent in an oversized frame) goes out as
//! fragments, [`Outcome::Replies`] (RFC 791 §3.2, RFC 8200 §4.5), as Linux answers.
//!
//! Replies are built in one reusable buffer and copied once into their own `Bytes`; nothing
//! else is allocated per frame. Frames shorter than Ethernet's 60-byte minimum are padded.
//! The DHCP server wants `std::time::Instant`s; the gateway converts with its [`Epoch`].

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;
use dhcp::{Destination, Lease};
use parking_lot::Mutex;
use stack::frag::{Config as FragConfig, Reassembler, Stats as FragStats};
use stack::ingress::{self, DropCounters, DropReason, Event, FlowPacket};
use stack::time::{Epoch, Instant};
use stack::wire::checksum::ChecksumCapabilities;
use stack::wire::{
    ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetAddress, EthernetFrame, EthernetRepr,
    Icmpv4Repr, Icmpv6Packet, Icmpv6Repr, IpAddresses, IpProtocol, Ipv4Packet, Ipv4Repr,
    Ipv6Packet, Ipv6Repr, UdpPacket, UdpRepr, ethernet, ipv4, ipv6, udp,
};

/// The TTL of every datagram the gateway originates (RFC 1700's default, as Linux uses).
pub const DEFAULT_TTL: u8 = 64;
/// The shortest Ethernet frame without FCS (IEEE 802.3: 64 bytes with it).
pub const MIN_FRAME_LEN: usize = 60;

/// ff02::1, all nodes on the link (RFC 4291 §2.7.1).
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// The link-local address of `mac`: fe80::/64 with the modified EUI-64 interface identifier
/// (RFC 4291 appendix A, RFC 2464 §4-5: ff:fe in the middle, the U/L bit inverted).
pub fn link_local(mac: EthernetAddress) -> Ipv6Addr {
    let [a, b, c, d, e, f] = mac.0;
    Ipv6Addr::from([
        0xfe,
        0x80,
        0,
        0,
        0,
        0,
        0,
        0,
        a ^ 0x02,
        b,
        c,
        0xff,
        0xfe,
        d,
        e,
        f,
    ])
}

/// What the gateway is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayConfig {
    pub mac: EthernetAddress,
    pub ip: Ipv4Addr,
    /// Further addresses the gateway answers ARP for (the host's), whose traffic is flows.
    pub virtual_ips: Vec<Ipv4Addr>,
    /// IPv6 addresses of the gateway besides its link-local one (always derived from `mac`),
    /// answered for in Neighbor Discovery and echo.
    pub ipv6: Vec<Ipv6Addr>,
    /// The DHCP server's configuration; its `server_addr` must be `ip`.
    pub dhcp: dhcp::Config,
    /// The link MTU: no reply the gateway builds carries an IP packet longer than this.
    pub mtu: u16,
    /// IP fragment reassembly's limits.
    pub reassembly: FragConfig,
    /// IPv6 services: router advertisements, DHCPv6, DNS on IPv6, the host's virtual IPv6
    /// address. `None`: only link-local Neighbor Discovery and echo.
    pub v6: Option<V6Config>,
    /// Drop every IPv6 frame (`--disable-ipv6`).
    pub disable_ipv6: bool,
    /// Guests' UDP to multicast groups becomes flows for the relay to the host.
    pub multicast_relay: bool,
}

/// The gateway's MAC address in gvproxy's default network.
pub const DEFAULT_GATEWAY_MAC: EthernetAddress =
    EthernetAddress([0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xdd]);

impl Default for GatewayConfig {
    fn default() -> GatewayConfig {
        let dhcp = dhcp::Config::default();
        GatewayConfig {
            mac: DEFAULT_GATEWAY_MAC,
            ip: dhcp.server_addr,
            virtual_ips: vec![Ipv4Addr::new(192, 168, 127, 254)],
            ipv6: Vec::new(),
            dhcp,
            mtu: 1500,
            reassembly: FragConfig::default(),
            v6: None,
            disable_ipv6: false,
            multicast_relay: false,
        }
    }
}

/// Why a gateway could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    #[error("the DHCP server's address {dhcp} is not the gateway's {gateway}")]
    ServerAddress { dhcp: Ipv4Addr, gateway: Ipv4Addr },
    #[error("the gateway MAC {0} is not a unicast address")]
    BadMac(EthernetAddress),
    #[error(transparent)]
    Dhcp(#[from] dhcp::ConfigError),
    #[error("DHCPv6: {0}")]
    Dhcpv6(#[from] dhcp::v6::ConfigError),
}

/// What to do with a frame.
// `Flow` is the common case on the hot path and lives on the stack for a moment: boxing it
// would cost an allocation per packet to save a few hundred bytes of stack.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Send this frame back into the switch.
    Reply(Bytes),
    /// Send these frames back into the switch, in order: a reply cut into IP fragments to
    /// fit the MTU.
    Replies(Vec<Bytes>),
    /// Hand the frame to the worker owning this flow.
    Flow(FlowPacket),
    /// A DNS query over UDP to the gateway, for the DNS service.
    Dns(DnsQuery),
    /// A TCP segment to the gateway's port 53, for the DNS service's TCP side (RFC 7766).
    DnsTcp(FlowPacket),
    /// A fragment, kept until its datagram is complete.
    Held,
    /// The last fragment of a datagram arrived: this frame (the original Ethernet header and
    /// the whole datagram) is to be handled as if it had just arrived.
    Reassembled(Bytes),
    /// Nothing; counted under this reason.
    Dropped(DropReason),
}

/// The DNS port (RFC 1035 §4.2).
pub const DNS_PORT: u16 = 53;

/// Who asked a DNS question over UDP: where its answer goes, and from which of the
/// gateway's addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DnsClient {
    pub mac: EthernetAddress,
    pub addr: SocketAddr,
    /// The address the query was sent to: the answer's source.
    pub server: IpAddr,
}

/// A guest's DNS query to the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsQuery {
    pub client: DnsClient,
    pub payload: Bytes,
}

/// What the gateway answered; counters only grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GatewayCounters {
    /// Frames handed to [`Gateway::handle_frame`].
    pub frames: u64,
    pub arp_replies: u64,
    pub echo_replies: u64,
    pub dhcp_replies: u64,
    /// Neighbour advertisements sent (RFC 4861).
    pub ndp_replies: u64,
    /// Frames handed on as flows.
    pub flows: u64,
    /// DNS queries handed to the DNS service.
    pub dns_queries: u64,
    /// TCP segments to the gateway's port 53 handed to the DNS service.
    pub dns_tcp_segments: u64,
    /// IPv4 and IPv6 fragments kept for reassembly, and datagrams completed from them.
    pub fragments: u64,
    pub reassembled: u64,
    /// ICMP and ICMPv6 Time Exceeded (fragment reassembly) messages sent.
    pub time_exceeded_sent: u64,
    /// ICMPv6 port unreachable sent for UDP to a port of the gateway's IPv6 addresses.
    pub port_unreachable_sent: u64,
    /// Time Exceeded (code 0) sent for packets whose TTL or hop limit ran out here.
    pub hop_limit_exceeded: u64,
    /// Router solicitations taken, router advertisements sent (solicited or not).
    pub router_solicits: u64,
    pub router_adverts: u64,
    /// DHCPv6 replies and advertises sent.
    pub dhcpv6_replies: u64,
    /// Datagrams to multicast groups handed to the relay.
    pub multicast_flows: u64,
}

impl GatewayCounters {
    /// Adds `other`'s counts to these (several gateways' totals).
    pub fn merge(&mut self, other: &GatewayCounters) {
        self.frames += other.frames;
        self.arp_replies += other.arp_replies;
        self.echo_replies += other.echo_replies;
        self.dhcp_replies += other.dhcp_replies;
        self.ndp_replies += other.ndp_replies;
        self.flows += other.flows;
        self.dns_queries += other.dns_queries;
        self.dns_tcp_segments += other.dns_tcp_segments;
        self.fragments += other.fragments;
        self.reassembled += other.reassembled;
        self.time_exceeded_sent += other.time_exceeded_sent;
        self.port_unreachable_sent += other.port_unreachable_sent;
        self.hop_limit_exceeded += other.hop_limit_exceeded;
        self.router_solicits += other.router_solicits;
        self.router_adverts += other.router_adverts;
        self.dhcpv6_replies += other.dhcpv6_replies;
        self.multicast_flows += other.multicast_flows;
    }
}

/// The gateway's services. One thread owns each; the workers' gateways share the DHCP
/// server and the IPv6 services ([`SharedServices`]). See the module docs.
#[derive(Debug)]
pub struct Gateway {
    mac: EthernetAddress,
    ip: Ipv4Addr,
    subnet: dhcp::Subnet,
    owned: HashSet<Ipv4Addr>,
    owned6: HashSet<Ipv6Addr>,
    /// The DHCP server, shared by every worker's gateway: its leases are the network's.
    dhcp: Arc<Mutex<dhcp::Server>>,
    /// When the DHCP server's next timer is due, as last seen here (so that asking needs no
    /// lock); whichever gateway finds it due runs it.
    dhcp_due: Option<Instant>,
    epoch: Epoch,
    tx: Vec<u8>,
    ident: u16,
    /// The IPv6 fragment identification of the last fragmented reply.
    ident6: u32,
    /// The largest IP packet a reply may be ([`GatewayConfig::mtu`]).
    mtu: usize,
    counters: GatewayCounters,
    drops: DropCounters,
    /// The sender of the last ARP packet from a guest (or the address a guest's neighbour
    /// solicitation or advertisement spoke for), until [`Gateway::take_neighbour`].
    neighbour: Option<(IpAddr, EthernetAddress)>,
    /// IP fragment reassembly, bounded in datagrams and bytes (`stack::frag`).
    frag: Reassembler,
    /// Virtual IPv6 addresses: answered in Neighbor Discovery, their traffic is flows.
    virtual6: HashSet<Ipv6Addr>,
    /// Router advertisements and DHCPv6, shared by every gateway of the network.
    v6: Option<Arc<Mutex<v6::V6>>>,
    /// The gateway's address in the link's prefix, when IPv6 services are on.
    v6_address: Option<Ipv6Addr>,
    /// Whether this gateway runs the IPv6 services' timers (one of a network's gateways does).
    v6_timers: bool,
    disable_ipv6: bool,
    multicast_relay: bool,
}

/// What every gateway of one network shares: the DHCP server, and the IPv6 services' state
/// (router advertisements, the DHCPv6 server). One gateway per worker; one set of leases.
#[derive(Debug, Clone)]
pub struct SharedServices {
    dhcp: Arc<Mutex<dhcp::Server>>,
    v6: Option<Arc<Mutex<v6::V6>>>,
}

impl SharedServices {
    /// The servers `config` describes.
    pub fn new(config: &GatewayConfig) -> Result<SharedServices, GatewayError> {
        let v6 = match &config.v6 {
            Some(v6) => Some(Arc::new(Mutex::new(v6::V6::new(v6.clone())?))),
            None => None,
        };
        Ok(SharedServices {
            dhcp: Arc::new(Mutex::new(dhcp::Server::new(config.dhcp.clone())?)),
            v6,
        })
    }

    pub fn dhcp_stats(&self) -> dhcp::Stats {
        self.dhcp.lock().stats()
    }

    /// The DHCP server's leases (bound, and every static one).
    pub fn leases(&self) -> Vec<Lease> {
        self.dhcp.lock().leases()
    }

    /// The DHCPv6 server's counters, when IPv6 services are on.
    pub fn dhcpv6_stats(&self) -> Option<dhcp::v6::Stats> {
        self.v6.as_ref().map(|v6| v6.lock().dhcp.stats())
    }
}

impl Gateway {
    /// A gateway with servers of its own.
    pub fn new(config: GatewayConfig, epoch: Epoch) -> Result<Gateway, GatewayError> {
        let shared = SharedServices::new(&config)?;
        Gateway::with_shared(config, epoch, shared, true)
    }

    /// A gateway that shares `shared` (made from the same `config`) with others: one per
    /// worker. Only the one with `timers` runs the shared timers (periodic router
    /// advertisements, DHCPv6 expiry), so the others never touch the IPv6 state's lock
    /// outside the rare messages that need it.
    pub fn with_shared(
        config: GatewayConfig,
        epoch: Epoch,
        shared: SharedServices,
        timers: bool,
    ) -> Result<Gateway, GatewayError> {
        if config.dhcp.server_addr != config.ip {
            return Err(GatewayError::ServerAddress {
                dhcp: config.dhcp.server_addr,
                gateway: config.ip,
            });
        }
        if !config.mac.is_unicast() || config.mac == EthernetAddress([0; 6]) {
            return Err(GatewayError::BadMac(config.mac));
        }
        let mut owned: HashSet<Ipv4Addr> = config.virtual_ips.iter().copied().collect();
        owned.insert(config.ip);
        let mut owned6: HashSet<Ipv6Addr> = config.ipv6.iter().copied().collect();
        owned6.insert(link_local(config.mac));
        let mut virtual6 = HashSet::new();
        if let Some(v6) = &config.v6 {
            owned6.insert(v6.address);
            virtual6.extend(v6.virtual_ips.iter().copied());
        }
        let subnet = config.dhcp.subnet;
        Ok(Gateway {
            mac: config.mac,
            ip: config.ip,
            subnet,
            owned,
            owned6,
            dhcp: shared.dhcp,
            dhcp_due: None,
            epoch,
            tx: Vec::with_capacity(2048),
            ident: 0,
            ident6: 0,
            mtu: usize::from(config.mtu),
            counters: GatewayCounters::default(),
            drops: DropCounters::default(),
            neighbour: None,
            frag: Reassembler::new(config.reassembly),
            virtual6,
            v6_address: config.v6.as_ref().map(|v6| v6.address),
            v6: shared.v6,
            v6_timers: timers,
            disable_ipv6: config.disable_ipv6,
            multicast_relay: config.multicast_relay,
        })
    }

    pub fn mac(&self) -> EthernetAddress {
        self.mac
    }

    /// Where a guest is, as the last frame's ARP sender said (request, reply or gratuitous):
    /// a unicast MAC for an address of the subnet that is not ours; for IPv6, the source of
    /// a neighbour solicitation or the target of an advertisement. The forwarder needs it to
    /// open connections into guests that have not sent it anything yet.
    pub fn take_neighbour(&mut self) -> Option<(IpAddr, EthernetAddress)> {
        self.neighbour.take()
    }

    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// The gateway's link-local IPv6 address.
    pub fn link_local(&self) -> Ipv6Addr {
        link_local(self.mac)
    }

    /// Handles one frame that came over a link of `mtu` (its replies fit that link, and DHCP
    /// announces it).
    pub fn handle_frame_on(&mut self, now: Instant, frame: &[u8], mtu: u16) -> Outcome {
        self.handle_frame_with(now, frame, mtu, &ChecksumCapabilities::default())
    }

    /// [`Gateway::handle_frame_on`] for a frame whose link vouched for some of its checksums
    /// (`caps`: a virtio-net header's `NEEDS_CSUM` or `DATA_VALID`), which are not verified
    /// again.
    pub fn handle_frame_with(
        &mut self,
        now: Instant,
        frame: &[u8],
        mtu: u16,
        caps: &ChecksumCapabilities,
    ) -> Outcome {
        self.mtu = usize::from(mtu);
        self.handle_checked(now, frame, caps, false)
    }

    /// Handles one frame the switch delivered to the gateway at `now`.
    pub fn handle_frame(&mut self, now: Instant, frame: &[u8]) -> Outcome {
        self.handle_checked(now, frame, &ChecksumCapabilities::default(), false)
    }

    /// Handles the frame of an [`Outcome::Reassembled`], a datagram put together from
    /// fragments, as if it had just arrived; what may not come in fragments is dropped
    /// (Neighbor Discovery, RFC 6980 §5). Its checksums are verified: the link vouched for
    /// none of a reassembled datagram.
    pub fn handle_reassembled(&mut self, now: Instant, frame: &[u8]) -> Outcome {
        self.handle_checked(now, frame, &ChecksumCapabilities::default(), true)
    }

    fn handle_checked(
        &mut self,
        now: Instant,
        frame: &[u8],
        caps: &ChecksumCapabilities,
        reassembled: bool,
    ) -> Outcome {
        self.counters.frames += 1;
        let is_ipv6 = frame.get(12..14) == Some(&[0x86, 0xdd]);
        let outcome = match ingress::parse_with(frame, self.mac, caps) {
            _ if self.disable_ipv6 && is_ipv6 => Outcome::Dropped(DropReason::Ipv6Disabled),
            Ok(parsed) => self.dispatch(now, &parsed, reassembled),
            Err(reason) => Outcome::Dropped(reason),
        };
        match &outcome {
            Outcome::Dropped(reason) => self.drops.count(*reason),
            Outcome::Flow(flow) => {
                self.counters.flows += 1;
                if flow.key.remote.ip().is_multicast() {
                    self.counters.multicast_flows += 1;
                }
            }
            Outcome::Dns(_) => self.counters.dns_queries += 1,
            Outcome::DnsTcp(_) => self.counters.dns_tcp_segments += 1,
            Outcome::Held => self.counters.fragments += 1,
            Outcome::Reassembled(_) => {
                self.counters.fragments += 1;
                self.counters.reassembled += 1;
            }
            Outcome::Reply(_) | Outcome::Replies(_) => {}
        }
        outcome
    }

    fn dispatch(
        &mut self,
        now: Instant,
        parsed: &ingress::Parsed<'_>,
        reassembled: bool,
    ) -> Outcome {
        let eth = parsed.eth;
        match parsed.event {
            Event::Arp(arp) => self.arp(eth, arp),
            Event::Icmpv4 { ip, icmp } if ip.dst_addr == self.ip => match icmp {
                Icmpv4Repr::EchoRequest {
                    ident,
                    seq_no,
                    data,
                } => self.echo_reply(eth, &ip, ident, seq_no, data),
                Icmpv4Repr::EchoReply { .. } => Outcome::Dropped(DropReason::IcmpNotEcho),
                Icmpv4Repr::DstUnreachable { .. } | Icmpv4Repr::TimeExceeded { .. } => {
                    self.flow(parsed)
                }
            },
            Event::Udp { ip, udp, payload }
                if udp.dst_port == dhcp::message::SERVER_PORT
                    && matches!(ip.addresses().dst(), std::net::IpAddr::V4(d)
                        if d == self.ip || d.is_broadcast()) =>
            {
                self.dhcp(now, eth, payload)
            }
            Event::Udp { ip, udp, payload } if self.is_dhcpv6(&ip, udp.dst_port) => {
                self.dhcpv6(now, eth, &ip, udp.src_port, payload)
            }
            Event::Udp { ip, udp, payload }
                if udp.dst_port == DNS_PORT && self.serves_dns(ip.addresses().dst()) =>
            {
                let src = ip.addresses().src();
                if src.is_unspecified() {
                    return Outcome::Dropped(DropReason::InvalidSource);
                }
                Outcome::Dns(DnsQuery {
                    client: DnsClient {
                        mac: eth.src_addr,
                        addr: SocketAddr::new(src, udp.src_port),
                        server: ip.addresses().dst(),
                    },
                    payload: Bytes::copy_from_slice(payload),
                })
            }
            Event::Tcp { ip, tcp, .. }
                if tcp.dst_port == DNS_PORT && self.serves_dns(ip.addresses().dst()) =>
            {
                match self.flow(parsed) {
                    Outcome::Flow(flow) => Outcome::DnsTcp(flow),
                    other => other,
                }
            }
            Event::Icmpv6 { ip, icmp } => match icmp {
                Icmpv6Repr::Ndp(_) if reassembled => Outcome::Dropped(DropReason::NdpFragmented),
                Icmpv6Repr::Ndp(message) => self.ndp(now, eth, &ip, &message),
                Icmpv6Repr::EchoRequest {
                    ident,
                    seq_no,
                    data,
                } if self.owned6.contains(&ip.dst_addr) => {
                    self.echo6_reply(eth, &ip, ident, seq_no, data)
                }
                Icmpv6Repr::EchoReply { .. } if self.owned6.contains(&ip.dst_addr) => {
                    Outcome::Dropped(DropReason::IcmpNotEcho)
                }
                _ => self.flow(parsed),
            },
            // No service of the gateway on this port of its IPv6 address (RFC 4443 §3.1),
            // unless it is a port inbound forwards come from: the forwarder's, then.
            Event::Udp {
                ip: ingress::IpHeader::V6(ip),
                udp,
                ..
            } if self.owned6.contains(&ip.dst_addr)
                && !(Some(ip.dst_addr) == self.v6_address
                    && crate::INBOUND_PORTS.contains(&udp.dst_port)) =>
            {
                self.port_unreachable6(eth, &ip, parsed)
            }
            Event::Icmpv4 { .. } | Event::Udp { .. } | Event::Tcp { .. } => self.flow(parsed),
            Event::Ipv4Fragment { ip, payload } => {
                let tag = self.error_tag_v4(eth.src_addr, &ip, payload);
                self.reassemble(now, parsed.frame(), tag)
            }
            Event::Ipv6Fragment { ip, payload } => {
                let tag = self.error_tag_v6(eth.src_addr, &ip, payload);
                self.reassemble(now, parsed.frame(), tag)
            }
        }
    }

    /// Feeds a fragment to the reassembler. Why a fragment was refused is counted in the
    /// reassembler's own statistics ([`Gateway::frag_stats`]); here it is a `Fragment` drop.
    /// `tag` is what [`Gateway::poll_transmit`] needs should the datagram time out (see
    /// `frag_errors::mac_tag`).
    fn reassemble(&mut self, now: Instant, frame: &[u8], tag: u64) -> Outcome {
        let Some((header, ip)) = frame.split_at_checked(ethernet::HEADER_LEN) else {
            return Outcome::Dropped(DropReason::Fragment);
        };
        match self.frag.handle_tagged(now, ip, tag) {
            Ok(None) => Outcome::Held,
            Ok(Some(whole)) => {
                let mut out = Vec::with_capacity(header.len() + whole.packet().len());
                out.extend_from_slice(header);
                out.extend_from_slice(whole.packet());
                Outcome::Reassembled(Bytes::from(out))
            }
            Err(_) => Outcome::Dropped(DropReason::Fragment),
        }
    }

    /// The reassembler's counters: fragments, datagrams, bytes held, drops by reason.
    pub fn frag_stats(&self) -> FragStats {
        self.frag.stats()
    }

    fn icmpv6_frame(
        &mut self,
        dst_mac: EthernetAddress,
        src: Ipv6Addr,
        dst: Ipv6Addr,
        hop_limit: u8,
        icmp: &Icmpv6Repr<'_>,
    ) -> Bytes {
        self.icmpv6_frame_tc(dst_mac, (src, dst), hop_limit, (0, 0), icmp)
    }

    /// [`Gateway::icmpv6_frame`] with a traffic class, `(dscp, ecn)`.
    fn icmpv6_frame_tc(
        &mut self,
        dst_mac: EthernetAddress,
        (src, dst): (Ipv6Addr, Ipv6Addr),
        hop_limit: u8,
        (dscp, ecn): (u8, u8),
        icmp: &Icmpv6Repr<'_>,
    ) -> Bytes {
        let ip = Ipv6Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: IpProtocol::Icmpv6,
            payload_len: icmp.buffer_len(),
            hop_limit,
            dscp,
            ecn,
            flow_label: 0,
        };
        let addrs = IpAddresses::V6 { src, dst };
        let len = ipv6::HEADER_LEN + ip.payload_len;
        self.build(dst_mac, EtherType::Ipv6, len, |body| {
            let Some((header, payload)) = body.split_at_mut_checked(ipv6::HEADER_LEN) else {
                return;
            };
            icmp.emit(&mut Icmpv6Packet::new_unchecked(payload), &addrs);
            ip.emit(&mut Ipv6Packet::new_unchecked(header));
        })
    }

    fn flow(&mut self, parsed: &ingress::Parsed<'_>) -> Outcome {
        let Some(flow) = parsed.flow() else {
            return Outcome::Dropped(DropReason::UnsupportedProtocol);
        };
        let dst = flow.key.remote.ip();
        let src = flow.key.guest.ip();
        // Ingress has refused the limited broadcast; the subnet's own broadcast and an
        // unspecified source are only known here.
        if dst == std::net::IpAddr::V4(self.subnet.broadcast()) {
            return Outcome::Dropped(DropReason::BroadcastToNonService);
        }
        if src.is_unspecified() {
            return Outcome::Dropped(DropReason::InvalidSource);
        }
        if dst.is_multicast() {
            return self.multicast_flow(flow);
        }
        if let Some(reply) = self.hop_limit_exceeded(parsed.frame(), &flow) {
            return reply;
        }
        Outcome::Flow(flow)
    }

    /// RFC 826 "Packet Reception": answer a request for an address we own.
    fn arp(&mut self, eth: EthernetRepr, req: ArpRepr) -> Outcome {
        let sender = req.source_protocol_addr;
        if req.source_hardware_addr.is_unicast()
            && req.source_hardware_addr == eth.src_addr
            && self.subnet.is_host(sender)
            && !self.owned.contains(&sender)
        {
            self.neighbour = Some((IpAddr::V4(sender), req.source_hardware_addr));
        }
        if req.operation != ArpOperation::Request {
            return Outcome::Dropped(DropReason::ArpReply);
        }
        // A gratuitous request (sender = target) announces the sender; it asks nothing.
        if !self.owned.contains(&req.target_protocol_addr)
            || req.source_protocol_addr == req.target_protocol_addr
        {
            return Outcome::Dropped(DropReason::ArpNotOurs);
        }
        let reply = ArpRepr {
            operation: ArpOperation::Reply,
            source_hardware_addr: self.mac,
            source_protocol_addr: req.target_protocol_addr,
            target_hardware_addr: req.source_hardware_addr,
            target_protocol_addr: req.source_protocol_addr,
        };
        let len = reply.buffer_len();
        let frame = self.build(eth.src_addr, EtherType::Arp, len, |body| {
            reply.emit(&mut ArpPacket::new_unchecked(body));
        });
        self.counters.arp_replies += 1;
        Outcome::Reply(frame)
    }

    fn dhcp(&mut self, now: Instant, eth: EthernetRepr, payload: &[u8]) -> Outcome {
        let reply = {
            let mut server = self.dhcp.lock();
            let mtu = u16::try_from(self.mtu).unwrap_or(u16::MAX);
            let reply = server.handle_on_link(self.epoch.std(now), payload, mtu);
            self.dhcp_due = server.poll_timeout().map(|at| self.epoch.instant(at));
            reply
        };
        let Some(reply) = reply else {
            return Outcome::Dropped(DropReason::DhcpNoReply);
        };
        let dst_mac = match reply.destination {
            // A relay agent's request reached us from its own interface: answer there.
            Destination::Relay(_) => eth.src_addr,
            Destination::Broadcast | Destination::Client { .. } => reply
                .destination
                .mac()
                .unwrap_or(EthernetAddress::BROADCAST),
        };
        let dst_ip = reply.destination.ip();
        let udp = UdpRepr {
            src_port: dhcp::message::SERVER_PORT,
            dst_port: reply.destination.port(),
            payload_len: reply.payload.len(),
        };
        let udp_len = udp::HEADER_LEN + reply.payload.len();
        let ip = self.ipv4_repr(self.ip, dst_ip, IpProtocol::Udp, udp_len);
        let addrs = IpAddresses::V4 {
            src: self.ip,
            dst: dst_ip,
        };
        let frame = self.build(dst_mac, EtherType::Ipv4, ip.total_len(), |body| {
            let Some((header, datagram)) = body.split_at_mut_checked(ipv4::HEADER_LEN) else {
                return;
            };
            if let Some(room) = datagram.get_mut(udp::HEADER_LEN..) {
                room.copy_from_slice(&reply.payload);
            }
            udp.emit(&mut UdpPacket::new_unchecked(datagram), &addrs);
            ip.emit(&mut Ipv4Packet::new_unchecked(header));
        });
        self.counters.dhcp_replies += 1;
        Outcome::Reply(frame)
    }

    fn ipv4_repr(
        &mut self,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        protocol: IpProtocol,
        payload_len: usize,
    ) -> Ipv4Repr {
        self.ident = self.ident.wrapping_add(1);
        Ipv4Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: protocol,
            payload_len,
            hop_limit: DEFAULT_TTL,
            ident: self.ident,
            dont_frag: false,
            more_frags: false,
            frag_offset: 0,
            dscp: 0,
            ecn: 0,
        }
    }

    /// A frame from the gateway to `dst` with a `body_len`-byte payload that `fill` writes
    /// (it gets exactly `body_len` bytes), padded to [`MIN_FRAME_LEN`].
    fn build(
        &mut self,
        dst: EthernetAddress,
        ethertype: EtherType,
        body_len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Bytes {
        let len = (ethernet::HEADER_LEN + body_len).max(MIN_FRAME_LEN);
        self.tx.clear();
        self.tx.resize(len, 0);
        let eth = EthernetRepr {
            src_addr: self.mac,
            dst_addr: dst,
            ethertype,
        };
        eth.emit(&mut EthernetFrame::new_unchecked(&mut self.tx[..]));
        if let Some(body) = self
            .tx
            .get_mut(ethernet::HEADER_LEN..ethernet::HEADER_LEN + body_len)
        {
            fill(body);
        }
        Bytes::copy_from_slice(&self.tx)
    }

    /// When [`Gateway::handle_timeout`] next has work (the DHCP servers', reassembly's and
    /// router advertisements' timers).
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.dhcp_due, self.frag.poll_timeout(), self.v6_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Runs the timers due at `now`; the Time Exceeded messages of datagrams given up are
    /// then waiting in [`Gateway::poll_transmit`].
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.dhcp_due.is_some_and(|at| at <= now) {
            let mut server = self.dhcp.lock();
            server.handle_timeout(self.epoch.std(now));
            self.dhcp_due = server.poll_timeout().map(|at| self.epoch.instant(at));
        }
        self.frag.handle_timeout(now);
        self.v6_handle_timeout(now);
    }

    /// Counts a drop decided outside (a full worker queue).
    pub fn count_drop(&mut self, reason: DropReason) {
        self.drops.count(reason);
    }

    pub fn counters(&self) -> GatewayCounters {
        self.counters
    }

    pub fn drops(&self) -> &DropCounters {
        &self.drops
    }

    pub fn dhcp_stats(&self) -> dhcp::Stats {
        self.dhcp.lock().stats()
    }

    pub fn leases(&self) -> Vec<Lease> {
        self.dhcp.lock().leases()
    }
}

mod dns_frame;
mod echo;
mod frag_errors;
mod hop_limit;
pub mod mcast;
mod neighbors;
pub mod ra;
mod unreachable;
pub mod v6;

pub use self::dns_frame::dns_reply_frame;
pub use self::ra::RaConfig;
pub use self::v6::V6Config;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

#[cfg(test)]
#[path = "gateway_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "gateway_frag_tests.rs"]
mod frag_tests;

#[cfg(test)]
#[path = "gateway_answers_tests.rs"]
mod answers_tests;

#[cfg(test)]
#[path = "gateway_v6_tests.rs"]
mod v6_tests;
