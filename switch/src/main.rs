//! `host-switch`: serve links (gvproxy-style flags, or a TAP in a namespace), or `run` a
//! command in fresh namespaces on a TAP we serve. See `switch::cli` for the flags.

use std::ffi::OsString;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use signal_hook::consts::{SIGINT, SIGTERM};
use stack::wire::EthernetAddress;
use switch::cli::{self, CliError, Command, NetworkArgs, RunArgs, ServeArgs};
use switch::launch::{self, LaunchOptions};
use switch::leases::{self, Leases};
use switch::link::{self, Endpoint, LinkLimits, Listener, http, tap::TapLink};
use switch::netns::Netns;
use switch::port::Attacher;
use switch::ssh_forward;
use switch::tap::{self as tapdev, TapConfig, TapOptions};

mod guest_mode;
mod pipeline;
mod setup;

use pipeline::Pipeline;
use setup::{
    Handshakes, log_level, start_ssh_forwards, warn_if_exposed, watch_netns_holder, with_config,
};

/// The guest that gets the static DHCP lease (gvproxy's default).
pub(crate) const DEFAULT_GUEST_MAC: EthernetAddress =
    EthernetAddress([0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xee]);
/// Exit status for bad usage and for failures before anything ran.
const EXIT_USAGE: u8 = 2;
const EXIT_FAILURE: u8 = 1;

/// What ends the main loop.
#[derive(Debug)]
enum Event {
    Signal(i32),
    StdioClosed,
    ChildExited(std::process::ExitStatus),
    /// The process whose network namespace we serve (`--netns PID`) exited.
    NetnsHolderExited(u32),
    /// `--exit-fd` was closed.
    ExitFd,
}

fn main() -> ExitCode {
    switch::sys::fix_mmap_threshold();
    let args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == launch::CHILD_ARG) {
        launch::child_main(args.get(2..).unwrap_or_default());
    }
    let cli = match cli::parse(args) {
        Ok(cli) => cli,
        Err(CliError::Clap(e)) => e.exit(),
        Err(CliError::Refused(r)) => {
            eprintln!("host-switch: {r}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let result = match cli.command {
        Some(Command::Run(run)) => run_mode(run),
        Some(Command::Guest(guest)) => guest_mode::run(&guest),
        None => with_config(cli.serve).and_then(serve_mode),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            report_fatal(&message);
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// Where the log goes, once set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LogTarget {
    Stderr,
    File,
}

static LOGGING: std::sync::OnceLock<LogTarget> = std::sync::OnceLock::new();

/// Tells the user of a fatal error once: as a log line when the log is standard error, on
/// standard error alone before logging is set up, and in both places when the log is a file
/// (which the user may not be watching).
fn report_fatal(message: &str) {
    match LOGGING.get() {
        Some(LogTarget::Stderr) => tracing::error!("{message}"),
        Some(LogTarget::File) => {
            tracing::error!("{message}");
            eprintln!("host-switch: {message}");
        }
        None => eprintln!("host-switch: {message}"),
    }
}

/// Logs to standard error (never stdout: `-listen-stdio` owns it) or to `--log-file`.
fn init_logging(net: &NetworkArgs) -> Result<(), String> {
    let from_config = switch::gvconfig::extras(net).and_then(|x| x.log_level.as_deref());
    let default = match (net.debug, from_config) {
        (true, _) => "debug",
        (false, Some(level)) => log_level(level),
        (false, None) => "info",
    };
    init_logging_to(default, net.log_file.as_deref())?;
    for warning in switch::gvconfig::extras(net).map_or(&[][..], |x| &x.warnings) {
        tracing::warn!("{warning}");
    }
    Ok(())
}

/// Logs to standard error or to `log_file`, at `default` (a level or filter) unless
/// `RUST_LOG` says otherwise.
fn init_logging_to(default: &str, log_file: Option<&Path>) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let (done, target) = match log_file {
        Some(path) => {
            let file = std::fs::File::create(path)
                .map_err(|e| format!("cannot create log file {}: {e}", path.display()))?;
            let done = builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .try_init();
            (done, LogTarget::File)
        }
        None => {
            let done = builder
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_writer(std::io::stderr)
                .try_init();
            (done, LogTarget::Stderr)
        }
    };
    done.map_err(|e| format!("cannot set up logging: {e}"))?;
    let _ = LOGGING.set(target);
    Ok(())
}

/// Writes the PID on creation, removes the file on drop.
struct PidFile(PathBuf);

impl PidFile {
    fn create(path: Option<&Path>) -> Result<Option<PidFile>, String> {
        let Some(path) = path else { return Ok(None) };
        std::fs::write(path, std::process::id().to_string())
            .map_err(|e| format!("cannot write pid file {}: {e}", path.display()))?;
        Ok(Some(PidFile(path.to_owned())))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// SIGINT and SIGTERM as events, from a thread of their own.
fn watch_signals(events: Sender<Event>) -> Result<signal_hook::iterator::Handle, String> {
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .map_err(|e| format!("cannot handle signals: {e}"))?;
    let handle = signals.handle();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if events.send(Event::Signal(signal)).is_err() {
                    break;
                }
            }
        })
        .map_err(|e| format!("cannot start the signal thread: {e}"))?;
    Ok(handle)
}

