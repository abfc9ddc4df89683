//! host-switch as a drop-in, with the kernel as guest: a TAP in a namespace this test creates
//! (`--netns --tap`), host-side peers on loopback. Covers static leases and the address a
//! configured TAP takes.
//!
//! Needs root (namespaces, TAP); skips loudly without it unless CI=true. Traffic stays on
//! loopback and inside the namespace.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::{NetnsGuard, TempDir, api_request, eventually, privileged};

const BIN: &str = env!("CARGO_BIN_EXE_host-switch");

/// host-switch serving `ns` through tap0, its API on `dir/api.sock`. Killed on drop.
struct Serve {
    child: Child,
    api: PathBuf,
}

impl Serve {
    fn start(ns: &NetnsGuard, dir: &TempDir, extra: &[&str]) -> Serve {
        let api = dir.path().join("api.sock");
        let netns = format!("/run/netns/{}", ns.name);
        let services = format!("unix://{}", api.display());
        let mut args = vec![
            "--netns",
            &netns,
            "--tap",
            "tap0",
            "--ssh-port",
            "-1",
            "--services",
            &services,
        ];
        args.extend_from_slice(extra);
        let child = Command::new(BIN)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let serve = Serve { child, api };
        eventually(Duration::from_secs(10), || {
            (serve.api.exists() && ns.ip(&["link"]).contains("tap0")).then_some(())
        })
        .expect("host-switch up");
        serve
    }

    fn leases(&self) -> serde_json::Value {
        let (status, body) = api_request(&self.api, "GET", "/services/dhcp/leases", "");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs udhcpc on tap0 in `ns` with a script of this test's own; the address it was given.
fn udhcpc(ns: &NetnsGuard, dir: &TempDir) -> String {
    let record = dir.path().join("bound");
    let script = dir.script(
        "udhcpc.sh",
        &format!(
            "#!/bin/sh\n[ \"$1\" = bound ] || exit 0\necho \"$ip\" > {}\n",
            record.display()
        ),
    );
    let script = script.to_string_lossy().into_owned();
    let out = ns.run(
        "udhcpc",
        &[
            "-i", "tap0", "-f", "-q", "-n", "-t", "5", "-T", "2", "-s", &script,
        ],
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "udhcpc: {out:?}");
    std::fs::read_to_string(&record).unwrap().trim().to_owned()
}

#[test]
fn a_static_lease_from_the_command_line_is_what_dhcp_gives() {
    if !privileged(
        "a_static_lease_from_the_command_line_is_what_dhcp_gives",
        &["ip", "udhcpc"],
    ) {
        return;
    }
    let ns = NetnsGuard::new("lease");
    let dir = TempDir::new("lease");
    let serve = Serve::start(
        &ns,
        &dir,
        &["--static-lease", "02:00:00:00:00:07=192.168.127.7"],
    );
    ns.ip(&["link", "set", "tap0", "address", "02:00:00:00:00:07"]);
    ns.ip(&["link", "set", "tap0", "up"]);
    assert_eq!(udhcpc(&ns, &dir), "192.168.127.7");
    let leases = serve.leases();
    assert_eq!(leases["192.168.127.7"], "02:00:00:00:00:07", "{leases}");
    assert_eq!(leases["192.168.127.2"], "5a:94:ef:e4:0c:ee", "{leases}");
}

#[test]
fn a_configured_tap_never_shares_an_address_with_a_lease() {
    if !privileged(
        "a_configured_tap_never_shares_an_address_with_a_lease",
        &["ip"],
    ) {
        return;
    }
    // --configure with a MAC other than the default guest's: before, it took 192.168.127.2,
    // the default guest's lease, so a VM with that MAC would share the address.
    let ns = NetnsGuard::new("cfg");
    let dir = TempDir::new("cfg");
    let serve = Serve::start(&ns, &dir, &["--configure", "--mac", "02:00:00:00:00:09"]);
    let addr = eventually(Duration::from_secs(5), || {
        let a = ns.ip(&["-4", "-br", "addr", "show", "tap0"]);
        a.contains("192.168.127.").then_some(a)
    })
    .unwrap();
    assert!(addr.contains("192.168.127.3/24"), "{addr}");
    let leases = serve.leases();
    assert_eq!(leases["192.168.127.3"], "02:00:00:00:00:09", "{leases}");
    assert_eq!(leases["192.168.127.2"], "5a:94:ef:e4:0c:ee", "{leases}");
}

/// A UDP echo server on 127.0.0.1 (a bounded number of datagrams); its port.
fn udp_echo() -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let port = socket.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        for _ in 0..16 {
            let Ok((n, peer)) = socket.recv_from(&mut buf) else {
                return;
            };
            let _ = socket.send_to(&buf[..n], peer);
        }
    });
    port
}

