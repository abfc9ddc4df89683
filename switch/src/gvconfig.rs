//! gvproxy's `-config FILE`: its YAML configuration (gvproxy's `GvproxyConfig` and, under
//! `stack`, gvisor-tap-vsock's `types.Configuration`), with gvproxy's meaning.
//!
//! - Every key gvproxy knows is read; any other key is an error naming it (and where it is).
//! - What the command line can say, it still says: `-listen`, `-services`, the interface
//!   flags, `-mtu`, `-pcap`, `-pid-file`, `-log-file` and `-debug` given there win over the
//!   file, as in gvproxy; the file's addresses (`subnet`, `gatewayIP`, `deviceIP`, `hostIP`)
//!   win over the flags, as in gvproxy.
//! - As in gvproxy, a configuration file is the whole network: no default DNS zones, port
//!   forwards, static lease or vpnkit MAC besides the file's, and `-ssh-port` is ignored (with
//!   a warning: the file's `stack.forwards` says which ports reach the guest). Without `nat`
//!   the host's address maps to 127.0.0.1; without `gatewayVirtualIPs` the gateway answers
//!   ARP for the host's address.
//! - `notification` is refused, as the flag is: host-switch sends no such notifications.
//!
//! The parts no flag carries ([`Extras`]: zones, NAT, virtual addresses, the gateway's MAC,
//! vpnkit UUIDs, search domains, the log level) travel in [`NetworkArgs::gvproxy`].

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use stack::wire::EthernetAddress;

use crate::cli::{self, NetworkArgs, ServeArgs};

/// The file, as gvproxy reads it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GvproxyConfig {
    #[serde(default)]
    pub listen: Vec<String>,
    #[serde(rename = "log-level")]
    pub log_level: Option<String>,
    #[serde(default)]
    pub stack: Stack,
    #[serde(default)]
    pub interfaces: Interfaces,
    #[serde(default)]
    pub forwards: Vec<SshForward>,
    #[serde(rename = "pid-file")]
    pub pid_file: Option<PathBuf>,
    #[serde(rename = "log-file")]
    pub log_file: Option<PathBuf>,
    pub services: Option<String>,
    #[serde(rename = "ec2-metadata-access", default)]
    pub ec2_metadata_access: bool,
    pub notification: Option<String>,
}

/// `stack`: the virtual network.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stack {
    #[serde(default)]
    pub debug: bool,
    #[serde(rename = "capture-file")]
    pub capture_file: Option<PathBuf>,
    pub mtu: Option<u32>,
    pub subnet: Option<String>,
    #[serde(rename = "gatewayIP")]
    pub gateway_ip: Option<Ipv4Addr>,
    #[serde(rename = "deviceIP")]
    pub device_ip: Option<Ipv4Addr>,
    #[serde(rename = "hostIP")]
    pub host_ip: Option<Ipv4Addr>,
    #[serde(rename = "gatewayMacAddress")]
    pub gateway_mac_address: Option<String>,
    #[serde(default)]
    pub dns: Vec<Zone>,
    #[serde(rename = "dnsSearchDomains", default)]
    pub dns_search_domains: Vec<String>,
    /// Host address → guest address; a `udp:` prefix on the host address makes it UDP.
    #[serde(default)]
    pub forwards: BTreeMap<String, String>,
    /// Virtual address → real one.
    #[serde(default)]
    pub nat: BTreeMap<String, String>,
    #[serde(rename = "gatewayVirtualIPs", default)]
    pub gateway_virtual_ips: Vec<String>,
    /// Address → MAC.
    #[serde(rename = "dhcpStaticLeases", default)]
    pub dhcp_static_leases: BTreeMap<String, String>,
    /// HyperKit UUID → MAC.
    #[serde(rename = "vpnKitUUIDMacAddresses", default)]
    pub vpnkit_uuid_mac_addresses: BTreeMap<String, String>,
    #[serde(rename = "ec2MetadataAccess", default)]
    pub ec2_metadata_access: bool,
}

/// A DNS zone.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Zone {
    pub name: String,
    #[serde(default)]
    pub records: Vec<Record>,
    #[serde(rename = "defaultIP")]
    pub default_ip: Option<IpAddr>,
}

