//! TCP: each guest connection ends in a TCP engine [`Connection`], paired with a host
//! socket. This module holds the table (flows, their timers, driving one flow); opening
//! flows is [`outbound`]'s, [`inbound`]'s and [`api`]'s, moving their bytes [`pump`]'s, and
//! winding them down [`drain`]'s.
//!
//! - Outbound ([`outbound`]): a guest SYN starts a non-blocking connect; the guest gets
//!   SYN-ACK only once it completes ([`Connection::accept`]). Refused → RST; unreachable →
//!   ICMP host unreachable; no answer within the connect timeout → RST. Connects in flight
//!   (in total, and a fair share per guest and per destination), live connections (in total
//!   and per guest) and host sockets are bounded across workers by the shared
//!   [`crate::budget`] (beyond any, the SYN gets RST and a counter moves); a black-holed
//!   destination only holds its own slot, never the worker. A `socket()` that fails for want
//!   of descriptors is counted as such ([`crate::descriptors`]), not as a refusal by the host.
//! - TIME-WAIT: a flow entering it gives its live-flow unit back and joins a queue, oldest
//!   first. The table holds at most `max_tcp_flows` entries, TIME-WAIT included; when it is
//!   full, the oldest TIME-WAIT flow is closed to make room (as Linux does past
//!   `tcp_max_tw_buckets`), and only with none to reclaim is a SYN refused.
//! - Data with backpressure both ways ([`pump`]): the host socket is read only while the
//!   engine has send capacity, and the engine's receive ring is consumed only as far as the
//!   host socket took it (one `writev` of the ring's two slices). The guest's FIN becomes
//!   `shutdown(SHUT_WR)` once the ring is drained; the host's EOF becomes our FIN. A guest
//!   RST closes the host socket with `SO_LINGER 0`, so the host peer sees RST too; a host
//!   error resets the guest. When the engine gives up on the guest (retransmissions), what
//!   the guest sent before is still written out first (see [`drain`]).
//! - Inbound forwards ([`inbound`]): an accepted host connection opens into the guest with
//!   [`Connection::connect`], from the gateway's address and a port that hashes back here.
//! - The in-guest API ([`api`]): a connection to the gateway's API port is accepted at once
//!   and its request handed to the [`crate::control::GuestApi`]; bounded and timed.
//! - `tcp_open` counts the flows that hold a unit of the live-flow budget, so it always
//!   agrees with the budget's `tcp_flows` (TIME-WAIT flows are in `tcp_time_wait`). A flow
//!   being wound down ([`drain`]) keeps its unit, and its host socket its descriptor, until
//!   it ends.
//!
//! Every host socket is closed when its flow ends: on both FINs, on RST, or when the engine
//! reports the connection closed and nothing more is owed to the host. A host socket is
//! closed gracefully only after the guest's FIN became `shutdown(SHUT_WR)` behind every byte
//! before it; every other close is a reset (`SO_LINGER 0`), so a host peer never takes a
//! stream that was cut short for a complete one. Winding flows down — at exit, when their
//! guest goes away, or once the engine is done with bytes still owed to the host — is
//! [`drain`]'s. Timers live in a heap with lazy deletion.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use mio::Token;
use socket2::Socket;
use stack::ingress::{FlowKey, FlowL4};
use stack::offload::LinkOffloads;
use stack::tcp::{Config as TcpConfig, Connection, Endpoints, Event, State, reset_for_listener};
use stack::time::Instant;
use stack::wire::{EthernetAddress, IpAddresses, TcpControl, TcpRepr};

use crate::FastMap as HashMap;
use crate::config::Config;
use crate::descriptors::HostSocket;
use crate::handler::{KIND_TCP, Shared};
use crate::stats::Counters;
use crate::worker::{FlowFrame, FrameSink, Readiness};

mod api;
mod drain;
mod inbound;
mod outbound;
mod pump;
mod tx;

use drain::{Cause, Frozen, owes_host, reset_host};
use inbound::resolve;
use pump::{pump_from_host, pump_to_host};

/// The most bytes read from a host socket in one call.
const READ_CHUNK: usize = 256 * 1024;
/// Turns of the pump loop per call; bounds the work one flow does before the others run.
const PUMP_TURNS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Outbound,
    Inbound,
    Api,
}

