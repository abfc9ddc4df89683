//! The gateway's IPv6 services besides Neighbor Discovery and echo: the configuration
//! ([`V6Config`]: the gateway's and the host's addresses in the link's prefix, router
//! advertisements, the DHCPv6 server), DHCPv6 (UDP to port 547 of ff02::1:2 or of the
//! gateway, answered from its link-local address to the client's source address and port,
//! RFC 8415 §18.3.10), and the frames of DNS answers to guests over IPv6.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use bytes::Bytes;
use stack::ingress::{DropReason, IpHeader};
use stack::time::Instant;
use stack::wire::{
    EtherType, EthernetAddress, EthernetFrame, EthernetRepr, IpAddresses, IpProtocol, Ipv6Packet,
    Ipv6Repr, UdpPacket, UdpRepr, ethernet, ipv6, udp,
};

use super::ra::{RaConfig, RaState};
use super::{DEFAULT_TTL, DnsClient, Gateway, MIN_FRAME_LEN, Outcome};

/// The gateway's and host's host numbers in the prefix, as in IPv4's default layout.
pub const GATEWAY_HOST: u128 = 1;
pub const HOST_HOST: u128 = 0x254;

/// What the gateway serves on IPv6.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V6Config {
    /// The gateway's address in the link's prefix (answered in NDP and echo, serves DNS).
    pub address: Ipv6Addr,
    /// Further addresses answered in Neighbor Discovery whose traffic is flows: the host's.
    pub virtual_ips: Vec<Ipv6Addr>,
    pub ra: RaConfig,
    pub dhcp: dhcp::v6::Config,
}

impl V6Config {
    /// host-switch's layout of a /64: the gateway at `::1`, the host at `::254`, the default
    /// guest's DHCPv6 static lease at `::2`, router advertisements naming the gateway as DNS
    /// server.
    pub fn for_prefix(
        prefix: Ipv6Addr,
        gateway_mac: EthernetAddress,
        guest_mac: EthernetAddress,
    ) -> V6Config {
        let mut dhcp = dhcp::v6::Config::for_prefix(prefix, gateway_mac, guest_mac);
        let prefix = dhcp.prefix;
        let address = dhcp::v6::config::nth(prefix, GATEWAY_HOST);
        let host = dhcp::v6::config::nth(prefix, HOST_HOST);
        dhcp.reserved = vec![address, host];
        dhcp.dns_servers = vec![address];
        V6Config {
            address,
            virtual_ips: vec![host],
            ra: RaConfig::for_prefix(prefix, address),
            dhcp,
        }
    }

    /// The DNS search list in both router advertisements and DHCPv6.
    pub fn with_search_domains(mut self, domains: &[String]) -> V6Config {
        self.ra.search_domains = domains.to_vec();
        self.dhcp.search_domains = domains.to_vec();
        self
    }
}

/// The gateway's IPv6 state.
#[derive(Debug)]
pub(super) struct V6 {
    pub(super) ra: RaState,
    pub(super) dhcp: dhcp::v6::Server,
}

impl V6 {
    pub(super) fn new(config: V6Config) -> Result<V6, dhcp::v6::ConfigError> {
        Ok(V6 {
            dhcp: dhcp::v6::Server::new(config.dhcp)?,
            ra: RaState::new(config.ra),
        })
    }
}

impl Gateway {
    /// Whether a UDP datagram is for the DHCPv6 server: to port 547 of All_DHCP_Relay_Agents_
    /// and_Servers or of one of the gateway's addresses.
    pub(super) fn is_dhcpv6(&self, ip: &IpHeader, dst_port: u16) -> bool {
        match ip.addresses().dst() {
            IpAddr::V6(dst) => {
                self.v6.is_some()
                    && dst_port == dhcp::v6::SERVER_PORT
                    && (dst == dhcp::v6::message::ALL_SERVERS || self.owned6.contains(&dst))
            }
            IpAddr::V4(_) => false,
        }
    }

    pub(super) fn dhcpv6(
        &mut self,
        now: Instant,
        eth: EthernetRepr,
        ip: &IpHeader,
        src_port: u16,
        payload: &[u8],
    ) -> Outcome {
        let IpAddr::V6(client) = ip.addresses().src() else {
            return Outcome::Dropped(DropReason::InvalidSource);
        };
        if client.is_unspecified() {
            return Outcome::Dropped(DropReason::InvalidSource);
        }
        let at = self.epoch.std(now);
        let Some(v6) = self.v6.as_ref() else {
            return Outcome::Dropped(DropReason::DhcpNoReply);
        };
        let Some(reply) = v6.lock().dhcp.handle(at, eth.src_addr, payload) else {
            return Outcome::Dropped(DropReason::DhcpNoReply);
        };
        let src = self.link_local();
        let to = SocketAddr::new(IpAddr::V6(client), src_port);
        let frame = udp6_frame(
            self.mac,
            eth.src_addr,
            src,
            dhcp::v6::SERVER_PORT,
            to,
            &reply,
        );
        self.counters.dhcpv6_replies += 1;
        Outcome::Reply(frame)
    }

