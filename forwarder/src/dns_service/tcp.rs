//! DNS over TCP on the gateway, the guest side (RFC 7766): every guest TCP connection to
//! the gateway's port 53 ends here, in the DNS thread ([`super::DnsThread`]), in a
//! [`stack::tcp::Connection`] accepted at once (nothing on the host has to connect first).
//!
//! - The stream is cut into messages by a [`dns::stream::Decoder`] (one message of at most
//!   65535 bytes held per connection); each message is a query for the resolver, with the
//!   connection's id as its client. A zero length resets the connection, counted.
//! - Pipelining (RFC 7766 §6.2.1.1): a guest may send many queries without waiting; answers
//!   go back in the order they come, not the order asked. At most
//!   [`Limits::max_pipeline`] queries per connection are outstanding and at most
//!   [`Limits::max_backlog`] answer bytes wait for the guest's window; past either the
//!   receive ring is left alone, so the window the guest sees closes (counted once per stall).
//! - A connection holds one of [`Limits::max_connections`] slots until it stops needing it:
//!   until our FIN is queued (idle, or after the guest's) or it is reset. A connection that
//!   is closing (FIN-WAIT, LAST-ACK, TIME-WAIT, ...) holds no slot; the table keeps at most
//!   [`Limits::max_connections`] connections in all, so a SYN that finds it full of closing
//!   ones reclaims the oldest (RST unless it is in TIME-WAIT), counted, as Linux past
//!   `tcp_max_tw_buckets`. With every slot held, a SYN gets RST, counted.
//! - Every message read is an answer owed, until it is answered or the resolver drops it
//!   unanswered ([`GuestTcp::unanswered`]: a response, or shorter than a header); so a
//!   connection's count of owed answers always comes back to zero.
//! - A connection with nothing outstanding and no traffic for [`Limits::idle_timeout`] is
//!   closed with FIN (RFC 7766 §6.2.3). The guest's FIN is answered with ours once every
//!   query it sent is answered.
//! - A segment of no connection is answered as a listening socket answers it (RFC 9293
//!   §3.10.7.2): RST to an ACK, nothing to a segment with neither SYN, ACK nor RST (FIN,
//!   NULL and Xmas scans: counted).
//!
//! Connections are found by the guest's address (the other end is always the gateway's
//! port 53) and by id; timers sit in an ordered set keyed by deadline.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use dns::stream::{self, Decoder};
use stack::ingress::FlowL4;
use stack::tcp::{Config as EngineConfig, Connection, Endpoints, Event, reset_for_listener};
use stack::time::Instant;
use stack::wire::{EthernetAddress, TcpControl};

use super::ToGuests;
use crate::FlowFrame;
use crate::frame::Framer;

/// Turns of one connection's pump per call.
const PUMP_TURNS: usize = 16;

/// Bounds of the TCP side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: usize,
    pub max_pipeline: usize,
    pub max_backlog: usize,
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 256,
            max_pipeline: 64,
            max_backlog: 256 * 1024,
            // RFC 7766 §6.2.3 suggests seconds; BIND uses 30 s for an idle connection.
            idle_timeout: Duration::from_secs(10),
        }
    }
}

/// What the TCP side did; all but `open` and `closing` only grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpDnsCounters {
    pub accepted: u64,
    /// Connections holding a slot now.
    pub open: u64,
    /// Connections closing now (our FIN sent, TIME-WAIT, ...), which hold no slot.
    pub closing: u64,
    /// Closing connections ended early to make room for a new one.
    pub reclaimed: u64,
    /// SYNs refused with RST: every one of [`Limits::max_connections`] slots held.
    pub refused: u64,
    /// Messages read from guests.
    pub queries: u64,
    /// Answers queued to guests.
    pub answers: u64,
    /// Answers whose connection was gone.
    pub answers_lost: u64,
    /// Connections reset for a zero length.
    pub bad_length: u64,
    /// Guest FINs in the middle of a message.
    pub truncated: u64,
    /// Connections closed for idleness.
    pub idle_closed: u64,
    /// Times a connection stopped reading: too many queries outstanding or answers queued.
    pub stalls: u64,
    /// RSTs to segments of no connection.
    pub resets_sent: u64,
    /// Segments of no connection with neither SYN, ACK nor RST, dropped unanswered.
    pub probes_dropped: u64,
    /// Messages the resolver dropped without an answer (no longer owed).
    pub unanswered: u64,
    /// Segments the switch's queue had no room for.
    pub frames_dropped: u64,
}

