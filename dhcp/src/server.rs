//! The DHCPv4 server (RFC 2131 §4.3), sans-IO.
//!
//! [`Server::handle`] takes the UDP payload of a datagram that arrived on port 67 and the
//! current time, and returns the reply to send, if any, with where to send it
//! ([`Destination`], by RFC 2131 §4.1's rules). It never reads the clock: `now` is a
//! [`std::time::Instant`] the caller supplies, and only differences between the instants it is
//! given matter, so a test that starts from one `Instant` and adds offsets is deterministic.
//! Timers (offers, leases, declined addresses) run out in [`Server::handle_timeout`], which
//! `handle` also calls first; [`Server::poll_timeout`] says when the next one is due.
//!
//! Contracts:
//! - Nothing in the payload can make it panic. A request that is malformed, or that we do not
//!   answer, is dropped and counted under one [`DropReason`] in [`Server::stats`].
//! - Every table is bounded. Bindings (offered or bound) and declined addresses each hold an
//!   address of the pool or a static lease, so the pool's size bounds them; outstanding offers
//!   are further bounded by [`Config::max_offers`] in all and [`Config::max_offers_per_mac`]
//!   per client hardware address. One MAC past its bound is refused; a new offer past the
//!   total withdraws the oldest one (its client, should it still ask, is ACKed while the
//!   address is free), so no flood of DISCOVERs, from one MAC or many, keeps a new client
//!   from its offer. Remembered previous addresses are bounded by the number of free pool
//!   addresses. Stored client identifiers and host names are at most 255 bytes.
//! - A static lease's address is only ever given to its MAC, and that MAC only ever gets it.
//! - A client (its identifier, option 61, or else its MAC; RFC 2131 §4.2) holds at most one
//!   binding: taking a new address gives up the old one.
//!
//! Policy where RFC 2131 leaves a choice: the server is authoritative for its subnet, as fits
//! the only DHCP server on a virtual link. A REQUEST in any state is ACKed when the address is
//! one this client may have (its own binding, its static lease, or a free pool address) and
//! NAKed otherwise; but an INIT-REBOOT REQUEST from a client we have no record of (after a
//! restart of ours, say) on the right network gets no answer, as RFC 2131 §4.3.2 requires,
//! so that the client falls back to DISCOVER. Options 15, 26, 28
//! and 119 are sent only when the client's parameter request list asks for them (or it sent
//! none); 1, 3 and 6 always. A reply never exceeds the client's maximum message size (option
//! 57, at least 576) nor the link MTU ([`Config::mtu`]): optional options that do not fit are
//! left out, and a reply whose required options alone do not fit is dropped and counted
//! ([`DropReason::ReplyTooLarge`]).

use crate::config::{Config, ConfigError};
use crate::message::{MessageType, Op, Packet, Repr};
use crate::pool::Pool;
use crate::search::DomainList;
use crate::stats::{DropReason, Stats};
use core::net::Ipv4Addr;
use core::time::Duration;
use stack::wire::EthernetAddress;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Instant;

mod reply;

pub use reply::{Destination, Reply};

/// The longest client identifier or host name we store.
const MAX_STORED_LEN: usize = 255;

/// A bound lease, or a static lease, as listed by [`Server::leases`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub ip: Ipv4Addr,
    pub mac: EthernetAddress,
    /// The host name the client sent (option 12), if any.
    pub hostname: Option<String>,
    /// When the lease runs out; `None` for a static lease no client has taken yet.
    pub expires: Option<Instant>,
    pub is_static: bool,
}

/// Who a binding belongs to (RFC 2131 §4.2). Static leases are keyed by MAC whatever the
/// client identifier, so a static lease follows its MAC across DHCP clients.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ClientKey {
    Id(Box<[u8]>),
    Mac(EthernetAddress),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Offered,
    Bound,
}

#[derive(Debug, Clone)]
struct Binding {
    client: ClientKey,
    mac: EthernetAddress,
    hostname: Option<String>,
    state: State,
    expires: Instant,
}

