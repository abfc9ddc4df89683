//! One run of each figure from inside a guest, and the peer's cost around it.

use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::peers::Guest;
use crate::servers::{HTTP_PATH, Servers};
use host_switch_benches::sys;

/// Whether a bigger figure is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Better {
    Higher,
    Lower,
}

/// Which measurement a figure comes from (`--skip` leaves groups out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Group {
    /// iperf3, one stream.
    Throughput,
    /// `--streams` iperf3 clients at once, one stream each.
    Parallel,
    /// sockperf, TCP and UDP.
    PingPong,
    /// wrk against nginx.
    Http,
    /// The peer's resident memory when fresh.
    Rss,
    /// The peer's memory per idle connection.
    Idle,
}

impl Group {
    pub(crate) const ALL: [Group; 6] = [
        Group::Throughput,
        Group::Parallel,
        Group::PingPong,
        Group::Http,
        Group::Rss,
        Group::Idle,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Group::Throughput => "throughput",
            Group::Parallel => "parallel",
            Group::PingPong => "pingpong",
            Group::Http => "http",
            Group::Rss => "rss",
            Group::Idle => "idle",
        }
    }
}

/// A row of the report.
#[derive(Debug)]
pub(crate) struct Fig {
    pub(crate) id: &'static str,
    pub(crate) label: &'static str,
    pub(crate) unit: &'static str,
    pub(crate) better: Better,
    /// The unit of the peer's CPU cost for this figure ("" when not measured).
    pub(crate) cost_unit: &'static str,
    pub(crate) group: Group,
    /// The guest's MTU when it is measured.
    pub(crate) mtu: u32,
}

const fn fig(
    id: &'static str,
    label: &'static str,
    unit: &'static str,
    better: Better,
    cost_unit: &'static str,
    group: Group,
    mtu: u32,
) -> Fig {
    Fig {
        id,
        label,
        unit,
        better,
        cost_unit,
        group,
        mtu,
    }
}

/// The throughput figure ids at `mtu`: (reverse, one stream, parallel streams).
pub(crate) fn throughput_ids(mtu: u32) -> [(bool, &'static str, &'static str); 2] {
    if mtu == 1500 {
        [
            (false, "tcp_up_1500", "tcp_up_1500_par"),
            (true, "tcp_down_1500", "tcp_down_1500_par"),
        ]
    } else {
        [
            (false, "tcp_up_65520", "tcp_up_65520_par"),
            (true, "tcp_down_65520", "tcp_down_65520_par"),
        ]
    }
}