struct Conn {
    conn: Connection,
    key: SocketAddr,
    mac: EthernetAddress,
    decoder: Decoder,
    outstanding: usize,
    backlog: Vec<u8>,
    last_active: Instant,
    scheduled: Option<Instant>,
    closing: bool,
    /// Once closing: its place in [`GuestTcp::closing`], the order connections are reclaimed in.
    reclaim_order: Option<u64>,
    stalled: bool,
}

/// The guest side of DNS over TCP. See the module docs.
pub(super) struct GuestTcp {
    conns: HashMap<u64, Conn>,
    by_key: HashMap<SocketAddr, u64>,
    timers: BTreeSet<(Instant, u64)>,
    /// The connections closing, which hold no slot, oldest first: order → id.
    closing: BTreeMap<u64, u64>,
    next_close: u64,
    next_id: u64,
    engine: EngineConfig,
    framer: Framer,
    limits: Limits,
    counters: TcpDnsCounters,
}

/// A query read from a guest connection: its id and the message.
pub(super) type Query = (u64, Vec<u8>);

impl GuestTcp {
    pub(super) fn new(mac: EthernetAddress, limits: Limits) -> GuestTcp {
        let engine = EngineConfig {
            // Safe on any link of 1500 bytes or more.
            mss: 1460,
            recv_buffer: 64 * 1024,
            send_buffer: 128 * 1024,
            out_of_order_limit: 64 * 1024,
            isn_secret: crate::isn_secret(),
            ..EngineConfig::default()
        };
        GuestTcp {
            conns: HashMap::new(),
            by_key: HashMap::new(),
            timers: BTreeSet::new(),
            closing: BTreeMap::new(),
            next_close: 0,
            next_id: 0,
            engine,
            framer: Framer::new(mac),
            limits,
            counters: TcpDnsCounters::default(),
        }
    }

    pub(super) fn counters(&self) -> TcpDnsCounters {
        TcpDnsCounters {
            open: self.live() as u64,
            closing: self.closing.len() as u64,
            ..self.counters
        }
    }

    /// Connections holding a slot.
    fn live(&self) -> usize {
        self.conns.len().saturating_sub(self.closing.len())
    }

    /// A guest's segment to the gateway's port 53. Whole queries land in `queries`.
    pub(super) fn segment(
        &mut self,
        now: Instant,
        packet: &FlowFrame,
        queries: &mut Vec<Query>,
        port: &dyn ToGuests,
    ) {
        let FlowL4::Tcp(repr) = packet.packet.l4 else {
            return;
        };
        let key = packet.packet.key.guest;
        let payload = packet.packet.payload(&packet.frame);
        let mac = packet.packet.eth.src_addr;
        let addrs = packet.packet.ip.addresses();
        let is_syn = repr.control == TcpControl::Syn && repr.ack_number.is_none();
        if let Some(&id) = self.by_key.get(&key) {
            if let Some(c) = self.conns.get_mut(&id)
                && !(is_syn && c.conn.accepts_new_syn(&repr))
            {
                c.mac = mac;
                c.conn.handle_segment(now, &repr, payload);
                self.drive(id, now, queries, port);
                return;
            }
            self.remove(id);
        }
        let refuse = if !is_syn {
            true
        } else if self.live() >= self.limits.max_connections {
            self.counters.refused += 1;
            true
        } else {
            if self.conns.len() >= self.limits.max_connections {
                self.reclaim_oldest(now, port);
            }
            false
        };
        if refuse {
            // Port 53 listens: RFC 9293 §3.10.7.2 (a SYN refused gets RST as well).
            match reset_for_listener(&repr) {
                Some(rst) => {
                    let frame = self
                        .framer
                        .tcp(mac, addrs.reversed(), &rst, (&[], &[]))
                        .map(|f| f.into_bytes());
                    self.counters.resets_sent += 1;
                    self.send(port, frame);
                }
                None if !repr.control.rst() => self.counters.probes_dropped += 1,
                None => {}
            }
            return;
        }
        let endpoints = Endpoints::of_incoming(&addrs, &repr);
        let mut conn = Connection::syn_received(now, &self.engine, endpoints, &repr);
        conn.accept(now);
        self.next_id = self.next_id.wrapping_add(1);
        let id = self.next_id;
        self.conns.insert(
            id,
            Conn {
                conn,
                key,
                mac,
                decoder: Decoder::default(),
                outstanding: 0,
                backlog: Vec::new(),
                last_active: now,
                scheduled: None,
                closing: false,
                reclaim_order: None,
                stalled: false,
            },
        );
        self.by_key.insert(key, id);
        self.counters.accepted += 1;
        self.drive(id, now, queries, port);
    }

