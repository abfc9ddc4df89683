//! The guest agent's DHCP on the wire and on the interface.
//!
//! The agent sits between the TAP and the host, so it needs no socket for DHCP: its client's
//! messages go to the host as frames from the TAP's MAC ([`dhcp_frame`]), and replies for
//! that MAC are taken out of the host's stream before they reach the TAP ([`dhcp_reply`]).
//! A bound lease is applied with rtnetlink ([`apply`]): the MTU, the address (replacing any
//! other IPv4 address on the TAP), the default route via the router, and — only where the
//! user named a file — a resolv.conf.

use std::io;
use std::net::Ipv4Addr;
use std::path::Path;

use dhcp::client::{Lease, Transmit};
use dhcp::message::{CLIENT_PORT, SERVER_PORT};
use stack::wire::{
    EtherType, EthernetAddress, EthernetFrame, EthernetRepr, IpAddresses, IpProtocol, Ipv4Packet,
    Ipv4Repr, UdpPacket, UdpRepr, ethernet, ipv4, udp,
};

use crate::netlink::Netlink;
use crate::netlink::route::{self, LinkChange};

/// The time to live of our DHCP datagrams.
const TTL: u8 = 64;

/// The frame carrying `tx` from `mac`; a unicast goes to `server_mac` (the MAC the last
/// reply came from), or is broadcast when none is known.
pub fn dhcp_frame(
    tx: &Transmit,
    mac: EthernetAddress,
    server_mac: Option<EthernetAddress>,
) -> Option<Vec<u8>> {
    let payload = tx.message.to_bytes().ok()?;
    let udp_repr = UdpRepr {
        src_port: CLIENT_PORT,
        dst_port: SERVER_PORT,
        payload_len: payload.len(),
    };
    let ip = Ipv4Repr {
        src_addr: tx.src,
        dst_addr: tx.dst,
        next_header: IpProtocol::Udp,
        payload_len: udp::HEADER_LEN + payload.len(),
        hop_limit: TTL,
        ident: 0,
        dont_frag: false,
        more_frags: false,
        frag_offset: 0,
        dscp: 0,
        ecn: 0,
    };
    let dst_mac = if tx.is_broadcast() {
        EthernetAddress::BROADCAST
    } else {
        server_mac.unwrap_or(EthernetAddress::BROADCAST)
    };
    let mut frame = vec![0u8; ethernet::HEADER_LEN + ip.total_len()];
    EthernetRepr {
        src_addr: mac,
        dst_addr: dst_mac,
        ethertype: EtherType::Ipv4,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut frame[..]));
    let body = frame.get_mut(ethernet::HEADER_LEN..)?;
    let (header, datagram) = body.split_at_mut_checked(ipv4::HEADER_LEN)?;
    datagram
        .get_mut(udp::HEADER_LEN..)?
        .copy_from_slice(&payload);
    let addrs = IpAddresses::V4 {
        src: tx.src,
        dst: tx.dst,
    };
    udp_repr.emit(&mut UdpPacket::new_unchecked(datagram), &addrs);
    ip.emit(&mut Ipv4Packet::new_unchecked(header));
    Some(frame)
}

/// If `frame` is a DHCP reply for `mac` (to it or broadcast, UDP to port 68, whole and with
/// good checksums), its payload and the MAC it came from.
pub fn dhcp_reply(frame: &[u8], mac: EthernetAddress) -> Option<(&[u8], EthernetAddress)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EtherType::Ipv4 {
        return None;
    }
    let dst = eth.destination();
    if dst != mac && dst != EthernetAddress::BROADCAST {
        return None;
    }
    let source = eth.source();
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    let ip_repr = Ipv4Repr::parse(&ip).ok()?;
    if ip_repr.next_header != IpProtocol::Udp || ip_repr.is_fragment() {
        return None;
    }
    let datagram = UdpPacket::new_checked(ip.payload()).ok()?;
    if datagram.dst_port() != CLIENT_PORT || datagram.src_port() != SERVER_PORT {
        return None;
    }
    let addrs = IpAddresses::V4 {
        src: ip_repr.src_addr,
        dst: ip_repr.dst_addr,
    };
    // A zero UDP checksum over IPv4 means none was computed (RFC 768).
    if datagram.checksum() != 0 && !datagram.verify_checksum(&addrs) {
        return None;
    }
    Some((datagram.payload(), source))
}

/// The interface the lease is applied to.
#[derive(Debug, Clone)]
pub struct Interface {
    pub index: u32,
    /// An MTU that overrides the lease's.
    pub mtu: Option<u32>,
    /// Where to write the lease's DNS servers, if anywhere.
    pub resolv_conf: Option<std::path::PathBuf>,
}

