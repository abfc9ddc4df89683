//! The peers, and a guest: a fresh network namespace served by one of them.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use host_switch_benches::sys::{self, Netns, Proc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Peer {
    HostSwitch,
    /// host-switch on a unix socket, `host-switch guest` in the namespace attached with
    /// `POST /connect`: the stream link, as gvproxy with gvforwarder.
    Agent,
    Slirp4netns,
    Pasta,
    Gvproxy,
}

impl Peer {
    pub(crate) const ALL: [Peer; 5] = [
        Peer::HostSwitch,
        Peer::Agent,
        Peer::Slirp4netns,
        Peer::Pasta,
        Peer::Gvproxy,
    ];

    /// Whether this is host-switch itself, in one set-up or another.
    pub(crate) fn is_ours(self) -> bool {
        matches!(self, Peer::HostSwitch | Peer::Agent)
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Peer::HostSwitch => "host-switch",
            Peer::Agent => "host-switch-agent",
            Peer::Slirp4netns => "slirp4netns",
            Peer::Pasta => "pasta",
            Peer::Gvproxy => "gvproxy",
        }
    }

    /// Why this peer cannot run here, if it cannot.
    pub(crate) fn missing(self, host_switch: &Path) -> Option<String> {
        match self {
            Peer::HostSwitch | Peer::Agent => (!host_switch.is_file()).then(|| {
                format!(
                    "{} not found: build it with `cargo build --release -p host-switch-switch --bin host-switch` or pass --host-switch PATH",
                    host_switch.display()
                )
            }),
            Peer::Slirp4netns => {
                sys::which("slirp4netns").is_none().then(|| "not installed (apt-get install slirp4netns)".into())
            }
            Peer::Pasta => sys::which("pasta")
                .is_none()
                .then(|| "not installed (apt-get install passt)".into()),
            Peer::Gvproxy => (sys::which("gvproxy").is_none() || sys::which("gvforwarder").is_none())
                .then(|| "gvproxy and gvforwarder not both on PATH (not packaged for Debian)".into()),
        }
    }

    /// A version string for the report.
    pub(crate) fn version(self, host_switch: &Path) -> String {
        let dpkg = |pkg: &str| {
            sys::run(
                Command::new("dpkg-query").args(["-W", "-f", "${Version}", pkg]),
                Duration::from_secs(5),
            )
            .ok()
            .filter(|v| !v.is_empty())
        };
        // Where the program is no Debian package here: the first line of `PROG --version` that
        // names a version (standard output first), else its first line.
        let own = |program: &Path| {
            let (_, out, err) = sys::output(
                Command::new(program).arg("--version"),
                Duration::from_secs(5),
            )
            .ok()?;
            let mut lines = out.lines().chain(err.lines()).map(str::trim);
            let first = lines.clone().find(|l| !l.is_empty());
            lines
                .find(|l| l.contains("version"))
                .or(first)
                .map(str::to_owned)
        };
        match self {
            Peer::HostSwitch | Peer::Agent => {
                let dir = host_switch.parent().unwrap_or(Path::new("."));
                let rev = sys::run(
                    Command::new("git")
                        .current_dir(dir)
                        .args(["describe", "--always", "--dirty"]),
                    Duration::from_secs(5),
                )
                .map(|s| s.trim().to_owned());
                match rev {
                    Ok(rev) => format!("release build, git {rev}"),
                    Err(_) => own(host_switch).unwrap_or_else(|| "?".into()),
                }
            }
            Peer::Slirp4netns => dpkg("slirp4netns")
                .or_else(|| own(Path::new("slirp4netns")))
                .unwrap_or_else(|| "?".into()),
            Peer::Pasta => dpkg("passt")
                .or_else(|| own(Path::new("pasta")))
                .unwrap_or_else(|| "?".into()),
            Peer::Gvproxy => sys::run(
                Command::new("gvproxy").arg("-version"),
                Duration::from_secs(5),
            )
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "?".into()),
        }
    }
}

