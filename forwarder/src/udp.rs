//! UDP: one host socket per guest address and port — an endpoint-independent mapping
//! (RFC 4787 §4.1, REQ-1) with endpoint-independent filtering: replies from any peer reach
//! the guest, from the address the guest knows for that peer ([`crate::nat::Nat::inbound`]).
//! A mapping idle for the configured timeout is closed (RFC 4787 §4.3, REQ-5: at least
//! 2 minutes). `ECONNREFUSED` (the peer's ICMP port unreachable, read from the socket's
//! error queue) becomes ICMP port unreachable to the guest, and every other ICMP error the
//! host's network sends about a datagram (host unreachable, TTL exceeded, too big) reaches
//! the guest likewise, from the router that sent it ([`crate::icmp_errors`]). Each quotes the
//! guest's own datagram to that destination (each mapping keeps the IP header and first 8
//! bytes of its last datagrams to [`QUOTED`] destinations, in fixed space), or one rebuilt
//! from the ports. The guest's TTL goes with each datagram ([`crate::hops`]). A datagram to a
//! multicast group leaves to that group ([`crate::mcast`]). Mappings are bounded in total
//! and per guest address across workers (the shared [`crate::budget`]); a datagram that
//! would need a mapping beyond either is dropped and counted.
//!
//! Inbound forwards: a bound host socket; each host peer gets a port of the gateway's
//! address (one that hashes to this worker) so the guest's answers find their way back.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

use mio::Token;
use socket2::{Domain, Protocol as SockProtocol, Socket, Type};
use stack::ingress::{FlowKey, FlowL4};
use stack::time::Instant;
use stack::wire::{EthernetAddress, IpProtocol};

use crate::FastMap as HashMap;
use crate::budget::Refusal;
use crate::config::Config;
use crate::descriptors::{self, Unit};
use crate::frame::{Quote, addresses, quote_of, synth_quote};
use crate::handler::{KIND_UDP, KIND_UDP_LISTEN, Shared};
use crate::hops::Hops;
use crate::icmp_errors::{self, GuestError};
use crate::stats::Counters;
use crate::sys;
use crate::worker::{FlowFrame, FrameSink};

/// The largest datagram read from a host socket.
const MAX_DATAGRAM: usize = 65535;
/// Host peers per UDP forward.
const MAX_PEERS: usize = 1024;
/// Destinations per mapping whose last datagram's quote is kept for an ICMP error.
const QUOTED: usize = 4;

struct Flow {
    socket: UdpSocket,
    token: Token,
    guest_mac: EthernetAddress,
    /// The guest's link MTU: a datagram longer goes to it in fragments.
    mtu: u16,
    last_active: Instant,
    /// The quote of the last datagram to each of the last [`QUOTED`] destinations (real,
    /// after NAT), overwritten round robin.
    sent: [Option<(SocketAddr, Quote)>; QUOTED],
    next_sent: usize,
    /// The virtual address the guest last sent to for the host's loopback (the host's
    /// address, or the gateway's under `--map-gateway`): replies from loopback come from it.
    loopback_as: Option<IpAddr>,
    hops: Hops,
    /// A send reported an ICMP error (`sk_err`) whose details wait in the error queue.
    errors_waiting: bool,
    /// The socket's unit of the descriptor budget, given back with the mapping.
    _unit: Unit,
}

impl Flow {
    /// Keeps `frame`'s quote as the last datagram to `dst`.
    fn remember(&mut self, dst: SocketAddr, frame: &[u8]) {
        let slot = match self
            .sent
            .iter()
            .position(|e| e.is_some_and(|(d, _)| d == dst))
        {
            Some(i) => i,
            None => {
                let i = self.next_sent % QUOTED;
                self.next_sent = self.next_sent.wrapping_add(1);
                i
            }
        };
        if let Some(entry) = self.sent.get_mut(slot) {
            *entry = Some((dst, Quote::of(frame)));
        }
    }

    /// The quote of the last datagram to `dst`, if kept.
    fn quote_for(&self, dst: SocketAddr) -> Option<Quote> {
        self.sent
            .iter()
            .flatten()
            .find(|(d, _)| *d == dst)
            .map(|(_, q)| *q)
    }

