//! What the workers share: the switch's MAC table, IGMP/MLD snooping, the ports, each
//! worker's inbox, the capture.
//!
//! Nothing here is touched on the common per-frame path. A worker decides where a frame goes
//! from its own caches ([`super::worker`]); the [`Switch`] behind its lock is asked only when
//! a cache cannot answer (a source address not seen on that port within the last second, a
//! destination it has not looked up since the table last changed), when a port comes or goes,
//! and once a second to age the table. [`Fabric::generation`] tells the caches when the table
//! changed under them.
//!
//! A frame crosses to another worker only as a named, counted, bounded handoff
//! ([`FrameHandoff`], through [`WorkerHandle::hand`]): a flow another worker owns, a link
//! another worker serves, a frame from a link that runs threads of its own. A worker is woken
//! for it only when it is parked in its poller. Membership changes and questions
//! ([`WorkerControl`]) go over an unbounded queue of their own, two messages per port attached
//! and one per port detached, which the links' own bounds limit. An attach returns only once
//! every worker knows the port, and its link is read only after that: no frame of a new port
//! reaches a worker that would not know where to send its answer.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use forwarder::{FlowFrame, Notify, WorkerCounters, WorkerEvent};
use mio::Waker;
use parking_lot::Mutex;
use stack::time::Epoch;
use stack::wire::EthernetAddress;

use super::GuestGoneHook;
use super::mcast::Multicast;
use super::worker::{PortSpec, WorkerSnapshot};
use crate::forward::Switch;
use crate::link::stream::NativeStream;
use crate::mac_table::PortId;
use crate::pcap::PcapSink;
use crate::port::{AttachError, Egress, Frame, PortCounters, Switchboard};
use crate::tap::Tap;

/// How long a port's attach or detach waits for every worker to take it in or let go of it.
const MEMBERSHIP_WAIT: Duration = Duration::from_secs(2);

/// A frame on its way to another worker.
#[derive(Debug)]
pub(crate) enum FrameHandoff {
    /// A frame a guest sent on `port`, from a link that runs threads of its own.
    Ingress { port: PortId, frame: Bytes },
    /// A packet of a flow this worker owns (boxed: it is the rare case, and the queue's
    /// slots are as large as its largest message).
    Flow(Box<FlowFrame>),
    /// A frame for the guest behind `port`, whose link this worker serves.
    Egress { port: PortId, frame: Bytes },
    /// A frame from the gateway's side (the DNS service) to switch towards the guests.
    FromGateway(Bytes),
}

/// A membership change or a question for a worker.
pub(crate) enum WorkerControl {
    /// The worker learns the port and takes its link, if it serves one, without reading it
    /// yet; `done` is told once it has.
    Attach {
        port: PortId,
        spec: PortSpec,
        done: Sender<()>,
    },
    /// Every worker knows the port now: the one serving its link starts reading it.
    Open {
        port: PortId,
    },
    /// `done` is told once the worker let go of the port's link.
    Detach {
        port: PortId,
        done: Option<Sender<()>>,
    },
    Stats(Sender<WorkerSnapshot>),
    /// Exit is near: wind the flows down ([`super::Runtime::drain`]).
    Drain,
    Stop,
}

/// One worker as the others see it.
#[derive(Debug)]
pub(crate) struct WorkerHandle {
    frames: Sender<FrameHandoff>,
    control: Sender<WorkerControl>,
    waker: Waker,
    /// Set by the worker just before it blocks in its poller.
    parked: AtomicBool,
    /// Set by a draining worker whose flows owe their hosts nothing any more.
    settled: AtomicBool,
    pub(crate) counters: Arc<WorkerCounters>,
}

impl WorkerHandle {
    pub(crate) fn new(
        frames: Sender<FrameHandoff>,
        control: Sender<WorkerControl>,
        waker: Waker,
        counters: Arc<WorkerCounters>,
    ) -> WorkerHandle {
        WorkerHandle {
            frames,
            control,
            waker,
            parked: AtomicBool::new(false),
            settled: AtomicBool::new(false),
            counters,
        }
    }

