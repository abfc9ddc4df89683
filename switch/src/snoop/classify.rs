//! What a multicast frame is to the snooper: a membership message (IGMP, MLD), data for a
//! group it tracks, or something it leaves to the switch's flooding.
//!
//! Only frames to an Ethernet group address (not broadcast) are looked at, and only their
//! Ethernet, IP and, for membership messages, IGMP or MLD headers, each through its checked
//! view ([`stack::wire`]): nothing here can panic on a frame. An IP header that does not
//! parse leaves the frame to flooding, as before snooping; a membership message that does not
//! parse, or fails RFC 3810's header checks, is [`Class::Bad`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use stack::wire::ipv6::{ExtHeader, option};
use stack::wire::{
    EtherType, EthernetFrame, EthernetRepr, IgmpError, IgmpPacket, IgmpRepr, IpAddresses,
    IpProtocol, Ipv4Packet, Ipv6Packet, MldError, MldPacket, MldRepr, igmp, mld,
};

/// Why a membership message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BadMessage {
    Igmp(IgmpError),
    Mld(MldError),
    /// A report or leave naming a group that is not a multicast address.
    NotAGroup,
}

/// A frame as the snooper sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class<'a> {
    /// Not IP multicast (broadcast, unicast, ARP, an IP header that does not parse, a
    /// multicast MAC carrying a unicast IP destination): the switch's decision stands.
    NotMulticast,
    /// IP multicast to a group that is always flooded (see [`igmp::is_snooped`] and
    /// [`mld::is_snooped`]).
    Unsnooped,
    /// IP multicast to a tracked group.
    Data(IpAddr),
    Igmp(IgmpRepr<'a>),
    Mld(MldRepr<'a>),
    Bad(BadMessage),
}

pub(crate) fn classify(frame: &[u8]) -> Class<'_> {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return Class::NotMulticast;
    };
    let Ok(repr) = EthernetRepr::parse(&eth) else {
        return Class::NotMulticast;
    };
    if !repr.dst_addr.is_multicast() || repr.dst_addr.is_broadcast() {
        return Class::NotMulticast;
    }
    match repr.ethertype {
        EtherType::Ipv4 => ipv4(eth.payload()),
        EtherType::Ipv6 => ipv6(eth.payload()),
        _ => Class::NotMulticast,
    }
}

fn ipv4(bytes: &[u8]) -> Class<'_> {
    let Ok(packet) = Ipv4Packet::new_checked(bytes) else {
        return Class::NotMulticast;
    };
    let dst = packet.dst_addr();
    if !dst.is_multicast() {
        return Class::NotMulticast;
    }
    // A fragment that is not the first carries no IGMP header; it is data for its group.
    let first = packet.frag_offset() == 0;
    if first && u8::from(packet.next_header()) == igmp::PROTOCOL {
        return igmp_message(packet.payload());
    }
    if igmp::is_snooped(dst) {
        Class::Data(IpAddr::V4(dst))
    } else {
        Class::Unsnooped
    }
}

fn igmp_message(bytes: &[u8]) -> Class<'_> {
    let repr = match IgmpPacket::new_checked(bytes).and_then(|p| IgmpRepr::parse(&p)) {
        Ok(repr) => repr,
        Err(e) => return Class::Bad(BadMessage::Igmp(e)),
    };
    let named = match repr {
        IgmpRepr::ReportV1 { group } | IgmpRepr::ReportV2 { group } | IgmpRepr::Leave { group } => {
            Some(group)
        }
        IgmpRepr::Query { .. } | IgmpRepr::ReportV3 { .. } => None,
    };
    if named.is_some_and(|g: Ipv4Addr| !g.is_multicast()) {
        return Class::Bad(BadMessage::NotAGroup);
    }
    Class::Igmp(repr)
}

fn ipv6(bytes: &[u8]) -> Class<'_> {
    let Ok(packet) = Ipv6Packet::new_checked(bytes) else {
        return Class::NotMulticast;
    };
    let dst = packet.dst_addr();
    if !dst.is_multicast() {
        return Class::NotMulticast;
    }
    let payload = packet.payload();
    if let Ok(chain) = packet.header_chain()
        && chain.protocol == IpProtocol::Icmpv6
        && !chain.is_fragment()
        && let Some(upper) = payload.get(chain.offset..)
        && upper.first().is_some_and(|&t| mld::is_mld_type(t))
    {
        let alert = chain
            .headers()
            .iter()
            .find(|span| span.kind == IpProtocol::HopByHop)
            .and_then(|span| payload.get(span.range()))
            .is_some_and(router_alert);
        return mld_message(upper, packet.src_addr(), dst, packet.hop_limit(), alert);
    }
    if mld::is_snooped(dst) {
        Class::Data(IpAddr::V6(dst))
    } else {
        Class::Unsnooped
    }
}

/// Whether a hop-by-hop header holds a router alert for MLD (RFC 2711, value 0).
fn router_alert(header: &[u8]) -> bool {
    let Ok(header) = ExtHeader::new_checked(header) else {
        return false;
    };
    header
        .options()
        .filter_map(Result::ok)
        .any(|o| o.kind == option::ROUTER_ALERT && o.data == [0, 0])
}

fn mld_message(
    bytes: &[u8],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hop_limit: u8,
    alert: bool,
) -> Class<'_> {
    let addrs = IpAddresses::V6 { src, dst };
    let repr = match MldPacket::new_checked(bytes).and_then(|p| MldRepr::parse(&p, &addrs)) {
        Ok(repr) => repr,
        Err(e) => return Class::Bad(BadMessage::Mld(e)),
    };
    if let Err(e) = repr.validate(src, hop_limit, alert) {
        return Class::Bad(BadMessage::Mld(e));
    }
    let named = match repr {
        MldRepr::ReportV1 { group } | MldRepr::Done { group } => Some(group),
        MldRepr::Query { .. } | MldRepr::ReportV2 { .. } => None,
    };
    if named.is_some_and(|g| !g.is_multicast()) {
        return Class::Bad(BadMessage::NotAGroup);
    }
    Class::Mld(repr)
}
