//! ICMPv6 port unreachable (RFC 4443 §3.1, code 4) for UDP to one of the gateway's IPv6
//! addresses on a port where it offers no service, as a host answers a closed port. The quote
//! is the guest's packet as it came, cut to fit the minimum MTU (RFC 4443 §2.4(c)) and the
//! link's. Not for an unspecified source (RFC 4443 §2.4(e) also rules out multicast
//! destinations and sources, which never get here: the address is ours and ingress refuses
//! multicast sources).

use stack::ingress::{DropReason, Parsed};
use stack::wire::{
    EthernetRepr, Icmpv6DstUnreachable, Icmpv6Repr, Ipv6Packet, Ipv6Repr, ethernet, ipv6,
};

use super::{DEFAULT_TTL, Gateway, Outcome};

/// The ICMPv6 and IPv6 headers before the quote, and the most an error may be (RFC 8200 §5).
const ERROR_HEADERS: usize = 48;
const MIN_MTU: usize = 1280;

impl Gateway {
    pub(super) fn port_unreachable6(
        &mut self,
        eth: EthernetRepr,
        ip: &Ipv6Repr,
        parsed: &Parsed<'_>,
    ) -> Outcome {
        if ip.src_addr.is_unspecified() {
            return Outcome::Dropped(DropReason::InvalidSource);
        }
        // The packet from its fixed header to the end of its payload (not the frame's padding).
        let packet = parsed
            .frame()
            .get(ethernet::HEADER_LEN..)
            .unwrap_or_default();
        let whole = Ipv6Packet::new_checked(packet)
            .map(|p| ipv6::HEADER_LEN + usize::from(p.payload_len()))
            .unwrap_or(packet.len());
        let room = MIN_MTU.min(self.mtu).saturating_sub(ERROR_HEADERS);
        let quote = packet.get(..whole.min(room)).unwrap_or_default();
        let icmp = Icmpv6Repr::DstUnreachable {
            reason: Icmpv6DstUnreachable::PortUnreachable,
            invoking: quote,
        };
        let frame = self.icmpv6_frame(eth.src_addr, ip.dst_addr, ip.src_addr, DEFAULT_TTL, &icmp);
        self.counters.port_unreachable_sent += 1;
        Outcome::Reply(frame)
    }
}
