//! The markdown section: figures with ratios, the cost of each run, and issue 7's targets.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::measure::{Better, FIGURES, Fig, Group, Sample};
use crate::peers::Peer;
use crate::{Options, Results, sys};

const HEADING: &str = "## Against peers";

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// The median figure, the median CPU cost and the largest peak RSS over the runs.
#[derive(Debug, Clone, Copy)]
struct Summary {
    value: f64,
    cost: Option<f64>,
    peak_kib: u64,
    runs: usize,
}

fn summary(samples: Option<&Vec<Sample>>) -> Option<Summary> {
    let s = samples?;
    Some(Summary {
        value: median(s.iter().map(|x| x.value).collect())?,
        cost: median(s.iter().filter_map(|x| x.cost).collect()),
        peak_kib: s.iter().map(|x| x.peak_kib).max().unwrap_or(0),
        runs: s.len(),
    })
}

fn num(v: f64) -> String {
    let a = v.abs();
    if a >= 1000.0 {
        let i = v.round() as i64;
        let s = i.abs().to_string();
        let mut out = String::new();
        for (k, c) in s.chars().enumerate() {
            if k > 0 && (s.len() - k).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        if i < 0 { format!("-{out}") } else { out }
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn cell(r: &Results, f: &Fig, peer: &str, runs: usize) -> (String, Option<Summary>) {
    let s = summary(r.samples.get(&(f.id, peer)));
    let errors = r.errors.get(&(f.id, peer)).map(Vec::len).unwrap_or(0);
    match (s, errors) {
        (Some(s), 0) if s.runs >= runs || f.id == "idle_rss" => (num(s.value), Some(s)),
        (Some(s), _) => (
            format!("{} ({} of {} runs)", num(s.value), s.runs, s.runs + errors),
            Some(s),
        ),
        (None, _) => {
            let why = r
                .errors
                .get(&(f.id, peer))
                .and_then(|e| e.first())
                .map(|e| short(e))
                .unwrap_or_else(|| "not run".into());
            (format!("failed: {why}"), None)
        }
    }
}

/// The row's label; the parallel-streams figures name their number of streams.
fn label(o: &Options, f: &Fig) -> String {
    if f.group == Group::Parallel {
        format!("{}, {} streams", f.label, o.streams)
    } else {
        f.label.to_owned()
    }
}

fn short(e: &str) -> String {
    let e = e.replace('|', "/").replace('\n', " ");
    if e.chars().count() > 90 {
        format!("{}…", e.chars().take(90).collect::<String>())
    } else {
        e
    }
}

fn capture(cmd: &mut Command) -> String {
    sys::run(cmd, Duration::from_secs(5))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "?".into())
}

fn machine() -> String {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "?".into());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")?
                    .split_once(':')
                    .map(|x| x.1.trim().to_owned())
            })
        })
        .unwrap_or_else(|| "?".into());
    let os = std::fs::read_to_string("/etc/debian_version")
        .map(|v| format!(", Debian {}", v.trim()))
        .unwrap_or_default();
    format!("{cores} cores ({cpu}), Linux {kernel}{os}")
}

