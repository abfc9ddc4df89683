//! Every limit of host-switch at its bound, through the real pipeline: the `host-switch`
//! binary serves a TAP in a namespace this test creates (`--tap --netns --configure`), with
//! small limits; the kernel in that namespace is the guest (python3 scripts run there), and
//! its peers are sockets on the host's loopback. Each test drives a bound to its limit,
//! checks the refusal the guest sees (RST, a dropped datagram, SERVFAIL, 413), that existing
//! work still goes on, and that `/stats` (over the `--services` unix socket) shows the bound
//! and the refusals in its `limits` object.
//!
//! Traffic stays on loopback and inside the namespace. Needs root, `ip` and `python3`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{NetnsGuard, TempDir, api_request, eventually, privileged};

const BIN: &str = env!("CARGO_BIN_EXE_host-switch");
/// The guest's TAP MAC (`--configure` gives it the static lease's) and the gateway's.
const GUEST_MAC: &str = "5a:94:ef:e4:0c:ee";
const GATEWAY_MAC: &str = "5a:94:ef:e4:0c:dd";

/// The binary serving a TAP in a fresh namespace, with its control API on a unix socket.
struct Served {
    child: Child,
    ns: NetnsGuard,
    dir: TempDir,
}

impl Served {
    fn start(tag: &str, limits: &[&str]) -> Served {
        let ns = NetnsGuard::new(tag);
        let dir = TempDir::new(tag);
        let api = dir.path().join("api.sock");
        let child = Command::new(BIN)
            .args(["--tap", "tap0", "--configure"])
            .args(["--netns", &format!("/run/netns/{}", ns.name)])
            .args(["--services", &format!("unix://{}", api.display())])
            .args(["-ssh-port", "-1"])
            .args(limits)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let served = Served { child, ns, dir };
        eventually(Duration::from_secs(10), || api.exists().then_some(()))
            .expect("the API socket never appeared");
        // The guest's address is configured once the TAP is up.
        eventually(Duration::from_secs(10), || {
            served
                .ns
                .ip(&["-4", "addr", "show", "dev", "tap0"])
                .contains("192.168.127.2/24")
                .then_some(())
        })
        .expect("the TAP was never configured");
        served
    }

    fn api(&self) -> PathBuf {
        self.dir.path().join("api.sock")
    }

