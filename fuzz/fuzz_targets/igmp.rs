//! IGMP: parsing any message never panics, whatever its record and source counts claim; what
//! parses re-emits to an equal representation, and every record it lists can be read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stack::wire::{IgmpPacket, IgmpRepr};

fuzz_target!(|data: &[u8]| {
    // Half the inputs get their checksum fixed, so the parser's later checks are reached.
    let mut bytes = data.to_vec();
    if bytes.first().is_some_and(|b| b & 1 == 1) && bytes.len() >= 8 {
        IgmpPacket::new_unchecked(&mut bytes[..]).fill_checksum();
    }
    let Ok(packet) = IgmpPacket::new_checked(&bytes[..]) else {
        return;
    };
    let Ok(repr) = IgmpRepr::parse(&packet) else {
        return;
    };
    if let IgmpRepr::ReportV3 { records } = repr {
        for r in records.iter() {
            let _ = (r.listening(), r.sources.iter().count());
        }
    }
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut IgmpPacket::new_unchecked(&mut out[..]));
    let again = IgmpRepr::parse(&IgmpPacket::new_checked(&out[..]).expect("emitted length"))
        .expect("an emitted message parses");
    assert_eq!(again, repr);
});
