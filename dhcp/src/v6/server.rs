//! The DHCPv6 server (RFC 8415 §18.3), sans-IO: stateless configuration (Information-request)
//! and stateful addresses (IA_NA) from a pool, with static leases by MAC.
//!
//! [`Server::handle`] takes the UDP payload of a datagram that reached port 547, the L2
//! source of its frame and the time, and returns the reply's bytes, if any, to send from the
//! server's link-local address, port 547, to the datagram's source address and port. Timers
//! (bindings running out, declined addresses coming back) run in [`Server::handle_timeout`],
//! which `handle` calls first; [`Server::poll_timeout`] says when.
//!
//! Contracts:
//! - Nothing a client sends can make it panic; a message it does not answer is dropped and
//!   counted under one [`DropReason`] ([`Server::stats`]). RFC 8415 §16's rules on which
//!   messages must and must not carry Client and Server Identifiers are enforced.
//! - Every table is bounded: bindings hold addresses of the pool or static leases, so their
//!   number is bounded by the pool ([`MAX_POOL_SIZE`](super::config::MAX_POOL_SIZE)) and the
//!   static leases; declined addresses likewise. At most [`MAX_IAS`] IA_NAs of one message
//!   are answered; DUIDs are at most 130 bytes.
//! - An address is bound to one (DUID, IAID). A static lease's address only ever goes to its
//!   MAC, in the first IA_NA it asks for, whatever its DUID (a guest that restarts with a new
//!   DUID keeps its address).
//! - Policy: a Solicit is answered with an Advertise that reserves nothing, or — when it asks
//!   for Rapid Commit and [`Config::rapid_commit`] allows — with a committing Reply. The
//!   server is authoritative for its link: a Renew or Rebind of an address the client may
//!   have (its binding, its static lease, a free pool address) is granted even without a
//!   record (after a restart of ours); of any other address it gets NoBinding. The DNS
//!   servers and search list go to clients that ask for them in their Option Request option,
//!   or send none.

use core::net::Ipv6Addr;
use core::time::Duration;
use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use stack::wire::EthernetAddress;

use super::config::{Config, ConfigError, in_prefix, uncompressed};
use super::message::{DhcpOption, MessageType, Options, Packet, Repr, code, requested, status};
use super::stats::{DropReason, Stats};
use crate::pool::Pool;

/// The most IA_NAs of one message that are answered.
pub const MAX_IAS: usize = 4;

/// A binding (or a static lease no client holds), as [`Server::leases`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub ip: Ipv6Addr,
    pub mac: EthernetAddress,
    /// When the valid lifetime ends; `None` for a static lease nobody holds.
    pub expires: Option<Instant>,
    pub is_static: bool,
}

/// Who an address is bound to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ClientIa {
    duid: Box<[u8]>,
    iaid: u32,
}

#[derive(Debug, Clone)]
struct Binding {
    client: ClientIa,
    mac: EthernetAddress,
    expires: Instant,
}

/// An IA_NA from a request, owned.
#[derive(Debug, Clone, Copy)]
struct IaRequest {
    iaid: u32,
    /// The first address the client put in it.
    hint: Option<Ipv6Addr>,
}

/// What one IA gets back.
#[derive(Debug, Clone, Copy)]
enum IaAnswer {
    Address(Ipv6Addr),
    Status(u16),
}

fn after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d).unwrap_or(now)
}

fn secs(d: Duration) -> u32 {
    d.as_secs().min(u64::from(u32::MAX - 1)) as u32
}

/// The DHCPv6 server. See the module docs.
#[derive(Debug)]
pub struct Server {
    config: Config,
    domains: Vec<u8>,
    statics_by_mac: HashMap<EthernetAddress, Ipv6Addr>,
    statics_by_ip: HashMap<Ipv6Addr, EthernetAddress>,
    pool: Pool<Ipv6Addr>,
    bindings: HashMap<Ipv6Addr, Binding>,
    by_client: HashMap<ClientIa, Ipv6Addr>,
    declined: HashMap<Ipv6Addr, Instant>,
    timers: BTreeSet<(Instant, Ipv6Addr)>,
    counters: Stats,
}

