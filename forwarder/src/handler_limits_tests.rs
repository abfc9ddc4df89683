//! The forwarder's bounds at their limit: TIME-WAIT reclaim in a full TCP table, the
//! per-guest bounds, the in-guest API's request size.

use super::*;
use crate::{ApiReply, GuestApi};

const OTHER_GUEST: Ipv4Addr = Ipv4Addr::new(192, 168, 127, 3);

impl Harness {
    /// A segment from the guest (from `src`) to `dst`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn segment(
        &mut self,
        src: Ipv4Addr,
        src_port: u16,
        dst: SocketAddr,
        seq: u32,
        ack: Option<u32>,
        control: TcpControl,
        payload: &[u8],
    ) {
        let IpAddr::V4(dst_ip) = dst.ip() else {
            panic!("IPv4 only here")
        };
        let repr = TcpRepr {
            src_port,
            dst_port: dst.port(),
            seq_number: TcpSeqNumber(seq),
            ack_number: ack.map(TcpSeqNumber),
            control,
            window_len: 65535,
            max_seg_size: (control == TcpControl::Syn).then_some(1460),
            payload_len: payload.len(),
            ..TcpRepr::default()
        };
        let addrs = IpAddresses::V4 { src, dst: dst_ip };
        let frame = self
            .guest
            .tcp(GW_MAC, addrs, &repr, (payload, &[]))
            .unwrap();
        self.input(frame);
    }

    /// Runs the worker until a segment to `port` with `control` arrives; returns it.
    pub(super) fn until(&mut self, port: u16, control: TcpControl) -> TcpRepr {
        loop {
            for frame in self.next_frames() {
                let (_, repr) = tcp_of(&frame);
                if repr.dst_port == port && repr.control == control {
                    return repr;
                }
            }
        }
    }
}

pub(super) fn seq(repr: &TcpRepr) -> u32 {
    repr.seq_number.0
}

#[test]
fn a_flow_in_time_wait_is_reclaimed_for_a_new_connection_at_the_limit() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let dst = SocketAddr::from((HOST, listener.local_addr().unwrap().port()));
    let mut h = Harness::new(Config {
        max_tcp_flows: 1,
        ..Config::default()
    });
    // Open: SYN, our SYN-ACK once the host connect completes, the guest's ACK.
    h.segment(GUEST, 7000, dst, 1000, None, TcpControl::Syn, &[]);
    let syn_ack = h.until(7000, TcpControl::Syn);
    let ours = seq(&syn_ack).wrapping_add(1);
    h.segment(GUEST, 7000, dst, 1001, Some(ours), TcpControl::None, &[]);
    // The host closes first (as a server answering `Connection: close` does): our FIN.
    let (host, _) = listener.accept().unwrap();
    drop(host);
    let fin = h.until(7000, TcpControl::Fin);
    assert_eq!(seq(&fin), ours);
    // The guest acknowledges it and closes too: we are in TIME-WAIT.
    h.segment(
        GUEST,
        7000,
        dst,
        1001,
        Some(ours.wrapping_add(1)),
        TcpControl::Fin,
        &[],
    );
    let stats = h.stats();
    assert_eq!((stats.tcp_open, stats.tcp_time_wait), (0, 1), "{stats:?}");
    h.sink.take();

    // The table is full of a TIME-WAIT flow: a new connection takes its place.
    h.segment(GUEST, 7001, dst, 5000, None, TcpControl::Syn, &[]);
    let syn_ack = h.until(7001, TcpControl::Syn);
    assert_eq!(syn_ack.ack_number, Some(TcpSeqNumber(5001)));
    let stats = h.stats();
    assert_eq!(stats.tcp_time_wait_reclaimed, 1);
    assert_eq!(stats.tcp_flow_limit, 0);
    assert_eq!((stats.tcp_open, stats.tcp_time_wait), (1, 0), "{stats:?}");

    // With only a live flow, the next SYN is refused with RST.
    h.segment(GUEST, 7002, dst, 9000, None, TcpControl::Syn, &[]);
    let rst = h.sink.take();
    assert_eq!(rst.len(), 1);
    assert_eq!(tcp_of(&rst[0]).1.control, TcpControl::Rst);
    assert_eq!(h.stats().tcp_flow_limit, 1);
}

