//! `soak`: the real `host-switch` binary under mixed traffic from two guests for a long time,
//! with every byte verified and its memory sampled. Run on demand (as root), not in CI.
//!
//! Two network namespaces, each with a TAP device relayed by this program to host-switch's
//! `-listen-qemu` socket, with 1 % of the frames dropped each way (seeded, counted: the kernel
//! here has no netem). The guests get their addresses from host-switch's DHCP (busybox udhcpc
//! with our own script), then until the deadline each runs, concurrently: TCP uploads and
//! downloads of pseudo-random payloads to a server on the host's 127.0.0.1 (reached as
//! 192.168.127.254; the host verifies uploads, the guest downloads, byte by byte), UDP echo with
//! each datagram verified, ping to the gateway and the host, and DNS lookups through the gateway,
//! which forwards them to an upstream this program serves on 127.0.0.1. Every 10 s it reads
//! host-switch's VmRSS; at the end it prints the totals and fails (exit 1) if a byte was wrong,
//! a TCP transfer failed, or the RSS of the last minute exceeds the first minute's by more
//! than 20 %.

use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use host_switch_benches::sys::{self, Proc};

mod counters;
mod guest;
mod host;
mod pattern;
mod traffic;

use counters::Counters;
use guest::Guest;

const USAGE: &str = "\
usage: soak [--duration D] [--loss PERCENT] [--seed N] [--host-switch PATH] [--keep]

  --duration D     how long the traffic runs: 600, 30s, 10m, 1h (default 10m)
  --loss PERCENT   frames dropped by the relay in each direction (default 1)
  --seed N         seed of the loss injector and of the payloads (default 1)
  --host-switch    the binary (default: host-switch next to this program, else
                   $CARGO_TARGET_DIR or target/, then release/host-switch)
  --keep           keep the scratch directory (host-switch's log, /stats) even on success

Runs as root; needs ip, nsenter, udhcpc, ping, dig (iproute2 util-linux udhcpc iputils-ping
dnsutils). Build first: cargo build --release -p host-switch-switch --bin host-switch
-p host-switch-benches --bin soak";

const GUESTS: usize = 2;
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// The allowed RSS growth, last minute over first minute.
const MAX_GROWTH: f64 = 0.20;
const MINUTE: f64 = 60.0;

#[derive(Debug)]
struct Options {
    duration: Duration,
    loss_ppm: u32,
    seed: u64,
    host_switch: PathBuf,
    keep: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("bad duration {s:?} (units: s, m, h)")),
    };
    if secs == 0 {
        return Err("the duration must be at least 1 s".into());
    }
    Ok(Duration::from_secs(secs))
}

fn parse_options() -> Result<Options, String> {
    // Built together, the two binaries sit side by side.
    let sibling = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("host-switch")))
        .filter(|p| p.is_file());
    let host_switch = sibling.unwrap_or_else(|| {
        std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
            .join("release/host-switch")
    });
    let mut o = Options {
        duration: Duration::from_secs(600),
        loss_ppm: 10_000,
        seed: 1,
        host_switch,
        keep: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--duration" => o.duration = parse_duration(&value()?)?,
            "--loss" => {
                let p: f64 = value()?.parse().map_err(|e| format!("--loss: {e}"))?;
                if !(0.0..=50.0).contains(&p) {
                    return Err("--loss must be between 0 and 50 (percent)".into());
                }
                o.loss_ppm = (p * 10_000.0).round() as u32;
            }
            "--seed" => o.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--host-switch" => o.host_switch = value()?.into(),
            "--keep" => o.keep = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(o)
}

/// Set by SIGINT/SIGTERM: stop the traffic early and clean up.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

fn catch_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(sig, on_signal as *const () as libc::sighandler_t);
        }
    }
}

