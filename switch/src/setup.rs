//! What serving sets up besides the links and the pipeline: gvproxy's `-config` file applied
//! to the command line, the `-forward-sock` SSH forwards, slirp4netns' lifetimes
//! (`--netns PID`, `--exit-fd`, `--ready-fd`), and the warning about listeners others can
//! reach.

use crossbeam_channel::Sender;
use switch::cli::{NetworkArgs, ServeArgs};
use switch::link::Endpoint;
use switch::netns::Netns;
use switch::ssh_forward;

use super::pipeline::Pipeline;
use super::{Addressing, Event};

/// `--exit-fd` and `--ready-fd`, taken at start.
pub(crate) struct Handshakes {
    exit: Option<std::os::fd::OwnedFd>,
    ready: Option<std::os::fd::OwnedFd>,
}

impl Handshakes {
    pub(crate) fn take(net: &NetworkArgs) -> Result<Handshakes, String> {
        let take = |flag: &str, fd: Option<i32>| {
            fd.map(|fd| switch::watch::inherited_fd(fd).map_err(|e| format!("{flag} {fd}: {e}")))
                .transpose()
        };
        Ok(Handshakes {
            exit: take("--exit-fd", net.exit_fd)?,
            ready: take("--ready-fd", net.ready_fd)?,
        })
    }

    /// Watches `--exit-fd`.
    pub(crate) fn watch_exit(&mut self, events: &Sender<Event>) -> Result<(), String> {
        if let Some(fd) = self.exit.take() {
            let events = events.clone();
            switch::watch::spawn("exit-fd", fd, move || {
                let _ = events.send(Event::ExitFd);
            })
            .map_err(|e| format!("cannot watch --exit-fd: {e}"))?;
        }
        Ok(())
    }

    /// Says "ready" on `--ready-fd`.
    pub(crate) fn ready(&mut self) {
        if let Some(fd) = self.ready.take()
            && let Err(e) = switch::watch::notify_ready(fd)
        {
            tracing::warn!(error = %e, "cannot write to --ready-fd");
        }
    }
}

/// Ends serving when the process holding the namespace exits (`--netns PID`).
pub(crate) fn watch_netns_holder(netns: &Netns, events: &Sender<Event>) {
    let Netns::Pid(pid) = *netns else {
        return;
    };
    let fd = match switch::watch::pidfd_open(pid) {
        Ok(fd) => fd,
        Err(e) => {
            tracing::warn!(pid, error = %e, "cannot watch the namespace's process; serving on after it exits");
            return;
        }
    };
    let events = events.clone();
    if let Err(e) = switch::watch::spawn("netns-watch", fd, move || {
        let _ = events.send(Event::NetnsHolderExited(pid));
    }) {
        tracing::warn!(pid, error = %e, "cannot watch the namespace's process");
    }
}

/// The command line with `-config`'s file applied (`switch::gvconfig`).
pub(crate) fn with_config(mut args: ServeArgs) -> Result<ServeArgs, String> {
    if let Some(path) = args.config.clone() {
        switch::gvconfig::load(&path)
            .and_then(|config| config.apply(&mut args, &path))
            .map_err(|e| format!("-config {e}"))?;
    }
    Ok(args)
}

/// gvproxy's log level names (logrus) as tracing's.
pub(crate) fn log_level(name: &str) -> &'static str {
    match name.to_ascii_lowercase().as_str() {
        "trace" => "trace",
        "debug" => "debug",
        "warn" | "warning" => "warn",
        "error" | "fatal" | "panic" => "error",
        _ => "info",
    }
}

/// Warns about a listener on a TCP address other than loopback: whoever reaches that address
/// gets the API (or a guest link), with no authentication.
pub(crate) fn warn_if_exposed(flag: &str, addr: &str) {
    let Ok(Endpoint::Tcp(hostport)) = Endpoint::parse(addr) else {
        return;
    };
    let addrs: Vec<std::net::SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(&hostport)
        .map(Iterator::collect)
        .unwrap_or_default();
    if addrs.is_empty() || addrs.iter().any(|a| !a.ip().is_loopback()) {
        tracing::warn!(
            endpoint = %addr,
            "{flag} on a non-loopback TCP address: anyone who can reach it can use it, without authentication"
        );
    }
}

/// The `-forward-sock` forwards, if any, and the private way to the guest's sshd they use
/// when there is no `-ssh-port` forward.
pub(crate) fn start_ssh_forwards(
    forwards: Vec<ssh_forward::Forward>,
    pipeline: &Pipeline,
    addressing: &Addressing,
) -> Result<Option<(ssh_forward::SshForwards, Option<ssh_forward::PrivateTarget>)>, String> {
    if forwards.is_empty() {
        return Ok(None);
    }
    let (target, private) = pipeline.ssh_target(addressing.guest)?;
    let sockets: Vec<String> = forwards.iter().map(|f| f.socket.clone()).collect();
    let started = ssh_forward::start(forwards, target.clone()).map_err(|e| e.to_string())?;
    tracing::info!(sockets = ?sockets, via = ?target, "SSH forwards listening");
    Ok(Some((started, private)))
}
