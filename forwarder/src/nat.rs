//! Where a guest's destination really goes: the NAT table of virtual addresses, and the
//! destinations a guest may not reach.
//!
//! Outbound, [`Nat::outbound`] maps a virtual address (192.168.127.254 by default, and the
//! host's IPv6 one) to its target (127.0.0.1, ::1) and refuses what must not leave: loopback
//! targets when host loopback is disabled, link-local 169.254.0.0/16 (cloud metadata
//! services, RFC 3927) unless allowed, the guest subnet's and IPv6 prefix's own addresses,
//! and addresses no host could answer from (loopback, unspecified, multicast, broadcast,
//! IPv6 link-local). Inbound, [`Nat::inbound`] maps a host peer's address
//! back to the virtual one the guest knows, so replies carry the address it talked to.
//! [`Nat::source_allowed`] is the ingress filter of BCP 38 (RFC 2827 §3): an IPv4 flow whose
//! source is outside the guest subnet is not forwarded, so a guest cannot pose as thousands
//! of guests (each with its own per-guest bounds) by spoofing its source address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::config::Config;

/// Why a destination was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("host loopback is disabled")]
    HostLoopbackDisabled,
    #[error("169.254.0.0/16 needs -ec2-metadata-access")]
    LinkLocal,
    #[error("an address of the guest network")]
    GuestSubnet,
    #[error("not a unicast address a host could reach")]
    NotRoutable,
}

/// The table and policy, built once from [`Config`].
#[derive(Debug, Clone)]
pub struct Nat {
    rules: Vec<(IpAddr, IpAddr)>,
    disable_host_loopback: bool,
    ec2: bool,
    subnet: Option<(u32, u32)>,
    subnet6: Option<(u128, u128)>,
}

