//! The gateway thread: the gateway's services, DHCP timers, and the dispatch of flows and of
//! DNS queries (to the DNS thread, `dns_thread.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, select};
use forwarder::{DispatchError, Dispatcher, FlowFrame};
use stack::ingress::DropReason;
use stack::time::Epoch;

use super::dns_thread::Input as DnsInput;
use super::{GatewayStats, Query};
use crate::gateway::{Gateway, Outcome};
use crate::port::Port;

/// How long the thread sleeps when no timer is due.
const IDLE_WAIT: Duration = Duration::from_secs(60);
/// Frames handled per wake-up before the thread looks at its other inputs again.
const BATCH: usize = 256;

pub(super) struct GatewayThread {
    gateway: Gateway,
    port: Arc<Port>,
    dispatcher: Dispatcher,
    queries: Receiver<Query<GatewayStats>>,
    stop: Receiver<()>,
    epoch: Epoch,
    dns: crossbeam_channel::Sender<DnsInput>,
    dns_queue_full: Arc<AtomicU64>,
    neighbours: Option<super::NeighbourHook>,
}

impl GatewayThread {
    pub(super) fn new(
        gateway: Gateway,
        port: Arc<Port>,
        dispatcher: Dispatcher,
        queries: Receiver<Query<GatewayStats>>,
        stop: Receiver<()>,
        epoch: Epoch,
        dns: (crossbeam_channel::Sender<DnsInput>, Arc<AtomicU64>),
    ) -> GatewayThread {
        GatewayThread {
            gateway,
            port,
            dispatcher,
            queries,
            stop,
            epoch,
            dns: dns.0,
            dns_queue_full: dns.1,
            neighbours: None,
        }
    }

    /// Tells `hook` of every guest the gateway sees in ARP.
    pub(super) fn with_neighbours(mut self, hook: Option<super::NeighbourHook>) -> GatewayThread {
        self.neighbours = hook;
        self
    }

    fn now(&self) -> stack::time::Instant {
        self.epoch.instant(std::time::Instant::now())
    }

    pub(super) fn run(mut self) {
        let port = self.port.clone();
        loop {
            let now = self.now();
            let timeout = self
                .gateway
                .poll_timeout()
                .map_or(IDLE_WAIT, |at| at.saturating_duration_since(now));
            select! {
                recv(port.egress()) -> msg => match msg {
                    Ok(frame) => {
                        self.frame(frame);
                        for _ in 1..BATCH {
                            match port.egress().try_recv() {
                                Ok(next) => self.frame(next),
                                Err(_) => break,
                            }
                        }
                    }
                    // The switch has stopped.
                    Err(_) => return,
                },
                recv(self.queries) -> msg => {
                    if let Ok(reply) = msg {
                        let _ = reply.try_send(self.stats());
                    }
                },
                recv(self.stop) -> _ => return,
                default(timeout) => {}
            }
            let now = self.now();
            if self.gateway.poll_timeout().is_some_and(|at| at <= now) {
                self.gateway.handle_timeout(now);
            }
            // Errors about datagrams given up, by a timer or while frames were handled; they
            // reach the guest through the port replies take (a full switch queue drops them,
            // counted as the port's rx_dropped).
            while let Some(frame) = self.gateway.poll_transmit() {
                self.port.send(frame);
            }
        }
    }

    fn frame(&mut self, frame: bytes::Bytes) {
        let now = self.now();
        let mut frame = frame;
        let mut outcome = self.gateway.handle_frame(now, &frame);
        // A completed datagram is handled like a frame that just arrived; it is no fragment,
        // so this happens at most once.
        if let Outcome::Reassembled(whole) = outcome {
            outcome = self.gateway.handle_reassembled(now, &whole);
            frame = whole;
        }
        if let Some((ip, mac)) = self.gateway.take_neighbour()
            && let Some(hook) = &self.neighbours
        {
            hook(ip.into(), mac);
        }
        match outcome {
            // A full switch queue drops it; the port's rx_dropped counts that.
            Outcome::Reply(reply) => {
                self.port.send(reply);
            }
            Outcome::Replies(replies) => {
                for reply in replies {
                    self.port.send(reply);
                }
            }
            Outcome::Flow(packet) => {
                if let Err(DispatchError::QueueFull | DispatchError::Stopped) =
                    self.dispatcher.dispatch(FlowFrame { frame, packet })
                {
                    self.gateway.count_drop(DropReason::WorkerQueueFull);
                }
            }
            Outcome::Dns(query) => {
                if self.dns.try_send(DnsInput::Query(query)).is_err() {
                    self.dns_queue_full.fetch_add(1, Ordering::Relaxed);
                }
            }
            Outcome::DnsTcp(packet) => {
                if self
                    .dns
                    .try_send(DnsInput::Tcp(Box::new(FlowFrame { frame, packet })))
                    .is_err()
                {
                    self.dns_queue_full.fetch_add(1, Ordering::Relaxed);
                }
            }
            Outcome::Held | Outcome::Reassembled(_) | Outcome::Dropped(_) => {}
        }
    }

    fn stats(&self) -> GatewayStats {
        GatewayStats {
            counters: self.gateway.counters(),
            drops: *self.gateway.drops(),
            dhcp: self.gateway.dhcp_stats(),
            leases: self.gateway.leases(),
            reassembly: self.gateway.frag_stats(),
            dhcpv6: self.gateway.dhcpv6_stats(),
        }
    }
}
