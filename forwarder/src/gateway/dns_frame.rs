//! The frames of DNS answers to guests over UDP, from the address each query was sent to:
//! the gateway's IPv4 address, or one of its IPv6 addresses (`v6`).

use std::net::IpAddr;

use bytes::Bytes;
use stack::wire::{
    EtherType, EthernetAddress, EthernetFrame, EthernetRepr, IpAddresses, IpProtocol, Ipv4Packet,
    Ipv4Repr, UdpPacket, UdpRepr, ethernet, ipv4, udp,
};

use super::{DEFAULT_TTL, DNS_PORT, DnsClient, MIN_FRAME_LEN, v6};

/// The frame carrying a DNS answer from the gateway (`mac`, the address `client` asked, port
/// 53) to `client`, with IPv4 identification `ident` for IPv4; padded to [`MIN_FRAME_LEN`].
pub fn dns_reply_frame(
    mac: EthernetAddress,
    client: &DnsClient,
    ident: u16,
    payload: &[u8],
) -> Bytes {
    let (IpAddr::V4(ip), IpAddr::V4(dst)) = (client.server, client.addr.ip()) else {
        return v6::dns6_reply_frame(mac, client, payload);
    };
    let udp = UdpRepr {
        src_port: DNS_PORT,
        dst_port: client.addr.port(),
        payload_len: payload.len(),
    };
    let ipr = Ipv4Repr {
        src_addr: ip,
        dst_addr: dst,
        next_header: IpProtocol::Udp,
        payload_len: udp::HEADER_LEN + payload.len(),
        hop_limit: DEFAULT_TTL,
        ident,
        dont_frag: false,
        more_frags: false,
        frag_offset: 0,
        dscp: 0,
        ecn: 0,
    };
    let addrs = IpAddresses::V4 { src: ip, dst };
    let body_len = ipr.total_len();
    let len = (ethernet::HEADER_LEN + body_len).max(MIN_FRAME_LEN);
    let mut tx = vec![0u8; len];
    EthernetRepr {
        src_addr: mac,
        dst_addr: client.mac,
        ethertype: EtherType::Ipv4,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut tx[..]));
    if let Some(body) = tx.get_mut(ethernet::HEADER_LEN..ethernet::HEADER_LEN + body_len)
        && let Some((header, datagram)) = body.split_at_mut_checked(ipv4::HEADER_LEN)
    {
        if let Some(room) = datagram.get_mut(udp::HEADER_LEN..) {
            room.copy_from_slice(payload);
        }
        udp.emit(&mut UdpPacket::new_unchecked(datagram), &addrs);
        ipr.emit(&mut Ipv4Packet::new_unchecked(header));
    }
    Bytes::from(tx)
}
