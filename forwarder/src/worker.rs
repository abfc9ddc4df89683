//! Worker threads and the seam a forwarder plugs into.
//!
//! The gateway thread parses each frame once ([`stack::ingress`]); a frame that belongs to a
//! flow becomes a [`FlowFrame`] — the frame's bytes (reference counted, never copied) and the
//! owned [`FlowPacket`] summary — and [`Dispatcher::dispatch`] queues it for the worker its
//! [`FlowKey`](stack::ingress::FlowKey) hashes to (seeded, see
//! [`FlowKey::worker`](stack::ingress::FlowKey::worker)). A flow so lives on one worker for
//! its whole life and workers share nothing on the per-packet path.
//!
//! Contracts:
//! - Each worker's queue is a bounded crossbeam channel; a full queue drops the packet and
//!   counts it ([`WorkerStats::queue_full`]), the dispatcher never blocks.
//! - A worker calls its [`FlowHandler`] for every packet, for its timers
//!   ([`FlowHandler::poll_timeout`] / [`FlowHandler::handle_timeout`], time passed in as a
//!   [`stack::time::Instant`] on the pool's [`Epoch`]), and sends frames for guests through a
//!   [`FrameSink`] (the gateway's switch port).
//! - Waiting: by default a worker blocks on its queue until a packet, its next timer or
//!   shutdown. A handler that owns a readiness poller (mio) returns a [`Notify`] from
//!   [`FlowHandler::notifier`]; the worker then blocks in [`FlowHandler::wait`] instead, the
//!   dispatcher calls the notifier after queueing a packet, and so does shutdown.
//! - [`WorkerPool::drain`] asks every handler to wind down for exit
//!   ([`FlowHandler::begin_drain`]) and waits, up to a deadline, until each says nothing is
//!   owed to any host any more ([`FlowHandler::drained`]) or the caller cancels.
//! - [`WorkerPool::shutdown`] stops and joins every worker, each calling
//!   [`FlowHandler::finish`] last, drained or not; it is idempotent and runs on drop.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use stack::ingress::{DropCounters, DropReason, FlowPacket};
use stack::time::{Epoch, Instant};
use stack::wire::EthernetAddress;

/// A flow-bound frame on its way to a worker.
#[derive(Debug, Clone)]
pub struct FlowFrame {
    /// The whole Ethernet frame, as the guest sent it.
    pub frame: Bytes,
    /// What ingress parsed from it; `packet.payload` indexes `frame`.
    pub packet: FlowPacket,
}

impl FlowFrame {
    /// The payload (TCP/UDP data, echo data, an ICMP error's quote) without a copy.
    pub fn payload(&self) -> Bytes {
        let range = self.packet.payload.clone();
        if range.end <= self.frame.len() && range.start <= range.end {
            self.frame.slice(range)
        } else {
            Bytes::new()
        }
    }
}

/// Where workers send frames for guests: the gateway's port into the switch. Never blocks;
/// returns false when the frame was dropped (and counted by the sink).
pub trait FrameSink: Send + Sync {
    fn send_frame(&self, frame: Bytes) -> bool;
}

/// Wakes a worker that waits in its own poller (a mio `Waker`, say).
pub trait Notify: Send + Sync {
    fn notify(&self);
}

/// The forwarding logic of one worker: it owns that worker's flows. See the module docs.
pub trait FlowHandler: Send {
    /// One packet of a flow this worker owns.
    fn handle_packet(&mut self, now: Instant, packet: FlowFrame, out: &dyn FrameSink);

    /// When [`FlowHandler::handle_timeout`] next has work.
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    /// Runs the timers that are due at `now`.
    fn handle_timeout(&mut self, now: Instant, out: &dyn FrameSink) {
        let _ = (now, out);
    }

    /// `Some` if this handler waits in its own poller; see the module docs.
    fn notifier(&self) -> Option<Arc<dyn Notify>> {
        None
    }

    /// Blocks in the handler's poller for at most `timeout` (`None`: until notified), handles
    /// whatever became ready, and returns. Only called when [`FlowHandler::notifier`] is
    /// `Some`.
    fn wait(&mut self, timeout: Option<Duration>, out: &dyn FrameSink) {
        let _ = (timeout, out);
    }

    /// Exit is near: take no new flows and let the open ones finish what they owe their
    /// hosts ([`WorkerPool::drain`]).
    fn begin_drain(&mut self, now: Instant, out: &dyn FrameSink) {
        let _ = (now, out);
    }

    /// Whether no flow owes its host anything any more; asked while draining, after each
    /// round of work.
    fn drained(&self) -> bool {
        true
    }

