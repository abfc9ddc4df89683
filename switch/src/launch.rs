//! `host-switch run`: start a command in fresh namespaces with a TAP device we serve.
//!
//! We spawn a helper — this same executable with the hidden first argument [`CHILD_ARG`] —
//! that, as a fresh single-threaded process:
//! 1. `unshare`s a network and a mount namespace, and a user namespace first when asked
//!    (unprivileged callers), mapping its own uid and gid to root inside so it may configure
//!    the network and mount;
//! 2. makes its mounts private and bind-mounts our resolv.conf over `/etc/resolv.conf` (inside
//!    its mount namespace only; the machine's file is untouched);
//! 3. creates and configures the TAP device in its new network namespace (slirp4netns
//!    `--configure`: MAC, MTU, address, link up, default route via the gateway);
//! 4. passes the TAP's queues to us over a unix socket pair (`SCM_RIGHTS`, on descriptor
//!    [`CHILD_FD`]; one per worker, the device opened with `IFF_MULTI_QUEUE`, and with
//!    `IFF_VNET_HDR` unless offloads are off: we negotiate them on the queues we receive) and
//!    waits for one byte from us ([`Launched::release`]) before it `exec`s
//!    the command in its own place, so the command never runs before the switch serves its
//!    TAP, and waiting for the helper is waiting for the command.
//!
//! The TAP is created by the child rather than by us entering its namespaces: joining a user
//! namespace is refused to a multi-threaded process, and an unprivileged process cannot enter
//! a network namespace its user namespace does not own. A step that fails in the child is
//! reported back as text over the socket pair and the child exits with [`SETUP_FAILED`].

use std::ffi::{CString, OsString};
use std::io::{self, IoSlice, IoSliceMut, Write};
use std::mem::MaybeUninit;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use rustix::io::{Errno, FdFlags};
use rustix::mount::MountPropagationFlags;
use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use rustix::thread::UnshareFlags;
use stack::wire::EthernetAddress;

use crate::netns::Netns;
use crate::tap::{Tap, TapConfig, TapOptions};

/// The hidden first argument that makes `host-switch` the launch helper.
pub const CHILD_ARG: &str = "__launch-child";
/// The descriptor the helper finds its end of the socket pair on.
pub const CHILD_FD: RawFd = 3;
/// The helper's exit status when setting up failed (the command never ran).
pub const SETUP_FAILED: i32 = 125;
/// The helper's exit status when the command could not be executed (as shells use).
pub const EXEC_FAILED: i32 = 127;
/// How long the child may take to set up before we give up on it.
const SETUP_TIMEOUT: Duration = Duration::from_secs(20);
/// The byte that precedes the TAP descriptor; anything else starts an error message.
const TAP_TAG: u8 = b'T';
/// The byte that lets the child exec.
const GO: u8 = b'G';
/// The most TAP queues the helper opens (the kernel's `MAX_TAP_QUEUES` is 256).
const MAX_QUEUES: usize = 256;
/// Longest error message the child sends.
const MAX_MESSAGE: usize = 512;

/// What the child's namespaces get.
#[derive(Debug, Clone)]
pub struct LaunchOptions {
    pub tap_name: String,
    pub tap: TapConfig,
    /// The file bind-mounted over `/etc/resolv.conf` inside the mount namespace.
    pub resolv_conf: PathBuf,
    /// Create a user namespace (needed unless we are root).
    pub user_namespace: bool,
    /// Queues of the TAP device (one per worker), at least 1.
    pub queues: usize,
    /// Open the queues for offloads ([`TapOptions::offload`]); we negotiate them once the
    /// queues arrive.
    pub offload: bool,
}

/// Why the command could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("no command given")]
    NoCommand,
    #[error("cannot create the socket pair: {0}")]
    SocketPair(io::Error),
    #[error("cannot start the launch helper {exe}: {source}")]
    Spawn { exe: PathBuf, source: io::Error },
    #[error("setting up the namespaces failed: {0}")]
    Setup(String),
}

