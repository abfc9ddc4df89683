//! DNS over UDP to the upstreams: one socket per upstream, bound to the wildcard address (a
//! kernel-chosen port) and connected to the upstream, so the kernel reports what the network
//! says about it (ICMP port or host unreachable) on that socket alone; a reader thread per
//! connected socket blocks in `recv` and hands each datagram to the caller
//! ([`Event::Response`]; its queue full → dropped, counted in [`Client::responses_dropped`]).
//!
//! An upstream that cannot be reached at all — no route to it (`ENETUNREACH`, as in a
//! namespace with only loopback, or before the network is up), or no socket for its family —
//! never keeps the client from starting: its socket stays unconnected, every send to it
//! fails at once with [`SendError::Unreachable`] (the caller fails its queries over), and
//! the connect is tried again when a query wants that upstream, at most once per
//! [`RETRY_EVERY`]. What the network reports later, on a send or a read, is sorted the same
//! way: a refusal is [`SendError::Refused`] / [`Event::Refused`], no route or host is
//! [`SendError::Unreachable`] / [`Event::Unreachable`]; neither ends a reader.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use super::{Event, nothing_yet};

/// How often a reader thread looks at the stop flag.
const READ_TIMEOUT: Duration = Duration::from_millis(200);
/// The largest datagram read from an upstream (RFC 6891's maximum UDP payload).
const MAX_DATAGRAM: usize = 65535;
/// The least time between two connects to an upstream that could not be reached.
pub const RETRY_EVERY: Duration = Duration::from_secs(1);

/// Why a query was not sent to an upstream.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The upstream refused an earlier query (ICMP port unreachable), reported on this send.
    #[error("the upstream refused an earlier query")]
    Refused,
    /// No route to it, or no socket for it (now or when last tried).
    #[error("the upstream is unreachable: {0}")]
    Unreachable(io::Error),
    /// Anything else; the query's attempt times out.
    #[error("the query was not sent: {0}")]
    Other(io::Error),
}

/// Whether `e` says the network has no way to the peer.
fn unreachable(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::AddrNotAvailable
    ) || matches!(
        e.raw_os_error(),
        Some(libc::ENETDOWN | libc::EHOSTDOWN | libc::EAFNOSUPPORT)
    )
}

/// One upstream's socket: connected, or waiting to be tried again.
#[derive(Debug)]
enum Slot {
    Connected(UdpSocket),
    Unconnected {
        /// Bound, not connected (`None`: no socket could be made).
        socket: Option<UdpSocket>,
        retry_at: Instant,
        /// Why the last connect failed (what sends report until the next try).
        error: io::ErrorKind,
    },
}

/// The upstream UDP sockets and their readers; their events go to a queue of `E`. See the
/// module docs.
#[derive(Debug)]
pub struct Client<E> {
    slots: HashMap<SocketAddr, Slot>,
    to: Sender<E>,
    readers: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    /// Upstream datagrams the caller's queue had no room for.
    pub responses_dropped: Arc<AtomicU64>,
}

impl<E: From<Event> + Send + 'static> Client<E> {
    /// Opens a socket per upstream and connects what can be reached; returns the upstreams
    /// that could not be, with why, for the caller to tell.
    pub fn new(
        upstreams: &[SocketAddr],
        to: Sender<E>,
    ) -> (Client<E>, Vec<(SocketAddr, io::Error)>) {
        let mut udp = Client {
            slots: HashMap::new(),
            to,
            readers: Vec::new(),
            stop: Arc::new(AtomicBool::new(false)),
            responses_dropped: Arc::new(AtomicU64::new(0)),
        };
        let now = Instant::now();
        let mut failed = Vec::new();
        for &upstream in upstreams {
            if udp.slots.contains_key(&upstream) {
                continue;
            }
            let slot = udp.open(upstream, now);
            if let Slot::Unconnected { error, .. } = &slot {
                failed.push((upstream, io::Error::from(*error)));
            }
            udp.slots.insert(upstream, slot);
        }
        (udp, failed)
    }

    /// A socket for `upstream`, connected; or left to be tried again.
    fn open(&mut self, upstream: SocketAddr, now: Instant) -> Slot {
        let wildcard: SocketAddr = if upstream.is_ipv4() {
            SocketAddr::from(([0u8; 4], 0))
        } else {
            SocketAddr::from(([0u16; 8], 0))
        };
        match UdpSocket::bind(wildcard) {
            Ok(socket) => self.connect(upstream, socket, now),
            Err(e) => Slot::Unconnected {
                socket: None,
                retry_at: now + RETRY_EVERY,
                error: e.kind(),
            },
        }
    }

    /// Connects `socket` to `upstream` and starts its reader; or leaves it to be tried again.
    fn connect(&mut self, upstream: SocketAddr, socket: UdpSocket, now: Instant) -> Slot {
        let started = socket
            .connect(upstream)
            .and_then(|()| socket.set_read_timeout(Some(READ_TIMEOUT)))
            .and_then(|()| socket.try_clone())
            .and_then(|clone| {
                let (tx, stop, dropped) = (
                    self.to.clone(),
                    self.stop.clone(),
                    self.responses_dropped.clone(),
                );
                std::thread::Builder::new()
                    .name("dns-upstream".into())
                    .spawn(move || reader(clone, upstream, tx, stop, dropped))
            });
        match started {
            Ok(reader) => {
                self.readers.push(reader);
                Slot::Connected(socket)
            }
            Err(e) => Slot::Unconnected {
                socket: Some(socket),
                retry_at: now + RETRY_EVERY,
                error: e.kind(),
            },
        }
    }

    /// Sends `payload` to `to`, connecting first if it was not reachable before and a retry
    /// is due.
    pub fn send(&mut self, to: SocketAddr, payload: &[u8]) -> Result<(), SendError> {
        let now = Instant::now();
        match self.slots.get(&to) {
            Some(Slot::Unconnected {
                retry_at, error, ..
            }) if now < *retry_at => return Err(SendError::Unreachable((*error).into())),
            Some(Slot::Unconnected { .. }) => {
                if let Some(Slot::Unconnected { socket, .. }) = self.slots.remove(&to) {
                    let slot = match socket {
                        Some(socket) => self.connect(to, socket, now),
                        None => self.open(to, now),
                    };
                    self.slots.insert(to, slot);
                }
            }
            _ => {}
        }
        let sent = match self.slots.get(&to) {
            Some(Slot::Connected(socket)) => socket.send(payload),
            // Tried again just now, in vain.
            Some(Slot::Unconnected { error, .. }) => {
                return Err(SendError::Unreachable((*error).into()));
            }
            None => return Err(SendError::Other(io::ErrorKind::NotFound.into())),
        };
        match sent {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Err(SendError::Refused),
            Err(e) if unreachable(&e) => Err(SendError::Unreachable(e)),
            Err(e) => Err(SendError::Other(e)),
        }
    }

    /// Stops and joins the readers.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
    }
}