/// A DNS query for `host.containers.internal` A.
fn dns_query() -> Vec<u8> {
    let mut q = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in ["host", "containers", "internal"] {
        q.push(label.len() as u8);
        q.extend(label.as_bytes());
    }
    q.extend([0, 0, 1, 0, 1]);
    q
}

/// What a guest in `ns` finds at the gateway's address: (TCP echo, UDP echo, API status line,
/// DNS answer's last four bytes).
fn probe_gateway(
    ns: &NetnsGuard,
    tcp_port: u16,
    udp_port: u16,
) -> (String, String, String, Vec<u8>) {
    probe(ns, [192, 168, 127, 1], tcp_port, udp_port)
}

/// [`probe_gateway`] with TCP to `tcp_at` (and UDP to the gateway's discard port, 9).
fn probe_gateway_at(
    ns: &NetnsGuard,
    tcp_at: [u8; 4],
    tcp_port: u16,
) -> (String, String, String, Vec<u8>) {
    probe(ns, tcp_at, tcp_port, 9)
}

fn probe(
    ns: &NetnsGuard,
    tcp_at: [u8; 4],
    tcp_port: u16,
    udp_port: u16,
) -> (String, String, String, Vec<u8>) {
    let gw = |port| SocketAddr::from(([192, 168, 127, 1], port));
    let tcp_to = SocketAddr::from((tcp_at, tcp_port));
    ns.netns()
        .run(move || {
            let tcp = match TcpStream::connect_timeout(&tcp_to, Duration::from_secs(3)) {
                Ok(mut s) => {
                    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
                    s.write_all(b"over tcp").unwrap();
                    let mut buf = [0u8; 8];
                    match s.read_exact(&mut buf) {
                        Ok(()) => String::from_utf8_lossy(&buf).into_owned(),
                        Err(e) => format!("read: {e}"),
                    }
                }
                Err(e) => format!("connect: {}", e.kind()),
            };
            let u = UdpSocket::bind("0.0.0.0:0").unwrap();
            u.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            u.connect(gw(udp_port)).unwrap();
            u.send(b"over udp").unwrap();
            let mut buf = [0u8; 64];
            let udp = match u.recv(&mut buf) {
                Ok(n) => String::from_utf8_lossy(&buf[..n]).into_owned(),
                Err(e) => format!("recv: {}", e.kind()),
            };
            let mut api = TcpStream::connect_timeout(&gw(80), Duration::from_secs(3)).unwrap();
            api.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            api.write_all(b"GET /services/forwarder/all HTTP/1.1\r\nHost: gw\r\n\r\n")
                .unwrap();
            let mut answer = String::new();
            let _ = api.read_to_string(&mut answer);
            let status = answer.lines().next().unwrap_or_default().to_owned();
            let d = UdpSocket::bind("0.0.0.0:0").unwrap();
            d.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            d.connect(gw(53)).unwrap();
            d.send(&dns_query()).unwrap();
            let n = d.recv(&mut buf).unwrap_or(0);
            let dns = buf[..n].iter().rev().take(4).rev().copied().collect();
            (tcp, udp, status, dns)
        })
        .unwrap()
}