pub(crate) fn section(o: &Options, r: &Results, present: &[(Peer, String)]) -> String {
    let date = capture(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]));
    let hs = Peer::HostSwitch.name();
    let others: Vec<&str> = present
        .iter()
        .filter(|(p, _)| !p.is_ours())
        .map(|(p, _)| p.name())
        .collect();
    let has_hs = present.iter().any(|(p, _)| *p == Peer::HostSwitch);
    let mut s = String::new();
    let _ = writeln!(s, "{HEADING} — {date}\n");
    let _ = writeln!(s, "Machine: {}.  ", machine());
    let _ = writeln!(s, "Command: `{}`  ", o.command);
    let _ = writeln!(
        s,
        "Each figure is the median of {} run(s) of {} s (iperf3 `-t`, sockperf `-t`, wrk `-d`), written by \
         `benches/src/bin/compare`. A guest is a fresh network namespace served by the peer; the servers \
         listen on the host's 127.0.0.1. sockperf: 64-byte ping-pong, one-way latency. wrk: 1 thread, \
         32 connections, nginx serving a 6-byte file.",
        o.runs, o.secs
    );
    if o.streams > 1 {
        let _ = writeln!(
            s,
            "The {} streams figures are {} iperf3 clients at once, one stream each, to as many \
             servers, summed.",
            o.streams, o.streams
        );
    }
    if !o.host_switch_args.is_empty() {
        let _ = writeln!(
            s,
            "host-switch ran with `{}`.",
            o.host_switch_args.join(" ")
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "Peers:");
    for (p, v) in present {
        let _ = writeln!(s, "- {}: {v}", p.name());
    }
    for p in &o.peers {
        if !present.iter().any(|(q, _)| q == p)
            && let Some(why) = p.missing(&o.host_switch)
        {
            let _ = writeln!(s, "- {}: not measured: {why}", p.name());
        }
    }
    let _ = writeln!(s);
    // The figures and host-switch's ratio to each peer.
    let _ = write!(s, "| figure |");
    for (p, _) in present {
        let _ = write!(s, " {} |", p.name());
    }
    if has_hs {
        for p in &others {
            let _ = write!(s, " host-switch ÷ {p} |");
        }
    }
    let _ = write!(s, "\n|---|");
    for _ in present {
        let _ = write!(s, "---|");
    }
    if has_hs {
        for _ in &others {
            let _ = write!(s, "---|");
        }
    }
    let _ = writeln!(s);
    for f in FIGURES.iter().filter(|f| o.wants_fig(f)) {
        let arrow = if f.better == Better::Higher {
            "↑"
        } else {
            "↓"
        };
        let _ = write!(s, "| {} ({}, {arrow}) |", label(o, f), f.unit);
        for (p, _) in present {
            let _ = write!(s, " {} |", cell(r, f, p.name(), o.runs).0);
        }
        if has_hs {
            let ours = cell(r, f, hs, o.runs).1;
            for p in &others {
                let theirs = cell(r, f, p, o.runs).1;
                match (ours, theirs) {
                    (Some(a), Some(b)) if b.value > 0.0 => {
                        let _ = write!(s, " {:.2}× |", a.value / b.value);
                    }
                    _ => {
                        let _ = write!(s, " — |");
                    }
                }
            }
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(
        s,
        "\n↑ higher is better, ↓ lower is better; a ratio is host-switch's figure over the peer's.\n"
    );
    // What each run cost the peer process.
    let _ = writeln!(
        s,
        "Cost to the peer process (utime+stime from /proc/PID/stat around the run, per unit of work; \
         peak RSS is VmHWM after resetting it with clear_refs before the run, largest over runs). For \
         gvproxy only gvproxy is counted, not gvforwarder in the guest; for host-switch-agent only \
         host-switch, not the agent.\n"
    );
    let _ = write!(s, "| run | CPU per |");
    for (p, _) in present {
        let _ = write!(s, " {} |", p.name());
    }
    let _ = write!(s, "\n|---|---|");
    for _ in present {
        let _ = write!(s, "---|");
    }
    let _ = writeln!(s);
    for f in FIGURES
        .iter()
        .filter(|f| !f.id.ends_with("_p99") && o.wants_fig(f))
    {
        let unit = f.cost_unit.strip_prefix("CPU ").unwrap_or("—");
        let _ = write!(s, "| {} | {unit} |", label(o, f));
        for (p, _) in present {
            let c = match summary(r.samples.get(&(f.id, p.name()))) {
                Some(x) => {
                    let cost = x.cost.map(num);
                    match cost {
                        Some(c) => format!("{c}; peak {} MiB", num(x.peak_kib as f64 / 1024.0)),
                        None => format!("peak {} MiB", num(x.peak_kib as f64 / 1024.0)),
                    }
                }
                None => "—".into(),
            };
            let _ = write!(s, " {c} |");
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(s);
    if o.streams > 1 {
        s.push_str(&scaling(o, r, present));
    }
    if has_hs {
        s.push_str(&targets(r, o.runs));
    }
    s
}

/// Each peer's throughput with `--streams` clients over that with one (medians).
fn scaling(o: &Options, r: &Results, present: &[(Peer, String)]) -> String {
    let mut s = format!("### {} streams ÷ 1 stream\n\n| throughput |", o.streams);
    for (p, _) in present {
        let _ = write!(s, " {} |", p.name());
    }
    let _ = write!(s, "\n|---|");
    for _ in present {
        let _ = write!(s, "---|");
    }
    let _ = writeln!(s);
    for &mtu in &o.mtus {
        for (_, one, par) in crate::measure::throughput_ids(mtu) {
            let Some(f) = FIGURES.iter().find(|f| f.id == one) else {
                continue;
            };
            let _ = write!(s, "| {} |", f.label);
            for (p, _) in present {
                let get = |id| summary(r.samples.get(&(id, p.name()))).map(|x| x.value);
                match (get(par), get(one)) {
                    (Some(a), Some(b)) if b > 0.0 => {
                        let _ = write!(s, " {} ÷ {} = {:.2}× |", num(a), num(b), a / b);
                    }
                    _ => {
                        let _ = write!(s, " — |");
                    }
                }
            }
            let _ = writeln!(s);
        }
    }
    let _ = writeln!(s);
    s
}

/// Issue 7's targets, each stated as met or not and by how much.
fn targets(r: &Results, runs: usize) -> String {
    let get = |id: &str, peer: &str| {
        FIGURES
            .iter()
            .find(|f| f.id == id)
            .and_then(|f| cell(r, f, peer, runs).1)
            .map(|s| s.value)
    };
    let hs = Peer::HostSwitch.name();
    let mut s = String::from("### Issue 7's targets\n\n");
    let mut line = |ok: Option<bool>, text: String| {
        let mark = match ok {
            Some(true) => "met",
            Some(false) => "**not met**",
            None => "not measured",
        };
        let _ = writeln!(s, "- {mark}: {text}");
    };
    for (id, label) in [
        ("tcp_up_65520", "guest→host MTU 65520"),
        ("tcp_down_65520", "host→guest MTU 65520"),
        ("tcp_up_1500", "guest→host MTU 1500"),
        ("tcp_down_1500", "host→guest MTU 1500"),
    ] {
        for (peer, factor) in [("pasta", 1.0), ("slirp4netns", 2.0), ("gvproxy", 4.0)] {
            match (get(id, hs), get(id, peer)) {
                (Some(a), Some(b)) if b > 0.0 => line(
                    Some(a >= factor * b),
                    format!(
                        "throughput {label} ≥ {factor}× {peer}: {} vs {} Gbit/s = {:.2}× (needs {factor}×)",
                        num(a),
                        num(b),
                        a / b
                    ),
                ),
                _ => line(None, format!("throughput {label} ≥ {factor}× {peer}")),
            }
        }
    }
    for (id, label) in [("tcp_p50", "TCP"), ("udp_p50", "UDP")] {
        let best = ["slirp4netns", "pasta", "gvproxy"]
            .into_iter()
            .filter_map(|p| get(id, p).map(|v| (p, v)))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        match (get(id, hs), best) {
            (Some(a), Some((p, b))) => line(
                Some(a <= b),
                format!(
                    "{label} latency p50 no worse than the best peer ({p}): {} vs {} µs = {:.2}×",
                    num(a),
                    num(b),
                    a / b
                ),
            ),
            _ => line(
                None,
                format!("{label} latency p50 no worse than the best peer"),
            ),
        }
    }
    match (get("http_close", hs), get("http_close", "pasta")) {
        (Some(a), Some(b)) if b > 0.0 => line(
            Some(a >= 2.0 * b),
            format!(
                "new connections per second ≥ 2× pasta: {} vs {} req/s = {:.2}× (needs 2×)",
                num(a),
                num(b),
                a / b
            ),
        ),
        _ => line(None, "new connections per second ≥ 2× pasta".into()),
    }
    match get("idle_rss", hs) {
        Some(a) => line(
            Some(a < 16.0),
            format!("idle memory under 16 MiB: {} MiB", num(a)),
        ),
        None => line(None, "idle memory under 16 MiB".into()),
    }
    for id in ["idle_1000", "idle_10000"] {
        let n = if id == "idle_1000" { "1,000" } else { "10,000" };
        match get(id, hs) {
            Some(a) => line(
                Some(a < 8.0),
                format!(
                    "under 8 KiB per idle established connection ({n} open): {} KiB",
                    num(a)
                ),
            ),
            None => line(None, format!("under 8 KiB per idle connection ({n} open)")),
        }
    }
    s
}

/// Replaces the "## Against peers" section of `path` (up to the next `## ` heading), keeping the
/// rest of the file; appends it when there is none.
pub(crate) fn write(path: &Path, section: &str) -> Result<(), String> {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = old.lines().collect();
    let start = lines.iter().position(|l| l.starts_with(HEADING));
    let new = match start {
        Some(start) => {
            let end = lines[start + 1..]
                .iter()
                .position(|l| l.starts_with("## "))
                .map(|i| start + 1 + i)
                .unwrap_or(lines.len());
            let mut out = lines[..start].join("\n");
            if start > 0 {
                out.push('\n');
            }
            out.push_str(section.trim_end());
            out.push('\n');
            if end < lines.len() {
                out.push('\n');
                out.push_str(&lines[end..].join("\n"));
                out.push('\n');
            }
            out
        }
        None => format!("{}\n\n{}\n", old.trim_end(), section.trim_end()),
    };
    std::fs::write(path, new).map_err(|e| format!("{}: {e}", path.display()))
}
