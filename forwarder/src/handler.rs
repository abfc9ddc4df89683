//! [`Forwarder`]: the [`FlowHandler`] of one worker. It owns that worker's flow tables (TCP,
//! UDP, ICMP echo), its port forwards and every host socket of them, all registered with the
//! worker's own mio registry: the worker's loop hands back their readiness
//! ([`FlowHandler::ready`]) and wakes for the control plane's commands (a new forward, a gone
//! guest).
//! At exit its TCP flows are drained and finished as the TCP table's `drain` module
//! describes.

use std::collections::HashSet;
use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crossbeam_channel::Receiver;
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use stack::ingress::{FlowKey, FlowL4};
use stack::time::Instant;
use stack::wire::{EthernetAddress, IpProtocol};

use crate::budget::Budget;
use crate::config::Config;
use crate::control::{Command, Control, MAX_NEIGHBOURS, Protocol};
use crate::directory::{Directory, Taken};
use crate::frame::{Built, Framer};
use crate::icmp::IcmpTable;
use crate::mcast::McastTable;
use crate::nat::Nat;
use crate::stats::Counters;
use crate::tcp::TcpTable;
use crate::trim::{Gate, Owed};
use crate::udp::UdpTable;
pub(crate) use crate::worker::KIND_SHIFT;
use crate::worker::{
    FlowFrame, FlowHandler, FrameSink, Handled, HandlerFactory, NoForwarder, Readiness,
    WorkerContext,
};

/// Token kinds, in the top byte of a token (below [`crate::worker::LOOP_KINDS`]; 0 is the
/// loop's waker).
pub(crate) const KIND_UDP: usize = 1;
pub(crate) const KIND_ICMP: usize = 2;
pub(crate) const KIND_TCP: usize = 3;
pub(crate) const KIND_TCP_LISTEN: usize = 4;
pub(crate) const KIND_UDP_LISTEN: usize = 5;
pub(crate) const KIND_MCAST: usize = 6;

/// How often idle UDP mappings and expired echo requests are looked for.
const SWEEP: Duration = Duration::from_secs(1);

/// What every protocol table uses: the poller's registry, NAT, the frame builder, counters.
pub(crate) struct Shared {
    pub registry: Registry,
    pub nat: Nat,
    pub framer: Framer,
    pub counters: Arc<Counters>,
    pub config: Arc<Config>,
    pub control: Arc<Control>,
    /// Bounds shared with every other worker.
    pub budget: Arc<Budget>,
    /// Which worker owns which flow; `None` with one worker.
    directory: Option<Arc<Directory>>,
    pub index: usize,
    pub seed: u64,
    /// The MTU of a guest whose link is not known yet (datagrams of inbound forwards).
    pub default_mtu: u16,
    next_id: usize,
    /// Guest addresses (and their MACs) this worker has told the control plane about.
    known: crate::FastMap<IpAddr, EthernetAddress>,
    /// Refused and failed flows, told at debug level.
    pub flow_log: crate::events::FlowLog,
}

impl Shared {
    /// A fresh token of `kind`.
    pub(crate) fn token(&mut self, kind: usize) -> Token {
        self.next_id = (self.next_id + 1) & ((1 << KIND_SHIFT) - 1);
        Token((kind << KIND_SHIFT) | self.next_id)
    }

    /// The worker that owns `key` if it is not this one: a packet of it is handed there.
    pub(crate) fn elsewhere(&self, key: &FlowKey) -> Option<usize> {
        let owner = self.directory.as_ref()?.owner(key)?;
        (owner != self.index).then_some(owner)
    }

    /// Records that this worker owns `key`; false if another worker does.
    pub(crate) fn claim(&self, key: FlowKey) -> bool {
        match &self.directory {
            Some(d) => d.claim(key, self.index).map_err(|Taken(_)| ()).is_ok(),
            None => true,
        }
    }

    /// Forgets this worker's ownership of `key`.
    pub(crate) fn release(&self, key: &FlowKey) {
        if let Some(d) = &self.directory {
            d.release(key, self.index);
        }
    }

