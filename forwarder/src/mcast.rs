//! The multicast relay between guests and the host, bounded and counted.
//!
//! Guest → host: a guest's UDP datagram to a group (the gateway hands these on as flows)
//! leaves from the guest's own UDP mapping socket (so unicast answers come back to it) to the
//! same group and port, with the guest's TTL, looped back to the host's own listeners, out of
//! [`Config::multicast_interface_v4`] (`_v6`) or the interface the kernel's routes pick
//! ([`send`]). Each such socket's port is remembered in the control plane, bounded, so the
//! host side does not relay the datagram back in.
//!
//! Host → guest: when the switch's snooper reports a group's first guest member, the relay
//! worker joins it on the host ([`McastTable::join`]): one UDP socket per port of
//! [`Config::multicast_ports`], bound to the group and the port (address reuse on, beside
//! host programs on the same port), with the membership added on the same interface — and,
//! when one is configured, bound to it, so a copy of a datagram that arrives on another
//! interface (where some other program joined the group) is not taken twice. What
//! arrives goes to the group's Ethernet address from the gateway, source address as the guest
//! knows the sender ([`crate::nat::Nat::inbound`]); the switch hands it to the ports whose
//! guests joined. When the last member leaves or ages out, the sockets close
//! ([`McastTable::leave`]). At most [`Config::max_multicast_groups`] groups are joined at
//! once; beyond, a join is refused and counted. Each group socket holds a unit of the
//! descriptor budget, as a flow's socket does ([`crate::descriptors`]): a port whose socket
//! the budget has no room for is not listened on, counted under `descriptor_limit`.
//! Datagrams from one of the relay's own sending ports are not relayed back
//! ([`crate::control::Control::is_relay_sender`]).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};

use mio::Token;
use socket2::{Domain, InterfaceIndexOrAddress, Protocol as SockProtocol, Socket, Type};
use stack::ingress::FlowPacket;
use stack::time::Instant;
use stack::wire::multicast_mac;

use crate::config::Config;
use crate::descriptors::{self, Unit};
use crate::frame::addresses;
use crate::handler::{KIND_MCAST, Shared};
use crate::hops::Hops;
use crate::stats::Counters;
use crate::sys;
use crate::worker::FrameSink;

/// The largest datagram read.
const MAX_DATAGRAM: usize = 65535;

/// Sends a guest's datagram to a group from its mapping socket `socket`. See the module docs.
pub(crate) fn send(
    sh: &Shared,
    socket: &UdpSocket,
    hops: &mut Hops,
    packet: &FlowPacket,
    payload: &[u8],
) -> std::io::Result<usize> {
    let dst = packet.key.remote;
    let v6 = dst.is_ipv6();
    let interface = if v6 {
        sh.config.multicast_interface_v6
    } else {
        sh.config.multicast_interface_v4
    };
    sys::set_multicast_out(socket, v6, interface)?;
    hops.carry(socket, v6, packet, true);
    if let Ok(local) = socket.local_addr()
        && !sh.control.add_relay_sender(local.port())
    {
        Counters::bump(&sh.counters.mcast_senders_full);
    }
    match socket.send_to(payload, dst) {
        // An earlier datagram's ICMP error, reported once: send again.
        Err(e) if sys::is_icmp_error(&e) => socket.send_to(payload, dst),
        sent => sent,
    }
}

struct Member {
    socket: UdpSocket,
    token: Token,
    /// The socket's unit of the descriptor budget, given back when it closes.
    _unit: Unit,
}

/// The host side of the relay: the groups joined on the host. See the module docs.
pub(crate) struct McastTable {
    groups: HashMap<IpAddr, Vec<Member>>,
    by_token: HashMap<Token, (IpAddr, u16)>,
    max_groups: usize,
    ports: Vec<u16>,
    interfaces: (u32, u32),
    mtu: usize,
    buf: Vec<u8>,
}

impl McastTable {
    pub(crate) fn new(config: &Config, mtu: u16) -> McastTable {
        McastTable {
            groups: HashMap::new(),
            by_token: HashMap::new(),
            max_groups: config.max_multicast_groups,
            ports: config.multicast_ports.clone(),
            interfaces: (config.multicast_interface_v4, config.multicast_interface_v6),
            mtu: usize::from(mtu),
            buf: Vec::new(),
        }
    }

