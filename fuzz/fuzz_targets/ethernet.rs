//! Ethernet II: parsing any bytes never panics, and what parses re-emits to the same header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stack::wire::{EthernetFrame, EthernetRepr};

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = EthernetFrame::new_checked(data) else {
        return;
    };
    let _ = frame.payload();
    let Ok(repr) = EthernetRepr::parse(&frame) else {
        return;
    };
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut EthernetFrame::new_unchecked(&mut out[..]));
    assert_eq!(out[..], data[..repr.buffer_len()]);
});
