//! DNS over TCP to the upstreams: pooled connections per upstream, opened when a query
//! needs one and closed after [`IDLE`] without queries.
//!
//! Queries from every guest share them, pipelined (RFC 7766 §6.2.1), with the IDs the
//! [`Resolver`](dns::Resolver) gave them (unique among its pending queries, so answers are
//! matched by ID and question whatever order they come back in). Each upstream has a writer
//! thread, fed by a bounded channel (full → the query is not sent, counted in
//! [`Counters::queue_full`], and its attempt times out), that connects (at most
//! [`CONNECT_TIMEOUT`]) and writes. A connection carries at most [`QUERIES_PER_CONNECTION`]
//! queries (servers cap them: dnsmasq closes after 100), then is half-closed and left to its
//! reader while the next one opens; at most [`CONNECTIONS`] per upstream are open, beyond
//! which the writer waits for the oldest. Each connection's reader thread cuts the stream
//! with a [`Decoder`] and hands each answer to the caller as [`Event::Response`] (its queue
//! full → dropped, counted in [`Counters::answers_dropped`]); when the connection ends (or
//! the connect fails) with queries unanswered, their IDs go back as [`Event::Lost`] so those
//! queries fail over at once instead of waiting for their timeout. A reader whose upstream
//! stays silent for [`IDLE`] gives up on the connection. [`Client::send`] never blocks its
//! caller.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use parking_lot::Mutex;

use super::{Event, nothing_yet};
use dns::stream::{self, Decoder};

/// How long a connect to an upstream may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a write to an upstream may block its writer thread.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// An upstream connection without queries for this long is closed.
pub const IDLE: Duration = Duration::from_secs(10);
/// How often the threads look at the stop flag.
const TICK: Duration = Duration::from_millis(200);
/// Queries queued per upstream writer.
const QUEUE: usize = 1024;
/// Queries written on one upstream connection before the next one opens.
pub const QUERIES_PER_CONNECTION: usize = 100;
/// Upstream connections open at once, per upstream.
pub const CONNECTIONS: usize = 8;

/// Counters of the upstream TCP connections; all only grow.
#[derive(Debug, Default)]
pub struct Counters {
    pub connects: AtomicU64,
    pub connect_failures: AtomicU64,
    /// Connections that ended: idle, a write or read error, or the upstream's EOF.
    pub closed: AtomicU64,
    /// Queries not sent: the writer's queue was full.
    pub queue_full: AtomicU64,
    /// Answers the caller's queue had no room for.
    pub answers_dropped: AtomicU64,
}

/// The writer threads, one per upstream that has been asked over TCP; their events go to
/// a queue of `E`. See the module docs.
#[derive(Debug)]
pub struct Client<E> {
    writers: HashMap<SocketAddr, (Sender<Vec<u8>>, JoinHandle<()>)>,
    inputs: Sender<E>,
    stop: Arc<AtomicBool>,
    pub counters: Arc<Counters>,
}

impl<E: From<Event> + Send + 'static> Client<E> {
    /// No connection yet: each upstream's writer starts with the first query for it.
    pub fn new(inputs: Sender<E>) -> Client<E> {
        Client {
            writers: HashMap::new(),
            inputs,
            stop: Arc::new(AtomicBool::new(false)),
            counters: Arc::new(Counters::default()),
        }
    }

    /// Queues `query` (without its length prefix) for upstream `to`; never blocks. A full
    /// queue drops it (counted in [`Counters::queue_full`]; its attempt times out).
    pub fn send(&mut self, to: SocketAddr, query: &[u8]) {
        let Some(framed) = stream::frame(query) else {
            return;
        };
        if !self.writers.contains_key(&to) {
            let (tx, rx) = crossbeam_channel::bounded(QUEUE);
            let link = Link {
                to,
                queries: rx,
                inputs: self.inputs.clone(),
                stop: self.stop.clone(),
                counters: self.counters.clone(),
            };
            let spawned = std::thread::Builder::new()
                .name("dns-tcp-upstream".into())
                .spawn(move || link.run());
            match spawned {
                Ok(handle) => {
                    self.writers.insert(to, (tx, handle));
                }
                Err(_) => {
                    self.counters
                        .connect_failures
                        .fetch_add(1, Ordering::Relaxed);
                    let ids = query_id(&framed).into_iter().collect();
                    let _ = self.inputs.try_send(Event::Lost(to, ids).into());
                    return;
                }
            }
        }
        if let Some((tx, _)) = self.writers.get(&to)
            && tx.try_send(framed).is_err()
        {
            self.counters.queue_full.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Stops the writers and the readers and joins them.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for (_, (tx, handle)) in self.writers.drain() {
            drop(tx);
            let _ = handle.join();
        }
    }
}

