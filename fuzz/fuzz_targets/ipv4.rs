//! IPv4: parsing any bytes never panics; with the header checksum made right (so the fuzzer
//! reaches past it), what parses re-emits to an equal representation and the same payload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stack::wire::{Ipv4Packet, Ipv4Repr};

fn round_trip(data: &[u8]) {
    let Ok(packet) = Ipv4Packet::new_checked(data) else {
        return;
    };
    let _ = (packet.options(), packet.payload());
    let Ok(repr) = Ipv4Repr::parse(&packet) else {
        return;
    };
    let mut out = vec![0u8; repr.buffer_len() + repr.payload_len];
    out[repr.buffer_len()..].copy_from_slice(packet.payload());
    repr.emit(&mut Ipv4Packet::new_unchecked(&mut out[..]));
    let reparsed = Ipv4Packet::new_checked(&out[..]).unwrap();
    assert_eq!(Ipv4Repr::parse(&reparsed).unwrap(), repr);
    assert_eq!(reparsed.payload(), packet.payload());
}

fuzz_target!(|data: &[u8]| {
    round_trip(data);
    let mut fixed = data.to_vec();
    if let Ok(mut packet) = Ipv4Packet::new_checked(&mut fixed[..]) {
        packet.fill_checksum();
        round_trip(&fixed);
    }
    let _ = Ipv4Packet::new_quoted(data).map(|p| p.payload().len());
});