    fn stats(&self) -> Value {
        let (status, body) = api_request(&self.api(), "GET", "/stats", "");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// `/stats`' `limits.<name>`.
    fn limit(&self, name: &str) -> Value {
        self.stats()["limits"][name].clone()
    }

    /// Writes `body` as a python3 script and runs it in the namespace with `args`, stdin and
    /// stdout piped.
    fn python(&self, name: &str, body: &str, args: &[&str]) -> Script {
        let path = self.dir.path().join(name);
        std::fs::write(&path, body).unwrap();
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.ns.name, "python3"])
            .arg(&path)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Script {
            child,
            stdin,
            stdout,
        }
    }

    /// Runs a script to its end (at most 30 s); returns the JSON it printed last.
    fn python_result(&self, name: &str, body: &str, args: &[&str]) -> Value {
        let mut script = self.python(name, body, args);
        script.finish()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A python3 script in the namespace; killed on drop.
struct Script {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Script {
    /// The next line it prints, as JSON (its stdout is read with a 30 s bound: the scripts
    /// use socket timeouts, and the script is killed on drop otherwise).
    fn line(&mut self) -> Value {
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
    }

    /// Tells it to go on (a line on its stdin), then waits for its last line and its exit.
    fn finish(&mut self) -> Value {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"go\n");
        }
        let mut last = Value::Null;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut line = String::new();
            if self.stdout.read_line(&mut line).unwrap_or(0) == 0 || Instant::now() > deadline {
                break;
            }
            last = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        }
        let _ = self.child.wait();
        last
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// A TCP echo server on the host's loopback: every connection echoes until EOF.
fn tcp_echo() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            std::thread::spawn(move || {
                let _ = conn.set_read_timeout(Some(Duration::from_secs(60)));
                let mut buf = [0u8; 4096];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 || conn.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

/// Guest side of the TCP test: connections from two guest addresses, then data on those
/// that opened. Prints the outcome of each connect, waits for a line on stdin, sends data.
const TCP_FLOWS: &str = r#"
import json, socket, sys
port = int(sys.argv[1])
def connect(src):
    s = socket.socket()
    s.settimeout(10)
    s.bind((src, 0))
    try:
        s.connect(("192.168.127.254", port))
        return s
    except OSError as e:
        return type(e).__name__
a = [connect("192.168.127.2") for _ in range(4)]
b = [connect("192.168.127.3") for _ in range(2)]
name = lambda s: s if isinstance(s, str) else "connected"
print(json.dumps({"a": [name(s) for s in a], "b": [name(s) for s in b]}), flush=True)
sys.stdin.readline()
echoed = 0
for i, s in enumerate(x for x in a + b if not isinstance(x, str)):
    msg = b"hello %d" % i
    s.sendall(msg)
    if s.recv(100) == msg:
        echoed += 1
    s.close()
print(json.dumps({"echoed": echoed}), flush=True)
"#;

/// Guest side of the connects-in-flight test: two connects that never complete (their SYNs
/// are dropped by host listeners with a full backlog), from two guest addresses to two
/// listeners (one guest, or one destination, holds only its fair share of the connects), a
/// third refused at once, then after the first two gave up, a connect to the echo server.
const CONNECTS: &str = r#"
import json, socket, sys, time
stuck, echo, stuck2 = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
pending = []
for src, port in (("192.168.127.2", stuck), ("192.168.127.3", stuck2)):
    s = socket.socket()
    s.bind((src, 0))
    s.setblocking(False)
    s.connect_ex(("192.168.127.254", port))
    pending.append(s)
time.sleep(1)
s = socket.socket()
s.settimeout(10)
try:
    s.connect(("192.168.127.254", stuck))
    third = "connected"
except OSError as e:
    third = type(e).__name__
print(json.dumps({"third": third}), flush=True)
sys.stdin.readline()
s = socket.socket()
s.settimeout(10)
s.connect(("192.168.127.254", echo))
s.sendall(b"after")
print(json.dumps({"echo": s.recv(100).decode()}), flush=True)
"#;

#[test]
fn tcp_flows_in_total_and_per_guest_and_connects_in_flight() {
    if !privileged(
        "tcp_flows_in_total_and_per_guest_and_connects_in_flight",
        &["ip", "python3"],
    ) {
        return;
    }
    let served = Served::start(
        "lim-tcp",
        &[
            "--max-tcp-flows",
            "4",
            "--max-tcp-flows-per-guest",
            "3",
            "--max-connects",
            "2",
            "--tcp-connect-timeout",
            "3",
        ],
    );
    served
        .ns
        .ip(&["addr", "add", "192.168.127.3/24", "dev", "tap0"]);
    let echo = tcp_echo();

    // Guest .2 opens three (its own bound), the fourth is refused; .3 opens the fourth flow
    // of all, its second is refused by the total.
    let mut script = served.python("tcp.py", TCP_FLOWS, &[&echo.to_string()]);
    let opened = script.line();
    assert_eq!(
        opened["a"],
        serde_json::json!([
            "connected",
            "connected",
            "connected",
            "ConnectionRefusedError"
        ]),
        "{opened}"
    );
    assert_eq!(
        opened["b"],
        serde_json::json!(["connected", "ConnectionRefusedError"]),
        "{opened}"
    );
    let tcp = served.limit("tcp_flows");
    assert_eq!((n(&tcp["max"]), n(&tcp["open"])), (4, 4), "{tcp}");
    assert_eq!(n(&tcp["refused"]), 1, "{tcp}");
    let per_guest = served.limit("tcp_flows_per_guest");
    assert_eq!(n(&per_guest["max"]), 3, "{per_guest}");
    assert_eq!(n(&per_guest["refused"]), 1, "{per_guest}");
    assert_eq!(n(&per_guest["guests"]), 2, "{per_guest}");
    // The flows that opened still carry data.
    assert_eq!(script.finish()["echoed"], 4);
    eventually(Duration::from_secs(10), || {
        (n(&served.limit("tcp_flows")["open"]) == 0).then_some(())
    })
    .expect("the flows never closed");

    // Connects in flight: a listener whose backlog is full drops SYNs, so the host connects
    // hang until --tcp-connect-timeout.
    let stuck_listener = || {
        let stuck =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
        stuck.bind(&any.into()).unwrap();
        stuck.listen(0).unwrap();
        let port = stuck.local_addr().unwrap().as_socket().unwrap().port();
        let filler = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        (stuck, filler, port)
    };
    let (_stuck, _filler, stuck_port) = stuck_listener();
    let (_stuck2, _filler2, stuck2_port) = stuck_listener();
    let mut script = served.python(
        "connects.py",
        CONNECTS,
        &[
            &stuck_port.to_string(),
            &echo.to_string(),
            &stuck2_port.to_string(),
        ],
    );
    assert_eq!(script.line()["third"], "ConnectionRefusedError");
    let connects = served.limit("connects");
    assert_eq!(n(&connects["max"]), 2, "{connects}");
    assert_eq!(n(&connects["open"]), 2, "{connects}");
    assert_eq!(n(&connects["refused"]), 1, "{connects}");
    // Once the two give up, new connections go through again.
    eventually(Duration::from_secs(15), || {
        (n(&served.limit("connects")["open"]) == 0).then_some(())
    })
    .expect("the stuck connects never timed out");
    assert_eq!(script.finish()["echo"], "after");
    assert_eq!(n(&served.limit("connects")["refused"]), 1);
}

/// Guest side of the UDP test: one datagram from each (address, port), then a second round
/// on the same mappings; prints what came back.
const UDP_FLOWS: &str = r#"
import json, socket, sys
port = int(sys.argv[1])
socks = []
for src in ["192.168.127.2", "192.168.127.2", "192.168.127.3", "192.168.127.4"]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((src, 0))
    s.settimeout(2)
    socks.append(s)
def round(tag):
    got = []
    for i, s in enumerate(socks):
        s.sendto(b"%s %d" % (tag, i), ("192.168.127.254", port))
        try:
            got.append(s.recv(100).decode())
        except socket.timeout:
            got.append(None)
    return got
print(json.dumps({"first": round(b"one"), "second": round(b"two")}), flush=True)
"#;

#[test]
fn udp_mappings_in_total_and_per_guest() {
    if !privileged("udp_mappings_in_total_and_per_guest", &["ip", "python3"]) {
        return;
    }
    let served = Served::start(
        "lim-udp",
        &["--max-udp-flows", "2", "--max-udp-flows-per-guest", "1"],
    );
    for ip in ["192.168.127.3/24", "192.168.127.4/24"] {
        served.ns.ip(&["addr", "add", ip, "dev", "tap0"]);
    }
    let echo = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = echo.local_addr().unwrap().port();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let echo_thread = {
        let echo = echo.try_clone().unwrap();
        echo.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut buf = [0u8; 1500];
            while Instant::now() < deadline && !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok((n, peer)) = echo.recv_from(&mut buf) {
                    let _ = echo.send_to(&buf[..n], peer);
                }
            }
        })
    };
    let out = served.python_result("udp.py", UDP_FLOWS, &[&port.to_string()]);
    // .2's first port maps; its second is over its own bound; .3 maps; .4 is over the total.
    let want = |tag: &str| serde_json::json!([format!("{tag} 0"), null, format!("{tag} 2"), null]);
    assert_eq!(out["first"], want("one"), "{out}");
    assert_eq!(out["second"], want("two"), "existing mappings go on: {out}");
    let udp = served.limit("udp_flows");
    assert_eq!((n(&udp["max"]), n(&udp["open"])), (2, 2), "{udp}");
    assert_eq!(
        n(&udp["refused"]),
        2,
        "one datagram of .4 per round: {udp} {}",
        served.stats()
    );
    let per_guest = served.limit("udp_flows_per_guest");
    assert_eq!(n(&per_guest["max"]), 1, "{per_guest}");
    assert_eq!(n(&per_guest["refused"]), 2, "{per_guest}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    echo_thread.join().unwrap();
}

/// Guest side of the DNS test: a query the upstream never answers, a second one at once
/// (over the pending bound: SERVFAIL), then two TCP connections to the DNS service (the
/// second over its bound: RST), a query on the first.
const DNS: &str = r#"
import json, socket, struct
def query(ident, name):
    q = struct.pack(">HHHHHH", ident, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        if label:
            q += bytes([len(label)]) + label.encode()
    return q + b"\0" + struct.pack(">HH", 1, 1)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(5)
u.sendto(query(1, "first.example."), ("192.168.127.1", 53))
u.sendto(query(2, "second.example."), ("192.168.127.1", 53))
answer = u.recv(512)
ident, flags = struct.unpack(">HH", answer[:4])
out = {"id": ident, "rcode": flags & 0xf}
t1 = socket.create_connection(("192.168.127.1", 53), timeout=5)
try:
    t2 = socket.create_connection(("192.168.127.1", 53), timeout=5)
    out["second_tcp"] = "connected"
except OSError as e:
    out["second_tcp"] = type(e).__name__
q = query(3, "gateway.containers.internal.")
t1.sendall(struct.pack(">H", len(q)) + q)
length = struct.unpack(">H", t1.recv(2))[0]
reply = b""
while len(reply) < length:
    reply += t1.recv(length - len(reply))
out["tcp_id"] = struct.unpack(">H", reply[:2])[0]
out["tcp_rcode"] = reply[3] & 0xf
print(json.dumps(out), flush=True)
"#;

#[test]
fn dns_pending_queries_and_tcp_connections() {
    if !privileged(
        "dns_pending_queries_and_tcp_connections",
        &["ip", "python3"],
    ) {
        return;
    }
    // An upstream that takes queries and never answers.
    let upstream = UdpSocket::bind("127.0.0.1:0").unwrap();
    let upstream_addr = upstream.local_addr().unwrap().to_string();
    let served = Served::start(
        "lim-dns",
        &[
            "--dns-upstream",
            &upstream_addr,
            "--max-dns-pending",
            "1",
            "--max-dns-tcp",
            "1",
        ],
    );
    let out = served.python_result("dns.py", DNS, &[]);
    assert_eq!(out["id"], 2, "the second query is answered at once: {out}");
    assert_eq!(out["rcode"], 2, "SERVFAIL: {out}");
    assert_eq!(out["second_tcp"], "ConnectionRefusedError", "{out}");
    assert_eq!((&out["tcp_id"], &out["tcp_rcode"]), (&3.into(), &0.into()));
    // The first query did go upstream.
    upstream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 512];
    let (len, _) = upstream.recv_from(&mut buf).unwrap();
    assert!(len > 12);
    let pending = served.limit("dns_pending");
    assert_eq!(n(&pending["max"]), 1, "{pending}");
    assert_eq!(n(&pending["refused"]), 1, "{pending}");
    let tcp = served.limit("dns_tcp");
    assert_eq!(n(&tcp["max"]), 1, "{tcp}");
    assert_eq!(n(&tcp["refused"]), 1, "{tcp}");
}

/// Frames from made-up source MACs, straight onto the TAP (AF_PACKET).
const MACS: &str = r#"
import json, socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("tap0", 0))
for i in range(int(sys.argv[1])):
    src = bytes([0x02, 0, 0, 0, 0x10, i])
    # A broadcast frame of an experimental EtherType (IEEE 802: 0x88b5).
    s.send(b"\xff" * 6 + src + b"\x88\xb5" + b"limits test".ljust(46, b"\0"))
