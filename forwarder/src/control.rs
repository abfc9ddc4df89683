//! The control plane shared by the API and the workers: port forwards, guest neighbours,
//! counters, and the in-guest API's handler.
//!
//! Forwards are bound here, in the caller's thread, so a failure ("address already in use")
//! is reported at once; the bound socket is then handed to one worker over its command
//! channel (bounded, with a wake-up) and served there. Nothing here waits for a worker, so
//! the in-guest API, which runs on a worker, may call it too. `unexpose` shuts the listening
//! socket down before it returns, so the host port refuses connections from then on.
//!
//! Locks here are control-plane only (expose, a new guest address, a new inbound
//! connection); no packet path takes one.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use crossbeam_channel::Sender;
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use socket2::{Domain, Protocol as SockProtocol, Socket, Type};
use stack::wire::EthernetAddress;

use crate::budget::{Budget, BudgetUsage};
use crate::config::Config;
use crate::directory::Directory;
use crate::stats::{Counters, ForwarderStats};
use crate::trim::Gate;
use crate::worker::Notify;

/// What a port forward carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    /// A unix stream socket on the host, TCP in the guest.
    Unix,
}

impl std::str::FromStr for Protocol {
    type Err = ExposeError;
    fn from_str(s: &str) -> Result<Protocol, ExposeError> {
        match s {
            "" | "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            "unix" => Ok(Protocol::Unix),
            other => Err(ExposeError::Protocol(other.to_owned())),
        }
    }
}

/// One forward, as `/services/forwarder/all` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Forward {
    pub local: String,
    pub remote: String,
    pub protocol: Protocol,
}

/// Why a forward could not be added or removed.
#[derive(Debug, thiserror::Error)]
pub enum ExposeError {
    #[error("proxy already running")]
    AlreadyRunning,
    #[error("proxy not found")]
    NotFound,
    #[error("unknown protocol {0:?}")]
    Protocol(String),
    #[error("bad address {0:?}")]
    Address(String),
    #[error("cannot listen on {local}: {source}")]
    Bind {
        local: String,
        source: std::io::Error,
    },
    #[error("the forwarder is not running")]
    NoWorkers,
    #[error("no IPv6 on the guests' side to reach {0:?} from (IPv6 is off)")]
    NoIpv6(String),
}

/// What the in-guest API says about the bytes of a request so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiReply {
    /// Not a whole request yet.
    Incomplete,
    /// The whole response to send, after which the connection is closed.
    Done(Vec<u8>),
}

/// Serves HTTP requests that guests send to the gateway's API port.
pub trait GuestApi: Send + Sync {
    fn respond(&self, request: &[u8], guest: IpAddr) -> ApiReply;
}

/// A socket handed to a worker.
#[derive(Debug)]
pub(crate) enum Command {
    Listen {
        id: u64,
        protocol: Protocol,
        socket: Socket,
        remote: SocketAddr,
    },
    Unlisten {
        id: u64,
    },
    /// These guests' link went away: drop their flows.
    GuestGone {
        macs: Arc<[EthernetAddress]>,
    },
    /// A multicast group gained its first guest member (`true`) or lost its last.
    Group {
        group: IpAddr,
        joined: bool,
    },
}

struct WorkerLink {
    commands: Sender<Command>,
    notify: Arc<dyn Notify>,
}

struct Entry {
    id: u64,
    forward: Forward,
    worker: usize,
    /// A second handle on the listening socket, to shut it down synchronously.
    handle: Option<Socket>,
    unix_path: Option<PathBuf>,
}

/// Guest addresses the control plane (and each worker) remembers at most: their source
/// addresses are the guests' to choose.
pub const MAX_NEIGHBOURS: usize = 4096;

/// The control plane. See the module docs.
pub struct Control {
    workers: Mutex<Vec<WorkerLink>>,
    counters: Mutex<Vec<Arc<Counters>>>,
    forwards: Mutex<Vec<Entry>>,
    neighbours: RwLock<HashMap<IpAddr, EthernetAddress>>,
    guest_api: OnceLock<Arc<dyn GuestApi>>,
    /// The bounds shared by every worker; made from the first worker's configuration.
    budget: OnceLock<Arc<Budget>>,
    /// Which worker owns which flow (only asked with more than one worker).
    directory: OnceLock<Arc<Directory>>,
    /// Paces the workers' trims of the allocator (see [`crate::trim`]).
    trim_gate: Arc<Gate>,
    /// Whether a forward may go to a guest's IPv6 address (the gateway has one to send from);
    /// known once a worker has started.
    ipv6_forwards: OnceLock<bool>,
    default_guest: IpAddr,
    next_id: AtomicU64,
    /// Host ports the multicast relay sends guests' datagrams from (see `mcast`).
    relay_senders: RwLock<std::collections::HashSet<u16>>,
}

