use super::*;
use crate::ingress::{self, Event};
use crate::wire::checksum::ChecksumCapabilities;
use crate::wire::tcp::{Control, SeqNumber};
use crate::wire::virtio_net::PartialChecksum;
use crate::wire::{
    EtherType, EthernetAddress, EthernetFrame, EthernetRepr, IpProtocol, Ipv4Repr, Ipv6Repr,
    TcpRepr, UdpRepr,
};
use proptest::prelude::*;

const GATEWAY: EthernetAddress = EthernetAddress([0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xdd]);
const GUEST: EthernetAddress = EthernetAddress([0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xee]);

fn v4() -> Addresses {
    Addresses::V4 {
        src: [192, 168, 127, 2].into(),
        dst: [192, 168, 127, 1].into(),
    }
}

fn v6() -> Addresses {
    Addresses::V6 {
        src: "fd00::2".parse().unwrap(),
        dst: "fd00::1".parse().unwrap(),
    }
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// An Ethernet frame from the guest to the gateway carrying `l4` (the transport header and
/// payload, written by `fill`), with IP identification 0xfff0 for IPv4.
fn frame(
    addrs: Addresses,
    protocol: IpProtocol,
    l4_len: usize,
    fill: impl FnOnce(&mut [u8]),
) -> Vec<u8> {
    let (ethertype, ip_len) = match addrs {
        Addresses::V4 { .. } => (EtherType::Ipv4, 20),
        Addresses::V6 { .. } => (EtherType::Ipv6, 40),
    };
    let mut buf = vec![0u8; 14 + ip_len + l4_len];
    EthernetRepr {
        src_addr: GUEST,
        dst_addr: GATEWAY,
        ethertype,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
    let (ip, l4) = buf[14..].split_at_mut(ip_len);
    fill(l4);
    match addrs {
        Addresses::V4 { src, dst } => Ipv4Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: protocol,
            payload_len: l4_len,
            hop_limit: 64,
            ident: 0xfff0,
            dont_frag: true,
            more_frags: false,
            frag_offset: 0,
            dscp: 0,
            ecn: 0,
        }
        .emit(&mut Ipv4Packet::new_unchecked(ip)),
        Addresses::V6 { src, dst } => Ipv6Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: protocol,
            payload_len: l4_len,
            hop_limit: 64,
            dscp: 0,
            ecn: 0,
            flow_label: 0,
        }
        .emit(&mut Ipv6Packet::new_unchecked(ip)),
    }
    buf
}

/// A TCP super-segment with a partial checksum, as a guest's kernel hands it over, and its
/// header.
fn tcp_super(
    addrs: Addresses,
    payload: &[u8],
    mss: u16,
    fin: bool,
    cwr: bool,
) -> (Vec<u8>, VirtioNetRepr) {
    let repr = TcpRepr {
        src_port: 40000,
        dst_port: 80,
        seq_number: SeqNumber(0xffff_f000),
        ack_number: Some(SeqNumber(7)),
        control: if fin { Control::Fin } else { Control::None },
        psh: true,
        window_len: 1000,
        payload_len: payload.len(),
        sack_permitted: false,
        ..TcpRepr::default()
    };
    let header = repr.buffer_len();
    let f = frame(addrs, IpProtocol::Tcp, header + payload.len(), |l4| {
        l4[header..].copy_from_slice(payload);
        let mut packet = TcpPacket::new_unchecked(l4);
        repr.emit_with(&mut packet, &addrs, &ChecksumCapabilities::tcp_offloaded());
        // Set after the partial sum, which covers only the pseudo-header.
        packet.set_cwr(cwr);
    });
    let start = f.len() - header - payload.len();
    let v = VirtioNetRepr {
        partial: Some(PartialChecksum {
            start: start as u16,
            offset: 16,
        }),
        gso: match addrs {
            Addresses::V4 { .. } => Gso::Tcpv4,
            Addresses::V6 { .. } => Gso::Tcpv6,
        },
        gso_size: mss,
        hdr_len: (start + header) as u16,
        ..VirtioNetRepr::PLAIN
    };
    (f, v)
}

fn finish_all(frame: &[u8], header: &VirtioNetRepr) -> Result<Vec<Vec<u8>>, FinishError> {
    let mut out = Vec::new();
    let mut scratch = Vec::new();
    let n = finish(frame, header, &mut scratch, &mut |f| out.push(f.to_vec()))?;
    assert_eq!(n, out.len());
    Ok(out)
}

