//! IGMP/MLD snooping (`switch::snoop::Snooper`, small limits that are hit quickly) fed a
//! sequence of frames from four ports, with clock steps and port detaches. Record format,
//! repeated: an op byte, then
//! - op % 4 == 0 or 1: a frame from port op/4 % 4 + 1: length (2 bytes, little-endian), then
//!   that many bytes;
//! - op % 4 == 2: the clock advances by (2 bytes) × 100 ms; due timers run;
//! - op % 4 == 3: port op/4 % 4 + 1 detaches.
//!
//! Oracles: nothing panics; memberships never exceed the table's bound nor a port's; a
//! group's members are a member of nothing after their port detached; every query the querier
//! sends parses as IGMPv3 or MLDv2 from the gateway; group events balance (each group left at
//! most once per join) and, once every timer has run out, nothing is a member any more.
#![no_main]

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use stack::time::Instant;
use stack::wire::{EthernetAddress, EthernetFrame, EthernetRepr};
use switch::PortId;
use switch::snoop::{GroupEvent, Limits, SnoopConfig, Snooper, Timing};

const GW_MAC: EthernetAddress = EthernetAddress([0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xdd]);

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_memberships: 16,
        max_per_port: 6,
    };
    let mut s = Snooper::new(SnoopConfig {
        mac: GW_MAC,
        ipv4: Ipv4Addr::new(192, 168, 127, 1),
        ipv6: Some(Ipv6Addr::new(
            0xfe80, 0, 0, 0, 0x5894, 0xefff, 0xfee4, 0x0cdd,
        )),
        limits,
        timing: Timing::default(),
    });
    let mut now = Instant::ZERO;
    let mut rest = data;
    let mut joined: HashSet<IpAddr> = HashSet::new();
    let mut steps = 0;
    while let Some((&op, after)) = rest.split_first() {
        steps += 1;
        if steps > 512 {
            break;
        }
        rest = after;
        let port = PortId(u32::from(op / 4 % 4) + 1);
        match op % 4 {
            0 | 1 => {
                let len = rest
                    .get(..2)
                    .map_or(0, |b| usize::from(u16::from_le_bytes([b[0], b[1]])));
                let body = rest.get(2..).unwrap_or(&[]);
                let (frame, after) = body.split_at(len.min(body.len()));
                rest = after;
                let _ = s.handle_frame(now, port, frame);
            }
            2 => {
                let ms = rest
                    .get(..2)
                    .map_or(0, |b| u64::from(u16::from_le_bytes([b[0], b[1]])));
                rest = rest.get(2..).unwrap_or(&[]);
                now = now + Duration::from_millis(ms * 100);
                s.handle_timeout(now);
            }
            _ => {
                s.remove_port(port);
                for (group, _) in s.table().list() {
                    assert!(
                        !s.table().is_member(group, port),
                        "a detached port stays out"
                    );
                }
            }
        }
        drain(&mut s, &mut joined);
        assert!(s.table().memberships() <= limits.max_memberships);
    }
    // Every membership runs out in the end.
    let end = now + Duration::from_secs(3600);
    s.handle_timeout(end);
    drain(&mut s, &mut joined);
    assert_eq!(s.table().memberships(), 0);
    assert!(joined.is_empty(), "every joined group was left: {joined:?}");
});

fn drain(s: &mut Snooper, joined: &mut HashSet<IpAddr>) {
    while let Some(event) = s.poll_event() {
        match event {
            GroupEvent::Joined(g) => assert!(joined.insert(g), "joined twice: {g}"),
            GroupEvent::Left(g) => assert!(joined.remove(&g), "left without joining: {g}"),
        }
    }
    while let Some(query) = s.poll_transmit() {
        let frame = EthernetFrame::new_checked(&query[..]).expect("a query is a frame");
        let eth = EthernetRepr::parse(&frame).expect("its header parses");
        assert_eq!(eth.src_addr, GW_MAC);
        assert!(eth.dst_addr.is_multicast());
    }
    for (group, ports) in s.table().list() {
        assert!(ports >= 1 && joined.contains(&group));
    }
}
