use super::*;
use crate::wire::group_record::RecordType;
use crate::wire::{ethernet, fixtures, ipv4};
use proptest::prelude::*;

const V2: &[u8] = include_bytes!("../fixtures/igmp_v2.pcap");
const V3: &[u8] = include_bytes!("../fixtures/igmp_v3.pcap");

/// The IGMP message in frame `index` of a capture (behind a router alert option).
fn igmp(pcap: &'static [u8], index: usize) -> &'static [u8] {
    let ip = ethernet::Packet::new_checked(fixtures::frame(pcap, index))
        .unwrap()
        .payload();
    let packet = ipv4::Packet::new_checked(ip).unwrap();
    // The kernel sends IGMP with TTL 1 and a router alert (RFC 2113: 94 04 00 00).
    assert_eq!(packet.hop_limit(), 1);
    assert_eq!(packet.options(), [0x94, 0x04, 0, 0]);
    assert_eq!(u8::from(packet.next_header()), PROTOCOL);
    packet.payload()
}

fn parse(bytes: &[u8]) -> Result<Repr<'_>, Error> {
    Repr::parse(&Packet::new_checked(bytes)?)
}

fn emit(repr: &Repr<'_>) -> Vec<u8> {
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut Packet::new_unchecked(&mut out[..]));
    out
}

const GROUP: Ipv4Addr = Ipv4Addr::new(239, 1, 2, 3);

#[test]
fn test_parse_v2_report_and_leave() {
    let report = igmp(V2, 0);
    assert_eq!(report, [0x16, 0, 0xf8, 0xfa, 239, 1, 2, 3]);
    assert_eq!(parse(report), Ok(Repr::ReportV2 { group: GROUP }));
    assert_eq!(emit(&Repr::ReportV2 { group: GROUP }), report);
    let leave = igmp(V2, 1);
    assert_eq!(parse(leave), Ok(Repr::Leave { group: GROUP }));
    assert_eq!(emit(&parse(leave).unwrap()), leave);
}

#[test]
fn test_parse_v3_reports() {
    let join = igmp(V3, 0);
    let Ok(Repr::ReportV3 { records }) = parse(join) else {
        panic!("not a v3 report");
    };
    let record: Vec<Record<'_>> = records.iter().collect();
    assert_eq!(record.len(), 1);
    assert_eq!(record[0].kind, RecordType::ChangeToExclude);
    assert_eq!(record[0].group, GROUP);
    assert!(record[0].sources.is_empty());
    assert_eq!(record[0].listening(), Some(true));
    assert_eq!(emit(&parse(join).unwrap()), join);
    let leave = igmp(V3, 2);
    let Ok(Repr::ReportV3 { records }) = parse(leave) else {
        panic!("not a v3 report");
    };
    let record = records.iter().next().unwrap();
    assert_eq!(record.kind, RecordType::ChangeToInclude);
    assert_eq!(record.listening(), Some(false));
    // The same report built from values gives the kernel's bytes.
    let built = [Record {
        kind: RecordType::ChangeToInclude,
        group: GROUP,
        sources: Sources::new(&[]),
        aux: &[],
    }];
    let repr = Repr::ReportV3 {
        records: Records::new(&built),
    };
    assert_eq!(emit(&repr), leave);
    assert_eq!(parse(leave), Ok(repr));
}

#[test]
fn test_emit_v3_general_query() {
    let repr = Repr::Query {
        max_resp_code: 100,
        group: Ipv4Addr::UNSPECIFIED,
        v3: Some(QueryV3 {
            suppress: false,
            qrv: 2,
            qqic: 125,
            sources: Sources::new(&[]),
        }),
    };
    let bytes = emit(&repr);
    assert_eq!(bytes, [0x11, 100, 0xec, 0x1e, 0, 0, 0, 0, 2, 125, 0, 0]);
    assert_eq!(parse(&bytes), Ok(repr));
    assert_eq!(repr.max_resp_time(), Some(100));
}

#[test]
fn query_versions_by_length() {
    let v2 = emit(&Repr::Query {
        max_resp_code: 100,
        group: GROUP,
        v3: None,
    });
    assert_eq!(v2.len(), 8);
    assert!(matches!(parse(&v2), Ok(Repr::Query { v3: None, .. })));
    // 9 to 11 bytes is no query at all (RFC 3376 §7.1).
    let mut odd = v2.clone();
    odd.extend_from_slice(&[0, 0]);
    Packet::new_unchecked(&mut odd[..]).fill_checksum();
    assert_eq!(parse(&odd), Err(Error::BadQueryLength));
}