/// Configures the interface from `lease`: MTU, address, default route, resolv.conf.
pub fn apply(nl: &mut Netlink, iface: &Interface, lease: &Lease) -> io::Result<()> {
    let mtu = iface.mtu.or(lease.mtu.map(u32::from));
    route::set_link(
        nl,
        iface.index,
        LinkChange {
            up: Some(true),
            mtu,
            ..LinkChange::default()
        },
    )?;
    for (ip, prefix_len) in route::ipv4_addresses(nl, iface.index)? {
        if (ip, prefix_len) != (lease.address, lease.prefix_len) {
            route::del_ipv4_address(nl, iface.index, ip, prefix_len)?;
        }
    }
    route::add_ipv4_address(nl, iface.index, lease.address, lease.prefix_len)?;
    if let Some(router) = lease.router {
        route::replace_default_route(nl, iface.index, router)?;
    }
    if let Some(path) = &iface.resolv_conf {
        write_resolv_conf(path, lease)?;
    }
    Ok(())
}

/// Removes the lease's address (the default route goes with it).
pub fn unapply(nl: &mut Netlink, iface: &Interface, address: Ipv4Addr, prefix_len: u8) {
    if let Err(e) = route::del_ipv4_address(nl, iface.index, address, prefix_len) {
        tracing::warn!(error = %e, %address, "cannot remove the lost lease's address");
    }
}

fn write_resolv_conf(path: &Path, lease: &Lease) -> io::Result<()> {
    let mut text = String::from("# written by host-switch guest from its DHCP lease\n");
    for server in &lease.dns_servers {
        text.push_str(&format!("nameserver {server}\n"));
    }
    let mut search = lease.search.clone();
    if search.is_empty()
        && let Some(domain) = &lease.domain_name
    {
        search.push(domain.clone());
    }
    if !search.is_empty() {
        text.push_str(&format!("search {}\n", search.join(" ")));
    }
    // Written beside it and renamed, so a reader never sees half a file.
    let tmp = path.with_extension("host-switch.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dhcp::{Config, DhcpClient, Server};
    use std::time::Instant;

    const MAC: EthernetAddress = EthernetAddress([0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xee]);

    /// Frames both ways through the real server: our frame parses as the server expects,
    /// and the gateway's reply frame is recognised.
    #[test]
    fn frames_round_trip_through_the_server() {
        let now = Instant::now();
        let mut client = DhcpClient::new(MAC, 42, now);
        client.handle_timeout(now);
        let tx = client.poll_transmit().unwrap();
        let frame = dhcp_frame(&tx, MAC, None).unwrap();
        let eth = EthernetFrame::new_checked(&frame[..]).unwrap();
        assert_eq!(eth.destination(), EthernetAddress::BROADCAST);
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        assert!(Ipv4Repr::parse(&ip).is_ok());
        let udp = UdpPacket::new_checked(ip.payload()).unwrap();
        let addrs = IpAddresses::V4 {
            src: Ipv4Addr::UNSPECIFIED,
            dst: Ipv4Addr::BROADCAST,
        };
        assert!(udp.verify_checksum(&addrs));
        let mut server = Server::new(Config::default()).unwrap();
        let reply = server.handle(now, udp.payload()).unwrap();

        // The gateway's reply, framed as the gateway frames it.
        let gw = EthernetAddress([0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xdd]);
        let back = Transmit {
            message: dhcp::DhcpRepr::parse(
                &dhcp::DhcpPacket::new_checked(&reply.payload[..]).unwrap(),
            )
            .unwrap(),
            src: Ipv4Addr::new(192, 168, 127, 1),
            dst: Ipv4Addr::BROADCAST,
        };
        let mut reply_frame = dhcp_frame(&back, gw, None).unwrap();
        // Swap the ports: a server-to-client datagram.
        let eth_len = ethernet::HEADER_LEN + ipv4::HEADER_LEN;
        reply_frame[eth_len..eth_len + 4].copy_from_slice(&[0, 67, 0, 68]);
        {
            let (_, rest) = reply_frame.split_at_mut(ethernet::HEADER_LEN);
            let (_, datagram) = rest.split_at_mut(ipv4::HEADER_LEN);
            let mut u = UdpPacket::new_unchecked(datagram);
            u.fill_checksum(&IpAddresses::V4 {
                src: Ipv4Addr::new(192, 168, 127, 1),
                dst: Ipv4Addr::BROADCAST,
            });
        }
        let (payload, from) = dhcp_reply(&reply_frame, MAC).unwrap();
        assert_eq!(from, gw);
        client.handle_message(now, payload);
        assert!(
            client.poll_transmit().is_some(),
            "the offer leads to a request"
        );
        // Not for us: another destination MAC.
        assert!(dhcp_reply(&reply_frame, EthernetAddress([2, 0, 0, 0, 0, 1])).is_some());
        let mut other = reply_frame.clone();
        other[..6].copy_from_slice(&[2, 0, 0, 0, 0, 9]);
        assert!(dhcp_reply(&other, MAC).is_none());
        // Truncated frames are never replies.
        for len in 0..reply_frame.len() {
            let _ = dhcp_reply(&reply_frame[..len], MAC);
        }
    }
}