struct Flow {
    key: FlowKey,
    conn: Connection,
    token: Token,
    host: Option<HostSocket>,
    /// The host socket is connected (an accepted one, or its connect succeeded): from then
    /// on it is owed the guest's stream.
    host_connected: bool,
    /// The guest's FIN arrived (latched: the engine forgets it once CLOSED).
    fin: bool,
    /// Payload bytes written to the host socket.
    to_host: u64,
    /// Being wound down with only its bytes for the host left to write; see [`drain`].
    frozen: Option<Frozen>,
    /// Wound down at exit or because its guest went away: its end is counted in
    /// `tcp_teardown_completed` or `tcp_teardown_reset`.
    teardown: bool,
    guest_mac: EthernetAddress,
    /// What the guest's link does for what we send (from its latest segment): checksums,
    /// super-segments ([`tx`]).
    offloads: LinkOffloads,
    /// False while an inbound flow waits for its guest's MAC: its segments are held back
    /// (the engine retransmits them) and each attempt sends an ARP request.
    resolved: bool,
    kind: Kind,
    /// The connect's deadline while it is in progress.
    connecting: Option<Instant>,
    /// The guest's SYN as ICMP quotes it, while connecting.
    quote: Vec<u8>,
    /// The host socket may have bytes to read (it said so, and no read since found it
    /// drained).
    readable: bool,
    /// A short read is no proof the host socket is drained ([`Readiness::urgent`], its
    /// end): read until it would block.
    read_to_block: bool,
    writable: bool,
    host_eof: bool,
    shut_wr: bool,
    /// The earliest of this flow's entries in [`TcpTable::timers`], the one that counts.
    scheduled: Option<Instant>,
    /// The in-guest API's exchange, for [`Kind::Api`] flows.
    api: Option<api::Exchange>,
    /// The guest whose live-flow unit this flow holds in the shared budget, until it is
    /// given back (at TIME-WAIT or removal); such a flow counts in `tcp_open`.
    budget: Option<IpAddr>,
    /// In TIME-WAIT, and queued in [`TcpTable::time_wait`].
    time_wait: bool,
}

struct Listener {
    socket: Socket,
    token: Token,
    remote: SocketAddr,
}

/// What a guest's SYN of no flow brings, for the path that opens its flow ([`api`] or
/// [`outbound`]).
struct Syn<'a> {
    key: FlowKey,
    endpoints: Endpoints,
    repr: &'a TcpRepr,
    mac: EthernetAddress,
    addrs: IpAddresses,
    /// The whole frame, for an ICMP error's quote.
    frame: &'a [u8],
    /// The MTU of the link it came over (the MSS we announce).
    mtu: u16,
    /// What that link does for what we send.
    offloads: LinkOffloads,
}

pub(crate) struct TcpTable {
    /// Boxed: the table's own allocation stays a few words per bucket, so a burst that grows
    /// it to thousands of flows leaves little behind once it shrinks, and a resize moves
    /// pointers, not flows.
    flows: HashMap<FlowKey, Box<Flow>>,
    by_token: HashMap<Token, FlowKey>,
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    /// The engine's settings but the segment size, which comes from each flow's link.
    engine: TcpConfig,
    /// The link MTU of a flow whose link is not known yet (one opened into a guest).
    default_mtu: u16,
    max_flows: usize,
    /// Flows that entered TIME-WAIT, oldest first (with their token: a stale entry, whose
    /// flow is gone or was replaced, is skipped). Bounded: compacted past twice the table.
    time_wait: VecDeque<(FlowKey, Token)>,
    connect_timeout: Duration,
    listeners: HashMap<u64, Listener>,
    listen_tokens: HashMap<Token, u64>,
    buf: Vec<u8>,
    /// Winding down for exit: new connections are refused; see [`drain`].
    draining: bool,
    /// Bounds the warnings about streams cut short.
    log: drain::LogBudget,
    /// Buffer bytes given back since [`TcpTable::take_freed`] last asked: by flows removed
    /// and by idle sweeps (what the worker's trims go by, see [`crate::trim`]).
    freed: usize,
}

/// A fresh secret for RFC 6528 initial sequence numbers, from the operating system's
/// random source (through `rand`'s thread generator, seeded from it). Every TCP endpoint of
/// host-switch takes its secret here.
pub fn isn_secret() -> [u8; 16] {
    rand::random()
}

