//! The gateway's DNS service at run time (`forwarder::dns_service`): the DNS thread, owning
//! the sans-IO [`dns::Resolver`] and the upstream clients ([`crate::dns_upstream`]), so that
//! waiting on upstreams never blocks a worker, and the guest side of DNS over TCP ([`tcp`]).
//! The embedder (the `switch` crate's runtime) only wires it: it builds the resolver, makes
//! the channels, gives a [`ToGuests`] (its way to the guests through the gateway's port),
//! spawns [`DnsThread::run`] on a thread of its own, and asks it for [`DnsStats`].
//!
//! A worker's gateway hands each query over a bounded channel (full → dropped and counted
//! in [`DnsStats::queue_full`]; the guest's resolver retries). One connected UDP socket per
//! upstream sends to it ([`crate::dns_upstream::udp`]); its reader thread hands each datagram
//! over the same bounded channel, as an [`Input::Upstream`] (full → dropped, counted in
//! [`DnsStats::responses_dropped`]).
//! A refusal (`ECONNREFUSED`, on a read or a send) and an upstream with no route to it (at
//! start or later; it is connected again when a query wants it, at most once a second) fail
//! the queries waiting on that upstream over at once
//! ([`dns::Resolver::handle_upstream_refused`]) rather than after their timeout: starting
//! never waits for, or fails on, an upstream. Upstream failures and queries that ran out of
//! attempts are logged, at most once per [`WARN_EVERY`] for each upstream.
//! The DNS thread waits on that channel and the resolver's next timeout, reads the zones
//! under their read lock for one query at a time (never across I/O), and sends answers to
//! guests into the switch through the gateway's port ([`ToGuests`]), framed by
//! [`dns_reply_frame`].
//!
//! DNS over TCP terminates here too: a worker's gateway hands over every TCP segment to its
//! port 53 ([`Input::Tcp`]); [`tcp`] runs the guest connections in the TCP engine
//! and cuts them into queries for the same resolver, and [`crate::dns_upstream::tcp`] carries the
//! queries the resolver forwards over TCP on pooled connections per upstream, its answers
//! and failures coming back over the same channel.
//!
//! When a guest's link goes away ([`Input::GuestGone`]), its TCP connections and its queries
//! waiting upstream are released at once (counted in [`DnsStats::gone_released`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender, select};
use dns::{Disposition, Resolver, SharedZones, Transmit, Transport};
use stack::time::Epoch;
use stack::wire::EthernetAddress;

use crate::dns_upstream::{Event, SendError, TcpClient, UdpClient};
use crate::gateway::{DnsClient, DnsQuery, dns_reply_frame};

pub mod tcp;

use self::tcp::{GuestTcp, Limits, TcpDnsCounters};

/// Where the DNS service's frames for guests go (the switch's way in through the gateway's
/// port; a test's sink).
pub trait ToGuests {
    /// Sends `frame` towards its guest; false when it was dropped.
    fn send(&self, frame: Bytes) -> bool;
}

/// How long the thread sleeps when no query waits upstream.
const IDLE_WAIT: Duration = Duration::from_secs(60);
/// The least time between two warnings about one upstream.
const WARN_EVERY: Duration = Duration::from_secs(30);

/// The DNS service's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DnsStats {
    pub resolver: dns::ResolverCounters,
    /// Queries waiting upstream now.
    pub pending: usize,
    /// Queries (UDP) and segments (TCP) the workers' gateways dropped, and guest-gone notices
    /// a port's detach dropped, because the DNS thread's queue was full.
    pub queue_full: u64,
    /// Upstream datagrams dropped because the queue was full.
    pub responses_dropped: u64,
    /// Sends to an upstream that failed: refused or unreachable ones fail over at once,
    /// others when the attempt times out.
    pub send_errors: u64,
    /// Answers dropped because the switch's queue was full.
    pub answers_dropped: u64,
    /// The guest side of DNS over TCP.
    pub tcp: TcpDnsCounters,
    /// The upstream side of DNS over TCP.
    pub upstream_tcp: UpstreamTcpStats,
    /// Queries waiting upstream and TCP connections released because their guest's link
    /// went away.
    pub gone_released: u64,
}

