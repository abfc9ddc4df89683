//! The gateway's own services, sans-IO: ARP, ICMP echo and DHCPv4 answered here; every other
//! IP packet handed on as a flow.
//!
//! [`Gateway::handle_frame`] takes a frame that the switch delivered to the gateway's port and
//! the time, parses it once ([`stack::ingress::parse`]) and returns an [`Outcome`]:
//! - ARP requests for an address we own — the gateway's and every virtual address (the host's
//!   192.168.127.254 by default) — get a reply (RFC 826). Gratuitous requests and requests
//!   for other addresses are dropped and counted; we never send ARP requests, since every
//!   reply goes to the L2 source of the frame it answers.
//! - ICMP echo requests to the gateway's address get an echo reply (RFC 792) with the same
//!   identifier, sequence number and data, TTL 64.
//! - UDP to port 67 of the gateway or of the limited broadcast goes to the [`dhcp::Server`];
//!   its reply is framed per its [`Destination`] (RFC 2131 §4.1): broadcast to ff:ff:ff:ff:ff:ff
//!   and 255.255.255.255, unicast to `chaddr`/`yiaddr` without ARP, or to a relay agent at
//!   the L2 address its request came from.
//! - TCP, UDP and ICMP to any other address (the host's included) or to another service of the
//!   gateway is a flow: [`Outcome::Flow`] carries the owned [`FlowPacket`] to hand to a worker.
//! - Everything else is an [`Outcome::Dropped`] with its [`DropReason`], counted in
//!   [`Gateway::drops`]. IPv4 fragments and IPv6 are dropped for now (their own reasons).
//!
//! Replies are built in one reusable buffer and copied once into their own `Bytes`; nothing
//! else is allocated per frame. Frames shorter than Ethernet's 60-byte minimum are padded.
//! The DHCP server wants `std::time::Instant`s; the gateway converts with its [`Epoch`].

use std::collections::HashSet;
use std::net::Ipv4Addr;

use bytes::Bytes;
use dhcp::{Destination, Lease};
use stack::ingress::{self, DropCounters, DropReason, Event, FlowPacket};
use stack::time::{Epoch, Instant};
use stack::wire::{
    ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetAddress, EthernetFrame, EthernetRepr,
    Icmpv4Packet, Icmpv4Repr, IpAddresses, IpProtocol, Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr,
    ethernet, ipv4, udp,
};

/// The TTL of every datagram the gateway originates (RFC 1700's default, as Linux uses).
pub const DEFAULT_TTL: u8 = 64;
/// The shortest Ethernet frame without FCS (IEEE 802.3: 64 bytes with it).
pub const MIN_FRAME_LEN: usize = 60;

/// What the gateway is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayConfig {
    pub mac: EthernetAddress,
    pub ip: Ipv4Addr,
    /// Further addresses the gateway answers ARP for (the host's), whose traffic is flows.
    pub virtual_ips: Vec<Ipv4Addr>,
    /// The DHCP server's configuration; its `server_addr` must be `ip`.
    pub dhcp: dhcp::Config,
}

impl Default for GatewayConfig {
    fn default() -> GatewayConfig {
        let dhcp = dhcp::Config::default();
        GatewayConfig {
            mac: crate::forward::DEFAULT_GATEWAY_MAC,
            ip: dhcp.server_addr,
            virtual_ips: vec![Ipv4Addr::new(192, 168, 127, 254)],
            dhcp,
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
}

/// What to do with a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Send this frame back into the switch.
    Reply(Bytes),
    /// Hand the frame to the worker owning this flow.
    Flow(FlowPacket),
    /// Nothing; counted under this reason.
    Dropped(DropReason),
}

/// What the gateway answered; counters only grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GatewayCounters {
    /// Frames handed to [`Gateway::handle_frame`].
    pub frames: u64,
    pub arp_replies: u64,
    pub echo_replies: u64,
    pub dhcp_replies: u64,
    /// Frames handed on as flows.
    pub flows: u64,
}