/// What a request is answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Offer(Ipv4Addr),
    Ack(Ipv4Addr),
    Nak(&'static str),
    /// The DHCPACK to a DHCPINFORM: configuration only (RFC 2131 §4.3.5).
    InformAck,
}

/// The DHCPv4 server. See the module docs.
#[derive(Debug)]
pub struct Server {
    config: Config,
    domain_search: DomainList,
    reserved: HashSet<Ipv4Addr>,
    statics_by_mac: HashMap<EthernetAddress, Ipv4Addr>,
    statics_by_ip: HashMap<Ipv4Addr, EthernetAddress>,
    /// Free dynamic addresses.
    pool: Pool,
    /// Offered and bound addresses.
    bindings: HashMap<Ipv4Addr, Binding>,
    /// Each client's binding.
    by_client: HashMap<ClientKey, Ipv4Addr>,
    /// Addresses out of use after a DECLINE, until the given time.
    declined: HashMap<Ipv4Addr, Instant>,
    /// A client's last address after its lease ended, while that address stays free.
    previous: HashMap<ClientKey, Ipv4Addr>,
    previous_owner: HashMap<Ipv4Addr, ClientKey>,
    /// Every binding's and declined address's deadline.
    timers: BTreeSet<(Instant, Ipv4Addr)>,
    offers: usize,
    /// Outstanding offers by client hardware address (entries only while non-zero).
    offers_by_mac: HashMap<EthernetAddress, usize>,
    counters: Stats,
}

fn after(now: Instant, duration: Duration) -> Instant {
    now.checked_add(duration).unwrap_or(now)
}

fn is_set(addr: Ipv4Addr) -> bool {
    addr != Ipv4Addr::UNSPECIFIED
}

/// One offer less for `mac`, forgetting it at zero.
fn offer_gone(by_mac: &mut HashMap<EthernetAddress, usize>, mac: EthernetAddress) {
    if let Some(n) = by_mac.get_mut(&mac) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            by_mac.remove(&mac);
        }
    }
}

/// `s` cut to at most `max` bytes on a character boundary, without trailing NULs.
fn bounded(s: &str, max: usize) -> String {
    let s = s.trim_end_matches('\0');
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default().to_owned()
}

