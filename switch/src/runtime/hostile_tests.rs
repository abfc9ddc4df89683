//! Guest-hostile frames through the running pipeline, one test per class of bug that user-mode
//! networks have shipped (libslirp's history above all): header fields trusted before the
//! frame's length was checked (ARP, BOOTP, UDP, IPv6), IP reassembly overflows, the TCP urgent
//! pointer, option walks that do not move forward or run off the end, DNS compression loops.
//!
//! Each frame enters through a port of a started [`Runtime`], as a link's would. Each test
//! checks that it is dropped and counted under the one reason that names the cause (the exact
//! counter up by one, no other drop, nothing answered), and that service goes on: a valid ARP
//! request and ICMP echo — and for DHCP and DNS a valid DISCOVER or query — are answered next
//! through the same port. Frames through the switch keep their order, so "the next frame the
//! port receives is the valid request's answer" also shows that the hostile frame got none.

use super::*;
use crate::gateway::testing::{
    GUEST, GUEST_MAC, GUEST6, GW, GW_MAC, HOST, arp_request, dhcp_frame, dns_frame, echo_request,
    frame, gw6, ipv4, parse_arp, parse_dhcp, solicitation, split, udp_datagram,
};
use crate::gateway::{DNS_PORT, GatewayCounters};
use crate::port::Port;
use bytes::Bytes;
use dhcp::{DhcpOp, DhcpRepr, MessageType};
use stack::frag::FragDropReason;
use stack::ingress::DropReason;
use stack::wire::{
    ArpError, ArpOperation, ArpPacket, EtherType, EthernetAddress, Icmpv4Packet, Icmpv4Repr,
    Icmpv6Packet, Icmpv6Repr, IpAddresses, IpProtocol, Ipv4Error, Ipv4Packet, Ipv4Repr,
    Ipv6ChainError, Ipv6Packet, Ipv6Repr, NdpError, TcpError, TcpPacket, TcpRepr, TcpSeqNumber,
    UdpError, UdpPacket, ethernet, ipv4, ipv6,
};
use std::net::Ipv4Addr;

/// How long any one wait may take.
const WAIT: Duration = Duration::from_secs(5);

/// A runtime and one guest port on it.
pub(super) struct Rig {
    pub(super) rt: Runtime,
    pub(super) port: Port,
}

impl Rig {
    pub(super) fn start() -> Rig {
        Rig::with(RuntimeConfig::default())
    }

    pub(super) fn with(config: RuntimeConfig) -> Rig {
        let rt = Runtime::start(super::tests::quiet(RuntimeConfig {
            workers: 1,
            ..config
        }))
        .unwrap();
        let port = rt.attacher().attach("guest").unwrap();
        Rig { rt, port }
    }

    pub(super) fn send(&self, f: Vec<u8>) {
        assert!(self.port.send(Bytes::from(f)), "the switch took the frame");
    }

    pub(super) fn recv(&self) -> Bytes {
        self.port
            .egress()
            .recv_timeout(WAIT)
            .expect("a frame for the guest")
    }

