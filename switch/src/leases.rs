//! Static DHCP leases, from `--static-lease MAC=IP` and a gvproxy configuration's
//! `dhcpStaticLeases`, merged with the default guest's lease, and the address a configured TAP
//! takes.
//!
//! Guarantees: no two leases share a MAC or an address; no lease is the gateway's, the host's,
//! the network's or the broadcast address, or outside the subnet. Conflicts among the given
//! leases are refused ([`LeaseError`]); the default lease (5a:94:ef:e4:0c:ee → the subnet's
//! second address) gives way to any given lease for its MAC or its address. A TAP configured
//! in place of a DHCP client ([`Leases::address_for`]) takes its MAC's lease, or a free address
//! made into a lease for it, so DHCP never hands that address to another guest.

use std::net::Ipv4Addr;

use dhcp::{StaticLease, Subnet};
use stack::wire::EthernetAddress;

/// Why a set of leases is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    #[error("{0:?}: expected MAC=IP, e.g. 5a:94:ef:e4:0c:ee=192.168.127.2")]
    Syntax(String),
    #[error("static lease {ip} for {mac}: {why}")]
    BadAddress {
        mac: EthernetAddress,
        ip: Ipv4Addr,
        why: &'static str,
    },
    #[error("static leases for {first} and {second} both take {ip}")]
    SameAddress {
        ip: Ipv4Addr,
        first: EthernetAddress,
        second: EthernetAddress,
    },
    #[error("two static leases for {mac}: {first} and {second}")]
    SameMac {
        mac: EthernetAddress,
        first: Ipv4Addr,
        second: Ipv4Addr,
    },
    #[error("no free address left in the subnet for {0}")]
    Full(EthernetAddress),
}

/// Parses `MAC=IP`.
pub fn parse(s: &str) -> Result<StaticLease, LeaseError> {
    let syntax = || LeaseError::Syntax(s.to_owned());
    let (mac, ip) = s.split_once('=').ok_or_else(syntax)?;
    Ok(StaticLease {
        mac: mac.trim().parse().map_err(|_| syntax())?,
        ip: ip.trim().parse().map_err(|_| syntax())?,
    })
}

/// The network's fixed addresses, which no lease may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fixed {
    pub subnet: Subnet,
    pub gateway: Ipv4Addr,
    pub host: Ipv4Addr,
}

/// The static leases in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leases {
    fixed: Fixed,
    leases: Vec<StaticLease>,
}

impl Leases {
    /// The `given` leases, checked, and `default` unless a given lease takes its MAC or its
    /// address.
    pub fn new(
        fixed: Fixed,
        default: Option<StaticLease>,
        given: &[StaticLease],
    ) -> Result<Leases, LeaseError> {
        let mut leases: Vec<StaticLease> = Vec::with_capacity(given.len() + 1);
        for lease in given {
            fixed.check(lease)?;
            if let Some(other) = leases.iter().find(|l| l.ip == lease.ip) {
                if other.mac == lease.mac {
                    continue;
                }
                return Err(LeaseError::SameAddress {
                    ip: lease.ip,
                    first: other.mac,
                    second: lease.mac,
                });
            }
            if let Some(other) = leases.iter().find(|l| l.mac == lease.mac) {
                return Err(LeaseError::SameMac {
                    mac: lease.mac,
                    first: other.ip,
                    second: lease.ip,
                });
            }
            leases.push(*lease);
        }
        if let Some(default) = default {
            let displaced = leases
                .iter()
                .any(|l| l.mac == default.mac || l.ip == default.ip);
            if displaced {
                tracing::debug!(mac = %default.mac, ip = %default.ip, "a given static lease replaces the default one");
            } else if fixed.check(&default).is_ok() {
                leases.push(default);
            }
        }
        Ok(Leases { fixed, leases })
    }

    /// Every lease.
    pub fn all(&self) -> &[StaticLease] {
        &self.leases
    }

    /// The address leased to `mac`, if any.
    pub fn get(&self, mac: EthernetAddress) -> Option<Ipv4Addr> {
        self.leases.iter().find(|l| l.mac == mac).map(|l| l.ip)
    }

    /// The address a guest with `mac` that configures itself (a TAP under `--configure`)
    /// takes: its lease, or else the lowest free host address, leased to it from now on.
    pub fn address_for(&mut self, mac: EthernetAddress) -> Result<Ipv4Addr, LeaseError> {
        if let Some(ip) = self.get(mac) {
            return Ok(ip);
        }
        let network = u32::from(self.fixed.subnet.network());
        let broadcast = u32::from(self.fixed.subnet.broadcast());
        let free = (network.saturating_add(1)..broadcast)
            .map(Ipv4Addr::from)
            .find(|&ip| {
                self.fixed.check(&StaticLease { mac, ip }).is_ok()
                    && !self.leases.iter().any(|l| l.ip == ip)
            })
            .ok_or(LeaseError::Full(mac))?;
        self.leases.push(StaticLease { mac, ip: free });
        Ok(free)
    }
}

