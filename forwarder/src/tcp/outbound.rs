//! Outbound TCP: a guest's SYN to anywhere but the gateway (under `--map-gateway`, to any of
//! the gateway's ports but the API's, through its NAT rule to the host's loopback) becomes a
//! non-blocking connect from a host socket, and the guest gets its SYN-ACK only once that
//! connect completes.
//!
//! Before the connect starts, the SYN must get past, in order: NAT policy, the live-flow
//! budget (in total and for its guest), room in the table (the oldest TIME-WAIT flow is
//! reclaimed if need be), a fair share of the connects in flight (for its guest and its
//! destination, [`crate::budget::Connects`]) and a unit of the descriptor budget
//! ([`crate::descriptors`]). Each refusal is an RST to the guest, its own counter and a
//! debug line ([`crate::events`]); a `socket()` that fails for want of descriptors is
//! counted as such, not as a refusal by the host. Refused by the host → RST; unreachable →
//! ICMP host unreachable quoting the guest's SYN; no answer within the connect timeout →
//! RST. Every unit taken is given back on every path that does not end in a flow.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol as SockProtocol, Socket, Type};
use stack::ingress::FlowKey;
use stack::tcp::Connection;
use stack::time::Instant;

use super::{Kind, Syn, TcpTable, hold_budget, send_rst};
use crate::budget::{ConnectRefusal, Refusal};
use crate::descriptors::{self, HostSocket, Unit};
use crate::frame::quote_of;
use crate::handler::Shared;
use crate::stats::Counters;
use crate::worker::FrameSink;

impl TcpTable {
    /// A guest's SYN to a host destination: starts the connect, or refuses it (see the module
    /// docs).
    pub(super) fn open_outbound(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        syn: &Syn<'_>,
        out: &dyn FrameSink,
    ) {
        let key = syn.key;
        let real = match sh.nat.outbound(key.remote.ip()) {
            Ok(real) => real,
            Err(refusal) => {
                Counters::bump(&sh.counters.nat_refused);
                sh.flow_log.note(
                    now,
                    format_args!("TCP refused: {refusal}"),
                    key.guest,
                    key.remote,
                );
                send_rst(sh, out, syn.mac, syn.addrs, syn.repr);
                return;
            }
        };
        let guest = key.guest.ip();
        if let Err(refusal) = sh.budget.tcp.take(guest) {
            let (counter, what) = match refusal {
                Refusal::Total => (&sh.counters.tcp_flow_limit, "TCP over --max-tcp-flows"),
                Refusal::Guest => (
                    &sh.counters.tcp_guest_limit,
                    "TCP over --max-tcp-flows-per-guest",
                ),
            };
            Counters::bump(counter);
            sh.flow_log.note(now, what, key.guest, key.remote);
            send_rst(sh, out, syn.mac, syn.addrs, syn.repr);
            return;
        }
        if !self.make_room(sh) {
            sh.budget.tcp.give(guest);
            Counters::bump(&sh.counters.tcp_flow_limit);
            sh.flow_log
                .note(now, "TCP table full", key.guest, key.remote);
            send_rst(sh, out, syn.mac, syn.addrs, syn.repr);
            return;
        }
        if let Err(refusal) = sh.budget.connects.take(guest, key.remote) {
            sh.budget.tcp.give(guest);
            let (counter, what) = match refusal {
                ConnectRefusal::Total => (
                    &sh.counters.tcp_connect_limit,
                    "TCP connect over --max-connects",
                ),
                ConnectRefusal::Guest => (
                    &sh.counters.tcp_connect_guest_share,
                    "TCP connect over its guest's share of --max-connects",
                ),
                ConnectRefusal::Destination => (
                    &sh.counters.tcp_connect_destination_share,
                    "TCP connect over its destination's share of --max-connects",
                ),
            };
            Counters::bump(counter);
            sh.flow_log.note(now, what, key.guest, key.remote);
            send_rst(sh, out, syn.mac, syn.addrs, syn.repr);
            return;
        }
        let Some(unit) = Unit::take(&sh.budget) else {
            sh.budget.tcp.give(guest);
            sh.budget.connects.give(guest, key.remote);
            Counters::bump(&sh.counters.descriptor_limit);
            sh.flow_log.note(
                now,
                "TCP over the host sockets the open-file limit leaves",
                key.guest,
                key.remote,
            );
            send_rst(sh, out, syn.mac, syn.addrs, syn.repr);
            return;
        };
        let dst = SocketAddr::new(real, key.remote.port());
        let socket = match start_connect(dst) {
            Ok(s) => HostSocket::new(s, unit),
            Err(e) => {
                sh.budget.tcp.give(guest);
                sh.budget.connects.give(guest, key.remote);
                sh.flow_log.note(
                    now,
                    format_args!("TCP connect to {dst} failed: {e}"),
                    key.guest,
                    key.remote,
                );
                if descriptors::is_exhausted(&e) {
                    descriptors::note_exhausted(&sh.counters, now, "a guest connection", &e);
                    send_rst(sh, out, syn.mac, syn.addrs, syn.repr);
                } else if is_unreachable(&e) {
                    Counters::bump(&sh.counters.tcp_unreachable);
                    let quote = quote_of(syn.frame);
                    let frame = sh
                        .framer
                        .unreachable(syn.mac, syn.addrs.reversed(), false, &quote);
                    sh.send(out, frame);
                } else {
                    Counters::bump(&sh.counters.tcp_refused);
                    send_rst(sh, out, syn.mac, syn.addrs, syn.repr);
                }
                return;
            }
        };
        let conn = Connection::syn_received(
            now,
            &self.engine_for(guest, syn.mtu),
            syn.endpoints,
            syn.repr,
        );
        let deadline = now + self.connect_timeout;
        let inserted = self.insert(
            sh,
            key,
            conn,
            Some(socket),
            syn.mac,
            Kind::Outbound,
            Some(deadline),
            quote_of(syn.frame),
        );
        match self.flows.get_mut(&key) {
            Some(flow) if inserted => {
                flow.offloads = syn.offloads;
                hold_budget(sh, flow, guest);
                Counters::bump(&sh.counters.tcp_connecting);
            }
            _ => {
                sh.budget.tcp.give(guest);
                sh.budget.connects.give(guest, key.remote);
                return;
            }
        }
        self.schedule(key);
    }

