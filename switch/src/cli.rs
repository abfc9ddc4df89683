//! The `host-switch` command line: gvproxy's flags where they apply, single or double dash,
//! plus slirp4netns-style TAP flags and the pasta-style `run` subcommand.
//!
//! gvproxy (Go's `flag` package) takes `-listen x` and `--listen x` alike; clap takes only the
//! latter, so [`normalize`] rewrites a single-dash long flag we know into its double-dash form
//! before clap sees it. Everything after a bare `--` is left alone: that is `run`'s command.
//!
//! gvproxy flags that host-switch does not implement are refused by name ([`Refused`]) rather
//! than silently ignored: a drop-in that ignored `-ssh-port` or `-forward-sock` would leave its
//! caller waiting for something that never comes.

use std::ffi::OsString;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use stack::wire::EthernetAddress;

/// Long flags that take one value or none; known so a single-dash form can be rewritten.
const LONG_FLAGS: &[&str] = &[
    "listen",
    "listen-qemu",
    "listen-vfkit",
    "listen-bess",
    "listen-stdio",
    "listen-vpnkit",
    "mtu",
    "subnet",
    "gatewayIP",
    "hostIP",
    "pcap",
    "pid-file",
    "dns-upstream",
    "log-file",
    "debug",
    "version",
    "help",
    "netns",
    "tap",
    "configure",
    "mac",
    "max-ports",
    "ssh-port",
    "services",
    "ec2-metadata-access",
    "disable-host-loopback",
    "forward",
    "udp-idle-timeout",
    "tcp-connect-timeout",
    "max-connects",
    "max-tcp-flows",
    "max-tcp-flows-per-guest",
    "max-udp-flows",
    "max-udp-flows-per-guest",
    "max-reassembly-bytes",
    "fragment-timeout",
    "max-dns-pending",
    "max-dns-tcp",
    "max-mac-entries",
    "max-api-request",
    "subnet6",
    "disable-ipv6",
    "multicast-interface",
    "multicast-port",
    "disable-multicast-relay",
    "max-multicast-groups",
];

/// gvproxy flags host-switch refuses, and why.
const REFUSED: &[(&str, &str)] = &[
    (
        "forward-sock",
        "SSH unix-socket forwarding is not supported",
    ),
    (
        "forward-dest",
        "SSH unix-socket forwarding is not supported",
    ),
    (
        "forward-user",
        "SSH unix-socket forwarding is not supported",
    ),
    (
        "forward-identity",
        "SSH unix-socket forwarding is not supported",
    ),
    ("config", "YAML configuration files are not supported"),
    (
        "notification",
        "network-ready notifications are not supported",
    ),
];

/// A gvproxy flag we do not implement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("gvproxy flag -{flag} is not supported by host-switch: {why}")]
pub struct Refused {
    pub flag: String,
    pub why: &'static str,
}

/// Rewrites `-flag` / `-flag=value` into `--flag` / `--flag=value` for the long flags we know
/// (and the refused ones, so they are reported by name), up to a bare `--`. Then refuses the
/// gvproxy flags we do not implement.
pub fn normalize<I, T>(args: I) -> Result<Vec<OsString>, Refused>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let mut out = Vec::new();
    let mut passthrough = false;
    for (i, arg) in args.into_iter().enumerate() {
        let arg: OsString = arg.into();
        if passthrough || i == 0 {
            out.push(arg);
            continue;
        }
        let Some(s) = arg.to_str() else {
            out.push(arg);
            continue;
        };
        if s == "--" {
            passthrough = true;
            out.push(arg);
            continue;
        }
        let long = if let Some(rest) = s.strip_prefix("--") {
            Some(rest)
        } else if let Some(rest) = s.strip_prefix('-') {
            let name = rest.split_once('=').map_or(rest, |(n, _)| n);
            let known = LONG_FLAGS.contains(&name) || REFUSED.iter().any(|(r, _)| *r == name);
            known.then_some(rest)
        } else {
            None
        };
        let Some(rest) = long else {
            out.push(arg);
            continue;
        };
        let name = rest.split_once('=').map_or(rest, |(n, _)| n);
        if let Some((flag, why)) = REFUSED.iter().find(|(r, _)| *r == name) {
            return Err(Refused {
                flag: (*flag).to_owned(),
                why,
            });
        }
        out.push(OsString::from(format!("--{rest}")));
    }
    Ok(out)
}

