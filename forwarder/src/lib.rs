//! host-switch's host side: worker threads that own flow tables and host sockets.
//!
//! [`worker`] is the seam between a worker's event loop (in the `switch` crate) and the
//! forwarding logic: the [`FlowHandler`] trait a forwarder implements, called in the loop's own
//! thread for every flow packet and every readiness event of its host sockets.
//! [`Forwarder`] is that forwarder: TCP through the [`stack::tcp`] engine, UDP with
//! endpoint-independent mappings, ICMP echo through ping sockets, NAT of virtual addresses,
//! and port forwards into guests managed through [`Control`]. Until one is plugged in,
//! [`NoForwarder`] counts every flow packet as dropped. [`gateway`] is the gateway's own
//! services (ARP, echo, NDP and router advertisements, DHCP and DNS dispatch, reassembly),
//! sans-IO, which hand every other packet to the flows. [`dns_service`] is the gateway's DNS
//! service at run time: the DNS thread that owns the sans-IO [`dns`] resolver, answers the
//! queries the gateways hand it and terminates guests' DNS over TCP in the TCP engine; the
//! `switch` crate only spawns it and wires its channels. [`dns_upstream`] holds its host-side
//! I/O: the UDP and TCP clients of the upstream resolvers.

/// The hash map of every per-packet table: foldhash, keyed per process, is several times
/// faster than the standard SipHash and still not predictable by a guest.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Gives back the memory a burst left behind in a table: one at a quarter of its capacity or
/// less shrinks to twice its size. Called from the periodic sweeps, so a table that fills
/// and empties again does not shrink and grow on every flow.
/// Returns whether it shrank.
pub(crate) fn shrink_map<K: std::hash::Hash + Eq, V>(map: &mut FastMap<K, V>) -> bool {
    if map.capacity() > 64 && map.len() < map.capacity() / 4 {
        map.shrink_to(map.len() * 2);
        return true;
    }
    false
}

/// The gateway's ports that inbound forwards come from (Linux's default ephemeral range):
/// a guest's answer to one of them is a flow's, not a service's.
pub const INBOUND_PORTS: std::ops::RangeInclusive<u16> = 32768..=60999;

mod budget;
pub mod config;
pub mod control;
pub mod descriptors;
mod directory;
pub mod dns_service;
pub mod dns_upstream;
mod events;
pub mod frame;
pub mod gateway;
mod handler;
mod hops;
mod icmp;
mod icmp_errors;
mod mcast;
pub mod nat;
pub mod stats;
mod sys;
mod tcp;
mod trim;
mod udp;
pub mod worker;

#[cfg(test)]
#[path = "../../switch/tests/skip/mod.rs"]
mod skip;

pub use budget::{BudgetUsage, MAX_GUESTS};
pub use config::{Config, DEFAULT_DRAIN_TIMEOUT};
pub use control::{ApiReply, Control, ExposeError, Forward, GuestApi, Protocol};
pub use handler::Forwarder;
pub use stats::ForwarderStats;
pub use tcp::isn_secret;
pub use worker::{
    DrainEnd, FlowFrame, FlowHandler, FrameSink, Handled, HandlerFactory, KIND_SHIFT, LOOP_KINDS,
    NoForwarder, Notify, Readiness, WorkerContext, WorkerCounters, WorkerEvent, WorkerStats,
};
