//! ICMP Time Exceeded, code 1, for datagrams whose reassembly timed out (see the parent
//! module's docs): who may get one, decided as each fragment arrives and kept with the first
//! fragment as its reassembly tag, and the message itself, built when the reassembler gives
//! the datagram up.

use bytes::Bytes;
use stack::frag::{Expired, Key as FragKey};
use stack::wire::{
    EtherType, EthernetAddress, Icmpv4Packet, Icmpv4Repr, Icmpv4TimeExceeded, Icmpv6Repr,
    Icmpv6TimeExceeded, IpProtocol, Ipv4Packet, Ipv4Repr, Ipv6Repr, ipv4, ipv6,
};

use super::{DEFAULT_TTL, Gateway};

impl Gateway {
    /// The reassembly tag of an IPv4 fragment: where a Time Exceeded about its datagram
    /// would go, or 0 for none. Only the first fragment's counts (`stack::frag`), so
    /// `payload` is read as the start of the upper layer.
    pub(super) fn error_tag_v4(&self, mac: EthernetAddress, ip: &Ipv4Repr, payload: &[u8]) -> u64 {
        let (src, dst) = (ip.src_addr, ip.dst_addr);
        // Ingress refused multicast and limited-broadcast destinations for fragments; the
        // subnet's broadcast is only known here (RFC 1122 §3.2.2).
        let served = self.subnet.is_host(src) && !self.owned.contains(&src);
        let unicast_dst = !dst.is_unspecified() && dst != self.subnet.broadcast();
        let about_error = ip.next_header == IpProtocol::Icmp
            && payload.first().is_some_and(|&ty| is_icmpv4_error(ty));
        if served && unicast_dst && !about_error {
            mac_tag(mac)
        } else {
            0
        }
    }

    /// [`Gateway::error_tag_v4`] for IPv6: `ip.next_header` and `payload` are the upper layer
    /// after the extension headers (in a first fragment).
    pub(super) fn error_tag_v6(&self, mac: EthernetAddress, ip: &Ipv6Repr, payload: &[u8]) -> u64 {
        let (src, dst) = (ip.src_addr, ip.dst_addr);
        let served = !src.is_unspecified()
            && !src.is_loopback()
            && src.to_ipv4_mapped().is_none()
            && !self.owned6.contains(&src);
        let unicast_dst = !dst.is_unspecified() && !dst.is_loopback() && !dst.is_multicast();
        // RFC 4443 §2.4(e.1): types below 128 are errors.
        let about_error =
            ip.next_header == IpProtocol::Icmpv6 && payload.first().is_some_and(|&ty| ty < 128);
        if served && unicast_dst && !about_error {
            mac_tag(mac)
        } else {
            0
        }
    }

    /// The next frame the gateway sends unasked: an ICMP or ICMPv6 Time Exceeded, code 1, for
    /// a datagram whose reassembly was abandoned at its timeout after its first fragment came
    /// (see the gateway module's docs). The caller sends these, through the port replies take, until
    /// `None`, after every [`Gateway::handle_timeout`] and [`Gateway::handle_frame`] (which
    /// expires datagrams too).
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        // And the periodic router advertisement, when one is due (`ra`).
        if let Some(advert) = self.poll_router_advert() {
            return Some(advert);
        }
        while let Some(expired) = self.frag.poll_expired() {
            if let Some(frame) = self.time_exceeded(&expired) {
                self.counters.time_exceeded_sent += 1;
                return Some(frame);
            }
        }
        None
    }

    /// The Time Exceeded for `expired`, from its datagram's destination to its source, or
    /// `None` if its first fragment's tag says not to answer.
    fn time_exceeded(&mut self, expired: &Expired) -> Option<Bytes> {
        let mac = tag_mac(expired.tag)?;
        match expired.key {
            FragKey::V4 { src, dst, .. } => {
                let icmp = Icmpv4Repr::TimeExceeded {
                    reason: Icmpv4TimeExceeded::FragReassembly,
                    data: &expired.quote,
                };
                let ip = self.ipv4_repr(dst, src, IpProtocol::Icmp, icmp.buffer_len());
                Some(self.build(mac, EtherType::Ipv4, ip.total_len(), |body| {
                    let Some((header, payload)) = body.split_at_mut_checked(ipv4::HEADER_LEN)
                    else {
                        return;
                    };
                    icmp.emit(&mut Icmpv4Packet::new_unchecked(payload));
                    ip.emit(&mut Ipv4Packet::new_unchecked(header));
                }))
            }
            FragKey::V6 { src, dst, .. } => {
                // The reassembler cut the quote to fit 1280 bytes (RFC 4443 §2.4(c)); a
                // smaller link MTU cuts it further.
                let room = self
                    .mtu
                    .saturating_sub(ipv6::HEADER_LEN + ICMP_ERROR_HEADER_LEN);
                let quote = expired.quote.get(..room).unwrap_or(&expired.quote);
                let icmp = Icmpv6Repr::TimeExceeded {
                    reason: Icmpv6TimeExceeded::FragReassemblyExceeded,
                    invoking: quote,
                };
                Some(self.icmpv6_frame(mac, dst, src, DEFAULT_TTL, &icmp))
            }
        }
    }
}

/// The ICMP and ICMPv6 error header before the quote: type, code, checksum, 4 unused bytes.
const ICMP_ERROR_HEADER_LEN: usize = 8;

/// RFC 1122 §3.2.2: ICMPv4 error types (destination unreachable, source quench, redirect,
/// time exceeded, parameter problem), about which no error is sent.
const fn is_icmpv4_error(ty: u8) -> bool {
    matches!(ty, 3 | 4 | 5 | 11 | 12)
}

/// A reassembly tag naming a unicast MAC (`stack::frag` keeps it with the first fragment); 0,
/// which no unicast MAC gives, means "send no error".
pub(super) fn mac_tag(mac: EthernetAddress) -> u64 {
    if !mac.is_unicast() || mac == EthernetAddress([0; 6]) {
        return 0;
    }
    let [a, b, c, d, e, f] = mac.0;
    u64::from_be_bytes([0, 0, a, b, c, d, e, f])
}

/// The MAC a [`mac_tag`] names.
fn tag_mac(tag: u64) -> Option<EthernetAddress> {
    let [_, _, a, b, c, d, e, f] = tag.to_be_bytes();
    let mac = EthernetAddress([a, b, c, d, e, f]);
    (tag != 0 && mac.is_unicast()).then_some(mac)
}
