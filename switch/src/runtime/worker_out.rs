//! A worker's sending half ([`Out`]): the ports it reaches, the switch's answers it caches,
//! and how a frame for a guest gets to its link (written to a TAP queue or a stream by this
//! thread, queued for a link's own threads, or handed to the worker that serves it).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use forwarder::{FrameSink, WorkerCounters, WorkerEvent};
use stack::offload::LinkOffloads;
use stack::time::Instant;
use stack::wire::{EthernetAddress, EthernetFrame, EthernetRepr, VirtioNetRepr};

use super::super::fabric::{Fabric, FrameHandoff};
use super::super::mcast::Route;
use super::super::stream_link::StreamConn;
use super::{Fast, TapQueue};
use crate::forward::Decision;
use crate::mac_table::PortId;
use crate::port::{Egress, GATEWAY_PORT, PortCounters};

/// How often a source address seen again on the same port is refreshed in the shared table.
const REFRESH: Duration = Duration::from_secs(1);
/// Addresses each cache holds at most (a guest churning addresses cannot grow them).
const CACHE_MAX: usize = 4096;

pub(super) enum LocalPort {
    Tap {
        link: usize,
        mtu: u16,
        counters: Arc<PortCounters>,
        /// What the queue's kernel does for what we send (a virtio-net header: checksums
        /// and super-segments).
        offloads: LinkOffloads,
    },
    Channel {
        egress: Egress,
        mtu: u16,
    },
    Stream {
        link: usize,
        mtu: u16,
        /// What the stream takes: a virtio-net header where one was agreed.
        offloads: LinkOffloads,
    },
    Remote {
        owner: usize,
        mtu: u16,
    },
}

impl LocalPort {
    pub(super) fn mtu(&self) -> u16 {
        match self {
            LocalPort::Tap { mtu, .. }
            | LocalPort::Channel { mtu, .. }
            | LocalPort::Stream { mtu, .. }
            | LocalPort::Remote { mtu, .. } => *mtu,
        }
    }

    /// What the link does for what we send: TAP queues opened with a virtio-net header and
    /// streams that agreed on one ([`crate::link::offer`]) take super-segments and partial
    /// checksums; links served by threads of their own and other workers' links get
    /// finished frames.
    pub(super) fn offloads(&self) -> LinkOffloads {
        match self {
            LocalPort::Tap { offloads, .. } | LocalPort::Stream { offloads, .. } => *offloads,
            LocalPort::Channel { .. } | LocalPort::Remote { .. } => LinkOffloads::NONE,
        }
    }
}

/// The switch's answers this worker remembers.
#[derive(Default)]
pub(super) struct L2Cache {
    /// The table's generation the destinations were looked up at.
    pub(super) generation: u64,
    /// Destination address → port.
    pub(super) dst: HashMap<EthernetAddress, PortId, Fast>,
    /// Source address → the port it was last learned on, and when.
    pub(super) src: HashMap<EthernetAddress, (PortId, Instant), Fast>,
}

/// The frame-sending half of a worker: its ports and links. The flow handler and the gateway
/// send through it ([`FrameSink`]) while the worker holds them.
pub(super) struct Out {
    pub(super) fabric: Arc<Fabric>,
    pub(super) ports: HashMap<PortId, LocalPort, Fast>,
    pub(super) links: slab::Slab<TapQueue>,
    pub(super) streams: slab::Slab<StreamConn>,
    /// Streams with frames queued this turn, written at its end.
    pub(super) to_flush: RefCell<Vec<usize>>,
    pub(super) cache: RefCell<L2Cache>,
    pub(super) counters: Arc<WorkerCounters>,
    /// Where frames for guests are built ([`FrameSink::send_with`]).
    pub(super) scratch: RefCell<Vec<u8>>,
    /// Where frames with offloads are finished for a link without them.
    pub(super) finish_scratch: RefCell<Vec<u8>>,
    /// Decisions the caches took, not yet counted in the switch's own counters.
    pub(super) fast_unicast: Cell<u64>,
    pub(super) fast_flooded: Cell<u64>,
}

