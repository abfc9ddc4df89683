//! `host-switch guest` against a real `host-switch`, the Linux kernel as the guest.
//!
//! Each test starts the host-switch binary on a unix socket in a temporary directory and runs
//! `host-switch guest` inside a network namespace of its own (`ip netns exec`): the agent
//! creates `eth0`, attaches over the socket, leases the address by DHCP and configures the
//! TAP; curl, ping, dig and python3 inside the namespace are the guest's programs.
//!
//! - the lease, ping to the gateway, curl to a host server through 192.168.127.254, DNS
//!   through the gateway, and a host-switch restarted under the guest that it reconnects to;
//! - automatic port forwarding: servers started in the guest (TCP and UDP, IPv4 and IPv6
//!   sockets) become reachable on the host's 127.0.0.1 and ::1 within 2 s, with no API call,
//!   and stop being reachable within 2 s of their exit; a port already taken on the host is
//!   listed with its error in `GET /services/forwarder/all`;
//! - `--setup`: the namespace and veth pair with their addresses, and a server in the
//!   isolated namespace reached from the VM's namespace through the relay;
//! - vsock: where this machine has the vsock loopback transport (CID 1), the agent over
//!   `vsock://`; where not, the test says why on standard error and in the skip list
//!   (`target/tmp/skipped-tests.txt`, see `tests/skip`), which `scripts/test` prints after
//!   the run; the only skip CI allows, since no package brings a vsock peer.
//!
//! Needs root and `ip`, `curl`, `ping`, `dig`, `python3`; skips loudly otherwise (fails under
//! CI=true). Traffic goes only to loopback and into the namespaces these tests create.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod guest_support;
mod support;

use std::io::Read;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use guest_support::{GuestServers, HostSwitch, InNs, Named, await_address, free_port, http_server};
use support::{NetnsGuard, TempDir, api_request, eventually, privileged};

const TOOLS: &[&str] = &["ip", "nsenter", "curl", "ping", "dig", "python3"];

#[test]
fn guest_leases_pings_fetches_resolves_and_reconnects_over_unix() {
    if !privileged("guest_over_unix", TOOLS) {
        return;
    }
    let dir = TempDir::new("guest-unix");
    let sock = dir.path().join("hs.sock");
    let (http_port, _server) = http_server("hello from the host");
    let mut hs = HostSwitch::start(&dir, &sock, &[]);
    let ns = NetnsGuard::new("guest");
    let resolv = dir.path().join("resolv.conf");
    let mut guest = guest_support::Agent::start(
        &ns,
        &dir,
        &[
            "--connect",
            &format!("unix://{}", sock.display()),
            "--resolv-conf",
            resolv.to_str().unwrap(),
        ],
    );
    await_address(&ns, "eth0", "inet 192.168.127.2/24", &mut guest);
    let link = ns.ip(&["link", "show", "eth0"]);
    assert!(link.contains("mtu 1500"), "the lease's MTU: {link}");
    assert!(
        link.contains("5a:94:ef:e4:0c:ee"),
        "the default MAC: {link}"
    );
    let route = ns.ip(&["-4", "route", "show", "default"]);
    assert!(route.contains("via 192.168.127.1 dev eth0"), "{route}");
    let resolv_text = std::fs::read_to_string(&resolv).unwrap();
    assert!(
        resolv_text.contains("nameserver 192.168.127.1"),
        "{resolv_text}"
    );

    let ping = ns.run(
        "ping",
        &["-c", "2", "-W", "2", "192.168.127.1"],
        Duration::from_secs(10),
    );
    assert!(ping.status.success(), "ping: {ping:?}\n{}", guest.log());
    let url = format!("http://192.168.127.254:{http_port}/");
    let curl = ns.run(
        "curl",
        &["-sS", "--max-time", "5", &url],
        Duration::from_secs(10),
    );
    assert_eq!(
        String::from_utf8_lossy(&curl.stdout),
        "hello from the host",
        "{curl:?}\n{}",
        hs.log()
    );
    let dig = ns.run(
        "dig",
        &[
            "+short",
            "+time=2",
            "+tries=2",
            "@192.168.127.1",
            "host.containers.internal",
        ],
        Duration::from_secs(10),
    );
    assert_eq!(
        String::from_utf8_lossy(&dig.stdout).trim(),
        "192.168.127.254",
        "{dig:?}"
    );

    // host-switch goes away and comes back on the same socket: the agent reconnects and
    // the guest reaches the host again, its TAP and address kept.
    hs.stop();
    hs = HostSwitch::start(&dir, &sock, &[]);
    let again = eventually(Duration::from_secs(20), || {
        let curl = ns.run(
            "curl",
            &["-sS", "--max-time", "2", &url],
            Duration::from_secs(5),
        );
        (String::from_utf8_lossy(&curl.stdout) == "hello from the host").then_some(())
    });
    assert!(
        again.is_some(),
        "no reconnect:\n{}\nhost-switch:\n{}",
        guest.log(),
        hs.log()
    );
    assert!(guest.log().contains("connecting again"), "{}", guest.log());
    // The new host-switch knows the lease (the agent renewed at once).
    let (status, leases) = api_request(&sock, "GET", "/services/dhcp/leases", "");
    assert_eq!(status, 200);
    assert!(leases.contains("192.168.127.2"), "{leases}");
}