/// The ID of a DNS message (RFC 1035 §4.1.1).
fn message_id(message: &[u8]) -> Option<u16> {
    let id: [u8; 2] = message.get(..2)?.try_into().ok()?;
    Some(u16::from_be_bytes(id))
}

/// The ID of a length-prefixed query.
fn query_id(framed: &[u8]) -> Option<u16> {
    message_id(framed.get(stream::PREFIX_LEN..)?)
}

/// Queries written on one connection and not answered yet.
type InFlight = Arc<Mutex<HashSet<u16>>>;

struct Link<E> {
    to: SocketAddr,
    queries: Receiver<Vec<u8>>,
    inputs: Sender<E>,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
}

/// One open connection: its socket, what is unanswered on it, its reader.
struct Open {
    stream: TcpStream,
    in_flight: InFlight,
    sent: usize,
    reader: JoinHandle<()>,
}

impl<E: From<Event> + Send + 'static> Link<E> {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn lost(&self, ids: Vec<u16>) {
        if !ids.is_empty() {
            let _ = self
                .inputs
                .send_timeout(Event::Lost(self.to, ids).into(), Duration::from_secs(1));
        }
    }

    /// Writes each query on the current connection, opening one when needed; closes it
    /// when idle.
    fn run(self) {
        let mut current: Option<Open> = None;
        let mut draining: VecDeque<JoinHandle<()>> = VecDeque::new();
        let mut idle = Duration::ZERO;
        loop {
            let query = match self.queries.recv_timeout(TICK) {
                Ok(q) => q,
                Err(RecvTimeoutError::Timeout) if !self.stopped() => {
                    idle += TICK;
                    if idle >= IDLE
                        && let Some(open) = current.take()
                    {
                        let _ = open.stream.shutdown(Shutdown::Write);
                        draining.push_back(open.reader);
                    }
                    continue;
                }
                Err(_) => break,
            };
            idle = Duration::ZERO;
            if current
                .as_ref()
                .is_some_and(|o| o.sent >= QUERIES_PER_CONNECTION)
                && let Some(open) = current.take()
            {
                // The upstream answers what it has and closes; its reader sees to that.
                let _ = open.stream.shutdown(Shutdown::Write);
                draining.push_back(open.reader);
            }
            draining.retain(|r| !r.is_finished());
            while draining.len() + 1 > CONNECTIONS {
                match draining.pop_front() {
                    Some(r) => {
                        let _ = r.join();
                    }
                    None => break,
                }
            }
            // The upstream closed it (its reader is done): a write could still succeed into
            // the socket's buffer and the query be lost, so open another.
            if current.as_ref().is_some_and(|o| o.reader.is_finished())
                && let Some(open) = current.take()
            {
                self.lost(open.in_flight.lock().drain().collect());
                draining.push_back(open.reader);
            }
            if current.is_none() {
                current = self.open();
            }
            let Some(open) = current.as_mut() else {
                let mut ids: Vec<u16> = query_id(&query).into_iter().collect();
                // Whatever else is queued failed with this connect too.
                while let Ok(q) = self.queries.try_recv() {
                    ids.extend(query_id(&q));
                }
                self.lost(ids);
                continue;
            };
            if let Some(id) = query_id(&query) {
                open.in_flight.lock().insert(id);
            }
            open.sent += 1;
            if (&open.stream).write_all(&query).is_err() {
                // Its reader sees the end and reports what is unanswered, this one too; if
                // it has already ended, that is for us to do.
                let _ = open.stream.shutdown(Shutdown::Both);
                if let Some(open) = current.take() {
                    if open.reader.is_finished() {
                        self.lost(open.in_flight.lock().drain().collect());
                    }
                    draining.push_back(open.reader);
                }
            }
        }
        if let Some(open) = current.take() {
            let _ = open.stream.shutdown(Shutdown::Both);
            draining.push_back(open.reader);
        }
        for r in draining {
            let _ = r.join();
        }
    }

    fn open(&self) -> Option<Open> {
        let Ok(stream) = TcpStream::connect_timeout(&self.to, CONNECT_TIMEOUT) else {
            self.counters
                .connect_failures
                .fetch_add(1, Ordering::Relaxed);
            return None;
        };
        self.counters.connects.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
        let in_flight = InFlight::default();
        let reader = stream.try_clone().ok().and_then(|s| {
            let r = Reader {
                stream: s,
                to: self.to,
                in_flight: in_flight.clone(),
                inputs: self.inputs.clone(),
                stop: self.stop.clone(),
                counters: self.counters.clone(),
            };
            std::thread::Builder::new()
                .name("dns-tcp-reader".into())
                .spawn(move || r.run())
                .ok()
        });
        let Some(reader) = reader else {
            self.counters
                .connect_failures
                .fetch_add(1, Ordering::Relaxed);
            let _ = stream.shutdown(Shutdown::Both);
            return None;
        };
        Some(Open {
            stream,
            in_flight,
            sent: 0,
            reader,
        })
    }
}

