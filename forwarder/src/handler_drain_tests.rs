//! Winding TCP flows down (the TCP table's `drain` module) with real host sockets: a guest
//! that goes away, exit with and without a drain, a connection the engine closed with bytes
//! still owed, a forwarder dropped outright. A host peer gets every acknowledged byte and
//! then FIN when the guest's stream was complete, RST when it was cut short — never FIN
//! after a short stream. Also the gauge of the buffer memory flows hold, as a held stream
//! drains.

use std::io::Read;
use std::net::TcpStream;
use std::thread::JoinHandle;

use super::limits::seq;
use super::*;

const PORT: u16 = 7300;
/// The engine's buffers here: what a guest may have acknowledged and not yet written.
const BUFFER: usize = 256 * 1024;
const MSS: usize = 1460;

/// Byte `i` of every stream here.
fn byte(i: usize) -> u8 {
    (i.wrapping_mul(131) % 251) as u8
}

/// A host server on 127.0.0.1 whose connections have a small receive buffer, and the
/// address guests reach it at.
fn server() -> (TcpListener, SocketAddr) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    socket.listen(4).unwrap();
    let listener = TcpListener::from(socket);
    let dst = SocketAddr::from((HOST, listener.local_addr().unwrap().port()));
    (listener, dst)
}

/// How a host peer's read ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Eof,
    Reset,
}

/// Reads `peer` to its end in a thread: the bytes, whether they were the stream's, the end.
fn read_all(mut peer: TcpStream) -> JoinHandle<(usize, bool, End)> {
    std::thread::spawn(move || {
        peer.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let (mut n, mut intact) = (0, true);
        loop {
            match peer.read(&mut buf) {
                Ok(0) => return (n, intact, End::Eof),
                Ok(k) => {
                    intact &= buf[..k].iter().enumerate().all(|(i, b)| *b == byte(n + i));
                    n += k;
                }
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                    return (n, intact, End::Reset);
                }
                Err(e) => panic!("host read after {n} bytes: {e}"),
            }
        }
    })
}

/// One guest connection: where to, our next sequence number, the guest's next stream byte.
struct Conn {
    dst: SocketAddr,
    ours: u32,
    sent: usize,
}

impl Harness {
    fn with_buffer() -> Harness {
        Harness::new(Config {
            tcp_buffer: BUFFER,
            ..Config::default()
        })
    }

    /// A guest connection to `dst`, established, and the host's end of it.
    fn open(&mut self, listener: &TcpListener, dst: SocketAddr) -> (Conn, TcpStream) {
        self.segment(GUEST, PORT, dst, 1000, None, TcpControl::Syn, &[]);
        let syn_ack = self.until(PORT, TcpControl::Syn);
        let ours = seq(&syn_ack).wrapping_add(1);
        self.segment(GUEST, PORT, dst, 1001, Some(ours), TcpControl::None, &[]);
        let (peer, _) = listener.accept().unwrap();
        (Conn { dst, ours, sent: 0 }, peer)
    }

    /// The guest's next `len` stream bytes, in full segments, then its FIN if `fin`.
    fn upload(&mut self, c: &mut Conn, len: usize, fin: bool) {
        let end = c.sent + len;
        while c.sent < end {
            let n = MSS.min(end - c.sent);
            let data: Vec<u8> = (c.sent..c.sent + n).map(byte).collect();
            let seq = 1001u32.wrapping_add(c.sent as u32);
            self.segment(
                GUEST,
                PORT,
                c.dst,
                seq,
                Some(c.ours),
                TcpControl::None,
                &data,
            );
            c.sent += n;
        }
        if fin {
            let seq = 1001u32.wrapping_add(c.sent as u32);
            self.segment(GUEST, PORT, c.dst, seq, Some(c.ours), TcpControl::Fin, &[]);
        }
    }

    /// Runs the worker (readiness, timers, commands) for `time`.
    fn run_for(&mut self, time: Duration) {
        let until = std::time::Instant::now() + time;
        while std::time::Instant::now() < until {
            self.wait(Duration::from_millis(5));
            let now = self.now();
            if self.fwd.poll_timeout().is_some_and(|at| at <= now) {
                self.fwd.handle_timeout(now, &self.sink);
            }
        }
    }

    /// Runs the worker until `reader` is done; its result.
    fn run_until<T>(&mut self, reader: JoinHandle<T>) -> T {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !reader.is_finished() {
            assert!(
                std::time::Instant::now() < deadline,
                "the host never finished"
            );
            self.run_for(Duration::from_millis(10));
        }
        reader.join().unwrap()
    }