/// Whether a TCP connect to `addr` gets `tag` back.
fn tcp_answers(addr: SocketAddr, tag: &str) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(1000)));
    let mut got = String::new();
    let _ = s.read_to_string(&mut got);
    got == tag
}

/// Whether a UDP datagram to `addr` is echoed with `tag` in front.
fn udp_answers(addr: SocketAddr, tag: &str) -> bool {
    let bind = if addr.is_ipv4() {
        "127.0.0.1:0"
    } else {
        "[::1]:0"
    };
    let s = UdpSocket::bind(bind).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    if s.connect(addr).is_err() || s.send(b"ping").is_err() {
        return false;
    }
    let mut buf = [0u8; 256];
    match s.recv(&mut buf) {
        Ok(n) => buf[..n] == *format!("{tag}ping").as_bytes(),
        Err(_) => false,
    }
}

/// Polls `check` every 50 ms for at most `within`; how long it took to hold.
fn within(within: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() <= within {
        if check() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

#[test]
fn listeners_in_the_guest_are_forwarded_to_host_loopback_and_withdrawn() {
    if !privileged("guest_auto_forward", TOOLS) {
        return;
    }
    let dir = TempDir::new("guest-auto");
    let sock = dir.path().join("hs.sock");
    let ssh = free_port();
    let hs = HostSwitch::start(&dir, &sock, &["--ssh-port", &ssh.to_string()]);
    let ns = NetnsGuard::new("auto");
    let mut guest = guest_support::Agent::start(
        &ns,
        &dir,
        &["--connect", &format!("unix://{}", sock.display())],
    );
    await_address(&ns, "eth0", "inet 192.168.127.2/24", &mut guest);

    let (tcp4, tcp6, udp4, udp6, taken) = (
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );
    // The host already serves `taken` on its loopback: the guest's server there cannot be
    // forwarded, and that is reported.
    let _squatter4 = std::net::TcpListener::bind(("127.0.0.1", taken)).unwrap();
    let _squatter6 = std::net::TcpListener::bind(("::1", taken)).unwrap();
    let mut servers = GuestServers::start(
        &ns,
        &[
            ("tcp4", tcp4),
            ("tcp6", tcp6),
            ("udp4", udp4),
            ("udp6", udp6),
            ("tcp4", taken),
        ],
    );
    let v4 = |p| SocketAddr::from(([127, 0, 0, 1], p));
    let v6 = |p| SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], p));
    let limit = Duration::from_secs(2);
    let up = within(limit, || {
        tcp_answers(v4(tcp4), "tcp4")
            && tcp_answers(v6(tcp4), "tcp4")
            && tcp_answers(v4(tcp6), "tcp6")
            && tcp_answers(v6(tcp6), "tcp6")
            && udp_answers(v4(udp4), "udp4")
            && udp_answers(v6(udp6), "udp6")
    });
    let Some(up) = up else {
        let (_, all) = api_request(&sock, "GET", "/services/forwarder/all", "");
        panic!(
            "not forwarded within {limit:?}: {all}\nguest:\n{}\nhost-switch:\n{}",
            guest.log(),
            hs.log()
        );
    };
    eprintln!("guest listeners reachable on the host after {up:?}");

    let (status, all) = api_request(&sock, "GET", "/services/forwarder/all", "");
    assert_eq!(status, 200);
    let all: Vec<serde_json::Value> = serde_json::from_str(&all).unwrap();
    let listed = |local: String, protocol: &str| {
        all.iter().find(|f| {
            f["local"] == local.as_str() && f["protocol"] == protocol && f["auto"] == true
        })
    };
    for (port, protocol) in [(tcp4, "tcp"), (tcp6, "tcp"), (udp4, "udp"), (udp6, "udp")] {
        let f = listed(v4(port).to_string(), protocol).unwrap_or_else(|| panic!("{port}: {all:?}"));
        assert_eq!(f["remote"], format!("192.168.127.2:{port}"));
        assert!(f.get("error").is_none(), "{f}");
        assert!(listed(v6(port).to_string(), protocol).is_some(), "{all:?}");
    }
    let failed = listed(v4(taken).to_string(), "tcp").unwrap_or_else(|| panic!("{all:?}"));
    assert!(
        failed["error"]
            .as_str()
            .is_some_and(|e| e.contains("in use")),
        "the taken port is reported: {failed}"
    );
    // The gvproxy SSH forward is still listed as before, without the auto mark.
    assert!(
        all.iter().any(|f| f["local"] == v4(ssh).to_string()
            && f["remote"] == "192.168.127.2:22"
            && f.get("auto").is_none()),
        "{all:?}"
    );

    servers.stop();
    let down = within(limit, || {
        !tcp_answers(v4(tcp4), "tcp4")
            && !tcp_answers(v6(tcp6), "tcp6")
            && !udp_answers(v4(udp4), "udp4")
            && !udp_answers(v6(udp6), "udp6")
            && TcpStream::connect_timeout(&v4(tcp4), Duration::from_millis(300)).is_err()
    });
    let Some(down) = down else {
        panic!("still forwarded after {limit:?}:\n{}", guest.log());
    };
    eprintln!("withdrawn from the host after {down:?}");
    let (_, all) = api_request(&sock, "GET", "/services/forwarder/all", "");
    assert!(!all.contains(&format!(":{tcp4}\"")), "{all}");
    drop(hs);
}

