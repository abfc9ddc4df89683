//! Multicast both ways, with the kernel as guest: three guests (A sends, B joins, C does not)
//! on one host-switch, which runs — switch, gateway, forwarder and the relay's host sockets —
//! inside a sandbox namespace of its own, so nothing a guest sends to a group can leave it.
//!
//! The sandbox has loopback, multicast-capable, with 224.0.0.0/4 routed to it: IPv4 groups
//! go between the relay and host programs over `lo`. Linux does not deliver IPv6 multicast
//! looped over `lo` (the frame keeps its output route and is dropped on input), so IPv6 groups
//! use a veth pair whose two ends both sit in the sandbox (`h0`, the relay's; `h1`, the host
//! programs'): a closed loop, nothing beyond it.
//!
//! Checked: B receives, exactly once each, what a host program sends to 239.1.2.3 and
//! ff15::1:2 and what A sends there; a host program receives what A sends; C, which joined
//! nothing, sees none of it on its link; `/stats`-level counters show the relay each way.
//!
//! Needs root; skips loudly without it unless CI=true.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use support::{Background, NetnsGuard, TapLink, eventually, open_tap, privileged};
use switch::runtime::{Runtime, RuntimeConfig};
use switch::tap::TapConfig;

/// The UDP port of the test's groups (inside the sandbox's own namespace).
const PORT: u16 = 5599;
const GROUP4: &str = "239.1.2.3";
const GROUP6: &str = "ff15::1:2";

/// Listens to the groups on the port until its time is up, printing what arrives.
/// Arguments: port, IPv4 group, IPv6 group, the IPv4 address to join on, the IPv6 interface
/// name, seconds.
const LISTEN: &str = r#"
import select, socket, struct, sys, time
port, g4, g6, if4, if6, secs = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], float(sys.argv[6])
a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
a.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
a.bind((g4, port))
a.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton(g4) + socket.inet_aton(if4))
b = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
b.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
b.bind((g6, port))
b.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP,
             socket.inet_pton(socket.AF_INET6, g6) + struct.pack("@I", socket.if_nametoindex(if6)))
print("ready", flush=True)
end = time.time() + secs
while time.time() < end:
    ready, _, _ = select.select([a, b], [], [], 0.2)
    for s in ready:
        data, src = s.recvfrom(4096)
        print(data.decode(), src[0], flush=True)
"#;

/// Sends payloads to a group. Arguments: group, port, IPv4 source address to bind or "-",
/// IPv6 interface name or "-", payloads...
const SEND: &str = r#"
import socket, sys, time
group, port, bind, if6 = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
v6 = ":" in group
s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
if v6:
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, socket.if_nametoindex(if6))
else:
    s.bind((bind, 0))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(bind))
for payload in sys.argv[5:]:
    s.sendto(payload.encode(), (group, port))
    time.sleep(0.2)
"#;

fn sh(args: &str) {
    let out = Command::new("sh").args(["-c", args]).output().unwrap();
    assert!(out.status.success(), "{args}: {out:?}");
}

/// The sandbox: loopback (multicast on, 224.0.0.0/4 routed to it) and the closed veth pair.
fn sandbox() -> (NetnsGuard, u32) {
    let s = NetnsGuard::new("mcs");
    let n = &s.name;
    sh(&format!(
        "ip netns exec {n} sysctl -qw net.ipv6.conf.all.accept_dad=0 \
             net.ipv6.conf.default.accept_dad=0 && \
         ip -n {n} link set lo multicast on && ip -n {n} link set lo up && \
         ip -n {n} route add 224.0.0.0/4 dev lo && \
         ip link add h0 netns {n} type veth peer name h1 netns {n} && \
         ip -n {n} link set h0 up && ip -n {n} link set h1 up"
    ));
    let out = s.ip(&["-o", "link", "show", "h0"]);
    let index = out
        .split(':')
        .next()
        .and_then(|i| i.trim().parse().ok())
        .expect("h0's index");
    (s, index)
}

fn guest(rt: &Runtime, tag: &str, n: u8) -> (NetnsGuard, TapLink) {
    let ns = NetnsGuard::new(tag);
    let tap = open_tap(
        &ns,
        Some(TapConfig {
            mac: Some(format!("02:00:00:00:01:{n:02x}").parse().unwrap()),
            mtu: 1500,
            address: Ipv4Addr::new(192, 168, 127, n),
            ..TapConfig::default()
        }),
    );
    let port = rt.attacher().attach(&format!("tap:{tag}")).unwrap();
    (ns, TapLink::start(tap, port))
}

/// Waits until `ns`'s tap0 has a link-local address out of duplicate address detection.
fn link_local_ready(ns: &NetnsGuard) {
    eventually(Duration::from_secs(10), || {
        let out = ns.ip(&[
            "-6",
            "addr",
            "show",
            "dev",
            "tap0",
            "scope",
            "link",
            "-tentative",
        ]);
        out.contains("inet6").then_some(())
    })
    .expect("a link-local address");
}

fn listen(ns: &NetnsGuard, if4: &str, if6: &str) -> Background {
    let port = PORT.to_string();
    ns.spawn(
        "python3",
        &["-u", "-c", LISTEN, &port, GROUP4, GROUP6, if4, if6, "14"],
    )
}