    /// The guest's stream, with the host not reading, until the host's kernel takes no more
    /// and at least 96 KiB wait in the engine's ring, acknowledged and unwritten (checked,
    /// so that the tests below test that); then its FIN if `fin`. Each step stays within
    /// the window. Returns the stream's length.
    fn upload_held(&mut self, c: &mut Conn, fin: bool) -> usize {
        loop {
            let held = c.sent as u64 - self.stats().bytes_to_host;
            if held >= 96 * 1024 {
                // Linux makes room in a full send buffer once more some tens of milliseconds
                // later, below the threshold of a writable wake-up: a drain or exit writing
                // again would find it and take what was held. Let it come and fill it, so
                // that what is held here stays held.
                self.run_for(Duration::from_millis(200));
                let now = self.now();
                let fwd = &mut self.fwd;
                fwd.tcp.retry_writes(&mut fwd.shared, now, &self.sink);
                if c.sent as u64 - self.stats().bytes_to_host >= 96 * 1024 {
                    break;
                }
                continue;
            }
            assert!(c.sent < 64 << 20, "the host's kernel took {} bytes", c.sent);
            self.upload(c, 64 * 1024, false);
            self.run_for(Duration::from_millis(5));
        }
        self.upload(c, 0, fin);
        c.sent
    }

    fn rsts_to_guest(&self) -> usize {
        self.sink
            .take()
            .iter()
            .filter(|f| tcp_of(f).1.control == TcpControl::Rst)
            .count()
    }
}

#[test]
fn a_gone_guests_finished_stream_reaches_the_host_whole_then_fin() {
    let (listener, dst) = server();
    let mut h = Harness::with_buffer();
    let (mut c, peer) = h.open(&listener, dst);
    let len = h.upload_held(&mut c, true);
    assert_eq!(h.fwd.shared.control.guest_gone(&[GUEST_MAC]), 1);
    h.run_for(Duration::from_millis(20));
    h.sink.take();
    let (n, intact, end) = h.run_until(read_all(peer));
    assert_eq!((n, intact, end), (len, true, End::Eof));
    let stats = h.stats();
    assert_eq!(
        (stats.tcp_open, stats.flows_guest_gone),
        (0, 1),
        "{stats:?}"
    );
    assert_eq!(stats.tcp_teardown_completed, 1);
    assert_eq!(stats.tcp_teardown_reset, 0);
    assert_eq!(stats.tcp_dropped_bytes_guest_gone, 0);
    assert!(h.sink.take().is_empty(), "nothing is sent to a gone guest");
}

#[test]
fn a_flow_being_wound_down_keeps_its_flow_and_descriptor_units_until_it_ends() {
    let (listener, dst) = server();
    let mut h = Harness::with_buffer();
    // `tcp_open`, the budget's live flows and its host sockets: always the same here.
    let held = |h: &Harness| {
        let usage = h.fwd.shared.control.budget_usage().unwrap();
        let open = h.stats().tcp_open;
        (open, usage.tcp_flows as u64, usage.host_sockets as u64)
    };
    let (mut c, peer) = h.open(&listener, dst);
    // Unfinished: once its guest is gone the flow waits until the host has every byte
    // before its RST, and the host does not read yet.
    h.upload_held(&mut c, false);
    assert_eq!(held(&h), (1, 1, 1));
    h.fwd.shared.control.guest_gone(&[GUEST_MAC]);
    h.run_for(Duration::from_millis(20));
    assert_eq!(h.stats().flows_guest_gone, 1);
    assert_eq!(held(&h), (1, 1, 1), "{:?}", h.stats());
    let (n, intact, end) = h.run_until(read_all(peer));
    assert_eq!((n, intact, end), (c.sent, true, End::Reset));
    assert_eq!(held(&h), (0, 0, 0), "{:?}", h.stats());
}

#[test]
fn a_gone_guests_unfinished_stream_is_written_then_reset() {
    let (listener, dst) = server();
    let mut h = Harness::with_buffer();
    let (mut c, peer) = h.open(&listener, dst);
    h.upload_held(&mut c, false);
    let reader = read_all(peer);
    h.fwd.shared.control.guest_gone(&[GUEST_MAC]);
    let (n, intact, end) = h.run_until(reader);
    assert!(intact);
    assert_eq!(
        (n, end),
        (c.sent, End::Reset),
        "every acknowledged byte, then RST: never a clean end of a short stream"
    );
    let stats = h.stats();
    assert_eq!(stats.tcp_open, 0, "{stats:?}");
    assert_eq!(
        (stats.tcp_teardown_reset, stats.tcp_teardown_completed),
        (1, 0)
    );
    assert_eq!(stats.tcp_dropped_bytes_guest_gone, 0);
}

