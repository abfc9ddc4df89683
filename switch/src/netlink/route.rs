//! Interface configuration over `NETLINK_ROUTE` (rtnetlink(7)): what `ip link`, `ip addr` and
//! `ip route` do, for the namespace the socket belongs to.
//!
//! Each call is one request, acknowledged before it returns; a refusal is the kernel's errno
//! as an [`io::Error`]. Names are looked up by dumping the links, so the answer is always the
//! socket's namespace's, whatever namespace the calling thread is in.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, BorrowedFd};

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::address::{AddressAttribute, AddressMessage, AddressScope};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use stack::wire::EthernetAddress;

use super::Netlink;

/// A `NETLINK_ROUTE` socket in the calling thread's namespace.
pub fn open() -> io::Result<Netlink> {
    Netlink::open(netlink_sys::protocols::NETLINK_ROUTE)
}

/// The index of interface `name`.
pub fn link_index(nl: &mut Netlink, name: &str) -> io::Result<u32> {
    let links = nl.dump(RouteNetlinkMessage::GetLink(LinkMessage::default()))?;
    links
        .iter()
        .find_map(|m| match m {
            RouteNetlinkMessage::NewLink(link)
                if link
                    .attributes
                    .iter()
                    .any(|a| matches!(a, LinkAttribute::IfName(n) if n == name)) =>
            {
                Some(link.header.index)
            }
            _ => None,
        })
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no interface {name}")))
}

/// What to change on a link; `None` leaves a property as it is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkChange {
    pub up: Option<bool>,
    pub mtu: Option<u32>,
    pub mac: Option<EthernetAddress>,
    /// The largest super-segment the kernel hands the device (`gso_max_size`).
    pub gso_max_size: Option<u32>,
}

/// Applies `change` to link `index`.
pub fn set_link(nl: &mut Netlink, index: u32, change: LinkChange) -> io::Result<()> {
    let mut link = LinkMessage::default();
    link.header.index = index;
    if let Some(up) = change.up {
        link.header.change_mask = LinkFlags::Up;
        if up {
            link.header.flags = LinkFlags::Up;
        }
    }
    if let Some(mtu) = change.mtu {
        link.attributes.push(LinkAttribute::Mtu(mtu));
    }
    if let Some(mac) = change.mac {
        link.attributes
            .push(LinkAttribute::Address(mac.as_bytes().to_vec()));
    }
    if let Some(size) = change.gso_max_size {
        link.attributes.push(LinkAttribute::GsoMaxSize(size));
    }
    nl.request(RouteNetlinkMessage::SetLink(link), 0)
}

/// The IPv4 addresses (with prefix lengths) on link `index`.
pub fn ipv4_addresses(nl: &mut Netlink, index: u32) -> io::Result<Vec<(Ipv4Addr, u8)>> {
    let mut query = AddressMessage::default();
    query.header.family = AddressFamily::Inet;
    let all = nl.dump(RouteNetlinkMessage::GetAddress(query))?;
    Ok(all
        .iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewAddress(a) if a.header.index == index => {
                a.attributes.iter().find_map(|attr| match attr {
                    AddressAttribute::Local(IpAddr::V4(ip)) => Some((*ip, a.header.prefix_len)),
                    _ => None,
                })
            }
            _ => None,
        })
        .collect())
}

fn address_message(index: u32, ip: Ipv4Addr, prefix_len: u8) -> AddressMessage {
    let mut a = AddressMessage::default();
    a.header.family = AddressFamily::Inet;
    a.header.prefix_len = prefix_len;
    a.header.scope = AddressScope::Universe;
    a.header.index = index;
    a.attributes.push(AddressAttribute::Local(IpAddr::V4(ip)));
    a.attributes.push(AddressAttribute::Address(IpAddr::V4(ip)));
    if prefix_len < 31 {
        let host_bits = u32::MAX.checked_shr(u32::from(prefix_len)).unwrap_or(0);
        let broadcast = Ipv4Addr::from(u32::from(ip) | host_bits);
        a.attributes.push(AddressAttribute::Broadcast(broadcast));
    }
    a
}

/// Adds `ip/prefix_len` to link `index` (replacing the same address with another prefix).
pub fn add_ipv4_address(
    nl: &mut Netlink,
    index: u32,
    ip: Ipv4Addr,
    prefix_len: u8,
) -> io::Result<()> {
    let a = address_message(index, ip, prefix_len);
    nl.request(
        RouteNetlinkMessage::NewAddress(a),
        NLM_F_CREATE | NLM_F_REPLACE,
    )
}

/// Removes `ip/prefix_len` from link `index`.
pub fn del_ipv4_address(
    nl: &mut Netlink,
    index: u32,
    ip: Ipv4Addr,
    prefix_len: u8,
) -> io::Result<()> {
    let a = address_message(index, ip, prefix_len);
    nl.request(RouteNetlinkMessage::DelAddress(a), 0)
}

/// Sets the IPv4 default route to `gateway` through link `index`, replacing any other.
pub fn replace_default_route(nl: &mut Netlink, index: u32, gateway: Ipv4Addr) -> io::Result<()> {
    let mut r = RouteMessage::default();
    r.header.address_family = AddressFamily::Inet;
    r.header.destination_prefix_length = 0;
    r.header.table = RouteHeader::RT_TABLE_MAIN;
    r.header.protocol = RouteProtocol::Boot;
    r.header.scope = RouteScope::Universe;
    r.header.kind = RouteType::Unicast;
    r.attributes
        .push(RouteAttribute::Gateway(RouteAddress::Inet(gateway)));
    r.attributes.push(RouteAttribute::Oif(index));
    nl.request(
        RouteNetlinkMessage::NewRoute(r),
        NLM_F_CREATE | NLM_F_REPLACE,
    )
}

/// Creates the veth pair `name` ↔ `peer`, both down, in the socket's namespace.
pub fn create_veth(nl: &mut Netlink, name: &str, peer: &str) -> io::Result<()> {
    let mut peer_link = LinkMessage::default();
    peer_link
        .attributes
        .push(LinkAttribute::IfName(peer.to_owned()));
    let mut link = LinkMessage::default();
    link.attributes.push(LinkAttribute::IfName(name.to_owned()));
    link.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Veth),
        LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_link))),
    ]));
    nl.request(
        RouteNetlinkMessage::NewLink(link),
        NLM_F_CREATE | NLM_F_EXCL,
    )
}

/// Moves link `index` into the network namespace `netns` (an open namespace file).
pub fn move_to_netns(nl: &mut Netlink, index: u32, netns: BorrowedFd<'_>) -> io::Result<()> {
    let mut link = LinkMessage::default();
    link.header.index = index;
    link.attributes
        .push(LinkAttribute::NetNsFd(netns.as_raw_fd()));
    nl.request(RouteNetlinkMessage::SetLink(link), 0)
}

/// Brings link `name` up (the loopback of a fresh namespace, typically).
pub fn link_up(nl: &mut Netlink, name: &str) -> io::Result<()> {
    let index = link_index(nl, name)?;
    set_link(
        nl,
        index,
        LinkChange {
            up: Some(true),
            ..LinkChange::default()
        },
    )
}
