//! Automatic port forwarding: the ports guest programs listen on, exposed on the host's
//! loopback without anyone asking.
//!
//! Something watches a guest's namespace ([`watch`]: the guest agent inside a VM, or
//! host-switch itself for `run` and `--netns` guests) and tells the [`AutoForwards`] registry
//! the complete set of TCP and UDP ports that guest listens on ([`AutoForwards::sync`]). The
//! registry exposes each new port on 127.0.0.1 and ::1 (same port, or as [`Policy`] maps it)
//! through the forwarder's [`Control`], to the guest's address and port, and unexposes the
//! ports that are gone. A sync carries the whole set, so a lost or repeated one does no harm
//! and a guest that reconnects (or a host-switch that restarted) converges on the next one.
//!
//! Guarantees:
//! - Failure is reported, not fatal: a host port that cannot be bound (in use, privileged) is
//!   kept in the registry with its error, shown in `GET /services/forwarder/all` beside the
//!   forwards that work, and tried again on every later sync.
//! - Bounded: at most [`Policy::max_per_guest`] ports per guest and [`MAX_GUESTS`] guests;
//!   beyond, ports are skipped and counted ([`AutoCounters::refused`]).
//! - A guest whose link goes away ([`AutoForwards::forget_macs`], from the switch's
//!   guest-gone hook) loses its forwards at once.
//! - Policy: `--auto-forward-ports` and `--auto-forward-deny` say which guest ports may be
//!   forwarded, `--auto-forward-map` gives a port another host port; `--no-auto-forward`
//!   refuses them all.

pub mod http;
pub mod watch;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use clap::Args;
use forwarder::{Control, ExposeError, Protocol};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use stack::wire::EthernetAddress;

pub use crate::netlink::diag::Transport;

/// Milliseconds between two looks at a namespace's listening sockets, by default.
pub const DEFAULT_INTERVAL_MS: u64 = 500;
/// Ports one guest may have forwarded automatically, by default.
pub const DEFAULT_MAX_PER_GUEST: usize = 256;
/// Guests with automatic forwards at most.
pub const MAX_GUESTS: usize = 1024;

/// One guest port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortKey {
    pub protocol: Transport,
    pub port: u16,
}

/// The automatic forwarding flags of `host-switch` and `host-switch run`.
#[derive(Debug, Clone, Args)]
pub struct AutoForwardArgs {
    /// Do not forward the ports guests listen on (neither for guest agents nor by watching a
    /// --netns or `run` namespace).
    #[arg(long = "no-auto-forward")]
    pub no_auto_forward: bool,
    /// Guest ports that may be forwarded automatically: PORT or FIRST-LAST, comma-separated
    /// or repeated (default: all).
    #[arg(long = "auto-forward-ports", value_delimiter = ',', value_parser = parse_range)]
    pub ports: Vec<(u16, u16)>,
    /// Guest ports never forwarded automatically: PORT or FIRST-LAST, comma-separated or
    /// repeated.
    #[arg(long = "auto-forward-deny", value_delimiter = ',', value_parser = parse_range)]
    pub deny: Vec<(u16, u16)>,
    /// Forward guest port G on host port H instead: [tcp/|udp/]G=H. Repeatable.
    #[arg(long = "auto-forward-map", value_parser = parse_mapping)]
    pub map: Vec<Mapping>,
    /// Milliseconds between two looks at a watched namespace's listening sockets.
    #[arg(long = "auto-forward-interval", default_value_t = DEFAULT_INTERVAL_MS, value_parser = clap::value_parser!(u64).range(50..=60_000))]
    pub interval_ms: u64,
    /// Ports forwarded automatically per guest (beyond: skipped and counted).
    #[arg(long = "max-auto-forwards", default_value_t = DEFAULT_MAX_PER_GUEST)]
    pub max_per_guest: usize,
}

/// `--auto-forward-map`: guest port `guest` on host port `host`, for one protocol or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    pub protocol: Option<Transport>,
    pub guest: u16,
    pub host: u16,
}

fn parse_range(s: &str) -> Result<(u16, u16), String> {
    let port = |p: &str| p.trim().parse::<u16>().map_err(|e| format!("{p:?}: {e}"));
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (port(a)?, port(b)?),
        None => (port(s)?, port(s)?),
    };
    if a > b {
        return Err(format!("{s}: the first port is above the last"));
    }
    Ok((a, b))
}

