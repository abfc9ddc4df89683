//! The running pipeline behind the links: `switch::runtime::Runtime` (switch, gateway
//! services, the forwarder's workers), built from the command line's network settings, with
//! the control plane ([`forwarder::Control`]) and the API router served on `-listen` and
//! `-services`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use forwarder::descriptors::{self, DescriptorPlan};
use forwarder::{Control, Protocol};
use switch::api::{self, Router};
use switch::auto_forward::{self, AutoForwards, Policy};
use switch::cli::NetworkArgs;
use switch::pcap::{self, PcapConfig, PcapThread};
use switch::port::Attacher;
use switch::runtime::{Runtime, RuntimeConfig};
use switch::ssh_forward::{PrivateTarget, SshTarget};

use super::{Addressing, DEFAULT_GUEST_MAC};

/// The running pipeline, and the pcap writer if capturing.
pub(crate) struct Pipeline {
    runtime: Runtime,
    control: Arc<Control>,
    pcap: Option<PcapThread>,
    api: Arc<Router>,
    auto: Arc<AutoForwards>,
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
        config.dhcp.static_leases = addressing.leases.all().to_vec();
        let neighbours: Vec<(IpAddr, stack::wire::EthernetAddress)> = addressing
            .leases
            .all()
            .iter()
            .map(|l| (IpAddr::V4(l.ip), l.mac))
            .collect();
        let control = Control::new(guest, &neighbours);
        let loopback = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
        let extras = switch::gvconfig::extras(net);
        let mut nat = match extras {
            Some(x) if !x.nat.is_empty() => x.nat.clone(),
            _ => vec![(IpAddr::V4(addressing.host), loopback)],
        };
        if let Some(x) = extras {
            config.dns.zones = Some(x.zones.clone().shared());
            config.virtual_ips = x
                .virtual_ips
                .iter()
                .copied()
                .filter(|ip| *ip != addressing.host)
                .collect();
            if let Some(mac) = x.gateway_mac {
                config.gateway_mac = mac;
            }
            config.dhcp.search_domains = x.search_domains.clone();
        }
        if net.map_gateway {
            nat.push((IpAddr::V4(addressing.gateway), loopback));
        }
        let mut fwd = forwarder::Config {
            gateway_ip: addressing.gateway,
            nat,
            map_gateway: net.map_gateway,
            disable_host_loopback: net.disable_host_loopback,
            ec2_metadata_access: net.ec2_metadata_access,
            guest_subnet: Some((subnet.network(), subnet.prefix_len())),
            udp_idle_timeout: Duration::from_secs(net.udp_idle_timeout),
            tcp_connect_timeout: Duration::from_secs(net.tcp_connect_timeout),
            max_connects_in_flight: net.max_connects,
            max_connects_per_guest: net.max_connects_per_guest.unwrap_or(net.max_connects),
            max_connects_per_destination: net
                .max_connects_per_destination
                .unwrap_or(net.max_connects),
            max_api_connections: net.max_api_connections,
            api_header_timeout: Duration::from_secs(net.api_header_timeout),
            max_tcp_flows: net.max_tcp_flows,
            max_tcp_flows_per_guest: net.max_tcp_flows_per_guest.unwrap_or(net.max_tcp_flows),
            max_udp_flows: net.max_udp_flows,
            max_udp_flows_per_guest: net.max_udp_flows_per_guest.unwrap_or(net.max_udp_flows),
            api_max_request: net
                .max_api_request
                .unwrap_or(forwarder::Config::default().api_max_request),
            drain_timeout: net.drain_timeout,
            max_icmp_requests: net.max_icmp_requests,
            ..forwarder::Config::default()
        };
        let descriptors = plan_descriptors(&mut fwd);
        let mut api_limits = api::ApiLimits {
            max_request: net.max_api_request.unwrap_or(switch::link::http::MAX_BODY),
            guest_max_request: fwd.api_max_request,
            api_header_timeout: fwd.api_header_timeout,
            descriptors,
            auto_forwards: None,
        };
        config.mac_table_size = net.max_mac_entries;
        config.workers = net.workers;
        config.busy_poll = Duration::from_micros(net.busy_poll);
        let fragment_timeout = Duration::from_secs(net.fragment_timeout);
        config.reassembly = stack::frag::Config {
            max_bytes: net.max_reassembly_bytes,
            max_datagrams: net.max_reassembly_datagrams,
            max_fragments: net.max_fragments_per_datagram,
            timeout_v4: fragment_timeout,
            timeout_v6: fragment_timeout.min(stack::frag::DEFAULT_TIMEOUT_V6),
            ..stack::frag::Config::default()
        };
        config.dhcp.max_offers = net.max_dhcp_offers;
        config.dhcp.max_offers_per_mac = net.max_dhcp_offers_per_mac;
        config.dns.max_pending = net.max_dns_pending;
        config.dns.tcp_connections = net.max_dns_tcp;
        config.dns.tcp_pipeline = net.max_dns_tcp_pipeline;
        ipv6_and_multicast(net, &mut config, &mut fwd)?;
        config.use_forwarder(fwd, &control);
        let auto = AutoForwards::new(control.clone(), Policy::from_args(&net.auto_forward));
        api_limits.auto_forwards = Some(auto.clone());
        if let Some(gone) = config.guest_gone.take() {
            // A guest whose link went away loses its automatic forwards too.
            let auto = auto.clone();
            config.guest_gone = Some(Arc::new(move |macs| {
                gone(macs);
                auto.forget_macs(macs);
            }));
        }
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
            let pcap_config = PcapConfig {
                snaplen: net.pcap_snaplen,
                ..PcapConfig::default()
            };
            let created = match net.pcap_max_size {
                0 => pcap::create(path, pcap_config),
                max => pcap::create_rotating(path, pcap_config, max),
            };
            let (sink, thread) =
                created.map_err(|e| format!("cannot create {}: {e}", path.display()))?;
            match net.pcap_max_size {
                0 => tracing::warn!(
                    path = %path.display(),
                    snaplen = net.pcap_snaplen,
                    "capturing every frame with no size limit (--pcap-max-size 0)"
                ),
                max => tracing::info!(
                    path = %path.display(),
                    snaplen = net.pcap_snaplen,
                    max_bytes = max,
                    moved_to = %switch::pcap_rotate::RotatingFile::rotated_path(path).display(),
                    "capturing frames (cut at snaplen bytes); at max_bytes the file is moved aside and capture starts anew"
                ),
            }
            config.pcap = Some(sink);
            pcap_thread = Some(thread);
        }
        let runtime =
            Runtime::start(config).map_err(|e| format!("cannot start the switch: {e}"))?;
        control.set_guest_api(api::guest_api_with(
            &control,
            api_limits.guest_max_request,
            |router| {
                auto_forward::http::mount(router, &control, &auto, |req| req.peer.parse().ok());
            },
        ));
        let mut router =
            api::control_api_with(&control, runtime.handle(), runtime.dns_zones(), api_limits);
        auto_forward::http::mount(&mut router, &control, &auto, |_| None);
        let api = Arc::new(router);
        let ssh_port = net.ssh_port.unwrap_or(-1);
        if ssh_port >= 0 {
            let port = u16::try_from(ssh_port)
                .map_err(|_| format!("--ssh-port {ssh_port} is not a port"))?;
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
            control,
            pcap: pcap_thread,
            api,
            auto,
        })
    }

    /// How many workers serve the links (a TAP device gets a queue for each).
    pub(crate) fn workers(&self) -> usize {
        self.runtime.workers()
    }

    /// Where `-forward-sock` reaches the guest's sshd at `guest`: the `-ssh-port` forward
    /// if there is one, else a private unix forward (kept alive by the returned guard).
    pub(crate) fn ssh_target(
        &self,
        guest: std::net::Ipv4Addr,
    ) -> Result<(SshTarget, Option<PrivateTarget>), String> {
        let sshd = SocketAddr::new(IpAddr::V4(guest), 22);
        for f in self.control.all() {
            let Ok(local) = f.local.parse::<SocketAddr>() else {
                continue;
            };
            if f.protocol == Protocol::Tcp && f.remote == sshd.to_string() {
                let ip = match local.ip() {
                    IpAddr::V4(a) if a.is_unspecified() => {
                        IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
                    }
                    IpAddr::V6(a) if a.is_unspecified() => {
                        IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
                    }
                    ip => ip,
                };
                return Ok((SshTarget::Tcp(SocketAddr::new(ip, local.port())), None));
            }
        }
        let private = PrivateTarget::create()
            .map_err(|e| format!("cannot make the SSH forward's directory: {e}"))?;
        let socket = private.socket();
        self.control
            .expose(
                Protocol::Unix,
                &format!("unix://{}", socket.display()),
                &sshd.to_string(),
                None,
            )
            .map_err(|e| format!("cannot reach the guest's sshd: {e}"))?;
        Ok((SshTarget::Unix(socket), Some(private)))
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

    /// The automatic forwards' registry.
    pub(crate) fn auto_forwards(&self) -> Arc<AutoForwards> {
        self.auto.clone()
    }

    /// The control API's handler.
    pub(crate) fn api(&self) -> Arc<Router> {
        self.api.clone()
    }

    /// See [`Runtime::drain`].
    pub(crate) fn drain(
        &mut self,
        timeout: Duration,
        cancel: &mut dyn FnMut() -> bool,
    ) -> forwarder::DrainEnd {
        self.runtime.drain(timeout, cancel)
    }

    pub(crate) fn shutdown(self) {
        // Forwards first: their unix socket files go, so a restart can bind them again.
        self.control.unexpose_all();
        self.runtime.shutdown();
        if let Some(pcap) = self.pcap
            && let Err(e) = pcap.finish()
        {
            tracing::warn!(error = %e, "pcap capture incomplete");
        }
    }
}

