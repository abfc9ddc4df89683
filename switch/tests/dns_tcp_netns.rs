//! DNS over TCP on the gateway (RFC 7766) against the Linux kernel as its guest: `dig +tcp`
//! in a namespace asks 192.168.127.1, which answers its local zones and forwards the rest
//! over TCP to a dnsmasq the test started on loopback (never the machine's own resolvers).
//! Needs root; see `support::privileged`. Traffic stays on loopback and inside the
//! namespaces created here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::dnsmasq::{BIG_TXT, Dnsmasq, RECORDS, dig_gateway, dns_guest, dns_runtime, free_port};
use support::privileged;
use switch::runtime::{DnsConfig, Runtime, RuntimeConfig};

/// The records of a `dig` output, comments and blank lines left out, sorted (a record set
/// has no order).
fn records(s: &str) -> Vec<String> {
    let mut r: Vec<String> = s
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    r.sort();
    r
}

#[test]
fn tcp_answers_equal_the_upstreams() {
    if !privileged("tcp_answers_equal_the_upstreams", &["ip", "dig", "dnsmasq"]) {
        return;
    }
    let upstream = Dnsmasq::start();
    let rt = dns_runtime(vec![upstream.addr], Duration::from_secs(2));
    let (ns, _link) = dns_guest(&rt, "dnstcpfwd");
    for (name, rtype) in RECORDS {
        let args = ["+tcp", "+noall", "+answer", "+comments", name, rtype];
        let direct = upstream.dig(&args);
        let via = dig_gateway(&ns, &args);
        assert!(
            !records(&direct).is_empty(),
            "upstream has {name} {rtype}:\n{direct}"
        );
        assert_eq!(
            records(&via),
            records(&direct),
            "{name} {rtype}:\n{via}\n---\n{direct}"
        );
        assert!(via.contains("status: NOERROR"), "{via}");
    }
    // A local name over TCP never leaves.
    let local = dig_gateway(&ns, &["+tcp", "+short", "host.containers.internal"]);
    assert_eq!(local, "192.168.127.254\n");
    let stats = rt.stats().dns;
    assert!(stats.resolver.tcp_queries >= 6, "{stats:?}");
    assert!(stats.resolver.tcp_forwarded >= 5, "{stats:?}");
    assert!(stats.tcp.accepted >= 6, "{stats:?}");
    assert_eq!(stats.tcp.bad_length, 0, "{stats:?}");
    assert!(stats.upstream_tcp.connects >= 1, "{stats:?}");
}

#[test]
fn large_answer_truncated_over_udp_whole_over_tcp() {
    if !privileged(
        "large_answer_truncated_over_udp_whole_over_tcp",
        &["ip", "dig", "dnsmasq"],
    ) {
        return;
    }
    let upstream = Dnsmasq::start();
    let rt = dns_runtime(vec![upstream.addr], Duration::from_secs(2));
    let (ns, _link) = dns_guest(&rt, "dnstcpbig");
    let udp = dig_gateway(&ns, &["+notcp", "+ignore", BIG_TXT, "TXT"]);
    assert!(
        udp.lines()
            .any(|l| l.contains("flags:") && l.contains(" tc")),
        "TC over UDP:\n{udp}"
    );
    let direct = upstream.dig(&["+tcp", "+noall", "+answer", BIG_TXT, "TXT"]);
    assert!(direct.len() > 1500, "{direct}");
    let tcp = dig_gateway(&ns, &["+tcp", "+noall", "+answer", BIG_TXT, "TXT"]);
    assert_eq!(records(&tcp), records(&direct));
    // Without +tcp dig sees TC and retries over TCP by itself.
    let retried = dig_gateway(&ns, &["+noall", "+answer", "+comments", BIG_TXT, "TXT"]);
    assert!(
        retried.contains("Truncated, retrying in TCP mode"),
        "{retried}"
    );
    assert_eq!(
        records(&retried),
        records(&direct),
        "{retried}\n---\n{direct}"
    );
}

