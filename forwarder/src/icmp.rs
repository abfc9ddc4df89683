//! ICMP echo: a guest's echo request goes out through an unprivileged ping socket
//! (`SOCK_DGRAM`/`IPPROTO_ICMP`, allowed by `net.ipv4.ping_group_range`), one per guest
//! address and identifier; the kernel picks the socket's identifier and we put the guest's
//! back on the reply. Where ping sockets are refused (EACCES) and we hold CAP_NET_RAW, one raw
//! socket per worker sends the request with the guest's own identifier and reads every echo
//! reply on the host, keeping the ones it is waiting for. Either way each request waits at
//! most the configured timeout, and the number waiting is bounded. ICMPv6 echo (RFC 4443
//! §4) goes the same way through `IPPROTO_ICMPV6` sockets, whose checksum the kernel
//! computes (RFC 3542 §3.1).
//!
//! Each request leaves with the guest's TTL less one ([`crate::hops`]), and an ICMP error
//! about it (time exceeded, unreachable) — from a ping socket's error queue
//! (`IP_RECVERR`), or read whole by the raw socket — reaches the guest from the router that
//! sent it, quoting the guest's request ([`crate::icmp_errors`]), so `traceroute -I` works
//! through us.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

use mio::Token;
use socket2::{Domain, Protocol as SockProtocol, Socket, Type};
use stack::ingress::{FlowL4, IpHeader};
use stack::time::Instant;
use stack::wire::{
    EthernetAddress, Icmpv4Packet, Icmpv4Repr, Icmpv6Message, Icmpv6Packet, Icmpv6Repr,
    IpAddresses, Ipv4Packet, Ipv4Repr,
};

use crate::FastMap as HashMap;
use crate::config::Config;
use crate::descriptors::{self, Unit};
use crate::frame::addresses;
use crate::handler::{KIND_ICMP, Shared};
use crate::hops::Hops;
use crate::icmp_errors::{self, GuestError};
use crate::stats::Counters;
use crate::sys;
use crate::worker::{FlowFrame, FrameSink};

/// A ping socket idle this long is closed.
const PING_IDLE: Duration = Duration::from_secs(60);

struct PingFlow {
    socket: UdpSocket,
    ident: u16,
    last_active: Instant,
    hops: Hops,
    /// The socket's unit of the descriptor budget, given back when it closes.
    _unit: Unit,
}

struct Pending {
    guest: IpAddr,
    guest_mac: EthernetAddress,
    /// The address the guest pinged.
    remote: IpAddr,
    /// The guest's link MTU: a reply longer goes out in fragments.
    mtu: u16,
    /// The request's TOS or traffic class, `(dscp, ecn)`, which the reply carries back.
    tos: (u8, u8),
    deadline: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Unknown,
    Ping,
    Raw,
    Unavailable,
}

pub(crate) struct IcmpTable {
    mode: Mode,
    pings: HashMap<(IpAddr, u16), PingFlow>,
    ping_tokens: HashMap<Token, (IpAddr, u16)>,
    raw: Option<(UdpSocket, Token)>,
    raw6: Option<(UdpSocket, Token)>,
    raw_hops: (Hops, Hops),
    /// (real remote, guest identifier, sequence) → the request.
    pending: HashMap<(IpAddr, u16, u16), Pending>,
    max: usize,
    timeout: Duration,
    buf: Vec<u8>,
}

impl IcmpTable {
    pub(crate) fn new(config: &Config, workers: usize) -> IcmpTable {
        IcmpTable {
            mode: Mode::Unknown,
            pings: HashMap::default(),
            ping_tokens: HashMap::default(),
            raw: None,
            raw6: None,
            raw_hops: (Hops::default(), Hops::default()),
            pending: HashMap::default(),
            max: Config::share(config.max_icmp_requests, workers),
            timeout: config.icmp_timeout,
            buf: vec![0; 65536],
        }
    }

