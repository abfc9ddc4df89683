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
use switch::link::{self, Endpoint, LinkLimits, Listener, http, tap::TapLink};
use switch::netns::Netns;
use switch::port::Attacher;
use switch::tap::{self as tapdev, TapConfig, TapOptions};

mod pipeline;

use pipeline::Pipeline;

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
}

fn main() -> ExitCode {
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
        None => serve_mode(cli.serve),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            tracing::error!("{message}");
            eprintln!("host-switch: {message}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// Logs to standard error (never stdout: `-listen-stdio` owns it) or to `--log-file`.
fn init_logging(net: &NetworkArgs) -> Result<(), String> {
    let default = if net.debug { "debug" } else { "info" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let done = match &net.log_file {
        Some(path) => {
            let file = std::fs::File::create(path)
                .map_err(|e| format!("cannot create log file {}: {e}", path.display()))?;
            builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .try_init()
        }
        None => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .try_init(),
    };
    done.map_err(|e| format!("cannot set up logging: {e}"))
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

/// The network's addresses, from `--subnet`, `--gatewayIP`, `--hostIP`.
#[derive(Debug, Clone, Copy)]
struct Addressing {
    prefix_len: u8,
    gateway: Ipv4Addr,
    host: Ipv4Addr,
    /// The default guest (the static lease), which a configured TAP takes.
    guest: Ipv4Addr,
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
        Ok(Addressing {
            prefix_len,
            gateway: net.gateway_ip.unwrap_or_else(|| nth(1)),
            host: net
                .host_ip
                .unwrap_or_else(|| Ipv4Addr::from(broadcast.wrapping_sub(1))),
            guest: nth(2),
        })
    }

    fn tap_config(&self, mac: Option<EthernetAddress>, mtu: u32) -> TapConfig {
        TapConfig {
            mac: Some(mac.unwrap_or(DEFAULT_GUEST_MAC)),
            mtu,
            address: self.guest,
            prefix_len: self.prefix_len,
            gateway: Some(self.gateway),
            loopback_up: true,
        }
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

fn serve_mode(args: ServeArgs) -> Result<ExitCode, String> {
    init_logging(&args.network)?;
    if !args.has_links() {
        return Err(
            "nothing to serve: give -listen, -listen-qemu, -listen-vfkit, -listen-bess, \
                    -listen-stdio, -listen-vpnkit or --tap (or use `host-switch run -- CMD`)"
                .to_owned(),
        );
    }
    let addressing = Addressing::from_args(&args.network)?;
    let vm_mtu = args.network.mtu.unwrap_or(link::DEFAULT_MTU);
    let tap_mtu = args.network.mtu.unwrap_or(tapdev::DEFAULT_MTU);
    let _pid_file = PidFile::create(args.network.pid_file.as_deref())?;
    let (events_tx, events) = crossbeam_channel::unbounded();
    let signals = watch_signals(events_tx.clone())?;

    // The DHCP MTU is the VM links'; a TAP-only network announces the TAP's.
    let only_tap = args.tap.is_some()
        && args.listen.is_empty()
        && args.listen_qemu.is_empty()
        && args.listen_vfkit.is_empty()
        && args.listen_bess.is_empty()
        && args.listen_vpnkit.is_empty()
        && args.listen_stdio.is_none();
    let dhcp_mtu = if only_tap { tap_mtu } else { vm_mtu };
    let pipeline = Pipeline::start(&args.network, &addressing, dhcp_mtu)?;
    let attacher = pipeline.attacher();
    let mut links = Links::default();
    let started = start_links(
        &args,
        &attacher,
        &pipeline.api(),
        &addressing,
        vm_mtu,
        tap_mtu,
        &events_tx,
        &mut links,
    );
    if let Err(message) = started {
        links.shutdown();
        pipeline.shutdown();
        return Err(message);
    }
    tracing::info!(
        gateway = %addressing.gateway,
        host = %addressing.host,
        "host-switch {} serving",
        env!("CARGO_PKG_VERSION")
    );
    let code = match events.recv() {
        Ok(Event::Signal(signal)) => {
            tracing::info!(signal, "shutting down");
            ExitCode::SUCCESS
        }
        Ok(Event::StdioClosed) => {
            tracing::info!("standard input closed; shutting down");
            ExitCode::SUCCESS
        }
        Ok(Event::ChildExited(_)) | Err(_) => ExitCode::SUCCESS,
    };
    signals.close();
    links.shutdown();
    pipeline.shutdown();
    Ok(code)
}

#[allow(clippy::too_many_arguments)]
fn start_links(
    args: &ServeArgs,
    attacher: &Attacher,
    api: &Arc<switch::api::Router>,
    addressing: &Addressing,
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
    for addr in &args.listen {
        let options = http::HttpOptions {
            connect: Some(attacher.clone()),
            handler: api.clone(),
            socket_mode: Some(0o600),
        };
        links
            .listeners
            .push(started(http::listen(&endpoint(addr)?, options, limits))?);
        tracing::info!(endpoint = %addr, "listening (HTTP, /connect and the API)");
    }
    for addr in &args.services {
        let options = http::HttpOptions {
            connect: None,
            handler: api.clone(),
            socket_mode: Some(0o600),
        };
        links
            .listeners
            .push(started(http::listen(&endpoint(addr)?, options, limits))?);
        tracing::info!(endpoint = %addr, "listening (the API)");
    }
    for addr in &args.listen_qemu {
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
        links.listeners.push(started(link::vpnkit::listen(
            &endpoint(addr)?,
            attacher.clone(),
            limits,
            link::vpnkit::VpnkitConfig::with_mtu(mtu),
        ))?);
        tracing::info!(endpoint = %addr, "listening (vpnkit)");
    }
    if let Some(name) = &args.tap {
        let netns = args
            .netns
            .as_deref()
            .map_or(Netns::Current, Netns::from_arg);
        let options = TapOptions {
            multi_queue: false,
            configure: args
                .configure
                .then(|| addressing.tap_config(args.mac, tap_mtu)),
        };
        let max_frame = switch::framing::max_frame_len(tap_mtu);
        let tap = TapLink::open(name, &netns, &options, attacher, max_frame)
            .map_err(|e| e.to_string())?;
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

fn run_mode(args: RunArgs) -> Result<ExitCode, String> {
    init_logging(&args.network)?;
    let addressing = Addressing::from_args(&args.network)?;
    let mtu = args.network.mtu.unwrap_or(tapdev::DEFAULT_MTU);
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
    let options = LaunchOptions {
        tap_name: args.tap.clone(),
        tap: addressing.tap_config(args.mac, mtu),
        resolv_conf,
        user_namespace: !root,
    };
    let exe = std::env::current_exe().map_err(|e| format!("cannot find my own executable: {e}"))?;

    let (events_tx, events) = crossbeam_channel::unbounded();
    let signals = watch_signals(events_tx.clone())?;
    let pipeline = Pipeline::start(&args.network, &addressing, mtu)?;
    let mut launched = match launch::launch(&exe, &args.command, &options) {
        Ok(launched) => launched,
        Err(e) => {
            pipeline.shutdown();
            return Err(e.to_string());
        }
    };
    let tap = launched
        .tap
        .try_clone()
        .map_err(|e| format!("cannot use the TAP device: {e}"))
        .and_then(|tap| {
            TapLink::start(
                tap,
                &pipeline.attacher(),
                switch::framing::max_frame_len(mtu),
            )
            .map_err(|e| e.to_string())
        });
    let tap = match tap {
        Ok(tap) => tap,
        Err(message) => {
            let _ = launched.child.kill();
            let _ = launched.child.wait();
            pipeline.shutdown();
            return Err(message);
        }
    };
    let pid = launched.child.id();
    if let Err(e) = launched.release() {
        tracing::warn!(error = %e, "cannot release the command");
    }
    tracing::info!(pid, tap = %args.tap, address = %addressing.guest, gateway = %addressing.gateway, "command started");
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
    signals.close();
    tap.shutdown();
    pipeline.shutdown();
    Ok(code)
}

/// Forwards SIGINT/SIGTERM to the child and returns its exit status as ours.
fn wait_for_child(events: &Receiver<Event>, pid: u32) -> ExitCode {
    loop {
        match events.recv() {
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
            Ok(Event::StdioClosed) => {}
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
