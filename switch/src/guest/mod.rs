//! `host-switch guest`: the guest side, run inside a VM or a network namespace.
//!
//! The agent creates a TAP (`--tap`, default `eth0`) with the guest's MAC, connects to
//! host-switch ([`transport`]), and moves the TAP's frames over that connection
//! ([`session`]). It leases the TAP's address itself with [`dhcp::DhcpClient`] and configures
//! the TAP over rtnetlink ([`lease`]). When the connection ends it connects again, with a
//! backoff from [`FIRST_BACKOFF`] doubling to [`MAX_BACKOFF`], keeping the TAP and its
//! address, and asks to renew the lease at once (the host may have restarted and forgotten
//! it). Unless `--no-auto-forward`, it watches which TCP and UDP ports programs in its
//! namespace listen on and has host-switch expose each on the host's loopback
//! ([`crate::auto_forward`], [`ports`]).
//!
//! `--setup` ([`setup`]) is network-setup's job: a namespace and a veth pair for the guest
//! switch, the switch started inside with the connection handed over, and a relay of the
//! forwarded ports into the VM's default namespace ([`relay`]).
//!
//! SIGINT and SIGTERM end the agent; the TAP disappears with it.

pub mod lease;
pub mod ports;
pub mod relay;
pub mod session;
pub mod setup;
pub mod transport;

use std::ffi::OsString;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use crossbeam_channel::RecvTimeoutError;
use dhcp::{ClientEvent, DhcpClient};
use stack::wire::EthernetAddress;

use crate::cli::Offload;
use crate::link::offer::{self, Offer};
use crate::netlink::route::{self, LinkChange};
use crate::netns::Netns;
use crate::tap::{Tap, TapOptions};
use lease::Interface;
use session::{Counters, Event, Link, Session};
use transport::Target;

/// The first wait before connecting again.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between two connection attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The MAC gvforwarder gives its TAP, which the gateway's static lease is for.
pub const DEFAULT_MAC: EthernetAddress = EthernetAddress([0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xee]);
/// How often the control loop looks at the stop flag at least.
const TICK: Duration = Duration::from_millis(200);

/// `host-switch guest [OPTIONS] [-- CMD...]`.
#[derive(Debug, Clone, Args)]
pub struct GuestArgs {
    /// host-switch's address: unix:///path, tcp://host:port or vsock://CID:PORT (a -listen
    /// endpoint), a virtio-serial port's device path, stdio, or fd://N.
    #[arg(long)]
    pub connect: String,
    /// The TAP device to create.
    #[arg(long, default_value = "eth0")]
    pub tap: String,
    /// The TAP's MAC address (default 5a:94:ef:e4:0c:ee, the guest with the static lease).
    #[arg(long)]
    pub mac: Option<EthernetAddress>,
    /// The TAP's MTU (default: the lease's).
    #[arg(long)]
    pub mtu: Option<u32>,
    /// TAP offloads: the TAP hands over 64 KiB TCP super-segments, sent whole where
    /// host-switch agrees to a virtio-net header on the connection and cut here otherwise;
    /// `off` opens the TAP without them.
    #[arg(long, value_enum, default_value_t = Offload::On)]
    pub offload: Offload,
    /// Write the lease's DNS servers to this file (nothing is written unless given).
    #[arg(long = "resolv-conf")]
    pub resolv_conf: Option<PathBuf>,
    /// Do not forward the ports programs listen on to the host.
    #[arg(long = "no-auto-forward")]
    pub no_auto_forward: bool,
    /// Milliseconds between two looks at the listening sockets.
    #[arg(long = "auto-forward-interval", default_value_t = crate::auto_forward::DEFAULT_INTERVAL_MS, value_parser = clap::value_parser!(u64).range(50..=60_000))]
    pub auto_forward_interval: u64,
    /// network-setup: create a namespace and a veth pair, run the guest switch inside, relay
    /// the forwarded ports into this namespace.
    #[arg(long)]
    pub setup: bool,
    #[command(flatten)]
    pub setup_args: setup::SetupArgs,
    /// An inherited descriptor already attached to host-switch, used before --connect.
    #[arg(long = "connected-fd", hide = true)]
    pub connected_fd: Option<i32>,
    /// Write logs to this file instead of standard error.
    #[arg(long = "log-file")]
    pub log_file: Option<PathBuf>,
    /// Log at debug level.
    #[arg(long)]
    pub debug: bool,
    /// With --setup: a command to start inside the namespace.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<OsString>,
}