    /// Queues a frame for this worker; false (and nothing queued) when its inbox is full or it
    /// has stopped.
    pub(crate) fn hand(&self, handoff: FrameHandoff) -> bool {
        match self.frames.try_send(handoff) {
            Ok(()) => {
                self.wake_if_parked();
                true
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        }
    }

    /// Queues a control message and wakes the worker.
    pub(crate) fn tell(&self, control: WorkerControl) -> bool {
        let sent = self.control.send(control).is_ok();
        let _ = self.waker.wake();
        sent
    }

    fn wake_if_parked(&self) {
        if self.parked.swap(false, Ordering::SeqCst) {
            let _ = self.waker.wake();
        }
    }

    /// The worker is about to block; see [`WorkerHandle::hand`].
    pub(crate) fn park(&self) {
        self.parked.store(true, Ordering::SeqCst);
    }

    pub(crate) fn unpark(&self) {
        self.parked.store(false, Ordering::SeqCst);
    }

    /// Whether the worker, draining, has nothing left to owe.
    pub(crate) fn settled(&self) -> bool {
        self.settled.load(Ordering::Acquire)
    }

    pub(crate) fn set_settled(&self, settled: bool) {
        self.settled.store(settled, Ordering::Release);
    }
}

impl Notify for WorkerHandle {
    fn notify(&self) {
        let _ = self.waker.wake();
    }
}

/// A port as the control plane knows it.
#[derive(Debug)]
pub(crate) struct PortEntry {
    pub(crate) name: Arc<str>,
    pub(crate) counters: Arc<PortCounters>,
}

/// See the module docs.
pub(crate) struct Fabric {
    switch: Mutex<Switch>,
    /// The switch's [`Switch::generation`], readable without its lock.
    generation: AtomicU64,
    workers: OnceLock<Vec<Arc<WorkerHandle>>>,
    ports: Mutex<BTreeMap<PortId, PortEntry>>,
    next_id: AtomicU32,
    next_worker: AtomicUsize,
    pub(crate) pcap: Option<PcapSink>,
    guest_gone: Option<GuestGoneHook>,
    stopped: AtomicBool,
    pub(crate) gateway_mac: EthernetAddress,
    pub(crate) epoch: Epoch,
    /// IGMP/MLD snooping; `None` floods every group.
    pub(crate) multicast: Option<Multicast>,
}

impl std::fmt::Debug for Fabric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fabric")
            .field("workers", &self.workers().len())
            .field("ports", &self.ports.lock().len())
            .finish_non_exhaustive()
    }
}

impl Fabric {
    pub(crate) fn new(
        switch: Switch,
        pcap: Option<PcapSink>,
        guest_gone: Option<GuestGoneHook>,
        gateway_mac: EthernetAddress,
        epoch: Epoch,
        multicast: Option<Multicast>,
    ) -> Fabric {
        Fabric {
            switch: Mutex::new(switch),
            generation: AtomicU64::new(0),
            workers: OnceLock::new(),
            ports: Mutex::new(BTreeMap::new()),
            next_id: AtomicU32::new(crate::port::GATEWAY_PORT.0 + 1),
            next_worker: AtomicUsize::new(0),
            pcap,
            guest_gone,
            stopped: AtomicBool::new(false),
            gateway_mac,
            epoch,
            multicast,
        }
    }

    /// Sets the workers, once, before any port attaches.
    pub(crate) fn set_workers(&self, workers: Vec<Arc<WorkerHandle>>) {
        let _ = self.workers.set(workers);
    }

    pub(crate) fn workers(&self) -> &[Arc<WorkerHandle>] {
        self.workers.get().map_or(&[], Vec::as_slice)
    }

    /// Runs `f` on the switch under its lock, and publishes the table's generation.
    pub(crate) fn with_switch<T>(&self, f: impl FnOnce(&mut Switch) -> T) -> T {
        let mut switch = self.switch.lock();
        let result = f(&mut switch);
        self.generation
            .store(switch.generation(), Ordering::Release);
        result
    }