impl TcpTable {
    pub(crate) fn new(config: &Config, mtu: u16) -> TcpTable {
        let secret = isn_secret();
        let engine = TcpConfig {
            recv_buffer: config.tcp_buffer,
            send_buffer: config.tcp_buffer,
            out_of_order_limit: config.tcp_buffer,
            isn_secret: secret,
            ..TcpConfig::default()
        };
        TcpTable {
            flows: HashMap::default(),
            by_token: HashMap::default(),
            timers: BinaryHeap::new(),
            engine,
            default_mtu: mtu,
            max_flows: config.max_tcp_flows.max(1),
            time_wait: VecDeque::new(),
            connect_timeout: config.tcp_connect_timeout,
            listeners: HashMap::default(),
            listen_tokens: HashMap::default(),
            buf: vec![0; READ_CHUNK],
            draining: false,
            log: drain::LogBudget::default(),
            freed: 0,
        }
    }

    /// The engine's settings for a flow with `ip` over a link of `mtu`: the MSS it announces
    /// is what that link carries (RFC 9293 §3.7.1), less the IPv4 or IPv6 and TCP headers.
    fn engine_for(&self, ip: IpAddr, mtu: u16) -> TcpConfig {
        let mss = if ip.is_ipv4() {
            mtu.saturating_sub(40).max(536)
        } else {
            mtu.saturating_sub(60).max(1220)
        };
        TcpConfig {
            mss,
            ..self.engine.clone()
        }
    }

    pub(crate) fn handle(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        packet: &FlowFrame,
        out: &dyn FrameSink,
    ) -> Option<usize> {
        let FlowL4::Tcp(repr) = packet.packet.l4 else {
            return None;
        };
        let key = packet.packet.key;
        let payload = packet.packet.payload(&packet.frame);
        let mac = packet.packet.eth.src_addr;
        let addrs = packet.packet.ip.addresses();
        let mtu = packet.link_mtu;
        let is_syn = repr.control == TcpControl::Syn && repr.ack_number.is_none();
        if let Some(flow) = self.flows.get_mut(&key) {
            if flow.frozen.is_some() {
                // The engine is done with this flow (its guest went away, or it closed):
                // only its bytes for the host are left. A segment for it is stale.
                if !is_syn {
                    send_rst(sh, out, mac, addrs, &repr);
                    return None;
                }
            } else if !(is_syn && flow.conn.accepts_new_syn(&repr)) {
                // Urgent data stays in the stream, delivered inline (see the README).
                if repr.urgent_pointer.is_some() {
                    Counters::bump(&sh.counters.tcp_urgent);
                }
                flow.guest_mac = mac;
                flow.offloads = packet.link_offloads;
                flow.resolved = true;
                flow.conn.handle_segment(now, &repr, payload);
                self.drive(sh, key, now, out);
                return None;
            }
            self.remove(sh, key);
        }
        if let Some(owner) = sh.elsewhere(&key) {
            return Some(owner);
        }
        if !is_syn || self.draining {
            send_rst(sh, out, mac, addrs, &repr);
            return None;
        }
        let syn = Syn {
            key,
            endpoints: Endpoints::of_incoming(&addrs, &repr),
            repr: &repr,
            mac,
            addrs,
            frame: &packet.frame,
            mtu,
            offloads: packet.link_offloads,
        };
        let api_port = sh.config.api_port == Some(key.remote.port());
        // Under --map-gateway, the gateway's other ports are the host's loopback (the NAT
        // rule the caller added), opened as any outbound flow.
        if key.remote.ip() == IpAddr::V4(sh.config.gateway_ip)
            && (api_port || !sh.config.map_gateway)
        {
            let api = sh.control.guest_api();
            if api_port && api.is_some() {
                self.open_api(sh, now, &syn, out);
            } else {
                send_rst(sh, out, mac, addrs, &repr);
            }
            return None;
        }
        self.open_outbound(sh, now, &syn, out);
        None
    }

