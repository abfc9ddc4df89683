//! The running data plane: one worker thread per core, each running frames from its links
//! to its host sockets and back in one call stack ([`worker`]), and the DNS service.
//!
//! [`Runtime::start`] starts, from a [`RuntimeConfig`]:
//! - **the workers** ([`worker`]), each with one mio poller over its links and its flows'
//!   host sockets. Each owns a [`Gateway`] (ARP, ICMP echo, NDP and IP reassembly per worker;
//!   the DHCP server's leases are shared) and a flow handler from
//!   [`RuntimeConfig::forwarder`] ([`forwarder::NoForwarder`] until one is plugged in). What
//!   they share — the switch's MAC table, the ports, their inboxes, the capture — is the
//!   [`fabric`], touched off the common path only.
//! - **the DNS thread** ([`forwarder::dns_service`]), owning the [`dns::Resolver`] and the
//!   upstream clients ([`forwarder::dns_upstream`]): workers hand it every query to the
//!   gateway's port 53 over a bounded queue; it answers local zones ([`Runtime::dns_zones`],
//!   shared with the control API) and forwards the rest to [`DnsConfig::upstreams`]; its
//!   answers go back through a worker (`fabric::GatewayTx`, its
//!   [`ToGuests`](forwarder::dns_service::ToGuests)). This file spawns it and wires its
//!   queues; `/stats` asks it for its counters.
//!
//! TAP devices are served inside the workers (one queue per worker, attached through
//! [`Runtime::attacher`] as [`Switchboard::attach_tap`](crate::port::Switchboard::attach_tap));
//! every other link gets ports from the same attacher, each served by one worker. Every
//! queue is bounded and a full one drops and counts. [`Runtime::stats`] and
//! [`Runtime::leases`] gather a snapshot. [`Runtime::drain`] winds the flows down for exit
//! while the links still run: what guests were acknowledged reaches their hosts, within a
//! deadline. [`Runtime::shutdown`] stops and joins every thread (each worker finishing its
//! flows last); it is idempotent and runs on drop.
//!
//! The configuration is in `runtime/config.rs` ([`RuntimeConfig`]), the statistics and the
//! handle that gathers them in `runtime/stats.rs` ([`Stats`], [`RuntimeHandle`]); this file
//! starts, drains and stops the threads.
//!
//! Time: one [`Epoch`], taken at start, converts between `std::time::Instant` (the DHCP
//! server's) and [`stack::time::Instant`] (everything else's).

mod busy_poll;
mod config;
mod fabric;
#[cfg(test)]
mod hostile_answers_tests;
#[cfg(test)]
mod hostile_mcast_tests;
#[cfg(test)]
mod hostile_offload_tests;
#[cfg(test)]
mod hostile_tests;
mod mcast;
mod stats;
mod stream_link;
#[cfg(test)]
mod stream_offload_tests;
#[cfg(test)]
mod tests;
mod v6;
mod worker;

pub use self::config::{
    DEFAULT_BUSY_POLL_MICROS, DEFAULT_GUEST_MAC, DnsConfig, GuestGoneHook, NeighbourHook,
    QueueConfig, RuntimeConfig,
};
pub use self::mcast::GroupHook;
pub use self::stats::{PortStats, RuntimeHandle, RuntimeLimits, Stats};
pub use self::v6::{DEFAULT_PREFIX6, MulticastConfig};

use std::hash::BuildHasher;
use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use std::sync::atomic::Ordering;

use crossbeam_channel::Sender;
use dhcp::Lease;
use forwarder::dns_service::{self, DnsParts, DnsThread};
use forwarder::{DrainEnd, NoForwarder};
use stack::time::Epoch;
use stack::wire::EthernetAddress;

use self::fabric::{Fabric, GatewayTx, WorkerControl, WorkerHandle};
use crate::forward::{Switch, SwitchConfig};
use crate::gateway::{Gateway, SharedServices};
use crate::port::{self, Attacher};

/// How often [`Runtime::drain`] looks at the workers and its caller.
const DRAIN_POLL: Duration = Duration::from_millis(10);

