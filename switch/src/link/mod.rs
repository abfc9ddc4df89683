//! Links: the transports guests reach the switch by. Each is a port factory.
//!
//! Every link serves many guests at once — one [`Port`] per connection (stream and seqpacket
//! links), per datagram peer (vfkit), per TAP device — and each port has its own receive and
//! transmit threads. Contracts shared by all of them:
//! - **Isolation**: malformed framing (a zero or oversize length, a stream that ends inside a
//!   frame, a datagram or packet larger than the frame limit) closes that one port with a logged
//!   reason and a counter bump; other ports of the same listener are not disturbed.
//! - **Bounded**: frames are at most [`LinkLimits::max_frame`] bytes, and at most
//!   [`LinkLimits::max_ports`] ports are open per listener; a connection past the limit is
//!   closed at once and counted in [`LinkCounters::refused_full`].
//! - **Nothing the peer sends panics**: all parsing is bounds-checked.
//! - **Cleanup**: a listener's [`Listener::shutdown`] (or drop) stops accepting, closes every
//!   connection it accepted and removes the socket file it created. A stale socket file left by
//!   a dead process is replaced at start; one that still has a listener is an error.
//!
//! The pieces: [`endpoint`] parses `unix://`, `tcp://`, `vsock://`, `unixgram://` and
//! `unixpacket://` addresses and binds them; [`stream`] drives one length-prefixed stream as a
//! port; the links themselves are [`qemu`], [`http`] (`POST /connect`, and the control API's
//! routing), [`stdio`], [`vpnkit`], [`vfkit`], [`bess`] and [`tap`]. [`offer`] is how a
//! `/connect` stream agrees on a virtio-net header with the guest agent.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::framing;

pub mod bess;
pub mod endpoint;
pub mod http;
pub mod listener;
pub mod offer;
pub mod qemu;
pub mod stdio;
pub mod stream;
pub mod tap;
pub mod vfkit;
pub mod vpnkit;

#[cfg(test)]
mod tests;

pub use endpoint::{Endpoint, EndpointError};
pub use listener::Listener;

use crate::port::Port;

/// The default MTU of VM links (gvproxy's `-mtu` default).
pub const DEFAULT_MTU: u32 = 1500;
/// Ports one listener serves at once unless told otherwise.
pub const DEFAULT_MAX_PORTS: usize = 64;

/// Limits of one link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkLimits {
    /// Largest frame accepted from or sent to a guest, Ethernet header included.
    pub max_frame: usize,
    /// Ports (connections, peers) open at once on one listener.
    pub max_ports: usize,
}

impl LinkLimits {
    /// Limits for a link whose guests use `mtu`.
    pub fn for_mtu(mtu: u32) -> LinkLimits {
        LinkLimits {
            max_frame: framing::max_frame_len(mtu),
            max_ports: DEFAULT_MAX_PORTS,
        }
    }
}

impl Default for LinkLimits {
    fn default() -> LinkLimits {
        LinkLimits::for_mtu(DEFAULT_MTU)
    }
}

/// Counters of one listener, bumped with relaxed atomics.
#[derive(Debug, Default)]
pub struct LinkCounters {
    /// Ports opened (connections accepted, peers learned).
    pub accepted: AtomicU64,
    /// Ports open right now.
    pub active: AtomicUsize,
    /// Connections or peers refused because [`LinkLimits::max_ports`] were open.
    pub refused_full: AtomicU64,
    /// Ports closed because of malformed framing or an oversize frame.
    pub closed_framing: AtomicU64,
    /// Ports closed because the peer went away (end of stream, peer socket gone, a deleted
    /// TAP).
    pub closed_peer: AtomicU64,
    /// Ports closed because of an I/O error or because the switch stopped.
    pub closed_error: AtomicU64,
    /// Connections that failed a handshake (vpnkit) or sent a bad HTTP request.
    pub handshake_failed: AtomicU64,
    /// Frames the link could not hand to the guest (write errors, frames over the limit).
    pub tx_errors: AtomicU64,
    /// Datagrams dropped before reaching a port (no reply address, unknown peer at the limit).
    pub rx_dropped: AtomicU64,
    /// Accepts that failed for want of descriptors (`EMFILE`, `ENFILE`).
    pub out_of_descriptors: AtomicU64,
}

impl LinkCounters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes one of `max` port slots, or counts a refusal and returns `None`.
    pub(crate) fn try_slot(self: &Arc<Self>, max: usize) -> Option<Slot> {
        let taken = self
            .active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            });
        match taken {
            Ok(_) => {
                LinkCounters::bump(&self.accepted);
                Some(Slot {
                    counters: self.clone(),
                })
            }
            Err(_) => {
                LinkCounters::bump(&self.refused_full);
                None
            }
        }
    }

    /// Records why a port closed.
    pub(crate) fn record_close(&self, reason: &CloseReason) {
        let counter = match reason {
            CloseReason::Framing(_) => &self.closed_framing,
            CloseReason::PeerClosed | CloseReason::Gone(_) => &self.closed_peer,
            CloseReason::Io(_) | CloseReason::SwitchStopped | CloseReason::Shutdown => {
                &self.closed_error
            }
        };
        LinkCounters::bump(counter);
    }
}

/// One of a listener's port slots; frees itself when dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    counters: Arc<LinkCounters>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.counters.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Why a port was closed.
#[derive(Debug, thiserror::Error)]
pub enum CloseReason {
    #[error("malformed framing: {0}")]
    Framing(String),
    #[error("peer closed the connection")]
    PeerClosed,
    /// The link itself went away (a deleted TAP, a descriptor that hung up): see
    /// [`crate::sys::is_gone`].
    #[error("the link went away ({0})")]
    Gone(std::io::Error),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("the switch has stopped")]
    SwitchStopped,
    #[error("the link is shutting down")]
    Shutdown,
}

impl CloseReason {
    /// A read or poll error: [`CloseReason::Gone`] where it means the link is gone for good.
    pub(crate) fn from_io(e: std::io::Error) -> CloseReason {
        if crate::sys::is_gone(&e) {
            CloseReason::Gone(e)
        } else {
            CloseReason::Io(e)
        }
    }
}

/// Logs a port's end at a level fitting its reason.
pub(crate) fn log_close(port: &Port, reason: &CloseReason) {
    log_close_named(port.name(), port.id(), reason);
}

/// [`log_close`] for a port known by its name and id.
pub(crate) fn log_close_named(name: &str, id: crate::PortId, reason: &CloseReason) {
    match reason {
        CloseReason::Framing(_) | CloseReason::Io(_) => {
            tracing::warn!(port = name, id = id.0, %reason, "port closed");
        }
        _ => tracing::info!(port = name, id = id.0, %reason, "port closed"),
    }
}
