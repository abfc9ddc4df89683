//! vfkit's datagram transport: `-listen-vfkit unixgram:///path`.
//!
//! One frame per datagram, no prefix. A peer is known by the address it sends from: its first
//! datagram attaches a port for it, and frames for that port are sent back to that address. A
//! leading "VFKT" datagram (older vfkit announces itself with it) attaches the peer but is not a
//! frame. Several peers on one socket are several ports. A datagram that is empty or longer
//! than the frame limit closes that peer's port (its next datagram starts a new one); a peer
//! whose socket has gone (sending to it is refused) loses its port. Datagrams from an unnamed
//! socket cannot be answered and are dropped and counted.

use std::collections::HashMap;
use std::io;
use std::os::fd::OwnedFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam_channel::Sender;

use super::bess::transmit_packets;
use super::endpoint::{Endpoint, EndpointError};
use super::listener::{Listener, STOP_POLL, wait_readable};
use super::{CloseReason, LinkCounters, LinkLimits, Slot, log_close};
use crate::port::{Attacher, Port};

/// The datagram older vfkit versions send first.
pub const VFKT_MAGIC: &[u8] = b"VFKT";
/// How often ports of peers that have gone are reaped.
const REAP_INTERVAL: Duration = Duration::from_secs(1);
/// Socket buffer sizes (as gvproxy sets them for vfkit).
const SNDBUF: usize = 1 << 20;
const RCVBUF: usize = 4 << 20;

/// A peer's address, as a map key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum PeerKey {
    Path(std::path::PathBuf),
    Abstract(Vec<u8>),
}

impl PeerKey {
    fn of(addr: &SocketAddr) -> Option<PeerKey> {
        if let Some(p) = addr.as_pathname() {
            return Some(PeerKey::Path(p.to_owned()));
        }
        addr.as_abstract_name()
            .map(|n| PeerKey::Abstract(n.to_owned()))
    }

    fn describe(&self) -> String {
        match self {
            PeerKey::Path(p) => p.display().to_string(),
            PeerKey::Abstract(n) => format!("@{}", String::from_utf8_lossy(n)),
        }
    }
}

struct Peer {
    port: Arc<Port>,
    done: Sender<()>,
    tx: JoinHandle<Option<CloseReason>>,
    _slot: Slot,
}

/// Listens on a `unixgram://` endpoint for vfkit peers.
pub fn listen(
    endpoint: &Endpoint,
    attacher: Attacher,
    limits: LinkLimits,
) -> Result<Listener, EndpointError> {
    if !matches!(endpoint, Endpoint::Unixgram(_)) {
        return Err(EndpointError::WrongKind {
            addr: endpoint.to_string(),
            expected: "unixgram",
        });
    }
    let bind_err = |source| EndpointError::Bind {
        endpoint: endpoint.to_string(),
        source,
    };
    let bound = endpoint.bind(None)?;
    // Larger buffers are a throughput nicety; the kernel may clamp them.
    let _ = bound.socket.set_send_buffer_size(SNDBUF);
    let _ = bound.socket.set_recv_buffer_size(RCVBUF);
    let socket = Arc::new(UnixDatagram::from(OwnedFd::from(bound.socket)));
    let counters = Arc::new(LinkCounters::default());
    let body = {
        let counters = counters.clone();
        move |stop: &AtomicBool| receive_loop(&socket, &attacher, limits, &counters, stop)
    };
    Listener::spawn_loop("vfkit", counters, bound.file, body).map_err(bind_err)
}

