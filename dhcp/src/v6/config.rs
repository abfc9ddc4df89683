//! The DHCPv6 server's configuration and its validation.
//!
//! [`Config::for_prefix`] lays a /64 out as host-switch does for IPv4: the gateway at `::1`
//! (the DNS server), the default guest's static lease at `::2`, the dynamic pool from `::100`
//! to `::1ff`; the server's DUID is a DUID-LL of the gateway's MAC (RFC 8415 §11.4).
//! [`Config::validate`] (run by [`Server::new`](super::Server::new)) refuses what the server
//! could not honour.

use core::net::Ipv6Addr;
use core::time::Duration;

use stack::wire::EthernetAddress;

use crate::search::{DomainList, NameError};

use super::message::MAX_DUID_LEN;

/// The most addresses a dynamic pool may hold.
pub const MAX_POOL_SIZE: u128 = 1 << 16;
/// The most DNS servers a reply carries.
pub const MAX_DNS_SERVERS: usize = 8;

/// A fixed address for one MAC: the client whose frames come from it gets this address in
/// its first IA_NA, whatever its DUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StaticLease {
    pub mac: EthernetAddress,
    pub ip: Ipv6Addr,
}

/// What the server hands out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The server identifier.
    pub server_duid: Vec<u8>,
    /// The link's prefix: Confirm checks addresses against it, and every address handed out
    /// lies in it.
    pub prefix: Ipv6Addr,
    pub prefix_len: u8,
    /// First and last address of the dynamic pool.
    pub pool_start: Ipv6Addr,
    pub pool_end: Ipv6Addr,
    /// Addresses never handed out dynamically (the gateway's, the host's).
    pub reserved: Vec<Ipv6Addr>,
    pub static_leases: Vec<StaticLease>,
    /// RFC 3646 option 23.
    pub dns_servers: Vec<Ipv6Addr>,
    /// RFC 3646 option 24.
    pub search_domains: Vec<String>,
    /// An address's preferred and valid lifetimes; T1 and T2 are half and four fifths of
    /// the preferred one (RFC 8415 §21.4's recommendation).
    pub preferred_lifetime: Duration,
    pub valid_lifetime: Duration,
    /// Option 32 in replies to Information-request (RFC 8415 §21.23; default one day).
    pub information_refresh: Duration,
    /// Answer a Solicit with Rapid Commit by committing at once (RFC 8415 §18.3.1).
    pub rapid_commit: bool,
    /// How long an address a client declined stays out of use.
    pub decline_time: Duration,
}

/// Why a configuration is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("server DUID of {0} bytes (2 to 130)")]
    BadDuid(usize),
    #[error("prefix length {0} is not between 1 and 128")]
    BadPrefixLength(u8),
    #[error("pool {0}–{1} is not a range inside the prefix")]
    BadPool(Ipv6Addr, Ipv6Addr),
    #[error("pool of more than {MAX_POOL_SIZE} addresses")]
    PoolTooLarge,
    #[error("static lease {0} is outside the prefix, reserved, or given twice")]
    BadStatic(Ipv6Addr),
    #[error("more than {MAX_DNS_SERVERS} DNS servers")]
    TooManyServers,
    #[error("search domain: {0}")]
    BadSearchDomain(#[from] NameError),
    #[error("lifetimes must be at least 1 s, preferred at most valid, below 2^32 - 1 s")]
    BadLifetime,
}

/// A DUID-LL (RFC 8415 §11.4): type 3, hardware type 1 (Ethernet), the MAC.
pub fn duid_ll(mac: EthernetAddress) -> Vec<u8> {
    let mut duid = vec![0, 3, 0, 1];
    duid.extend_from_slice(&mac.0);
    duid
}

fn mask(prefix_len: u8) -> u128 {
    u128::MAX
        .checked_shl(128 - u32::from(prefix_len.min(128)))
        .unwrap_or(0)
}

/// Whether `addr` lies in `prefix`/`prefix_len`.
pub fn in_prefix(prefix: Ipv6Addr, prefix_len: u8, addr: Ipv6Addr) -> bool {
    let m = mask(prefix_len);
    addr.to_bits() & m == prefix.to_bits() & m
}

/// The address `n` after the start of `prefix`.
pub fn nth(prefix: Ipv6Addr, n: u128) -> Ipv6Addr {
    Ipv6Addr::from_bits(prefix.to_bits().wrapping_add(n))
}