#[test]
fn per_guest_tcp_bound_refuses_one_guest_and_not_another() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let dst = SocketAddr::from((HOST, listener.local_addr().unwrap().port()));
    let mut h = Harness::new(Config {
        max_tcp_flows: 10,
        max_tcp_flows_per_guest: 2,
        ..Config::default()
    });
    h.segment(GUEST, 7100, dst, 1, None, TcpControl::Syn, &[]);
    h.segment(GUEST, 7101, dst, 1, None, TcpControl::Syn, &[]);
    h.segment(GUEST, 7102, dst, 1, None, TcpControl::Syn, &[]);
    let frames = h.sink.take();
    assert_eq!(frames.len(), 1);
    let (_, rst) = tcp_of(&frames[0]);
    assert_eq!((rst.control, rst.dst_port), (TcpControl::Rst, 7102));
    assert_eq!(h.stats().tcp_guest_limit, 1);
    // Another guest still gets through.
    h.segment(OTHER_GUEST, 7103, dst, 1, None, TcpControl::Syn, &[]);
    assert_eq!(h.stats().tcp_guest_limit, 1);
    assert_eq!(h.stats().tcp_open, 3);
    let usage = h.fwd.shared.control.budget_usage().unwrap();
    assert_eq!((usage.tcp_flows, usage.tcp_guests), (3, 2));
    assert_eq!(usage.connects, 3);
}

#[test]
fn per_guest_udp_bound_drops_and_counts() {
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    let dst = SocketAddr::from((HOST, sink.local_addr().unwrap().port()));
    let mut h = Harness::new(Config {
        max_udp_flows: 10,
        max_udp_flows_per_guest: 2,
        ..Config::default()
    });
    for port in [5100, 5101, 5102] {
        h.udp(port, dst, b"x");
    }
    h.udp(5100, dst, b"again");
    let stats = h.stats();
    assert_eq!((stats.udp_open, stats.udp_guest_limit), (2, 1));
    assert_eq!(stats.udp_flow_limit, 0);
    assert_eq!(h.fwd.shared.control.budget_usage().unwrap().udp_flows, 2);
}

/// A request to the in-guest API larger than the bound gets 413 and the connection closes.
#[test]
fn an_oversize_guest_api_request_gets_413() {
    struct Echo;
    impl GuestApi for Echo {
        fn respond(&self, _: &[u8], _: IpAddr) -> ApiReply {
            ApiReply::Incomplete
        }
    }
    let mut h = Harness::new(Config {
        api_max_request: 100,
        ..Config::default()
    });
    h.fwd.shared.control.set_guest_api(Arc::new(Echo));
    let api = SocketAddr::from((Ipv4Addr::new(192, 168, 127, 1), 80));
    h.segment(GUEST, 7200, api, 1000, None, TcpControl::Syn, &[]);
    let syn_ack = h.until(7200, TcpControl::Syn);
    let ours = seq(&syn_ack).wrapping_add(1);
    let body = vec![b'a'; 200];
    h.segment(GUEST, 7200, api, 1001, Some(ours), TcpControl::None, &body);
    let mut answer = Vec::new();
    let mut fin = false;
    for frame in h.sink.take() {
        let parsed = parse_for_guest(&frame);
        if let Event::Tcp { tcp, payload, .. } = parsed.event {
            answer.extend_from_slice(payload);
            fin |= tcp.control == TcpControl::Fin;
        }
    }
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 413 "), "{text}");
    assert!(fin, "the API closes after answering");
    assert_eq!(h.stats().api_too_large, 1);
}

#[path = "handler_hostile_tests.rs"]
mod hostile;
