//! A guest taking the service away, through the real `host-switch` binary with the Linux
//! kernel in a namespace as the guest (python3 scripts and `ip` run there), and its peers on
//! the host's loopback:
//! - the guest deletes its TAP: the port detaches at once, the host peers of its flows see
//!   RST, and no thread spins on the dead device;
//! - the descriptor limit: a low soft `RLIMIT_NOFILE` is raised to the hard one at start; a
//!   hard limit too low for the flow bounds shrinks them, so a guest opening more connections
//!   than descriptors allow is refused by the flow bound (counted there and under
//!   `descriptors`), never by a failing `socket()`, and the control API keeps answering;
//!   descriptors exhausted anyway are counted as such and warned about once, not per retry;
//! - slowloris on the in-guest API (192.168.127.1:80): connections beyond
//!   `--max-api-connections` are refused, each counts as a TCP flow, and one that has not sent
//!   its request within `--api-header-timeout` is reset;
//! - a SYN flood from one guest at a host server that never answers holds at most its fair
//!   share of `--max-connects`: another guest's connections still go through.
//!
//! Needs root, `ip`, `python3`, `prlimit` and `curl`; skips loudly without them unless CI=true.
//! Traffic stays on loopback and inside the namespaces created here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use support::served::{Options, Served, n};
use support::{eventually, privileged};

/// Guest side of a held connection: connect to the host's port, one echo, then wait.
const HOLD: &str = r#"
import json, socket, sys
s = socket.create_connection(("192.168.127.254", int(sys.argv[1])), timeout=10)
s.sendall(b"hello")
print(json.dumps({"echo": s.recv(100).decode()}), flush=True)
sys.stdin.readline()
"#;

/// CPU ticks per second (`sysconf(_SC_CLK_TCK)`).
fn clock_ticks() -> u64 {
    // SAFETY: sysconf takes an integer and touches no memory.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(t).unwrap_or(100)
}

#[test]
fn a_deleted_tap_detaches_its_port_and_resets_its_flows_without_spinning() {
    if !privileged(
        "a_deleted_tap_detaches_its_port_and_resets_its_flows_without_spinning",
        &["ip", "python3"],
    ) {
        return;
    }
    let served = Served::start("tapdel", &[], &Options::default());
    // A host peer that echoes once, then reports how its connection ended and when.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let peer = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 64];
        let got = conn.read(&mut buf).unwrap();
        conn.write_all(&buf[..got]).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let end = conn.read(&mut buf);
        (end.map_err(|e| e.kind()), Instant::now())
    });
    let mut script = served.python("hold.py", HOLD, &[&port.to_string()]);
    assert_eq!(script.line()["echo"], "hello");
    assert_eq!(n(&served.limit("tcp_flows")["open"]), 1);

    let deleted = Instant::now();
    served.guest.ip(&["link", "del", "tap0"]);
    let (end, at) = peer.join().unwrap();
    assert_eq!(
        end,
        Err(std::io::ErrorKind::ConnectionReset),
        "the host peer is reset"
    );
    assert!(
        at.duration_since(deleted) < Duration::from_secs(5),
        "the host peer was reset {:?} after the TAP went away",
        at.duration_since(deleted)
    );
    let stats = eventually(Duration::from_secs(5), || {
        let s = served.stats();
        let ports = s["ports"].as_array().unwrap().clone();
        (!ports.iter().any(|p| p["name"] == "tap:tap0")).then_some(s)
    })
    .expect("the TAP's port never detached");
    assert!(n(&stats["forwarder"]["flows_guest_gone"]) >= 1, "{stats}");
    assert_eq!(n(&stats["limits"]["tcp_flows"]["open"]), 0, "{stats}");

    // Nothing spins on the dead device: well under a quarter of one core over two seconds.
    let (t0, c0) = (Instant::now(), served.cpu_ticks());
    std::thread::sleep(Duration::from_secs(2));
    let (used, wall) = (served.cpu_ticks() - c0, t0.elapsed());
    let budget = clock_ticks() * wall.as_millis() as u64 / 1000 / 4;
    assert!(
        used < budget,
        "{used} CPU ticks in {wall:?} after the TAP went away"
    );
    assert!(
        served.log().contains("went away"),
        "the log says why the port closed:\n{}",
        served.log()
    );
}

