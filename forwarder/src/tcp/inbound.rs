//! Inbound forwards: a host connection accepted on a forwarded port opens into the guest
//! ([`Connection::connect`]), from the gateway's address and a port that hashes back to this
//! worker.
//!
//! The accepted socket takes a unit of the descriptor budget and the flow a unit of the
//! live-flow budget for its guest, like an outbound flow; beyond either it is dropped and
//! counted (`inbound_dropped`). An `accept()` that fails for want of descriptors is counted
//! as such ([`crate::descriptors`]). Once winding down for exit, listeners are closed and no
//! new one is taken. A guest whose MAC is not known yet gets its SYN only once it answers an
//! ARP request, or for an IPv6 address a neighbour solicitation ([`resolve`]). Forwards into
//! a guest's IPv6 address come from the gateway's IPv6 address.

use std::io;
use std::net::SocketAddr;

use mio::Token;
use socket2::Socket;
use stack::ingress::FlowKey;
use stack::tcp::{Connection, Endpoints};
use stack::time::Instant;
use stack::wire::{EthernetAddress, IpProtocol};

use super::{Flow, Kind, Listener, TcpTable, hold_budget};
use crate::budget::Refusal;
use crate::descriptors::{self, HostSocket, Unit};
use crate::handler::{KIND_TCP_LISTEN, Shared};
use crate::stats::Counters;
use crate::worker::FrameSink;

impl TcpTable {
    pub(crate) fn listen(&mut self, sh: &mut Shared, id: u64, socket: Socket, remote: SocketAddr) {
        if self.draining {
            return;
        }
        let token = sh.token(KIND_TCP_LISTEN);
        if sh.register(&socket, token).is_err() {
            return;
        }
        self.listen_tokens.insert(token, id);
        self.listeners.insert(
            id,
            Listener {
                socket,
                token,
                remote,
            },
        );
    }

    pub(crate) fn unlisten(&mut self, sh: &Shared, id: u64) {
        if let Some(l) = self.listeners.remove(&id) {
            sh.deregister_fd(&l.socket);
            self.listen_tokens.remove(&l.token);
        }
    }

    pub(crate) fn accept(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        token: Token,
        out: &dyn FrameSink,
    ) {
        let Some(id) = self.listen_tokens.get(&token).copied() else {
            return;
        };
        loop {
            let Some(l) = self.listeners.get(&id) else {
                return;
            };
            let remote = l.remote;
            let socket = match l.socket.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    if descriptors::is_exhausted(&e) {
                        descriptors::note_exhausted(
                            &sh.counters,
                            now,
                            "a forwarded connection",
                            &e,
                        );
                    }
                    return;
                }
            };
            let Some(unit) = Unit::take(&sh.budget) else {
                Counters::bump(&sh.counters.descriptor_limit);
                Counters::bump(&sh.counters.inbound_dropped);
                continue;
            };
            let socket = HostSocket::new(socket, unit);
            let Some(ours) = sh.config.gateway_for(remote.ip()) else {
                Counters::bump(&sh.counters.inbound_dropped);
                continue;
            };
            let mac = sh.control.neighbour(remote.ip());
            let flows = &self.flows;
            let port = sh.pick_port(IpProtocol::Tcp, remote, ours, now.as_micros(), |p| {
                flows.contains_key(&FlowKey {
                    protocol: IpProtocol::Tcp,
                    guest: remote,
                    remote: SocketAddr::new(ours, p),
                })
            });
            let (Some(port), Some(addrs)) = (port, crate::frame::addresses(ours, remote.ip()))
            else {
                Counters::bump(&sh.counters.inbound_dropped);
                continue;
            };
            if let Err(refusal) = sh.budget.tcp.take(remote.ip()) {
                Counters::bump(match refusal {
                    Refusal::Total => &sh.counters.tcp_flow_limit,
                    Refusal::Guest => &sh.counters.tcp_guest_limit,
                });
                Counters::bump(&sh.counters.inbound_dropped);
                continue;
            }
            if !self.make_room(sh) || socket.set_nonblocking(true).is_err() {
                sh.budget.tcp.give(remote.ip());
                Counters::bump(&sh.counters.inbound_dropped);
                continue;
            }
            let _ = socket.set_nodelay(true);
            let endpoints = Endpoints {
                addrs,
                local_port: port,
                remote_port: remote.port(),
            };
            let conn = Connection::connect(
                now,
                &self.engine_for(remote.ip(), self.default_mtu),
                endpoints,
            );
            let key = FlowKey {
                protocol: IpProtocol::Tcp,
                guest: remote,
                remote: SocketAddr::new(ours, port),
            };
            Counters::bump(&sh.counters.inbound_accepted);
            let inserted = self.insert(
                sh,
                key,
                conn,
                Some(socket),
                mac.unwrap_or(EthernetAddress::BROADCAST),
                Kind::Inbound,
                None,
                Vec::new(),
            );
            match self.flows.get_mut(&key) {
                Some(flow) if inserted => {
                    hold_budget(sh, flow, remote.ip());
                    // Not seen yet: the SYN waits for its MAC (see `resolve`).
                    flow.resolved = mac.is_some();
                }
                _ => {
                    sh.budget.tcp.give(remote.ip());
                    continue;
                }
            }
            self.drive(sh, key, now, out);
        }
    }
}

/// An inbound flow whose guest MAC was unknown: true once the control plane knows it (from
/// the guest's flows or its ARP to the gateway). Until then every segment the engine sends
/// is held back (counted) and an ARP request asks for the guest; the engine's SYN
/// retransmission (RFC 6298 §5, RFC 9293 §3.8.1) brings the next attempt.
pub(super) fn resolve(
    sh: &Shared,
    flow: &mut Flow,
    key: FlowKey,
    now: Instant,
    out: &dyn FrameSink,
) -> bool {
    if let Some(mac) = sh.control.neighbour(key.guest.ip()) {
        flow.guest_mac = mac;
        flow.resolved = true;
        return true;
    }
    let mut held = false;
    while flow.conn.poll_transmit(now).is_some() {
        held = true;
    }
    if held {
        Counters::bump(&sh.counters.inbound_unresolved);
        sh.ask_for(out, key.remote.ip(), key.guest.ip());
    }
    false
}
