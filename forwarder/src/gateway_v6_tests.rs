//! The gateway's IPv6 services: router advertisements, DHCPv6, DNS over IPv6, the host's
//! virtual IPv6 address; and what the gateway does with multicast and with expiring hop
//! counts.

use super::testing::{
    GUEST, GUEST_MAC, GUEST6, GW, GW_MAC, frame, gw6, icmpv6_frame, ipv4, parse_icmpv6, reply,
    solicitation, split,
};
use super::*;
use dhcp::v6::{DhcpOption, MessageType as V6Type, Options as V6Options, Repr as V6Repr};
use stack::wire::{Icmpv4Packet, Icmpv4TimeExceeded, Icmpv6TimeExceeded, NdpRouterPreference};
use stack::wire::{NdpOption, NdpOptions, NdpRepr};
use std::net::Ipv6Addr;

const T0: Instant = Instant::ZERO;

fn prefix() -> Ipv6Addr {
    "fd00:127::".parse().unwrap()
}

fn addr(n: u128) -> Ipv6Addr {
    Ipv6Addr::from_bits(prefix().to_bits() + n)
}

fn config() -> GatewayConfig {
    let v6 = V6Config::for_prefix(prefix(), GW_MAC, GUEST_MAC)
        .with_search_domains(&["containers.internal".to_owned()]);
    GatewayConfig {
        v6: Some(v6),
        multicast_relay: true,
        ..GatewayConfig::default()
    }
}

fn gateway6() -> Gateway {
    Gateway::new(config(), Epoch::new(std::time::Instant::now())).unwrap()
}

fn router_solicit(src: Ipv6Addr, with_lladdr: bool) -> Vec<u8> {
    let lladdr = [NdpOption::SourceLinkLayerAddr(GUEST_MAC)];
    let rs = Icmpv6Repr::Ndp(NdpRepr::RouterSolicit {
        options: if with_lladdr {
            NdpOptions::new(&lladdr)
        } else {
            NdpOptions::EMPTY
        },
    });
    icmpv6_frame(
        EthernetAddress([0x33, 0x33, 0, 0, 0, 2]),
        src,
        "ff02::2".parse().unwrap(),
        255,
        &rs,
    )
}

/// Checks `f` is a router advertisement as RFC 4861 and RFC 8106 want it; its destination.
fn check_advert(f: &[u8]) -> (EthernetAddress, Ipv6Addr) {
    let mut dst = (EthernetAddress([0; 6]), Ipv6Addr::UNSPECIFIED);
    parse_icmpv6(f, |eth, ip, icmp| {
        assert_eq!(eth.src_addr, GW_MAC);
        assert_eq!(ip.src_addr, gw6());
        assert_eq!(ip.hop_limit, 255);
        let Icmpv6Repr::Ndp(ndp) = icmp else {
            panic!("{icmp:?}");
        };
        // It passes the checks a host applies.
        ndp.validate(ip.src_addr, ip.dst_addr, ip.hop_limit)
            .unwrap();
        let NdpRepr::RouterAdvert {
            hop_limit,
            managed,
            other_config,
            preference,
            router_lifetime,
            options,
            ..
        } = ndp
        else {
            panic!("{ndp:?}");
        };
        assert_eq!(hop_limit, 64);
        assert!(!managed && other_config);
        assert_eq!(preference, NdpRouterPreference::Medium);
        assert_eq!(router_lifetime, 1800);
        assert_eq!(options.source_lladdr(), Some(GW_MAC));
        assert_eq!(options.mtu(), Some(1500));
        let mut prefix_seen = false;
        let mut rdnss_seen = false;
        let mut dnssl_seen = false;
        for o in options.iter() {
            match o {
                NdpOption::PrefixInfo(p) => {
                    assert_eq!((p.prefix, p.prefix_len), (prefix(), 64));
                    assert!(p.on_link && p.autonomous);
                    assert!(p.preferred_lifetime <= p.valid_lifetime);
                    prefix_seen = true;
                }
                NdpOption::Rdnss { lifetime, servers } => {
                    assert_eq!(servers.iter().collect::<Vec<_>>(), [addr(1)]);
                    assert!((600..=1200).contains(&lifetime));
                    rdnss_seen = true;
                }
                NdpOption::Dnssl { domains, .. } => {
                    let names: Vec<String> = domains
                        .iter()
                        .map(|d| {
                            d.labels()
                                .map(|l| String::from_utf8_lossy(l).into_owned())
                                .collect::<Vec<_>>()
                                .join(".")
                        })
                        .collect();
                    assert_eq!(names, ["containers.internal"]);
                    dnssl_seen = true;
                }
                _ => {}
            }
        }
        assert!(prefix_seen && rdnss_seen && dnssl_seen);
        dst = (eth.dst_addr, ip.dst_addr);
    });
    dst
}