/// host-switch: a user-mode network for VMs and containers.
#[derive(Debug, Parser)]
#[command(name = "host-switch", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run CMD in a new network namespace (and user namespace when unprivileged), on a TAP
    /// device served by this process; exit with CMD's status.
    Run(RunArgs),
}

/// The network's shape and the process's housekeeping: shared by both modes.
#[derive(Debug, Clone, Args)]
pub struct NetworkArgs {
    /// The guests' MTU (default 1500 for VM links, 65520 for a TAP).
    #[arg(long)]
    pub mtu: Option<u32>,
    /// The virtual network.
    #[arg(long, default_value = "192.168.127.0/24")]
    pub subnet: String,
    /// The gateway's address (default: the subnet's first host).
    #[arg(long = "gatewayIP")]
    pub gateway_ip: Option<Ipv4Addr>,
    /// The host's virtual address (default: the subnet's last host).
    #[arg(long = "hostIP")]
    pub host_ip: Option<Ipv4Addr>,
    /// Capture every frame that crosses the switch to this pcap file.
    #[arg(long)]
    pub pcap: Option<PathBuf>,
    /// Write the process id to this file (removed at exit).
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Write logs to this file instead of standard error.
    #[arg(long = "log-file")]
    pub log_file: Option<PathBuf>,
    /// Log at debug level.
    #[arg(long)]
    pub debug: bool,
    /// Forward the host's 127.0.0.1:PORT to the guest's port 22 (-1: none).
    #[arg(
        long = "ssh-port",
        default_value_t = 2222,
        allow_negative_numbers = true
    )]
    pub ssh_port: i32,
    /// A static port forward, PROTO/HOST_ADDR:PORT=GUEST_ADDR:PORT (PROTO tcp or udp).
    /// Repeatable.
    #[arg(long)]
    pub forward: Vec<String>,
    /// Let guests reach 169.254.0.0/16 (cloud metadata services).
    #[arg(long = "ec2-metadata-access")]
    pub ec2_metadata_access: bool,
    /// Do not map the host's virtual address to the host's loopback.
    #[arg(long = "disable-host-loopback")]
    pub disable_host_loopback: bool,
    /// Seconds a UDP mapping lives without traffic.
    #[arg(long = "udp-idle-timeout", default_value_t = 300)]
    pub udp_idle_timeout: u64,
    /// Seconds a host connect may take before the guest gets RST.
    #[arg(long = "tcp-connect-timeout", default_value_t = 30)]
    pub tcp_connect_timeout: u64,
    /// Host connects in progress at once (beyond: the guest's SYN gets RST).
    #[arg(long = "max-connects", default_value_t = 512, value_parser = at_least_one)]
    pub max_connects: usize,
    /// Live TCP connections of all guests (beyond: RST; TIME-WAIT flows are reclaimed).
    #[arg(long = "max-tcp-flows", default_value_t = 16384, value_parser = at_least_one)]
    pub max_tcp_flows: usize,
    /// Live TCP connections of one guest address (default: --max-tcp-flows).
    #[arg(long = "max-tcp-flows-per-guest", value_parser = at_least_one)]
    pub max_tcp_flows_per_guest: Option<usize>,
    /// UDP mappings of all guests (beyond: the datagram is dropped).
    #[arg(long = "max-udp-flows", default_value_t = 4096, value_parser = at_least_one)]
    pub max_udp_flows: usize,
    /// UDP mappings of one guest address (default: --max-udp-flows).
    #[arg(long = "max-udp-flows-per-guest", value_parser = at_least_one)]
    pub max_udp_flows_per_guest: Option<usize>,
    /// Bytes of IP fragments held for reassembly (beyond: the fragment and its datagram are
    /// dropped).
    #[arg(long = "max-reassembly-bytes", default_value_t = stack::frag::DEFAULT_MAX_BYTES, value_parser = at_least_one)]
    pub max_reassembly_bytes: usize,
    /// Seconds an IP datagram may take to reassemble (IPv6: at most 60, RFC 8200 §4.5).
    #[arg(long = "fragment-timeout", default_value_t = 30, value_parser = at_least_one_u64)]
    pub fragment_timeout: u64,
    /// DNS queries waiting upstream (beyond: SERVFAIL).
    #[arg(long = "max-dns-pending", default_value_t = dns::ResolverConfig::default().max_pending, value_parser = at_least_one)]
    pub max_dns_pending: usize,
    /// Guest TCP connections to the DNS service (beyond: RST).
    #[arg(long = "max-dns-tcp", default_value_t = crate::runtime::dns_tcp::Limits::default().max_connections, value_parser = at_least_one)]
    pub max_dns_tcp: usize,
    /// Guest MAC addresses the switch learns (beyond: not learned, frames to them flooded).
    #[arg(long = "max-mac-entries", default_value_t = crate::mac_table::DEFAULT_MAX_ENTRIES, value_parser = at_least_one)]
    pub max_mac_entries: usize,
    /// Bytes of a request to the control API (its body) and to the in-guest API (all of it);
    /// beyond: 413 (default: 1 MiB and 64 KiB).
    #[arg(long = "max-api-request", value_parser = at_least_one)]
    pub max_api_request: Option<usize>,
    /// An upstream DNS resolver, IP or IP:PORT; repeat for failover, in order (default: the
    /// nameservers of the host's /etc/resolv.conf).
    #[arg(long = "dns-upstream", value_parser = dns::resolv_conf::parse_upstream)]
    pub dns_upstream: Vec<std::net::SocketAddr>,
    /// The guests' IPv6 prefix, a /64 announced for SLAAC (default: a unique local prefix).
    #[arg(long, default_value = "fd9d:b9a2:e1c4:127::/64")]
    pub subnet6: String,
    /// No IPv6: no router advertisements, DHCPv6 or IPv6 DNS, and every IPv6 frame dropped.
    #[arg(long = "disable-ipv6")]
    pub disable_ipv6: bool,
    /// The host interface multicast is relayed through (default: the one the host's routes
    /// pick, usually the default route's).
    #[arg(long = "multicast-interface")]
    pub multicast_interface: Option<String>,
    /// A UDP port on which groups that guests join are received on the host, besides mDNS,
    /// SSDP, WS-Discovery and LLMNR's (repeatable).
    #[arg(long = "multicast-port")]
    pub multicast_port: Vec<u16>,
    /// Do not relay multicast between guests and the host (guests still reach each other).
    #[arg(long = "disable-multicast-relay")]
    pub disable_multicast_relay: bool,
    /// Multicast groups joined on the host at once (beyond: not joined, counted).
    #[arg(long = "max-multicast-groups", default_value_t = 256, value_parser = at_least_one)]
    pub max_multicast_groups: usize,
}

