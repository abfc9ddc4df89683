//! Local zones, as gvproxy keeps them: per zone a list of records (an exact relative name or
//! a regular expression, and an address) and an optional default address.
//!
//! Contract ([`Zones::answer`]): a question whose name ends in `.` + a zone's name is owned
//! by the first such zone and answered here, never forwarded. Inside it the first record
//! whose name equals the relative part (ASCII case-insensitively) or whose regular
//! expression matches it, and whose address is of the family the question asks for (IPv4
//! for A, IPv6 for AAAA, either for ANY), wins — newer records come first, so a later add
//! for the same name wins — so a name may have an IPv4 and an IPv6 record. A name no record
//! matches gets the zone's default address, else NXDOMAIN. An owned name asked for a type it
//! has no record of (AAAA of an IPv4-only name, MX, …) gets NOERROR with no answers
//! (NODATA); both negative answers carry the zone's SOA in the authority section
//! (RFC 2308 §2.1-2.2). The zone's own name (its apex) exists and has only the SOA.
//! Answers have TTL 0 and the SOA's minimum is 0, so nothing caches what the API may change.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use parking_lot::RwLock;
use regex::Regex;

use crate::wire::{self, CLASS_IN, Message, Question, Rcode, rtype};

/// Zones at most; further adds of new zones are refused.
pub const MAX_ZONES: usize = 256;
/// Records per zone at most; an add past it is refused.
pub const MAX_RECORDS: usize = 4096;

/// A record: `name` or `regex` (on the name relative to the zone) to `ip`.
#[derive(Debug, Clone)]
pub struct Record {
    /// Lower-case, no trailing dot; `None` for a regex-only record.
    pub name: Option<String>,
    pub regex: Option<Regex>,
    pub ip: IpAddr,
}

impl Record {
    pub fn exact(name: &str, ip: impl Into<IpAddr>) -> Record {
        Record {
            name: Some(name.trim_end_matches('.').to_ascii_lowercase()),
            regex: None,
            ip: ip.into(),
        }
    }

    fn matches(&self, relative: &str) -> bool {
        self.name
            .as_deref()
            .is_some_and(|n| !n.is_empty() && n == relative)
            || self.regex.as_ref().is_some_and(|r| r.is_match(relative))
    }
}

/// A zone; its `name` is lower-case and ends in a dot.
#[derive(Debug, Clone)]
pub struct Zone {
    pub name: String,
    pub records: Vec<Record>,
    pub default_ip: Option<IpAddr>,
}

/// Normalises a zone name: lower-case, one trailing dot.
pub fn zone_name(name: &str) -> String {
    let mut n = name.trim_end_matches('.').to_ascii_lowercase();
    n.push('.');
    n
}

impl Zone {
    pub fn new(name: &str, records: Vec<Record>, default_ip: Option<IpAddr>) -> Zone {
        Zone {
            name: zone_name(name),
            records,
            default_ip,
        }
    }
}

/// Every local zone, in the order they are searched.
#[derive(Debug, Clone, Default)]
pub struct Zones {
    zones: Vec<Zone>,
}

/// The zones, shared between the DNS thread (reads per query) and the control API (writes).
pub type SharedZones = Arc<RwLock<Zones>>;

/// Why an add was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddError {
    #[error("more than {MAX_ZONES} zones")]
    TooManyZones,
    #[error("more than {MAX_RECORDS} records in zone {0}")]
    TooManyRecords(String),
}

/// What a zone says about a name.
enum Found {
    Address(IpAddr),
    /// The name exists, without an address of the family asked for.
    NoData,
    Apex,
    NxDomain,
}

/// The address family a question type asks for; `None`: either.
fn family(qtype: u16) -> Option<bool> {
    match qtype {
        rtype::A => Some(false),
        rtype::AAAA => Some(true),
        _ => None,
    }
}

fn of_family(ip: IpAddr, v6: Option<bool>) -> bool {
    v6.is_none_or(|v6| ip.is_ipv6() == v6)
}

impl Zones {
    /// gvproxy's defaults: `containers.internal.` and `docker.internal.`, each with `gateway`
    /// and `host`.
    pub fn gvproxy_defaults(gateway: Ipv4Addr, host: Ipv4Addr) -> Zones {
        let zone = |name: &str| {
            Zone::new(
                name,
                vec![
                    Record::exact("gateway", gateway),
                    Record::exact("host", host),
                ],
                None,
            )
        };
        Zones {
            zones: vec![zone("containers.internal."), zone("docker.internal.")],
        }
    }

    /// Adds IPv6 addresses for `gateway` and `host` to every zone (AAAA records next to
    /// gvproxy's A records).
    pub fn with_ipv6(mut self, gateway: Ipv6Addr, host: Ipv6Addr) -> Zones {
        for zone in &mut self.zones {
            zone.records.push(Record::exact("gateway", gateway));
            zone.records.push(Record::exact("host", host));
        }
        self
    }

    pub fn shared(self) -> SharedZones {
        Arc::new(RwLock::new(self))
    }

    pub fn zones(&self) -> &[Zone] {
        &self.zones
    }

