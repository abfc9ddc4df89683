//! The querier's frames: IGMPv3 queries (RFC 3376 §4.1) and MLDv2 queries (RFC 3810 §5.1)
//! from the gateway, general or for one group.
//!
//! Both carry what their RFCs require of a query: TTL / hop limit 1 and a router alert
//! (the IPv4 option of RFC 2113, the IPv6 hop-by-hop option of RFC 2711 with value 0, MLD),
//! an IPv4 source of the querier's own address, an IPv6 source that is link-local (RFC 3810
//! §5.1.14), IPv4 TOS 0xc0 (internetwork control, as Linux sends them). General queries go
//! to 224.0.0.1 / ff02::1, group-specific ones to the group itself (RFC 3376 §4.1.12, RFC
//! 3810 §5.1.15), each to the Ethernet address of its IP destination.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::Bytes;
use stack::wire::checksum;
use stack::wire::group_record::{Sources, encode_code8, multicast_mac};
use stack::wire::igmp::{self, QueryV3};
use stack::wire::mld::{self, QueryV2};
use stack::wire::{
    EtherType, EthernetAddress, EthernetFrame, EthernetRepr, IpAddresses, IpProtocol, Ipv6Packet,
    Ipv6Repr, ethernet, ipv6,
};

/// The IPv4 header with the 4-byte router alert option.
const IPV4_HEADER: usize = 24;
/// The hop-by-hop header carrying the router alert: 8 bytes.
const HOP_BY_HOP: usize = 8;
/// Ethernet's shortest frame, without FCS.
const MIN_FRAME: usize = 60;

/// The querier's parameters as it announces them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueryParams {
    /// Robustness variable, 1 to 7.
    pub(crate) robustness: u8,
    /// Query interval in seconds.
    pub(crate) interval_secs: u32,
}

fn frame(dst: IpAddr, src_mac: EthernetAddress, ethertype: EtherType, body: &[u8]) -> Bytes {
    let dst_mac = multicast_mac(dst).unwrap_or(EthernetAddress::BROADCAST);
    let len = (ethernet::HEADER_LEN + body.len()).max(MIN_FRAME);
    let mut out = vec![0u8; len];
    EthernetRepr {
        src_addr: src_mac,
        dst_addr: dst_mac,
        ethertype,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut out[..]));
    if let Some(room) = out.get_mut(ethernet::HEADER_LEN..ethernet::HEADER_LEN + body.len()) {
        room.copy_from_slice(body);
    }
    Bytes::from(out)
}

/// An IGMPv3 query from `src` (`mac`): general when `group` is `None`. `max_resp_ds` is the
/// maximum response time in tenths of a second.
pub(crate) fn igmp_query(
    mac: EthernetAddress,
    src: Ipv4Addr,
    group: Option<Ipv4Addr>,
    max_resp_ds: u32,
    params: QueryParams,
) -> Bytes {
    let repr = igmp::Repr::Query {
        max_resp_code: encode_code8(max_resp_ds),
        group: group.unwrap_or(Ipv4Addr::UNSPECIFIED),
        v3: Some(QueryV3 {
            suppress: false,
            qrv: params.robustness.min(7),
            qqic: encode_code8(params.interval_secs),
            sources: Sources::new(&[]),
        }),
    };
    igmp_frame(mac, src, group.unwrap_or(igmp::ALL_SYSTEMS), &repr)
}

/// An IGMP message from `src` (`mac`) to `dst` with TTL 1 and a router alert.
pub(crate) fn igmp_frame(
    mac: EthernetAddress,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    repr: &igmp::Repr<'_>,
) -> Bytes {
    let total = IPV4_HEADER + repr.buffer_len();
    let mut body = vec![0u8; total];
    let (header, message) = body.split_at_mut(IPV4_HEADER);
    repr.emit(&mut igmp::Packet::new_unchecked(message));
    let [len_hi, len_lo] = (total as u16).to_be_bytes();
    let [s0, s1, s2, s3] = src.octets();
    let [d0, d1, d2, d3] = dst.octets();
    // Version 4, IHL 6; TOS 0xc0; length; ident 0; DF; TTL 1; IGMP; checksum later.
    let fixed = [
        0x46,
        0xc0,
        len_hi,
        len_lo,
        0,
        0,
        0x40,
        0,
        1,
        igmp::PROTOCOL,
        0,
        0,
        s0,
        s1,
        s2,
        s3,
        d0,
        d1,
        d2,
        d3,
        // Router alert (RFC 2113): type 148, length 4, value 0.
        0x94,
        0x04,
        0,
        0,
    ];
    header.copy_from_slice(&fixed);
    let sum = checksum::checksum(header);
    if let Some(field) = header.get_mut(10..12) {
        field.copy_from_slice(&sum.to_be_bytes());
    }
    frame(IpAddr::V4(dst), mac, EtherType::Ipv4, &body)
}

/// An MLDv2 query from the link-local `src` (`mac`): general when `group` is `None`.
/// `max_resp_ms` is the maximum response delay in milliseconds (below 32768).
pub(crate) fn mld_query(
    mac: EthernetAddress,
    src: Ipv6Addr,
    group: Option<Ipv6Addr>,
    max_resp_ms: u16,
    params: QueryParams,
) -> Bytes {
    let repr = mld::Repr::Query {
        max_resp_code: max_resp_ms.min(32767),
        group: group.unwrap_or(Ipv6Addr::UNSPECIFIED),
        v2: Some(QueryV2 {
            suppress: false,
            qrv: params.robustness.min(7),
            qqic: encode_code8(params.interval_secs),
            sources: Sources::new(&[]),
        }),
    };
    mld_frame(mac, src, group.unwrap_or(mld::ALL_NODES), &repr)
}

/// An MLD message from `src` (`mac`) to `dst` with hop limit 1 behind a hop-by-hop router
/// alert.
pub(crate) fn mld_frame(
    mac: EthernetAddress,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    repr: &mld::Repr<'_>,
) -> Bytes {
    let message_len = repr.buffer_len();
    let ip = Ipv6Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::HopByHop,
        payload_len: HOP_BY_HOP + message_len,
        hop_limit: mld::HOP_LIMIT,
        dscp: 0,
        ecn: 0,
        flow_label: 0,
    };
    let mut body = vec![0u8; ipv6::HEADER_LEN + HOP_BY_HOP + message_len];
    let (header, rest) = body.split_at_mut(ipv6::HEADER_LEN);
    ip.emit(&mut Ipv6Packet::new_unchecked(header));
    let (hop_by_hop, message) = rest.split_at_mut(HOP_BY_HOP);
    // Next header ICMPv6, length 0 (8 bytes); router alert (type 5, length 2, value 0 = MLD);
    // PadN of length 0.
    hop_by_hop.copy_from_slice(&[u8::from(IpProtocol::Icmpv6), 0, 5, 2, 0, 0, 1, 0]);
    let addrs = IpAddresses::V6 { src, dst };
    repr.emit(&mut mld::Packet::new_unchecked(message), &addrs);
    frame(IpAddr::V6(dst), mac, EtherType::Ipv6, &body)
}
