//! The forwarder end to end: `host-switch` serving a TAP in a namespace this test creates
//! (the kernel as guest), servers on the host's 127.0.0.1 reached through 192.168.127.254,
//! the control API on a unix socket and inside the guest at 192.168.127.1:80.
//!
//! Needs root (namespaces, TAP); skips loudly without it unless CI=true. Traffic stays on
//! loopback and inside the namespace.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{NetnsGuard, TempDir, eventually, privileged};

const BIN: &str = env!("CARGO_BIN_EXE_host-switch");
const PAGE: &str = "hello from the host\n";
const GUEST_PAGE: &str = "hello from the guest\n";

/// host-switch serving `ns` through tap0, its API on `dir/api.sock`. Killed on drop.
struct Serve {
    child: Child,
    api: std::path::PathBuf,
}

impl Serve {
    fn start(ns: &NetnsGuard, dir: &TempDir, extra: &[&str]) -> Serve {
        let api = dir.path().join("api.sock");
        let netns = format!("/run/netns/{}", ns.name);
        let services = format!("unix://{}", api.display());
        let mut args = vec![
            "--netns",
            &netns,
            "--tap",
            "tap0",
            "--configure",
            "--ssh-port",
            "-1",
            "--services",
            &services,
        ];
        args.extend_from_slice(extra);
        let child = Command::new(BIN)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let serve = Serve { child, api };
        eventually(Duration::from_secs(10), || {
            (serve.api.exists() && ns.ip(&["addr"]).contains("192.168.127.2")).then_some(())
        })
        .expect("host-switch up");
        serve
    }

    fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// curl on the host against the API socket; returns (status, body).
    fn api(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        api_call(&self.api, method, path, body)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn api_call(sock: &Path, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-w", "\n%{http_code}", "-X", method, "--unix-socket"])
        .arg(sock)
        .arg(format!("http://api{path}"));
    if let Some(b) = body {
        cmd.args(["-d", b]);
    }
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

/// A host HTTP server on 127.0.0.1 answering every request with `PAGE`.
fn http_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || serve_page(listener, PAGE));
    port
}

/// A server in the guest answering every request with `GUEST_PAGE`: its socket is bound to
/// 0.0.0.0 inside `ns` (by a thread that enters it) and listening before this returns, so no
/// client can race its start; a thread here serves it.
fn guest_server(ns: &NetnsGuard) -> u16 {
    let listener = ns
        .netns()
        .run(|| TcpListener::bind("0.0.0.0:0"))
        .unwrap()
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || serve_page(listener, GUEST_PAGE));
    port
}

fn serve_page(listener: TcpListener, page: &'static str) {
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else { continue };
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            let mut seen = Vec::new();
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                page.len()
            );
        });
    }
}

/// One HTTP GET over `conn` (with a read timeout set); the whole answer, to the server's
/// close.
fn fetch(mut conn: impl Read + Write) -> String {
    conn.write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
        .unwrap();
    let mut got = String::new();
    conn.read_to_string(&mut got).unwrap();
    got
}

/// [`fetch`] over TCP from the host.
fn fetch_tcp(addr: &str) -> String {
    let conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    fetch(conn)
}

/// A host UDP echo server on 127.0.0.1.
fn udp_echo() -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while let Ok((n, peer)) = socket.recv_from(&mut buf) {
            let _ = socket.send_to(&buf[..n], peer);
        }
    });
    port
}

