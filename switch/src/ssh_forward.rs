//! gvproxy's `-forward-sock`, `-forward-dest`, `-forward-user` and `-forward-identity`
//! (each repeatable, matched by position): a unix socket on the host whose every connection is
//! carried over SSH to a unix socket in the guest, as a `direct-streamlocal@openssh.com`
//! channel (OpenSSH's PROTOCOL §2.4). podman machine uses it for the guest's API socket.
//!
//! Guarantees:
//! - The host sockets are bound (a stale socket file is replaced, mode 0600) and every
//!   identity file is read before [`start`] returns, so a wrong path fails at start, by name.
//! - One SSH session per forward, opened to the guest's sshd through `target` (the `-ssh-port`
//!   forward, or a private one) and retried until it is up — from start, so the first client
//!   does not wait for the guest's boot, and again whenever it drops. A client connection
//!   waits for the session at most [`SESSION_WAIT`], then is closed.
//! - The guest's host key is not checked: the peer is our own guest, over our own link, as
//!   gvproxy does it. Authentication is the identity's public key only.
//! - The SSH client (russh) runs on a tokio runtime confined to one thread of its own;
//!   [`SshForwards::shutdown`] (or drop) stops it and removes the host socket files.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use russh::client::{self, Handle};
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use tokio::sync::Mutex;

use crate::link::Endpoint;
use crate::link::endpoint::SocketFile;

/// The longest a client connection waits for the SSH session.
pub const SESSION_WAIT: Duration = Duration::from_secs(60);
/// The longest one connect-and-authenticate attempt takes.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Waits between attempts grow from this to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(3);

/// One forward, as the four flags give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    /// The unix socket on the host (`unix:///path` or a path).
    pub socket: String,
    /// The unix socket in the guest.
    pub dest: String,
    pub user: String,
    /// The private key file.
    pub identity: PathBuf,
}

/// Where the guest's sshd is reached from the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SshTarget {
    Tcp(std::net::SocketAddr),
    Unix(PathBuf),
}

/// Why forwards could not start.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error(
        "-forward-sock, -forward-dest, -forward-user and -forward-identity must be given \
         together, as many times each (got {sock}, {dest}, {user} and {identity})"
    )]
    Counts {
        sock: usize,
        dest: usize,
        user: usize,
        identity: usize,
    },
    #[error("-forward-sock {0}: not a unix socket path")]
    Socket(String),
    #[error("-forward-sock {socket}: {source}")]
    Bind {
        socket: String,
        source: crate::link::EndpointError,
    },
    #[error("-forward-identity {path}: {source}")]
    Identity {
        path: PathBuf,
        source: russh::keys::Error,
    },
    #[error("cannot start the SSH forwarding thread: {0}")]
    Thread(io::Error),
}

/// Pairs the four flags' values by position.
pub fn pair(
    sock: &[String],
    dest: &[String],
    user: &[String],
    identity: &[PathBuf],
) -> Result<Vec<Forward>, ForwardError> {
    let n = sock.len();
    if dest.len() != n || user.len() != n || identity.len() != n {
        return Err(ForwardError::Counts {
            sock: n,
            dest: dest.len(),
            user: user.len(),
            identity: identity.len(),
        });
    }
    Ok((0..n)
        .filter_map(|i| {
            Some(Forward {
                socket: sock.get(i)?.clone(),
                dest: dest.get(i)?.clone(),
                user: user.get(i)?.clone(),
                identity: identity.get(i)?.clone(),
            })
        })
        .collect())
}

/// The running forwards.
#[derive(Debug)]
pub struct SshForwards {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    _files: Vec<SocketFile>,
}