impl Server {
    pub fn new(config: Config) -> Result<Server, ConfigError> {
        let domain_search = config.validate()?;
        let statics_by_mac: HashMap<_, _> =
            config.static_leases.iter().map(|s| (s.mac, s.ip)).collect();
        let statics_by_ip: HashMap<_, _> =
            config.static_leases.iter().map(|s| (s.ip, s.mac)).collect();
        let reserved: HashSet<_> = config.reserved.iter().copied().collect();
        let mut server = Server {
            config,
            domain_search,
            reserved,
            statics_by_mac,
            statics_by_ip,
            pool: Pool::default(),
            bindings: HashMap::new(),
            by_client: HashMap::new(),
            declined: HashMap::new(),
            previous: HashMap::new(),
            previous_owner: HashMap::new(),
            timers: BTreeSet::new(),
            offers: 0,
            offers_by_mac: HashMap::new(),
            counters: Stats::default(),
        };
        let (start, end) = (
            u32::from(server.config.pool_start),
            u32::from(server.config.pool_end),
        );
        let dynamic: Vec<Ipv4Addr> = (start..=end)
            .map(Ipv4Addr::from)
            .filter(|&a| server.is_dynamic(a))
            .collect();
        server.pool = Pool::new(dynamic);
        Ok(server)
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Handles one request payload; returns the reply to send, if any.
    pub fn handle(&mut self, now: Instant, request: &[u8]) -> Option<Reply> {
        self.counters.received += 1;
        self.handle_timeout(now);
        match self.process(now, request) {
            Ok(reply) => reply,
            Err(reason) => {
                self.counters.dropped.count(reason);
                None
            }
        }
    }

    /// Handles a request that came over a link of `mtu` (several links with MTUs of their own
    /// share one server): the reply announces that MTU (option 26) and fits it.
    pub fn handle_on_link(&mut self, now: Instant, request: &[u8], mtu: u16) -> Option<Reply> {
        let configured = self.config.mtu.replace(mtu.max(crate::config::MIN_MTU));
        let reply = self.handle(now, request);
        self.config.mtu = configured;
        reply
    }

    /// Runs out the offers, leases and declines whose time has come.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(at, ip)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.remove(&(at, ip));
            if self.declined.get(&ip) == Some(&at) {
                self.declined.remove(&ip);
                self.return_to_pool(ip, None);
                continue;
            }
            let state = self
                .bindings
                .get(&ip)
                .filter(|b| b.expires == at)
                .map(|b| b.state);
            match state {
                Some(State::Offered) => {
                    self.free(ip, false);
                    self.counters.offers_expired += 1;
                }
                Some(State::Bound) => {
                    self.free(ip, true);
                    self.counters.leases_expired += 1;
                }
                None => {}
            }
        }
    }

    /// When [`Server::handle_timeout`] next has work to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|&(at, _)| at)
    }

    /// Bound leases and every static lease, by address. Leases whose time has passed stay
    /// listed until the next [`Server::handle`] or [`Server::handle_timeout`].
    pub fn leases(&self) -> Vec<Lease> {
        let mut leases: Vec<Lease> = self
            .bindings
            .iter()
            .filter(|(_, b)| b.state == State::Bound)
            .map(|(&ip, b)| Lease {
                ip,
                mac: b.mac,
                hostname: b.hostname.clone(),
                expires: Some(b.expires),
                is_static: self.statics_by_ip.contains_key(&ip),
            })
            .collect();
        for s in &self.config.static_leases {
            let bound = self
                .bindings
                .get(&s.ip)
                .is_some_and(|b| b.state == State::Bound);
            if !bound {
                leases.push(Lease {
                    ip: s.ip,
                    mac: s.mac,
                    hostname: None,
                    expires: None,
                    is_static: true,
                });
            }
        }
        leases.sort_by_key(|l| l.ip);
        leases
    }

    /// The counters, with the table sizes as of now.
    pub fn stats(&self) -> Stats {
        let mut stats = self.counters;
        stats.offers_outstanding = self.offers;
        stats.leases = self.bindings.len().saturating_sub(self.offers);
        stats.pool_free = self.pool.len();
        stats
    }

    fn process(&mut self, now: Instant, bytes: &[u8]) -> Result<Option<Reply>, DropReason> {
        let req = Repr::parse(&Packet::new_checked(bytes)?)?;
        if req.op != Op::Request {
            return Err(DropReason::NotRequest);
        }
        if !req.chaddr.is_unicast() || req.chaddr == EthernetAddress::default() {
            return Err(DropReason::BadClientHardwareAddress);
        }
        if is_set(req.giaddr) && !self.config.subnet.contains(req.giaddr) {
            return Err(DropReason::WrongSubnet);
        }
        let client = self.client_key(&req)?;
        let answer = match req.message_type {
            MessageType::Discover => {
                self.counters.discovers += 1;
                self.discover(now, &req, client)?
            }
            MessageType::Request => {
                self.counters.requests += 1;
                self.request(now, &req, client)?
            }
            MessageType::Decline => {
                self.counters.declines += 1;
                self.decline(now, &req, &client)?;
                return Ok(None);
            }
            MessageType::Release => {
                self.counters.releases += 1;
                self.release(&req, &client)?;
                return Ok(None);
            }
            MessageType::Inform => {
                self.counters.informs += 1;
                self.inform(&req)?
            }
            _ => return Err(DropReason::UnexpectedMessageType),
        };
        let reply = self.reply(&req, answer)?;
        match answer {
            Answer::Offer(_) => self.counters.offers += 1,
            Answer::Ack(_) | Answer::InformAck => self.counters.acks += 1,
            Answer::Nak(_) => self.counters.naks += 1,
        }
        Ok(Some(reply))
    }

    fn client_key(&self, req: &Repr) -> Result<ClientKey, DropReason> {
        if self.statics_by_mac.contains_key(&req.chaddr) {
            return Ok(ClientKey::Mac(req.chaddr));
        }
        match &req.client_id {
            Some(id) if id.len() > MAX_STORED_LEN => Err(DropReason::ClientIdTooLong),
            Some(id) => Ok(ClientKey::Id(id.clone().into_boxed_slice())),
            None => Ok(ClientKey::Mac(req.chaddr)),
        }
    }

    /// In the pool's range and not set aside for anything else.
    fn is_dynamic(&self, ip: Ipv4Addr) -> bool {
        let n = u32::from(ip);
        n >= u32::from(self.config.pool_start)
            && n <= u32::from(self.config.pool_end)
            && self.config.subnet.is_host(ip)
            && ip != self.config.server_addr
            && !self.reserved.contains(&ip)
            && !self.statics_by_ip.contains_key(&ip)
    }

    /// Whether `client` (with hardware address `mac`) may be given `ip` now.
    fn may_use(&self, ip: Ipv4Addr, client: &ClientKey, mac: EthernetAddress) -> bool {
        if self.declined.contains_key(&ip) {
            return false;
        }
        if let Some(&fixed) = self.statics_by_mac.get(&mac) {
            return ip == fixed;
        }
        if self.statics_by_ip.contains_key(&ip) {
            return false;
        }
        match self.bindings.get(&ip) {
            Some(b) => b.client == *client,
            None => self.pool.contains(ip),
        }
    }

    /// The address to offer (RFC 2131 §4.3.1): the static lease; else the client's current
    /// binding; else its previous address if still free; else the address it asks for if
    /// free; else the pool's next.
    fn choose(&self, req: &Repr, client: &ClientKey) -> Result<Ipv4Addr, DropReason> {
        if let Some(&fixed) = self.statics_by_mac.get(&req.chaddr) {
            if self.declined.contains_key(&fixed) {
                return Err(DropReason::PoolExhausted);
            }
            return Ok(fixed);
        }
        if let Some(&ip) = self.by_client.get(client)
            && self.may_use(ip, client, req.chaddr)
        {
            return Ok(ip);
        }
        if let Some(&ip) = self.previous.get(client)
            && self.pool.contains(ip)
        {
            return Ok(ip);
        }
        if let Some(ip) = req.requested_ip
            && self.pool.contains(ip)
        {
            return Ok(ip);
        }
        self.pool.first().ok_or(DropReason::PoolExhausted)
    }

    fn discover(
        &mut self,
        now: Instant,
        req: &Repr,
        client: ClientKey,
    ) -> Result<Answer, DropReason> {
        let ip = self.choose(req, &client)?;
        match self.bindings.get(&ip).map(|b| b.state) {
            // A bound client that lost its state is offered its lease as it stands.
            Some(State::Bound) => {}
            // The client asks again: hold the same offer longer.
            Some(State::Offered) => {
                let expires = after(now, self.config.offer_time);
                self.assign(ip, client, req, State::Offered, expires);
            }
            None => {
                let held = self.offers_by_mac.get(&req.chaddr).copied().unwrap_or(0);
                if held >= self.config.max_offers_per_mac {
                    return Err(DropReason::MacOffersFull);
                }
                if self.offers >= self.config.max_offers {
                    self.reclaim_oldest_offer();
                }
                let expires = after(now, self.config.offer_time);
                self.assign(ip, client, req, State::Offered, expires);
            }
        }
        Ok(Answer::Offer(ip))
    }

    /// RFC 2131 §4.3.2: the client's state shows in which of options 54 and 50 and `ciaddr`
    /// it fills in.
    fn request(
        &mut self,
        now: Instant,
        req: &Repr,
        client: ClientKey,
    ) -> Result<Answer, DropReason> {
        if let Some(server_id) = req.server_id {
            // SELECTING: the answer to an offer, naming the server chosen.
            if server_id != self.config.server_addr {
                // Another server's offer was taken, so ours is void.
                self.withdraw_offer(&client);
                return Err(DropReason::ForeignServer);
            }
            // Option 50 is required here; very old clients put the address in `ciaddr`.
            let ip = req
                .requested_ip
                .or(Some(req.ciaddr).filter(|&a| is_set(a)))
                .ok_or(DropReason::MissingRequestedIp)?;
            return Ok(self.commit(now, ip, req, client));
        }
        // INIT-REBOOT asks for an address it remembers in option 50; RENEWING (unicast) and
        // REBINDING (broadcast) name the address they hold in `ciaddr`.
        let ip = match req.requested_ip {
            Some(ip) => ip,
            None if is_set(req.ciaddr) => req.ciaddr,
            None => return Err(DropReason::MissingRequestedIp),
        };
        if !self.config.subnet.contains(ip) {
            return Ok(Answer::Nak("wrong network"));
        }
        // INIT-REBOOT (no `ciaddr`): "If the DHCP server has no record of this client, then
        // it MUST remain silent" (RFC 2131 §4.3.2).
        if !is_set(req.ciaddr) && !self.knows(&client, req.chaddr) {
            return Err(DropReason::UnknownClient);
        }
        Ok(self.commit(now, ip, req, client))
    }

    /// Whether we have a record of the client: a binding, a static lease, or the address it
    /// had before its lease ended.
    fn knows(&self, client: &ClientKey, mac: EthernetAddress) -> bool {
        self.by_client.contains_key(client)
            || self.statics_by_mac.contains_key(&mac)
            || self.previous.contains_key(client)
    }

    /// Withdraws the offer that runs out first (the oldest), counted.
    fn reclaim_oldest_offer(&mut self) {
        let oldest = self.timers.iter().find_map(|&(at, ip)| {
            self.bindings
                .get(&ip)
                .is_some_and(|b| b.state == State::Offered && b.expires == at)
                .then_some(ip)
        });
        if let Some(ip) = oldest {
            self.free(ip, false);
            self.counters.offers_reclaimed += 1;
        }
    }

    /// ACK `ip` for the client if it may have it, else NAK.
    fn commit(&mut self, now: Instant, ip: Ipv4Addr, req: &Repr, client: ClientKey) -> Answer {
        if !self.may_use(ip, &client, req.chaddr) {
            return Answer::Nak("requested address not available");
        }
        let expires = after(now, self.config.lease_time);
        self.assign(ip, client, req, State::Bound, expires);
        Answer::Ack(ip)
    }

    /// RFC 2131 §4.3.3: the client found the address in use; keep it out of use for a while.
    fn decline(&mut self, now: Instant, req: &Repr, client: &ClientKey) -> Result<(), DropReason> {
        self.check_server_id(req)?;
        let ip = req.requested_ip.ok_or(DropReason::MissingRequestedIp)?;
        self.check_owner(ip, client)?;
        self.unbind(ip);
        let until = after(now, self.config.decline_time);
        self.declined.insert(ip, until);
        self.timers.insert((until, ip));
        self.counters.addresses_declined += 1;
        Ok(())
    }

    /// RFC 2131 §4.3.4: the client gives its lease up.
    fn release(&mut self, req: &Repr, client: &ClientKey) -> Result<(), DropReason> {
        self.check_server_id(req)?;
        if !is_set(req.ciaddr) {
            return Err(DropReason::MissingClientAddress);
        }
        self.check_owner(req.ciaddr, client)?;
        self.free(req.ciaddr, true);
        self.counters.leases_released += 1;
        Ok(())
    }

    /// RFC 2131 §4.3.5: a client with an address asks for configuration only.
    fn inform(&self, req: &Repr) -> Result<Answer, DropReason> {
        if !is_set(req.ciaddr) {
            return Err(DropReason::MissingClientAddress);
        }
        if !is_set(req.giaddr) && !self.config.subnet.contains(req.ciaddr) {
            return Err(DropReason::WrongSubnet);
        }
        Ok(Answer::InformAck)
    }

    fn check_server_id(&self, req: &Repr) -> Result<(), DropReason> {
        match req.server_id {
            None => Err(DropReason::MissingServerId),
            Some(id) if id != self.config.server_addr => Err(DropReason::ForeignServer),
            Some(_) => Ok(()),
        }
    }

    fn check_owner(&self, ip: Ipv4Addr, client: &ClientKey) -> Result<(), DropReason> {
        match self.bindings.get(&ip) {
            Some(b) if b.client == *client => Ok(()),
            _ => Err(DropReason::NotOwner),
        }
    }

    /// Gives `ip` to `client` in `state` until `expires`. The caller has checked the client
    /// may have it; any other binding of the client's is given up.
    fn assign(
        &mut self,
        ip: Ipv4Addr,
        client: ClientKey,
        req: &Repr,
        state: State,
        expires: Instant,
    ) {
        if let Some(&other) = self.by_client.get(&client)
            && other != ip
        {
            self.free(other, false);
        }
        let hostname = req
            .hostname
            .as_deref()
            .map(|h| bounded(h, MAX_STORED_LEN))
            .filter(|h| !h.is_empty());
        match self.bindings.get_mut(&ip) {
            Some(b) => {
                self.timers.remove(&(b.expires, ip));
                if b.state == State::Offered {
                    self.offers = self.offers.saturating_sub(1);
                    offer_gone(&mut self.offers_by_mac, b.mac);
                }
                if b.client != client && self.by_client.get(&b.client) == Some(&ip) {
                    self.by_client.remove(&b.client);
                }
                b.client = client.clone();
                b.mac = req.chaddr;
                if hostname.is_some() {
                    b.hostname = hostname;
                }
                b.state = state;
                b.expires = expires;
            }
            None => {
                self.claim(ip);
                self.bindings.insert(
                    ip,
                    Binding {
                        client: client.clone(),
                        mac: req.chaddr,
                        hostname,
                        state,
                        expires,
                    },
                );
            }
        }
        if state == State::Offered {
            self.offers += 1;
            *self.offers_by_mac.entry(req.chaddr).or_insert(0) += 1;
        }
        self.timers.insert((expires, ip));
        self.by_client.insert(client, ip);
    }

    /// Takes a free address out of the pool, and out of anyone's memory of it.
    fn claim(&mut self, ip: Ipv4Addr) {
        self.pool.take(ip);
        if let Some(owner) = self.previous_owner.remove(&ip)
            && self.previous.get(&owner) == Some(&ip)
        {
            self.previous.remove(&owner);
        }
    }

    /// Removes `ip`'s binding with its timer; the address goes nowhere yet.
    fn unbind(&mut self, ip: Ipv4Addr) -> Option<Binding> {
        let binding = self.bindings.remove(&ip)?;
        self.timers.remove(&(binding.expires, ip));
        if binding.state == State::Offered {
            self.offers = self.offers.saturating_sub(1);
            offer_gone(&mut self.offers_by_mac, binding.mac);
        }
        if self.by_client.get(&binding.client) == Some(&ip) {
            self.by_client.remove(&binding.client);
        }
        Some(binding)
    }

    /// Ends `ip`'s binding and frees the address; `remember` keeps it as the client's
    /// previous address.
    fn free(&mut self, ip: Ipv4Addr, remember: bool) {
        if let Some(binding) = self.unbind(ip) {
            self.return_to_pool(ip, remember.then_some(binding.client));
        }
    }

    fn return_to_pool(&mut self, ip: Ipv4Addr, owner: Option<ClientKey>) {
        if !self.is_dynamic(ip) {
            return;
        }
        self.pool.put(ip);
        if let Some(owner) = owner {
            if let Some(old) = self.previous.insert(owner.clone(), ip)
                && old != ip
                && self.previous_owner.get(&old) == Some(&owner)
            {
                self.previous_owner.remove(&old);
            }
            if let Some(displaced) = self.previous_owner.insert(ip, owner.clone())
                && displaced != owner
                && self.previous.get(&displaced) == Some(&ip)
            {
                self.previous.remove(&displaced);
            }
        }
    }

    /// Frees the client's offer, if it has one outstanding (not a bound lease).
    fn withdraw_offer(&mut self, client: &ClientKey) {
        if let Some(&ip) = self.by_client.get(client)
            && self.bindings.get(&ip).map(|b| b.state) == Some(State::Offered)
        {
            self.free(ip, false);
        }
    }
}

#[cfg(test)]
mod tests;