pub(crate) const FIGURES: &[Fig] = &[
    fig(
        "tcp_up_65520",
        "TCP guest→host, MTU 65520",
        "Gbit/s",
        Better::Higher,
        "CPU s/GB",
        Group::Throughput,
        65520,
    ),
    fig(
        "tcp_down_65520",
        "TCP host→guest, MTU 65520",
        "Gbit/s",
        Better::Higher,
        "CPU s/GB",
        Group::Throughput,
        65520,
    ),
    fig(
        "tcp_up_1500",
        "TCP guest→host, MTU 1500",
        "Gbit/s",
        Better::Higher,
        "CPU s/GB",
        Group::Throughput,
        1500,
    ),
    fig(
        "tcp_down_1500",
        "TCP host→guest, MTU 1500",
        "Gbit/s",
        Better::Higher,
        "CPU s/GB",
        Group::Throughput,
        1500,
    ),
    fig(
        "tcp_up_65520_par",
        "TCP guest→host, MTU 65520",
        "Gbit/s",
        Better::Higher,
        "CPU s/GB",
        Group::Parallel,
        65520,
    ),
    fig(
        "tcp_down_65520_par",
        "TCP host→guest, MTU 65520",
        "Gbit/s",
        Better::Higher,
        "CPU s/GB",
        Group::Parallel,
        65520,
    ),
    fig(
        "tcp_up_1500_par",
        "TCP guest→host, MTU 1500",
        "Gbit/s",
        Better::Higher,
        "CPU s/GB",
        Group::Parallel,
        1500,
    ),
    fig(
        "tcp_down_1500_par",
        "TCP host→guest, MTU 1500",
        "Gbit/s",
        Better::Higher,
        "CPU s/GB",
        Group::Parallel,
        1500,
    ),
    fig(
        "tcp_p50",
        "TCP ping-pong p50",
        "µs",
        Better::Lower,
        "CPU µs/round trip",
        Group::PingPong,
        65520,
    ),
    fig(
        "tcp_p99",
        "TCP ping-pong p99",
        "µs",
        Better::Lower,
        "",
        Group::PingPong,
        65520,
    ),
    fig(
        "udp_p50",
        "UDP ping-pong p50",
        "µs",
        Better::Lower,
        "CPU µs/round trip",
        Group::PingPong,
        65520,
    ),
    fig(
        "udp_p99",
        "UDP ping-pong p99",
        "µs",
        Better::Lower,
        "",
        Group::PingPong,
        65520,
    ),
    fig(
        "http_ka",
        "HTTP keep-alive",
        "req/s",
        Better::Higher,
        "CPU µs/request",
        Group::Http,
        65520,
    ),
    fig(
        "http_close",
        "HTTP new connection per request",
        "req/s",
        Better::Higher,
        "CPU µs/request",
        Group::Http,
        65520,
    ),
    fig(
        "idle_rss",
        "idle RSS (fresh, MTU 65520)",
        "MiB",
        Better::Lower,
        "",
        Group::Rss,
        65520,
    ),
    fig(
        "idle_1000",
        "RSS per idle connection, 1,000 open",
        "KiB",
        Better::Lower,
        "",
        Group::Idle,
        65520,
    ),
    fig(
        "idle_10000",
        "RSS per idle connection, 10,000 open",
        "KiB",
        Better::Lower,
        "",
        Group::Idle,
        65520,
    ),
];

/// One figure from one run: the value and the work done, in the cost unit's denominator.
#[derive(Debug)]
pub(crate) struct Raw {
    pub(crate) id: &'static str,
    pub(crate) value: f64,
    /// GB moved, or millions of round trips / requests; the CPU cost is cpu seconds / work.
    pub(crate) work: Option<f64>,
}

/// A measured run: the figure, the peer's CPU per unit of work, its peak RSS (KiB).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    pub(crate) value: f64,
    pub(crate) cost: Option<f64>,
    pub(crate) peak_kib: u64,
}

/// Runs `f` once, reading the peer's CPU time and resetting/reading its peak RSS around it.
pub(crate) fn with_cost(
    guest: &mut Guest,
    f: impl FnOnce(&Guest) -> Result<Vec<Raw>, String>,
) -> Result<Vec<(&'static str, Sample)>, String> {
    guest.alive()?;
    let pid = guest.peer_pid();
    sys::reset_peak(pid);
    let before = sys::usage(pid)?;
    let raws = f(guest)?;
    let after = sys::usage(pid)?;
    let peak_kib = sys::status_kib(pid, "VmHWM")?;
    guest.alive()?;
    let cpu = after.cpu - before.cpu;
    Ok(raws
        .into_iter()
        .map(|r| {
            let cost = r.work.filter(|w| *w > 0.0).map(|w| cpu / w);
            (
                r.id,
                Sample {
                    value: r.value,
                    cost,
                    peak_kib,
                },
            )
        })
        .collect())
}

/// iperf3 from the guest to the host's iperf3 server (`reverse`: host→guest).
pub(crate) fn iperf3(
    g: &Guest,
    port: u16,
    secs: u32,
    reverse: bool,
    id: &'static str,
) -> Result<Vec<Raw>, String> {
    let (bps, bytes) = iperf3_once(g.ns(), &g.host, port, secs, reverse)?;
    Ok(vec![Raw {
        id,
        value: bps / 1e9,
        work: Some(bytes / 1e9),
    }])
}

