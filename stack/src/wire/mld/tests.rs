use super::*;
use crate::wire::group_record::RecordType;
use crate::wire::{ethernet, fixtures, ipv6};
use proptest::prelude::*;

const V1: &[u8] = include_bytes!("../fixtures/mld_v1.pcap");
const V2: &[u8] = include_bytes!("../fixtures/mld_v2.pcap");
const HOPBYHOP: &[u8] = include_bytes!("../fixtures/ipv6_hopbyhop.pcap");

/// The address pair, hop limit and MLD message in frame `index` of a capture.
fn mld(pcap: &'static [u8], index: usize) -> (Addresses, u8, &'static [u8]) {
    let frame = fixtures::frame(pcap, index);
    let ip = ethernet::Packet::new_checked(frame).unwrap().payload();
    let hop_limit = ipv6::Packet::new_checked(ip).unwrap().hop_limit();
    let (addrs, message) = fixtures::transport(frame);
    (addrs, hop_limit, message)
}

fn parse<'a>(bytes: &'a [u8], addrs: &Addresses) -> Result<Repr<'a>, Error> {
    Repr::parse(&Packet::new_checked(bytes)?, addrs)
}

fn emit(repr: &Repr<'_>, addrs: &Addresses) -> Vec<u8> {
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut Packet::new_unchecked(&mut out[..]), addrs);
    out
}

const GROUP: Ipv6Addr = Ipv6Addr::new(0xff15, 0, 0, 0, 0, 0, 1, 2);

#[test]
fn test_parse_v1_report_and_done() {
    let (addrs, hop_limit, report) = mld(V1, 0);
    let repr = parse(report, &addrs).unwrap();
    assert_eq!(repr, Repr::ReportV1 { group: GROUP });
    assert_eq!(repr.validate(addrs_src(&addrs), hop_limit, true), Ok(()));
    assert_eq!(emit(&repr, &addrs), report);
    let (addrs, _, done) = mld(V1, 1);
    assert_eq!(addrs.dst(), core::net::IpAddr::V6(ALL_ROUTERS));
    assert_eq!(parse(done, &addrs), Ok(Repr::Done { group: GROUP }));
    assert_eq!(emit(&Repr::Done { group: GROUP }, &addrs), done);
}

fn addrs_src(addrs: &Addresses) -> Ipv6Addr {
    match addrs.src() {
        core::net::IpAddr::V6(a) => a,
        core::net::IpAddr::V4(_) => panic!("IPv4"),
    }
}

#[test]
fn test_parse_v2_reports() {
    for (pcap, group) in [
        (V2, GROUP),
        (HOPBYHOP, Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 3)),
    ] {
        let (addrs, hop_limit, join) = mld(pcap, 0);
        assert_eq!(addrs.dst(), core::net::IpAddr::V6(ALL_MLDV2_ROUTERS));
        let repr = parse(join, &addrs).unwrap();
        assert_eq!(repr.validate(addrs_src(&addrs), hop_limit, true), Ok(()));
        let Repr::ReportV2 { records } = repr else {
            panic!("not a v2 report");
        };
        let record = records.iter().next().unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(record.kind, RecordType::ChangeToExclude);
        assert_eq!(record.group, group);
        assert_eq!(record.listening(), Some(true));
        assert_eq!(emit(&repr, &addrs), join);
        let (addrs, _, leave) = mld(pcap, 2);
        let built = [Record {
            kind: RecordType::ChangeToInclude,
            group,
            sources: Sources::new(&[]),
            aux: &[],
        }];
        let repr = Repr::ReportV2 {
            records: Records::new(&built),
        };
        assert_eq!(emit(&repr, &addrs), leave);
        assert_eq!(parse(leave, &addrs), Ok(repr));
    }
}

#[test]
fn general_query_round_trip() {
    let src = Ipv6Addr::new(0xfe80, 0, 0, 0, 0x5894, 0xefff, 0xfee4, 0x0cdd);
    let addrs = Addresses::V6 {
        src,
        dst: ALL_NODES,
    };
    let repr = Repr::Query {
        max_resp_code: 10_000,
        group: Ipv6Addr::UNSPECIFIED,
        v2: Some(QueryV2 {
            suppress: false,
            qrv: 2,
            qqic: 125,
            sources: Sources::new(&[]),
        }),
    };
    let bytes = emit(&repr, &addrs);
    assert_eq!(bytes.len(), V2_QUERY_LEN);
    assert_eq!(&bytes[..2], [130, 0]);
    assert_eq!(&bytes[4..6], 10_000u16.to_be_bytes());
    assert_eq!(parse(&bytes, &addrs), Ok(repr));
    assert_eq!(repr.max_resp_delay(), Some(10_000));
    assert_eq!(repr.validate(src, 1, true), Ok(()));
    // A query must come from a link-local address, never the unspecified one.
    assert_eq!(
        repr.validate(Ipv6Addr::UNSPECIFIED, 1, true),
        Err(Error::SourceNotLinkLocal)
    );
}

#[test]
fn header_checks() {
    let (addrs, _, report) = mld(V2, 0);
    let repr = parse(report, &addrs).unwrap();
    let src = addrs_src(&addrs);
    assert_eq!(repr.validate(src, 2, true), Err(Error::BadHopLimit));
    assert_eq!(repr.validate(src, 1, false), Err(Error::NoRouterAlert));
    let global = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);
    assert_eq!(
        repr.validate(global, 1, true),
        Err(Error::SourceNotLinkLocal)
    );
    // Reports during duplicate address detection come from ::.
    assert_eq!(repr.validate(Ipv6Addr::UNSPECIFIED, 1, true), Ok(()));
}

