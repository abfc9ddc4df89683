#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::query::{igmp_frame, mld_frame};
use super::*;
use stack::wire::group_record::{RecordType, Records, Sources};
use stack::wire::{EthernetFrame, Ipv4Packet, Ipv6Packet, ethernet};

const A: PortId = PortId(1);
const B: PortId = PortId(2);
const GW_MAC: EthernetAddress = EthernetAddress([0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xdd]);
const GUEST_MAC: EthernetAddress = EthernetAddress([0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xee]);
const GUEST: Ipv4Addr = Ipv4Addr::new(192, 168, 127, 2);
const GROUP4: Ipv4Addr = Ipv4Addr::new(239, 1, 2, 3);
const GROUP6: Ipv6Addr = Ipv6Addr::new(0xff15, 0, 0, 0, 0, 0, 1, 2);
const T0: Instant = Instant::ZERO;

fn guest_ll() -> Ipv6Addr {
    Ipv6Addr::new(0xfe80, 0, 0, 0, 0x5894, 0xefff, 0xfee4, 0x0cee)
}

fn gateway_ll() -> Ipv6Addr {
    Ipv6Addr::new(0xfe80, 0, 0, 0, 0x5894, 0xefff, 0xfee4, 0x0cdd)
}

fn config() -> SnoopConfig {
    SnoopConfig {
        mac: GW_MAC,
        ipv4: Ipv4Addr::new(192, 168, 127, 1),
        ipv6: Some(gateway_ll()),
        limits: Limits::default(),
        timing: Timing::default(),
    }
}

fn at(secs: u64) -> Instant {
    T0 + Duration::from_secs(secs)
}

fn igmp(repr: &IgmpRepr<'_>, dst: Ipv4Addr) -> Bytes {
    igmp_frame(GUEST_MAC, GUEST, dst, repr)
}

fn mld(repr: &MldRepr<'_>, dst: Ipv6Addr) -> Bytes {
    mld_frame(GUEST_MAC, guest_ll(), dst, repr)
}

fn v3_report(kind: RecordType, group: Ipv4Addr) -> Bytes {
    let records = [GroupRecord {
        kind,
        group,
        sources: Sources::new(&[]),
        aux: &[],
    }];
    igmp(
        &IgmpRepr::ReportV3 {
            records: Records::new(&records),
        },
        igmp::ALL_V3_ROUTERS,
    )
}

fn mld_v2_report(kind: RecordType, group: Ipv6Addr) -> Bytes {
    let records = [GroupRecord {
        kind,
        group,
        sources: Sources::new(&[]),
        aux: &[],
    }];
    mld(
        &MldRepr::ReportV2 {
            records: Records::new(&records),
        },
        mld::ALL_MLDV2_ROUTERS,
    )
}

/// A UDP-ish datagram to `group` (the payload is never looked at).
fn data4(group: Ipv4Addr) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 28];
    f[..6].copy_from_slice(&multicast_mac(IpAddr::V4(group)).unwrap().0);
    f[6..12].copy_from_slice(&GUEST_MAC.0);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut f[14..];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&28u16.to_be_bytes());
    ip[8] = 1;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&GUEST.octets());
    ip[16..20].copy_from_slice(&group.octets());
    let sum = stack::wire::checksum::checksum(&ip[..20]);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f
}

fn data6(group: Ipv6Addr) -> Vec<u8> {
    let mut f = vec![0u8; 14 + 48];
    f[..6].copy_from_slice(&multicast_mac(IpAddr::V6(group)).unwrap().0);
    f[6..12].copy_from_slice(&GUEST_MAC.0);
    f[12..14].copy_from_slice(&[0x86, 0xdd]);
    let ip = &mut f[14..];
    ip[0] = 0x60;
    ip[4..6].copy_from_slice(&8u16.to_be_bytes());
    ip[6] = 17;
    ip[7] = 1;
    ip[8..24].copy_from_slice(&Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2).octets());
    ip[24..40].copy_from_slice(&group.octets());
    f
}

use stack::wire::multicast_mac;

fn members(s: &Snooper, group: impl Into<IpAddr>) -> Vec<PortId> {
    let mut m: Vec<PortId> = s.members(group.into()).collect();
    m.sort();
    m
}

fn events(s: &mut Snooper) -> Vec<GroupEvent> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

