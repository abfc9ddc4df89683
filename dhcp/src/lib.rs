//! host-switch's DHCP servers: DHCPv4, and DHCPv6 in [`v6`]; sans-IO cores that turn a
//! request payload into a reply; and the DHCPv4 client ([`client`]) that `host-switch guest`
//! leases its address with.
//!
//! The caller owns the socket (or the stack's UDP demux) and the clock. It hands
//! [`Server::handle`] the UDP payload of each datagram that reached port 67, with the current
//! time as a [`std::time::Instant`], and sends back the [`Reply`] it gets, if any, from the
//! server's address, port 67, to the reply's [`Destination`]. Nothing here opens a socket,
//! starts a thread or reads the clock, so every path is tested by feeding bytes and instants.
//!
//! Contracts (details in each module):
//! - No input can make the server panic; `#![forbid(unsafe_code)]`, and packet data is only
//!   read through checked views. A request we cannot or will not answer is dropped and counted
//!   under one [`DropReason`] ([`Server::stats`]).
//! - Every table is bounded by the pool (at most [`config::MAX_POOL_SIZE`] addresses) and the
//!   static leases; outstanding offers by [`Config::max_offers`] (the oldest is withdrawn
//!   for a new one) and [`Config::max_offers_per_mac`] (a DISCOVER past it is dropped).
//! - Replies follow RFC 2131 §4.1 for where they go and §4.3 for what they say, carry the
//!   options of RFC 2132 (and RFC 3397's search list) the client asks for, and are at least
//!   300 bytes long.
//!
//! Modules: [`client`] is the client's state machine (RFC 2131 §4.4), [`message`] is the wire
//! format (a `Packet` view and a `Repr`), [`options`] the bounded option walk, [`search`] the
//! RFC 3397 domain list, [`config`] the configuration, [`server`] the state machine, [`stats`]
//! its counters; [`v6`] is the DHCPv6 server (RFC 8415) with the same contracts.
#![forbid(unsafe_code)]

pub mod client;
pub mod config;
pub mod message;
pub mod options;
pub mod search;
pub mod server;
pub mod stats;
pub mod v6;

mod pool;

#[cfg(test)]
pub(crate) mod fixtures;

pub use client::{Client as DhcpClient, Event as ClientEvent, Lease as ClientLease};
pub use config::{Config, ConfigError, StaticLease, Subnet};
pub use message::{
    EmitError as DhcpEmitError, Error as DhcpError, MessageType, Op as DhcpOp,
    Packet as DhcpPacket, Repr as DhcpRepr,
};
pub use search::DomainList;
pub use server::{Destination, Lease, Reply, Server};
pub use stats::{DropReason, Drops, Stats};
