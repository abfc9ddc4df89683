//! DNS on the gateway against the Linux kernel as its guest: `dig` in a namespace asks
//! 192.168.127.1, which answers its local zones and forwards the rest to a dnsmasq the test
//! started on loopback (never the machine's own resolvers). Needs root; see
//! `support::privileged`. Traffic stays on loopback and inside the namespaces created here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::dnsmasq::{Dnsmasq, RECORDS, dig_gateway, dns_guest, dns_runtime, free_port};
use support::privileged;

#[test]
fn forwarded_answers_equal_the_upstreams_over_udp() {
    if !privileged(
        "forwarded_answers_equal_the_upstreams_over_udp",
        &["ip", "dig", "dnsmasq"],
    ) {
        return;
    }
    let upstream = Dnsmasq::start();
    let rt = dns_runtime(vec![upstream.addr], Duration::from_secs(2));
    let (ns, _link) = dns_guest(&rt, "dnsfwd");
    for (name, rtype) in RECORDS {
        let args = ["+noall", "+answer", "+comments", name, rtype];
        let direct = upstream.dig(&args);
        let via = dig_gateway(&ns, &args);
        let answer = |s: &str| {
            s.lines()
                .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert!(
            !answer(&direct).is_empty(),
            "upstream has {name} {rtype}:\n{direct}"
        );
        assert_eq!(
            answer(&via),
            answer(&direct),
            "{name} {rtype}:\n{via}\n---\n{direct}"
        );
        assert!(via.contains("status: NOERROR"), "{via}");
    }
    // EDNS and the DNSSEC OK bit come back as the upstream sent them.
    let args = ["+dnssec", "+bufsize=1232", "www.dns.test", "A"];
    let via = dig_gateway(&ns, &args);
    assert!(via.contains("; EDNS: version: 0"), "{via}");
    let stats = rt.stats();
    assert!(stats.dns.resolver.forwarded >= 6, "{stats:?}");
    assert_eq!(stats.dns.resolver.timeouts, 0, "{stats:?}");
}

/// A standard query for `name` and `qtype` with ID `id`, recursion desired (RFC 1035 §4.1).
fn query(id: u16, name: &str, qtype: &str) -> Vec<u8> {
    let qtype: u16 = match qtype {
        "A" => 1,
        "MX" => 15,
        "TXT" => 16,
        "AAAA" => 28,
        "SRV" => 33,
        other => panic!("no code for {other}"),
    };
    let mut q = Vec::new();
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    q
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The same query bytes, asked of the gateway from inside the guest and of the upstream
/// straight from the host, get the same answer bytes: forwarding keeps the message raw and
/// gives the guest its own ID back.
#[test]
fn forwarded_answers_are_byte_for_byte_the_upstreams() {
    if !privileged(
        "forwarded_answers_are_byte_for_byte_the_upstreams",
        &["ip", "python3", "dnsmasq"],
    ) {
        return;
    }
    byte_for_byte(false);
}

/// The same over TCP, each message behind its 2-byte length (RFC 1035 §4.2.2).
#[test]
fn forwarded_answers_are_byte_for_byte_the_upstreams_over_tcp() {
    if !privileged(
        "forwarded_answers_are_byte_for_byte_the_upstreams_over_tcp",
        &["ip", "python3", "dnsmasq"],
    ) {
        return;
    }
    byte_for_byte(true);
}

/// One answer over TCP: length, message.
fn ask_over_tcp(server: SocketAddr, q: &[u8]) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&server, Duration::from_secs(3)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s.write_all(&(q.len() as u16).to_be_bytes()).unwrap();
    s.write_all(q).unwrap();
    let mut len = [0u8; 2];
    s.read_exact(&mut len).unwrap();
    let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut answer).unwrap();
    answer
}

