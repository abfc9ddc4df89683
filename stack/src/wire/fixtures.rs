//! Frames captured from the Linux kernel, for byte-exact parse and emit tests.
//!
//! Each fixture is a pcap file (`tcpdump -w`) under `fixtures/`, so it can be read with
//! tcpdump or tshark; `README.md` there says how each was captured.

use super::ip::Addresses;
use super::{ethernet, ipv4, ipv6};

/// ARP request and reply between two kernels (192.168.127.2 asks for 192.168.127.1).
pub(crate) const ARP: &[u8] = include_bytes!("fixtures/arp.pcap");

/// The frames of a classic pcap file (microsecond or nanosecond, either byte order).
pub(crate) fn frames(pcap: &'static [u8]) -> Vec<&'static [u8]> {
    let magic = u32::from_le_bytes(pcap[0..4].try_into().unwrap());
    let little = match magic {
        0xa1b2_c3d4 | 0xa1b2_3c4d => true,
        0xd4c3_b2a1 | 0x4d3c_b2a1 => false,
        _ => panic!("not a pcap file"),
    };
    let read_u32 = |at: usize| {
        let b: [u8; 4] = pcap[at..at + 4].try_into().unwrap();
        if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }
    };
    assert_eq!(
        read_u32(20),
        1,
        "fixtures must be Ethernet captures (linktype 1)"
    );
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= pcap.len() {
        let captured = read_u32(at + 8) as usize;
        let original = read_u32(at + 12) as usize;
        assert_eq!(
            captured, original,
            "fixture frames must not be cut short by the snap length"
        );
        out.push(&pcap[at + 16..at + 16 + captured]);
        at += 16 + captured;
    }
    assert_eq!(at, pcap.len(), "trailing bytes in pcap file");
    out
}

/// Frame `index` of a pcap fixture.
pub(crate) fn frame(pcap: &'static [u8], index: usize) -> &'static [u8] {
    frames(pcap)[index]
}

/// The IP address pair and the upper-layer bytes (after any IPv6 extension headers) of a
/// captured Ethernet frame holding an unfragmented IPv4 or IPv6 packet.
pub(crate) fn transport(frame: &'static [u8]) -> (Addresses, &'static [u8]) {
    let ip = ethernet::Packet::new_checked(frame).unwrap().payload();
    match ip[0] >> 4 {
        4 => {
            let packet = ipv4::Packet::new_checked(ip).unwrap();
            let addrs = Addresses::V4 {
                src: packet.src_addr(),
                dst: packet.dst_addr(),
            };
            (addrs, packet.payload())
        }
        6 => {
            let packet = ipv6::Packet::new_checked(ip).unwrap();
            let chain = packet.header_chain().unwrap();
            let addrs = Addresses::V6 {
                src: packet.src_addr(),
                dst: packet.dst_addr(),
            };
            (addrs, &packet.payload()[chain.offset..])
        }
        v => panic!("IP version {v}"),
    }
}
