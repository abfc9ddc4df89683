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
//! - [`sys`]: the one `poll(2)` links wait in (a hang-up is the link gone, never "not ready"),
//!   and the open-file limit.
//! - [`link`]: the transports (TAP, QEMU stream, HTTP `/connect`, stdio, vpnkit, vfkit, bess),
//!   each a port factory serving many guests.
//! - [`netlink`]: rtnetlink (links, addresses, routes, veth pairs) and sock_diag (listening
//!   sockets) for the namespace a socket was opened in.
//! - [`auto_forward`]: automatic port forwarding — the registry of forwards guests' listening
//!   ports get on the host's loopback, its API, and the watcher that feeds it.
//! - [`guest`]: `host-switch guest`, the guest side (a TAP attached to host-switch, its own
//!   DHCP lease, `--setup`'s namespace, veth pair and relay).
//! - [`gvconfig`]: gvproxy's `-config` YAML file, with gvproxy's meaning; [`leases`]: the
//!   static DHCP leases and the address a configured TAP takes, never two guests on one.
//! - [`ssh_forward`]: `-forward-sock`, unix sockets carried over SSH into the guest.
//! - [`metrics`]: `GET /metrics`, every `/stats` number in Prometheus text.
//! - [`pcap_rotate`]: the capture file's size limit; [`watch`]: `--netns PID`'s holder,
//!   `--exit-fd` and `--ready-fd`.

pub mod api;
pub mod auto_forward;
pub mod cli;
pub mod forward;
pub mod framing;
pub mod gateway;
pub mod guest;
pub mod gvconfig;
pub mod launch;
pub mod leases;
pub mod link;
pub mod mac_table;
pub mod metrics;
pub mod netlink;
pub mod netns;
pub mod pcap;
pub mod pcap_rotate;
pub mod port;
pub mod runtime;
pub mod snoop;
pub mod ssh_forward;
pub mod sys;
pub mod tap;
pub mod watch;

#[cfg(test)]
#[path = "../tests/skip/mod.rs"]
mod skip;

pub use forward::{Decision, DropReason, Switch, SwitchConfig};
pub use mac_table::PortId;
pub use runtime::{Runtime, RuntimeConfig, Stats};
