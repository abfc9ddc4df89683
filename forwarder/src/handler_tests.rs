//! One worker's [`Forwarder`] driven directly: guest frames in (built with a [`Framer`]
//! standing in for the guest), frames for the guest captured, real host sockets on
//! 127.0.0.1. Covers the address translation in replies, the frame builders, and the bounded
//! tables with their counters.

use super::*;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::sync::Mutex;

use stack::ingress::{self, Event};
use stack::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetFrame, IpAddresses, TcpControl, TcpRepr, TcpSeqNumber,
};

use crate::control::{ExposeError, Protocol};
use crate::stats::ForwarderStats;
use crate::worker::{Readiness, WorkerCounters};
use bytes::Bytes;
use stack::offload::LinkOffloads;
use stack::time::Epoch;
use stack::wire::VirtioNetRepr;

const GW_MAC: EthernetAddress = EthernetAddress([0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xdd]);
const GUEST_MAC: EthernetAddress = EthernetAddress([0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xee]);
const GUEST: Ipv4Addr = Ipv4Addr::new(192, 168, 127, 2);
const HOST: Ipv4Addr = Ipv4Addr::new(192, 168, 127, 254);

struct WakeNotify(mio::Waker);

impl crate::worker::Notify for WakeNotify {
    fn notify(&self) {
        let _ = self.0.wake();
    }
}

#[derive(Default)]
struct Sink(Mutex<Vec<Bytes>>, Mutex<Vec<(Bytes, VirtioNetRepr)>>);

impl FrameSink for Sink {
    fn send_frame(&self, frame: Bytes) -> bool {
        self.0.lock().map(|mut v| v.push(frame)).is_ok()
    }

    /// Kept as sent, with its header, apart from the plain frames.
    fn send_offloaded(
        &self,
        len: usize,
        header: &VirtioNetRepr,
        fill: &mut dyn FnMut(&mut [u8]),
    ) -> bool {
        let mut buf = vec![0u8; len];
        fill(&mut buf);
        self.1
            .lock()
            .map(|mut v| v.push((Bytes::from(buf), *header)))
            .is_ok()
    }
}

impl Sink {
    fn take(&self) -> Vec<Bytes> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

struct Harness {
    fwd: Forwarder,
    /// The worker's poller, which the loop would own.
    poll: mio::Poll,
    events: mio::Events,
    sink: Sink,
    guest: Framer,
    epoch: Epoch,
    /// What the guest's link does for us, as its frames say.
    offloads: LinkOffloads,
}

impl Harness {
    fn new(config: Config) -> Harness {
        let epoch = Epoch::new(std::time::Instant::now());
        let poll = mio::Poll::new().unwrap();
        let waker = Arc::new(WakeNotify(
            mio::Waker::new(poll.registry(), mio::Token(0)).unwrap(),
        ));
        let ctx = WorkerContext {
            index: 0,
            workers: 1,
            seed: 7,
            epoch,
            mtu: 1500,
            gateway_mac: GW_MAC,
            counters: Arc::new(WorkerCounters::default()),
            notify: waker,
        };
        let guest = IpAddr::V4(GUEST);
        let control = Control::new(guest, &[(guest, GUEST_MAC)]);
        Harness {
            fwd: Forwarder::new(&ctx, poll.registry(), Arc::new(config), control).unwrap(),
            poll,
            events: mio::Events::with_capacity(64),
            sink: Sink::default(),
            // Frames "from the guest": a framer whose own MAC is the guest's.
            guest: Framer::new(GUEST_MAC),
            epoch,
            offloads: LinkOffloads::NONE,
        }
    }

    fn now(&self) -> Instant {
        self.epoch.instant(std::time::Instant::now())
    }

    /// What the worker's loop does: waits at most `timeout` for readiness and hands every
    /// event to the forwarder, then its commands.
    fn wait(&mut self, timeout: Duration) {
        self.poll.poll(&mut self.events, Some(timeout)).unwrap();
        let now = self.now();
        for e in self.events.iter() {
            if e.token().0 >> KIND_SHIFT == 0 {
                continue;
            }
            self.fwd.ready(now, e.token(), Readiness::of(e), &self.sink);
        }
        self.fwd.commands(now, &self.sink);
    }

    fn stats(&self) -> ForwarderStats {
        self.fwd.shared.counters.snapshot()
    }

