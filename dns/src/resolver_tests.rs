#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::wire::tests::query;
use crate::wire::{flags, rtype};

const A: &str = "127.0.0.1:5301";
const B: &str = "127.0.0.1:5302";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn zones() -> Zones {
    Zones::gvproxy_defaults(
        Ipv4Addr::new(192, 168, 127, 1),
        Ipv4Addr::new(192, 168, 127, 254),
    )
}

fn resolver(upstreams: &[&str]) -> Resolver<u32> {
    Resolver::new(ResolverConfig {
        upstreams: upstreams.iter().map(|s| addr(s)).collect(),
        max_pending: 8,
        ..ResolverConfig::default()
    })
}

fn t(ms: u64) -> Instant {
    Instant::default() + Duration::from_millis(ms)
}

fn drain(r: &mut Resolver<u32>) -> Vec<Transmit<u32>> {
    std::iter::from_fn(|| r.poll_transmit()).collect()
}

fn upstream_sent(r: &mut Resolver<u32>) -> (SocketAddr, Vec<u8>) {
    match drain(r).as_slice() {
        [Transmit::Upstream { to, payload }] => (*to, payload.clone()),
        other => panic!("expected one upstream query, got {other:?}"),
    }
}

fn client_got(r: &mut Resolver<u32>) -> (u32, Vec<u8>) {
    match drain(r).as_slice() {
        [Transmit::Client { to, payload }] => (*to, payload.clone()),
        other => panic!("expected one answer, got {other:?}"),
    }
}

/// The upstream's answer to `sent`: QR set, one made-up answer appended.
fn answer_to(sent: &[u8]) -> Vec<u8> {
    let mut a = sent.to_vec();
    a[2] |= 0x80;
    a[7] = 1;
    a.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 1, 2, 3]);
    a
}

fn rcode(reply: &[u8]) -> u16 {
    Message::new_checked(reply).unwrap().flags() & flags::RCODE_MASK
}

#[test]
fn forwarded_bytes_stay_raw_but_the_id() {
    let mut r = resolver(&[A]);
    let q = query(0x1111, "example.com.", 15);
    r.handle_query(t(0), 7, &q, &zones());
    let (to, sent) = upstream_sent(&mut r);
    assert_eq!(to, addr(A));
    assert_eq!(sent[2..], q[2..]);
    let answer = answer_to(&sent);
    r.handle_response(t(5), addr(A), &answer);
    let (client, got) = client_got(&mut r);
    assert_eq!(client, 7);
    assert_eq!(&got[..2], &[0x11, 0x11]);
    assert_eq!(got[2..], answer[2..]);
    assert_eq!(r.pending(), 0);
    assert_eq!((r.counters().forwarded, r.counters().answers), (1, 1));
}

#[test]
fn same_guest_id_from_two_guests_does_not_collide() {
    let mut r = resolver(&[A]);
    let q = query(0x2222, "example.com.", rtype::A);
    r.handle_query(t(0), 1, &q, &zones());
    r.handle_query(t(0), 2, &q, &zones());
    let sent = drain(&mut r);
    let ids: Vec<Vec<u8>> = sent
        .iter()
        .map(|s| match s {
            Transmit::Upstream { payload, .. } => payload[..2].to_vec(),
            _ => panic!(),
        })
        .collect();
    assert_ne!(ids[0], ids[1]);
    // Answer the second first.
    for (i, want) in [(1usize, 2u32), (0, 1)] {
        let Transmit::Upstream { payload, .. } = &sent[i] else {
            panic!()
        };
        r.handle_response(t(1), addr(A), &answer_to(payload));
        let (client, got) = client_got(&mut r);
        assert_eq!((client, &got[..2]), (want, &[0x22u8, 0x22][..]));
    }
}

#[test]
fn local_names_never_leave() {
    let mut r = resolver(&[A]);
    r.handle_query(
        t(0),
        1,
        &query(5, "host.docker.internal.", rtype::A),
        &zones(),
    );
    let (_, got) = client_got(&mut r);
    assert_eq!(&got[got.len() - 4..], &[192, 168, 127, 254]);
    assert_eq!(r.counters().local_answers, 1);
}

