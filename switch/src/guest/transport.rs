//! Where the guest agent reaches host-switch, and connecting there.
//!
//! `--connect` takes the address of a host-switch `-listen` endpoint — `unix:///path`,
//! `tcp://host:port`, `vsock://CID:PORT` — which the agent attaches to with `POST /connect`
//! as gvforwarder does (the host answers nothing and frames follow at once, 2-byte
//! little-endian length first); a character device such as a virtio-serial port
//! (`/dev/virtio-ports/NAME`, `/dev/vport0p1`), whose host end QEMU connects to a `-listen`
//! unix socket, so it attaches with `POST /connect` too; `stdio`, raw frames on standard input
//! and output (a host-switch `-listen-stdio` at the other end of a pipe); or `fd://N`, a
//! descriptor this process inherited already attached (what `--setup` hands its child).
//!
//! Every connection is two descriptors, one to read and one to write, so the two directions
//! run on threads of their own; [`Conn::close`] ends a blocked read on a socket, and readers
//! wait with [`wait_readable`] so that a stop is noticed on any kind of descriptor.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::Duration;

use rustix::io::Errno;
use socket2::{Domain, SockAddr, Socket, Type};

use crate::link::Endpoint;
use crate::link::offer::Offer;

/// The request that attaches a stream to the switch (gvforwarder sends the same), with the
/// offer of a virtio-net header where there is one ([`crate::link::offer`]).
pub fn connect_request(offer: Option<&Offer>) -> Vec<u8> {
    let offer = offer.map(Offer::request_header).unwrap_or_default();
    format!("POST /connect HTTP/1.1\r\nHost: host-switch\r\n{offer}Content-Length: 0\r\n\r\n")
        .into_bytes()
}

/// How long a connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A `-listen` endpoint: unix, tcp or vsock.
    Endpoint(Endpoint),
    /// A character device (virtio-serial port).
    Device(PathBuf),
    /// Standard input and output, raw frames.
    Stdio,
    /// An inherited descriptor, already attached.
    Fd(RawFd),
}

/// Why an address was refused.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error(
        "--connect {0:?}: expected unix:///path, tcp://host:port, vsock://CID:PORT, a device path, stdio or fd://N"
    )]
    Syntax(String),
    #[error("--connect {addr:?}: {source}")]
    Endpoint {
        addr: String,
        source: crate::link::EndpointError,
    },
}

impl Target {
    pub fn parse(addr: &str) -> Result<Target, TargetError> {
        if addr == "stdio" {
            return Ok(Target::Stdio);
        }
        if let Some(fd) = addr.strip_prefix("fd://") {
            return fd
                .parse::<RawFd>()
                .ok()
                .filter(|fd| *fd >= 0)
                .map(Target::Fd)
                .ok_or_else(|| TargetError::Syntax(addr.to_owned()));
        }
        if addr.starts_with('/') {
            return Ok(Target::Device(PathBuf::from(addr)));
        }
        if let Some(path) = addr.strip_prefix("file://") {
            return Ok(Target::Device(PathBuf::from(path)));
        }
        match Endpoint::parse(addr) {
            Ok(ep @ (Endpoint::Unix(_) | Endpoint::Tcp(_) | Endpoint::Vsock { .. })) => {
                Ok(Target::Endpoint(ep))
            }
            Ok(_) => Err(TargetError::Syntax(addr.to_owned())),
            Err(source) => Err(TargetError::Endpoint {
                addr: addr.to_owned(),
                source,
            }),
        }
    }

    /// Whether a second connection can be made to this target for the control API.
    pub fn api_endpoint(&self) -> Option<&Endpoint> {
        match self {
            Target::Endpoint(ep) => Some(ep),
            _ => None,
        }
    }

    /// Whether this target can be connected again after the connection ends.
    pub fn reconnects(&self) -> bool {
        !matches!(self, Target::Fd(_) | Target::Stdio)
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Endpoint(ep) => write!(f, "{ep}"),
            Target::Device(p) => write!(f, "{}", p.display()),
            Target::Stdio => f.write_str("stdio"),
            Target::Fd(fd) => write!(f, "fd://{fd}"),
        }
    }
}

/// One attached connection: frames can flow.
#[derive(Debug)]
pub struct Conn {
    pub read: File,
    pub write: File,
    /// For sockets: a handle to shut the connection down with.
    socket: Option<Socket>,
}

