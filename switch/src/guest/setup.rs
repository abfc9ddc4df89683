//! `host-switch guest --setup`: network-setup's job, run in the VM's default namespace.
//!
//! 1. Attaches to host-switch (`--connect`), waiting with a backoff until it answers.
//! 2. Creates the namespace the guest switch runs in — `--netns NAME` is bound at
//!    `/run/netns/NAME` as `ip netns add` does, and removed at exit; an existing namespace
//!    file (`/run/netns/NAME`, `/proc/PID/ns/net`) is used as it is — and a veth pair:
//!    `--veth-ns` (default `veth-rd-ns`, `--ns-address` 192.168.143.1/24) inside it,
//!    `--veth-vm` (`veth-rd-wsl`, `--vm-address` 192.168.143.2/24) here.
//! 3. Starts this executable as the guest switch inside the namespace, the connection handed
//!    over as descriptor 3 (`--connected-fd 3`; later connections go to `--connect` again).
//! 4. Relays the ports programs listen on inside the namespace onto this namespace's
//!    loopback, through the veth pair ([`super::relay`]), unless `--no-relay`.
//! 5. Optionally starts `CMD` inside the namespace, and then exits with its status.
//!
//! Otherwise it runs until SIGINT/SIGTERM or until the guest switch exits; it stops the
//! guest switch and removes what it created.

use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use rustix::io::FdFlags;
use rustix::mount::UnmountFlags;
use rustix::process::{Pid, Signal};
use rustix::thread::{LinkNameSpaceType, UnshareFlags};

use super::relay::Relay;
use super::transport::{self, Target};
use super::{FIRST_BACKOFF, GuestArgs, GuestError, MAX_BACKOFF};
use crate::auto_forward::watch::Watcher;
use crate::netlink::{diag, route};
use crate::netns::Netns;

/// The descriptor the guest switch finds its connection on.
const HANDOVER_FD: RawFd = 3;
/// Where `ip netns` keeps named namespaces.
const NETNS_DIR: &str = "/run/netns";

/// `--setup`'s options.
#[derive(Debug, Clone, Args)]
pub struct SetupArgs {
    /// The namespace for the guest switch: a name (created under /run/netns, removed at exit)
    /// or an existing namespace file.
    #[arg(long = "netns", default_value = "host-switch", requires = "setup")]
    pub netns: String,
    /// The veth end inside the namespace.
    #[arg(long = "veth-ns", default_value = "veth-rd-ns", requires = "setup")]
    pub veth_ns: String,
    /// The veth end in this namespace.
    #[arg(long = "veth-vm", default_value = "veth-rd-wsl", requires = "setup")]
    pub veth_vm: String,
    /// The namespace end's address.
    #[arg(long = "ns-address", default_value = "192.168.143.1/24", value_parser = parse_cidr, requires = "setup")]
    pub ns_address: (Ipv4Addr, u8),
    /// This end's address.
    #[arg(long = "vm-address", default_value = "192.168.143.2/24", value_parser = parse_cidr, requires = "setup")]
    pub vm_address: (Ipv4Addr, u8),
    /// Do not relay the namespace's listening ports onto this namespace's loopback.
    #[arg(long = "no-relay", requires = "setup")]
    pub no_relay: bool,
}

fn parse_cidr(s: &str) -> Result<(Ipv4Addr, u8), String> {
    let (ip, len) = s.split_once('/').ok_or("expected a.b.c.d/n")?;
    let ip: Ipv4Addr = ip.parse().map_err(|e| format!("{ip}: {e}"))?;
    let len: u8 = len.parse().map_err(|e| format!("{len}: {e}"))?;
    if len > 32 {
        return Err(format!("/{len} is not a prefix length"));
    }
    Ok((ip, len))
}

/// A namespace this process bound under /run/netns; unbound and removed on drop.
#[derive(Debug)]
struct NamedNetns {
    path: PathBuf,
    created: bool,
}

