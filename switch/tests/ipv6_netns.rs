//! IPv6 with no set-up, with the kernel as guest, through the built binary's `run`:
//! - the command's namespace gets a global address by SLAAC from our router advertisements
//!   and a default route via the gateway's link-local address; it reaches a server on the
//!   host's `::1` through the host's virtual IPv6 address, resolves AAAA records through the
//!   gateway's IPv6 address over UDP and TCP;
//! - `dhclient -6 -S` gets an Information-request answered (DNS servers), `dhclient -6` an
//!   address (the default guest's static lease);
//! - `traceroute` (UDP and ICMP, both families) from the guest to a namespace behind a router
//!   namespace shows the gateway, the router, the destination — host-switch itself running
//!   inside the test's own namespaces, so the probes go nowhere else;
//! - `--disable-ipv6` leaves the guest without IPv6 configuration;
//! - a forward exposed on the host's loopback reaches a server on the guest's SLAAC address
//!   over TCP and UDP (from the gateway's IPv6 address, found by neighbour solicitation).
//!
//! Needs root; skips loudly without it unless CI=true. Traffic stays on loopback and inside
//! the namespaces the tests create.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use support::{NetnsGuard, TempDir, api_request, eventually, privileged, run_with_timeout};

const BIN: &str = env!("CARGO_BIN_EXE_host-switch");
/// The default prefix's addresses (`--subnet6`'s default).
const GATEWAY6: &str = "fd9d:b9a2:e1c4:127::1";
const HOST6: &str = "fd9d:b9a2:e1c4:127::254";
const GUEST6_STATIC: &str = "fd9d:b9a2:e1c4:127::2";
/// The default guest's SLAAC address in the default prefix.
const GUEST6_SLAAC: &str = "fd9d:b9a2:e1c4:127:5894:efff:fee4:cee";
const GATEWAY_LL: &str = "fe80::5894:efff:fee4:cdd";
const PAGE: &str = "hello from the host's ::1\n";

/// Waits (inside the guest's shell) until tap0 has a usable address of `scope`.
const WAIT_ADDR: &str = "for i in $(seq 150); do ip -6 addr show dev tap0 scope SCOPE -tentative | grep -q inet6 && break; sleep 0.1; done";

fn wait_addr(scope: &str) -> String {
    WAIT_ADDR.replace("SCOPE", scope)
}

/// An HTTP server on the host's `[::1]`, answering every request with `PAGE`.
fn http_server_v6() -> u16 {
    let listener = TcpListener::bind("[::1]:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut buf = [0u8; 2048];
            let _ = conn.read(&mut buf);
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{PAGE}",
                PAGE.len()
            );
        }
    });
    port
}

/// `host-switch run [extra] -- sh -c script`, in `netns` if given; stdout and stderr.
fn run(netns: Option<&NetnsGuard>, extra: &[&str], script: &str) -> (bool, String, String) {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", &ns.name, BIN]);
            c
        }
        None => Command::new(BIN),
    };
    cmd.args(["run", "--ssh-port", "-1"])
        .args(extra)
        .args(["--", "sh", "-c", script])
        .stdin(std::process::Stdio::null());
    let out = run_with_timeout(&mut cmd, Duration::from_secs(120));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn run_gets_slaac_a_default_route_ipv6_dns_and_the_hosts_loopback() {
    if !privileged(
        "run_gets_slaac_a_default_route_ipv6_dns_and_the_hosts_loopback",
        &["ip", "dig", "curl"],
    ) {
        return;
    }
    let port = http_server_v6();
    let script = format!(
        "{wait}
         echo ADDR; ip -6 addr show dev tap0 scope global
         echo ROUTE; ip -6 route show default
         echo DNS; dig +short +time=3 +tries=2 @{GATEWAY6} AAAA host.containers.internal
         dig +short +tcp +time=3 +tries=2 @{GATEWAY6} AAAA gateway.containers.internal
         dig +short +time=3 +tries=2 @{GATEWAY6} A host.containers.internal
         echo CURL; curl -s -g --max-time 10 http://[{HOST6}]:{port}/",
        wait = wait_addr("global")
    );
    let (ok, out, err) = run(None, &[], &script);
    let ctx = format!("stdout:\n{out}\nstderr:\n{err}");
    assert!(ok, "{ctx}");
    assert!(
        out.contains("inet6 fd9d:b9a2:e1c4:127:5894:efff:fee4:cee/64 scope global dynamic"),
        "a SLAAC address from the advertised prefix:\n{ctx}"
    );
    assert!(
        out.contains(&format!("default via {GATEWAY_LL} dev tap0 proto ra")),
        "a default route from the router advertisement:\n{ctx}"
    );
    let dns: Vec<&str> = out
        .split("DNS\n")
        .nth(1)
        .and_then(|rest| rest.split("CURL\n").next())
        .unwrap_or_default()
        .lines()
        .collect();
    assert_eq!(dns, [HOST6, GATEWAY6, "192.168.127.254"], "{ctx}");
    assert!(
        out.ends_with(PAGE),
        "the host's ::1 through {HOST6}:\n{ctx}"
    );
}