impl Fixed {
    fn check(&self, lease: &StaticLease) -> Result<(), LeaseError> {
        let bad = |why| LeaseError::BadAddress {
            mac: lease.mac,
            ip: lease.ip,
            why,
        };
        if !self.subnet.is_host(lease.ip) {
            return Err(bad("not a host address of the subnet"));
        }
        if lease.ip == self.gateway {
            return Err(bad("that is the gateway's address"));
        }
        if lease.ip == self.host {
            return Err(bad("that is the host's address"));
        }
        if lease.mac.is_multicast() {
            return Err(bad("a multicast MAC cannot be a guest"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed() -> Fixed {
        Fixed {
            subnet: Subnet::new(Ipv4Addr::new(192, 168, 127, 0), 24).unwrap(),
            gateway: Ipv4Addr::new(192, 168, 127, 1),
            host: Ipv4Addr::new(192, 168, 127, 254),
        }
    }

    fn lease(s: &str) -> StaticLease {
        parse(s).unwrap()
    }

    const DEFAULT: &str = "5a:94:ef:e4:0c:ee=192.168.127.2";

    #[test]
    fn parses_mac_equals_ip() {
        let l = lease("02:00:00:00:00:01=192.168.127.9");
        assert_eq!(l.ip, Ipv4Addr::new(192, 168, 127, 9));
        assert_eq!(l.mac.to_string(), "02:00:00:00:00:01");
        for bad in [
            "02:00:00:00:00:01",
            "x=192.168.127.9",
            "02:00:00:00:00:01=1.2.3",
        ] {
            assert!(matches!(parse(bad), Err(LeaseError::Syntax(_))), "{bad}");
        }
    }

    #[test]
    fn conflicts_are_refused_and_the_default_gives_way() {
        let d = Some(lease(DEFAULT));
        let ok = Leases::new(fixed(), d, &[lease("02:00:00:00:00:01=192.168.127.9")]).unwrap();
        assert_eq!(ok.all().len(), 2);
        // A given lease on the default's address, or for its MAC, replaces it.
        let l = Leases::new(fixed(), d, &[lease("02:00:00:00:00:01=192.168.127.2")]).unwrap();
        assert_eq!(l.all(), &[lease("02:00:00:00:00:01=192.168.127.2")]);
        let l = Leases::new(fixed(), d, &[lease("5a:94:ef:e4:0c:ee=192.168.127.7")]).unwrap();
        assert_eq!(l.all(), &[lease("5a:94:ef:e4:0c:ee=192.168.127.7")]);
        // Two given leases on one address, or two addresses for one MAC: refused.
        let two = [
            lease("02:00:00:00:00:01=192.168.127.9"),
            lease("02:00:00:00:00:02=192.168.127.9"),
        ];
        assert!(matches!(
            Leases::new(fixed(), d, &two),
            Err(LeaseError::SameAddress { .. })
        ));
        let two = [
            lease("02:00:00:00:00:01=192.168.127.9"),
            lease("02:00:00:00:00:01=192.168.127.10"),
        ];
        assert!(matches!(
            Leases::new(fixed(), d, &two),
            Err(LeaseError::SameMac { .. })
        ));
        // The same lease twice is one lease.
        let twice = [lease("02:00:00:00:00:01=192.168.127.9"); 2];
        assert_eq!(Leases::new(fixed(), None, &twice).unwrap().all().len(), 1);
        for bad in [
            "02:00:00:00:00:01=192.168.127.1",
            "02:00:00:00:00:01=192.168.127.254",
            "02:00:00:00:00:01=192.168.127.0",
            "02:00:00:00:00:01=192.168.127.255",
            "02:00:00:00:00:01=10.0.0.2",
            "03:00:00:00:00:01=192.168.127.9",
        ] {
            let err = Leases::new(fixed(), d, &[lease(bad)]).unwrap_err();
            assert!(matches!(err, LeaseError::BadAddress { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn a_configured_guest_takes_its_lease_or_a_free_address() {
        let mut l = Leases::new(
            fixed(),
            Some(lease(DEFAULT)),
            &[lease("02:00:00:00:00:01=192.168.127.3")],
        )
        .unwrap();
        let default_mac = lease(DEFAULT).mac;
        assert_eq!(
            l.address_for(default_mac).unwrap(),
            Ipv4Addr::new(192, 168, 127, 2)
        );
        let other: EthernetAddress = "02:00:00:00:00:09".parse().unwrap();
        assert_eq!(
            l.address_for(other).unwrap(),
            Ipv4Addr::new(192, 168, 127, 4),
            "the lowest address no lease takes"
        );
        assert_eq!(l.get(other), Some(Ipv4Addr::new(192, 168, 127, 4)));
        // A /29 has hosts .1 to .6: the gateway .1, the host .6, leases for the rest.
        let small = Fixed {
            subnet: Subnet::new(Ipv4Addr::new(10, 0, 0, 0), 29).unwrap(),
            gateway: Ipv4Addr::new(10, 0, 0, 1),
            host: Ipv4Addr::new(10, 0, 0, 6),
        };
        let mut l = Leases::new(small, None, &[]).unwrap();
        for n in 1..=4u8 {
            let mac = EthernetAddress([2, 0, 0, 0, 0, n]);
            assert!(l.address_for(mac).is_ok());
        }
        let err = l.address_for(EthernetAddress([2, 0, 0, 0, 0, 5]));
        assert!(matches!(err, Err(LeaseError::Full(_))), "{err:?}");
    }
}