#[test]
fn igmpv2_report_joins_and_data_reaches_members_only() {
    let mut s = Snooper::new(config());
    // Before anyone joined, group data goes to no guest (only the router port).
    assert_eq!(
        s.handle_frame(T0, A, &data4(GROUP4)),
        Verdict::Group(IpAddr::V4(GROUP4))
    );
    assert_eq!(s.counters().unjoined_frames, 1);
    let report = igmp(&IgmpRepr::ReportV2 { group: GROUP4 }, GROUP4);
    assert_eq!(s.handle_frame(T0, B, &report), Verdict::Consumed);
    assert_eq!(members(&s, GROUP4), [B]);
    assert_eq!(events(&mut s), [GroupEvent::Joined(IpAddr::V4(GROUP4))]);
    assert_eq!(
        s.handle_frame(T0, A, &data4(GROUP4)),
        Verdict::Group(IpAddr::V4(GROUP4))
    );
    assert_eq!(s.counters().group_frames, 2);
    assert_eq!(s.counters().unjoined_frames, 1);
    // A second report refreshes; no new event.
    s.handle_frame(at(100), B, &report);
    assert!(events(&mut s).is_empty());
    assert_eq!(s.counters().table.joined, 1);
    // Without a report for the Group Membership Interval (260 s) it runs out.
    s.handle_timeout(at(359));
    assert_eq!(members(&s, GROUP4), [B]);
    s.handle_timeout(at(360));
    assert!(members(&s, GROUP4).is_empty());
    assert_eq!(events(&mut s), [GroupEvent::Left(IpAddr::V4(GROUP4))]);
    assert_eq!(s.counters().table.expired, 1);
}

#[test]
fn v3_leave_sends_group_specific_queries_then_expires() {
    let mut s = Snooper::new(config());
    s.handle_timeout(T0);
    while s.poll_transmit().is_some() {}
    s.handle_frame(T0, A, &v3_report(RecordType::ChangeToExclude, GROUP4));
    assert_eq!(members(&s, GROUP4), [A]);
    let t = at(10);
    s.handle_frame(t, A, &v3_report(RecordType::ChangeToInclude, GROUP4));
    assert_eq!(s.counters().leaves, 1);
    // Still a member until the Last Member Query Time (2 × 1 s) has passed.
    assert_eq!(members(&s, GROUP4), [A]);
    assert_eq!(s.poll_timeout(), Some(t));
    s.handle_timeout(t);
    let query = s.poll_transmit().expect("a group-specific query");
    let (dst, repr_group) = igmp_query_of(&query);
    assert_eq!(dst, GROUP4);
    assert_eq!(repr_group, GROUP4);
    assert!(s.poll_transmit().is_none());
    s.handle_timeout(at(11));
    assert!(s.poll_transmit().is_some(), "the second query");
    s.handle_timeout(at(12));
    assert!(members(&s, GROUP4).is_empty());
    let ev = events(&mut s);
    assert_eq!(ev.last(), Some(&GroupEvent::Left(IpAddr::V4(GROUP4))));
}

#[test]
fn a_report_after_a_leave_keeps_the_membership() {
    let mut s = Snooper::new(config());
    s.handle_frame(T0, A, &v3_report(RecordType::ChangeToExclude, GROUP4));
    s.handle_frame(
        at(1),
        A,
        &igmp(&IgmpRepr::Leave { group: GROUP4 }, igmp::ALL_ROUTERS),
    );
    // Another listener behind the port answers the group-specific query.
    s.handle_frame(at(2), A, &v3_report(RecordType::ModeIsExclude, GROUP4));
    s.handle_timeout(at(10));
    assert_eq!(members(&s, GROUP4), [A]);
}

/// The IPv4 destination and the queried group of an IGMP query frame, after checking it is
/// what RFC 3376 asks of one: TTL 1, a router alert, a valid header checksum, IGMPv3.
fn igmp_query_of(frame: &[u8]) -> (Ipv4Addr, Ipv4Addr) {
    let eth = EthernetFrame::new_checked(frame).unwrap();
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!(ip.hop_limit(), 1);
    assert_eq!(ip.options(), [0x94, 4, 0, 0]);
    assert_eq!(
        eth.destination(),
        multicast_mac(IpAddr::V4(ip.dst_addr())).unwrap()
    );
    let repr =
        IgmpRepr::parse(&stack::wire::IgmpPacket::new_checked(ip.payload()).unwrap()).unwrap();
    let IgmpRepr::Query {
        group,
        v3: Some(v3),
        ..
    } = repr
    else {
        panic!("not an IGMPv3 query: {repr:?}");
    };
    assert_eq!(v3.qrv, 2);
    (ip.dst_addr(), group)
}