/// Relay sending ports remembered at most.
pub const MAX_RELAY_SENDERS: usize = 4096;
/// The worker that joins multicast groups on the host.
const RELAY_WORKER: usize = 0;

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("workers", &self.workers.lock().len())
            .field("forwards", &self.forwards.lock().len())
            .finish_non_exhaustive()
    }
}

/// Commands waiting for each worker.
const COMMAND_QUEUE: usize = 256;

impl Control {
    /// `default_guest` is where a forward without a remote address goes when the caller is
    /// not a guest.
    pub fn new(default_guest: IpAddr, neighbours: &[(IpAddr, EthernetAddress)]) -> Arc<Control> {
        Arc::new(Control {
            workers: Mutex::new(Vec::new()),
            counters: Mutex::new(Vec::new()),
            forwards: Mutex::new(Vec::new()),
            neighbours: RwLock::new(neighbours.iter().copied().collect()),
            guest_api: OnceLock::new(),
            budget: OnceLock::new(),
            directory: OnceLock::new(),
            trim_gate: Arc::default(),
            ipv6_forwards: OnceLock::new(),
            default_guest,
            next_id: AtomicU64::new(1),
            relay_senders: RwLock::new(std::collections::HashSet::new()),
        })
    }

    /// A multicast group gained its first guest member (`joined`) or lost its last: the
    /// relay worker joins or leaves it on the host. Never waits; false if the worker could
    /// not be told (its queue full, or no worker).
    pub fn multicast_group(&self, group: IpAddr, joined: bool) -> bool {
        let workers = self.workers.lock();
        let Some(link) = workers.get(RELAY_WORKER) else {
            return false;
        };
        match link.commands.try_send(Command::Group { group, joined }) {
            Ok(()) => {
                link.notify.notify();
                true
            }
            Err(_) => false,
        }
    }

    /// Remembers a host port the relay sends guests' multicast from; false when the set is
    /// full ([`MAX_RELAY_SENDERS`]).
    pub(crate) fn add_relay_sender(&self, port: u16) -> bool {
        if self.relay_senders.read().contains(&port) {
            return true;
        }
        let mut set = self.relay_senders.write();
        if set.len() >= MAX_RELAY_SENDERS {
            return false;
        }
        set.insert(port);
        true
    }

    /// Whether the relay sends from `port`.
    pub(crate) fn is_relay_sender(&self, port: u16) -> bool {
        self.relay_senders.read().contains(&port)
    }

    /// Registers a worker (done by its factory); returns its command receiver.
    pub(crate) fn register(
        &self,
        index: usize,
        notify: Arc<dyn Notify>,
        counters: Arc<Counters>,
    ) -> crossbeam_channel::Receiver<Command> {
        let (tx, rx) = crossbeam_channel::bounded(COMMAND_QUEUE);
        let mut workers = self.workers.lock();
        let link = WorkerLink {
            commands: tx,
            notify,
        };
        if index < workers.len() {
            if let Some(slot) = workers.get_mut(index) {
                *slot = link;
            }
        } else {
            workers.push(link);
        }
        self.counters.lock().push(counters);
        rx
    }

    /// Sets the handler of the in-guest API (once).
    pub fn set_guest_api(&self, api: Arc<dyn GuestApi>) {
        let _ = self.guest_api.set(api);
    }

    pub(crate) fn guest_api(&self) -> Option<Arc<dyn GuestApi>> {
        self.guest_api.get().cloned()
    }

    /// The workers' shared budget, made from `config` by the first worker to ask.
    pub(crate) fn budget(&self, config: &Config) -> Arc<Budget> {
        self.budget
            .get_or_init(|| Arc::new(Budget::new(config)))
            .clone()
    }

    /// What `config` says forwards can reach: told by each worker as it starts.
    pub(crate) fn learn_config(&self, config: &Config) {
        let _ = self.ipv6_forwards.set(config.gateway_ip6.is_some());
    }

