//! Traffic both ways at once through one worker: the Linux kernel in a network namespace as
//! the guest uploads to one server on the host's 127.0.0.1 and downloads from another (both
//! reached through 192.168.127.254), and each direction must move [`TARGET`] bytes within
//! [`DEADLINE`]. With one worker both flows share its queue and its time, the case where a
//! download the worker spent its turns on used to starve the upload beside it.
//!
//! No speed is asserted: the deadline is generous, the test only says neither direction
//! stalls. Needs root (namespaces, TAP); skips loudly without it unless CI=true. Traffic stays
//! on loopback and inside the namespace created here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use forwarder::{Control, Forwarder};
use stack::wire::EthernetAddress;
use support::{NetnsGuard, TapLink, eventually, open_tap, privileged};
use switch::runtime::{Runtime, RuntimeConfig};
use switch::tap::TapConfig;

/// gvproxy's host address: the forwarder sends it to 127.0.0.1.
const HOST: Ipv4Addr = Ipv4Addr::new(192, 168, 127, 254);
const GUEST: Ipv4Addr = Ipv4Addr::new(192, 168, 127, 2);
/// What each direction must move.
const TARGET: u64 = 16 << 20;
const DEADLINE: Duration = Duration::from_secs(120);
const CHUNK: usize = 64 * 1024;

/// The runtime with the forwarder on a single worker, neighbours learned from ARP as the
/// binary wires it.
fn one_worker_runtime() -> Runtime {
    let control = Control::new(IpAddr::V4(GUEST), &[]);
    let mut config = RuntimeConfig {
        workers: 1,
        ..RuntimeConfig::default()
    };
    config.forwarder = Some(Forwarder::factory(
        forwarder::Config::default(),
        control.clone(),
    ));
    config.neighbours = Some(Arc::new(move |ip, mac| {
        let _ = control.learn_neighbour(ip, mac);
    }));
    Runtime::start(config).expect("start runtime")
}

/// Moves bytes over one connection until `stop`: writes if `send`, else reads; counts them
/// in `moved`. Timeouts on the socket keep every call short, so `stop` is seen.
fn pump(mut conn: TcpStream, send: bool, moved: Arc<AtomicU64>, stop: Arc<AtomicBool>) {
    conn.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    conn.set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = vec![0x5a_u8; CHUNK];
    while !stop.load(Ordering::Relaxed) {
        let result = if send {
            conn.write(&buf)
        } else {
            conn.read(&mut buf)
        };
        match result {
            Ok(0) => return,
            Ok(n) => {
                moved.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// A host server on 127.0.0.1 that accepts one connection and pumps it (see [`pump`]).
fn serve(send: bool, moved: Arc<AtomicU64>, stop: Arc<AtomicBool>) -> (u16, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let handle = std::thread::spawn(move || {
        listener.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + DEADLINE;
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            if let Ok((conn, _)) = listener.accept() {
                conn.set_nonblocking(false).unwrap();
                return pump(conn, send, moved, stop);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    (port, handle)
}

#[test]
fn both_directions_make_progress_through_one_worker() {
    if !privileged("bidir: both directions through one worker", &["ip"]) {
        return;
    }
    let rt = one_worker_runtime();
    let ns = NetnsGuard::new("bidir");
    let tap = open_tap(
        &ns,
        Some(TapConfig {
            mac: Some(EthernetAddress([0x02, 0, 0, 0, 0, 2])),
            mtu: 1500,
            address: GUEST,
            ..TapConfig::default()
        }),
    );
    let _link = TapLink::start(tap, rt.attacher().attach("tap:bidir").expect("attach"));

    let stop = Arc::new(AtomicBool::new(false));
    let up = Arc::new(AtomicU64::new(0));
    let down = Arc::new(AtomicU64::new(0));
    let (up_port, up_server) = serve(false, up.clone(), stop.clone());
    let (down_port, down_server) = serve(true, Arc::new(AtomicU64::new(0)), stop.clone());
    let connect = |port: u16| {
        let addr = SocketAddr::from((HOST, port));
        ns.netns()
            .run(|| TcpStream::connect_timeout(&addr, Duration::from_secs(10)))
            .expect("enter namespace")
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"))
    };
    // The download first, so it is in full flight when the upload starts beside it.
    let download = connect(down_port);
    let guest_reader = {
        let (down, stop) = (down.clone(), stop.clone());
        std::thread::spawn(move || pump(download, false, down, stop))
    };
    let upload = connect(up_port);
    let guest_writer = {
        let (stop, sent) = (stop.clone(), Arc::new(AtomicU64::new(0)));
        std::thread::spawn(move || pump(upload, true, sent, stop))
    };

    let started = Instant::now();
    let both = eventually(DEADLINE, || {
        let moved = (up.load(Ordering::Relaxed), down.load(Ordering::Relaxed));
        (moved.0 >= TARGET && moved.1 >= TARGET).then_some(moved)
    });
    eprintln!(
        "bidir: after {:?}: guest→host {} bytes, host→guest {} bytes",
        started.elapsed(),
        up.load(Ordering::Relaxed),
        down.load(Ordering::Relaxed)
    );
    stop.store(true, Ordering::Relaxed);
    for t in [guest_reader, guest_writer, up_server, down_server] {
        t.join().expect("pump thread");
    }
    let stats = rt.stats();
    assert!(
        both.is_some(),
        "within {DEADLINE:?}: guest→host {} bytes, host→guest {} bytes (each should reach \
         {TARGET}); workers {:?}",
        up.load(Ordering::Relaxed),
        down.load(Ordering::Relaxed),
        stats.workers,
    );
}