#[test]
fn disable_ipv6_leaves_the_guest_without_ipv6_configuration() {
    if !privileged(
        "disable_ipv6_leaves_the_guest_without_ipv6_configuration",
        &["ip"],
    ) {
        return;
    }
    // Long enough for router solicitations to be answered, were they answered.
    let script = format!(
        "{wait}; sleep 3; echo ADDR; ip -6 addr show dev tap0 scope global; echo ROUTE; \
         ip -6 route show default; cat /etc/resolv.conf",
        wait = wait_addr("link")
    );
    let (ok, out, err) = run(None, &["--disable-ipv6"], &script);
    let ctx = format!("stdout:\n{out}\nstderr:\n{err}");
    assert!(ok, "{ctx}");
    let after_addr = out.split("ADDR\n").nth(1).unwrap_or_default();
    assert!(
        after_addr.starts_with("ROUTE\n"),
        "no global address:\n{ctx}"
    );
    assert!(
        !out.contains("default via"),
        "no IPv6 default route:\n{ctx}"
    );
    assert!(!out.contains(GATEWAY6), "no IPv6 name server:\n{ctx}");
    // And with IPv6 on, the same wait is enough for both.
    let (ok, out, err) = run(None, &[], &script);
    assert!(
        ok && out.contains("scope global") && out.contains("default via"),
        "stdout:\n{out}\nstderr:\n{err}"
    );
}

#[test]
fn dhclient_gets_dhcpv6_information_and_the_static_address() {
    if !privileged(
        "dhclient_gets_dhcpv6_information_and_the_static_address",
        &["ip", "dhclient"],
    ) {
        return;
    }
    let dir = TempDir::new("dhcp6");
    // dhclient calls this with the reason and the options in its environment; it only
    // records them (it never touches the machine's resolv.conf).
    let record = dir.path().join("env");
    let script = dir.script(
        "record.sh",
        &format!(
            "#!/bin/sh\nenv | grep -E '^(reason|new_)' | sort >> {}\necho >> {}\n",
            record.display(),
            record.display()
        ),
    );
    let d = dir.path().display();
    let sf = script.display();
    let guest = format!(
        "{wait}
         timeout 30 dhclient -6 -S -1 -sf {sf} -lf {d}/stateless.leases -pf {d}/stateless.pid tap0
         echo stateless=$?
         timeout 40 dhclient -6 -1 -sf {sf} -lf {d}/stateful.leases -pf {d}/stateful.pid tap0
         echo stateful=$?
         dhclient -6 -x -pf {d}/stateful.pid tap0 >/dev/null 2>&1
         ip -6 addr show dev tap0",
        wait = wait_addr("link")
    );
    let (ok, out, err) = run(None, &[], &guest);
    let env = std::fs::read_to_string(&record).unwrap_or_default();
    let ctx = format!("stdout:\n{out}\nstderr:\n{err}\nscript saw:\n{env}");
    assert!(ok, "{ctx}");
    assert!(
        out.contains("stateless=0") && out.contains("stateful=0"),
        "{ctx}"
    );
    let blocks: Vec<&str> = env.split("\n\n").collect();
    // The stateless exchange: name servers, no address.
    let stateless = blocks
        .iter()
        .find(|b| b.contains("new_dhcp6_name_servers") && !b.contains("new_ip6_address"))
        .unwrap_or_else(|| panic!("no stateless answer:\n{ctx}"));
    assert!(
        stateless.contains(&format!("new_dhcp6_name_servers={GATEWAY6}")),
        "{ctx}"
    );
    // The stateful one: the default guest's static lease.
    let bound = blocks
        .iter()
        .find(|b| b.contains("reason=BOUND6"))
        .unwrap_or_else(|| panic!("no address bound:\n{ctx}"));
    assert!(
        bound.contains(&format!("new_ip6_address={GUEST6_STATIC}")),
        "{ctx}"
    );
    assert!(
        bound.contains("new_dhcp6_server_id=0:3:0:1:5a:94:ef:e4:c:dd"),
        "{ctx}"
    );
}

