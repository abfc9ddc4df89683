//! Building a reply: which fields and options it carries (RFC 2131 §4.3.1 table 3, RFC 6842),
//! how it is trimmed to the client's maximum message size and the link MTU, and where it goes
//! (RFC 2131 §4.1).

use super::{Answer, Server, is_set};
use crate::message::{self, MessageType, Op, Repr};
use crate::options::code;
use crate::stats::DropReason;
use core::net::Ipv4Addr;
use stack::wire::EthernetAddress;

/// Where to send a reply (RFC 2131 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Destination {
    /// To 255.255.255.255 port 68, Ethernet broadcast.
    Broadcast,
    /// To `ip` port 68, in a frame addressed to `mac` (the request's `chaddr`) without ARP: a
    /// client that is still being configured cannot answer ARP for its new address.
    Client { ip: Ipv4Addr, mac: EthernetAddress },
    /// To the relay agent at `giaddr`, port 67, reached like any other host.
    Relay(Ipv4Addr),
}

impl Destination {
    /// The destination IP address.
    pub fn ip(&self) -> Ipv4Addr {
        match *self {
            Destination::Broadcast => Ipv4Addr::BROADCAST,
            Destination::Client { ip, .. } | Destination::Relay(ip) => ip,
        }
    }

    /// The destination UDP port.
    pub fn port(&self) -> u16 {
        match self {
            Destination::Relay(_) => message::SERVER_PORT,
            _ => message::CLIENT_PORT,
        }
    }

    /// The destination MAC, when it is known without ARP.
    pub fn mac(&self) -> Option<EthernetAddress> {
        match *self {
            Destination::Broadcast => Some(EthernetAddress::BROADCAST),
            Destination::Client { mac, .. } => Some(mac),
            Destination::Relay(_) => None,
        }
    }
}

/// A reply to send from the server's address, port 67.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub message_type: MessageType,
    pub destination: Destination,
    /// The DHCP message: the UDP payload.
    pub payload: Vec<u8>,
}

impl Server {
    pub(super) fn reply(&self, req: &Repr, answer: Answer) -> Result<Reply, DropReason> {
        let message_type = match answer {
            Answer::Offer(_) => MessageType::Offer,
            Answer::Ack(_) | Answer::InformAck => MessageType::Ack,
            Answer::Nak(_) => MessageType::Nak,
        };
        // RFC 2131 §4.3.1 table 3 for the fields; RFC 6842 for echoing option 61.
        let mut r = Repr::new(Op::Reply, message_type, req.xid, req.chaddr);
        r.broadcast = req.broadcast;
        r.giaddr = req.giaddr;
        r.server_id = Some(self.config.server_addr);
        r.client_id = req.client_id.clone();
        match answer {
            Answer::Offer(ip) | Answer::Ack(ip) => {
                if message_type == MessageType::Ack {
                    r.ciaddr = req.ciaddr;
                }
                r.yiaddr = ip;
                let secs = self.config.lease_time.as_secs();
                // Validated below 2^32 - 1 seconds.
                r.lease_time = Some(secs as u32);
                r.renewal_time = Some((secs / 2) as u32);
                r.rebinding_time = Some((secs * 7 / 8) as u32);
                self.add_configuration(&mut r, req);
            }
            Answer::InformAck => {
                r.ciaddr = req.ciaddr;
                self.add_configuration(&mut r, req);
            }
            Answer::Nak(text) => {
                r.message = Some(text.to_owned());
                // RFC 2131 §4.1: a NAK through a relay has the broadcast bit set.
                if is_set(req.giaddr) {
                    r.broadcast = true;
                }
            }
        }
        fit(&mut r, self.max_reply_len(req))?;
        let destination = destination(req, &r, answer);
        let payload = r.to_bytes().map_err(|_| DropReason::EmitFailed)?;
        Ok(Reply {
            message_type,
            destination,
            payload,
        })
    }