/// A DNS record: a name or a regular expression, to an address.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub name: Option<String>,
    pub ip: Option<IpAddr>,
    pub regexp: Option<String>,
}

/// `interfaces`: the guest links, as the `-listen-*` flags give them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interfaces {
    pub vpnkit: Option<String>,
    pub qemu: Option<String>,
    pub bess: Option<String>,
    pub stdio: Option<String>,
    pub vfkit: Option<String>,
}

/// An entry of `forwards`: `-forward-sock` and its companions.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshForward {
    pub socket: String,
    pub dest: String,
    pub user: String,
    pub identity: PathBuf,
}

/// What a configuration file says that no flag carries.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    /// The local DNS zones (only these).
    pub zones: dns::Zones,
    /// Virtual → real addresses; empty: the host's address → 127.0.0.1.
    pub nat: Vec<(IpAddr, IpAddr)>,
    /// Addresses the gateway answers ARP for besides its own; empty: the host's.
    pub virtual_ips: Vec<Ipv4Addr>,
    pub gateway_mac: Option<EthernetAddress>,
    /// HyperKit UUIDs and their MACs (only these).
    pub vpnkit_macs: Vec<(String, EthernetAddress)>,
    pub search_domains: Vec<String>,
    /// gvproxy's log level name, when `-debug` does not say.
    pub log_level: Option<String>,
    /// Told once logging is up.
    pub warnings: Vec<String>,
}

/// Why a configuration file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Yaml {
        path: PathBuf,
        source: Box<serde_saphyr::Error>,
    },
    #[error("{path}: {what}")]
    Value { path: PathBuf, what: String },
}

/// Reads and parses `path`.
pub fn load(path: &Path) -> Result<GvproxyConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text).map_err(|source| ConfigError::Yaml {
        path: path.to_owned(),
        source: Box::new(source),
    })
}

/// Parses the YAML text of a configuration.
pub fn parse(text: &str) -> Result<GvproxyConfig, serde_saphyr::Error> {
    serde_saphyr::from_str(text)
}

fn mac(what: &str, s: &str) -> Result<EthernetAddress, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("{what}: {s:?} is not a MAC address"))
}

fn ip(what: &str, s: &str) -> Result<IpAddr, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("{what}: {s:?} is not an IP address"))
}