/// The network's addresses, from `--subnet`, `--gatewayIP`, `--hostIP`, `--static-lease`.
#[derive(Debug, Clone)]
struct Addressing {
    prefix_len: u8,
    gateway: Ipv4Addr,
    host: Ipv4Addr,
    /// The default guest (the default static lease's address).
    guest: Ipv4Addr,
    /// The static DHCP leases; a configured TAP takes its MAC's.
    leases: Leases,
}

impl Addressing {
    fn from_args(net: &NetworkArgs) -> Result<Addressing, String> {
        let bad = || {
            format!(
                "--subnet {}: expected a.b.c.d/n with n at most 29",
                net.subnet
            )
        };
        let (addr, len) = net.subnet.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let prefix_len: u8 = len.parse().map_err(|_| bad())?;
        if prefix_len > 29 {
            return Err(bad());
        }
        let mask = u32::MAX
            .checked_shl(32 - u32::from(prefix_len))
            .unwrap_or(0);
        let network = u32::from(addr) & mask;
        let broadcast = network | !mask;
        let nth = |n: u32| Ipv4Addr::from(network.wrapping_add(n));
        let gateway = net.gateway_ip.unwrap_or_else(|| nth(1));
        let host = net
            .host_ip
            .unwrap_or_else(|| Ipv4Addr::from(broadcast.wrapping_sub(1)));
        let guest = net.device_ip.unwrap_or_else(|| nth(2));
        let subnet = dhcp::Subnet::new(addr, prefix_len).map_err(|_| bad())?;
        let fixed = leases::Fixed {
            subnet,
            gateway,
            host,
        };
        let default = dhcp::StaticLease {
            mac: DEFAULT_GUEST_MAC,
            ip: guest,
        };
        let default = (!net.no_default_lease).then_some(default);
        let leases = Leases::new(fixed, default, &net.static_lease)
            .map_err(|e| format!("--static-lease: {e}"))?;
        Ok(Addressing {
            prefix_len,
            gateway,
            host,
            guest,
            leases,
        })
    }

    /// A configured TAP: its MAC's static lease, or a free address leased to it, so no DHCP
    /// guest is ever given the same address.
    fn tap_config(&mut self, mac: Option<EthernetAddress>, mtu: u32) -> Result<TapConfig, String> {
        let mac = mac.unwrap_or(DEFAULT_GUEST_MAC);
        let address = self
            .leases
            .address_for(mac)
            .map_err(|e| format!("--configure: {e}"))?;
        Ok(TapConfig {
            mac: Some(mac),
            mtu,
            address,
            prefix_len: self.prefix_len,
            gateway: Some(self.gateway),
            loopback_up: true,
        })
    }
}

/// Everything serving, shut down in reverse order of start.
#[derive(Default)]
struct Links {
    listeners: Vec<Listener>,
    taps: Vec<TapLink>,
}

impl Links {
    fn shutdown(self) {
        for tap in self.taps {
            tap.shutdown();
        }
        for listener in self.listeners {
            listener.shutdown();
        }
    }
}