/// A port on 127.0.0.1 nothing listens on.
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn py(ns: &NetnsGuard, script: &str, timeout: Duration) -> String {
    let out = ns.run("python3", &["-c", script], timeout);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "python failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn guest_reaches_host_tcp_udp_icmp_and_the_api_forwards() {
    if !privileged("forwarder", &["ip", "curl", "python3", "ping"]) {
        return;
    }
    let ns = NetnsGuard::new("fwd");
    let dir = TempDir::new("fwd");
    let serve = Serve::start(&ns, &dir, &["--udp-idle-timeout", "2"]);
    let mode = std::fs::metadata(&serve.api).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );

    // curl from the guest gets the host's page.
    let http = http_server();
    let url = format!("http://192.168.127.254:{http}/");
    let out = ns.run("curl", &["-s", "-m", "5", &url], Duration::from_secs(10));
    assert_eq!(String::from_utf8_lossy(&out.stdout), PAGE, "{out:?}");

    // A refused port is refused quickly; a black-holed one does not hold up others.
    let closed = closed_port();
    let blackhole =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    blackhole
        .bind(&std::net::SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
        .unwrap();
    blackhole.listen(0).unwrap();
    let hole = blackhole.local_addr().unwrap().as_socket().unwrap().port();
    // Fill its accept queue so that further SYNs are dropped.
    let mut fillers = Vec::new();
    for _ in 0..4 {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.set_nonblocking(true).unwrap();
        let _ = s.connect(&std::net::SocketAddr::from((Ipv4Addr::LOCALHOST, hole)).into());
        fillers.push(s);
    }
    std::thread::sleep(Duration::from_millis(200));
    let out = py(
        &ns,
        &format!(
            r#"
import socket, time, urllib.request
t = time.time()
s = socket.socket()
try:
    s.connect(("192.168.127.254", {closed}))
    print("connected?!")
except ConnectionRefusedError:
    print("refused in %.3f" % (time.time() - t))
hs = [socket.socket() for _ in range(3)]
for h in hs:
    h.setblocking(False)
    try: h.connect(("192.168.127.254", {hole}))
    except BlockingIOError: pass
t = time.time()
body = urllib.request.urlopen("http://192.168.127.254:{http}/", timeout=5).read().decode()
print("others ok in %.3f %s" % (time.time() - t, body.strip()))
"#
        ),
        Duration::from_secs(20),
    );
    let refused: f64 = out
        .split("refused in ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(refused < 1.0, "{out}");
    assert!(
        out.contains("others ok in 0.") && out.contains("hello from the host"),
        "{out}"
    );

    // Ping the host's virtual address and the gateway.
    for target in ["192.168.127.254", "192.168.127.1"] {
        let out = ns.run(
            "ping",
            &["-c", "2", "-W", "2", target],
            Duration::from_secs(10),
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("2 received"), "ping {target}: {text}");
    }

    // UDP round trips, and ICMP port unreachable for a closed port.
    let echo = udp_echo();
    let udp_closed = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = py(
        &ns,
        &format!(
            r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
for i in range(5):
    msg = b"datagram %d" % i
    s.sendto(msg, ("192.168.127.254", {echo}))
    data, peer = s.recvfrom(100)
    assert data == msg and peer == ("192.168.127.254", {echo}), (data, peer)
print("udp ok")
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
c.settimeout(3)
c.connect(("192.168.127.254", {udp_closed}))
c.send(b"anyone?")
try:
    c.recv(100)
    print("answered?!")
except ConnectionRefusedError:
    print("port unreachable")
"#
        ),
        Duration::from_secs(20),
    );
    assert!(
        out.contains("udp ok") && out.contains("port unreachable"),
        "{out}"
    );

    // The idle timeout (2 s here) reaps the mappings.
    std::thread::sleep(Duration::from_secs(4));
    let (code, stats) = serve.api("GET", "/stats", None);
    assert_eq!(code, 200);
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    let fwd = &stats["forwarder"];
    assert!(fwd["udp_expired"].as_u64().unwrap() >= 2, "{stats}");
    assert_eq!(fwd["udp_open"], 0, "{stats}");
    assert!(fwd["tcp_refused"].as_u64().unwrap() >= 1, "{stats}");

    // Forwards through the API: TCP into a guest server, before/after refused.
    let guest_http = guest_server(&ns);
    let guest_udp = ns.spawn(
        "python3",
        &[
            "-c",
            "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('192.168.127.2',9000))\nwhile True:\n d,a=s.recvfrom(9000)\n s.sendto(b'guest:'+d,a)",
        ],
    );
    std::thread::sleep(Duration::from_millis(500));
    let local = format!("127.0.0.1:{}", closed_port());
    assert!(TcpStream::connect(&local).is_err(), "refused before expose");
    let body = format!(r#"{{"local":"{local}","remote":":{guest_http}"}}"#);
    assert_eq!(
        serve
            .api("POST", "/services/forwarder/expose", Some(&body))
            .0,
        200
    );
    let (code, msg) = serve.api("POST", "/services/forwarder/expose", Some(&body));
    assert_eq!((code, msg.trim()), (500, "proxy already running"));
    assert_eq!(serve.api("GET", "/services/forwarder/expose", None).0, 400);
    assert_eq!(
        serve
            .api("POST", "/services/forwarder/expose", Some("{nope"))
            .0,
        400
    );
    assert!(
        fetch_tcp(&local).ends_with(GUEST_PAGE),
        "through the API's forward"
    );
    let (_, all) = serve.api("GET", "/services/forwarder/all", None);
    let all: serde_json::Value = serde_json::from_str(&all).unwrap();
    assert_eq!(all[0]["local"], local.as_str());
    assert_eq!(
        all[0]["remote"],
        format!("192.168.127.2:{guest_http}").as_str()
    );
    assert_eq!(all[0]["protocol"], "tcp");
    let body = format!(r#"{{"local":"{local}"}}"#);
    assert_eq!(
        serve
            .api("POST", "/services/forwarder/unexpose", Some(&body))
            .0,
        200
    );
    assert!(
        TcpStream::connect(&local).is_err(),
        "refused after unexpose"
    );

    // UDP forward.
    let ulocal = format!(
        "127.0.0.1:{}",
        UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    );
    let body = format!(r#"{{"local":"{ulocal}","remote":"192.168.127.2:9000","protocol":"udp"}}"#);
    assert_eq!(
        serve
            .api("POST", "/services/forwarder/expose", Some(&body))
            .0,
        200
    );
    // UDP may be lost, and the guest's server may still be starting: ask again each second,
    // for at most 20 s.
    let reply = udp_ask(&ulocal, b"hi", 20, Duration::from_secs(1));
    assert_eq!(
        reply.as_deref(),
        Some(&b"guest:hi"[..]),
        "UDP through the forward"
    );
    let body = format!(r#"{{"local":"{ulocal}","protocol":"udp"}}"#);
    assert_eq!(
        serve
            .api("POST", "/services/forwarder/unexpose", Some(&body))
            .0,
        200
    );

    // Expose from inside the guest, through the gateway's port 80.
    let glocal = format!("127.0.0.1:{}", closed_port());
    let body = format!(r#"{{"local":"{glocal}","remote":":{guest_http}"}}"#);
    let out = ns.run(
        "curl",
        &[
            "-s",
            "-m",
            "5",
            "-w",
            "%{http_code}",
            "-d",
            &body,
            "http://192.168.127.1/services/forwarder/expose",
        ],
        Duration::from_secs(10),
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200", "{out:?}");
    assert!(fetch_tcp(&glocal).ends_with(GUEST_PAGE), "in-guest expose");
    let (_, leases) = serve.api("GET", "/services/dhcp/leases", None);
    assert!(leases.contains("192.168.127.2"), "{leases}");
    drop(guest_udp);
    drop(fillers);
}

#[test]
fn bulk_transfer_half_close_and_a_thousand_connections() {
    if !privileged("forwarder bulk", &["ip", "python3"]) {
        return;
    }
    let ns = NetnsGuard::new("fwdbulk");
    let dir = TempDir::new("fwdbulk");
    let serve = Serve::start(&ns, &dir, &[]);
    let fds_before = serve.fds();

    // 256 MiB each way: the guest sends, half-closes, then reads the host's 256 MiB.
    const SIZE: usize = 256 << 20;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut got = 0usize;
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = conn.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            for b in &buf[..n] {
                h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
            }
            got += n;
        }
        let block: Vec<u8> = (0..(1 << 20))
            .map(|i: u32| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let t = Instant::now();
        for _ in 0..(SIZE >> 20) {
            conn.write_all(&block).unwrap();
        }
        conn.shutdown(std::net::Shutdown::Write).unwrap();
        (got, h, t.elapsed())
    });
    let out = py(
        &ns,
        &format!(
            r#"
import socket, hashlib, time
block = bytes(((i * 2654435761) % (1 << 32)) >> 13 & 0xff for i in range(1 << 20))
s = socket.create_connection(("192.168.127.254", {port}))
t = time.time()
for _ in range({SIZE} >> 20):
    s.sendall(block)
s.shutdown(socket.SHUT_WR)
up = time.time() - t
h = hashlib.sha256(); n = 0; t = time.time()
while True:
    d = s.recv(1 << 20)
    if not d: break
    h.update(d); n += len(d)
down = time.time() - t
exp = hashlib.sha256()
for _ in range({SIZE} >> 20): exp.update(block)
print("down", n, h.hexdigest() == exp.hexdigest(), "%.1f" % ({SIZE} * 8 / down / 1e6))
print("up %.1f" % ({SIZE} * 8 / up / 1e6))
"#
        ),
        Duration::from_secs(300),
    );
    let (got, hash, _) = server.join().unwrap();
    let block: Vec<u8> = (0..(1u32 << 20))
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let mut expect = 0xcbf2_9ce4_8422_2325u64;
    for _ in 0..(SIZE >> 20) {
        for b in &block {
            expect = (expect ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    assert_eq!(got, SIZE, "{out}");
    assert_eq!(hash, expect, "guest→host bytes intact");
    assert!(out.contains(&format!("down {SIZE} True")), "{out}");
    eprintln!("bulk Mbit/s (guest view): {out}");

    // 1,000 connections open at once, each exchanging data with a host echo server.
    let eport = support::echo_server();
    let ready = dir.path().join("ready");
    let script = format!(
        r#"
import socket, resource, time
resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
socks = [socket.create_connection(("192.168.127.254", {eport}), timeout=10) for _ in range(1000)]
for i, s in enumerate(socks): s.sendall(b"conn %d" % i)
for i, s in enumerate(socks): assert s.recv(100) == b"conn %d" % i
open("{ready}", "w").write("ok")
time.sleep(3)
for s in socks: s.close()
print("1000 ok")
"#,
        ready = ready.display()
    );
    let guest = ns.spawn("python3", &["-c", &script]);
    eventually(Duration::from_secs(60), || ready.exists().then_some(())).expect("1000 up");
    let rss = serve.rss_kib();
    let fds_open = serve.fds();
    let out = guest.wait(Duration::from_secs(30));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1000 ok"),
        "{out:?}"
    );
    eprintln!("1000 connections: host-switch RSS {rss} KiB, fds {fds_open} (before {fds_before})");
    assert!(
        fds_open >= fds_before + 1000,
        "one host socket per connection"
    );
    // Bound: 64 MiB of RSS for 1,000 open connections with a little data each.
    assert!(rss < 64 * 1024, "RSS {rss} KiB");
    // Every host socket is closed once the flows end.
    let after = eventually(Duration::from_secs(10), || {
        let n = serve.fds();
        (n <= fds_before).then_some(n)
    });
    assert!(
        after.is_some(),
        "fds now {} (before {fds_before})",
        serve.fds()
    );
}

/// Inbound TCP: a static `--forward` into the guest, one into an address of the guest that
/// has never sent anything (its MAC is learned by ARP, the SYN waits for it), and a
/// `protocol: unix` expose whose local end is a unix socket; and a Rust `TcpStream` from
/// inside the guest to the host through 192.168.127.254.
#[test]
fn inbound_forwards_and_a_rust_client_in_the_guest() {
    if !privileged("forwarder inbound", &["ip", "curl"]) {
        return;
    }
    let ns = NetnsGuard::new("fwdin");
    let dir = TempDir::new("fwdin");
    let guest = guest_server(&ns);
    let (seen, unseen) = (closed_port(), closed_port());
    let seen_spec = format!("tcp/127.0.0.1:{seen}=192.168.127.2:{guest}");
    let unseen_spec = format!("tcp/127.0.0.1:{unseen}=192.168.127.3:{guest}");
    let serve = Serve::start(
        &ns,
        &dir,
        &["--forward", &seen_spec, "--forward", &unseen_spec],
    );
    ns.ip(&["addr", "add", "192.168.127.3/24", "dev", "tap0"]);

    // The static lease's address: its MAC is known from the start.
    assert!(fetch_tcp(&format!("127.0.0.1:{seen}")).ends_with(GUEST_PAGE));
    // An address the guest never used: ARP first, then the engine's SYN retransmission.
    let got = fetch_tcp(&format!("127.0.0.1:{unseen}"));
    assert!(got.ends_with(GUEST_PAGE), "{got:?}");
    let (_, stats) = serve.api("GET", "/stats", None);
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    let fwd = &stats["forwarder"];
    assert!(fwd["arp_requests"].as_u64().unwrap() >= 1, "{stats}");
    assert!(fwd["inbound_unresolved"].as_u64().unwrap() >= 1, "{stats}");
    assert_eq!(fwd["inbound_dropped"], 0, "{stats}");
    assert!(fwd["inbound_accepted"].as_u64().unwrap() >= 2, "{stats}");

    // UDP into the unseen address through the API: the first datagram may be lost while
    // ARP finds the guest (a client retries, as UDP clients do).
    // Bound to that address: a socket on 0.0.0.0 would answer from tap0's first address.
    ns.ip(&["addr", "add", "192.168.127.4/24", "dev", "tap0"]);
    let echo = ns
        .netns()
        .run(|| UdpSocket::bind("192.168.127.4:0"))
        .unwrap()
        .unwrap();
    let echo_port = echo.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((n, peer)) = echo.recv_from(&mut buf) {
            let mut reply = b"guest:".to_vec();
            reply.extend_from_slice(&buf[..n]);
            let _ = echo.send_to(&reply, peer);
        }
    });
    let ulocal = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let body =
        format!(r#"{{"local":"{ulocal}","remote":"192.168.127.4:{echo_port}","protocol":"udp"}}"#);
    assert_eq!(
        serve
            .api("POST", "/services/forwarder/expose", Some(&body))
            .0,
        200
    );
    let answer = udp_ask(&ulocal, b"hi", 10, Duration::from_millis(500));
    assert_eq!(answer.as_deref(), Some(&b"guest:hi"[..]));

    // A unix socket's local end reaching the guest's TCP server; gone after unexpose.
    let path = dir.path().join("guest.sock");
    let body = format!(
        r#"{{"local":"{}","remote":"192.168.127.2:{guest}","protocol":"unix"}}"#,
        path.display()
    );
    let (code, msg) = serve.api("POST", "/services/forwarder/expose", Some(&body));
    assert_eq!(code, 200, "{msg}");
    let conn = std::os::unix::net::UnixStream::connect(&path).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert!(fetch(conn).ends_with(GUEST_PAGE));
    let body = format!(r#"{{"local":"{}","protocol":"unix"}}"#, path.display());
    assert_eq!(
        serve
            .api("POST", "/services/forwarder/unexpose", Some(&body))
            .0,
        200
    );
    assert!(std::os::unix::net::UnixStream::connect(&path).is_err());

    // A Rust client in the guest (a thread that entered the namespace) to the host's server.
    let http = http_server();
    let conn = ns
        .netns()
        .run(|| {
            TcpStream::connect_timeout(
                &std::net::SocketAddr::from(([192, 168, 127, 254], http)),
                Duration::from_secs(5),
            )
        })
        .unwrap()
        .unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(conn.peer_addr().unwrap().port(), http);
    assert!(fetch(conn).ends_with(PAGE));
}

/// `host-switch run -- curl` prints the page of a server this test runs on 127.0.0.1.
#[test]
fn curl_inside_host_switch_run_reaches_the_host() {
    if !privileged("forwarder run curl", &["ip", "curl"]) {
        return;
    }
    let http = http_server();
    let url = format!("http://192.168.127.254:{http}/");
    let out = support::run_with_timeout(
        Command::new(BIN)
            .args(["run", "--", "curl", "-s", "-m", "10", &url])
            .stdin(Stdio::null()),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), PAGE, "{out:?}");
}

/// Sends `message` from a fresh loopback socket to `to` and waits `wait` for an answer, at
/// most `tries` times (UDP may be lost, and the far end may still be starting); the first
/// answer.
fn udp_ask(to: &str, message: &[u8], tries: usize, wait: Duration) -> Option<Vec<u8>> {
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 64];
    (0..tries).find_map(|_| {
        client.send_to(message, to).unwrap();
        client.recv(&mut buf).ok().map(|n| buf[..n].to_vec())
    })
}