    fn add_configuration(&self, r: &mut Repr, req: &Repr) {
        let wants = |code: u8| {
            req.parameter_request_list
                .as_ref()
                .is_none_or(|list| list.contains(&code))
        };
        let config = &self.config;
        r.subnet_mask = Some(config.subnet.netmask());
        r.routers = config.routers.clone();
        r.dns_servers = config.dns_servers.clone();
        if wants(code::BROADCAST_ADDRESS) {
            r.broadcast_address = Some(config.subnet.broadcast());
        }
        if wants(code::DOMAIN_NAME) {
            r.domain_name = config.domain_name.clone();
        }
        if wants(code::DOMAIN_SEARCH) {
            r.domain_search = self.domain_search.clone();
        }
        if wants(code::INTERFACE_MTU) {
            r.interface_mtu = config.mtu;
        }
    }
}

impl Server {
    /// The longest DHCP message the client can take: the smaller of its maximum message size
    /// (option 57, never taken below the 576 bytes every client accepts, RFC 2131 §2 and
    /// RFC 2132 §9.10) and the link MTU ([`Config::mtu`](crate::Config::mtu), the option 26
    /// we announce), each an IP datagram, less 20 bytes of IP and 8 of UDP header.
    fn max_reply_len(&self, req: &Repr) -> usize {
        let client = usize::from(req.max_message_size.unwrap_or(0)).max(576);
        let link = self.config.mtu.map_or(usize::MAX, usize::from);
        client.min(link).saturating_sub(IP_UDP_HEADERS_LEN)
    }
}

/// An IPv4 header without options and a UDP header.
const IP_UDP_HEADERS_LEN: usize = 28;

/// Makes the reply fit `limit` bytes. The options a client cannot do without stay: message
/// type, server identifier, lease time, subnet mask, routers, DNS servers, and the client
/// identifier it sent (RFC 6842 §3: the server MUST echo it). The optional ones then go back
/// in this order, each only if it still fits: T1, T2, interface MTU (what a small-MTU link
/// most needs told), broadcast address, domain name, domain search list, a NAK's message.
/// A reply whose required options alone do not fit is not sent.
fn fit(r: &mut Repr, limit: usize) -> Result<(), DropReason> {
    if r.buffer_len() <= limit {
        return Ok(());
    }
    let renewal_time = core::mem::take(&mut r.renewal_time);
    let rebinding_time = core::mem::take(&mut r.rebinding_time);
    let interface_mtu = core::mem::take(&mut r.interface_mtu);
    let broadcast_address = core::mem::take(&mut r.broadcast_address);
    let domain_name = core::mem::take(&mut r.domain_name);
    let domain_search = core::mem::take(&mut r.domain_search);
    let message = core::mem::take(&mut r.message);
    if r.buffer_len() > limit {
        return Err(DropReason::ReplyTooLarge);
    }
    put_back(r, limit, |r| &mut r.renewal_time, renewal_time);
    put_back(r, limit, |r| &mut r.rebinding_time, rebinding_time);
    put_back(r, limit, |r| &mut r.interface_mtu, interface_mtu);
    put_back(r, limit, |r| &mut r.broadcast_address, broadcast_address);
    put_back(r, limit, |r| &mut r.domain_name, domain_name);
    put_back(r, limit, |r| &mut r.domain_search, domain_search);
    put_back(r, limit, |r| &mut r.message, message);
    Ok(())
}

/// Sets the option `slot` names to `value`, and back to absent if the reply then exceeds
/// `limit` bytes.
fn put_back<T: Default>(r: &mut Repr, limit: usize, slot: fn(&mut Repr) -> &mut T, value: T) {
    *slot(r) = value;
    if r.buffer_len() > limit {
        *slot(r) = T::default();
    }
}

/// RFC 2131 §4.1: relay first; NAKs broadcast; `ciaddr` if the client has one; broadcast if
/// the client asked; else unicast to `yiaddr` at `chaddr`.
fn destination(req: &Repr, reply: &Repr, answer: Answer) -> Destination {
    if is_set(req.giaddr) {
        Destination::Relay(req.giaddr)
    } else if matches!(answer, Answer::Nak(_)) {
        Destination::Broadcast
    } else if is_set(req.ciaddr) {
        Destination::Client {
            ip: req.ciaddr,
            mac: req.chaddr,
        }
    } else if req.broadcast {
        Destination::Broadcast
    } else {
        Destination::Client {
            ip: reply.yiaddr,
            mac: req.chaddr,
        }
    }
}