#[test]
fn spoofed_and_stray_answers_are_dropped() {
    let mut r = resolver(&[A]);
    r.handle_query(t(0), 1, &query(5, "example.com.", rtype::A), &zones());
    let (_, sent) = upstream_sent(&mut r);
    let good = answer_to(&sent);
    r.handle_response(t(1), addr(B), &good);
    let mut other_question = good.clone();
    other_question[13] ^= 1;
    r.handle_response(t(1), addr(A), &other_question);
    let mut wrong_id = good.clone();
    wrong_id[0] ^= 0xff;
    r.handle_response(t(1), addr(A), &wrong_id);
    r.handle_response(t(1), addr(A), &sent); // not a response
    r.handle_response(t(1), addr(A), &[1, 2, 3]);
    assert!(drain(&mut r).is_empty());
    assert_eq!(r.counters().unmatched, 5);
    r.handle_response(t(1), addr(A), &good);
    assert_eq!(client_got(&mut r).0, 1);
}

#[test]
fn timeout_fails_over_then_servfails() {
    let mut r = resolver(&[A, B]);
    let q = query(9, "example.com.", rtype::A);
    r.handle_query(t(0), 1, &q, &zones());
    assert_eq!(upstream_sent(&mut r).0, addr(A));
    assert_eq!(r.poll_timeout(), Some(t(2000)));
    r.handle_timeout(t(1999));
    assert!(drain(&mut r).is_empty());
    r.handle_timeout(t(2000));
    assert_eq!(upstream_sent(&mut r).0, addr(B));
    // New queries now start at B.
    r.handle_query(t(2001), 2, &query(10, "example.org.", rtype::A), &zones());
    assert_eq!(upstream_sent(&mut r).0, addr(B));
    r.handle_timeout(t(4000));
    assert_eq!(upstream_sent(&mut r).0, addr(A));
    r.handle_timeout(t(6000));
    let out = drain(&mut r);
    let servfails: Vec<_> = out
        .iter()
        .filter_map(|o| match o {
            Transmit::Client { to, payload } => Some((*to, rcode(payload), payload[..2].to_vec())),
            _ => None,
        })
        .collect();
    assert_eq!(servfails, [(1, Rcode::ServFail as u16, vec![0, 9])]);
    assert_eq!(r.counters().timeouts, 1);
    assert!(r.counters().failovers >= 2);
}

#[test]
fn a_gone_clients_queries_are_forgotten_at_once() {
    let mut r = resolver(&[A]);
    for client in 0..8 {
        let q = query(client as u16, "example.com.", rtype::A);
        r.handle_query(t(0), client, &q, &zones());
    }
    let sent = drain(&mut r);
    assert_eq!((sent.len(), r.pending()), (8, 8));
    // Clients 0..6 go away; an answer already due to one of them is dropped too.
    let Transmit::Upstream { payload, .. } = &sent[0] else {
        panic!("not an upstream query: {:?}", sent[0])
    };
    r.handle_response(t(1), addr(A), &answer_to(payload));
    assert_eq!(r.forget(|c| *c < 6), 5);
    assert!(drain(&mut r).is_empty(), "nothing for a gone client");
    assert_eq!(r.pending(), 2);
    // Their slots are free: the bound takes six new queries, and the survivors time out as
    // before, alone.
    for client in 10..16 {
        let q = query(client as u16, "example.org.", rtype::A);
        r.handle_query(t(2), client, &q, &zones());
    }
    assert_eq!(drain(&mut r).len(), 6);
    assert_eq!(r.counters().pending_full, 0);
    assert_eq!(r.forget(|c| *c >= 10), 6);
    let mut gave_up: Vec<u32> = Vec::new();
    for at in [10_000, 20_000, 30_000] {
        r.handle_timeout(t(at));
        gave_up.extend(drain(&mut r).into_iter().filter_map(|o| match o {
            Transmit::Client { to, .. } => Some(to),
            Transmit::Upstream { .. } | Transmit::UpstreamTcp { .. } => None,
        }));
    }
    gave_up.sort_unstable();
    assert_eq!(gave_up, [6, 7]);
    assert_eq!(r.pending(), 0);
}

#[test]
fn no_upstream_or_full_is_servfail() {
    let mut none = resolver(&[]);
    none.handle_query(t(0), 1, &query(1, "example.com.", rtype::A), &zones());
    assert_eq!(rcode(&client_got(&mut none).1), Rcode::ServFail as u16);
    assert_eq!(none.counters().no_upstream, 1);

    let mut r = resolver(&[A]);
    for i in 0..8 {
        r.handle_query(
            t(0),
            i,
            &query(i as u16, "example.com.", rtype::A),
            &zones(),
        );
    }
    assert_eq!(drain(&mut r).len(), 8);
    r.handle_query(t(0), 99, &query(99, "example.com.", rtype::A), &zones());
    let (to, reply) = client_got(&mut r);
    assert_eq!((to, rcode(&reply)), (99, Rcode::ServFail as u16));
    assert_eq!(r.counters().pending_full, 1);
}

