//! IPv6 fragment reassembly (`stack::frag`) driven by a fragment sequence decoded from the
//! input with a virtual clock (see `common/frag.rs`). Nothing may panic; the byte and datagram
//! bounds hold after every step; a reassembled packet parses as IPv6 whose payload length is
//! the packet's and whose chain walk does not panic; everything is released at the end.
#![no_main]

#[path = "common/frag.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use stack::wire::ip::Protocol;
use stack::wire::{Ipv6Packet, Ipv6Repr};

fn craft(f: &common::Fields<'_>) -> Vec<u8> {
    // An extra header: 8 bytes of destination options (PadN) before the fragment header.
    let extra: &[u8] = if f.extra_header {
        &[44, 0, 1, 4, 0, 0, 0, 0]
    } else {
        &[]
    };
    let data_len = f.data.len().min(65535 - 8 - extra.len());
    let repr = Ipv6Repr {
        src_addr: "fd00:127::2".parse().unwrap(),
        dst_addr: "fd00:127::1".parse().unwrap(),
        next_header: if f.extra_header {
            Protocol::Ipv6Opts
        } else {
            Protocol::Ipv6Frag
        },
        payload_len: extra.len() + 8 + data_len,
        hop_limit: 64,
        dscp: 0,
        ecn: 0,
        flow_label: 0,
    };
    let mut out = vec![0; 40];
    repr.emit(&mut Ipv6Packet::new_unchecked(&mut out[..]));
    out.extend_from_slice(extra);
    let off_m = (f.offset & !7) | u16::from(f.more);
    out.extend_from_slice(&[17, 0]);
    out.extend_from_slice(&off_m.to_be_bytes());
    out.extend_from_slice(&(u32::from(f.ident) << 16 | 0x5eed).to_be_bytes());
    out.extend_from_slice(&f.data[..data_len]);
    out
}

fn check(whole: &[u8]) {
    let packet = Ipv6Packet::new_checked(whole).expect("reassembled IPv6 packet parses");
    assert_eq!(usize::from(packet.payload_len()) + 40, whole.len());
    // The chain may still hold a fragment header: one inside the reassembled data (a
    // fragment of a fragment) is the sender's business. Walking it must not panic.
    let _ = packet.header_chain();
}

fuzz_target!(|data: &[u8]| common::run(data, craft, check));