print(json.dumps({"sent": int(sys.argv[1])}), flush=True)
"#;

#[test]
fn mac_table_entries() {
    if !privileged("mac_table_entries", &["ip", "python3", "ping"]) {
        return;
    }
    let served = Served::start("lim-mac", &["--max-mac-entries", "3"]);
    let ping = |ns: &NetnsGuard| {
        let out = ns.run(
            "ping",
            &["-c1", "-W2", "192.168.127.1"],
            Duration::from_secs(5),
        );
        String::from_utf8_lossy(&out.stdout).contains("1 received")
    };
    // The guest is known first (its own MAC learned).
    assert!(ping(&served.ns), "the gateway answers the guest");
    let before = served.limit("mac_entries");
    assert_eq!(n(&before["max"]), 3, "{before}");
    assert_eq!(n(&before["refused"]), 0, "{before}");
    let out = served.python_result("macs.py", MACS, &["5"]);
    assert_eq!(out["sent"], 5);
    // The guest's MAC and two new ones fill the table; three are refused.
    let mac = eventually(Duration::from_secs(5), || {
        let mac = served.limit("mac_entries");
        (n(&mac["refused"]) >= 3).then_some(mac)
    })
    .expect("refusals never counted");
    assert_eq!(n(&mac["refused"]), 3, "{mac}");
    assert_eq!(n(&mac["open"]), 3, "{mac}");
    assert!(ping(&served.ns), "the known guest is still answered");
}

