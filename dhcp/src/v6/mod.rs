//! DHCPv6 (RFC 8415), sans-IO: the message format ([`message`]) and a server ([`Server`])
//! for one link — stateless configuration (DNS servers and search list, RFC 3646) in answer
//! to Information-request, and addresses (IA_NA) from a pool for clients that ask, with
//! static leases by MAC.
//!
//! As for DHCPv4, the caller owns the socket (or the stack's UDP demux) and the clock: it
//! hands [`Server::handle`] the payload of each datagram to port 547 with the L2 source of
//! its frame, and sends the reply back from the server's link-local address and port 547
//! to the datagram's source address and port.

pub mod config;
pub mod message;
pub mod server;
pub mod stats;

#[cfg(test)]
mod fixture_tests;

pub use config::{Config, ConfigError, StaticLease, duid_ll};
pub use message::{
    CLIENT_PORT, DhcpOption, Error, MessageType, Options, Packet, Repr, SERVER_PORT,
};
pub use server::{Lease, Server};
pub use stats::{DropReason, Drops, Stats};
