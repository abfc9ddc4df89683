//! host-switch's L2 learning switch, its links and control API.
//!
//! The frame pipeline this crate builds, one thread per box, bounded crossbeam channels between
//! them (a full channel drops and counts, never blocks) and no lock on the per-frame path:
//!
//! ```text
//! link rx threads ──► switch thread ──► gateway ingress ──► workers (by flow hash)
//!  (tap, framing)     (forward::Switch,   (one parse)          │
//!        ▲             pcap::PcapSink)                          │
//!        └──────────── link tx ◄────────────────────────────────┘
//! ```
//!
//! The pieces so far, each sans-IO where it can be:
//! - [`netns`]: run code inside another network namespace without moving the process.
//! - [`tap`]: TAP devices, created in any namespace and optionally configured (slirp4netns
//!   `--configure`); blocking whole-frame reads and writes, raw fd for an event loop.
//! - [`framing`]: length-prefixed stream framing (QEMU 4-byte BE, gvforwarder/vpnkit 2-byte LE),
//!   a bounded decoder fed arbitrary chunks and a `writev` encoder.
//! - [`mac_table`]: the bounded, aged MAC learning table ([`PortId`]s, counters).
//! - [`forward`]: the forwarding decision — [`Switch::handle_frame`] learns the source and says
//!   unicast / flood / drop; one thread owns the `Switch`, the gateway is a port with a static MAC.
//! - [`port`]: the contract between links and the switch thread: a link attaches one
//!   [`port::Port`] per guest, sends its frames in and drains the frames for it.
//! - [`pcap`]: capture to a pcap file from any thread, bounded and lock-free per frame.
//! - [`gateway`]: the gateway's own services, sans-IO — ARP, ICMP/ICMPv6 echo, neighbour
//!   advertisements, DHCPv4 — over one parse per frame; everything else leaves as a flow.
//! - [`snoop`]: IGMP and MLD snooping, sans-IO — which ports a multicast frame goes to, a
//!   bounded group table, and the gateway as the link's querier.
//! - [`runtime`]: the running pipeline — switch thread, gateway thread, worker pool — behind
//!   [`Runtime::start`], [`Runtime::attacher`], [`Runtime::stats`] and [`Runtime::shutdown`].
//! - [`link`]: the transports (TAP, QEMU stream, HTTP `/connect`, stdio, vpnkit, vfkit, bess),
//!   each a port factory serving many guests.

pub mod api;
pub mod cli;
pub mod forward;
pub mod framing;
pub mod gateway;
pub mod launch;
pub mod link;
pub mod mac_table;
pub mod netns;
pub mod pcap;
pub mod port;
pub mod runtime;
pub mod snoop;
pub mod tap;

pub use forward::{Decision, DropReason, Switch, SwitchConfig};
pub use mac_table::PortId;
pub use runtime::{Runtime, RuntimeConfig, Stats};
