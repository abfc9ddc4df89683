//! Faults on either side never bring host-switch down, with the Linux kernel in network
//! namespaces as the guests and servers on the host's 127.0.0.1 reached through
//! 192.168.127.254:
//! - a guest link that goes away mid-transfer: its flows end (the host peer gets what the
//!   guest was acknowledged, then RST at once: the guest had not finished its stream), another
//!   guest's transfer goes on byte-exact, and the guest works again once its link is back;
//! - a host peer that resets mid-transfer: the guest sees ECONNRESET;
//! - a host peer that stops reading: the guest's writes stall, what the forwarder holds for
//!   the flow stays within its TCP buffer, memory stays flat; the transfer completes once the
//!   host reads again;
//! - SIGTERM to the `host-switch` binary under heavy traffic: it exits 0 once its drain grace
//!   is over (the streams never end by themselves) and removes its API socket and pid file.
//!
//! Needs root (namespaces, TAP); skips loudly without it unless CI=true. Traffic stays on
//! loopback and inside the namespaces created here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use forwarder::Control;
use stack::wire::EthernetAddress;
use support::stream::{End, Pattern, Sink};
use support::{NetnsGuard, TapLink, TempDir, echo_server, eventually, open_tap, privileged};
use switch::runtime::{Runtime, RuntimeConfig};
use switch::tap::{Tap, TapConfig};

const BIN: &str = env!("CARGO_BIN_EXE_host-switch");
/// gvproxy's host address: the forwarder sends it to 127.0.0.1.
const HOST: Ipv4Addr = Ipv4Addr::new(192, 168, 127, 254);

/// The runtime with the forwarder, wired as the binary wires it: neighbours learned from ARP,
/// flows dropped when a guest's port detaches. `tcp_buffer` is the engine's per-connection
/// buffer.
fn forwarder_runtime(tcp_buffer: usize) -> (Runtime, Arc<Control>) {
    let control = Control::new(IpAddr::V4(Ipv4Addr::new(192, 168, 127, 2)), &[]);
    let fwd = forwarder::Config {
        tcp_buffer,
        ..forwarder::Config::default()
    };
    let mut config = RuntimeConfig {
        workers: 2,
        ..RuntimeConfig::default()
    };
    config.use_forwarder(fwd, &control);
    (Runtime::start(config).expect("start runtime"), control)
}

/// A namespace whose tap0 (192.168.127.`n`, MAC 02:00:00:00:00:`n`) is linked to a runtime
/// port. A second descriptor on the TAP is kept, so the device (and the guest's addresses and
/// routes) outlives its link: [`Guest::unplug`] and [`Guest::plug`] pull and put back the
/// cable.
struct Guest {
    ns: NetnsGuard,
    tap: Tap,
    link: Option<TapLink>,
}

impl Guest {
    fn new(rt: &Runtime, tag: &str, n: u8) -> Guest {
        let ns = NetnsGuard::new(tag);
        let tap = open_tap(
            &ns,
            Some(TapConfig {
                mac: Some(EthernetAddress([0x02, 0, 0, 0, 0, n])),
                mtu: 1500,
                address: Ipv4Addr::new(192, 168, 127, n),
                ..TapConfig::default()
            }),
        );
        let mut guest = Guest {
            ns,
            tap,
            link: None,
        };
        guest.plug(rt, tag);
        guest
    }

    fn plug(&mut self, rt: &Runtime, name: &str) {
        let port = rt.attacher().attach(name).expect("attach");
        self.link = Some(TapLink::start(
            self.tap.try_clone().expect("clone TAP"),
            port,
        ));
    }

    fn unplug(&mut self) {
        self.link = None;
    }

    /// A TCP connection from inside the namespace to `port` on the host's virtual address.
    fn connect(&self, port: u16) -> TcpStream {
        let addr = SocketAddr::from((HOST, port));
        self.ns
            .netns()
            .run(|| TcpStream::connect_timeout(&addr, Duration::from_secs(10)))
            .expect("enter namespace")
            .unwrap_or_else(|e| panic!("connect {addr} from {}: {e}", self.ns.name))
    }
}

/// A guest connection writing the pattern as fast as its socket takes it, each write waiting
/// at most 200 ms (a write that times out counts as a stall), until `stop`: then it
/// half-closes and returns how many bytes its socket accepted.
struct Writer {
    accepted: Arc<AtomicU64>,
    stalls: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    handle: JoinHandle<io::Result<u64>>,
}