fn reader<E: From<Event>>(
    socket: UdpSocket,
    upstream: SocketAddr,
    to: Sender<E>,
    stop: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    while !stop.load(Ordering::Relaxed) {
        match socket.recv(&mut buf) {
            Ok(n) => {
                let datagram = buf.get(..n).unwrap_or_default().to_vec();
                if to
                    .try_send(Event::Response(upstream, datagram).into())
                    .is_err()
                {
                    dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            // The upstream's ICMP port unreachable, reported on the connected socket.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                let _ = to.try_send(Event::Refused(upstream).into());
            }
            // An ICMP host or network unreachable about an earlier query.
            Err(e) if unreachable(&e) => {
                let _ = to.try_send(Event::Unreachable(upstream).into());
            }
            Err(e) if nothing_yet(&e) => {}
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_of_no_route_are_unreachable() {
        for errno in [
            libc::ENETUNREACH,
            libc::EHOSTUNREACH,
            libc::ENETDOWN,
            libc::EADDRNOTAVAIL,
            libc::EAFNOSUPPORT,
        ] {
            assert!(unreachable(&io::Error::from_raw_os_error(errno)), "{errno}");
        }
        assert!(!unreachable(&io::Error::from_raw_os_error(
            libc::ECONNREFUSED
        )));
        assert!(!unreachable(&io::Error::from_raw_os_error(libc::EAGAIN)));
    }

    /// How long a test waits for one event.
    const WAIT: Duration = Duration::from_secs(5);

    #[test]
    fn a_datagram_from_the_upstream_is_a_response() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let upstream = server.local_addr().unwrap();
        let (tx, events) = crossbeam_channel::bounded::<Event>(16);
        let (mut client, failed) = Client::new(&[upstream, upstream], tx);
        assert!(failed.is_empty(), "{failed:?}");
        client.send(upstream, b"query").unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = server.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"query");
        server.send_to(b"answer", from).unwrap();
        assert_eq!(
            events.recv_timeout(WAIT).unwrap(),
            Event::Response(upstream, b"answer".to_vec())
        );
        // One socket and one reader for the upstream named twice.
        assert_eq!(client.slots.len(), 1);
        assert_eq!(client.readers.len(), 1);
        client.stop();
        assert!(client.readers.is_empty());
    }

    #[test]
    fn a_port_nobody_listens_on_is_refused() {
        let upstream = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        // The socket is gone: the kernel answers with ICMP port unreachable.
        let (tx, events) = crossbeam_channel::bounded::<Event>(16);
        let (mut client, failed) = Client::new(&[upstream], tx);
        assert!(failed.is_empty(), "{failed:?}");
        client.send(upstream, b"query").unwrap();
        assert_eq!(events.recv_timeout(WAIT).unwrap(), Event::Refused(upstream));
        client.stop();
    }

    #[test]
    fn an_upstream_never_asked_is_not_sent_to() {
        let (tx, _events) = crossbeam_channel::bounded::<Event>(16);
        let (mut client, _) = Client::new(&[], tx);
        let to = SocketAddr::from(([127, 0, 0, 1], 53));
        assert!(matches!(
            client.send(to, b"query"),
            Err(SendError::Other(_))
        ));
        client.stop();
    }
}
