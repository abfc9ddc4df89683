//! What the DNS targets share: a resolver as the gateway runs it, with gvproxy's local zones
//! and one upstream on loopback.

use std::net::{Ipv4Addr, SocketAddr};

use dns::{Resolver, ResolverConfig, Zones};

/// The upstream every forwarded query goes to.
pub const UPSTREAM: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 53);

/// A resolver forwarding to [`UPSTREAM`], answers cut at 512 bytes over UDP, and gvproxy's
/// default zones for the gateway (192.168.127.1) and the host (192.168.127.254).
pub fn resolver() -> (Resolver<u8>, Zones) {
    let zones = Zones::gvproxy_defaults(
        Ipv4Addr::new(192, 168, 127, 1),
        Ipv4Addr::new(192, 168, 127, 254),
    );
    let resolver = Resolver::new(ResolverConfig {
        upstreams: vec![UPSTREAM],
        max_reply: 512,
        ..ResolverConfig::default()
    });
    (resolver, zones)
}
