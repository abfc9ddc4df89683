//! Ports: how a link that runs threads of its own hands one guest's frames to the data plane
//! and takes the frames meant for it.
//!
//! Links served inside the workers' loops (a TAP queue) need none of this; every other link
//! (a stream connection, a vfkit peer, stdio) calls [`Attacher::attach`] once per guest and
//! gets a [`Port`]. Its receive side calls [`Port::send`] for every frame the guest sends,
//! which queues it for the worker that serves the port (every flow of that guest then lives on
//! that worker); its transmit side drains [`Port::egress`] and writes each frame to the guest.
//! Dropping the `Port` detaches it: the switch forgets the addresses learned on it and the
//! forwarder drops their flows.
//!
//! Every queue is a bounded crossbeam channel and nothing here blocks on the per-frame path: a
//! full queue drops the frame and counts it.
//!
//! Port ids are never reused while the process lives; [`GATEWAY_PORT`] is the gateway's.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::mac_table::PortId;

/// One Ethernet frame, without a frame check sequence. Cheap to clone (reference counted),
/// so flooding does not copy.
pub type Frame = Bytes;

/// The port id of the gateway: the stack's own services and the forwarder behind them.
pub const GATEWAY_PORT: PortId = PortId(0);

/// Counters of one port, updated with relaxed atomics by the link's threads and the workers.
#[derive(Debug, Default)]
pub struct PortCounters {
    /// Frames (and their bytes) the guest sent that entered the switch.
    pub rx_frames: AtomicU64,
    pub rx_bytes: AtomicU64,
    /// Frames the guest sent that were dropped because the worker's queue was full.
    pub rx_dropped: AtomicU64,
    /// Frames queued or written towards the guest, and those dropped (a full queue, a link
    /// that refused them).
    pub tx_frames: AtomicU64,
    pub tx_bytes: AtomicU64,
    pub tx_dropped: AtomicU64,
}

impl PortCounters {
    pub(crate) fn bump(counter: &AtomicU64, by: u64) {
        counter.fetch_add(by, Ordering::Relaxed);
    }

    /// Counts a frame of `len` bytes towards the guest, sent or dropped.
    pub(crate) fn tx(&self, len: usize, sent: bool) {
        if sent {
            PortCounters::bump(&self.tx_frames, 1);
            PortCounters::bump(&self.tx_bytes, len as u64);
        } else {
            PortCounters::bump(&self.tx_dropped, 1);
        }
    }

    /// Counts a frame of `len` bytes from the guest, taken or dropped.
    pub(crate) fn rx(&self, len: usize, taken: bool) {
        if taken {
            PortCounters::bump(&self.rx_frames, 1);
            PortCounters::bump(&self.rx_bytes, len as u64);
        } else {
            PortCounters::bump(&self.rx_dropped, 1);
        }
    }
}

/// Why a port could not be attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AttachError {
    #[error("the switch has stopped")]
    SwitchStopped,
    #[error("port ids exhausted")]
    IdsExhausted,
    #[error("this data plane serves no such link itself")]
    Unsupported,
}

/// What a port needs from the data plane; the runtime implements it.
pub trait Switchboard: Send + Sync + std::fmt::Debug {
    /// A new port named `name` whose guest uses `mtu`; frames for it go to `egress`.
    /// Returns its id and the worker its frames go to.
    fn attach(
        &self,
        name: &str,
        mtu: u16,
        egress: Sender<Frame>,
        counters: Arc<PortCounters>,
    ) -> Result<(PortId, usize), AttachError>;

    /// A frame the guest sent on `port`, for `worker`. Never blocks; false when it was dropped.
    fn ingress(&self, worker: usize, port: PortId, frame: Frame) -> bool;

    /// The port is gone.
    fn detach(&self, port: PortId);

    /// Serves a TAP device's `queues` inside the data plane's own loops (one per worker);
    /// returns its port and counters. Boards that cannot refuse.
    fn attach_tap(
        &self,
        name: &str,
        queues: Vec<crate::tap::Tap>,
        mtu: u16,
    ) -> Result<(PortId, Arc<PortCounters>), AttachError> {
        let _ = (name, queues, mtu);
        Err(AttachError::SwitchStopped)
    }

    /// Serves a stream connection inside the data plane's own loops; returns its port. The
    /// stream's `done` is told when it ends. Boards that cannot say
    /// [`AttachError::Unsupported`], and the link serves it with threads of its own.
    fn attach_stream(
        &self,
        name: &str,
        stream: crate::link::stream::NativeStream,
        mtu: u16,
    ) -> Result<PortId, AttachError> {
        let _ = (name, stream, mtu);
        Err(AttachError::Unsupported)
    }

    /// Detaches `port` and returns once the data plane has let go of its link (or after a
    /// short wait).
    fn detach_and_wait(&self, port: PortId) {
        self.detach(port);
    }

    /// How many workers serve ports: a TAP device gets as many queues.
    fn workers(&self) -> usize {
        1
    }
}

/// Hands out ports. Cloned freely: every link holds one.
#[derive(Debug, Clone)]
pub struct Attacher {
    board: Arc<dyn Switchboard>,
    egress_capacity: usize,
    mtu: u16,
}

impl Attacher {
    /// Ports of `board` with egress queues of `egress_capacity` frames, for guests of `mtu`
    /// unless said otherwise.
    pub fn new(board: Arc<dyn Switchboard>, egress_capacity: usize, mtu: u16) -> Attacher {
        Attacher {
            board,
            egress_capacity,
            mtu,
        }
    }

