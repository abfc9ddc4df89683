//! What a hostile guest could take from others, one worker's [`Forwarder`] driven directly:
//! the in-guest API's connection bound and deadline, the fair share of connects in flight,
//! the descriptor budget (the multicast relay's group sockets too), `tcp_open` agreeing with
//! the flow budget, spoofed sources, and the TCP table giving back the memory of a burst.

use super::*;

/// A guest's view of what came back since the last look: (port, control) of every segment.
fn segments(h: &Harness) -> Vec<(u16, TcpControl)> {
    h.sink
        .take()
        .iter()
        .filter_map(|f| match parse_for_guest(f).event {
            Event::Tcp { tcp, .. } => Some((tcp.dst_port, tcp.control)),
            _ => None,
        })
        .collect()
}

const API: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 168, 127, 1)), 80);

/// A guest API that wants more forever (a request never completes).
struct Never;
impl GuestApi for Never {
    fn respond(&self, _: &[u8], _: IpAddr) -> ApiReply {
        ApiReply::Incomplete
    }
}

/// Opens an API connection from `port` and sends a partial request; returns our next seq.
fn partial_request(h: &mut Harness, port: u16) -> u32 {
    h.segment(GUEST, port, API, 1000, None, TcpControl::Syn, &[]);
    let syn_ack = h.until(port, TcpControl::Syn);
    let ours = seq(&syn_ack).wrapping_add(1);
    h.segment(
        GUEST,
        port,
        API,
        1001,
        Some(ours),
        TcpControl::None,
        b"GET /services/forwarder/all HTTP/1.1\r\nHo",
    );
    ours
}

#[test]
fn guest_api_connections_are_bounded_counted_as_tcp_flows_and_timed_out() {
    let mut h = Harness::new(Config {
        max_api_connections: 2,
        api_header_timeout: Duration::from_millis(300),
        ..Config::default()
    });
    h.fwd.shared.control.set_guest_api(Arc::new(Never));
    partial_request(&mut h, 7300);
    partial_request(&mut h, 7301);
    let usage = h.fwd.shared.control.budget_usage().unwrap();
    assert_eq!((usage.api_connections, usage.tcp_flows), (2, 2));
    assert_eq!(h.stats().tcp_open, 2);
    // A third is refused.
    h.sink.take();
    h.segment(GUEST, 7302, API, 1000, None, TcpControl::Syn, &[]);
    assert_eq!(segments(&h), [(7302, TcpControl::Rst)]);
    assert_eq!(h.stats().api_connection_limit, 1);
    // The two partial requests are reset once their deadline passes, and give their units
    // back.
    let mut reset = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while reset.len() < 2 && std::time::Instant::now() < deadline {
        for frame in h.next_frames() {
            let (_, tcp) = tcp_of(&frame);
            if tcp.control == TcpControl::Rst {
                reset.push(tcp.dst_port);
            }
        }
    }
    reset.sort_unstable();
    assert_eq!(reset, [7300, 7301]);
    let stats = h.stats();
    assert_eq!((stats.api_timeouts, stats.tcp_open), (2, 0), "{stats:?}");
    let usage = h.fwd.shared.control.budget_usage().unwrap();
    assert_eq!((usage.api_connections, usage.tcp_flows), (0, 0));
}

#[test]
fn guest_api_connections_take_the_guests_tcp_flow_units() {
    let mut h = Harness::new(Config {
        max_tcp_flows: 10,
        max_tcp_flows_per_guest: 1,
        ..Config::default()
    });
    h.fwd.shared.control.set_guest_api(Arc::new(Never));
    partial_request(&mut h, 7400);
    h.sink.take();
    h.segment(GUEST, 7401, API, 1000, None, TcpControl::Syn, &[]);
    assert_eq!(segments(&h), [(7401, TcpControl::Rst)]);
    assert_eq!(h.stats().tcp_guest_limit, 1);
}

#[test]
fn tcp_open_counts_live_flows_as_the_budget_does() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let dst = SocketAddr::from((HOST, listener.local_addr().unwrap().port()));
    let mut h = Harness::new(Config::default());
    h.fwd.shared.control.set_guest_api(Arc::new(Never));
    let agree = |h: &Harness, open: u64, time_wait: u64| {
        let stats = h.stats();
        let usage = h.fwd.shared.control.budget_usage().unwrap();
        assert_eq!(
            (stats.tcp_open, stats.tcp_time_wait, usage.tcp_flows as u64),
            (open, time_wait, open),
            "{stats:?} {usage:?}"
        );
    };
    // An outbound flow and an API connection: two live flows.
    h.segment(GUEST, 7500, dst, 1000, None, TcpControl::Syn, &[]);
    let ours = seq(&h.until(7500, TcpControl::Syn)).wrapping_add(1);
    h.segment(GUEST, 7500, dst, 1001, Some(ours), TcpControl::None, &[]);
    partial_request(&mut h, 7501);
    agree(&h, 2, 0);
    // The outbound flow closes host side first and enters TIME-WAIT: one live flow.
    let (host, _) = listener.accept().unwrap();
    drop(host);
    h.until(7500, TcpControl::Fin);
    h.segment(
        GUEST,
        7500,
        dst,
        1001,
        Some(ours.wrapping_add(1)),
        TcpControl::Fin,
        &[],
    );
    agree(&h, 1, 1);
}

