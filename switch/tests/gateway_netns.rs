//! The gateway against the Linux kernel as its guest: a network namespace with a TAP device
//! linked to a running [`Runtime`], and the kernel's ping, ARP, DHCP clients (busybox udhcpc,
//! ISC dhclient) and TCP talking to it. Needs root; see `support::privileged`. Traffic stays
//! inside the namespaces created here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::net::Ipv4Addr;
use std::time::Duration;

use support::{NetnsGuard, TapLink, TempDir, eventually, open_tap, privileged};
use switch::runtime::{Runtime, RuntimeConfig};
use switch::tap::TapConfig;

const GUEST_MAC: &str = "5a:94:ef:e4:0c:ee";
const GATEWAY_MAC: &str = "5a:94:ef:e4:0c:dd";

fn runtime() -> Runtime {
    Runtime::start(RuntimeConfig {
        workers: 2,
        ..RuntimeConfig::default()
    })
    .expect("start runtime")
}

fn tap_config(address: Ipv4Addr, mac: &str) -> TapConfig {
    TapConfig {
        mac: Some(mac.parse().expect("MAC")),
        mtu: 1500,
        address,
        ..TapConfig::default()
    }
}

/// A namespace with tap0 linked to `rt`; configured with `config`, or merely up with the
/// default guest's MAC when `None`.
fn guest(rt: &Runtime, tag: &str, config: Option<TapConfig>) -> (NetnsGuard, TapLink) {
    let ns = NetnsGuard::new(tag);
    let configured = config.is_some();
    let tap = open_tap(&ns, config);
    if !configured {
        ns.ip(&["link", "set", "tap0", "address", GUEST_MAC]);
        ns.ip(&["link", "set", "tap0", "up"]);
    }
    let port = rt.attacher().attach(&format!("tap:{tag}")).expect("attach");
    let link = TapLink::start(tap, port);
    (ns, link)
}