    /// The workers' shared flow directory.
    pub(crate) fn directory(&self) -> Arc<Directory> {
        self.directory
            .get_or_init(|| Arc::new(Directory::new()))
            .clone()
    }

    /// The gate every worker's trims of the allocator pass.
    pub(crate) fn trim_gate(&self) -> Arc<Gate> {
        self.trim_gate.clone()
    }

    /// The shared bounds and what is taken of them now; `None` before a worker started.
    pub fn budget_usage(&self) -> Option<BudgetUsage> {
        self.budget.get().map(|b| b.usage())
    }

    /// The sum of every worker's counters.
    pub fn stats(&self) -> ForwarderStats {
        let mut sum = ForwarderStats::default();
        for c in self.counters.lock().iter() {
            sum.add(&c.snapshot());
        }
        sum
    }

    /// The MAC guest `ip` was last seen with, if it was.
    pub fn neighbour(&self, ip: IpAddr) -> Option<EthernetAddress> {
        self.neighbours.read().get(&ip).copied()
    }

    /// Learns (or updates) where guest `ip` is: from its flows (the workers) and from the
    /// ARP it sends the gateway (a worker's gateway). False when the table is full
    /// ([`MAX_NEIGHBOURS`] addresses) and `ip` is new.
    pub fn learn_neighbour(&self, ip: IpAddr, mac: EthernetAddress) -> bool {
        if self.neighbours.read().get(&ip) == Some(&mac) {
            return true;
        }
        let mut table = self.neighbours.write();
        if table.len() >= MAX_NEIGHBOURS && !table.contains_key(&ip) {
            return false;
        }
        table.insert(ip, mac);
        true
    }

    /// The guests with these MACs are gone (their link detached): every worker drops their
    /// TCP flows (the host peer sees RST), UDP mappings and pending echo requests, counted as
    /// `flows_guest_gone`. Never waits: returns how many workers were told; a worker whose
    /// command queue is full is not, and its flows of those guests end by their own timers.
    pub fn guest_gone(&self, macs: &[EthernetAddress]) -> usize {
        let macs: Arc<[EthernetAddress]> = Arc::from(macs);
        let workers = self.workers.lock();
        let mut told = 0;
        for link in workers.iter() {
            match link
                .commands
                .try_send(Command::GuestGone { macs: macs.clone() })
            {
                Ok(()) => {
                    link.notify.notify();
                    told += 1;
                }
                Err(crossbeam_channel::TrySendError::Full(_)) => {
                    tracing::warn!("a worker's command queue is full: a gone guest's flows stay");
                }
                // The worker has stopped, and its flows with it.
                Err(crossbeam_channel::TrySendError::Disconnected(_)) => {}
            }
        }
        told
    }

    /// Every forward.
    pub fn all(&self) -> Vec<Forward> {
        self.forwards
            .lock()
            .iter()
            .map(|e| e.forward.clone())
            .collect()
    }

    /// Adds a forward from the host's `local` to the guest's `remote`. A remote without an
    /// address (":22" or "22") goes to `caller`, or the default guest.
    pub fn expose(
        &self,
        protocol: Protocol,
        local: &str,
        remote: &str,
        caller: Option<IpAddr>,
    ) -> Result<(), ExposeError> {
        let remote_addr = parse_remote(remote, caller.unwrap_or(self.default_guest))?;
        if remote_addr.is_ipv6() && self.ipv6_forwards.get() == Some(&false) {
            return Err(ExposeError::NoIpv6(remote.to_owned()));
        }
        let mut forwards = self.forwards.lock();
        if forwards
            .iter()
            .any(|e| e.forward.local == local && e.forward.protocol == protocol)
        {
            return Err(ExposeError::AlreadyRunning);
        }
        let bind_err = |source| ExposeError::Bind {
            local: local.to_owned(),
            source,
        };
        let (socket, unix_path) = match protocol {
            Protocol::Tcp | Protocol::Udp => {
                let addr: SocketAddr = local
                    .parse()
                    .map_err(|_| ExposeError::Address(local.to_owned()))?;
                (bind_inet(protocol, addr).map_err(bind_err)?, None)
            }
            Protocol::Unix => {
                let path = PathBuf::from(local.strip_prefix("unix://").unwrap_or(local));
                reclaim_stale(&path);
                let listener = UnixListener::bind(&path).map_err(bind_err)?;
                listener.set_nonblocking(true).map_err(bind_err)?;
                (
                    Socket::from(std::os::fd::OwnedFd::from(listener)),
                    Some(path),
                )
            }
        };
        let handle = socket.try_clone().ok();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let workers = self.workers.lock();
        let worker = (id as usize) % workers.len().max(1);
        let link = workers.get(worker).ok_or(ExposeError::NoWorkers)?;
        link.commands
            .try_send(Command::Listen {
                id,
                protocol,
                socket,
                remote: remote_addr,
            })
            .map_err(|_| ExposeError::NoWorkers)?;
        link.notify.notify();
        forwards.push(Entry {
            id,
            forward: Forward {
                local: local.to_owned(),
                remote: remote_addr.to_string(),
                protocol,
            },
            worker,
            handle,
            unix_path,
        });
        Ok(())
    }