impl NamedNetns {
    fn open_or_create(arg: &str) -> Result<NamedNetns, GuestError> {
        let given = Path::new(arg);
        if arg.contains('/') {
            return Ok(NamedNetns {
                path: given.to_owned(),
                created: false,
            });
        }
        let path = Path::new(NETNS_DIR).join(arg);
        if path.exists() {
            return Ok(NamedNetns {
                path,
                created: false,
            });
        }
        let fail =
            |what: &str, e: io::Error| GuestError::Setup(format!("{what} {}: {e}", path.display()));
        std::fs::create_dir_all(NETNS_DIR).map_err(|e| fail("cannot create", e))?;
        File::create(&path).map_err(|e| fail("cannot create", e))?;
        let named = NamedNetns {
            path: path.clone(),
            created: true,
        };
        // A short-lived thread makes the namespace (namespaces are per thread) and binds it
        // to the file, which keeps it alive after the thread ends.
        let target = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| GuestError::Setup("bad namespace path".into()))?;
        let made = std::thread::spawn(move || -> io::Result<()> {
            // SAFETY: unshare_unsafe is unsafe only for CLONE_FILES (descriptors another
            // thread holds could vanish from under it); CLONE_NEWNET affects this thread's
            // network namespace alone.
            unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWNET) }?;
            rustix::mount::mount_bind(c"/proc/thread-self/ns/net", target.as_c_str())?;
            Ok(())
        })
        .join()
        .map_err(|_| GuestError::Setup("the namespace thread panicked".into()))?;
        made.map_err(|e| fail("cannot make the namespace", e))?;
        Ok(named)
    }
}

