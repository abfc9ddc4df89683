//! The runtime's IPv6 and multicast wiring, kept apart from the threads: which IPv6 services
//! the gateway runs ([`RuntimeConfig::ipv6`] as it takes effect), the local zones' AAAA
//! records, the largest DNS answer a frame carries, the switch's IGMP/MLD snooper, and the
//! hook that tells the forwarder's multicast relay which groups guests joined.

use std::net::Ipv6Addr;
use std::sync::Arc;

use super::{GroupHook, RuntimeConfig};

/// The guests' IPv6 prefix by default: a unique local /64 (RFC 4193).
pub const DEFAULT_PREFIX6: Ipv6Addr = Ipv6Addr::new(0xfd9d, 0xb9a2, 0xe1c4, 0x127, 0, 0, 0, 0);

/// IGMP/MLD snooping: the group table's bounds and the querier's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MulticastConfig {
    pub limits: crate::snoop::Limits,
    pub timing: crate::snoop::Timing,
}

impl RuntimeConfig {
    /// The IPv6 services as they take effect: none with IPv6 off; the gateway's MAC and the
    /// DHCPv4 search list filled in.
    pub(super) fn ipv6_services(&self) -> Option<crate::gateway::V6Config> {
        if self.disable_ipv6 {
            return None;
        }
        let mut v6 = self.ipv6.clone()?;
        v6.dhcp.server_duid = dhcp::v6::duid_ll(self.gateway_mac);
        if v6.ra.search_domains.is_empty() && v6.dhcp.search_domains.is_empty() {
            // The DHCPv4 server's search list, in router advertisements and DHCPv6 too.
            v6 = v6.with_search_domains(&self.dhcp.search_domains);
        }
        Some(v6)
    }

    /// gvproxy's local zones, with AAAA records for the gateway and the host when IPv6
    /// services are on.
    pub(super) fn default_zones(&self) -> dns::Zones {
        let zones = dns::Zones::gvproxy_defaults(self.gateway_ip, self.host_ip);
        match self.ipv6_services() {
            Some(v6) => match v6.virtual_ips.first() {
                Some(&host6) => zones.with_ipv6(v6.address, host6),
                None => zones,
            },
            None => zones,
        }
    }

    /// The largest DNS answer over UDP: one frame, the MTU less the IP (IPv6 when it is on)
    /// and UDP headers.
    pub(super) fn dns_max_reply(&self) -> usize {
        let headers = if self.disable_ipv6 { 28 } else { 48 };
        usize::from(self.mtu).saturating_sub(headers)
    }

    /// The switch's IGMP/MLD snooper, with the gateway as querier; `None` floods groups.
    pub(super) fn snooper(&self) -> Option<crate::snoop::Snooper> {
        let m = self.multicast?;
        Some(crate::snoop::Snooper::new(crate::snoop::SnoopConfig {
            mac: self.gateway_mac,
            ipv4: self.gateway_ip,
            ipv6: (!self.disable_ipv6).then(|| crate::gateway::link_local(self.gateway_mac)),
            limits: m.limits,
            timing: m.timing,
        }))
    }
}

/// Tells the forwarder's multicast relay of every group that gains its first guest member or
/// loses its last, so it joins or leaves it on the host.
pub(super) fn relay_hook(control: &Arc<forwarder::Control>) -> GroupHook {
    let groups = control.clone();
    Arc::new(move |event| {
        let (group, joined) = match event {
            crate::snoop::GroupEvent::Joined(g) => (g, true),
            crate::snoop::GroupEvent::Left(g) => (g, false),
        };
        if !groups.multicast_group(group, joined) {
            tracing::warn!(%group, joined, "the multicast relay could not be told");
        }
    })
}
