//! The query path, sans-IO: local zones answer what they own, everything else is forwarded
//! upstream as the guest's own bytes.
//!
//! Inputs: [`Resolver::handle_query`] (a guest's UDP payload, with a token `C` naming the
//! guest), [`Resolver::handle_response`] (a datagram from an upstream), and
//! [`Resolver::handle_timeout`]. Outputs: [`Resolver::poll_transmit`] and
//! [`Resolver::poll_timeout`]. Time comes in; no I/O happens here.
//!
//! Guarantees:
//! - A forwarded query is the guest's message with only its ID replaced by one unused among
//!   the pending queries (so two guests using the same ID cannot collide); the answer is the
//!   upstream's message with only the guest's ID put back. Record types, EDNS options and
//!   DNSSEC bits pass through unchanged.
//! - An answer is taken only from a configured upstream, for a pending ID, with the question
//!   section byte-for-byte as sent; anything else is dropped and counted.
//! - An answer longer than [`ResolverConfig::max_reply`] (what fits in one guest frame) is cut
//!   to header and question with TC set, so the guest retries over TCP (RFC 7766 §5).
//! - At most [`ResolverConfig::max_pending`] queries wait upstream; beyond that, and with no
//!   upstream at all, the guest gets SERVFAIL, counted. Each attempt waits
//!   [`ResolverConfig::timeout`], then the query goes to the next upstream (failover, and
//!   the next query starts there too); after [`ResolverConfig::attempts`] the guest gets
//!   SERVFAIL.
//! - Over TCP ([`Resolver::handle_query_via`] with [`Transport::Tcp`]): forwarded as
//!   [`Transmit::UpstreamTcp`] on one pooled connection per upstream, with the same ID
//!   remapping (so pipelined queries of many guests share it), answered whole (no
//!   truncation); a failed or closed upstream connection
//!   ([`Resolver::handle_upstream_lost`]) fails its unanswered queries over at once.
//! - [`Resolver::forget`] drops the pending queries of clients that are gone (a guest whose
//!   link went away) at once: their slots are free again, no answer or SERVFAIL follows.
//! - Malformed queries: shorter than a header, or a response → dropped; no question, a name
//!   past the end, a compression loop → FORMERR; an opcode other than QUERY → NOTIMP. All
//!   counted; nothing here can panic on input. Every query's [`Disposition`] says whether
//!   an answer is queued, will come, or never will.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use stack::time::Instant;

use crate::wire::{self, Message, Rcode};
use crate::zone::Zones;

/// How the resolver forwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverConfig {
    /// Tried in order; on a timeout the next one.
    pub upstreams: Vec<SocketAddr>,
    /// How long one attempt waits for its answer.
    pub timeout: Duration,
    /// Attempts per query (over the upstreams in turn) before SERVFAIL.
    pub attempts: usize,
    /// Queries waiting upstream at most (capped at [`MAX_PENDING`]).
    pub max_pending: usize,
    /// The longest DNS message sent to a guest over UDP.
    pub max_reply: usize,
    /// Seeds the upstream query IDs.
    pub seed: u64,
}

/// The hard cap on pending queries: half the ID space, so a free ID is found quickly.
pub const MAX_PENDING: usize = 32768;

impl Default for ResolverConfig {
    fn default() -> ResolverConfig {
        ResolverConfig {
            upstreams: Vec::new(),
            timeout: Duration::from_secs(2),
            attempts: 3,
            max_pending: 4096,
            // 1500-byte MTU less IPv4 and UDP headers.
            max_reply: 1472,
            seed: 0x9e37_79b9_7f4a_7c15,
        }
    }
}

/// How a query reached us, and so how it goes upstream and how long its answer may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// One datagram each way; answers past [`ResolverConfig::max_reply`] are truncated.
    Udp,
    /// A length-prefixed message on a stream (RFC 7766); answers go whole.
    Tcp,
}

/// What became of a query handed to the resolver, so that a caller counting the answers
/// it owes (DNS over TCP, RFC 7766 §6.2.1.1) knows when one will never come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Its answer (from a local zone, or an error) is queued now.
    Answered,
    /// Forwarded upstream: its answer, or SERVFAIL, comes later.
    Forwarded,
    /// Dropped unanswered (shorter than a header, or a response): no answer will come.
    Dropped,
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transmit<C> {
    /// A query to an upstream resolver over UDP.
    Upstream { to: SocketAddr, payload: Vec<u8> },
    /// A query to an upstream resolver over its TCP connection (without the length prefix).
    UpstreamTcp { to: SocketAddr, payload: Vec<u8> },
    /// An answer to a guest.
    Client { to: C, payload: Vec<u8> },
}

