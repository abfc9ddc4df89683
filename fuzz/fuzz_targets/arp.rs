//! ARP: parsing any bytes never panics, and what parses re-emits to an equal representation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stack::wire::{ArpPacket, ArpRepr};

fuzz_target!(|data: &[u8]| {
    let Ok(packet) = ArpPacket::new_checked(data) else {
        return;
    };
    let Ok(repr) = ArpRepr::parse(&packet) else {
        return;
    };
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut ArpPacket::new_unchecked(&mut out[..]));
    let again = ArpRepr::parse(&ArpPacket::new_checked(&out[..]).unwrap()).unwrap();
    assert_eq!(again, repr);
});
