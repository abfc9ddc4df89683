#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{Ipv4Addr, Ipv6Addr};

use super::*;
use crate::wire::flags;
use crate::wire::tests::query;

const GW: Ipv4Addr = Ipv4Addr::new(192, 168, 127, 1);
const HOST: Ipv4Addr = Ipv4Addr::new(192, 168, 127, 254);

fn defaults() -> Zones {
    Zones::gvproxy_defaults(GW, HOST)
}

/// (rcode, AA, answer count, authority count, the answer's data if any)
fn ask(zones: &Zones, name: &str, qtype: u16) -> Option<(u16, bool, u16, u16, Vec<u8>)> {
    let q = query(0x4242, name, qtype);
    let msg = Message::new_checked(&q).unwrap();
    let question = msg.question().unwrap();
    let reply = zones.answer(&msg, &question)?;
    let r = Message::new_checked(&reply).unwrap();
    assert_eq!(r.id(), 0x4242);
    assert!(r.is_response());
    assert_eq!(r.qdcount(), 1);
    assert_eq!(&reply[12..question.range.end], &q[12..question.range.end]);
    let mut data = Vec::new();
    if r.ancount() == 1 && qtype != rtype::SOA {
        // pointer(2) type(2) class(2) ttl(4) rdlength(2) rdata
        let at = question.range.end;
        assert_eq!(&reply[at..at + 2], &[0xc0, 12]);
        assert_eq!(&reply[at + 6..at + 10], &[0, 0, 0, 0]);
        data = reply[at + 12..].to_vec();
    }
    Some((
        r.flags() & flags::RCODE_MASK,
        r.flags() & flags::AA != 0,
        r.ancount(),
        r.nscount(),
        data,
    ))
}

#[test]
fn defaults_answer_host_and_gateway() {
    let z = defaults();
    for zone in ["containers.internal.", "docker.internal."] {
        let host = ask(&z, &format!("host.{zone}"), rtype::A).unwrap();
        assert_eq!(host, (0, true, 1, 0, HOST.octets().to_vec()));
        let gw = ask(&z, &format!("GATEWAY.{zone}"), rtype::A).unwrap();
        assert_eq!(gw, (0, true, 1, 0, GW.octets().to_vec()));
    }
}

#[test]
fn unknown_name_in_zone_is_nxdomain_with_soa() {
    let (rcode, aa, an, ns, _) = ask(&defaults(), "nope.containers.internal.", rtype::A).unwrap();
    assert_eq!((rcode, aa, an, ns), (Rcode::NxDomain as u16, true, 0, 1));
}

#[test]
fn aaaa_of_ipv4_name_is_nodata_with_soa() {
    let (rcode, _, an, ns, _) = ask(&defaults(), "host.containers.internal.", rtype::AAAA).unwrap();
    assert_eq!((rcode, an, ns), (0, 0, 1));
    let (rcode, _, an, ns, _) = ask(&defaults(), "host.containers.internal.", 15).unwrap();
    assert_eq!((rcode, an, ns), (0, 0, 1));
}

#[test]
fn apex_has_soa() {
    let (rcode, _, an, ns, _) = ask(&defaults(), "containers.internal.", rtype::SOA).unwrap();
    assert_eq!((rcode, an, ns), (0, 1, 0));
    let (rcode, _, an, ns, _) = ask(&defaults(), "containers.internal.", rtype::A).unwrap();
    assert_eq!((rcode, an, ns), (0, 0, 1));
}

#[test]
fn other_names_are_forwarded() {
    let z = defaults();
    assert!(ask(&z, "example.com.", rtype::A).is_none());
    assert!(ask(&z, "xcontainers.internal.", rtype::A).is_none());
    assert!(ask(&z, "internal.", rtype::A).is_none());
    assert!(ask(&z, ".", rtype::SOA).is_none());
}