/// What the resolver did; counters only grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResolverCounters {
    pub queries: u64,
    pub local_answers: u64,
    pub forwarded: u64,
    /// Upstream answers handed to guests.
    pub answers: u64,
    /// Of those, cut to fit and marked TC.
    pub truncated: u64,
    /// Retransmissions to the next upstream after a timeout.
    pub failovers: u64,
    /// Queries that ran out of attempts (answered SERVFAIL).
    pub timeouts: u64,
    /// Refused because [`ResolverConfig::max_pending`] was reached (answered SERVFAIL).
    pub pending_full: u64,
    /// Answered SERVFAIL because no upstream is configured.
    pub no_upstream: u64,
    /// Malformed queries answered FORMERR.
    pub formerr: u64,
    /// Queries with an opcode other than QUERY, answered NOTIMP.
    pub notimp: u64,
    /// Queries dropped unanswered (too short to answer, or a response).
    pub dropped: u64,
    /// Upstream datagrams dropped: unknown source or ID, wrong question, too short.
    pub unmatched: u64,
    /// Queries that came over TCP (also counted in `queries`).
    pub tcp_queries: u64,
    /// Queries forwarded over TCP (also counted in `forwarded`).
    pub tcp_forwarded: u64,
    /// Times an upstream's TCP connection failed or closed with queries on it.
    pub tcp_upstream_down: u64,
    /// Times an upstream refused UDP queries (ICMP port unreachable: nothing listens there).
    pub upstream_refused: u64,
}

#[derive(Debug)]
struct Pending<C> {
    client: C,
    client_id: u16,
    transport: Transport,
    /// The query as sent upstream (with our ID).
    query: Vec<u8>,
    question_end: usize,
    upstream: usize,
    attempts: usize,
    deadline: Instant,
}

/// The query path. See the module docs.
#[derive(Debug)]
pub struct Resolver<C> {
    config: ResolverConfig,
    pending: HashMap<u16, Pending<C>>,
    timers: BTreeSet<(Instant, u16)>,
    /// Where new queries go first; moves on when an upstream times out.
    preferred: usize,
    rng: u64,
    out: VecDeque<Transmit<C>>,
    counters: ResolverCounters,
}

impl<C: Clone> Resolver<C> {
    pub fn new(mut config: ResolverConfig) -> Resolver<C> {
        config.max_pending = config.max_pending.min(MAX_PENDING);
        config.attempts = config.attempts.max(1);
        config.max_reply = config.max_reply.max(512);
        Resolver {
            rng: config.seed | 1,
            config,
            pending: HashMap::new(),
            timers: BTreeSet::new(),
            preferred: 0,
            out: VecDeque::new(),
            counters: ResolverCounters::default(),
        }
    }

    pub fn config(&self) -> &ResolverConfig {
        &self.config
    }

    pub fn counters(&self) -> ResolverCounters {
        self.counters
    }

    /// Queries waiting for an upstream.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// A guest's query (a UDP payload) from `client` at `now`, against `zones`.
    pub fn handle_query(
        &mut self,
        now: Instant,
        client: C,
        bytes: &[u8],
        zones: &Zones,
    ) -> Disposition {
        self.handle_query_via(now, client, Transport::Udp, bytes, zones)
    }

    /// A guest's query that came over `transport` (for TCP, one message without its length
    /// prefix). A TCP query is forwarded over TCP and its answer is never truncated.
    pub fn handle_query_via(
        &mut self,
        now: Instant,
        client: C,
        transport: Transport,
        bytes: &[u8],
        zones: &Zones,
    ) -> Disposition {
        self.counters.queries += 1;
        if transport == Transport::Tcp {
            self.counters.tcp_queries += 1;
        }
        let Ok(msg) = Message::new_checked(bytes) else {
            self.counters.dropped += 1;
            return Disposition::Dropped;
        };
        if msg.is_response() {
            self.counters.dropped += 1;
            return Disposition::Dropped;
        }
        if msg.opcode() != 0 {
            self.counters.notimp += 1;
            let q = msg.question().ok();
            self.reply(client, wire::error_reply(&msg, q.as_ref(), Rcode::NotImp));
            return Disposition::Answered;
        }
        let q = match msg.question() {
            Ok(q) if msg.qdcount() == 1 => q,
            Ok(_) | Err(_) => {
                self.formerr(client, &msg, None);
                return Disposition::Answered;
            }
        };
        if let Some(answer) = zones.answer(&msg, &q) {
            self.counters.local_answers += 1;
            self.reply(client, answer);
            return Disposition::Answered;
        }
        self.forward(now, client, transport, &msg, q.range.end)
    }