    pub(crate) fn register(&self, socket: &impl AsRawFd, token: Token) -> io::Result<()> {
        let fd = socket.as_raw_fd();
        self.registry.register(
            &mut SourceFd(&fd),
            token,
            Interest::READABLE | Interest::WRITABLE | Interest::PRIORITY,
        )
    }

    pub(crate) fn deregister_fd(&self, socket: &impl AsRawFd) {
        let fd = socket.as_raw_fd();
        let _ = self.registry.deregister(&mut SourceFd(&fd));
    }

    /// Sends a frame to the guests, counting it.
    pub(crate) fn send<F: FnOnce(&mut [u8])>(&self, out: &dyn FrameSink, frame: Option<Built<F>>) {
        let Some(frame) = frame else { return };
        let len = frame.len() as u64;
        if frame.send(out) {
            self.count_sent(1, len);
        } else {
            Counters::bump(&self.counters.frames_to_guest_dropped);
        }
    }

    /// Sends a frame of its own to the guests, counting it.
    pub(crate) fn send_bytes(&self, out: &dyn FrameSink, frame: Option<bytes::Bytes>) {
        let Some(frame) = frame else { return };
        let len = frame.len() as u64;
        if out.send_frame(frame) {
            self.count_sent(1, len);
        } else {
            Counters::bump(&self.counters.frames_to_guest_dropped);
        }
    }

    /// Counts `frames` (of `bytes` in all) sent to the guests.
    pub(crate) fn count_sent(&self, frames: usize, bytes: u64) {
        Counters::add(&self.counters.frames_to_guest, frames as u64);
        Counters::add(&self.counters.bytes_to_guest, bytes);
    }

    /// Remembers where a guest is, for forwards into it: a new address, or a known one
    /// that moved to another MAC (a guest restarted with a new card). Bounded by
    /// [`MAX_NEIGHBOURS`], since the source addresses are the guests' to choose.
    pub(crate) fn learn(&mut self, ip: IpAddr, mac: EthernetAddress) {
        if self.known.get(&ip) == Some(&mac) {
            return;
        }
        if self.known.len() >= MAX_NEIGHBOURS && !self.known.contains_key(&ip) {
            Counters::bump(&self.counters.neighbours_full);
            return;
        }
        self.known.insert(ip, mac);
        if !self.control.learn_neighbour(ip, mac) {
            Counters::bump(&self.counters.neighbours_full);
        }
    }

    /// Asks the link for the MAC of a guest address an inbound forward goes to, from the
    /// gateway's address `ours` of the same family: an ARP request, or a neighbour
    /// solicitation for an IPv6 address. Counted either way.
    pub(crate) fn ask_for(&self, out: &dyn FrameSink, ours: IpAddr, target: IpAddr) {
        match (target, ours) {
            (IpAddr::V4(target), IpAddr::V4(ours)) => {
                Counters::bump(&self.counters.arp_requests);
                self.send(out, Some(self.framer.arp_request(ours, target)));
            }
            (IpAddr::V6(target), IpAddr::V6(ours)) => {
                Counters::bump(&self.counters.neighbor_solicits);
                self.send(out, Some(self.framer.neighbor_solicit(ours, target)));
            }
            _ => {}
        }
    }

    /// A port of `ours` for a flow into `guest` that no flow uses: not here (`used` says
    /// which ports this worker's table holds) and not on another worker.
    pub(crate) fn pick_port(
        &self,
        protocol: IpProtocol,
        guest: std::net::SocketAddr,
        ours: IpAddr,
        salt: u64,
        used: impl Fn(u16) -> bool,
    ) -> Option<u16> {
        let (first, last) = (*crate::INBOUND_PORTS.start(), *crate::INBOUND_PORTS.end());
        let span = u64::from(last - first) + 1;
        let mut x = salt ^ self.seed.rotate_left(17);
        for _ in 0..4096 {
            x = x
                .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                .wrapping_add(0x2545_f491);
            let port = first + ((x >> 33) % span) as u16;
            let key = FlowKey {
                protocol,
                guest,
                remote: std::net::SocketAddr::new(ours, port),
            };
            if !used(port) && self.elsewhere(&key).is_none() {
                return Some(port);
            }
        }
        None
    }
}