/// A network namespace we created, with a peer serving it.
#[derive(Debug)]
pub(crate) struct Guest {
    pub(crate) peer: Peer,
    /// The host's loopback as the guest reaches it.
    pub(crate) host: String,
    /// Field order is drop order: the guest-side helper, the peer, then the namespace holder.
    _helpers: Vec<Proc>,
    served_by: Proc,
    netns: Netns,
}

impl Guest {
    /// The guest's network namespace file (for nsenter / setns).
    pub(crate) fn ns(&self) -> &Path {
        &self.netns.path
    }

    /// The peer process whose CPU time and memory we measure.
    pub(crate) fn peer_pid(&self) -> u32 {
        self.served_by.pid()
    }

    /// Checks the peer is still running.
    pub(crate) fn alive(&mut self) -> Result<(), String> {
        match self.served_by.exited() {
            Some(status) => Err(format!("{} exited: {status}", self.peer.name())),
            None => Ok(()),
        }
    }

    pub(crate) fn start(
        peer: Peer,
        mtu: u32,
        host_switch: &Path,
        host_switch_args: &[String],
        dir: &Path,
        probe_port: u16,
    ) -> Result<Guest, String> {
        let log = dir.join(format!("{}-{mtu}.log", peer.name()));
        let netns = Netns::create(&format!(
            "hs-compare-{}-{}-{mtu}",
            std::process::id(),
            peer.name()
        ))?;
        let ns = netns.path.clone();
        let ns = ns.as_path();
        sys::run(
            sys::in_netns(ns, "ip").args(["link", "set", "lo", "up"]),
            Duration::from_secs(5),
        )?;
        let mtu_s = mtu.to_string();
        let mut helpers = Vec::new();
        let (served_by, host) = match peer {
            Peer::HostSwitch => {
                let mut cmd = Command::new(host_switch);
                cmd.arg("--netns")
                    .arg(ns)
                    .args(["--tap", "tap0", "--configure"])
                    .args(["--mtu", &mtu_s])
                    .args(["--ssh-port", "-1"]);
                cmd.args(host_switch_args);
                let p = Proc::spawn("host-switch", &mut cmd, &log)?;
                (p, "192.168.127.254".to_owned())
            }
            Peer::Agent => {
                let sock: PathBuf = dir.join(format!("agent-{mtu}.sock"));
                let _ = std::fs::remove_file(&sock);
                let url = format!("unix://{}", sock.display());
                let mut cmd = Command::new(host_switch);
                cmd.args(["-listen", &url, "--mtu", &mtu_s])
                    .args(["--ssh-port", "-1"]);
                cmd.args(host_switch_args);
                let p = Proc::spawn("host-switch", &mut cmd, &log)?;
                sys::wait_for(Duration::from_secs(10), || {
                    sock.exists()
                        .then_some(())
                        .ok_or("no host-switch socket".into())
                })?;
                // The agent leases 192.168.127.2 by DHCP itself (its own client: nothing in
                // this machine's /etc is touched) and forwards nothing.
                helpers.push(Proc::spawn(
                    "host-switch guest",
                    sys::in_netns(ns, host_switch)
                        .args(["guest", "--connect", &url, "--tap", "tap0"])
                        .args(["--mtu", &mtu_s, "--no-auto-forward"]),
                    &log,
                )?);
                (p, "192.168.127.254".to_owned())
            }
            Peer::Slirp4netns => {
                let p = Proc::spawn(
                    "slirp4netns",
                    Command::new("slirp4netns")
                        .args(["--configure", &format!("--mtu={mtu}")])
                        .arg("--netns-type=path")
                        .arg(ns)
                        .arg("tap0"),
                    &log,
                )?;
                (p, "10.0.2.2".to_owned())
            }
            Peer::Pasta => {
                // Foreground, so the PID we hold is pasta's; the host is the namespace's
                // default gateway, which pasta maps to the host's loopback.
                let p = Proc::spawn(
                    "pasta",
                    Command::new("pasta")
                        .args(["--config-net", "--runas", "0", "-m", &mtu_s, "-f", "-q"])
                        .args(["--netns", &netns.name]),
                    &log,
                )?;
                let gw = sys::wait_for(Duration::from_secs(10), || default_gateway(ns).map(drop))
                    .and_then(|()| default_gateway(ns))?;
                (p, gw)
            }
            Peer::Gvproxy => {
                let sock: PathBuf = dir.join(format!("gvproxy-{mtu}.sock"));
                let _ = std::fs::remove_file(&sock);
                let url = format!("unix://{}", sock.display());
                // No SSH forward (as for host-switch): it would bind the fixed host port 2222.
                let p = Proc::spawn(
                    "gvproxy",
                    Command::new("gvproxy")
                        .args(["-listen", &url, "-mtu", &mtu_s])
                        .args(["-ssh-port", "-1"]),
                    &log,
                )?;
                sys::wait_for(Duration::from_secs(10), || {
                    sock.exists()
                        .then_some(())
                        .ok_or("no gvproxy socket".into())
                })?;
                // `-preexisting`: gvforwarder only opens tap0 and moves frames; we configure the
                // link ourselves below. Without it, it runs dhclient or udhcpc in the guest (which
                // would share this machine's /etc) and reconnects whenever neither is installed.
                helpers.push(Proc::spawn(
                    "gvforwarder",
                    sys::in_netns(ns, "gvforwarder")
                        .args(["-url", &url, "-mtu", &mtu_s])
                        .arg("-preexisting"),
                    &log,
                )?);
                sys::wait_for(Duration::from_secs(10), || {
                    sys::run(
                        sys::in_netns(ns, "ip").args(["link", "show", "tap0"]),
                        Duration::from_secs(5),
                    )
                    .map(drop)
                })?;
                for args in [
                    // gvforwarder's default MAC, which it sets itself without `-preexisting`.
                    vec!["link", "set", "tap0", "address", "5a:94:ef:e4:0c:ee"],
                    vec!["link", "set", "tap0", "mtu", &mtu_s, "up"],
                    vec!["addr", "replace", "192.168.127.2/24", "dev", "tap0"],
                    vec!["route", "replace", "default", "via", "192.168.127.1"],
                ] {
                    sys::run(sys::in_netns(ns, "ip").args(args), Duration::from_secs(5))?;
                }
                (p, "192.168.127.254".to_owned())
            }
        };
        let mut guest = Guest {
            peer,
            host,
            _helpers: helpers,
            served_by,
            netns,
        };
        // Ready when a TCP connection from inside reaches the host's loopback.
        let target: SocketAddr = format!("{}:{probe_port}", guest.host)
            .parse()
            .map_err(|e| format!("{e}"))?;
        let ns_path = guest.netns.path.clone();
        let probe = std::thread::spawn(move || {
            sys::enter_netns(&ns_path)?;
            sys::wait_for(Duration::from_secs(15), || {
                TcpStream::connect_timeout(&target, Duration::from_secs(1))
                    .map(drop)
                    .map_err(|e| format!("{target} from the guest: {e}"))
            })
        });
        let ready = probe
            .join()
            .map_err(|_| "probe thread panicked".to_owned())?;
        guest.alive()?;
        ready.map_err(|e| {
            format!(
                "{} did not come up: {e} (log: {})",
                peer.name(),
                log.display()
            )
        })?;
        Ok(guest)
    }
}

/// The gateway of the namespace's IPv4 default route.
fn default_gateway(ns: &Path) -> Result<String, String> {
    let out = sys::run(
        sys::in_netns(ns, "ip").args(["-4", "route", "show", "default"]),
        Duration::from_secs(5),
    )?;
    out.split_whitespace()
        .skip_while(|w| *w != "via")
        .nth(1)
        .map(str::to_owned)
        .ok_or_else(|| "no default route in the namespace yet".into())
}