impl GvproxyConfig {
    /// Applies the file to the command line `args` (see the module docs for who wins).
    /// `path` names the file in errors.
    pub fn apply(self, args: &mut ServeArgs, path: &Path) -> Result<(), ConfigError> {
        let value = |what: String| ConfigError::Value {
            path: path.to_owned(),
            what,
        };
        if self.notification.is_some() {
            return Err(value(
                "notification: network-ready notifications are not supported".to_owned(),
            ));
        }
        let mut extras = Extras {
            log_level: self.log_level.clone(),
            search_domains: self.stack.dns_search_domains.clone(),
            ..Extras::default()
        };
        let net = &mut args.network;
        if net.ssh_port.is_some() {
            extras.warnings.push(
                "-ssh-port is ignored with -config: list the port in the file's stack.forwards"
                    .to_owned(),
            );
        }
        net.ssh_port = Some(-1);
        let s = self.stack;
        if let Some(subnet) = s.subnet {
            net.subnet = subnet;
        }
        net.gateway_ip = s.gateway_ip.or(net.gateway_ip);
        net.device_ip = s.device_ip.or(net.device_ip);
        net.host_ip = s.host_ip.or(net.host_ip);
        if let Some(mtu) = s.mtu.filter(|m| *m != 0)
            && !(cli::MIN_MTU..=cli::MAX_MTU).contains(&mtu)
        {
            return Err(value(format!(
                "stack.mtu {mtu} is outside {}..={}",
                cli::MIN_MTU,
                cli::MAX_MTU
            )));
        }
        net.mtu = net.mtu.or(s.mtu.filter(|m| *m != 0));
        net.pcap = net.pcap.take().or(s.capture_file);
        net.pid_file = net.pid_file.take().or(self.pid_file);
        net.log_file = net.log_file.take().or(self.log_file);
        net.debug |= s.debug;
        net.ec2_metadata_access |= self.ec2_metadata_access || s.ec2_metadata_access;
        net.no_default_lease = true;
        for (ip_text, mac_text) in &s.dhcp_static_leases {
            let ip = match ip("dhcpStaticLeases", ip_text).map_err(value)? {
                IpAddr::V4(v4) => v4,
                IpAddr::V6(_) => {
                    return Err(value(format!("dhcpStaticLeases: {ip_text} is not IPv4")));
                }
            };
            let mac = mac("dhcpStaticLeases", mac_text).map_err(value)?;
            net.static_lease.push(dhcp::StaticLease { mac, ip });
        }
        for (local, remote) in &s.forwards {
            let spec = match local.strip_prefix("udp:") {
                Some(udp) => format!("udp/{udp}={remote}"),
                None => format!("tcp/{local}={remote}"),
            };
            net.forward.push(spec);
        }
        for (from, to) in &s.nat {
            extras.nat.push((
                ip("nat", from).map_err(value)?,
                ip("nat", to).map_err(value)?,
            ));
        }
        for v in &s.gateway_virtual_ips {
            match ip("gatewayVirtualIPs", v).map_err(value)? {
                IpAddr::V4(v4) => extras.virtual_ips.push(v4),
                IpAddr::V6(_) => {
                    return Err(value(format!("gatewayVirtualIPs: {v} is not IPv4")));
                }
            }
        }
        if let Some(m) = &s.gateway_mac_address {
            extras.gateway_mac = Some(mac("gatewayMacAddress", m).map_err(value)?);
        }
        for (uuid, m) in &s.vpnkit_uuid_mac_addresses {
            extras.vpnkit_macs.push((
                uuid.clone(),
                mac("vpnKitUUIDMacAddresses", m).map_err(value)?,
            ));
        }
        extras.zones = zones(&s.dns).map_err(value)?;
        if args.listen.is_empty() {
            args.listen = self.listen;
        }
        if args.services.is_empty() {
            args.services.extend(self.services);
        }
        let i = self.interfaces;
        let one = |cli: &mut Vec<String>, file: Option<String>| {
            if cli.is_empty() {
                cli.extend(file);
            }
        };
        one(&mut args.listen_qemu, i.qemu);
        one(&mut args.listen_vfkit, i.vfkit);
        one(&mut args.listen_bess, i.bess);
        one(&mut args.listen_vpnkit, i.vpnkit);
        if args.listen_stdio.is_none() {
            args.listen_stdio = i.stdio;
        }
        for f in self.forwards {
            args.forward_sock.push(f.socket);
            args.forward_dest.push(f.dest);
            args.forward_user.push(f.user);
            args.forward_identity.push(f.identity);
        }
        args.network.gvproxy = Some(Arc::new(extras));
        Ok(())
    }
}

/// The file's zones, checked as `POST /services/dns/add` checks them.
fn zones(spec: &[Zone]) -> Result<dns::Zones, String> {
    let shared = dns::Zones::default().shared();
    for zone in spec {
        let records: Vec<serde_json::Value> = zone
            .records
            .iter()
            .map(|r| {
                serde_json::json!({
                    "Name": r.name,
                    "IP": r.ip.map(|ip| ip.to_string()),
                    "Regexp": r.regexp,
                })
            })
            .collect();
        let body = serde_json::json!({
            "Name": zone.name,
            "Records": records,
            "DefaultIP": zone.default_ip.map(|ip| ip.to_string()),
        });
        dns::api::add(&shared, body.to_string().as_bytes())
            .map_err(|e| format!("dns: zone {:?}: {e}", zone.name))?;
    }
    let zones = shared.read().clone();
    Ok(zones)
}

/// The configuration's extras for `net`, if a file gave any.
pub fn extras(net: &NetworkArgs) -> Option<&Extras> {
    net.gvproxy.as_deref()
}

#[cfg(test)]
#[path = "gvconfig_tests.rs"]
mod tests;