/// One worker's forwarder. See the module docs.
pub struct Forwarder {
    commands: Receiver<Command>,
    shared: Shared,
    udp: UdpTable,
    icmp: IcmpTable,
    tcp: TcpTable,
    /// The host side of the multicast relay (only the relay worker gets its commands).
    mcast: McastTable,
    next_sweep: Instant,
    /// What this worker owes the system of its freed memory, and the gate every worker's
    /// trims pass (see [`crate::trim`]).
    owed: Owed,
    trims: Arc<Gate>,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("worker", &self.shared.index)
            .finish_non_exhaustive()
    }
}

impl Forwarder {
    /// A factory of every worker's forwarder, with `config`, registered with `control`. A
    /// worker whose registry cannot be shared drops flows.
    pub fn factory(config: Config, control: Arc<Control>) -> HandlerFactory {
        let config = Arc::new(config);
        Arc::new(move |ctx: &WorkerContext, registry: &Registry| {
            match Forwarder::new(ctx, registry, config.clone(), control.clone()) {
                Ok(f) => Box::new(f) as Box<dyn FlowHandler>,
                Err(e) => {
                    tracing::error!(worker = ctx.index, error = %e, "cannot start the forwarder");
                    Box::new(NoForwarder::new(ctx)) as Box<dyn FlowHandler>
                }
            }
        })
    }

    pub fn new(
        ctx: &WorkerContext,
        registry: &Registry,
        config: Arc<Config>,
        control: Arc<Control>,
    ) -> io::Result<Forwarder> {
        let counters = Arc::new(Counters::default());
        let commands = control.register(ctx.index, ctx.notify.clone(), counters.clone());
        control.learn_config(&config);
        let workers = ctx.workers.max(1);
        let shared = Shared {
            registry: registry.try_clone()?,
            nat: Nat::new(&config),
            framer: Framer::new(ctx.gateway_mac),
            counters,
            config: config.clone(),
            budget: control.budget(&config),
            directory: (workers > 1).then(|| control.directory()),
            control,
            index: ctx.index,
            default_mtu: ctx.mtu,
            seed: ctx.seed,
            next_id: 0,
            known: crate::FastMap::default(),
            flow_log: crate::events::FlowLog::default(),
        };
        let now = ctx.epoch.instant(std::time::Instant::now());
        Ok(Forwarder {
            commands,
            udp: UdpTable::new(&config),
            icmp: IcmpTable::new(&config, workers),
            tcp: TcpTable::new(&config, ctx.mtu),
            mcast: McastTable::new(&config, ctx.mtu),
            trims: shared.control.trim_gate(),
            shared,
            next_sweep: now + SWEEP,
            owed: Owed::default(),
        })
    }

    fn command(&mut self, command: Command, now: Instant, out: &dyn FrameSink) {
        match command {
            Command::Listen {
                id,
                protocol,
                socket,
                remote,
            } => match protocol {
                Protocol::Tcp | Protocol::Unix => {
                    self.tcp.listen(&mut self.shared, id, socket, remote);
                }
                Protocol::Udp => self.udp.listen(&mut self.shared, id, socket, remote),
            },
            Command::Unlisten { id } => {
                self.tcp.unlisten(&self.shared, id);
                self.udp.unlisten(&self.shared, id);
            }
            Command::GuestGone { macs } => {
                let macs: HashSet<EthernetAddress> = macs.iter().copied().collect();
                let gone = self.tcp.remove_guest(&mut self.shared, &macs, now)
                    + self.udp.remove_guest(&mut self.shared, &macs)
                    + self.icmp.remove_guest(&mut self.shared, &macs);
                Counters::add(&self.shared.counters.flows_guest_gone, gone as u64);
            }
            Command::Group { group, joined } => {
                if joined {
                    self.mcast.join(&mut self.shared, group, now);
                } else {
                    self.mcast.leave(&mut self.shared, group);
                }
            }
        }
        let _ = out;
    }
}