#[test]
fn malformed_messages_are_refused() {
    assert_eq!(parse(&[0x16, 0, 0, 0]), Err(Error::Truncated));
    let mut bad = igmp(V2, 0).to_vec();
    bad[7] ^= 1;
    assert_eq!(parse(&bad), Err(Error::BadChecksum));
    let mut unknown = igmp(V2, 0).to_vec();
    unknown[0] = 0x30;
    Packet::new_unchecked(&mut unknown[..]).fill_checksum();
    assert_eq!(parse(&unknown), Err(Error::UnknownType));
    // A v3 report announcing more records than it holds.
    let mut short = igmp(V3, 0).to_vec();
    short[7] = 2;
    Packet::new_unchecked(&mut short[..]).fill_checksum();
    assert_eq!(parse(&short), Err(Error::RecordsTruncated));
    // A v3 query announcing sources it does not hold.
    let mut query = emit(&Repr::Query {
        max_resp_code: 10,
        group: GROUP,
        v3: Some(QueryV3 {
            suppress: true,
            qrv: 7,
            qqic: 0,
            sources: Sources::new(&[]),
        }),
    });
    query[11] = 1;
    Packet::new_unchecked(&mut query[..]).fill_checksum();
    assert_eq!(parse(&query), Err(Error::RecordsTruncated));
}

#[test]
fn snooped_groups() {
    assert!(is_snooped(GROUP));
    assert!(!is_snooped(ALL_SYSTEMS));
    assert!(!is_snooped(Ipv4Addr::new(224, 0, 0, 251)));
    assert!(!is_snooped(Ipv4Addr::new(10, 0, 0, 1)));
    assert!(is_snooped(Ipv4Addr::new(224, 0, 1, 1)));
}

/// The parts of a message, owned, to build a `Repr` from.
/// A group record's type, group, sources and auxiliary data.
type OwnedRecord = (u8, [u8; 4], Vec<Ipv4Addr>, Vec<u8>);

#[derive(Debug, Clone)]
enum Parts {
    Query(u8, [u8; 4], Option<(bool, u8, u8, Vec<Ipv4Addr>)>),
    V1([u8; 4]),
    V2([u8; 4]),
    Leave([u8; 4]),
    V3(Vec<OwnedRecord>),
}

fn arb_addrs(max: usize) -> impl Strategy<Value = Vec<Ipv4Addr>> {
    proptest::collection::vec(any::<[u8; 4]>().prop_map(Ipv4Addr::from), 0..max)
}

fn arb_parts() -> impl Strategy<Value = Parts> {
    let record = (
        any::<u8>(),
        any::<[u8; 4]>(),
        arb_addrs(4),
        (0usize..3).prop_flat_map(|w| proptest::collection::vec(any::<u8>(), w * 4)),
    );
    prop_oneof![
        (
            any::<u8>(),
            any::<[u8; 4]>(),
            proptest::option::of((any::<bool>(), 0u8..8, any::<u8>(), arb_addrs(5)))
        )
            .prop_map(|(code, group, v3)| Parts::Query(code, group, v3)),
        any::<[u8; 4]>().prop_map(Parts::V1),
        any::<[u8; 4]>().prop_map(Parts::V2),
        any::<[u8; 4]>().prop_map(Parts::Leave),
        proptest::collection::vec(record, 0..4).prop_map(Parts::V3),
    ]
}

fn check_round_trip(parts: &Parts) -> Result<(), TestCaseError> {
    let records: Vec<Record<'_>> = match parts {
        Parts::V3(list) => list
            .iter()
            .map(|(kind, group, sources, aux)| Record {
                kind: RecordType::from(*kind),
                group: Ipv4Addr::from(*group),
                sources: Sources::new(sources),
                aux,
            })
            .collect(),
        _ => Vec::new(),
    };
    let repr = match parts {
        Parts::Query(code, group, v3) => Repr::Query {
            max_resp_code: *code,
            group: Ipv4Addr::from(*group),
            v3: v3.as_ref().map(|(suppress, qrv, qqic, sources)| QueryV3 {
                suppress: *suppress,
                qrv: *qrv,
                qqic: *qqic,
                sources: Sources::new(sources),
            }),
        },
        Parts::V1(g) => Repr::ReportV1 {
            group: Ipv4Addr::from(*g),
        },
        Parts::V2(g) => Repr::ReportV2 {
            group: Ipv4Addr::from(*g),
        },
        Parts::Leave(g) => Repr::Leave {
            group: Ipv4Addr::from(*g),
        },
        Parts::V3(_) => Repr::ReportV3 {
            records: Records::new(&records),
        },
    };
    let bytes = emit(&repr);
    prop_assert_eq!(bytes.len(), repr.buffer_len());
    prop_assert_eq!(parse(&bytes), Ok(repr));
    Ok(())
}

proptest! {
    #[test]
    fn emit_parse_round_trip(parts in arb_parts()) {
        check_round_trip(&parts)?;
    }

    #[test]
    fn any_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..96),
                             fix_checksum in any::<bool>()) {
        if fix_checksum && bytes.len() >= HEADER_LEN {
            Packet::new_unchecked(&mut bytes[..]).fill_checksum();
        }
        if let Ok(packet) = Packet::new_checked(&bytes[..]) {
            let _ = (packet.msg_type(), packet.group_addr(), packet.qrv(), packet.num_records());
            if let Ok(repr) = Repr::parse(&packet) {
                let _ = repr.max_resp_time();
                if let Repr::ReportV3 { records } = repr {
                    for r in records.iter() {
                        let _ = (r.listening(), r.sources.iter().count());
                    }
                }
            }
        }
    }
}