/// A sandbox namespace S (where host-switch runs), a router namespace R and a destination D:
/// S —10.77.1.0/24, fd00:77:1::/64— R —10.77.2.0/24, fd00:77:2::/64— D. S routes everything
/// through R; R forwards; nothing leads out of the three.
struct Routed {
    s: NetnsGuard,
    _r: NetnsGuard,
    _d: NetnsGuard,
}

fn sh(args: &str) {
    let out = Command::new("sh").args(["-c", args]).output().unwrap();
    assert!(out.status.success(), "{args}: {out:?}");
}

impl Routed {
    fn new() -> Routed {
        let (s, r, d) = (
            NetnsGuard::new("trs"),
            NetnsGuard::new("trr"),
            NetnsGuard::new("trd"),
        );
        let (sn, rn, dn) = (&s.name, &r.name, &d.name);
        for ns in [sn, rn, dn] {
            sh(&format!(
                "ip -n {ns} link set lo up && ip netns exec {ns} sysctl -qw \
                 net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0"
            ));
        }
        sh(&format!(
            "ip link add s0 netns {sn} type veth peer name r0 netns {rn} && \
             ip link add r1 netns {rn} type veth peer name d0 netns {dn}"
        ));
        for (ns, dev, v4, v6) in [
            (sn, "s0", "10.77.1.1/24", "fd00:77:1::1/64"),
            (rn, "r0", "10.77.1.2/24", "fd00:77:1::2/64"),
            (rn, "r1", "10.77.2.1/24", "fd00:77:2::1/64"),
            (dn, "d0", "10.77.2.2/24", "fd00:77:2::2/64"),
        ] {
            sh(&format!(
                "ip -n {ns} addr add {v4} dev {dev} && ip -n {ns} addr add {v6} dev {dev} nodad \
                 && ip -n {ns} link set {dev} up"
            ));
        }
        sh(&format!(
            "ip -n {sn} route add default via 10.77.1.2 && \
             ip -n {sn} -6 route add default via fd00:77:1::2 && \
             ip -n {dn} route add default via 10.77.2.1 && \
             ip -n {dn} -6 route add default via fd00:77:2::1 && \
             ip netns exec {rn} sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1"
        ));
        Routed { s, _r: r, _d: d }
    }
}

/// The hops (first address of each line) of a `traceroute -n -q 1` output section.
fn hops(out: &str, section: &str) -> Vec<String> {
    out.split(&format!("{section}\n"))
        .nth(1)
        .unwrap_or_default()
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with(' '))
        .map(|l| l.split_whitespace().nth(1).unwrap_or("").to_owned())
        .collect()
}

fn traceroutes(ns: &NetnsGuard) -> (String, String) {
    let script = format!(
        "{wait}
         echo UDP4; traceroute -n -q 1 -w 2 -m 5 10.77.2.2
         echo ICMP4; traceroute -I -n -q 1 -w 2 -m 5 10.77.2.2
         echo UDP6; traceroute -6 -n -q 1 -w 2 -m 5 fd00:77:2::2
         echo ICMP6; traceroute -6 -I -n -q 1 -w 2 -m 5 fd00:77:2::2",
        wait = wait_addr("global")
    );
    let (ok, out, err) = run(Some(ns), &[], &script);
    assert!(ok, "stdout:\n{out}\nstderr:\n{err}");
    (out, err)
}

#[test]
fn traceroute_shows_the_gateway_the_router_and_the_destination() {
    if !privileged(
        "traceroute_shows_the_gateway_the_router_and_the_destination",
        &["ip", "traceroute"],
    ) {
        return;
    }
    let net = Routed::new();
    // Without ping sockets in the sandbox the forwarder sends echo requests on a raw socket
    // (we are root); then with them. Both pass on the routers' errors.
    for ping_sockets in [false, true] {
        if ping_sockets {
            sh(&format!(
                "ip netns exec {} sysctl -qw net.ipv4.ping_group_range='0 2147483647'",
                net.s.name
            ));
        }
        let (out, err) = traceroutes(&net.s);
        let ctx = format!("ping sockets: {ping_sockets}\nstdout:\n{out}\nstderr:\n{err}");
        for section in ["UDP4", "ICMP4"] {
            assert_eq!(
                hops(&out, section),
                ["192.168.127.1", "10.77.1.2", "10.77.2.2"],
                "{section}: {ctx}"
            );
        }
        for section in ["UDP6", "ICMP6"] {
            assert_eq!(
                hops(&out, section),
                [GATEWAY6, "fd00:77:1::2", "fd00:77:2::2"],
                "{section}: {ctx}"
            );
        }
    }
}

