#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::v6::config::{StaticLease, nth};
use crate::v6::message::{CLIENT_PORT, dns_servers};
use proptest::prelude::*;

const GW: EthernetAddress = EthernetAddress([0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xdd]);
const GUEST: EthernetAddress = EthernetAddress([0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xee]);
const OTHER: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 7]);

fn prefix() -> Ipv6Addr {
    "fd00:127::".parse().unwrap()
}

fn config() -> Config {
    let mut c = Config::for_prefix(prefix(), GW, GUEST);
    c.search_domains = vec!["containers.internal".into()];
    c
}

fn server() -> Server {
    Server::new(config()).unwrap()
}

fn duid(n: u8) -> Vec<u8> {
    vec![0, 3, 0, 1, 2, 0, 0, 0, 0, n]
}

/// A client message: type, client DUID (if any), and further options.
fn message(msg_type: MessageType, client: Option<&[u8]>, extra: &[DhcpOption<'_>]) -> Vec<u8> {
    let mut options = Vec::new();
    if let Some(id) = client {
        options.push(DhcpOption::ClientId(id));
    }
    options.extend_from_slice(extra);
    options.push(DhcpOption::ElapsedTime(0));
    Repr {
        msg_type,
        transaction_id: 0x00ab_cdef,
        options: Options::new(&options),
    }
    .emit()
}

fn ia(iaid: u32, inner: &[u8]) -> DhcpOption<'_> {
    DhcpOption::IaNa {
        iaid,
        t1: 0,
        t2: 0,
        options: Options::parse(inner).unwrap(),
    }
}

fn hint(addr: Ipv6Addr) -> Vec<u8> {
    let mut out = Vec::new();
    DhcpOption::IaAddr {
        addr,
        preferred: 0,
        valid: 0,
        options: Options::new(&[]),
    }
    .emit(&mut out);
    out
}

fn server_id() -> Vec<u8> {
    config().server_duid
}

fn oro(codes: &[u16]) -> Vec<u8> {
    codes.iter().flat_map(|c| c.to_be_bytes()).collect()
}

/// The reply's type and (the first address of each IA, or its status code).
struct Parsed {
    msg_type: MessageType,
    transaction_id: u32,
    addrs: Vec<Result<(Ipv6Addr, u32, u32), u16>>,
    status: Option<u16>,
    dns: Vec<Ipv6Addr>,
    domains: Option<Vec<u8>>,
    refresh: Option<u32>,
    rapid: bool,
    server_id: Vec<u8>,
    client_id: Option<Vec<u8>>,
}

fn parse_reply(bytes: &[u8]) -> Parsed {
    let repr = Repr::parse(&Packet::new_checked(bytes).unwrap()).unwrap();
    let mut p = Parsed {
        msg_type: repr.msg_type,
        transaction_id: repr.transaction_id,
        addrs: Vec::new(),
        status: None,
        dns: Vec::new(),
        domains: None,
        refresh: None,
        rapid: false,
        server_id: Vec::new(),
        client_id: None,
    };
    for o in repr.options.iter() {
        match o.unwrap() {
            DhcpOption::IaNa { options, .. } => {
                let inner = options.iter().next().unwrap().unwrap();
                p.addrs.push(match inner {
                    DhcpOption::IaAddr {
                        addr,
                        preferred,
                        valid,
                        ..
                    } => Ok((addr, preferred, valid)),
                    DhcpOption::StatusCode { status, .. } => Err(status),
                    other => panic!("{other:?} in an IA_NA"),
                });
            }
            DhcpOption::StatusCode { status, .. } => p.status = Some(status),
            DhcpOption::DnsServers(d) => p.dns = dns_servers(d).collect(),
            DhcpOption::DomainList(d) => p.domains = Some(d.to_vec()),
            DhcpOption::InformationRefreshTime(t) => p.refresh = Some(t),
            DhcpOption::RapidCommit => p.rapid = true,
            DhcpOption::ServerId(id) => p.server_id = id.to_vec(),
            DhcpOption::ClientId(id) => p.client_id = Some(id.to_vec()),
            _ => {}
        }
    }
    p
}

fn t0() -> Instant {
    Instant::now()
}