#[test]
fn map_gateway_reaches_the_hosts_loopback_but_not_dns_dhcp_or_the_api() {
    if !privileged(
        "map_gateway_reaches_the_hosts_loopback_but_not_dns_dhcp_or_the_api",
        &["ip"],
    ) {
        return;
    }
    let tcp_port = support::echo_server();
    let udp_port = udp_echo();
    for mapped in [false, true] {
        let ns = NetnsGuard::new("mapgw");
        let dir = TempDir::new("mapgw");
        let mut extra = vec!["--configure"];
        if mapped {
            extra.push("--map-gateway");
        }
        let _serve = Serve::start(&ns, &dir, &extra);
        eventually(Duration::from_secs(5), || {
            ns.ip(&["-4", "addr", "show", "tap0"])
                .contains("192.168.127.2")
                .then_some(())
        })
        .unwrap();
        let (tcp, udp, api, dns) = probe_gateway(&ns, tcp_port, udp_port);
        if mapped {
            assert_eq!(tcp, "over tcp", "TCP to the gateway reaches the host");
            assert_eq!(
                udp, "over udp",
                "UDP replies come from the gateway's address"
            );
        } else {
            assert!(tcp.starts_with("connect: "), "{tcp}");
            assert!(udp.starts_with("recv: "), "{udp}");
        }
        assert_eq!(api, "HTTP/1.1 200 OK", "port 80 stays the API");
        assert_eq!(dns, [192, 168, 127, 254], "port 53 stays the gateway's DNS");
    }
}

/// `dig` at the gateway from `ns` for a name no local zone holds: its output and how long it
/// took.
fn dig_timed(ns: &NetnsGuard) -> (String, Duration) {
    let started = std::time::Instant::now();
    let out = ns.run(
        "dig",
        &["@192.168.127.1", "+tries=1", "+time=9", "www.dns.test", "A"],
        Duration::from_secs(20),
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        started.elapsed(),
    )
}

#[test]
fn a_refused_or_silent_dns_upstream_is_servfail_within_the_guests_patience() {
    if !privileged(
        "a_refused_or_silent_dns_upstream_is_servfail_within_the_guests_patience",
        &["ip", "dig"],
    ) {
        return;
    }
    // Refused: nothing listens on the port (the test just found it free). Before, the guest
    // waited out three 2-second attempts and nothing was logged.
    let refused = {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().to_string()
    };
    let ns = NetnsGuard::new("dnsref");
    let dir = TempDir::new("dnsref");
    let log = dir.path().join("log");
    let log_arg = log.to_string_lossy().into_owned();
    let serve = Serve::start(
        &ns,
        &dir,
        &[
            "--configure",
            "--dns-upstream",
            &refused,
            "--log-file",
            &log_arg,
        ],
    );
    let (out, took) = dig_timed(&ns);
    assert!(out.contains("status: SERVFAIL"), "{out}");
    assert!(
        took < Duration::from_secs(1),
        "refused: SERVFAIL after {took:?}"
    );
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("refused") && logged.contains(&refused),
        "{logged}"
    );
    drop(serve);

    // Silent: a socket that reads and never answers. SERVFAIL comes before glibc's 5 s.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    let ns = NetnsGuard::new("dnssil");
    let dir = TempDir::new("dnssil");
    let log = dir.path().join("log");
    let log_arg = log.to_string_lossy().into_owned();
    let _serve = Serve::start(
        &ns,
        &dir,
        &[
            "--configure",
            "--dns-upstream",
            &silent_addr,
            "--log-file",
            &log_arg,
        ],
    );
    let (out, took) = dig_timed(&ns);
    assert!(out.contains("status: SERVFAIL"), "{out}");
    assert!(
        took < Duration::from_secs(5),
        "silent: SERVFAIL after {took:?}"
    );
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("no DNS upstream answered in time"),
        "{logged}"
    );
}

