//! host-switch's DNS service on the gateway: local zones, and raw forwarding to the host's
//! resolvers.
#![forbid(unsafe_code)]