fn text(out: &std::process::Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn ping_the_gateway_and_resolve_its_mac() {
    if !privileged("ping_the_gateway_and_resolve_its_mac", &["ip", "ping"]) {
        return;
    }
    let rt = runtime();
    let (ns, _link) = guest(
        &rt,
        "ping",
        Some(tap_config(Ipv4Addr::new(192, 168, 127, 2), GUEST_MAC)),
    );
    let out = ns.run(
        "ping",
        &["-c", "3", "-i", "0.2", "-W", "2", "192.168.127.1"],
        Duration::from_secs(20),
    );
    assert!(out.status.success(), "ping failed: {}", text(&out));
    let neigh = ns.ip(&["neigh", "show", "192.168.127.1"]);
    assert!(neigh.contains(GATEWAY_MAC), "ip neigh: {neigh}");
    let stats = rt.stats();
    assert!(stats.gateway.echo_replies >= 3, "{stats:?}");
    assert!(stats.gateway.arp_replies >= 1, "{stats:?}");
}

#[test]
fn ping6_the_gateway_link_local() {
    if !privileged("ping6_the_gateway_link_local", &["ip", "ping"]) {
        return;
    }
    let rt = runtime();
    let (ns, _link) = guest(
        &rt,
        "ping6",
        Some(tap_config(Ipv4Addr::new(192, 168, 127, 2), GUEST_MAC)),
    );
    // The kernel's own link-local address is tentative until its duplicate address detection
    // is over (a second or so): retry until ping can use it.
    let target = "fe80::5894:efff:fee4:cdd%tap0";
    let out = eventually(Duration::from_secs(15), || {
        let out = ns.run(
            "ping",
            &["-6", "-c", "2", "-i", "0.2", "-W", "2", target],
            Duration::from_secs(10),
        );
        out.status.success().then_some(out)
    });
    assert!(out.is_some(), "ping -6 {target} never succeeded");
    let neigh = ns.ip(&[
        "-6",
        "neigh",
        "show",
        "fe80::5894:efff:fee4:cdd",
        "dev",
        "tap0",
    ]);
    assert!(neigh.contains(GATEWAY_MAC), "ip -6 neigh: {neigh}");
    // It learned the MAC by Neighbor Discovery: from a neighbour advertisement answering its
    // solicitation, or from the source link-layer option of a router advertisement (RFC 4861
    // §6.3.4), whichever came first.
    let stats = rt.stats();
    assert!(
        stats.gateway.ndp_replies + stats.gateway.router_adverts >= 1,
        "{stats:?}"
    );
}

#[test]
fn udhcpc_gets_the_static_lease() {
    if !privileged("udhcpc_gets_the_static_lease", &["ip", "udhcpc"]) {
        return;
    }
    let rt = runtime();
    let (ns, _link) = guest(&rt, "udhcpc", None);
    let dir = TempDir::new("udhcpc");
    let record = dir.path().join("env");
    let script = dir.script(
        "script.sh",
        &format!(
            "#!/bin/sh\n[ \"$1\" = bound ] || exit 0\n\
             echo \"ip=$ip router=$router dns=$dns mtu=$mtu lease=$lease subnet=$subnet\" > {}\n",
            record.display()
        ),
    );
    let script = script.to_string_lossy().into_owned();
    let out = ns.run(
        "udhcpc",
        &[
            "-i", "tap0", "-f", "-q", "-n", "-t", "5", "-T", "2", "-O", "mtu", "-s", &script,
        ],
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "udhcpc failed: {}", text(&out));
    let env = std::fs::read_to_string(&record).expect("the script ran on bound");
    assert_eq!(
        env.trim(),
        "ip=192.168.127.2 router=192.168.127.1 dns=192.168.127.1 mtu=1500 lease=3600 \
         subnet=255.255.255.0"
    );
    let leases = rt.leases();
    let lease = leases
        .iter()
        .find(|l| l.ip == Ipv4Addr::new(192, 168, 127, 2))
        .expect("lease");
    assert!(lease.expires.is_some(), "bound: {lease:?}");
}

#[test]
fn dhclient_gets_the_static_lease() {
    if !privileged("dhclient_gets_the_static_lease", &["ip", "dhclient"]) {
        return;
    }
    let rt = runtime();
    let (ns, _link) = guest(&rt, "dhclient", None);
    let dir = TempDir::new("dhclient");
    let record = dir.path().join("env");
    let script = dir.script(
        "script.sh",
        &format!(
            "#!/bin/sh\ncase \"$reason\" in BOUND|REBOOT) ;; *) exit 0 ;; esac\n\
             echo \"ip=$new_ip_address routers=$new_routers dns=$new_domain_name_servers \
             mtu=$new_interface_mtu mask=$new_subnet_mask\" > {}\n",
            record.display()
        ),
    );
    let conf = dir.path().join("dhclient.conf");
    std::fs::write(
        &conf,
        "request subnet-mask, broadcast-address, routers, domain-name-servers, interface-mtu;\n",
    )
    .expect("write dhclient.conf");
    let lease_file = dir.path().join("leases");
    let pid_file = dir.path().join("pid");
    let path = |p: &std::path::Path| p.to_string_lossy().into_owned();
    // In the foreground (-d), so the process we started is dhclient itself (`ip netns exec`
    // execs it) and stopping it by its PID cannot miss a daemonized child.
    let client = ns.spawn(
        "dhclient",
        &[
            "-1",
            "-d",
            "-v",
            "-cf",
            &path(&conf),
            "-sf",
            &path(&script),
            "-lf",
            &path(&lease_file),
            "-pf",
            &path(&pid_file),
            "tap0",
        ],
    );
    let env = eventually(Duration::from_secs(30), || {
        std::fs::read_to_string(&record)
            .ok()
            .filter(|s| s.ends_with('\n'))
    });
    // Stops dhclient (SIGKILL to its PID) and reaps it.
    let out = client.wait(Duration::ZERO);
    let env = env.unwrap_or_else(|| panic!("dhclient never bound: {}", text(&out)));
    assert_eq!(
        env.trim(),
        "ip=192.168.127.2 routers=192.168.127.1 dns=192.168.127.1 mtu=1500 mask=255.255.255.0"
    );
}

#[test]
fn two_guests_ping_and_talk_tcp_directly() {
    if !privileged(
        "two_guests_ping_and_talk_tcp_directly",
        &["ip", "ping", "python3", "tcpdump"],
    ) {
        return;
    }
    let dir = TempDir::new("pcap");
    let pcap_path = dir.path().join("capture.pcap");
    let (sink, writer) =
        switch::pcap::create(&pcap_path, switch::pcap::PcapConfig::default()).expect("pcap");
    let rt = Runtime::start(RuntimeConfig {
        workers: 2,
        pcap: Some(sink),
        ..RuntimeConfig::default()
    })
    .expect("start runtime");
    let (a, _la) = guest(
        &rt,
        "two-a",
        Some(tap_config(Ipv4Addr::new(192, 168, 127, 2), GUEST_MAC)),
    );
    let (b, _lb) = guest(
        &rt,
        "two-b",
        Some(tap_config(
            Ipv4Addr::new(192, 168, 127, 3),
            "5a:94:ef:e4:0c:ef",
        )),
    );
    let out = a.run(
        "ping",
        &["-c", "2", "-i", "0.2", "-W", "2", "192.168.127.3"],
        Duration::from_secs(20),
    );
    assert!(out.status.success(), "ping a -> b: {}", text(&out));

    let server = b.spawn(
        "python3",
        &[
            "-c",
            "import socket\n\
             s = socket.socket()\n\
             s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
             s.bind(('192.168.127.3', 5000))\n\
             s.listen(1)\n\
             s.settimeout(20)\n\
             c, _ = s.accept()\n\
             data = b''\n\
             while not data.endswith(b'\\n'):\n\
             \x20   chunk = c.recv(4096)\n\
             \x20   if not chunk: break\n\
             \x20   data += chunk\n\
             c.sendall(data.upper())\n\
             c.close()\n",
        ],
    );
    let client = "import socket, sys, time\n\
                  for _ in range(50):\n\
                  \x20   try:\n\
                  \x20       c = socket.create_connection(('192.168.127.3', 5000), timeout=5)\n\
                  \x20       break\n\
                  \x20   except OSError:\n\
                  \x20       time.sleep(0.1)\n\
                  else:\n\
                  \x20   sys.exit('no connection')\n\
                  c.sendall(b'hello from a\\n')\n\
                  print(c.recv(4096).decode().strip())\n";
    let out = a.run("python3", &["-c", client], Duration::from_secs(30));
    assert!(out.status.success(), "tcp client: {}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "HELLO FROM A");
    let server_out = server.wait(Duration::from_secs(10));
    assert!(
        server_out.status.success(),
        "tcp server: {}",
        text(&server_out)
    );

    let stats = rt.stats();
    assert!(stats.switch.unicast > 0, "{stats:?}");
    rt.shutdown();
    writer.finish().expect("pcap written");
    let dump = support::run_with_timeout(
        std::process::Command::new("tcpdump").args(["-r", &pcap_path.to_string_lossy(), "-nn"]),
        Duration::from_secs(20),
    );
    assert!(dump.status.success(), "tcpdump: {}", text(&dump));
    let listing = String::from_utf8_lossy(&dump.stdout);
    assert!(
        listing.contains("192.168.127.2 > 192.168.127.3: ICMP echo request"),
        "{listing}"
    );
    assert!(
        listing.contains("192.168.127.3 > 192.168.127.2: ICMP echo reply"),
        "{listing}"
    );
    assert!(
        listing.contains("> 192.168.127.3.5000: Flags [S]"),
        "{listing}"
    );
    assert!(
        listing.contains("192.168.127.3.5000 >") && listing.contains("Flags [P.]"),
        "{listing}"
    );
}

/// The kernel sends the first fragment of a datagram and nothing more; once the gateway's
/// reassembly timer gives it up, the kernel receives ICMP Time Exceeded, code 1, quoting that
/// fragment's header and first 8 bytes (RFC 792, RFC 1122 §3.3.2).
#[test]
fn a_lone_first_fragment_gets_time_exceeded() {
    if !privileged(
        "a_lone_first_fragment_gets_time_exceeded",
        &["ip", "python3"],
    ) {
        return;
    }
    let rt = Runtime::start(RuntimeConfig {
        workers: 1,
        reassembly: stack::frag::Config {
            timeout_v4: Duration::from_millis(500),
            ..stack::frag::Config::default()
        },
        ..RuntimeConfig::default()
    })
    .expect("start runtime");
    let (ns, _link) = guest(
        &rt,
        "fragtime",
        Some(tap_config(Ipv4Addr::new(192, 168, 127, 2), GUEST_MAC)),
    );
    // A hand-built IPv4 header (identification 0x4242, MF set, offset 0, ICMP) and 16 bytes
    // of an echo request, through IPPROTO_RAW (the kernel fills in the header checksum);
    // then every ICMP message the namespace receives, until a Time Exceeded or 10 s.
    let script = "import socket, struct, sys, time\n\
                  def csum(b):\n\
                  \x20   if len(b) % 2: b += b'\\0'\n\
                  \x20   s = sum(struct.unpack('!%dH' % (len(b) // 2), b))\n\
                  \x20   while s >> 16: s = (s & 0xffff) + (s >> 16)\n\
                  \x20   return s\n\
                  rx = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)\n\
                  rx.settimeout(0.5)\n\
                  tx = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)\n\
                  data = bytes([8, 0, 0, 0, 0x12, 0x34, 0, 1]) + bytes(range(8))\n\
                  hdr = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(data), 0x4242, 0x2000,\n\
                  \x20   64, 1, 0, socket.inet_aton('192.168.127.2'),\n\
                  \x20   socket.inet_aton('192.168.127.1'))\n\
                  tx.sendto(hdr + data, ('192.168.127.1', 0))\n\
                  deadline = time.time() + 10\n\
                  while time.time() < deadline:\n\
                  \x20   try:\n\
                  \x20       pkt, addr = rx.recvfrom(2048)\n\
                  \x20   except socket.timeout:\n\
                  \x20       continue\n\
                  \x20   icmp = pkt[(pkt[0] & 15) * 4:]\n\
                  \x20   if icmp[0] != 11:\n\
                  \x20       continue\n\
                  \x20   q = icmp[8:]\n\
                  \x20   print(addr[0], icmp[0], icmp[1], csum(icmp) == 0xffff, len(q),\n\
                  \x20         hex(struct.unpack('!H', q[4:6])[0]), hex(struct.unpack('!H', q[6:8])[0]),\n\
                  \x20         q[20:28] == data[:8])\n\
                  \x20   sys.exit(0)\n\
                  sys.exit('no time exceeded')\n";
    let out = ns.run("python3", &["-c", script], Duration::from_secs(20));
    assert!(out.status.success(), "{}", text(&out));
    // From the datagram's destination: type 11, code 1, a good checksum, a 28-byte quote
    // of the fragment as sent (identification, MF with offset 0, the data's first 8 bytes).
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "192.168.127.1 11 1 True 28 0x4242 0x2000 True"
    );
    let stats = rt.stats();
    assert_eq!(stats.gateway.time_exceeded_sent, 1, "{stats:?}");
    assert_eq!(
        stats
            .reassembly
            .dropped(stack::frag::FragDropReason::Timeout),
        1
    );
}