    /// The idle sweep: every connection frees the buffers no data went through since the last
    /// sweep (a busy one keeps its memory between bursts). Returns the buffer bytes the flows
    /// still hold.
    pub(crate) fn sweep_buffers(&mut self) -> usize {
        let mut held = 0usize;
        for flow in self.flows.values_mut() {
            let freed = flow.conn.release_idle_buffers();
            self.freed = self.freed.saturating_add(freed);
            held = held.saturating_add(flow.conn.buffer_memory());
        }
        held
    }

    /// Buffer bytes given back since the last call (flows removed, idle buffers freed).
    pub(crate) fn take_freed(&mut self) -> usize {
        std::mem::take(&mut self.freed)
    }

    /// Whether the table holds no flow (TIME-WAIT included).
    pub(crate) fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// Whether the table has room for one more flow, closing the oldest flow in TIME-WAIT
    /// to make some if it is full (counted).
    fn make_room(&mut self, sh: &mut Shared) -> bool {
        if self.flows.len() < self.max_flows {
            return true;
        }
        while let Some((key, token)) = self.time_wait.pop_front() {
            if self
                .flows
                .get(&key)
                .is_some_and(|f| f.token == token && f.time_wait)
            {
                self.remove(sh, key);
                Counters::bump(&sh.counters.tcp_time_wait_reclaimed);
                return true;
            }
        }
        false
    }