/// Guest side: `count` connections to `addr:port` at once (from `src`), each sending `send`
/// once connected; prints how many connected, were refused, or neither; then, on a line on
/// stdin, waits up to `wait` seconds for each connected one to end and prints how they ended
/// and the last one's time (seconds after the line).
const OPEN_MANY: &str = r#"
import errno, json, resource, select, socket, sys, time
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
src, addr, port, count, send, wait = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5].encode(), float(sys.argv[6])
socks = {}
for _ in range(count):
    s = socket.socket()
    s.bind((src, 0))
    s.setblocking(False)
    s.connect_ex((addr, port))
    socks[s.fileno()] = s
poll = select.poll()
for fd in socks:
    poll.register(fd, select.POLLOUT)
out = {"connected": 0, "refused": 0, "other": 0}
up = []
deadline = time.time() + 20
while socks and time.time() < deadline:
    for fd, _ in poll.poll(500):
        s = socks.pop(fd)
        poll.unregister(fd)
        err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err == 0:
            out["connected"] += 1
            if send:
                s.send(send)
            up.append(s)
        elif err in (errno.ECONNREFUSED, errno.ECONNRESET):
            out["refused"] += 1
            s.close()
        else:
            out["other"] += 1
            s.close()
out["pending"] = len(socks)
print(json.dumps(out), flush=True)
sys.stdin.readline()
start = time.time()
ends = {"reset": 0, "eof": 0, "open": 0}
last = 0.0
for s in up:
    s.setblocking(True)
    s.settimeout(max(0.1, wait - (time.time() - start)))
    try:
        ends["eof" if s.recv(4096) == b"" else "open"] += 1
        last = time.time() - start
    except ConnectionResetError:
        ends["reset"] += 1
        last = time.time() - start
    except socket.timeout:
        ends["open"] += 1
ends["last"] = last
print(json.dumps(ends), flush=True)
"#;

/// A host listener that accepts every connection and keeps it open; its port.
fn holding_server(served: &Served) -> u16 {
    let listener = served.in_host(|| TcpListener::bind("127.0.0.1:0").unwrap());
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            match conn {
                Ok(conn) => held.push(conn),
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    port
}

/// Log lines at ERROR level.
fn errors(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.contains("ERROR")).collect()
}

#[test]
fn a_low_soft_open_file_limit_is_raised_to_the_hard_one() {
    if !privileged(
        "a_low_soft_open_file_limit_is_raised_to_the_hard_one",
        &["ip", "python3", "prlimit"],
    ) {
        return;
    }
    let options = Options {
        nofile: Some((256, 4096)),
        ..Options::default()
    };
    let served = Served::start("nofile-raise", &[], &options);
    assert_eq!(served.nofile(), (4096, 4096));
    let port = holding_server(&served).to_string();
    let args = ["192.168.127.2", "192.168.127.254", &port, "400", "", "0"];
    let mut script = served.python("many.py", OPEN_MANY, &args);
    let opened = script.line();
    assert_eq!(n(&opened["connected"]), 400, "{opened}");
    let stats = served.stats();
    assert_eq!(n(&stats["limits"]["tcp_flows"]["open"]), 400, "{stats}");
    assert_eq!(n(&stats["forwarder"]["tcp_refused"]), 0, "{stats}");
    assert_eq!(n(&stats["limits"]["descriptors"]["limit"]), 4096, "{stats}");
}

