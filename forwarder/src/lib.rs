//! host-switch's host side: worker threads that own flow tables and host sockets.
//!
//! [`worker`] is the seam between the gateway and the forwarding logic: a pool of worker
//! threads, each fed by its own bounded queue and owning every flow whose [`FlowKey`] hashes
//! to it, and the [`FlowHandler`] trait a forwarder implements to do the work.
//! [`Forwarder`] is that forwarder: TCP through the [`stack::tcp`] engine, UDP with
//! endpoint-independent mappings, ICMP echo through ping sockets, NAT of virtual addresses,
//! and port forwards into guests managed through [`Control`]. Until one is plugged in,
//! [`NoForwarder`] counts every flow packet as dropped.
//!
//! [`FlowKey`]: stack::ingress::FlowKey

mod budget;
pub mod config;
pub mod control;
pub mod descriptors;
mod events;
pub mod frame;
mod handler;
mod hops;
mod icmp;
mod icmp_errors;
mod mcast;
pub mod nat;
pub mod stats;
mod sys;
mod tcp;
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
    DispatchError, Dispatcher, DrainEnd, FlowFrame, FlowHandler, FrameSink, HandlerFactory,
    NoForwarder, Notify, PoolConfig, WorkerContext, WorkerCounters, WorkerPool, WorkerStats,
};
