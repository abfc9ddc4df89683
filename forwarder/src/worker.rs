//! The seam between a worker's event loop and the flow logic it runs.
//!
//! A worker (the loop lives in the `switch` crate) is one thread with one mio [`Registry`]: it
//! reads frames from its links, switches them, lets the gateway answer what is the gateway's,
//! and hands every flow packet — a [`FlowFrame`], the frame's bytes (reference counted, never
//! copied) and the owned [`FlowPacket`] summary — to its [`FlowHandler`] in the same call
//! stack. The handler registers its host sockets with the same registry, under tokens whose
//! kind (the top byte, [`KIND_SHIFT`]) is below [`LOOP_KINDS`]; the loop hands those tokens
//! back through [`FlowHandler::ready`]. Frames for guests leave through a [`FrameSink`], which
//! the loop implements by writing straight to the guest's link.
//!
//! Contracts:
//! - A flow is owned by one worker for its whole life. A handler that finds a packet of a flow
//!   another worker owns says so ([`Handled::Elsewhere`]); the loop hands it there once,
//!   counted. Nothing is shared on the per-packet path.
//! - Time is passed in as a [`stack::time::Instant`] on the process [`Epoch`];
//!   [`FlowHandler::poll_timeout`] / [`FlowHandler::handle_timeout`] are the handler's timers.
//! - The control plane reaches a handler through a command queue of its own and the worker's
//!   [`Notify`]; the loop calls [`FlowHandler::commands`] whenever it is woken.
//! - At exit the loop asks its handler to wind down ([`FlowHandler::begin_drain`]), keeps
//!   running it — links included, so guests can finish their streams — until it says nothing
//!   is owed to any host any more ([`FlowHandler::drained`]) or the deadline passes, and calls
//!   [`FlowHandler::finish`] last, drained or not.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use mio::{Registry, Token};
use stack::ingress::{DropCounters, DropReason, FlowPacket};
use stack::offload::LinkOffloads;
use stack::time::{Epoch, Instant};
use stack::wire::{EthernetAddress, VirtioNetRepr};

/// Token kinds live in the top byte of a [`Token`].
pub const KIND_SHIFT: u32 = 56;
/// Token kinds `0..LOOP_KINDS` belong to the handler (kind 0 is the loop's waker, never
/// handed to a handler); the loop uses `LOOP_KINDS..` for its links.
pub const LOOP_KINDS: usize = 16;

/// A flow-bound frame on its way to the flow's owner.
#[derive(Debug, Clone)]
pub struct FlowFrame {
    /// The whole Ethernet frame, as the guest sent it.
    pub frame: Bytes,
    /// What ingress parsed from it; `packet.payload` indexes `frame`.
    pub packet: FlowPacket,
    /// The MTU of the link the frame came in on: the guest's, for segment sizes and for
    /// whether a reply must be fragmented.
    pub link_mtu: u16,
    /// What that link does for what we send back (checksums, TCP super-segments).
    pub link_offloads: LinkOffloads,
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

/// Where a handler sends frames for guests: the loop's way to the guests' links. Never blocks;
/// returns false when the frame was dropped (and counted by the sink).
pub trait FrameSink {
    /// Sends a frame already built.
    fn send_frame(&self, frame: Bytes) -> bool;

    /// Sends a frame of `len` bytes built in place: `fill` gets exactly `len` bytes of the
    /// sink's own buffer (whatever they held before) and writes every one of them. Sinks that
    /// write to a link build it in the link's buffer; this default builds it in a new one.
    fn send_with(&self, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> bool {
        let mut buf = vec![0u8; len];
        fill(&mut buf);
        self.send_frame(Bytes::from(buf))
    }

    /// Sends a frame of `len` bytes built in place, with the virtio-net `header` that says
    /// what the link is to finish (a partial checksum, a super-segment to cut). Only a
    /// builder whose flow's link takes these offloads ([`FlowFrame::link_offloads`]) sends
    /// so. Sinks that write to such a link pass the header on; this default finishes the frame
    /// in software ([`stack::offload::finish`]) and sends what results, as the frames' way
    /// to a link without offloads must.
    fn send_offloaded(
        &self,
        len: usize,
        header: &VirtioNetRepr,
        fill: &mut dyn FnMut(&mut [u8]),
    ) -> bool {
        let mut buf = vec![0u8; len];
        fill(&mut buf);
        let mut scratch = Vec::new();
        let mut sent = true;
        let finished = stack::offload::finish(&buf, header, &mut scratch, &mut |frame| {
            sent &= self.send_frame(Bytes::copy_from_slice(frame));
        });
        finished.is_ok() && sent
    }
}

/// Wakes a worker that waits in its poller (a mio `Waker`, say).
pub trait Notify: Send + Sync {
    fn notify(&self);
}

/// What became of a packet handed to [`FlowHandler::handle_packet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// Handled here (answered, forwarded, or dropped and counted).
    Here,
    /// The flow belongs to this other worker: hand the packet there.
    Elsewhere(usize),
}

/// The forwarding logic of one worker: it owns that worker's flows. See the module docs.
pub trait FlowHandler: Send {
    /// One packet of a flow.
    fn handle_packet(&mut self, now: Instant, packet: &FlowFrame, out: &dyn FrameSink) -> Handled;