    /// Hands a guest frame to the forwarder as the gateway would.
    fn input(&mut self, frame: Bytes) {
        let parsed = ingress::parse(&frame, GW_MAC).unwrap();
        let packet = parsed.flow().unwrap();
        let now = self.now();
        let packet = FlowFrame {
            frame,
            packet,
            link_mtu: 1500,
            link_offloads: self.offloads,
        };
        assert_eq!(
            self.fwd.handle_packet(now, &packet, &self.sink),
            Handled::Here
        );
    }

    fn udp(&mut self, src_port: u16, dst: SocketAddr, payload: &[u8]) {
        let IpAddr::V4(dst_ip) = dst.ip() else {
            panic!("IPv4 only here")
        };
        let addrs = IpAddresses::V4 {
            src: GUEST,
            dst: dst_ip,
        };
        let frame = self
            .guest
            .udp(GW_MAC, addrs, src_port, dst.port(), payload)
            .unwrap()
            .into_bytes();
        self.input(frame);
    }

    fn syn(&mut self, src_port: u16, dst: SocketAddr) {
        let IpAddr::V4(dst_ip) = dst.ip() else {
            panic!("IPv4 only here")
        };
        let repr = TcpRepr {
            src_port,
            dst_port: dst.port(),
            seq_number: TcpSeqNumber(1000),
            control: TcpControl::Syn,
            window_len: 65535,
            max_seg_size: Some(1460),
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

    /// Runs the worker until a frame for the guest appears (or 5 s pass).
    fn next_frames(&mut self) -> Vec<Bytes> {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let got = self.sink.take();
            if !got.is_empty() {
                return got;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no frame for the guest"
            );
            self.wait(Duration::from_millis(20));
            let now = self.now();
            if self.fwd.poll_timeout().is_some_and(|at| at <= now) {
                self.fwd.handle_timeout(now, &self.sink);
            }
        }
    }
}

/// The guest's view of a frame from us.
fn parse_for_guest(frame: &[u8]) -> ingress::Parsed<'_> {
    let parsed = ingress::parse(frame, GUEST_MAC).unwrap();
    assert_eq!(parsed.eth.src_addr, GW_MAC);
    assert_eq!(parsed.eth.dst_addr, GUEST_MAC);
    parsed
}

fn tcp_of(frame: &[u8]) -> (IpAddresses, TcpRepr) {
    match parse_for_guest(frame).event {
        Event::Tcp { ip, tcp, .. } => (ip.addresses(), tcp),
        other => panic!("not TCP: {other:?}"),
    }
}

#[test]
fn udp_replies_come_from_the_virtual_address() {
    let echo = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = echo.local_addr().unwrap().port();
    let mut h = Harness::new(Config::default());
    h.udp(4000, SocketAddr::from((HOST, port)), b"ping");
    let mut buf = [0u8; 64];
    echo.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let (n, peer) = echo.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"ping");
    assert!(peer.ip().is_loopback());
    echo.send_to(b"pong", peer).unwrap();
    let frames = h.next_frames();
    let Event::Udp { ip, udp, payload } = parse_for_guest(&frames[0]).event else {
        panic!("not UDP")
    };
    // 127.0.0.1 goes back to the guest as the address it used.
    assert_eq!(
        ip.addresses(),
        IpAddresses::V4 {
            src: HOST,
            dst: GUEST
        }
    );
    assert_eq!((udp.src_port, udp.dst_port), (port, 4000));
    assert_eq!(payload, b"pong");
    let stats = h.stats();
    assert_eq!((stats.udp_total, stats.udp_open), (1, 1));
}

#[test]
fn udp_table_full_drops_and_counts() {
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    let dst = SocketAddr::from((HOST, sink.local_addr().unwrap().port()));
    let mut h = Harness::new(Config {
        max_udp_flows: 2,
        ..Config::default()
    });
    for port in [5000, 5001, 5002, 5003] {
        h.udp(port, dst, b"x");
    }
    // The same mapping again is no new flow.
    h.udp(5000, dst, b"y");
    let stats = h.stats();
    assert_eq!(stats.udp_open, 2);
    assert_eq!(stats.udp_flow_limit, 2);
}

