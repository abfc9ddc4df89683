//! The server's configuration and its validation.
//!
//! [`Config::default`] is gvproxy's network: server (gateway) 192.168.127.1 in
//! 192.168.127.0/24, pool .3–.253, the host's address .254 reserved, a static lease of .2 for
//! 5a:94:ef:e4:0c:ee, the gateway as router and DNS server, MTU 1500, leases of an hour.
//! [`Config::validate`] (run by [`Server::new`](crate::Server::new)) refuses anything the server
//! could not honour, so the server itself never meets an inconsistent configuration.

use crate::search::{DomainList, NameError};
use core::fmt;
use core::net::Ipv4Addr;
use core::str::FromStr;
use core::time::Duration;
use stack::wire::EthernetAddress;

/// The most addresses a dynamic pool may hold (a /16): the lease table grows with it.
pub const MAX_POOL_SIZE: u32 = 1 << 16;
/// The most routers, and the most DNS servers, a reply carries.
pub const MAX_SERVERS: usize = 8;
/// The smallest MTU a host must accept (RFC 791; RFC 2132 §5.1).
pub const MIN_MTU: u16 = 68;

/// An IPv4 subnet: a network address and a prefix length of at most 30.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Subnet {
    network: Ipv4Addr,
    prefix_len: u8,
}

/// Why a subnet is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SubnetError {
    #[error("prefix length {0} leaves no room for hosts (at most 30)")]
    PrefixTooLong(u8),
    #[error("not a subnet (expected a.b.c.d/n)")]
    Syntax,
}

impl Subnet {
    /// The subnet of `addr` with `prefix_len` bits; host bits of `addr` are cleared.
    pub fn new(addr: Ipv4Addr, prefix_len: u8) -> Result<Subnet, SubnetError> {
        if prefix_len > 30 {
            return Err(SubnetError::PrefixTooLong(prefix_len));
        }
        let mask = Subnet::mask_bits(prefix_len);
        Ok(Subnet {
            network: Ipv4Addr::from(u32::from(addr) & mask),
            prefix_len,
        })
    }

    fn mask_bits(prefix_len: u8) -> u32 {
        u32::MAX
            .checked_shl(32 - u32::from(prefix_len))
            .unwrap_or(0)
    }

    pub const fn network(&self) -> Ipv4Addr {
        self.network
    }

    pub const fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(Subnet::mask_bits(self.prefix_len))
    }

    /// The directed broadcast address (all host bits set).
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !Subnet::mask_bits(self.prefix_len))
    }

    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & Subnet::mask_bits(self.prefix_len) == u32::from(self.network)
    }

    /// Inside the subnet and neither its network nor its broadcast address.
    pub fn is_host(&self, addr: Ipv4Addr) -> bool {
        self.contains(addr) && addr != self.network && addr != self.broadcast()
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

impl FromStr for Subnet {
    type Err = SubnetError;

    fn from_str(s: &str) -> Result<Subnet, SubnetError> {
        let (addr, len) = s.split_once('/').ok_or(SubnetError::Syntax)?;
        let addr = addr.parse().map_err(|_| SubnetError::Syntax)?;
        let len = len.parse().map_err(|_| SubnetError::Syntax)?;
        Subnet::new(addr, len)
    }
}

/// A fixed address for one MAC (gvproxy's static leases).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StaticLease {
    pub mac: EthernetAddress,
    pub ip: Ipv4Addr,
}

/// What the server hands out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Our address: the server identifier (option 54) and the source of replies.
    pub server_addr: Ipv4Addr,
    pub subnet: Subnet,
    /// First and last address of the dynamic pool. The server's address, the reserved ones,
    /// static leases and the subnet's network and broadcast addresses are left out of it.
    pub pool_start: Ipv4Addr,
    pub pool_end: Ipv4Addr,
    /// Addresses never handed out dynamically (the host's address).
    pub reserved: Vec<Ipv4Addr>,
    pub static_leases: Vec<StaticLease>,
    /// Option 3; at most [`MAX_SERVERS`].
    pub routers: Vec<Ipv4Addr>,
    /// Option 6; at most [`MAX_SERVERS`].
    pub dns_servers: Vec<Ipv4Addr>,
    /// Option 15.
    pub domain_name: Option<String>,
    /// Option 119.
    pub search_domains: Vec<String>,
    /// Option 26.
    pub mtu: Option<u16>,
    /// Option 51; T1 and T2 are half and seven eighths of it (RFC 2131 §4.4.5).
    pub lease_time: Duration,
    /// How long an offered address is held for the client's REQUEST.
    pub offer_time: Duration,
    /// How long an address a client declined (RFC 2131 §4.3.3) stays out of use.
    pub decline_time: Duration,
    /// The most offers outstanding at once; past it the oldest is withdrawn (counted) to make
    /// room for a new one, so a flood of DISCOVERs cannot keep a new client from its offer.
    pub max_offers: usize,
    /// The most offers outstanding for one client hardware address (`chaddr`), whatever
    /// client identifiers it uses; DISCOVERs past it are dropped and counted.
    pub max_offers_per_mac: usize,
}