    /// When [`FlowHandler::handle_timeout`] next has work.
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    /// Runs the timers that are due at `now`.
    fn handle_timeout(&mut self, now: Instant, out: &dyn FrameSink) {
        let _ = (now, out);
    }

    /// A readiness event for one of the handler's own tokens.
    fn ready(&mut self, now: Instant, token: Token, readiness: Readiness, out: &dyn FrameSink) {
        let _ = (now, token, readiness, out);
    }

    /// Runs the control plane's commands queued for this worker.
    fn commands(&mut self, now: Instant, out: &dyn FrameSink) {
        let _ = (now, out);
    }

    /// Exit is near: take no new flows and let the open ones finish what they owe their
    /// hosts.
    fn begin_drain(&mut self, now: Instant, out: &dyn FrameSink) {
        let _ = (now, out);
    }

    /// Whether no flow owes its host anything any more; asked while draining, after each
    /// turn of the loop.
    fn drained(&self) -> bool {
        true
    }

    /// The last call before the worker stops, after a drain or without one: end every flow
    /// without letting a host peer take a stream that was cut short for a complete one.
    fn finish(&mut self, now: Instant, out: &dyn FrameSink) {
        let _ = (now, out);
    }
}

/// How a drain ended.
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
#[derive(Clone)]
pub struct WorkerContext {
    /// The worker's index, `0..workers`.
    pub index: usize,
    /// How many workers there are.
    pub workers: usize,
    /// A per-process random seed (for hashes a guest must not predict).
    pub seed: u64,
    pub epoch: Epoch,
    /// The largest MTU of any link: the default segment size before a flow's own link says.
    pub mtu: u16,
    /// The gateway's MAC: the source of every frame a worker sends to a guest.
    pub gateway_mac: EthernetAddress,
    /// The worker's counters; handlers count their drops here.
    pub counters: Arc<WorkerCounters>,
    /// Wakes this worker's loop (for the control plane's commands).
    pub notify: Arc<dyn Notify>,
}

impl std::fmt::Debug for WorkerContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerContext")
            .field("index", &self.index)
            .field("workers", &self.workers)
            .field("mtu", &self.mtu)
            .finish_non_exhaustive()
    }
}

/// Builds the handler of each worker, registering its sockets with the worker's registry.
pub type HandlerFactory =
    Arc<dyn Fn(&WorkerContext, &Registry) -> Box<dyn FlowHandler> + Send + Sync>;

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
        Arc::new(|ctx: &WorkerContext, _: &Registry| {
            Box::new(NoForwarder::new(ctx)) as Box<dyn FlowHandler>
        })
    }
}

impl FlowHandler for NoForwarder {
    fn handle_packet(
        &mut self,
        _now: Instant,
        _packet: &FlowFrame,
        _out: &dyn FrameSink,
    ) -> Handled {
        self.counters.count_drop(DropReason::NoForwarder);
        Handled::Here
    }
}

/// One worker's counters, relaxed atomics written by the worker and read by `/stats`.
#[derive(Debug)]
pub struct WorkerCounters {
    /// Frames read from links by this worker.
    rx_frames: AtomicU64,
    /// Frames written to links by this worker.
    tx_frames: AtomicU64,
    /// Flow packets handed to the handler.
    handled: AtomicU64,
    /// Frames this worker handed to another worker (a flow it does not own, a link another
    /// worker serves), and those it received so.
    handoffs_out: AtomicU64,
    handoffs_in: AtomicU64,
    /// Handoffs dropped because the other worker's inbox was full.
    handoffs_dropped: AtomicU64,
    /// TCP (or UDP) super-segments read from links with offloads, and written to them.
    super_in: AtomicU64,
    super_out: AtomicU64,
    /// Super-segments (and partial checksums) finished in software for a receiver without
    /// offloads, and the frames that made.
    finished: AtomicU64,
    finished_frames: AtomicU64,
    /// Polls without sleeping that found something ready, and those that gave up.
    busy_poll_found: AtomicU64,
    busy_poll_gave_up: AtomicU64,
    drops: [AtomicU64; DropReason::COUNT],
}