impl Out {
    pub(super) fn now(&self) -> Instant {
        self.fabric.epoch.instant(std::time::Instant::now())
    }

    /// The MTU of the link behind `port`, and what it does for what we send.
    pub(super) fn link_of(&self, port: PortId) -> (u16, LinkOffloads) {
        self.ports
            .get(&port)
            .map_or((1500, LinkOffloads::NONE), |p| (p.mtu(), p.offloads()))
    }

    /// The switch's decision for a frame from `ingress`: from the caches when they know the
    /// source (seen on this port within [`REFRESH`]) and the destination (the gateway, or an
    /// address looked up since the table last changed); from the shared table otherwise.
    pub(super) fn decide(&self, now: Instant, ingress: PortId, frame: &[u8]) -> Decision {
        let eth = EthernetFrame::new_checked(frame).and_then(|f| EthernetRepr::parse(&f));
        if let Ok(eth) = eth
            && !eth.dst_addr.is_multicast()
        {
            let fresh = {
                let cache = self.cache.borrow();
                cache.src.get(&eth.src_addr).is_some_and(|&(port, at)| {
                    port == ingress && now.saturating_duration_since(at) < REFRESH
                })
            };
            if fresh {
                let to = if eth.dst_addr == self.fabric.gateway_mac {
                    Some(GATEWAY_PORT)
                } else {
                    self.cached_dst(eth.dst_addr)
                };
                if let Some(to) = to
                    && to != ingress
                {
                    self.fast_unicast.set(self.fast_unicast.get() + 1);
                    return Decision::Unicast(to);
                }
            }
        }
        let (decision, generation) = self
            .fabric
            .with_switch(|s| (s.handle_frame(now, ingress, frame), s.generation()));
        if !matches!(decision, Decision::Drop(_))
            && let Ok(eth) = eth
        {
            let mut cache = self.cache.borrow_mut();
            if cache.src.len() >= CACHE_MAX {
                cache.src.clear();
            }
            cache.src.insert(eth.src_addr, (ingress, now));
            if let Decision::Unicast(to) = decision
                && cache.generation == generation
                && cache.dst.len() < CACHE_MAX
            {
                cache.dst.insert(eth.dst_addr, to);
            }
        }
        decision
    }

    /// The port of `dst` if the destination cache knows it and the table has not changed.
    pub(super) fn cached_dst(&self, dst: EthernetAddress) -> Option<PortId> {
        let generation = self.fabric.generation();
        let mut cache = self.cache.borrow_mut();
        if cache.generation != generation {
            cache.dst.clear();
            cache.generation = generation;
            return None;
        }
        cache.dst.get(&dst).copied()
    }

    /// The port of `dst`, from the cache or the table.
    pub(super) fn lookup(&self, dst: EthernetAddress) -> Option<PortId> {
        if let Some(port) = self.cached_dst(dst) {
            return Some(port);
        }
        let now = self.now();
        let (port, generation) = self
            .fabric
            .with_switch(|s| (s.lookup(now, dst), s.generation()));
        let port = port?;
        let mut cache = self.cache.borrow_mut();
        if cache.generation == generation && cache.dst.len() < CACHE_MAX {
            cache.dst.insert(dst, port);
        }
        Some(port)
    }

    /// Hands a frame on its way out to the capture, if there is one: another handle on a frame
    /// that has its own allocation, a copy of one in the transmit buffer.
    pub(super) fn capture(&self, frame: &OutFrame<'_>) {
        match frame {
            OutFrame::Owned(bytes) => {
                if let Some(pcap) = &self.fabric.pcap {
                    pcap.capture_shared(bytes);
                }
            }
            OutFrame::Built(slice) => self.capture_copy(slice),
        }
    }

