//! One worker: a thread that runs a frame from the link it was read on to the host socket it
//! is written to, and back, in one call stack.
//!
//! ```text
//! poll (one mio set: TAP queues, host sockets, a waker; after a short wait, polled without
//!       sleeping for up to `--busy-poll` first, busy_poll.rs)
//!   TAP queue readable → read a batch of frames into one arena (never zeroed), each with
//!       its virtio-net header on a queue with offloads, checked first (worker_offload.rs)
//!     → Out::decide: the switch's decision, from this worker's caches (the shared table
//!       only when they cannot answer; worker_out.rs, the sending half)
//!     → Gateway::handle_frame_with: ARP, ICMP echo, NDP, DHCP answered in place (one parse,
//!       the checksums the header vouched for not summed again)
//!     → FlowHandler::handle_packet: the flow's engine, the host socket written
//!   host socket readable → FlowHandler::ready → frames for the guest
//!     → Out::send_frame / send_offloaded: the destination's port, from the cache → written
//!       to its TAP queue by this same thread, behind a virtio-net header on a queue with
//!       offloads (a TCP super-segment's GSO header, or zeros), finished in software for a
//!       link without them
//! ```
//!
//! Handoffs, each bounded and counted ([`super::fabric`]): a frame for a flow another worker
//! owns ([`Handled::Elsewhere`]), a frame for a link another worker serves, frames from links
//! that run threads of their own (their ports are spread over the workers; every flow of such
//! a guest lives on its port's worker) and the DNS service's answers.
//!
//! Nothing on the per-frame path allocates but the frames' own `Bytes`, takes a lock, or
//! hashes with SipHash: the caches and the port map use foldhash, the source cache is
//! refreshed in the shared table once a second per address, and the destination cache is
//! dropped whenever the table's generation moves.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use crossbeam_channel::{Receiver, Sender};
use forwarder::{
    FlowFrame, FlowHandler, FrameSink, Handled, KIND_SHIFT, LOOP_KINDS, Readiness, WorkerEvent,
};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use stack::ingress::{DropCounters, DropReason};
use stack::time::{Epoch, Instant};
use stack::wire::VirtioNetRepr;

use super::busy_poll::BusyPoll;
use super::fabric::{Fabric, FrameHandoff, WorkerControl, WorkerHandle};
use super::mcast::Route;
use super::stream_link::{ReadEnd, StreamConn, StreamFrame};
use crate::forward::Decision;
use crate::gateway::{Gateway, GatewayCounters, Outcome};
use crate::link::CloseReason;
use crate::link::stream::NativeStream;
use crate::mac_table::PortId;
use crate::port::{Egress, GATEWAY_PORT, PortCounters};
use crate::tap::{Tap, VNET_HEADER_LEN};
use forwarder::dns_service::Input as DnsInput;

#[path = "worker_offload.rs"]
mod offload;
#[path = "worker_out.rs"]
mod out;

use out::{L2Cache, LocalPort, Out, OutFrame, unpinned};

/// The token kind of this worker's TAP queues (see [`forwarder::LOOP_KINDS`]).
const KIND_TAP: usize = LOOP_KINDS;
/// The token kind of this worker's stream connections.
const KIND_STREAM: usize = LOOP_KINDS + 1;
/// Reads from one stream connection per turn (each takes every frame that arrived).
const STREAM_READS: usize = 8;
/// Frames read from one link, or taken from the inbox, before the worker looks around.
const BATCH: usize = 64;
/// How often worker 0 ages the MAC table.
const AGEING: Duration = Duration::from_secs(1);
/// The receive arena: frames are read one after another into it, each then its own `Bytes`.
const ARENA: usize = 256 * 1024;
/// How long a worker sleeps with nothing to wait for.
const IDLE: Duration = Duration::from_secs(60);

type Fast = foldhash::fast::RandomState;

/// How a worker reaches one port.
pub(crate) enum PortSpec {
    /// A TAP queue this worker reads and writes.
    Tap {
        tap: Tap,
        mtu: u16,
        counters: Arc<PortCounters>,
    },
    /// A link with threads of its own, fed through its egress queue.
    Channel { egress: Egress, mtu: u16 },
    /// A stream connection this worker reads and writes.
    Stream {
        stream: NativeStream,
        mtu: u16,
        counters: Arc<PortCounters>,
    },
    /// A link another worker serves.
    Remote { owner: usize, mtu: u16 },
}