impl Writer {
    fn start(mut conn: TcpStream) -> Writer {
        conn.set_write_timeout(Some(Duration::from_millis(200)))
            .expect("write timeout");
        let accepted = Arc::new(AtomicU64::new(0));
        let stalls = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s, st) = (accepted.clone(), stalls.clone(), stop.clone());
        let handle = std::thread::spawn(move || {
            let pattern = Pattern::new();
            let mut buf = Vec::new();
            let mut sent = 0u64;
            while !st.load(Ordering::Relaxed) {
                pattern.fill(sent, &mut buf, 64 * 1024);
                match conn.write(&buf) {
                    Ok(n) => {
                        sent += n as u64;
                        a.store(sent, Ordering::Relaxed);
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                    {
                        s.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            conn.shutdown(Shutdown::Write)?;
            Ok(sent)
        });
        Writer {
            accepted,
            stalls,
            stop,
            handle,
        }
    }

    fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    fn finish(self) -> io::Result<u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("writer thread")
    }
}

/// One line through the host's echo server from inside `guest`.
fn echo_from(guest: &Guest, port: u16, line: &[u8]) {
    let mut conn = guest.connect(port);
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    conn.write_all(line).expect("write");
    let mut back = vec![0u8; line.len()];
    conn.read_exact(&mut back).expect("echo");
    assert_eq!(back, line);
}

fn rss_kib(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Waits until `value` has not changed for `quiet`; returns it.
fn plateau(timeout: Duration, quiet: Duration, mut value: impl FnMut() -> u64) -> Option<u64> {
    let mut last = (value(), Instant::now());
    eventually(timeout, || {
        let now = value();
        if now != last.0 {
            last = (now, Instant::now());
            return None;
        }
        (last.1.elapsed() >= quiet).then_some(now)
    })
}

#[test]
fn a_guest_link_that_goes_away_loses_its_flows_and_no_one_else_notices() {
    if !privileged("faults: guest link detach", &["ip"]) {
        return;
    }
    let (rt, control) = forwarder_runtime(1 << 20);
    let mut a = Guest::new(&rt, "gone-a", 10);
    let b = Guest::new(&rt, "gone-b", 11);
    let (sink_a, sink_b) = (Sink::start(None, true), Sink::start(None, true));
    let writer_a = Writer::start(a.connect(sink_a.port));
    let writer_b = Writer::start(b.connect(sink_b.port));
    eventually(Duration::from_secs(20), || {
        (sink_a.received() >= 1 << 20 && sink_b.received() >= 1 << 20).then_some(())
    })
    .expect("both transfers under way");
    assert_eq!(control.stats().tcp_open, 2, "{:?}", control.stats());

    // A's cable is pulled mid-transfer: its host peer gets what A was acknowledged, then RST
    // at once (A never finished its stream); its flow is gone.
    let pulled = Instant::now();
    a.unplug();
    let got_a = sink_a.handle.join().expect("sink A");
    let took = got_a.at.duration_since(pulled);
    assert_eq!(got_a.end, End::Reset, "{got_a:?}");
    assert!(got_a.intact, "A's bytes before the reset are intact");
    assert!(took < Duration::from_secs(3), "reset after {took:?}");
    let stats = eventually(Duration::from_secs(5), || {
        let s = control.stats();
        (s.tcp_open == 1).then_some(s)
    })
    .unwrap_or_else(|| panic!("A's flow is still open: {:?}", control.stats()));
    assert_eq!(stats.flows_guest_gone, 1, "{stats:?}");
    assert_eq!(stats.tcp_teardown_reset, 1, "{stats:?}");
    assert_eq!(stats.tcp_dropped_bytes_guest_gone, 0, "{stats:?}");
    assert_eq!(rt.stats().ports.len(), 1, "only B's");
    let b_at_pull = sink_b.received();

    // The cable is back: A's stale connection is refused, a fresh one works.
    a.plug(&rt, "gone-a");
    let stale = eventually(Duration::from_secs(20), || {
        writer_a.handle.is_finished().then_some(())
    });
    assert!(stale.is_some(), "A's old connection lingers");
    let err = writer_a
        .finish()
        .expect_err("A's old connection ended in an error");
    assert!(
        matches!(
            err.kind(),
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
        ),
        "{err:?}"
    );
    echo_from(&a, echo_server(), b"A is back\n");

    // B went on all along, and its stream arrives whole.
    eventually(Duration::from_secs(20), || {
        (sink_b.received() >= b_at_pull + (1 << 20)).then_some(())
    })
    .expect("B still moving after A left");
    let sent_b = writer_b.finish().expect("B's writes");
    let got_b = sink_b.handle.join().expect("sink B");
    assert_eq!(got_b.end, End::Eof, "{got_b:?}");
    assert_eq!(got_b.bytes, sent_b, "{got_b:?}");
    assert!(got_b.intact, "B's bytes intact");
    let stats = control.stats();
    eprintln!(
        "guest gone: host reset {took:?} after the pull; B moved {sent_b} bytes; {} flows dropped",
        stats.flows_guest_gone
    );
}

#[test]
fn a_host_peer_that_resets_mid_transfer_resets_the_guest() {
    if !privileged("faults: host reset", &["ip", "python3"]) {
        return;
    }
    let (rt, control) = forwarder_runtime(1 << 20);
    let guest = Guest::new(&rt, "hostrst", 10);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        let mut some = vec![0u8; 256 * 1024];
        conn.read_exact(&mut some).expect("read some");
        socket2::SockRef::from(&conn)
            .set_linger(Some(Duration::ZERO))
            .expect("SO_LINGER 0");
        drop(conn);
    });
    let script = format!(
        r#"
import socket, sys
s = socket.create_connection(("{HOST}", {port}), timeout=10)
chunk = b"x" * (64 << 10)
sent = 0
try:
    while sent < (256 << 20):
        s.sendall(chunk)
        sent += len(chunk)
    print("no error after", sent, "bytes")
    sys.exit(2)
except ConnectionResetError as e:
    print("reset after", sent, "bytes:", e)
    sys.exit(0)
except Exception as e:
    print("other error after", sent, "bytes:", repr(e))
    sys.exit(3)
"#
    );
    let out = guest
        .ns
        .run("python3", &["-c", &script], Duration::from_secs(40));
    server.join().expect("server");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("reset after"),
        "{out:?}"
    );
    let stats = eventually(Duration::from_secs(5), || {
        let s = control.stats();
        (s.tcp_open == 0).then_some(s)
    });
    assert!(stats.is_some(), "flow still open: {:?}", control.stats());
    eprintln!("host reset: guest says {}", stdout.trim());
}