    /// The data plane behind the ports.
    pub fn board(&self) -> &Arc<dyn Switchboard> {
        &self.board
    }

    /// The MTU of guests whose link does not say its own.
    pub fn mtu(&self) -> u16 {
        self.mtu
    }

    /// A new port for one guest; `name` says which link and peer, for logs and `/stats`.
    pub fn attach(&self, name: &str) -> Result<Port, AttachError> {
        self.attach_with_mtu(name, self.mtu)
    }

    /// A new port for a guest whose link carries `mtu`.
    pub fn attach_with_mtu(&self, name: &str, mtu: u16) -> Result<Port, AttachError> {
        let (egress_tx, egress) = crossbeam_channel::bounded(self.egress_capacity.max(1));
        let counters = Arc::new(PortCounters::default());
        let (id, worker) = self.board.attach(name, mtu, egress_tx, counters.clone())?;
        Ok(Port {
            id,
            name: Arc::from(name),
            worker,
            board: self.board.clone(),
            egress,
            counters,
            detached: AtomicBool::new(false),
        })
    }
}

/// One guest's attachment to the switch. Share it between a link's receive and transmit
/// threads with an `Arc`; drop it to detach.
#[derive(Debug)]
pub struct Port {
    id: PortId,
    name: Arc<str>,
    worker: usize,
    board: Arc<dyn Switchboard>,
    egress: Receiver<Frame>,
    counters: Arc<PortCounters>,
    detached: AtomicBool,
}

impl Port {
    pub fn id(&self) -> PortId {
        self.id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Hands a frame the guest sent to the worker serving this port. Never blocks: returns
    /// false, and counts, if its queue is full; false too once the data plane has stopped.
    pub fn send(&self, frame: Frame) -> bool {
        let len = frame.len();
        let taken = self.board.ingress(self.worker, self.id, frame);
        self.counters.rx(len, taken);
        taken
    }

    /// Frames for the guest, in order. A receive error means the data plane has stopped.
    pub fn egress(&self) -> &Receiver<Frame> {
        &self.egress
    }

    pub fn counters(&self) -> &PortCounters {
        &self.counters
    }
}

impl Port {
    /// Detaches the port now, while it is still shared (its guest is gone, say): the switch
    /// forgets it and what was learned on it. Dropping it afterwards tells nothing more.
    pub fn detach(&self) {
        if !self.detached.swap(true, Ordering::AcqRel) {
            self.board.detach(self.id);
        }
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        self.detach();
    }
}

/// The data plane's side of one port: where frames for it go.
#[derive(Debug, Clone)]
pub struct Egress {
    sender: Sender<Frame>,
    counters: Arc<PortCounters>,
}

impl Egress {
    pub fn new(sender: Sender<Frame>, counters: Arc<PortCounters>) -> Egress {
        Egress { sender, counters }
    }

    /// Queues a frame for the port's transmit side; drops and counts it if the queue is full.
    /// Returns false when the frame was not queued.
    pub fn push(&self, frame: Frame) -> bool {
        let len = frame.len();
        let sent = match self.sender.try_send(frame) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        };
        self.counters.tx(len, sent);
        sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;

    /// A board that keeps what it is told.
    #[derive(Debug, Default)]
    struct Board {
        next: Mutex<u32>,
        frames: Mutex<Vec<(usize, PortId, Frame)>>,
        egress: Mutex<Vec<Egress>>,
        detached: Mutex<Vec<PortId>>,
    }

    impl Switchboard for Board {
        fn attach(
            &self,
            _name: &str,
            _mtu: u16,
            egress: Sender<Frame>,
            counters: Arc<PortCounters>,
        ) -> Result<(PortId, usize), AttachError> {
            let mut next = self.next.lock();
            *next += 1;
            self.egress.lock().push(Egress::new(egress, counters));
            Ok((PortId(*next), 7))
        }

        fn ingress(&self, worker: usize, port: PortId, frame: Frame) -> bool {
            let mut frames = self.frames.lock();
            if frames.len() >= 2 {
                return false;
            }
            frames.push((worker, port, frame));
            true
        }

        fn detach(&self, port: PortId) {
            self.detached.lock().push(port);
        }
    }

    #[test]
    fn attach_send_detach() {
        let board = Arc::new(Board::default());
        let attacher = Attacher::new(board.clone(), 2, 1500);
        let port = attacher.attach("tap0").unwrap();
        assert_ne!(port.id(), GATEWAY_PORT);

        assert!(port.send(Bytes::from_static(b"one")));
        assert!(port.send(Bytes::from_static(b"two")));
        assert!(
            !port.send(Bytes::from_static(b"three")),
            "the queue is full"
        );
        assert_eq!(port.counters().rx_frames.load(Ordering::Relaxed), 2);
        assert_eq!(port.counters().rx_dropped.load(Ordering::Relaxed), 1);
        let first = board.frames.lock()[0].clone();
        assert_eq!(
            (first.0, first.1, &first.2[..]),
            (7, port.id(), &b"one"[..])
        );

        let egress = board.egress.lock()[0].clone();
        assert!(egress.push(Bytes::from_static(b"a")));
        assert!(egress.push(Bytes::from_static(b"b")));
        assert!(
            !egress.push(Bytes::from_static(b"c")),
            "egress queue is full"
        );
        assert_eq!(&port.egress().try_recv().unwrap()[..], b"a");
        assert_eq!(port.counters().tx_dropped.load(Ordering::Relaxed), 1);

        let id = port.id();
        drop(port);
        assert_eq!(*board.detached.lock(), vec![id]);
    }
}