#[test]
fn router_solicitation_is_answered_by_unicast() {
    let mut gw = gateway6();
    let f = reply(gw.handle_frame(T0, &router_solicit(GUEST6, true)));
    assert_eq!(check_advert(&f), (GUEST_MAC, GUEST6));
    assert_eq!(gw.counters().router_solicits, 1);
    assert_eq!(gw.counters().router_adverts, 1);
    // A solicitation failing RFC 4861's checks gets nothing.
    let rs = router_solicit(GUEST6, true);
    let mut bad = rs.clone();
    bad[14 + 7] = 64;
    assert!(matches!(
        gw.handle_frame(T0, &bad),
        Outcome::Dropped(DropReason::Ndp(_))
    ));
}

#[test]
fn solicitation_from_the_unspecified_address_is_answered_to_all_nodes_rate_limited() {
    let mut gw = gateway6();
    let f = reply(gw.handle_frame(T0, &router_solicit(Ipv6Addr::UNSPECIFIED, false)));
    assert_eq!(
        check_advert(&f),
        (EthernetAddress([0x33, 0x33, 0, 0, 0, 1]), ALL_NODES)
    );
    // Within 3 s another one only brings the next advertisement forward.
    let t = Instant::from_millis(1000);
    assert_eq!(
        gw.handle_frame(t, &router_solicit(Ipv6Addr::UNSPECIFIED, false)),
        Outcome::Dropped(DropReason::NdpRateLimited)
    );
    assert_eq!(gw.poll_timeout(), Some(Instant::from_millis(3000)));
    gw.handle_timeout(Instant::from_millis(3000));
    let f = gw.poll_transmit().expect("the delayed advertisement");
    assert_eq!(check_advert(&f).1, ALL_NODES);
}

#[test]
fn unsolicited_advertisements_start_at_once_then_follow_the_intervals() {
    let mut gw = gateway6();
    assert_eq!(gw.poll_timeout(), Some(T0));
    gw.handle_timeout(T0);
    let f = gw.poll_transmit().expect("the first advertisement");
    assert_eq!(check_advert(&f).1, ALL_NODES);
    assert!(gw.poll_transmit().is_none());
    // The first three at most 16 s apart, then between 200 and 600 s.
    let mut at = T0;
    let mut gaps = Vec::new();
    for _ in 0..6 {
        let next = gw.poll_timeout().unwrap();
        gaps.push(next.saturating_duration_since(at).as_secs());
        gw.handle_timeout(next);
        assert!(gw.poll_transmit().is_some());
        at = next;
    }
    assert!(gaps[..2].iter().all(|&g| g <= 16), "{gaps:?}");
    assert!(
        gaps[3..].iter().all(|&g| (200..=600).contains(&g)),
        "{gaps:?}"
    );
    assert_eq!(gw.counters().router_adverts, 7);
    // Without IPv6 services, none.
    let plain = Gateway::new(
        GatewayConfig::default(),
        Epoch::new(std::time::Instant::now()),
    )
    .unwrap();
    assert_eq!(plain.poll_timeout(), None);
}

fn udp6(src: Ipv6Addr, dst: Ipv6Addr, sport: u16, dport: u16, data: &[u8], hops: u8) -> Vec<u8> {
    let repr = UdpRepr {
        src_port: sport,
        dst_port: dport,
        payload_len: data.len(),
    };
    let mut u = vec![0u8; udp::HEADER_LEN + data.len()];
    u[udp::HEADER_LEN..].copy_from_slice(data);
    repr.emit(
        &mut UdpPacket::new_unchecked(&mut u[..]),
        &IpAddresses::V6 { src, dst },
    );
    let ip = Ipv6Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Udp,
        payload_len: u.len(),
        hop_limit: hops,
        dscp: 0,
        ecn: 0,
        flow_label: 0,
    };
    let mut b = vec![0u8; ipv6::HEADER_LEN + u.len()];
    b[ipv6::HEADER_LEN..].copy_from_slice(&u);
    ip.emit(&mut Ipv6Packet::new_unchecked(&mut b[..]));
    let dst_mac = stack::wire::multicast_mac(IpAddr::V6(dst)).unwrap_or(GW_MAC);
    frame(GUEST_MAC, dst_mac, EtherType::Ipv6, &b)
}