impl SshForwards {
    /// Stops every forward and removes the host sockets (also done on drop).
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for SshForwards {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// What one forward's tasks share.
struct Ctx {
    forward: Forward,
    key: Arc<PrivateKey>,
    target: SshTarget,
    session: Mutex<Option<Handle<Client>>>,
}

/// Binds every forward's socket, reads every identity, and starts the forwarding thread.
pub fn start(forwards: Vec<Forward>, target: SshTarget) -> Result<SshForwards, ForwardError> {
    let mut files = Vec::new();
    let mut bound = Vec::new();
    for forward in forwards {
        let endpoint = socket_endpoint(&forward.socket)?;
        let b = endpoint
            .bind(Some(0o600))
            .map_err(|source| ForwardError::Bind {
                socket: forward.socket.clone(),
                source,
            })?;
        files.extend(b.file);
        let listener = std::os::unix::net::UnixListener::from(std::os::fd::OwnedFd::from(b.socket));
        listener
            .set_nonblocking(true)
            .map_err(ForwardError::Thread)?;
        let key = russh::keys::load_secret_key(&forward.identity, None).map_err(|source| {
            ForwardError::Identity {
                path: forward.identity.clone(),
                source,
            }
        })?;
        let ctx = Arc::new(Ctx {
            forward,
            key: Arc::new(key),
            target: target.clone(),
            session: Mutex::new(None),
        });
        bound.push((listener, ctx));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ForwardError::Thread)?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("ssh-forward".into())
        .spawn(move || runtime.block_on(run(bound, stop_rx)))
        .map_err(ForwardError::Thread)?;
    Ok(SshForwards {
        stop: Some(stop_tx),
        thread: Some(thread),
        _files: files,
    })
}

fn socket_endpoint(socket: &str) -> Result<Endpoint, ForwardError> {
    let endpoint = match socket.contains("://") {
        true => Endpoint::parse(socket).map_err(|_| ForwardError::Socket(socket.to_owned()))?,
        false => Endpoint::Unix(PathBuf::from(socket)),
    };
    match endpoint {
        Endpoint::Unix(_) => Ok(endpoint),
        _ => Err(ForwardError::Socket(socket.to_owned())),
    }
}

async fn run(
    bound: Vec<(std::os::unix::net::UnixListener, Arc<Ctx>)>,
    stop: tokio::sync::oneshot::Receiver<()>,
) {
    for (listener, ctx) in bound {
        match tokio::net::UnixListener::from_std(listener) {
            Ok(listener) => {
                tokio::spawn(warm_up(ctx.clone()));
                tokio::spawn(accept(listener, ctx));
            }
            Err(e) => {
                tracing::warn!(socket = %ctx.forward.socket, error = %e, "SSH forward not served")
            }
        }
    }
    let _ = stop.await;
}

/// Opens the session as soon as the guest's sshd answers.
async fn warm_up(ctx: Arc<Ctx>) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        if session(&ctx).await.is_ok() {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn accept(listener: tokio::net::UnixListener, ctx: Arc<Ctx>) {
    loop {
        match listener.accept().await {
            Ok((conn, _)) => {
                tokio::spawn(carry(conn, ctx.clone()));
            }
            Err(e) => {
                tracing::warn!(socket = %ctx.forward.socket, error = %e, "SSH forward accept failed");
                tokio::time::sleep(FIRST_BACKOFF).await;
            }
        }
    }
}

/// Carries one client connection over a new channel.
async fn carry(mut conn: tokio::net::UnixStream, ctx: Arc<Ctx>) {
    let channel = match tokio::time::timeout(SESSION_WAIT, open_channel(&ctx)).await {
        Ok(Ok(channel)) => channel,
        Ok(Err(e)) => {
            tracing::warn!(socket = %ctx.forward.socket, dest = %ctx.forward.dest, error = %e, "SSH forward: no channel");
            return;
        }
        Err(_) => {
            tracing::warn!(socket = %ctx.forward.socket, "SSH forward: the guest's sshd did not answer in time");
            return;
        }
    };
    let mut stream = channel.into_stream();
    if let Err(e) = tokio::io::copy_bidirectional(&mut conn, &mut stream).await {
        tracing::debug!(socket = %ctx.forward.socket, error = %e, "SSH forward connection ended");
    }
}

/// A `direct-streamlocal` channel to the forward's destination, on the session (opened or
/// reopened as needed, retried until [`carry`]'s timeout).
async fn open_channel(ctx: &Ctx) -> Result<russh::Channel<client::Msg>, russh::Error> {
    let mut backoff = FIRST_BACKOFF;
    loop {
        if session(ctx).await.is_ok() {
            let guard = ctx.session.lock().await;
            if let Some(handle) = guard.as_ref() {
                match handle
                    .channel_open_direct_streamlocal(ctx.forward.dest.clone())
                    .await
                {
                    Ok(channel) => return Ok(channel),
                    // The guest refused this channel (no such socket, forwarding off): final.
                    Err(e) if !handle.is_closed() => return Err(e),
                    Err(_) => {}
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Makes sure the session is open; one attempt if it is not.
async fn session(ctx: &Ctx) -> Result<(), russh::Error> {
    let mut guard = ctx.session.lock().await;
    if guard.as_ref().is_some_and(|h| !h.is_closed()) {
        return Ok(());
    }
    *guard = None;
    let handle = tokio::time::timeout(ATTEMPT_TIMEOUT, connect(ctx))
        .await
        .map_err(|_| russh::Error::ConnectionTimeout)??;
    tracing::info!(socket = %ctx.forward.socket, dest = %ctx.forward.dest, user = %ctx.forward.user, "SSH forward connected to the guest");
    *guard = Some(handle);
    Ok(())
}

async fn connect(ctx: &Ctx) -> Result<Handle<Client>, russh::Error> {
    let config = Arc::new(client::Config {
        keepalive_interval: Some(Duration::from_secs(30)),
        ..client::Config::default()
    });
    let mut handle = match &ctx.target {
        SshTarget::Tcp(addr) => {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            let _ = stream.set_nodelay(true);
            client::connect_stream(config, stream, Client).await?
        }
        SshTarget::Unix(path) => {
            let stream = tokio::net::UnixStream::connect(path).await?;
            client::connect_stream(config, stream, Client).await?
        }
    };
    let hash = handle.best_supported_rsa_hash().await?.flatten();
    let key = PrivateKeyWithHashAlg::new(ctx.key.clone(), hash);
    let auth = handle
        .authenticate_publickey(ctx.forward.user.clone(), key)
        .await?;
    if !auth.success() {
        tracing::warn!(user = %ctx.forward.user, identity = %ctx.forward.identity.display(), "the guest's sshd refused the identity");
        return Err(russh::Error::NotAuthenticated);
    }
    Ok(handle)
}

/// The SSH client's callbacks: the guest's host key is taken as it comes (see the module
/// docs).
struct Client;

impl client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        _key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

/// The private forward a session uses when there is no `-ssh-port` forward: a unix socket in
/// a directory only we can enter, to the guest's port 22. Removed (with its directory) on
/// drop of [`PrivateTarget`]; the forward itself goes with the control plane's.
#[derive(Debug)]
pub struct PrivateTarget {
    dir: PathBuf,
}

impl PrivateTarget {
    /// Creates the directory; the socket path to expose is [`PrivateTarget::socket`].
    pub fn create() -> io::Result<PrivateTarget> {
        use std::os::unix::fs::DirBuilderExt;
        let dir = std::env::temp_dir().join(format!("host-switch-ssh-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        Ok(PrivateTarget { dir })
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("guest-ssh.sock")
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for PrivateTarget {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_pair_by_position() {
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        let ids = [PathBuf::from("/k1"), PathBuf::from("/k2")];
        let f = pair(
            &s(&["/a.sock", "unix:///b.sock"]),
            &s(&["/run/a", "/run/b"]),
            &s(&["core", "root"]),
            &ids,
        )
        .unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[1].socket, "unix:///b.sock");
        assert_eq!(f[1].user, "root");
        assert_eq!(f[1].identity, PathBuf::from("/k2"));
        let err = pair(&s(&["/a"]), &s(&[]), &s(&["core"]), &ids[..1]).unwrap_err();
        assert!(err.to_string().contains("got 1, 0, 1 and 1"), "{err}");
        assert!(socket_endpoint("/x.sock").is_ok());
        assert!(socket_endpoint("unix:///x.sock").is_ok());
        assert!(socket_endpoint("tcp://127.0.0.1:1").is_err());
    }
}
