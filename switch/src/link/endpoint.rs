//! Listening addresses as gvproxy writes them, and binding them.
//!
//! `unix:///path` (stream), `tcp://host:port`, `vsock://:port` or `vsock://CID:port`,
//! `unixgram:///path` (datagrams) and `unixpacket:///path` (SOCK_SEQPACKET). The path is what
//! follows `scheme://`, so `unix:///run/x.sock` is absolute and `unix://x.sock` relative.
//!
//! Binding a unix path that already exists: a socket nobody listens on any more (connecting is
//! refused) is stale and replaced; a socket with a listener, or any other file, is an error. A
//! socket file this process created is removed when its [`SocketFile`] guard drops.

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use socket2::{Domain, SockAddr, Socket, Type};

/// Connections waiting to be accepted, per listener.
const BACKLOG: i32 = 128;

/// Where a link listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `unix:///path`: a stream socket.
    Unix(PathBuf),
    /// `tcp://host:port`.
    Tcp(String),
    /// `vsock://CID:port`; an empty CID listens on any.
    Vsock { cid: u32, port: u32 },
    /// `unixgram:///path`: a datagram socket.
    Unixgram(PathBuf),
    /// `unixpacket:///path`: a SOCK_SEQPACKET socket.
    Unixpacket(PathBuf),
}

/// Why an endpoint could not be parsed or bound.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error(
        "{0:?} is not an address of the form scheme://… (unix, tcp, vsock, unixgram, unixpacket)"
    )]
    Syntax(String),
    #[error("unsupported scheme {scheme:?} in {addr:?}")]
    Scheme { scheme: String, addr: String },
    #[error("{addr:?}: {reason}")]
    Invalid { addr: String, reason: &'static str },
    #[error("{addr} must be a {expected}:// address")]
    WrongKind {
        addr: String,
        expected: &'static str,
    },
    #[error("cannot resolve {addr}: {source}")]
    Resolve { addr: String, source: io::Error },
    #[error("{path}: exists and is not a socket; refusing to replace it")]
    NotASocket { path: PathBuf },
    #[error("{path}: another process is listening on it")]
    InUse { path: PathBuf },
    #[error("cannot listen on {endpoint}: {source}")]
    Bind { endpoint: String, source: io::Error },
}

impl Endpoint {
    /// Parses `scheme://rest`.
    pub fn parse(addr: &str) -> Result<Endpoint, EndpointError> {
        let (scheme, rest) = addr
            .split_once("://")
            .ok_or_else(|| EndpointError::Syntax(addr.to_owned()))?;
        let path = |rest: &str| -> Result<PathBuf, EndpointError> {
            if rest.is_empty() || rest.contains('\0') {
                return Err(EndpointError::Invalid {
                    addr: addr.to_owned(),
                    reason: "a socket path is needed",
                });
            }
            Ok(PathBuf::from(rest))
        };
        match scheme {
            "unix" => Ok(Endpoint::Unix(path(rest)?)),
            "unixgram" => Ok(Endpoint::Unixgram(path(rest)?)),
            "unixpacket" => Ok(Endpoint::Unixpacket(path(rest)?)),
            "tcp" => {
                let host_port = rest.trim_end_matches('/');
                if host_port.rsplit_once(':').is_none() {
                    return Err(EndpointError::Invalid {
                        addr: addr.to_owned(),
                        reason: "tcp needs host:port",
                    });
                }
                Ok(Endpoint::Tcp(host_port.to_owned()))
            }
            "vsock" => {
                let host_port = rest.trim_end_matches('/');
                let invalid = |reason| EndpointError::Invalid {
                    addr: addr.to_owned(),
                    reason,
                };
                let (cid, port) = host_port
                    .rsplit_once(':')
                    .ok_or_else(|| invalid("vsock needs [CID]:port"))?;
                let port = port.parse().map_err(|_| invalid("bad vsock port"))?;
                let cid = if cid.is_empty() {
                    libc::VMADDR_CID_ANY
                } else {
                    cid.parse().map_err(|_| invalid("bad vsock CID"))?
                };
                Ok(Endpoint::Vsock { cid, port })
            }
            _ => Err(EndpointError::Scheme {
                scheme: scheme.to_owned(),
                addr: addr.to_owned(),
            }),
        }
    }