impl Server {
    pub fn new(config: Config) -> Result<Server, ConfigError> {
        let domains = uncompressed(&config.validate()?);
        let statics_by_mac = config.static_leases.iter().map(|s| (s.mac, s.ip)).collect();
        let statics_by_ip: HashMap<_, _> =
            config.static_leases.iter().map(|s| (s.ip, s.mac)).collect();
        let (start, end) = (config.pool_start.to_bits(), config.pool_end.to_bits());
        let dynamic = (start..=end)
            .map(Ipv6Addr::from_bits)
            .filter(|a| !config.reserved.contains(a) && !statics_by_ip.contains_key(a));
        let pool = Pool::new(dynamic);
        Ok(Server {
            domains,
            statics_by_mac,
            statics_by_ip,
            pool,
            bindings: HashMap::new(),
            by_client: HashMap::new(),
            declined: HashMap::new(),
            timers: BTreeSet::new(),
            counters: Stats::default(),
            config,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Handles one message from the client whose frame came from `mac`; returns the reply.
    pub fn handle(
        &mut self,
        now: Instant,
        mac: EthernetAddress,
        payload: &[u8],
    ) -> Option<Vec<u8>> {
        self.counters.received += 1;
        self.handle_timeout(now);
        match self.process(now, mac, payload) {
            Ok(reply) => Some(reply),
            Err(reason) => {
                self.counters.dropped.count(reason);
                None
            }
        }
    }

    /// Runs out the bindings and declines whose time has come.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(at, ip)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            if self.declined.get(&ip) == Some(&at) {
                self.declined.remove(&ip);
                self.release_address(ip);
                continue;
            }
            if self.bindings.get(&ip).is_some_and(|b| b.expires == at) {
                self.unbind(ip);
                self.counters.leases_expired += 1;
            }
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|&(at, _)| at)
    }

    /// Bound addresses and every static lease, by address.
    pub fn leases(&self) -> Vec<Lease> {
        let mut leases: Vec<Lease> = self
            .bindings
            .iter()
            .map(|(&ip, b)| Lease {
                ip,
                mac: b.mac,
                expires: Some(b.expires),
                is_static: self.statics_by_ip.contains_key(&ip),
            })
            .collect();
        for s in &self.config.static_leases {
            if !self.bindings.contains_key(&s.ip) {
                leases.push(Lease {
                    ip: s.ip,
                    mac: s.mac,
                    expires: None,
                    is_static: true,
                });
            }
        }
        leases.sort_by_key(|l| l.ip);
        leases
    }

    pub fn stats(&self) -> Stats {
        Stats {
            leases: self.bindings.len(),
            pool_free: self.pool.len(),
            ..self.counters
        }
    }

