//! What IPv4 and IPv6 share: protocol numbers and the address pair that upper layers need
//! for their pseudo-header checksum.

use super::checksum::{self, Sum};
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An IPv4 protocol or IPv6 next-header number (IANA "Assigned Internet Protocol Numbers").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// IPv6 hop-by-hop options (RFC 8200 §4.3).
    HopByHop,
    Icmp,
    Tcp,
    Udp,
    /// IPv6 routing header (RFC 8200 §4.4).
    Ipv6Route,
    /// IPv6 fragment header (RFC 8200 §4.5).
    Ipv6Frag,
    Icmpv6,
    /// IPv6 "no next header" (RFC 8200 §4.7).
    Ipv6NoNxt,
    /// IPv6 destination options (RFC 8200 §4.6).
    Ipv6Opts,
    Unknown(u8),
}

impl From<u8> for Protocol {
    fn from(value: u8) -> Self {
        match value {
            0 => Protocol::HopByHop,
            1 => Protocol::Icmp,
            6 => Protocol::Tcp,
            17 => Protocol::Udp,
            43 => Protocol::Ipv6Route,
            44 => Protocol::Ipv6Frag,
            58 => Protocol::Icmpv6,
            59 => Protocol::Ipv6NoNxt,
            60 => Protocol::Ipv6Opts,
            other => Protocol::Unknown(other),
        }
    }
}

impl From<Protocol> for u8 {
    fn from(value: Protocol) -> Self {
        match value {
            Protocol::HopByHop => 0,
            Protocol::Icmp => 1,
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Ipv6Route => 43,
            Protocol::Ipv6Frag => 44,
            Protocol::Icmpv6 => 58,
            Protocol::Ipv6NoNxt => 59,
            Protocol::Ipv6Opts => 60,
            Protocol::Unknown(other) => other,
        }
    }
}

/// The source and destination of an IP packet, of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Addresses {
    V4 { src: Ipv4Addr, dst: Ipv4Addr },
    V6 { src: Ipv6Addr, dst: Ipv6Addr },
}

impl Addresses {
    pub const fn src(&self) -> IpAddr {
        match *self {
            Addresses::V4 { src, .. } => IpAddr::V4(src),
            Addresses::V6 { src, .. } => IpAddr::V6(src),
        }
    }

    pub const fn dst(&self) -> IpAddr {
        match *self {
            Addresses::V4 { dst, .. } => IpAddr::V4(dst),
            Addresses::V6 { dst, .. } => IpAddr::V6(dst),
        }
    }

    /// The same pair seen from the other end.
    #[must_use]
    pub const fn reversed(&self) -> Addresses {
        match *self {
            Addresses::V4 { src, dst } => Addresses::V4 { src: dst, dst: src },
            Addresses::V6 { src, dst } => Addresses::V6 { src: dst, dst: src },
        }
    }

    /// The sum of the pseudo-header for an upper-layer packet of `length` bytes. On IPv4 the
    /// length always fits 16 bits, as it is bounded by the IPv4 total length field.
    pub fn pseudo_header(&self, protocol: Protocol, length: usize) -> Sum {
        match *self {
            Addresses::V4 { src, dst } => {
                checksum::pseudo_header_v4(src, dst, protocol.into(), length as u16)
            }
            Addresses::V6 { src, dst } => {
                checksum::pseudo_header_v6(src, dst, protocol.into(), length as u32)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_numbers_round_trip() {
        for n in 0..=255u8 {
            assert_eq!(u8::from(Protocol::from(n)), n);
        }
    }

    #[test]
    fn reversed_swaps() {
        let a = Addresses::V4 {
            src: Ipv4Addr::new(192, 168, 127, 2),
            dst: Ipv4Addr::new(192, 168, 127, 1),
        };
        assert_eq!(a.reversed().src(), a.dst());
        assert_eq!(a.reversed().reversed(), a);
    }
}