    /// The unix socket path, if this is a unix endpoint of any kind.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Endpoint::Unix(p) | Endpoint::Unixgram(p) | Endpoint::Unixpacket(p) => Some(p),
            Endpoint::Tcp(_) | Endpoint::Vsock { .. } => None,
        }
    }

    fn socket_type(&self) -> Type {
        match self {
            Endpoint::Unix(_) | Endpoint::Tcp(_) | Endpoint::Vsock { .. } => Type::STREAM,
            Endpoint::Unixgram(_) => Type::DGRAM,
            Endpoint::Unixpacket(_) => Type::SEQPACKET,
        }
    }

    /// Binds (and, for connection-oriented kinds, listens on) this endpoint. Unix socket files
    /// get `mode` if given.
    pub fn bind(&self, mode: Option<u32>) -> Result<Bound, EndpointError> {
        let bind_err = |source| EndpointError::Bind {
            endpoint: self.to_string(),
            source,
        };
        let ty = self.socket_type();
        let (socket, file) = match self {
            Endpoint::Tcp(host_port) => {
                let addr = resolve(host_port)?;
                let socket = Socket::new(Domain::for_address(addr), ty, None).map_err(bind_err)?;
                socket.set_reuse_address(true).map_err(bind_err)?;
                socket.bind(&addr.into()).map_err(bind_err)?;
                (socket, None)
            }
            Endpoint::Vsock { cid, port } => {
                let socket = Socket::new(Domain::VSOCK, ty, None).map_err(bind_err)?;
                socket
                    .bind(&SockAddr::vsock(*cid, *port))
                    .map_err(bind_err)?;
                (socket, None)
            }
            Endpoint::Unix(path) | Endpoint::Unixgram(path) | Endpoint::Unixpacket(path) => {
                remove_stale(path, ty)?;
                let socket = Socket::new(Domain::UNIX, ty, None).map_err(bind_err)?;
                let addr = SockAddr::unix(path).map_err(bind_err)?;
                socket.bind(&addr).map_err(bind_err)?;
                let file = SocketFile { path: path.clone() };
                if let Some(mode) = mode {
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                        .map_err(bind_err)?;
                }
                (socket, Some(file))
            }
        };
        if ty != Type::DGRAM {
            socket.listen(BACKLOG).map_err(bind_err)?;
        }
        Ok(Bound { socket, file })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix://{}", p.display()),
            Endpoint::Tcp(a) => write!(f, "tcp://{a}"),
            Endpoint::Vsock { cid, port } if *cid == libc::VMADDR_CID_ANY => {
                write!(f, "vsock://:{port}")
            }
            Endpoint::Vsock { cid, port } => write!(f, "vsock://{cid}:{port}"),
            Endpoint::Unixgram(p) => write!(f, "unixgram://{}", p.display()),
            Endpoint::Unixpacket(p) => write!(f, "unixpacket://{}", p.display()),
        }
    }
}

/// A bound socket and the file it created, if any.
#[derive(Debug)]
pub struct Bound {
    pub socket: Socket,
    pub file: Option<SocketFile>,
}

/// A socket file this process created; removed on drop.
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
}

impl SocketFile {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        match std::fs::remove_file(&self.path) {
            Ok(()) => tracing::debug!(path = %self.path.display(), "removed socket"),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot remove socket")
            }
        }
    }
}

fn resolve(host_port: &str) -> Result<SocketAddr, EndpointError> {
    let resolve_err = |source| EndpointError::Resolve {
        addr: host_port.to_owned(),
        source,
    };
    host_port
        .to_socket_addrs()
        .map_err(resolve_err)?
        .next()
        .ok_or_else(|| resolve_err(io::ErrorKind::NotFound.into()))
}

/// Removes `path` if it is a socket nobody listens on.
fn remove_stale(path: &Path, ty: Type) -> Result<(), EndpointError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(_) => return Ok(()),
    };
    if !meta.file_type().is_socket() {
        return Err(EndpointError::NotASocket {
            path: path.to_owned(),
        });
    }
    let probe = Socket::new(Domain::UNIX, ty, None)
        .and_then(|s| s.connect(&SockAddr::unix(path)?).map(|()| s));
    match probe {
        Ok(_) => Err(EndpointError::InUse {
            path: path.to_owned(),
        }),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            tracing::info!(path = %path.display(), "replacing stale socket");
            std::fs::remove_file(path).map_err(|source| EndpointError::Bind {
                endpoint: path.display().to_string(),
                source,
            })
        }
        Err(e) => Err(EndpointError::Bind {
            endpoint: path.display().to_string(),
            source: e,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_gvproxy_addresses() {
        assert_eq!(
            Endpoint::parse("unix:///tmp/a.sock").unwrap(),
            Endpoint::Unix("/tmp/a.sock".into())
        );
        assert_eq!(
            Endpoint::parse("tcp://127.0.0.1:7777").unwrap(),
            Endpoint::Tcp("127.0.0.1:7777".into())
        );
        assert_eq!(
            Endpoint::parse("vsock://:1024").unwrap(),
            Endpoint::Vsock {
                cid: libc::VMADDR_CID_ANY,
                port: 1024
            }
        );
        assert_eq!(
            Endpoint::parse("vsock://3:1024").unwrap(),
            Endpoint::Vsock { cid: 3, port: 1024 }
        );
        assert_eq!(
            Endpoint::parse("unixgram:///x").unwrap(),
            Endpoint::Unixgram("/x".into())
        );
        assert_eq!(
            Endpoint::parse("unixpacket:///x").unwrap(),
            Endpoint::Unixpacket("/x".into())
        );
        for bad in [
            "/tmp/x",
            "udp://1.2.3.4:5",
            "unix://",
            "tcp://nohost",
            "vsock://x:1",
            "vsock://:port",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Endpoint::parse("vsock://:1024").unwrap().to_string(),
            "vsock://:1024"
        );
    }

    #[test]
    fn stale_sockets_are_replaced_live_ones_refused() {
        let dir = std::env::temp_dir().join(format!("hs-endpoint-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let ep = Endpoint::Unix(path.clone());
        let first = ep.bind(Some(0o600)).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(matches!(ep.bind(None), Err(EndpointError::InUse { .. })));
        // Simulate a crash: the socket closes but its file stays.
        let Bound { socket, file } = first;
        drop(socket);
        std::mem::forget(file);
        let second = ep.bind(None).unwrap();
        drop(second);
        assert!(!path.exists(), "the guard removes the file");
        std::fs::write(&path, b"not a socket").unwrap();
        assert!(matches!(
            ep.bind(None),
            Err(EndpointError::NotASocket { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
