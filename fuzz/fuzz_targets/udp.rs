//! UDP: parsing any datagram never panics; with the checksum made right, what parses re-emits
//! to an equal representation and the same payload. The first input byte chooses IPv4 or IPv6
//! addresses for the pseudo-header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stack::wire::{IpAddresses, UdpPacket, UdpRepr};

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

fn round_trip(datagram: &[u8], addrs: &IpAddresses) {
    let Ok(packet) = UdpPacket::new_checked(datagram) else {
        return;
    };
    let Ok(repr) = UdpRepr::parse(&packet, addrs) else {
        return;
    };
    let mut out = vec![0u8; repr.buffer_len() + repr.payload_len];
    out[repr.buffer_len()..].copy_from_slice(packet.payload());
    repr.emit(&mut UdpPacket::new_unchecked(&mut out[..]), addrs);
    let reparsed = UdpPacket::new_checked(&out[..]).unwrap();
    assert_eq!(UdpRepr::parse(&reparsed, addrs).unwrap(), repr);
    assert_eq!(reparsed.payload(), packet.payload());
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, datagram)) = data.split_first() else {
        return;
    };
    let addrs = addresses(selector);
    round_trip(datagram, &addrs);
    let mut fixed = datagram.to_vec();
    if let Ok(mut packet) = UdpPacket::new_checked(&mut fixed[..]) {
        packet.fill_checksum(&addrs);
        round_trip(&fixed, &addrs);
    }
});