/// One iperf3 client per port, all at once, each one stream to a server of its own; the figure
/// is their sum. Separate processes, because iperf3 before 3.16 runs all of `-P`'s streams in one
/// thread, which would measure iperf3 rather than the peer.
pub(crate) fn iperf3_parallel(
    g: &Guest,
    ports: &[u16],
    secs: u32,
    reverse: bool,
    id: &'static str,
) -> Result<Vec<Raw>, String> {
    let (ns, host) = (g.ns(), g.host.as_str());
    let runs: Vec<Result<(f64, f64), String>> = std::thread::scope(|s| {
        let clients: Vec<_> = ports
            .iter()
            .map(|&port| s.spawn(move || iperf3_once(ns, host, port, secs, reverse)))
            .collect();
        clients
            .into_iter()
            .map(|c| {
                c.join()
                    .unwrap_or_else(|_| Err("iperf3 thread panicked".into()))
            })
            .collect()
    });
    let (mut bps, mut bytes) = (0.0, 0.0);
    for (i, run) in runs.into_iter().enumerate() {
        let (b, n) = run.map_err(|e| format!("client {} of {}: {e}", i + 1, ports.len()))?;
        bps += b;
        bytes += n;
    }
    Ok(vec![Raw {
        id,
        value: bps / 1e9,
        work: Some(bytes / 1e9),
    }])
}

/// One iperf3 client run in the namespace `ns`: received bits per second and bytes.
fn iperf3_once(
    ns: &std::path::Path,
    host: &str,
    port: u16,
    secs: u32,
    reverse: bool,
) -> Result<(f64, f64), String> {
    let mut cmd = sys::in_netns(ns, "iperf3");
    cmd.args(["-c", host, "-p", &port.to_string(), "-J"]).args([
        "-t",
        &secs.to_string(),
        "--connect-timeout",
        "5000",
    ]);
    if reverse {
        cmd.arg("-R");
    }
    let out = sys::run(&mut cmd, Duration::from_secs(u64::from(secs) + 30))?;
    let json: serde_json::Value =
        serde_json::from_str(&out).map_err(|e| format!("iperf3 output: {e}"))?;
    if let Some(err) = json.get("error").and_then(|e| e.as_str()) {
        return Err(format!("iperf3: {err}"));
    }
    let sum = &json["end"]["sum_received"];
    let bps = sum["bits_per_second"]
        .as_f64()
        .ok_or("iperf3: no end.sum_received")?;
    let bytes = sum["bytes"].as_f64().ok_or("iperf3: no bytes")?;
    Ok((bps, bytes))
}

/// sockperf ping-pong with 64-byte messages: p50 and p99 one-way latency in µs.
pub(crate) fn sockperf(g: &Guest, port: u16, secs: u32, tcp: bool) -> Result<Vec<Raw>, String> {
    let mut cmd = sys::in_netns(g.ns(), "sockperf");
    cmd.args(["ping-pong", "-i", &g.host, "-p", &port.to_string()])
        .args(["-t", &secs.to_string(), "-m", "64"]);
    if tcp {
        cmd.arg("--tcp");
    }
    let out = sys::run(&mut cmd, Duration::from_secs(u64::from(secs) + 30))?;
    let percentile = |p: &str| -> Result<f64, String> {
        out.lines()
            .find_map(|l| {
                let rest = l.split("percentile ").nth(1)?;
                let (pct, v) = rest.split_once('=')?;
                (pct.trim() == p).then(|| v.trim().parse::<f64>().ok())?
            })
            .ok_or_else(|| format!("sockperf: no percentile {p} in its output"))
    };
    // Every message of the whole run (warm-up included), since the CPU reading spans it.
    let round_trips = out
        .lines()
        .find(|l| l.contains("[Total Run]"))
        .and_then(|l| l.split("ReceivedMessages=").nth(1))
        .and_then(|v| v.trim().parse::<f64>().ok());
    let (p50_id, p99_id) = if tcp {
        ("tcp_p50", "tcp_p99")
    } else {
        ("udp_p50", "udp_p99")
    };
    Ok(vec![
        Raw {
            id: p50_id,
            value: percentile("50.000")?,
            work: round_trips.map(|n| n / 1e6),
        },
        Raw {
            id: p99_id,
            value: percentile("99.000")?,
            work: None,
        },
    ])
}