    /// Hands a copy of `frame` to the capture, if there is one: for a frame in a buffer that
    /// is reused (the transmit buffer), or in the receive arena, which a clone would keep from
    /// being reused until the capture's writer got to it.
    pub(super) fn capture_copy(&self, frame: &[u8]) {
        if let Some(pcap) = &self.fabric.pcap {
            pcap.capture(frame);
        }
    }

    /// Sends `frame` to the guest behind `port`: written to its TAP queue, queued for its
    /// link's threads, or handed to the worker that serves it. `header` says what is left to
    /// finish in the frame (a partial checksum, a super-segment): a TAP queue with a
    /// virtio-net header takes it with the frame; for any other link it is finished here
    /// first ([`Out::finish_for`]).
    pub(super) fn transmit(
        &self,
        port: PortId,
        frame: OutFrame<'_>,
        header: &VirtioNetRepr,
    ) -> bool {
        match self.ports.get(&port) {
            Some(LocalPort::Tap { link, counters, .. }) => {
                let Some(queue) = self.links.get(*link).filter(|q| !q.dead) else {
                    counters.tx(frame.as_slice().len(), false);
                    return false;
                };
                if !queue.vnet && header.needs_finishing() {
                    return self.finish_for(port, &frame, header);
                }
                let bytes = frame.as_slice();
                let sent = if queue.vnet {
                    queue.tap.write_vnet(&header.to_bytes(), bytes).is_ok()
                } else {
                    queue.tap.write_frame(bytes).is_ok()
                };
                counters.tx(bytes.len(), sent);
                if sent {
                    self.counters.count(WorkerEvent::Tx, 1);
                    if header.is_gso() {
                        self.counters.count(WorkerEvent::SuperOut, 1);
                    }
                }
                sent
            }
            Some(LocalPort::Stream { link, .. }) => {
                let Some(conn) = self.streams.get(*link) else {
                    return false;
                };
                let bytes = frame.as_slice();
                if header.needs_finishing() && !conn.takes_unfinished(bytes.len()) {
                    return self.finish_for(port, &frame, header);
                }
                let sent = conn.queue(bytes, header);
                if sent {
                    self.counters.count(WorkerEvent::Tx, 1);
                    if header.is_gso() {
                        self.counters.count(WorkerEvent::SuperOut, 1);
                    }
                    let mut to_flush = self.to_flush.borrow_mut();
                    if !to_flush.contains(link) {
                        to_flush.push(*link);
                    }
                }
                sent
            }
            Some(_) if header.needs_finishing() => self.finish_for(port, &frame, header),
            Some(LocalPort::Channel { egress, .. }) => egress.push(frame.into_bytes()),
            Some(LocalPort::Remote { owner, .. }) => self.fabric.hand(
                Some(&self.counters),
                *owner,
                FrameHandoff::Egress {
                    port,
                    frame: frame.into_bytes(),
                },
            ),
            None => false,
        }
    }

    /// Sends `frame` to every port but `except` (and the gateway's).
    pub(super) fn flood(&self, except: PortId, frame: &OutFrame<'_>, header: &VirtioNetRepr) {
        for &port in self.ports.keys() {
            if port != except {
                self.transmit(port, frame.share(), header);
            }
        }
    }

    /// A frame from the gateway's side: switched to its destination's port (flooded if that
    /// is a group or unknown), as the switch would a frame from the gateway's port.
    pub(super) fn switch_out(&self, frame: OutFrame<'_>, header: &VirtioNetRepr) -> bool {
        self.capture(&frame);
        let bytes = frame.as_slice();
        let Some(dst) = bytes.get(..6).and_then(|d| <[u8; 6]>::try_from(d).ok()) else {
            return false;
        };
        let dst = EthernetAddress(dst);
        let to = if dst.is_multicast() {
            None
        } else {
            self.lookup(dst)
        };
        match to {
            Some(port) => {
                self.fast_unicast.set(self.fast_unicast.get() + 1);
                self.transmit(port, frame, header)
            }
            None => {
                self.fast_flooded.set(self.fast_flooded.get() + 1);
                match self.group_route(self.now(), GATEWAY_PORT, bytes) {
                    Route::Flood => self.flood(GATEWAY_PORT, &frame, header),
                    Route::Nowhere => {}
                    Route::Ports(to) => {
                        for to in to {
                            self.transmit(to, frame.share(), header);
                        }
                    }
                }
                true
            }
        }
    }

