//! Hostile virtio-net headers through the running pipeline's TAP path. A `SOCK_SEQPACKET`
//! socket pair stands in for a TAP queue opened with offloads (one message per frame, the
//! 12-byte header first, as the kernel reads and writes a queue), served by a worker like
//! any TAP queue; the test writes what a hostile peer could.
//!
//! A header that does not parse, or does not fit its frame, drops the frame under the one
//! reason that names it and nothing else happens; the next valid request is answered, with a
//! zero header. A header that parses is believed only as far as it vouches: the TCP and UDP
//! checksums of a `NEEDS_CSUM` or `DATA_VALID` frame are not verified, the IPv4 header's and
//! ICMP's still are. A TCP super-segment reaches the flows as one segment; a UDP
//! super-datagram as its datagrams, and one that would make too many is refused.

use std::os::fd::OwnedFd;

use super::*;
use crate::gateway::testing::{
    GUEST, GUEST_MAC, GW, GW_MAC, HOST, arp_request, echo_request, frame, ipv4, parse_arp, tcp_syn,
    udp_datagram,
};
use crate::tap::{Tap, TapOffloads};
use forwarder::WorkerStats;
use socket2::{Domain, Socket, Type};
use stack::ingress::DropReason;
use stack::wire::{
    ArpOperation, EtherType, IpAddresses, IpProtocol, Ipv4Error, TcpError, TcpPacket, TcpRepr,
    TcpSeqNumber, VirtioNetError, ethernet, ipv4,
};

const WAIT: Duration = Duration::from_secs(5);
const ALL: TapOffloads = TapOffloads {
    vnet_hdr: true,
    checksum: true,
    tso4: true,
    tso6: true,
    uso: true,
};

/// A runtime serving one stand-in TAP queue, and the peer's end of it.
struct Rig {
    rt: Runtime,
    peer: Socket,
}

impl Rig {
    fn start() -> Rig {
        let rt = Runtime::start(super::tests::quiet(RuntimeConfig {
            workers: 1,
            ..RuntimeConfig::default()
        }))
        .unwrap();
        let (ours, peer) = Socket::pair(Domain::UNIX, Type::SEQPACKET, None).unwrap();
        peer.set_read_timeout(Some(WAIT)).unwrap();
        let tap = Tap::standing_in(OwnedFd::from(ours), ALL);
        rt.attacher()
            .board()
            .attach_tap("tap:stand-in", vec![tap], 1500)
            .unwrap();
        Rig { rt, peer }
    }

    /// Writes one message: `header` (whatever its length) then `frame`.
    fn send(&self, header: &[u8], frame: &[u8]) {
        let message = [header, frame].concat();
        assert_eq!(self.peer.send(&message).unwrap(), message.len());
    }

    /// The next frame for the guest, and its header.
    fn recv(&self) -> ([u8; 12], Vec<u8>) {
        use std::io::Read;
        let mut buf = vec![0u8; 70_000];
        let n = (&self.peer).read(&mut buf).expect("a frame for the guest");
        let (header, frame) = buf[..n].split_at(12);
        (header.try_into().unwrap(), frame.to_vec())
    }