impl Conn {
    /// Ends the connection both ways (a socket); a blocked reader sees end of stream.
    pub fn close(&self) {
        if let Some(socket) = &self.socket {
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
    }

    /// A handle that closes this connection from another thread.
    pub fn closer(&self) -> io::Result<Option<Socket>> {
        self.socket.as_ref().map(Socket::try_clone).transpose()
    }

    fn from_socket(socket: Socket) -> io::Result<Conn> {
        let read = File::from(OwnedFd::from(socket.try_clone()?));
        let write = File::from(OwnedFd::from(socket.try_clone()?));
        Ok(Conn {
            read,
            write,
            socket: Some(socket),
        })
    }
}

/// A stream socket connected to `ep`.
pub fn connect_stream(ep: &Endpoint) -> io::Result<Socket> {
    let (socket, addr) = match ep {
        Endpoint::Unix(path) => (
            Socket::new(Domain::UNIX, Type::STREAM, None)?,
            SockAddr::unix(path)?,
        ),
        Endpoint::Tcp(host_port) => {
            let addr = std::net::ToSocketAddrs::to_socket_addrs(host_port.as_str())?
                .next()
                .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
            let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
            let _ = socket.set_nodelay(true);
            (socket, SockAddr::from(addr))
        }
        Endpoint::Vsock { cid, port } => (
            Socket::new(Domain::VSOCK, Type::STREAM, None)?,
            SockAddr::vsock(*cid, *port),
        ),
        Endpoint::Unixgram(_) | Endpoint::Unixpacket(_) => {
            return Err(io::ErrorKind::InvalidInput.into());
        }
    };
    if matches!(ep, Endpoint::Tcp(_)) {
        socket.connect_timeout(&addr, CONNECT_TIMEOUT)?;
    } else {
        socket.connect(&addr)?;
    }
    Ok(socket)
}

/// Whether a connection to `target` starts with `POST /connect`, where an offer can be made.
pub fn speaks_http(target: &Target) -> bool {
    matches!(target, Target::Endpoint(_) | Target::Device(_))
}

/// Connects to `target` and attaches (`POST /connect` where the other end is HTTP, making
/// `offer` there).
pub fn connect(target: &Target, offer: Option<&Offer>) -> io::Result<Conn> {
    match target {
        Target::Endpoint(ep) => {
            let socket = connect_stream(ep)?;
            let mut conn = Conn::from_socket(socket)?;
            conn.write.write_all(&connect_request(offer))?;
            Ok(conn)
        }
        Target::Device(path) => {
            let mut write = OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
                .open(path)?;
            let read = write.try_clone()?;
            write.write_all(&connect_request(offer))?;
            Ok(Conn {
                read,
                write,
                socket: None,
            })
        }
        Target::Stdio => Ok(Conn {
            read: File::from(rustix::io::fcntl_dupfd_cloexec(io::stdin(), 3)?),
            write: File::from(rustix::io::fcntl_dupfd_cloexec(io::stdout(), 3)?),
            socket: None,
        }),
        Target::Fd(fd) => {
            let owned = dup(*fd)?;
            let socket = Socket::from(OwnedFd::from(owned.try_clone()?));
            // Not a socket (a pipe, a device): no shutdown; reads still poll.
            let is_socket = socket.r#type().is_ok();
            let write = owned.try_clone()?;
            Ok(Conn {
                read: owned,
                write,
                socket: is_socket.then_some(socket),
            })
        }
    }
}

/// A new descriptor for `fd`, close-on-exec. `fd` is a number from the command line that
/// need not be open (then the error is `EBADF`), so it cannot be borrowed as a `BorrowedFd`
/// for rustix: this one stays on libc.
fn dup(fd: RawFd) -> io::Result<File> {
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) takes integers and returns a new descriptor or -1.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `new` was just returned by fcntl and is owned by nobody else.
    Ok(unsafe { File::from_raw_fd(new) })
}

/// Waits until `fd` is readable (or at end, or in error), at most `timeout`.
pub fn wait_readable(fd: &impl AsFd, timeout: Duration) -> io::Result<bool> {
    loop {
        match crate::sys::poll_in(fd.as_fd(), Some(timeout)) {
            Ok(revents) => return Ok(!revents.is_empty()),
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        assert_eq!(
            Target::parse("unix:///run/hs.sock").unwrap(),
            Target::Endpoint(Endpoint::Unix("/run/hs.sock".into()))
        );
        assert_eq!(
            Target::parse("vsock://2:1024").unwrap(),
            Target::Endpoint(Endpoint::Vsock { cid: 2, port: 1024 })
        );
        assert_eq!(
            Target::parse("tcp://10.0.2.2:7777").unwrap(),
            Target::Endpoint(Endpoint::Tcp("10.0.2.2:7777".into()))
        );
        assert_eq!(
            Target::parse("/dev/virtio-ports/hs").unwrap(),
            Target::Device("/dev/virtio-ports/hs".into())
        );
        assert_eq!(Target::parse("stdio").unwrap(), Target::Stdio);
        assert_eq!(Target::parse("fd://3").unwrap(), Target::Fd(3));
        for bad in ["fd://-1", "fd://x", "unixgram:///x", "x", "udp://1.2.3.4:5"] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
        assert!(Target::parse("unix:///a").unwrap().reconnects());
        assert!(!Target::parse("stdio").unwrap().reconnects());
    }

    #[test]
    fn the_request_carries_an_offer_only_when_there_is_one() {
        let plain = String::from_utf8(connect_request(None)).unwrap();
        assert_eq!(
            plain,
            "POST /connect HTTP/1.1\r\nHost: host-switch\r\nContent-Length: 0\r\n\r\n"
        );
        let offer = Offer { nonce: 1 };
        let offered = String::from_utf8(connect_request(Some(&offer))).unwrap();
        assert!(offered.contains("\r\nX-Host-Switch-Offload: vnet-hdr nonce=0000000000000001\r\n"));
        assert!(offered.ends_with("Content-Length: 0\r\n\r\n"));
    }
}