    /// The answer to a query of connection `id`.
    pub(super) fn answer(
        &mut self,
        now: Instant,
        id: u64,
        payload: &[u8],
        queries: &mut Vec<Query>,
        port: &dyn ToGuests,
    ) {
        let Some(c) = self.conns.get_mut(&id) else {
            self.counters.answers_lost += 1;
            return;
        };
        c.outstanding = c.outstanding.saturating_sub(1);
        if let Some(framed) = stream::frame(payload) {
            c.backlog.extend_from_slice(&framed);
            self.counters.answers += 1;
        }
        self.drive(id, now, queries, port);
    }

    /// The resolver dropped a query of connection `id` without answering it (see
    /// [`dns::Disposition::Dropped`]): the answer is no longer owed.
    pub(super) fn unanswered(
        &mut self,
        now: Instant,
        id: u64,
        queries: &mut Vec<Query>,
        port: &dyn ToGuests,
    ) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        c.outstanding = c.outstanding.saturating_sub(1);
        self.counters.unanswered += 1;
        self.drive(id, now, queries, port);
    }

    /// Ends the connection that started closing first, to make room: RST to the guest
    /// unless it is in TIME-WAIT (whose RST would be answered by nothing).
    fn reclaim_oldest(&mut self, now: Instant, port: &dyn ToGuests) {
        let Some((_, id)) = self.closing.pop_first() else {
            return;
        };
        if let Some(c) = self.conns.get_mut(&id) {
            c.reclaim_order = None;
            c.conn.abort(now);
            let addrs = c.conn.endpoints().addrs;
            while let Some(segment) = c.conn.poll_transmit(now) {
                let frame = self
                    .framer
                    .tcp(c.mac, addrs, &segment.repr, segment.payload);
                if let Some(frame) = frame
                    && !port.send(frame.into_bytes())
                {
                    self.counters.frames_dropped += 1;
                }
            }
            self.counters.reclaimed += 1;
        }
        self.remove(id);
    }

    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|&(at, _)| at)
    }

    /// Engine timers and idle connections due by `now`.
    pub(super) fn handle_timeout(
        &mut self,
        now: Instant,
        queries: &mut Vec<Query>,
        port: &dyn ToGuests,
    ) {
        while let Some(&(at, id)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            let Some(c) = self.conns.get_mut(&id) else {
                continue;
            };
            if c.scheduled != Some(at) {
                continue;
            }
            c.scheduled = None;
            if c.outstanding == 0 && !c.closing && c.last_active + self.limits.idle_timeout <= now {
                self.counters.idle_closed += 1;
                c.closing = true;
                c.conn.close(now);
            }
            c.conn.handle_timeout(now);
            self.drive(id, now, queries, port);
        }
    }

    fn send(&mut self, port: &dyn ToGuests, frame: Option<Bytes>) {
        if let Some(frame) = frame
            && !port.send(frame)
        {
            self.counters.frames_dropped += 1;
        }
    }

    /// Moves messages in, answers out and segments to the guest until nothing moves.
    fn drive(&mut self, id: u64, now: Instant, queries: &mut Vec<Query>, port: &dyn ToGuests) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let mut dead = false;
        for _ in 0..PUMP_TURNS {
            let mut progress = false;
            while let Some(event) = c.conn.poll_event() {
                if matches!(event, Event::Reset | Event::TimedOut | Event::Closed) {
                    dead = true;
                }
            }
            progress |= read_queries(c, id, now, &self.limits, &mut self.counters, queries);
            if !c.backlog.is_empty() {
                let n = c.conn.send(&c.backlog);
                if n > 0 {
                    c.backlog.drain(..n);
                    c.last_active = now;
                    progress = true;
                }
            }
            // Our FIN once the guest's came and everything it asked is answered.
            if !c.closing
                && c.conn.peer_finished()
                && c.conn.recv_queued() == 0
                && c.outstanding == 0
                && c.backlog.is_empty()
            {
                if !c.decoder.is_idle() {
                    self.counters.truncated += 1;
                }
                c.closing = true;
                c.conn.close(now);
                progress = true;
            }
            let addrs = c.conn.endpoints().addrs;
            while let Some(segment) = c.conn.poll_transmit(now) {
                let frame = self
                    .framer
                    .tcp(c.mac, addrs, &segment.repr, segment.payload);
                if let Some(frame) = frame
                    && !port.send(frame.into_bytes())
                {
                    self.counters.frames_dropped += 1;
                }
            }
            if !progress {
                break;
            }
        }
        if dead || c.conn.is_closed() {
            self.remove(id);
            return;
        }
        // The connection stops needing its slot once it is closing.
        if c.closing && c.reclaim_order.is_none() {
            let order = self.next_close;
            self.next_close = self.next_close.wrapping_add(1);
            c.reclaim_order = Some(order);
            self.closing.insert(order, id);
        }
        self.schedule(id);
    }

    fn schedule(&mut self, id: u64) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let idle =
            (c.outstanding == 0 && !c.closing).then(|| c.last_active + self.limits.idle_timeout);
        let next = [c.conn.poll_timeout(), idle].into_iter().flatten().min();
        if next != c.scheduled {
            if let Some(old) = c.scheduled {
                self.timers.remove(&(old, id));
            }
            c.scheduled = next;
            if let Some(at) = next {
                self.timers.insert((at, id));
            }
        }
    }

    /// Forgets the connections of guests with one of `macs` (their link went away) at
    /// once, sending nothing; returns their ids, for the queries they left upstream.
    pub(super) fn remove_guest(
        &mut self,
        macs: &std::collections::HashSet<EthernetAddress>,
    ) -> Vec<u64> {
        let gone: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| macs.contains(&c.mac))
            .map(|(id, _)| *id)
            .collect();
        for id in &gone {
            self.remove(*id);
        }
        gone
    }

    fn remove(&mut self, id: u64) {
        let Some(c) = self.conns.remove(&id) else {
            return;
        };
        if let Some(at) = c.scheduled {
            self.timers.remove(&(at, id));
        }
        if let Some(order) = c.reclaim_order {
            self.closing.remove(&order);
        }
        if self.by_key.get(&c.key) == Some(&id) {
            self.by_key.remove(&c.key);
        }
    }
}

