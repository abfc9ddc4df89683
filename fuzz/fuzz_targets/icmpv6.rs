//! ICMPv6, NDP included: parsing any message never panics; with the checksum made right (so
//! the fuzzer reaches the message bodies and NDP options), what parses re-emits to an equal
//! representation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stack::wire::{Icmpv6Packet, Icmpv6Repr, IpAddresses};

fn round_trip(data: &[u8], addrs: &IpAddresses) {
    let Ok(packet) = Icmpv6Packet::new_checked(data) else {
        return;
    };
    let Ok(repr) = Icmpv6Repr::parse(&packet, addrs) else {
        return;
    };
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut Icmpv6Packet::new_unchecked(&mut out[..]), addrs);
    let again = Icmpv6Repr::parse(&Icmpv6Packet::new_checked(&out[..]).unwrap(), addrs).unwrap();
    assert_eq!(again, repr);
}

fuzz_target!(|data: &[u8]| {
    let addrs = IpAddresses::V6 {
        src: "fe80::5894:efff:fee4:cee".parse().unwrap(),
        dst: "ff02::1".parse().unwrap(),
    };
    round_trip(data, &addrs);
    let mut fixed = data.to_vec();
    if let Ok(mut packet) = Icmpv6Packet::new_checked(&mut fixed[..]) {
        packet.fill_checksum(&addrs);
        round_trip(&fixed, &addrs);
    }
});
