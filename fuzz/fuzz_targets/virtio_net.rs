//! The virtio-net header a TAP with offloads puts before each frame, with its frame: parsing
//! any header never panics and what parses re-emits the same; checking it against any frame
//! and finishing the frame in software (`stack::offload::finish`: a partial checksum
//! completed, a super-segment cut) never panic, make at most `MAX_SEGMENTS` frames, none
//! longer than the frame it came from; the frame parses through ingress with the checksums
//! the header vouches for left unverified. When the frame was a sound TCP segment with its
//! partial checksum where the header says, every finished frame parses with every checksum
//! verified and their payloads join up to the original's.
//!
//! Input: a selector byte, 12 header bytes, the frame. The selector's bits fix the frame up so
//! the fuzzer reaches segmentation: bit 0 makes its IPv4 header consistent (version, length,
//! checksum) for TCP or UDP (bit 1), bit 2 points the header's partial checksum at the
//! transport checksum (leaving the pseudo-header's sum there) with a GSO type that matches
//! (bit 3).
#![no_main]

use libfuzzer_sys::fuzz_target;
use stack::ingress::{self, Event};
use stack::offload::{MAX_SEGMENTS, finish};
use stack::wire::virtio_net::{Gso, PartialChecksum};
use stack::wire::{
    EthernetAddress, IpAddresses, IpProtocol, Ipv4Packet, VirtioNetHeader, VirtioNetRepr,
};

fn fix_up(selector: u8, header: &mut VirtioNetRepr, frame: &mut [u8]) {
    if selector & 1 == 0 || frame.len() < 14 + 20 + 20 {
        return;
    }
    let udp = selector & 2 != 0;
    frame[12] = 0x08;
    frame[13] = 0x00;
    let ip_len = (frame.len() - 14).min(usize::from(u16::MAX)) as u16;
    let mut ip = Ipv4Packet::new_unchecked(&mut frame[14..]);
    ip.set_version_and_header_len(20);
    ip.set_total_len(ip_len);
    ip.set_fragment(true, false, 0);
    ip.set_next_header(if udp {
        IpProtocol::Udp
    } else {
        IpProtocol::Tcp
    });
    ip.fill_checksum();
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    if selector & 4 == 0 {
        return;
    }
    let l4 = 14 + 20;
    let offset = if udp { 6 } else { 16 };
    let len = frame.len() - l4;
    if udp {
        // The UDP length covers the datagram.
        frame[l4 + 4..l4 + 6].copy_from_slice(&(len as u16).to_be_bytes());
    }
    let addrs = IpAddresses::V4 { src, dst };
    let protocol = if udp {
        IpProtocol::Udp
    } else {
        IpProtocol::Tcp
    };
    let pseudo = addrs.pseudo_header(protocol, len).value();
    frame[l4 + offset..l4 + offset + 2].copy_from_slice(&pseudo.to_be_bytes());
    header.partial = Some(PartialChecksum {
        start: l4 as u16,
        offset: offset as u16,
    });
    header.data_valid = false;
    if selector & 8 != 0 {
        header.gso = if udp { Gso::Udp } else { Gso::Tcpv4 };
        header.ecn = false;
        header.gso_size = header.gso_size.max(1);
    } else {
        header.gso = Gso::None;
        header.gso_size = 0;
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Some((header_bytes, frame)) = rest.split_at_checked(12) else {
        let _ = VirtioNetHeader::new_checked(rest);
        return;
    };
    let Ok(header) = VirtioNetHeader::new_checked(header_bytes) else {
        return;
    };
    let Ok(mut repr) = VirtioNetRepr::parse(&header) else {
        return;
    };
    let again = VirtioNetRepr::parse(&VirtioNetHeader::new_checked(&repr.to_bytes()[..]).unwrap());
    assert_eq!(again, Ok(repr));
    let mut frame = frame.to_vec();
    fix_up(selector, &mut repr, &mut frame);
    let ours = frame
        .get(..6)
        .and_then(|m| <[u8; 6]>::try_from(m).ok())
        .map_or(EthernetAddress([2, 0, 0, 0, 0, 1]), EthernetAddress);
    let checked = repr.check_frame(&frame);
    let original = ingress::parse_with(&frame, ours, &repr.checksums());
    let mut scratch = Vec::new();
    let mut pieces: Vec<Vec<u8>> = Vec::new();
    let finished = finish(&frame, &repr, &mut scratch, &mut |piece| {
        pieces.push(piece.to_vec());
    });
    if checked.is_err() {
        assert!(finished.is_err());
        return;
    }
    let Ok(n) = finished else {
        return;
    };
    assert_eq!(n, pieces.len());
    assert!((1..=MAX_SEGMENTS).contains(&n));
    assert!(pieces.iter().all(|p| p.len() <= frame.len()));
    let sound_tcp = selector & 0b0111 == 0b0101;
    if let (true, Ok(parsed)) = (sound_tcp, original)
        && let Event::Tcp { payload, .. } = parsed.event
    {
        let mut joined = Vec::new();
        for piece in &pieces {
            let parsed = ingress::parse(piece, ours).expect("a finished segment verifies");
            let Event::Tcp { payload, .. } = parsed.event else {
                panic!("a finished segment is TCP");
            };
            joined.extend_from_slice(payload);
        }
        assert_eq!(joined, payload);
    }
});
