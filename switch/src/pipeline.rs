//! The running pipeline behind the links: `switch::runtime::Runtime` (switch, gateway
//! services, the forwarder's workers), built from the command line's network settings, with
//! the control plane ([`forwarder::Control`]) and the API router served on `-listen` and
//! `-services`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use forwarder::{Control, Protocol};
use switch::api::{self, Router};
use switch::cli::NetworkArgs;
use switch::pcap::{self, PcapConfig, PcapThread};
use switch::port::Attacher;
use switch::runtime::{Runtime, RuntimeConfig};

use super::{Addressing, DEFAULT_GUEST_MAC};

/// The running pipeline, and the pcap writer if capturing.
pub(crate) struct Pipeline {
    runtime: Runtime,
    pcap: Option<PcapThread>,
    api: Arc<Router>,
}

impl Pipeline {
    pub(crate) fn start(
        net: &NetworkArgs,
        addressing: &Addressing,
        mtu: u32,
    ) -> Result<Pipeline, String> {
        let subnet: dhcp::Subnet = net
            .subnet
            .parse()
            .map_err(|e| format!("--subnet {}: {e}", net.subnet))?;
        let mut config = RuntimeConfig::for_subnet(subnet);
        config.gateway_ip = addressing.gateway;
        config.host_ip = addressing.host;
        config.mtu = u16::try_from(mtu).map_err(|_| format!("MTU {mtu} is larger than 65535"))?;
        let guest = IpAddr::V4(addressing.guest);
        let control = Control::new(guest, &[(guest, DEFAULT_GUEST_MAC)]);
        let fwd = forwarder::Config {
            gateway_ip: addressing.gateway,
            nat: vec![(
                IpAddr::V4(addressing.host),
                IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            )],
            disable_host_loopback: net.disable_host_loopback,
            ec2_metadata_access: net.ec2_metadata_access,
            guest_subnet: Some((subnet.network(), subnet.prefix_len())),
            udp_idle_timeout: Duration::from_secs(net.udp_idle_timeout),
            tcp_connect_timeout: Duration::from_secs(net.tcp_connect_timeout),
            max_connects_in_flight: net.max_connects,
            max_tcp_flows: net.max_tcp_flows,
            max_tcp_flows_per_guest: net.max_tcp_flows_per_guest.unwrap_or(net.max_tcp_flows),
            max_udp_flows: net.max_udp_flows,
            max_udp_flows_per_guest: net.max_udp_flows_per_guest.unwrap_or(net.max_udp_flows),
            api_max_request: net
                .max_api_request
                .unwrap_or(forwarder::Config::default().api_max_request),
            ..forwarder::Config::default()
        };
        let api_limits = api::ApiLimits {
            max_request: net.max_api_request.unwrap_or(switch::link::http::MAX_BODY),
            guest_max_request: fwd.api_max_request,
        };
        config.mac_table_size = net.max_mac_entries;
        let fragment_timeout = Duration::from_secs(net.fragment_timeout);
        config.reassembly = stack::frag::Config {
            max_bytes: net.max_reassembly_bytes,
            timeout_v4: fragment_timeout,
            timeout_v6: fragment_timeout.min(stack::frag::DEFAULT_TIMEOUT_V6),
            ..stack::frag::Config::default()
        };
        config.dns.max_pending = net.max_dns_pending;
        config.dns.tcp_connections = net.max_dns_tcp;
        let mut fwd = fwd;
        ipv6_and_multicast(net, &mut config, &mut fwd)?;
        config.use_forwarder(fwd, &control);
        config.dns.upstreams = if net.dns_upstream.is_empty() {
            // The host's resolvers, as any program on the host would use them.
            let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
            dns::resolv_conf::nameservers(&text)
        } else {
            net.dns_upstream.clone()
        };
        if config.dns.upstreams.is_empty() {
            tracing::warn!("no DNS upstream: names outside the local zones will not resolve");
        }
        let mut pcap_thread = None;
        if let Some(path) = &net.pcap {
            let (sink, thread) = pcap::create(path, PcapConfig::default())
                .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
            config.pcap = Some(sink);
            pcap_thread = Some(thread);
        }
        let runtime =
            Runtime::start(config).map_err(|e| format!("cannot start the switch: {e}"))?;
        control.set_guest_api(api::guest_api(&control));
        let api = Arc::new(api::control_api_with(
            &control,
            runtime.handle(),
            runtime.dns_zones(),
            api_limits,
        ));
        if net.ssh_port >= 0 {
            let port = u16::try_from(net.ssh_port)
                .map_err(|_| format!("--ssh-port {} is not a port", net.ssh_port))?;
            let local = SocketAddr::from(([127, 0, 0, 1], port)).to_string();
            let remote = SocketAddr::new(guest, 22).to_string();
            if let Err(e) = control.expose(Protocol::Tcp, &local, &remote, None) {
                tracing::warn!(error = %e, "no SSH forward");
            }
        }
        for spec in &net.forward {
            let (protocol, rest) = spec
                .split_once('/')
                .ok_or_else(|| format!("--forward {spec}: expected PROTO/LOCAL=REMOTE"))?;
            let (local, remote) = rest
                .split_once('=')
                .ok_or_else(|| format!("--forward {spec}: expected PROTO/LOCAL=REMOTE"))?;
            let protocol: Protocol = protocol
                .parse()
                .map_err(|e| format!("--forward {spec}: {e}"))?;
            control
                .expose(protocol, local, remote, None)
                .map_err(|e| format!("--forward {spec}: {e}"))?;
        }
        Ok(Pipeline {
            runtime,
            pcap: pcap_thread,
            api,
        })
    }