fn receive_loop(
    socket: &Arc<UnixDatagram>,
    attacher: &Attacher,
    limits: LinkLimits,
    counters: &Arc<LinkCounters>,
    stop: &AtomicBool,
) {
    let max_frame = limits.max_frame;
    let mut peers: HashMap<PeerKey, Peer> = HashMap::new();
    let mut buf = vec![0u8; max_frame.saturating_add(1)];
    let mut last_reap = Instant::now();
    while !stop.load(Ordering::Acquire) {
        if last_reap.elapsed() >= REAP_INTERVAL {
            reap(&mut peers, counters);
            last_reap = Instant::now();
        }
        match wait_readable(socket.as_ref(), STOP_POLL) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => return tracing::error!(error = %e, "vfkit: waiting for datagrams failed"),
        }
        let (n, addr) = match socket.recv_from(&mut buf) {
            Ok(got) => got,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
                ) =>
            {
                continue;
            }
            Err(e) => return tracing::error!(error = %e, "vfkit: receive failed"),
        };
        let Some(key) = PeerKey::of(&addr) else {
            LinkCounters::bump(&counters.rx_dropped);
            tracing::debug!(
                "vfkit: datagram from an unnamed socket dropped (no address to answer)"
            );
            continue;
        };
        let data = buf.get(..n.min(buf.len())).unwrap_or_default();
        let bad = if n == 0 {
            Some("empty datagram".to_owned())
        } else if n > max_frame {
            Some(format!(
                "datagram longer than the {max_frame}-byte frame limit"
            ))
        } else {
            None
        };
        if let Some(peer) = peers.get(&key) {
            match bad {
                None => {
                    peer.port.send(Bytes::copy_from_slice(data));
                }
                Some(why) => {
                    if let Some(peer) = peers.remove(&key) {
                        close_peer(peer, CloseReason::Framing(why), counters);
                    }
                }
            }
            continue;
        }
        if let Some(why) = bad {
            LinkCounters::bump(&counters.rx_dropped);
            tracing::warn!(peer = %key.describe(), reason = %why, "vfkit: first datagram refused");
            continue;
        }
        if peers.len() >= limits.max_ports {
            reap(&mut peers, counters);
        }
        let Some(slot) = counters.try_slot(limits.max_ports) else {
            tracing::warn!(peer = %key.describe(), "vfkit: too many peers; datagram dropped");
            continue;
        };
        let Some(peer) = attach(socket, attacher, &key, addr, slot, max_frame, counters) else {
            continue;
        };
        if data != VFKT_MAGIC {
            peer.port.send(Bytes::copy_from_slice(data));
        }
        peers.insert(key, peer);
    }
    for (_, peer) in peers.drain() {
        close_peer(peer, CloseReason::Shutdown, counters);
    }
}

fn attach(
    socket: &Arc<UnixDatagram>,
    attacher: &Attacher,
    key: &PeerKey,
    addr: SocketAddr,
    slot: Slot,
    max_frame: usize,
    counters: &Arc<LinkCounters>,
) -> Option<Peer> {
    let name = format!("vfkit:{}", key.describe());
    let port = match attacher.attach(&name) {
        Ok(port) => Arc::new(port),
        Err(e) => {
            tracing::warn!(port = %name, error = %e, "cannot attach");
            return None;
        }
    };
    let (done, done_rx) = crossbeam_channel::bounded::<()>(0);
    let tx = {
        let port = port.clone();
        let socket = socket.clone();
        let counters = counters.clone();
        std::thread::Builder::new()
            .name(format!("{name}-tx"))
            .spawn(move || {
                let send = |frame: &[u8]| socket.send_to_addr(frame, &addr).map(drop);
                transmit_packets(&port, send, max_frame, &done_rx, &counters)
            })
    };
    match tx {
        Ok(tx) => {
            tracing::info!(port = %name, id = port.id().0, "port attached");
            Some(Peer {
                port,
                done,
                tx,
                _slot: slot,
            })
        }
        Err(e) => {
            tracing::warn!(port = %name, error = %e, "cannot start the transmit thread");
            None
        }
    }
}

/// Closes the ports of peers whose transmit side has ended (their socket is gone).
fn reap(peers: &mut HashMap<PeerKey, Peer>, counters: &LinkCounters) {
    let ended: Vec<PeerKey> = peers
        .iter()
        .filter(|(_, p)| p.tx.is_finished())
        .map(|(k, _)| k.clone())
        .collect();
    for key in ended {
        if let Some(peer) = peers.remove(&key) {
            close_peer(peer, CloseReason::PeerClosed, counters);
        }
    }
}

fn close_peer(peer: Peer, reason: CloseReason, counters: &LinkCounters) {
    let Peer { port, done, tx, .. } = peer;
    drop(done);
    let reason = match tx.join().ok().flatten() {
        Some(tx_reason) if matches!(reason, CloseReason::PeerClosed) => tx_reason,
        _ => reason,
    };
    log_close(&port, &reason);
    counters.record_close(&reason);
}