#[test]
fn a_host_peer_that_stops_reading_stalls_the_guest_within_bounds() {
    if !privileged("faults: host stops reading", &["ip", "ss"]) {
        return;
    }
    const TCP_BUFFER: usize = 64 * 1024;
    let (rt, control) = forwarder_runtime(TCP_BUFFER);
    let guest = Guest::new(&rt, "stall", 10);
    let rss_start = rss_kib("self");
    let sink = Sink::start(Some(64 * 1024), false);
    let writer = Writer::start(guest.connect(sink.port));

    // The host never reads: the guest's writes stall, and so does what reaches the host.
    let stalled = plateau(Duration::from_secs(30), Duration::from_secs(1), || {
        writer.accepted()
    })
    .expect("the guest's writes never stalled");
    assert!(
        writer.stalls.load(Ordering::Relaxed) > 0,
        "no write timed out"
    );
    let to_host = plateau(Duration::from_secs(10), Duration::from_millis(500), || {
        control.stats().bytes_to_host
    })
    .expect("bytes to the host keep growing");
    let ss = guest.ns.run(
        "ss",
        &["-tniH", "dst", &format!("{HOST}:{}", sink.port)],
        Duration::from_secs(10),
    );
    let ss = String::from_utf8_lossy(&ss.stdout).into_owned();
    let send_q: u64 = ss
        .split_whitespace()
        .nth(2)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no Send-Q in {ss:?}"));
    let acked: u64 = ss
        .split_whitespace()
        .find_map(|f| f.strip_prefix("bytes_acked:"))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no bytes_acked in {ss:?}"));
    assert!(send_q > 0, "the guest's send queue is empty: {ss}");
    // What the forwarder acknowledged to the guest but has not handed to the host is in the
    // engine's receive buffer (bytes_acked counts the SYN too).
    let held = acked.saturating_sub(1).saturating_sub(to_host);
    assert!(
        held <= TCP_BUFFER as u64,
        "forwarder holds {held} bytes (acked {acked}, to host {to_host})"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(writer.accepted(), stalled, "writes went on");
    assert_eq!(control.stats().bytes_to_host, to_host, "sends went on");
    let rss_stalled = rss_kib("self");
    assert!(
        rss_stalled < rss_start + 64 * 1024,
        "RSS {rss_start} KiB → {rss_stalled} KiB"
    );

    // The host reads again: the transfer resumes and arrives whole.
    sink.go.store(true, Ordering::Relaxed);
    eventually(Duration::from_secs(30), || {
        (writer.accepted() >= stalled + (4 << 20)).then_some(())
    })
    .expect("the transfer never resumed");
    let sent = writer.finish().expect("guest writes");
    let got = sink.handle.join().expect("sink");
    assert_eq!(got.end, End::Eof, "{got:?}");
    assert_eq!(got.bytes, sent, "{got:?}");
    assert!(got.intact, "bytes intact");
    eprintln!(
        "stall: guest stalled at {stalled} bytes (Send-Q {send_q}), host had {to_host}, \
         forwarder held {held}; RSS {rss_start} → {rss_stalled} KiB; {sent} bytes in all"
    );
}

/// A child process killed on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `GET path` on the API's unix socket; the body.
fn api_get(socket: &Path, path: &str) -> Option<String> {
    let mut s = std::os::unix::net::UnixStream::connect(socket).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    s.read_to_string(&mut response).ok()?;
    response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())
}