#[test]
fn tcp_upstream_down_is_servfail() {
    if !privileged("tcp_upstream_down_is_servfail", &["ip", "dig"]) {
        return;
    }
    // Nothing listens there: the test just found the port free.
    let down: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let rt = dns_runtime(vec![down], Duration::from_secs(2));
    let (ns, _link) = dns_guest(&rt, "dnstcpdown");
    let started = std::time::Instant::now();
    let out = dig_gateway(&ns, &["+tcp", "+tries=1", "+time=5", "www.dns.test", "A"]);
    assert!(out.contains("status: SERVFAIL"), "{out}");
    // The refused connect fails the query at once, not after its timeouts.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        dig_gateway(&ns, &["+tcp", "+short", "gateway.containers.internal"]),
        "192.168.127.1\n"
    );
    let stats = rt.stats().dns;
    assert!(stats.upstream_tcp.connect_failures >= 1, "{stats:?}");
    assert!(stats.resolver.tcp_upstream_down >= 1, "{stats:?}");
}

/// 100 TCP connections at once, each pipelining 10 queries before reading any answer, and
/// one connection sending a zero length (which must be reset, not answered).
const CONCURRENT: &str = r#"
import socket, struct, threading
name = b"".join(bytes([len(l)]) + l for l in b"www.dns.test".split(b".")) + b"\0"
def query(i):
    m = struct.pack(">HHHHHH", i, 0x0100, 1, 0, 0, 0) + name + struct.pack(">HH", 1, 1)
    return struct.pack(">H", len(m)) + m
