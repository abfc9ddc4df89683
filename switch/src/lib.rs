//! host-switch's L2 learning switch, its links, its data plane and control API.
//!
//! The data plane this crate runs ([`runtime`]) is one worker thread per core, each running a
//! frame from the link it was read on to the host socket it is written to, and back, in one
//! call stack (run to completion):
//!
//! ```text
//! worker k (one thread, one mio set: TAP queue k, its stream links, its flows' host sockets)
//!   TAP queue k readable → frames read into one arena (never zeroed; virtio-net header first)
//!     → Out::decide: forward::Switch's decision from this worker's caches
//!     → gateway::Gateway (one parse): ARP, echo, NDP, DHCP answered in place
//!     → forwarder::FlowHandler: the flow's TCP engine / UDP mapping / echo → host socket write
//!   host socket readable → the engine → frame::Framer builds the frame in the worker's own
//!     transmit buffer → written to TAP queue k (super-segments with a GSO header)
//! ```
//!
//! A flow lives on the worker whose queue its first packet came on (the kernel keeps its
//! frames there); handoffs between workers (a frame of a flow another worker owns, a link
//! another worker serves, the DNS service's answers) are bounded, counted and rare.
//!
//! The pieces so far, each sans-IO where it can be:
//! - [`netns`]: run code inside another network namespace without moving the process.
//! - [`tap`]: TAP devices, created in any namespace and optionally configured (slirp4netns
//!   `--configure`); blocking whole-frame reads and writes, raw fd for an event loop.
//! - [`framing`]: length-prefixed stream framing (QEMU 4-byte BE, gvforwarder/vpnkit 2-byte LE),
//!   a bounded decoder fed arbitrary chunks and a `writev` encoder.
//! - [`mac_table`]: the bounded, aged MAC learning table ([`PortId`]s, counters).
//! - [`forward`]: the forwarding decision — [`Switch::handle_frame`] learns the source and says
//!   unicast / flood / drop; the workers share one `Switch` behind a lock their caches spare
//!   them, the gateway is a port with a static MAC.
//! - [`port`]: the contract between links that run threads of their own (stdio, vfkit, bess)
//!   and the data plane: a link attaches one [`port::Port`] per guest, sends its frames in and
//!   drains the frames for it; TAP devices and stream sockets are served inside the loops.
//! - [`pcap`]: capture to a pcap file from any thread, bounded and lock-free per frame.
//! - [`gateway`]: the gateway's own services, sans-IO — ARP, ICMP/ICMPv6 echo, neighbour
//!   advertisements, DHCPv4 — over one parse per frame; everything else leaves as a flow.
//!   It lives in `forwarder` (`forwarder::gateway`), beside the flows it hands packets to,
//!   so that nothing below the binary crate needs it; re-exported here.
//! - [`snoop`]: IGMP and MLD snooping, sans-IO — which ports a multicast frame goes to, a
//!   bounded group table, and the gateway as the link's querier.
//! - [`runtime`]: the running data plane — the workers and the DNS service — behind
//!   [`Runtime::start`], [`Runtime::attacher`], [`Runtime::stats`], [`Runtime::drain`] and
//!   [`Runtime::shutdown`]. The DNS service itself (the DNS thread, guests' DNS over TCP)
//!   lives in `forwarder` (`forwarder::dns_service`); the runtime spawns it and wires its
//!   queues.
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
pub use forwarder::gateway;
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