/// Reads one connection's length-prefixed answers until EOF or an error.
struct Reader<E> {
    stream: TcpStream,
    to: SocketAddr,
    in_flight: InFlight,
    inputs: Sender<E>,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
}

impl<E: From<Event>> Reader<E> {
    fn run(mut self) {
        let _ = self.stream.set_read_timeout(Some(TICK));
        let mut decoder = Decoder::default();
        let mut buf = vec![0u8; 16 * 1024];
        let mut quiet = Duration::ZERO;
        loop {
            let n = match self.stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    quiet = Duration::ZERO;
                    n
                }
                Err(e) if nothing_yet(&e) => {
                    if self.stop.load(Ordering::Relaxed) {
                        return;
                    }
                    // An upstream silent this long, with queries waiting or not: give up on
                    // the connection, so none outlives its use (and the writer never waits
                    // on a reader for long).
                    quiet += TICK;
                    if quiet >= IDLE {
                        break;
                    }
                    continue;
                }
                Err(_) => break,
            };
            if !self.answers(&mut decoder, buf.get(..n).unwrap_or_default()) {
                break;
            }
        }
        let _ = self.stream.shutdown(Shutdown::Both);
        self.counters.closed.fetch_add(1, Ordering::Relaxed);
        let ids: Vec<u16> = self.in_flight.lock().drain().collect();
        if !ids.is_empty() && !self.stop.load(Ordering::Relaxed) {
            let _ = self
                .inputs
                .send_timeout(Event::Lost(self.to, ids).into(), Duration::from_secs(1));
        }
    }

    /// Hands on every answer `bytes` completes; false if the stream is broken.
    fn answers(&self, decoder: &mut Decoder, mut bytes: &[u8]) -> bool {
        while !bytes.is_empty() {
            // A zero length from the upstream: nothing after it can be trusted.
            let Ok((taken, answer)) = decoder.push(bytes) else {
                return false;
            };
            bytes = bytes.get(taken..).unwrap_or_default();
            let Some(answer) = answer else { continue };
            if let Some(id) = message_id(&answer) {
                self.in_flight.lock().remove(&id);
            }
            if self
                .inputs
                .try_send(Event::Response(self.to, answer).into())
                .is_err()
            {
                self.counters
                    .answers_dropped
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        true
    }
}

#[cfg(test)]
#[path = "tcp_tests.rs"]
mod tests;