#[test]
fn oversized_answers_are_truncated() {
    let mut r = resolver(&[A]);
    r.handle_query(t(0), 1, &query(3, "big.example.", 16), &zones());
    let (_, sent) = upstream_sent(&mut r);
    let mut big = answer_to(&sent);
    big.extend_from_slice(&[0; 3000]);
    r.handle_response(t(1), addr(A), &big);
    let (_, got) = client_got(&mut r);
    let m = Message::new_checked(&got).unwrap();
    assert!(got.len() <= 1472);
    assert_ne!(m.flags() & flags::TC, 0);
    assert_eq!(m.id(), 3);
    assert_eq!(r.counters().truncated, 1);
}

#[test]
fn malformed_queries() {
    let mut r = resolver(&[A]);
    r.handle_query(t(0), 1, &[0; 5], &zones());
    let mut response = query(1, "a.", rtype::A);
    response[2] |= 0x80;
    r.handle_query(t(0), 1, &response, &zones());
    assert!(drain(&mut r).is_empty());
    assert_eq!(r.counters().dropped, 2);

    let mut looped = query(2, "a.", rtype::A);
    looped.truncate(12);
    looped.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    r.handle_query(t(0), 1, &looped, &zones());
    assert_eq!(rcode(&client_got(&mut r).1), Rcode::FormErr as u16);
    let mut none = query(3, "a.", rtype::A);
    none[5] = 0;
    r.handle_query(t(0), 1, &none, &zones());
    assert_eq!(rcode(&client_got(&mut r).1), Rcode::FormErr as u16);
    let mut two = query(4, "a.", rtype::A);
    two[5] = 2;
    r.handle_query(t(0), 1, &two, &zones());
    assert_eq!(rcode(&client_got(&mut r).1), Rcode::FormErr as u16);
    let mut notify = query(5, "a.", rtype::A);
    notify[2] = 4 << 3;
    r.handle_query(t(0), 1, &notify, &zones());
    assert_eq!(rcode(&client_got(&mut r).1), Rcode::NotImp as u16);
    assert_eq!((r.counters().formerr, r.counters().notimp), (3, 1));
}

proptest! {
    #[test]
    fn arbitrary_queries_and_answers_never_panic(
        q in proptest::collection::vec(any::<u8>(), 0..200),
        a in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut r = resolver(&[A]);
        r.handle_query(t(0), 1, &q, &zones());
        let _ = drain(&mut r);
        r.handle_response(t(1), addr(A), &a);
        r.handle_timeout(t(10_000));
        let _ = drain(&mut r);
    }
}

fn upstream_tcp_sent(r: &mut Resolver<u32>) -> (SocketAddr, Vec<u8>) {
    match drain(r).as_slice() {
        [Transmit::UpstreamTcp { to, payload }] => (*to, payload.clone()),
        other => panic!("expected one upstream TCP query, got {other:?}"),
    }
}

#[test]
fn tcp_query_goes_over_tcp_and_its_answer_is_never_cut() {
    let mut r = resolver(&[A]);
    let q = query(0x3333, "big.example.", 16);
    r.handle_query_via(t(0), 4, Transport::Tcp, &q, &zones());
    let (to, sent) = upstream_tcp_sent(&mut r);
    assert_eq!((to, &sent[2..]), (addr(A), &q[2..]));
    let mut answer = answer_to(&sent);
    answer.extend_from_slice(&[0; 3000]);
    r.handle_response(t(1), addr(A), &answer);
    let (client, got) = client_got(&mut r);
    assert_eq!(
        (client, got.len(), &got[..2]),
        (4, answer.len(), &[0x33u8, 0x33][..])
    );
    assert_eq!(rcode(&got), 0);
    assert_eq!(got[2] & 0x02, 0, "TC must stay clear");
    let c = r.counters();
    assert_eq!((c.tcp_queries, c.tcp_forwarded, c.truncated), (1, 1, 0));
}

#[test]
fn tcp_local_names_answer_locally() {
    let mut r = resolver(&[A]);
    let q = query(9, "gateway.containers.internal.", rtype::A);
    r.handle_query_via(t(0), 1, Transport::Tcp, &q, &zones());
    let (_, got) = client_got(&mut r);
    assert_eq!(&got[got.len() - 4..], &[192, 168, 127, 1]);
}