    pub(crate) fn handle(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        packet: &FlowFrame,
        _out: &dyn FrameSink,
    ) {
        let FlowL4::IcmpEcho {
            request: true,
            ident,
            seq_no,
        } = packet.packet.l4
        else {
            return;
        };
        let key = packet.packet.key;
        let real = match sh.nat.outbound(key.remote.ip()) {
            Ok(real) => real,
            Err(refusal) => {
                Counters::bump(&sh.counters.nat_refused);
                sh.flow_log.note(
                    now,
                    format_args!("ICMP echo refused: {refusal}"),
                    key.guest,
                    key.remote,
                );
                return;
            }
        };
        // Ping sockets (one per guest identifier) outlive their requests (`PING_IDLE`):
        // bounded like the requests, or new identifiers could use up our descriptors.
        let new_socket =
            self.mode != Mode::Raw && !self.pings.contains_key(&(key.guest.ip(), ident));
        if self.pending.len() >= self.max || (new_socket && self.pings.len() >= self.max) {
            Counters::bump(&sh.counters.icmp_limit);
            sh.flow_log
                .note(now, "ICMP echo over its bound", key.guest, key.remote);
            return;
        }
        let data = packet.packet.payload(&packet.frame);
        let Some(msg) = echo_request(key.guest.ip(), real, ident, seq_no, data) else {
            Counters::bump(&sh.counters.unsupported);
            return;
        };
        let dst = SocketAddr::new(real, 0);
        let v6 = real.is_ipv6();
        let sent = match self.socket_for(sh, key.guest.ip(), v6, ident, now) {
            Some((socket, hops)) => {
                hops.carry(socket, v6, &packet.packet, false);
                // An earlier request's ICMP error (its copy is in the error queue) may fail
                // this send once: then send again.
                match socket.send_to(&msg, dst) {
                    Err(e) if sys::is_icmp_error(&e) => socket.send_to(&msg, dst).is_ok(),
                    sent => sent.is_ok(),
                }
            }
            None => {
                Counters::bump(&sh.counters.icmp_no_socket);
                return;
            }
        };
        if !sent {
            return;
        }
        Counters::bump(&sh.counters.icmp_total);
        let previous = self.pending.insert(
            (real, ident, seq_no),
            Pending {
                guest: key.guest.ip(),
                guest_mac: packet.packet.eth.src_addr,
                remote: key.remote.ip(),
                mtu: packet.link_mtu,
                tos: match packet.packet.ip {
                    IpHeader::V4(ip) => (ip.dscp, ip.ecn),
                    IpHeader::V6(ip) => (ip.dscp, ip.ecn),
                },
                deadline: now + self.timeout,
            },
        );
        if previous.is_none() {
            Counters::bump(&sh.counters.icmp_open);
        }
    }

