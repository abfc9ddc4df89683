//! The guest's TTL / hop limit, carried to the host socket per datagram, so that a guest's
//! `traceroute` sees the real path: the gateway is one hop (it answers a TTL of 1 itself,
//! see the gateway's `hop_limit` module), so a unicast datagram leaves with the guest's TTL
//! less one; a multicast one (relayed, not routed) with the guest's TTL unchanged. A socket
//! remembers the value it has, so the option is only set when it changes.

use std::os::fd::AsRawFd;

use stack::ingress::FlowPacket;

use crate::sys;

/// What a host socket's datagrams leave with; 0: the kernel's default, not set yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Hops {
    unicast: u8,
    multicast: u8,
}

impl Hops {
    /// Sets the socket's TTL or hop limit for `packet`'s datagram to `dst_multicast` (or not),
    /// if it differs from what the socket has. A failure leaves the kernel's default.
    pub(crate) fn carry(
        &mut self,
        socket: &impl AsRawFd,
        v6: bool,
        packet: &FlowPacket,
        dst_multicast: bool,
    ) {
        let guest = packet.ip.hop_limit();
        let (want, have) = if dst_multicast {
            (guest.max(1), &mut self.multicast)
        } else {
            (guest.saturating_sub(1).max(1), &mut self.unicast)
        };
        if *have != want && sys::set_hop_limit(socket, v6, dst_multicast, want).is_ok() {
            *have = want;
        }
    }
}