/// A guest's server on its IPv6 address, reached through forwards on the host's loopback:
/// an HTTP page over TCP and an echo over UDP. The guest has sent nothing to the gateway
/// from that address before the first connection; the forwarder finds it with a neighbour
/// solicitation.
#[test]
fn forwards_reach_a_server_on_the_guests_ipv6_address() {
    if !privileged(
        "forwards_reach_a_server_on_the_guests_ipv6_address",
        &["ip", "python3"],
    ) {
        return;
    }
    let dir = TempDir::new("ipv6-fwd");
    let api = dir.path().join("api.sock");
    let done = dir.path().join("done");
    let server = dir.path().join("server.py");
    std::fs::write(
        &server,
        r#"
import socket, threading
def web():
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::", 8080)); s.listen(8)
    while True:
        c, peer = s.accept()
        c.recv(4096)
        body = ("from the guest to " + peer[0] + "\n").encode()
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
        c.close()
def echo():
    u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    u.bind(("::", 8081))
    while True:
        data, peer = u.recvfrom(2048)
        u.sendto(b"echo " + data, peer)
threading.Thread(target=web, daemon=True).start()
threading.Thread(target=echo, daemon=True).start()
threading.Event().wait(60)
"#,
    )
    .unwrap();
    // The command serves until the test says it is done (at most 60 s).
    let script = format!(
        "{wait}
         python3 {server} & pid=$!
         for i in $(seq 600); do [ -e {done} ] && break; sleep 0.1; done
         kill $pid",
        wait = wait_addr("global"),
        server = server.display(),
        done = done.display(),
    );
    let services = format!("unix://{}", api.display());
    let tester = std::thread::spawn({
        let api = api.clone();
        let done = done.clone();
        move || {
            let result = exercise_forwards(&api);
            std::fs::write(&done, b"").unwrap();
            result
        }
    });
    let (ok, out, err) = run(None, &["--services", &services], &script);
    let result = tester.join().unwrap();
    let ctx = format!("stdout:\n{out}\nstderr:\n{err}");
    assert!(ok, "{ctx}");
    let (page, echo, stats) = result.unwrap_or_else(|e| panic!("{e}\n{ctx}"));
    assert_eq!(page, format!("from the guest to {GATEWAY6}\n"), "{ctx}");
    assert_eq!(echo, "echo ping6", "{ctx}");
    let fwd = &stats["forwarder"];
    assert!(fwd["neighbor_solicits"].as_u64().unwrap() >= 1, "{stats}");
}

/// Exposes the guest's ports 8080 (TCP) and 8081 (UDP) on the host's loopback once the API
/// is up, then fetches the page and asks for an echo; the page, the echo and `/stats`.
fn exercise_forwards(api: &std::path::Path) -> Result<(String, String, serde_json::Value), String> {
    eventually(Duration::from_secs(30), || api.exists().then_some(()))
        .ok_or("the API socket never appeared")?;
    let free = || {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (tcp_port, udp_port) = (free(), {
        let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        u.local_addr().unwrap().port()
    });
    for (port, remote, protocol) in [(tcp_port, 8080, "tcp"), (udp_port, 8081, "udp")] {
        let expose = format!(
            r#"{{"local":"127.0.0.1:{port}","remote":"[{GUEST6_SLAAC}]:{remote}","protocol":"{protocol}"}}"#
        );
        let (status, body) = api_request(api, "POST", "/services/forwarder/expose", &expose);
        if status != 200 {
            return Err(format!("expose {protocol}: {status} {body}"));
        }
    }
    let page = eventually(Duration::from_secs(30), || {
        let mut c = std::net::TcpStream::connect(("127.0.0.1", tcp_port)).ok()?;
        c.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
        c.write_all(b"GET / HTTP/1.1\r\nHost: guest\r\n\r\n").ok()?;
        let mut response = String::new();
        c.read_to_string(&mut response).ok()?;
        let (_, body) = response.split_once("\r\n\r\n")?;
        (!body.is_empty()).then(|| body.to_owned())
    })
    .ok_or("the guest's page never came through the TCP forward")?;
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let echo = eventually(Duration::from_secs(20), || {
        udp.send_to(b"ping6", ("127.0.0.1", udp_port)).ok()?;
        let mut buf = [0u8; 64];
        let (n, _) = udp.recv_from(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    })
    .ok_or("no echo came back through the UDP forward")?;
    let (status, body) = api_request(api, "GET", "/stats", "");
    if status != 200 {
        return Err(format!("/stats: {status}"));
    }
    let stats = serde_json::from_str(&body).map_err(|e| e.to_string())?;
    Ok((page, echo, stats))
}