fn parse_mapping(s: &str) -> Result<Mapping, String> {
    let (protocol, rest) = match s.split_once('/') {
        Some(("tcp", rest)) => (Some(Transport::Tcp), rest),
        Some(("udp", rest)) => (Some(Transport::Udp), rest),
        Some((other, _)) => return Err(format!("{other:?}: expected tcp or udp")),
        None => (None, s),
    };
    let (guest, host) = rest
        .split_once('=')
        .ok_or_else(|| format!("{s}: expected [tcp/|udp/]GUEST=HOST"))?;
    let port = |p: &str| p.trim().parse::<u16>().map_err(|e| format!("{p:?}: {e}"));
    Ok(Mapping {
        protocol,
        guest: port(guest)?,
        host: port(host)?,
    })
}

/// What may be forwarded automatically, and where.
#[derive(Debug, Clone)]
pub struct Policy {
    pub enabled: bool,
    /// Allowed guest port ranges; empty allows all.
    pub allow: Vec<(u16, u16)>,
    pub deny: Vec<(u16, u16)>,
    pub map: Vec<Mapping>,
    pub max_per_guest: usize,
    /// The host addresses each port is exposed on.
    pub host_addrs: Vec<IpAddr>,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            enabled: true,
            allow: Vec::new(),
            deny: Vec::new(),
            map: Vec::new(),
            max_per_guest: DEFAULT_MAX_PER_GUEST,
            host_addrs: vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ],
        }
    }
}

impl Policy {
    pub fn from_args(args: &AutoForwardArgs) -> Policy {
        Policy {
            enabled: !args.no_auto_forward,
            allow: args.ports.clone(),
            deny: args.deny.clone(),
            map: args.map.clone(),
            max_per_guest: args.max_per_guest,
            ..Policy::default()
        }
    }

    /// The host port for `key`, or why it is not forwarded.
    pub fn host_port(&self, key: PortKey) -> Result<u16, &'static str> {
        let within =
            |ranges: &[(u16, u16)]| ranges.iter().any(|(a, b)| (*a..=*b).contains(&key.port));
        if !self.enabled {
            return Err("automatic forwarding is off");
        }
        if key.port == 0 || (!self.allow.is_empty() && !within(&self.allow)) {
            return Err("not in --auto-forward-ports");
        }
        if within(&self.deny) {
            return Err("in --auto-forward-deny");
        }
        Ok(self
            .map
            .iter()
            .find(|m| m.guest == key.port && m.protocol.is_none_or(|p| p == key.protocol))
            .map_or(key.port, |m| m.host))
    }
}

/// The registry's counters.
#[derive(Debug, Default)]
pub struct AutoCounters {
    /// Syncs received.
    pub syncs: AtomicU64,
    /// Ports skipped for a bound ([`Policy::max_per_guest`], [`MAX_GUESTS`]).
    pub refused: AtomicU64,
    /// Host binds that failed (each retried on later syncs).
    pub bind_failures: AtomicU64,
}

/// [`AutoForwards::usage`]: the per-guest bound, guests and ports forwarded now, ports
/// refused for a bound, host binds that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AutoUsage {
    pub max_per_guest: usize,
    pub guests: usize,
    pub ports: usize,
    pub refused: u64,
    pub bind_failures: u64,
}

/// The outcome for one port of a sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortStatus {
    pub protocol: Transport,
    pub port: u16,
    /// The host port, when the policy forwards this one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_port: Option<u16>,
    /// Host addresses serving it.
    pub exposed: Vec<String>,
    /// Host addresses that could not be bound, with why.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub errors: Vec<String>,
    /// Why the port is not forwarded at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

#[derive(Debug, Default)]
struct Entry {
    host_port: Option<u16>,
    /// Host addresses (`ip:port` strings, as the forwarder keys them) bound for this port.
    bound: Vec<String>,
    /// Host addresses not bound, with the error.
    failed: Vec<(String, String)>,
    skipped: Option<String>,
}

#[derive(Debug, Default)]
struct Guest {
    mac: Option<EthernetAddress>,
    ports: BTreeMap<PortKey, Entry>,
}

/// The automatic forwards of every guest. See the module docs.
pub struct AutoForwards {
    control: Arc<Control>,
    policy: Policy,
    guests: Mutex<BTreeMap<IpAddr, Guest>>,
    pub counters: AutoCounters,
}