/// The UDP payload, ports and addresses of an IPv6 frame.
fn parse_udp6(f: &[u8]) -> (Ipv6Addr, Ipv6Addr, u16, u16, Vec<u8>) {
    let (_, body) = split(f);
    let ip = Ipv6Packet::new_checked(body).unwrap();
    let addrs = IpAddresses::V6 {
        src: ip.src_addr(),
        dst: ip.dst_addr(),
    };
    let udp = UdpPacket::new_checked(ip.payload()).unwrap();
    let repr = UdpRepr::parse(&udp, &addrs).unwrap();
    (
        ip.src_addr(),
        ip.dst_addr(),
        repr.src_port,
        repr.dst_port,
        udp.payload().to_vec(),
    )
}

#[test]
fn dhcpv6_information_request_is_answered_from_the_link_local_address() {
    let mut gw = gateway6();
    let duid = [0u8, 3, 0, 1, 0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xee];
    let oro = [0u8, 23, 0, 24];
    let request = V6Repr {
        msg_type: V6Type::InformationRequest,
        transaction_id: 0x12_3456,
        options: V6Options::new(&[DhcpOption::ClientId(&duid), DhcpOption::Oro(&oro)]),
    }
    .emit();
    let f = udp6(
        GUEST6,
        dhcp::v6::message::ALL_SERVERS,
        546,
        547,
        &request,
        1,
    );
    let answer = reply(gw.handle_frame(T0, &f));
    let (eth, _) = split(&answer);
    assert_eq!((eth.src_addr, eth.dst_addr), (GW_MAC, GUEST_MAC));
    let (src, dst, sport, dport, payload) = parse_udp6(&answer);
    assert_eq!((src, dst, sport, dport), (gw6(), GUEST6, 547, 546));
    let repr = V6Repr::parse(&dhcp::v6::Packet::new_checked(&payload[..]).unwrap()).unwrap();
    assert_eq!(repr.msg_type, V6Type::Reply);
    assert_eq!(repr.transaction_id, 0x12_3456);
    let Some(DhcpOption::DnsServers(dns)) = repr.options.find(dhcp::v6::message::code::DNS_SERVERS)
    else {
        panic!("no DNS servers: {repr:?}");
    };
    assert_eq!(dns, addr(1).octets());
    assert_eq!(gw.counters().dhcpv6_replies, 1);
    assert_eq!(gw.dhcpv6_stats().unwrap().information_requests, 1);
    // Without IPv6 services it is not answered (a plain multicast datagram, not relayed).
    let mut plain = super::testing::gateway();
    assert!(matches!(
        plain.handle_frame(T0, &f),
        Outcome::Dropped(DropReason::BroadcastToNonService)
    ));
}

#[test]
fn dns_on_the_gateways_ipv6_addresses() {
    let mut gw = gateway6();
    for server in [addr(1), gw6()] {
        let f = udp6(GUEST6, server, 5353, DNS_PORT, b"query", 64);
        let Outcome::Dns(query) = gw.handle_frame(T0, &f) else {
            panic!("not a DNS query");
        };
        assert_eq!(query.client.addr, SocketAddr::new(IpAddr::V6(GUEST6), 5353));
        assert_eq!(query.client.server, IpAddr::V6(server));
        let answer = dns_reply_frame(GW_MAC, &query.client, 0, b"answer");
        let (src, dst, sport, dport, payload) = parse_udp6(&answer);
        assert_eq!((src, dst, sport, dport), (server, GUEST6, 53, 5353));
        assert_eq!(payload, b"answer");
    }
    // DNS to the host's virtual address is a flow (to the host's resolver, if any).
    let f = udp6(GUEST6, addr(0x254), 5353, DNS_PORT, b"q", 64);
    assert!(matches!(gw.handle_frame(T0, &f), Outcome::Flow(_)));
}