/// A count that must be at least 1.
fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// A number of seconds that must be at least 1.
fn at_least_one_u64(s: &str) -> Result<u64, String> {
    at_least_one(s).map(|n| n as u64)
}

/// Serving links (no subcommand).
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// HTTP endpoint (unix://, tcp://, vsock://): POST /connect attaches a guest (2-byte LE
    /// frames). Repeatable.
    #[arg(long)]
    pub listen: Vec<String>,
    /// QEMU stream endpoint (unix:// or tcp://): 4-byte BE frames. Repeatable.
    #[arg(long = "listen-qemu")]
    pub listen_qemu: Vec<String>,
    /// vfkit endpoint (unixgram://): one frame per datagram. Repeatable.
    #[arg(long = "listen-vfkit")]
    pub listen_vfkit: Vec<String>,
    /// User-Mode Linux bess endpoint (unixpacket://): one frame per packet. Repeatable.
    #[arg(long = "listen-bess")]
    pub listen_bess: Vec<String>,
    /// Serve one guest on standard input and output (2-byte LE frames); the value is "accept".
    #[arg(long = "listen-stdio")]
    pub listen_stdio: Option<String>,
    /// HyperKit vpnkit endpoint (unix://). Repeatable.
    #[arg(long = "listen-vpnkit")]
    pub listen_vpnkit: Vec<String>,
    /// Attach a TAP device inside this network namespace (a PID or a namespace file).
    #[arg(long, requires = "tap")]
    pub netns: Option<String>,
    /// The TAP device's name (created if it does not exist).
    #[arg(long)]
    pub tap: Option<String>,
    /// Configure the TAP as slirp4netns --configure does: address, link up, default route.
    #[arg(long, requires = "tap")]
    pub configure: bool,
    /// The TAP's MAC address when configuring it (default 5a:94:ef:e4:0c:ee, the guest with
    /// the static lease).
    #[arg(long, requires = "configure")]
    pub mac: Option<EthernetAddress>,
    /// The control API without /connect (unix://, tcp://, vsock://). Repeatable.
    #[arg(long)]
    pub services: Vec<String>,
    /// Ports served at once per listener.
    #[arg(long = "max-ports", default_value_t = crate::link::DEFAULT_MAX_PORTS)]
    pub max_ports: usize,
    #[command(flatten)]
    pub network: NetworkArgs,
}