impl Default for Config {
    fn default() -> Config {
        let gateway = Ipv4Addr::new(192, 168, 127, 1);
        Config {
            server_addr: gateway,
            subnet: Subnet {
                network: Ipv4Addr::new(192, 168, 127, 0),
                prefix_len: 24,
            },
            pool_start: Ipv4Addr::new(192, 168, 127, 3),
            pool_end: Ipv4Addr::new(192, 168, 127, 253),
            reserved: vec![Ipv4Addr::new(192, 168, 127, 254)],
            static_leases: vec![StaticLease {
                mac: EthernetAddress([0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xee]),
                ip: Ipv4Addr::new(192, 168, 127, 2),
            }],
            routers: vec![gateway],
            dns_servers: vec![gateway],
            domain_name: None,
            search_domains: Vec::new(),
            mtu: Some(1500),
            lease_time: Duration::from_secs(3600),
            offer_time: Duration::from_secs(60),
            decline_time: Duration::from_secs(600),
            max_offers: 64,
            max_offers_per_mac: 4,
        }
    }
}

/// Why a configuration is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("server address {0} is not a host address of the subnet")]
    ServerOutsideSubnet(Ipv4Addr),
    #[error("pool {0}–{1} is not a range of host addresses inside the subnet")]
    BadPool(Ipv4Addr, Ipv4Addr),
    #[error("pool of {0} addresses is larger than {MAX_POOL_SIZE}")]
    PoolTooLarge(u32),
    #[error("static lease {0} is not a free host address of the subnet")]
    BadStaticAddress(Ipv4Addr),
    #[error("two static leases for {0}")]
    DuplicateStatic(String),
    #[error("more than {MAX_SERVERS} routers or DNS servers")]
    TooManyServers,
    #[error("empty or over-long domain name")]
    BadDomainName,
    #[error("search domain: {0}")]
    BadSearchDomain(#[from] NameError),
    #[error("MTU {0} is below {MIN_MTU}")]
    MtuTooSmall(u16),
    #[error("lease time must be between 1 s and 2^32 - 2 s")]
    BadLeaseTime,
    #[error("offer time and max offers must not be zero")]
    NoOffers,
}