#[test]
fn the_hosts_virtual_address_is_answered_in_neighbour_discovery() {
    let mut gw = gateway6();
    let f = reply(gw.handle_frame(T0, &solicitation(GUEST6, addr(0x254), 255)));
    parse_icmpv6(&f, |_, ip, icmp| {
        assert_eq!(ip.src_addr, addr(0x254));
        assert!(matches!(
            icmp,
            Icmpv6Repr::Ndp(NdpRepr::NeighborAdvert { target_addr, .. }) if target_addr == addr(0x254)
        ));
    });
    // And the gateway's own address in the prefix.
    let f = reply(gw.handle_frame(T0, &solicitation(GUEST6, addr(1), 255)));
    parse_icmpv6(&f, |_, ip, _| assert_eq!(ip.src_addr, addr(1)));
}

/// A guest's advertisement for `target`, to the gateway, with its link-layer address.
fn advertisement(target: Ipv6Addr) -> Vec<u8> {
    let lladdr = [NdpOption::TargetLinkLayerAddr(GUEST_MAC)];
    let na = Icmpv6Repr::Ndp(NdpRepr::NeighborAdvert {
        router: false,
        solicited: true,
        override_entry: true,
        target_addr: target,
        options: NdpOptions::new(&lladdr),
    });
    icmpv6_frame(GW_MAC, target, addr(1), 255, &na)
}

#[test]
fn guests_in_the_prefix_are_reported_from_their_neighbour_discovery() {
    let mut gw = gateway6();
    // The answer to the forwarder's solicitation: where the guest's address is.
    let guest = addr(0x5894_efff_fee4_0cee);
    assert!(matches!(
        gw.handle_frame(T0, &advertisement(guest)),
        Outcome::Dropped(DropReason::NdpUnhandled)
    ));
    assert_eq!(gw.take_neighbour(), Some((guest.into(), GUEST_MAC)));
    assert_eq!(gw.take_neighbour(), None);
    // A solicitation from a guest address tells where its source is (and is answered).
    let other = addr(0x77);
    reply(gw.handle_frame(T0, &solicitation(other, addr(1), 255)));
    assert_eq!(gw.take_neighbour(), Some((other.into(), GUEST_MAC)));
    // Not a guest of the prefix: link-local, foreign, ours, the host's virtual address, or
    // the unspecified source of duplicate address detection.
    for target in [GUEST6, "2001:db8::5".parse().unwrap(), addr(1), addr(0x254)] {
        gw.handle_frame(T0, &advertisement(target));
        assert_eq!(gw.take_neighbour(), None, "{target}");
    }
    gw.handle_frame(T0, &solicitation(Ipv6Addr::UNSPECIFIED, guest, 255));
    assert_eq!(gw.take_neighbour(), None);
}

#[test]
fn ipv6_off_drops_every_ipv6_frame() {
    let mut gw = Gateway::new(
        GatewayConfig {
            disable_ipv6: true,
            ..config()
        },
        Epoch::new(std::time::Instant::now()),
    )
    .unwrap();
    assert_eq!(
        gw.handle_frame(T0, &solicitation(GUEST6, gw6(), 255)),
        Outcome::Dropped(DropReason::Ipv6Disabled)
    );
    assert_eq!(gw.drops().get(DropReason::Ipv6Disabled), 1);
}

#[test]
fn multicast_udp_is_a_flow_for_the_relay_unless_it_is_the_links_own() {
    let mut gw = gateway6();
    let group: Ipv6Addr = "ff15::1:2".parse().unwrap();
    let f = udp6(addr(2), group, 4000, 5000, b"hello", 1);
    let Outcome::Flow(flow) = gw.handle_frame(T0, &f) else {
        panic!("not a flow");
    };
    assert_eq!(flow.key.remote, SocketAddr::new(IpAddr::V6(group), 5000));
    assert_eq!(gw.counters().multicast_flows, 1);
    // IPv4 too, and with TTL 1 (no Time Exceeded for multicast).
    let mut d = super::testing::udp_datagram(GUEST, Ipv4Addr::new(239, 1, 2, 3), 4000, 5000, b"x");
    d[8] = 1;
    let sum = stack::wire::checksum::checksum(&{
        let mut h = d[..20].to_vec();
        h[10] = 0;
        h[11] = 0;
        h
    });
    d[10..12].copy_from_slice(&sum.to_be_bytes());
    let f = frame(
        GUEST_MAC,
        EthernetAddress([0x01, 0, 0x5e, 1, 2, 3]),
        EtherType::Ipv4,
        &d,
    );
    assert!(matches!(gw.handle_frame(T0, &f), Outcome::Flow(_)));
    // Neighbor Discovery's groups are not relayed.
    let sn: Ipv6Addr = "ff02::1:ff00:2".parse().unwrap();
    let f = udp6(addr(2), sn, 4000, 5000, b"x", 1);
    assert_eq!(
        gw.handle_frame(T0, &f),
        Outcome::Dropped(DropReason::BroadcastToNonService)
    );
    // Nor anything with the relay off.
    let mut off = Gateway::new(
        GatewayConfig {
            multicast_relay: false,
            ..config()
        },
        Epoch::new(std::time::Instant::now()),
    )
    .unwrap();
    let f = udp6(addr(2), group, 4000, 5000, b"hello", 1);
    assert_eq!(
        off.handle_frame(T0, &f),
        Outcome::Dropped(DropReason::BroadcastToNonService)
    );
}