#[test]
fn information_request_gets_dns_and_search_list() {
    let mut s = server();
    let now = t0();
    let want = oro(&[
        code::DNS_SERVERS,
        code::DOMAIN_LIST,
        code::INFORMATION_REFRESH_TIME,
    ]);
    let req = message(
        MessageType::InformationRequest,
        Some(&duid(1)),
        &[DhcpOption::Oro(&want)],
    );
    let reply = parse_reply(&s.handle(now, GUEST, &req).unwrap());
    assert_eq!(reply.msg_type, MessageType::Reply);
    assert_eq!(reply.transaction_id, 0xab_cdef);
    assert_eq!(reply.dns, [nth(prefix(), 1)]);
    assert_eq!(
        reply.domains.unwrap(),
        b"\x0acontainers\x08internal\x00".to_vec()
    );
    assert_eq!(reply.refresh, Some(86400));
    assert_eq!(reply.server_id, server_id());
    assert_eq!(reply.client_id, Some(duid(1)));
    assert!(reply.addrs.is_empty());
    // Without an ORO it still gets DNS, but no refresh time; without a client id too.
    let req = message(MessageType::InformationRequest, None, &[]);
    let reply = parse_reply(&s.handle(now, GUEST, &req).unwrap());
    assert_eq!(reply.dns, [nth(prefix(), 1)]);
    assert_eq!(reply.refresh, None);
    assert_eq!(reply.client_id, None);
    // An ORO that asks for something else gets neither.
    let other = oro(&[code::INFORMATION_REFRESH_TIME]);
    let req = message(
        MessageType::InformationRequest,
        Some(&duid(1)),
        &[DhcpOption::Oro(&other)],
    );
    let reply = parse_reply(&s.handle(now, GUEST, &req).unwrap());
    assert!(reply.dns.is_empty() && reply.domains.is_none());
    assert_eq!(s.stats().information_requests, 3);
    assert_eq!(s.stats().replies, 3);
}

#[test]
fn information_request_with_an_ia_or_a_foreign_server_id_is_dropped() {
    let mut s = server();
    let inner = hint(nth(prefix(), 0x100));
    let req = message(
        MessageType::InformationRequest,
        Some(&duid(1)),
        &[ia(1, &inner)],
    );
    assert!(s.handle(t0(), GUEST, &req).is_none());
    let foreign = duid(99);
    let req = message(
        MessageType::InformationRequest,
        Some(&duid(1)),
        &[DhcpOption::ServerId(&foreign)],
    );
    assert!(s.handle(t0(), GUEST, &req).is_none());
    let d = s.stats().dropped;
    assert_eq!(d.get(DropReason::IaInInformationRequest), 1);
    assert_eq!(d.get(DropReason::ForeignServer), 1);
}

#[test]
fn the_default_guest_gets_its_static_address_through_solicit_and_request() {
    let mut s = server();
    let now = t0();
    let solicit = message(MessageType::Solicit, Some(&duid(1)), &[ia(7, &[])]);
    let adv = parse_reply(&s.handle(now, GUEST, &solicit).unwrap());
    assert_eq!(adv.msg_type, MessageType::Advertise);
    assert_eq!(adv.addrs, [Ok((nth(prefix(), 2), 3600, 7200))]);
    // An Advertise reserves nothing.
    assert_eq!(s.stats().leases, 0);
    let sid = server_id();
    let inner = hint(nth(prefix(), 2));
    let request = message(
        MessageType::Request,
        Some(&duid(1)),
        &[DhcpOption::ServerId(&sid), ia(7, &inner)],
    );
    let reply = parse_reply(&s.handle(now, GUEST, &request).unwrap());
    assert_eq!(reply.msg_type, MessageType::Reply);
    assert_eq!(reply.addrs, [Ok((nth(prefix(), 2), 3600, 7200))]);
    let leases = s.leases();
    assert_eq!(leases.len(), 1);
    assert!(leases[0].is_static && leases[0].expires.is_some());
    // The guest restarts with a new DUID: it keeps its address.
    let request = message(
        MessageType::Request,
        Some(&duid(2)),
        &[DhcpOption::ServerId(&sid), ia(1, &[])],
    );
    let reply = parse_reply(&s.handle(now, GUEST, &request).unwrap());
    assert_eq!(reply.addrs, [Ok((nth(prefix(), 2), 3600, 7200))]);
    assert_eq!(s.stats().leases, 1);
    // Another machine never gets it.
    let request = message(
        MessageType::Request,
        Some(&duid(3)),
        &[DhcpOption::ServerId(&sid), ia(1, &inner)],
    );
    let reply = parse_reply(&s.handle(now, OTHER, &request).unwrap());
    assert_eq!(reply.addrs, [Ok((nth(prefix(), 0x100), 3600, 7200))]);
}

#[test]
fn rapid_commit_binds_at_once() {
    let mut s = server();
    let solicit = message(
        MessageType::Solicit,
        Some(&duid(5)),
        &[DhcpOption::RapidCommit, ia(1, &[])],
    );
    let reply = parse_reply(&s.handle(t0(), OTHER, &solicit).unwrap());
    assert_eq!(reply.msg_type, MessageType::Reply);
    assert!(reply.rapid);
    assert_eq!(reply.addrs, [Ok((nth(prefix(), 0x100), 3600, 7200))]);
    assert_eq!(s.stats().leases, 1);
    // Without the server allowing it, an Advertise.
    let mut c = config();
    c.rapid_commit = false;
    let mut s = Server::new(c).unwrap();
    let reply = parse_reply(&s.handle(t0(), OTHER, &solicit).unwrap());
    assert_eq!(reply.msg_type, MessageType::Advertise);
    assert!(!reply.rapid);
}