    /// The last call before the worker stops, after a drain or without one: end every flow
    /// without letting a host peer take a stream that was cut short for a complete one.
    fn finish(&mut self, now: Instant, out: &dyn FrameSink) {
        let _ = (now, out);
    }
}

/// How [`WorkerPool::drain`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainEnd {
    /// Every worker said nothing was owed any more.
    Settled,
    /// The deadline came first.
    TimedOut,
    /// The caller cut it short.
    Cancelled,
}

/// What a handler is built with.
#[derive(Debug, Clone)]
pub struct WorkerContext {
    /// The worker's index, `0..workers`.
    pub index: usize,
    /// How many workers the pool has.
    pub workers: usize,
    /// The flow hash seed ([`stack::ingress::FlowKey::worker`]): a handler opening a flow
    /// itself picks ports that hash back to it.
    pub seed: u64,
    pub epoch: Epoch,
    /// The guests' MTU.
    pub mtu: u16,
    /// The gateway's MAC: the source of every frame a worker sends to a guest.
    pub gateway_mac: EthernetAddress,
    /// The worker's counters; handlers count their drops here.
    pub counters: Arc<WorkerCounters>,
}

/// Builds the handler of each worker.
pub type HandlerFactory = Arc<dyn Fn(&WorkerContext) -> Box<dyn FlowHandler> + Send + Sync>;

/// The handler used while no forwarder is plugged in: every packet is dropped as
/// [`DropReason::NoForwarder`].
#[derive(Debug)]
pub struct NoForwarder {
    counters: Arc<WorkerCounters>,
}

impl NoForwarder {
    pub fn new(ctx: &WorkerContext) -> NoForwarder {
        NoForwarder {
            counters: ctx.counters.clone(),
        }
    }

    /// A factory of [`NoForwarder`]s.
    pub fn factory() -> HandlerFactory {
        Arc::new(|ctx: &WorkerContext| Box::new(NoForwarder::new(ctx)) as Box<dyn FlowHandler>)
    }
}

impl FlowHandler for NoForwarder {
    fn handle_packet(&mut self, _now: Instant, _packet: FlowFrame, _out: &dyn FrameSink) {
        self.counters.count_drop(DropReason::NoForwarder);
    }
}

/// One worker's counters, relaxed atomics written by the dispatcher and the worker.
#[derive(Debug)]
pub struct WorkerCounters {
    queued: AtomicU64,
    queue_full: AtomicU64,
    handled: AtomicU64,
    drops: [AtomicU64; DropReason::COUNT],
}

impl Default for WorkerCounters {
    fn default() -> WorkerCounters {
        WorkerCounters {
            queued: AtomicU64::new(0),
            queue_full: AtomicU64::new(0),
            handled: AtomicU64::new(0),
            drops: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl WorkerCounters {
    /// Counts one packet dropped for `reason`.
    pub fn count_drop(&self, reason: DropReason) {
        if let Some(n) = self.drops.get(reason.index()) {
            n.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn snapshot(&self) -> WorkerStats {
        let mut drops = DropCounters::default();
        for (reason, n) in DropReason::ALL.iter().zip(self.drops.iter()) {
            let n = n.load(Ordering::Relaxed);
            if n > 0 {
                drops.add(*reason, n);
            }
        }
        WorkerStats {
            queued: self.queued.load(Ordering::Relaxed),
            queue_full: self.queue_full.load(Ordering::Relaxed),
            handled: self.handled.load(Ordering::Relaxed),
            drops,
        }
    }
}

/// A snapshot of one worker's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WorkerStats {
    /// Packets queued for the worker.
    pub queued: u64,
    /// Packets dropped because its queue was full.
    pub queue_full: u64,
    /// Packets the worker handed to its handler.
    pub handled: u64,
    /// Drops its handler counted.
    pub drops: DropCounters,
}

struct Inbox {
    tx: Sender<FlowFrame>,
    notify: Option<Arc<dyn Notify>>,
    counters: Arc<WorkerCounters>,
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox")
            .field("len", &self.tx.len())
            .field("own_poller", &self.notify.is_some())
            .finish()
    }
}

/// The sending side: owned by the gateway thread. Cloning it is cheap.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    inboxes: Arc<[Inbox]>,
    seed: u64,
}

/// Why [`Dispatcher::dispatch`] did not queue a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DispatchError {
    /// The owning worker's queue was full (counted).
    QueueFull,
    /// The workers have stopped.
    Stopped,
}

impl Dispatcher {
    /// Queues `packet` for the worker that owns its flow. Never blocks.
    pub fn dispatch(&self, packet: FlowFrame) -> Result<(), DispatchError> {
        let index = packet.packet.key.worker(self.seed, self.inboxes.len());
        let inbox = self.inboxes.get(index).ok_or(DispatchError::Stopped)?;
        match inbox.tx.try_send(packet) {
            Ok(()) => {
                inbox.counters.queued.fetch_add(1, Ordering::Relaxed);
                if let Some(notify) = &inbox.notify {
                    notify.notify();
                }
                Ok(())
            }
            Err(TrySendError::Full(_)) => {
                inbox.counters.queue_full.fetch_add(1, Ordering::Relaxed);
                Err(DispatchError::QueueFull)
            }
            Err(TrySendError::Disconnected(_)) => Err(DispatchError::Stopped),
        }
    }