#[test]
fn a_gone_guests_stream_left_unwritten_past_the_drain_timeout_is_reset_and_counted() {
    let (listener, dst) = server();
    let mut h = Harness::new(Config {
        tcp_buffer: BUFFER,
        drain_timeout: Duration::from_millis(100),
        ..Config::default()
    });
    let (mut c, peer) = h.open(&listener, dst);
    h.upload_held(&mut c, true);
    h.fwd.shared.control.guest_gone(&[GUEST_MAC]);
    // The host does not read within the grace: the stream is cut short after all.
    h.run_for(Duration::from_millis(300));
    let stats = h.stats();
    assert_eq!(stats.tcp_open, 0, "{stats:?}");
    assert_eq!(stats.tcp_teardown_reset, 1);
    assert!(stats.tcp_dropped_bytes_guest_gone >= 64 * 1024, "{stats:?}");
    let (_, intact, end) = read_all(peer).join().unwrap();
    assert!(intact);
    assert_eq!(end, End::Reset);
}

#[test]
fn an_exit_drain_waits_for_the_guests_fin_and_the_host_gets_the_whole_stream() {
    let (listener, dst) = server();
    let mut h = Harness::with_buffer();
    let (mut c, peer) = h.open(&listener, dst);
    h.upload_held(&mut c, false);
    let now = h.now();
    h.fwd.begin_drain(now, &h.sink);
    assert!(!h.fwd.drained(), "the guest has not finished its stream");
    // New connections are refused while draining.
    h.segment(GUEST, PORT + 1, dst, 5000, None, TcpControl::Syn, &[]);
    assert_eq!(h.rsts_to_guest(), 1);
    // The guest finishes: the rest, then its FIN; the host reads it all.
    h.upload(&mut c, 4096, true);
    let (n, intact, end) = h.run_until(read_all(peer));
    assert_eq!((n, intact, end), (c.sent, true, End::Eof));
    assert!(h.fwd.drained());
    let now = h.now();
    h.fwd.finish(now, &h.sink);
    assert_eq!(
        h.rsts_to_guest(),
        1,
        "the guest learns the connection is over"
    );
    let stats = h.stats();
    assert_eq!((stats.tcp_open, stats.tcp_teardown_completed), (0, 1));
    assert_eq!(
        (stats.tcp_teardown_reset, stats.tcp_dropped_bytes_exit),
        (0, 0)
    );
}

#[test]
fn finishing_without_a_drain_resets_a_stream_cut_short_and_counts_what_was_left() {
    let (listener, dst) = server();
    let mut h = Harness::with_buffer();
    let (mut c, peer) = h.open(&listener, dst);
    // Even a finished stream is cut short if the host has not taken all of it.
    let len = h.upload_held(&mut c, true);
    let now = h.now();
    h.fwd.finish(now, &h.sink);
    assert_eq!(h.rsts_to_guest(), 1);
    let stats = h.stats();
    assert_eq!((stats.tcp_open, stats.tcp_teardown_reset), (0, 1));
    let (n, intact, end) = read_all(peer).join().unwrap();
    assert!(intact && n < len, "{n} of {len}");
    assert_eq!(end, End::Reset);
    assert_eq!(
        stats.tcp_dropped_bytes_exit,
        (len - n) as u64,
        "every byte the host did not get is counted: {stats:?}"
    );
}

#[test]
fn a_connection_closed_with_bytes_still_owed_hands_them_over_before_its_fin() {
    let (listener, dst) = server();
    let mut h = Harness::with_buffer();
    let (mut c, peer) = h.open(&listener, dst);
    let len = h.upload_held(&mut c, true);
    // The host closes its side first and we pass its FIN on; the guest acknowledges it:
    // the engine is done (LAST-ACK → CLOSED) while the ring still holds the guest's bytes.
    peer.shutdown(std::net::Shutdown::Write).unwrap();
    let fin = h.until(PORT, TcpControl::Fin);
    let guest_seq = 1001u32.wrapping_add(c.sent as u32).wrapping_add(1);
    let ack = seq(&fin).wrapping_add(1);
    h.segment(
        GUEST,
        PORT,
        dst,
        guest_seq,
        Some(ack),
        TcpControl::None,
        &[],
    );
    let (n, intact, end) = h.run_until(read_all(peer));
    assert_eq!((n, intact, end), (len, true, End::Eof));
    let stats = h.stats();
    assert_eq!(stats.tcp_open, 0, "{stats:?}");
    assert_eq!(stats.tcp_dropped_bytes_linger, 0);
}