/// The running data plane. See the module docs.
#[derive(Debug)]
pub struct Runtime {
    attacher: Attacher,
    handle: RuntimeHandle,
    /// Dropped to stop the DNS thread.
    stop: Option<Sender<()>>,
    dns_zones: dns::SharedZones,
    threads: Vec<JoinHandle<()>>,
    workers: Vec<JoinHandle<()>>,
    epoch: Epoch,
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e.to_string())
}

impl Runtime {
    /// Validates `config` and starts every thread.
    pub fn start(config: RuntimeConfig) -> io::Result<Runtime> {
        let epoch = Epoch::new(std::time::Instant::now());
        let gateway_config = config.gateway_config();
        let services = SharedServices::new(&gateway_config).map_err(invalid)?;
        // Validate once, before any thread starts.
        Gateway::with_shared(gateway_config.clone(), epoch, services.clone(), false)
            .map_err(invalid)?;
        let switch = Switch::new(&SwitchConfig {
            gateway_port: port::GATEWAY_PORT,
            gateway_mac: config.gateway_mac,
            max_entries: config.mac_table_size,
            max_age: config.mac_table_age,
        });
        // A guest gone is news for the forwarder (its flows) and the DNS service (its queries).
        let dns_inputs = crossbeam_channel::bounded(config.dns.queue.max(1));
        let queue_full = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (dns_gone, gone_full) = (dns_inputs.0.clone(), queue_full.clone());
        let forwarder_gone = config.guest_gone.clone();
        let guest_gone: GuestGoneHook = Arc::new(move |macs: &[EthernetAddress]| {
            if let Some(hook) = &forwarder_gone {
                hook(macs);
            }
            // A notice that finds the queue full is counted; the queries then time out.
            let notice = dns_service::Input::GuestGone(macs.to_vec());
            if dns_gone.try_send(notice).is_err() {
                gone_full.fetch_add(1, Ordering::Relaxed);
            }
        });
        let fabric = Arc::new(Fabric::new(
            switch,
            config.pcap.clone(),
            Some(guest_gone),
            config.gateway_mac,
            epoch,
            config
                .snooper()
                .map(|snooper| mcast::Multicast::new(snooper, config.group_hook.clone())),
        ));
        let workers = config.worker_count().max(1);
        let mut polls = Vec::with_capacity(workers);
        let mut handles = Vec::with_capacity(workers);
        let mut inboxes = Vec::with_capacity(workers);
        for _ in 0..workers {
            let poll = mio::Poll::new()?;
            let waker = mio::Waker::new(poll.registry(), mio::Token(0))?;
            let (frames_tx, frames) = crossbeam_channel::bounded(config.queues.worker.max(1));
            let (control_tx, control) = crossbeam_channel::unbounded();
            let counters = Arc::new(forwarder::WorkerCounters::default());
            handles.push(Arc::new(WorkerHandle::new(
                frames_tx, control_tx, waker, counters,
            )));
            polls.push(poll);
            inboxes.push((frames, control));
        }
        fabric.set_workers(handles.clone());

        let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
        let (dns_query, dns_queries) = crossbeam_channel::bounded(4);
        let dns_zones = config
            .dns
            .zones
            .clone()
            .unwrap_or_else(|| config.default_zones().shared());
        let seed = std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64);
        let dns_sender = dns_inputs.0.clone();
        let resolver = dns::Resolver::new(dns::ResolverConfig {
            upstreams: config.dns.upstreams.clone(),
            timeout: config.dns.timeout,
            attempts: config.dns.attempts,
            max_pending: config.dns.max_pending,
            max_reply: config.dns_max_reply(),
            seed: seed.rotate_left(17),
        });
        let dns = DnsThread::new(DnsParts {
            resolver,
            tcp_limits: dns_service::tcp::Limits {
                max_connections: config.dns.tcp_connections.max(1),
                idle_timeout: config.dns.tcp_idle_timeout,
                max_pipeline: config.dns.tcp_pipeline.max(1),
                ..dns_service::tcp::Limits::default()
            },
            zones: dns_zones.clone(),
            port: Box::new(GatewayTx::new(fabric.clone())),
            mac: config.gateway_mac,
            inputs: dns_inputs,
            queries: dns_queries,
            stop: stop_rx,
            epoch,
            queue_full: queue_full.clone(),
        });
        let mut runtime = Runtime {
            attacher: Attacher::new(fabric.clone(), config.queues.port_egress, config.mtu),
            handle: RuntimeHandle {
                fabric: fabric.clone(),
                services: services.clone(),
                dns_query,
                limits: config.limits(),
            },
            stop: Some(stop_tx),
            dns_zones,
            threads: Vec::new(),
            workers: Vec::new(),
            epoch,
        };
        runtime.threads.push(
            std::thread::Builder::new()
                .name("dns".into())
                .spawn(move || dns.run())?,
        );