#[test]
fn one_guests_connects_leave_room_for_another_guest_and_destination() {
    // Two destinations whose connects stay in flight: nothing runs the poller.
    let slow = TcpListener::bind("127.0.0.1:0").unwrap();
    let slow = SocketAddr::from((HOST, slow.local_addr().unwrap().port()));
    let other = TcpListener::bind("127.0.0.1:0").unwrap();
    let other = SocketAddr::from((HOST, other.local_addr().unwrap().port()));
    let mut h = Harness::new(Config {
        max_connects_in_flight: 4,
        ..Config::default()
    });
    // The flooding guest holds half the connects, its further SYNs are reset.
    for port in 7600..7604 {
        h.segment(GUEST, port, slow, 1, None, TcpControl::Syn, &[]);
    }
    assert_eq!(
        segments(&h),
        [(7602, TcpControl::Rst), (7603, TcpControl::Rst)]
    );
    assert_eq!(h.stats().tcp_connect_guest_share, 2);
    // Another guest reaches another destination; the flooded one holds its share.
    h.segment(OTHER_GUEST, 7611, slow, 1, None, TcpControl::Syn, &[]);
    h.segment(OTHER_GUEST, 7610, other, 1, None, TcpControl::Syn, &[]);
    let reset: Vec<_> = h
        .sink
        .take()
        .iter()
        .map(|f| tcp_of(f).1)
        .filter(|t| t.control == TcpControl::Rst)
        .map(|t| t.dst_port)
        .collect();
    assert_eq!(reset, [7611]);
    let stats = h.stats();
    assert_eq!(stats.tcp_connect_destination_share, 1);
    assert_eq!(stats.tcp_connect_limit, 0);
    let usage = h.fwd.shared.control.budget_usage().unwrap();
    assert_eq!(
        (
            usage.connects,
            usage.connects_guests,
            usage.connects_destinations
        ),
        (3, 2, 2)
    );
    // The other guest's connect completes.
    assert_eq!(
        h.until(7610, TcpControl::Syn).ack_number,
        Some(TcpSeqNumber(2))
    );
}

#[test]
fn host_sockets_beyond_the_descriptor_budget_are_refused_and_counted() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let dst = SocketAddr::from((HOST, listener.local_addr().unwrap().port()));
    let echo = UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp_dst = SocketAddr::from((HOST, echo.local_addr().unwrap().port()));
    let mut h = Harness::new(Config {
        max_host_sockets: 1,
        ..Config::default()
    });
    h.syn(7700, dst);
    h.syn(7701, dst);
    assert_eq!(segments(&h), [(7701, TcpControl::Rst)]);
    h.udp(4700, udp_dst, b"x");
    let stats = h.stats();
    assert_eq!(
        (stats.descriptor_limit, stats.tcp_refused, stats.udp_open),
        (2, 0, 0)
    );
    let usage = h.fwd.shared.control.budget_usage().unwrap();
    assert_eq!((usage.max_host_sockets, usage.host_sockets), (1, 1));
    // Once the flow's socket closes its unit comes back.
    let syn_ack = h.until(7700, TcpControl::Syn);
    h.segment(
        GUEST,
        7700,
        dst,
        1001,
        Some(seq(&syn_ack).wrapping_add(1)),
        TcpControl::Rst,
        &[],
    );
    assert_eq!(h.fwd.shared.control.budget_usage().unwrap().host_sockets, 0);
    h.udp(4700, udp_dst, b"y");
    assert_eq!(h.stats().udp_open, 1);
}

/// The multicast relay's group sockets take units of the descriptor budget like flows, and
/// give them back when the group is left. Groups are joined on the loopback interface only.
#[test]
fn multicast_group_sockets_hold_descriptor_units() {
    // SAFETY: the name is a NUL-terminated literal.
    let lo = unsafe { libc::if_nametoindex(c"lo".as_ptr()) };
    assert_ne!(lo, 0);
    let ports: Vec<u16> = (0..2)
        .map(|_| {
            UdpSocket::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        })
        .collect();
    let mut h = Harness::new(Config {
        max_host_sockets: 3,
        multicast_ports: ports,
        multicast_interface_v4: lo,
        multicast_interface_v6: lo,
        ..Config::default()
    });
    let host_sockets = |h: &Harness| h.fwd.shared.control.budget_usage().unwrap().host_sockets;
    let first: IpAddr = "239.255.77.1".parse().unwrap();
    let second: IpAddr = "239.255.77.2".parse().unwrap();
    let now = h.now();
    h.fwd.mcast.join(&mut h.fwd.shared, first, now);
    assert_eq!(host_sockets(&h), 2);
    // One unit is left: the second group gets one port, the other is refused and counted.
    h.fwd.mcast.join(&mut h.fwd.shared, second, now);
    assert_eq!(host_sockets(&h), 3);
    let stats = h.stats();
    assert_eq!(
        (stats.descriptor_limit, stats.mcast_groups),
        (1, 2),
        "{stats:?}"
    );
    h.fwd.mcast.leave(&mut h.fwd.shared, first);
    assert_eq!(host_sockets(&h), 1);
    h.fwd.mcast.leave(&mut h.fwd.shared, second);
    assert_eq!(host_sockets(&h), 0);
}