/// A TAP queue this worker serves.
struct TapQueue {
    tap: Tap,
    port: PortId,
    /// Every frame carries a virtio-net header.
    vnet: bool,
    /// The link failed (the device is gone): it is being detached.
    dead: bool,
}

/// What a worker reports for `/stats`.
#[derive(Debug, Clone, Default)]
pub(crate) struct WorkerSnapshot {
    pub(crate) gateway: GatewayCounters,
    pub(crate) drops: DropCounters,
    pub(crate) reassembly: stack::frag::Stats,
    /// The worker's own counters, taken at the same point as the gateway's.
    pub(crate) counters: forwarder::WorkerStats,
}

/// What a worker is made of; see [`Worker::new`].
pub(crate) struct WorkerParts {
    pub(crate) index: usize,
    pub(crate) poll: Poll,
    pub(crate) me: Arc<WorkerHandle>,
    pub(crate) frames: Receiver<FrameHandoff>,
    pub(crate) control: Receiver<WorkerControl>,
    pub(crate) fabric: Arc<Fabric>,
    pub(crate) gateway: Gateway,
    pub(crate) handler: Box<dyn FlowHandler>,
    pub(crate) dns: (Sender<DnsInput>, Arc<AtomicU64>),
    pub(crate) neighbours: Option<super::NeighbourHook>,
    pub(crate) max_frame: usize,
    /// How long to poll without sleeping after a short wait; zero never.
    pub(crate) busy_poll: Duration,
}

/// One worker's loop. See the module docs.
pub(crate) struct Worker {
    index: usize,
    poll: Poll,
    events: Events,
    me: Arc<WorkerHandle>,
    frames: Receiver<FrameHandoff>,
    control: Receiver<WorkerControl>,
    gateway: Gateway,
    handler: Box<dyn FlowHandler>,
    out: Out,
    rx: BytesMut,
    max_frame: usize,
    dns: Sender<DnsInput>,
    dns_queue_full: Arc<AtomicU64>,
    neighbours: Option<super::NeighbourHook>,
    epoch: Epoch,
    /// TAP queues with frames left after a batch.
    ready: Vec<usize>,
    /// Stream connections with bytes left after a batch.
    ready_streams: Vec<usize>,
    /// Frames read from a stream in one batch, before they run through.
    stream_frames: Vec<StreamFrame>,
    /// This turn's events, copied out of `events`.
    turn: Vec<(Token, Readiness)>,
    next_ageing: Option<Instant>,
    /// When the IGMP/MLD querier's timers are next due (worker 0 runs them).
    next_multicast: Option<Instant>,
    /// Whether to poll without sleeping before the next wait.
    busy_poll: BusyPoll,
    draining: bool,
    stopping: bool,
}

impl Worker {
    pub(crate) fn new(parts: WorkerParts) -> Worker {
        let epoch = parts.fabric.epoch;
        let counters = parts.me.counters.clone();
        let now = epoch.instant(std::time::Instant::now());
        Worker {
            index: parts.index,
            poll: parts.poll,
            events: Events::with_capacity(256),
            me: parts.me,
            frames: parts.frames,
            control: parts.control,
            gateway: parts.gateway,
            handler: parts.handler,
            out: Out {
                fabric: parts.fabric,
                ports: HashMap::default(),
                links: slab::Slab::new(),
                streams: slab::Slab::new(),
                to_flush: RefCell::new(Vec::new()),
                cache: RefCell::new(L2Cache::default()),
                scratch: RefCell::new(Vec::new()),
                finish_scratch: RefCell::new(Vec::new()),
                counters,
                fast_unicast: Cell::new(0),
                fast_flooded: Cell::new(0),
            },
            rx: BytesMut::with_capacity(ARENA),
            max_frame: parts.max_frame.max(64),
            dns: parts.dns.0,
            dns_queue_full: parts.dns.1,
            neighbours: parts.neighbours,
            epoch,
            ready: Vec::new(),
            ready_streams: Vec::new(),
            stream_frames: Vec::new(),
            turn: Vec::with_capacity(256),
            next_ageing: (parts.index == 0).then_some(now + AGEING),
            next_multicast: (parts.index == 0).then_some(now),
            busy_poll: BusyPoll::new(parts.busy_poll),
            draining: false,
            stopping: false,
        }
    }

