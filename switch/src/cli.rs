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
    "drain-timeout",
    "max-dns-tcp-pipeline",
    "max-fragments-per-datagram",
    "max-reassembly-datagrams",
    "max-icmp-requests",
    "max-dhcp-offers",
    "max-dhcp-offers-per-mac",
    "static-lease",
    "map-gateway",
    "pcap-snaplen",
    "pcap-max-size",
    "exit-fd",
    "ready-fd",
    "forward-sock",
    "forward-dest",
    "forward-user",
    "forward-identity",
    "deviceIP",
    "config",
    "max-connects-per-guest",
    "max-connects-per-destination",
    "max-api-connections",
    "api-header-timeout",
    "subnet6",
    "disable-ipv6",
    "multicast-interface",
    "multicast-port",
    "disable-multicast-relay",
    "max-multicast-groups",
];

/// gvproxy flags host-switch refuses, and why.
const REFUSED: &[(&str, &str)] = &[(
    "notification",
    "network-ready notifications are not supported",
)];

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
// Parsed once at start: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Run CMD in a new network namespace (and user namespace when unprivileged), on a TAP
    /// device served by this process; exit with CMD's status.
    Run(RunArgs),
    /// The guest side, inside a VM or a namespace: a TAP connected to host-switch, its
    /// address by DHCP, its listening ports forwarded to the host.
    Guest(crate::guest::GuestArgs),
}