#[test]
fn renew_release_decline_and_expiry() {
    let mut s = server();
    let now = t0();
    let sid = server_id();
    let request = message(
        MessageType::Request,
        Some(&duid(4)),
        &[DhcpOption::ServerId(&sid), ia(1, &[])],
    );
    let reply = parse_reply(&s.handle(now, OTHER, &request).unwrap());
    let Ok((addr, _, _)) = reply.addrs[0] else {
        panic!("no address");
    };
    // Renew extends it.
    let inner = hint(addr);
    let renew = message(
        MessageType::Renew,
        Some(&duid(4)),
        &[DhcpOption::ServerId(&sid), ia(1, &inner)],
    );
    let later = now + Duration::from_secs(3000);
    let reply = parse_reply(&s.handle(later, OTHER, &renew).unwrap());
    assert_eq!(reply.addrs, [Ok((addr, 3600, 7200))]);
    s.handle_timeout(now + Duration::from_secs(7300));
    assert_eq!(
        s.stats().leases,
        1,
        "renewed at 3000 s, valid until 10200 s"
    );
    // Renew of an address another client holds: NoBinding.
    let renew_other = message(
        MessageType::Renew,
        Some(&duid(8)),
        &[DhcpOption::ServerId(&sid), ia(1, &inner)],
    );
    let reply = parse_reply(&s.handle(later, GUEST, &renew_other).unwrap());
    assert_eq!(reply.addrs, [Err(status::NO_BINDING)]);
    assert_eq!(s.stats().no_binding, 1);
    // Release gives it back.
    let release = message(
        MessageType::Release,
        Some(&duid(4)),
        &[DhcpOption::ServerId(&sid), ia(1, &inner)],
    );
    let reply = parse_reply(&s.handle(later, OTHER, &release).unwrap());
    assert_eq!(reply.status, Some(status::SUCCESS));
    assert_eq!(s.stats().leases, 0);
    // Bound again (asking for it by name: a freed address goes to the back of the pool),
    // then declined: out of the pool for a while.
    let again = message(
        MessageType::Request,
        Some(&duid(4)),
        &[DhcpOption::ServerId(&sid), ia(1, &inner)],
    );
    let reply = parse_reply(&s.handle(later, OTHER, &again).unwrap());
    assert_eq!(reply.addrs, [Ok((addr, 3600, 7200))]);
    let decline = message(
        MessageType::Decline,
        Some(&duid(4)),
        &[DhcpOption::ServerId(&sid), ia(1, &inner)],
    );
    parse_reply(&s.handle(later, OTHER, &decline).unwrap());
    let reply = parse_reply(&s.handle(later, OTHER, &again).unwrap());
    assert_ne!(reply.addrs, [Ok((addr, 3600, 7200))]);
    // And it expires after its valid lifetime.
    s.handle_timeout(later + Duration::from_secs(7200));
    assert_eq!(s.stats().leases, 0);
    assert!(s.stats().leases_expired >= 1);
}

#[test]
fn pool_exhaustion_and_identifier_rules() {
    let mut c = config();
    c.pool_end = nth(prefix(), 0x101);
    let mut s = Server::new(c).unwrap();
    let sid = server_id();
    for n in 0..3u8 {
        let request = message(
            MessageType::Request,
            Some(&duid(n)),
            &[DhcpOption::ServerId(&sid), ia(1, &[])],
        );
        let reply = parse_reply(&s.handle(t0(), OTHER, &request).unwrap());
        if n < 2 {
            assert!(reply.addrs[0].is_ok());
        } else {
            assert_eq!(reply.addrs, [Err(status::NO_ADDRS_AVAIL)]);
        }
    }
    assert_eq!(s.stats().no_addrs_avail, 1);
    // A Solicit with a server id, a Request without one or with another's, no client id.
    let foreign = duid(77);
    for (msg, reason) in [
        (
            message(
                MessageType::Solicit,
                Some(&duid(1)),
                &[DhcpOption::ServerId(&sid)],
            ),
            DropReason::ServerIdRule,
        ),
        (
            message(MessageType::Request, Some(&duid(1)), &[]),
            DropReason::ServerIdRule,
        ),
        (
            message(
                MessageType::Request,
                Some(&duid(1)),
                &[DhcpOption::ServerId(&foreign)],
            ),
            DropReason::ForeignServer,
        ),
        (
            message(MessageType::Solicit, None, &[]),
            DropReason::MissingClientId,
        ),
        (
            message(MessageType::Reply, Some(&duid(1)), &[]),
            DropReason::NotClientMessage,
        ),
        (vec![1, 0, 0], DropReason::Malformed),
        (vec![1, 0, 0, 0, 0, 1, 0, 9, 1], DropReason::Malformed),
    ] {
        let before = s.stats().dropped.get(reason);
        assert!(s.handle(t0(), OTHER, &msg).is_none());
        assert_eq!(s.stats().dropped.get(reason), before + 1, "{reason:?}");
    }
}

