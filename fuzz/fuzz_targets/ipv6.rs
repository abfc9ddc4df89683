//! IPv6: parsing any bytes never panics, the bounded extension-header walk terminates on any
//! chain, and the fixed header re-emits to an equal representation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stack::wire::{Ipv6Packet, Ipv6Repr};

fuzz_target!(|data: &[u8]| {
    let _ = Ipv6Packet::new_quoted(data).map(|p| p.payload().len());
    let Ok(packet) = Ipv6Packet::new_checked(data) else {
        return;
    };
    if let Ok(chain) = packet.header_chain() {
        assert!(chain.offset <= packet.payload().len());
        let _ = (chain.headers(), chain.is_fragment());
    }
    let Ok(repr) = Ipv6Repr::parse(&packet) else {
        return;
    };
    let mut out = vec![0u8; repr.buffer_len() + repr.payload_len];
    out[repr.buffer_len()..].copy_from_slice(packet.payload());
    repr.emit(&mut Ipv6Packet::new_unchecked(&mut out[..]));
    let reparsed = Ipv6Packet::new_checked(&out[..]).unwrap();
    assert_eq!(Ipv6Repr::parse(&reparsed).unwrap(), repr);
});