impl FlowHandler for Forwarder {
    fn handle_packet(&mut self, now: Instant, packet: &FlowFrame, out: &dyn FrameSink) -> Handled {
        let guest_ip = packet.packet.key.guest.ip();
        if !self.shared.nat.source_allowed(guest_ip) {
            Counters::bump(&self.shared.counters.foreign_source);
            return Handled::Here;
        }
        self.shared.learn(guest_ip, packet.packet.eth.src_addr);
        let elsewhere = match packet.packet.l4 {
            FlowL4::Tcp(_) => self.tcp.handle(&mut self.shared, now, packet, out),
            FlowL4::Udp(_) => self.udp.handle(&mut self.shared, now, packet, out),
            FlowL4::IcmpEcho { request: true, .. } => {
                self.icmp.handle(&mut self.shared, now, packet, out);
                None
            }
            _ => {
                Counters::bump(&self.shared.counters.unsupported);
                None
            }
        };
        elsewhere.map_or(Handled::Here, Handled::Elsewhere)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let sweep = Some(self.next_sweep);
        [sweep, self.tcp.poll_timeout()].into_iter().flatten().min()
    }

    fn handle_timeout(&mut self, now: Instant, out: &dyn FrameSink) {
        self.tcp.handle_timeout(&mut self.shared, now, out);
        if now >= self.next_sweep {
            self.udp.sweep(&mut self.shared, now);
            self.icmp.sweep(&mut self.shared, now);
            let held = self.tcp.sweep_buffers();
            let held = u64::try_from(held).unwrap_or(u64::MAX);
            self.shared
                .counters
                .tcp_buffer_bytes
                .store(held, Ordering::Relaxed);
            // A burst's tables shrink back. The directory is shared: one worker shrinks it
            // for all.
            let directory = self.shared.index == 0
                && self.shared.directory.as_ref().is_some_and(|d| d.shrink());
            let shrank = self.tcp.shrink() | self.udp.shrink() | self.icmp.shrink() | directory;
            // What the tables and the flows freed goes back to the system, by the policy of
            // `trim`: after a shrink, a step of buffers freed, or going quiet; rate-limited.
            let freed = self.tcp.take_freed();
            let idle = self.tcp.is_empty();
            if self.owed.sweep(&self.trims, now, freed, shrank, idle) {
                crate::sys::release_free_memory();
                Counters::bump(&self.shared.counters.memory_trims);
            }
            self.next_sweep = now + SWEEP;
        }
    }

    fn ready(&mut self, now: Instant, token: Token, readiness: Readiness, out: &dyn FrameSink) {
        match token.0 >> KIND_SHIFT {
            KIND_UDP => self.udp.ready(&mut self.shared, now, token, out),
            KIND_UDP_LISTEN => self.udp.ready_listener(&mut self.shared, now, token, out),
            KIND_ICMP => self.icmp.ready(&mut self.shared, now, token, out),
            KIND_TCP => self.tcp.ready(&mut self.shared, now, token, readiness, out),
            KIND_TCP_LISTEN => self.tcp.accept(&mut self.shared, now, token, out),
            KIND_MCAST => self.mcast.ready(&mut self.shared, token, out),
            _ => {}
        }
    }

    fn begin_drain(&mut self, now: Instant, out: &dyn FrameSink) {
        self.tcp.begin_drain(&mut self.shared, now, out);
    }

    fn drained(&self) -> bool {
        self.tcp.drained()
    }

    fn finish(&mut self, now: Instant, out: &dyn FrameSink) {
        self.tcp.finish(&mut self.shared, now, out);
    }

    fn commands(&mut self, now: Instant, out: &dyn FrameSink) {
        while let Ok(command) = self.commands.try_recv() {
            self.command(command, now, out);
        }
    }
}

#[cfg(test)]
#[path = "handler_tests.rs"]
mod tests;