impl Drop for NamedNetns {
    fn drop(&mut self) {
        if !self.created {
            return;
        }
        let _ = rustix::mount::unmount(&self.path, UnmountFlags::DETACH);
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Kills and reaps a child on drop.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        // Our own unreaped child, so the pid is still its.
        if let Some(pid) = i32::try_from(self.0.id()).ok().and_then(Pid::from_raw) {
            let _ = rustix::process::kill_process(pid, Signal::TERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `--setup` until `stop`, the guest switch's end or the command's end.
pub fn run(args: &GuestArgs, stop: &Arc<AtomicBool>) -> Result<ExitCode, GuestError> {
    let s = &args.setup_args;
    let target = Target::parse(&args.connect)?;
    let conn = connect_waiting(&target, stop)?;
    let Some(conn) = conn else {
        return Ok(ExitCode::SUCCESS);
    };
    tracing::info!(target = %target, "attached to host-switch");
    let named = NamedNetns::open_or_create(&s.netns)?;
    let ns_file = File::open(&named.path)
        .map_err(|e| GuestError::Setup(format!("cannot open {}: {e}", named.path.display())))?;
    let netns = Netns::Path(named.path.clone());
    veth(s, &ns_file, &netns)?;
    tracing::info!(netns = %named.path.display(), ns = %s.veth_ns, vm = %s.veth_vm, "namespace and veth pair ready");

    let exe = std::env::current_exe()
        .map_err(|e| GuestError::Setup(format!("cannot find my executable: {e}")))?;
    let mut cmd = Command::new(&exe);
    cmd.arg("guest").args(["--connect", &args.connect]);
    cmd.args([
        "--connected-fd",
        &HANDOVER_FD.to_string(),
        "--tap",
        &args.tap,
    ]);
    if let Some(mac) = args.mac {
        cmd.args(["--mac", &mac.to_string()]);
    }
    if let Some(mtu) = args.mtu {
        cmd.args(["--mtu", &mtu.to_string()]);
    }
    if let Some(path) = &args.resolv_conf {
        cmd.arg("--resolv-conf").arg(path);
    }
    if args.no_auto_forward {
        cmd.arg("--no-auto-forward");
    }
    cmd.args([
        "--auto-forward-interval",
        &args.auto_forward_interval.to_string(),
    ]);
    if args.debug {
        cmd.arg("--debug");
    }
    if let Some(log) = &args.log_file {
        cmd.arg("--log-file").arg(log.with_extension("switch.log"));
    }
    let guest = spawn_in(&mut cmd, &ns_file, Some(conn.read.as_raw_fd()))
        .map_err(|e| GuestError::Setup(format!("cannot start the guest switch: {e}")))?;
    drop(conn);
    let mut guest = Reaped(guest);
    tracing::info!(pid = guest.0.id(), "guest switch started in the namespace");

    let _relay = if s.no_relay {
        None
    } else {
        let relay = Relay::new(IpAddr::V4(s.ns_address.0));
        let nl = netns
            .run(diag::open)
            .map_err(|e| GuestError::Setup(e.to_string()))?
            .map_err(|e| GuestError::Setup(format!("cannot watch the namespace: {e}")))?;
        let through = s.ns_address.0;
        let r = relay.clone();
        Some(
            Watcher::spawn(
                nl,
                Duration::from_millis(args.auto_forward_interval),
                Box::new(move || Some((through, 0))),
                move |_, ports: &[crate::auto_forward::PortKey]| r.sync(ports),
            )
            .map_err(GuestError::Thread)?,
        )
    };

    let mut command = match args.command.split_first() {
        None => None,
        Some((program, rest)) => {
            let mut c = Command::new(program);
            c.args(rest);
            Some(Reaped(spawn_in(&mut c, &ns_file, None).map_err(|e| {
                GuestError::Setup(format!(
                    "cannot start {}: {e}",
                    Path::new(program).display()
                ))
            })?))
        }
    };
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(ExitCode::SUCCESS);
        }
        if let Some(c) = &mut command
            && let Ok(Some(status)) = c.0.try_wait()
        {
            let code = status
                .code()
                .or(status.signal().map(|s| 128 + s))
                .unwrap_or(1);
            tracing::info!(code, "command exited");
            return Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)));
        }
        if let Ok(Some(status)) = guest.0.try_wait() {
            return Err(GuestError::Setup(format!(
                "the guest switch exited ({status})"
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn connect_waiting(
    target: &Target,
    stop: &AtomicBool,
) -> Result<Option<transport::Conn>, GuestError> {
    if !matches!(target, Target::Endpoint(_)) {
        return Err(GuestError::Setup(
            "--setup hands a socket over: --connect must be unix://, tcp:// or vsock://".into(),
        ));
    }
    let mut backoff = FIRST_BACKOFF;
    while !stop.load(Ordering::Relaxed) {
        match transport::connect(target, None) {
            Ok(conn) => return Ok(Some(conn)),
            Err(e) => {
                tracing::debug!(error = %e, "host-switch not there yet");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    Ok(None)
}

/// Creates the veth pair, moves one end into the namespace and addresses both.
fn veth(s: &SetupArgs, ns_file: &File, netns: &Netns) -> Result<(), GuestError> {
    let fail = |what: &str, e: io::Error| GuestError::Setup(format!("{what}: {e}"));
    let mut nl = route::open().map_err(|e| fail("netlink", e))?;
    route::create_veth(&mut nl, &s.veth_vm, &s.veth_ns)
        .map_err(|e| fail("creating the veth pair", e))?;
    let ns_end = route::link_index(&mut nl, &s.veth_ns).map_err(|e| fail("veth", e))?;
    route::move_to_netns(&mut nl, ns_end, ns_file.as_fd())
        .map_err(|e| fail("moving the veth end into the namespace", e))?;
    let vm_end = route::link_index(&mut nl, &s.veth_vm).map_err(|e| fail("veth", e))?;
    route::add_ipv4_address(&mut nl, vm_end, s.vm_address.0, s.vm_address.1)
        .map_err(|e| fail("addressing the veth end", e))?;
    route::link_up(&mut nl, &s.veth_vm).map_err(|e| fail("veth up", e))?;
    let _ = route::link_up(&mut nl, "lo");
    let (name, (ip, len)) = (s.veth_ns.clone(), s.ns_address);
    netns
        .run(move || -> io::Result<()> {
            let mut nl = route::open()?;
            let index = route::link_index(&mut nl, &name)?;
            route::add_ipv4_address(&mut nl, index, ip, len)?;
            route::link_up(&mut nl, &name)?;
            route::link_up(&mut nl, "lo")
        })
        .map_err(|e| GuestError::Setup(e.to_string()))?
        .map_err(|e| fail("configuring the namespace's veth end", e))
}

/// Spawns `cmd` inside the namespace `ns_file`, with `conn` (if any) as descriptor 3.
fn spawn_in(cmd: &mut Command, ns_file: &File, conn: Option<RawFd>) -> io::Result<Child> {
    let ns = ns_file.as_raw_fd();
    let conn = conn.unwrap_or(-1);
    // SAFETY: between fork and exec the closure makes only async-signal-safe calls (setns,
    // dup2, fcntl: plain system calls, no allocation) on descriptors open in the child, so
    // they may be borrowed there. dup2 stays on libc: rustix's takes the target as an
    // `OwnedFd`, and HANDOVER_FD need not be open.
    unsafe {
        cmd.pre_exec(move || {
            rustix::thread::move_into_link_name_space(
                BorrowedFd::borrow_raw(ns),
                Some(LinkNameSpaceType::Network),
            )?;
            if conn >= 0 {
                if conn == HANDOVER_FD {
                    let conn = BorrowedFd::borrow_raw(conn);
                    let flags = rustix::io::fcntl_getfd(conn)?;
                    rustix::io::fcntl_setfd(conn, flags - FdFlags::CLOEXEC)?;
                } else if libc::dup2(conn, HANDOVER_FD) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    cmd.spawn()
}