#[test]
fn a_dropped_forwarder_resets_the_streams_it_still_owes() {
    let (listener, dst) = server();
    let mut h = Harness::with_buffer();
    let (mut c, peer) = h.open(&listener, dst);
    h.upload_held(&mut c, false);
    drop(h);
    let (_, intact, end) = read_all(peer).join().unwrap();
    assert!(intact);
    assert_eq!(
        end,
        End::Reset,
        "a stream cut short is never closed cleanly"
    );
}

#[test]
fn a_guest_fin_reaches_the_host_only_behind_every_byte() {
    let (listener, dst) = server();
    let mut h = Harness::with_buffer();
    let (mut c, peer) = h.open(&listener, dst);
    let len = h.upload_held(&mut c, true);
    // The FIN is in, most of the stream is not out: the host sees no end yet.
    peer.set_nonblocking(true).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut got = 0;
    loop {
        match (&peer).read(&mut buf) {
            Ok(0) => panic!("EOF after {got} of {len} bytes"),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(got < len);
    peer.set_nonblocking(false).unwrap();
    let reader = std::thread::spawn(move || {
        let mut peer = peer;
        let mut rest = Vec::new();
        peer.read_to_end(&mut rest).map(|_| rest.len())
    });
    let rest = h.run_until(reader).unwrap();
    assert_eq!(got + rest, len);
}

#[test]
fn a_gone_guests_connects_in_flight_and_udp_mappings_are_released_at_once() {
    // A server whose accept queue is full: our connect to it stays in flight.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    socket.listen(0).unwrap();
    let full = TcpListener::from(socket);
    let port = full.local_addr().unwrap().port();
    // Linux queues backlog + 1 connections.
    let _queued = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let echo = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp_dst = SocketAddr::from((HOST, echo.local_addr().unwrap().port()));
    let mut h = Harness::with_buffer();
    h.segment(
        GUEST,
        PORT,
        SocketAddr::from((HOST, port)),
        1,
        None,
        TcpControl::Syn,
        &[],
    );
    h.udp(4300, udp_dst, b"x");
    h.run_for(Duration::from_millis(50));
    let stats = h.stats();
    assert_eq!((stats.tcp_connecting, stats.udp_open), (1, 1), "{stats:?}");
    assert_eq!(h.fwd.shared.control.budget_usage().unwrap().connects, 1);

    h.fwd.shared.control.guest_gone(&[GUEST_MAC]);
    h.run_for(Duration::from_millis(20));
    let stats = h.stats();
    assert_eq!(
        (stats.tcp_open, stats.tcp_connecting, stats.udp_open),
        (0, 0, 0),
        "{stats:?}"
    );
    assert_eq!(stats.flows_guest_gone, 2);
    let usage = h.fwd.shared.control.budget_usage().unwrap();
    assert_eq!(
        (usage.connects, usage.tcp_flows, usage.udp_flows),
        (0, 0, 0)
    );
    // A second notice for the same guest finds nothing more.
    h.fwd.shared.control.guest_gone(&[GUEST_MAC]);
    h.run_for(Duration::from_millis(20));
    assert_eq!(h.stats().flows_guest_gone, 2);
}

#[test]
fn the_buffer_gauge_counts_what_flows_hold_and_falls_to_nothing_once_they_idle() {
    let (listener, dst) = server();
    let mut h = Harness::with_buffer();
    let (mut c, peer) = h.open(&listener, dst);
    let len = h.upload_held(&mut c, true);
    h.run_for(SWEEP + Duration::from_millis(100));
    let held = h.stats().tcp_buffer_bytes;
    let unwritten = c.sent as u64 - h.stats().bytes_to_host;
    assert!(
        held >= unwritten && held <= 2 * BUFFER as u64,
        "{held} bytes of buffers for {unwritten} bytes held"
    );
    let (n, intact, end) = h.run_until(read_all(peer));
    assert_eq!((n, intact, end), (len, true, End::Eof));
    // The first sweep after the last byte moved keeps the rings; the next frees them.
    h.run_for(2 * SWEEP + Duration::from_millis(100));
    assert_eq!(h.stats().tcp_buffer_bytes, 0, "{:?}", h.stats());
}
