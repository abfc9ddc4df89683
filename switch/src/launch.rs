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
//! 4. passes the TAP's descriptor to us over a unix socket pair (`SCM_RIGHTS`, on descriptor
//!    [`CHILD_FD`]) and waits for one byte from us ([`Launched::release`]) before it `exec`s
//!    the command in its own place, so the command never runs before the switch serves its
//!    TAP, and waiting for the helper is waiting for the command.
//!
//! The TAP is created by the child rather than by us entering its namespaces: joining a user
//! namespace is refused to a multi-threaded process, and an unprivileged process cannot enter
//! a network namespace its user namespace does not own. A step that fails in the child is
//! reported back as text over the socket pair and the child exits with [`SETUP_FAILED`].

use std::ffi::{CString, OsString};
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

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

/// A child waiting to exec, and its TAP device.
#[derive(Debug)]
pub struct Launched {
    pub child: Child,
    pub tap: Tap,
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
        .arg("--")
        .args(command);
    let fd = theirs.as_raw_fd();
    // SAFETY: the closure runs in the child between fork and exec and makes only
    // async-signal-safe calls (dup2, fcntl, getrlimit, setrlimit) on a descriptor that is
    // open in the child.
    unsafe {
        cmd.pre_exec(move || {
            // The command gets the open-file limit it would have had without us.
            crate::sys::restore_nofile_limit()?;
            if fd == CHILD_FD {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return Err(io::Error::last_os_error());
                }
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
    match recv_fd(&ours) {
        Ok(fd) => Ok(Launched {
            child,
            tap: Tap::from_fd(fd, &options.tap_name),
            go: ours,
        }),
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(LaunchError::Setup(e.to_string()))
        }
    }
}

/// The helper's entry point: `args` are what follows [`CHILD_ARG`]. Never returns.
pub fn child_main(args: &[OsString]) -> ! {
    let sock = CHILD_FD;
    let fail = |step: &str, e: &dyn std::fmt::Display| -> ! {
        let message = format!("{step}: {e}");
        let bytes = message.as_bytes();
        let bytes = bytes
            .get(..bytes.len().min(MAX_MESSAGE))
            .unwrap_or_default();
        // SAFETY: writes `bytes` (a live slice) to the socket this process was given.
        unsafe { libc::write(sock, bytes.as_ptr().cast(), bytes.len()) };
        std::process::exit(SETUP_FAILED);
    };
    let setup = match ChildSetup::parse(args) {
        Ok(setup) => setup,
        Err(e) => fail("bad helper arguments", &e),
    };
    if let Err((step, e)) = setup.steps(sock) {
        fail(step, &e);
    }
    // SAFETY: closing our end of the socket pair, which nothing else in this process uses.
    unsafe { libc::close(sock) };
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
        if args.get(8).is_none_or(|a| a != "--") {
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
            command: args.get(9..).unwrap_or_default().to_vec(),
        })
    }