    /// See [`Switch::generation`].
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Hands `handoff` to worker `to`, counted on both sides (`from` gave it away).
    pub(crate) fn hand(
        &self,
        from: Option<&WorkerCounters>,
        to: usize,
        handoff: FrameHandoff,
    ) -> bool {
        let Some(worker) = self.workers().get(to) else {
            return false;
        };
        let sent = worker.hand(handoff);
        if let Some(from) = from {
            from.count(
                if sent {
                    WorkerEvent::HandoffOut
                } else {
                    WorkerEvent::HandoffDropped
                },
                1,
            );
        }
        sent
    }

    fn new_port(&self, name: &str, counters: Arc<PortCounters>) -> Result<PortId, AttachError> {
        if self.stopped.load(Ordering::Acquire) || self.workers().is_empty() {
            return Err(AttachError::SwitchStopped);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if id == u32::MAX {
            return Err(AttachError::IdsExhausted);
        }
        let id = PortId(id);
        self.with_switch(|s| s.add_port(id));
        self.ports.lock().insert(
            id,
            PortEntry {
                name: Arc::from(name),
                counters,
            },
        );
        if let Some(multicast) = &self.multicast {
            multicast.port_attached(self.epoch.instant(std::time::Instant::now()));
        }
        Ok(id)
    }

    /// Attaches a TAP device served inside the loops: queue `k` goes to worker `k`, and the
    /// workers without a queue of their own hand its frames to one that has. Returns the port
    /// and its counters.
    pub(crate) fn attach_tap(
        &self,
        name: &str,
        queues: Vec<Tap>,
        mtu: u16,
    ) -> Result<(PortId, Arc<PortCounters>), AttachError> {
        let counters = Arc::new(PortCounters::default());
        let id = self.new_port(name, counters.clone())?;
        let queues_len = queues.len().max(1);
        let mut queues = queues.into_iter();
        self.tell_attach(id, |k| match queues.next() {
            Some(tap) => PortSpec::Tap {
                tap,
                mtu,
                counters: counters.clone(),
            },
            None => PortSpec::Remote {
                owner: k % queues_len,
                mtu,
            },
        });
        Ok((id, counters))
    }

    /// Attaches a stream connection served inside one worker's loop (spread over the workers
    /// in turn); the others hand its frames to that one.
    pub(crate) fn attach_stream(
        &self,
        name: &str,
        stream: NativeStream,
        mtu: u16,
    ) -> Result<PortId, AttachError> {
        let counters = Arc::new(PortCounters::default());
        let id = self.new_port(name, counters.clone())?;
        let workers = self.workers();
        let owner = self.next_worker.fetch_add(1, Ordering::Relaxed) % workers.len().max(1);
        let mut stream = Some(stream);
        self.tell_attach(id, |k| match stream.take_if(|_| k == owner) {
            Some(stream) => PortSpec::Stream {
                stream,
                mtu,
                counters: counters.clone(),
            },
            None => PortSpec::Remote { owner, mtu },
        });
        Ok(id)
    }

    /// Tells every worker of port `id` (worker `k` gets `spec(k)`), waits, briefly, until each
    /// has taken it in, and only then lets the link's own worker read it. Whatever a worker
    /// hands another about the port, and whatever a link sends the moment its attach returns,
    /// so finds the port known wherever it lands.
    fn tell_attach(&self, id: PortId, mut spec: impl FnMut(usize) -> PortSpec) {
        let acks = self
            .workers()
            .iter()
            .enumerate()
            .map(|(k, worker)| {
                let (done, ack) = crossbeam_channel::bounded(1);
                worker.tell(WorkerControl::Attach {
                    port: id,
                    spec: spec(k),
                    done,
                });
                ack
            })
            .collect();
        await_acks(acks);
        for worker in self.workers() {
            worker.tell(WorkerControl::Open { port: id });
        }
    }

    /// Detaches `port`: the switch forgets it, every worker lets go of its link (waited for,
    /// briefly, when `wait`), and the forwarder drops the flows of the guests behind it.
    pub(crate) fn detach_port(&self, port: PortId, wait: bool) {
        let gone = self.with_switch(|s| s.detach(port));
        if self.ports.lock().remove(&port).is_none() {
            return;
        }
        if let Some(multicast) = &self.multicast {
            multicast.port_detached(port);
        }
        let mut acks: Vec<Receiver<()>> = Vec::new();
        for worker in self.workers() {
            let done = wait.then(|| {
                let (tx, rx) = crossbeam_channel::bounded(1);
                acks.push(rx);
                tx
            });
            worker.tell(WorkerControl::Detach { port, done });
        }
        await_acks(acks);
        if let (Some(macs), Some(hook)) = (gone, &self.guest_gone)
            && !macs.is_empty()
        {
            hook(&macs);
        }
    }

    /// The name of `port` (for logs), or its number if it is gone.
    pub(crate) fn port_name(&self, port: PortId) -> Arc<str> {
        self.ports
            .lock()
            .get(&port)
            .map_or_else(|| Arc::from(port.to_string()), |e| e.name.clone())
    }

    /// Every port's name and counters, by id.
    pub(crate) fn ports(&self) -> Vec<(PortId, Arc<str>, Arc<PortCounters>)> {
        self.ports
            .lock()
            .iter()
            .map(|(id, e)| (*id, e.name.clone(), e.counters.clone()))
            .collect()
    }

    /// IGMP/MLD snooping's counters, when on.
    pub(crate) fn multicast_counters(&self) -> Option<crate::snoop::SnoopCounters> {
        self.multicast.as_ref().map(Multicast::counters)
    }

    /// Stops accepting ports and tells every worker to stop.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        for worker in self.workers() {
            worker.tell(WorkerControl::Stop);
        }
    }
}