def read(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError
        b += c
    return b
ok = [0]
lock = threading.Lock()
def client(c):
    s = socket.create_connection(("192.168.127.1", 53), timeout=20)
    s.sendall(b"".join(query(c * 10 + i) for i in range(10)))
    ids = set()
    for _ in range(10):
        (n,) = struct.unpack(">H", read(s, 2))
        r = read(s, n)
        i, flags, qd, an = struct.unpack(">HHHH", r[:8])
        if flags & 0xf == 0 and an == 1 and r.endswith(bytes([10, 1, 2, 3])):
            ids.add(i)
    if ids == set(range(c * 10, c * 10 + 10)):
        with lock:
            ok[0] += 1
    s.close()
threads = [threading.Thread(target=client, args=(c,)) for c in range(100)]
for t in threads: t.start()
for t in threads: t.join()
s = socket.create_connection(("192.168.127.1", 53), timeout=10)
s.sendall(b"\0\0")
try:
    bad = s.recv(10)
except ConnectionResetError:
    bad = b"reset"
print(ok[0], "closed" if bad in (b"", b"reset") else repr(bad))
"#;

#[test]
fn many_concurrent_pipelined_tcp_queries() {
    if !privileged(
        "many_concurrent_pipelined_tcp_queries",
        &["ip", "dnsmasq", "python3"],
    ) {
        return;
    }
    let upstream = Dnsmasq::start();
    let rt = dns_runtime(vec![upstream.addr], Duration::from_secs(2));
    let (ns, _link) = dns_guest(&rt, "dnstcpmany");
    let out = ns.run("python3", &["-c", CONCURRENT], Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.trim(),
        "100 closed",
        "{}\n{:?}",
        String::from_utf8_lossy(&out.stderr),
        rt.stats().dns
    );
    let stats = rt.stats().dns;
    assert_eq!(stats.tcp.bad_length, 1, "{stats:?}");
    assert!(stats.tcp.answers >= 1000, "{stats:?}");
    // dnsmasq takes 100 queries per connection: the pool went through ten or more, and no
    // query ran out of attempts on the way.
    assert!(stats.upstream_tcp.connects >= 10, "{stats:?}");
    assert_eq!(stats.resolver.timeouts, 0, "{stats:?}");
}

/// Two idle connections are closed by us after the idle timeout; a third, past the bound
/// of two, is refused with RST.
const IDLE_AND_LIMIT: &str = r#"
import socket, time
a = socket.create_connection(("192.168.127.1", 53), timeout=10)
b = socket.create_connection(("192.168.127.1", 53), timeout=10)
try:
    socket.create_connection(("192.168.127.1", 53), timeout=10)
    third = "accepted"
except ConnectionRefusedError:
    third = "refused"
start = time.time()
eof = a.recv(10) == b"" and b.recv(10) == b""
print(third, eof, round(time.time() - start))
"#;

#[test]
fn idle_connections_close_and_the_bound_refuses() {
    if !privileged(
        "idle_connections_close_and_the_bound_refuses",
        &["ip", "python3"],
    ) {
        return;
    }
    let rt = Runtime::start(RuntimeConfig {
        workers: 1,
        dns: DnsConfig {
            tcp_connections: 2,
            tcp_idle_timeout: Duration::from_secs(1),
            ..DnsConfig::default()
        },
        ..RuntimeConfig::default()
    })
    .expect("start runtime");
    let (ns, _link) = dns_guest(&rt, "dnstcpidle");
    let out = ns.run("python3", &["-c", IDLE_AND_LIMIT], Duration::from_secs(30));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.trim(),
        "refused True 1",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stats = rt.stats().dns;
    assert_eq!(
        (stats.tcp.idle_closed, stats.tcp.refused),
        (2, 1),
        "{stats:?}"
    );
}

/// Six connections each send two messages the resolver drops unanswered (a response, QR=1,
/// and three bytes, shorter than a header) and close their side: each must see our FIN,
/// however many slots there are. Then as many idle connections as there are slots, closed by
/// us for idleness (so ours wait in TIME-WAIT): a query over TCP right after is answered.
const SLOTS_FREED: &str = r#"
import socket, struct
G = ("192.168.127.1", 53)
def framed(m):
    return struct.pack(">H", len(m)) + m
def read(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError
        b += c
    return b
response = struct.pack(">HHHHHH", 1, 0x8180, 0, 0, 0, 0)
closed = []
for i in range(6):
    try:
        s = socket.create_connection(G, timeout=5)
        s.sendall(framed(response) + framed(b"\x00\x01\x02"))
        s.shutdown(socket.SHUT_WR)
        closed.append(s.recv(10) == b"")
        s.close()
    except (OSError, EOFError) as e:
        closed.append(type(e).__name__)
idle = []
try:
    idle = [socket.create_connection(G, timeout=10) for _ in range(4)]
    idle_closed = all(s.recv(10) == b"" for s in idle)
except OSError as e:
    idle_closed = type(e).__name__
for s in idle:
    s.close()
name = b"".join(bytes([len(l)]) + l for l in b"gateway.containers.internal".split(b".")) + b"\0"
query = struct.pack(">HHHHHH", 7, 0x0100, 1, 0, 0, 0) + name + struct.pack(">HH", 1, 1)
try:
    s = socket.create_connection(G, timeout=5)
    s.sendall(framed(query))
    (n,) = struct.unpack(">H", read(s, 2))
    answer = read(s, n)
    answered = answer[:2] == b"\x00\x07" and answer.endswith(bytes([192, 168, 127, 1]))
    s.close()
except (OSError, EOFError) as e:
    answered = type(e).__name__
print(closed, idle_closed, answered)
"#;

#[test]
fn dropped_messages_and_time_wait_give_their_slots_back() {
    if !privileged(
        "dropped_messages_and_time_wait_give_their_slots_back",
        &["ip", "python3"],
    ) {
        return;
    }
    let rt = Runtime::start(RuntimeConfig {
        workers: 1,
        dns: DnsConfig {
            tcp_connections: 4,
            tcp_idle_timeout: Duration::from_secs(1),
            ..DnsConfig::default()
        },
        ..RuntimeConfig::default()
    })
    .expect("start runtime");
    let (ns, _link) = dns_guest(&rt, "dnstcpslots");
    let out = ns.run("python3", &["-c", SLOTS_FREED], Duration::from_secs(90));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.trim(),
        "[True, True, True, True, True, True] True True",
        "{}\n{:?}",
        String::from_utf8_lossy(&out.stderr),
        rt.stats().dns
    );
    let stats = rt.stats().dns;
    assert_eq!(stats.tcp.refused, 0, "{stats:?}");
    assert_eq!(stats.resolver.dropped, 12, "{stats:?}");
    assert_eq!(stats.tcp.idle_closed, 4, "{stats:?}");
}