#[test]
fn debug_tells_of_refused_and_failed_flows() {
    if !privileged("debug_tells_of_refused_and_failed_flows", &["ip"]) {
        return;
    }
    // A host port nothing listens on (the test just found it free).
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for debug in [false, true] {
        let ns = NetnsGuard::new("dbg");
        let dir = TempDir::new("dbg");
        let log = dir.path().join("log");
        let log_arg = log.to_string_lossy().into_owned();
        let mut extra = vec!["--configure", "--log-file", &log_arg];
        if debug {
            extra.push("--debug");
        }
        let _serve = Serve::start(&ns, &dir, &extra);
        let (refused, metadata) = ns
            .netns()
            .run(move || {
                let to = |addr: [u8; 4], port| {
                    TcpStream::connect_timeout(
                        &SocketAddr::from((addr, port)),
                        Duration::from_secs(3),
                    )
                };
                (
                    to([192, 168, 127, 254], closed).is_err(),
                    to([169, 254, 169, 254], 80).is_err(),
                )
            })
            .unwrap();
        assert!(refused && metadata, "both are refused to the guest");
        let logged = std::fs::read_to_string(&log).unwrap();
        let flows: Vec<&str> = logged.lines().filter(|l| l.contains("flow: ")).collect();
        if !debug {
            assert!(flows.is_empty(), "{logged}");
            continue;
        }
        let target = format!("192.168.127.254:{closed}");
        assert!(
            flows
                .iter()
                .any(|l| l.contains(&target) && l.contains("Connection refused")),
            "{logged}"
        );
        assert!(
            flows
                .iter()
                .any(|l| l.contains("169.254.169.254:80") && l.contains("ec2-metadata-access")),
            "{logged}"
        );
    }
}

