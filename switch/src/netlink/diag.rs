//! Listening sockets over `NETLINK_SOCK_DIAG` (sock_diag(7)): what `ss -ltnu` shows.
//!
//! [`listening`] dumps the TCP sockets in `LISTEN` and the UDP sockets that are bound but not
//! connected (`TCP_CLOSE` in the kernel's shared state numbering, `UNCONN` in `ss`), of both
//! families, for the namespace the socket belongs to. A connected UDP socket is a client's and
//! is left out. The answer is bounded by [`super::MAX_DUMP`] messages per family and protocol.

use std::io;
use std::net::{IpAddr, SocketAddr};

use netlink_packet_sock_diag::inet::nlas::Nla;
use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};
use netlink_packet_sock_diag::{AF_INET, AF_INET6, IPPROTO_TCP, IPPROTO_UDP, SockDiagMessage};

use super::Netlink;

/// A transport whose listeners are watched.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Tcp,
    Udp,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        }
    }
}

/// One listening socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Listening {
    pub transport: Transport,
    /// The bound address and port (`0.0.0.0` / `::` for any).
    pub addr: SocketAddr,
    /// An IPv6 socket that takes no IPv4 (`IPV6_V6ONLY`).
    pub v6only: bool,
}

/// A `NETLINK_SOCK_DIAG` socket in the calling thread's namespace.
pub fn open() -> io::Result<Netlink> {
    Netlink::open(netlink_sys::protocols::NETLINK_SOCK_DIAG)
}

/// Every listening TCP socket and unconnected UDP socket of the socket's namespace.
pub fn listening(nl: &mut Netlink) -> io::Result<Vec<Listening>> {
    let mut out = Vec::new();
    for (transport, protocol, states) in [
        (Transport::Tcp, IPPROTO_TCP, StateFlags::LISTEN),
        (Transport::Udp, IPPROTO_UDP, StateFlags::CLOSE),
    ] {
        for (family, socket_id) in [
            (AF_INET, SocketId::new_v4()),
            (AF_INET6, SocketId::new_v6()),
        ] {
            let request = SockDiagMessage::InetRequest(InetRequest {
                family,
                protocol,
                extensions: ExtensionFlags::empty(),
                states: states.clone(),
                socket_id,
            });
            for message in nl.dump(request)? {
                let SockDiagMessage::InetResponse(response) = message else {
                    continue;
                };
                let id = &response.header.socket_id;
                if transport == Transport::Udp && id.destination_port != 0 {
                    continue;
                }
                let v6only = response
                    .nlas
                    .iter()
                    .any(|n| matches!(n, Nla::SkV6Only(true)));
                out.push(Listening {
                    transport,
                    addr: SocketAddr::new(unmapped(id.source_address), id.source_port),
                    v6only,
                });
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// `::ffff:a.b.c.d` as `a.b.c.d`.
fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, UdpSocket};

    #[test]
    fn sees_our_own_listeners_and_not_a_connected_udp_socket() {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let connected = UdpSocket::bind("127.0.0.1:0").unwrap();
        connected.connect(udp.local_addr().unwrap()).unwrap();
        let mut nl = open().unwrap();
        let all = listening(&mut nl).unwrap();
        let has = |t, a| all.iter().any(|l| l.transport == t && l.addr == a);
        assert!(has(Transport::Tcp, tcp.local_addr().unwrap()), "{all:?}");
        assert!(has(Transport::Udp, udp.local_addr().unwrap()), "{all:?}");
        assert!(
            !has(Transport::Udp, connected.local_addr().unwrap()),
            "{all:?}"
        );
        let gone = tcp.local_addr().unwrap();
        drop(tcp);
        let after = listening(&mut nl).unwrap();
        assert!(
            !after
                .iter()
                .any(|l| l.transport == Transport::Tcp && l.addr == gone)
        );
    }
}