    fn process(
        &mut self,
        now: Instant,
        mac: EthernetAddress,
        bytes: &[u8],
    ) -> Result<Vec<u8>, DropReason> {
        let packet = Packet::new_checked(bytes).map_err(|_| DropReason::Malformed)?;
        let req = Repr::parse(&packet).map_err(|_| DropReason::Malformed)?;
        if req.options.iter().any(|o| o.is_err()) {
            return Err(DropReason::Malformed);
        }
        let client_id = match req.options.find(code::CLIENTID) {
            Some(DhcpOption::ClientId(id)) => Some(id),
            _ => None,
        };
        let server_id = match req.options.find(code::SERVERID) {
            Some(DhcpOption::ServerId(id)) => Some(id),
            _ => None,
        };
        let ours = server_id.map(|id| id == self.config.server_duid.as_slice());
        use MessageType as M;
        // RFC 8415 §16: which identifiers each message carries.
        match req.msg_type {
            M::Solicit | M::Confirm | M::Rebind => {
                if ours.is_some() {
                    return Err(DropReason::ServerIdRule);
                }
            }
            M::Request | M::Renew | M::Release | M::Decline => match ours {
                None => return Err(DropReason::ServerIdRule),
                Some(false) => return Err(DropReason::ForeignServer),
                Some(true) => {}
            },
            M::InformationRequest => {
                if ours == Some(false) {
                    return Err(DropReason::ForeignServer);
                }
            }
            _ => return Err(DropReason::NotClientMessage),
        }
        if client_id.is_none() && req.msg_type != M::InformationRequest {
            return Err(DropReason::MissingClientId);
        }
        let duid = client_id.unwrap_or_default();
        let ias = ia_requests(&req.options);
        let mut reply_type = M::Reply;
        let mut top_status = None;
        let mut answers: Vec<(u32, IaAnswer)> = Vec::new();
        match req.msg_type {
            M::Solicit => {
                self.counters.solicits += 1;
                let commit =
                    self.config.rapid_commit && req.options.find(code::RAPID_COMMIT).is_some();
                if !commit {
                    reply_type = M::Advertise;
                }
                let mut taken = Vec::new();
                for ia in &ias {
                    let answer = match self.choose(mac, duid, ia, &taken) {
                        Some(ip) if commit => self.bind(now, mac, duid, ia.iaid, ip),
                        Some(ip) => IaAnswer::Address(ip),
                        None => IaAnswer::Status(status::NO_ADDRS_AVAIL),
                    };
                    if let IaAnswer::Address(ip) = answer {
                        taken.push(ip);
                    }
                    answers.push((ia.iaid, answer));
                }
            }
            M::Request => {
                self.counters.requests += 1;
                let mut taken = Vec::new();
                for ia in &ias {
                    let answer = match self.choose(mac, duid, ia, &taken) {
                        Some(ip) => self.bind(now, mac, duid, ia.iaid, ip),
                        None => IaAnswer::Status(status::NO_ADDRS_AVAIL),
                    };
                    if let IaAnswer::Address(ip) = answer {
                        taken.push(ip);
                    }
                    answers.push((ia.iaid, answer));
                }
            }
            M::Renew | M::Rebind => {
                if req.msg_type == M::Renew {
                    self.counters.renews += 1;
                } else {
                    self.counters.rebinds += 1;
                }
                for ia in &ias {
                    let answer = match ia.hint.filter(|&ip| self.may_have(mac, duid, ia.iaid, ip)) {
                        Some(ip) => self.bind(now, mac, duid, ia.iaid, ip),
                        None => IaAnswer::Status(status::NO_BINDING),
                    };
                    answers.push((ia.iaid, answer));
                }
            }
            M::Release | M::Decline => {
                let decline = req.msg_type == M::Decline;
                if decline {
                    self.counters.declines += 1;
                } else {
                    self.counters.releases += 1;
                }
                for ia in &ias {
                    let Some(ip) = ia.hint else { continue };
                    let owner = ClientIa {
                        duid: duid.into(),
                        iaid: ia.iaid,
                    };
                    if self.bindings.get(&ip).is_some_and(|b| b.client == owner) {
                        self.unbind(ip);
                        if decline {
                            self.decline(now, ip);
                        }
                    }
                }
                top_status = Some(status::SUCCESS);
            }
            M::Confirm => {
                self.counters.confirms += 1;
                let addrs: Vec<Ipv6Addr> = ias.iter().filter_map(|ia| ia.hint).collect();
                if addrs.is_empty() {
                    return Err(DropReason::NothingToConfirm);
                }
                let on_link = addrs
                    .iter()
                    .all(|&a| in_prefix(self.config.prefix, self.config.prefix_len, a));
                top_status = Some(if on_link {
                    status::SUCCESS
                } else {
                    status::NOT_ON_LINK
                });
            }
            M::InformationRequest => {
                self.counters.information_requests += 1;
                let has_ia = [code::IA_NA, code::IA_TA, code::IA_PD]
                    .iter()
                    .any(|&c| req.options.count(c) > 0);
                if has_ia {
                    return Err(DropReason::IaInInformationRequest);
                }
            }
            _ => return Err(DropReason::NotClientMessage),
        }
        for (_, answer) in &answers {
            match answer {
                IaAnswer::Status(status::NO_ADDRS_AVAIL) => self.counters.no_addrs_avail += 1,
                IaAnswer::Status(status::NO_BINDING) => self.counters.no_binding += 1,
                _ => {}
            }
        }
        let reply = self.reply(&req, reply_type, client_id, top_status, &answers);
        match reply_type {
            M::Advertise => self.counters.advertises += 1,
            _ => self.counters.replies += 1,
        }
        Ok(reply)
    }