#[test]
fn querier_sends_general_queries_at_start_then_every_interval() {
    let mut s = Snooper::new(config());
    assert_eq!(s.poll_timeout(), None);
    s.handle_timeout(T0);
    let igmp_query = s.poll_transmit().unwrap();
    assert_eq!(
        igmp_query_of(&igmp_query),
        (igmp::ALL_SYSTEMS, Ipv4Addr::UNSPECIFIED)
    );
    let mld_query = s.poll_transmit().unwrap();
    let eth = EthernetFrame::new_checked(&mld_query[..]).unwrap();
    assert_eq!(eth.destination(), EthernetAddress([0x33, 0x33, 0, 0, 0, 1]));
    let ip = Ipv6Packet::new_checked(eth.payload()).unwrap();
    assert_eq!(ip.hop_limit(), 1);
    assert_eq!(ip.src_addr(), gateway_ll());
    let chain = ip.header_chain().unwrap();
    let upper = &ip.payload()[chain.offset..];
    let addrs = stack::wire::IpAddresses::V6 {
        src: ip.src_addr(),
        dst: ip.dst_addr(),
    };
    let repr =
        MldRepr::parse(&stack::wire::MldPacket::new_checked(upper).unwrap(), &addrs).unwrap();
    assert_eq!(repr.validate(ip.src_addr(), 1, true), Ok(()));
    assert_eq!(repr.max_resp_delay(), Some(10_000));
    assert!(s.poll_transmit().is_none());
    // Startup: the next one a quarter interval later, then every interval.
    assert_eq!(s.poll_timeout(), Some(T0 + Duration::from_millis(31_250)));
    s.handle_timeout(T0 + Duration::from_millis(31_250));
    assert_eq!(
        s.poll_timeout(),
        Some(T0 + Duration::from_millis(31_250 + 125_000))
    );
    assert_eq!(s.counters().queries_sent, 4);
    // Without IPv6, only IGMP.
    let mut s = Snooper::new(SnoopConfig {
        ipv6: None,
        ..config()
    });
    s.handle_timeout(T0);
    assert!(s.poll_transmit().is_some());
    assert!(s.poll_transmit().is_none());
}

#[test]
fn mld_reports_join_and_done_leaves() {
    let mut s = Snooper::new(config());
    s.handle_timeout(T0);
    while s.poll_transmit().is_some() {}
    let report = mld_v2_report(RecordType::ChangeToExclude, GROUP6);
    assert_eq!(s.handle_frame(T0, A, &report), Verdict::Consumed);
    assert_eq!(members(&s, GROUP6), [A]);
    assert_eq!(
        s.handle_frame(T0, B, &data6(GROUP6)),
        Verdict::Group(IpAddr::V6(GROUP6))
    );
    let v1 = mld(&MldRepr::ReportV1 { group: GROUP6 }, GROUP6);
    assert_eq!(s.handle_frame(T0, B, &v1), Verdict::Consumed);
    assert_eq!(members(&s, GROUP6), [A, B]);
    let done = mld(&MldRepr::Done { group: GROUP6 }, mld::ALL_ROUTERS);
    s.handle_frame(at(5), B, &done);
    s.handle_timeout(at(5));
    let q = s
        .poll_transmit()
        .expect("a multicast-address-specific query");
    assert_eq!(
        EthernetFrame::new_checked(&q[..]).unwrap().destination(),
        multicast_mac(IpAddr::V6(GROUP6)).unwrap()
    );
    s.handle_timeout(at(8));
    assert_eq!(members(&s, GROUP6), [A]);
    assert_eq!(s.counters().mld_messages, 3);
}

#[test]
fn link_local_groups_and_non_multicast_frames_flood() {
    let mut s = Snooper::new(config());
    assert_eq!(
        s.handle_frame(T0, A, &data4(Ipv4Addr::new(224, 0, 0, 251))),
        Verdict::Flood
    );
    let ff02 = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00, 2);
    assert_eq!(s.handle_frame(T0, A, &data6(ff02)), Verdict::Flood);
    let mut arp = vec![0xffu8; 60];
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    assert_eq!(s.handle_frame(T0, A, &arp), Verdict::Flood);
    // Reports for them are taken but tracked nowhere.
    let report = mld_v2_report(RecordType::ChangeToExclude, ff02);
    assert_eq!(s.handle_frame(T0, A, &report), Verdict::Consumed);
    assert_eq!(s.table().memberships(), 0);
    assert_eq!(s.counters().group_frames, 0);
}

