//! The client against this crate's own server: every message crosses as bytes.

use super::*;
use crate::{Config, Server};

const MAC: EthernetAddress = EthernetAddress([0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xee]);
const OTHER_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 9]);

/// Sends what the client has to the server and the reply back; returns whether a message
/// crossed.
fn exchange(client: &mut Client, server: &mut Server, now: Instant) -> bool {
    let Some(tx) = client.poll_transmit() else {
        return false;
    };
    let bytes = tx.message.to_bytes().unwrap();
    if let Some(reply) = server.handle(now, &bytes) {
        client.handle_message(now, &reply.payload);
    }
    true
}

fn run_until_quiet(client: &mut Client, server: &mut Server, now: Instant) {
    client.handle_timeout(now);
    for _ in 0..10 {
        if !exchange(client, server, now) {
            return;
        }
    }
    panic!("the exchange does not settle");
}

#[test]
fn leases_the_static_address_with_the_servers_options() {
    let t0 = Instant::now();
    let mut server = Server::new(Config::default()).unwrap();
    let mut client = Client::new(MAC, 7, t0);
    run_until_quiet(&mut client, &mut server, t0);
    let Some(Event::Bound(lease)) = client.poll_event() else {
        panic!("not bound");
    };
    assert_eq!(lease.address, Ipv4Addr::new(192, 168, 127, 2));
    assert_eq!(lease.prefix_len, 24);
    assert_eq!(lease.router, Some(Ipv4Addr::new(192, 168, 127, 1)));
    assert_eq!(lease.dns_servers, [Ipv4Addr::new(192, 168, 127, 1)]);
    assert_eq!(lease.mtu, Some(1500));
    assert_eq!(lease.server, Ipv4Addr::new(192, 168, 127, 1));
    assert_eq!(lease.lease_time, Duration::from_secs(3600));
    assert_eq!(client.poll_event(), None);
    assert!(
        server
            .leases()
            .iter()
            .any(|l| l.mac == MAC && l.expires.is_some())
    );
    // T1 is half the lease.
    assert_eq!(client.poll_timeout(), Some(t0 + Duration::from_secs(1800)));
}

#[test]
fn a_dynamic_client_gets_a_pool_address() {
    let t0 = Instant::now();
    let mut server = Server::new(Config::default()).unwrap();
    let mut client = Client::new(OTHER_MAC, 99, t0).with_hostname(Some("vm".into()));
    run_until_quiet(&mut client, &mut server, t0);
    let Some(Event::Bound(lease)) = client.poll_event() else {
        panic!("not bound");
    };
    assert_eq!(lease.address, Ipv4Addr::new(192, 168, 127, 3));
    let listed = server.leases();
    let mine = listed.iter().find(|l| l.mac == OTHER_MAC).unwrap();
    assert_eq!(mine.hostname.as_deref(), Some("vm"));
}

#[test]
fn renews_by_unicast_at_t1_and_rebinds_by_broadcast_at_t2() {
    let t0 = Instant::now();
    let mut server = Server::new(Config::default()).unwrap();
    let mut client = Client::new(MAC, 1, t0);
    run_until_quiet(&mut client, &mut server, t0);
    assert!(matches!(client.poll_event(), Some(Event::Bound(_))));

    // At T1 a unicast REQUEST with ciaddr set; the server's ACK extends the lease.
    let t1 = t0 + Duration::from_secs(1800);
    client.handle_timeout(t1);
    let tx = client.poll_transmit().unwrap();
    assert_eq!(tx.message.message_type, MessageType::Request);
    assert_eq!(tx.dst, Ipv4Addr::new(192, 168, 127, 1));
    assert_eq!(tx.src, Ipv4Addr::new(192, 168, 127, 2));
    assert_eq!(tx.message.ciaddr, Ipv4Addr::new(192, 168, 127, 2));
    assert_eq!(tx.message.requested_ip, None);
    let reply = server.handle(t1, &tx.message.to_bytes().unwrap()).unwrap();
    client.handle_message(t1, &reply.payload);
    assert!(matches!(client.poll_event(), Some(Event::Bound(_))));
    assert_eq!(client.poll_timeout(), Some(t1 + Duration::from_secs(1800)));

    // No answer at all: retries, then at T2 broadcast, then at the end the lease is lost.
    let t1b = t1 + Duration::from_secs(1800);
    client.handle_timeout(t1b);
    assert_eq!(
        client.poll_transmit().unwrap().dst,
        Ipv4Addr::new(192, 168, 127, 1)
    );
    let t2 = t1 + Duration::from_secs(3150);
    let mut now = t1b;
    let mut broadcast_seen = false;
    let mut last = None;
    while client.lease().is_some() {
        now = client.poll_timeout().unwrap();
        assert!(
            now <= t1 + Duration::from_secs(3600),
            "the lease outlived itself"
        );
        client.handle_timeout(now);
        if let Some(tx) = client.poll_transmit() {
            assert_eq!(tx.is_broadcast(), now >= t2, "at {:?}", now - t1);
            broadcast_seen |= tx.is_broadcast() && tx.message.message_type == MessageType::Request;
            last = Some(tx);
        }
    }
    assert!(broadcast_seen);
    assert_eq!(now, t1 + Duration::from_secs(3600));
    assert_eq!(client.poll_event(), Some(Event::Lost));
    // Straight back to DISCOVER.
    assert_eq!(last.unwrap().message.message_type, MessageType::Discover);
}