/// Counters of the pooled TCP connections to the upstreams; all only grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpstreamTcpStats {
    pub connects: u64,
    pub connect_failures: u64,
    pub closed: u64,
    pub queue_full: u64,
    pub answers_dropped: u64,
}

/// Who asked: a UDP client, or a guest TCP connection by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Client {
    Udp(DnsClient),
    Tcp(u64),
}

/// What the DNS thread waits for.
#[derive(Debug)]
pub enum Input {
    Query(DnsQuery),
    /// A guest's TCP segment to the gateway's port 53.
    Tcp(Box<crate::FlowFrame>),
    /// What an upstream client learned: an answer, lost TCP queries, a refusal, no route.
    Upstream(Event),
    /// The guests with these MACs are gone (their link detached).
    GuestGone(Vec<EthernetAddress>),
}

impl From<Event> for Input {
    fn from(event: Event) -> Input {
        Input::Upstream(event)
    }
}

/// The DNS thread. See the module docs.
pub struct DnsThread {
    resolver: Resolver<Client>,
    tcp: GuestTcp,
    upstream_tcp: TcpClient<Input>,
    /// Queries read from guest TCP connections, not yet given to the resolver.
    tcp_queries: Vec<tcp::Query>,
    zones: SharedZones,
    port: Box<dyn ToGuests + Send>,
    mac: EthernetAddress,
    inputs: Receiver<Input>,
    queries: Receiver<Sender<DnsStats>>,
    stop: Receiver<()>,
    epoch: Epoch,
    /// One connected socket per upstream, and their readers.
    upstream_udp: UdpClient<Input>,
    /// When each upstream was last warned about (the unspecified address: timeouts).
    warned: HashMap<SocketAddr, std::time::Instant>,
    /// Queries that had run out of attempts when last looked at.
    timeouts_seen: u64,
    ident: u16,
    stats: DnsStats,
    /// The workers' count of queries it could not queue.
    queue_full: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for DnsThread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsThread")
            .field("mac", &self.mac)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// Where the parts of the DNS service meet: what the embedder gives [`DnsThread::new`].
pub struct DnsParts {
    pub resolver: Resolver<Client>,
    pub tcp_limits: Limits,
    pub zones: SharedZones,
    /// The way to the guests, for answers and TCP segments.
    pub port: Box<dyn ToGuests + Send>,
    /// The gateway's MAC, the source of every frame.
    pub mac: EthernetAddress,
    /// Both ends of the thread's queue: the workers', the upstream clients' and guest-gone
    /// notices' ([`Input`]); the senders are clones of the first.
    pub inputs: (Sender<Input>, Receiver<Input>),
    /// Questions for [`DnsStats`], each with where to answer.
    pub queries: Receiver<Sender<DnsStats>>,
    /// Closed (its sender dropped) to stop the thread.
    pub stop: Receiver<()>,
    pub epoch: Epoch,
    /// The workers' count of queries (and guest-gone notices) the queue had no room for.
    pub queue_full: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for DnsParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsParts")
            .field("tcp_limits", &self.tcp_limits)
            .field("mac", &self.mac)
            .finish_non_exhaustive()
    }
}

impl DnsThread {
    /// Opens the upstream sockets and starts their readers; an upstream that cannot be
    /// reached now is told of (rate-limited) and tried again later.
    pub fn new(parts: DnsParts) -> DnsThread {
        let (upstream_udp, unreachable) =
            UdpClient::new(&parts.resolver.config().upstreams, parts.inputs.0.clone());
        let mut thread = DnsThread {
            resolver: parts.resolver,
            tcp: GuestTcp::new(parts.mac, parts.tcp_limits),
            upstream_tcp: TcpClient::new(parts.inputs.0.clone()),
            tcp_queries: Vec::new(),
            zones: parts.zones,
            port: parts.port,
            mac: parts.mac,
            inputs: parts.inputs.1,
            queries: parts.queries,
            stop: parts.stop,
            epoch: parts.epoch,
            upstream_udp,
            warned: HashMap::new(),
            timeouts_seen: 0,
            ident: 0,
            stats: DnsStats::default(),
            queue_full: parts.queue_full,
        };
        for (upstream, error) in unreachable {
            thread.warn_unreachable(upstream, &error);
        }
        thread
    }