impl std::fmt::Debug for AutoForwards {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AutoForwards")
            .field("policy", &self.policy)
            .field("guests", &self.guests.lock().len())
            .finish_non_exhaustive()
    }
}

fn protocol(t: Transport) -> Protocol {
    match t {
        Transport::Tcp => Protocol::Tcp,
        Transport::Udp => Protocol::Udp,
    }
}

impl AutoForwards {
    pub fn new(control: Arc<Control>, policy: Policy) -> Arc<AutoForwards> {
        Arc::new(AutoForwards {
            control,
            policy,
            guests: Mutex::new(BTreeMap::new()),
            counters: AutoCounters::default(),
        })
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The bound and its use, for `/stats`' `limits.auto_forwards`.
    pub fn usage(&self) -> AutoUsage {
        let guests = self.guests.lock();
        AutoUsage {
            max_per_guest: self.policy.max_per_guest,
            guests: guests.len(),
            ports: guests.values().map(|g| g.ports.len()).sum(),
            refused: self.counters.refused.load(Ordering::Relaxed),
            bind_failures: self.counters.bind_failures.load(Ordering::Relaxed),
        }
    }

    /// Makes `guest`'s automatic forwards exactly `wanted`: exposes the new ports, unexposes
    /// the ports no longer listed, retries the binds that failed before.
    pub fn sync(&self, guest: IpAddr, wanted: &[PortKey]) -> Vec<PortStatus> {
        self.counters.syncs.fetch_add(1, Ordering::Relaxed);
        let mut guests = self.guests.lock();
        if !guests.contains_key(&guest) && guests.len() >= MAX_GUESTS {
            self.counters.refused.fetch_add(1, Ordering::Relaxed);
            return wanted
                .iter()
                .map(|k| skipped(*k, "too many guests with automatic forwards"))
                .collect();
        }
        let entry = guests.entry(guest).or_default();
        if let Some(mac) = self.control.neighbour(guest) {
            entry.mac = Some(mac);
        }
        let gone: Vec<PortKey> = entry
            .ports
            .keys()
            .filter(|k| !wanted.contains(k))
            .copied()
            .collect();
        for key in gone {
            if let Some(old) = entry.ports.remove(&key) {
                self.unexpose(key, &old);
                tracing::info!(%guest, protocol = key.protocol.name(), port = key.port, "automatic forward removed");
            }
        }
        let mut report = Vec::with_capacity(wanted.len());
        for &key in wanted {
            if !entry.ports.contains_key(&key) && entry.ports.len() >= self.policy.max_per_guest {
                self.counters.refused.fetch_add(1, Ordering::Relaxed);
                report.push(skipped(key, "--max-auto-forwards reached"));
                continue;
            }
            let e = entry.ports.entry(key).or_default();
            match self.policy.host_port(key) {
                Err(why) => {
                    e.skipped = Some(why.to_owned());
                }
                Ok(host_port) => {
                    e.host_port = Some(host_port);
                    self.expose(guest, key, host_port, e);
                }
            }
            report.push(status(key, e));
        }
        report
    }

    fn expose(&self, guest: IpAddr, key: PortKey, host_port: u16, e: &mut Entry) {
        let remote = SocketAddr::new(guest, key.port).to_string();
        e.failed.clear();
        for addr in &self.policy.host_addrs {
            let local = SocketAddr::new(*addr, host_port).to_string();
            if e.bound.contains(&local) {
                continue;
            }
            match self
                .control
                .expose(protocol(key.protocol), &local, &remote, None)
            {
                Ok(()) => {
                    tracing::info!(%local, %remote, protocol = key.protocol.name(), "automatic forward added");
                    e.bound.push(local);
                }
                // A host without IPv6 loopback has no ::1 to bind: nothing to report.
                Err(ExposeError::Bind { source, .. })
                    if addr.is_ipv6() && source.raw_os_error() == Some(libc::EADDRNOTAVAIL) => {}
                Err(err) => {
                    self.counters.bind_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%local, %remote, protocol = key.protocol.name(), error = %err, "automatic forward not bound");
                    e.failed.push((local, err.to_string()));
                }
            }
        }
    }