impl ServeArgs {
    /// Whether any link is asked for.
    pub fn has_links(&self) -> bool {
        !(self.listen.is_empty()
            && self.listen_qemu.is_empty()
            && self.listen_vfkit.is_empty()
            && self.listen_bess.is_empty()
            && self.listen_vpnkit.is_empty()
            && self.listen_stdio.is_none()
            && self.tap.is_none()
            && self.services.is_empty())
    }
}

/// `host-switch run [OPTIONS] -- CMD [ARGS...]`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The TAP device's name inside the new namespace.
    #[arg(long, default_value = "tap0")]
    pub tap: String,
    /// The TAP's MAC address (default 5a:94:ef:e4:0c:ee, the guest with the static lease).
    #[arg(long)]
    pub mac: Option<EthernetAddress>,
    #[command(flatten)]
    pub network: NetworkArgs,
    /// The command and its arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<OsString>,
}

/// Why the command line was refused.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Refused(#[from] Refused),
    #[error(transparent)]
    Clap(#[from] clap::Error),
}

/// Normalizes and parses `args` (the program name first).
pub fn parse<I, T>(args: I) -> Result<Cli, CliError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let args = normalize(args)?;
    Ok(Cli::try_parse_from(args)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve(args: &[&str]) -> ServeArgs {
        let mut all = vec!["host-switch"];
        all.extend_from_slice(args);
        let cli = parse(all).unwrap();
        assert!(cli.command.is_none());
        cli.serve
    }

    #[test]
    fn single_and_double_dash_are_the_same() {
        let one = serve(&[
            "-listen",
            "unix:///tmp/a.sock",
            "-listen-qemu=tcp://127.0.0.1:5555",
            "-mtu",
            "9000",
            "-debug",
            "-pcap",
            "/tmp/x.pcap",
            "-gatewayIP",
            "10.0.0.1",
        ]);
        let two = serve(&[
            "--listen",
            "unix:///tmp/a.sock",
            "--listen-qemu=tcp://127.0.0.1:5555",
            "--mtu",
            "9000",
            "--debug",
            "--pcap",
            "/tmp/x.pcap",
            "--gatewayIP",
            "10.0.0.1",
        ]);
        for s in [&one, &two] {
            assert_eq!(s.listen, ["unix:///tmp/a.sock"]);
            assert_eq!(s.listen_qemu, ["tcp://127.0.0.1:5555"]);
            assert_eq!(s.network.mtu, Some(9000));
            assert!(s.network.debug);
            assert_eq!(s.network.gateway_ip, Some(Ipv4Addr::new(10, 0, 0, 1)));
            assert_eq!(s.network.subnet, "192.168.127.0/24");
        }
    }

    #[test]
    fn listeners_repeat() {
        let s = serve(&[
            "-listen",
            "unix:///a",
            "-listen",
            "tcp://127.0.0.1:1",
            "-listen-vfkit",
            "unixgram:///v",
            "-listen-bess",
            "unixpacket:///b",
            "-listen-vpnkit",
            "unix:///k",
            "-listen-stdio",
            "accept",
        ]);
        assert_eq!(s.listen.len(), 2);
        assert_eq!(s.listen_vfkit, ["unixgram:///v"]);
        assert_eq!(s.listen_bess, ["unixpacket:///b"]);
        assert_eq!(s.listen_vpnkit, ["unix:///k"]);
        assert_eq!(s.listen_stdio.as_deref(), Some("accept"));
        assert!(s.has_links());
    }

    #[test]
    fn tap_flags() {
        let s = serve(&[
            "--netns",
            "1234",
            "--tap",
            "tap0",
            "--configure",
            "--mac",
            "02:00:00:00:00:01",
            "--mtu",
            "1500",
        ]);
        assert_eq!(s.netns.as_deref(), Some("1234"));
        assert_eq!(s.tap.as_deref(), Some("tap0"));
        assert!(s.configure);
        assert_eq!(s.mac.unwrap().to_string(), "02:00:00:00:00:01");
        assert!(
            parse(["host-switch", "--configure"]).is_err(),
            "needs --tap"
        );
        assert!(parse(["host-switch", "--tap", "t", "--mac", "zz"]).is_err());
    }

    #[test]
    fn refused_flags_are_named() {
        for flag in [
            "-forward-sock",
            "-forward-dest",
            "-forward-user",
            "-forward-identity",
            "-config",
            "-notification",
        ] {
            let err = parse(["host-switch", flag, "x"]).unwrap_err();
            let name = flag.trim_start_matches('-');
            assert!(
                matches!(&err, CliError::Refused(r) if r.flag == name),
                "{flag}: {err}"
            );
            assert!(err.to_string().contains(&format!("-{name}")), "{err}");
        }
        let s = serve(&[
            "-ssh-port=-1",
            "-services",
            "unix:///s",
            "-ec2-metadata-access",
        ]);
        assert_eq!(s.network.ssh_port, -1);
        assert_eq!(s.services, ["unix:///s"]);
        assert!(s.network.ec2_metadata_access);
        // Unknown flags are clap errors, not silently accepted.
        assert!(matches!(
            parse(["host-switch", "--bogus"]),
            Err(CliError::Clap(_))
        ));
    }

    #[test]
    fn run_takes_the_command_verbatim() {
        let cli = parse([
            "host-switch",
            "run",
            "-mtu",
            "1500",
            "--",
            "sh",
            "-c",
            "ping -c1 -W2 192.168.127.1; exit 7",
            "-debug",
        ])
        .unwrap();
        let Some(Command::Run(run)) = cli.command else {
            panic!("expected run");
        };
        assert_eq!(run.network.mtu, Some(1500));
        assert_eq!(run.tap, "tap0");
        assert!(!run.network.debug, "-debug after -- belongs to the command");
        assert_eq!(
            run.command,
            ["sh", "-c", "ping -c1 -W2 192.168.127.1; exit 7", "-debug"].map(OsString::from)
        );
        assert!(
            parse(["host-switch", "run"]).is_err(),
            "a command is needed"
        );
        assert!(
            parse(["host-switch", "-listen", "unix:///a", "run", "--", "true"]).is_err(),
            "serve flags and run do not mix"
        );
    }

    #[test]
    fn dns_upstreams_repeat() {
        let s = serve(&["-dns-upstream", "127.0.0.1:5353", "--dns-upstream=::1"]);
        let want: Vec<std::net::SocketAddr> = ["127.0.0.1:5353", "[::1]:53"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        assert_eq!(s.network.dns_upstream, want);
    }

    #[test]
    fn limits_single_dash_and_zero_refused() {
        let s = serve(&[
            "-max-tcp-flows",
            "4",
            "-max-tcp-flows-per-guest=3",
            "-max-udp-flows",
            "2",
            "-max-udp-flows-per-guest",
            "1",
            "-max-connects",
            "2",
            "-max-reassembly-bytes",
            "3000",
            "-fragment-timeout",
            "2",
            "-max-dns-pending",
            "1",
            "-max-dns-tcp",
            "5",
            "-max-mac-entries",
            "3",
            "-max-api-request",
            "1024",
        ]);
        let n = &s.network;
        assert_eq!((n.max_tcp_flows, n.max_tcp_flows_per_guest), (4, Some(3)));
        assert_eq!((n.max_udp_flows, n.max_udp_flows_per_guest), (2, Some(1)));
        assert_eq!(n.max_connects, 2);
        assert_eq!((n.max_reassembly_bytes, n.fragment_timeout), (3000, 2));
        assert_eq!((n.max_dns_pending, n.max_dns_tcp), (1, 5));
        assert_eq!((n.max_mac_entries, n.max_api_request), (3, Some(1024)));
        let d = serve(&[]);
        assert_eq!(d.network.max_tcp_flows, 16384);
        assert_eq!(d.network.max_tcp_flows_per_guest, None);
        for flag in [
            "--max-tcp-flows",
            "--max-tcp-flows-per-guest",
            "--max-udp-flows",
            "--max-udp-flows-per-guest",
            "--max-connects",
            "--max-reassembly-bytes",
            "--fragment-timeout",
            "--max-dns-pending",
            "--max-dns-tcp",
            "--max-mac-entries",
            "--max-api-request",
        ] {
            let err = parse(["host-switch", flag, "0"]).unwrap_err();
            assert!(
                err.to_string().contains("must be at least 1"),
                "{flag}: {err}"
            );
        }
    }

    #[test]
    fn version_single_dash() {
        let err = parse(["host-switch", "-version"]).unwrap_err();
        let CliError::Clap(e) = err else {
            panic!("expected clap's version display")
        };
        assert_eq!(e.kind(), clap::error::ErrorKind::DisplayVersion);
    }
}
