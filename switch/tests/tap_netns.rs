//! The kernel as peer: a TAP opened inside a network namespace this test creates, configured
//! like slirp4netns `--configure`, checked with `ip -j` and by the kernel's own ARP request.
//!
//! Needs root. Without it the tests skip loudly, unless CI=true, where they must run.
//! Traffic stays inside the namespaces created here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{Ipv4Addr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod support;

use stack::wire::{EtherType, EthernetAddress, EthernetFrame};
use support::{NetnsGuard, privileged};
use switch::netns::Netns;
use switch::tap::{DEFAULT_GATEWAY, Tap, TapConfig, TapOptions};

const GUEST_MAC: EthernetAddress = EthernetAddress([0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xee]);

/// `ip -n NS -j ARGS...`, parsed.
fn ip_json(ns: &NetnsGuard, args: &[&str]) -> Value {
    let out = Command::new("ip")
        .args(["-n", &ns.name, "-j"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "ip {args:?}: {out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Where `ip netns` keeps the namespace.
fn ns_path(ns: &NetnsGuard) -> PathBuf {
    PathBuf::from(format!("/run/netns/{}", ns.name))
}

/// A child process, killed and reaped on drop.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn own_netns() -> PathBuf {
    std::fs::read_link("/proc/thread-self/ns/net").unwrap()
}

fn has_flag(link: &Value, flag: &str) -> bool {
    link["flags"]
        .as_array()
        .is_some_and(|f| f.iter().any(|v| v == flag))
}

/// Reads frames from `tap` until one is the kernel's ARP request for `target`, for at most a
/// few seconds and a bounded number of frames.
fn await_arp_request(tap: &Tap, sender_mac: EthernetAddress, target: Ipv4Addr) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = vec![0u8; 65536];
    let mut seen = Vec::new();
    for _ in 0..200 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || !tap.wait_readable(Some(left)).unwrap() {
            break;
        }
        let n = tap.read_frame(&mut buf).unwrap();
        let frame = EthernetFrame::new_checked(&buf[..n]).unwrap();
        seen.push(format!(
            "{} -> {} {:?}",
            frame.source(),
            frame.destination(),
            frame.ethertype()
        ));
        if frame.ethertype() != EtherType::Arp {
            continue;
        }
        let arp = frame.payload();
        // RFC 826: htype 1, ptype 0x0800, hlen 6, plen 4, op 1 (request), sha, spa, tha, tpa.
        assert!(arp.len() >= 28, "short ARP: {arp:02x?}");
        assert_eq!(&arp[..8], &[0, 1, 8, 0, 6, 4, 0, 1], "not an ARP request");
        assert_eq!(frame.destination(), EthernetAddress::BROADCAST);
        assert_eq!(frame.source(), sender_mac);
        assert_eq!(&arp[8..14], sender_mac.as_bytes());
        assert_eq!(&arp[14..18], &[192, 168, 127, 2]);
        assert_eq!(&arp[24..28], &target.octets());
        return;
    }
    panic!("no ARP request for {target} arrived on the TAP; frames seen: {seen:?}");
}

