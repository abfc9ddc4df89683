//! TCP: parsing any segment never panics; with the checksum made right (so the fuzzer reaches
//! the option walk), what parses re-emits to an equal representation and the same payload,
//! and no option, however malformed, costs the segment (as in Linux: a bad option is skipped
//! or ends the walk). The first input byte chooses IPv4 or IPv6 addresses for the
//! pseudo-header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stack::wire::{IpAddresses, TcpError, TcpPacket, TcpRepr};

fn addresses(selector: u8) -> IpAddresses {
    if selector & 1 == 0 {
        IpAddresses::V4 {
            src: [192, 168, 127, 2].into(),
            dst: [192, 168, 127, 1].into(),
        }
    } else {
        IpAddresses::V6 {
            src: "fd00:127::2".parse().unwrap(),
            dst: "fd00:127::1".parse().unwrap(),
        }
    }
}

fn round_trip(segment: &[u8], addrs: &IpAddresses) {
    let Ok(packet) = TcpPacket::new_checked(segment) else {
        return;
    };
    // Every option is at least a byte, and a walk never goes back.
    assert!(packet.option_iter().count() <= packet.options().len());
    let repr = match TcpRepr::parse(&packet, addrs) {
        Ok(repr) => repr,
        Err(TcpError::OptionTooShort | TcpError::OptionOverflow | TcpError::BadOptionLength) => {
            panic!("an option cost the segment")
        }
        Err(_) => return,
    };
    assert_eq!(repr.payload_len, packet.payload().len());
    let mut out = vec![0u8; repr.buffer_len() + repr.payload_len];
    out[repr.buffer_len()..].copy_from_slice(packet.payload());
    repr.emit(&mut TcpPacket::new_unchecked(&mut out[..]), addrs);
    let reparsed = TcpPacket::new_checked(&out[..]).unwrap();
    let again = TcpRepr::parse(&reparsed, addrs).unwrap();
    // Emit keeps only the SACK blocks that fit beside the other options.
    let mut expected = repr;
    expected.sack_ranges = again.sack_ranges;
    assert_eq!(again, expected);
    assert_eq!(reparsed.payload(), packet.payload());
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, segment)) = data.split_first() else {
        return;
    };
    let addrs = addresses(selector);
    round_trip(segment, &addrs);
    let mut fixed = segment.to_vec();
    if let Ok(mut packet) = TcpPacket::new_checked(&mut fixed[..]) {
        packet.fill_checksum(&addrs);
        round_trip(&fixed, &addrs);
    }
});