    /// The gateway's IPv6 address, when IPv6 is on.
    pub(crate) fn gateway6(net: &NetworkArgs) -> Option<std::net::Ipv6Addr> {
        if net.disable_ipv6 {
            return None;
        }
        let prefix = parse_prefix6(&net.subnet6).ok()?;
        Some(dhcp::v6::config::nth(
            prefix,
            switch::gateway::v6::GATEWAY_HOST,
        ))
    }

    pub(crate) fn attacher(&self) -> Attacher {
        self.runtime.attacher()
    }

    /// The control API's handler.
    pub(crate) fn api(&self) -> Arc<Router> {
        self.api.clone()
    }

    pub(crate) fn shutdown(self) {
        self.runtime.shutdown();
        if let Some(pcap) = self.pcap
            && let Err(e) = pcap.finish()
        {
            tracing::warn!(error = %e, "pcap capture incomplete");
        }
    }
}

/// `--subnet6`: an IPv6 /64 (SLAAC needs 64 bits of interface identifier, RFC 4862 §5.5.3).
fn parse_prefix6(text: &str) -> Result<std::net::Ipv6Addr, String> {
    let bad = || format!("--subnet6 {text}: expected an IPv6 prefix of length 64, as fd00:1::/64");
    let (addr, len) = text.split_once('/').ok_or_else(bad)?;
    let addr: std::net::Ipv6Addr = addr.parse().map_err(|_| bad())?;
    if len != "64" || addr.is_multicast() || addr.is_loopback() || addr.is_unspecified() {
        return Err(bad());
    }
    Ok(std::net::Ipv6Addr::from_bits(
        addr.to_bits() & !u128::from(u64::MAX),
    ))
}

/// The interface index of `--multicast-interface` (0: none given).
fn interface_index(name: Option<&str>) -> Result<u32, String> {
    let Some(name) = name else { return Ok(0) };
    let c = std::ffi::CString::new(name).map_err(|_| format!("--multicast-interface {name:?}"))?;
    // SAFETY: `c` is a NUL-terminated string that lives across the call.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        return Err(format!("--multicast-interface {name}: no such interface"));
    }
    Ok(index)
}

/// IPv6 (on by default: `--subnet6`, `--disable-ipv6`) and multicast (`--multicast-*`):
/// the gateway's services, the host's virtual IPv6 address (NAT to ::1), the relay.
fn ipv6_and_multicast(
    net: &NetworkArgs,
    config: &mut RuntimeConfig,
    fwd: &mut forwarder::Config,
) -> Result<(), String> {
    let prefix = parse_prefix6(&net.subnet6)?;
    if net.disable_ipv6 {
        config.disable_ipv6 = true;
        config.ipv6 = None;
    } else {
        let v6 =
            switch::gateway::V6Config::for_prefix(prefix, config.gateway_mac, DEFAULT_GUEST_MAC);
        for &host6 in &v6.virtual_ips {
            fwd.nat
                .push((IpAddr::V6(host6), IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)));
        }
        fwd.guest_subnet6 = Some((prefix, 64));
        config.ipv6 = Some(v6);
    }
    config.multicast_relay = !net.disable_multicast_relay;
    let interface = interface_index(net.multicast_interface.as_deref())?;
    fwd.multicast_interface_v4 = interface;
    fwd.multicast_interface_v6 = interface;
    for &port in &net.multicast_port {
        if !fwd.multicast_ports.contains(&port) {
            fwd.multicast_ports.push(port);
        }
    }
    fwd.max_multicast_groups = net.max_multicast_groups;
    Ok(())
}
