//! The frame builder: frames built over a dirty buffer equal frames built over a clean one
//! (every byte is written), and datagrams longer than the MTU leave as fragments that
//! reassemble to the datagram.

use std::cell::RefCell;
use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::Bytes;
use stack::frag::{Config as FragConfig, Reassembler};
use stack::ingress::{self, Event};
use stack::time::Instant;
use stack::wire::{EthernetAddress, IpAddresses, TcpControl, TcpRepr, TcpSeqNumber, ethernet};

use super::*;

const GW_MAC: EthernetAddress = EthernetAddress([0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xdd]);
const GUEST_MAC: EthernetAddress = EthernetAddress([0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xee]);
const V4: IpAddresses = IpAddresses::V4 {
    src: Ipv4Addr::new(192, 168, 127, 254),
    dst: Ipv4Addr::new(192, 168, 127, 2),
};
const V6: IpAddresses = IpAddresses::V6 {
    src: Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0xfe),
    dst: Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2),
};

/// A sink that builds every frame over a buffer full of garbage, as a link's reused buffer
/// would be.
#[derive(Default)]
struct Dirty(RefCell<Vec<Bytes>>);

impl FrameSink for Dirty {
    fn send_frame(&self, frame: Bytes) -> bool {
        self.0.borrow_mut().push(frame);
        true
    }

