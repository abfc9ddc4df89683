//! host-switch's DNS service on the gateway: local zones, and raw forwarding to the host's
//! resolvers. Sans-IO: the runtime's DNS thread owns the sockets and the clock.
//!
//! - [`wire`]: the header and question of a DNS message, and replies built from a query.
//! - [`zone`]: gvproxy-compatible local zones ([`Zones`]), answering the names they own.
//! - [`resolver`]: the query path ([`Resolver`]): local answers, forwarding with remapped
//!   IDs, failover, bounds, timeouts.
//! - [`stream`]: DNS over TCP's 2-byte length prefix: a bounded stream [`stream::Decoder`].
//! - [`api`]: the control API's `/services/dns/{add,all}` handlers.
//! - [`resolv_conf`]: upstreams from `/etc/resolv.conf` and `--dns-upstream`.
#![forbid(unsafe_code)]

pub mod api;
pub mod resolv_conf;
pub mod resolver;
pub mod stream;
pub mod wire;
pub mod zone;

pub use resolver::{Disposition, Resolver, ResolverConfig, ResolverCounters, Transmit, Transport};
pub use zone::{Record, SharedZones, Zone, Zones};
