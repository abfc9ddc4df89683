//! The exchanges captured from real clients under `fixtures/`, for tests; `fixtures/README.md`
//! says how each was captured and what each frame is.

use stack::wire::EthernetFrame;

/// busybox udhcpc with the static lease's MAC: DISCOVER, OFFER, REQUEST, ACK, renewing
/// REQUEST, ACK, RELEASE.
pub(crate) const UDHCPC: &[u8] = include_bytes!("fixtures/udhcpc.pcap");
/// ISC dhclient with a pool MAC: DISCOVER, OFFER, REQUEST, ACK, init-reboot REQUEST, ACK.
pub(crate) const DHCLIENT: &[u8] = include_bytes!("fixtures/dhclient.pcap");
/// ISC dhclient -6 and dnsmasq: Information-request, Reply, Solicit, Advertise, Request,
/// Reply, Release, Reply.
pub(crate) const DHCLIENT6: &[u8] = include_bytes!("fixtures/dhclient6.pcap");

/// The frames of a classic little-endian, microsecond pcap file of Ethernet frames.
pub(crate) fn frames(pcap: &'static [u8]) -> Vec<&'static [u8]> {
    let read_u32 = |at: usize| u32::from_le_bytes(pcap[at..at + 4].try_into().unwrap());
    assert_eq!(read_u32(0), 0xa1b2_c3d4, "not a little-endian pcap file");
    assert_eq!(read_u32(20), 1, "fixtures must be Ethernet captures");
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= pcap.len() {
        let captured = read_u32(at + 8) as usize;
        assert_eq!(
            captured,
            read_u32(at + 12) as usize,
            "frame cut by snap length"
        );
        out.push(&pcap[at + 16..at + 16 + captured]);
        at += 16 + captured;
    }
    assert_eq!(at, pcap.len(), "trailing bytes in pcap file");
    out
}

/// The UDP payload (the DHCP message) of frame `index` of a fixture.
pub(crate) fn payload(pcap: &'static [u8], index: usize) -> &'static [u8] {
    let frame = EthernetFrame::new_checked(frames(pcap)[index]).unwrap();
    let ip = frame.payload();
    assert_eq!(ip[0] >> 4, 4, "not IPv4");
    assert_eq!(ip[9], 17, "not UDP");
    let udp = &ip[usize::from(ip[0] & 0x0f) * 4..];
    let len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    &udp[8..len]
}

/// The UDP payload (the DHCPv6 message) of frame `index` of an IPv6 fixture (no extension
/// headers), with the frame's source MAC.
pub(crate) fn payload6(
    pcap: &'static [u8],
    index: usize,
) -> (stack::wire::EthernetAddress, &'static [u8]) {
    let frame = EthernetFrame::new_checked(frames(pcap)[index]).unwrap();
    let ip = frame.payload();
    assert_eq!(ip[0] >> 4, 6, "not IPv6");
    assert_eq!(ip[6], 17, "not UDP");
    let udp = &ip[40..];
    let len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    (frame.source(), &udp[8..len])
}
