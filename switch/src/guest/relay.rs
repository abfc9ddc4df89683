//! The relay into the VM's default namespace (what wsl-proxy does for Rancher Desktop): each
//! port a program listens on inside the guest switch's namespace is also served on the
//! default namespace's loopback (127.0.0.1 and ::1, same port), and relayed over the veth
//! pair to the namespace's end of it.
//!
//! [`Relay::sync`] takes the complete set of ports, as a
//! [`Watcher`](crate::auto_forward::watch::Watcher) publishes it, and opens and closes listeners to match. A port that cannot
//! be bound here is logged and tried again on the next sync. TCP: each accepted connection
//! gets a connection to the namespace and two copying threads; half-closes pass through. UDP:
//! one thread per port keeps a socket per client towards the namespace, at most
//! [`MAX_UDP_CLIENTS`], each dropped after [`UDP_IDLE`] without traffic. Connections per
//! port are bounded by [`MAX_TCP_CONNECTIONS`]; beyond, a new one is closed at once and
//! counted.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rustix::io::Errno;

use super::transport::wait_readable;
use crate::auto_forward::{PortKey, Transport};

/// Open TCP connections per relayed port at most.
pub const MAX_TCP_CONNECTIONS: usize = 256;
/// Clients of one relayed UDP port at most.
pub const MAX_UDP_CLIENTS: usize = 64;
/// How long a UDP client's mapping lives without traffic.
pub const UDP_IDLE: Duration = Duration::from_secs(60);
/// How often a waiting relay thread checks whether it should stop.
const STOP_POLL: Duration = Duration::from_millis(100);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The relay's counters.
#[derive(Debug, Default)]
pub struct RelayCounters {
    pub tcp_accepted: AtomicU64,
    pub tcp_refused_full: AtomicU64,
    pub udp_datagrams: AtomicU64,
    pub udp_refused_full: AtomicU64,
}

/// One relayed port: its listeners' threads.
#[derive(Debug)]
struct Served {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The relay. See the module docs.
#[derive(Debug)]
pub struct Relay {
    /// The namespace's end of the veth pair.
    target: IpAddr,
    served: Mutex<BTreeMap<PortKey, Served>>,
    pub counters: Arc<RelayCounters>,
}

impl Relay {
    pub fn new(target: IpAddr) -> Arc<Relay> {
        Arc::new(Relay {
            target,
            served: Mutex::new(BTreeMap::new()),
            counters: Arc::new(RelayCounters::default()),
        })
    }

    /// Serves exactly `ports`; true when every one of them is served.
    pub fn sync(&self, ports: &[PortKey]) -> bool {
        let mut served = self.served.lock();
        served.retain(|k, _| ports.contains(k));
        let mut all = true;
        for &key in ports {
            if served.contains_key(&key) {
                continue;
            }
            match self.serve(key) {
                Ok(s) => {
                    tracing::info!(
                        protocol = key.protocol.name(),
                        port = key.port,
                        "relaying into the namespace"
                    );
                    served.insert(key, s);
                }
                Err(e) => {
                    all = false;
                    tracing::warn!(protocol = key.protocol.name(), port = key.port, error = %e, "cannot relay this port");
                }
            }
        }
        all
    }

    fn serve(&self, key: PortKey) -> io::Result<Served> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        let upstream = SocketAddr::new(self.target, key.port);
        let mut bound = 0;
        let mut first_error = None;
        for local in [
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ] {
            let addr = SocketAddr::new(local, key.port);
            let started = match key.protocol {
                Transport::Tcp => TcpListener::bind(addr).and_then(|l| {
                    l.set_nonblocking(true)?;
                    let (stop, counters) = (stop.clone(), self.counters.clone());
                    std::thread::Builder::new()
                        .name("relay-tcp".into())
                        .spawn(move || tcp_accept(&l, upstream, &stop, &counters))
                }),
                Transport::Udp => UdpSocket::bind(addr).and_then(|s| {
                    s.set_read_timeout(Some(STOP_POLL))?;
                    let (stop, counters) = (stop.clone(), self.counters.clone());
                    std::thread::Builder::new()
                        .name("relay-udp".into())
                        .spawn(move || udp_relay(&s, upstream, &stop, &counters))
                }),
            };
            match started {
                Ok(t) => {
                    threads.push(t);
                    bound += 1;
                }
                // No IPv6 loopback here: 127.0.0.1 alone serves.
                Err(e)
                    if local.is_ipv6()
                        && e.raw_os_error() == Some(Errno::ADDRNOTAVAIL.raw_os_error()) => {}
                Err(e) => first_error = first_error.or(Some(e)),
            }
        }
        let served = Served { stop, threads };
        match first_error {
            Some(e) if bound == 0 => Err(e),
            _ => Ok(served),
        }
    }
}