/// Parses each frame with every checksum verified; returns (seq, flags, payload) of each.
fn tcp_segments(frames: &[Vec<u8>]) -> Vec<(SeqNumber, TcpRepr, Vec<u8>, Vec<u8>)> {
    frames
        .iter()
        .map(|f| {
            let parsed =
                ingress::parse(f, GATEWAY).expect("each segment parses, checksums verified");
            let Event::Tcp { tcp, payload, .. } = parsed.event else {
                panic!("not TCP: {:?}", parsed.event);
            };
            let raw =
                TcpPacket::new_checked(&f[f.len() - payload.len() - tcp.buffer_len()..]).unwrap();
            let flags = vec![u8::from(raw.cwr())];
            (tcp.seq_number, tcp, payload.to_vec(), flags)
        })
        .collect()
}

#[test]
fn a_tcp_super_segment_becomes_mss_sized_segments_with_their_own_headers() {
    for addrs in [v4(), v6()] {
        let payload = data(4500);
        let (f, h) = tcp_super(addrs, &payload, 1000, true, true);
        // The super-segment's own checksum is partial: a full check refuses it, and a parse
        // that trusts the link takes it as one segment.
        assert!(ingress::parse(&f, GATEWAY).is_err());
        let whole = ingress::parse_with(&f, GATEWAY, &h.checksums()).unwrap();
        assert!(matches!(whole.event, Event::Tcp { payload: got, .. } if got == &payload[..]));
        let frames = finish_all(&f, &h).unwrap();
        assert_eq!(frames.len(), 5);
        let segs = tcp_segments(&frames);
        let mut joined = Vec::new();
        for (i, (seq, tcp, chunk, cwr)) in segs.iter().enumerate() {
            assert_eq!(
                *seq,
                SeqNumber(0xffff_f000) + i * 1000,
                "sequence numbers run on"
            );
            let last = i == 4;
            assert_eq!(tcp.control == Control::Fin, last, "FIN on the last only");
            assert_eq!(tcp.psh, last, "PSH on the last only");
            assert_eq!(cwr[0] == 1, i == 0, "CWR on the first only");
            assert_eq!(chunk.len(), if last { 500 } else { 1000 });
            joined.extend_from_slice(chunk);
        }
        assert_eq!(joined, payload);
        if let Addresses::V4 { .. } = addrs {
            let idents: Vec<u16> = frames
                .iter()
                .map(|f| Ipv4Packet::new_checked(&f[14..]).unwrap().ident())
                .collect();
            assert_eq!(idents, [0xfff0, 0xfff1, 0xfff2, 0xfff3, 0xfff4]);
        }
    }
}

#[test]
fn a_partial_checksum_alone_is_completed() {
    for addrs in [v4(), v6()] {
        let payload = data(333);
        let (f, mut h) = tcp_super(addrs, &payload, 1000, false, false);
        h.gso = Gso::None;
        h.gso_size = 0;
        let frames = finish_all(&f, &h).unwrap();
        assert_eq!(frames.len(), 1);
        let segs = tcp_segments(&frames);
        assert_eq!(segs[0].2, payload);
        // Only the checksum changed.
        let at = usize::from(h.partial.unwrap().start) + 16;
        assert_eq!(frames[0][..at], f[..at]);
        assert_eq!(frames[0][at + 2..], f[at + 2..]);
    }
}

#[test]
fn a_frame_without_offloads_passes_unchanged() {
    let (f, _) = tcp_super(v4(), &data(10), 1000, false, false);
    assert_eq!(finish_all(&f, &VirtioNetRepr::PLAIN).unwrap(), vec![f]);
}

#[test]
fn a_udp_super_datagram_becomes_datagrams() {
    for addrs in [v4(), v6()] {
        let payload = data(3000);
        let repr = UdpRepr {
            src_port: 5000,
            dst_port: 53,
            payload_len: payload.len(),
        };
        let f = frame(addrs, IpProtocol::Udp, 8 + payload.len(), |l4| {
            l4[8..].copy_from_slice(&payload);
            repr.emit(&mut UdpPacket::new_unchecked(&mut l4[..]), &addrs);
            // As a guest's kernel leaves it: the pseudo-header's sum only.
            l4[6] = 0x12;
            l4[7] = 0x34;
        });
        let h = VirtioNetRepr {
            partial: Some(PartialChecksum {
                start: (f.len() - 8 - payload.len()) as u16,
                offset: 6,
            }),
            gso: Gso::Udp,
            gso_size: 1200,
            ..VirtioNetRepr::PLAIN
        };
        let frames = finish_all(&f, &h).unwrap();
        assert_eq!(frames.len(), 3);
        let mut joined = Vec::new();
        for f in &frames {
            let parsed = ingress::parse(f, GATEWAY).expect("each datagram verifies");
            let Event::Udp { udp, payload, .. } = parsed.event else {
                panic!("not UDP");
            };
            assert_eq!((udp.src_port, udp.dst_port), (5000, 53));
            joined.extend_from_slice(payload);
        }
        assert_eq!(joined, payload);
    }
}