    /// Notes that a flow entered TIME-WAIT: its live-flow unit goes back to the budget and
    /// it becomes reclaimable.
    fn entered_time_wait(&mut self, sh: &Shared, key: FlowKey) {
        let Some(flow) = self.flows.get_mut(&key) else {
            return;
        };
        // A flow still writing to its host is not reclaimable yet: it joins once done.
        if flow.time_wait || flow.conn.state() != State::TimeWait || owes_host(flow) {
            return;
        }
        flow.time_wait = true;
        give_budget(sh, flow);
        Counters::bump(&sh.counters.tcp_time_wait);
        self.time_wait.push_back((key, flow.token));
        if self.time_wait.len() > 2 * self.max_flows + 64 {
            let flows = &self.flows;
            self.time_wait
                .retain(|(k, t)| flows.get(k).is_some_and(|f| f.token == *t && f.time_wait));
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn insert(
        &mut self,
        sh: &mut Shared,
        key: FlowKey,
        conn: Connection,
        host: Option<HostSocket>,
        guest_mac: EthernetAddress,
        kind: Kind,
        connecting: Option<Instant>,
        quote: Vec<u8>,
    ) -> bool {
        if !sh.claim(key) {
            return false;
        }
        let token = sh.token(KIND_TCP);
        if let Some(h) = &host
            && sh.register(h, token).is_err()
        {
            sh.release(&key);
            return false;
        }
        self.by_token.insert(token, key);
        self.flows.insert(
            key,
            Box::new(Flow {
                key,
                conn,
                token,
                host_connected: host.is_some() && kind == Kind::Inbound,
                host,
                fin: false,
                to_host: 0,
                frozen: None,
                teardown: false,
                guest_mac,
                offloads: LinkOffloads::NONE,
                resolved: true,
                kind,
                connecting,
                quote,
                readable: kind == Kind::Inbound,
                read_to_block: kind == Kind::Inbound,
                writable: kind == Kind::Inbound,
                host_eof: false,
                shut_wr: false,
                scheduled: None,
                api: None,
                budget: None,
                time_wait: false,
            }),
        );
        Counters::bump(&sh.counters.tcp_total);
        true
    }

    /// Forgets a flow, closing its host socket: gracefully if the guest's stream to it was
    /// complete, with a reset otherwise (counted as [`Cause::Linger`]).
    fn remove(&mut self, sh: &mut Shared, key: FlowKey) {
        let Some(mut flow) = self.flows.remove(&key) else {
            return;
        };
        sh.release(&key);
        self.by_token.remove(&flow.token);
        self.freed = self.freed.saturating_add(flow.conn.buffer_memory());
        if flow.connecting.take().is_some() {
            sh.budget.connects.give(key.guest.ip(), key.remote);
            Counters::dec(&sh.counters.tcp_connecting);
        }
        give_budget(sh, &mut flow);
        if flow.kind == Kind::Api {
            sh.budget.api.give();
        }
        if flow.time_wait {
            Counters::dec(&sh.counters.tcp_time_wait);
        }
        drain::close_host(sh, &mut self.log, &mut flow, Cause::Linger);
    }

    fn schedule(&mut self, key: FlowKey) {
        let Some(flow) = self.flows.get_mut(&key) else {
            return;
        };
        // A frozen flow's engine is done: only its own deadline (and the host's progress)
        // matter. Otherwise the engine's timers, the connect's and the API exchange's.
        let next = match &flow.frozen {
            Some(frozen) => Some(frozen.next()),
            None => [
                flow.conn.poll_timeout(),
                flow.connecting,
                api::deadline(flow),
            ]
            .into_iter()
            .flatten()
            .min(),
        };
        // Only a deadline earlier than the one queued is queued. A later one waits for the
        // queued entry to fire, find nothing due and schedule again: the retransmission timer,
        // restarted with every segment sent, so costs one entry (and one wake-up) per firing
        // rather than one per segment, entries that would wake the worker for nothing.
        if let Some(at) = next
            && flow.scheduled.is_none_or(|queued| at < queued)
        {
            flow.scheduled = Some(at);
            self.timers.push(Reverse((at, flow.token.0)));
        }
        if self.timers.len() > 4 * self.flows.len() + 1024 {
            self.timers = self
                .flows
                .values()
                .filter_map(|f| f.scheduled.map(|at| Reverse((at, f.token.0))))
                .collect();
        }
    }

    /// Gives back the memory a burst of flows left behind: a table at a quarter of its
    /// capacity or less shrinks to twice its size (run once a sweep, so a table that fills
    /// and empties again does not shrink and grow on every flow).
    pub(crate) fn shrink(&mut self) -> bool {
        let shrank = crate::shrink_map(&mut self.flows);
        crate::shrink_map(&mut self.by_token);
        if self.timers.capacity() > 64 && self.timers.len() < self.timers.capacity() / 4 {
            self.timers.shrink_to(self.timers.len() * 2);
        }
        if self.time_wait.capacity() > 64 && self.time_wait.len() < self.time_wait.capacity() / 4 {
            self.time_wait.shrink_to(self.time_wait.len() * 2);
        }
        shrank
    }

    /// Entries in the timer queue, stale ones included.
    #[cfg(test)]
    pub(crate) fn queued_timers(&self) -> usize {
        self.timers.len()
    }

    /// Flows the table has room for without growing.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.flows.capacity()
    }

    /// Tries every flow's host socket again as a writable wake-up would: the kernel may
    /// make room below the wake-up's threshold, and tests need to know what it will take.
    #[cfg(test)]
    pub(crate) fn retry_writes(&mut self, sh: &mut Shared, now: Instant, out: &dyn FrameSink) {
        let keys: Vec<FlowKey> = self.flows.keys().copied().collect();
        for key in keys {
            if let Some(flow) = self.flows.get_mut(&key) {
                flow.writable = true;
            }
            self.drive(sh, key, now, out);
        }
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _))| *at)
    }

    pub(crate) fn handle_timeout(&mut self, sh: &mut Shared, now: Instant, out: &dyn FrameSink) {
        while let Some(Reverse((at, token))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(key) = self.by_token.get(&Token(token)).copied() else {
                continue;
            };
            let Some(flow) = self.flows.get_mut(&key) else {
                continue;
            };
            if flow.scheduled != Some(at) {
                continue;
            }
            flow.scheduled = None;
            if flow.frozen.is_some() {
                self.flush(sh, key, now);
                continue;
            }
            if flow.connecting.is_some_and(|d| d <= now) {
                Counters::bump(&sh.counters.tcp_connect_timeouts);
                sh.flow_log
                    .note(now, "TCP connect timed out", key.guest, key.remote);
                flow.conn.refuse(now);
                self.connect_done(sh, key);
            } else if api::overdue(flow, now) {
                Counters::bump(&sh.counters.api_timeouts);
                flow.api = None;
                flow.conn.abort(now);
            } else {
                flow.conn.handle_timeout(now);
            }
            self.drive(sh, key, now, out);
        }
    }

    pub(crate) fn ready(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        token: Token,
        readiness: Readiness,
        out: &dyn FrameSink,
    ) {
        let Some(key) = self.by_token.get(&token).copied() else {
            return;
        };
        let Some(flow) = self.flows.get_mut(&key) else {
            return;
        };
        flow.readable |= readiness.readable || readiness.closed;
        flow.writable |= readiness.writable || readiness.closed;
        flow.read_to_block |= readiness.short_read_may_leave_more();
        if flow.frozen.is_some() {
            self.flush(sh, key, now);
            return;
        }
        if flow.connecting.is_some() && !self.connect_ready(sh, now, key, out) {
            return;
        }
        self.drive(sh, key, now, out);
    }

    /// Moves data, events and segments of one flow until nothing more can move.
    fn drive(&mut self, sh: &mut Shared, key: FlowKey, now: Instant, out: &dyn FrameSink) {
        let Some(flow) = self.flows.get_mut(&key) else {
            return;
        };
        if flow.frozen.is_some() {
            self.flush(sh, key, now);
            return;
        }
        let mut closed = false;
        let mut timed_out = false;
        for _ in 0..PUMP_TURNS {
            let mut progress = false;
            while let Some(event) = flow.conn.poll_event() {
                match event {
                    Event::Reset => reset_host(sh, &mut self.log, flow, Cause::GuestReset),
                    // The guest stopped answering: what it sent before is still written out.
                    Event::TimedOut => timed_out = true,
                    Event::Closed => closed = true,
                    Event::PeerFin => flow.fin = true,
                    Event::Established | Event::Readable | Event::Writable => {}
                }
            }
            if flow.kind == Kind::Api {
                progress |= api::pump(sh, flow, key, now);
            } else if flow.connecting.is_none() {
                progress |= pump_to_host(sh, &mut self.log, flow, now);
                progress |= pump_from_host(sh, &mut self.log, flow, now, &mut self.buf);
            }
            if !flow.resolved && !resolve(sh, flow, key, now, out) {
                break;
            }
            tx::transmit(sh, flow, now, out);
            if !progress {
                break;
            }
        }
        // Both directions are over on the host side: its socket can go now, even if the
        // engine still waits (LAST-ACK, TIME-WAIT).
        if flow.host_eof
            && flow.shut_wr
            && let Some(host) = flow.host.take()
        {
            sh.deregister_fd(&host);
        }
        if closed || flow.conn.is_closed() {
            if owes_host(flow) {
                // The engine is done, the host socket is not: write what is left first.
                let (cause, wait) = if timed_out {
                    (Cause::GuestGone, sh.config.drain_timeout)
                } else {
                    (Cause::Linger, drain::LINGER)
                };
                self.freeze(sh, key, now, cause, now + wait);
            } else {
                self.remove(sh, key);
            }
        } else {
            self.entered_time_wait(sh, key);
            self.schedule(key);
        }
    }
}