#[test]
fn default_ip_regex_and_later_adds_win() {
    let mut z = defaults();
    let re = Record {
        name: None,
        regex: Some(Regex::new("^web-[0-9]+$").unwrap()),
        ip: Ipv4Addr::new(10, 0, 0, 5).into(),
    };
    z.add(Zone::new(
        "Dynamic.Internal",
        vec![Record::exact("test", Ipv4Addr::new(192, 168, 127, 253)), re],
        Some(Ipv4Addr::new(10, 0, 0, 9).into()),
    ))
    .unwrap();
    let a = |z: &Zones, n: &str| ask(z, n, rtype::A).unwrap().4;
    assert_eq!(a(&z, "test.dynamic.internal."), [192, 168, 127, 253]);
    assert_eq!(a(&z, "web-12.dynamic.internal."), [10, 0, 0, 5]);
    assert_eq!(a(&z, "other.dynamic.internal."), [10, 0, 0, 9]);
    z.add(Zone::new(
        "dynamic.internal.",
        vec![Record::exact("test", Ipv4Addr::new(192, 168, 127, 252))],
        None,
    ))
    .unwrap();
    assert_eq!(a(&z, "test.dynamic.internal."), [192, 168, 127, 252]);
    assert_eq!(a(&z, "web-1.dynamic.internal."), [10, 0, 0, 5]);
    // The new add brought no default.
    let nx = ask(&z, "other.dynamic.internal.", rtype::A).unwrap();
    assert_eq!(nx.0, Rcode::NxDomain as u16);
    assert_eq!(z.zones().len(), 3);
}

#[test]
fn ipv6_records_answer_aaaa() {
    let mut z = Zones::default();
    let v6 = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
    z.add(Zone::new("v6.test", vec![Record::exact("a", v6)], None))
        .unwrap();
    assert_eq!(ask(&z, "a.v6.test.", rtype::AAAA).unwrap().4, v6.octets());
    assert_eq!(ask(&z, "a.v6.test.", rtype::A).unwrap().2, 0);
}

#[test]
fn bounds() {
    let mut z = Zones::default();
    for i in 0..MAX_ZONES {
        z.add(Zone::new(&format!("z{i}.test"), Vec::new(), None))
            .unwrap();
    }
    assert_eq!(
        z.add(Zone::new("one-more.test", Vec::new(), None)),
        Err(AddError::TooManyZones)
    );
    let many = vec![Record::exact("x", GW); MAX_RECORDS];
    z.add(Zone::new("z0.test", many, None)).unwrap();
    assert!(matches!(
        z.add(Zone::new("z0.test", vec![Record::exact("y", GW)], None)),
        Err(AddError::TooManyRecords(_))
    ));
}

#[test]
fn aaaa_records_beside_a_records() {
    let gw6: Ipv6Addr = "fd00:127::1".parse().unwrap();
    let host6: Ipv6Addr = "fd00:127::254".parse().unwrap();
    let z = defaults().with_ipv6(gw6, host6);
    for zone in ["containers.internal.", "docker.internal."] {
        let host = ask(&z, &format!("host.{zone}"), rtype::AAAA).unwrap();
        assert_eq!(host, (0, true, 1, 0, host6.octets().to_vec()));
        let gw = ask(&z, &format!("gateway.{zone}"), rtype::AAAA).unwrap();
        assert_eq!(gw, (0, true, 1, 0, gw6.octets().to_vec()));
        // The A records are still the first answer for A.
        let host = ask(&z, &format!("host.{zone}"), rtype::A).unwrap();
        assert_eq!(host, (0, true, 1, 0, HOST.octets().to_vec()));
    }
    // Without IPv6 records, AAAA of an existing name is NODATA, not NXDOMAIN.
    let (rcode, _, an, ns, _) = ask(&defaults(), "host.containers.internal.", rtype::AAAA).unwrap();
    assert_eq!((rcode, an, ns), (0, 0, 1));
    // A name with only an IPv6 record: NODATA for A.
    let mut only6 = Zones::default();
    only6
        .add(Zone::new("v6.test", vec![Record::exact("x", gw6)], None))
        .unwrap();
    let (rcode, _, an, ns, _) = ask(&only6, "x.v6.test.", rtype::A).unwrap();
    assert_eq!((rcode, an, ns), (0, 0, 1));
    // A default address of the other family is NODATA too.
    let mut dflt = Zones::default();
    dflt.add(Zone::new("d.test", Vec::new(), Some(IpAddr::V6(gw6))))
        .unwrap();
    let (rcode, _, an, _, _) = ask(&dflt, "any.d.test.", rtype::A).unwrap();
    assert_eq!((rcode, an), (0, 0));
    let (rcode, _, an, _, data) = ask(&dflt, "any.d.test.", rtype::AAAA).unwrap();
    assert_eq!((rcode, an, data), (0, 1, gw6.octets().to_vec()));
}
