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
    /// TCP connections open now.
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
    /// Host sockets closed with SO_LINGER 0 (the guest reset, or retransmissions gave up).
    tcp_host_resets,
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
    /// Flows (TCP, UDP mappings, pending echo requests) dropped because their guest's link
    /// went away; its TCP peers on the host got RST.
    flows_guest_gone,
    /// Flows refused by NAT policy.
    nat_refused,
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
    /// retransmits them), UDP datagrams dropped; each asks for the MAC with ARP.
    inbound_unresolved,
    /// ARP requests sent from the gateway for guests whose MAC was not known.
    arp_requests,
    /// Guest addresses not remembered because the neighbour table was full.
    neighbours_full,
    /// Requests answered by the in-guest API.
    api_requests,
    /// In-guest API requests refused for being larger than `api_max_request` (413).
    api_too_large,
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