/// Raises the open-file limit to the hard one and gives flows what it leaves once the
/// reserve is set aside (`forwarder::descriptors`), lowering the flow bounds that asked for
/// more.
fn plan_descriptors(fwd: &mut forwarder::Config) -> Option<DescriptorPlan> {
    let limit = match switch::sys::raise_nofile_limit() {
        Ok(limit) => limit,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the open-file limit; flows are not sized to it");
            return None;
        }
    };
    if limit.soft > limit.was {
        tracing::info!(from = limit.was, to = limit.soft, "open-file limit raised");
    }
    let in_use = switch::sys::open_descriptors().unwrap_or(0);
    let plan = DescriptorPlan::new(limit.soft, in_use);
    for lowered in descriptors::fit(fwd, &plan) {
        tracing::warn!(
            bound = lowered.bound,
            asked = lowered.asked,
            now = lowered.now,
            limit = plan.limit,
            reserved = plan.reserved,
            "the open-file limit leaves fewer host sockets than this bound; lowered"
        );
    }
    Some(plan)
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
        fwd.gateway_ip6 = Some(v6.address);
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
    if let Some(multicast) = &mut config.multicast {
        multicast.limits = switch::snoop::Limits {
            max_memberships: net.max_multicast_memberships,
            max_per_port: net.max_multicast_memberships_per_port,
        };
    }
    Ok(())
}