/// The gateway's services. One thread owns it. See the module docs.
#[derive(Debug)]
pub struct Gateway {
    mac: EthernetAddress,
    ip: Ipv4Addr,
    subnet: dhcp::Subnet,
    owned: HashSet<Ipv4Addr>,
    dhcp: dhcp::Server,
    epoch: Epoch,
    tx: Vec<u8>,
    ident: u16,
    counters: GatewayCounters,
    drops: DropCounters,
}

impl Gateway {
    pub fn new(config: GatewayConfig, epoch: Epoch) -> Result<Gateway, GatewayError> {
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
        let subnet = config.dhcp.subnet;
        Ok(Gateway {
            mac: config.mac,
            ip: config.ip,
            subnet,
            owned,
            dhcp: dhcp::Server::new(config.dhcp)?,
            epoch,
            tx: Vec::with_capacity(2048),
            ident: 0,
            counters: GatewayCounters::default(),
            drops: DropCounters::default(),
        })
    }

    pub fn mac(&self) -> EthernetAddress {
        self.mac
    }

    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// Handles one frame the switch delivered to the gateway at `now`.
    pub fn handle_frame(&mut self, now: Instant, frame: &[u8]) -> Outcome {
        self.counters.frames += 1;
        let outcome = match ingress::parse(frame, self.mac) {
            Ok(parsed) => self.dispatch(now, &parsed),
            Err(reason) => Outcome::Dropped(reason),
        };
        match &outcome {
            Outcome::Dropped(reason) => self.drops.count(*reason),
            Outcome::Flow(_) => self.counters.flows += 1,
            Outcome::Reply(_) => {}
        }
        outcome
    }

    fn dispatch(&mut self, now: Instant, parsed: &ingress::Parsed<'_>) -> Outcome {
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
            Event::Icmpv4 { .. } | Event::Udp { .. } | Event::Tcp { .. } => self.flow(parsed),
            Event::Ipv4Fragment { .. } => Outcome::Dropped(DropReason::Fragment),
            Event::Ipv6 { .. } => Outcome::Dropped(DropReason::Ipv6),
        }
    }

    fn flow(&self, parsed: &ingress::Parsed<'_>) -> Outcome {
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
        Outcome::Flow(flow)
    }

    /// RFC 826 "Packet Reception": answer a request for an address we own.
    fn arp(&mut self, eth: EthernetRepr, req: ArpRepr) -> Outcome {
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

    fn echo_reply(
        &mut self,
        eth: EthernetRepr,
        req: &Ipv4Repr,
        ident: u16,
        seq_no: u16,
        data: &[u8],
    ) -> Outcome {
        let icmp = Icmpv4Repr::EchoReply {
            ident,
            seq_no,
            data,
        };
        let ip = self.ipv4_repr(
            req.dst_addr,
            req.src_addr,
            IpProtocol::Icmp,
            icmp.buffer_len(),
        );
        let frame = self.build(eth.src_addr, EtherType::Ipv4, ip.total_len(), |body| {
            let (header, payload) = body.split_at_mut(ipv4::HEADER_LEN);
            icmp.emit(&mut Icmpv4Packet::new_unchecked(payload));
            ip.emit(&mut Ipv4Packet::new_unchecked(header));
        });
        self.counters.echo_replies += 1;
        Outcome::Reply(frame)
    }

    fn dhcp(&mut self, now: Instant, eth: EthernetRepr, payload: &[u8]) -> Outcome {
        let Some(reply) = self.dhcp.handle(self.epoch.std(now), payload) else {
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
            let (header, datagram) = body.split_at_mut(ipv4::HEADER_LEN);
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

    /// When [`Gateway::handle_timeout`] next has work (the DHCP server's timers).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.dhcp.poll_timeout().map(|at| self.epoch.instant(at))
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.dhcp.handle_timeout(self.epoch.std(now));
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
        self.dhcp.stats()
    }

    pub fn leases(&self) -> Vec<Lease> {
        self.dhcp.leases()
    }
}

#[cfg(test)]
#[path = "gateway_tests.rs"]
pub(crate) mod tests;
