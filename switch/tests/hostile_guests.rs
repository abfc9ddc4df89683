//! A guest taking the service away, through the real `host-switch` binary with the Linux
//! kernel in a namespace as the guest (python3 scripts and `ip` run there), and its peers on
//! the host's loopback:
//! - the guest deletes its TAP: the port detaches at once, the host peers of its flows see
//!   RST, and no thread spins on the dead device;
//! - the descriptor limit: a low soft `RLIMIT_NOFILE` is raised to the hard one at start; a
//!   hard limit too low for the flow bounds shrinks them, so a guest opening more connections
//!   than descriptors allow is refused by the flow bound (counted there and under
//!   `descriptors`), never by a failing `socket()`, and the control API keeps answering;
//! - slowloris on the in-guest API (192.168.127.1:80): connections beyond
//!   `--max-api-connections` are refused, each counts as a TCP flow, and one that has not sent
//!   its request within `--api-header-timeout` is reset;
//! - a SYN flood from one guest at a host server that never answers holds at most its fair
//!   share of `--max-connects`: another guest's connections still go through.
//!
//! Needs root, `ip`, `python3` and `prlimit`; skips loudly without them unless CI=true.
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