#[test]
fn a_tiny_segment_size_is_refused_not_multiplied() {
    let (f, mut h) = tcp_super(v4(), &data(3000), 1, false, false);
    h.gso_size = 1;
    assert_eq!(finish_all(&f, &h), Err(FinishError::TooManySegments));
    h.gso_size = 12;
    assert_eq!(finish_all(&f, &h).unwrap().len(), 250);
}

#[test]
fn a_header_that_does_not_fit_the_frame_is_refused() {
    let (f, h) = tcp_super(v4(), &data(3000), 1000, false, false);
    let wrong = VirtioNetRepr {
        gso: Gso::Tcpv6,
        ..h
    };
    assert_eq!(
        finish_all(&f, &wrong),
        Err(FinishError::Header(HeaderError::GsoMismatch))
    );
    // An IPv4 total length past the frame: malformed, not a panic.
    let mut short = f.clone();
    short.truncate(100);
    assert_eq!(finish_all(&short, &h), Err(FinishError::Malformed));
}

#[test]
fn link_offloads_size_segments() {
    let none = LinkOffloads::NONE;
    let tap = LinkOffloads::VIRTIO_NET;
    assert_eq!(none.max_tcp_payload(&v4(), 1460), 1460);
    assert_eq!(tap.max_tcp_payload(&v4(), 1460), MAX_SUPER_PAYLOAD);
    assert_eq!(tap.max_tcp_payload(&v6(), 100), 100 * MAX_SEGMENTS);
    let v4_only = LinkOffloads { tso6: false, ..tap };
    assert_eq!(v4_only.max_tcp_payload(&v6(), 1440), 1440);
    // A stream whose 2-byte length also carries the 12-byte header.
    let framed = tap.within_frame(65535 - 12);
    assert_eq!(
        framed.max_tcp_payload(&v6(), 1440),
        65535 - 12 - 14 - 40 - 60
    );
    assert_eq!(tap.within_frame(200_000), tap);
    assert_eq!(framed.within_frame(0).max_tcp_payload(&v4(), 1460), 1460);
}

proptest! {
    #[test]
    fn any_super_segment_cuts_into_segments_that_rejoin(
        len in 0usize..20000, mss in 1u16..3000, v6_family in any::<bool>(), fin in any::<bool>()
    ) {
        let addrs = if v6_family { v6() } else { v4() };
        let payload = data(len);
        let (f, h) = tcp_super(addrs, &payload, mss, fin, false);
        match finish_all(&f, &h) {
            Err(FinishError::TooManySegments) => {
                prop_assert!(len.div_ceil(usize::from(mss)) > MAX_SEGMENTS);
            }
            Err(e) => prop_assert!(false, "{e}"),
            Ok(frames) => {
                let segs = tcp_segments(&frames);
                let joined: Vec<u8> = segs.iter().flat_map(|s| s.2.clone()).collect();
                prop_assert_eq!(joined, payload);
                prop_assert!(segs.iter().all(|s| s.2.len() <= usize::from(mss)));
                prop_assert_eq!(segs.last().unwrap().1.control == Control::Fin, fin);
            }
        }
    }

    #[test]
    fn any_frame_and_header_never_panic(
        frame in proptest::collection::vec(any::<u8>(), 0..300),
        header in proptest::collection::vec(any::<u8>(), 12..13),
        ethertype in 0usize..3, fix in any::<bool>()
    ) {
        let mut frame = frame;
        if fix && frame.len() > 34 {
            frame[12..14].copy_from_slice(&[[0x08, 0], [0x86, 0xdd], [0x08, 0x06]][ethertype]);
            frame[14] = if ethertype == 1 { 0x60 } else { 0x45 };
        }
        let header = crate::wire::VirtioNetHeader::new_checked(&header[..]).unwrap();
        if let Ok(repr) = VirtioNetRepr::parse(&header) {
            let mut scratch = Vec::new();
            let mut total = 0usize;
            let _ = finish(&frame, &repr, &mut scratch, &mut |f| total += f.len());
            // Never more out than the bound allows.
            prop_assert!(total <= (frame.len() + 100) * MAX_SEGMENTS);
        }
    }
}