    fn now(&self) -> Instant {
        self.epoch.instant(std::time::Instant::now())
    }

    pub(crate) fn run(mut self) {
        while !self.stopping {
            self.turn();
            if self.draining {
                self.me.set_settled(self.handler.drained());
            }
        }
        let now = self.now();
        self.handler.finish(now, &self.out);
    }

    /// One turn of the loop: wait, then handle whatever became ready.
    fn turn(&mut self) {
        let start = self.now();
        let timeout = self.timeout(start);
        self.wait(start, timeout);
        let now = self.now();
        self.control_messages(now);
        self.turn.clear();
        self.turn
            .extend(self.events.iter().map(|e| (e.token(), Readiness::of(e))));
        for i in 0..self.turn.len() {
            let Some(&(token, readiness)) = self.turn.get(i) else {
                break;
            };
            let index = token.0 & ((1 << KIND_SHIFT) - 1);
            match token.0 >> KIND_SHIFT {
                0 => {}
                KIND_TAP => self.read_link(now, index),
                KIND_STREAM => {
                    let readable = readiness.readable || readiness.closed;
                    self.stream_ready(now, index, readable, readiness.writable);
                }
                kind if kind < LOOP_KINDS => self.handler.ready(now, token, readiness, &self.out),
                _ => {}
            }
        }
        self.handler.commands(now, &self.out);
        self.inbox(now);
        let again: Vec<usize> = std::mem::take(&mut self.ready);
        for link in again {
            self.read_link(now, link);
        }
        let again: Vec<usize> = std::mem::take(&mut self.ready_streams);
        for link in again {
            self.read_stream(now, link);
        }
        self.timers();
        self.flush_streams();
    }

    /// Waits until something is ready or `timeout` passes: first polling without sleeping,
    /// if the last wait was short (busy_poll.rs), then asleep, parked, so that other threads
    /// wake it.
    fn wait(&mut self, start: Instant, timeout: Option<Duration>) {
        if timeout == Some(Duration::ZERO) {
            self.poll_once(timeout);
            return;
        }
        let spin = self.busy_poll.spin_for(timeout);
        let mut ready = false;
        if !spin.is_zero() {
            ready = self.spin(start + spin);
            let outcome = if ready {
                WorkerEvent::BusyPollFound
            } else {
                WorkerEvent::BusyPollGaveUp
            };
            self.me.counters.count(outcome, 1);
        }
        if !ready {
            let spent = self.now().saturating_duration_since(start);
            let mut timeout = timeout.map(|t| t.saturating_sub(spent));
            self.me.park();
            if !self.frames.is_empty() || !self.control.is_empty() {
                timeout = Some(Duration::ZERO);
            }
            self.poll_once(timeout);
            self.me.unpark();
            ready = self.something_ready();
        }
        let waited = self.now().saturating_duration_since(start);
        self.busy_poll.waited(waited, ready);
    }

    /// Polls with a zero timeout until something is ready (true) or `until` passes, giving
    /// the core to any other thread that wants it in between.
    fn spin(&mut self, until: Instant) -> bool {
        loop {
            self.poll_once(Some(Duration::ZERO));
            if self.something_ready() {
                return true;
            }
            if self.now() >= until {
                return false;
            }
            std::thread::yield_now();
        }
    }

    /// The last poll returned events, or frames or control messages wait in the queues.
    fn something_ready(&self) -> bool {
        !self.events.is_empty() || !self.frames.is_empty() || !self.control.is_empty()
    }