fn serve_mode(mut args: ServeArgs) -> Result<ExitCode, String> {
    init_logging(&args.network)?;
    args.network.ssh_port.get_or_insert(cli::DEFAULT_SSH_PORT);
    if !args.has_links() {
        return Err(
            "nothing to serve: give -listen, -listen-qemu, -listen-vfkit, -listen-bess, \
                    -listen-stdio, -listen-vpnkit or --tap (or use `host-switch run -- CMD`)"
                .to_owned(),
        );
    }
    let mut addressing = Addressing::from_args(&args.network)?;
    let vm_mtu = args.network.mtu.unwrap_or(link::DEFAULT_MTU);
    let tap_mtu = args.network.mtu.unwrap_or(tapdev::DEFAULT_MTU);
    let tap_config = match args.configure {
        true => Some(addressing.tap_config(args.mac, tap_mtu)?),
        false => None,
    };
    let forwards = ssh_forward::pair(
        &args.forward_sock,
        &args.forward_dest,
        &args.forward_user,
        &args.forward_identity,
    )
    .map_err(|e| e.to_string())?;
    let mut handshakes = Handshakes::take(&args.network)?;
    let _pid_file = PidFile::create(args.network.pid_file.as_deref())?;
    let (events_tx, events) = crossbeam_channel::unbounded();
    let signals = watch_signals(events_tx.clone())?;
    handshakes.watch_exit(&events_tx)?;

    // The DHCP MTU is the VM links'; a TAP-only network announces the TAP's.
    let only_tap = args.tap.is_some()
        && args.listen.is_empty()
        && args.listen_qemu.is_empty()
        && args.listen_vfkit.is_empty()
        && args.listen_bess.is_empty()
        && args.listen_vpnkit.is_empty()
        && args.listen_stdio.is_none();
    let dhcp_mtu = if only_tap { tap_mtu } else { vm_mtu };
    let mut pipeline = Pipeline::start(&args.network, &addressing, dhcp_mtu)?;
    let attacher = pipeline.attacher();
    let mut links = Links::default();
    let started = start_links(
        &args,
        &attacher,
        &pipeline.api(),
        tap_config,
        vm_mtu,
        tap_mtu,
        &events_tx,
        &mut links,
    );
    let ssh = started.and_then(|()| start_ssh_forwards(forwards, &pipeline, &addressing));
    let ssh = match ssh {
        Ok(ssh) => ssh,
        Err(message) => {
            links.shutdown();
            pipeline.shutdown();
            return Err(message);
        }
    };
    if let Some(netns) = &args.netns {
        watch_netns_holder(&Netns::from_arg(netns), &events_tx);
    }
    // A TAP in another namespace: watch it for listeners ourselves (no agent there).
    let _auto_watch = match (&args.tap, &args.netns) {
        (Some(tap), Some(netns)) => {
            watch_guest_namespace(&Netns::from_arg(netns), tap, &pipeline, &args.network)
        }
        _ => None,
    };
    tracing::info!(
        gateway = %addressing.gateway,
        host = %addressing.host,
        "host-switch {} serving",
        env!("CARGO_PKG_VERSION")
    );
    handshakes.ready();
    let code = match events.recv() {
        Ok(Event::Signal(signal)) => {
            tracing::info!(signal, "shutting down");
            ExitCode::SUCCESS
        }
        Ok(Event::StdioClosed) => {
            tracing::info!("standard input closed; shutting down");
            ExitCode::SUCCESS
        }
        Ok(Event::NetnsHolderExited(pid)) => {
            tracing::info!(pid, "the namespace's process exited; shutting down");
            ExitCode::SUCCESS
        }
        Ok(Event::ExitFd) => {
            tracing::info!("--exit-fd closed; shutting down");
            ExitCode::SUCCESS
        }
        Ok(Event::ChildExited(_)) | Err(_) => ExitCode::SUCCESS,
    };
    // The SSH forwards' sessions end first, so the drain need not wait out their streams.
    if let Some((forwards, _private)) = ssh {
        forwards.shutdown();
    }
    drain(&mut pipeline, &args.network, &events);
    signals.close();
    links.shutdown();
    pipeline.shutdown();
    Ok(code)
}