    /// Polls the runtime's stats until `done` accepts them.
    pub(super) fn wait_stats(&self, what: &str, done: impl Fn(&Stats) -> bool) -> Stats {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let s = self.rt.stats();
            if done(&s) {
                return s;
            }
            assert!(std::time::Instant::now() < deadline, "timed out: {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends `f` and waits until the gateway has handled it; the stats before and after.
    pub(super) fn inject(&self, f: Vec<u8>) -> (Stats, Stats) {
        let before = self.rt.stats();
        self.send(f);
        let after = self.wait_stats("the gateway handles the frame", |s| {
            s.gateway.frames > before.gateway.frames
        });
        assert_eq!(after.gateway.frames, before.gateway.frames + 1);
        (before, after)
    }

    /// Sends `f` and checks that the gateway dropped it under `reason` and nothing else:
    /// that counter up by one, no other drop, no gateway counter moved but `frames`.
    pub(super) fn expect_drop(&self, f: Vec<u8>, reason: DropReason) -> (Stats, Stats) {
        let (before, after) = self.inject(f);
        assert_eq!(drop_delta(&before, &after), [(reason, 1)]);
        assert_eq!(
            after.gateway,
            GatewayCounters {
                frames: before.gateway.frames + 1,
                ..before.gateway
            }
        );
        (before, after)
    }

    /// A valid ARP request and ICMP echo to the gateway are answered, and those answers are
    /// the next frames the guest receives.
    pub(super) fn assert_serves(&self) {
        self.send(arp_request(GW, GUEST));
        let reply = self.recv();
        let (eth, _) = split(&reply);
        assert_eq!(eth.ethertype, EtherType::Arp, "the ARP reply comes next");
        let (eth, arp) = parse_arp(&reply);
        assert_eq!((eth.src_addr, eth.dst_addr), (GW_MAC, GUEST_MAC));
        assert_eq!(arp.operation, ArpOperation::Reply);
        assert_eq!(arp.source_protocol_addr, GW);

        self.send(echo_request(GW, b"still answering"));
        let reply = self.recv();
        let (eth, body) = split(&reply);
        assert_eq!((eth.src_addr, eth.dst_addr), (GW_MAC, GUEST_MAC));
        let ip = Ipv4Packet::new_checked(body).unwrap();
        let ipr = Ipv4Repr::parse(&ip).unwrap();
        assert_eq!((ipr.src_addr, ipr.dst_addr), (GW, GUEST));
        let icmp = Icmpv4Repr::parse(&Icmpv4Packet::new_checked(ip.payload()).unwrap()).unwrap();
        assert!(
            matches!(
                icmp,
                Icmpv4Repr::EchoReply {
                    data: b"still answering",
                    ..
                }
            ),
            "{icmp:?}"
        );
    }

    /// A valid DISCOVER from the default guest gets its OFFER.
    pub(super) fn assert_dhcp_serves(&self) {
        let discover = DhcpRepr::new(DhcpOp::Request, MessageType::Discover, 77, GUEST_MAC);
        self.send(dhcp_frame(GUEST_MAC, Ipv4Addr::UNSPECIFIED, &discover));
        let (eth, _, _, offer) = parse_dhcp(&self.recv());
        assert_eq!(eth.src_addr, GW_MAC);
        assert_eq!(offer.message_type, MessageType::Offer);
        assert_eq!((offer.xid, offer.yiaddr), (77, GUEST));
    }

    /// A valid query for the gateway's own name is answered from the local zone.
    pub(super) fn assert_dns_serves(&self) {
        let mut query = dns_header(0x5151);
        dns::wire::push_name(&mut query, "gateway.containers.internal");
        query.extend_from_slice(&[0, 1, 0, 1]);
        self.send(dns_frame(GW, &query));
        let payload = dns_answer(&self.recv());
        let msg = dns::wire::Message::new_checked(&payload).unwrap();
        assert_eq!(msg.id(), 0x5151);
        assert!(msg.is_response());
        assert_eq!(msg.flags() & 0xf, 0, "NOERROR");
        assert_eq!(msg.ancount(), 1);
        assert!(
            payload.ends_with(&GW.octets()),
            "the A record is the gateway's"
        );
    }
}

/// The drop counters that changed between two snapshots, and by how much.
pub(super) fn drop_delta(before: &Stats, after: &Stats) -> Vec<(DropReason, u64)> {
    DropReason::ALL
        .iter()
        .map(|&r| (r, after.drops.get(r) - before.drops.get(r)))
        .filter(|&(_, n)| n != 0)
        .collect()
}

/// The Ethernet frame around an IPv4 packet from the guest to the gateway's MAC.
pub(super) fn to_gateway(ip: &[u8]) -> Vec<u8> {
    frame(GUEST_MAC, GW_MAC, EtherType::Ipv4, ip)
}

/// An IPv4 packet with its header checksum made right again after an edit.
pub(super) fn edit_ipv4(f: &mut [u8], edit: impl FnOnce(&mut Ipv4Packet<&mut [u8]>)) {
    let mut p = Ipv4Packet::new_unchecked(&mut f[ethernet::HEADER_LEN..]);
    edit(&mut p);
    p.fill_checksum();
}

// Short UDP and DHCP packets.

#[test]
fn udp_length_beyond_the_packet_is_dropped() {
    let rig = Rig::start();
    // The UDP length claims 200 bytes; the IP packet holds 8 + 5.
    let mut f = to_gateway(&udp_datagram(GUEST, HOST, 5000, 7, b"short"));
    let udp = ethernet::HEADER_LEN + ipv4::HEADER_LEN;
    f[udp + 4..udp + 6].copy_from_slice(&200u16.to_be_bytes());
    rig.expect_drop(f, DropReason::Udp(UdpError::BadLength));
    // A UDP length below the header's own 8 bytes.
    let mut f = to_gateway(&udp_datagram(GUEST, HOST, 5000, 7, b"short"));
    f[udp + 4..udp + 6].copy_from_slice(&3u16.to_be_bytes());
    rig.expect_drop(f, DropReason::Udp(UdpError::BadLength));
    // An IPv4 packet too short for a UDP header at all.
    let f = to_gateway(&ipv4(GUEST, HOST, IpProtocol::Udp, &[0x13, 0x88, 0]));
    rig.expect_drop(f, DropReason::Udp(UdpError::Truncated));
    rig.assert_serves();
}

#[test]
fn short_dhcp_packet_is_dropped() {
    let rig = Rig::start();
    // A BOOTP header cut off after 40 of its 236 bytes.
    let mut bootp = vec![0u8; 40];
    bootp[..4].copy_from_slice(&[1, 1, 6, 0]);
    let f = frame(
        GUEST_MAC,
        EthernetAddress::BROADCAST,
        EtherType::Ipv4,
        &udp_datagram(Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST, 68, 67, &bootp),
    );
    let (before, after) = rig.expect_drop(f, DropReason::DhcpNoReply);
    let truncated = |s: &Stats| s.dhcp.dropped.get(dhcp::DropReason::Truncated);
    assert_eq!(truncated(&after), truncated(&before) + 1);
    assert_eq!(after.dhcp.dropped.total(), before.dhcp.dropped.total() + 1);
    rig.assert_serves();
    rig.assert_dhcp_serves();
}

// IPv4 headers whose lengths reach past the frame.

#[test]
fn ipv4_header_length_beyond_frame_is_dropped() {
    let rig = Rig::start();
    // IHL 15 (60 bytes) in a 28-byte packet (no checksum can be computed over it; the
    // length is checked first).
    let mut f = to_gateway(&udp_datagram(GUEST, HOST, 5000, 7, b""));
    Ipv4Packet::new_unchecked(&mut f[ethernet::HEADER_LEN..]).set_version_and_header_len(60);
    rig.expect_drop(f, DropReason::Ipv4(Ipv4Error::Truncated));
    // IHL 15 inside the frame but past the total length.
    let mut f = to_gateway(&udp_datagram(GUEST, HOST, 5000, 7, &[0; 64]));
    edit_ipv4(&mut f, |p| {
        p.set_version_and_header_len(60);
        p.set_total_len(40);
    });
    rig.expect_drop(f, DropReason::Ipv4(Ipv4Error::BadTotalLength));
    // IHL below the fixed header.
    let mut f = to_gateway(&udp_datagram(GUEST, HOST, 5000, 7, b"x"));
    edit_ipv4(&mut f, |p| p.set_version_and_header_len(16));
    rig.expect_drop(f, DropReason::Ipv4(Ipv4Error::BadHeaderLength));
    rig.assert_serves();
}

#[test]
fn ipv4_total_length_beyond_frame_is_dropped() {
    let rig = Rig::start();
    let mut f = echo_request(GW, b"ping");
    edit_ipv4(&mut f, |p| p.set_total_len(1400));
    rig.expect_drop(f, DropReason::Ipv4(Ipv4Error::Truncated));
    let mut f = echo_request(GW, b"ping");
    edit_ipv4(&mut f, |p| p.set_total_len(u16::MAX));
    rig.expect_drop(f, DropReason::Ipv4(Ipv4Error::Truncated));
    rig.assert_serves();
}

// IP fragments.

/// The fragment of the IPv4 packet in `f` holding its data bytes `start..end`, with the
/// given identification and more-fragments flag.
pub(super) fn piece(f: &[u8], ident: u16, start: usize, end: usize, more: bool) -> Vec<u8> {
    let (eth, ip) = f.split_at(ethernet::HEADER_LEN);
    let (header, data) = ip.split_at(ipv4::HEADER_LEN);
    let mut out = [eth, header, &data[start..end]].concat();
    edit_ipv4(&mut out, |p| {
        p.set_ident(ident);
        p.set_total_len(u16::try_from(ipv4::HEADER_LEN + end - start).unwrap());
        p.set_fragment(false, more, u16::try_from(start).unwrap());
    });
    out
}

/// An echo request to the gateway with `len` bytes of data.
pub(super) fn big_echo(len: usize) -> Vec<u8> {
    let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
    echo_request(GW, &data)
}

#[test]
fn overlapping_fragments_are_dropped() {
    let rig = Rig::start();
    let whole = big_echo(64);
    let (_, after) = rig.inject(piece(&whole, 9, 0, 32, true));
    assert_eq!(after.reassembly.datagrams, 1, "the first piece is held");
    // Bytes 24..48 overlap the 24..32 already held, with other contents.
    let mut overlap = piece(&whole, 9, 24, 48, true);
    let last = overlap.len() - 1;
    overlap[last] ^= 0xff;
    let (before, after) = rig.expect_drop(overlap, DropReason::Fragment);
    let overlaps = |s: &Stats| s.reassembly.dropped(FragDropReason::Overlap);
    assert_eq!(overlaps(&after), overlaps(&before) + 1);
    assert_eq!(after.reassembly.abandoned, before.reassembly.abandoned + 1);
    assert_eq!(
        (after.reassembly.datagrams, after.reassembly.bytes_held),
        (0, 0)
    );
    rig.assert_serves();
    // A datagram whose pieces do not overlap is still put together and answered.
    for (start, end, more) in [(32, 72, false), (0, 32, true)] {
        rig.send(piece(&whole, 10, start, end, more));
    }
    let reply = rig.recv();
    let (_, body) = split(&reply);
    let ip = Ipv4Packet::new_checked(body).unwrap();
    let icmp = Icmpv4Repr::parse(&Icmpv4Packet::new_checked(ip.payload()).unwrap()).unwrap();
    assert!(matches!(icmp, Icmpv4Repr::EchoReply { data, .. } if data.len() == 64));
}

#[test]
fn fragments_beyond_64k_are_dropped() {
    let rig = Rig::start();
    // The ping of death: a last fragment at offset 65528 with 100 bytes.
    let mut f = big_echo(92);
    edit_ipv4(&mut f, |p| p.set_fragment(false, false, 65528));
    rig.expect_drop(f, DropReason::Ipv4(Ipv4Error::BadFragment));

    // Each piece within the limit, the whole not: a first fragment with 40 bytes of options
    // and a last one ending at 65535 with a 20-byte header.
    let whole = big_echo(64);
    let mut first = piece(&whole, 11, 0, 16, true);
    first.splice(
        ethernet::HEADER_LEN + ipv4::HEADER_LEN..ethernet::HEADER_LEN + ipv4::HEADER_LEN,
        [1u8; 40],
    );
    edit_ipv4(&mut first, |p| {
        p.set_version_and_header_len(60);
        p.set_total_len(60 + 16);
    });
    let (_, after) = rig.inject(first);
    assert_eq!(after.reassembly.datagrams, 1);
    let mut last = piece(&whole, 11, 0, 3, false);
    edit_ipv4(&mut last, |p| p.set_fragment(false, false, 65512));
    let (before, after) = rig.expect_drop(last, DropReason::Fragment);
    let too_big = |s: &Stats| s.reassembly.dropped(FragDropReason::TooBig);
    assert_eq!(too_big(&after), too_big(&before) + 1);
    assert_eq!(
        (after.reassembly.datagrams, after.reassembly.bytes_held),
        (0, 0)
    );

    // IPv6: a fragment header whose offset and length reach past a 65535-byte payload.
    let mut body = vec![IpProtocol::Udp.into(), 0, 0xff, 0xf8, 0, 0, 0, 1];
    body.extend_from_slice(&[0u8; 16]);
    let f = ipv6_frame(IpProtocol::Ipv6Frag, &body);
    rig.expect_drop(f, DropReason::Ipv6Chain(Ipv6ChainError::FragmentTooLong));
    rig.assert_serves();
}

#[test]
fn fragments_that_never_complete_are_given_up() {
    let rig = Rig::with(RuntimeConfig {
        reassembly: stack::frag::Config {
            timeout_v4: Duration::from_millis(200),
            max_datagrams: 4,
            ..stack::frag::Config::default()
        },
        ..RuntimeConfig::default()
    });
    let whole = big_echo(64);
    let (before, after) = rig.inject(piece(&whole, 20, 0, 32, true));
    assert_eq!(after.gateway.fragments, before.gateway.fragments + 1);
    assert_eq!(after.reassembly.datagrams, 1);
    assert!(after.reassembly.bytes_held > 0);
    assert!(drop_delta(&before, &after).is_empty(), "held, not dropped");
    // The timer gives it up and frees everything; no drop reason is counted for it.
    let timeouts = |s: &Stats| s.reassembly.dropped(FragDropReason::Timeout);
    let done = rig.wait_stats("the reassembly timeout", |s| timeouts(s) == 1);
    assert_eq!(
        (done.reassembly.datagrams, done.reassembly.bytes_held),
        (0, 0)
    );
    assert_eq!(done.reassembly.abandoned, 1);
    assert!(drop_delta(&after, &done).is_empty());
    // The first fragment had come: the guest is told, RFC 792's Time Exceeded, code 1,
    // quoting its header and 8 bytes, through its own port.
    let error = rig.recv();
    let (eth, body) = split(&error);
    assert_eq!((eth.src_addr, eth.dst_addr), (GW_MAC, GUEST_MAC));
    let ip = Ipv4Packet::new_checked(body).unwrap();
    let icmp = Icmpv4Repr::parse(&Icmpv4Packet::new_checked(ip.payload()).unwrap()).unwrap();
    let first = piece(&whole, 20, 0, 32, true);
    assert_eq!(
        icmp,
        Icmpv4Repr::TimeExceeded {
            reason: stack::wire::Icmpv4TimeExceeded::FragReassembly,
            data: &first[ethernet::HEADER_LEN..ethernet::HEADER_LEN + ipv4::HEADER_LEN + 8],
        }
    );
    let sent = rig.wait_stats("the count", |s| s.gateway.time_exceeded_sent == 1);
    assert_eq!(sent.reassembly.expired_notices, 1);
    rig.assert_serves();

    // Datagrams that never complete cannot pile up past the table's bound. (Pieces from
    // the middle: their timeouts send nothing, so nothing comes between the answers below.)
    for ident in 30..34 {
        rig.inject(piece(&whole, ident, 32, 48, true));
    }
    let (before, after) = rig.expect_drop(piece(&whole, 34, 32, 48, true), DropReason::Fragment);
    let full = |s: &Stats| s.reassembly.dropped(FragDropReason::TooManyDatagrams);
    assert_eq!(full(&after), full(&before) + 1);
    assert_eq!(after.reassembly.datagrams, 4);
    rig.assert_serves();
}

// TCP.

/// A TCP segment from the guest to the host's port 80: ACK, 4 bytes of data, `options`
/// (a multiple of 4 bytes) after the fixed header, and `urgent` as URG and urgent pointer.
fn tcp_segment(options: &[u8], urgent: Option<u16>) -> Vec<u8> {
    let repr = TcpRepr {
        src_port: 40000,
        dst_port: 80,
        seq_number: TcpSeqNumber(1000),
        ack_number: Some(TcpSeqNumber(2000)),
        window_len: 1000,
        urgent_pointer: urgent,
        payload_len: 4,
        ..TcpRepr::default()
    };
    let header = repr.buffer_len() + options.len();
    let mut b = vec![0u8; header + 4];
    b[header..].copy_from_slice(b"data");
    let addrs = IpAddresses::V4 {
        src: GUEST,
        dst: HOST,
    };
    let mut p = TcpPacket::new_unchecked(&mut b[..]);
    repr.emit(&mut p, &addrs);
    p.set_header_len(header);
    p.set_checksum(0);
    b[repr.buffer_len()..header].copy_from_slice(options);
    TcpPacket::new_unchecked(&mut b[..]).fill_checksum(&addrs);
    to_gateway(&ipv4(GUEST, HOST, IpProtocol::Tcp, &b))
}

#[test]
fn tcp_urgent_pointer_past_the_data_is_not_trusted() {
    let rig = Rig::start();
    // A legal segment: it is a flow, and with no forwarder the worker counts it as such.
    expect_flow(&rig, tcp_segment(&[], Some(u16::MAX)));
    rig.assert_serves();
}

/// Sends `f` and waits until the worker has counted it as a flow (no forwarder is attached):
/// the gateway took it for a flow and dropped nothing itself.
pub(super) fn expect_flow(rig: &Rig, f: Vec<u8>) {
    let before = rig.rt.stats();
    rig.send(f);
    let after = rig.wait_stats("the worker's drop", |s| {
        s.drops.get(DropReason::NoForwarder) > before.drops.get(DropReason::NoForwarder)
    });
    assert_eq!(drop_delta(&before, &after), [(DropReason::NoForwarder, 1)]);
    assert_eq!(after.gateway.flows, before.gateway.flows + 1);
}

#[test]
fn tcp_options_with_bad_lengths_are_skipped() {
    let rig = Rig::start();
    // As Linux does, a malformed option costs only the options from it on, never the
    // segment: each of these is a flow. MSS with length 0 (a walk that trusted it would
    // never move on), an unknown option with length 1, a length past the options area,
    // and a known option with the wrong length for it.
    for options in [[2, 0, 5, 0xb4], [99, 1, 0, 0], [1, 99, 40, 0], [3, 4, 7, 0]] {
        expect_flow(&rig, tcp_segment(&options, None));
    }
    // A data offset past the segment (60 bytes of header in 24).
    let mut f = tcp_segment(&[], None);
    f[ethernet::HEADER_LEN + ipv4::HEADER_LEN + 12] = 0xf0;
    rig.expect_drop(f, DropReason::Tcp(TcpError::Truncated));
    // A data offset below the fixed header.
    let mut f = tcp_segment(&[], None);
    f[ethernet::HEADER_LEN + ipv4::HEADER_LEN + 12] = 0x40;
    rig.expect_drop(f, DropReason::Tcp(TcpError::BadDataOffset));
    rig.assert_serves();
}

// ARP.

#[test]
fn arp_with_wrong_lengths_is_dropped() {
    let rig = Rig::start();
    let arp = ethernet::HEADER_LEN;
    let mut f = arp_request(GW, GUEST);
    ArpPacket::new_unchecked(&mut f[arp..]).set_hardware_len(200);
    rig.expect_drop(f, DropReason::Arp(ArpError::BadHardwareLen));
    let mut f = arp_request(GW, GUEST);
    ArpPacket::new_unchecked(&mut f[arp..]).set_protocol_len(16);
    rig.expect_drop(f, DropReason::Arp(ArpError::BadProtocolLen));
    let mut f = arp_request(GW, GUEST);
    ArpPacket::new_unchecked(&mut f[arp..]).set_hardware_len(0);
    rig.expect_drop(f, DropReason::Arp(ArpError::BadHardwareLen));
    // Cut short of its addresses.
    let mut f = arp_request(GW, GUEST);
    f.truncate(arp + 20);
    rig.expect_drop(f, DropReason::Arp(ArpError::Truncated));
    rig.assert_serves();
}

// IPv6 extension headers and Neighbor Discovery.

/// An IPv6 frame from the guest to the gateway's link-local address; `body` follows the
/// fixed header, whose next header is `next`.
pub(super) fn ipv6_frame(next: IpProtocol, body: &[u8]) -> Vec<u8> {
    let ip = Ipv6Repr {
        src_addr: GUEST6,
        dst_addr: gw6(),
        next_header: next,
        payload_len: body.len(),
        hop_limit: 64,
        dscp: 0,
        ecn: 0,
        flow_label: 0,
    };
    let mut b = vec![0u8; ipv6::HEADER_LEN + body.len()];
    b[ipv6::HEADER_LEN..].copy_from_slice(body);
    ip.emit(&mut Ipv6Packet::new_unchecked(&mut b[..]));
    frame(GUEST_MAC, GW_MAC, EtherType::Ipv6, &b)
}

/// An options header (hop-by-hop or destination) of `units` 8-byte units, all padding.
fn options_header(next: IpProtocol, units: usize) -> Vec<u8> {
    let mut h = vec![next.into(), u8::try_from(units - 1).unwrap()];
    let mut room = units * 8 - 2;
    while room > 0 {
        let n = room.min(257);
        h.push(1);
        h.push(u8::try_from(n - 2).unwrap());
        h.resize(h.len() + n - 2, 0);
        room -= n;
    }
    h
}

#[test]
fn ipv6_extension_header_chain_too_long_is_dropped() {
    let rig = Rig::start();
    // 1048 bytes of destination options: one header past the 1024-byte walk bound.
    let f = ipv6_frame(
        IpProtocol::Ipv6Opts,
        &options_header(IpProtocol::Ipv6NoNxt, 131),
    );
    rig.expect_drop(f, DropReason::Ipv6Chain(Ipv6ChainError::ChainTooLong));
    // A header whose length reaches past the packet.
    let mut h = options_header(IpProtocol::Ipv6NoNxt, 1);
    h[1] = 20;
    let f = ipv6_frame(IpProtocol::Ipv6Opts, &h);
    rig.expect_drop(f, DropReason::Ipv6Chain(Ipv6ChainError::Truncated));
    rig.assert_serves();
}

#[test]
fn ipv6_extension_header_loop_is_dropped() {
    let rig = Rig::start();
    // Destination options pointing at destination options, nine deep: a "loop" unrolled.
    let body: Vec<u8> = (0..9)
        .flat_map(|_| options_header(IpProtocol::Ipv6Opts, 1))
        .collect();
    rig.expect_drop(
        ipv6_frame(IpProtocol::Ipv6Opts, &body),
        DropReason::Ipv6Chain(Ipv6ChainError::TooManyHeaders),
    );
    // Hop-by-hop again after hop-by-hop.
    let body = [
        options_header(IpProtocol::HopByHop, 1),
        options_header(IpProtocol::Ipv6NoNxt, 1),
    ]
    .concat();
    rig.expect_drop(
        ipv6_frame(IpProtocol::HopByHop, &body),
        DropReason::Ipv6Chain(Ipv6ChainError::HopByHopNotFirst),
    );
    // A fragment header followed by another one.
    let frag = |next: IpProtocol| [next.into(), 0, 0, 0, 0, 0, 0, 7];
    let body = [
        &frag(IpProtocol::Ipv6Frag)[..],
        &frag(IpProtocol::Udp)[..],
        &[0u8; 16][..],
    ]
    .concat();
    rig.expect_drop(
        ipv6_frame(IpProtocol::Ipv6Frag, &body),
        DropReason::Ipv6Chain(Ipv6ChainError::DuplicateFragment),
    );
    rig.assert_serves();
}

#[test]
fn ndp_option_of_length_zero_is_dropped() {
    let rig = Rig::start();
    // A valid solicitation for the gateway, its source link-layer option's length made 0.
    let mut f = solicitation(GUEST6, gw6(), 255);
    let icmp = ethernet::HEADER_LEN + ipv6::HEADER_LEN;
    // Type, code, checksum, reserved, target: the option starts 24 bytes in.
    assert_eq!(f[icmp + 24], 1, "source link-layer address option");
    f[icmp + 25] = 0;
    let addrs = IpAddresses::V6 {
        src: GUEST6,
        dst: stack::wire::ndp::solicited_node(gw6()),
    };
    Icmpv6Packet::new_unchecked(&mut f[icmp..]).fill_checksum(&addrs);
    rig.expect_drop(f, DropReason::Ndp(NdpError::OptionZeroLength));
    rig.assert_serves();
    // The gateway still answers solicitations.
    rig.send(solicitation(GUEST6, gw6(), 255));
    let reply = rig.recv();
    let (eth, body) = split(&reply);
    assert_eq!(eth.src_addr, GW_MAC);
    let ip = Ipv6Packet::new_checked(body).unwrap();
    let addrs = IpAddresses::V6 {
        src: gw6(),
        dst: GUEST6,
    };
    let icmp = Icmpv6Repr::parse(&Icmpv6Packet::new_checked(ip.payload()).unwrap(), &addrs);
    assert!(
        matches!(
            icmp,
            Ok(Icmpv6Repr::Ndp(stack::wire::NdpRepr::NeighborAdvert { .. }))
        ),
        "{icmp:?}"
    );
}

// DHCP options.

#[test]
fn dhcp_options_past_the_packet_are_dropped() {
    let rig = Rig::start();
    let discover = DhcpRepr::new(DhcpOp::Request, MessageType::Discover, 5, GUEST_MAC);
    let bytes = discover.to_bytes().unwrap();
    let header = dhcp::message::HEADER_LEN;
    // The message type, then a client identifier that claims 200 bytes with 3 left.
    let overrun = [&bytes[..header], &[53, 1, 1, 61, 200, 1, 2, 3][..]].concat();
    // The message type option itself claims more than the field holds.
    let mut long_type = bytes.clone();
    long_type.truncate(header + 3);
    long_type[header + 1] = 250;
    for payload in [overrun, long_type] {
        let f = frame(
            GUEST_MAC,
            EthernetAddress::BROADCAST,
            EtherType::Ipv4,
            &udp_datagram(Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST, 68, 67, &payload),
        );
        let (before, after) = rig.expect_drop(f, DropReason::DhcpNoReply);
        let overruns = |s: &Stats| s.dhcp.dropped.get(dhcp::DropReason::OptionOverrun);
        assert_eq!(overruns(&after), overruns(&before) + 1);
        assert_eq!(after.dhcp.dropped.total(), before.dhcp.dropped.total() + 1);
    }
    rig.assert_serves();
    rig.assert_dhcp_serves();
}

// DNS.

/// A DNS query header: `id`, RD, one question.
fn dns_header(id: u16) -> Vec<u8> {
    let mut h = id.to_be_bytes().to_vec();
    h.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    h
}

/// The DNS payload of a frame from the gateway's port 53.
fn dns_answer(f: &[u8]) -> Vec<u8> {
    let (eth, body) = split(f);
    assert_eq!(eth.src_addr, GW_MAC);
    let ip = Ipv4Packet::new_checked(body).unwrap();
    let udp = UdpPacket::new_checked(ip.payload()).unwrap();
    assert_eq!(udp.src_port(), DNS_PORT);
    udp.payload().to_vec()
}

#[test]
fn dns_name_compression_loop_is_refused() {
    let rig = Rig::start();
    // A pointer to itself, then a label and a pointer back to the label (a two-step loop).
    let mut self_loop = dns_header(0x1001);
    self_loop.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    let mut two_step = dns_header(0x1002);
    two_step.extend_from_slice(&[1, b'a', 0xc0, 12, 0, 1, 0, 1]);
    for (id, query) in [(0x1001, self_loop), (0x1002, two_step)] {
        let (before, _) = rig.inject(dns_frame(GW, &query));
        // The resolver refuses it as malformed (RFC 1035 §4.1.1: FORMERR) and asks no one.
        let answer = dns_answer(&rig.recv());
        let msg = dns::wire::Message::new_checked(&answer).unwrap();
        assert_eq!(msg.id(), id);
        assert!(msg.is_response());
        assert_eq!(msg.flags() & 0xf, 1, "FORMERR");
        assert_eq!((msg.qdcount(), msg.ancount()), (0, 0));
        let after = rig.wait_stats("the resolver's count", |s| {
            s.dns.resolver.formerr > before.dns.resolver.formerr
        });
        let r = |s: &Stats| s.dns.resolver;
        assert_eq!(
            r(&after),
            dns::ResolverCounters {
                queries: r(&before).queries + 1,
                formerr: r(&before).formerr + 1,
                ..r(&before)
            }
        );
        assert!(drop_delta(&before, &after).is_empty());
    }
    rig.assert_serves();
    rig.assert_dns_serves();
}

// Replies at a small MTU.

#[test]
fn echo_reply_past_a_small_mtu_is_fragmented() {
    let rig = Rig::with(RuntimeConfig {
        mtu: 576,
        ..RuntimeConfig::default()
    });
    // A frame larger than the link allows: the reply must still fit it.
    let data: Vec<u8> = (0..1200u32).map(|i| (i * 5) as u8).collect();
    rig.send(echo_request(GW, &data));
    let mut r = stack::frag::Reassembler::new(stack::frag::Config::default());
    let mut whole = None;
    while whole.is_none() {
        let piece = rig.recv();
        assert!(piece.len() <= ethernet::HEADER_LEN + 576, "{}", piece.len());
        let (eth, body) = split(&piece);
        assert_eq!((eth.src_addr, eth.dst_addr), (GW_MAC, GUEST_MAC));
        whole = r.handle(stack::time::Instant::ZERO, body).unwrap();
    }
    let packet = whole.unwrap().into_packet();
    let ip = Ipv4Packet::new_checked(&packet[..]).unwrap();
    let icmp = Icmpv4Repr::parse(&Icmpv4Packet::new_checked(ip.payload()).unwrap()).unwrap();
    assert!(matches!(icmp, Icmpv4Repr::EchoReply { data: d, .. } if d == &data[..]));
    assert_eq!(rig.rt.stats().gateway.echo_replies, 1);
    rig.assert_serves();
}
