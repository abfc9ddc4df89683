//! The clients of the upstream resolvers: the I/O half of forwarding, beside the sans-IO
//! [`Resolver`](dns::Resolver) that decides what goes where.
//!
//! - [`udp`]: one connected UDP socket per upstream, and a reader thread for each.
//! - [`tcp`]: pooled, pipelined TCP connections per upstream, a writer thread per upstream
//!   and a reader thread per connection.
//!
//! Both own sockets and threads, never the resolver: what they learn comes back as an
//! [`Event`] over a bounded `crossbeam_channel::Sender` the caller gives them, of any type
//! an [`Event`] converts into, so that the events can share one queue with the caller's other
//! inputs. A full queue never blocks a reader for long: each handoff below says what a full
//! queue costs and where it is counted. Stopping ([`TcpClient::stop`],
//! [`UdpClient::stop`]) joins every thread they started.

use std::io;
use std::net::SocketAddr;

pub mod tcp;
pub mod udp;

pub use tcp::{Client as TcpClient, Counters as TcpCounters};
pub use udp::{Client as UdpClient, SendError};

/// What an upstream client hands back to its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// An answer from this upstream, by UDP or on one of its TCP connections (for
    /// [`Resolver::handle_response`](dns::Resolver::handle_response)).
    Response(SocketAddr, Vec<u8>),
    /// A TCP connection to this upstream failed or ended before answering these queries (IDs
    /// as sent upstream; for
    /// [`Resolver::handle_upstream_lost`](dns::Resolver::handle_upstream_lost)).
    Lost(SocketAddr, Vec<u16>),
    /// This upstream refused UDP (ICMP port unreachable).
    Refused(SocketAddr),
    /// The network has no way to this upstream (ICMP host or network unreachable).
    Unreachable(SocketAddr),
}

/// Whether a read with a timeout (or a non-blocking one) simply found nothing yet.
fn nothing_yet(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}