    fn now(&self) -> stack::time::Instant {
        self.epoch.instant(std::time::Instant::now())
    }

    /// Serves until the stop channel closes or every sender of the input queue is gone;
    /// stops the upstream clients (joining their threads) before it returns.
    pub fn run(mut self) {
        let inputs = self.inputs.clone();
        loop {
            let now = self.now();
            let timeout = [self.resolver.poll_timeout(), self.tcp.poll_timeout()]
                .into_iter()
                .flatten()
                .min()
                .map_or(IDLE_WAIT, |at| at.saturating_duration_since(now));
            select! {
                recv(inputs) -> msg => match msg {
                    Ok(input) => {
                        self.input(input);
                        while let Ok(next) = inputs.try_recv() {
                            self.input(next);
                        }
                    }
                    Err(_) => break,
                },
                recv(self.queries) -> msg => {
                    if let Ok(reply) = msg {
                        let _ = reply.try_send(self.stats());
                    }
                },
                recv(self.stop) -> _ => break,
                default(timeout) => {}
            }
            let now = self.now();
            if self.resolver.poll_timeout().is_some_and(|at| at <= now) {
                self.resolver.handle_timeout(now);
                self.transmit();
                self.warn_timeouts();
            }
            if self.tcp.poll_timeout().is_some_and(|at| at <= now) {
                self.tcp
                    .handle_timeout(now, &mut self.tcp_queries, &*self.port);
                self.transmit();
            }
        }
        self.upstream_tcp.stop();
        self.upstream_udp.stop();
    }

    fn input(&mut self, input: Input) {
        let now = self.now();
        match input {
            Input::Query(q) => {
                let zones = self.zones.read();
                self.resolver
                    .handle_query(now, Client::Udp(q.client), &q.payload, &zones);
            }
            Input::Tcp(frame) => {
                self.tcp
                    .segment(now, &frame, &mut self.tcp_queries, &*self.port);
            }
            Input::Upstream(Event::Response(from, bytes)) => {
                self.resolver.handle_response(now, from, &bytes);
            }
            Input::Upstream(Event::Lost(to, ids)) => {
                self.resolver.handle_upstream_lost(now, to, &ids);
                self.warn(
                    to,
                    "DNS upstream over TCP failed or closed with queries on it; failing over",
                );
            }
            Input::Upstream(Event::Refused(to)) => self.refused(to),
            Input::Upstream(Event::Unreachable(to)) => {
                let error = std::io::Error::from(std::io::ErrorKind::HostUnreachable);
                self.unreachable(to, &error);
            }
            Input::GuestGone(macs) => {
                let macs: std::collections::HashSet<EthernetAddress> = macs.into_iter().collect();
                let conns = self.tcp.remove_guest(&macs);
                self.tcp_queries.retain(|(id, _)| !conns.contains(id));
                let queries = self.resolver.forget(|client| match client {
                    Client::Udp(c) => macs.contains(&c.mac),
                    Client::Tcp(id) => conns.contains(id),
                });
                self.stats.gone_released += (conns.len() + queries) as u64;
            }
        }
        self.transmit();
        self.warn_timeouts();
    }

    /// Upstream `to` refused UDP: its queries fail over now.
    fn refused(&mut self, to: SocketAddr) {
        let now = self.now();
        self.resolver.handle_upstream_refused(now, to);
        self.warn(
            to,
            "DNS upstream refused the query (nothing listens there?); failing over",
        );
    }

    /// Upstream `to` cannot be reached (no route, or its host is unreachable): its queries
    /// fail over now.
    fn unreachable(&mut self, to: SocketAddr, error: &std::io::Error) {
        let now = self.now();
        self.resolver.handle_upstream_refused(now, to);
        self.warn_unreachable(to, error);
    }

    fn warn_unreachable(&mut self, upstream: SocketAddr, error: &std::io::Error) {
        if self.may_warn(upstream) {
            tracing::warn!(%upstream, %error, "DNS upstream unreachable; failing over, trying it again later");
        }
    }

