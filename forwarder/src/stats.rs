//! The forwarder's counters: one [`Counters`] per worker, relaxed atomics written only by
//! that worker (and read by [`Counters::snapshot`]); [`ForwarderStats`] sums them.
//!
//! Every bound of the forwarder has a `*_limit` counter that says how often it was hit.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// One worker's counters.
        #[derive(Debug, Default)]
        pub struct Counters {
            $($(#[$doc])* pub $name: AtomicU64,)*
        }

        /// A snapshot, or the sum over every worker.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
        pub struct ForwarderStats {
            $($(#[$doc])* pub $name: u64,)*
        }

        impl Counters {
            pub fn snapshot(&self) -> ForwarderStats {
                ForwarderStats {
                    $($name: self.$name.load(Ordering::Relaxed),)*
                }
            }
        }

        impl ForwarderStats {
            pub fn add(&mut self, other: &ForwarderStats) {
                $(self.$name = self.$name.wrapping_add(other.$name);)*
            }
        }
    };
}

counters! {
    /// TCP connections opened (outbound, inbound and API), ever.
    tcp_total,
    /// TCP connections live now (outbound, inbound and API; those in TIME-WAIT are in
    /// `tcp_time_wait` instead; those still handing their host what a gone or finished guest
    /// sent count until done): what `limits.tcp_flows.open` counts.
    tcp_open,
    /// Host connects in progress now.
    tcp_connecting,
    /// Host connects refused by the peer (RST to the guest).
    tcp_refused,
    /// Host connects that timed out (RST to the guest).
    tcp_connect_timeouts,
    /// Host connects that failed as unreachable (ICMP unreachable to the guest).
    tcp_unreachable,
    /// SYNs refused because too many connects were in flight.
    tcp_connect_limit,
    /// SYNs refused because their guest held its share of the connects in flight.
    tcp_connect_guest_share,
    /// SYNs refused because their destination held its share of the connects in flight.
    tcp_connect_destination_share,
    /// SYNs refused because the TCP table was full (live flows at the bound, no TIME-WAIT
    /// flow to reclaim).
    tcp_flow_limit,
    /// SYNs refused because their guest had its most live TCP flows.
    tcp_guest_limit,
    /// Flows in TIME-WAIT now.
    tcp_time_wait,
    /// TIME-WAIT flows closed early to make room in a full table.
    tcp_time_wait_reclaimed,
    /// RSTs sent for segments of no connection.
    tcp_resets_sent,
    /// Segments of no connection with neither SYN, ACK nor RST (FIN, NULL and Xmas scans),
    /// and SYN+FIN, dropped unanswered as a listening socket drops them (RFC 9293 §3.10.7.2).
    tcp_probes_dropped,
    /// Segments of a connection with URG set: their urgent byte is written to the host socket
    /// inline, in its place in the stream, not with `MSG_OOB` (RFC 6093 §6).
    tcp_urgent,
    /// Host sockets closed with SO_LINGER 0 (the guest reset, retransmissions gave up, or the
    /// guest's stream was cut short at exit or teardown).
    tcp_host_resets,
    /// Flows wound down at exit or because their guest went away whose stream to the host
    /// was complete: every acknowledged byte written, then FIN.
    tcp_teardown_completed,
    /// Flows wound down at exit or because their guest went away whose stream to the host
    /// was cut short (the guest had not sent FIN, or bytes were left): the host peer got RST.
    tcp_teardown_reset,
    /// Bytes acknowledged to guests that never reached the host (still buffered, or in the
    /// host socket unacknowledged, when it was reset) because host-switch exited first (its
    /// drain deadline passed, or a second signal); their host peers got RST.
    tcp_dropped_bytes_exit,
    /// Likewise because the guest's link went away (or it stopped answering) and the host
    /// did not take them within the drain timeout.
    tcp_dropped_bytes_guest_gone,
    /// Likewise because the host socket failed (the guest got RST).
    tcp_dropped_bytes_host_error,
    /// Likewise because the guest reset the connection (the host peer got RST).
    tcp_dropped_bytes_guest_reset,
    /// Likewise for a connection closed on the guest's side whose host took nothing more for
    /// the linger time (60 s), or that a new connection replaced.
    tcp_dropped_bytes_linger,
    /// UDP mappings created, ever.
    udp_total,
    /// UDP mappings live now.
    udp_open,
    /// UDP mappings reaped after their idle timeout.
    udp_expired,
    /// Datagrams dropped because the UDP table was full.
    udp_flow_limit,
    /// Datagrams dropped because their guest had its most UDP mappings.
    udp_guest_limit,
    /// ICMP port unreachable sent to guests for ECONNREFUSED.
    udp_port_unreachable,
    /// Datagrams a host socket would not take (its buffer full): dropped.
    udp_send_dropped,
    /// Echo requests forwarded, ever.
    icmp_total,
    /// Echo requests awaiting a reply now.
    icmp_open,
    /// Echo requests given up on.
    icmp_expired,
    /// Echo requests dropped because the table was full.
    icmp_limit,
    /// Echo requests dropped because no ping or raw socket could be opened.
    icmp_no_socket,
    /// Flows (TCP, UDP mappings, pending echo requests, connects in flight) of guests whose
    /// link went away. UDP, echo and connecting flows go at once; a TCP flow first writes
    /// what the guest had acknowledged, then its host peer gets FIN if the guest had
    /// finished its stream, RST otherwise (see `tcp_teardown_*`).
    flows_guest_gone,
    /// Flows refused by NAT policy.
    nat_refused,
    /// Packets dropped because their IPv4 source was outside the guest subnet (BCP 38
    /// ingress filtering).
    foreign_source,
    /// Packets of a kind the forwarder does not forward (ICMP errors from guests, …).
    unsupported,
    /// Frames sent to guests.
    frames_to_guest,
    /// Bytes of those frames.
    bytes_to_guest,
    /// Frames to guests the switch dropped (its queue full).
    frames_to_guest_dropped,
    /// Payload bytes written to host sockets.
    bytes_to_host,
    /// Payload bytes read from host sockets.
    bytes_from_host,
    /// Inbound connections or peers accepted by port forwards.
    inbound_accepted,
    /// Inbound connections dropped (no room, no port, mixed address families).
    inbound_dropped,
    /// Sends into a guest whose MAC was not known yet: TCP segments held back (the engine
    /// retransmits them), UDP datagrams dropped; each asks for the MAC with ARP (IPv4) or a
    /// neighbour solicitation (IPv6).
    inbound_unresolved,
    /// ARP requests sent from the gateway for guests whose MAC was not known.
    arp_requests,
    /// Neighbour solicitations sent from the gateway for guests' IPv6 addresses whose MAC
    /// was not known.
    neighbor_solicits,
    /// Guest addresses not remembered because the neighbour table was full.
    neighbours_full,
    /// Requests answered by the in-guest API.
    api_requests,
    /// In-guest API requests refused for being larger than `api_max_request` (413).
    api_too_large,
    /// In-guest API connections refused (RST) because `max_api_connections` were open.
    api_connection_limit,
    /// In-guest API connections reset for not finishing within `api_header_timeout`.
    api_timeouts,
    /// Host sockets refused because flows held every descriptor set aside for them
    /// (`max_host_sockets`): TCP SYNs get RST, UDP datagrams and echo requests are dropped.
    descriptor_limit,
    /// `socket()` or `accept()` calls that failed for want of descriptors (`EMFILE`,
    /// `ENFILE`) although the budget allowed one.
    no_descriptors,
    /// ICMP errors from the host's network (unreachable, time exceeded, too big) passed on
    /// to the guest whose datagram or echo request drew them.
    icmp_errors_relayed,
    /// Guest datagrams to multicast groups sent on the host.
    mcast_to_host,
    /// Datagrams received on the host for a group guests joined, relayed to them.
    mcast_to_guest,
    /// Groups joined on the host (ever, and now).
    mcast_joins,
    mcast_groups,
    /// Joins refused because `max_multicast_groups` groups were joined.
    mcast_group_limit,
    /// Group sockets that could not be opened or joined on the host.
    mcast_join_failed,
    /// Host datagrams not relayed in: they came from one of the relay's own sending ports.
    mcast_looped,
    /// Host datagrams not relayed in: too large for the guests' MTU.
    mcast_too_big,
    /// Sending ports not remembered (the bounded set was full).
    mcast_senders_full,
    /// Times the allocator's free memory was handed back to the system (`malloc_trim`):
    /// after a table shrank, after flows freed a step of buffers, or when a worker went
    /// quiet; at most once every 5 s in the process (see the forwarder's `trim` module).
    memory_trims,
    /// Bytes of TCP buffer memory (send and receive rings) the flows held at the last sweep,
    /// after it freed the idle ones: a gauge, summed over the workers.
    tcp_buffer_bytes,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn dec(counter: &AtomicU64) {
        // Gauges are only decremented after an increment by the same worker.
        let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
            Some(v.saturating_sub(1))
        });
    }
}