        let factory = config
            .forwarder
            .clone()
            .unwrap_or_else(NoForwarder::factory);
        // Any link's frames: a TAP's MTU reaches 65535.
        let max_frame = crate::framing::max_frame_len(u32::from(u16::MAX));
        for (index, (poll, (frames, control))) in polls.into_iter().zip(inboxes).enumerate() {
            let me = handles[index].clone();
            let ctx = forwarder::WorkerContext {
                index,
                workers,
                seed,
                epoch,
                mtu: config.mtu,
                gateway_mac: config.gateway_mac,
                counters: me.counters.clone(),
                notify: me.clone(),
            };
            let handler = factory(&ctx, poll.registry());
            let gateway =
                Gateway::with_shared(gateway_config.clone(), epoch, services.clone(), index == 0)
                    .map_err(invalid)?;
            let worker = worker::Worker::new(worker::WorkerParts {
                index,
                poll,
                me,
                frames,
                control,
                fabric: fabric.clone(),
                gateway,
                handler,
                dns: (dns_sender.clone(), queue_full.clone()),
                neighbours: config.neighbours.clone(),
                max_frame,
                busy_poll: config.busy_poll,
            });
            runtime.workers.push(
                std::thread::Builder::new()
                    .name(format!("worker-{index}"))
                    .spawn(move || worker.run())?,
            );
        }
        Ok(runtime)
    }

    /// Hands out ports to links that run threads of their own.
    pub fn attacher(&self) -> Attacher {
        self.attacher.clone()
    }

    /// How many workers run.
    pub fn workers(&self) -> usize {
        self.handle.fabric.workers().len()
    }

    /// The process epoch every thread's [`stack::time::Instant`] counts from.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// A cloneable handle that answers [`Runtime::stats`] and [`Runtime::leases`] from any
    /// thread (the control API's).
    pub fn handle(&self) -> RuntimeHandle {
        self.handle.clone()
    }

    /// The local DNS zones, for the control API's `/services/dns/{add,all}` ([`dns::api`]).
    pub fn dns_zones(&self) -> dns::SharedZones {
        self.dns_zones.clone()
    }

    /// A snapshot of every counter. A stopped worker's part is empty.
    pub fn stats(&self) -> Stats {
        self.handle.stats()
    }

    /// The DHCP server's leases (bound, and every static one).
    pub fn leases(&self) -> Vec<Lease> {
        self.handle.leases()
    }

    /// Lets every flow finish what it owes its host for at most `timeout` (or until `cancel`
    /// says stop): each worker winds its flows down ([`forwarder::FlowHandler::begin_drain`])
    /// while it keeps serving its links, so guests can still finish their streams. Returns
    /// how it ended; the workers go on running until [`Runtime::shutdown`], which finishes
    /// (resets) whatever is left. Call it once, before `shutdown`.
    pub fn drain(&mut self, timeout: Duration, cancel: &mut dyn FnMut() -> bool) -> DrainEnd {
        let workers = self.handle.fabric.workers();
        for worker in workers {
            worker.tell(WorkerControl::Drain);
        }
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if workers.iter().all(|w| w.settled()) {
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

    /// Stops and joins every thread (also done on drop).
    pub fn shutdown(mut self) {
        self.stop_all();
    }

    fn stop_all(&mut self) {
        self.handle.fabric.stop();
        for handle in self.workers.drain(..) {
            // A worker that panicked is already gone.
            let _ = handle.join();
        }
        self.stop = None;
        for handle in self.threads.drain(..) {
            let _ = handle.join();
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop_all();
    }
}