impl Config {
    /// host-switch's layout of a /64 (see the module docs), for `gateway_mac`'s server with
    /// the guest `guest_mac` statically at `::2`.
    pub fn for_prefix(
        prefix: Ipv6Addr,
        gateway_mac: EthernetAddress,
        guest_mac: EthernetAddress,
    ) -> Config {
        let prefix = Ipv6Addr::from_bits(prefix.to_bits() & mask(64));
        Config {
            server_duid: duid_ll(gateway_mac),
            prefix,
            prefix_len: 64,
            pool_start: nth(prefix, 0x100),
            pool_end: nth(prefix, 0x1ff),
            reserved: vec![nth(prefix, 1)],
            static_leases: vec![StaticLease {
                mac: guest_mac,
                ip: nth(prefix, 2),
            }],
            dns_servers: vec![nth(prefix, 1)],
            search_domains: Vec::new(),
            preferred_lifetime: Duration::from_secs(3600),
            valid_lifetime: Duration::from_secs(7200),
            information_refresh: Duration::from_secs(86400),
            rapid_commit: true,
            decline_time: Duration::from_secs(600),
        }
    }

    /// Checks the configuration; returns the search list on success.
    pub fn validate(&self) -> Result<DomainList, ConfigError> {
        if self.server_duid.len() < 2 || self.server_duid.len() > MAX_DUID_LEN {
            return Err(ConfigError::BadDuid(self.server_duid.len()));
        }
        if self.prefix_len == 0 || self.prefix_len > 128 {
            return Err(ConfigError::BadPrefixLength(self.prefix_len));
        }
        let inside = |a| in_prefix(self.prefix, self.prefix_len, a);
        let (start, end) = (self.pool_start.to_bits(), self.pool_end.to_bits());
        if start > end || !inside(self.pool_start) || !inside(self.pool_end) {
            return Err(ConfigError::BadPool(self.pool_start, self.pool_end));
        }
        if end - start >= MAX_POOL_SIZE {
            return Err(ConfigError::PoolTooLarge);
        }
        let mut seen = std::collections::HashSet::new();
        for s in &self.static_leases {
            if !inside(s.ip) || self.reserved.contains(&s.ip) || !seen.insert(s.ip) {
                return Err(ConfigError::BadStatic(s.ip));
            }
        }
        if self.dns_servers.len() > MAX_DNS_SERVERS {
            return Err(ConfigError::TooManyServers);
        }
        let (preferred, valid) = (
            self.preferred_lifetime.as_secs(),
            self.valid_lifetime.as_secs(),
        );
        if preferred == 0 || preferred > valid || valid >= u64::from(u32::MAX) {
            return Err(ConfigError::BadLifetime);
        }
        Ok(DomainList::new(&self.search_domains)?)
    }
}

/// The names of `list` in DNS wire format without compression, as DHCPv6 carries them
/// (RFC 8415 §10, RFC 3646 §4).
pub fn uncompressed(list: &DomainList) -> Vec<u8> {
    let mut out = Vec::new();
    for name in list.names() {
        for label in name.split('.').filter(|l| !l.is_empty()) {
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
        out.push(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const GW: EthernetAddress = EthernetAddress([0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xdd]);
    const GUEST: EthernetAddress = EthernetAddress([0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xee]);

    fn prefix() -> Ipv6Addr {
        "fd00:127::".parse().unwrap()
    }

    #[test]
    fn layout_and_validation() {
        let c = Config::for_prefix(prefix(), GW, GUEST);
        assert!(c.validate().unwrap().is_empty());
        assert_eq!(
            c.server_duid,
            [0, 3, 0, 1, 0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xdd]
        );
        assert_eq!(
            c.static_leases[0].ip,
            "fd00:127::2".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(c.pool_start, "fd00:127::100".parse::<Ipv6Addr>().unwrap());
        let bad = |f: fn(&mut Config)| {
            let mut c = Config::for_prefix(prefix(), GW, GUEST);
            f(&mut c);
            c.validate().unwrap_err()
        };
        assert!(matches!(
            bad(|c| c.server_duid.clear()),
            ConfigError::BadDuid(0)
        ));
        assert!(matches!(
            bad(|c| c.pool_end = "fd00:128::1".parse().unwrap()),
            ConfigError::BadPool(..)
        ));
        assert!(matches!(
            bad(|c| c.pool_end = nth(c.prefix, 0x100 + (1 << 20))),
            ConfigError::PoolTooLarge
        ));
        assert!(matches!(
            bad(|c| c.static_leases[0].ip = nth(c.prefix, 1)),
            ConfigError::BadStatic(_)
        ));
        assert!(matches!(
            bad(|c| c.valid_lifetime = Duration::from_secs(1)),
            ConfigError::BadLifetime
        ));
        assert!(matches!(
            bad(|c| c.search_domains = vec!["a..b".into()]),
            ConfigError::BadSearchDomain(_)
        ));
    }

    #[test]
    fn names_are_written_uncompressed() {
        let list = DomainList::new(["containers.internal", "docker.internal."]).unwrap();
        let wire = uncompressed(&list);
        let mut want = b"\x0acontainers\x08internal\x00".to_vec();
        want.extend_from_slice(b"\x06docker\x08internal\x00");
        assert_eq!(wire, want);
        assert!(in_prefix(prefix(), 64, "fd00:127::1234".parse().unwrap()));
        assert!(!in_prefix(prefix(), 64, "fd00:128::1".parse().unwrap()));
    }
}
