//! Guest-hostile multicast through the running pipeline: malformed and invalid IGMP/MLD
//! messages, a guest's queries, and one guest filling the group table. Each is dropped and
//! counted by the snooper (`Stats::multicast`), and the other guest's membership and its
//! group's traffic carry on.

use super::*;
use crate::forward::DEFAULT_GATEWAY_MAC;
use crate::port::Port;
use crate::snoop::query::{igmp_frame, mld_frame};
use bytes::Bytes;
use stack::wire::group_record::{RecordType, Records, Sources};
use stack::wire::{GroupRecord, IgmpRepr, MldRepr, igmp, mld, multicast_mac};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const WAIT: Duration = Duration::from_secs(5);
const A_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x0a]);
const B_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x0b]);

fn join(mac: EthernetAddress, src: Ipv4Addr, group: Ipv4Addr) -> Bytes {
    let records = [GroupRecord {
        kind: RecordType::ChangeToExclude,
        group,
        sources: Sources::new(&[]),
        aux: &[],
    }];
    igmp_frame(
        mac,
        src,
        igmp::ALL_V3_ROUTERS,
        &IgmpRepr::ReportV3 {
            records: Records::new(&records),
        },
    )
}

/// A UDP datagram from `mac` to `group` (its content is never looked at).
fn data(mac: EthernetAddress, group: Ipv4Addr, tag: u8) -> Bytes {
    let mut f = vec![0u8; 14 + 28];
    f[..6].copy_from_slice(&multicast_mac(IpAddr::V4(group)).unwrap().0);
    f[6..12].copy_from_slice(&mac.0);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut f[14..];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&28u16.to_be_bytes());
    ip[8] = 1;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[192, 168, 127, 10]);
    ip[16..20].copy_from_slice(&group.octets());
    let sum = stack::wire::checksum::checksum(&ip[..20]);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    ip[27] = tag;
    Bytes::from(f)
}

fn wait_stats(rt: &Runtime, what: &str, done: impl Fn(&crate::snoop::SnoopCounters) -> bool) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if let Some(m) = rt.stats().multicast
            && done(&m)
        {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out: {what}: {:?}",
            rt.stats().multicast
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The group data frames among what `port` receives within `wait` (queries are skipped).
fn group_frames(port: &Port, wait: Duration) -> Vec<Bytes> {
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + wait;
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        let Ok(f) = port.egress().recv_timeout(left) else {
            break;
        };
        if f.get(6..12) != Some(&DEFAULT_GATEWAY_MAC.0[..]) {
            out.push(f);
        }
    }
    out
}

#[test]
fn bad_membership_messages_are_dropped_and_counted() {
    let rt = Runtime::start(RuntimeConfig {
        workers: 1,
        ..RuntimeConfig::default()
    })
    .unwrap();
    let a = rt.attacher().attach("a").unwrap();
    let guest = Ipv4Addr::new(192, 168, 127, 10);
    // A report announcing 65535 records in a 16-byte message.
    let mut many = join(A_MAC, guest, Ipv4Addr::new(239, 1, 1, 1)).to_vec();
    many[14 + 24 + 6..14 + 24 + 8].copy_from_slice(&[0xff, 0xff]);
    stack::wire::IgmpPacket::new_unchecked(&mut many[14 + 24..14 + 24 + 16]).fill_checksum();
    // A bad checksum.
    let mut bad = join(A_MAC, guest, Ipv4Addr::new(239, 1, 1, 1)).to_vec();
    bad[14 + 24 + 12] ^= 1;
    // MLD from a global address, and with hop limit 64.
    let group6 = Ipv6Addr::new(0xff15, 0, 0, 0, 0, 0, 0, 9);
    let global = mld_frame(
        A_MAC,
        Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 10),
        mld::ALL_MLDV2_ROUTERS,
        &MldRepr::ReportV1 { group: group6 },
    );
    let mut hops = mld_frame(
        A_MAC,
        Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 10),
        group6,
        &MldRepr::ReportV1 { group: group6 },
    )
    .to_vec();
    hops[14 + 7] = 64;
    // A guest's query.
    let query = igmp_frame(
        A_MAC,
        guest,
        igmp::ALL_SYSTEMS,
        &IgmpRepr::Query {
            max_resp_code: 1,
            group: Ipv4Addr::UNSPECIFIED,
            v3: None,
        },
    );
    for f in [many, bad, global.to_vec(), hops, query.to_vec()] {
        assert!(a.send(Bytes::from(f)));
    }
    wait_stats(&rt, "five dropped", |m| {
        m.bad_messages + m.guest_queries == 5
    });
    let m = rt.stats().multicast.unwrap();
    assert_eq!((m.bad_messages, m.guest_queries, m.memberships), (4, 1, 0));
}

#[test]
fn one_guest_cannot_fill_the_group_table_for_the_others() {
    let rt = Runtime::start(RuntimeConfig {
        workers: 1,
        multicast: Some(MulticastConfig {
            limits: crate::snoop::Limits {
                max_memberships: 300,
                max_per_port: 100,
            },
            ..MulticastConfig::default()
        }),
        ..RuntimeConfig::default()
    })
    .unwrap();
    let a = rt.attacher().attach("a").unwrap();
    let b = rt.attacher().attach("b").unwrap();
    let guest_a = Ipv4Addr::new(192, 168, 127, 10);
    // A joins 10,000 groups; its queue may drop some, the table takes at most 100.
    for n in 0..10_000u32 {
        let [_, _, hi, lo] = n.to_be_bytes();
        let _ = a.send(join(A_MAC, guest_a, Ipv4Addr::new(239, 9, hi, lo)));
    }
    wait_stats(&rt, "A's joins taken", |m| {
        m.memberships == 100 && m.table.port_full > 0
    });
    // B still joins, and its group's traffic reaches it, not A's.
    let group = Ipv4Addr::new(239, 1, 1, 1);
    assert!(b.send(join(B_MAC, Ipv4Addr::new(192, 168, 127, 11), group)));
    wait_stats(&rt, "B's join taken", |m| m.memberships == 101);
    while b.egress().try_recv().is_ok() {}
    assert!(a.send(data(A_MAC, group, 1)));
    assert!(a.send(data(A_MAC, Ipv4Addr::new(239, 9, 0, 1), 2)));
    let got = group_frames(&b, Duration::from_millis(500));
    assert_eq!(got.len(), 1, "only its group's datagram");
    assert_eq!(got[0].get(14 + 16..14 + 20), Some(&group.octets()[..]));
    // A's link goes: its memberships with it.
    drop(a);
    wait_stats(&rt, "A's memberships gone", |m| {
        m.memberships == 1 && m.table.removed == 100
    });
    let m = rt.stats().multicast.unwrap();
    assert_eq!(m.groups, 1);
}