    pub fn workers(&self) -> usize {
        self.inboxes.len()
    }
}

/// The running workers. [`WorkerPool::shutdown`] (or drop) stops and joins them.
pub struct WorkerPool {
    handles: Vec<JoinHandle<()>>,
    counters: Vec<Arc<WorkerCounters>>,
    notifiers: Vec<Arc<dyn Notify>>,
    stop: Arc<AtomicBool>,
    /// Set by [`WorkerPool::drain`].
    drain: Arc<AtomicBool>,
    /// Per worker: wakes one that waits on its queue (a handler without its own poller).
    wakers: Vec<Sender<()>>,
    /// Per worker: its handler's last [`FlowHandler::drained`], once draining.
    settled: Vec<Arc<AtomicBool>>,
    /// Dropped on shutdown: wakes the workers that wait on their queue.
    stop_tx: Option<Sender<()>>,
}

impl std::fmt::Debug for WorkerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerPool")
            .field("workers", &self.counters.len())
            .field("running", &self.handles.len())
            .finish()
    }
}

/// How to start a [`WorkerPool`].
#[derive(Clone)]
pub struct PoolConfig {
    /// Number of workers, at least 1.
    pub workers: usize,
    /// Packets each worker's queue holds.
    pub queue_capacity: usize,
    pub factory: HandlerFactory,
    pub epoch: Epoch,
    /// The flow hash seed; random per process.
    pub seed: u64,
    /// The guests' MTU, passed on to handlers.
    pub mtu: u16,
    /// The gateway's MAC, passed on to handlers.
    pub gateway_mac: EthernetAddress,
}

impl std::fmt::Debug for PoolConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolConfig")
            .field("workers", &self.workers)
            .field("queue_capacity", &self.queue_capacity)
            .finish_non_exhaustive()
    }
}

/// The most packets a worker takes from its queue before it looks at its timers again.
const BATCH: usize = 256;
/// How long a worker with no timer sleeps on its queue before looking around anyway.
const IDLE_WAIT: Duration = Duration::from_secs(3600);
/// How often [`WorkerPool::drain`] looks at the workers and its caller.
const DRAIN_POLL: Duration = Duration::from_millis(10);

impl WorkerPool {
    /// Builds every handler, starts one thread per worker, and returns the pool with the
    /// dispatcher that feeds it. Frames for guests go to `sink`.
    pub fn start(
        config: PoolConfig,
        sink: Arc<dyn FrameSink>,
    ) -> io::Result<(WorkerPool, Dispatcher)> {
        let workers = config.workers.max(1);
        let stop = Arc::new(AtomicBool::new(false));
        let drain = Arc::new(AtomicBool::new(false));
        let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
        let mut pool = WorkerPool {
            handles: Vec::with_capacity(workers),
            counters: Vec::with_capacity(workers),
            notifiers: Vec::new(),
            stop: stop.clone(),
            drain: drain.clone(),
            wakers: Vec::with_capacity(workers),
            settled: Vec::with_capacity(workers),
            stop_tx: Some(stop_tx),
        };
        let mut inboxes = Vec::with_capacity(workers);
        for index in 0..workers {
            let counters = Arc::new(WorkerCounters::default());
            let ctx = WorkerContext {
                index,
                workers,
                seed: config.seed,
                epoch: config.epoch,
                mtu: config.mtu,
                gateway_mac: config.gateway_mac,
                counters: counters.clone(),
            };
            let handler = (config.factory)(&ctx);
            let notify = handler.notifier();
            if let Some(n) = &notify {
                pool.notifiers.push(n.clone());
            }
            let (tx, rx) = crossbeam_channel::bounded(config.queue_capacity.max(1));
            inboxes.push(Inbox {
                tx,
                notify,
                counters: counters.clone(),
            });
            let (wake_tx, wake) = crossbeam_channel::bounded(1);
            let settled = Arc::new(AtomicBool::new(false));
            pool.wakers.push(wake_tx);
            pool.settled.push(settled.clone());
            let worker = Worker {
                handler,
                rx,
                stop_rx: stop_rx.clone(),
                wake,
                stop: stop.clone(),
                drain: drain.clone(),
                settled,
                sink: sink.clone(),
                epoch: config.epoch,
                counters: counters.clone(),
            };
            let handle = std::thread::Builder::new()
                .name(format!("worker-{index}"))
                .spawn(move || worker.run())?;
            pool.handles.push(handle);
            pool.counters.push(counters);
        }
        let dispatcher = Dispatcher {
            inboxes: inboxes.into(),
            seed: config.seed,
        };
        Ok((pool, dispatcher))
    }