#[test]
fn hostile_membership_messages_are_dropped_and_counted() {
    let mut s = Snooper::new(config());
    // A guest's query: dropped, the gateway stays the querier.
    let query = igmp(
        &IgmpRepr::Query {
            max_resp_code: 0,
            group: Ipv4Addr::UNSPECIFIED,
            v3: None,
        },
        igmp::ALL_SYSTEMS,
    );
    assert_eq!(s.handle_frame(T0, A, &query), Verdict::Drop);
    assert_eq!(s.counters().guest_queries, 1);
    // A bad checksum.
    let mut bad = v3_report(RecordType::ChangeToExclude, GROUP4).to_vec();
    bad[14 + 24 + 8 + 4] ^= 0xff;
    assert_eq!(s.handle_frame(T0, A, &bad), Verdict::Drop);
    // A v2 report for a unicast address.
    let unicast = igmp(&IgmpRepr::ReportV2 { group: GUEST }, GROUP4);
    assert_eq!(s.handle_frame(T0, A, &unicast), Verdict::Drop);
    // A v3 report announcing 65535 records in a short message.
    let mut many = v3_report(RecordType::ChangeToExclude, GROUP4).to_vec();
    many[14 + 24 + 6..14 + 24 + 8].copy_from_slice(&[0xff, 0xff]);
    let len = 16;
    stack::wire::IgmpPacket::new_unchecked(&mut many[14 + 24..14 + 24 + len]).fill_checksum();
    assert_eq!(s.handle_frame(T0, A, &many), Verdict::Drop);
    // MLD with hop limit 64, or without a router alert.
    let mut hops = mld_v2_report(RecordType::ChangeToExclude, GROUP6).to_vec();
    hops[14 + 7] = 64;
    assert_eq!(s.handle_frame(T0, A, &hops), Verdict::Drop);
    let mut no_alert = mld_v2_report(RecordType::ChangeToExclude, GROUP6).to_vec();
    no_alert[14 + 40 + 2] = 1; // the router alert option becomes PadN
    assert_eq!(s.handle_frame(T0, A, &no_alert), Verdict::Drop);
    // From a global source.
    let global = mld_frame(
        GUEST_MAC,
        Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2),
        mld::ALL_MLDV2_ROUTERS,
        &MldRepr::ReportV1 { group: GROUP6 },
    );
    assert_eq!(s.handle_frame(T0, A, &global), Verdict::Drop);
    assert_eq!(s.counters().bad_messages, 6);
    assert_eq!(s.table().memberships(), 0);
    // A truncated frame to a group MAC never panics and floods as before.
    let report = v3_report(RecordType::ChangeToExclude, GROUP4);
    for cut in 0..report.len() {
        let _ = s.handle_frame(T0, A, &report[..cut]);
    }
}

#[test]
fn group_table_exhaustion_is_bounded_per_port_and_in_total() {
    let mut s = Snooper::new(SnoopConfig {
        limits: Limits {
            max_memberships: 8,
            max_per_port: 5,
        },
        ..config()
    });
    // One guest floods joins: it gets its 5, the rest are refused and counted.
    for n in 0..100u8 {
        s.handle_frame(
            T0,
            A,
            &v3_report(RecordType::ChangeToExclude, Ipv4Addr::new(239, 9, 0, n)),
        );
    }
    assert_eq!(s.table().memberships(), 5);
    assert_eq!(s.counters().table.port_full, 95);
    // Another guest can still join.
    s.handle_frame(T0, B, &v3_report(RecordType::ChangeToExclude, GROUP4));
    assert_eq!(members(&s, GROUP4), [B]);
    for n in 0..10u8 {
        s.handle_frame(
            T0,
            PortId(3 + u32::from(n)),
            &v3_report(RecordType::ChangeToExclude, Ipv4Addr::new(239, 8, 0, n)),
        );
    }
    assert_eq!(s.table().memberships(), 8);
    assert!(s.counters().table.table_full >= 1);
    // A detached port gives its memberships back.
    s.remove_port(A);
    assert_eq!(s.table().memberships(), 3);
    assert_eq!(s.counters().table.removed, 5);
    let left = events(&mut s)
        .into_iter()
        .filter(|e| matches!(e, GroupEvent::Left(_)))
        .count();
    assert_eq!(left, 5);
}

#[test]
fn attach_queries_are_rate_limited() {
    let mut s = Snooper::new(config());
    s.port_attached(T0);
    s.port_attached(T0 + Duration::from_millis(500));
    let n = std::iter::from_fn(|| s.poll_transmit()).count();
    assert_eq!(n, 2, "one IGMP and one MLD query");
    s.port_attached(at(2));
    assert_eq!(std::iter::from_fn(|| s.poll_transmit()).count(), 2);
}

#[test]
fn frames_of_any_bytes_never_panic() {
    use proptest::prelude::*;
    let mut runner = proptest::test_runner::TestRunner::default();
    let report = v3_report(RecordType::ChangeToExclude, GROUP4).to_vec();
    runner
        .run(
            &(proptest::collection::vec(any::<u8>(), 0..200), 0usize..80),
            |(bytes, keep)| {
                let mut s = Snooper::new(config());
                let mut frame = report[..keep.min(report.len())].to_vec();
                frame.extend_from_slice(&bytes);
                let _ = s.handle_frame(T0, A, &frame);
                let _ = s.handle_frame(T0, A, &bytes);
                s.handle_timeout(at(1000));
                Ok(())
            },
        )
        .unwrap();
    let _ = ethernet::HEADER_LEN;
}
