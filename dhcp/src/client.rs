//! A DHCPv4 client, sans-IO: the state machine of RFC 2131 §4.4 (figure 5) for one interface.
//!
//! The caller owns the link and the clock. It hands [`Client::handle_message`] the UDP payload
//! of every datagram that reached port 68 for this client's MAC, calls
//! [`Client::handle_timeout`] when [`Client::poll_timeout`] says, and sends what
//! [`Client::poll_transmit`] returns (from port 68 to port 67). [`Client::poll_event`] says when
//! a lease was bound (or renewed) and when it was lost, so the caller can configure or
//! unconfigure the interface.
//!
//! Contracts:
//! - No input can make the client panic: messages are read through [`Repr::parse`], and only
//!   a BOOTREPLY with our transaction id and our `chaddr` is looked at.
//! - Bounded: one message waits to be sent at a time (a newer one replaces it), and at most
//!   [`MAX_EVENTS`] events wait to be polled (the oldest is dropped first).
//! - Retransmission: a DISCOVER or a REQUEST not answered is sent again after 1 s, then 2, 4,
//!   8 and 16 s. RFC 2131 §4.1 suggests starting at 4 s and doubling up to 64 s for a network
//!   that may be congested; our server is a gateway one virtual link away, so the first
//!   retry comes sooner. A REQUEST in SELECTING answered by nothing after [`MAX_REQUESTS`]
//!   tries sends the client back to INIT (§4.4.1).
//! - Lease times: T1 and T2 from the ACK, or half and seven eighths of the lease (§4.4.5).
//!   RENEWING asks the server by unicast, REBINDING by broadcast; at the end of the lease the
//!   address is given up ([`Event::Lost`]) and the client starts over.

use core::net::Ipv4Addr;
use core::time::Duration;
use std::collections::VecDeque;
use std::time::Instant;

use stack::wire::EthernetAddress;

use crate::message::{MessageType, Op, Packet, Repr};
use crate::options::code;

/// Events waiting to be polled at most.
pub const MAX_EVENTS: usize = 4;
/// REQUESTs sent in SELECTING before going back to INIT.
pub const MAX_REQUESTS: u32 = 5;
/// The first retransmission delay, doubled after each try up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(16);
/// Lease time assumed when the ACK carries none (RFC 2131 §4.3.1 makes option 51 a MUST in
/// an ACK to a REQUEST; a server that leaves it out gets an hour).
const DEFAULT_LEASE: Duration = Duration::from_secs(3600);
/// The shortest lease we act on, so a server that grants seconds does not make us spin.
const MIN_LEASE: Duration = Duration::from_secs(10);
/// The prefix length when the server sends no subnet mask (option 1).
const DEFAULT_PREFIX_LEN: u8 = 24;
/// The options we ask for (option 55): mask, router, DNS, domain name, MTU, search list.
const PARAMETERS: [u8; 6] = [
    code::SUBNET_MASK,
    code::ROUTER,
    code::DNS_SERVERS,
    code::DOMAIN_NAME,
    code::INTERFACE_MTU,
    code::DOMAIN_SEARCH,
];

/// What the server granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    /// The first router (option 3).
    pub router: Option<Ipv4Addr>,
    pub dns_servers: Vec<Ipv4Addr>,
    pub domain_name: Option<String>,
    pub search: Vec<String>,
    pub mtu: Option<u16>,
    /// The server identifier (option 54), or the address the ACK came from.
    pub server: Ipv4Addr,
    pub lease_time: Duration,
}

/// What happened to the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A lease was bound or renewed: configure the interface with it.
    Bound(Lease),
    /// The lease ended (expired or refused): remove the address.
    Lost,
}

/// A message to send from port 68 to port 67.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub message: Repr,
    /// The IPv4 source: 0.0.0.0 until an address is bound (RFC 2131 §4.1).
    pub src: Ipv4Addr,
    /// 255.255.255.255 (Ethernet broadcast) or the server (unicast, when RENEWING).
    pub dst: Ipv4Addr,
}