    /// Each worker's counters.
    pub fn stats(&self) -> Vec<WorkerStats> {
        self.counters.iter().map(|c| c.snapshot()).collect()
    }

    /// Shares the counters (for a stats snapshot taken without the pool).
    pub fn counters(&self) -> Vec<Arc<WorkerCounters>> {
        self.counters.clone()
    }

    /// Asks every worker to wind down for exit ([`FlowHandler::begin_drain`]) and waits until
    /// each has nothing left to owe ([`FlowHandler::drained`]), `deadline` passes, or
    /// `cancel` says so (asked every few milliseconds). The workers keep running either way:
    /// [`WorkerPool::shutdown`] stops them.
    pub fn drain(
        &mut self,
        deadline: std::time::Instant,
        cancel: &mut dyn FnMut() -> bool,
    ) -> DrainEnd {
        self.drain.store(true, Ordering::Release);
        for w in &self.wakers {
            let _ = w.try_send(());
        }
        for n in &self.notifiers {
            n.notify();
        }
        loop {
            let running = &self.handles;
            let settled = self
                .settled
                .iter()
                .zip(running)
                .all(|(s, h)| s.load(Ordering::Acquire) || h.is_finished());
            if settled {
                return DrainEnd::Settled;
            }
            if cancel() {
                return DrainEnd::Cancelled;
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return DrainEnd::TimedOut;
            }
            std::thread::sleep(DRAIN_POLL.min(deadline - now));
        }
    }

    /// Stops every worker and joins it, each handler finishing last
    /// ([`FlowHandler::finish`]). Idempotent. Packets still queued are dropped.
    pub fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.stop_tx = None;
        for n in &self.notifiers {
            n.notify();
        }
        for handle in self.handles.drain(..) {
            // A handler that panicked has already stopped; nothing more to do for it.
            let _ = handle.join();
        }
    }
}

impl Drop for WorkerPool {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct Worker {
    handler: Box<dyn FlowHandler>,
    rx: Receiver<FlowFrame>,
    stop_rx: Receiver<()>,
    wake: Receiver<()>,
    stop: Arc<AtomicBool>,
    drain: Arc<AtomicBool>,
    settled: Arc<AtomicBool>,
    sink: Arc<dyn FrameSink>,
    epoch: Epoch,
    counters: Arc<WorkerCounters>,
}

impl Worker {
    fn now(&self) -> Instant {
        self.epoch.instant(std::time::Instant::now())
    }

    fn handle(&mut self, packet: FlowFrame) {
        self.counters.handled.fetch_add(1, Ordering::Relaxed);
        let now = self.now();
        self.handler.handle_packet(now, packet, &*self.sink);
    }

    fn run(mut self) {
        let own_poller = self.handler.notifier().is_some();
        let mut draining = false;
        while !self.stop.load(Ordering::Relaxed) {
            if !draining && self.drain.load(Ordering::Acquire) {
                draining = true;
                let now = self.now();
                self.handler.begin_drain(now, &*self.sink);
                self.settled
                    .store(self.handler.drained(), Ordering::Release);
            }
            let now = self.now();
            let timeout = self
                .handler
                .poll_timeout()
                .map(|at| at.saturating_duration_since(now));
            if own_poller {
                self.handler.wait(timeout, &*self.sink);
            } else {
                crossbeam_channel::select! {
                    recv(self.rx) -> msg => match msg {
                        Ok(packet) => self.handle(packet),
                        Err(_) => break,
                    },
                    recv(self.stop_rx) -> _ => break,
                    recv(self.wake) -> _ => {},
                    default(timeout.unwrap_or(IDLE_WAIT)) => {}
                }
            }
            for _ in 0..BATCH {
                match self.rx.try_recv() {
                    Ok(packet) => self.handle(packet),
                    Err(_) => break,
                }
            }
            let now = self.now();
            if self.handler.poll_timeout().is_some_and(|at| at <= now) {
                self.handler.handle_timeout(now, &*self.sink);
            }
            if draining {
                self.settled
                    .store(self.handler.drained(), Ordering::Release);
            }
        }
        let now = self.now();
        self.handler.finish(now, &*self.sink);
    }
}

#[cfg(test)]
#[path = "worker_tests.rs"]
mod tests;
