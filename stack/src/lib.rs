//! host-switch's network stack, sans-IO.
//!
//! Nothing in this crate opens a socket, starts a thread or reads the clock: callers feed it
//! bytes and the current time, and take bytes back. That keeps every protocol core
//! deterministic under test and fuzzing.
#![forbid(unsafe_code)]

pub mod frag;
pub mod ingress;
pub mod offload;
pub mod tcp;
pub mod time;
pub mod wire;
