//! User-Mode Linux's bess transport: `-listen-bess unixpacket:///path`.
//!
//! A SOCK_SEQPACKET socket: every packet is one frame, no prefix. Each connection is a port.
//! A packet larger than the frame limit (seen as a read that fills the buffer past it) closes
//! that port; so does an empty packet, which on a seqpacket socket cannot be told from the
//! peer closing.

use std::io::{self, Read};
use std::sync::Arc;

use bytes::Bytes;
use crossbeam_channel::{Receiver, select};

use super::endpoint::{Endpoint, EndpointError};
use super::listener::{Conn, Listener};
use super::{CloseReason, LinkCounters, LinkLimits, log_close};
use crate::port::{Attacher, Port};

/// Listens on a `unixpacket://` endpoint for bess peers.
pub fn listen(
    endpoint: &Endpoint,
    attacher: Attacher,
    limits: LinkLimits,
) -> Result<Listener, EndpointError> {
    if !matches!(endpoint, Endpoint::Unixpacket(_)) {
        return Err(EndpointError::WrongKind {
            addr: endpoint.to_string(),
            expected: "unixpacket",
        });
    }
    let bound = endpoint.bind(None)?;
    let counters = Arc::new(LinkCounters::default());
    let handler = {
        let counters = counters.clone();
        move |conn: Conn| serve(conn, &attacher, limits.max_frame, &counters)
    };
    Listener::spawn("bess", bound, limits, counters, handler).map_err(|source| {
        EndpointError::Bind {
            endpoint: endpoint.to_string(),
            source,
        }
    })
}

fn serve(conn: Conn, attacher: &Attacher, max_frame: usize, counters: &Arc<LinkCounters>) {
    let name = format!("bess:{}", conn.peer);
    let (port, tx_socket) = match (attacher.attach(&name), conn.try_clone_socket()) {
        (Ok(port), Ok(tx_socket)) => (Arc::new(port), tx_socket),
        (Err(e), _) => return tracing::warn!(port = %name, error = %e, "cannot attach"),
        (_, Err(e)) => {
            return tracing::warn!(port = %name, error = %e, "cannot clone the connection");
        }
    };
    tracing::info!(port = %name, id = port.id().0, "port attached");
    let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(0);
    let tx = {
        let port = port.clone();
        let counters = counters.clone();
        std::thread::Builder::new()
            .name(format!("{name}-tx"))
            .spawn(move || {
                let send = |frame: &[u8]| tx_socket.send(frame).map(drop);
                let end = transmit_packets(&port, send, max_frame, &done_rx, &counters);
                if end.is_some() {
                    let _ = tx_socket.shutdown(std::net::Shutdown::Both);
                }
                end
            })
    };
    let tx = match tx {
        Ok(tx) => tx,
        Err(e) => {
            return tracing::warn!(port = %name, error = %e, "cannot start the transmit thread");
        }
    };
    let rx_end = receive(&port, &conn, max_frame);
    let _ = conn.socket.shutdown(std::net::Shutdown::Both);
    drop(done_tx);
    let tx_end = tx.join().ok().flatten();
    let reason = match (rx_end, tx_end) {
        (CloseReason::PeerClosed | CloseReason::Io(_), Some(tx_reason)) => tx_reason,
        (rx_reason, _) => rx_reason,
    };
    log_close(&port, &reason);
    counters.record_close(&reason);
}

fn receive(port: &Port, conn: &Conn, max_frame: usize) -> CloseReason {
    // One byte more than the limit: a packet that fills it is too long (the rest is cut off).
    let mut buf = vec![0u8; max_frame.saturating_add(1)];
    loop {
        match (&conn.socket).read(&mut buf) {
            Ok(0) => return CloseReason::PeerClosed,
            Ok(n) if n > max_frame => {
                return CloseReason::Framing(format!(
                    "packet longer than the {max_frame}-byte frame limit"
                ));
            }
            Ok(n) => {
                port.send(Bytes::copy_from_slice(buf.get(..n).unwrap_or_default()));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return CloseReason::Io(e),
        }
    }
}

/// Sends every frame from `port`'s egress with `send`, one packet or datagram each, until
/// `done` is signalled (`None`) or sending fails or the switch stops (the reason). Frames over
/// `max_frame` are skipped and counted.
pub(crate) fn transmit_packets<S>(
    port: &Port,
    mut send: S,
    max_frame: usize,
    done: &Receiver<()>,
    counters: &LinkCounters,
) -> Option<CloseReason>
where
    S: FnMut(&[u8]) -> io::Result<()>,
{
    loop {
        let frame = select! {
            recv(port.egress()) -> frame => match frame {
                Ok(frame) => frame,
                Err(_) => return Some(CloseReason::SwitchStopped),
            },
            recv(done) -> _ => return None,
        };
        if frame.is_empty() || frame.len() > max_frame {
            LinkCounters::bump(&counters.tx_errors);
            continue;
        }
        loop {
            match send(&frame) {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_peer_gone(&e) => return Some(CloseReason::PeerClosed),
                Err(e) => return Some(CloseReason::Io(e)),
            }
        }
    }
}

/// Errors that mean the peer's socket is gone rather than that something failed.
pub(crate) fn is_peer_gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::NotFound
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::NotConnected
    )
}