impl Config {
    /// Checks the configuration; returns the encoded search list on success.
    pub fn validate(&self) -> Result<DomainList, ConfigError> {
        let subnet = self.subnet;
        if !subnet.is_host(self.server_addr) {
            return Err(ConfigError::ServerOutsideSubnet(self.server_addr));
        }
        let (start, end) = (u32::from(self.pool_start), u32::from(self.pool_end));
        if start > end || !subnet.contains(self.pool_start) || !subnet.contains(self.pool_end) {
            return Err(ConfigError::BadPool(self.pool_start, self.pool_end));
        }
        let size = (end - start).saturating_add(1);
        if size > MAX_POOL_SIZE {
            return Err(ConfigError::PoolTooLarge(size));
        }
        let mut ips = std::collections::HashSet::new();
        let mut macs = std::collections::HashSet::new();
        for lease in &self.static_leases {
            if !subnet.is_host(lease.ip)
                || lease.ip == self.server_addr
                || self.reserved.contains(&lease.ip)
            {
                return Err(ConfigError::BadStaticAddress(lease.ip));
            }
            if !ips.insert(lease.ip) {
                return Err(ConfigError::DuplicateStatic(lease.ip.to_string()));
            }
            if !macs.insert(lease.mac) {
                return Err(ConfigError::DuplicateStatic(lease.mac.to_string()));
            }
        }
        if self.routers.len() > MAX_SERVERS || self.dns_servers.len() > MAX_SERVERS {
            return Err(ConfigError::TooManyServers);
        }
        if let Some(name) = &self.domain_name
            && (name.is_empty() || name.len() > 255)
        {
            return Err(ConfigError::BadDomainName);
        }
        if let Some(mtu) = self.mtu
            && mtu < MIN_MTU
        {
            return Err(ConfigError::MtuTooSmall(mtu));
        }
        let secs = self.lease_time.as_secs();
        if secs == 0 || secs >= u64::from(u32::MAX) {
            return Err(ConfigError::BadLeaseTime);
        }
        if self.offer_time.is_zero() || self.max_offers == 0 || self.max_offers_per_mac == 0 {
            return Err(ConfigError::NoOffers);
        }
        Ok(DomainList::new(&self.search_domains)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn subnet_arithmetic() {
        let s: Subnet = "192.168.127.77/24".parse().unwrap();
        assert_eq!(s.to_string(), "192.168.127.0/24");
        assert_eq!(s.netmask(), ip("255.255.255.0"));
        assert_eq!(s.broadcast(), ip("192.168.127.255"));
        assert!(s.contains(ip("192.168.127.0")) && !s.is_host(ip("192.168.127.0")));
        assert!(s.is_host(ip("192.168.127.254")));
        assert!(!s.contains(ip("192.168.128.1")));
        let s = Subnet::new(ip("10.1.2.3"), 0).unwrap();
        assert!(s.contains(ip("1.2.3.4")));
        assert_eq!(s.netmask(), ip("0.0.0.0"));
        assert_eq!(
            Subnet::new(ip("10.0.0.0"), 31),
            Err(SubnetError::PrefixTooLong(31))
        );
        assert_eq!("10.0.0.0".parse::<Subnet>(), Err(SubnetError::Syntax));
        assert_eq!("10.0.0.0/x".parse::<Subnet>(), Err(SubnetError::Syntax));
    }

    #[test]
    fn default_is_valid() {
        assert!(Config::default().validate().unwrap().is_empty());
    }

    #[test]
    fn invalid_configs_are_refused() {
        let check = |f: fn(&mut Config)| {
            let mut c = Config::default();
            f(&mut c);
            c.validate().unwrap_err()
        };
        assert!(matches!(
            check(|c| c.server_addr = ip("10.0.0.1")),
            ConfigError::ServerOutsideSubnet(_)
        ));
        assert!(matches!(
            check(|c| c.pool_end = ip("192.168.127.2")),
            ConfigError::BadPool(..)
        ));
        assert!(matches!(
            check(|c| {
                c.subnet = "10.0.0.0/8".parse().unwrap();
                c.server_addr = ip("10.0.0.1");
                c.static_leases.clear();
                c.pool_start = ip("10.0.0.2");
                c.pool_end = ip("10.255.0.0");
            }),
            ConfigError::PoolTooLarge(_)
        ));
        assert!(matches!(
            check(|c| c.static_leases[0].ip = ip("192.168.127.1")),
            ConfigError::BadStaticAddress(_)
        ));
        assert!(matches!(
            check(|c| c.static_leases.push(c.static_leases[0])),
            ConfigError::DuplicateStatic(_)
        ));
        assert!(matches!(
            check(|c| c.dns_servers = vec![ip("1.1.1.1"); 9]),
            ConfigError::TooManyServers
        ));
        assert!(matches!(
            check(|c| c.search_domains = vec!["a..b".into()]),
            ConfigError::BadSearchDomain(_)
        ));
        assert!(matches!(
            check(|c| c.domain_name = Some(String::new())),
            ConfigError::BadDomainName
        ));
        assert!(matches!(
            check(|c| c.mtu = Some(67)),
            ConfigError::MtuTooSmall(67)
        ));
        assert!(matches!(
            check(|c| c.lease_time = Duration::ZERO),
            ConfigError::BadLeaseTime
        ));
        assert!(matches!(check(|c| c.max_offers = 0), ConfigError::NoOffers));
        assert!(matches!(
            check(|c| c.max_offers_per_mac = 0),
            ConfigError::NoOffers
        ));
    }
}
