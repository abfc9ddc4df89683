//! Ports: how a link hands one guest's frames to the switch and takes the frames meant for it.
//!
//! A link (a TAP device, one connection on a stream socket, one vfkit peer) calls
//! [`Attacher::attach`] once per guest and gets a [`Port`]. Its receive side calls
//! [`Port::send`] for every frame the guest sends; its transmit side drains [`Port::egress`]
//! and writes each frame to the guest. Dropping the `Port` detaches it: the switch forgets the
//! addresses learned on it.
//!
//! Every queue is a bounded crossbeam channel and nothing here blocks on the per-frame path: a
//! full queue drops the frame and counts it. The switch thread owns the other ends
//! ([`SwitchInputs`]) and the per-port egress senders it receives through [`Control`].
//!
//! Port ids are never reused while the process lives; [`GATEWAY_PORT`] is reserved for the
//! gateway, which attaches like any other port with [`Attacher::attach_gateway`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::mac_table::PortId;

/// One Ethernet frame, without a frame check sequence. Cheap to clone (reference counted),
/// so flooding does not copy.
pub type Frame = Bytes;

/// The port id of the gateway: the stack's own services and the forwarder behind them.
pub const GATEWAY_PORT: PortId = PortId(0);

/// A frame entering the switch, with the port it came from.
#[derive(Debug, Clone)]
pub struct Ingress {
    pub port: PortId,
    pub frame: Frame,
}

/// Port membership changes, in order with respect to each other.
#[derive(Debug)]
pub enum Control {
    /// A new port: frames for it go to `egress`.
    Attach {
        id: PortId,
        name: Arc<str>,
        egress: Sender<Frame>,
        counters: Arc<PortCounters>,
    },
    /// The port is gone; forget it and what was learned on it.
    Detach { id: PortId },
}

/// Counters of one port, updated with relaxed atomics by the link's threads and the switch.
#[derive(Debug, Default)]
pub struct PortCounters {
    /// Frames (and their bytes) the guest sent that entered the switch.
    pub rx_frames: AtomicU64,
    pub rx_bytes: AtomicU64,
    /// Frames the guest sent that were dropped because the switch's input queue was full.
    pub rx_dropped: AtomicU64,
    /// Frames queued towards the guest, and those dropped because its egress queue was full.
    pub tx_frames: AtomicU64,
    pub tx_bytes: AtomicU64,
    pub tx_dropped: AtomicU64,
}

impl PortCounters {
    fn bump(counter: &AtomicU64, by: u64) {
        counter.fetch_add(by, Ordering::Relaxed);
    }
}

/// The switch thread's ends of the channels.
#[derive(Debug)]
pub struct SwitchInputs {
    /// Frames from every port.
    pub ingress: Receiver<Ingress>,
    /// Attach and detach notices.
    pub control: Receiver<Control>,
}

/// Hands out ports. Cloned freely: every link holds one.
#[derive(Debug, Clone)]
pub struct Attacher {
    to_switch: Sender<Ingress>,
    control: Sender<Control>,
    next_id: Arc<AtomicU32>,
    egress_capacity: usize,
}

/// Why a port could not be attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AttachError {
    #[error("the switch has stopped")]
    SwitchStopped,
    #[error("port ids exhausted")]
    IdsExhausted,
}

/// The channels between links and the switch thread: `ingress_capacity` frames may wait for
/// the switch in all, `egress_capacity` frames for each port's transmit side.
pub fn channels(ingress_capacity: usize, egress_capacity: usize) -> (Attacher, SwitchInputs) {
    let (to_switch, ingress) = crossbeam_channel::bounded(ingress_capacity);
    // Membership changes are rare and must not be lost: unbounded, but one message per
    // attach or detach, which a link's accept limits bound.
    let (control_tx, control) = crossbeam_channel::unbounded();
    let attacher = Attacher {
        to_switch,
        control: control_tx,
        next_id: Arc::new(AtomicU32::new(GATEWAY_PORT.0 + 1)),
        egress_capacity,
    };
    (attacher, SwitchInputs { ingress, control })
}

