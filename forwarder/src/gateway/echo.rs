//! Echo replies (RFC 792, RFC 4443 §4.2): the request's identifier, sequence number and data
//! back to its sender, TTL 64, with the request's TOS or traffic class (as Linux's
//! `icmp_reply` and `icmpv6_echo_reply` reflect it). A reply longer than the link MTU (its
//! request was reassembled from fragments, or came in an oversized frame) goes out as
//! fragments (RFC 791 §3.2, RFC 8200 §4.5), as Linux answers.

use bytes::Bytes;
use stack::wire::{
    EtherType, EthernetAddress, EthernetRepr, Icmpv4Packet, Icmpv4Repr, Icmpv6Packet, Icmpv6Repr,
    IpAddresses, IpProtocol, Ipv4Packet, Ipv4Repr, Ipv6FragmentHeader, Ipv6FragmentRepr,
    Ipv6Packet, Ipv6Repr, ipv4, ipv6,
};

use super::{DEFAULT_TTL, Gateway, Outcome};

impl Gateway {
    pub(super) fn echo_reply(
        &mut self,
        eth: EthernetRepr,
        req: &Ipv4Repr,
        ident: u16,
        seq_no: u16,
        data: &[u8],
    ) -> Outcome {
        let icmp = Icmpv4Repr::EchoReply {
            ident,
            seq_no,
            data,
        };
        let ip = Ipv4Repr {
            dscp: req.dscp,
            ecn: req.ecn,
            ..self.ipv4_repr(
                req.dst_addr,
                req.src_addr,
                IpProtocol::Icmp,
                icmp.buffer_len(),
            )
        };
        if ip.total_len() > self.mtu {
            let mut upper = vec![0u8; icmp.buffer_len()];
            icmp.emit(&mut Icmpv4Packet::new_unchecked(&mut upper[..]));
            self.counters.echo_replies += 1;
            return Outcome::Replies(self.ipv4_fragments(eth.src_addr, ip, &upper));
        }
        let frame = self.build(eth.src_addr, EtherType::Ipv4, ip.total_len(), |body| {
            let Some((header, payload)) = body.split_at_mut_checked(ipv4::HEADER_LEN) else {
                return;
            };
            icmp.emit(&mut Icmpv4Packet::new_unchecked(payload));
            ip.emit(&mut Ipv4Packet::new_unchecked(header));
        });
        self.counters.echo_replies += 1;
        Outcome::Reply(frame)
    }

    pub(super) fn echo6_reply(
        &mut self,
        eth: EthernetRepr,
        req: &Ipv6Repr,
        ident: u16,
        seq_no: u16,
        data: &[u8],
    ) -> Outcome {
        let reply = Icmpv6Repr::EchoReply {
            ident,
            seq_no,
            data,
        };
        self.counters.echo_replies += 1;
        if ipv6::HEADER_LEN + reply.buffer_len() > self.mtu {
            let (src, dst) = (req.dst_addr, req.src_addr);
            let mut upper = vec![0u8; reply.buffer_len()];
            let addrs = IpAddresses::V6 { src, dst };
            reply.emit(&mut Icmpv6Packet::new_unchecked(&mut upper[..]), &addrs);
            let ip = Ipv6Repr {
                src_addr: src,
                dst_addr: dst,
                next_header: IpProtocol::Ipv6Frag,
                payload_len: 0,
                hop_limit: DEFAULT_TTL,
                dscp: req.dscp,
                ecn: req.ecn,
                flow_label: 0,
            };
            return Outcome::Replies(self.ipv6_fragments(
                eth.src_addr,
                ip,
                IpProtocol::Icmpv6,
                &upper,
            ));
        }
        let frame = self.icmpv6_frame_tc(
            eth.src_addr,
            (req.dst_addr, req.src_addr),
            DEFAULT_TTL,
            (req.dscp, req.ecn),
            &reply,
        );
        Outcome::Reply(frame)
    }

    /// `upper` (an upper-layer message, checksum filled in) from the gateway as IPv6
    /// fragments that each fit the MTU (RFC 8200 §4.5): `ip`'s fixed header, a fragment header,
    /// a multiple of 8 bytes of `upper` (the last piece excepted).
    fn ipv6_fragments(
        &mut self,
        dst_mac: EthernetAddress,
        ip: Ipv6Repr,
        next_header: IpProtocol,
        upper: &[u8],
    ) -> Vec<Bytes> {
        self.ident6 = self.ident6.wrapping_add(1);
        let ident = self.ident6;
        let fixed = ipv6::HEADER_LEN + ipv6::FRAGMENT_HEADER_LEN;
        let step = (self.mtu.saturating_sub(fixed) / 8 * 8).max(8);
        let mut out = Vec::with_capacity(upper.len().div_ceil(step));
        for (i, chunk) in upper.chunks(step).enumerate() {
            let start = i.saturating_mul(step);
            let header = Ipv6FragmentRepr {
                next_header,
                offset: u16::try_from(start).unwrap_or(u16::MAX),
                more_frags: start.saturating_add(chunk.len()) < upper.len(),
                ident,
            };
            let ip = Ipv6Repr {
                payload_len: ipv6::FRAGMENT_HEADER_LEN + chunk.len(),
                ..ip
            };
            let len = ipv6::HEADER_LEN + ip.payload_len;
            out.push(self.build(dst_mac, EtherType::Ipv6, len, |body| {
                let Some((fixed_part, rest)) = body.split_at_mut_checked(ipv6::HEADER_LEN) else {
                    return;
                };
                let Some((frag, data)) = rest.split_at_mut_checked(ipv6::FRAGMENT_HEADER_LEN)
                else {
                    return;
                };
                data.copy_from_slice(chunk);
                header.emit(&mut Ipv6FragmentHeader::new_unchecked(frag));
                ip.emit(&mut Ipv6Packet::new_unchecked(fixed_part));
            }));
        }
        out
    }

    /// `upper` (an upper-layer message, checksum filled in) as IPv4 fragments of `ip` that
    /// each fit the MTU (RFC 791 §3.2: a multiple of 8 data bytes in all but the last).
    fn ipv4_fragments(
        &mut self,
        dst_mac: EthernetAddress,
        ip: Ipv4Repr,
        upper: &[u8],
    ) -> Vec<Bytes> {
        let step = (self.mtu.saturating_sub(ipv4::HEADER_LEN) / 8 * 8).max(8);
        let mut out = Vec::with_capacity(upper.len().div_ceil(step));
        for (i, chunk) in upper.chunks(step).enumerate() {
            let start = i.saturating_mul(step);
            let piece = Ipv4Repr {
                payload_len: chunk.len(),
                more_frags: start.saturating_add(chunk.len()) < upper.len(),
                frag_offset: u16::try_from(start).unwrap_or(u16::MAX),
                ..ip
            };
            out.push(
                self.build(dst_mac, EtherType::Ipv4, piece.total_len(), |body| {
                    let Some((header, data)) = body.split_at_mut_checked(ipv4::HEADER_LEN) else {
                        return;
                    };
                    data.copy_from_slice(chunk);
                    piece.emit(&mut Ipv4Packet::new_unchecked(header));
                }),
            );
        }
        out
    }
}
