//! Guests' UDP to IP multicast groups: with the relay on, such a datagram is a flow to its
//! group, which the forwarder sends to the same group and port from a host socket (RFC 1112
//! hosts on the host's side receive it); otherwise, and for groups the link's own protocols
//! use, it is dropped.

use std::net::IpAddr;

use stack::ingress::{DropReason, FlowL4, FlowPacket};

use super::{Gateway, Outcome};

/// Whether a guest's datagrams to `group` may be relayed to the host. Not: the link's own
/// control groups — 224.0.0.1 and .2 (all systems, all routers), 224.0.0.22 (IGMPv3), and
/// for IPv6 the reserved and interface-local scopes, ff02::1, ::2, ::16 (MLDv2), ::1:2
/// (DHCPv6) and the solicited-node groups (Neighbor Discovery). Everything else, mDNS and
/// SSDP included, is.
pub fn relayable(group: IpAddr) -> bool {
    match group {
        IpAddr::V4(g) => g.is_multicast() && !matches!(g.octets(), [224, 0, 0, 1 | 2 | 22]),
        IpAddr::V6(g) => {
            let scope = g.octets().get(1).map_or(0, |b| b & 0x0f);
            let [s0, s1, s2, s3, s4, s5, s6, s7] = g.segments();
            let link = s0 == 0xff02 && [s1, s2, s3, s4] == [0; 4];
            let control = link
                && ((s5 == 0 && s6 == 0 && matches!(s7, 1 | 2 | 0x16))
                    || (s5 == 0 && s6 == 1 && s7 == 2)
                    || (s5 == 1 && s6 >> 8 == 0xff));
            g.is_multicast() && scope > 1 && !control
        }
    }
}

impl Gateway {
    /// A guest's packet to a multicast group: a flow for the relay, or dropped.
    pub(super) fn multicast_flow(&self, flow: FlowPacket) -> Outcome {
        let udp = matches!(flow.l4, FlowL4::Udp(_));
        if self.multicast_relay && udp && relayable(flow.key.remote.ip()) {
            Outcome::Flow(flow)
        } else {
            Outcome::Dropped(DropReason::BroadcastToNonService)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_groups_are_relayed() {
        let yes = [
            "239.1.2.3",
            "224.0.0.251",
            "239.255.255.250",
            "ff15::1:2",
            "ff02::fb",
            "ff05::c",
        ];
        let no = [
            "224.0.0.1",
            "224.0.0.22",
            "10.0.0.1",
            "ff02::1",
            "ff02::16",
            "ff02::1:2",
            "ff02::1:ff00:1234",
            "ff01::1",
            "fd00::1",
        ];
        for g in yes {
            assert!(relayable(g.parse().unwrap()), "{g}");
        }
        for g in no {
            assert!(!relayable(g.parse().unwrap()), "{g}");
        }
    }
}