#[test]
fn tcp_upstream_lost_fails_over_then_servfails() {
    let mut r = resolver(&[A, B]);
    r.handle_query_via(
        t(0),
        1,
        Transport::Tcp,
        &query(1, "x.example.", 1),
        &zones(),
    );
    let (_, sent) = upstream_tcp_sent(&mut r);
    let id = u16::from_be_bytes([sent[0], sent[1]]);
    r.handle_query(t(0), 2, &query(2, "y.example.", 1), &zones());
    let (_, udp) = upstream_sent(&mut r);
    let udp_id = u16::from_be_bytes([udp[0], udp[1]]);
    // A UDP query, an unknown ID, or the wrong upstream: nothing moves.
    r.handle_upstream_lost(t(5), addr(A), &[udp_id, id.wrapping_add(1)]);
    r.handle_upstream_lost(t(5), addr(B), &[id]);
    assert!(drain(&mut r).is_empty());
    r.handle_upstream_lost(t(10), addr(A), &[id]);
    let (to, _) = upstream_tcp_sent(&mut r);
    assert_eq!(to, addr(B));
    r.handle_upstream_lost(t(20), addr(B), &[id]);
    let (to, _) = upstream_tcp_sent(&mut r);
    assert_eq!(to, addr(A));
    r.handle_upstream_lost(t(30), addr(A), &[id]);
    let (client, got) = client_got(&mut r);
    assert_eq!((client, rcode(&got)), (1, 2));
    assert_eq!(&got[..2], &[0, 1]);
    assert_eq!(r.pending(), 1, "the UDP query still waits");
    assert_eq!(r.counters().tcp_upstream_down, 3);
}

#[test]
fn every_query_says_whether_an_answer_comes() {
    let z = zones();
    let mut r = resolver(&[A]);
    let tcp = |r: &mut Resolver<u32>, bytes: &[u8]| {
        r.handle_query_via(t(0), 1, Transport::Tcp, bytes, &z)
    };
    // Too short for a header, or a response: dropped, and nothing is ever sent.
    let mut response = query(0x2222, "example.com.", 1);
    response[2] |= 0x80;
    for bytes in [&b"\x00\x01\x02"[..], &response[..]] {
        assert_eq!(tcp(&mut r, bytes), Disposition::Dropped);
        assert!(drain(&mut r).is_empty());
    }
    // A local name, and a malformed query, are answered at once.
    let local = query(0x3333, "gateway.containers.internal.", 1);
    assert_eq!(tcp(&mut r, &local), Disposition::Answered);
    let mut no_question = query(0x4444, "example.com.", 1);
    no_question[5] = 0;
    assert_eq!(tcp(&mut r, &no_question), Disposition::Answered);
    assert_eq!(drain(&mut r).len(), 2);
    // Anything else goes upstream; without an upstream it is SERVFAIL at once.
    let other = query(0x5555, "example.com.", 1);
    assert_eq!(tcp(&mut r, &other), Disposition::Forwarded);
    let mut none = resolver(&[]);
    assert_eq!(
        none.handle_query(t(0), 2, &other, &z),
        Disposition::Answered
    );
    assert_eq!(r.counters().dropped, 2);
}

#[test]
fn a_refusing_upstream_fails_over_at_once() {
    let mut r = resolver(&[A, B]);
    r.handle_query(t(0), 1, &query(9, "example.com.", rtype::A), &zones());
    assert_eq!(upstream_sent(&mut r).0, addr(A));
    // A refusal from an upstream that has nothing waiting, or is not ours, changes nothing.
    r.handle_upstream_refused(t(1), addr(B));
    r.handle_upstream_refused(t(1), addr("127.0.0.9:53"));
    assert!(drain(&mut r).is_empty());
    r.handle_upstream_refused(t(5), addr(A));
    assert_eq!(upstream_sent(&mut r).0, addr(B), "no wait for the timeout");
    r.handle_upstream_refused(t(6), addr(B));
    assert_eq!(upstream_sent(&mut r).0, addr(A));
    r.handle_upstream_refused(t(7), addr(A));
    let out = drain(&mut r);
    assert!(
        out.iter().any(|o| matches!(o, Transmit::Client { to: 1, payload } if rcode(payload) == Rcode::ServFail as u16)),
        "SERVFAIL after the last attempt, 7 ms after the query: {out:?}"
    );
    assert_eq!(r.pending(), 0);
    assert_eq!(r.counters().upstream_refused, 4);
}