    /// The socket to send the guest's echo with, opening one if needed.
    fn socket_for(
        &mut self,
        sh: &mut Shared,
        guest: IpAddr,
        v6: bool,
        ident: u16,
        now: Instant,
    ) -> Option<(&UdpSocket, &mut Hops)> {
        if matches!(self.mode, Mode::Unknown | Mode::Ping) {
            if !self.pings.contains_key(&(guest, ident)) {
                let Some(unit) = Unit::take(&sh.budget) else {
                    Counters::bump(&sh.counters.descriptor_limit);
                    return None;
                };
                match open(Type::DGRAM, v6) {
                    Ok(socket) => {
                        let token = sh.token(KIND_ICMP);
                        sh.register(&socket, token).ok()?;
                        let _ = sys::set_recverr(&socket, v6);
                        self.mode = Mode::Ping;
                        self.ping_tokens.insert(token, (guest, ident));
                        self.pings.insert(
                            (guest, ident),
                            PingFlow {
                                socket,
                                ident,
                                last_active: now,
                                hops: Hops::default(),
                                _unit: unit,
                            },
                        );
                    }
                    // Out of descriptors says nothing about whether ping sockets work.
                    Err(e) if descriptors::is_exhausted(&e) => {
                        descriptors::note_exhausted(&sh.counters, now, "an echo request", &e);
                        return None;
                    }
                    Err(_) if self.mode == Mode::Unknown => self.mode = Mode::Raw,
                    Err(_) => return None,
                }
            }
            if let Some(flow) = self.pings.get_mut(&(guest, ident)) {
                flow.last_active = now;
                return Some((&flow.socket, &mut flow.hops));
            }
        }
        let raw = if v6 { &mut self.raw6 } else { &mut self.raw };
        if self.mode == Mode::Raw && raw.is_none() {
            match open(Type::RAW, v6) {
                Ok(socket) => {
                    let token = sh.token(KIND_ICMP);
                    sh.register(&socket, token).ok()?;
                    *raw = Some((socket, token));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "no ping socket (net.ipv4.ping_group_range) and no raw socket: ICMP echo is not forwarded");
                    self.mode = Mode::Unavailable;
                }
            }
        }
        let hops = if v6 {
            &mut self.raw_hops.1
        } else {
            &mut self.raw_hops.0
        };
        raw.as_ref().map(|(s, _)| (s, hops))
    }

    /// Passes the errors queued on a ping socket (`IP_RECVERR`) on to their guests.
    fn ping_errors(&mut self, sh: &mut Shared, token: Token, out: &dyn FrameSink) {
        let Some(&(guest, ident)) = self.ping_tokens.get(&token) else {
            return;
        };
        loop {
            let Some(err) = self
                .pings
                .get(&(guest, ident))
                .and_then(|f| sys::take_queued_error(&f.socket))
            else {
                return;
            };
            let Some(kind) =
                icmp_errors::classify(err.origin, err.icmp_type, err.icmp_code, err.info)
            else {
                continue;
            };
            // What was sent: the echo header, its sequence number at bytes 6-7.
            let Some(&[hi, lo]) = err.data.get(6..8).filter(|_| err.data_len >= 8) else {
                continue;
            };
            let seq_no = u16::from_be_bytes([hi, lo]);
            let from = err.offender.map(|o| o.ip());
            self.relay_error(sh, kind, err.dst.ip(), from, ident, seq_no, out);
        }
    }

    /// The error `kind` from `from` (the reporting router; `None`: the destination) about the
    /// guest's request to `real` with `ident` and `seq_no`, to its guest.
    #[allow(clippy::too_many_arguments)]
    fn relay_error(
        &mut self,
        sh: &mut Shared,
        kind: GuestError,
        real: IpAddr,
        from: Option<IpAddr>,
        ident: u16,
        seq_no: u16,
        out: &dyn FrameSink,
    ) {
        let Some(p) = self.pending.remove(&(real, ident, seq_no)) else {
            return;
        };
        Counters::dec(&sh.counters.icmp_open);
        let from = from.map_or(p.remote, |o| sh.nat.inbound(o));
        let Some(quoted) = addresses(p.guest, p.remote) else {
            return;
        };
        let quote = icmp_errors::echo_quote(quoted, ident, seq_no);
        let frame =
            icmp_errors::error_frame(&mut sh.framer, p.guest_mac, from, p.guest, kind, &quote);
        Counters::bump(&sh.counters.icmp_errors_relayed);
        sh.send_bytes(out, frame);
    }

    pub(crate) fn ready(
        &mut self,
        sh: &mut Shared,
        _now: Instant,
        token: Token,
        out: &dyn FrameSink,
    ) {
        let raw4 = self.raw.as_ref().is_some_and(|(_, t)| *t == token);
        let raw6 = self.raw6.as_ref().is_some_and(|(_, t)| *t == token);
        let raw = raw4 || raw6;
        if !raw {
            self.ping_errors(sh, token, out);
        }
        loop {
            let socket = if raw4 {
                self.raw.as_ref().map(|(s, _)| s)
            } else if raw6 {
                self.raw6.as_ref().map(|(s, _)| s)
            } else {
                self.ping_tokens
                    .get(&token)
                    .and_then(|k| self.pings.get(k))
                    .map(|f| &f.socket)
            };
            let Some(socket) = socket else { return };
            let (n, peer) = match socket.recv_from(&mut self.buf) {
                Ok(r) => r,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(_) => continue,
            };
            let bytes = self.buf.get(..n).unwrap_or_default();
            let reply = if peer.is_ipv6() {
                // Raw or ping, an ICMPv6 socket hands over the message alone, its checksum
                // verified by the kernel.
                echo_reply_v6(bytes)
            } else {
                echo_reply_v4(bytes, raw4)
            };
            let Some((ident, seq_no, data)) = reply else {
                // A raw socket reads every ICMP error too: one about a request we sent?
                if raw
                    && let Some((kind, real, ident, seq_no)) =
                        icmp_errors::quoted_echo(bytes, peer.is_ipv6())
                {
                    self.relay_error(sh, kind, real, Some(peer.ip()), ident, seq_no, out);
                }
                continue;
            };
            let ident = if raw {
                ident
            } else {
                match self.ping_tokens.get(&token).and_then(|k| self.pings.get(k)) {
                    Some(f) => f.ident,
                    None => continue,
                }
            };
            let Some(p) = self.pending.remove(&(peer.ip(), ident, seq_no)) else {
                continue;
            };
            Counters::dec(&sh.counters.icmp_open);
            if let Some(addrs) = addresses(p.remote, p.guest) {
                let mtu = usize::from(p.mtu);
                let sent = sh.framer.send_echo_reply(
                    out,
                    mtu,
                    p.guest_mac,
                    addrs,
                    p.tos,
                    (ident, seq_no),
                    data,
                );
                sh.count_sent(sent, data.len() as u64);
            }
        }
    }
}