    /// Warns about queries that ran out of attempts since last time.
    fn warn_timeouts(&mut self) {
        let timeouts = self.resolver.counters().timeouts;
        if timeouts > self.timeouts_seen {
            let n = timeouts - self.timeouts_seen;
            self.timeouts_seen = timeouts;
            let any = SocketAddr::from(([0, 0, 0, 0], 0));
            let upstreams = format!("{:?}", self.resolver.config().upstreams);
            if self.may_warn(any) {
                tracing::warn!(queries = n, %upstreams, "no DNS upstream answered in time: SERVFAIL");
            }
        }
    }

    fn warn(&mut self, upstream: SocketAddr, message: &str) {
        if self.may_warn(upstream) {
            tracing::warn!(%upstream, "{message}");
        }
    }

    /// Whether a warning about `key` is due (at most one per [`WARN_EVERY`]).
    fn may_warn(&mut self, key: SocketAddr) -> bool {
        let now = std::time::Instant::now();
        let due = self
            .warned
            .get(&key)
            .is_none_or(|at| now.duration_since(*at) >= WARN_EVERY);
        if due {
            self.warned.insert(key, now);
        }
        due
    }

    /// Sends what the resolver has for upstreams and guests; hands TCP queries to the
    /// resolver until answering them (locally) frees no more.
    fn transmit(&mut self) {
        loop {
            let queries = std::mem::take(&mut self.tcp_queries);
            if !queries.is_empty() {
                let now = self.now();
                let zones = self.zones.read();
                for (id, q) in queries {
                    let disposition = self.resolver.handle_query_via(
                        now,
                        Client::Tcp(id),
                        Transport::Tcp,
                        &q,
                        &zones,
                    );
                    if disposition == Disposition::Dropped {
                        self.tcp
                            .unanswered(now, id, &mut self.tcp_queries, &*self.port);
                    }
                }
            }
            if !self.transmit_resolver() {
                break;
            }
        }
    }

    /// Drains the resolver's output; whether guest TCP connections have new queries.
    fn transmit_resolver(&mut self) -> bool {
        while let Some(t) = self.resolver.poll_transmit() {
            match t {
                Transmit::Upstream { to, payload } => match self.upstream_udp.send(to, &payload) {
                    Ok(()) => {}
                    // An earlier query's refusal, reported here: this one was not sent
                    // either; both fail over.
                    Err(SendError::Refused) => {
                        self.stats.send_errors += 1;
                        self.refused(to);
                    }
                    Err(SendError::Unreachable(e)) => {
                        self.stats.send_errors += 1;
                        self.unreachable(to, &e);
                    }
                    Err(SendError::Other(error)) => {
                        self.stats.send_errors += 1;
                        tracing::debug!(upstream = %to, %error, "DNS query not sent upstream");
                    }
                },
                Transmit::UpstreamTcp { to, payload } => self.upstream_tcp.send(to, &payload),
                Transmit::Client {
                    to: Client::Tcp(id),
                    payload,
                } => {
                    let now = self.now();
                    self.tcp
                        .answer(now, id, &payload, &mut self.tcp_queries, &*self.port);
                }
                Transmit::Client {
                    to: Client::Udp(to),
                    payload,
                } => {
                    self.ident = self.ident.wrapping_add(1);
                    let frame = dns_reply_frame(self.mac, &to, self.ident, &payload);
                    if !self.port.send(frame) {
                        self.stats.answers_dropped += 1;
                    }
                }
            }
        }
        !self.tcp_queries.is_empty()
    }

    fn stats(&self) -> DnsStats {
        DnsStats {
            resolver: self.resolver.counters(),
            pending: self.resolver.pending(),
            queue_full: self.queue_full.load(Ordering::Relaxed),
            responses_dropped: self.upstream_udp.responses_dropped.load(Ordering::Relaxed),
            tcp: self.tcp.counters(),
            upstream_tcp: {
                let c = &self.upstream_tcp.counters;
                UpstreamTcpStats {
                    connects: c.connects.load(Ordering::Relaxed),
                    connect_failures: c.connect_failures.load(Ordering::Relaxed),
                    closed: c.closed.load(Ordering::Relaxed),
                    queue_full: c.queue_full.load(Ordering::Relaxed),
                    answers_dropped: c.answers_dropped.load(Ordering::Relaxed),
                }
            },
            ..self.stats
        }
    }
}
