//! Scripted server tests, named `<client state>_<event>`, and property tests. The captured
//! clients are in `fixture_tests.rs`.

use super::*;
use crate::config::StaticLease;
use crate::message;

mod fixture_tests;
mod hostile;
mod props;
mod replies;

pub(super) const STATIC_MAC: EthernetAddress =
    EthernetAddress([0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xee]);
const SERVER: Ipv4Addr = Ipv4Addr::new(192, 168, 127, 1);

pub(super) fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(192, 168, 127, last)
}

fn mac(n: u8) -> EthernetAddress {
    EthernetAddress([0x02, 0, 0, 0, 0, n])
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A server and a clock.
pub(super) struct Net {
    pub(super) server: Server,
    pub(super) t0: Instant,
    pub(super) now: Instant,
}

impl Net {
    pub(super) fn new(config: Config) -> Net {
        let t0 = Instant::now();
        Net {
            server: Server::new(config).unwrap(),
            t0,
            now: t0,
        }
    }

    fn small_pool(first: u8, last: u8) -> Net {
        Net::new(Config {
            pool_start: ip(first),
            pool_end: ip(last),
            ..Config::default()
        })
    }

    fn at(&mut self, offset: u64) -> &mut Net {
        self.now = self.t0 + secs(offset);
        self
    }

    /// Hands raw bytes to the server and checks its tables stay consistent.
    pub(super) fn raw(&mut self, bytes: &[u8]) -> Option<(Reply, Repr)> {
        let reply = self.server.handle(self.now, bytes);
        self.server.check_invariants();
        reply.map(|r| {
            let parsed = Repr::parse(&Packet::new_checked(&r.payload[..]).unwrap()).unwrap();
            assert_eq!(parsed.op, Op::Reply);
            assert_eq!(parsed.message_type, r.message_type);
            assert!(r.payload.len() >= message::MIN_LEN);
            (r, parsed)
        })
    }

    fn send(&mut self, req: &Repr) -> Option<(Reply, Repr)> {
        let reply = self.raw(&req.to_bytes().unwrap());
        if let Some((_, r)) = &reply {
            assert_eq!(r.xid, req.xid);
            assert_eq!(r.chaddr, req.chaddr);
        }
        reply
    }

    fn dropped(&self, reason: DropReason) -> u64 {
        self.server.stats().dropped.get(reason)
    }

    /// DISCOVER then REQUEST in SELECTING; the address ACKed.
    fn lease(&mut self, mac: EthernetAddress) -> Ipv4Addr {
        let (_, offer) = self.send(&discover(mac)).unwrap();
        assert_eq!(offer.message_type, MessageType::Offer);
        let (_, ack) = self.send(&select(mac, offer.yiaddr)).unwrap();
        assert_eq!(ack.message_type, MessageType::Ack);
        assert_eq!(ack.yiaddr, offer.yiaddr);
        ack.yiaddr
    }
}

impl Server {
    /// Asserts the tables agree with each other (the invariants the module docs rely on).
    fn check_invariants(&self) {
        for (ip, b) in &self.bindings {
            assert_eq!(
                self.by_client.get(&b.client),
                Some(ip),
                "binding {ip} not indexed"
            );
            assert!(
                self.timers.contains(&(b.expires, *ip)),
                "binding {ip} without timer"
            );
            assert!(!self.pool.contains(*ip) && !self.declined.contains_key(ip));
            if let Some(&mac) = self.statics_by_ip.get(ip) {
                assert_eq!(b.mac, mac, "static {ip} bound to another MAC");
            }
        }
        for (client, ip) in &self.by_client {
            assert_eq!(self.bindings.get(ip).map(|b| &b.client), Some(client));
        }
        for (ip, until) in &self.declined {
            assert!(self.timers.contains(&(*until, *ip)));
            assert!(!self.pool.contains(*ip));
        }
        assert_eq!(self.timers.len(), self.bindings.len() + self.declined.len());
        let offered = self
            .bindings
            .values()
            .filter(|b| b.state == State::Offered)
            .count();
        assert_eq!(self.offers, offered);
        assert!(self.offers <= self.config.max_offers);
        assert_eq!(self.offers_by_mac.values().sum::<usize>(), self.offers);
        for (mac, n) in &self.offers_by_mac {
            assert!(
                (1..=self.config.max_offers_per_mac).contains(n),
                "{mac}: {n}"
            );
            let of_mac = self
                .bindings
                .values()
                .filter(|b| b.state == State::Offered && b.mac == *mac)
                .count();
            assert_eq!(of_mac, *n, "{mac}");
        }
        assert!(self.previous.len() <= self.pool.len());
        for (client, ip) in &self.previous {
            assert!(self.pool.contains(*ip));
            assert_eq!(self.previous_owner.get(ip), Some(client));
        }
        let dynamic = (u32::from(self.config.pool_start)..=u32::from(self.config.pool_end))
            .map(Ipv4Addr::from)
            .filter(|&a| self.is_dynamic(a));
        for ip in dynamic {
            let places = usize::from(self.pool.contains(ip))
                + usize::from(self.bindings.contains_key(&ip))
                + usize::from(self.declined.contains_key(&ip));
            assert_eq!(places, 1, "{ip} is in {places} places");
        }
    }
}

fn xid(mac: EthernetAddress) -> u32 {
    0x1000_0000 | u32::from(mac.0[5])
}

fn msg(t: MessageType, mac: EthernetAddress) -> Repr {
    Repr::new(Op::Request, t, xid(mac), mac)
}

fn discover(mac: EthernetAddress) -> Repr {
    msg(MessageType::Discover, mac)
}

fn select(mac: EthernetAddress, addr: Ipv4Addr) -> Repr {
    let mut r = msg(MessageType::Request, mac);
    r.requested_ip = Some(addr);
    r.server_id = Some(SERVER);
    r
}

fn init_reboot(mac: EthernetAddress, addr: Ipv4Addr) -> Repr {
    let mut r = msg(MessageType::Request, mac);
    r.requested_ip = Some(addr);
    r
}

fn renew(mac: EthernetAddress, addr: Ipv4Addr) -> Repr {
    let mut r = msg(MessageType::Request, mac);
    r.ciaddr = addr;
    r
}

fn release(mac: EthernetAddress, addr: Ipv4Addr) -> Repr {
    let mut r = msg(MessageType::Release, mac);
    r.ciaddr = addr;
    r.server_id = Some(SERVER);
    r
}

fn decline(mac: EthernetAddress, addr: Ipv4Addr) -> Repr {
    let mut r = msg(MessageType::Decline, mac);
    r.requested_ip = Some(addr);
    r.server_id = Some(SERVER);
    r
}

fn bound(net: &Net) -> Vec<(Ipv4Addr, EthernetAddress)> {
    net.server
        .leases()
        .into_iter()
        .filter(|l| l.expires.is_some())
        .map(|l| (l.ip, l.mac))
        .collect()
}

#[test]
fn init_discover_offers_first_pool_address() {
    let mut net = Net::new(Config::default());
    let (reply, offer) = net.send(&discover(mac(1))).unwrap();
    assert_eq!(offer.message_type, MessageType::Offer);
    assert_eq!(offer.yiaddr, ip(3));
    assert_eq!(offer.ciaddr, Ipv4Addr::UNSPECIFIED);
    assert_eq!(offer.server_id, Some(SERVER));
    assert_eq!(offer.lease_time, Some(3600));
    assert_eq!(offer.renewal_time, Some(1800));
    assert_eq!(offer.rebinding_time, Some(3150));
    assert_eq!(offer.subnet_mask, Some(Ipv4Addr::new(255, 255, 255, 0)));
    assert_eq!(offer.routers, [SERVER]);
    assert_eq!(offer.dns_servers, [SERVER]);
    assert_eq!(offer.interface_mtu, Some(1500));
    assert_eq!(offer.broadcast_address, Some(ip(255)));
    assert!(!offer.broadcast);
    assert_eq!(
        reply.destination,
        Destination::Client {
            ip: ip(3),
            mac: mac(1)
        }
    );
    assert_eq!(reply.destination.port(), 68);
    let stats = net.server.stats();
    assert_eq!(
        (stats.discovers, stats.offers, stats.offers_outstanding),
        (1, 1, 1)
    );
    // An offer is not a lease.
    assert!(bound(&net).is_empty());
}

#[test]
fn selecting_request_acks() {
    let mut net = Net::new(Config::default());
    let (_, offer) = net.send(&discover(mac(1))).unwrap();
    let (reply, ack) = net.send(&select(mac(1), offer.yiaddr)).unwrap();
    assert_eq!(ack.message_type, MessageType::Ack);
    assert_eq!(ack.yiaddr, ip(3));
    assert_eq!(ack.lease_time, Some(3600));
    assert_eq!(reply.destination.ip(), ip(3));
    assert_eq!(bound(&net), [(ip(3), mac(1))]);
    let lease = net
        .server
        .leases()
        .into_iter()
        .find(|l| l.ip == ip(3))
        .unwrap();
    assert_eq!(lease.expires, Some(net.t0 + secs(3600)));
    assert!(!lease.is_static);
    let stats = net.server.stats();
    assert_eq!(
        (stats.acks, stats.leases, stats.offers_outstanding),
        (1, 1, 0)
    );
}

#[test]
fn selecting_request_for_another_server_is_dropped() {
    let mut net = Net::small_pool(10, 10);
    net.send(&discover(mac(1))).unwrap();
    assert_eq!(net.server.stats().pool_free, 0);
    let mut req = select(mac(1), ip(10));
    req.server_id = Some(ip(200));
    assert!(net.send(&req).is_none());
    assert_eq!(net.dropped(DropReason::ForeignServer), 1);
    // Our offer is withdrawn: the address is free again.
    assert_eq!(net.server.stats().pool_free, 1);
    assert_eq!(net.server.stats().offers_outstanding, 0);
}

#[test]
fn selecting_request_without_address_is_dropped() {
    let mut net = Net::new(Config::default());
    let mut req = select(mac(1), ip(3));
    req.requested_ip = None;
    assert!(net.send(&req).is_none());
    assert_eq!(net.dropped(DropReason::MissingRequestedIp), 1);
    let req = msg(MessageType::Request, mac(1));
    assert!(net.send(&req).is_none());
    assert_eq!(net.dropped(DropReason::MissingRequestedIp), 2);
}

#[test]
fn init_reboot_wrong_network_is_naked() {
    let mut net = Net::new(Config::default());
    let (reply, nak) = net
        .send(&init_reboot(mac(1), Ipv4Addr::new(10, 0, 2, 15)))
        .unwrap();
    assert_eq!(nak.message_type, MessageType::Nak);
    assert_eq!(nak.yiaddr, Ipv4Addr::UNSPECIFIED);
    assert_eq!(nak.lease_time, None);
    assert_eq!(nak.server_id, Some(SERVER));
    assert!(nak.message.is_some());
    assert_eq!(reply.destination, Destination::Broadcast);
    assert_eq!(net.server.stats().naks, 1);
}

#[test]
fn init_reboot_address_of_another_client_is_naked() {
    let mut net = Net::new(Config::default());
    let a = net.lease(mac(1));
    let b = net.lease(mac(2));
    let (_, nak) = net.send(&init_reboot(mac(2), a)).unwrap();
    assert_eq!(nak.message_type, MessageType::Nak);
    // Nor the server's, the host's, or a static lease's address.
    for addr in [ip(1), ip(254), ip(2), ip(0), ip(255)] {
        let (_, nak) = net.send(&init_reboot(mac(2), addr)).unwrap();
        assert_eq!(nak.message_type, MessageType::Nak, "{addr}");
    }
    assert_eq!(bound(&net), [(a, mac(1)), (b, mac(2))]);
}

#[test]
fn init_reboot_own_or_free_address_is_acked() {
    let mut net = Net::new(Config::default());
    let a = net.lease(mac(1));
    let (_, ack) = net.send(&init_reboot(mac(1), a)).unwrap();
    assert_eq!((ack.message_type, ack.yiaddr), (MessageType::Ack, a));
    // A client we know may move to a free address.
    let (_, ack) = net.send(&init_reboot(mac(1), ip(77))).unwrap();
    assert_eq!((ack.message_type, ack.yiaddr), (MessageType::Ack, ip(77)));
    assert_eq!(bound(&net), [(ip(77), mac(1))]);
    // A client whose lease ran out is remembered by the address it had.
    let b = net.lease(mac(2));
    net.at(4000);
    net.server.handle_timeout(net.now);
    let (_, ack) = net.send(&init_reboot(mac(2), b)).unwrap();
    assert_eq!((ack.message_type, ack.yiaddr), (MessageType::Ack, b));
}

#[test]
fn bound_renew_acks_and_extends() {
    let mut net = Net::new(Config::default());
    let a = net.lease(mac(1));
    net.at(1800);
    let (reply, ack) = net.send(&renew(mac(1), a)).unwrap();
    assert_eq!(ack.message_type, MessageType::Ack);
    assert_eq!((ack.ciaddr, ack.yiaddr), (a, a));
    assert_eq!(
        reply.destination,
        Destination::Client { ip: a, mac: mac(1) }
    );
    // Still bound after the first lease would have run out.
    net.at(3700);
    net.server.handle_timeout(net.now);
    assert_eq!(bound(&net), [(a, mac(1))]);
    net.at(1800 + 3600);
    net.server.handle_timeout(net.now);
    assert!(bound(&net).is_empty());
}

#[test]
fn bound_rebind_broadcast_acks() {
    let mut net = Net::new(Config::default());
    let a = net.lease(mac(1));
    let mut req = renew(mac(1), a);
    req.broadcast = true;
    let (reply, ack) = net.send(&req).unwrap();
    assert_eq!(ack.message_type, MessageType::Ack);
    // `ciaddr` wins over the broadcast bit (RFC 2131 §4.1).
    assert_eq!(reply.destination.ip(), a);
}

#[test]
fn init_renew_for_address_of_another_client_is_naked() {
    let mut net = Net::new(Config::default());
    let a = net.lease(mac(1));
    let (reply, nak) = net.send(&renew(mac(2), a)).unwrap();
    assert_eq!(nak.message_type, MessageType::Nak);
    assert_eq!(reply.destination, Destination::Broadcast);
}

#[test]
fn bound_release_frees_address() {
    let mut net = Net::small_pool(10, 10);
    let a = net.lease(mac(1));
    assert!(net.send(&discover(mac(2))).is_none());
    assert!(net.send(&release(mac(1), a)).is_none());
    let stats = net.server.stats();
    assert_eq!((stats.releases, stats.leases_released), (1, 1));
    assert_eq!((stats.leases, stats.pool_free), (0, 1));
    assert!(bound(&net).is_empty());
    assert_eq!(net.lease(mac(2)), a);
}

#[test]
fn released_address_is_offered_to_its_client_again() {
    let mut net = Net::new(Config::default());
    let a = net.lease(mac(1));
    net.send(&release(mac(1), a));
    let b = net.lease(mac(2));
    assert_ne!(a, b);
    assert_eq!(net.lease(mac(1)), a);
}

#[test]
fn release_by_another_client_is_ignored() {
    let mut net = Net::new(Config::default());
    let a = net.lease(mac(1));
    assert!(net.send(&release(mac(2), a)).is_none());
    assert_eq!(net.dropped(DropReason::NotOwner), 1);
    let mut req = release(mac(1), a);
    req.server_id = None;
    assert!(net.send(&req).is_none());
    assert_eq!(net.dropped(DropReason::MissingServerId), 1);
    let mut req = release(mac(1), a);
    req.ciaddr = Ipv4Addr::UNSPECIFIED;
    assert!(net.send(&req).is_none());
    assert_eq!(net.dropped(DropReason::MissingClientAddress), 1);
    assert_eq!(bound(&net), [(a, mac(1))]);
}

#[test]
fn bound_decline_takes_address_out_of_use() {
    let mut net = Net::small_pool(10, 11);
    let a = net.lease(mac(1));
    assert_eq!(a, ip(10));
    assert!(net.send(&decline(mac(1), a)).is_none());
    let stats = net.server.stats();
    assert_eq!(
        (stats.declines, stats.addresses_declined, stats.leases),
        (1, 1, 0)
    );
    // The client starts over and gets another address; the declined one is not offered.
    assert_eq!(net.lease(mac(1)), ip(11));
    assert!(net.send(&discover(mac(2))).is_none());
    assert_eq!(net.dropped(DropReason::PoolExhausted), 1);
    assert_eq!(net.server.poll_timeout(), Some(net.t0 + secs(600)));
    net.at(600);
    assert_eq!(net.lease(mac(2)), ip(10));
}

#[test]
fn decline_of_an_address_not_held_is_ignored() {
    let mut net = Net::new(Config::default());
    let a = net.lease(mac(1));
    assert!(net.send(&decline(mac(2), a)).is_none());
    assert_eq!(net.dropped(DropReason::NotOwner), 1);
    let mut req = decline(mac(1), a);
    req.server_id = Some(ip(9));
    assert!(net.send(&req).is_none());
    assert_eq!(net.dropped(DropReason::ForeignServer), 1);
    let mut req = decline(mac(1), a);
    req.requested_ip = None;
    assert!(net.send(&req).is_none());
    assert_eq!(net.dropped(DropReason::MissingRequestedIp), 1);
    assert_eq!(bound(&net), [(a, mac(1))]);
}

#[test]
fn inform_acks_configuration_only() {
    let mut net = Net::new(Config {
        domain_name: Some("example.internal".into()),
        ..Config::default()
    });
    let mut req = msg(MessageType::Inform, mac(1));
    req.ciaddr = ip(50);
    let (reply, ack) = net.send(&req).unwrap();
    assert_eq!(ack.message_type, MessageType::Ack);
    assert_eq!(ack.yiaddr, Ipv4Addr::UNSPECIFIED);
    assert_eq!(ack.ciaddr, ip(50));
    assert_eq!(
        (ack.lease_time, ack.renewal_time, ack.rebinding_time),
        (None, None, None)
    );
    assert_eq!(ack.subnet_mask, Some(Ipv4Addr::new(255, 255, 255, 0)));
    assert_eq!(ack.routers, [SERVER]);
    assert_eq!(ack.dns_servers, [SERVER]);
    assert_eq!(ack.domain_name.as_deref(), Some("example.internal"));
    assert_eq!(
        reply.destination,
        Destination::Client {
            ip: ip(50),
            mac: mac(1)
        }
    );
    // No binding is made.
    assert!(bound(&net).is_empty());
    assert_eq!(net.server.stats().informs, 1);
    // Without an address, or from elsewhere, there is nothing to answer.
    req.ciaddr = Ipv4Addr::UNSPECIFIED;
    assert!(net.send(&req).is_none());
    assert_eq!(net.dropped(DropReason::MissingClientAddress), 1);
    req.ciaddr = Ipv4Addr::new(10, 0, 0, 2);
    assert!(net.send(&req).is_none());
    assert_eq!(net.dropped(DropReason::WrongSubnet), 1);
}

#[test]
fn init_discover_pool_exhausted_gets_no_offer() {
    let mut net = Net::small_pool(10, 11);
    let a = net.lease(mac(1));
    let b = net.lease(mac(2));
    assert_ne!(a, b);
    assert!(net.send(&discover(mac(3))).is_none());
    assert_eq!(net.dropped(DropReason::PoolExhausted), 1);
    assert_eq!(net.server.stats().pool_free, 0);
}

#[test]
fn selecting_offer_expires_and_address_returns() {
    let mut net = Net::small_pool(10, 10);
    net.send(&discover(mac(1))).unwrap();
    assert!(net.send(&discover(mac(2))).is_none());
    assert_eq!(net.server.poll_timeout(), Some(net.t0 + secs(60)));
    net.at(59);
    assert!(net.send(&discover(mac(2))).is_none());
    net.at(60);
    let (_, offer) = net.send(&discover(mac(2))).unwrap();
    assert_eq!(offer.yiaddr, ip(10));
    assert_eq!(net.server.stats().offers_expired, 1);
    // The first client's late REQUEST is refused: the address is someone else's now.
    let (_, nak) = net.send(&select(mac(1), ip(10))).unwrap();
    assert_eq!(nak.message_type, MessageType::Nak);
}

#[test]
fn selecting_discover_again_refreshes_offer() {
    let mut net = Net::new(Config::default());
    let (_, first) = net.send(&discover(mac(1))).unwrap();
    net.at(50);
    let (_, second) = net.send(&discover(mac(1))).unwrap();
    assert_eq!(first.yiaddr, second.yiaddr);
    assert_eq!(net.server.poll_timeout(), Some(net.t0 + secs(110)));
    net.at(100);
    let (_, ack) = net.send(&select(mac(1), first.yiaddr)).unwrap();
    assert_eq!(ack.message_type, MessageType::Ack);
}

#[test]
fn bound_lease_expires_and_address_is_reused() {
    let mut net = Net::small_pool(10, 10);
    let a = net.lease(mac(1));
    assert!(net.send(&discover(mac(2))).is_none());
    net.at(3599);
    assert!(net.send(&discover(mac(2))).is_none());
    net.at(3600);
    assert_eq!(net.lease(mac(2)), a);
    assert_eq!(net.server.stats().leases_expired, 1);
    assert_eq!(bound(&net), [(a, mac(2))]);
}

#[test]
fn expired_client_gets_previous_address_back() {
    let mut net = Net::new(Config::default());
    let a = net.lease(mac(1));
    net.at(4000);
    let b = net.lease(mac(2));
    assert_ne!(a, b);
    assert_eq!(net.lease(mac(1)), a);
}

#[test]
fn bound_discover_offers_the_same_address() {
    let mut net = Net::new(Config::default());
    let a = net.lease(mac(1));
    let (_, offer) = net.send(&discover(mac(1))).unwrap();
    assert_eq!(offer.yiaddr, a);
    // The lease stays bound, not downgraded to an offer.
    assert_eq!(net.server.stats().leases, 1);
    assert_eq!(net.server.stats().offers_outstanding, 0);
}

#[test]
fn init_discover_prefers_requested_address() {
    let mut net = Net::new(Config::default());
    let mut req = discover(mac(1));
    req.requested_ip = Some(ip(100));
    assert_eq!(net.send(&req).unwrap().1.yiaddr, ip(100));
    // Not when it is taken, or not ours to give.
    for taken in [ip(100), ip(2), ip(254), Ipv4Addr::new(10, 0, 0, 1)] {
        let mut req = discover(mac(2));
        req.requested_ip = Some(taken);
        assert_eq!(net.send(&req).unwrap().1.yiaddr, ip(3), "{taken}");
    }
}

#[test]
fn two_clients_get_distinct_addresses() {
    let mut net = Net::new(Config::default());
    let a = net.lease(mac(1));
    let b = net.lease(mac(2));
    assert_eq!((a, b), (ip(3), ip(4)));
    assert_eq!(bound(&net), [(a, mac(1)), (b, mac(2))]);
}

#[test]
fn client_identifier_keys_the_binding() {
    let mut net = Net::new(Config::default());
    // Two clients on one MAC (initramfs and the real OS, say) with distinct identifiers.
    let mut one = discover(mac(1));
    one.client_id = Some(vec![0xff, 1, 2, 3]);
    let mut two = discover(mac(1));
    two.client_id = Some(vec![0xff, 4, 5, 6]);
    let (_, a) = net.send(&one).unwrap();
    let (_, b) = net.send(&two).unwrap();
    assert_ne!(a.yiaddr, b.yiaddr);
    // RFC 6842: the identifier is echoed.
    assert_eq!(a.client_id, one.client_id);
    // Over 255 bytes is refused.
    one.client_id = Some(vec![7; 256]);
    assert!(net.send(&one).is_none());
    assert_eq!(net.dropped(DropReason::ClientIdTooLong), 1);
}

#[test]
fn static_lease_only_for_its_mac() {
    let mut net = Net::new(Config::default());
    // Another MAC asking for the static address in any way does not get it.
    let mut req = discover(mac(1));
    req.requested_ip = Some(ip(2));
    assert_eq!(net.send(&req).unwrap().1.yiaddr, ip(3));
    for req in [
        select(mac(1), ip(2)),
        init_reboot(mac(1), ip(2)),
        renew(mac(1), ip(2)),
    ] {
        assert_eq!(net.send(&req).unwrap().1.message_type, MessageType::Nak);
    }
    // The static MAC gets its address, whatever it asks for, and never a pool address.
    let mut req = discover(STATIC_MAC);
    req.requested_ip = Some(ip(50));
    assert_eq!(net.send(&req).unwrap().1.yiaddr, ip(2));
    let (_, nak) = net.send(&init_reboot(STATIC_MAC, ip(50))).unwrap();
    assert_eq!(nak.message_type, MessageType::Nak);
    assert_eq!(net.lease(STATIC_MAC), ip(2));
    // Whatever client identifier it uses.
    let mut req = init_reboot(STATIC_MAC, ip(2));
    req.client_id = Some(vec![0xff, 9, 9]);
    assert_eq!(net.send(&req).unwrap().1.message_type, MessageType::Ack);
    let lease = &net.server.leases()[0];
    assert_eq!(
        (lease.ip, lease.mac, lease.is_static),
        (ip(2), STATIC_MAC, true)
    );
    assert!(lease.expires.is_some());
}

#[test]
fn static_lease_listed_before_use() {
    let net = Net::new(Config::default());
    let leases = net.server.leases();
    assert_eq!(leases.len(), 1);
    assert_eq!(
        leases[0],
        Lease {
            ip: ip(2),
            mac: STATIC_MAC,
            hostname: None,
            expires: None,
            is_static: true,
        }
    );
}

#[test]
fn static_lease_declined_is_held_back() {
    let mut net = Net::new(Config::default());
    assert_eq!(net.lease(STATIC_MAC), ip(2));
    assert!(net.send(&decline(STATIC_MAC, ip(2))).is_none());
    assert!(net.send(&discover(STATIC_MAC)).is_none());
    assert_eq!(net.dropped(DropReason::PoolExhausted), 1);
    net.at(600);
    assert_eq!(net.lease(STATIC_MAC), ip(2));
}

#[test]
fn malformed_requests_are_counted_by_reason() {
    let mut net = Net::new(Config::default());
    let good = discover(mac(1)).to_bytes().unwrap();
    assert!(net.raw(&good[..100]).is_none());
    assert_eq!(net.dropped(DropReason::Truncated), 1);
    let mut bytes = good.clone();
    bytes[236] ^= 1;
    assert!(net.raw(&bytes).is_none());
    assert_eq!(net.dropped(DropReason::BadMagic), 1);
    let mut bytes = good.clone();
    bytes[2] = 8;
    assert!(net.raw(&bytes).is_none());
    assert_eq!(net.dropped(DropReason::NotEthernet), 1);
    let mut bytes = good.clone();
    bytes[241] = 200;
    assert!(net.raw(&bytes).is_none());
    assert_eq!(net.dropped(DropReason::OptionOverrun), 1);
    // Well-formed, but not for a server.
    let mut reply = discover(mac(1));
    reply.op = Op::Reply;
    assert!(net.send(&reply).is_none());
    assert_eq!(net.dropped(DropReason::NotRequest), 1);
    for t in [
        MessageType::Offer,
        MessageType::Ack,
        MessageType::Nak,
        MessageType::Unknown(13),
    ] {
        assert!(net.send(&msg(t, mac(1))).is_none());
    }
    assert_eq!(net.dropped(DropReason::UnexpectedMessageType), 4);
    for chaddr in [
        EthernetAddress::default(),
        EthernetAddress::BROADCAST,
        EthernetAddress([1, 0, 0x5e, 0, 0, 1]),
    ] {
        assert!(net.send(&discover(chaddr)).is_none());
    }
    assert_eq!(net.dropped(DropReason::BadClientHardwareAddress), 3);
    let stats = net.server.stats();
    assert_eq!(stats.received, 12);
    assert_eq!(stats.dropped.total(), 12);
    assert_eq!(stats.dropped.malformed(), 4);
    assert_eq!(stats.offers, 0);
}

#[test]
fn poll_timeout_follows_the_earliest_deadline() {
    let mut net = Net::new(Config::default());
    assert_eq!(net.server.poll_timeout(), None);
    net.lease(mac(1));
    assert_eq!(net.server.poll_timeout(), Some(net.t0 + secs(3600)));
    net.at(10);
    net.send(&discover(mac(2))).unwrap();
    assert_eq!(net.server.poll_timeout(), Some(net.t0 + secs(70)));
    net.at(70);
    net.server.handle_timeout(net.now);
    assert_eq!(net.server.poll_timeout(), Some(net.t0 + secs(3600)));
}

#[test]
fn config_is_validated() {
    let config = Config {
        lease_time: Duration::ZERO,
        ..Config::default()
    };
    assert_eq!(Server::new(config).err(), Some(ConfigError::BadLeaseTime));
    let config = Config {
        pool_start: ip(1),
        pool_end: ip(254),
        static_leases: vec![StaticLease {
            mac: mac(9),
            ip: ip(100),
        }],
        ..Config::default()
    };
    // The server's, reserved and static addresses stay out of the pool.
    let server = Server::new(config).unwrap();
    assert_eq!(server.stats().pool_free, 254 - 3);
    server.check_invariants();
}