/// An echo request to `real` carrying the guest's identifier, sequence number and data.
/// `None` when the guest's and the real address families differ.
fn echo_request(
    guest: IpAddr,
    real: IpAddr,
    ident: u16,
    seq_no: u16,
    data: &[u8],
) -> Option<Vec<u8>> {
    match addresses(guest, real)? {
        IpAddresses::V4 { .. } => {
            let request = Icmpv4Repr::EchoRequest {
                ident,
                seq_no,
                data,
            };
            let mut msg = vec![0u8; request.buffer_len()];
            request.emit(&mut Icmpv4Packet::new_unchecked(&mut msg[..]));
            Some(msg)
        }
        addrs @ IpAddresses::V6 { .. } => {
            let request = Icmpv6Repr::EchoRequest {
                ident,
                seq_no,
                data,
            };
            let mut msg = vec![0u8; request.buffer_len()];
            // The checksum written here is over the guest's addresses; the kernel rewrites it.
            request.emit(&mut Icmpv6Packet::new_unchecked(&mut msg[..]), &addrs);
            Some(msg)
        }
    }
}

/// (identifier, sequence, data) of an ICMPv6 echo reply.
fn echo_reply_v6(bytes: &[u8]) -> Option<(u16, u16, &[u8])> {
    let packet = Icmpv6Packet::new_checked(bytes).ok()?;
    (packet.msg_type() == Icmpv6Message::EchoReply && packet.msg_code() == 0)
        .then(|| (packet.echo_ident(), packet.echo_seq_no(), packet.payload()))
}

/// (identifier, sequence, data) of an ICMP echo reply; a raw socket hands over the IP header
/// too, a ping socket only the ICMP message.
fn echo_reply_v4(bytes: &[u8], raw: bool) -> Option<(u16, u16, &[u8])> {
    let icmp_bytes = if raw {
        let packet = Ipv4Packet::new_checked(bytes).ok()?;
        Ipv4Repr::parse(&packet).ok()?;
        packet.payload()
    } else {
        bytes
    };
    let packet = Icmpv4Packet::new_checked(icmp_bytes).ok()?;
    match Icmpv4Repr::parse(&packet) {
        Ok(Icmpv4Repr::EchoReply {
            ident,
            seq_no,
            data,
        }) => Some((ident, seq_no, data)),
        _ => None,
    }
}

impl IcmpTable {
    /// Forgets the pending echo requests of a guest with one of `macs` (its link went away);
    /// returns how many.
    pub(crate) fn remove_guest(
        &mut self,
        sh: &mut Shared,
        macs: &std::collections::HashSet<EthernetAddress>,
    ) -> usize {
        let before = self.pending.len();
        self.pending.retain(|_, p| !macs.contains(&p.guest_mac));
        let gone = before - self.pending.len();
        for _ in 0..gone {
            Counters::dec(&sh.counters.icmp_open);
        }
        gone
    }

    /// Gives back the memory a burst of echo requests left behind (see [`crate::shrink_map`]).
    pub(crate) fn shrink(&mut self) -> bool {
        let shrank = crate::shrink_map(&mut self.pings) | crate::shrink_map(&mut self.pending);
        crate::shrink_map(&mut self.ping_tokens);
        shrank
    }

    pub(crate) fn sweep(&mut self, sh: &mut Shared, now: Instant) {
        let before = self.pending.len();
        self.pending.retain(|_, p| p.deadline > now);
        for _ in self.pending.len()..before {
            Counters::bump(&sh.counters.icmp_expired);
            Counters::dec(&sh.counters.icmp_open);
        }
        let idle: Vec<(IpAddr, u16)> = self
            .pings
            .iter()
            .filter(|(_, f)| now.saturating_duration_since(f.last_active) >= PING_IDLE)
            .map(|(k, _)| *k)
            .collect();
        for k in idle {
            if let Some(f) = self.pings.remove(&k) {
                sh.deregister_fd(&f.socket);
                self.ping_tokens.retain(|_, v| *v != k);
            }
        }
    }
}

fn open(ty: Type, v6: bool) -> std::io::Result<UdpSocket> {
    let socket = if v6 {
        Socket::new(Domain::IPV6, ty, Some(SockProtocol::ICMPV6))?
    } else {
        Socket::new(Domain::IPV4, ty, Some(SockProtocol::ICMPV4))?
    };
    socket.set_nonblocking(true)?;
    Ok(UdpSocket::from(socket))
}