    /// The address an IA would get: its MAC's static lease, its binding, the free address
    /// it hinted, or the pool's next. A static address already given to another IA of this
    /// message (`taken`) or held by another IA of the same DUID is not given again; held by
    /// another DUID of the same MAC (a guest that restarted), it is taken over.
    fn choose(
        &self,
        mac: EthernetAddress,
        duid: &[u8],
        ia: &IaRequest,
        taken: &[Ipv6Addr],
    ) -> Option<Ipv6Addr> {
        let client = ClientIa {
            duid: duid.into(),
            iaid: ia.iaid,
        };
        if let Some(&ip) = self.statics_by_mac.get(&mac)
            && !taken.contains(&ip)
        {
            match self.bindings.get(&ip) {
                None => return Some(ip),
                Some(b) if b.client == client || b.client.duid != client.duid => return Some(ip),
                Some(_) => {}
            }
        }
        if let Some(&ip) = self.by_client.get(&client)
            && !self.statics_by_ip.contains_key(&ip)
        {
            return Some(ip);
        }
        if let Some(hint) = ia.hint
            && self.pool.contains(hint)
        {
            return Some(hint);
        }
        self.pool.first()
    }

    /// Whether the client may keep `ip` in IA `iaid` (see the module docs).
    fn may_have(&self, mac: EthernetAddress, duid: &[u8], iaid: u32, ip: Ipv6Addr) -> bool {
        let client = ClientIa {
            duid: duid.into(),
            iaid,
        };
        if let Some(b) = self.bindings.get(&ip) {
            return b.client == client || self.statics_by_ip.get(&ip) == Some(&mac);
        }
        self.pool.contains(ip) || self.statics_by_ip.get(&ip) == Some(&mac)
    }

    /// Binds `ip` to the client's IA until the valid lifetime ends, giving up what else the
    /// IA or the address had.
    fn bind(
        &mut self,
        now: Instant,
        mac: EthernetAddress,
        duid: &[u8],
        iaid: u32,
        ip: Ipv6Addr,
    ) -> IaAnswer {
        let client = ClientIa {
            duid: duid.into(),
            iaid,
        };
        if let Some(&old) = self.by_client.get(&client)
            && old != ip
        {
            self.unbind(old);
        }
        if self.bindings.get(&ip).is_some_and(|b| b.client != client) {
            self.unbind(ip);
        }
        self.pool.take(ip);
        let expires = after(now, self.config.valid_lifetime);
        if let Some(old) = self.bindings.insert(
            ip,
            Binding {
                client: client.clone(),
                mac,
                expires,
            },
        ) {
            self.timers.remove(&(old.expires, ip));
        }
        self.timers.insert((expires, ip));
        self.by_client.insert(client, ip);
        IaAnswer::Address(ip)
    }

    fn unbind(&mut self, ip: Ipv6Addr) {
        if let Some(b) = self.bindings.remove(&ip) {
            self.timers.remove(&(b.expires, ip));
            if self.by_client.get(&b.client) == Some(&ip) {
                self.by_client.remove(&b.client);
            }
            self.release_address(ip);
        }
    }

    /// Back to the pool, if it is a pool address.
    fn release_address(&mut self, ip: Ipv6Addr) {
        let (start, end) = (
            self.config.pool_start.to_bits(),
            self.config.pool_end.to_bits(),
        );
        let bits = ip.to_bits();
        if (start..=end).contains(&bits)
            && !self.config.reserved.contains(&ip)
            && !self.statics_by_ip.contains_key(&ip)
            && !self.declined.contains_key(&ip)
        {
            self.pool.put(ip);
        }
    }

    fn decline(&mut self, now: Instant, ip: Ipv6Addr) {
        self.pool.take(ip);
        if self.statics_by_ip.contains_key(&ip) {
            return;
        }
        let until = after(now, self.config.decline_time);
        self.declined.insert(ip, until);
        self.timers.insert((until, ip));
    }

