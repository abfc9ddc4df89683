//! A scanner's probes through one worker: FIN, NULL and Xmas segments of no connection, and
//! the ICMP error a closed host port draws.

use super::limits::seq;
use super::*;
use std::net::TcpStream;

impl Harness {
    /// A segment of no connection from the guest's `src_port` to `dst`, with `control`, no
    /// ACK, and `urgent` as URG with its pointer.
    fn probe(&mut self, src_port: u16, dst: SocketAddr, control: TcpControl, urgent: bool) {
        let IpAddr::V4(dst_ip) = dst.ip() else {
            panic!("IPv4 only here")
        };
        let repr = TcpRepr {
            src_port,
            dst_port: dst.port(),
            seq_number: TcpSeqNumber(4242),
            control,
            psh: urgent,
            urgent_pointer: urgent.then_some(0),
            window_len: 1024,
            ..TcpRepr::default()
        };
        let addrs = IpAddresses::V4 {
            src: GUEST,
            dst: dst_ip,
        };
        let frame = self
            .guest
            .tcp(GW_MAC, addrs, &repr, (&[], &[]))
            .unwrap()
            .into_bytes();
        self.input(frame);
    }
}

#[test]
fn fin_null_and_xmas_probes_of_no_connection_are_dropped() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let open = SocketAddr::from((HOST, listener.local_addr().unwrap().port()));
    let api = SocketAddr::from((Ipv4Addr::new(192, 168, 127, 1), 80));
    let mut h = Harness::new(Config::default());
    // RFC 9293 §3.10.7.2: a listening port drops a segment with neither SYN, ACK nor RST
    // (nmap reads a RST as "closed"); Linux drops SYN+FIN too.
    for dst in [open, api] {
        h.probe(45001, dst, TcpControl::Fin, false);
        h.probe(45002, dst, TcpControl::None, false);
        h.probe(45003, dst, TcpControl::Fin, true);
        h.probe(45004, dst, TcpControl::SynFin, false);
    }
    assert!(h.sink.take().is_empty(), "no answer to a probe");
    let stats = h.stats();
    assert_eq!(
        (stats.tcp_resets_sent, stats.tcp_total),
        (0, 0),
        "{stats:?}"
    );
    assert_eq!(stats.tcp_probes_dropped, 8);
}

#[test]
fn port_unreachable_from_the_host_quotes_the_guests_own_datagram() {
    let closed = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut h = Harness::new(Config::default());
    let addrs = IpAddresses::V4 {
        src: GUEST,
        dst: HOST,
    };
    let data = [0x5au8; 100];
    // A first datagram to another port, so that the quote must be the right one.
    let open = UdpSocket::bind("127.0.0.1:0").unwrap();
    let other = h
        .guest
        .udp(GW_MAC, addrs, 4000, open.local_addr().unwrap().port(), b"x")
        .unwrap()
        .into_bytes();
    h.input(other);
    let sent = h
        .guest
        .udp(GW_MAC, addrs, 4000, closed, &data)
        .unwrap()
        .into_bytes();
    h.input(sent.clone());
    let frames = h.next_frames();
    let Event::Icmpv4 { ip, icmp } = parse_for_guest(&frames[0]).event else {
        panic!("not ICMP")
    };
    assert_eq!((ip.src_addr, ip.dst_addr), (HOST, GUEST));
    // RFC 792: the guest's IP header and the first 8 bytes of its datagram, as it sent them
    // (its identification, TTL and lengths), not a header made up afterwards.
    let quote = &sent[14..14 + 20 + 8];
    assert_eq!(
        icmp,
        stack::wire::Icmpv4Repr::DstUnreachable {
            reason: stack::wire::Icmpv4DstUnreachable::PortUnreachable,
            data: quote,
        }
    );
    assert_eq!(h.stats().udp_port_unreachable, 1);
}