    /// Removes every forward: their host sockets stop listening and unix socket files are
    /// removed (done at exit, so a restart can bind the same paths).
    pub fn unexpose_all(&self) {
        let all: Vec<(Protocol, String)> = self
            .forwards
            .lock()
            .iter()
            .map(|e| (e.forward.protocol, e.forward.local.clone()))
            .collect();
        for (protocol, local) in all {
            let _ = self.unexpose(protocol, &local);
        }
    }

    /// Removes the forward on `local`.
    pub fn unexpose(&self, protocol: Protocol, local: &str) -> Result<(), ExposeError> {
        let mut forwards = self.forwards.lock();
        let at = forwards
            .iter()
            .position(|e| e.forward.local == local && e.forward.protocol == protocol)
            .ok_or(ExposeError::NotFound)?;
        let entry = forwards.remove(at);
        drop(forwards);
        if let Some(handle) = &entry.handle
            && protocol != Protocol::Udp
        {
            // A listening socket shut down stops accepting: connects are refused from now.
            let _ = handle.shutdown(std::net::Shutdown::Both);
        }
        if let Some(path) = &entry.unix_path {
            let _ = std::fs::remove_file(path);
        }
        let workers = self.workers.lock();
        if let Some(link) = workers.get(entry.worker) {
            let _ = link.commands.try_send(Command::Unlisten { id: entry.id });
            link.notify.notify();
        }
        Ok(())
    }
}

/// Removes `path` if it is a socket nobody listens on any more (connecting is refused): one
/// left behind by a process that did not exit cleanly. Anything else is left for the bind to
/// report.
fn reclaim_stale(path: &std::path::Path) {
    use std::os::unix::fs::FileTypeExt;
    let is_socket = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket());
    if !is_socket {
        return;
    }
    if let Err(e) = std::os::unix::net::UnixStream::connect(path)
        && e.kind() == std::io::ErrorKind::ConnectionRefused
    {
        tracing::info!(path = %path.display(), "replacing stale socket");
        let _ = std::fs::remove_file(path);
    }
}

fn bind_inet(protocol: Protocol, addr: SocketAddr) -> std::io::Result<Socket> {
    let domain = Domain::for_address(addr);
    let socket = if protocol == Protocol::Udp {
        Socket::new(domain, Type::DGRAM, Some(SockProtocol::UDP))?
    } else {
        Socket::new(domain, Type::STREAM, Some(SockProtocol::TCP))?
    };
    if protocol != Protocol::Udp {
        socket.set_reuse_address(true)?;
    }
    socket.bind(&addr.into())?;
    if protocol != Protocol::Udp {
        socket.listen(1024)?;
    }
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// "1.2.3.4:80", "[::1]:80", ":80" or "80".
fn parse_remote(remote: &str, default: IpAddr) -> Result<SocketAddr, ExposeError> {
    if let Ok(addr) = remote.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let port = remote.strip_prefix(':').unwrap_or(remote);
    port.parse::<u16>()
        .map(|p| SocketAddr::new(default, p))
        .map_err(|_| ExposeError::Address(remote.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn remote_forms() {
        let d = IpAddr::V4(Ipv4Addr::new(192, 168, 127, 2));
        assert_eq!(
            parse_remote(":22", d).unwrap(),
            "192.168.127.2:22".parse().unwrap()
        );
        assert_eq!(
            parse_remote("22", d).unwrap(),
            "192.168.127.2:22".parse().unwrap()
        );
        assert_eq!(
            parse_remote("192.168.127.3:80", d).unwrap(),
            "192.168.127.3:80".parse().unwrap()
        );
        assert!(parse_remote("x", d).is_err());
    }
}
