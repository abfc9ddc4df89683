//! The accept loop shared by the connection-oriented links (stream and seqpacket sockets).
//!
//! One thread accepts; each accepted connection that gets a port slot runs the link's handler
//! on a thread of its own. The loop waits for connections with a short poll timeout so that
//! [`Listener::shutdown`] is noticed promptly whatever the socket family. Shutdown stops the
//! loop, shuts down every connection still open (their threads see end of stream and close
//! their ports), and removes the socket file the listener created.
//!
//! An `accept` that fails for want of descriptors (`EMFILE`, `ENFILE`), or an accepted
//! connection that cannot get the second descriptor it needs (it is closed), is counted in
//! [`LinkCounters::out_of_descriptors`] and warned about once when it starts and once when it
//! ends, never once per retry; the loop backs off [`STOP_POLL`] between tries. (The flows'
//! bounds leave descriptors in reserve for the listeners, so this takes a process that is
//! short of them for another reason.)

use std::collections::HashMap;
use std::io;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;
use socket2::{SockAddr, Socket};

use super::endpoint::{Bound, SocketFile};
use super::{LinkCounters, LinkLimits, Slot};

/// How often a waiting accept loop or receive thread checks whether it should stop.
pub(crate) const STOP_POLL: Duration = Duration::from_millis(200);

/// One accepted connection, handed to a link's handler.
#[derive(Debug)]
pub struct Conn {
    pub socket: Socket,
    /// The peer, for logs and port names.
    pub peer: String,
    /// Keeps the connection registered (for shutdown) and its port slot taken until dropped.
    _registration: Registration,
}

impl Conn {
    /// A second handle on the socket, for a transmit thread.
    pub fn try_clone_socket(&self) -> io::Result<Socket> {
        self.socket.try_clone()
    }
}

#[derive(Debug)]
struct Registration {
    id: u64,
    shared: Arc<Shared>,
    _slot: Slot,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.shared.conns.lock().remove(&self.id);
    }
}

#[derive(Debug)]
struct Shared {
    stop: AtomicBool,
    /// A handle on every open connection, to shut them down with the listener. Touched on
    /// accept and close only, never per frame.
    conns: Mutex<HashMap<u64, Socket>>,
    next_id: AtomicU64,
}

/// A running listener. Shut it down explicitly or by dropping it.
#[derive(Debug)]
pub struct Listener {
    name: String,
    shared: Arc<Shared>,
    counters: Arc<LinkCounters>,
    thread: Option<JoinHandle<()>>,
    file: Option<SocketFile>,
}