/// wrk, 1 thread, 32 connections, against nginx's small file.
pub(crate) fn wrk(g: &Guest, port: u16, secs: u32, close: bool) -> Result<Vec<Raw>, String> {
    let mut cmd = sys::in_netns(g.ns(), "wrk");
    cmd.args(["-t1", "-c32", &format!("-d{secs}s")]);
    if close {
        cmd.args(["-H", "Connection: close"]);
    }
    cmd.arg(format!("http://{}:{port}{HTTP_PATH}", g.host));
    let out = sys::run(&mut cmd, Duration::from_secs(u64::from(secs) + 30))?;
    let rate = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .ok_or_else(|| format!("wrk: no Requests/sec in: {out}"))?;
    let requests = out
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next()?.parse::<f64>().ok());
    if let Some(l) = out.lines().find(|l| l.contains("Non-2xx")) {
        return Err(format!("wrk: {}", l.trim()));
    }
    Ok(vec![Raw {
        id: if close { "http_close" } else { "http_ka" },
        value: rate,
        work: requests.map(|n| n / 1e6),
    }])
}

/// Opens `n` connections from the guest to the host's idle server and holds them; the figure is
/// the peer's resident memory per connection in KiB (VmRSS after minus before, over `n`).
pub(crate) fn idle(
    g: &Guest,
    servers: &Servers,
    n: usize,
    id: &'static str,
) -> Result<Vec<Raw>, String> {
    let pid = g.peer_pid();
    let idle_server = &servers.idle;
    idle_server.drop_all();
    std::thread::sleep(Duration::from_millis(500));
    let before = sys::status_kib(pid, "VmRSS")?;
    let target: SocketAddr = format!("{}:{}", g.host, idle_server.port)
        .parse()
        .map_err(|e| format!("{e}"))?;
    // The client is this binary in a process of its own inside the guest, so the harness's
    // open-file limit covers only the server's half.
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut client = std::process::Command::new("nsenter")
        .arg(format!("--net={}", g.ns().display()))
        .arg(exe)
        .args([IDLE_CLIENT_ARG, &target.to_string(), &n.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("idle client: {e}"))?;
    let mut line = String::new();
    if let Some(out) = client.stdout.as_mut() {
        let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line);
    }
    let opened = if line.trim() == "ready" {
        Ok(())
    } else {
        Err(format!("idle client: {}", line.trim()))
    };
    let measured = opened.and_then(|()| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while idle_server.held() < n {
            if Instant::now() > deadline {
                return Err(format!(
                    "only {} of {n} connections reached the host",
                    idle_server.held()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_secs(1));
        let after = sys::status_kib(pid, "VmRSS")?;
        Ok(after.saturating_sub(before) as f64 / n as f64)
    });
    drop(client.stdin.take());
    let _ = client.wait();
    idle_server.drop_all();
    // Let the peer tear the flows down before the next run.
    std::thread::sleep(Duration::from_secs(2));
    Ok(vec![Raw {
        id,
        value: measured?,
        work: None,
    }])
}

/// The argument that makes this binary the idle-connection client (run inside the guest).
pub(crate) const IDLE_CLIENT_ARG: &str = "--idle-client";

/// Client mode: opens `n` connections to `target`, prints "ready" (or the error), holds them
/// until standard input closes.
pub(crate) fn idle_client(target: &str, n: &str) -> std::process::ExitCode {
    let result = (|| {
        let target: SocketAddr = target.parse().map_err(|e| format!("{target}: {e}"))?;
        let n: usize = n.parse().map_err(|e| format!("{n}: {e}"))?;
        let mut held = Vec::with_capacity(n);
        for i in 0..n {
            let s = TcpStream::connect_timeout(&target, Duration::from_secs(5))
                .map_err(|e| format!("connection {i} of {n}: {e}"))?;
            held.push(s);
        }
        Ok::<_, String>(held)
    })();
    let mut out = std::io::stdout();
    match result {
        Ok(held) => {
            let _ = writeln!(out, "ready");
            let _ = out.flush();
            let _ = std::io::Read::read(&mut std::io::stdin(), &mut [0u8; 1]);
            drop(held);
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = writeln!(out, "{e}");
            std::process::ExitCode::FAILURE
        }
    }
}