#[test]
fn setup_builds_the_namespace_and_veth_and_relays_into_the_vm_namespace() {
    if !privileged("guest_setup", TOOLS) {
        return;
    }
    let dir = TempDir::new("guest-setup");
    let sock = dir.path().join("hs.sock");
    let hs = HostSwitch::start(&dir, &sock, &[]);
    // The VM's default namespace, where --setup runs.
    let vm = NetnsGuard::new("vm");
    vm.ip(&["link", "set", "lo", "up"]);
    let isolated = format!("hs-iso-{}", std::process::id());
    let mut setup = guest_support::Agent::start_net_only(
        &vm,
        &dir,
        &[
            "--setup",
            "--connect",
            &format!("unix://{}", sock.display()),
            "--netns",
            &isolated,
        ],
    );
    let iso = Named(isolated.clone());
    let ready = eventually(Duration::from_secs(20), || {
        std::path::Path::new(&format!("/run/netns/{isolated}"))
            .exists()
            .then_some(())
    });
    assert!(ready.is_some(), "no namespace:\n{}", setup.log());
    await_address(&iso, "eth0", "inet 192.168.127.2/24", &mut setup);
    let ns_end = iso.ip(&["-4", "addr", "show", "dev", "veth-rd-ns"]);
    assert!(ns_end.contains("inet 192.168.143.1/24"), "{ns_end}");
    let vm_end = vm.ip(&["-4", "addr", "show", "dev", "veth-rd-wsl"]);
    assert!(vm_end.contains("inet 192.168.143.2/24"), "{vm_end}");
    assert!(
        !vm.ip(&["link"]).contains("eth0"),
        "the guest switch's TAP is in the isolated namespace only"
    );

    let port = free_port();
    let _servers = GuestServers::start(&iso, &[("tcp4", port)]);
    let url = format!("http://127.0.0.1:{port}/");
    let relayed = eventually(Duration::from_secs(5), || {
        let out = vm.run(
            "curl",
            &["-s", "--http0.9", "--max-time", "2", &url],
            Duration::from_secs(5),
        );
        (String::from_utf8_lossy(&out.stdout) == "tcp4").then_some(())
    });
    assert!(
        relayed.is_some(),
        "no relay into the VM namespace:\n{}",
        setup.log()
    );
    // And the same server on the host's loopback, through host-switch.
    assert!(
        within(Duration::from_secs(5), || tcp_answers(
            SocketAddr::from(([127, 0, 0, 1], port)),
            "tcp4"
        ))
        .is_some(),
        "{}",
        hs.log()
    );

    setup.stop();
    let removed = eventually(Duration::from_secs(10), || {
        (!std::path::Path::new(&format!("/run/netns/{isolated}")).exists()).then_some(())
    });
    assert!(
        removed.is_some(),
        "the namespace it made outlives it:\n{}",
        setup.log()
    );
}