fn tcp_accept(
    listener: &TcpListener,
    upstream: SocketAddr,
    stop: &AtomicBool,
    counters: &RelayCounters,
) {
    let open = Arc::new(AtomicUsize::new(0));
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((client, _)) => {
                if open.load(Ordering::Relaxed) >= MAX_TCP_CONNECTIONS {
                    counters.tcp_refused_full.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                counters.tcp_accepted.fetch_add(1, Ordering::Relaxed);
                let open = open.clone();
                open.fetch_add(1, Ordering::Relaxed);
                let spawned =
                    std::thread::Builder::new()
                        .name("relay-conn".into())
                        .spawn(move || {
                            let _ = client.set_nonblocking(false);
                            if let Ok(server) =
                                TcpStream::connect_timeout(&upstream, CONNECT_TIMEOUT)
                            {
                                splice(client, server);
                            }
                            open.fetch_sub(1, Ordering::Relaxed);
                        });
                if spawned.is_err() {
                    tracing::warn!("cannot start a relay thread");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let _ = wait_readable(&listener, STOP_POLL);
            }
            Err(_) => std::thread::sleep(STOP_POLL),
        }
    }
}

/// Copies both ways until both directions have ended; a half-close passes through.
fn splice(a: TcpStream, b: TcpStream) {
    let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) else {
        return;
    };
    let one = std::thread::Builder::new()
        .name("relay-copy".into())
        .spawn(move || copy_then_close(a2, b2));
    copy_then_close(b, a);
    if let Ok(t) = one {
        let _ = t.join();
    }
}

fn copy_then_close(mut from: TcpStream, mut to: TcpStream) {
    let _ = io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

fn udp_relay(
    socket: &UdpSocket,
    upstream: SocketAddr,
    stop: &AtomicBool,
    counters: &RelayCounters,
) {
    let mut clients: HashMap<SocketAddr, (UdpSocket, Instant)> = HashMap::new();
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::Relaxed) {
        if let Ok((n, client)) = socket.recv_from(&mut buf) {
            let data = buf.get(..n).unwrap_or_default();
            if !clients.contains_key(&client) {
                if clients.len() >= MAX_UDP_CLIENTS {
                    counters.udp_refused_full.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let bind = if upstream.is_ipv4() {
                    "0.0.0.0:0"
                } else {
                    "[::]:0"
                };
                let Ok(up) = UdpSocket::bind(bind).and_then(|u| {
                    u.connect(upstream)?;
                    u.set_nonblocking(true)?;
                    Ok(u)
                }) else {
                    continue;
                };
                clients.insert(client, (up, Instant::now()));
            }
            if let Some((up, seen)) = clients.get_mut(&client) {
                let _ = up.send(data);
                *seen = Instant::now();
                counters.udp_datagrams.fetch_add(1, Ordering::Relaxed);
            }
        }
        // Answers from the namespace back to each client.
        for (client, (up, seen)) in &mut clients {
            while let Ok(n) = up.recv(&mut buf) {
                let _ = socket.send_to(buf.get(..n).unwrap_or_default(), client);
                *seen = Instant::now();
            }
        }
        clients.retain(|_, (_, seen)| seen.elapsed() < UDP_IDLE);
    }
}
