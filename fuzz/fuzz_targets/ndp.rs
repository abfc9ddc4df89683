//! NDP: parsing any message never panics, whatever its options (zero lengths, overruns, long
//! lists); what parses re-emits to an equal representation, and validation is total.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stack::wire::{NdpPacket, NdpRepr};

fuzz_target!(|data: &[u8]| {
    let Ok(packet) = NdpPacket::new_checked(data) else {
        return;
    };
    let Ok(repr) = NdpRepr::parse(&packet) else {
        return;
    };
    let _ = repr.validate("fe80::1".parse().unwrap(), "ff02::1".parse().unwrap(), 255);
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut NdpPacket::new_unchecked(&mut out[..]));
    let again = NdpRepr::parse(&NdpPacket::new_checked(&out[..]).unwrap()).unwrap();
    assert_eq!(again, repr);
});
