//! The gateway as a router hop (RFC 1812 §5.3.1, RFC 8200 §3): a guest's packet to an
//! address beyond the gateway whose TTL or hop limit is 1 or 0 would reach 0 here, so it is
//! answered with ICMP Time Exceeded, code 0 (RFC 792), or ICMPv6 Time Exceeded, code 0
//! (RFC 4443 §3.3), quoting it, instead of leaving as a flow. Packets with more go on as
//! flows and the forwarder hands the rest of their hop count to the host socket, so a guest's
//! `traceroute` sees the gateway and then the real hops.
//!
//! Not answered: packets to the gateway itself, to a multicast group (the multicast relay
//! keeps the guest's TTL), and ICMP errors (RFC 1122 §3.2.2, RFC 4443 §2.4(e)).

use std::net::IpAddr;

use stack::ingress::{FlowL4, FlowPacket, IpHeader};
use stack::wire::{
    EtherType, Icmpv4Packet, Icmpv4Repr, Icmpv4TimeExceeded, Icmpv6Repr, Icmpv6TimeExceeded,
    IpProtocol, Ipv4Packet, ethernet, ipv4, ipv6,
};

use super::{DEFAULT_TTL, Gateway, Outcome};

/// The ICMP error header before the quote.
const ICMP_ERROR_HEADER_LEN: usize = 8;
/// RFC 4443 §2.4(c): an ICMPv6 error must not exceed the minimum IPv6 MTU.
const MIN_MTU_V6: usize = 1280;

impl Gateway {
    /// The Time Exceeded that answers `flow`, from the frame `frame`, if its hop count runs
    /// out at the gateway. See the module docs.
    pub(super) fn hop_limit_exceeded(
        &mut self,
        frame: &[u8],
        flow: &FlowPacket,
    ) -> Option<Outcome> {
        if flow.ip.hop_limit() > 1 {
            return None;
        }
        let is_error = !matches!(
            flow.l4,
            FlowL4::Tcp(_) | FlowL4::Udp(_) | FlowL4::IcmpEcho { request: true, .. }
        );
        let dst = flow.key.remote.ip();
        let ours = match dst {
            IpAddr::V4(d) => d == self.ip,
            IpAddr::V6(d) => self.owned6.contains(&d),
        };
        if is_error || ours || dst.is_multicast() {
            return None;
        }
        let packet = frame.get(ethernet::HEADER_LEN..)?;
        let mac = flow.eth.src_addr;
        let reply = match flow.ip {
            IpHeader::V4(ip) => {
                // RFC 792: the IP header and the first 64 bits of the datagram's data.
                let header = Ipv4Packet::new_checked(packet).ok()?.header_len();
                let quote = packet.get(..packet.len().min(usize::from(header) + 8))?;
                let icmp = Icmpv4Repr::TimeExceeded {
                    reason: Icmpv4TimeExceeded::TtlExpired,
                    data: quote,
                };
                let reply =
                    self.ipv4_repr(self.ip, ip.src_addr, IpProtocol::Icmp, icmp.buffer_len());
                self.build(mac, EtherType::Ipv4, reply.total_len(), |body| {
                    let Some((header, payload)) = body.split_at_mut_checked(ipv4::HEADER_LEN)
                    else {
                        return;
                    };
                    icmp.emit(&mut Icmpv4Packet::new_unchecked(payload));
                    reply.emit(&mut Ipv4Packet::new_unchecked(header));
                })
            }
            IpHeader::V6(ip) => {
                let room = self.mtu.min(MIN_MTU_V6) - ipv6::HEADER_LEN - ICMP_ERROR_HEADER_LEN;
                let quote = packet.get(..packet.len().min(room))?;
                let icmp = Icmpv6Repr::TimeExceeded {
                    reason: Icmpv6TimeExceeded::HopLimitExceeded,
                    invoking: quote,
                };
                // From an address of the guest's scope: the link-local one for a link-local
                // source, else the gateway's in the prefix where there is one.
                let src = match self.ipv6_address() {
                    Some(global) if !ip.src_addr.is_unicast_link_local() => global,
                    _ => self.link_local(),
                };
                self.icmpv6_frame(mac, src, ip.src_addr, DEFAULT_TTL, &icmp)
            }
        };
        self.counters.hop_limit_exceeded += 1;
        Some(Outcome::Reply(reply))
    }
}