#[test]
fn run_serves_the_api_and_takes_no_ssh_port() {
    if !privileged("run_serves_the_api_and_takes_no_ssh_port", &["ip"]) {
        return;
    }
    let dir = TempDir::new("runapi");
    let api = dir.path().join("api.sock");
    let done = dir.path().join("done");
    let script = format!(
        "i=0; while [ ! -e {} ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done; exit 3",
        done.display()
    );
    let mut child = Command::new(BIN)
        .args(["run", "-listen"])
        .arg(format!("unix://{}", api.display()))
        .args(["--", "sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let up = eventually(Duration::from_secs(10), || api.exists().then_some(()));
    assert!(up.is_some(), "the API socket never appeared");
    let (status, all) = api_request(&api, "GET", "/services/forwarder/all", "");
    assert_eq!(
        (status, all.as_str()),
        (200, "[]"),
        "no SSH forward under run"
    );
    let (status, stats) = api_request(&api, "GET", "/stats", "");
    assert_eq!(status, 200, "{stats}");
    std::fs::write(&done, "").unwrap();
    let exited = eventually(Duration::from_secs(10), || child.try_wait().unwrap());
    assert_eq!(
        exited.and_then(|s| s.code()),
        Some(3),
        "the command's status"
    );
    assert!(!api.exists(), "the API socket is removed");
}

/// A process holding a network namespace of its own (`unshare -n sleep`), killed on drop.
struct Holder(Child);

impl Holder {
    fn start() -> Holder {
        let child = Command::new("unshare")
            .args(["-n", "sleep", "60"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        let ours = std::fs::read_link("/proc/self/ns/net").unwrap();
        let moved = eventually(Duration::from_secs(5), || {
            let theirs = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok()?;
            (theirs != ours).then_some(())
        });
        assert!(moved.is_some(), "unshare -n never took its namespace");
        Holder(child)
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// host-switch on a TAP in `holder`'s namespace, `--ready-fd 3` and `--exit-fd 4` on pipes;
/// the child, the ready pipe's read end and the exit pipe's write end.
fn serve_holder(holder: &Holder) -> (Child, std::io::PipeReader, std::io::PipeWriter) {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let (ready_r, ready_w) = std::io::pipe().unwrap();
    let (exit_r, exit_w) = std::io::pipe().unwrap();
    let (ready_fd, exit_fd) = (ready_w.as_raw_fd(), exit_r.as_raw_fd());
    let mut cmd = Command::new(BIN);
    cmd.args(["--netns", &holder.0.id().to_string()])
        .args(["--tap", "tap0", "--configure", "--ssh-port", "-1"])
        .args(["--ready-fd", "3", "--exit-fd", "4"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    // SAFETY: dup2 is async-signal-safe; both descriptors are open in the child, and dup2
    // leaves the copies without FD_CLOEXEC.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(ready_fd, 3) < 0 || libc::dup2(exit_fd, 4) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().unwrap();
    drop((ready_w, exit_r));
    (child, ready_r, exit_w)
}

#[test]
fn slirp4netns_lifetimes_ready_fd_exit_fd_and_the_namespaces_process() {
    if !privileged(
        "slirp4netns_lifetimes_ready_fd_exit_fd_and_the_namespaces_process",
        &["ip", "unshare", "nsenter"],
    ) {
        return;
    }
    // --ready-fd says "1" once serving, then closes; closing --exit-fd ends host-switch.
    let holder = Holder::start();
    let (mut child, mut ready, exit) = serve_holder(&holder);
    let mut said = String::new();
    ready.read_to_string(&mut said).unwrap();
    assert_eq!(said, "1");
    let ns_has_tap = Command::new("nsenter")
        .args(["-t", &holder.0.id().to_string(), "-n", "ip", "-br", "addr"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&ns_has_tap.stdout).contains("192.168.127.2"),
        "serving when ready: {ns_has_tap:?}"
    );
    assert!(child.try_wait().unwrap().is_none());
    drop(exit);
    let status = eventually(Duration::from_secs(5), || child.try_wait().unwrap());
    assert!(
        status.is_some_and(|s| s.success()),
        "exit on --exit-fd: {status:?}"
    );

    // The namespace's process exits: so does host-switch.
    let holder = Holder::start();
    let (mut child, mut ready, _exit) = serve_holder(&holder);
    let mut said = String::new();
    ready.read_to_string(&mut said).unwrap();
    assert_eq!(said, "1");
    drop(holder);
    let status = eventually(Duration::from_secs(5), || child.try_wait().unwrap());
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert!(
        status.is_some_and(|s| s.success()),
        "exit with the holder: {status:?}"
    );
}

#[test]
fn gvproxys_example_configuration_serves_the_guest() {
    if !privileged("gvproxys_example_configuration_serves_the_guest", &["ip"]) {
        return;
    }
    let ns = NetnsGuard::new("gvcfg");
    let dir = TempDir::new("gvcfg");
    // The example unchanged but for its SSH forward's host port: a free one, not 2222.
    let ssh = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let example = include_str!("fixtures/gvproxy-config.yaml");
    assert!(example.contains("127.0.0.1:2222: 192.168.127.2:22"));
    let yaml = example.replace("127.0.0.1:2222:", &format!("127.0.0.1:{ssh}:"));
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, yaml).unwrap();
    let log = dir.path().join("log");
    let (config_arg, log_arg) = (
        config.to_string_lossy().into_owned(),
        log.to_string_lossy().into_owned(),
    );
    let serve = Serve::start(
        &ns,
        &dir,
        &[
            "--configure",
            "-config",
            &config_arg,
            "--log-file",
            &log_arg,
        ],
    );
    let addr = eventually(Duration::from_secs(5), || {
        let a = ns.ip(&["-4", "-br", "addr", "show", "tap0"]);
        a.contains("192.168.127.").then_some(a)
    })
    .unwrap();
    assert!(
        addr.contains("192.168.127.2/24"),
        "the file's static lease: {addr}"
    );
    // The guest's port 22 (a listener in the namespace) through the file's forward.
    let guest22 = ns
        .netns()
        .run(|| std::net::TcpListener::bind("0.0.0.0:22"))
        .unwrap()
        .unwrap();
    std::thread::spawn(move || {
        if let Ok((mut c, _)) = guest22.accept() {
            let _ = c.write_all(b"SSH-2.0-guest\r\n");
        }
    });
    let mut to_guest = TcpStream::connect(("127.0.0.1", ssh)).unwrap();
    to_guest
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut banner = [0u8; 15];
    to_guest.read_exact(&mut banner).unwrap();
    assert_eq!(&banner, b"SSH-2.0-guest\r\n");
    // The file's NAT (the host's address is loopback) and DNS zones, from the guest.
    let echo = support::echo_server();
    let (tcp, _, api, dns) = probe_gateway_at(&ns, [192, 168, 127, 254], echo);
    assert_eq!(tcp, "over tcp");
    assert_eq!(api, "HTTP/1.1 200 OK");
    assert_eq!(dns, [192, 168, 127, 254]);
    let (status, all) = api_request(&serve.api, "GET", "/services/forwarder/all", "");
    assert_eq!(status, 200);
    assert!(all.contains(&format!("127.0.0.1:{ssh}")), "{all}");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("-ssh-port is ignored"), "{logged}");
}