#[test]
fn tcp_connects_in_flight_are_bounded_and_refusals_reset() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let dst = SocketAddr::from((HOST, listener.local_addr().unwrap().port()));
    let mut h = Harness::new(Config {
        max_connects_in_flight: 1,
        ..Config::default()
    });
    // Nothing has run the poller: the first connect is still in flight.
    h.syn(6000, dst);
    assert!(
        h.sink.take().is_empty(),
        "no SYN-ACK before the host connect"
    );
    h.syn(6001, dst);
    let rst = h.sink.take();
    assert_eq!(rst.len(), 1);
    let (addrs, repr) = tcp_of(&rst[0]);
    assert_eq!(repr.control, TcpControl::Rst);
    assert_eq!(repr.dst_port, 6001);
    assert_eq!(
        addrs,
        IpAddresses::V4 {
            src: HOST,
            dst: GUEST
        }
    );
    assert_eq!(h.stats().tcp_connect_limit, 1);
    // The first one completes: SYN-ACK from the virtual address, with the guest's seq + 1.
    let frames = h.next_frames();
    let (addrs, repr) = tcp_of(&frames[0]);
    assert_eq!(repr.control, TcpControl::Syn);
    assert_eq!(repr.ack_number, Some(TcpSeqNumber(1001)));
    assert_eq!((repr.src_port, repr.dst_port), (dst.port(), 6000));
    assert_eq!(
        addrs,
        IpAddresses::V4 {
            src: HOST,
            dst: GUEST
        }
    );
    let stats = h.stats();
    assert_eq!((stats.tcp_connecting, stats.tcp_open), (0, 1));
}

#[test]
fn tcp_flow_table_full_resets() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let dst = SocketAddr::from((HOST, listener.local_addr().unwrap().port()));
    let mut h = Harness::new(Config {
        max_tcp_flows: 1,
        ..Config::default()
    });
    h.syn(6100, dst);
    h.syn(6101, dst);
    let frames = h.sink.take();
    assert_eq!(frames.len(), 1);
    assert_eq!(tcp_of(&frames[0]).1.control, TcpControl::Rst);
    assert_eq!(h.stats().tcp_flow_limit, 1);
}

#[test]
fn tcp_refused_by_nat_or_host_gets_rst() {
    let mut h = Harness::new(Config::default());
    // Cloud metadata is refused without -ec2-metadata-access.
    h.syn(6200, SocketAddr::from(([169, 254, 169, 254], 80)));
    let (_, repr) = tcp_of(&h.sink.take()[0]);
    assert_eq!(repr.control, TcpControl::Rst);
    assert_eq!(h.stats().nat_refused, 1);
    // A closed host port: the connect fails, the guest gets RST.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    h.syn(6201, SocketAddr::from((HOST, closed)));
    let frames = h.next_frames();
    let (_, repr) = tcp_of(&frames[0]);
    assert_eq!(repr.control, TcpControl::Rst);
    assert_eq!(repr.dst_port, 6201);
    assert_eq!(h.stats().tcp_refused, 1);
    assert_eq!(h.stats().tcp_open, 0);
}

#[test]
fn a_segment_of_no_flow_gets_rst() {
    let mut h = Harness::new(Config::default());
    let repr = TcpRepr {
        src_port: 6300,
        dst_port: 80,
        seq_number: TcpSeqNumber(5),
        ack_number: Some(TcpSeqNumber(77)),
        control: TcpControl::None,
        window_len: 100,
        ..TcpRepr::default()
    };
    let addrs = IpAddresses::V4 {
        src: GUEST,
        dst: HOST,
    };
    let frame = h
        .guest
        .tcp(GW_MAC, addrs, &repr, (&[], &[]))
        .unwrap()
        .into_bytes();
    h.input(frame);
    let (_, rst) = tcp_of(&h.sink.take()[0]);
    // RFC 9293 §3.10.7.1: an ACK gets <SEQ=SEG.ACK><CTL=RST>.
    assert_eq!(rst.control, TcpControl::Rst);
    assert_eq!(rst.seq_number, TcpSeqNumber(77));
    assert_eq!(h.stats().tcp_resets_sent, 1);
}

#[test]
fn framer_tcp_joins_the_two_payload_slices() {
    let mut f = Framer::new(GW_MAC);
    let repr = TcpRepr {
        src_port: 1,
        dst_port: 2,
        seq_number: TcpSeqNumber(9),
        ack_number: Some(TcpSeqNumber(3)),
        control: TcpControl::None,
        psh: true,
        window_len: 10,
        payload_len: 7,
        ..TcpRepr::default()
    };
    let addrs = IpAddresses::V4 {
        src: HOST,
        dst: GUEST,
    };
    let frame = f
        .tcp(GUEST_MAC, addrs, &repr, (b"abc", b"defg"))
        .unwrap()
        .into_bytes();
    let Event::Tcp { payload, .. } = parse_for_guest(&frame).event else {
        panic!("not TCP")
    };
    assert_eq!(payload, b"abcdefg");
}