/// Lets every flow hand its host what the guest was acknowledged, for at most
/// `--drain-timeout`, while the links still run; a signal cuts it short. What is left is
/// reset (the forwarder logs it).
fn drain(pipeline: &mut Pipeline, net: &NetworkArgs, events: &Receiver<Event>) {
    let started = std::time::Instant::now();
    let mut cancel = || matches!(events.try_recv(), Ok(Event::Signal(_)));
    let end = pipeline.drain(net.drain_timeout, &mut cancel);
    let took = started.elapsed();
    match end {
        forwarder::DrainEnd::Settled => tracing::debug!(?took, "flows drained"),
        forwarder::DrainEnd::TimedOut => {
            tracing::info!(?took, "drain timeout: the streams still open were reset");
        }
        forwarder::DrainEnd::Cancelled => {
            tracing::info!(
                ?took,
                "signal during the drain: the streams still open were reset"
            );
        }
    }
}

/// The control API on `-listen` (with `/connect`, which attaches guests, taking the guest
/// agent's offer of a virtio-net header where `offload` is on) and `-services`.
fn start_http(
    listen: &[String],
    services: &[String],
    attacher: &Attacher,
    api: &Arc<switch::api::Router>,
    limits: LinkLimits,
    offload: bool,
    links: &mut Links,
) -> Result<(), String> {
    let endpoint = |addr: &str| Endpoint::parse(addr).map_err(|e| e.to_string());
    let started = |l: Result<Listener, link::EndpointError>| l.map_err(|e| e.to_string());
    for addr in listen {
        warn_if_exposed("-listen", addr);
        let options = http::HttpOptions {
            connect: Some(attacher.clone()),
            handler: api.clone(),
            socket_mode: Some(0o600),
            offload,
        };
        links
            .listeners
            .push(started(http::listen(&endpoint(addr)?, options, limits))?);
        tracing::info!(endpoint = %addr, "listening (HTTP, /connect and the API)");
    }
    for addr in services {
        warn_if_exposed("-services", addr);
        let options = http::HttpOptions {
            connect: None,
            handler: api.clone(),
            socket_mode: Some(0o600),
            offload: false,
        };
        links
            .listeners
            .push(started(http::listen(&endpoint(addr)?, options, limits))?);
        tracing::info!(endpoint = %addr, "listening (the API)");
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn start_links(
    args: &ServeArgs,
    attacher: &Attacher,
    api: &Arc<switch::api::Router>,
    tap_config: Option<TapConfig>,
    vm_mtu: u32,
    tap_mtu: u32,
    events: &Sender<Event>,
    links: &mut Links,
) -> Result<(), String> {
    let limits = LinkLimits {
        max_ports: args.max_ports,
        ..LinkLimits::for_mtu(vm_mtu)
    };
    let endpoint = |addr: &str| Endpoint::parse(addr).map_err(|e| e.to_string());
    let started = |l: Result<Listener, link::EndpointError>| l.map_err(|e| e.to_string());
    let offload = args.network.offload.enabled();
    start_http(
        &args.listen,
        &args.services,
        attacher,
        api,
        limits,
        offload,
        links,
    )?;
    for addr in &args.listen_qemu {
        warn_if_exposed("-listen-qemu", addr);
        links.listeners.push(started(link::qemu::listen(
            &endpoint(addr)?,
            attacher.clone(),
            limits,
        ))?);
        tracing::info!(endpoint = %addr, "listening (QEMU)");
    }
    for addr in &args.listen_vfkit {
        links.listeners.push(started(link::vfkit::listen(
            &endpoint(addr)?,
            attacher.clone(),
            limits,
        ))?);
        tracing::info!(endpoint = %addr, "listening (vfkit)");
    }
    for addr in &args.listen_bess {
        links.listeners.push(started(link::bess::listen(
            &endpoint(addr)?,
            attacher.clone(),
            limits,
        ))?);
        tracing::info!(endpoint = %addr, "listening (bess)");
    }
    for addr in &args.listen_vpnkit {
        let mtu =
            u16::try_from(vm_mtu).map_err(|_| format!("MTU {vm_mtu} too large for vpnkit"))?;
        let mut vpnkit = link::vpnkit::VpnkitConfig::with_mtu(mtu);
        if let Some(x) = switch::gvconfig::extras(&args.network) {
            vpnkit.uuid_macs = x.vpnkit_macs.iter().cloned().collect();
        }
        links.listeners.push(started(link::vpnkit::listen(
            &endpoint(addr)?,
            attacher.clone(),
            limits,
            vpnkit,
        ))?);
        tracing::info!(endpoint = %addr, "listening (vpnkit)");
    }
    if let Some(name) = &args.tap {
        let netns = args
            .netns
            .as_deref()
            .map_or(Netns::Current, Netns::from_arg);
        let options = TapOptions {
            multi_queue: true,
            configure: tap_config,
            offload: args.network.offload.enabled(),
        };
        let mtu = u16::try_from(tap_mtu).map_err(|_| format!("MTU {tap_mtu} is too large"))?;
        let tap =
            TapLink::open(name, &netns, &options, attacher, mtu).map_err(|e| e.to_string())?;
        links.taps.push(tap);
    }
    if let Some(mode) = &args.listen_stdio {
        if mode != link::stdio::ACCEPT {
            tracing::warn!(value = %mode, "-listen-stdio expects \"accept\"; serving stdio anyway");
        }
        let stdio = link::stdio::serve(attacher, std::io::stdin(), std::io::stdout(), limits)
            .map_err(|e| format!("cannot serve stdio: {e}"))?;
        let events = events.clone();
        std::thread::Builder::new()
            .name("stdio-watch".into())
            .spawn(move || {
                let _ = stdio.thread.join();
                let _ = events.send(Event::StdioClosed);
            })
            .map_err(|e| format!("cannot start the stdio watcher: {e}"))?;
    }
    Ok(())
}

fn run_mode(mut args: RunArgs) -> Result<ExitCode, String> {
    init_logging(&args.network)?;
    // No SSH forward unless asked for: a pasta-style command is no VM with an sshd.
    args.network.ssh_port.get_or_insert(-1);
    let mut addressing = Addressing::from_args(&args.network)?;
    let mtu = args.network.mtu.unwrap_or(tapdev::DEFAULT_MTU);
    let tap = addressing.tap_config(args.mac, mtu)?;
    let mut handshakes = Handshakes::take(&args.network)?;
    let _pid_file = PidFile::create(args.network.pid_file.as_deref())?;
    let scratch = Scratch::create()?;
    let resolv_conf = scratch.0.join("resolv.conf");
    let mut resolv = format!("nameserver {}\n", addressing.gateway);
    if let Some(gateway6) = Pipeline::gateway6(&args.network) {
        resolv.push_str(&format!("nameserver {gateway6}\n"));
    }
    std::fs::write(&resolv_conf, resolv)
        .map_err(|e| format!("cannot write {}: {e}", resolv_conf.display()))?;
    // SAFETY: geteuid cannot fail and touches no memory.
    let root = unsafe { libc::geteuid() } == 0;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find my own executable: {e}"))?;

    let (events_tx, events) = crossbeam_channel::unbounded();
    let signals = watch_signals(events_tx.clone())?;
    handshakes.watch_exit(&events_tx)?;
    let mut pipeline = Pipeline::start(&args.network, &addressing, mtu)?;
    // The API is up before the command runs.
    let mut links = Links::default();
    let limits = LinkLimits::for_mtu(mtu);
    let api = pipeline.api();
    let http = start_http(
        &args.listen,
        &args.services,
        &pipeline.attacher(),
        &api,
        limits,
        args.network.offload.enabled(),
        &mut links,
    );
    if let Err(message) = http {
        links.shutdown();
        pipeline.shutdown();
        return Err(message);
    }
    let options = LaunchOptions {
        tap_name: args.tap.clone(),
        tap,
        resolv_conf,
        user_namespace: !root,
        queues: pipeline.workers(),
        offload: args.network.offload.enabled(),
    };
    let mut launched = match launch::launch(&exe, &args.command, &options) {
        Ok(launched) => launched,
        Err(e) => {
            links.shutdown();
            pipeline.shutdown();
            return Err(e.to_string());
        }
    };
    let queues = std::mem::take(&mut launched.taps);
    let tap = u16::try_from(mtu)
        .map_err(|_| format!("MTU {mtu} is too large"))
        .and_then(|mtu| {
            TapLink::start(queues, &pipeline.attacher(), mtu).map_err(|e| e.to_string())
        });
    let tap = match tap {
        Ok(tap) => tap,
        Err(message) => {
            let _ = launched.child.kill();
            let _ = launched.child.wait();
            links.shutdown();
            pipeline.shutdown();
            return Err(message);
        }
    };
    let pid = launched.child.id();
    if let Err(e) = launched.release() {
        tracing::warn!(error = %e, "cannot release the command");
    }
    tracing::info!(pid, tap = %args.tap, address = %options.tap.address, gateway = %addressing.gateway, "command started");
    handshakes.ready();
    let _auto_watch = watch_guest_namespace(&Netns::Pid(pid), &args.tap, &pipeline, &args.network);
    let mut child = launched.child;
    std::thread::Builder::new()
        .name("child-wait".into())
        .spawn(move || {
            if let Ok(status) = child.wait() {
                let _ = events_tx.send(Event::ChildExited(status));
            }
        })
        .map_err(|e| format!("cannot start the wait thread: {e}"))?;
    let code = wait_for_child(&events, pid);
    // The command is gone, its namespace (held by our TAP descriptor) is not: its kernel
    // still delivers what the command wrote before exiting.
    drain(&mut pipeline, &args.network, &events);
    signals.close();
    tap.shutdown();
    links.shutdown();
    pipeline.shutdown();
    Ok(code)
}

/// Automatic port forwarding for a guest namespace host-switch serves without an agent;
/// `None` when it is turned off or cannot watch there (logged).
fn watch_guest_namespace(
    netns: &Netns,
    tap: &str,
    pipeline: &Pipeline,
    net: &NetworkArgs,
) -> Option<switch::auto_forward::watch::Watcher> {
    if net.auto_forward.no_auto_forward {
        return None;
    }
    let interval = std::time::Duration::from_millis(net.auto_forward.interval_ms);
    match switch::auto_forward::watch::watch_netns(netns, tap, pipeline.auto_forwards(), interval) {
        Ok(watcher) => Some(watcher),
        Err(e) => {
            tracing::warn!(error = %e, "no automatic port forwarding for this guest");
            None
        }
    }
}

/// Forwards SIGINT/SIGTERM to the child and returns its exit status as ours.
fn wait_for_child(events: &Receiver<Event>, pid: u32) -> ExitCode {
    loop {
        let event = match events.recv() {
            Ok(Event::ExitFd) => {
                tracing::info!(pid, "--exit-fd closed; stopping the command");
                Ok(Event::Signal(libc::SIGTERM))
            }
            other => other,
        };
        match event {
            Ok(Event::Signal(signal)) => {
                tracing::info!(signal, pid, "forwarding signal to the command");
                if let Ok(pid) = libc::pid_t::try_from(pid) {
                    // SAFETY: kill takes integers; `pid` is our child, not yet reaped by
                    // the wait thread unless it exited (then the signal goes nowhere).
                    unsafe { libc::kill(pid, signal) };
                }
            }
            Ok(Event::ChildExited(status)) => {
                use std::os::unix::process::ExitStatusExt;
                let code = match (status.code(), status.signal()) {
                    (Some(code), _) => code,
                    (None, Some(signal)) => 128 + signal,
                    (None, None) => i32::from(EXIT_FAILURE),
                };
                tracing::info!(code, "command exited");
                return ExitCode::from(u8::try_from(code).unwrap_or(EXIT_FAILURE));
            }
            Ok(Event::StdioClosed | Event::NetnsHolderExited(_) | Event::ExitFd) => {}
            Err(_) => return ExitCode::from(EXIT_FAILURE),
        }
    }
}

/// A private temporary directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn create() -> Result<Scratch, String> {
        let dir = std::env::temp_dir().join(format!("host-switch-run-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