fn byte_for_byte(tcp: bool) {
    let upstream = Dnsmasq::start();
    let rt = dns_runtime(vec![upstream.addr], Duration::from_secs(2));
    let (ns, _link) = dns_guest(&rt, if tcp { "dnsbytes-tcp" } else { "dnsbytes" });
    let direct = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    direct
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let ask_in_guest_tcp = r#"
import socket, sys
q = bytes.fromhex(sys.argv[1])
s = socket.create_connection(("192.168.127.1", 53), timeout=5)
s.sendall(len(q).to_bytes(2, "big") + q)
def exactly(n):
    b = b""
    while len(b) < n:
        more = s.recv(n - len(b))
        if not more:
            raise SystemExit("closed early")
        b += more
    return b
print(exactly(int.from_bytes(exactly(2), "big")).hex())
"#;
    let ask_in_guest_udp = r#"
import socket, sys
q = bytes.fromhex(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
for _ in range(3):
    s.sendto(q, ("192.168.127.1", 53))
    try:
        print(s.recv(65535).hex())
        break
    except socket.timeout:
        pass
"#;
    for (i, (name, rtype)) in RECORDS.iter().enumerate() {
        let q = query(0x4a00 + i as u16, name, rtype);
        let ask_directly = || {
            if tcp {
                return hex(&ask_over_tcp(upstream.addr, &q));
            }
            direct.send_to(&q, upstream.addr).unwrap();
            let mut buf = [0u8; 65535];
            let n = direct.recv(&mut buf).expect("the upstream answers");
            assert!(n > q.len(), "{name} {rtype}: an answer, not an echo");
            hex(&buf[..n])
        };
        // dnsmasq rotates the order of records between identical queries, so the guest's
        // answer is one of those it gives around it.
        let before = ask_directly();
        let out = ns.run(
            "python3",
            &[
                "-c",
                if tcp {
                    ask_in_guest_tcp
                } else {
                    ask_in_guest_udp
                },
                &hex(&q),
            ],
            Duration::from_secs(15),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let via = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let after = [ask_directly(), ask_directly()];
        assert!(
            via == before || after.contains(&via),
            "{name} {rtype}: through the gateway\n{via}\ndirectly\n{before}\n{after:?}"
        );
    }
}

#[test]
fn local_zones_and_api_adds() {
    if !privileged("local_zones_and_api_adds", &["ip", "dig"]) {
        return;
    }
    let rt = dns_runtime(Vec::new(), Duration::from_secs(1));
    let (ns, _link) = dns_guest(&rt, "dnslocal");
    let short = |name: &str, t: &str| dig_gateway(&ns, &["+short", name, t]);
    assert_eq!(short("host.containers.internal", "A"), "192.168.127.254\n");
    assert_eq!(short("gateway.containers.internal", "A"), "192.168.127.1\n");
    assert_eq!(short("host.docker.internal", "A"), "192.168.127.254\n");
    // The host and the gateway have IPv6 addresses too.
    assert_eq!(
        short("host.containers.internal", "AAAA"),
        "fd9d:b9a2:e1c4:127::254\n"
    );
    assert_eq!(
        short("gateway.docker.internal", "AAAA"),
        "fd9d:b9a2:e1c4:127::1\n"
    );
    let nx = dig_gateway(&ns, &["nope.containers.internal", "A"]);
    assert!(nx.contains("status: NXDOMAIN"), "{nx}");

    let zones = rt.dns_zones();
    dns::api::add(
        &zones,
        br#"{"Name":"dynamic.internal.","Records":[{"Name":"test","IP":"192.168.127.253"}]}"#,
    )
    .unwrap();
    assert_eq!(short("test.dynamic.internal", "A"), "192.168.127.253\n");
    // An IPv4-only name asked for AAAA: NODATA, with the SOA.
    let aaaa = dig_gateway(&ns, &["test.dynamic.internal", "AAAA"]);
    assert!(
        aaaa.contains("status: NOERROR") && aaaa.contains("ANSWER: 0"),
        "{aaaa}"
    );
    assert!(
        aaaa.contains("AUTHORITY: 1"),
        "NODATA carries the SOA:\n{aaaa}"
    );
    dns::api::add(
        &zones,
        br#"{"Name":"dynamic.internal.","Records":[{"Name":"test","IP":"192.168.127.252"}]}"#,
    )
    .unwrap();
    assert_eq!(short("test.dynamic.internal", "A"), "192.168.127.252\n");
    // No upstream: everything else is SERVFAIL, and the service goes on.
    let other = dig_gateway(&ns, &["www.dns.test", "A"]);
    assert!(other.contains("status: SERVFAIL"), "{other}");
    assert_eq!(short("host.containers.internal", "A"), "192.168.127.254\n");
}

#[test]
fn upstream_down_is_servfail_and_service_goes_on() {
    if !privileged(
        "upstream_down_is_servfail_and_service_goes_on",
        &["ip", "dig"],
    ) {
        return;
    }
    // Nothing listens there: the test just found the port free.
    let down: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let rt = dns_runtime(vec![down], Duration::from_millis(300));
    let (ns, _link) = dns_guest(&rt, "dnsdown");
    let out = dig_gateway(&ns, &["+tries=1", "+time=5", "www.dns.test", "A"]);
    assert!(out.contains("status: SERVFAIL"), "{out}");
    assert_eq!(
        dig_gateway(&ns, &["+short", "gateway.containers.internal"]),
        "192.168.127.1\n"
    );
    let stats = rt.stats();
    assert_eq!(stats.dns.resolver.timeouts, 1, "{stats:?}");
    assert_eq!(stats.dns.resolver.failovers, 1, "{stats:?}");
}

/// 1,000 queries in flight at once from one socket, distinct IDs; a query unanswered after
/// two seconds is sent again (as a stub resolver does), three rounds at most.
const BURST: &str = r#"
import socket, struct, sys, time
N = 1000
name = b"".join(bytes([len(l)]) + l for l in b"www.dns.test".split(b".")) + b"\0"
def query(i):
    return struct.pack(">HHHHHH", i, 0x0100, 1, 0, 0, 0) + name + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
s.connect(("192.168.127.1", 53))
answered = set()
for round in range(3):
    for i in range(N):
        if i not in answered:
            s.send(query(i))
    deadline = time.time() + 2
    while len(answered) < N and time.time() < deadline:
        s.settimeout(max(0.01, deadline - time.time()))
        try:
            r = s.recv(2048)
        except socket.timeout:
            break
        i, flags, qd, an = struct.unpack(">HHHH", r[:8])
        if flags & 0xf == 0 and an == 1 and r.endswith(bytes([10, 1, 2, 3])):
            answered.add(i)
    if len(answered) == N:
        break
print(len(answered), round)
"#;

#[test]
fn a_thousand_concurrent_queries_resolve() {
    if !privileged(
        "a_thousand_concurrent_queries_resolve",
        &["ip", "dnsmasq", "python3"],
    ) {
        return;
    }
    let upstream = Dnsmasq::start();
    let rt = dns_runtime(vec![upstream.addr], Duration::from_secs(2));
    let (ns, _link) = dns_guest(&rt, "dnsburst");
    let out = ns.run("python3", &["-c", BURST], Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("1000 "),
        "{stdout}\n{}\n{:?}",
        String::from_utf8_lossy(&out.stderr),
        rt.stats().dns
    );
}

/// The guest's own resolver inside `host-switch run`: its private resolv.conf names the
/// gateway, which answers the local zones and forwards the rest to the test's dnsmasq.
#[test]
fn getent_inside_host_switch_run() {
    if !privileged(
        "getent_inside_host_switch_run",
        &["ip", "dnsmasq", "getent"],
    ) {
        return;
    }
    let upstream = Dnsmasq::start();
    let out = support::run_with_timeout(
        std::process::Command::new(env!("CARGO_BIN_EXE_host-switch"))
            .args(["run", "--dns-upstream", &upstream.addr.to_string(), "--"])
            .args([
                "sh",
                "-c",
                "getent ahostsv4 host.containers.internal | head -n1; \
                 getent ahostsv4 gateway.containers.internal | head -n1; \
                 getent ahostsv4 www.dns.test | head -n1; \
                 getent ahostsv6 host.containers.internal | head -n1",
            ])
            .stdin(std::process::Stdio::null()),
        Duration::from_secs(60),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<Vec<&str>> = stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let ctx = format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{ctx}");
    let first = |i: usize| lines.get(i).and_then(|l| l.first().copied());
    assert_eq!(first(0), Some("192.168.127.254"), "{ctx}");
    assert_eq!(first(1), Some("192.168.127.1"), "{ctx}");
    assert_eq!(first(2), Some("10.1.2.3"), "{ctx}");
    assert_eq!(first(3), Some("fd9d:b9a2:e1c4:127::254"), "{ctx}");
}

/// Upstreams with no route — host-switch runs in a sandbox namespace whose only interface is
/// loopback, and the upstreams are TEST-NET addresses (RFC 5737, RFC 3849) — never keep it
/// from starting: the local zones answer, other names get SERVFAIL at once (not after the
/// attempts' timeouts), the log tells of the upstream once, not per query; and once an
/// upstream's address is reachable (the test puts it on the sandbox's loopback, with a dnsmasq
/// there), queries reach it.
#[test]
fn unreachable_upstreams_fail_over_at_once_and_are_retried() {
    if !privileged(
        "unreachable_upstreams_fail_over_at_once_and_are_retried",
        &["ip", "dig", "dnsmasq"],
    ) {
        return;
    }
    const UPSTREAM: &str = "192.0.2.53";
    let sandbox = support::NetnsGuard::new("dnsnr-sbx");
    sandbox.ip(&["link", "set", "lo", "up"]);
    // A port free in the sandbox (its loopback is ours alone).
    let port = sandbox
        .netns()
        .run(|| {
            let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            udp.local_addr().unwrap().port()
        })
        .unwrap();
    let v4 = format!("{UPSTREAM}:{port}");
    let v6 = format!("[2001:db8::53]:{port}");
    let served = support::served::Served::start_in(
        "dnsnr",
        sandbox,
        &["--dns-upstream", &v4, "--dns-upstream", &v6],
        &support::served::Options::default(),
    );
    let dig = |args: &[&str]| {
        let mut all = vec!["@192.168.127.1", "+time=8", "+tries=1"];
        all.extend_from_slice(args);
        let started = std::time::Instant::now();
        let out = served.guest.run("dig", &all, Duration::from_secs(20));
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            started.elapsed(),
        )
    };
    let (local, _) = dig(&["+short", "host.containers.internal", "A"]);
    assert_eq!(local.trim(), "192.168.127.254", "{}", served.log());
    for _ in 0..3 {
        let (other, took) = dig(&["www.dns.test", "A"]);
        assert!(
            other.contains("status: SERVFAIL"),
            "{other}\n{}",
            served.log()
        );
        // Three attempts of 1.5 s would take 4.5 s; failing over at once takes next to none.
        assert!(took < Duration::from_millis(1500), "{took:?}\n{other}");
    }
    let log = served.log();
    let told = |upstream: &str| {
        log.lines()
            .filter(|l| l.contains(upstream) && l.contains("unreachable"))
            .count()
    };
    assert_eq!(told(&v4), 1, "{log}");
    assert_eq!(told("2001:db8::53"), 1, "{log}");

    // The address comes up in the sandbox, a server behind it: the next queries get there.
    let sandbox = served.sandbox.as_ref().unwrap();
    sandbox.ip(&["addr", "add", &format!("{UPSTREAM}/32"), "dev", "lo"]);
    let dir = support::TempDir::new("dnsnr-dnsmasq");
    let listen = format!("--listen-address={UPSTREAM}");
    let port_arg = format!("--port={port}");
    let pid_file = format!("--pid-file={}", dir.path().join("pid").display());
    let _dnsmasq = sandbox.spawn(
        "dnsmasq",
        &[
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            &listen,
            "--user=root",
            &port_arg,
            "--host-record=www.dns.test,10.1.2.3",
            &pid_file,
        ],
    );
    let answered = support::eventually(Duration::from_secs(20), || {
        let (out, _) = dig(&["+short", "www.dns.test", "A"]);
        (out.trim() == "10.1.2.3").then_some(())
    });
    assert!(
        answered.is_some(),
        "never reached the upstream:\n{}",
        served.log()
    );
}