/// IPv4 first fragments (more to follow, never completed) of distinct datagrams to the
/// gateway, straight onto the TAP.
const FRAGMENTS: &str = r#"
import json, socket, struct, sys
def checksum(b):
    s = sum(struct.unpack(">%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff)
    s += s >> 16
    return ~s & 0xffff
dst_mac = bytes.fromhex(sys.argv[1].replace(":", ""))
src_mac = bytes.fromhex(sys.argv[2].replace(":", ""))
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("tap0", 0))
payload = b"\x08\x00\x00\x00" + b"x" * 996
count = int(sys.argv[3])
for ident in range(1, count + 1):
    h = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, 0x2000, 64, 1, 0,
                    bytes([192, 168, 127, 2]), bytes([192, 168, 127, 1]))
    h = h[:10] + struct.pack(">H", checksum(h)) + h[12:]
    s.send(dst_mac + src_mac + b"\x08\x00" + h + payload)
print(json.dumps({"sent": count}), flush=True)
"#;

#[test]
fn reassembly_memory_and_fragment_timeout() {
    if !privileged("reassembly_memory_and_fragment_timeout", &["ip", "python3"]) {
        return;
    }
    let served = Served::start(
        "lim-frag",
        &["--max-reassembly-bytes", "3000", "--fragment-timeout", "2"],
    );
    let out = served.python_result("frags.py", FRAGMENTS, &[GATEWAY_MAC, GUEST_MAC, "5"]);
    assert_eq!(out["sent"], 5);
    let held = eventually(Duration::from_secs(5), || {
        let r = served.limit("reassembly_bytes");
        (n(&r["refused"]) >= 1).then_some(r)
    })
    .expect("no fragment refused");
    assert_eq!(n(&held["max"]), 3000, "{held}");
    assert!(n(&held["held"]) > 0 && n(&held["held"]) <= 3000, "{held}");
    // Fragments of 1000 bytes: two or three fit, the rest are refused.
    assert!((2..=3).contains(&n(&held["refused"])), "{held}");
    let timeout = served.limit("fragment_timeout");
    assert_eq!(n(&timeout["secs"]), 2, "{timeout}");
    // After the timeout the held datagrams are abandoned and their memory released.
    let released = eventually(Duration::from_secs(10), || {
        let stats = served.stats();
        let r = &stats["limits"];
        (n(&r["reassembly_bytes"]["held"]) == 0).then(|| r.clone())
    })
    .expect("reassembly memory never released");
    assert!(
        n(&released["fragment_timeout"]["expired"]) >= 2,
        "{released}"
    );
    assert_eq!(n(&released["reassembly_datagrams"]["open"]), 0);
}