    /// The address the guest knows a host peer by.
    fn source_for(&self, sh: &Shared, peer: IpAddr) -> IpAddr {
        match self.loopback_as {
            Some(alias) if peer.is_loopback() => alias,
            _ => sh.nat.inbound(peer),
        }
    }
}

struct Listener {
    socket: UdpSocket,
    token: Token,
    remote: SocketAddr,
    /// Host peer → (our port, last active).
    peers: HashMap<SocketAddr, (u16, Instant)>,
}

pub(crate) struct UdpTable {
    flows: HashMap<SocketAddr, Flow>,
    by_token: HashMap<Token, SocketAddr>,
    max: usize,
    idle: Duration,
    listeners: HashMap<u64, Listener>,
    listen_tokens: HashMap<Token, u64>,
    /// Our port → (forward, host peer): where a guest's answer goes.
    inbound: HashMap<u16, (u64, SocketAddr)>,
    buf: Vec<u8>,
}

impl UdpTable {
    pub(crate) fn new(config: &Config) -> UdpTable {
        UdpTable {
            flows: HashMap::default(),
            by_token: HashMap::default(),
            max: config.max_udp_flows.max(1),
            idle: config.udp_idle_timeout,
            listeners: HashMap::default(),
            listen_tokens: HashMap::default(),
            inbound: HashMap::default(),
            buf: vec![0; MAX_DATAGRAM],
        }
    }

    pub(crate) fn handle(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        packet: &FlowFrame,
        out: &dyn FrameSink,
    ) -> Option<usize> {
        let FlowL4::Udp(_) = packet.packet.l4 else {
            return None;
        };
        let key = packet.packet.key;
        let payload = packet.packet.payload(&packet.frame);
        let mac = packet.packet.eth.src_addr;
        let back = addresses(key.remote.ip(), key.guest.ip());
        let to_gateway = sh.config.is_gateway(key.remote.ip());
        if to_gateway
            && let Some((id, peer)) = self.inbound.get(&key.remote.port()).copied()
            && let Some(l) = self.listeners.get_mut(&id)
        {
            if let Some(entry) = l.peers.get_mut(&peer) {
                entry.1 = now;
            }
            match l.socket.send_to(payload, peer) {
                Ok(n) => Counters::add(&sh.counters.bytes_to_host, n as u64),
                Err(_) => Counters::bump(&sh.counters.udp_send_dropped),
            }
            return None;
        }
        if to_gateway && let Some(owner) = sh.elsewhere(&key) {
            return Some(owner);
        }
        // `--map-gateway` maps only the gateway's IPv4 address to the host.
        if to_gateway && (key.remote.is_ipv6() || !sh.config.map_gateway) {
            // No service of the gateway on this port (DNS has its own path).
            if let Some(addrs) = back {
                let quote = quote_of(&packet.frame);
                let frame = sh.framer.unreachable(mac, addrs, true, &quote);
                sh.send(out, frame);
                Counters::bump(&sh.counters.udp_port_unreachable);
            }
            return None;
        }
        let multicast = key.remote.ip().is_multicast();
        let route = if multicast {
            Ok(key.remote.ip())
        } else {
            sh.nat.outbound(key.remote.ip())
        };
        let real = match route {
            Ok(real) => real,
            Err(refusal) => {
                Counters::bump(&sh.counters.nat_refused);
                sh.flow_log.note(
                    now,
                    format_args!("UDP refused: {refusal}"),
                    key.guest,
                    key.remote,
                );
                if let Some(addrs) = back {
                    let quote = quote_of(&packet.frame);
                    let frame = sh.framer.unreachable(mac, addrs, false, &quote);
                    sh.send(out, frame);
                }
                return None;
            }
        };
        if !self.flows.contains_key(&key.guest) {
            if let Some(owner) = sh.elsewhere(&mapping_key(key.guest)) {
                return Some(owner);
            }
            if let Err(refusal) = sh.budget.udp.take(key.guest.ip()) {
                let (counter, what) = match refusal {
                    Refusal::Total => (&sh.counters.udp_flow_limit, "UDP over --max-udp-flows"),
                    Refusal::Guest => (
                        &sh.counters.udp_guest_limit,
                        "UDP over --max-udp-flows-per-guest",
                    ),
                };
                Counters::bump(counter);
                sh.flow_log.note(now, what, key.guest, key.remote);
                return None;
            }
            // The budget bounds the total already; this is the table's own safety net.
            if self.flows.len() >= self.max {
                sh.budget.udp.give(key.guest.ip());
                Counters::bump(&sh.counters.udp_flow_limit);
                sh.flow_log
                    .note(now, "UDP table full", key.guest, key.remote);
                return None;
            }
            if !sh.claim(mapping_key(key.guest)) {
                sh.budget.udp.give(key.guest.ip());
                Counters::bump(&sh.counters.udp_send_dropped);
                return None;
            }
            let Some(flow) = open(sh, mac, packet.link_mtu, real, now) else {
                sh.release(&mapping_key(key.guest));
                sh.budget.udp.give(key.guest.ip());
                sh.flow_log
                    .note(now, "UDP socket not opened", key.guest, key.remote);
                return None;
            };
            self.by_token.insert(flow.token, key.guest);
            self.flows.insert(key.guest, flow);
            Counters::bump(&sh.counters.udp_total);
            Counters::bump(&sh.counters.udp_open);
        }
        let flow = self.flows.get_mut(&key.guest)?;
        flow.last_active = now;
        flow.guest_mac = mac;
        flow.mtu = packet.link_mtu;
        if real.is_loopback() {
            flow.loopback_as = Some(key.remote.ip());
        }
        if multicast {
            match crate::mcast::send(sh, &flow.socket, &mut flow.hops, &packet.packet, payload) {
                Ok(n) => {
                    Counters::add(&sh.counters.bytes_to_host, n as u64);
                    Counters::bump(&sh.counters.mcast_to_host);
                }
                Err(_) => Counters::bump(&sh.counters.udp_send_dropped),
            }
            return None;
        }
        flow.hops
            .carry(&flow.socket, real.is_ipv6(), &packet.packet, false);
        let dst = SocketAddr::new(real, key.remote.port());
        flow.remember(dst, &packet.frame);
        for _ in 0..2 {
            match flow.socket.send_to(payload, dst) {
                Ok(n) => {
                    Counters::add(&sh.counters.bytes_to_host, n as u64);
                    return None;
                }
                // An earlier datagram's error surfaced here: it is in the error queue, which
                // the readiness handler reads; send again.
                Err(e) if sys::is_icmp_error(&e) => {
                    flow.errors_waiting = true;
                    continue;
                }
                Err(_) => break,
            }
        }
        Counters::bump(&sh.counters.udp_send_dropped);
        None
    }