impl Default for WorkerCounters {
    fn default() -> WorkerCounters {
        WorkerCounters {
            rx_frames: AtomicU64::new(0),
            tx_frames: AtomicU64::new(0),
            handled: AtomicU64::new(0),
            handoffs_out: AtomicU64::new(0),
            handoffs_in: AtomicU64::new(0),
            handoffs_dropped: AtomicU64::new(0),
            super_in: AtomicU64::new(0),
            super_out: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            finished_frames: AtomicU64::new(0),
            busy_poll_found: AtomicU64::new(0),
            busy_poll_gave_up: AtomicU64::new(0),
            drops: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// What the poller said of one of a handler's sockets (edge-triggered: each is news).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Readiness {
    /// Bytes or datagrams arrived.
    pub readable: bool,
    /// Room to write, or the peer stopped reading.
    pub writable: bool,
    /// The peer closed its side, or the socket failed: what is left is read until the end
    /// or the error shows.
    pub closed: bool,
    /// TCP urgent data waits: a read stops short at its mark with more behind it.
    pub urgent: bool,
}

impl Readiness {
    pub fn of(event: &mio::event::Event) -> Readiness {
        Readiness {
            readable: event.is_readable(),
            writable: event.is_writable() || event.is_write_closed(),
            closed: event.is_error() || event.is_read_closed(),
            urgent: event.is_priority(),
        }
    }

    /// Whether a read that comes back short may still leave something to read: only then
    /// must the reader go on until the socket says it would block.
    pub fn short_read_may_leave_more(&self) -> bool {
        self.closed || self.urgent
    }
}

/// Which of a worker's frame counters to bump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerEvent {
    Rx,
    Tx,
    Handled,
    HandoffOut,
    HandoffIn,
    HandoffDropped,
    /// A super-segment read from a link.
    SuperIn,
    /// A super-segment written to a link.
    SuperOut,
    /// A frame finished in software ([`stack::offload::finish`]).
    Finished,
    /// A frame that finishing made.
    FinishedFrame,
    /// A wait polled without sleeping and found something ready.
    BusyPollFound,
    /// A wait polled without sleeping for its whole budget, then slept.
    BusyPollGaveUp,
}

impl WorkerCounters {
    /// Counts one packet dropped for `reason`.
    pub fn count_drop(&self, reason: DropReason) {
        if let Some(n) = self.drops.get(reason.index()) {
            n.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts `n` of `event`.
    pub fn count(&self, event: WorkerEvent, n: u64) {
        let counter = match event {
            WorkerEvent::Rx => &self.rx_frames,
            WorkerEvent::Tx => &self.tx_frames,
            WorkerEvent::Handled => &self.handled,
            WorkerEvent::HandoffOut => &self.handoffs_out,
            WorkerEvent::HandoffIn => &self.handoffs_in,
            WorkerEvent::HandoffDropped => &self.handoffs_dropped,
            WorkerEvent::SuperIn => &self.super_in,
            WorkerEvent::SuperOut => &self.super_out,
            WorkerEvent::Finished => &self.finished,
            WorkerEvent::FinishedFrame => &self.finished_frames,
            WorkerEvent::BusyPollFound => &self.busy_poll_found,
            WorkerEvent::BusyPollGaveUp => &self.busy_poll_gave_up,
        };
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> WorkerStats {
        let mut drops = DropCounters::default();
        for (reason, n) in DropReason::ALL.iter().zip(self.drops.iter()) {
            let n = n.load(Ordering::Relaxed);
            if n > 0 {
                drops.add(*reason, n);
            }
        }
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        WorkerStats {
            rx_frames: load(&self.rx_frames),
            tx_frames: load(&self.tx_frames),
            handled: load(&self.handled),
            handoffs_out: load(&self.handoffs_out),
            handoffs_in: load(&self.handoffs_in),
            handoffs_dropped: load(&self.handoffs_dropped),
            super_in: load(&self.super_in),
            super_out: load(&self.super_out),
            finished: load(&self.finished),
            finished_frames: load(&self.finished_frames),
            busy_poll_found: load(&self.busy_poll_found),
            busy_poll_gave_up: load(&self.busy_poll_gave_up),
            drops,
        }
    }
}

/// A snapshot of one worker's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WorkerStats {
    pub rx_frames: u64,
    pub tx_frames: u64,
    /// Flow packets the worker handed to its handler.
    pub handled: u64,
    pub handoffs_out: u64,
    pub handoffs_in: u64,
    pub handoffs_dropped: u64,
    /// TCP or UDP super-segments read from links with offloads (the guest's kernel sent up
    /// to 64 KiB as one frame), and TCP super-segments written to them.
    pub super_in: u64,
    pub super_out: u64,
    /// Frames with offloads finished in software for a receiver without them (another
    /// guest's link, a guest's UDP super-datagram), and the frames that made.
    pub finished: u64,
    pub finished_frames: u64,
    /// Waits that polled without sleeping first (`--busy-poll`): found something ready
    /// that way, or gave up and slept.
    pub busy_poll_found: u64,
    pub busy_poll_gave_up: u64,
    /// Drops its handler counted.
    pub drops: DropCounters,
}

#[cfg(test)]
mod tests {
    use super::*;
    use stack::ingress::{FlowKey, FlowL4, IpHeader};
    use stack::wire::{EtherType, EthernetRepr, IpProtocol, Ipv4Repr, UdpRepr};
    use std::net::{Ipv4Addr, SocketAddr};

    fn packet() -> FlowFrame {
        let ip = Ipv4Repr {
            src_addr: Ipv4Addr::new(192, 168, 127, 2),
            dst_addr: Ipv4Addr::new(192, 168, 127, 254),
            next_header: IpProtocol::Udp,
            payload_len: 8,
            hop_limit: 64,
            ident: 0,
            dont_frag: false,
            more_frags: false,
            frag_offset: 0,
            dscp: 0,
            ecn: 0,
        };
        FlowFrame {
            frame: Bytes::from_static(b"0123456789"),
            packet: FlowPacket {
                key: FlowKey {
                    protocol: IpProtocol::Udp,
                    guest: SocketAddr::from(([192, 168, 127, 2], 1)),
                    remote: SocketAddr::from(([192, 168, 127, 254], 53)),
                },
                eth: EthernetRepr {
                    src_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
                    dst_addr: EthernetAddress([2, 0, 0, 0, 0, 2]),
                    ethertype: EtherType::Ipv4,
                },
                ip: IpHeader::V4(ip),
                l4: FlowL4::Udp(UdpRepr {
                    src_port: 1,
                    dst_port: 53,
                    payload_len: 0,
                }),
                payload: 2..6,
            },
            link_mtu: 1500,
            link_offloads: LinkOffloads::NONE,
        }
    }

    #[test]
    fn payload_is_a_slice_of_the_frame() {
        assert_eq!(&packet().payload()[..], b"2345");
        let mut bad = packet();
        bad.packet.payload = 4..20;
        assert!(bad.payload().is_empty());
    }

    struct Nothing;
    impl Notify for Nothing {
        fn notify(&self) {}
    }

    #[test]
    fn no_forwarder_counts_drops() {
        let counters = Arc::new(WorkerCounters::default());
        let ctx = WorkerContext {
            index: 0,
            workers: 1,
            seed: 1,
            epoch: Epoch::new(std::time::Instant::now()),
            mtu: 1500,
            gateway_mac: EthernetAddress([2, 0, 0, 0, 0, 9]),
            counters: counters.clone(),
            notify: Arc::new(Nothing),
        };
        let poll = mio::Poll::new().unwrap();
        let mut handler = (NoForwarder::factory())(&ctx, poll.registry());
        struct Sink;
        impl FrameSink for Sink {
            fn send_frame(&self, _: Bytes) -> bool {
                true
            }
        }
        let now = ctx.epoch.instant(std::time::Instant::now());
        for _ in 0..3 {
            assert_eq!(handler.handle_packet(now, &packet(), &Sink), Handled::Here);
        }
        assert_eq!(counters.snapshot().drops.get(DropReason::NoForwarder), 3);
        counters.count(WorkerEvent::HandoffOut, 2);
        assert_eq!(counters.snapshot().handoffs_out, 2);
    }
}
