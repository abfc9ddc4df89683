//! The running pipeline behind the links: `switch::runtime::Runtime` (switch, gateway
//! services, workers), built from the command line's network settings.

use switch::cli::NetworkArgs;
use switch::pcap::{self, PcapConfig, PcapThread};
use switch::port::Attacher;
use switch::runtime::{Runtime, RuntimeConfig};

use super::Addressing;

/// The running pipeline, and the pcap writer if capturing.
pub(crate) struct Pipeline {
    runtime: Runtime,
    pcap: Option<PcapThread>,
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
        Ok(Pipeline {
            runtime,
            pcap: pcap_thread,
        })
    }

    pub(crate) fn attacher(&self) -> Attacher {
        self.runtime.attacher()
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