impl Attacher {
    /// A new port for one guest; `name` says which link and peer, for logs and `/stats`.
    pub fn attach(&self, name: &str) -> Result<Port, AttachError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if id == u32::MAX {
            return Err(AttachError::IdsExhausted);
        }
        self.attach_as(PortId(id), name)
    }

    /// The gateway's port. Attach it once.
    pub fn attach_gateway(&self) -> Result<Port, AttachError> {
        self.attach_as(GATEWAY_PORT, "gateway")
    }

    fn attach_as(&self, id: PortId, name: &str) -> Result<Port, AttachError> {
        let (egress_tx, egress) = crossbeam_channel::bounded(self.egress_capacity);
        let counters = Arc::new(PortCounters::default());
        let name: Arc<str> = Arc::from(name);
        self.control
            .send(Control::Attach {
                id,
                name: name.clone(),
                egress: egress_tx,
                counters: counters.clone(),
            })
            .map_err(|_| AttachError::SwitchStopped)?;
        Ok(Port {
            id,
            name,
            to_switch: self.to_switch.clone(),
            egress,
            control: self.control.clone(),
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
    to_switch: Sender<Ingress>,
    egress: Receiver<Frame>,
    control: Sender<Control>,
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

    /// Hands a frame the guest sent to the switch. Never blocks: returns false, and counts,
    /// if the switch's input queue is full. Returns false too once the switch has stopped.
    pub fn send(&self, frame: Frame) -> bool {
        let len = frame.len() as u64;
        match self.to_switch.try_send(Ingress {
            port: self.id,
            frame,
        }) {
            Ok(()) => {
                PortCounters::bump(&self.counters.rx_frames, 1);
                PortCounters::bump(&self.counters.rx_bytes, len);
                true
            }
            Err(TrySendError::Full(_)) => {
                PortCounters::bump(&self.counters.rx_dropped, 1);
                false
            }
            Err(TrySendError::Disconnected(_)) => false,
        }
    }

    /// Frames for the guest, in order. A receive error means the switch has stopped.
    pub fn egress(&self) -> &Receiver<Frame> {
        &self.egress
    }

    pub fn counters(&self) -> &PortCounters {
        &self.counters
    }

    /// Detaches the port now, while it is still shared (its guest is gone, say): the switch
    /// forgets it and what was learned on it, and its egress queue ends. Dropping it
    /// afterwards tells the switch nothing more.
    pub fn detach(&self) {
        if !self.detached.swap(true, Ordering::AcqRel) {
            // If the switch has stopped there is nothing left to tell.
            let _ = self.control.send(Control::Detach { id: self.id });
        }
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        self.detach();
    }
}

/// The switch's side of one port: where frames for it go.
#[derive(Debug)]
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
        let len = frame.len() as u64;
        match self.sender.try_send(frame) {
            Ok(()) => {
                PortCounters::bump(&self.counters.tx_frames, 1);
                PortCounters::bump(&self.counters.tx_bytes, len);
                true
            }
            Err(_) => {
                PortCounters::bump(&self.counters.tx_dropped, 1);
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attach_send_detach() {
        let (attacher, inputs) = channels(2, 2);
        let port = attacher.attach("tap0").unwrap();
        assert_ne!(port.id(), GATEWAY_PORT);
        let Control::Attach {
            id,
            egress,
            counters,
            ..
        } = inputs.control.try_recv().unwrap()
        else {
            panic!("expected an attach notice");
        };
        assert_eq!(id, port.id());

        assert!(port.send(Bytes::from_static(b"one")));
        assert!(port.send(Bytes::from_static(b"two")));
        assert!(
            !port.send(Bytes::from_static(b"three")),
            "ingress queue is full"
        );
        assert_eq!(port.counters().rx_frames.load(Ordering::Relaxed), 2);
        assert_eq!(port.counters().rx_dropped.load(Ordering::Relaxed), 1);
        let first = inputs.ingress.try_recv().unwrap();
        assert_eq!((first.port, &first.frame[..]), (port.id(), &b"one"[..]));

        let egress = Egress::new(egress, counters);
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
        assert!(
            matches!(inputs.control.try_recv(), Ok(Control::Detach { id: gone }) if gone == id)
        );
    }

    #[test]
    fn ids_are_distinct_and_gateway_is_reserved() {
        let (attacher, _inputs) = channels(1, 1);
        let a = attacher.attach("a").unwrap();
        let b = attacher.clone().attach("b").unwrap();
        let gw = attacher.attach_gateway().unwrap();
        assert_ne!(a.id(), b.id());
        assert_eq!(gw.id(), GATEWAY_PORT);
        assert!(a.id() != GATEWAY_PORT && b.id() != GATEWAY_PORT);
    }

    #[test]
    fn attach_fails_once_the_switch_is_gone() {
        let (attacher, inputs) = channels(1, 1);
        drop(inputs);
        assert_eq!(
            attacher.attach("late").err(),
            Some(AttachError::SwitchStopped)
        );
    }
}
