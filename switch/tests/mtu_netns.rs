//! MTU belongs to a link: two kernel guests on one host-switch, one on a TAP at 65520 and one
//! at 1500, each get segments their own link carries, and replies larger than a guest's MTU
//! (a 3000-byte ping, a 3000-byte UDP answer) reach it as IP fragments instead of being lost.
//!
//! Needs root. Without it the tests skip loudly, unless CI=true, where they must run.
//! Traffic goes only to servers this test runs on 127.0.0.1, through namespaces it created.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::UdpSocket;
use std::time::Duration;

mod support;

use support::{NetnsGuard, echo_server, privileged};

use switch::link::tap::TapLink;
use switch::runtime::{Runtime, RuntimeConfig};
use switch::tap::{TapConfig, TapOptions};

fn runtime() -> Runtime {
    let control = forwarder::Control::new("192.168.127.2".parse().unwrap(), &[]);
    let mut config = RuntimeConfig {
        workers: 2,
        ..RuntimeConfig::default()
    };
    config.use_forwarder(forwarder::Config::default(), &control);
    Runtime::start(config).unwrap()
}

/// A namespace whose tap0 has address 192.168.127.`n` and `mtu`, served by `rt`.
fn guest(rt: &Runtime, tag: &str, n: u8, mtu: u16) -> (NetnsGuard, TapLink) {
    let ns = NetnsGuard::new(tag);
    let options = TapOptions {
        multi_queue: true,
        offload: true,
        configure: Some(TapConfig {
            mac: Some(stack::wire::EthernetAddress([2, 0, 0, 0, 0, n])),
            mtu: u32::from(mtu),
            address: std::net::Ipv4Addr::new(192, 168, 127, n),
            ..TapConfig::default()
        }),
    };
    let link = TapLink::open("tap0", &ns.netns(), &options, &rt.attacher(), mtu).unwrap();
    (ns, link)
}

/// The largest segment the guest's kernel saw from host-switch (`tcpi_rcv_mss`) on a
/// connection to the host's echo server on `port` that carried 400 kB each way.
fn guest_mss(ns: &NetnsGuard, port: u16) -> u32 {
    let script = format!(
        "import socket, struct\n\
         s = socket.create_connection(('192.168.127.254', {port}), timeout=10)\n\
         s.sendall(b'x' * 400000)\n\
         got = 0\n\
         while got < 400000:\n\
         \x20   got += len(s.recv(65536))\n\
         info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)\n\
         print(struct.unpack_from('I', info, 20)[0])\n"
    );
    let out = ns.run("python3", &["-c", &script], Duration::from_secs(20));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn each_link_gets_segments_of_its_own_mtu() {
    if !privileged("each_link_gets_segments_of_its_own_mtu", &["ip", "python3"]) {
        return;
    }
    let rt = runtime();
    let (big, _big_link) = guest(&rt, "mtu-big", 2, 65520);
    let (small, _small_link) = guest(&rt, "mtu-small", 3, 1500);
    let port = echo_server();
    let big_mss = guest_mss(&big, port);
    let small_mss = guest_mss(&small, port);
    assert!(big_mss > 60000, "the 65520 guest's MSS: {big_mss}");
    assert!(small_mss <= 1460, "the 1500 guest's MSS: {small_mss}");
    // And the big one again, after the small one joined.
    let again = guest_mss(&big, port);
    assert!(again > 60000, "the 65520 guest again: {again}");
}

#[test]
fn replies_larger_than_the_guests_mtu_arrive_in_fragments() {
    if !privileged(
        "replies_larger_than_the_guests_mtu_arrive_in_fragments",
        &["ip", "ping", "python3"],
    ) {
        return;
    }
    let rt = runtime();
    let (ns, _link) = guest(&rt, "mtu-frag", 2, 1500);
    let before = reassembled(&ns);

    let out = ns.run(
        "ping",
        &["-c2", "-i0.2", "-W5", "-s3000", "192.168.127.254"],
        Duration::from_secs(15),
    );
    assert!(
        out.status.success(),
        "a 3000-byte ping through the host: {}",
        String::from_utf8_lossy(&out.stdout)
    );

    let server = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        for _ in 0..4 {
            let Ok((n, from)) = server.recv_from(&mut buf) else {
                return;
            };
            let _ = server.send_to(&buf[..n], from);
        }
    });
    let script = format!(
        "import socket\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.settimeout(5)\n\
         data = bytes(i % 251 for i in range(3000))\n\
         s.sendto(data, ('192.168.127.254', {port}))\n\
         got, _ = s.recvfrom(65536)\n\
         assert got == data, len(got)\n\
         print(len(got))\n"
    );
    let out = ns.run("python3", &["-c", &script], Duration::from_secs(15));
    assert!(
        out.status.success(),
        "a 3000-byte UDP answer: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "3000");
    // Two echo replies and one datagram, each put back together by the guest's kernel: they
    // came as fragments, not as frames its link could not carry.
    let after = reassembled(&ns);
    assert!(after >= before + 3, "reassembled {before} → {after}");
}

/// The guest kernel's count of datagrams it reassembled (`Ip: ReasmOKs`).
fn reassembled(ns: &NetnsGuard) -> u64 {
    let out = ns.run("cat", &["/proc/net/snmp"], Duration::from_secs(5));
    let text = String::from_utf8_lossy(&out.stdout);
    let mut ip = text.lines().filter(|l| l.starts_with("Ip:"));
    let (names, values) = (ip.next().unwrap(), ip.next().unwrap());
    let at = names
        .split_whitespace()
        .position(|n| n == "ReasmOKs")
        .unwrap();
    values.split_whitespace().nth(at).unwrap().parse().unwrap()
}