    /// A connecting flow's host socket is ready: the connect completed (the guest gets its
    /// SYN-ACK), was refused (RST) or found no route (ICMP, and the flow goes). Returns
    /// whether the flow is still there to drive.
    pub(super) fn connect_ready(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        key: FlowKey,
        out: &dyn FrameSink,
    ) -> bool {
        let Some(flow) = self.flows.get_mut(&key) else {
            return false;
        };
        let Some(host) = &flow.host else {
            return false;
        };
        let error = match host.take_error() {
            Ok(Some(e)) | Err(e) => Some(e),
            Ok(None) => match host.peer_addr() {
                Ok(_) => None,
                // Not connected yet: a spurious wake-up.
                Err(_) => return false,
            },
        };
        if let Some(e) = &error {
            sh.flow_log.note(
                now,
                format_args!("TCP connect failed: {e}"),
                key.guest,
                key.remote,
            );
        }
        match error {
            None => {
                flow.host_connected = true;
                flow.conn.accept(now);
                self.connect_done(sh, key);
            }
            Some(e) if is_unreachable(&e) => {
                Counters::bump(&sh.counters.tcp_unreachable);
                let quote = std::mem::take(&mut flow.quote);
                let addrs = flow.conn.endpoints().addrs;
                let frame = sh.framer.unreachable(flow.guest_mac, addrs, false, &quote);
                sh.send(out, frame);
                self.remove(sh, key);
                return false;
            }
            Some(_) => {
                Counters::bump(&sh.counters.tcp_refused);
                flow.conn.refuse(now);
                self.connect_done(sh, key);
            }
        }
        true
    }

    pub(super) fn connect_done(&mut self, sh: &mut Shared, key: FlowKey) {
        if let Some(flow) = self.flows.get_mut(&key)
            && flow.connecting.take().is_some()
        {
            flow.quote = Vec::new();
            sh.budget.connects.give(key.guest.ip(), key.remote);
            Counters::dec(&sh.counters.tcp_connecting);
        }
    }
}

fn is_unreachable(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENETUNREACH | libc::EHOSTUNREACH)
    )
}

fn start_connect(dst: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(
        Domain::for_address(dst),
        Type::STREAM,
        Some(SockProtocol::TCP),
    )?;
    socket.set_nonblocking(true)?;
    socket.set_nodelay(true)?;
    match socket.connect(&dst.into()) {
        Ok(()) => Ok(socket),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(socket),
        Err(e) => Err(e),
    }
}