/// Why the agent stopped.
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    #[error(transparent)]
    Target(#[from] transport::TargetError),
    #[error("cannot create the TAP device {name}: {source}")]
    Tap {
        name: String,
        source: crate::tap::TapError,
    },
    #[error("cannot configure {name}: {source}")]
    Configure {
        name: String,
        source: std::io::Error,
    },
    #[error("cannot connect to host-switch at {target}: {source}")]
    Connect {
        target: String,
        source: std::io::Error,
    },
    #[error("the connection to host-switch at {0} ended and cannot be made again")]
    Gone(String),
    #[error("{0}")]
    Setup(String),
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
}

/// What the agent shares with its port watcher.
#[derive(Debug, Default)]
pub struct AgentState {
    /// The leased address, as a u32 (0: none yet).
    pub address: std::sync::atomic::AtomicU32,
    /// The lease's router, as a u32 (0: none).
    pub gateway: std::sync::atomic::AtomicU32,
    /// Bumped on every new connection: the host may have forgotten what it was told.
    pub generation: std::sync::atomic::AtomicU64,
}

impl AgentState {
    pub fn address(&self) -> Option<Ipv4Addr> {
        match self.address.load(Ordering::Relaxed) {
            0 => None,
            a => Some(Ipv4Addr::from(a)),
        }
    }

    pub fn gateway(&self) -> Option<Ipv4Addr> {
        match self.gateway.load(Ordering::Relaxed) {
            0 => None,
            a => Some(Ipv4Addr::from(a)),
        }
    }
}

/// Runs the agent until `stop` is set (or a connection that cannot be made again ends).
pub fn run(args: &GuestArgs, stop: &Arc<AtomicBool>) -> Result<(), GuestError> {
    let target = Target::parse(&args.connect)?;
    let mac = args.mac.unwrap_or(DEFAULT_MAC);
    let options = TapOptions {
        offload: args.offload.enabled(),
        ..TapOptions::default()
    };
    let tap_error = |source| GuestError::Tap {
        name: args.tap.clone(),
        source,
    };
    let mut tap = Tap::open_with(&args.tap, &Netns::Current, &options).map_err(tap_error)?;
    let offloads = tap.negotiate_offloads().map_err(|source| {
        tap_error(crate::tap::TapError::Offload {
            name: args.tap.clone(),
            source,
        })
    })?;
    let configure = |source| GuestError::Configure {
        name: tap.name().to_owned(),
        source,
    };
    let mut nl = route::open().map_err(configure)?;
    let index = route::link_index(&mut nl, tap.name()).map_err(configure)?;
    route::set_link(
        &mut nl,
        index,
        LinkChange {
            up: Some(true),
            mtu: args.mtu,
            mac: Some(mac),
            // Super-segments small enough for the framing with their header.
            gso_max_size: offloads.vnet_hdr.then_some(offer::GSO_MAX_SIZE),
        },
    )
    .map_err(configure)?;
    let _ = route::link_up(&mut nl, "lo");
    let iface = Interface {
        index,
        mtu: args.mtu,
        resolv_conf: args.resolv_conf.clone(),
    };
    let state = Arc::new(AgentState::default());
    let _watcher = if args.no_auto_forward {
        None
    } else {
        Some(
            ports::start(
                &target,
                &state,
                Duration::from_millis(args.auto_forward_interval),
                stop,
            )
            .map_err(GuestError::Thread)?,
        )
    };
    tracing::info!(tap = %tap.name(), %mac, target = %target, offloads = %offloads.describe(), "guest switch starting");
    let mut agent = Agent {
        tap,
        mac,
        iface,
        nl,
        dhcp: DhcpClient::new(mac, rand::random(), Instant::now()),
        server_mac: None,
        bound: None,
        state,
        counters: Arc::new(Counters::default()),
    };
    let mut first = args.connected_fd.map(Target::Fd);
    let mut backoff = FIRST_BACKOFF;
    while !stop.load(Ordering::Relaxed) {
        let attempt = first.take().unwrap_or_else(|| target.clone());
        // A fresh nonce for each connection; no offer where the TAP has no header to give.
        let link = Link {
            vnet: offloads.vnet_hdr,
            offer: (offloads.vnet_hdr && transport::speaks_http(&attempt)).then(Offer::random),
        };
        let conn = match transport::connect(&attempt, link.offer.as_ref()) {
            Ok(conn) => conn,
            Err(source) if !attempt.reconnects() => {
                return Err(GuestError::Connect {
                    target: attempt.to_string(),
                    source,
                });
            }
            Err(e) => {
                tracing::debug!(target = %attempt, error = %e, "cannot connect yet");
                sleep_unless_stopped(backoff, stop);
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        tracing::info!(target = %attempt, "connected to host-switch");
        let started = Instant::now();
        let why = agent.serve(conn, link, stop)?;
        if stop.load(Ordering::Relaxed) {
            break;
        }
        tracing::warn!(reason = %why, "connection to host-switch lost; connecting again");
        if !target.reconnects() {
            return Err(GuestError::Gone(target.to_string()));
        }
        // A connection that lasted resets the backoff; one that failed at once grows it.
        if started.elapsed() > MAX_BACKOFF {
            backoff = FIRST_BACKOFF;
        }
        sleep_unless_stopped(backoff, stop);
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    tracing::info!("guest switch stopping");
    Ok(())
}

fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) {
    let until = Instant::now() + d;
    while !stop.load(Ordering::Relaxed) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(TICK));
    }
}

