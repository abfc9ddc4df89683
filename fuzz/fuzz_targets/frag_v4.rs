//! IPv4 fragment reassembly (`stack::frag`) driven by a fragment sequence decoded from the
//! input with a virtual clock (see `common/frag.rs`). Nothing may panic; the byte and datagram
//! bounds hold after every step; a reassembled datagram parses as an unfragmented IPv4 packet
//! with a good checksum and its total length; everything is released at the end.
#![no_main]

#[path = "common/frag.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use stack::wire::ip::Protocol;
use stack::wire::{Ipv4Packet, Ipv4Repr};
use std::net::Ipv4Addr;

fn craft(f: &common::Fields<'_>) -> Vec<u8> {
    // An extra header: 4 bytes of options (NOP × 3, EOL).
    let options: &[u8] = if f.extra_header { &[1, 1, 1, 0] } else { &[] };
    let header_len = 20 + options.len();
    let payload_len = f.data.len().min(65535 - header_len);
    let repr = Ipv4Repr {
        src_addr: Ipv4Addr::new(192, 168, 127, 2),
        dst_addr: Ipv4Addr::new(192, 168, 127, 1),
        next_header: Protocol::Udp,
        payload_len,
        hop_limit: 64,
        ident: u16::from(f.ident),
        dont_frag: false,
        more_frags: f.more,
        frag_offset: f.offset,
        dscp: 0,
        ecn: 0,
    };
    let mut out = vec![0; header_len + payload_len];
    repr.emit(&mut Ipv4Packet::new_unchecked(&mut out[..]));
    out[20..header_len].copy_from_slice(options);
    out[header_len..].copy_from_slice(&f.data[..payload_len]);
    let mut packet = Ipv4Packet::new_unchecked(&mut out[..]);
    packet.set_version_and_header_len(header_len as u8);
    packet.set_total_len((header_len + payload_len) as u16);
    packet.fill_checksum();
    out
}

fn check(whole: &[u8]) {
    let packet = Ipv4Packet::new_checked(whole).expect("reassembled IPv4 packet parses");
    let repr = Ipv4Repr::parse(&packet).expect("reassembled IPv4 header is valid");
    assert!(!repr.is_fragment());
    assert_eq!(usize::from(packet.total_len()), whole.len());
}

fuzz_target!(|data: &[u8]| common::run(data, craft, check));