#[test]
fn confirm_checks_the_prefix() {
    let mut s = server();
    let on = hint(nth(prefix(), 0x150));
    let confirm = message(MessageType::Confirm, Some(&duid(1)), &[ia(1, &on)]);
    let reply = parse_reply(&s.handle(t0(), OTHER, &confirm).unwrap());
    assert_eq!(reply.status, Some(status::SUCCESS));
    let off = hint("fd00:999::1".parse().unwrap());
    let confirm = message(MessageType::Confirm, Some(&duid(1)), &[ia(1, &off)]);
    let reply = parse_reply(&s.handle(t0(), OTHER, &confirm).unwrap());
    assert_eq!(reply.status, Some(status::NOT_ON_LINK));
    let empty = message(MessageType::Confirm, Some(&duid(1)), &[ia(1, &[])]);
    assert!(s.handle(t0(), OTHER, &empty).is_none());
}

#[test]
fn many_clients_never_grow_past_the_pool() {
    let mut c = config();
    c.pool_end = nth(prefix(), 0x10f);
    c.static_leases = vec![StaticLease {
        mac: GUEST,
        ip: nth(prefix(), 2),
    }];
    let mut s = Server::new(c).unwrap();
    let sid = server_id();
    for n in 0..=255u8 {
        for iaid in 0..6u32 {
            let _ = s.handle(
                t0(),
                OTHER,
                &message(
                    MessageType::Request,
                    Some(&duid(n)),
                    &[DhcpOption::ServerId(&sid), ia(iaid, &[])],
                ),
            );
        }
    }
    assert_eq!(s.stats().leases, 16);
    assert_eq!(s.stats().pool_free, 0);
    let _ = CLIENT_PORT;
}

proptest! {
    #[test]
    fn any_bytes_never_panic_and_replies_parse(bytes in proptest::collection::vec(any::<u8>(), 0..160),
                                               msg_type in 0u8..14) {
        let mut s = server();
        let mut msg = bytes.clone();
        if let Some(first) = msg.first_mut() {
            *first = msg_type;
        }
        for m in [&bytes, &msg] {
            if let Some(reply) = s.handle(t0(), OTHER, m) {
                let repr = Repr::parse(&Packet::new_checked(&reply[..]).unwrap()).unwrap();
                prop_assert!(repr.options.iter().all(|o| o.is_ok()));
            }
        }
    }

    #[test]
    fn messages_survive_emit_and_parse(t in any::<u8>(), xid in 0u32..(1 << 24),
                                       id in proptest::collection::vec(any::<u8>(), 2..40),
                                       elapsed in any::<u16>(), iaid in any::<u32>(),
                                       addr in any::<u128>(), lifetimes in any::<(u32, u32)>(),
                                       codes in proptest::collection::vec(any::<u16>(), 0..8),
                                       status_code in any::<u16>(),
                                       message_text in proptest::collection::vec(any::<u8>(), 0..20),
                                       unknown in (100u16..200, proptest::collection::vec(any::<u8>(), 0..30))) {
        let mut inner = Vec::new();
        DhcpOption::IaAddr {
            addr: Ipv6Addr::from_bits(addr),
            preferred: lifetimes.0,
            valid: lifetimes.1,
            options: Options::new(&[DhcpOption::StatusCode { status: status_code, message: &message_text }]),
        }
        .emit(&mut inner);
        let oro_bytes = oro(&codes);
        let list = [
            DhcpOption::ClientId(&id),
            DhcpOption::ElapsedTime(elapsed),
            DhcpOption::Oro(&oro_bytes),
            DhcpOption::IaNa { iaid, t1: lifetimes.0, t2: lifetimes.1, options: Options::parse(&inner).unwrap() },
            DhcpOption::RapidCommit,
            DhcpOption::InformationRefreshTime(lifetimes.0),
            DhcpOption::Unknown { code: unknown.0, data: &unknown.1 },
        ];
        let repr = Repr { msg_type: MessageType::from(t), transaction_id: xid, options: Options::new(&list) };
        let bytes = repr.emit();
        prop_assert_eq!(bytes.len(), repr.buffer_len());
        let back = Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()).unwrap();
        prop_assert_eq!(back, repr);
    }
}
