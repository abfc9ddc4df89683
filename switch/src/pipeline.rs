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

use super::Addressing;

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
        let api_limits = api::ApiLimits {
            max_request: net.max_api_request.unwrap_or(switch::link::http::MAX_BODY),
            guest_max_request: fwd.api_max_request,
            api_header_timeout: fwd.api_header_timeout,
            descriptors,
        };
        config.mac_table_size = net.max_mac_entries;
        config.workers = net.workers;
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
        config.use_forwarder(fwd, &control);
        let auto = AutoForwards::new(control.clone(), Policy::from_args(&net.auto_forward));
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
