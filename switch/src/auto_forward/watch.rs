//! Watching a namespace's listening sockets and publishing the forwardable ones.
//!
//! A [`Watcher`] thread looks at the listening sockets of one namespace every interval (a
//! `NETLINK_SOCK_DIAG` socket opened in that namespace, [`crate::netlink::diag`]), keeps those
//! a peer can reach through the guest's address ([`forwardable`]), and hands the whole set to
//! a [`Publish`] when it changed, when the guest's address or connection changed, when the
//! last publish failed, or every [`REFRESH`] regardless (a host-switch that restarted hears
//! it again). The period is bounded below by 50 ms; a look costs four netlink dumps.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::PortKey;
use crate::netlink::Netlink;
use crate::netlink::diag::{self, Listening};

/// Longest time between two publishes of an unchanged set.
pub const REFRESH: Duration = Duration::from_secs(10);
/// Shortest period between two looks.
pub const MIN_INTERVAL: Duration = Duration::from_millis(50);

/// Where a watcher sends the set of ports.
pub trait Publish: Send + 'static {
    /// Tells the host that `guest` listens on exactly `ports`; false if it could not be
    /// told (tried again at the next look).
    fn publish(&mut self, guest: Ipv4Addr, ports: &[PortKey]) -> bool;
}

impl<F> Publish for F
where
    F: FnMut(Ipv4Addr, &[PortKey]) -> bool + Send + 'static,
{
    fn publish(&mut self, guest: Ipv4Addr, ports: &[PortKey]) -> bool {
        self(guest, ports)
    }
}

/// The guest's address now and a counter that changes with its connection; `None` while it
/// has no address.
pub type GuestNow = Box<dyn Fn() -> Option<(Ipv4Addr, u64)> + Send>;

/// The ports among `listening` that a connection to `guest` reaches: bound to the wildcard
/// (`0.0.0.0`, or `::` taking IPv4 too) or to `guest` itself. Sockets bound to loopback or to
/// other addresses, and IPv6-only ones, are not reachable through the guest's IPv4 address.
pub fn forwardable(listening: &[Listening], guest: Ipv4Addr) -> Vec<PortKey> {
    let set: BTreeSet<PortKey> = listening
        .iter()
        .filter(|l| match l.addr.ip() {
            IpAddr::V4(ip) => ip.is_unspecified() || ip == guest,
            IpAddr::V6(ip) => ip.is_unspecified() && !l.v6only,
        })
        .filter(|l| l.addr.port() != 0)
        .map(|l| PortKey {
            protocol: l.transport,
            port: l.addr.port(),
        })
        .collect();
    set.into_iter().collect()
}

/// A running watcher; stops when dropped.
#[derive(Debug)]
pub struct Watcher {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Watcher {
    /// Starts watching through `nl` (a sock_diag socket in the watched namespace).
    pub fn spawn(
        mut nl: Netlink,
        interval: Duration,
        guest: GuestNow,
        mut publish: impl Publish,
    ) -> std::io::Result<Watcher> {
        let stop = Arc::new(AtomicBool::new(false));
        let interval = interval.max(MIN_INTERVAL);
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("auto-forward".into())
                .spawn(move || {
                    let mut last: Option<(Ipv4Addr, u64, Vec<PortKey>)> = None;
                    let mut published_at = Instant::now();
                    let mut failures = 0u32;
                    while !stop.load(Ordering::Relaxed) {
                        if let Some((ip, generation)) = guest() {
                            match diag::listening(&mut nl) {
                                Ok(all) => {
                                    let ports = forwardable(&all, ip);
                                    let now = (ip, generation, ports);
                                    let due = last.as_ref() != Some(&now)
                                        || failures > 0
                                        || published_at.elapsed() >= REFRESH;
                                    if due {
                                        if publish.publish(now.0, &now.2) {
                                            failures = 0;
                                        } else {
                                            failures = failures.saturating_add(1);
                                        }
                                        published_at = Instant::now();
                                        last = Some(now);
                                    }
                                }
                                Err(e) => {
                                    tracing::warn!(error = %e, "cannot list listening sockets");
                                }
                            }
                        }
                        sleep(interval, &stop);
                    }
                })?
        };
        Ok(Watcher {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn sleep(d: Duration, stop: &AtomicBool) {
    let until = Instant::now() + d;
    while !stop.load(Ordering::Relaxed) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
}

/// host-switch watching a guest namespace itself (`run`, `--netns`): the listening sockets of
/// `netns`, for the IPv4 address TAP `tap` has there (looked up at every look, so a guest
/// that configures its own address is followed too), synced straight into `registry`.
pub fn watch_netns(
    netns: &crate::netns::Netns,
    tap: &str,
    registry: Arc<super::AutoForwards>,
    interval: Duration,
) -> Result<Watcher, String> {
    let (diag_nl, route_nl) = netns
        .run(|| -> std::io::Result<(Netlink, Netlink)> {
            Ok((diag::open()?, crate::netlink::route::open()?))
        })
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot watch the namespace's sockets: {e}"))?;
    let route_nl = parking_lot::Mutex::new(route_nl);
    let tap = tap.to_owned();
    let guest: GuestNow = Box::new(move || {
        let mut nl = route_nl.lock();
        let index = crate::netlink::route::link_index(&mut nl, &tap).ok()?;
        let (ip, _) = *crate::netlink::route::ipv4_addresses(&mut nl, index)
            .ok()?
            .first()?;
        Some((ip, 0))
    });
    // Binds that failed are retried by the registry on the next sync (at the latest after
    // [`REFRESH`]); they are reported there, not here.
    let publish = move |guest: Ipv4Addr, ports: &[PortKey]| {
        registry.sync(IpAddr::V4(guest), ports);
        true
    };
    Watcher::spawn(diag_nl, interval, guest, publish).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auto_forward::Transport;
    use std::net::SocketAddr;

    fn l(t: Transport, addr: &str, v6only: bool) -> Listening {
        Listening {
            transport: t,
            addr: addr.parse::<SocketAddr>().unwrap(),
            v6only,
        }
    }

    #[test]
    fn only_what_the_guest_address_reaches() {
        let guest = Ipv4Addr::new(192, 168, 127, 2);
        let all = [
            l(Transport::Tcp, "0.0.0.0:80", false),
            l(Transport::Tcp, "[::]:80", false),
            l(Transport::Tcp, "[::]:81", false),
            l(Transport::Tcp, "[::]:82", true),
            l(Transport::Tcp, "127.0.0.1:83", false),
            l(Transport::Tcp, "[::1]:84", false),
            l(Transport::Udp, "192.168.127.2:53", false),
            l(Transport::Udp, "10.0.0.1:54", false),
            l(Transport::Udp, "0.0.0.0:0", false),
        ];
        let got = forwardable(&all, guest);
        let key = |protocol, port| PortKey { protocol, port };
        assert_eq!(
            got,
            [
                key(Transport::Tcp, 80),
                key(Transport::Tcp, 81),
                key(Transport::Udp, 53)
            ]
        );
    }
}