    /// gvproxy's merge: a zone of the same name takes the new default address and the new
    /// records ahead of its old ones; otherwise the zone is appended.
    pub fn add(&mut self, zone: Zone) -> Result<(), AddError> {
        if let Some(old) = self.zones.iter_mut().find(|z| z.name == zone.name) {
            if old.records.len().saturating_add(zone.records.len()) > MAX_RECORDS {
                return Err(AddError::TooManyRecords(zone.name));
            }
            let mut records = zone.records;
            records.append(&mut old.records);
            old.records = records;
            old.default_ip = zone.default_ip;
            return Ok(());
        }
        if self.zones.len() >= MAX_ZONES {
            return Err(AddError::TooManyZones);
        }
        if zone.records.len() > MAX_RECORDS {
            return Err(AddError::TooManyRecords(zone.name));
        }
        self.zones.push(zone);
        Ok(())
    }

    fn lookup(&self, name: &str, v6: Option<bool>) -> Option<(&Zone, Found)> {
        for zone in &self.zones {
            if name == zone.name {
                return Some((zone, Found::Apex));
            }
            let Some(relative) = name
                .strip_suffix(zone.name.as_str())
                .and_then(|r| r.strip_suffix('.'))
            else {
                continue;
            };
            let mut named = zone
                .records
                .iter()
                .filter(|r| r.matches(relative))
                .peekable();
            let found = if named.peek().is_some() {
                named
                    .find(|r| of_family(r.ip, v6))
                    .map_or(Found::NoData, |r| Found::Address(r.ip))
            } else {
                match zone.default_ip {
                    Some(ip) if of_family(ip, v6) => Found::Address(ip),
                    Some(_) => Found::NoData,
                    None => Found::NxDomain,
                }
            };
            return Some((zone, found));
        }
        None
    }

    /// The local answer to `query`'s question `q`, or `None` when no zone owns its name (or
    /// it is not of class IN), which means: forward it. See the module docs.
    pub fn answer(&self, query: &Message<'_>, q: &Question) -> Option<Vec<u8>> {
        if q.qclass != CLASS_IN {
            return None;
        }
        let (zone, found) = self.lookup(q.name.as_deref()?, family(q.qtype))?;
        let question = query.bytes().get(q.range.clone())?;
        let record = match found {
            Found::Address(ip) => match (ip, q.qtype) {
                (IpAddr::V4(v4), rtype::A | rtype::ANY) => Some((rtype::A, v4.octets().to_vec())),
                (IpAddr::V6(v6), rtype::AAAA | rtype::ANY) => {
                    Some((rtype::AAAA, v6.octets().to_vec()))
                }
                _ => None,
            },
            Found::Apex if matches!(q.qtype, rtype::SOA | rtype::ANY) => {
                let mut out = reply(query, Rcode::NoError, [1, 1, 0, 0], question);
                push_soa(&mut out, zone);
                return Some(out);
            }
            Found::Apex | Found::NoData => None,
            Found::NxDomain => {
                let mut out = reply(query, Rcode::NxDomain, [1, 0, 1, 0], question);
                push_soa(&mut out, zone);
                return Some(out);
            }
        };
        Some(match record {
            Some((rt, rdata)) => {
                let mut out = reply(query, Rcode::NoError, [1, 1, 0, 0], question);
                // The owner name is the question's, by a pointer to it (RFC 1035 §4.1.4).
                out.extend_from_slice(&[0xc0, wire::HEADER_LEN as u8]);
                push_rr_tail(&mut out, rt, &rdata);
                out
            }
            None => {
                let mut out = reply(query, Rcode::NoError, [1, 0, 1, 0], question);
                push_soa(&mut out, zone);
                out
            }
        })
    }
}

fn reply(query: &Message<'_>, rcode: Rcode, counts: [u16; 4], question: &[u8]) -> Vec<u8> {
    let mut out = wire::reply_header(query, rcode, true, counts);
    out.extend_from_slice(question);
    out
}

/// Type, class IN, TTL 0, and the data of a record whose owner name is already written.
fn push_rr_tail(out: &mut Vec<u8>, rt: u16, rdata: &[u8]) {
    out.extend_from_slice(&rt.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(rdata);
}

/// The zone's SOA (RFC 1035 §3.3.13): MNAME the zone, RNAME `hostmaster.` + zone, serial 1,
/// refresh/retry/expire as is usual, MINIMUM 0 (no negative caching; RFC 2308 §5).
fn push_soa(out: &mut Vec<u8>, zone: &Zone) {
    wire::push_name(out, &zone.name);
    let mut rdata = Vec::with_capacity(64);
    wire::push_name(&mut rdata, &zone.name);
    wire::push_name(&mut rdata, &format!("hostmaster.{}", zone.name));
    for v in [1u32, 3600, 600, 86400, 0] {
        rdata.extend_from_slice(&v.to_be_bytes());
    }
    push_rr_tail(out, rtype::SOA, &rdata);
}

#[cfg(test)]
#[path = "zone_tests.rs"]
mod tests;