    fn steps(&self, sock: RawFd) -> Result<(), (&'static str, io::Error)> {
        // SAFETY: getuid/getgid cannot fail and touch no memory.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let mut flags = libc::CLONE_NEWNET | libc::CLONE_NEWNS;
        if self.user_namespace {
            flags |= libc::CLONE_NEWUSER;
        }
        // SAFETY: unshare takes an integer; this helper process is single-threaded.
        if unsafe { libc::unshare(flags) } != 0 {
            let step = if self.user_namespace {
                "creating user, network and mount namespaces (are unprivileged user namespaces allowed here?)"
            } else {
                "creating network and mount namespaces"
            };
            return Err((step, io::Error::last_os_error()));
        }
        if self.user_namespace {
            let map = |path: &str, text: String| {
                std::fs::write(path, text).map_err(|e| ("writing the user namespace's id maps", e))
            };
            map("/proc/self/setgroups", "deny".to_owned())?;
            map("/proc/self/uid_map", format!("0 {uid} 1\n"))?;
            map("/proc/self/gid_map", format!("0 {gid} 1\n"))?;
        }
        // SAFETY: every pointer is a NUL-terminated string that outlives the call, or null
        // where mount(2) allows it (no source, type or data for a propagation change).
        let rc = unsafe {
            libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            )
        };
        if rc != 0 {
            return Err(("making mounts private", io::Error::last_os_error()));
        }
        // SAFETY: as above; a bind mount takes a source and a target path only.
        let rc = unsafe {
            libc::mount(
                self.resolv.as_ptr(),
                c"/etc/resolv.conf".as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            )
        };
        if rc != 0 {
            return Err((
                "bind-mounting our resolv.conf over /etc/resolv.conf",
                io::Error::last_os_error(),
            ));
        }
        let options = TapOptions {
            multi_queue: false,
            configure: Some(self.tap.clone()),
        };
        let tap = Tap::open_with(&self.tap_name, &Netns::Current, &options)
            .map_err(|e| ("creating the TAP device", io::Error::other(e.to_string())))?;
        send_fd(sock, tap.as_raw_fd()).map_err(|e| ("passing the TAP device", e))?;
        drop(tap);
        let mut go = [0u8; 1];
        loop {
            // SAFETY: reads at most one byte into `go`, which lives across the call.
            let n = unsafe { libc::read(sock, go.as_mut_ptr().cast(), 1) };
            if n == 1 && go[0] == GO {
                return Ok(());
            }
            let err = io::Error::last_os_error();
            if n < 0 && err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(("waiting for the switch", io::ErrorKind::BrokenPipe.into()));
        }
    }
}

/// A control-message buffer aligned for `cmsghdr`, with room for one descriptor.
#[repr(C, align(8))]
struct CmsgBuf([u8; 64]);

/// Sends `fd` with one tag byte over the unix socket `sock`.
fn send_fd(sock: RawFd, fd: RawFd) -> io::Result<()> {
    let mut tag = [TAP_TAG];
    let mut iov = libc::iovec {
        iov_base: tag.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut buf = CmsgBuf([0; 64]);
    let fd_len = std::mem::size_of::<RawFd>() as u32;
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(fd_len) } as usize;
    // SAFETY: all-zero bytes are a valid msghdr (null pointers, zero lengths).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = buf.0.as_mut_ptr().cast();
    msg.msg_controllen = space.min(buf.0.len()) as _;
    // SAFETY: msg_control points to `buf`, aligned for cmsghdr and at least CMSG_SPACE(4)
    // bytes long, so CMSG_FIRSTHDR is non-null and its header and data lie within `buf`.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
        if cmsg.is_null() {
            return Err(io::ErrorKind::InvalidInput.into());
        }
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(fd_len) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd);
    }
    loop {
        // SAFETY: `msg` and everything it points to (iov, tag, buf) live across the call.
        let n = unsafe { libc::sendmsg(sock, &raw const msg, 0) };
        if n == 1 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if n < 0 && err.kind() == io::ErrorKind::Interrupted {
            continue;
        }
        return Err(err);
    }
}

/// Receives a descriptor sent by [`send_fd`]; any other message is the child's error text.
fn recv_fd(sock: &UnixStream) -> io::Result<OwnedFd> {
    let mut data = [0u8; MAX_MESSAGE];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    let mut buf = CmsgBuf([0; 64]);
    // SAFETY: all-zero bytes are a valid msghdr.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = buf.0.as_mut_ptr().cast();
    msg.msg_controllen = buf.0.len() as _;
    let n = loop {
        // SAFETY: `msg` points to `iov`/`data` and `buf`, all live across the call.
        let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &raw mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n as usize;
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    };
    // SAFETY: after recvmsg, the kernel has set msg_controllen to the bytes it wrote into
    // `buf`; CMSG_FIRSTHDR/CMSG_NXTHDR walk only within that, and CMSG_DATA of an SCM_RIGHTS
    // header of CMSG_LEN(4) or more bytes holds at least one descriptor.
    let mut received = None;
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET
                && (*cmsg).cmsg_type == libc::SCM_RIGHTS
                && (*cmsg).cmsg_len as usize
                    >= libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize
            {
                let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>());
                if fd >= 0 && received.is_none() {
                    // The descriptor is new in this process and owned by nobody else.
                    received = Some(OwnedFd::from_raw_fd(fd));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&raw const msg, cmsg);
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