#[test]
fn flows_are_bounded_by_the_descriptors_the_hard_limit_allows() {
    if !privileged(
        "flows_are_bounded_by_the_descriptors_the_hard_limit_allows",
        &["ip", "python3", "prlimit"],
    ) {
        return;
    }
    let options = Options {
        nofile: Some((300, 300)),
        ..Options::default()
    };
    let served = Served::start("nofile-low", &[], &options);
    let port = holding_server(&served).to_string();
    let before = served.limit("descriptors");
    let max = n(&before["max"]);
    // 300 less the reserve (128) less what was open at start (a few per worker).
    assert!(
        (16..=172).contains(&max),
        "a 300-descriptor limit leaves flows at most 172: {before}"
    );
    assert_eq!(n(&served.limit("tcp_flows")["max"]), max, "sized to it");
    // More connections than descriptors allow: the bound refuses the rest, counted there.
    let args = ["192.168.127.2", "192.168.127.254", &port, "250", "", "0"];
    let mut script = served.python("many.py", OPEN_MANY, &args);
    let opened = script.line();
    assert_eq!(n(&opened["connected"]), max, "{opened}");
    assert_eq!(n(&opened["refused"]), 250 - max, "{opened}");
    // The control API still answers, and says what happened.
    let stats = served.stats();
    let tcp = &stats["limits"]["tcp_flows"];
    assert_eq!(
        (n(&tcp["open"]), n(&tcp["refused"])),
        (max, 250 - max),
        "{stats}"
    );
    assert_eq!(
        n(&stats["forwarder"]["tcp_refused"]),
        0,
        "not refused by the host"
    );
    assert_eq!(
        n(&stats["limits"]["descriptors"]["exhausted"]),
        0,
        "{stats}"
    );
    for _ in 0..20 {
        assert_eq!(served.stats()["limits"]["tcp_flows"]["open"], max);
    }
    assert_eq!(errors(&served.log()), Vec::<&str>::new());
}

#[test]
fn slowloris_on_the_guest_api_is_bounded_and_timed_out() {
    if !privileged(
        "slowloris_on_the_guest_api_is_bounded_and_timed_out",
        &["ip", "python3", "curl"],
    ) {
        return;
    }
    let served = Served::start(
        "slowloris",
        &["--max-api-connections", "16", "--api-header-timeout", "2"],
        &Options::default(),
    );
    // Forty connections, each with the start of a request head and nothing more.
    let args = [
        "192.168.127.2",
        "192.168.127.1",
        "80",
        "40",
        "GET /services/forwarder/all HTTP/1.1\r\nHost: gw\r\n",
        "10",
    ];
    let mut script = served.python("slow.py", OPEN_MANY, &args);
    let opened = script.line();
    assert_eq!(
        (n(&opened["connected"]), n(&opened["refused"])),
        (16, 24),
        "{opened}"
    );
    let stats = served.stats();
    let api = &stats["limits"]["guest_api_connections"];
    assert_eq!(
        (n(&api["max"]), n(&api["open"]), n(&api["refused"])),
        (16, 16, 24),
        "{stats}"
    );
    // Each is a TCP flow, and the forwarder's own count agrees.
    assert_eq!(n(&stats["limits"]["tcp_flows"]["open"]), 16, "{stats}");
    assert_eq!(n(&stats["forwarder"]["tcp_open"]), 16, "{stats}");
    // None finishes its request: all are reset at the deadline.
    script.go();
    let ends = script.line();
    assert_eq!(n(&ends["reset"]), 16, "{ends}");
    assert!(ends["last"].as_f64().unwrap() < 5.0, "{ends}");
    let stats = served.stats();
    assert_eq!(
        n(&stats["limits"]["guest_api_header_timeout"]["expired"]),
        16,
        "{stats}"
    );
    assert_eq!(n(&stats["limits"]["guest_api_connections"]["open"]), 0);
    assert_eq!(n(&stats["limits"]["tcp_flows"]["open"]), 0);
    // A guest that asks properly is answered.
    let out = served.guest.run(
        "curl",
        &[
            "-s",
            "-m",
            "5",
            "http://192.168.127.1/services/forwarder/all",
        ],
        Duration::from_secs(10),
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]", "{out:?}");
}

/// Guest side of the fairness test: `flood` connects from .2 to a host server that never
/// answers, then one connect from .3 and one from .2 to the echo server.
const FLOOD: &str = r#"
import json, socket, sys, time
stuck, echo, flood = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
held = []
for _ in range(flood):
    s = socket.socket()
    s.bind(("192.168.127.2", 0))
    s.setblocking(False)
    s.connect_ex(("192.168.127.254", stuck))
    held.append(s)