/// An in-guest API request over the bound.
const GUEST_API: &str = r#"
import json, socket
s = socket.create_connection(("192.168.127.1", 80), timeout=5)
body = b'{"local":":1","remote":"' + b"x" * 2000 + b'"}'
try:
    s.sendall(b"POST /services/forwarder/expose HTTP/1.1\r\nHost: gw\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
except OSError:
    pass
answer = b""
try:
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        answer += chunk
except OSError:
    pass
print(json.dumps({"answer": answer.decode(errors="replace")}), flush=True)
"#;

#[test]
fn api_request_size() {
    if !privileged("api_request_size", &["ip", "python3"]) {
        return;
    }
    let served = Served::start("lim-api", &["--max-api-request", "1024"]);
    // The control API: a body over the bound gets 413, and the API goes on.
    let big = format!(r#"{{"Name":"{}"}}"#, "x".repeat(2000));
    let (status, _) = api_request(&served.api(), "POST", "/services/dns/add", &big);
    assert_eq!(status, 413);
    let small = r#"{"Name":"small.internal.","Records":[{"Name":"a","IP":"192.168.127.9"}]}"#;
    assert_eq!(
        api_request(&served.api(), "POST", "/services/dns/add", small).0,
        200
    );
    let api = served.limit("api_request");
    assert_eq!((n(&api["max"]), n(&api["refused"])), (1024, 1), "{api}");
    // The in-guest API likewise.
    let out = served.python_result("api.py", GUEST_API, &[]);
    let answer = out["answer"].as_str().unwrap();
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
    let guest = served.limit("guest_api_request");
    assert_eq!(
        (n(&guest["max"]), n(&guest["refused"])),
        (1024, 1),
        "{guest}"
    );
    assert!(
        served.stats()["forwarder"].is_object(),
        "stats still served"
    );
}

#[test]
fn every_guest_facing_bound_is_in_stats_limits() {
    if !privileged("every_guest_facing_bound_is_in_stats_limits", &["ip"]) {
        return;
    }
    let served = Served::start(
        "lim-all",
        &[
            "--max-fragments-per-datagram",
            "5",
            "--max-reassembly-datagrams",
            "6",
            "--max-icmp-requests",
            "7",
            "--max-dhcp-offers",
            "8",
            "--max-dhcp-offers-per-mac",
            "2",
            "--max-dns-tcp-pipeline",
            "9",
            "--max-multicast-memberships",
            "10",
            "--max-multicast-memberships-per-port",
            "3",
            "--max-auto-forwards",
            "11",
        ],
    );
    let stats = served.stats();
    let l = &stats["limits"];
    for (name, max) in [
        ("fragments_per_datagram", 5),
        ("reassembly_datagrams", 6),
        ("icmp_requests", 7),
        ("dhcp_offers", 8),
        ("dhcp_offers_per_mac", 2),
        ("dns_tcp_pipeline", 9),
        ("multicast_memberships", 10),
    ] {
        assert_eq!(n(&l[name]["max"]), max, "{name}: {l}");
    }
    assert_eq!(n(&l["multicast_memberships"]["max_per_port"]), 3, "{l}");
    assert_eq!(n(&l["auto_forwards"]["max_per_guest"]), 11, "{l}");
    assert_eq!(n(&l["auto_forwards"]["refused"]), 0, "{l}");
    // The DNS service's count of FIN/NULL/Xmas probes is there too.
    assert_eq!(n(&stats["dns"]["tcp"]["probes_dropped"]), 0, "{stats}");
    for (name, counter) in [
        ("fragments_per_datagram", "refused"),
        ("icmp_requests", "refused"),
        ("dhcp_offers", "reclaimed"),
        ("dhcp_offers_per_mac", "refused"),
        ("dns_tcp_pipeline", "stalls"),
        ("dns_tcp", "reclaimed"),
        ("dns_tcp", "closing"),
    ] {
        assert_eq!(n(&l[name][counter]), 0, "{name}.{counter}: {l}");
    }
}

/// An echo request to the gateway with 64 bytes of data, in IPv4 fragments of `argv[3]`
/// bytes, sent twice (identifications `argv[4]` and one more) straight onto the TAP; prints
/// whether each was answered.
const FRAGMENTED_PING: &str = r#"
import json, socket, struct, sys, time
def checksum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(">%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff)
    s += s >> 16
    return ~s & 0xffff
dst_mac = bytes.fromhex(sys.argv[1].replace(":", ""))
src_mac = bytes.fromhex(sys.argv[2].replace(":", ""))
step = int(sys.argv[3])
base = int(sys.argv[4])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
s.bind(("tap0", 0))
s.settimeout(0.2)
answered = []
for ident in (base, base + 1):
    icmp = struct.pack(">BBHHH", 8, 0, 0, 0x4242, ident) + bytes(range(64))
    icmp = icmp[:2] + struct.pack(">H", checksum(icmp)) + icmp[4:]
    for off in range(0, len(icmp), step):
        piece = icmp[off:off + step]
        more = 0x2000 if off + step < len(icmp) else 0
        h = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(piece), ident, more | (off // 8),
                        64, 1, 0, bytes([192, 168, 127, 2]), bytes([192, 168, 127, 1]))
        h = h[:10] + struct.pack(">H", checksum(h)) + h[12:]
        s.send(dst_mac + src_mac + b"\x08\x00" + h + piece)
    got = False
    deadline = time.time() + 3
    while time.time() < deadline and not got:
        try:
            f = s.recv(2048)
        except socket.timeout:
            continue
        ip = f[14:]
        if f[12:14] == b"\x08\x00" and ip[9] == 1 and ip[20] == 0 and ip[26:28] == struct.pack(">H", ident):
            got = True
    answered.append(got)
print(json.dumps({"answered": answered}), flush=True)
"#;

#[test]
fn fragments_per_datagram() {
    if !privileged("fragments_per_datagram", &["ip", "python3"]) {
        return;
    }
    // 72 bytes of ICMP in 8-byte fragments are 9; in 24-byte ones, 3.
    let served = Served::start("lim-fpd", &["--max-fragments-per-datagram", "4"]);
    let args = [GATEWAY_MAC, GUEST_MAC, "8", "1"];
    let out = served.python_result("fpd8.py", FRAGMENTED_PING, &args);
    assert_eq!(out["answered"], serde_json::json!([false, false]), "{out}");
    let l = served.limit("fragments_per_datagram");
    assert_eq!((n(&l["max"]), n(&l["refused"])), (4, 2), "{l}");
    let args = [GATEWAY_MAC, GUEST_MAC, "24", "10"];
    let out = served.python_result("fpd24.py", FRAGMENTED_PING, &args);
    assert_eq!(out["answered"], serde_json::json!([true, true]), "{out}");
    // By default a ping in 8-byte fragments is answered, as Linux answers it.
    let served = Served::start("lim-fpd-default", &[]);
    let args = [GATEWAY_MAC, GUEST_MAC, "8", "20"];
    let out = served.python_result("fpd8.py", FRAGMENTED_PING, &args);
    assert_eq!(out["answered"], serde_json::json!([true, true]), "{out}");
}