fn send(ns: &NetnsGuard, group: &str, bind: &str, if6: &str, payloads: &[&str]) {
    let port = PORT.to_string();
    let mut args = vec!["-c", SEND, group, &port, bind, if6];
    args.extend_from_slice(payloads);
    let out = ns.run("python3", &args, Duration::from_secs(10));
    assert!(out.status.success(), "send to {group}: {out:?}");
}

/// The lines of a listener's output that carry `payload`, as (payload, source).
fn received<'a>(out: &'a str, payload: &str) -> Vec<&'a str> {
    out.lines()
        .filter(|l| l.split_whitespace().next() == Some(payload))
        .collect()
}

#[test]
fn multicast_between_guests_and_the_host_reaches_members_only() {
    if !privileged(
        "multicast_between_guests_and_the_host_reaches_members_only",
        &["ip", "python3", "tcpdump"],
    ) {
        return;
    }
    let (sandbox, h0) = sandbox();
    let control = forwarder::Control::new(IpAddr::V4(Ipv4Addr::new(192, 168, 127, 2)), &[]);
    let fwd = forwarder::Config {
        multicast_ports: vec![PORT],
        multicast_interface_v6: h0,
        ..forwarder::Config::default()
    };
    let mut config = RuntimeConfig {
        workers: 2,
        ..RuntimeConfig::default()
    };
    config.use_forwarder(fwd, &control);
    // Started from a thread inside the sandbox: every thread of the runtime, and so every
    // host socket its workers open, is in the sandbox's namespace.
    let rt = Arc::new(
        sandbox
            .netns()
            .run(move || Runtime::start(config))
            .unwrap()
            .unwrap(),
    );
    let (a, _la) = guest(&rt, "mca", 2);
    let (b, _lb) = guest(&rt, "mcb", 3);
    let (c, _lc) = guest(&rt, "mcc", 4);
    for ns in [&a, &b, &c] {
        link_local_ready(ns);
    }
    let host_listener = listen(&sandbox, "0.0.0.0", "h1");
    let b_listener = listen(&b, "192.168.127.3", "tap0");
    let c_capture = c.spawn("tcpdump", &["-n", "-l", "-i", "tap0", "udp port 5599"]);
    // B's reports reach the snooper, and the relay joins both groups on the host.
    let joined = eventually(Duration::from_secs(15), || {
        let s = rt.stats();
        let f = control.stats();
        let m = s.multicast?;
        (m.memberships >= 2 && f.mcast_groups >= 2).then_some((m, f))
    });
    assert!(
        joined.is_some(),
        "B's groups joined: {:?} {:?}",
        rt.stats().multicast,
        control.stats()
    );
    // Give tcpdump in C time to start capturing.
    std::thread::sleep(Duration::from_millis(1500));

    send(
        &sandbox,
        GROUP4,
        "127.0.0.1",
        "-",
        &["host4-1", "host4-2", "host4-3"],
    );
    send(
        &sandbox,
        GROUP6,
        "-",
        "h1",
        &["host6-1", "host6-2", "host6-3"],
    );
    send(
        &a,
        GROUP4,
        "192.168.127.2",
        "-",
        &["guest4-1", "guest4-2", "guest4-3"],
    );
    send(
        &a,
        GROUP6,
        "-",
        "tap0",
        &["guest6-1", "guest6-2", "guest6-3"],
    );

    let host_out = host_listener.wait(Duration::from_secs(20));
    let b_out = b_listener.wait(Duration::from_secs(20));
    let c_out = c_capture.wait(Duration::from_millis(100));
    let host_text = String::from_utf8_lossy(&host_out.stdout).into_owned();
    let b_text = String::from_utf8_lossy(&b_out.stdout).into_owned();
    let c_text = String::from_utf8_lossy(&c_out.stdout).into_owned();
    let ctx = format!(
        "host:\n{host_text}\nB:\n{b_text}\nC:\n{c_text}\nstats: {:?}\n{:?}",
        rt.stats().multicast,
        control.stats()
    );
    assert!(b_text.starts_with("ready"), "{ctx}");
    for n in 1..=3 {
        // Host → B, exactly once, from the host's address as the guest knows it.
        let got = received(&b_text, &format!("host4-{n}"));
        assert_eq!(got, [format!("host4-{n} 192.168.127.254")], "{ctx}");
        assert_eq!(received(&b_text, &format!("host6-{n}")).len(), 1, "{ctx}");
        // A → B, exactly once: straight through the switch, and not again through the host.
        let got = received(&b_text, &format!("guest4-{n}"));
        assert_eq!(got, [format!("guest4-{n} 192.168.127.2")], "{ctx}");
        assert_eq!(received(&b_text, &format!("guest6-{n}")).len(), 1, "{ctx}");
        // A → the host.
        assert!(
            !received(&host_text, &format!("guest4-{n}")).is_empty(),
            "{ctx}"
        );
        assert!(
            !received(&host_text, &format!("guest6-{n}")).is_empty(),
            "{ctx}"
        );
    }
    // C joined nothing: not one of those datagrams reached its link.
    assert!(c_text.trim().is_empty(), "C saw group traffic:\n{ctx}");
    let f = control.stats();
    assert!(f.mcast_to_host >= 6 && f.mcast_to_guest >= 6, "{ctx}");
    assert!(
        f.mcast_looped >= 1,
        "the relay's own sends came back and stayed out: {ctx}"
    );
    let m = rt.stats().multicast.unwrap();
    assert!(
        m.group_frames >= 12 && m.mld_messages >= 1 && m.igmp_messages >= 1,
        "{ctx}"
    );
}