#[test]
fn configured_tap_in_a_namespace_by_path() {
    if !privileged("configured_tap_in_a_namespace_by_path", &["ip"]) {
        return;
    }
    let ns = NetnsGuard::new("tap");
    let before = own_netns();
    let options = TapOptions {
        multi_queue: false,
        offload: false,
        configure: Some(TapConfig {
            mac: Some(GUEST_MAC),
            ..TapConfig::default()
        }),
    };
    let tap = Tap::open_with("hs0", &ns.netns(), &options).unwrap();
    assert_eq!(tap.name(), "hs0");
    assert_eq!(own_netns(), before, "the calling thread changed namespace");
    assert!(
        !Command::new("ip")
            .args(["link", "show", "hs0"])
            .stderr(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success(),
        "hs0 appeared in the test's own namespace"
    );

    let addr = ip_json(&ns, &["addr", "show", "dev", "hs0"]);
    let link = &addr[0];
    assert_eq!(link["ifname"], "hs0");
    assert_eq!(link["address"], GUEST_MAC.to_string());
    assert_eq!(link["mtu"], 65520);
    assert!(has_flag(link, "UP"), "{link}");
    let inet: Vec<&Value> = link["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["family"] == "inet")
        .collect();
    assert_eq!(inet.len(), 1, "{link}");
    assert_eq!(inet[0]["local"], "192.168.127.2");
    assert_eq!(inet[0]["prefixlen"], 24);

    let lo = ip_json(&ns, &["link", "show", "lo"]);
    assert!(has_flag(&lo[0], "UP"), "{lo}");

    let routes = ip_json(&ns, &["route", "show", "default"]);
    assert_eq!(routes.as_array().map(Vec::len), Some(1), "{routes}");
    assert_eq!(routes[0]["gateway"], "192.168.127.1");
    assert_eq!(routes[0]["dev"], "hs0");

    // Anything sent to the gateway from inside makes the kernel ask for its MAC on our TAP.
    ns.netns()
        .run(|| {
            let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
            sock.send_to(b"hello", (DEFAULT_GATEWAY, 9)).unwrap();
        })
        .unwrap();
    await_arp_request(&tap, GUEST_MAC, DEFAULT_GATEWAY);

    drop(tap);
    let links = ip_json(&ns, &["link", "show"]);
    assert!(
        !links
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["ifname"] == "hs0"),
        "hs0 outlived its descriptor: {links}"
    );
}

#[test]
fn tap_in_a_namespace_by_pid_answers_ping_with_arp() {
    if !privileged("tap_in_a_namespace_by_pid_answers_ping_with_arp", &["ip"]) {
        return;
    }
    let ns = NetnsGuard::new("tap");
    let child = KillOnDrop(
        Command::new("ip")
            .args(["netns", "exec", &ns.name, "sleep", "30"])
            .spawn()
            .unwrap(),
    );
    // `ip netns exec` execs sleep in place once it has entered the namespace.
    let target = std::fs::read_link(ns_path(&ns)).ok();
    let ns_of = |pid: u32| std::fs::read_link(format!("/proc/{pid}/ns/net")).ok();
    let deadline = Instant::now() + Duration::from_secs(5);
    while ns_of(child.0.id()) == Some(own_netns()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_ne!(ns_of(child.0.id()), Some(own_netns()), "{target:?}");

    let tap = Tap::open_with(
        "guest%d",
        &Netns::Pid(child.0.id()),
        &TapOptions {
            multi_queue: false,
            offload: false,
            configure: Some(TapConfig::default()),
        },
    )
    .unwrap();
    assert_eq!(tap.name(), "guest0");
    let link = &ip_json(&ns, &["link", "show", "guest0"])[0];
    let mac: EthernetAddress = link["address"].as_str().unwrap().parse().unwrap();

    let _ping = KillOnDrop(
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns.name,
                "ping",
                "-c1",
                "-W1",
                "192.168.127.1",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    await_arp_request(&tap, mac, DEFAULT_GATEWAY);
}

#[test]
fn current_namespace_from_inside_and_nonblocking_reads() {
    if !privileged(
        "current_namespace_from_inside_and_nonblocking_reads",
        &["ip"],
    ) {
        return;
    }
    let ns = NetnsGuard::new("tap");
    let tap = ns
        .netns()
        .run(|| Tap::open("plain0", &Netns::Current))
        .unwrap()
        .unwrap();
    let link = &ip_json(&ns, &["link", "show", "plain0"])[0];
    assert!(!has_flag(link, "UP"), "unconfigured TAP came up: {link}");
    tap.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 2048];
    let err = tap.read_frame(&mut buf).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
    assert!(!tap.wait_readable(Some(Duration::from_millis(10))).unwrap());
    let clone = tap.try_clone().unwrap();
    assert_eq!(clone.name(), "plain0");
}

#[test]
fn multi_queue_tap_takes_several_queues() {
    if !privileged("multi_queue_tap_takes_several_queues", &["ip"]) {
        return;
    }
    let ns = NetnsGuard::new("tap");
    let netns = ns.netns();
    let mq = TapOptions {
        multi_queue: true,
        offload: false,
        configure: None,
    };
    let q0 = Tap::open_with("mq0", &netns, &mq).unwrap();
    let q1 = Tap::open_with("mq0", &netns, &mq).unwrap();
    assert_eq!((q0.name(), q1.name()), ("mq0", "mq0"));
    // A single-queue open of a multi-queue device is refused by the kernel.
    let err = Tap::open("mq0", &netns).unwrap_err();
    assert!(err.to_string().contains("TUNSETIFF"), "{err}");
}