/// A child waiting to exec, and its TAP device's queues.
#[derive(Debug)]
pub struct Launched {
    pub child: Child,
    pub taps: Vec<Tap>,
    go: UnixStream,
}

impl Launched {
    /// Lets the child exec its command.
    pub fn release(&mut self) -> io::Result<()> {
        self.go.write_all(&[GO])
    }
}

/// Starts `command` through the helper `exe` (this executable); see the module docs. Returns
/// once the TAP device has arrived; the command waits for [`Launched::release`].
pub fn launch(
    exe: &Path,
    command: &[OsString],
    options: &LaunchOptions,
) -> Result<Launched, LaunchError> {
    if command.is_empty() {
        return Err(LaunchError::NoCommand);
    }
    let (ours, theirs) = UnixStream::pair().map_err(LaunchError::SocketPair)?;
    let config = &options.tap;
    let mut cmd = Command::new(exe);
    cmd.arg(CHILD_ARG)
        .arg(if options.user_namespace { "1" } else { "0" })
        .arg(&options.tap_name)
        .arg(config.mac.map_or_else(|| "-".to_owned(), |m| m.to_string()))
        .arg(config.mtu.to_string())
        .arg(config.address.to_string())
        .arg(config.prefix_len.to_string())
        .arg(
            config
                .gateway
                .map_or_else(|| "-".to_owned(), |g| g.to_string()),
        )
        .arg(&options.resolv_conf)
        .arg(options.queues.clamp(1, MAX_QUEUES).to_string())
        .arg(if options.offload { "1" } else { "0" })
        .arg("--")
        .args(command);
    let fd = theirs.as_raw_fd();
    // SAFETY: the closure runs in the child between fork and exec and makes only
    // async-signal-safe calls (dup2, fcntl, prlimit64: plain system calls, no allocation) on
    // a descriptor that is open in the child, so it may be borrowed there. dup2 stays on
    // libc: rustix's takes the target as an `OwnedFd`, and CHILD_FD need not be open.
    unsafe {
        cmd.pre_exec(move || {
            // The command gets the open-file limit it would have had without us.
            crate::sys::restore_nofile_limit()?;
            if fd == CHILD_FD {
                let sock = BorrowedFd::borrow_raw(fd);
                let flags = rustix::io::fcntl_getfd(sock)?;
                rustix::io::fcntl_setfd(sock, flags - FdFlags::CLOEXEC)?;
            } else if libc::dup2(fd, CHILD_FD) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let spawned = cmd.spawn();
    drop(theirs);
    let mut child = spawned.map_err(|source| LaunchError::Spawn {
        exe: exe.to_owned(),
        source,
    })?;
    let _ = ours.set_read_timeout(Some(SETUP_TIMEOUT));
    let mut taps = Vec::new();
    for _ in 0..options.queues.clamp(1, MAX_QUEUES) {
        match recv_fd(&ours) {
            Ok(fd) => taps.push(Tap::from_fd(fd, &options.tap_name)),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(LaunchError::Setup(e.to_string()));
            }
        }
    }
    Ok(Launched {
        child,
        taps,
        go: ours,
    })
}

/// The helper's entry point: `args` are what follows [`CHILD_ARG`]. Never returns.
pub fn child_main(args: &[OsString]) -> ! {
    // SAFETY: `spawn` put our end of the socket pair on CHILD_FD (its pre_exec hook), and
    // nothing else in this process owns that descriptor.
    let sock = unsafe { OwnedFd::from_raw_fd(CHILD_FD) };
    let fail = |step: &str, e: &dyn std::fmt::Display| -> ! {
        let message = format!("{step}: {e}");
        let bytes = message.as_bytes();
        let bytes = bytes
            .get(..bytes.len().min(MAX_MESSAGE))
            .unwrap_or_default();
        let _ = rustix::io::write(&sock, bytes);
        std::process::exit(SETUP_FAILED);
    };
    let setup = match ChildSetup::parse(args) {
        Ok(setup) => setup,
        Err(e) => fail("bad helper arguments", &e),
    };
    if let Err((step, e)) = setup.steps(sock.as_fd()) {
        fail(step, &e);
    }
    // Our end of the socket pair closes here, before the command runs.
    drop(sock);
    let Some((program, rest)) = setup.command.split_first() else {
        eprintln!("host-switch run: no command");
        std::process::exit(EXEC_FAILED);
    };
    let err = Command::new(program).args(rest).exec();
    eprintln!(
        "host-switch run: cannot run {}: {err}",
        Path::new(program).display()
    );
    std::process::exit(EXEC_FAILED);
}

/// The helper's parsed arguments.
struct ChildSetup {
    user_namespace: bool,
    tap_name: String,
    tap: TapConfig,
    resolv: CString,
    queues: usize,
    offload: bool,
    command: Vec<OsString>,
}

impl ChildSetup {
    fn parse(args: &[OsString]) -> Result<ChildSetup, String> {
        let text = |i: usize| -> Result<&str, String> {
            args.get(i)
                .and_then(|a| a.to_str())
                .ok_or_else(|| format!("argument {i} missing or not UTF-8"))
        };
        let bad = |what: &str| format!("bad {what}");
        let mac = match text(2)? {
            "-" => None,
            m => Some(m.parse::<EthernetAddress>().map_err(|_| bad("MAC"))?),
        };
        let gateway = match text(6)? {
            "-" => None,
            g => Some(g.parse::<Ipv4Addr>().map_err(|_| bad("gateway"))?),
        };
        let resolv = args.get(7).ok_or_else(|| bad("resolv.conf path"))?;
        let resolv = CString::new(resolv.as_bytes()).map_err(|_| bad("resolv.conf path"))?;
        let queues: usize = text(8)?.parse().map_err(|_| bad("queue count"))?;
        let offload = match text(9)? {
            "1" => true,
            "0" => false,
            _ => return Err(bad("offload switch")),
        };
        if args.get(10).is_none_or(|a| a != "--") {
            return Err(bad("argument list"));
        }
        Ok(ChildSetup {
            user_namespace: text(0)? == "1",
            tap_name: text(1)?.to_owned(),
            tap: TapConfig {
                mac,
                mtu: text(3)?.parse().map_err(|_| bad("MTU"))?,
                address: text(4)?.parse().map_err(|_| bad("address"))?,
                prefix_len: text(5)?.parse().map_err(|_| bad("prefix length"))?,
                gateway,
                loopback_up: true,
            },
            resolv,
            queues: queues.clamp(1, MAX_QUEUES),
            offload,
            command: args.get(11..).unwrap_or_default().to_vec(),
        })
    }

    fn steps(&self, sock: BorrowedFd<'_>) -> Result<(), (&'static str, io::Error)> {
        let uid = rustix::process::getuid().as_raw();
        let gid = rustix::process::getgid().as_raw();
        let mut flags = UnshareFlags::NEWNET | UnshareFlags::NEWNS;
        if self.user_namespace {
            flags |= UnshareFlags::NEWUSER;
        }
        // SAFETY: unshare_unsafe is unsafe only for CLONE_FILES (descriptors another thread
        // holds could vanish from under it), which is not asked for; this helper process is
        // single-threaded anyway.
        if let Err(e) = unsafe { rustix::thread::unshare_unsafe(flags) } {
            let step = if self.user_namespace {
                "creating user, network and mount namespaces (are unprivileged user namespaces allowed here?)"
            } else {
                "creating network and mount namespaces"
            };
            return Err((step, e.into()));
        }
        if self.user_namespace {
            let map = |path: &str, text: String| {
                std::fs::write(path, text).map_err(|e| ("writing the user namespace's id maps", e))
            };
            map("/proc/self/setgroups", "deny".to_owned())?;
            map("/proc/self/uid_map", format!("0 {uid} 1\n"))?;
            map("/proc/self/gid_map", format!("0 {gid} 1\n"))?;
        }
        rustix::mount::mount_change(
            c"/",
            MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
        )
        .map_err(|e| ("making mounts private", e.into()))?;
        rustix::mount::mount_bind(self.resolv.as_c_str(), c"/etc/resolv.conf").map_err(|e| {
            (
                "bind-mounting our resolv.conf over /etc/resolv.conf",
                e.into(),
            )
        })?;
        for queue in 0..self.queues {
            let options = TapOptions {
                multi_queue: true,
                configure: (queue == 0).then(|| self.tap.clone()),
                offload: self.offload,
            };
            let tap = Tap::open_with(&self.tap_name, &Netns::Current, &options)
                .map_err(|e| ("creating the TAP device", io::Error::other(e.to_string())))?;
            send_fd(sock, tap.as_fd()).map_err(|e| ("passing the TAP device", e))?;
        }
        let mut go = [0u8; 1];
        loop {
            match rustix::io::read(sock, &mut go) {
                Ok(1) if go[0] == GO => return Ok(()),
                Err(Errno::INTR) => continue,
                _ => return Err(("waiting for the switch", io::ErrorKind::BrokenPipe.into())),
            }
        }
    }
}

/// Sends `fd` with one tag byte over the unix socket `sock`.
fn send_fd(sock: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> io::Result<()> {
    let tag = [TAP_TAG];
    let fds = [fd];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(io::ErrorKind::InvalidInput.into());
    }
    loop {
        match rustix::net::sendmsg(
            sock,
            &[IoSlice::new(&tag)],
            &mut control,
            SendFlags::empty(),
        ) {
            Ok(1) => return Ok(()),
            Ok(_) => return Err(io::ErrorKind::WriteZero.into()),
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Receives a descriptor sent by [`send_fd`]; any other message is the child's error text.
/// Descriptors beyond the first are closed.
fn recv_fd(sock: &UnixStream) -> io::Result<OwnedFd> {
    let mut data = [0u8; MAX_MESSAGE];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let n = loop {
        let mut iov = [IoSliceMut::new(&mut data)];
        match rustix::net::recvmsg(sock, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC) {
            Ok(msg) => break msg.bytes,
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    };
    let mut received = None;
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = message {
            for fd in fds {
                received.get_or_insert(fd);
            }
        }
    }
    match (received, data.first()) {
        (Some(fd), Some(&TAP_TAG)) if n == 1 => Ok(fd),
        (_, _) if n == 0 => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the child exited during setup",
        )),
        _ => Err(io::Error::other(
            String::from_utf8_lossy(data.get(..n).unwrap_or_default()).into_owned(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_descriptor_passes_with_its_tag() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let (probe, peer) = UnixStream::pair().unwrap();
        send_fd(theirs.as_fd(), probe.as_fd()).unwrap();
        let fd = recv_fd(&ours).unwrap();
        // The descriptor received is the same socket: what it writes, the peer reads.
        let got = UnixStream::from(fd);
        (&got).write_all(b"x").unwrap();
        let mut buf = [0u8; 1];
        std::io::Read::read_exact(&mut &peer, &mut buf).unwrap();
        assert_eq!(&buf, b"x");
        let flags = rustix::io::fcntl_getfd(&got).unwrap();
        assert!(flags.contains(FdFlags::CLOEXEC));
    }

    #[test]
    fn the_childs_error_text_and_its_exit_come_back() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        (&theirs)
            .write_all(b"making mounts private: EPERM")
            .unwrap();
        let err = recv_fd(&ours).unwrap_err();
        assert_eq!(err.to_string(), "making mounts private: EPERM");
        drop(theirs);
        let err = recv_fd(&ours).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