impl Listener {
    /// Starts accepting on `bound` (already listening); runs `handler` for each connection on
    /// a thread of its own.
    pub(crate) fn spawn<H>(
        name: &str,
        bound: Bound,
        limits: LinkLimits,
        counters: Arc<LinkCounters>,
        handler: H,
    ) -> io::Result<Listener>
    where
        H: Fn(Conn) + Send + Sync + 'static,
    {
        let Bound { socket, file } = bound;
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            conns: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        });
        let thread = {
            let shared = shared.clone();
            let counters = counters.clone();
            let name = name.to_owned();
            std::thread::Builder::new()
                .name(format!("{name}-accept"))
                .spawn(move || accept_loop(&name, &socket, &shared, limits, &counters, handler))?
        };
        Ok(Listener {
            name: name.to_owned(),
            shared,
            counters,
            thread: Some(thread),
            file,
        })
    }

    /// A listener whose thread runs `body` (datagram links have their own receive loop);
    /// `body` must return soon after the flag it is given turns true.
    pub(crate) fn spawn_loop<F>(
        name: &str,
        counters: Arc<LinkCounters>,
        file: Option<SocketFile>,
        body: F,
    ) -> io::Result<Listener>
    where
        F: FnOnce(&AtomicBool) + Send + 'static,
    {
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            conns: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        });
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("{name}-rx"))
                .spawn(move || body(&shared.stop))?
        };
        Ok(Listener {
            name: name.to_owned(),
            shared,
            counters,
            thread: Some(thread),
            file,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn counters(&self) -> &Arc<LinkCounters> {
        &self.counters
    }

    /// The socket file this listener created, if any.
    pub fn socket_path(&self) -> Option<&std::path::Path> {
        self.file.as_ref().map(SocketFile::path)
    }

    /// Stops accepting, closes every open connection and removes the socket file.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        for (_, socket) in self.shared.conns.lock().drain() {
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
        self.file = None;
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop<H>(
    name: &str,
    socket: &Socket,
    shared: &Arc<Shared>,
    limits: LinkLimits,
    counters: &Arc<LinkCounters>,
    handler: H,
) where
    H: Fn(Conn) + Send + Sync + 'static,
{
    let handler = Arc::new(handler);
    let mut starved = false;
    while !shared.stop.load(Ordering::Acquire) {
        match wait_readable(socket, STOP_POLL) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::error!(link = name, error = %e, "waiting for connections failed");
                return;
            }
        }
        let (conn, peer) = match socket.accept() {
            Ok(accepted) => accepted,
            Err(e) if transient_accept_error(&e) => continue,
            Err(e) if out_of_descriptors(&e) => {
                starve(name, &e, &mut starved, counters);
                continue;
            }
            Err(e) => {
                tracing::error!(link = name, error = %e, "accept failed; backing off");
                std::thread::sleep(STOP_POLL);
                continue;
            }
        };
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let peer = describe_peer(&peer, id);
        let Some(slot) = counters.try_slot(limits.max_ports) else {
            tracing::warn!(link = name, %peer, max = limits.max_ports, "too many ports; connection refused");
            continue;
        };
        match conn.try_clone() {
            Ok(clone) => {
                shared.conns.lock().insert(id, clone);
            }
            // The connection closes (dropped here): shed, not left waiting in the backlog.
            Err(e) if out_of_descriptors(&e) => {
                starve(name, &e, &mut starved, counters);
                continue;
            }
            Err(e) => {
                tracing::warn!(link = name, error = %e, "cannot register connection");
                continue;
            }
        }
        if starved {
            tracing::info!(link = name, "accepting again");
            starved = false;
        }
        let registration = Registration {
            id,
            shared: shared.clone(),
            _slot: slot,
        };
        let conn = Conn {
            socket: conn,
            peer,
            _registration: registration,
        };
        let handler = handler.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("{name}-rx"))
            .spawn(move || handler(conn));
        if let Err(e) = spawned {
            tracing::warn!(link = name, error = %e, "cannot start a connection thread");
        }
    }
}

/// Whether `e` says this process (`EMFILE`) or the system (`ENFILE`) has no descriptor left.
fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// Counts a connection lost for want of descriptors, warns when that starts (not on every
/// retry), and backs off.
fn starve(name: &str, e: &io::Error, starved: &mut bool, counters: &LinkCounters) {
    LinkCounters::bump(&counters.out_of_descriptors);
    if !*starved {
        tracing::warn!(link = name, error = %e, "cannot accept: out of descriptors; retrying");
        *starved = true;
    }
    std::thread::sleep(STOP_POLL);
}

/// Errors after which accepting again is right (the peer gave up, or a signal).
fn transient_accept_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock | io::ErrorKind::ConnectionAborted
    )
}

/// A peer address for logs and port names; unnamed unix peers get the connection's number.
pub(crate) fn describe_peer(addr: &SockAddr, id: u64) -> String {
    if let Some(a) = addr.as_socket() {
        return a.to_string();
    }
    if let Some((cid, port)) = addr.as_vsock_address() {
        return format!("vsock:{cid}:{port}");
    }
    if let Some(p) = addr.as_pathname() {
        return p.display().to_string();
    }
    format!("unix#{id}")
}

/// Waits until `fd` is readable, at most `timeout`. Returns whether it is; an error once the
/// socket can never become readable (see [`crate::sys::wait_readable`]).
pub(crate) fn wait_readable(fd: &impl AsFd, timeout: Duration) -> io::Result<bool> {
    crate::sys::wait_readable(fd.as_fd(), Some(timeout))
}
