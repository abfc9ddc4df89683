//! A hostile guest with tools nobody here wrote: short runs of nmap's TCP SYN, connect and UDP
//! scans and hping3's floods (SYN, with random sources, UDP, ICMP, fragments, odd flags)
//! against the gateway (192.168.127.1) and the host alias (192.168.127.254), each followed by
//! the same health check:
//! - the gateway answers a ping;
//! - a curl through 192.168.127.254 fetches a page from a server on the host's loopback;
//! - DNS over UDP and over TCP answers a name the gateway forwards to its upstream;
//! - once the idle timeouts have passed, the descriptors and resident memory of host-switch
//!   are back near what they were before the first attack.
//!
//! host-switch runs inside a sandbox namespace whose only interface is loopback: whatever the
//! scans make it connect to is the sandbox's loopback, where only this test's servers (the
//! page, a sink that takes connections, a dnsmasq upstream) listen; nothing can leave the
//! machine. The guest is the Linux kernel in a namespace of its own, served over a TAP.
//!
//! Needs root, `ip`, `nmap`, `hping3`, `curl`, `dig`, `dnsmasq`, `ping` and `timeout`; skips
//! loudly without them unless CI=true. Takes about a minute.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::served::{Options, Served, n};
use support::{NetnsGuard, TempDir, eventually, privileged};

/// The name the upstream answers, and its (documentation-range) address: data only, never
/// contacted.
const NAME: &str = "web.hostile.test";
const NAME_ADDR: &str = "192.0.2.7";
/// Idle timeouts of the binary, short so the check after each attack can wait them out.
const UDP_IDLE_SECS: &str = "2";
const CONNECT_SECS: &str = "3";
/// How far descriptors may stay above the baseline (raw ICMP sockets a worker opens once,
/// a pooled DNS connection) and how long they may take to get back.
const FD_SLACK: usize = 16;
/// A flood's half-open flow whose SYN-ACK the guest never answers (its RST lost while the
/// flood fills the TAP's queue) lives until the engine's SYN-ACK retransmissions run out:
/// six, backing off from 1 s, 127 s in all. Most checks end within a second or two.
const SETTLE: Duration = Duration::from_secs(150);
/// Resident memory allowed above the baseline once the flows are gone.
const RSS_SLACK_KIB: u64 = 16 * 1024;

/// A page server on the sandbox's loopback: answers every request with `ok`, one short-lived
/// thread per connection (at most 64 at once; beyond, the connection is closed).
fn page_server(served: &Served) -> u16 {
    let listener = served.in_host(|| TcpListener::bind("127.0.0.1:0").unwrap());
    let port = listener.local_addr().unwrap().port();
    let live = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            if live.fetch_add(1, std::sync::atomic::Ordering::AcqRel) >= 64 {
                live.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
                continue;
            }
            let live = live.clone();
            std::thread::spawn(move || {
                let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(got) => head.extend_from_slice(&buf[..got]),
                    }
                }
                if head.starts_with(b"GET ") {
                    let _ = conn.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n",
                    );
                }
                live.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
            });
        }
    });
    port
}

/// A sink on the sandbox's loopback: takes every connection and closes it at once.
fn sink_server(served: &Served) -> u16 {
    let listener = served.in_host(|| TcpListener::bind("127.0.0.1:0").unwrap());
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            drop(conn);
        }
    });
    port
}

/// dnsmasq on the sandbox's loopback answering [`NAME`] and nothing else (no upstream of its
/// own, no hosts file); killed on drop.
struct Upstream {
    child: Child,
    port: u16,
    _dir: TempDir,
}