    pub(crate) fn ready(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        token: Token,
        out: &dyn FrameSink,
    ) {
        let Some(guest) = self.by_token.get(&token).copied() else {
            return;
        };
        let Some(flow) = self.flows.get_mut(&guest) else {
            return;
        };
        flow.last_active = now;
        // The error queue is read only when something says it holds an entry: a send or a
        // receive reported an ICMP error, or the wake-up brought no datagram (an error's own
        // wake-up). A datagram's wake-up costs its read and the read that finds no more.
        let mut check_errors = std::mem::take(&mut flow.errors_waiting);
        let mut received = false;
        let mut checked_idle = false;
        loop {
            while check_errors && let Some(err) = sys::take_queued_error(&flow.socket) {
                let Some(kind) =
                    icmp_errors::classify(err.origin, err.icmp_type, err.icmp_code, err.info)
                else {
                    continue;
                };
                let virt = flow.source_for(sh, err.dst.ip());
                let from = err.offender.map_or(virt, |o| flow.source_for(sh, o.ip()));
                if let Some(quoted) = addresses(guest.ip(), virt) {
                    // The guest's own datagram when kept; else one rebuilt from the ports.
                    let kept = flow.quote_for(err.dst);
                    let synth;
                    let quote = match &kept {
                        Some(kept) => kept.bytes(),
                        None => {
                            synth =
                                synth_quote(quoted, IpProtocol::Udp, guest.port(), err.dst.port());
                            &synth[..]
                        }
                    };
                    let frame = icmp_errors::error_frame(
                        &mut sh.framer,
                        flow.guest_mac,
                        from,
                        guest.ip(),
                        kind,
                        quote,
                    );
                    sh.send_bytes(out, frame);
                    Counters::bump(if kind == GuestError::PortUnreachable {
                        &sh.counters.udp_port_unreachable
                    } else {
                        &sh.counters.icmp_errors_relayed
                    });
                }
            }
            check_errors = false;
            match flow.socket.recv_from(&mut self.buf) {
                Ok((n, peer)) => {
                    received = true;
                    Counters::add(&sh.counters.bytes_from_host, n as u64);
                    let src = flow.source_for(sh, peer.ip());
                    let data = self.buf.get(..n).unwrap_or_default();
                    if let Some(addrs) = addresses(src, guest.ip()) {
                        let mtu = usize::from(flow.mtu);
                        let (sport, dport) = (peer.port(), guest.port());
                        let sent =
                            sh.framer
                                .send_udp(out, mtu, flow.guest_mac, addrs, sport, dport, data);
                        sh.count_sent(sent, data.len() as u64);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if received || checked_idle {
                        break;
                    }
                    checked_idle = true;
                    check_errors = true;
                }
                Err(e) if sys::is_icmp_error(&e) => check_errors = true,
                Err(_) => break,
            }
        }
    }

    /// Gives back the memory a burst of mappings left behind (see [`crate::shrink_map`]).
    pub(crate) fn shrink(&mut self) -> bool {
        let shrank = crate::shrink_map(&mut self.flows);
        crate::shrink_map(&mut self.by_token);
        crate::shrink_map(&mut self.inbound);
        shrank
    }

    /// Closes mappings and forward peers idle for longer than the timeout.
    pub(crate) fn sweep(&mut self, sh: &mut Shared, now: Instant) {
        let idle = self.idle;
        let expired: Vec<SocketAddr> = self
            .flows
            .iter()
            .filter(|(_, f)| now.saturating_duration_since(f.last_active) >= idle)
            .map(|(k, _)| *k)
            .collect();
        for guest in expired {
            if self.close(sh, guest) {
                Counters::bump(&sh.counters.udp_expired);
            }
        }
        let inbound = &mut self.inbound;
        for l in self.listeners.values_mut() {
            let remote = l.remote;
            let ours = sh.config.gateway_for(remote.ip());
            l.peers.retain(|_, (port, last)| {
                let keep = now.saturating_duration_since(*last) < idle;
                if !keep {
                    inbound.remove(port);
                    if let Some(ours) = ours {
                        sh.release(&inbound_key(remote, ours, *port));
                    }
                }
                keep
            });
        }
    }

    /// Closes every mapping of a guest with one of `macs` (its link went away); returns how
    /// many.
    pub(crate) fn remove_guest(
        &mut self,
        sh: &mut Shared,
        macs: &std::collections::HashSet<EthernetAddress>,
    ) -> usize {
        let gone: Vec<SocketAddr> = self
            .flows
            .iter()
            .filter(|(_, f)| macs.contains(&f.guest_mac))
            .map(|(k, _)| *k)
            .collect();
        for guest in &gone {
            self.close(sh, *guest);
        }
        gone.len()
    }

    /// Forgets the mapping of `guest`, closing its socket and giving back its budget unit;
    /// false if there was none.
    fn close(&mut self, sh: &mut Shared, guest: SocketAddr) -> bool {
        let Some(flow) = self.flows.remove(&guest) else {
            return false;
        };
        sh.deregister_fd(&flow.socket);
        sh.release(&mapping_key(guest));
        self.by_token.remove(&flow.token);
        sh.budget.udp.give(guest.ip());
        Counters::dec(&sh.counters.udp_open);
        true
    }

    pub(crate) fn listen(&mut self, sh: &mut Shared, id: u64, socket: Socket, remote: SocketAddr) {
        let token = sh.token(KIND_UDP_LISTEN);
        if sh.register(&socket, token).is_err() {
            return;
        }
        self.listen_tokens.insert(token, id);
        self.listeners.insert(
            id,
            Listener {
                socket: UdpSocket::from(socket),
                token,
                remote,
                peers: HashMap::default(),
            },
        );
    }

    pub(crate) fn unlisten(&mut self, sh: &Shared, id: u64) {
        if let Some(l) = self.listeners.remove(&id) {
            sh.deregister_fd(&l.socket);
            self.listen_tokens.remove(&l.token);
            let ours = sh.config.gateway_for(l.remote.ip());
            for (port, _) in l.peers.values() {
                self.inbound.remove(port);
                if let Some(ours) = ours {
                    sh.release(&inbound_key(l.remote, ours, *port));
                }
            }
        }
    }

    pub(crate) fn ready_listener(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        token: Token,
        out: &dyn FrameSink,
    ) {
        let Some(id) = self.listen_tokens.get(&token).copied() else {
            return;
        };
        let Some(l) = self.listeners.get_mut(&id) else {
            return;
        };
        let gateway = sh.config.gateway_for(l.remote.ip());
        loop {
            let (n, peer) = match l.socket.recv_from(&mut self.buf) {
                Ok(r) => r,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(_) => continue,
            };
            let Some(ours) = gateway else {
                // An IPv6 guest address with no IPv6 on the gateway: nowhere to send from.
                Counters::bump(&sh.counters.inbound_dropped);
                continue;
            };
            let Some(mac) = sh.control.neighbour(l.remote.ip()) else {
                // Not seen yet: this datagram is lost, but an ARP request (a neighbour
                // solicitation for IPv6) finds the guest for the peer's next one.
                Counters::bump(&sh.counters.inbound_unresolved);
                sh.ask_for(out, ours, l.remote.ip());
                continue;
            };
            let port = match l.peers.get_mut(&peer) {
                Some(entry) => {
                    entry.1 = now;
                    entry.0
                }
                None => {
                    if l.peers.len() >= MAX_PEERS {
                        Counters::bump(&sh.counters.inbound_dropped);
                        continue;
                    }
                    let inbound = &self.inbound;
                    let salt = u64::from(peer.port()) ^ (id << 20);
                    let Some(port) = sh.pick_port(IpProtocol::Udp, l.remote, ours, salt, |p| {
                        inbound.contains_key(&p)
                    }) else {
                        Counters::bump(&sh.counters.inbound_dropped);
                        continue;
                    };
                    if !sh.claim(inbound_key(l.remote, ours, port)) {
                        Counters::bump(&sh.counters.inbound_dropped);
                        continue;
                    }
                    l.peers.insert(peer, (port, now));
                    self.inbound.insert(port, (id, peer));
                    Counters::bump(&sh.counters.inbound_accepted);
                    port
                }
            };
            let data = self.buf.get(..n).unwrap_or_default();
            if let Some(addrs) = addresses(ours, l.remote.ip()) {
                let mtu = usize::from(sh.default_mtu);
                let sent = sh
                    .framer
                    .send_udp(out, mtu, mac, addrs, port, l.remote.port(), data);
                sh.count_sent(sent, data.len() as u64);
            }
        }
    }
}

/// The directory's key of the mapping of `guest`: its address and port, any remote.
fn mapping_key(guest: SocketAddr) -> FlowKey {
    let any = if guest.is_ipv4() {
        SocketAddr::from(([0u8; 4], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    FlowKey {
        protocol: IpProtocol::Udp,
        guest,
        remote: any,
    }
}

/// The directory's key of a forward's host peer: the guest's answers to our `port`.
fn inbound_key(guest: SocketAddr, ours: IpAddr, port: u16) -> FlowKey {
    FlowKey {
        protocol: IpProtocol::Udp,
        guest,
        remote: SocketAddr::new(ours, port),
    }
}

fn open(
    sh: &mut Shared,
    guest_mac: EthernetAddress,
    mtu: u16,
    real: IpAddr,
    now: Instant,
) -> Option<Flow> {
    let domain = if real.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let Some(unit) = Unit::take(&sh.budget) else {
        Counters::bump(&sh.counters.descriptor_limit);
        return None;
    };
    let socket = match Socket::new(domain, Type::DGRAM, Some(SockProtocol::UDP)) {
        Ok(socket) => socket,
        Err(e) => {
            if descriptors::is_exhausted(&e) {
                descriptors::note_exhausted(&sh.counters, now, "a UDP mapping", &e);
            }
            return None;
        }
    };
    socket.set_nonblocking(true).ok()?;
    let any: SocketAddr = if real.is_ipv4() {
        SocketAddr::from(([0u8; 4], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    socket.bind(&any.into()).ok()?;
    let _ = sys::set_recverr(&socket, real.is_ipv6());
    let token = sh.token(KIND_UDP);
    sh.register(&socket, token).ok()?;
    Some(Flow {
        socket: UdpSocket::from(socket),
        token,
        guest_mac,
        mtu,
        last_active: now,
        sent: [None; QUOTED],
        next_sent: 0,
        loopback_as: None,
        hops: Hops::default(),
        errors_waiting: false,
        _unit: unit,
    })
}