impl Switchboard for Fabric {
    fn attach(
        &self,
        name: &str,
        mtu: u16,
        egress: Sender<Frame>,
        counters: Arc<PortCounters>,
    ) -> Result<(PortId, usize), AttachError> {
        let id = self.new_port(name, counters.clone())?;
        let workers = self.workers();
        let owner = self.next_worker.fetch_add(1, Ordering::Relaxed) % workers.len().max(1);
        let egress = Egress::new(egress, counters);
        self.tell_attach(id, |_| PortSpec::Channel {
            egress: egress.clone(),
            mtu,
        });
        Ok((id, owner))
    }

    fn ingress(&self, worker: usize, port: PortId, frame: Frame) -> bool {
        self.hand(None, worker, FrameHandoff::Ingress { port, frame })
    }

    fn detach(&self, port: PortId) {
        self.detach_port(port, false);
    }

    fn attach_tap(
        &self,
        name: &str,
        queues: Vec<Tap>,
        mtu: u16,
    ) -> Result<(PortId, Arc<PortCounters>), AttachError> {
        Fabric::attach_tap(self, name, queues, mtu)
    }

    fn detach_and_wait(&self, port: PortId) {
        self.detach_port(port, true);
    }

    fn attach_stream(
        &self,
        name: &str,
        stream: NativeStream,
        mtu: u16,
    ) -> Result<PortId, AttachError> {
        Fabric::attach_stream(self, name, stream, mtu)
    }

    fn workers(&self) -> usize {
        self.workers().len()
    }
}

/// Waits until every worker has answered, or [`MEMBERSHIP_WAIT`] has passed: a worker stuck
/// in a handler must not hold a link's thread for longer.
fn await_acks(acks: Vec<Receiver<()>>) {
    let deadline = std::time::Instant::now() + MEMBERSHIP_WAIT;
    for ack in acks {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let _ = ack.recv_timeout(left);
    }
}

/// The gateway's way to the guests for the services that run outside the workers (DNS): each
/// frame is handed to a worker, which switches it as it does its own.
#[derive(Debug, Clone)]
pub(crate) struct GatewayTx {
    fabric: Arc<Fabric>,
}

impl GatewayTx {
    pub(crate) fn new(fabric: Arc<Fabric>) -> GatewayTx {
        GatewayTx { fabric }
    }

    /// Queues `frame` for the guests; false when dropped (a full inbox).
    pub(crate) fn send(&self, frame: Bytes) -> bool {
        self.fabric.hand(None, 0, FrameHandoff::FromGateway(frame))
    }
}

/// The DNS service's answers and TCP segments go to the guests this way.
impl forwarder::dns_service::ToGuests for GatewayTx {
    fn send(&self, frame: Bytes) -> bool {
        GatewayTx::send(self, frame)
    }
}