/// The agent's state across connections.
struct Agent {
    tap: Tap,
    mac: EthernetAddress,
    iface: Interface,
    nl: crate::netlink::Netlink,
    dhcp: DhcpClient,
    server_mac: Option<EthernetAddress>,
    /// The address and prefix length applied to the TAP.
    bound: Option<(Ipv4Addr, u8)>,
    state: Arc<AgentState>,
    counters: Arc<Counters>,
}

impl Agent {
    /// Runs one connection until it ends or `stop` is set; returns why it ended.
    fn serve(
        &mut self,
        conn: transport::Conn,
        link: Link,
        stop: &AtomicBool,
    ) -> Result<String, GuestError> {
        let (events_tx, events) = crossbeam_channel::bounded(session::EVENT_QUEUE);
        let session = Session::start(
            &self.tap,
            conn,
            (self.mac, link),
            events_tx,
            self.counters.clone(),
        )
        .map_err(GuestError::Thread)?;
        self.state.generation.fetch_add(1, Ordering::Relaxed);
        // The host may be a new one: confirm the lease now rather than at T1.
        self.dhcp.renew(Instant::now());
        let why = loop {
            if stop.load(Ordering::Relaxed) {
                break "stopping".to_owned();
            }
            self.flush(&session);
            let now = Instant::now();
            let wait = self
                .dhcp
                .poll_timeout()
                .map_or(TICK, |at| at.saturating_duration_since(now).min(TICK));
            match events.recv_timeout(wait) {
                Ok(Event::Dhcp(payload, from)) => {
                    self.server_mac = Some(from);
                    self.dhcp.handle_message(Instant::now(), &payload);
                }
                Ok(Event::Down(why)) => break why,
                Err(RecvTimeoutError::Timeout) => self.dhcp.handle_timeout(Instant::now()),
                Err(RecvTimeoutError::Disconnected) => break "session ended".to_owned(),
            }
        };
        session.stop();
        tracing::debug!(counters = ?self.counters, "link counters");
        Ok(why)
    }

    /// Sends what the DHCP client has and applies what it decided.
    fn flush(&mut self, session: &Session) {
        while let Some(tx) = self.dhcp.poll_transmit() {
            if let Some(frame) = lease::dhcp_frame(&tx, self.mac, self.server_mac)
                && !session.send(frame)
            {
                tracing::debug!("DHCP frame dropped: the uplink queue is full");
            }
        }
        while let Some(event) = self.dhcp.poll_event() {
            match event {
                ClientEvent::Bound(lease) => {
                    match lease::apply(&mut self.nl, &self.iface, &lease) {
                        Ok(()) => {
                            let before = self.bound.replace((lease.address, lease.prefix_len));
                            self.state
                                .gateway
                                .store(lease.router.map_or(0, u32::from), Ordering::Relaxed);
                            self.state
                                .address
                                .store(u32::from(lease.address), Ordering::Relaxed);
                            if before != self.bound {
                                tracing::info!(
                                    address = %lease.address,
                                    prefix_len = lease.prefix_len,
                                    router = ?lease.router,
                                    mtu = ?lease.mtu,
                                    "lease bound"
                                );
                            }
                        }
                        Err(e) => tracing::error!(error = %e, "cannot apply the lease"),
                    }
                }
                ClientEvent::Lost => {
                    if let Some((address, prefix_len)) = self.bound.take() {
                        tracing::warn!(%address, "lease lost");
                        lease::unapply(&mut self.nl, &self.iface, address, prefix_len);
                    }
                    self.state.address.store(0, Ordering::Relaxed);
                }
            }
        }
    }
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("tap", &self.tap.name())
            .field("fd", &self.tap.as_raw_fd())
            .field("mac", &self.mac)
            .finish_non_exhaustive()
    }
}