/// Cuts whole messages out of the receive ring while the connection's bounds allow.
fn read_queries(
    c: &mut Conn,
    id: u64,
    now: Instant,
    limits: &Limits,
    counters: &mut TcpDnsCounters,
    queries: &mut Vec<Query>,
) -> bool {
    let mut progress = false;
    loop {
        if c.closing {
            // After our FIN (idle) anything more is discarded.
            let n = c.conn.recv_queued();
            if n > 0 {
                c.conn.consume(n);
            }
            return progress;
        }
        if c.conn.recv_queued() == 0 {
            c.stalled = false;
            return progress;
        }
        if c.outstanding >= limits.max_pipeline || c.backlog.len() >= limits.max_backlog {
            if !c.stalled {
                c.stalled = true;
                counters.stalls += 1;
            }
            return progress;
        }
        c.stalled = false;
        let (a, b) = c.conn.recv_slices();
        let chunk = if a.is_empty() { b } else { a };
        match c.decoder.push(chunk) {
            Ok((n, message)) => {
                c.conn.consume(n);
                c.last_active = now;
                progress = true;
                if let Some(m) = message {
                    c.outstanding += 1;
                    counters.queries += 1;
                    queries.push((id, m));
                }
            }
            Err(_) => {
                counters.bad_length += 1;
                c.conn.abort(now);
                c.closing = true;
                return true;
            }
        }
    }
}

#[cfg(test)]
#[path = "tcp_tests.rs"]
mod tests;