    fn poll_once(&mut self, timeout: Option<Duration>) {
        if let Err(e) = self.poll.poll(&mut self.events, timeout)
            && e.kind() != io::ErrorKind::Interrupted
        {
            tracing::warn!(worker = self.index, error = %e, "poll failed");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// How long to wait: not at all with work left, else until the next timer.
    fn timeout(&self, now: Instant) -> Option<Duration> {
        if !self.ready.is_empty()
            || !self.ready_streams.is_empty()
            || !self.frames.is_empty()
            || !self.control.is_empty()
        {
            return Some(Duration::ZERO);
        }
        let next = [
            self.gateway.poll_timeout(),
            self.handler.poll_timeout(),
            self.next_ageing,
            self.next_multicast,
        ]
        .into_iter()
        .flatten()
        .min();
        Some(next.map_or(IDLE, |at| at.saturating_duration_since(now)))
    }

    fn timers(&mut self) {
        let now = self.now();
        if self.gateway.poll_timeout().is_some_and(|at| at <= now) {
            self.gateway.handle_timeout(now);
        }
        self.gateway_unasked();
        if self.handler.poll_timeout().is_some_and(|at| at <= now) {
            self.handler.handle_timeout(now, &self.out);
        }
        if let Some(at) = self.next_ageing
            && at <= now
        {
            self.out.fabric.with_switch(|s| s.expire(now));
            self.next_ageing = Some(now + AGEING);
        }
        self.multicast_timers(now);
    }

    /// Worker 0 runs the IGMP/MLD querier: its timers, and its queries to every guest port.
    fn multicast_timers(&mut self, now: Instant) {
        if self.index != 0 {
            return;
        }
        let Some(multicast) = &self.out.fabric.multicast else {
            return;
        };
        if !multicast.due(now, self.next_multicast) {
            return;
        }
        let (queries, next) = multicast.timers(now);
        self.next_multicast = next;
        for query in queries {
            let query = OutFrame::Owned(query);
            self.out.capture(&query);
            self.out.flood(GATEWAY_PORT, &query, &VirtioNetRepr::PLAIN);
        }
    }

    /// Frames the gateway sends unasked (Time Exceeded for abandoned reassembly).
    fn gateway_unasked(&mut self) {
        while let Some(frame) = self.gateway.poll_transmit() {
            self.out.send_frame(frame);
        }
    }

    fn control_messages(&mut self, now: Instant) {
        while let Ok(message) = self.control.try_recv() {
            match message {
                WorkerControl::Attach { port, spec, done } => {
                    self.attach(port, spec);
                    let _ = done.send(());
                }
                WorkerControl::Open { port } => self.open(port),
                WorkerControl::Detach { port, done } => {
                    self.detach(port);
                    if let Some(done) = done {
                        let _ = done.send(());
                    }
                }
                WorkerControl::Stats(reply) => {
                    let _ = reply.try_send(self.snapshot());
                }
                WorkerControl::Drain if !self.draining => {
                    self.draining = true;
                    self.handler.begin_drain(now, &self.out);
                    self.me.set_settled(self.handler.drained());
                }
                WorkerControl::Drain => {}
                WorkerControl::Stop => self.stopping = true,
            }
        }
    }

    fn attach(&mut self, port: PortId, spec: PortSpec) {
        let local = match spec {
            PortSpec::Tap { tap, mtu, counters } => {
                if let Err(e) = tap.set_nonblocking(true) {
                    tracing::warn!(worker = self.index, error = %e, "TAP queue unusable");
                    return;
                }
                let offloads = tap.offloads();
                let link = self.out.links.insert(TapQueue {
                    tap,
                    port,
                    vnet: offloads.vnet_hdr,
                    dead: false,
                });
                LocalPort::Tap {
                    link,
                    mtu,
                    counters,
                    offloads: offloads.link(),
                }
            }
            PortSpec::Stream {
                stream,
                mtu,
                counters,
            } => {
                let conn = match StreamConn::new(stream, port, counters) {
                    Ok(conn) => conn,
                    Err(e) => {
                        tracing::warn!(worker = self.index, error = %e, "stream unusable");
                        self.out.fabric.detach_port(port, false);
                        return;
                    }
                };
                let offloads = conn.offloads();
                let link = self.out.streams.insert(conn);
                LocalPort::Stream {
                    link,
                    mtu,
                    offloads,
                }
            }
            PortSpec::Channel { egress, mtu } => LocalPort::Channel { egress, mtu },
            PortSpec::Remote { owner, mtu } => LocalPort::Remote { owner, mtu },
        };
        self.out.ports.insert(port, local);
    }

    /// Starts reading the link of `port`, if this worker serves it.
    fn open(&mut self, port: PortId) {
        match self.out.ports.get(&port) {
            Some(&LocalPort::Tap { link, .. }) => {
                let Some(queue) = self.out.links.get(link) else {
                    return;
                };
                let token = Token((KIND_TAP << KIND_SHIFT) | link);
                let fd = queue.tap.as_raw_fd();
                if let Err(e) =
                    self.poll
                        .registry()
                        .register(&mut SourceFd(&fd), token, Interest::READABLE)
                {
                    tracing::warn!(worker = self.index, error = %e, "cannot poll a TAP queue");
                    self.out.links.remove(link);
                    self.out.ports.remove(&port);
                    return;
                }
                // Frames may be waiting already.
                self.ready.push(link);
            }
            Some(&LocalPort::Stream { link, .. }) => {
                let Some(conn) = self.out.streams.get(link) else {
                    return;
                };
                let token = Token((KIND_STREAM << KIND_SHIFT) | link);
                let fd = conn.socket().as_raw_fd();
                if let Err(e) = self.poll.registry().register(
                    &mut SourceFd(&fd),
                    token,
                    Interest::READABLE | Interest::WRITABLE,
                ) {
                    tracing::warn!(worker = self.index, error = %e, "cannot poll a stream");
                    self.drop_stream(link, CloseReason::Shutdown);
                    self.out.fabric.detach_port(port, false);
                    return;
                }
                // Bytes may be buffered already (after a handshake) or waiting, and the
                // accept marker of an offer waits to be written.
                self.ready_streams.push(link);
                self.out.to_flush.borrow_mut().push(link);
            }
            _ => {}
        }
    }

    fn detach(&mut self, port: PortId) {
        match self.out.ports.remove(&port) {
            Some(LocalPort::Tap { link, .. }) if self.out.links.contains(link) => {
                let queue = self.out.links.remove(link);
                let fd = queue.tap.as_raw_fd();
                let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
                self.ready.retain(|&l| l != link);
            }
            Some(LocalPort::Stream { link, .. }) => self.drop_stream(link, CloseReason::Shutdown),
            _ => {}
        }
    }

    /// Lets go of stream `link`, telling its attacher why it ended.
    fn drop_stream(&mut self, link: usize, reason: CloseReason) {
        if !self.out.streams.contains(link) {
            return;
        }
        let mut conn = self.out.streams.remove(link);
        let fd = conn.socket().as_raw_fd();
        let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
        self.ready_streams.retain(|&l| l != link);
        self.out.to_flush.borrow_mut().retain(|&l| l != link);
        conn.end(reason);
    }

    fn stream_ready(&mut self, now: Instant, link: usize, readable: bool, writable: bool) {
        if writable && let Some(conn) = self.out.streams.get(link) {
            conn.set_writable();
            if conn.pending() {
                let mut to_flush = self.out.to_flush.borrow_mut();
                if !to_flush.contains(&link) {
                    to_flush.push(link);
                }
            }
        }
        if readable {
            self.read_stream(now, link);
        }
    }

    /// Reads a batch from stream `link` and runs its frames through; a stream that ended
    /// detaches its port.
    fn read_stream(&mut self, now: Instant, link: usize) {
        let Some(conn) = self.out.streams.get_mut(link) else {
            return;
        };
        let port = conn.port;
        let counters = conn.counters.clone();
        let mut frames = std::mem::take(&mut self.stream_frames);
        let end = conn.read_batch(&mut self.rx, &mut frames, STREAM_READS);
        for (frame, header) in frames.drain(..) {
            self.out.counters.count(WorkerEvent::Rx, 1);
            counters.rx(frame.len(), header.is_ok());
            match header {
                Ok(header) => self.ingress(now, port, frame, header),
                Err(e) => self.out.counters.count_drop(DropReason::VirtioNet(e)),
            }
        }
        self.stream_frames = frames;
        match end {
            ReadEnd::Blocked => {}
            ReadEnd::More => {
                if !self.ready_streams.contains(&link) {
                    self.ready_streams.push(link);
                }
            }
            ReadEnd::Closed(reason) => {
                self.drop_stream(link, reason);
                self.out.fabric.detach_port(port, false);
            }
        }
    }

    /// Writes what this turn queued for each stream.
    fn flush_streams(&mut self) {
        let links: Vec<usize> = std::mem::take(&mut *self.out.to_flush.borrow_mut());
        for link in links {
            let Some(conn) = self.out.streams.get(link) else {
                continue;
            };
            if let Err(reason) = conn.flush() {
                let port = conn.port;
                self.drop_stream(link, reason);
                self.out.fabric.detach_port(port, false);
            }
        }
    }

    fn snapshot(&mut self) -> WorkerSnapshot {
        let (unicast, flooded) = (
            self.out.fast_unicast.replace(0),
            self.out.fast_flooded.replace(0),
        );
        self.out.fabric.with_switch(|s| {
            s.count(Decision::Unicast(GATEWAY_PORT), unicast);
            s.count(Decision::Flood, flooded);
        });
        WorkerSnapshot {
            gateway: self.gateway.counters(),
            drops: *self.gateway.drops(),
            reassembly: self.gateway.frag_stats(),
            counters: self.out.counters.snapshot(),
        }
    }

    /// A TAP queue is readable, or reported an error (a deleted device: the read says which).
    /// Reads up to a batch of frames from a TAP queue and runs each through.
    fn read_link(&mut self, now: Instant, link: usize) {
        for _ in 0..BATCH {
            let Some(queue) = self.out.links.get(link) else {
                return;
            };
            if queue.dead {
                return;
            }
            let port = queue.port;
            if self.rx.capacity() - self.rx.len() < self.max_frame {
                self.rx.reserve(ARENA.max(self.max_frame));
            }
            let mut header = [0u8; VNET_HEADER_LEN];
            let read = if queue.vnet {
                queue
                    .tap
                    .read_vnet_into(&mut header, &mut self.rx, self.max_frame)
            } else {
                queue.tap.read_frame_into(&mut self.rx, self.max_frame)
            };
            match read {
                Ok(0) => {}
                Ok(n) => {
                    let frame = self.rx.split().freeze();
                    self.out.counters.count(WorkerEvent::Rx, 1);
                    let header = if queue.vnet {
                        offload::rx_header(&header, n, &frame)
                    } else {
                        Ok(VirtioNetRepr::PLAIN)
                    };
                    if let Some(LocalPort::Tap { counters, .. }) = self.out.ports.get(&port) {
                        counters.rx(frame.len(), header.is_ok());
                    }
                    match header {
                        Ok(header) => self.ingress(now, port, frame, header),
                        Err(e) => self.out.counters.count_drop(DropReason::VirtioNet(e)),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    self.link_failed(link, CloseReason::from_io(e));
                    return;
                }
            }
        }
        if !self.ready.contains(&link) {
            self.ready.push(link);
        }
    }

    /// A TAP queue failed (the device was deleted, `EBADFD`/`EIO`): the port goes, and with
    /// it its guests' flows.
    fn link_failed(&mut self, link: usize, reason: CloseReason) {
        let Some(queue) = self.out.links.get_mut(link) else {
            return;
        };
        if queue.dead {
            return;
        }
        queue.dead = true;
        let port = queue.port;
        let fd = queue.tap.as_raw_fd();
        let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
        self.ready.retain(|&l| l != link);
        let name = self.out.fabric.port_name(port);
        crate::link::log_close_named(&name, port, &reason);
        self.out.fabric.detach_port(port, false);
    }

    /// A frame a guest sent on `port`: switched, then given to the gateway, another port, or
    /// every port. `header` is the frame's virtio-net header (plain for a link without one).
    fn ingress(&mut self, now: Instant, port: PortId, frame: Bytes, header: VirtioNetRepr) {
        let decision = self.out.decide(now, port, &frame);
        if matches!(decision, Decision::Drop(_)) {
            return;
        }
        self.out.capture_copy(&frame);
        match decision {
            Decision::Unicast(GATEWAY_PORT) => self.gateway_frame(now, port, frame, header),
            // Another guest's link: the frame is copied only where it must outlive this call
            // (a queue), never left to pin the receive arena.
            Decision::Unicast(to) => {
                self.out.transmit(to, OutFrame::Built(&frame), &header);
            }
            Decision::Flood => match self.out.group_route(now, port, &frame) {
                Route::Flood => {
                    self.out.flood(port, &OutFrame::Built(&frame), &header);
                    self.gateway_frame(now, port, frame, header);
                }
                Route::Nowhere => {}
                Route::Ports(to) => {
                    for &to in to.iter().filter(|&&to| to != GATEWAY_PORT) {
                        self.out.transmit(to, OutFrame::Built(&frame), &header);
                    }
                    if to.contains(&GATEWAY_PORT) {
                        self.gateway_frame(now, port, frame, header);
                    }
                }
            },
            Decision::Drop(_) => {}
        }
    }

    /// The gateway's services, and the flows behind them. A TCP super-segment is one segment
    /// to them; a UDP super-datagram is cut into its datagrams first.
    fn gateway_frame(&mut self, now: Instant, port: PortId, frame: Bytes, header: VirtioNetRepr) {
        if header.is_gso() {
            self.out.counters.count(WorkerEvent::SuperIn, 1);
            if header.gso == stack::wire::VirtioNetGso::Udp {
                for datagram in self.out.finish_here(&frame, &header) {
                    self.gateway_frame(now, port, datagram, VirtioNetRepr::PLAIN);
                }
                return;
            }
        }
        let (mtu, offloads) = self.out.link_of(port);
        let mut frame = frame;
        let mut outcome = self
            .gateway
            .handle_frame_with(now, &frame, mtu, &header.checksums());
        // A completed datagram is handled like a frame that just arrived; it is no fragment,
        // so this happens at most once.
        if let Outcome::Reassembled(whole) = outcome {
            outcome = self.gateway.handle_reassembled(now, &whole);
            frame = whole;
        }
        if let Some((ip, mac)) = self.gateway.take_neighbour()
            && let Some(hook) = &self.neighbours
        {
            hook(ip, mac);
        }
        match outcome {
            Outcome::Reply(reply) => {
                self.out.send_frame(reply);
            }
            Outcome::Replies(replies) => {
                for reply in replies {
                    self.out.send_frame(reply);
                }
            }
            Outcome::Flow(packet) => self.flow(
                now,
                FlowFrame {
                    frame,
                    packet,
                    link_mtu: mtu,
                    link_offloads: offloads,
                },
                true,
            ),
            Outcome::Dns(query) => {
                if self.dns.try_send(DnsInput::Query(query)).is_err() {
                    self.dns_queue_full.fetch_add(1, Ordering::Relaxed);
                }
            }
            Outcome::DnsTcp(packet) => {
                let packet = FlowFrame {
                    frame: unpinned(&frame),
                    packet,
                    link_mtu: mtu,
                    link_offloads: offloads,
                };
                if self.dns.try_send(DnsInput::Tcp(Box::new(packet))).is_err() {
                    self.dns_queue_full.fetch_add(1, Ordering::Relaxed);
                }
            }
            Outcome::Held | Outcome::Reassembled(_) | Outcome::Dropped(_) => {}
        }
        self.gateway_unasked();
    }

    /// A flow packet: handled here, or handed once to the worker that owns its flow.
    fn flow(&mut self, now: Instant, packet: FlowFrame, may_hand_off: bool) {
        self.out.counters.count(WorkerEvent::Handled, 1);
        match self.handler.handle_packet(now, &packet, &self.out) {
            Handled::Here => {}
            Handled::Elsewhere(owner) if may_hand_off && owner != self.index => {
                let packet = FlowFrame {
                    frame: unpinned(&packet.frame),
                    ..packet
                };
                if !self.out.fabric.hand(
                    Some(&self.out.counters),
                    owner,
                    FrameHandoff::Flow(Box::new(packet)),
                ) {
                    self.out.counters.count_drop(DropReason::WorkerQueueFull);
                }
            }
            Handled::Elsewhere(_) => self.out.counters.count_drop(DropReason::WorkerQueueFull),
        }
    }

    /// Frames handed to this worker, a batch at a time.
    fn inbox(&mut self, now: Instant) {
        for _ in 0..BATCH * 4 {
            let Ok(handoff) = self.frames.try_recv() else {
                return;
            };
            match handoff {
                FrameHandoff::Ingress { port, frame } => {
                    self.ingress(now, port, frame, VirtioNetRepr::PLAIN);
                }
                FrameHandoff::Flow(packet) => {
                    self.out.counters.count(WorkerEvent::HandoffIn, 1);
                    self.flow(now, *packet, false);
                }
                FrameHandoff::Egress { port, frame } => {
                    self.out.counters.count(WorkerEvent::HandoffIn, 1);
                    if matches!(self.out.ports.get(&port), Some(LocalPort::Remote { .. })) {
                        // Never bounced on: its owner would have served it.
                        continue;
                    }
                    self.out
                        .transmit(port, OutFrame::Owned(frame), &VirtioNetRepr::PLAIN);
                }
                FrameHandoff::FromGateway(frame) => {
                    self.out.send_frame(frame);
                }
            }
        }
    }
}