#[test]
fn urgent_data_is_delivered_inline_and_counted() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let dst = SocketAddr::from((HOST, listener.local_addr().unwrap().port()));
    let mut h = Harness::new(Config::default());
    h.syn(46000, dst);
    let frames = h.next_frames();
    let (_, syn_ack) = tcp_of(&frames[0]);
    assert_eq!(syn_ack.control, TcpControl::Syn);
    let (mut peer, _) = listener.accept().unwrap();
    // hping3 -U: "abc" with URG, the urgent pointer after its last byte.
    let repr = TcpRepr {
        src_port: 46000,
        dst_port: dst.port(),
        seq_number: TcpSeqNumber(1001),
        ack_number: Some(syn_ack.seq_number + 1),
        psh: true,
        urgent_pointer: Some(3),
        window_len: 65535,
        payload_len: 3,
        ..TcpRepr::default()
    };
    let addrs = IpAddresses::V4 {
        src: GUEST,
        dst: HOST,
    };
    let frame = h
        .guest
        .tcp(GW_MAC, addrs, &repr, (b"abc", &[]))
        .unwrap()
        .into_bytes();
    h.input(frame);
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    while got.len() < 3 {
        h.wait(Duration::from_millis(20));
        let mut buf = [0u8; 16];
        match std::io::Read::read(&mut peer, &mut buf) {
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(got, b"abc", "the urgent byte in its place in the stream");
    assert_eq!(h.stats().tcp_urgent, 1);
}

#[test]
fn forwarded_echo_of_any_code_is_answered_with_the_requests_tos() {
    let mut h = Harness::new(Config::default());
    let request = stack::wire::Icmpv4Repr::EchoRequest {
        ident: 0x5151,
        seq_no: 3,
        data: b"tos",
    };
    let addrs = IpAddresses::V4 {
        src: GUEST,
        dst: HOST,
    };
    // nmap's OS detection: code 9, and a TOS.
    let frame = h
        .guest
        .ip_tos(
            GW_MAC,
            addrs,
            stack::wire::IpProtocol::Icmp,
            (46, 1),
            request.buffer_len(),
            8,
            |l4| {
                let mut p = stack::wire::Icmpv4Packet::new_unchecked(l4);
                request.emit(&mut p);
                p.set_msg_code(9);
                p.fill_checksum();
            },
        )
        .unwrap()
        .into_bytes();
    h.input(frame);
    if h.stats().icmp_no_socket > 0 {
        crate::skip::skipped(
            "forwarder::forwarded_echo_of_any_code_is_answered_with_the_requests_tos",
            "neither ping sockets nor raw sockets here",
        );
        return;
    }
    let frames = h.next_frames();
    let Event::Icmpv4 { ip, icmp } = parse_for_guest(&frames[0]).event else {
        panic!("not ICMP")
    };
    assert_eq!((ip.src_addr, ip.dst_addr), (HOST, GUEST));
    assert_eq!((ip.dscp, ip.ecn), (46, 1), "the request's TOS");
    assert_eq!(
        icmp,
        stack::wire::Icmpv4Repr::EchoReply {
            ident: 0x5151,
            seq_no: 3,
            data: b"tos"
        }
    );
}

impl Harness {
    /// Opens a connection from the guest's `src_port` to `listener` on the host and
    /// completes the handshake: the host's end, and the guest's next sequence number and
    /// the host's.
    fn connect_to(&mut self, listener: &TcpListener, src_port: u16) -> (TcpStream, u32, u32) {
        let dst = SocketAddr::from((HOST, listener.local_addr().unwrap().port()));
        self.syn(src_port, dst);
        let (_, syn_ack) = tcp_of(&self.next_frames()[0]);
        assert_eq!(syn_ack.control, TcpControl::Syn);
        let (peer, _) = listener.accept().unwrap();
        let (ours, theirs) = (1001, syn_ack.seq_number.0.wrapping_add(1));
        self.segment(
            GUEST,
            src_port,
            dst,
            ours,
            Some(theirs),
            TcpControl::None,
            b"",
        );
        (peer, ours, theirs)
    }
}

#[test]
fn urgent_data_from_the_host_does_not_hold_back_what_follows_it() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut h = Harness::new(Config::default());
    let (peer, _, _) = h.connect_to(&listener, 46001);
    // All of it waits in the host socket before the worker looks: a read stops short at the
    // urgent mark (the byte itself is out of band), and only the urgent flag on the event
    // says that "def" is still behind it, with nothing more ever to arrive.
    let peer = socket2::SockRef::from(&peer);
    peer.send(b"abc").unwrap();
    peer.send_out_of_band(b"!").unwrap();
    peer.send(b"def").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    let mut got = Vec::new();
    while got.len() < 6 && std::time::Instant::now() < deadline {
        h.wait(Duration::from_millis(20));
        for frame in h.sink.take() {
            if let Event::Tcp { payload, .. } = parse_for_guest(&frame).event {
                got.extend_from_slice(payload);
            }
        }
    }
    assert_eq!(got, b"abcdef", "the stream without its out-of-band byte");
}

/// A ping-pong restarts the retransmission timer with every request answered; the timer
/// queue must not keep an entry for each restart. Stale entries falling due woke a worker
/// for nothing, thousands of times a second once the queue was allowed to grow with the
/// table (14,000 flows in TIME-WAIT), and each wake-up cost the next round trip its
/// polling (benches/RESULTS.md, "Timers after a burst of connections").
#[test]
fn a_timer_restarted_by_every_round_trip_is_queued_once() {
    use std::io::{Read, Write};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut h = Harness::new(Config::default());
    let (mut peer, mut ours, mut theirs) = h.connect_to(&listener, 46002);
    peer.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let dst = SocketAddr::from((HOST, listener.local_addr().unwrap().port()));
    let rounds = 200;
    for _ in 0..rounds {
        h.segment(
            GUEST,
            46002,
            dst,
            ours,
            Some(theirs),
            TcpControl::None,
            b"ping",
        );
        ours = ours.wrapping_add(4);
        let mut ping = [0; 4];
        peer.read_exact(&mut ping).unwrap();
        peer.write_all(b"pong").unwrap();
        let mut answered = false;
        while !answered {
            for frame in h.next_frames() {
                let (_, tcp) = tcp_of(&frame);
                if let Event::Tcp { payload, .. } = parse_for_guest(&frame).event
                    && !payload.is_empty()
                {
                    assert_eq!(payload, b"pong");
                    theirs = seq(&tcp).wrapping_add(4);
                    answered = true;
                }
            }
        }
    }
    let queued = h.fwd.tcp.queued_timers();
    assert!(
        queued <= 8,
        "{queued} timer entries after {rounds} round trips"
    );
}
