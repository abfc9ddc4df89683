//! host-switch's L2 learning switch, its links and control API.
//!
//! - [`netns`]: run code inside another network namespace without moving the process.
//! - [`tap`]: TAP devices, created in any namespace and optionally configured.
//! - [`pcap`]: capture to a pcap file from any thread, bounded and lock-free per frame.
//! - [`mac_table`]: the bounded, aged MAC learning table.
//! - [`forward`]: the sans-IO forwarding decision (unicast / flood / drop).
//! - [`framing`]: length-prefixed stream framing (QEMU 4-byte BE, gvforwarder/vpnkit 2-byte LE).

pub mod forward;
pub mod framing;
pub mod mac_table;
pub mod netns;
pub mod pcap;
pub mod tap;