#[test]
fn a_source_outside_the_guest_subnet_is_not_forwarded() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let dst = SocketAddr::from((HOST, listener.local_addr().unwrap().port()));
    let mut h = Harness::new(Config::default());
    h.segment(
        Ipv4Addr::new(10, 9, 9, 9),
        7800,
        dst,
        1,
        None,
        TcpControl::Syn,
        &[],
    );
    assert!(h.sink.take().is_empty(), "nothing answered");
    let stats = h.stats();
    assert_eq!((stats.foreign_source, stats.tcp_total), (1, 0));
    listener.set_nonblocking(true).unwrap();
    assert!(listener.accept().is_err(), "no host connect");
}

#[test]
fn the_tcp_table_gives_back_its_memory_after_a_burst() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let dst = SocketAddr::from((HOST, listener.local_addr().unwrap().port()));
    let mut h = Harness::new(Config::default());
    // Connects stay in flight (nothing runs the poller): 400 flows at once.
    for port in 10_000..10_400 {
        h.syn(port, dst);
    }
    assert_eq!(h.stats().tcp_connecting, 400);
    let grown = h.fwd.tcp.capacity();
    assert!(grown >= 400, "{grown}");
    // The guest resets them all.
    for port in 10_000..10_400 {
        h.segment(GUEST, port, dst, 1001, None, TcpControl::Rst, &[]);
    }
    assert_eq!(h.stats().tcp_open, 0);
    h.fwd.tcp.shrink();
    let shrunk = h.fwd.tcp.capacity();
    assert!(shrunk < 64, "{grown} -> {shrunk}");
}

#[test]
fn an_answered_guest_api_connection_in_time_wait_keeps_no_api_deadline() {
    struct Ok200;
    impl GuestApi for Ok200 {
        fn respond(&self, _: &[u8], _: IpAddr) -> ApiReply {
            ApiReply::Done(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".to_vec())
        }
    }
    let timeout = Duration::from_millis(100);
    let mut h = Harness::new(Config {
        api_header_timeout: timeout,
        ..Config::default()
    });
    h.fwd.shared.control.set_guest_api(Arc::new(Ok200));
    let request = b"GET /services/forwarder/all HTTP/1.1\r\n\r\n";
    h.segment(GUEST, 7900, API, 1000, None, TcpControl::Syn, &[]);
    let ours = seq(&h.until(7900, TcpControl::Syn)).wrapping_add(1);
    h.segment(
        GUEST,
        7900,
        API,
        1001,
        Some(ours),
        TcpControl::None,
        request,
    );
    // The answer and our FIN; the guest takes both and closes its side too.
    let (mut answered, mut fin) = (0u32, false);
    for frame in h.sink.take() {
        if let Event::Tcp { tcp, payload, .. } = parse_for_guest(&frame).event {
            answered += payload.len() as u32;
            fin |= tcp.control == TcpControl::Fin;
        }
    }
    assert!(answered > 0 && fin, "answered {answered} bytes, FIN {fin}");
    h.segment(
        GUEST,
        7900,
        API,
        1001 + request.len() as u32,
        Some(ours.wrapping_add(answered + 1)),
        TcpControl::Fin,
        &[],
    );
    let stats = h.stats();
    assert_eq!(
        (stats.tcp_time_wait, stats.tcp_open, stats.api_timeouts),
        (1, 0, 0),
        "{stats:?}"
    );
    // Past the exchange's deadline, the flow in TIME-WAIT is neither reset nor woken again
    // and again: the timers return with nothing due. (In a thread, so that a worker stuck on a
    // timer that is always due fails the test instead of hanging it.)
    std::thread::sleep(timeout * 2);
    let (done, result) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let now = h.now();
        h.fwd.handle_timeout(now, &h.sink);
        let _ = done.send((now, h.fwd.poll_timeout(), h.stats()));
    });
    let (now, next, stats) = result
        .recv_timeout(Duration::from_secs(5))
        .expect("handle_timeout returns");
    assert!(
        next.is_some_and(|at| at > now),
        "nothing is due any more: {next:?} at {now:?}"
    );
    assert_eq!(
        (stats.api_timeouts, stats.tcp_time_wait),
        (0, 1),
        "{stats:?}"
    );
}