/// The network's shape and the process's housekeeping: shared by both modes.
#[derive(Debug, Clone, Args)]
pub struct NetworkArgs {
    /// The guests' MTU (default 1500 for VM links, 65520 for a TAP), 1280 to 65521.
    #[arg(long, value_parser = mtu_in_range)]
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
    /// The default guest's address: its static lease, and where the SSH forward goes
    /// (default: the subnet's second host).
    #[arg(long = "deviceIP")]
    pub device_ip: Option<Ipv4Addr>,
    /// Capture every frame that crosses the switch to this pcap file.
    #[arg(long)]
    pub pcap: Option<PathBuf>,
    /// Bytes of each frame the capture keeps (at least 64).
    #[arg(long = "pcap-snaplen", default_value_t = crate::pcap::DEFAULT_SNAPLEN, value_parser = snaplen)]
    pub pcap_snaplen: u32,
    /// The capture file's largest size, in bytes or with a K, M or G suffix; past it the file
    /// moves to FILE.1 (replacing an older one) and capture starts anew. 0: no limit.
    #[arg(long = "pcap-max-size", default_value = "512M", value_parser = size)]
    pub pcap_max_size: u64,
    /// Write the process id to this file (removed at exit).
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Write logs to this file instead of standard error.
    #[arg(long = "log-file")]
    pub log_file: Option<PathBuf>,
    /// Log at debug level.
    #[arg(long)]
    pub debug: bool,
    /// Exit when this inherited descriptor is closed by its other end (slirp4netns
    /// --exit-fd); under `run`, the command is sent SIGTERM.
    #[arg(long = "exit-fd")]
    pub exit_fd: Option<i32>,
    /// Write "1" to this inherited descriptor and close it once serving (slirp4netns
    /// --ready-fd).
    #[arg(long = "ready-fd")]
    pub ready_fd: Option<i32>,
    /// Forward the host's 127.0.0.1:PORT to the guest's port 22 (-1: none; default 2222 when
    /// serving links, none under `run`).
    #[arg(long = "ssh-port", allow_negative_numbers = true)]
    pub ssh_port: Option<i32>,
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
    /// The gateway's address is also the host's loopback, as the host's virtual address is:
    /// guest connections to its ports other than DNS, DHCP and the API reach 127.0.0.1 (WSL's
    /// NAT mode and pasta's --map-gw do the same).
    #[arg(long = "map-gateway")]
    pub map_gateway: bool,
    /// Seconds a UDP mapping lives without traffic.
    #[arg(long = "udp-idle-timeout", default_value_t = 300)]
    pub udp_idle_timeout: u64,
    /// Seconds a host connect may take before the guest gets RST.
    #[arg(long = "tcp-connect-timeout", default_value_t = 30)]
    pub tcp_connect_timeout: u64,
    /// Host connects in progress at once (beyond: the guest's SYN gets RST). One guest, or
    /// one destination, holds at most a fair share: half while it is alone, a third of them
    /// once two hold some, and so on.
    #[arg(long = "max-connects", default_value_t = forwarder::Config::default().max_connects_in_flight, value_parser = at_least_one)]
    pub max_connects: usize,
    /// Host connects in progress of one guest address, at most (below its fair share;
    /// default: --max-connects).
    #[arg(long = "max-connects-per-guest", value_parser = at_least_one)]
    pub max_connects_per_guest: Option<usize>,
    /// Host connects in progress to one destination address and port, at most (below its
    /// fair share; default: --max-connects).
    #[arg(long = "max-connects-per-destination", value_parser = at_least_one)]
    pub max_connects_per_destination: Option<usize>,
    /// Live TCP connections of all guests (beyond: RST; TIME-WAIT flows are reclaimed).
    /// Lowered to what the open-file limit leaves for flows.
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
    /// Guest TCP connections to the DNS service (beyond: RST; closing ones are reclaimed).
    #[arg(long = "max-dns-tcp", default_value_t = forwarder::dns_service::tcp::Limits::default().max_connections, value_parser = at_least_one)]
    pub max_dns_tcp: usize,
    /// Queries one DNS-over-TCP connection may have unanswered (beyond: it is not read).
    #[arg(long = "max-dns-tcp-pipeline", default_value_t = forwarder::dns_service::tcp::Limits::default().max_pipeline, value_parser = at_least_one)]
    pub max_dns_tcp_pipeline: usize,
    /// IP fragments of one datagram (beyond: the datagram is dropped).
    #[arg(long = "max-fragments-per-datagram", default_value_t = stack::frag::DEFAULT_MAX_FRAGMENTS, value_parser = at_least_one)]
    pub max_fragments_per_datagram: usize,
    /// IP datagrams being reassembled at once (beyond: a new one's fragments are dropped).
    #[arg(long = "max-reassembly-datagrams", default_value_t = stack::frag::DEFAULT_MAX_DATAGRAMS, value_parser = at_least_one)]
    pub max_reassembly_datagrams: usize,
    /// ICMP echo requests awaiting their reply (beyond: dropped).
    #[arg(long = "max-icmp-requests", default_value_t = forwarder::Config::default().max_icmp_requests, value_parser = at_least_one)]
    pub max_icmp_requests: usize,
    /// DHCP offers outstanding (beyond: the oldest is withdrawn for the new one).
    #[arg(long = "max-dhcp-offers", default_value_t = dhcp::Config::default().max_offers, value_parser = at_least_one)]
    pub max_dhcp_offers: usize,
    /// DHCP offers outstanding for one client MAC, whatever its client IDs (beyond: no offer).
    #[arg(long = "max-dhcp-offers-per-mac", default_value_t = dhcp::Config::default().max_offers_per_mac, value_parser = at_least_one)]
    pub max_dhcp_offers_per_mac: usize,
    /// Guest MAC addresses the switch learns (beyond: not learned, frames to them flooded).
    #[arg(long = "max-mac-entries", default_value_t = crate::mac_table::DEFAULT_MAX_ENTRIES, value_parser = at_least_one)]
    pub max_mac_entries: usize,
    /// Bytes of a request to the control API (its body) and to the in-guest API (all of it);
    /// beyond: 413 (default: 1 MiB and 64 KiB).
    #[arg(long = "max-api-request", value_parser = at_least_one)]
    pub max_api_request: Option<usize>,
    /// Seconds TCP flows get at exit (and when their guest goes away) to write out what the
    /// guest was acknowledged; what is left then is reset. A second signal exits at once.
    #[arg(long = "drain-timeout", default_value = "3", value_parser = seconds)]
    pub drain_timeout: std::time::Duration,
    /// Guest connections to the in-guest API (the gateway's port 80) open at once; each is a
    /// TCP flow too (beyond: RST).
    #[arg(long = "max-api-connections", default_value_t = forwarder::Config::default().max_api_connections, value_parser = at_least_one)]
    pub max_api_connections: usize,
    /// Seconds a guest connection to the in-guest API has to send its request, and then to
    /// take the answer (beyond: RST).
    #[arg(long = "api-header-timeout", default_value_t = forwarder::Config::default().api_header_timeout.as_secs(), value_parser = at_least_one_u64)]
    pub api_header_timeout: u64,
    /// An upstream DNS resolver, IP or IP:PORT; repeat for failover, in order (default: the
    /// nameservers of the host's /etc/resolv.conf).
    #[arg(long = "dns-upstream", value_parser = dns::resolv_conf::parse_upstream)]
    pub dns_upstream: Vec<std::net::SocketAddr>,
    /// Worker threads, each running frames from its links to its host sockets and back
    /// (default: one per core); a TAP device gets one queue per worker.
    #[arg(long = "workers", default_value_t = 0)]
    pub workers: usize,
    /// Microseconds a worker whose last wait was that short polls its links and sockets
    /// without sleeping before it sleeps again: it saves the wake-up on each leg of a
    /// request and reply, for at most this much CPU per gap; 0 turns it off.
    #[arg(long = "busy-poll", value_name = "MICROSECONDS", default_value_t = crate::runtime::DEFAULT_BUSY_POLL_MICROS)]
    pub busy_poll: u64,
    /// TAP offloads: checksum offload and TCP (and UDP) segmentation offload through a
    /// virtio-net header, so 64 KiB super-segments cross the TAP whatever its MTU; `off`
    /// opens the TAP without them.
    #[arg(long, value_enum, default_value_t = Offload::On)]
    pub offload: Offload,
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
    /// Memberships (a port in a group) the IGMP/MLD snooping table holds in all (beyond: a
    /// report is not learned, counted).
    #[arg(long = "max-multicast-memberships", default_value_t = 4096, value_parser = at_least_one)]
    pub max_multicast_memberships: usize,
    /// Memberships one port may hold in the snooping table.
    #[arg(long = "max-multicast-memberships-per-port", default_value_t = 512, value_parser = at_least_one)]
    pub max_multicast_memberships_per_port: usize,
    #[command(flatten)]
    pub auto_forward: crate::auto_forward::AutoForwardArgs,
    /// A static DHCP lease, MAC=IP. Repeatable; replaces the default guest's lease
    /// (5a:94:ef:e4:0c:ee → the subnet's second address) where it takes its MAC or address.
    #[arg(long = "static-lease", value_parser = static_lease)]
    pub static_lease: Vec<dhcp::StaticLease>,
    /// No lease for the default guest's MAC (a -config file gives every lease itself).
    #[arg(skip)]
    pub no_default_lease: bool,
    /// What a -config file says that no flag carries.
    #[arg(skip)]
    pub gvproxy: Option<std::sync::Arc<crate::gvconfig::Extras>>,
}