    fn reply(
        &self,
        req: &Repr<'_>,
        msg_type: MessageType,
        client_id: Option<&[u8]>,
        top_status: Option<u16>,
        answers: &[(u32, IaAnswer)],
    ) -> Vec<u8> {
        let preferred = secs(self.config.preferred_lifetime);
        let valid = secs(self.config.valid_lifetime);
        // Each IA's nested options, as bytes, parsed back as the option's content.
        let mut nested: Vec<Vec<u8>> = Vec::with_capacity(answers.len());
        for (_, answer) in answers {
            let mut inner = Vec::new();
            match *answer {
                IaAnswer::Address(addr) => {
                    DhcpOption::IaAddr {
                        addr,
                        preferred,
                        valid,
                        options: Options::new(&[]),
                    }
                    .emit(&mut inner);
                }
                IaAnswer::Status(code) => DhcpOption::StatusCode {
                    status: code,
                    message: status_text(code),
                }
                .emit(&mut inner),
            }
            nested.push(inner);
        }
        let wanted = match req.options.find(code::ORO) {
            Some(DhcpOption::Oro(list)) => Some(list),
            _ => None,
        };
        let asks = |c: u16| wanted.is_none_or(|list| requested(list).any(|r| r == c));
        let dns: Vec<u8> = self
            .config
            .dns_servers
            .iter()
            .flat_map(|a| a.octets())
            .collect();
        let mut options: Vec<DhcpOption<'_>> = Vec::with_capacity(8 + answers.len());
        options.push(DhcpOption::ServerId(&self.config.server_duid));
        if let Some(id) = client_id {
            options.push(DhcpOption::ClientId(id));
        }
        if msg_type == MessageType::Reply && req.msg_type == MessageType::Solicit {
            options.push(DhcpOption::RapidCommit);
        }
        if let Some(code) = top_status {
            options.push(DhcpOption::StatusCode {
                status: code,
                message: status_text(code),
            });
        }
        let (t1, t2) = (preferred / 2, preferred / 5 * 4);
        for ((iaid, answer), inner) in answers.iter().zip(&nested) {
            let (t1, t2) = match answer {
                IaAnswer::Address(_) => (t1, t2),
                _ => (0, 0),
            };
            if let Ok(inner) = Options::parse(inner) {
                options.push(DhcpOption::IaNa {
                    iaid: *iaid,
                    t1,
                    t2,
                    options: inner,
                });
            }
        }
        if !dns.is_empty() && asks(code::DNS_SERVERS) {
            options.push(DhcpOption::DnsServers(&dns));
        }
        if !self.domains.is_empty() && asks(code::DOMAIN_LIST) {
            options.push(DhcpOption::DomainList(&self.domains));
        }
        if req.msg_type == MessageType::InformationRequest
            && wanted
                .is_some_and(|list| requested(list).any(|r| r == code::INFORMATION_REFRESH_TIME))
        {
            options.push(DhcpOption::InformationRefreshTime(secs(
                self.config.information_refresh,
            )));
        }
        Repr {
            msg_type,
            transaction_id: req.transaction_id,
            options: Options::new(&options),
        }
        .emit()
    }
}

fn status_text(code: u16) -> &'static [u8] {
    match code {
        status::SUCCESS => b"success",
        status::NO_ADDRS_AVAIL => b"no addresses available",
        status::NO_BINDING => b"no binding",
        status::NOT_ON_LINK => b"not on link",
        _ => b"",
    }
}

/// The IA_NAs of a message, at most [`MAX_IAS`], each with the first address it holds.
fn ia_requests(options: &Options<'_>) -> Vec<IaRequest> {
    options
        .iter()
        .filter_map(Result::ok)
        .filter_map(|o| match o {
            DhcpOption::IaNa { iaid, options, .. } => {
                let hint = options.iter().filter_map(Result::ok).find_map(|o| match o {
                    DhcpOption::IaAddr { addr, .. } => Some(addr),
                    _ => None,
                });
                Some(IaRequest { iaid, hint })
            }
            _ => None,
        })
        .take(MAX_IAS)
        .collect()
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