    /// Sends and waits until `done` accepts the stats.
    fn inject(
        &self,
        header: &[u8],
        frame: &[u8],
        what: &str,
        done: impl Fn(&Stats, &Stats) -> bool,
    ) -> (Stats, Stats) {
        let before = self.rt.stats();
        self.send(header, frame);
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let after = self.rt.stats();
            if done(&before, &after) {
                return (before, after);
            }
            assert!(std::time::Instant::now() < deadline, "timed out: {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends a frame whose header must be refused for `reason`: that drop and no other, and
    /// the gateway never saw it.
    fn expect_refused(&self, header: &[u8], frame: &[u8], reason: VirtioNetError) {
        let reason = DropReason::VirtioNet(reason);
        let (before, after) = self.inject(header, frame, "the header's drop", |b, a| {
            a.drops.get(reason) > b.drops.get(reason)
        });
        assert_eq!(drop_delta(&before, &after), [(reason, 1)], "{reason}");
        assert_eq!(after.gateway, before.gateway, "the gateway never saw it");
    }

    /// A valid ARP request with a zero header is answered, with a zero header, and that is
    /// the next frame the guest gets.
    fn assert_serves(&self) {
        self.send(&[0; 12], &arp_request(GW, GUEST));
        let (header, reply) = self.recv();
        assert_eq!(header, [0; 12]);
        let (eth, arp) = parse_arp(&reply);
        assert_eq!((eth.src_addr, eth.dst_addr), (GW_MAC, GUEST_MAC));
        assert_eq!(arp.operation, ArpOperation::Reply);
    }
}

fn drop_delta(before: &Stats, after: &Stats) -> Vec<(DropReason, u64)> {
    DropReason::ALL
        .iter()
        .map(|&r| (r, after.drops.get(r) - before.drops.get(r)))
        .filter(|&(_, n)| n != 0)
        .collect()
}

fn total(s: &Stats, f: fn(&WorkerStats) -> u64) -> u64 {
    s.workers.iter().map(f).sum()
}

/// A virtio-net header: flags, GSO type, GSO size, checksum start and offset.
fn vnet(flags: u8, gso_type: u8, gso_size: u16, start: u16, offset: u16) -> [u8; 12] {
    let mut h = [0u8; 12];
    h[0] = flags;
    h[1] = gso_type;
    h[4..6].copy_from_slice(&gso_size.to_le_bytes());
    h[6..8].copy_from_slice(&start.to_le_bytes());
    h[8..10].copy_from_slice(&offset.to_le_bytes());
    h
}

const NEEDS_CSUM: u8 = 1;
const DATA_VALID: u8 = 2;
const TCPV4: u8 = 1;
const TCPV6: u8 = 4;
const UDP_L4: u8 = 5;
/// Where a TCP or UDP header starts in an IPv4 frame without options.
const L4: u16 = (ethernet::HEADER_LEN + ipv4::HEADER_LEN) as u16;

/// A TCP segment with `data` from the guest to the host's address, its checksum left as a
/// guest's kernel leaves it for the offload: whatever it was (here: garbage).
fn tcp_data(data: &[u8]) -> Vec<u8> {
    let repr = TcpRepr {
        src_port: 40000,
        dst_port: 80,
        seq_number: TcpSeqNumber(9),
        ack_number: Some(TcpSeqNumber(1)),
        window_len: 100,
        payload_len: data.len(),
        ..TcpRepr::default()
    };
    let mut b = vec![0u8; repr.buffer_len() + data.len()];
    b[repr.buffer_len()..].copy_from_slice(data);
    repr.emit(
        &mut TcpPacket::new_unchecked(&mut b[..]),
        &IpAddresses::V4 {
            src: GUEST,
            dst: HOST,
        },
    );
    b[16] ^= 0x5a;
    frame(
        GUEST_MAC,
        GW_MAC,
        EtherType::Ipv4,
        &ipv4(GUEST, HOST, IpProtocol::Tcp, &b),
    )
}

#[test]
fn headers_that_do_not_parse_or_fit_are_dropped_and_counted() {
    let rig = Rig::start();
    let syn = tcp_syn(HOST, 80);
    let cases: [(&[u8], &[u8], VirtioNetError); 10] = [
        (&[0; 5], &[], VirtioNetError::Truncated),
        (&vnet(0x04, 0, 0, 0, 0), &syn, VirtioNetError::UnknownFlags),
        (
            &vnet(NEEDS_CSUM, 3, 1400, L4, 16),
            &syn,
            VirtioNetError::UnknownGsoType,
        ),
        (
            &vnet(NEEDS_CSUM, 0x80 | UDP_L4, 1400, L4, 6),
            &syn,
            VirtioNetError::UnknownGsoType,
        ),
        (
            &vnet(0, TCPV4, 1400, 0, 0),
            &syn,
            VirtioNetError::GsoWithoutChecksum,
        ),
        (
            &vnet(NEEDS_CSUM, TCPV4, 0, L4, 16),
            &syn,
            VirtioNetError::ZeroGsoSize,
        ),
        (
            &vnet(NEEDS_CSUM, 0, 0, L4, 40_000),
            &syn,
            VirtioNetError::BadChecksumOffset,
        ),
        (
            &vnet(NEEDS_CSUM, 0, 0, 2, 0),
            &syn,
            VirtioNetError::BadChecksumOffset,
        ),
        (
            &vnet(NEEDS_CSUM, TCPV6, 1400, L4, 16),
            &syn,
            VirtioNetError::GsoMismatch,
        ),
        (
            &vnet(NEEDS_CSUM, UDP_L4, 1400, L4, 16),
            &syn,
            VirtioNetError::GsoMismatch,
        ),
    ];
    for (header, frame, reason) in cases {
        rig.expect_refused(header, frame, reason);
    }
    // A TSO header on an ARP frame.
    rig.expect_refused(
        &vnet(NEEDS_CSUM, TCPV4, 1400, 20, 2),
        &arp_request(GW, GUEST),
        VirtioNetError::GsoMismatch,
    );
    rig.assert_serves();
}

#[test]
fn a_vouched_transport_checksum_is_not_verified_and_the_rest_still_is() {
    let rig = Rig::start();
    let segment = tcp_data(b"hello");
    // Without a header that vouches, the bad TCP checksum drops it.
    let (before, after) = rig.inject(&[0; 12], &segment, "a checksum drop", |b, a| {
        a.gateway.frames > b.gateway.frames
    });
    assert_eq!(
        drop_delta(&before, &after),
        [(DropReason::Tcp(TcpError::BadChecksum), 1)]
    );
    // NEEDS_CSUM or DATA_VALID: the segment is a flow's (no forwarder here to take it).
    for header in [vnet(NEEDS_CSUM, 0, 0, L4, 16), vnet(DATA_VALID, 0, 0, 0, 0)] {
        let (before, after) = rig.inject(&header, &segment, "a flow packet", |b, a| {
            a.gateway.flows > b.gateway.flows
        });
        assert_eq!(drop_delta(&before, &after), [(DropReason::NoForwarder, 1)]);
    }
    // The IPv4 header's checksum is always verified.
    let mut bad_ip = segment.clone();
    bad_ip[ethernet::HEADER_LEN + 10] ^= 0xff;
    let (before, after) = rig.inject(
        &vnet(DATA_VALID, 0, 0, 0, 0),
        &bad_ip,
        "an IPv4 drop",
        |b, a| a.gateway.frames > b.gateway.frames,
    );
    assert_eq!(
        drop_delta(&before, &after),
        [(DropReason::Ipv4(Ipv4Error::BadChecksum), 1)]
    );
    // So is ICMP's: a broken echo request under NEEDS_CSUM is not answered.
    let mut echo = echo_request(GW, b"ping");
    echo[usize::from(L4) + 2] ^= 0xff;
    let (before, after) = rig.inject(
        &vnet(NEEDS_CSUM, 0, 0, L4, 2),
        &echo,
        "an ICMP drop",
        |b, a| a.gateway.frames > b.gateway.frames,
    );
    assert_eq!(drop_delta(&before, &after).len(), 1);
    assert_eq!(after.gateway.echo_replies, before.gateway.echo_replies);
    rig.assert_serves();
}

#[test]
fn a_tcp_super_segment_is_one_segment() {
    let rig = Rig::start();
    let data = vec![7u8; 4000];
    let (before, after) = rig.inject(
        &vnet(NEEDS_CSUM, TCPV4, 1000, L4, 16),
        &tcp_data(&data),
        "the super-segment",
        |b, a| a.gateway.flows > b.gateway.flows,
    );
    assert_eq!(after.gateway.flows, before.gateway.flows + 1);
    assert_eq!(drop_delta(&before, &after), [(DropReason::NoForwarder, 1)]);
    assert_eq!(
        total(&after, |w| w.super_in),
        total(&before, |w| w.super_in) + 1
    );
    assert_eq!(
        total(&after, |w| w.finished),
        total(&before, |w| w.finished)
    );
    rig.assert_serves();
}

#[test]
fn a_udp_super_datagram_becomes_its_datagrams_within_bounds() {
    let rig = Rig::start();
    let data: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
    let datagram = frame(
        GUEST_MAC,
        GW_MAC,
        EtherType::Ipv4,
        &udp_datagram(GUEST, HOST, 5000, 7, &data),
    );
    let (before, after) = rig.inject(
        &vnet(NEEDS_CSUM, UDP_L4, 1000, L4, 6),
        &datagram,
        "three datagrams",
        |b, a| a.gateway.flows >= b.gateway.flows + 3,
    );
    assert_eq!(after.gateway.flows, before.gateway.flows + 3);
    assert_eq!(drop_delta(&before, &after), [(DropReason::NoForwarder, 3)]);
    assert_eq!(
        total(&after, |w| w.finished_frames),
        total(&before, |w| w.finished_frames) + 3
    );
    // One-byte datagrams would be 3000 frames out of one: refused.
    let (before, after) = rig.inject(
        &vnet(NEEDS_CSUM, UDP_L4, 1, L4, 6),
        &datagram,
        "the refusal",
        |b, a| a.drops.total() > b.drops.total(),
    );
    assert_eq!(
        drop_delta(&before, &after),
        [(DropReason::SuperSegmentRefused, 1)]
    );
    assert_eq!(after.gateway.flows, before.gateway.flows);
    rig.assert_serves();
}