/// `--offload`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Offload {
    On,
    Off,
}

impl Offload {
    pub fn enabled(self) -> bool {
        self == Offload::On
    }
}

fn static_lease(s: &str) -> Result<dhcp::StaticLease, String> {
    crate::leases::parse(s).map_err(|e| e.to_string())
}

/// The smallest MTU: IPv6's minimum link MTU (RFC 8200 §5).
pub const MIN_MTU: u32 = 1280;
/// The largest MTU: a frame (MTU plus the 14-byte Ethernet header) must fit the 16-bit length
/// of the vpnkit, stdio and `/connect` framings, and Linux caps a TAP there too.
pub const MAX_MTU: u32 = 65535 - 14;

/// An MTU within [`MIN_MTU`]..=[`MAX_MTU`].
fn mtu_in_range(s: &str) -> Result<u32, String> {
    let mtu: u32 = s.parse().map_err(|e| format!("{e}"))?;
    if !(MIN_MTU..=MAX_MTU).contains(&mtu) {
        return Err(format!(
            "{mtu} is outside {MIN_MTU}..={MAX_MTU} (IPv6's minimum MTU to the largest frame a link carries)"
        ));
    }
    Ok(mtu)
}

/// A capture snapshot length: at least an Ethernet, IP and TCP header.
fn snaplen(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(n) if n >= 64 => Ok(n),
        Ok(_) => Err("must be at least 64".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

/// A size in bytes, or with a K, M or G suffix (powers of 1024).
fn size(s: &str) -> Result<u64, String> {
    let (digits, unit) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (s.get(..i).unwrap_or_default(), c),
        _ => (s, 'B'),
    };
    let shift = match unit.to_ascii_uppercase() {
        'B' => 0,
        'K' => 10,
        'M' => 20,
        'G' => 30,
        _ => return Err(format!("{s:?}: expected bytes, or a K, M or G suffix")),
    };
    let n: u64 = digits.parse().map_err(|e| format!("{s:?}: {e}"))?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// A count that must be at least 1.
fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// A number of seconds, fractions allowed (`0.5`), at most a day.
fn seconds(s: &str) -> Result<std::time::Duration, String> {
    let secs: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if !(0.0..=86400.0).contains(&secs) {
        return Err("must be between 0 and 86400 seconds".to_owned());
    }
    Ok(std::time::Duration::from_secs_f64(secs))
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
    /// gvproxy's YAML configuration file; the flags given beside it win where gvproxy's do.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// A unix socket on the host whose connections are carried over SSH to the guest.
    /// Repeatable; the n-th goes with the n-th -forward-dest, -forward-user and
    /// -forward-identity.
    #[arg(long = "forward-sock")]
    pub forward_sock: Vec<String>,
    /// The unix socket in the guest a -forward-sock reaches. Repeatable.
    #[arg(long = "forward-dest")]
    pub forward_dest: Vec<String>,
    /// The guest user a -forward-sock logs in as. Repeatable.
    #[arg(long = "forward-user")]
    pub forward_user: Vec<String>,
    /// The private key a -forward-sock logs in with. Repeatable.
    #[arg(long = "forward-identity")]
    pub forward_identity: Vec<PathBuf>,
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

/// gvproxy's SSH forward port when serving links.
pub const DEFAULT_SSH_PORT: i32 = 2222;

/// `host-switch run [OPTIONS] -- CMD [ARGS...]`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The TAP device's name inside the new namespace.
    #[arg(long, default_value = "tap0")]
    pub tap: String,
    /// The control API with /connect (unix://, tcp://, vsock://), as when serving links.
    /// Repeatable.
    #[arg(long)]
    pub listen: Vec<String>,
    /// The control API without /connect. Repeatable.
    #[arg(long)]
    pub services: Vec<String>,
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
#[path = "cli_tests.rs"]
mod tests;