#[test]
fn framer_pads_to_the_ethernet_minimum_and_asks_arp() {
    let mut f = Framer::new(GW_MAC);
    let addrs = IpAddresses::V4 {
        src: HOST,
        dst: GUEST,
    };
    let frame = f.udp(GUEST_MAC, addrs, 1, 2, b"").unwrap().into_bytes();
    assert_eq!(frame.len(), 60);
    let Event::Udp { payload, .. } = parse_for_guest(&frame).event else {
        panic!("not UDP")
    };
    assert!(payload.is_empty());

    let arp = f
        .arp_request(Ipv4Addr::new(192, 168, 127, 1), GUEST)
        .into_bytes();
    assert_eq!(arp.len(), 60);
    let eth = EthernetFrame::new_checked(&arp[..]).unwrap();
    assert_eq!(eth.destination(), EthernetAddress::BROADCAST);
    let repr = ArpRepr::parse(&ArpPacket::new_unchecked(eth.payload())).unwrap();
    assert_eq!(repr.operation, ArpOperation::Request);
    assert_eq!(repr.source_hardware_addr, GW_MAC);
    assert_eq!(repr.source_protocol_addr, Ipv4Addr::new(192, 168, 127, 1));
    assert_eq!(repr.target_protocol_addr, GUEST);
}

#[test]
fn the_neighbour_table_is_bounded_and_follows_a_new_mac() {
    let mut h = Harness::new(Config::default());
    let other = EthernetAddress([2, 0, 0, 0, 0, 9]);
    h.fwd.shared.learn(IpAddr::V4(GUEST), other);
    assert_eq!(
        h.fwd.shared.control.neighbour(IpAddr::V4(GUEST)),
        Some(other)
    );
    for i in 0..MAX_NEIGHBOURS as u32 + 10 {
        let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
        h.fwd.shared.learn(ip, other);
    }
    assert!(h.fwd.shared.known.len() <= MAX_NEIGHBOURS);
    assert!(h.stats().neighbours_full >= 10);
}

impl Harness {
    fn echo_request(&mut self, ident: u16, seq_no: u16, data: &[u8]) {
        let request = stack::wire::Icmpv4Repr::EchoRequest {
            ident,
            seq_no,
            data,
        };
        let addrs = IpAddresses::V4 {
            src: GUEST,
            dst: HOST,
        };
        let frame = self
            .guest
            .ip(
                GW_MAC,
                addrs,
                IpProtocol::Icmp,
                request.buffer_len(),
                8,
                |l4| request.emit(&mut stack::wire::Icmpv4Packet::new_unchecked(l4)),
            )
            .unwrap()
            .into_bytes();
        self.input(frame);
    }
}

#[test]
fn echo_requests_are_bounded_and_replies_keep_the_guests_identifier() {
    let mut h = Harness::new(Config {
        max_icmp_requests: 1,
        ..Config::default()
    });
    h.echo_request(0x4242, 1, b"first");
    if h.stats().icmp_no_socket > 0 {
        crate::skip::skipped(
            "forwarder::echo_requests_are_bounded_and_replies_keep_the_guests_identifier",
            "neither ping sockets nor raw sockets here",
        );
        return;
    }
    // The first still waits (nothing ran the poller): the second is over the bound.
    h.echo_request(0x4242, 2, b"second");
    assert_eq!(h.stats().icmp_limit, 1);
    let frames = h.next_frames();
    let Event::Icmpv4 { ip, icmp } = parse_for_guest(&frames[0]).event else {
        panic!("not ICMP")
    };
    assert_eq!((ip.src_addr, ip.dst_addr), (HOST, GUEST));
    assert_eq!(
        icmp,
        stack::wire::Icmpv4Repr::EchoReply {
            ident: 0x4242,
            seq_no: 1,
            data: b"first"
        }
    );
    assert_eq!(h.stats().icmp_open, 0);
}