impl Upstream {
    fn start(sandbox: &NetnsGuard) -> Upstream {
        let dir = TempDir::new("scan-dns");
        // A port free in the sandbox (its loopback is ours alone).
        let port = sandbox
            .netns()
            .run(|| {
                let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
                udp.local_addr().unwrap().port()
            })
            .unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &sandbox.name, "dnsmasq"])
            .args(["--keep-in-foreground", "--conf-file=/dev/null"])
            .args(["--no-resolv", "--no-hosts", "--bind-interfaces"])
            .args(["--listen-address=127.0.0.1", "--user=root"])
            .arg(format!("--port={port}"))
            .arg(format!("--host-record={NAME},{NAME_ADDR}"))
            .arg(format!("--pid-file={}", dir.path().join("pid").display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let up = Upstream {
            child,
            port,
            _dir: dir,
        };
        let answers = eventually(Duration::from_secs(10), || {
            let out = sandbox.run(
                "dig",
                &[
                    "@127.0.0.1",
                    "-p",
                    &port.to_string(),
                    "+short",
                    "+time=1",
                    "+tries=1",
                    NAME,
                ],
                Duration::from_secs(5),
            );
            (String::from_utf8_lossy(&out.stdout).trim() == NAME_ADDR).then_some(())
        });
        assert!(answers.is_some(), "dnsmasq never answered in the sandbox");
        up
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The service's state after an attack.
struct Health {
    fds: usize,
    rss_kib: u64,
}

/// The health check: gateway, curl through the host alias, DNS over UDP and TCP. Each is
/// retried for a few seconds (a flood may still be draining from the queues); returns what
/// failed, if anything.
fn check(served: &Served, page: u16) -> Result<(), String> {
    let guest = &served.guest;
    let within = Duration::from_secs(10);
    let ok = |f: &dyn Fn() -> bool| eventually(within, || f().then_some(())).is_some();
    if !ok(&|| {
        let out = guest.run(
            "ping",
            &["-c1", "-W1", "192.168.127.1"],
            Duration::from_secs(3),
        );
        out.status.success()
    }) {
        return Err("the gateway does not answer a ping".into());
    }
    let url = format!("http://192.168.127.254:{page}/");
    if !ok(&|| {
        let out = guest.run("curl", &["-s", "-m", "3", &url], Duration::from_secs(5));
        String::from_utf8_lossy(&out.stdout).trim() == "ok"
    }) {
        return Err(format!("curl {url} fails"));
    }
    for transport in ["+notcp", "+tcp"] {
        if !ok(&|| {
            let out = guest.run(
                "dig",
                &[
                    "@192.168.127.1",
                    transport,
                    "+short",
                    "+time=2",
                    "+tries=1",
                    NAME,
                ],
                Duration::from_secs(5),
            );
            String::from_utf8_lossy(&out.stdout).trim() == NAME_ADDR
        }) {
            return Err(format!("DNS ({transport}) does not answer {NAME}"));
        }
    }
    Ok(())
}

/// Waits for the descriptors and memory to settle back near `base`.
fn settle(served: &Served, base: &Health) -> Result<Health, String> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let now = Health {
            fds: served.fds(),
            rss_kib: served.rss_kib(),
        };
        let limits = &served.stats()["limits"];
        let left = [
            ("tcp_flows", "open"),
            ("udp_flows", "open"),
            ("connects", "open"),
            ("guest_api_connections", "open"),
            ("descriptors", "open"),
        ]
        .map(|(limit, field)| (limit, n(&limits[limit][field])));
        let flows_gone = left.iter().all(|(_, v)| *v == 0);
        if flows_gone
            && now.fds <= base.fds + FD_SLACK
            && now.rss_kib <= base.rss_kib + RSS_SLACK_KIB
        {
            return Ok(now);
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "descriptors {} (baseline {}), RSS {} KiB (baseline {} KiB), still open \
                 {left:?} after {SETTLE:?}",
                now.fds, base.fds, now.rss_kib, base.rss_kib
            ));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Runs `tool args` in the guest namespace, killed after `limit` (`timeout` sends SIGINT,
/// which ends a flood cleanly).
fn attack(served: &Served, limit: Duration, tool: &str, args: &[&str]) -> String {
    let secs = limit.as_secs().to_string();
    let mut all = vec!["-s", "INT", "-k", "5", secs.as_str(), tool];
    all.extend_from_slice(args);
    let out = served
        .guest
        .run("timeout", &all, limit + Duration::from_secs(10));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // A flood ends when `timeout` stops it (124); a scan ends by itself.
    let ran = out.status.success() || out.status.code() == Some(124);
    assert!(ran, "{tool} {args:?} did not run: {out:?}");
    text
}

#[test]
fn scans_and_floods_leave_the_service_healthy() {
    if !privileged(
        "scans_and_floods_leave_the_service_healthy",
        &[
            "ip", "nmap", "hping3", "curl", "dig", "dnsmasq", "ping", "timeout",
        ],
    ) {
        return;
    }
    // The upstream must be up before host-switch, which reads its address at start.
    let sandbox = NetnsGuard::new("scan-up");
    sandbox.ip(&["link", "set", "lo", "up"]);
    let upstream = Upstream::start(&sandbox);
    let dns = format!("127.0.0.1:{}", upstream.port);
    let served = Served::start_in(
        "scan",
        sandbox,
        &[
            "--dns-upstream",
            &dns,
            "--udp-idle-timeout",
            UDP_IDLE_SECS,
            "--tcp-connect-timeout",
            CONNECT_SECS,
            "--api-header-timeout",
            "3",
        ],
        &Options::default(),
    );
    let page = page_server(&served);
    let sink = sink_server(&served);
    check(&served, page).expect("healthy before any attack");
    // Warm up what stays for the process's life (a raw or ping socket, the pooled upstream
    // DNS connection) before taking the baseline.
    served.guest.run(
        "ping",
        &["-c2", "-i0.2", "-W1", "192.168.127.254"],
        Duration::from_secs(5),
    );
    let unbounded = Health {
        fds: usize::MAX / 2,
        rss_kib: u64::MAX / 2,
    };
    let base = settle(&served, &unbounded).expect("the warm-up's flows close");

    let ports = format!("1-1024,{page},{sink}");
    let targets = ["192.168.127.1", "192.168.127.254"];
    let nmap = |kind: &str, ports: &str, extra: &[&str]| -> Vec<String> {
        let mut args = vec!["-n", "-Pn", kind, "-p", ports, "--max-retries", "1", "-T4"];
        args.extend_from_slice(&["--host-timeout", "15s"]);
        args.extend_from_slice(extra);
        args.extend_from_slice(&targets);
        args.into_iter().map(str::to_owned).collect()
    };
    // Floods run for `flood`, as fast as hping3 sends.
    let hping = |args: &[&str]| -> Vec<String> {
        ["-q", "--flood"]
            .iter()
            .chain(args)
            .map(|a| (*a).to_owned())
            .collect()
    };
    let scan = Duration::from_secs(20);
    let sink_port = sink.to_string();
    let flood = Duration::from_secs(3);
    // What a scan must find: the gateway's DNS and API, the servers behind the host alias.
    let open_tcp = [
        "53/tcp open".to_owned(),
        "80/tcp open".to_owned(),
        format!("{page}/tcp open"),
        format!("{sink}/tcp open"),
    ];
    let open_tcp: Vec<&str> = open_tcp.iter().map(String::as_str).collect();
    let none: Vec<&str> = Vec::new();
    type Attack<'a> = (&'a str, &'a str, Vec<String>, Duration, Vec<&'a str>);
    let attacks: Vec<Attack<'_>> = vec![
        (
            "nmap TCP SYN scan",
            "nmap",
            nmap("-sS", &ports, &[]),
            scan,
            open_tcp.clone(),
        ),
        (
            "nmap TCP connect scan",
            "nmap",
            nmap("-sT", &ports, &[]),
            scan,
            open_tcp.clone(),
        ),
        (
            "nmap UDP scan",
            "nmap",
            nmap("-sU", "1-200", &["--min-rate", "500"]),
            scan,
            vec!["53/udp open", "200 closed udp ports"],
        ),
        (
            "hping3 SYN flood at the gateway's API port",
            "hping3",
            hping(&["-S", "-p", "80", "192.168.127.1"]),
            flood,
            none.clone(),
        ),
        (
            "hping3 SYN flood at a host port",
            "hping3",
            hping(&["-S", "-p", &sink_port, "192.168.127.254"]),
            flood,
            none.clone(),
        ),
        (
            "hping3 SYN flood from random sources",
            "hping3",
            hping(&["-S", "--rand-source", "-p", &sink_port, "192.168.127.254"]),
            flood,
            none.clone(),
        ),
        (
            "hping3 UDP flood at the DNS service",
            "hping3",
            hping(&["--udp", "-p", "53", "-d", "40", "192.168.127.1"]),
            flood,
            none.clone(),
        ),
        (
            "hping3 UDP flood at a closed host port",
            "hping3",
            hping(&["--udp", "-p", "9", "-d", "20", "192.168.127.254"]),
            flood,
            none.clone(),
        ),
        (
            "hping3 ICMP echo flood",
            "hping3",
            hping(&["--icmp", "192.168.127.254"]),
            flood,
            none.clone(),
        ),
        (
            "hping3 fragmented ICMP flood",
            "hping3",
            hping(&["--icmp", "-f", "-d", "3000", "192.168.127.1"]),
            flood,
            none.clone(),
        ),
        (
            "hping3 odd flags at the gateway",
            "hping3",
            hping(&["-F", "-P", "-U", "-X", "-Y", "-p", "80", "192.168.127.1"]),
            flood,
            none.clone(),
        ),
        (
            "hping3 odd flags at a host port",
            "hping3",
            hping(&[
                "-F",
                "-S",
                "-R",
                "-P",
                "-U",
                "-p",
                &sink_port,
                "192.168.127.254",
            ]),
            flood,
            none.clone(),
        ),
    ];
    let mut failures = Vec::new();
    for (name, tool, args, limit, expect) in &attacks {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let started = Instant::now();
        let output = attack(&served, *limit, tool, &args);
        let took = started.elapsed();
        let missing: Vec<&&str> = expect.iter().filter(|e| !output.contains(**e)).collect();
        assert!(
            missing.is_empty(),
            "{name}: {missing:?} not in its output:\n{output}"
        );
        let health = check(&served, page).and_then(|()| settle(&served, &base));
        eprintln!(
            "{name}: {took:?}, {}",
            match &health {
                Ok(h) => format!("healthy, {} descriptors, {} KiB", h.fds, h.rss_kib),
                Err(e) => format!("UNHEALTHY: {e}"),
            }
        );
        if let Err(e) = health {
            let tail: String = output.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
            failures.push(format!("after {name}: {e} (tool said: {tail})"));
        }
    }
    let stats = served.stats();
    assert!(
        failures.is_empty(),
        "{}\nstats: {stats}",
        failures.join("\n")
    );
    // The attacks did reach host-switch.
    assert!(n(&stats["forwarder"]["tcp_total"]) > 1000, "{stats}");
    assert!(n(&stats["gateway"]["fragments"]) > 0, "{stats}");
    assert!(
        !served.log().contains("panicked"),
        "no thread panicked:\n{}",
        served.log()
    );
    drop(upstream);
}