#[test]
fn malformed_messages_are_refused() {
    let (addrs, _, report) = mld(V2, 0);
    let mut bad = report.to_vec();
    bad[10] ^= 1;
    assert_eq!(parse(&bad, &addrs), Err(Error::BadChecksum));
    let mut short = report.to_vec();
    short[7] = 9;
    Packet::new_unchecked(&mut short[..]).fill_checksum(&addrs);
    assert_eq!(parse(&short, &addrs), Err(Error::RecordsTruncated));
    assert_eq!(parse(&[128, 0, 0, 0], &addrs), Err(Error::NotMld));
    assert_eq!(parse(&[130, 0, 0, 0], &addrs), Err(Error::Truncated));
    let v4 = Addresses::V4 {
        src: core::net::Ipv4Addr::LOCALHOST,
        dst: core::net::Ipv4Addr::LOCALHOST,
    };
    assert_eq!(parse(report, &v4), Err(Error::NotIpv6));
    let mut odd = vec![0u8; 26];
    odd[0] = message_type::QUERY;
    Packet::new_unchecked(&mut odd[..]).fill_checksum(&addrs);
    assert_eq!(parse(&odd, &addrs), Err(Error::BadQueryLength));
}

#[test]
fn snooped_groups() {
    assert!(is_snooped(GROUP));
    assert!(is_snooped(Ipv6Addr::new(0xff05, 0, 0, 0, 0, 0, 0, 0xfb)));
    assert!(!is_snooped(ALL_NODES));
    assert!(!is_snooped(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00, 1)));
    assert!(!is_snooped(Ipv6Addr::new(0xff01, 0, 0, 0, 0, 0, 0, 1)));
    assert!(!is_snooped(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1)));
}

/// A group record's type, group, sources and auxiliary data.
type OwnedRecord = (u8, [u8; 16], Vec<Ipv6Addr>, Vec<u8>);

#[derive(Debug, Clone)]
enum Parts {
    Query(u16, [u8; 16], Option<(bool, u8, u8, Vec<Ipv6Addr>)>),
    V1([u8; 16]),
    Done([u8; 16]),
    V2(Vec<OwnedRecord>),
}

fn arb_addrs(max: usize) -> impl Strategy<Value = Vec<Ipv6Addr>> {
    proptest::collection::vec(any::<[u8; 16]>().prop_map(Ipv6Addr::from), 0..max)
}

fn arb_parts() -> impl Strategy<Value = Parts> {
    let record = (
        any::<u8>(),
        any::<[u8; 16]>(),
        arb_addrs(3),
        (0usize..3).prop_flat_map(|w| proptest::collection::vec(any::<u8>(), w * 4)),
    );
    prop_oneof![
        (
            any::<u16>(),
            any::<[u8; 16]>(),
            proptest::option::of((any::<bool>(), 0u8..8, any::<u8>(), arb_addrs(4)))
        )
            .prop_map(|(code, group, v2)| Parts::Query(code, group, v2)),
        any::<[u8; 16]>().prop_map(Parts::V1),
        any::<[u8; 16]>().prop_map(Parts::Done),
        proptest::collection::vec(record, 0..4).prop_map(Parts::V2),
    ]
}

fn arb_addresses() -> impl Strategy<Value = Addresses> {
    (any::<[u8; 16]>(), any::<[u8; 16]>()).prop_map(|(s, d)| Addresses::V6 {
        src: Ipv6Addr::from(s),
        dst: Ipv6Addr::from(d),
    })
}

fn check_round_trip(parts: &Parts, addrs: &Addresses) -> Result<(), TestCaseError> {
    let records: Vec<Record<'_>> = match parts {
        Parts::V2(list) => list
            .iter()
            .map(|(kind, group, sources, aux)| Record {
                kind: RecordType::from(*kind),
                group: Ipv6Addr::from(*group),
                sources: Sources::new(sources),
                aux,
            })
            .collect(),
        _ => Vec::new(),
    };
    let repr = match parts {
        Parts::Query(code, group, v2) => Repr::Query {
            max_resp_code: *code,
            group: Ipv6Addr::from(*group),
            v2: v2.as_ref().map(|(suppress, qrv, qqic, sources)| QueryV2 {
                suppress: *suppress,
                qrv: *qrv,
                qqic: *qqic,
                sources: Sources::new(sources),
            }),
        },
        Parts::V1(g) => Repr::ReportV1 {
            group: Ipv6Addr::from(*g),
        },
        Parts::Done(g) => Repr::Done {
            group: Ipv6Addr::from(*g),
        },
        Parts::V2(_) => Repr::ReportV2 {
            records: Records::new(&records),
        },
    };
    let bytes = emit(&repr, addrs);
    prop_assert_eq!(bytes.len(), repr.buffer_len());
    prop_assert_eq!(parse(&bytes, addrs), Ok(repr));
    Ok(())
}

proptest! {
    #[test]
    fn emit_parse_round_trip(parts in arb_parts(), addrs in arb_addresses()) {
        check_round_trip(&parts, &addrs)?;
    }

    #[test]
    fn any_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..128),
                             addrs in arb_addresses(), fix_checksum in any::<bool>()) {
        if fix_checksum && bytes.len() >= 4 {
            Packet::new_unchecked(&mut bytes[..]).fill_checksum(&addrs);
        }
        if let Ok(packet) = Packet::new_checked(&bytes[..]) {
            let _ = (packet.msg_type(), packet.multicast_addr(), packet.num_sources());
            if let Ok(repr) = Repr::parse(&packet, &addrs) {
                let _ = (repr.max_resp_delay(), repr.validate(Ipv6Addr::UNSPECIFIED, 1, true));
                if let Repr::ReportV2 { records } = repr {
                    for r in records.iter() {
                        let _ = (r.listening(), r.sources.iter().count());
                    }
                }
            }
        }
    }
}