    fn unexpose(&self, key: PortKey, e: &Entry) {
        for local in &e.bound {
            let _ = self.control.unexpose(protocol(key.protocol), local);
        }
    }

    /// Removes every automatic forward of `guest`.
    pub fn forget(&self, guest: IpAddr) {
        if let Some(g) = self.guests.lock().remove(&guest) {
            for (key, e) in &g.ports {
                self.unexpose(*key, e);
            }
            tracing::info!(%guest, ports = g.ports.len(), "automatic forwards of a gone guest removed");
        }
    }

    /// Removes the automatic forwards of the guests with these MACs (their link went away).
    pub fn forget_macs(&self, macs: &[EthernetAddress]) {
        let gone: Vec<IpAddr> = self
            .guests
            .lock()
            .iter()
            .filter(|(ip, g)| {
                g.mac
                    .or_else(|| self.control.neighbour(**ip))
                    .is_some_and(|m| macs.contains(&m))
            })
            .map(|(ip, _)| *ip)
            .collect();
        for guest in gone {
            self.forget(guest);
        }
    }

    /// Every automatic forward, working or failed, as `/services/forwarder/all` lists it:
    /// gvproxy's `local`, `remote`, `protocol`, with `"auto": true` and, for a failed one,
    /// `"error"`.
    pub fn listing(&self) -> Vec<serde_json::Value> {
        let guests = self.guests.lock();
        let mut out = Vec::new();
        for (ip, g) in guests.iter() {
            for (key, e) in &g.ports {
                let remote = SocketAddr::new(*ip, key.port).to_string();
                for local in &e.bound {
                    out.push(serde_json::json!({"local": local, "remote": remote,
                        "protocol": key.protocol.name(), "auto": true}));
                }
                for (local, error) in &e.failed {
                    out.push(serde_json::json!({"local": local, "remote": remote,
                        "protocol": key.protocol.name(), "auto": true, "error": error}));
                }
            }
        }
        out
    }

    /// Whether `local` (`protocol`) is one of the automatic forwards.
    pub fn is_auto(&self, protocol: Transport, local: &str) -> bool {
        self.guests.lock().values().any(|g| {
            g.ports
                .iter()
                .any(|(k, e)| k.protocol == protocol && e.bound.iter().any(|l| l == local))
        })
    }
}

fn skipped(key: PortKey, why: &str) -> PortStatus {
    PortStatus {
        protocol: key.protocol,
        port: key.port,
        host_port: None,
        exposed: Vec::new(),
        errors: Vec::new(),
        skipped: Some(why.to_owned()),
    }
}

fn status(key: PortKey, e: &Entry) -> PortStatus {
    PortStatus {
        protocol: key.protocol,
        port: key.port,
        host_port: e.host_port,
        exposed: e.bound.clone(),
        errors: e
            .failed
            .iter()
            .map(|(l, err)| format!("{l}: {err}"))
            .collect(),
        skipped: e.skipped.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_allows_denies_and_maps() {
        let args = AutoForwardArgs {
            no_auto_forward: false,
            ports: vec![(1000, 2000), (80, 80)],
            deny: vec![(1500, 1600)],
            map: vec![parse_mapping("tcp/80=8080").unwrap()],
            interval_ms: DEFAULT_INTERVAL_MS,
            max_per_guest: 4,
        };
        let p = Policy::from_args(&args);
        let key = |protocol, port| PortKey { protocol, port };
        assert_eq!(p.host_port(key(Transport::Tcp, 80)), Ok(8080));
        assert_eq!(p.host_port(key(Transport::Udp, 80)), Ok(80));
        assert_eq!(p.host_port(key(Transport::Tcp, 1200)), Ok(1200));
        assert!(p.host_port(key(Transport::Tcp, 1550)).is_err());
        assert!(p.host_port(key(Transport::Tcp, 22)).is_err());
        assert!(
            Policy {
                enabled: false,
                ..Policy::default()
            }
            .host_port(key(Transport::Tcp, 1200))
            .is_err()
        );
        assert_eq!(parse_range("10-20"), Ok((10, 20)));
        assert!(parse_range("20-10").is_err());
        assert!(parse_mapping("sctp/1=2").is_err());
        assert_eq!(
            parse_mapping("53=5353").unwrap(),
            Mapping {
                protocol: None,
                guest: 53,
                host: 5353
            }
        );
    }
}
