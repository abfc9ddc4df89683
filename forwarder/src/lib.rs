//! host-switch's host side: worker threads that own flow tables and host sockets.
//!
//! [`worker`] is the seam between the gateway and the forwarding logic: a pool of worker
//! threads, each fed by its own bounded queue and owning every flow whose [`FlowKey`] hashes
//! to it, and the [`FlowHandler`] trait a forwarder implements to do the work. Until one is
//! plugged in, [`NoForwarder`] counts every flow packet as dropped.
//!
//! [`FlowKey`]: stack::ingress::FlowKey

pub mod worker;

pub use worker::{
    DispatchError, Dispatcher, FlowFrame, FlowHandler, FrameSink, HandlerFactory, NoForwarder,
    Notify, PoolConfig, WorkerContext, WorkerCounters, WorkerPool, WorkerStats,
};