/// `host-switch run` watches its command's namespace itself (no agent): a server the command
/// starts is reachable on the host's loopback within 2 s.
#[test]
fn run_forwards_what_its_command_listens_on() {
    if !privileged("run_auto_forward", TOOLS) {
        return;
    }
    let port = free_port();
    let mut child = std::process::Command::new(guest_support::BIN)
        .args([
            "run",
            "--ssh-port",
            "-1",
            "--",
            "python3",
            "-c",
            guest_support::SERVERS,
        ])
        .arg(format!("tcp4:{port}"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = [0u8; 6];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut ready)
        .unwrap();
    assert_eq!(&ready, b"READY\n");
    let took = within(Duration::from_secs(2), || {
        tcp_answers(SocketAddr::from(([127, 0, 0, 1], port)), "tcp4")
    });
    // Closing its input ends the command, and with it `run`.
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        took.is_some(),
        "not forwarded: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether a vsock connection from this machine to itself (CID 1, the loopback transport)
/// works: the only vsock peer a test may use. Why not, otherwise.
fn vsock_loopback() -> Result<u32, String> {
    use socket2::{Domain, SockAddr, Socket, Type};
    if !std::path::Path::new("/dev/vsock").exists() {
        return Err("no /dev/vsock on this machine".into());
    }
    let listener = Socket::new(Domain::VSOCK, Type::STREAM, None)
        .map_err(|e| format!("no AF_VSOCK sockets: {e}"))?;
    listener
        .bind(&SockAddr::vsock(
            libc::VMADDR_CID_ANY,
            libc::VMADDR_PORT_ANY,
        ))
        .map_err(|e| format!("cannot bind a vsock port: {e}"))?;
    listener
        .listen(1)
        .map_err(|e| format!("vsock listen: {e}"))?;
    let port = listener
        .local_addr()
        .ok()
        .and_then(|a| a.as_vsock_address())
        .map(|(_, port)| port)
        .ok_or("vsock port unknown")?;
    let client = Socket::new(Domain::VSOCK, Type::STREAM, None).map_err(|e| e.to_string())?;
    client
        .connect_timeout(&SockAddr::vsock(1, port), Duration::from_secs(1))
        .map_err(|e| {
            format!("no vsock loopback transport (module vsock_loopback) to be the peer: connecting to CID 1 failed: {e}")
        })?;
    drop(client);
    drop(listener);
    Ok(port.wrapping_add(1).max(1024))
}

#[test]
fn guest_over_vsock_where_the_machine_has_a_vsock_peer() {
    if !privileged("guest_over_vsock", TOOLS) {
        return;
    }
    let port = match vsock_loopback() {
        Ok(port) => port,
        Err(why) => {
            support::skip::unavailable("guest_netns::guest_over_vsock", &why);
            return;
        }
    };
    let dir = TempDir::new("guest-vsock");
    let sock = dir.path().join("hs.sock");
    let mut hs = HostSwitch::start(&dir, &sock, &["-listen", &format!("vsock://:{port}")]);
    let ns = NetnsGuard::new("vsock");
    let mut guest =
        guest_support::Agent::start(&ns, &dir, &["--connect", &format!("vsock://1:{port}")]);
    await_address(&ns, "eth0", "inet 192.168.127.2/24", &mut guest);
    let ping = ns.run(
        "ping",
        &["-c", "1", "-W", "2", "192.168.127.1"],
        Duration::from_secs(10),
    );
    assert!(ping.status.success(), "{ping:?}\n{}", hs.log());
    hs.stop();
}