    fn send_with(&self, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> bool {
        let mut buf = vec![0xa5u8; len];
        fill(&mut buf);
        self.send_frame(Bytes::from(buf))
    }
}

#[test]
fn frames_built_over_garbage_equal_frames_built_over_zeros() {
    let repr = TcpRepr {
        src_port: 80,
        dst_port: 4000,
        seq_number: TcpSeqNumber(5),
        ack_number: Some(TcpSeqNumber(9)),
        control: TcpControl::Syn,
        max_seg_size: Some(1460),
        window_len: 100,
        ..TcpRepr::default()
    };
    for addrs in [V4, V6] {
        let dirty = Dirty::default();
        let (mut a, mut b) = (Framer::new(GW_MAC), Framer::new(GW_MAC));
        let clean = a
            .tcp(GUEST_MAC, addrs, &repr, (b"", b""))
            .unwrap()
            .into_bytes();
        assert!(
            b.tcp(GUEST_MAC, addrs, &repr, (b"", b""))
                .unwrap()
                .send(&dirty)
        );
        let clean_udp = a.udp(GUEST_MAC, addrs, 1, 2, b"x").unwrap().into_bytes();
        assert!(b.udp(GUEST_MAC, addrs, 1, 2, b"x").unwrap().send(&dirty));
        let quote = [0x45u8; 28];
        let clean_icmp = a
            .unreachable(GUEST_MAC, addrs, true, &quote)
            .unwrap()
            .into_bytes();
        assert!(
            b.unreachable(GUEST_MAC, addrs, true, &quote)
                .unwrap()
                .send(&dirty)
        );
        assert!(
            b.arp_request(
                Ipv4Addr::new(192, 168, 127, 1),
                Ipv4Addr::new(192, 168, 127, 2)
            )
            .send(&dirty)
        );
        let clean_arp = a
            .arp_request(
                Ipv4Addr::new(192, 168, 127, 1),
                Ipv4Addr::new(192, 168, 127, 2),
            )
            .into_bytes();
        let got = dirty.0.borrow();
        assert_eq!(got[0], clean, "TCP");
        assert_eq!(got[1], clean_udp, "UDP, padded with zeros");
        assert_eq!(got[2], clean_icmp, "ICMP error");
        assert_eq!(got[3], clean_arp, "ARP");
        assert!(clean_udp.len() >= 60);
    }
}

/// Reassembles the fragments in `frames` (after their Ethernet headers).
fn reassemble(frames: &[Bytes]) -> Vec<u8> {
    let mut r = Reassembler::new(FragConfig::default());
    let mut whole = None;
    for f in frames {
        let ip = &f[ethernet::HEADER_LEN..];
        if let Some(done) = r.handle(Instant::ZERO, ip).unwrap() {
            whole = Some(done.packet().to_vec());
        }
    }
    whole.expect("the fragments make a datagram")
}

#[test]
fn a_datagram_longer_than_the_mtu_leaves_in_fragments_that_reassemble() {
    let payload: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
    for addrs in [V4, V6] {
        let sink = Dirty::default();
        let mut f = Framer::new(GW_MAC);
        let sent = f.send_udp(&sink, 1500, GUEST_MAC, addrs, 53, 4000, &payload);
        let frames = sink.0.borrow().clone();
        assert_eq!(sent, 3, "3008 bytes of UDP in 1500-byte packets");
        for frame in &frames {
            assert!(
                frame.len() <= 1500 + ethernet::HEADER_LEN,
                "{}",
                frame.len()
            );
        }
        let mut whole = frames[0][..ethernet::HEADER_LEN].to_vec();
        whole.extend_from_slice(&reassemble(&frames));
        let parsed = ingress::parse(&whole, GUEST_MAC).unwrap();
        let Event::Udp {
            udp, payload: got, ..
        } = parsed.event
        else {
            panic!("not UDP")
        };
        assert_eq!((udp.src_port, udp.dst_port), (53, 4000));
        assert_eq!(
            got,
            &payload[..],
            "checksum verified by the parse, data intact"
        );

        let small = Dirty::default();
        assert_eq!(
            f.send_udp(&small, 1500, GUEST_MAC, addrs, 53, 4000, b"hi"),
            1
        );
    }
}

#[test]
fn an_echo_reply_longer_than_the_mtu_leaves_in_fragments() {
    let data = vec![0x5au8; 2972];
    for addrs in [V4, V6] {
        let sink = Dirty::default();
        let mut f = Framer::new(GW_MAC);
        let sent = f.send_echo_reply(&sink, 1500, GUEST_MAC, addrs, (0, 0), (7, 9), &data);
        assert!(sent >= 3, "{sent}");
        let frames = sink.0.borrow().clone();
        let mut whole = frames[0][..ethernet::HEADER_LEN].to_vec();
        whole.extend_from_slice(&reassemble(&frames));
        let parsed = ingress::parse(&whole, GUEST_MAC).unwrap();
        let (ident, seq_no, got) = match parsed.event {
            Event::Icmpv4 {
                icmp:
                    stack::wire::Icmpv4Repr::EchoReply {
                        ident,
                        seq_no,
                        data,
                    },
                ..
            } => (ident, seq_no, data.to_vec()),
            Event::Icmpv6 {
                icmp:
                    stack::wire::Icmpv6Repr::EchoReply {
                        ident,
                        seq_no,
                        data,
                    },
                ..
            } => (ident, seq_no, data.to_vec()),
            other => panic!("not an echo reply: {other:?}"),
        };
        assert_eq!((ident, seq_no, got), (7, 9, data.clone()));
    }
}

#[test]
fn tcp_for_a_link_with_offloads_leaves_its_checksum_and_cutting_to_the_link() {
    use stack::offload::LinkOffloads;
    use stack::wire::VirtioNetGso;
    let data = vec![0x5au8; 5000];
    for (addrs, ip_len, gso) in [(V4, 20, VirtioNetGso::Tcpv4), (V6, 40, VirtioNetGso::Tcpv6)] {
        let mut f = Framer::new(GW_MAC);
        let repr = TcpRepr {
            src_port: 80,
            dst_port: 4000,
            seq_number: TcpSeqNumber(5),
            ack_number: Some(TcpSeqNumber(9)),
            window_len: 100,
            payload_len: data.len(),
            ..TcpRepr::default()
        };
        let tso = LinkOffloads::VIRTIO_NET;
        let built = f
            .tcp_offloaded(
                GUEST_MAC,
                addrs,
                &repr,
                (&data[..2000], &data[2000..]),
                tso,
                1460,
            )
            .unwrap();
        let header = *built.offload().expect("a header for the link");
        assert_eq!(header.gso, gso);
        assert_eq!(header.gso_size, 1460);
        let start = 14 + ip_len;
        assert_eq!(
            header.partial.map(|p| (p.start, p.offset)),
            Some((start as u16, 16))
        );
        assert_eq!(usize::from(header.hdr_len), start + 20);
        let frame = built.into_bytes();
        // Partial: only a parse that trusts the link takes it, and finishing it makes
        // segments of 1460 bytes whose checksums verify.
        assert!(ingress::parse(&frame, GUEST_MAC).is_err());
        assert!(ingress::parse_with(&frame, GUEST_MAC, &header.checksums()).is_ok());
        let mut pieces = Vec::new();
        stack::offload::finish(&frame, &header, &mut Vec::new(), &mut |s| {
            pieces.push(s.to_vec());
        })
        .unwrap();
        assert_eq!(pieces.len(), 4);
        for p in &pieces {
            assert!(ingress::parse(p, GUEST_MAC).is_ok());
        }
        // One MSS or less: the checksum is still the link's, nothing to cut.
        let small = TcpRepr {
            payload_len: 1000,
            ..repr
        };
        let built = f
            .tcp_offloaded(GUEST_MAC, addrs, &small, (&data[..1000], &[]), tso, 1460)
            .unwrap();
        let header = *built.offload().unwrap();
        assert_eq!((header.gso, header.gso_size), (VirtioNetGso::None, 0));
        assert!(header.partial.is_some());
        // No data, or no offloads: an ordinary frame with a checksum of its own.
        let bare = TcpRepr {
            payload_len: 0,
            ..repr
        };
        assert!(
            f.tcp_offloaded(GUEST_MAC, addrs, &bare, (&[], &[]), tso, 1460)
                .unwrap()
                .offload()
                .is_none()
        );
        let plain = f
            .tcp_offloaded(
                GUEST_MAC,
                addrs,
                &small,
                (&data[..1000], &[]),
                LinkOffloads::NONE,
                1460,
            )
            .unwrap();
        assert!(plain.offload().is_none());
        assert!(ingress::parse(&plain.into_bytes(), GUEST_MAC).is_ok());
    }
}
