//! host-switch's DHCPv4 server: a sans-IO core that turns a request payload into a reply.
#![forbid(unsafe_code)]

pub mod message;
pub mod options;
pub mod search;

#[cfg(test)]
pub(crate) mod fixtures;