    fn formerr(&mut self, client: C, msg: &Message<'_>, q: Option<&wire::Question>) {
        self.counters.formerr += 1;
        self.reply(client, wire::error_reply(msg, q, Rcode::FormErr));
    }

    fn reply(&mut self, to: C, payload: Vec<u8>) {
        self.out.push_back(Transmit::Client { to, payload });
    }

    fn servfail(&mut self, client: C, query: &[u8], client_id: u16) {
        let Ok(msg) = Message::new_checked(query) else {
            return;
        };
        let q = msg.question().ok();
        let mut payload = wire::error_reply(&msg, q.as_ref(), Rcode::ServFail);
        if let Some(id) = payload.get_mut(0..2) {
            id.copy_from_slice(&client_id.to_be_bytes());
        }
        self.reply(client, payload);
    }

    fn next_id(&mut self) -> Option<u16> {
        for _ in 0..64 {
            // xorshift64 (Marsaglia 2003).
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            let id = (self.rng >> 24) as u16;
            if !self.pending.contains_key(&id) {
                return Some(id);
            }
        }
        None
    }

    fn forward(
        &mut self,
        now: Instant,
        client: C,
        transport: Transport,
        msg: &Message<'_>,
        question_end: usize,
    ) -> Disposition {
        let client_id = msg.id();
        if self.config.upstreams.is_empty() {
            self.counters.no_upstream += 1;
            self.servfail(client, msg.bytes(), client_id);
            return Disposition::Answered;
        }
        let id = match self.next_id() {
            Some(id) if self.pending.len() < self.config.max_pending => id,
            _ => {
                self.counters.pending_full += 1;
                self.servfail(client, msg.bytes(), client_id);
                return Disposition::Answered;
            }
        };
        let mut query = msg.bytes().to_vec();
        if let Some(field) = query.get_mut(0..2) {
            field.copy_from_slice(&id.to_be_bytes());
        }
        let upstream = self.preferred % self.config.upstreams.len();
        let deadline = now + self.config.timeout;
        self.send_upstream(upstream, transport, &query);
        self.timers.insert((deadline, id));
        self.pending.insert(
            id,
            Pending {
                client,
                client_id,
                transport,
                query,
                question_end,
                upstream,
                attempts: 1,
                deadline,
            },
        );
        self.counters.forwarded += 1;
        if transport == Transport::Tcp {
            self.counters.tcp_forwarded += 1;
        }
        Disposition::Forwarded
    }

    fn send_upstream(&mut self, upstream: usize, transport: Transport, query: &[u8]) {
        if let Some(&to) = self.config.upstreams.get(upstream) {
            let payload = query.to_vec();
            self.out.push_back(match transport {
                Transport::Udp => Transmit::Upstream { to, payload },
                Transport::Tcp => Transmit::UpstreamTcp { to, payload },
            });
        }
    }

    /// A datagram from `from`, presumably an upstream's answer.
    pub fn handle_response(&mut self, _now: Instant, from: SocketAddr, bytes: &[u8]) {
        let Some(id) = self.match_response(from, bytes) else {
            self.counters.unmatched += 1;
            return;
        };
        let Some(p) = self.pending.remove(&id) else {
            return;
        };
        self.timers.remove(&(p.deadline, id));
        let mut payload = if p.transport == Transport::Udp && bytes.len() > self.config.max_reply {
            self.counters.truncated += 1;
            match wire::truncate(bytes, self.config.max_reply) {
                Some(cut) => cut,
                None => return self.servfail(p.client, &p.query, p.client_id),
            }
        } else {
            bytes.to_vec()
        };
        if let Some(field) = payload.get_mut(0..2) {
            field.copy_from_slice(&p.client_id.to_be_bytes());
        }
        self.counters.answers += 1;
        self.reply(p.client, payload);
    }