impl Nat {
    pub fn new(config: &Config) -> Nat {
        let subnet = config.guest_subnet.map(|(addr, len)| {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(len.min(32)))
                .unwrap_or(0);
            (u32::from(addr) & mask, mask)
        });
        let subnet6 = config.guest_subnet6.map(|(addr, len)| {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(len.min(128)))
                .unwrap_or(0);
            (addr.to_bits() & mask, mask)
        });
        Nat {
            subnet6,
            rules: config.nat.clone(),
            disable_host_loopback: config.disable_host_loopback,
            ec2: config.ec2_metadata_access,
            subnet,
        }
    }

    /// The real destination for a guest's `dst`.
    pub fn outbound(&self, dst: IpAddr) -> Result<IpAddr, Refusal> {
        if let Some((_, target)) = self.rules.iter().find(|(from, _)| *from == dst) {
            if self.disable_host_loopback && target.is_loopback() {
                return Err(Refusal::HostLoopbackDisabled);
            }
            return Ok(*target);
        }
        match dst {
            IpAddr::V4(v4) => {
                if v4.is_link_local() {
                    return if self.ec2 {
                        Ok(dst)
                    } else {
                        Err(Refusal::LinkLocal)
                    };
                }
                if self.in_subnet(v4) {
                    return Err(Refusal::GuestSubnet);
                }
                if v4.is_loopback() || v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast()
                {
                    return Err(Refusal::NotRoutable);
                }
                Ok(dst)
            }
            IpAddr::V6(v6) => {
                if v6.is_loopback()
                    || v6.is_unspecified()
                    || v6.is_multicast()
                    || v6.is_unicast_link_local()
                {
                    return Err(Refusal::NotRoutable);
                }
                if self.in_subnet6(v6) {
                    return Err(Refusal::GuestSubnet);
                }
                Ok(dst)
            }
        }
    }

    /// The address the guest knows for a host peer `src`: the virtual address of the first
    /// rule targeting it, or `src` itself.
    pub fn inbound(&self, src: IpAddr) -> IpAddr {
        let src = match src {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(src, IpAddr::V4),
            v4 => v4,
        };
        self.rules
            .iter()
            .find(|(_, target)| *target == src)
            .map_or(src, |(from, _)| *from)
    }

    /// Whether a guest may send from `src`: any IPv6 address (the guests' prefixes are
    /// theirs to pick), an IPv4 one only inside the guest subnet when one is configured.
    pub fn source_allowed(&self, src: IpAddr) -> bool {
        match src {
            IpAddr::V4(v4) => self.subnet.is_none() || self.in_subnet(v4),
            IpAddr::V6(_) => true,
        }
    }

    fn in_subnet6(&self, addr: Ipv6Addr) -> bool {
        self.subnet6
            .is_some_and(|(net, mask)| addr.to_bits() & mask == net)
    }

    fn in_subnet(&self, addr: Ipv4Addr) -> bool {
        self.subnet
            .is_some_and(|(net, mask)| u32::from(addr) & mask == net)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    }

    #[test]
    fn host_address_maps_to_loopback_and_back() {
        let nat = Nat::new(&Config::default());
        assert_eq!(nat.outbound(v4(192, 168, 127, 254)), Ok(v4(127, 0, 0, 1)));
        assert_eq!(nat.inbound(v4(127, 0, 0, 1)), v4(192, 168, 127, 254));
        assert_eq!(nat.inbound(v4(10, 0, 0, 1)), v4(10, 0, 0, 1));
        assert_eq!(nat.outbound(v4(10, 1, 2, 3)), Ok(v4(10, 1, 2, 3)));
    }

    #[test]
    fn policy_refusals() {
        let mut config = Config::default();
        let nat = Nat::new(&config);
        assert_eq!(
            nat.outbound(v4(169, 254, 169, 254)),
            Err(Refusal::LinkLocal)
        );
        assert_eq!(
            nat.outbound(v4(192, 168, 127, 3)),
            Err(Refusal::GuestSubnet)
        );
        assert_eq!(nat.outbound(v4(127, 0, 0, 1)), Err(Refusal::NotRoutable));
        assert_eq!(nat.outbound(v4(224, 0, 0, 1)), Err(Refusal::NotRoutable));
        config.disable_host_loopback = true;
        config.ec2_metadata_access = true;
        let nat = Nat::new(&config);
        assert_eq!(
            nat.outbound(v4(192, 168, 127, 254)),
            Err(Refusal::HostLoopbackDisabled)
        );
        assert_eq!(
            nat.outbound(v4(169, 254, 169, 254)),
            Ok(v4(169, 254, 169, 254))
        );
    }

    #[test]
    fn only_the_guest_subnet_may_be_a_source() {
        let nat = Nat::new(&Config::default());
        assert!(nat.source_allowed(v4(192, 168, 127, 2)));
        assert!(nat.source_allowed(v4(192, 168, 127, 77)));
        assert!(!nat.source_allowed(v4(10, 9, 9, 9)));
        assert!(!nat.source_allowed(v4(192, 168, 128, 2)));
        assert!(nat.source_allowed("fd00::2".parse().unwrap()));
        let nat = Nat::new(&Config {
            guest_subnet: None,
            ..Config::default()
        });
        assert!(nat.source_allowed(v4(10, 9, 9, 9)));
    }

    #[test]
    fn the_hosts_ipv6_address_maps_to_loopback_unless_disabled() {
        let host6: Ipv6Addr = "fd00:127::254".parse().unwrap();
        let mut config = Config {
            guest_subnet6: Some(("fd00:127::".parse().unwrap(), 64)),
            ..Config::default()
        };
        config
            .nat
            .push((IpAddr::V6(host6), IpAddr::V6(Ipv6Addr::LOCALHOST)));
        let nat = Nat::new(&config);
        assert_eq!(
            nat.outbound(IpAddr::V6(host6)),
            Ok(IpAddr::V6(Ipv6Addr::LOCALHOST))
        );
        assert_eq!(
            nat.inbound(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            IpAddr::V6(host6)
        );
        // The rest of the guests' prefix is theirs, not the host's.
        let other: Ipv6Addr = "fd00:127::99".parse().unwrap();
        assert_eq!(nat.outbound(IpAddr::V6(other)), Err(Refusal::GuestSubnet));
        let far: Ipv6Addr = "2001:db8::1".parse().unwrap();
        assert_eq!(nat.outbound(IpAddr::V6(far)), Ok(IpAddr::V6(far)));
        assert_eq!(
            nat.outbound(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            Err(Refusal::NotRoutable)
        );
        config.disable_host_loopback = true;
        let nat = Nat::new(&config);
        assert_eq!(
            nat.outbound(IpAddr::V6(host6)),
            Err(Refusal::HostLoopbackDisabled)
        );
    }
}
