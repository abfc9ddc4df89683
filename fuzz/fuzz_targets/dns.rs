//! The DNS query path: any guest query never panics the resolver; what is forwarded is the
//! query with only its ID changed; every answer to the guest carries the guest's ID. Then
//! the forwarded query, marked as a response and with the input appended, comes back from
//! the upstream (and a second, arbitrary datagram), and the timers run out.
#![no_main]

#[path = "common/dns.rs"]
mod common;

use std::time::Duration;

use dns::Transmit;
use libfuzzer_sys::fuzz_target;
use stack::time::Instant;

fuzz_target!(|data: &[u8]| {
    let upstream = common::UPSTREAM;
    let (mut r, zones) = common::resolver();
    let t0 = Instant::default();
    r.handle_query(t0, 1, data, &zones);
    let mut forwarded = None;
    while let Some(t) = r.poll_transmit() {
        match t {
            Transmit::Upstream { to, payload } => {
                assert_eq!(to, upstream);
                assert_eq!(payload.get(2..), data.get(2..));
                forwarded = Some(payload);
            }
            Transmit::UpstreamTcp { .. } => panic!("a UDP query went upstream over TCP"),
            Transmit::Client { to, payload } => {
                assert_eq!(to, 1);
                assert_eq!(payload.get(..2), data.get(..2));
                assert!(payload.len() >= 12);
            }
        }
    }
    if let Some(mut answer) = forwarded {
        if let Some(flags) = answer.get_mut(2) {
            *flags |= 0x80;
        }
        answer.extend_from_slice(data);
        r.handle_response(t0, upstream, &answer);
        r.handle_response(t0, upstream, data);
    }
    r.handle_timeout(t0 + Duration::from_secs(60));
    while let Some(t) = r.poll_transmit() {
        if let Transmit::Client { payload, .. } = t {
            assert_eq!(payload.get(..2), data.get(..2));
            assert!(payload.len() <= 512);
        }
    }
});