impl Transmit {
    /// Whether this goes out as an Ethernet broadcast.
    pub fn is_broadcast(&self) -> bool {
        self.dst == Ipv4Addr::BROADCAST
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Sending DISCOVERs, waiting for an OFFER.
    Selecting,
    /// Sent a REQUEST for `offer` (from `server`), waiting for the ACK.
    Requesting {
        offer: Ipv4Addr,
        server: Ipv4Addr,
    },
    Bound(Bound),
    /// Past T1: asking `lease.server` by unicast.
    Renewing(Bound),
    /// Past T2: asking any server by broadcast.
    Rebinding(Bound),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Bound {
    lease: Lease,
    t1: Instant,
    t2: Instant,
    expires: Instant,
}

/// The client. See the module docs.
#[derive(Debug)]
pub struct Client {
    mac: EthernetAddress,
    hostname: Option<String>,
    state: State,
    xid: u32,
    /// When the current message goes (again), or the state's next deadline.
    timer: Instant,
    /// Messages sent in this exchange.
    tries: u32,
    transmit: Option<Transmit>,
    events: VecDeque<Event>,
}

impl Client {
    /// A client for `mac` that sends its first DISCOVER at `now`. `xid` seeds the transaction
    /// ids (RFC 2131 §4.4.1 wants them random, so that clients do not share them).
    pub fn new(mac: EthernetAddress, xid: u32, now: Instant) -> Client {
        Client {
            mac,
            hostname: None,
            state: State::Selecting,
            xid,
            timer: now,
            tries: 0,
            transmit: None,
            events: VecDeque::new(),
        }
    }

    /// Sends `hostname` (option 12) with every request.
    pub fn with_hostname(mut self, hostname: Option<String>) -> Client {
        self.hostname = hostname;
        self
    }

    /// The lease held now, if any (also while renewing or rebinding it).
    pub fn lease(&self) -> Option<&Lease> {
        match &self.state {
            State::Bound(b) | State::Renewing(b) | State::Rebinding(b) => Some(&b.lease),
            State::Selecting | State::Requesting { .. } => None,
        }
    }

    /// When [`Client::handle_timeout`] has work next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        Some(self.timer)
    }

    /// The next message to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmit.take()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Starts over from INIT at `now` (the link was reset): a lease held is given up.
    pub fn restart(&mut self, now: Instant) {
        if self.lease().is_some() {
            self.event(Event::Lost);
        }
        self.enter_selecting(now);
    }

    /// Asks to renew a held lease at `now` rather than at T1 (the server may have restarted
    /// and forgotten it); without a lease, nothing changes.
    pub fn renew(&mut self, now: Instant) {
        if self.lease().is_some() {
            self.timer = now;
            self.tries = 0;
        }
    }

    /// Runs what is due at `now`: a (re)transmission or a lease deadline.
    pub fn handle_timeout(&mut self, now: Instant) {
        if now < self.timer {
            return;
        }
        match self.state.clone() {
            State::Selecting => {
                let discover = self.request(MessageType::Discover, Ipv4Addr::UNSPECIFIED);
                self.send(discover, Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST, now);
            }
            State::Requesting { offer, server } => {
                if self.tries >= MAX_REQUESTS {
                    // RFC 2131 §4.4.1: no ACK or NAK after retransmissions: back to INIT.
                    self.enter_selecting(now);
                    return self.handle_timeout(now);
                }
                let mut request = self.request(MessageType::Request, Ipv4Addr::UNSPECIFIED);
                request.requested_ip = Some(offer);
                request.server_id = Some(server);
                self.send(request, Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST, now);
            }
            State::Bound(b) | State::Renewing(b) | State::Rebinding(b) if now >= b.expires => {
                // RFC 2131 §4.4.5: the lease ran out: stop using the address, start over.
                self.event(Event::Lost);
                self.enter_selecting(now);
                self.handle_timeout(now);
            }
            State::Bound(b) | State::Renewing(b) | State::Rebinding(b) => {
                let rebinding = now >= b.t2;
                let request = self.request(MessageType::Request, b.lease.address);
                let (dst, deadline) = if rebinding {
                    (Ipv4Addr::BROADCAST, b.expires)
                } else {
                    (b.lease.server, b.t2)
                };
                let was_rebinding = matches!(self.state, State::Rebinding(_));
                if rebinding != was_rebinding || matches!(self.state, State::Bound(_)) {
                    self.tries = 0;
                }
                self.state = if rebinding {
                    State::Rebinding(b.clone())
                } else {
                    State::Renewing(b.clone())
                };
                self.send(request, b.lease.address, dst, now);
                // §4.4.5: retransmit before the next deadline, not past it.
                self.timer = self.timer.min(deadline);
            }
        }
    }

    /// Handles the payload of a datagram to port 68.
    pub fn handle_message(&mut self, now: Instant, payload: &[u8]) {
        let Ok(packet) = Packet::new_checked(payload) else {
            return;
        };
        let Ok(reply) = Repr::parse(&packet) else {
            return;
        };
        if reply.op != Op::Reply || reply.xid != self.xid || reply.chaddr != self.mac {
            return;
        }
        match (&self.state, reply.message_type) {
            (State::Selecting, MessageType::Offer) => {
                let Some(server) = reply.server_id else {
                    return;
                };
                if !usable(reply.yiaddr) {
                    return;
                }
                // §4.4.1: take the first offer and ask for it.
                self.state = State::Requesting {
                    offer: reply.yiaddr,
                    server,
                };
                self.tries = 0;
                self.timer = now;
                self.handle_timeout(now);
            }
            (State::Requesting { offer, .. }, MessageType::Ack) if reply.yiaddr == *offer => {
                self.bind(now, &reply);
            }
            (State::Renewing(b) | State::Rebinding(b), MessageType::Ack)
                if reply.yiaddr == b.lease.address =>
            {
                self.bind(now, &reply);
            }
            (
                State::Requesting { .. } | State::Renewing(_) | State::Rebinding(_),
                MessageType::Nak,
            ) => {
                // §4.4.1 / §4.4.5: a NAK means start over; a held address is given up.
                if self.lease().is_some() {
                    self.event(Event::Lost);
                }
                self.enter_selecting(now);
                self.handle_timeout(now);
            }
            _ => {}
        }
    }

    fn bind(&mut self, now: Instant, ack: &Repr) {
        let server = ack.server_id.unwrap_or(ack.siaddr);
        let lease_time = ack
            .lease_time
            .map_or(DEFAULT_LEASE, |s| Duration::from_secs(u64::from(s)))
            .max(MIN_LEASE);
        // §4.4.5: T1 defaults to half the lease, T2 to seven eighths; both stay inside it.
        let t1 = ack
            .renewal_time
            .map_or(lease_time / 2, |s| Duration::from_secs(u64::from(s)))
            .min(lease_time);
        let t2 = ack
            .rebinding_time
            .map_or(lease_time * 7 / 8, |s| Duration::from_secs(u64::from(s)))
            .clamp(t1, lease_time);
        let prefix_len = ack
            .subnet_mask
            .map_or(DEFAULT_PREFIX_LEN, |m| u32::from(m).leading_ones() as u8);
        let lease = Lease {
            address: ack.yiaddr,
            prefix_len,
            router: ack.routers.first().copied(),
            dns_servers: ack.dns_servers.clone(),
            domain_name: ack.domain_name.clone(),
            search: ack.domain_search.names().to_vec(),
            mtu: ack.interface_mtu,
            server,
            lease_time,
        };
        self.state = State::Bound(Bound {
            lease: lease.clone(),
            t1: now + t1,
            t2: now + t2,
            expires: now + lease_time,
        });
        self.timer = now + t1;
        self.tries = 0;
        self.transmit = None;
        self.event(Event::Bound(lease));
    }

    fn enter_selecting(&mut self, now: Instant) {
        self.state = State::Selecting;
        self.xid = self.xid.wrapping_mul(0x9e37_79b9).wrapping_add(1);
        self.tries = 0;
        self.timer = now;
        self.transmit = None;
    }

    /// A request of `message_type` with our identity, `ciaddr` and the parameters we want.
    fn request(&self, message_type: MessageType, ciaddr: Ipv4Addr) -> Repr {
        let mut m = Repr::new(Op::Request, message_type, self.xid, self.mac);
        m.ciaddr = ciaddr;
        m.parameter_request_list = Some(PARAMETERS.to_vec());
        m.hostname = self.hostname.clone();
        m
    }

    fn send(&mut self, message: Repr, src: Ipv4Addr, dst: Ipv4Addr, now: Instant) {
        let shift = self.tries.min(4);
        self.timer = now + (FIRST_RETRY * (1 << shift)).min(MAX_RETRY);
        self.tries = self.tries.saturating_add(1);
        self.transmit = Some(Transmit { message, src, dst });
    }

    fn event(&mut self, event: Event) {
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }
}

/// Whether `ip` can be a host's address.
fn usable(ip: Ipv4Addr) -> bool {
    !(ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || ip.is_loopback())
}

#[cfg(test)]
#[path = "client_tests.rs"]
mod tests;