    /// Where a frame the switch would flood goes: to a group's members when IGMP/MLD
    /// snooping knows them, else everywhere.
    pub(super) fn group_route(&self, now: Instant, ingress: PortId, frame: &[u8]) -> Route {
        match &self.fabric.multicast {
            Some(multicast) if frame.first().is_some_and(|b| b & 1 == 1) => {
                multicast.route(now, ingress, frame)
            }
            _ => Route::Flood,
        }
    }
}

/// A copy of `frame` in a buffer of its own, for a frame that leaves this worker's call stack
/// (another worker's inbox, the DNS service's queue): a slice of the receive arena kept
/// there would keep the whole arena from being reused.
pub(super) fn unpinned(frame: &Bytes) -> Bytes {
    Bytes::copy_from_slice(frame)
}

/// A frame on its way out: one of its own, or one built in a worker's buffer (copied only if
/// it must outlive the call: a link with threads of its own, another worker).
pub(super) enum OutFrame<'a> {
    Owned(Bytes),
    Built(&'a [u8]),
}

impl OutFrame<'_> {
    pub(super) fn as_slice(&self) -> &[u8] {
        match self {
            OutFrame::Owned(b) => b,
            OutFrame::Built(s) => s,
        }
    }

    pub(super) fn into_bytes(self) -> Bytes {
        match self {
            OutFrame::Owned(b) => b,
            OutFrame::Built(s) => Bytes::copy_from_slice(s),
        }
    }

    /// Another handle on the same frame (flooding).
    pub(super) fn share(&self) -> OutFrame<'_> {
        match self {
            OutFrame::Owned(b) => OutFrame::Owned(b.clone()),
            OutFrame::Built(s) => OutFrame::Built(s),
        }
    }
}

impl FrameSink for Out {
    fn send_frame(&self, frame: Bytes) -> bool {
        self.switch_out(OutFrame::Owned(frame), &VirtioNetRepr::PLAIN)
    }

    /// Built in this worker's one transmit buffer, which grows to the largest frame once and is
    /// never cleared (the builder writes every byte), then written straight to the link.
    fn send_with(&self, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> bool {
        self.build_and_send(len, &VirtioNetRepr::PLAIN, fill)
    }

    /// As [`Out::send_with`], the frame going with its virtio-net header: to a TAP queue with
    /// offloads as it is, finished on its way to any other link.
    fn send_offloaded(
        &self,
        len: usize,
        header: &VirtioNetRepr,
        fill: &mut dyn FnMut(&mut [u8]),
    ) -> bool {
        self.build_and_send(len, header, fill)
    }
}

impl Out {
    pub(super) fn build_and_send(
        &self,
        len: usize,
        header: &VirtioNetRepr,
        fill: &mut dyn FnMut(&mut [u8]),
    ) -> bool {
        let Ok(mut buf) = self.scratch.try_borrow_mut() else {
            // Only a builder sending from inside another's fill could get here.
            let mut own = vec![0u8; len];
            fill(&mut own);
            return self.switch_out(OutFrame::Owned(Bytes::from(own)), header);
        };
        if buf.len() < len {
            buf.resize(len, 0);
        }
        let Some(frame) = buf.get_mut(..len) else {
            return false;
        };
        fill(frame);
        self.switch_out(OutFrame::Built(frame), header)
    }
}
