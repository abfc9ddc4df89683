//! ICMPv4: parsing any bytes never panics; with the checksum made right, what parses re-emits
//! to an equal representation, and a quoted datagram is safe to look into.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stack::wire::{Icmpv4Packet, Icmpv4Repr};

fn round_trip(data: &[u8]) {
    let Ok(packet) = Icmpv4Packet::new_checked(data) else {
        return;
    };
    let Ok(repr) = Icmpv4Repr::parse(&packet) else {
        return;
    };
    if let Some(quoted) = repr.quoted_packet() {
        let _ = (quoted.src_addr(), quoted.payload());
    }
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut Icmpv4Packet::new_unchecked(&mut out[..]));
    let again = Icmpv4Repr::parse(&Icmpv4Packet::new_checked(&out[..]).unwrap()).unwrap();
    assert_eq!(again, repr);
}

fuzz_target!(|data: &[u8]| {
    round_trip(data);
    let mut fixed = data.to_vec();
    if let Ok(mut packet) = Icmpv4Packet::new_checked(&mut fixed[..]) {
        packet.fill_checksum();
        round_trip(&fixed);
    }
});
