//! MLD: parsing any message (over the addresses the first 32 bytes of the input give) never
//! panics; what parses re-emits to an equal representation; the header checks are total.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stack::wire::{IpAddresses, MldPacket, MldRepr};
use std::net::Ipv6Addr;

fuzz_target!(|data: &[u8]| {
    let Some((head, rest)) = data.split_at_checked(33) else {
        return;
    };
    let addr = |b: &[u8]| Ipv6Addr::from(<[u8; 16]>::try_from(b).unwrap_or([0; 16]));
    let addrs = IpAddresses::V6 {
        src: addr(&head[..16]),
        dst: addr(&head[16..32]),
    };
    let mut bytes = rest.to_vec();
    if head[32] & 1 == 1 && bytes.len() >= 4 {
        MldPacket::new_unchecked(&mut bytes[..]).fill_checksum(&addrs);
    }
    let Ok(packet) = MldPacket::new_checked(&bytes[..]) else {
        return;
    };
    let Ok(repr) = MldRepr::parse(&packet, &addrs) else {
        return;
    };
    let _ = repr.validate(addr(&head[..16]), head[32] >> 1, head[32] & 2 != 0);
    let _ = repr.max_resp_delay();
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut MldPacket::new_unchecked(&mut out[..]), &addrs);
    let again = MldRepr::parse(
        &MldPacket::new_checked(&out[..]).expect("emitted length"),
        &addrs,
    )
    .expect("an emitted message parses");
    assert_eq!(again, repr);
});