time.sleep(1)
def echo_from(src):
    s = socket.socket()
    s.bind((src, 0))
    s.settimeout(5)
    try:
        s.connect(("192.168.127.254", echo))
        s.sendall(b"fair")
        return s.recv(100).decode()
    except OSError as e:
        return type(e).__name__
print(json.dumps({"other": echo_from("192.168.127.3"), "flooder": echo_from("192.168.127.2")}), flush=True)
"#;

#[test]
fn one_guests_syn_flood_at_a_dead_server_leaves_other_guests_their_connects() {
    if !privileged(
        "one_guests_syn_flood_at_a_dead_server_leaves_other_guests_their_connects",
        &["ip", "python3"],
    ) {
        return;
    }
    let served = Served::start(
        "fair",
        &["--max-connects", "8", "--tcp-connect-timeout", "20"],
        &Options::default(),
    );
    served
        .guest
        .ip(&["addr", "add", "192.168.127.3/24", "dev", "tap0"]);
    // A listener whose backlog is full drops SYNs: host connects to it never complete.
    let stuck = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    stuck.bind(&any.into()).unwrap();
    stuck.listen(0).unwrap();
    let stuck_port = stuck.local_addr().unwrap().as_socket().unwrap().port();
    let _filler = std::net::TcpStream::connect(("127.0.0.1", stuck_port)).unwrap();
    let echo = support::echo_server();
    let out = served
        .python(
            "flood.py",
            FLOOD,
            &[&stuck_port.to_string(), &echo.to_string(), "20"],
        )
        .finish();
    assert_eq!(out["other"], "fair", "the other guest connects: {out}");
    assert_eq!(
        out["flooder"], "ConnectionRefusedError",
        "the flooder holds its share: {out}"
    );
    let stats = served.stats();
    let limits = &stats["limits"];
    assert_eq!(n(&limits["connects"]["open"]), 4, "half of 8: {stats}");
    assert!(n(&limits["connects_per_guest"]["refused"]) >= 16, "{stats}");
    assert_eq!(n(&limits["connects"]["refused"]), 0, "{stats}");
}

#[test]
fn descriptor_exhaustion_is_counted_and_warned_about_once() {
    if !privileged(
        "descriptor_exhaustion_is_counted_and_warned_about_once",
        &["ip", "python3", "prlimit"],
    ) {
        return;
    }
    let options = Options {
        nofile: Some((128, 128)),
        ..Options::default()
    };
    let served = Served::start("nofile-out", &[], &options);
    let port = holding_server(&served).to_string();
    // Idle connections to the control API take what the reserve holds (each waits for its
    // request), until accepting fails.
    let idle: Vec<_> = (0..90)
        .filter_map(|_| std::os::unix::net::UnixStream::connect(served.api()).ok())
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    // Now the guest's connections find no descriptor for their host sockets.
    let args = ["192.168.127.2", "192.168.127.254", &port, "10", "", "0"];
    let opened = served.python("many.py", OPEN_MANY, &args).line();
    assert!(n(&opened["refused"]) > 0, "{opened}");
    drop(idle);
    let stats = eventually(Duration::from_secs(20), || {
        let (status, body) = support::api_request(&served.api(), "GET", "/stats", "");
        (status == 200).then(|| serde_json::from_str::<serde_json::Value>(&body).unwrap())
    })
    .expect("the control API answers once the idle connections are gone");
    let log = served.log();
    assert_eq!(errors(&log), Vec::<&str>::new(), "{log}");
    let f = &stats["forwarder"];
    assert_eq!(n(&f["tcp_refused"]), 0, "not refused by the host: {stats}");
    assert!(n(&f["no_descriptors"]) > 0, "{stats}");
    assert_eq!(
        n(&stats["limits"]["descriptors"]["exhausted"]),
        n(&f["no_descriptors"])
    );
    let warnings = log.matches("out of descriptors").count();
    assert!(
        (1..=3).contains(&warnings),
        "warned once per episode, not per retry ({warnings}):\n{log}"
    );
}