fn main() -> ExitCode {
    let o = match parse_options() {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("soak: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    if !sys::is_root() {
        eprintln!("soak: must run as root (it creates network namespaces and TAP devices)");
        return ExitCode::from(2);
    }
    for tool in ["ip", "nsenter", "udhcpc", "ping", "dig"] {
        if sys::which(tool).is_none() {
            eprintln!(
                "soak: {tool} is not on PATH (apt-get install iproute2 util-linux udhcpc \
                 iputils-ping dnsutils)"
            );
            return ExitCode::from(2);
        }
    }
    if !o.host_switch.is_file() {
        eprintln!(
            "soak: {} not found: build it with `cargo build --release -p host-switch-switch \
             --bin host-switch` or pass --host-switch PATH",
            o.host_switch.display()
        );
        return ExitCode::from(2);
    }
    catch_signals();
    let dir = std::env::temp_dir().join(format!("host-switch-soak-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("soak: {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    let ok = match run(&o, &dir) {
        Ok(ok) => ok,
        Err(e) => {
            eprintln!("soak: {e}");
            false
        }
    };
    if ok && !o.keep {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        eprintln!(
            "soak: host-switch's log and /stats are in {}",
            dir.display()
        );
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// One RSS reading, with the counters at that moment.
#[derive(Debug, Clone, Copy)]
struct Sample {
    secs: f64,
    rss_kib: u64,
    /// The TCP buffer memory host-switch's flows held at its last sweep (`/stats`).
    buffers_kib: Option<u64>,
}

/// Sets up, runs the traffic, prints the report; `Ok(passed)`.
fn run(o: &Options, dir: &Path) -> Result<bool, String> {
    let counters = Arc::new(Counters::default());
    let servers = host::Servers::start(&counters)?;
    let qemu = dir.join("qemu.sock");
    let api = dir.join("api.sock");
    let url = |p: &Path| format!("unix://{}", p.display());
    let mut hs = Proc::spawn(
        "host-switch",
        // Its own process group, so a Ctrl-C reaches only us and we stop it in order.
        Command::new(&o.host_switch)
            .process_group(0)
            .args(["-listen-qemu", &url(&qemu)])
            .args(["-listen", &url(&api)])
            .args(["--dns-upstream", &format!("127.0.0.1:{}", servers.dns_port)]),
        &dir.join("host-switch.log"),
    )?;
    sys::wait_for(Duration::from_secs(10), || {
        if let Some(status) = hs.exited() {
            return Err(format!("host-switch exited: {status}"));
        }
        (qemu.exists() && api.exists())
            .then_some(())
            .ok_or_else(|| "host-switch's sockets did not appear".to_owned())
    })?;
    let pid = hs.pid();
    let mut guests = Vec::new();
    for i in 0..GUESTS {
        let seed = pattern::mix(o.seed ^ (0x100 + i as u64));
        let g = Guest::start(i, dir, &qemu, seed, o.loss_ppm, &counters)?;
        eprintln!("soak: guest {i} leased {}", g.addr);
        guests.push(g);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let until = start + o.duration;
    let mut threads = Vec::new();
    for g in &guests {
        threads.extend(traffic::start(&traffic::Ctx {
            guest: g.index,
            ns: g.ns().to_path_buf(),
            until,
            stop: stop.clone(),
            counters: counters.clone(),
            seed: pattern::mix(o.seed ^ (0x200 + g.index as u64)),
            tcp_port: servers.tcp_port,
            udp_port: servers.udp_port,
        })?);
    }
    eprintln!(
        "soak: {} guests, {:.2} % loss each way, for {} s; host-switch pid {pid}",
        GUESTS,
        f64::from(o.loss_ppm) / 10_000.0,
        o.duration.as_secs()
    );
    println!(
        "{:>6} {:>9} {:>8} {:>8} {:>8} {:>10} {:>10} {:>9} {:>7}",
        "t (s)",
        "RSS MiB",
        "buf MiB",
        "TCP ok",
        "failed",
        "up MiB",
        "down MiB",
        "UDP echo",
        "DNS ok"
    );
    let mut samples = Vec::new();
    let mut next_sample = start;
    let mut died = None;
    loop {
        let now = Instant::now();
        if now >= next_sample {
            match sys::status_kib(pid, "VmRSS") {
                Ok(rss_kib) => {
                    let s = Sample {
                        secs: now.duration_since(start).as_secs_f64(),
                        rss_kib,
                        buffers_kib: tcp_buffer_bytes(&api).map(|b| b / 1024),
                    };
                    print_row(&s, &counters);
                    samples.push(s);
                }
                Err(e) => eprintln!("soak: {e}"),
            }
            next_sample += SAMPLE_EVERY;
        }
        if let Some(status) = hs.exited() {
            died = Some(status);
            break;
        }
        if INTERRUPTED.load(Ordering::Relaxed) {
            eprintln!("soak: interrupted; stopping the traffic");
            break;
        }
        if now >= until && threads.iter().all(|t| t.is_finished()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    // Every loop ends at the deadline or the stop flag, each step bounded by its own timeout.
    for t in threads {
        let _ = t.join();
    }
    if let Ok(rss_kib) = sys::status_kib(pid, "VmRSS") {
        samples.push(Sample {
            secs: elapsed.as_secs_f64(),
            rss_kib,
            buffers_kib: tcp_buffer_bytes(&api).map(|b| b / 1024),
        });
    }
    let stats = get_stats(&api);
    if let Ok(body) = &stats {
        let _ = std::fs::write(dir.join("stats.json"), body);
    }
    drop(guests);
    drop(hs);
    drop(servers);
    Ok(report(
        o,
        &counters,
        &samples,
        elapsed,
        stats.as_deref(),
        died,
    ))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn print_row(s: &Sample, c: &Counters) {
    let g = Counters::get;
    println!(
        "{:>6.0} {:>9.2} {:>8} {:>8} {:>8} {:>10.1} {:>10.1} {:>9} {:>7}",
        s.secs,
        mib(s.rss_kib),
        s.buffers_kib
            .map_or_else(|| "?".to_owned(), |k| format!("{:.2}", mib(k))),
        g(&c.tcp_ok),
        g(&c.tcp_failed),
        g(&c.up_verified) as f64 / 1048576.0,
        g(&c.down_verified) as f64 / 1048576.0,
        g(&c.udp_echoed),
        g(&c.dns_ok),
    );
}

/// `forwarder.tcp_buffer_bytes` of `GET /stats`, if it answers.
fn tcp_buffer_bytes(api: &Path) -> Option<u64> {
    let body = get_stats(api).ok()?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v.get("forwarder")?.get("tcp_buffer_bytes")?.as_u64()
}

/// `GET /stats` on the control socket: the JSON body.
fn get_stats(api: &Path) -> Result<String, String> {
    let mut s = UnixStream::connect(api).map_err(|e| format!("{}: {e}", api.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET /stats HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut resp = Vec::new();
    let mut buf = [0u8; 16384];
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && resp.len() < 1 << 20 {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => resp.extend_from_slice(&buf[..n]),
        }
        let text = String::from_utf8_lossy(&resp);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())?
            });
            if len.is_some_and(|len| body.len() >= len) {
                return Ok(body.to_owned());
            }
        }
    }
    let text = String::from_utf8_lossy(&resp);
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .ok_or_else(|| "no /stats answer".to_owned())
}

fn median(v: &mut [u64]) -> Option<u64> {
    v.sort_unstable();
    v.get(v.len() / 2).copied()
}

/// Prints the totals and the verdict; whether the soak passed.
fn report(
    o: &Options,
    c: &Counters,
    samples: &[Sample],
    elapsed: Duration,
    stats: Result<&str, &String>,
    died: Option<String>,
) -> bool {
    let g = Counters::get;
    let secs = elapsed.as_secs_f64();
    let mut failed = Vec::new();
    println!();
    println!(
        "soak: {:.0} s, 2 guests, {:.2} % loss each way, seed {}",
        secs,
        f64::from(o.loss_ppm) / 10_000.0,
        o.seed
    );
    let (up, down) = (g(&c.up_verified), g(&c.down_verified));
    println!(
        "bytes verified: guest→host {up} ({:.1} MiB, {:.2} Mbit/s), host→guest {down} ({:.1} MiB, \
         {:.2} Mbit/s)",
        up as f64 / 1048576.0,
        up as f64 * 8.0 / secs / 1e6,
        down as f64 / 1048576.0,
        down as f64 * 8.0 / secs / 1e6,
    );
    println!(
        "wrong bytes: {} transfer(s)/datagram(s) with a byte that differs",
        g(&c.mismatches)
    );
    println!(
        "TCP transfers: {} ok, {} failed (host server errors {})",
        g(&c.tcp_ok),
        g(&c.tcp_failed),
        g(&c.server_errors)
    );
    let (sent, echoed) = (g(&c.udp_sent), g(&c.udp_echoed));
    println!(
        "UDP: {sent} sent, {echoed} echoed and verified ({} late, {} duplicate), {} lost ({:.2} %)",
        g(&c.udp_late),
        g(&c.udp_duplicate),
        sent.saturating_sub(echoed),
        sent.saturating_sub(echoed) as f64 * 100.0 / sent.max(1) as f64
    );
    let (ps, pr) = (g(&c.ping_sent), g(&c.ping_received));
    println!(
        "ping: {ps} sent, {pr} answered ({:.2} % lost)",
        ps.saturating_sub(pr) as f64 * 100.0 / ps.max(1) as f64
    );
    println!(
        "DNS: {} ok, {} failed (the upstream answered {} queries)",
        g(&c.dns_ok),
        g(&c.dns_failed),
        g(&c.upstream_queries)
    );
    let (ts, tg) = (g(&c.frames_to_switch), g(&c.frames_to_guest));
    let (ds, dg) = (g(&c.dropped_to_switch), g(&c.dropped_to_guest));
    println!(
        "loss injector: dropped {ds} of {} frames guest→switch ({:.2} %), {dg} of {} switch→guest \
         ({:.2} %); relay errors {}",
        ts + ds,
        ds as f64 * 100.0 / (ts + ds).max(1) as f64,
        tg + dg,
        dg as f64 * 100.0 / (tg + dg).max(1) as f64,
        g(&c.relay_errors)
    );
    let mut all: Vec<u64> = samples.iter().map(|s| s.rss_kib).collect();
    let end = samples.last().map_or(0.0, |s| s.secs);
    let first: Vec<u64> = samples
        .iter()
        .filter(|s| s.secs > 0.0 && s.secs <= MINUTE)
        .map(|s| s.rss_kib)
        .collect();
    let last: Vec<u64> = samples
        .iter()
        .filter(|s| s.secs > 0.0 && s.secs >= end - MINUTE)
        .map(|s| s.rss_kib)
        .collect();
    let (min, max) = (all.iter().min().copied(), all.iter().max().copied());
    match (
        min,
        median(&mut all),
        max,
        first.iter().max(),
        last.iter().max(),
    ) {
        (Some(min), Some(med), Some(max), Some(&f), Some(&l)) => {
            let growth = l as f64 / f as f64 - 1.0;
            println!(
                "host-switch RSS: min {:.2} MiB, median {:.2}, max {:.2}; first minute's max \
                 {:.2}, last minute's max {:.2} ({:+.1} %, {:+.1} KiB/min over the run)",
                mib(min),
                mib(med),
                mib(max),
                mib(f),
                mib(l),
                growth * 100.0,
                (l as f64 - f as f64) / ((end - MINUTE).max(1.0) / MINUTE),
            );
            if growth > MAX_GROWTH {
                failed.push(format!(
                    "RSS grew {:.1} % from the first minute to the last (limit {:.0} %)",
                    growth * 100.0,
                    MAX_GROWTH * 100.0
                ));
            }
        }
        _ => failed.push("no RSS samples after the start".into()),
    }
    match stats {
        Ok(body) => match serde_json::from_str::<serde_json::Value>(body) {
            Ok(v) => {
                for key in ["frames", "switch", "gateway", "workers", "dns", "drops"] {
                    if let Some(x) = v.get(key) {
                        println!("/stats {key}: {x}");
                    }
                }
            }
            Err(e) => println!("/stats: not JSON: {e}"),
        },
        Err(e) => println!("/stats: {e}"),
    }
    if INTERRUPTED.load(Ordering::Relaxed) {
        failed.push("interrupted before the end".into());
    }
    if let Some(status) = died {
        failed.push(format!("host-switch exited during the run: {status}"));
    }
    if g(&c.mismatches) > 0 {
        failed.push(format!("{} wrong byte(s) found", g(&c.mismatches)));
    }
    if g(&c.tcp_failed) > 0 {
        failed.push(format!("{} TCP transfer(s) failed", g(&c.tcp_failed)));
    }
    if g(&c.tcp_ok) == 0 {
        failed.push("no TCP transfer completed".into());
    }
    let reasons = c.failures();
    if !reasons.is_empty() {
        println!("first problems seen ({} kept):", reasons.len());
        for r in &reasons {
            println!("  {r}");
        }
    }
    if failed.is_empty() {
        println!("PASS");
        true
    } else {
        for f in &failed {
            println!("FAIL: {f}");
        }
        false
    }
}