#[test]
fn icmpv6_echo_goes_through_the_nat_and_back() {
    let guest6: std::net::Ipv6Addr = "fd00::2".parse().unwrap();
    let host6: std::net::Ipv6Addr = "fd00::254".parse().unwrap();
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        crate::skip::skipped(
            "forwarder::icmpv6_echo_goes_through_the_nat_and_back",
            "no IPv6 loopback here",
        );
        return;
    }
    let mut h = Harness::new(Config {
        nat: vec![(IpAddr::V6(host6), IpAddr::V6(std::net::Ipv6Addr::LOCALHOST))],
        ..Config::default()
    });
    let request = stack::wire::Icmpv6Repr::EchoRequest {
        ident: 0x6666,
        seq_no: 3,
        data: b"six",
    };
    let addrs = IpAddresses::V6 {
        src: guest6,
        dst: host6,
    };
    let frame = h
        .guest
        .ip(
            GW_MAC,
            addrs,
            IpProtocol::Icmpv6,
            request.buffer_len(),
            8,
            |l4| request.emit(&mut stack::wire::Icmpv6Packet::new_unchecked(l4), &addrs),
        )
        .unwrap()
        .into_bytes();
    h.input(frame);
    if h.stats().icmp_no_socket > 0 {
        crate::skip::skipped(
            "forwarder::icmpv6_echo_goes_through_the_nat_and_back",
            "neither ping sockets nor raw sockets here",
        );
        return;
    }
    assert_eq!(h.stats().icmp_total, 1, "{:?}", h.stats());
    let frames = h.next_frames();
    let Event::Icmpv6 { ip, icmp } = parse_for_guest(&frames[0]).event else {
        panic!("not ICMPv6")
    };
    assert_eq!((ip.src_addr, ip.dst_addr), (host6, guest6));
    assert_eq!(
        icmp,
        stack::wire::Icmpv6Repr::EchoReply {
            ident: 0x6666,
            seq_no: 3,
            data: b"six"
        }
    );
}

#[test]
fn a_gone_guest_loses_its_flows_and_its_host_peers_see_rst() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let dst = SocketAddr::from((HOST, listener.local_addr().unwrap().port()));
    let echo = UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp_dst = SocketAddr::from((HOST, echo.local_addr().unwrap().port()));
    let mut h = Harness::new(Config::default());
    h.syn(6200, dst);
    let frames = h.next_frames();
    assert_eq!(tcp_of(&frames[0]).1.control, TcpControl::Syn);
    let (mut peer, _) = listener.accept().unwrap();
    h.udp(4200, udp_dst, b"x");
    let stats = h.stats();
    assert_eq!((stats.tcp_open, stats.udp_open), (1, 1));

    // Another guest going away changes nothing.
    let other = EthernetAddress([0x02, 0, 0, 0, 0, 9]);
    assert_eq!(h.fwd.shared.control.guest_gone(&[other]), 1);
    h.wait(Duration::from_millis(50));
    let stats = h.stats();
    assert_eq!((stats.tcp_open, stats.udp_open), (1, 1));
    assert_eq!(stats.flows_guest_gone, 0);

    assert_eq!(h.fwd.shared.control.guest_gone(&[other, GUEST_MAC]), 1);
    h.wait(Duration::from_millis(50));
    let stats = h.stats();
    assert_eq!((stats.tcp_open, stats.udp_open), (0, 0));
    assert_eq!(stats.flows_guest_gone, 2);
    let usage = h.fwd.shared.control.budget_usage().unwrap();
    assert_eq!(
        (usage.tcp_flows, usage.udp_flows, usage.udp_guests),
        (0, 0, 0),
        "the gone guest's budget units are given back"
    );
    assert!(h.sink.take().is_empty(), "nothing is sent to a gone guest");
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 16];
    let err = std::io::Read::read(&mut peer, &mut buf).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
}

#[path = "handler_limits_tests.rs"]
mod limits;

#[path = "handler_drain_tests.rs"]
mod drain;

#[path = "handler_probe_tests.rs"]
mod probes;

#[path = "handler_offload_tests.rs"]
mod offload;

#[test]
fn a_forward_to_a_guests_ipv6_address_needs_the_gateways_ipv6_address() {
    // IPv6 off: the gateway has no address to open such a forward's connections from.
    let h = Harness::new(Config::default());
    let control = &h.fwd.shared.control;
    assert!(matches!(
        control.expose(Protocol::Tcp, "127.0.0.1:0", "[fd00:127::2]:80", None),
        Err(ExposeError::NoIpv6(_))
    ));
    assert!(control.all().is_empty());
    // IPv4 forwards are not affected.
    assert!(
        control
            .expose(Protocol::Tcp, "127.0.0.1:0", "192.168.127.2:80", None)
            .is_ok()
    );
    // With the gateway's IPv6 address, the IPv6 forward is taken.
    let h = Harness::new(Config {
        gateway_ip6: Some("fd00:127::1".parse().unwrap()),
        ..Config::default()
    });
    let control = &h.fwd.shared.control;
    assert!(
        control
            .expose(Protocol::Udp, "127.0.0.1:0", "[fd00:127::2]:80", None)
            .is_ok()
    );
    assert_eq!(control.all().len(), 1);
}