#[test]
fn ttl_1_beyond_the_gateway_gets_time_exceeded() {
    let mut gw = gateway6();
    let remote = Ipv4Addr::new(10, 9, 8, 7);
    let mut d = super::testing::udp_datagram(GUEST, remote, 33434, 33435, b"probe");
    d[8] = 1;
    d[10] = 0;
    d[11] = 0;
    let sum = stack::wire::checksum::checksum(&d[..20]);
    d[10..12].copy_from_slice(&sum.to_be_bytes());
    let f = frame(GUEST_MAC, GW_MAC, EtherType::Ipv4, &d);
    let answer = reply(gw.handle_frame(T0, &f));
    let (eth, body) = split(&answer);
    assert_eq!(eth.dst_addr, GUEST_MAC);
    let ip = Ipv4Packet::new_checked(body).unwrap();
    let ipr = Ipv4Repr::parse(&ip).unwrap();
    assert_eq!((ipr.src_addr, ipr.dst_addr), (GW, GUEST));
    let icmp = Icmpv4Repr::parse(&Icmpv4Packet::new_checked(ip.payload()).unwrap()).unwrap();
    let Icmpv4Repr::TimeExceeded { reason, data } = icmp else {
        panic!("{icmp:?}");
    };
    assert_eq!(reason, Icmpv4TimeExceeded::TtlExpired);
    // The guest's IP header and the UDP ports.
    assert_eq!(data, &d[..28]);
    assert_eq!(gw.counters().hop_limit_exceeded, 1);
    // TTL 2 is a flow; TTL 1 to the gateway itself is not an error.
    d[8] = 2;
    d[10] = 0;
    d[11] = 0;
    let sum = stack::wire::checksum::checksum(&d[..20]);
    d[10..12].copy_from_slice(&sum.to_be_bytes());
    let f = frame(GUEST_MAC, GW_MAC, EtherType::Ipv4, &d);
    assert!(matches!(gw.handle_frame(T0, &f), Outcome::Flow(_)));
    let echo = super::testing::echo_request(GW, b"x");
    let mut e = echo.clone();
    e[14 + 8] = 1;
    e[14 + 10] = 0;
    e[14 + 11] = 0;
    let sum = stack::wire::checksum::checksum(&e[14..34]);
    e[14 + 10..14 + 12].copy_from_slice(&sum.to_be_bytes());
    assert!(matches!(gw.handle_frame(T0, &e), Outcome::Reply(_)));
    assert_eq!(gw.counters().echo_replies, 1);
    // IPv6: hop limit 1 to a global address, from the gateway's address in the prefix.
    let far: Ipv6Addr = "2001:db8::1".parse().unwrap();
    let f = udp6(addr(2), far, 33434, 33435, b"probe", 1);
    let answer = reply(gw.handle_frame(T0, &f));
    parse_icmpv6(&answer, |_, ip, icmp| {
        assert_eq!((ip.src_addr, ip.dst_addr), (addr(1), addr(2)));
        let Icmpv6Repr::TimeExceeded { reason, invoking } = icmp else {
            panic!("{icmp:?}");
        };
        assert_eq!(reason, Icmpv6TimeExceeded::HopLimitExceeded);
        assert_eq!(invoking, &f[14..]);
    });
    let _ = ipv4;
}