    /// The pending ID `bytes` answers, if it comes from an upstream, is a response, and
    /// repeats the question exactly.
    fn match_response(&self, from: SocketAddr, bytes: &[u8]) -> Option<u16> {
        if !self.config.upstreams.contains(&from) {
            return None;
        }
        let msg = Message::new_checked(bytes).ok()?;
        if !msg.is_response() {
            return None;
        }
        let p = self.pending.get(&msg.id())?;
        let sent = p.query.get(wire::HEADER_LEN..p.question_end)?;
        let got = bytes.get(wire::HEADER_LEN..p.question_end)?;
        (msg.qdcount() == 1 && sent == got).then_some(msg.id())
    }

    /// When [`Resolver::handle_timeout`] next has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|&(at, _)| at)
    }

    /// Fails over every attempt whose time is up, or gives up on it.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(at, id)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            let Some(mut p) = self.pending.remove(&id) else {
                continue;
            };
            let n = self.config.upstreams.len().max(1);
            // The upstream that timed out is passed over for new queries too.
            if self.preferred % n == p.upstream {
                self.preferred = (p.upstream + 1) % n;
            }
            if p.attempts >= self.config.attempts {
                self.counters.timeouts += 1;
                self.servfail(p.client, &p.query, p.client_id);
                continue;
            }
            self.counters.failovers += 1;
            p.attempts += 1;
            p.upstream = (p.upstream + 1) % n;
            p.deadline = now + self.config.timeout;
            self.send_upstream(p.upstream, p.transport, &p.query);
            self.timers.insert((p.deadline, id));
            self.pending.insert(id, p);
        }
    }

    /// The TCP connection to upstream `to` failed or closed before answering the queries
    /// `ids` (as sent upstream): each still waiting on `to` over TCP fails over now (or gets
    /// SERVFAIL when out of attempts) instead of waiting for its timeout.
    pub fn handle_upstream_lost(&mut self, now: Instant, to: SocketAddr, ids: &[u16]) {
        let Some(index) = self.config.upstreams.iter().position(|u| *u == to) else {
            return;
        };
        let mut any = false;
        for &id in ids {
            let Some(p) = self.pending.get_mut(&id) else {
                continue;
            };
            if p.transport != Transport::Tcp || p.upstream != index {
                continue;
            }
            self.timers.remove(&(p.deadline, id));
            p.deadline = now;
            self.timers.insert((now, id));
            any = true;
        }
        if any {
            self.counters.tcp_upstream_down += 1;
            self.handle_timeout(now);
        }
    }

    /// Drops every pending query whose client `gone` says is gone, with its timer, and
    /// every answer queued for one; returns how many queries were dropped. A late upstream
    /// answer to one is then unmatched (counted as such).
    pub fn forget(&mut self, gone: impl Fn(&C) -> bool) -> usize {
        let ids: Vec<u16> = self
            .pending
            .iter()
            .filter(|(_, p)| gone(&p.client))
            .map(|(id, _)| *id)
            .collect();
        for id in &ids {
            if let Some(p) = self.pending.remove(id) {
                self.timers.remove(&(p.deadline, *id));
            }
        }
        self.out
            .retain(|t| !matches!(t, Transmit::Client { to, .. } if gone(to)));
        ids.len()
    }

    /// Upstream `to` refused UDP (the host's ICMP port unreachable came back): every query
    /// waiting on it over UDP fails over now, to the next upstream or (out of attempts) to
    /// SERVFAIL, instead of waiting out its timeout.
    pub fn handle_upstream_refused(&mut self, now: Instant, to: SocketAddr) {
        let Some(index) = self.config.upstreams.iter().position(|u| *u == to) else {
            return;
        };
        let waiting: Vec<u16> = self
            .pending
            .iter()
            .filter(|(_, p)| p.transport == Transport::Udp && p.upstream == index)
            .map(|(id, _)| *id)
            .collect();
        self.counters.upstream_refused += 1;
        for id in waiting {
            if let Some(p) = self.pending.get_mut(&id) {
                self.timers.remove(&(p.deadline, id));
                p.deadline = now;
                self.timers.insert((now, id));
            }
        }
        self.handle_timeout(now);
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit<C>> {
        self.out.pop_front()
    }
}

#[cfg(test)]
#[path = "resolver_tests.rs"]
mod tests;