    /// A guest joined `group`: listen for it on the host.
    pub(crate) fn join(&mut self, sh: &mut Shared, group: IpAddr, now: Instant) {
        if self.groups.contains_key(&group) || !group.is_multicast() {
            return;
        }
        if self.groups.len() >= self.max_groups {
            Counters::bump(&sh.counters.mcast_group_limit);
            return;
        }
        let mut members = Vec::new();
        let interface = if group.is_ipv6() {
            self.interfaces.1
        } else {
            self.interfaces.0
        };
        for &port in &self.ports {
            let Some(unit) = Unit::take(&sh.budget) else {
                Counters::bump(&sh.counters.descriptor_limit);
                continue;
            };
            match open(group, port, interface) {
                Ok(socket) => {
                    let token = sh.token(KIND_MCAST);
                    if sh.register(&socket, token).is_err() {
                        Counters::bump(&sh.counters.mcast_join_failed);
                        continue;
                    }
                    self.by_token.insert(token, (group, port));
                    members.push(Member {
                        socket,
                        token,
                        _unit: unit,
                    });
                }
                Err(e) if descriptors::is_exhausted(&e) => {
                    descriptors::note_exhausted(&sh.counters, now, "a multicast group", &e);
                    Counters::bump(&sh.counters.mcast_join_failed);
                }
                Err(e) => {
                    tracing::debug!(%group, port, error = %e, "cannot join a multicast group on the host");
                    Counters::bump(&sh.counters.mcast_join_failed);
                }
            }
        }
        Counters::bump(&sh.counters.mcast_joins);
        Counters::bump(&sh.counters.mcast_groups);
        self.groups.insert(group, members);
    }

    /// The last guest left `group`: stop listening.
    pub(crate) fn leave(&mut self, sh: &mut Shared, group: IpAddr) {
        let Some(members) = self.groups.remove(&group) else {
            return;
        };
        for m in members {
            sh.deregister_fd(&m.socket);
            self.by_token.remove(&m.token);
        }
        Counters::dec(&sh.counters.mcast_groups);
    }

    /// A group socket is readable: relay what arrived to the guests.
    pub(crate) fn ready(&mut self, sh: &mut Shared, token: Token, out: &dyn FrameSink) {
        let Some(&(group, port)) = self.by_token.get(&token) else {
            return;
        };
        let Some(socket) = self
            .groups
            .get(&group)
            .and_then(|m| m.iter().find(|m| m.token == token))
            .map(|m| &m.socket)
        else {
            return;
        };
        if self.buf.is_empty() {
            self.buf = vec![0; MAX_DATAGRAM];
        }
        let Some(dst_mac) = multicast_mac(group) else {
            return;
        };
        loop {
            let (n, peer) = match socket.recv_from(&mut self.buf) {
                Ok(r) => r,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(_) => return,
            };
            if sh.control.is_relay_sender(peer.port()) {
                Counters::bump(&sh.counters.mcast_looped);
                continue;
            }
            let header = if group.is_ipv6() { 48 } else { 28 };
            if n + header > self.mtu {
                Counters::bump(&sh.counters.mcast_too_big);
                continue;
            }
            let src = sh.nat.inbound(peer.ip());
            let data = self.buf.get(..n).unwrap_or_default();
            if let Some(addrs) = addresses(src, group) {
                let frame = sh.framer.udp(dst_mac, addrs, peer.port(), port, data);
                Counters::bump(&sh.counters.mcast_to_guest);
                sh.send(out, frame);
            }
        }
    }
}

/// A socket that receives `group`'s datagrams to `port`.
fn open(group: IpAddr, port: u16, interface: u32) -> std::io::Result<UdpSocket> {
    let domain = if group.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let socket = Socket::new(domain, Type::DGRAM, Some(SockProtocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    if interface != 0 {
        sys::bind_to_interface(&socket, interface)?;
    }
    match group {
        IpAddr::V4(g) => {
            socket.bind(&SocketAddr::new(IpAddr::V4(g), port).into())?;
            let iface = if interface == 0 {
                InterfaceIndexOrAddress::Address(Ipv4Addr::UNSPECIFIED)
            } else {
                InterfaceIndexOrAddress::Index(interface)
            };
            socket.join_multicast_v4_n(&g, &iface)?;
        }
        IpAddr::V6(g) => {
            socket.set_only_v6(true)?;
            socket.bind(&SocketAddr::new(IpAddr::V6(g), port).into())?;
            socket.join_multicast_v6(&g, interface)?;
        }
    }
    Ok(UdpSocket::from(socket))
}