#[test]
fn sigterm_under_heavy_traffic_exits_cleanly() {
    if !privileged("faults: SIGTERM under traffic", &["ip", "iperf3", "ss"]) {
        return;
    }
    let ns = NetnsGuard::new("term");
    let dir = TempDir::new("term");
    let api = dir.path().join("api.sock");
    let pid_file = dir.path().join("hs.pid");
    let netns = format!("/run/netns/{}", ns.name);
    let child = Command::new(BIN)
        .args(["--netns", &netns, "--tap", "tap0", "--configure"])
        .args(["--ssh-port", "-1", "--dns-upstream", "127.0.0.1:9"])
        .args(["--drain-timeout", "2"])
        .arg("-listen")
        .arg(format!("unix://{}", api.display()))
        .arg("-pid-file")
        .arg(&pid_file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn host-switch");
    let mut serve = Killed(child);
    eventually(Duration::from_secs(10), || {
        (api.exists() && pid_file.exists() && ns.ip(&["addr"]).contains("192.168.127.2"))
            .then_some(())
    })
    .expect("host-switch up");

    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
        .to_string();
    let _server = Killed(
        Command::new("iperf3")
            .args(["-s", "-B", "127.0.0.1", "-p", &port])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("iperf3 server"),
    );
    eventually(Duration::from_secs(10), || {
        let out = Command::new("ss")
            .args(["-Hltn", &format!("sport = :{port}")])
            .output()
            .ok()?;
        (!out.stdout.is_empty()).then_some(())
    })
    .expect("iperf3 server listening");
    let host = HOST.to_string();
    let client = ns.spawn(
        "iperf3",
        &["-c", &host, "-p", &port, "-t", "40", "-P", "2", "--bidir"],
    );

    // Traffic both ways, then SIGTERM in the middle of it.
    let moving = eventually(Duration::from_secs(30), || {
        let stats: serde_json::Value = serde_json::from_str(&api_get(&api, "/stats")?).ok()?;
        let fwd = &stats["forwarder"];
        let up = fwd["bytes_to_host"].as_u64()?;
        let down = fwd["bytes_from_host"].as_u64()?;
        (up >= 16 << 20 && down >= 16 << 20).then_some((up, down))
    })
    .expect("iperf3 traffic through the forwarder");
    let pid = libc::pid_t::try_from(serve.0.id()).expect("pid");
    let signalled = Instant::now();
    // SAFETY: kill takes integers; `pid` is our live child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    // The iperf3 streams never end by themselves: they are reset when the 2 s grace is over.
    let status = eventually(Duration::from_secs(5), || serve.0.try_wait().ok().flatten())
        .expect("no exit within 5 s of SIGTERM");
    let took = signalled.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(!api.exists(), "API socket removed");
    assert!(!pid_file.exists(), "pid file removed");
    drop(client);
    eprintln!(
        "SIGTERM: exit 0 after {took:?}, with {} MiB up and {} MiB down so far",
        moving.0 >> 20,
        moving.1 >> 20
    );
}