/// Notes that `flow` holds a unit of the live-flow budget for `guest` (it counts as open).
fn hold_budget(sh: &Shared, flow: &mut Flow, guest: IpAddr) {
    flow.budget = Some(guest);
    Counters::bump(&sh.counters.tcp_open);
}

/// Gives back the live-flow unit `flow` holds, if any (it no longer counts as open).
fn give_budget(sh: &Shared, flow: &mut Flow) {
    if let Some(guest) = flow.budget.take() {
        sh.budget.tcp.give(guest);
        Counters::dec(&sh.counters.tcp_open);
    }
}

fn send_rst(
    sh: &mut Shared,
    out: &dyn FrameSink,
    mac: EthernetAddress,
    addrs: IpAddresses,
    repr: &TcpRepr,
) {
    // Every port of every destination listens (a SYN connects out), so a segment of no
    // flow is answered as a listening socket would (RFC 9293 §3.10.7.2).
    match reset_for_listener(repr) {
        Some(rst) => {
            let frame = sh.framer.tcp(mac, addrs.reversed(), &rst, (&[], &[]));
            sh.send(out, frame);
            Counters::bump(&sh.counters.tcp_resets_sent);
        }
        None if !repr.control.rst() => Counters::bump(&sh.counters.tcp_probes_dropped),
        None => {}
    }
}

#[cfg(test)]
mod secret_tests {
    #[test]
    fn isn_secrets_are_fresh_and_not_zero() {
        let (a, b) = (super::isn_secret(), super::isn_secret());
        assert_ne!(a, b);
        assert_ne!(a, [0; 16]);
    }
}