#[test]
fn discover_is_retried_with_growing_delays() {
    let t0 = Instant::now();
    let mut client = Client::new(MAC, 5, t0);
    let mut now = t0;
    let mut gaps = Vec::new();
    for _ in 0..7 {
        client.handle_timeout(now);
        let tx = client.poll_transmit().unwrap();
        assert_eq!(tx.message.message_type, MessageType::Discover);
        assert!(tx.is_broadcast());
        assert_eq!(tx.src, Ipv4Addr::UNSPECIFIED);
        let next = client.poll_timeout().unwrap();
        gaps.push((next - now).as_secs());
        now = next;
    }
    assert_eq!(gaps, [1, 2, 4, 8, 16, 16, 16]);
}

#[test]
fn a_nak_while_renewing_loses_the_lease_and_starts_over() {
    let t0 = Instant::now();
    let mut server = Server::new(Config::default()).unwrap();
    let mut client = Client::new(MAC, 3, t0);
    run_until_quiet(&mut client, &mut server, t0);
    assert!(matches!(client.poll_event(), Some(Event::Bound(_))));
    // A server that forgot us (restarted with another subnet) answers NAK.
    let config = Config {
        server_addr: Ipv4Addr::new(10, 0, 0, 1),
        subnet: crate::Subnet::new(Ipv4Addr::new(10, 0, 0, 0), 24).unwrap(),
        pool_start: Ipv4Addr::new(10, 0, 0, 3),
        pool_end: Ipv4Addr::new(10, 0, 0, 9),
        reserved: Vec::new(),
        static_leases: Vec::new(),
        routers: Vec::new(),
        dns_servers: Vec::new(),
        ..Config::default()
    };
    let mut other = Server::new(config).unwrap();
    let t1 = t0 + Duration::from_secs(1800);
    client.handle_timeout(t1);
    let tx = client.poll_transmit().unwrap();
    let reply = other.handle(t1, &tx.message.to_bytes().unwrap()).unwrap();
    assert_eq!(reply.message_type, MessageType::Nak);
    client.handle_message(t1, &reply.payload);
    assert_eq!(client.poll_event(), Some(Event::Lost));
    assert!(client.lease().is_none());
    let tx = client.poll_transmit().unwrap();
    assert_eq!(tx.message.message_type, MessageType::Discover);
}

#[test]
fn replies_for_someone_else_are_ignored() {
    let t0 = Instant::now();
    let mut server = Server::new(Config::default()).unwrap();
    let mut other = Client::new(OTHER_MAC, 11, t0);
    let mut client = Client::new(MAC, 11, t0);
    other.handle_timeout(t0);
    let tx = other.poll_transmit().unwrap();
    let offer = server.handle(t0, &tx.message.to_bytes().unwrap()).unwrap();
    client.handle_timeout(t0);
    let _ = client.poll_transmit();
    // Same xid, other chaddr: not ours.
    client.handle_message(t0, &offer.payload);
    assert!(client.poll_transmit().is_none());
    // Garbage of every length.
    for len in 0..400 {
        client.handle_message(t0, &vec![0xa5; len]);
    }
    assert!(client.poll_transmit().is_none());
    assert_eq!(client.poll_event(), None);
}

#[test]
fn unanswered_requests_go_back_to_discover() {
    let t0 = Instant::now();
    let mut server = Server::new(Config::default()).unwrap();
    let mut client = Client::new(MAC, 21, t0);
    client.handle_timeout(t0);
    let discover = client.poll_transmit().unwrap();
    let offer = server
        .handle(t0, &discover.message.to_bytes().unwrap())
        .unwrap();
    client.handle_message(t0, &offer.payload);
    let mut requests = 0;
    loop {
        let tx = client.poll_transmit().unwrap();
        if tx.message.message_type == MessageType::Discover {
            break;
        }
        assert_eq!(tx.message.message_type, MessageType::Request);
        assert_eq!(
            tx.message.requested_ip,
            Some(Ipv4Addr::new(192, 168, 127, 2))
        );
        requests += 1;
        let now = client.poll_timeout().unwrap();
        client.handle_timeout(now);
    }
    assert_eq!(requests, MAX_REQUESTS);
}

#[test]
fn renew_now_asks_the_server_at_once_and_keeps_the_lease() {
    let t0 = Instant::now();
    let mut server = Server::new(Config::default()).unwrap();
    let mut client = Client::new(MAC, 8, t0);
    run_until_quiet(&mut client, &mut server, t0);
    assert!(matches!(client.poll_event(), Some(Event::Bound(_))));
    let later = t0 + Duration::from_secs(60);
    client.renew(later);
    assert_eq!(client.poll_timeout(), Some(later));
    // A fresh server (the host restarted) acknowledges the static address.
    let mut fresh = Server::new(Config::default()).unwrap();
    client.handle_timeout(later);
    let tx = client.poll_transmit().unwrap();
    assert_eq!(tx.message.ciaddr, Ipv4Addr::new(192, 168, 127, 2));
    let reply = fresh
        .handle(later, &tx.message.to_bytes().unwrap())
        .unwrap();
    client.handle_message(later, &reply.payload);
    assert!(matches!(client.poll_event(), Some(Event::Bound(_))));
    assert!(client.lease().is_some());
}