    /// Whether DNS is served on `addr`: the gateway's IPv4 address, and its IPv6 ones when
    /// IPv6 services are on.
    pub(super) fn serves_dns(&self, addr: IpAddr) -> bool {
        match addr {
            IpAddr::V4(a) => a == self.ip,
            IpAddr::V6(a) => self.v6.is_some() && self.owned6.contains(&a),
        }
    }

    /// The DHCPv6 server's counters, when IPv6 services are on.
    pub fn dhcpv6_stats(&self) -> Option<dhcp::v6::Stats> {
        self.v6.as_ref().map(|v6| v6.lock().dhcp.stats())
    }

    /// The DHCPv6 server's bindings and static leases.
    pub fn dhcpv6_leases(&self) -> Vec<dhcp::v6::Lease> {
        self.v6
            .as_ref()
            .map(|v6| v6.lock().dhcp.leases())
            .unwrap_or_default()
    }

    /// The gateway's address in the link's prefix, when IPv6 services are on.
    pub fn ipv6_address(&self) -> Option<Ipv6Addr> {
        self.v6_address
    }

    /// When the IPv6 services' timers are next due.
    pub(super) fn v6_timeout(&self) -> Option<Instant> {
        if !self.v6_timers {
            return None;
        }
        let v6 = self.v6.as_ref()?.lock();
        let dhcp = v6.dhcp.poll_timeout().map(|at| self.epoch.instant(at));
        [v6.ra.poll_timeout(), dhcp].into_iter().flatten().min()
    }

    pub(super) fn v6_handle_timeout(&mut self, now: Instant) {
        let at = self.epoch.std(now);
        if !self.v6_timers {
            return;
        }
        if let Some(v6) = self.v6.as_ref() {
            let mut v6 = v6.lock();
            v6.ra.handle_timeout(now);
            v6.dhcp.handle_timeout(at);
        }
    }
}

/// A UDP datagram over IPv6 from `src` (`src_mac`) port `src_port` to `to` at `dst_mac`, hop
/// limit 64, padded to Ethernet's minimum.
pub(super) fn udp6_frame(
    src_mac: EthernetAddress,
    dst_mac: EthernetAddress,
    src: Ipv6Addr,
    src_port: u16,
    to: SocketAddr,
    payload: &[u8],
) -> Bytes {
    let IpAddr::V6(dst) = to.ip() else {
        return Bytes::new();
    };
    let udp = UdpRepr {
        src_port,
        dst_port: to.port(),
        payload_len: payload.len(),
    };
    let ip = Ipv6Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Udp,
        payload_len: udp::HEADER_LEN + payload.len(),
        hop_limit: DEFAULT_TTL,
        dscp: 0,
        ecn: 0,
        flow_label: 0,
    };
    let addrs = IpAddresses::V6 { src, dst };
    let body_len = ipv6::HEADER_LEN + ip.payload_len;
    let mut tx = vec![0u8; (ethernet::HEADER_LEN + body_len).max(MIN_FRAME_LEN)];
    EthernetRepr {
        src_addr: src_mac,
        dst_addr: dst_mac,
        ethertype: EtherType::Ipv6,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut tx[..]));
    if let Some(body) = tx.get_mut(ethernet::HEADER_LEN..ethernet::HEADER_LEN + body_len)
        && let Some((header, datagram)) = body.split_at_mut_checked(ipv6::HEADER_LEN)
    {
        if let Some(room) = datagram.get_mut(udp::HEADER_LEN..) {
            room.copy_from_slice(payload);
        }
        udp.emit(&mut UdpPacket::new_unchecked(datagram), &addrs);
        ip.emit(&mut Ipv6Packet::new_unchecked(header));
    }
    Bytes::from(tx)
}

/// A DNS answer to an IPv6 client, from the address it asked.
pub(super) fn dns6_reply_frame(mac: EthernetAddress, client: &DnsClient, payload: &[u8]) -> Bytes {
    match client.server {
        IpAddr::V6(server) => udp6_frame(
            mac,
            client.mac,
            server,
            super::DNS_PORT,
            client.addr,
            payload,
        ),
        IpAddr::V4(_) => Bytes::new(),
    }
}
