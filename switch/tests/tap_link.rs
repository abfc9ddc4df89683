//! The TAP link with the kernel as guest: a namespace this test creates, a configured TAP in it
//! with one queue per worker, served by `link::tap::TapLink` inside the data plane's workers.
//! The kernel resolves the gateway and pings it; the port's counters see frames both ways; and
//! when the link shuts down the device is gone.
//!
//! Needs root. Without it the test skips loudly, unless CI=true, where it must run.
//! Traffic stays inside the namespace created here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::Ordering;
use std::time::Duration;

mod support;

use support::{NetnsGuard, privileged};

use switch::link::tap::TapLink;
use switch::runtime::{Runtime, RuntimeConfig};
use switch::tap::{TapConfig, TapOptions};

const GUEST_MAC: [u8; 6] = [0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xee];

#[test]
fn tap_link_carries_frames_both_ways() {
    if !privileged("tap_link_carries_frames_both_ways", &["ip", "ping"]) {
        return;
    }
    let rt = Runtime::start(RuntimeConfig {
        workers: 3,
        ..RuntimeConfig::default()
    })
    .unwrap();
    let ns = NetnsGuard::new("tap-link");
    let options = TapOptions {
        multi_queue: true,
        offload: true,
        configure: Some(TapConfig {
            mac: Some(stack::wire::EthernetAddress(GUEST_MAC)),
            mtu: 1500,
            ..TapConfig::default()
        }),
    };
    let link = TapLink::open("hs0", &ns.netns(), &options, &rt.attacher(), 1500).unwrap();
    let out = ns.run(
        "ping",
        &["-c3", "-i0.2", "-W5", "192.168.127.1"],
        Duration::from_secs(10),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let rx = link.counters().rx_frames.load(Ordering::Relaxed);
    let tx = link.counters().tx_frames.load(Ordering::Relaxed);
    assert!(
        rx >= 4 && tx >= 4,
        "ARP and three echoes each way: {rx} in, {tx} out"
    );
    let stats = rt.stats();
    assert_eq!(stats.gateway.echo_replies, 3);
    assert_eq!(stats.workers.len(), 3);
    assert!(
        stats
            .ports
            .iter()
            .any(|p| p.id == link.id() && p.rx_frames == rx)
    );
    assert!(ns.ip(&["link", "show"]).contains("hs0"));
    link.shutdown();
    assert!(
        !ns.ip(&["link", "show"]).contains("hs0"),
        "the device goes with its last queue"
    );
    assert!(rt.stats().ports.is_empty());
}

/// A multi-queue TAP: the kernel spreads the guest's connections over the queues, each
/// worker runs the flows that arrive on its own queue, and a flow's frames stay where it
/// lives (the kernel steers a flow to the queue its replies are written on), so frames are
/// not handed between workers.
#[test]
fn a_multi_queue_tap_spreads_flows_over_workers_and_keeps_them_there() {
    if !privileged(
        "a_multi_queue_tap_spreads_flows_over_workers_and_keeps_them_there",
        &["ip", "python3"],
    ) {
        return;
    }
    const FLOWS: usize = 16;
    const BYTES: usize = 256 * 1024;
    let control = forwarder::Control::new("192.168.127.2".parse().unwrap(), &[]);
    let mut config = RuntimeConfig {
        workers: 4,
        ..RuntimeConfig::default()
    };
    config.use_forwarder(forwarder::Config::default(), &control);
    let rt = Runtime::start(config).unwrap();
    let ns = NetnsGuard::new("tap-mq");
    let options = TapOptions {
        multi_queue: true,
        offload: true,
        configure: Some(TapConfig {
            mac: Some(stack::wire::EthernetAddress(GUEST_MAC)),
            ..TapConfig::default()
        }),
    };
    let link = TapLink::open("tap0", &ns.netns(), &options, &rt.attacher(), 65520).unwrap();

    // A host server that counts each connection's bytes.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut conns = Vec::new();
        for _ in 0..FLOWS {
            let (conn, _) = listener.accept().unwrap();
            conns.push(std::thread::spawn(move || {
                let mut conn = conn;
                let mut sink = Vec::new();
                std::io::Read::read_to_end(&mut conn, &mut sink).unwrap();
                sink.len()
            }));
        }
        for c in conns {
            got.push(c.join().unwrap());
        }
        got
    });
    let script = format!(
        "import socket, threading\n\
         def go():\n\
         \x20   s = socket.create_connection(('192.168.127.254', {port}), timeout=20)\n\
         \x20   s.sendall(b'x' * {BYTES})\n\
         \x20   s.close()\n\
         ts = [threading.Thread(target=go) for _ in range({FLOWS})]\n\
         [t.start() for t in ts]\n\
         [t.join() for t in ts]\n"
    );
    let out = ns.run("python3", &["-c", &script], Duration::from_secs(60));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = server.join().unwrap();
    assert_eq!(got, vec![BYTES; FLOWS], "every byte of every connection");

    let stats = rt.stats();
    let busy = stats.workers.iter().filter(|w| w.handled > 0).count();
    assert!(busy >= 2, "flows on one worker only: {:?}", stats.workers);
    let handled: u64 = stats.workers.iter().map(|w| w.handled).sum();
    let handoffs: u64 = stats.workers.iter().map(|w| w.handoffs_out).sum();
    assert!(
        handoffs <= FLOWS as u64,
        "{handoffs} handoffs for {handled} flow packets: {:?}",
        stats.workers
    );
    link.shutdown();
}

/// 300 UDP requests from the guest's kernel, each echoed by a host server after a pause,
/// through a TAP served by one worker that polls `busy_poll` without sleeping after each
/// short wait. Its busy-poll counters (found, gave up) after the exchange, and again once it
/// has been idle a while.
fn request_reply_with_busy_poll(name: &str, busy_poll: Duration) -> ((u64, u64), (u64, u64)) {
    const REQUESTS: usize = 300;
    let control = forwarder::Control::new("192.168.127.2".parse().unwrap(), &[]);
    let mut config = RuntimeConfig {
        workers: 1,
        busy_poll,
        ..RuntimeConfig::default()
    };
    config.use_forwarder(forwarder::Config::default(), &control);
    let rt = Runtime::start(config).unwrap();
    let ns = NetnsGuard::new(name);
    let options = TapOptions {
        multi_queue: false,
        offload: true,
        configure: Some(TapConfig {
            mac: Some(stack::wire::EthernetAddress(GUEST_MAC)),
            ..TapConfig::default()
        }),
    };
    let link = TapLink::open("tap0", &ns.netns(), &options, &rt.attacher(), 65520).unwrap();
    // The server's pause is a wait the worker cannot do without: each request has one
    // toward the host and one for the guest's next request.
    let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let port = server.local_addr().unwrap().port();
    let echo = std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        for _ in 0..REQUESTS {
            let Ok((n, from)) = server.recv_from(&mut buf) else {
                return;
            };
            std::thread::sleep(Duration::from_micros(300));
            server.send_to(&buf[..n], from).unwrap();
        }
    });
    let script = format!(
        "import socket\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.settimeout(10)\n\
         for i in range({REQUESTS}):\n\
         \x20   s.sendto(b'%d' % i, ('192.168.127.254', {port}))\n\
         \x20   assert s.recv(64) == b'%d' % i\n"
    );
    let out = ns.run("python3", &["-c", &script], Duration::from_secs(60));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    echo.join().unwrap();
    let counters = |rt: &Runtime| {
        let w = rt.stats().workers[0];
        (w.busy_poll_found, w.busy_poll_gave_up)
    };
    // Past the last budget: the worker has given up polling and gone to sleep.
    std::thread::sleep(Duration::from_millis(100));
    let after = counters(&rt);
    std::thread::sleep(Duration::from_millis(1500));
    let idle = counters(&rt);
    link.shutdown();
    (after, idle)
}

#[test]
fn a_worker_in_a_ping_pong_polls_instead_of_sleeping_and_an_idle_one_sleeps() {
    if !privileged(
        "a_worker_in_a_ping_pong_polls_instead_of_sleeping_and_an_idle_one_sleeps",
        &["ip", "python3"],
    ) {
        return;
    }
    // A budget far above the waits (a few hundred microseconds), so that a machine busy
    // with other tests still finds most replies and requests while polling.
    let (after, idle) = request_reply_with_busy_poll("busy-poll", Duration::from_millis(20));
    assert!(
        after.0 >= 300,
        "most of 600 waits (a reply, the next request) found while polling: {after:?}"
    );
    // The stats request that read `after` wakes the worker itself, and when it lands within
    // the budget of the worker's last wake-up (a timer's), the worker polls once more for a
    // budget and gives up: one at most. A worker that its timers kept polling would give up
    // on each of them.
    assert_eq!(idle.0, after.0, "an idle worker finds nothing by polling");
    assert!(
        idle.1 <= after.1 + 1,
        "an idle worker sleeps: its timers do not set it polling: {after:?} then {idle:?}"
    );

    let (after, idle) = request_reply_with_busy_poll("busy-poll-off", Duration::ZERO);
    assert_eq!(
        (after, idle),
        ((0, 0), (0, 0)),
        "a budget of zero never polls"
    );
}

#[test]
fn a_deleted_tap_detaches_its_port() {
    if !privileged("a_deleted_tap_detaches_its_port", &["ip"]) {
        return;
    }
    let rt = Runtime::start(RuntimeConfig {
        workers: 2,
        ..RuntimeConfig::default()
    })
    .unwrap();
    let ns = NetnsGuard::new("tap-gone");
    let options = TapOptions {
        multi_queue: true,
        offload: true,
        configure: Some(TapConfig::default()),
    };
    let link = TapLink::open("hs0", &ns.netns(), &options, &rt.attacher(), 1500).unwrap();
    assert_eq!(rt.stats().ports.len(), 1);
    ns.ip(&["link", "del", "hs0"]);
    // The device is gone while we still hold its queues: the workers notice and detach it.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while !rt.stats().ports.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the port is still attached"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    link.shutdown();
    assert!(rt.stats().ports.is_empty());
}
