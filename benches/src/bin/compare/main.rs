//! `compare`: host-switch side by side with slirp4netns, pasta and gvproxy.
//!
//! Run as root. For each peer present it puts a guest in a fresh network namespace served by that
//! peer (host-switch twice: on a TAP it opens in the namespace, and as `host-switch-agent`, on a
//! unix socket with `host-switch guest` in the namespace, as gvproxy with gvforwarder) and measures, against servers on the host's 127.0.0.1: iperf3 both ways at MTU 1500 and
//! 65520, sockperf TCP/UDP ping-pong, wrk against nginx (keep-alive and `Connection: close`), and
//! the peer's memory per idle connection; for every run, the peer's CPU time per unit of work and
//! its peak RSS. Figures are medians over `--runs`. Writes the "Against peers" section of
//! `benches/RESULTS.md`. `--quick` is the CI smoke: host-switch only, one short run per figure.
//! `--streams N` adds throughput with N iperf3 clients at once (one stream each, to N servers);
//! `--mtus` and `--skip` narrow what is measured. The tools are whatever `iperf3`, `ip`, … PATH
//! finds, so wrappers around brought binaries work where no packages are installed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

mod measure;
mod peers;
mod report;
mod servers;

use host_switch_benches::sys;
use measure::{FIGURES, Fig, Group, Sample};
use peers::{Guest, Peer};
use servers::Servers;

const PACKAGES: &str = "iperf3 sockperf wrk nginx-light slirp4netns passt";

const USAGE: &str = "\
usage: compare [--quick] [--runs N] [--secs N]
               [--peers host-switch,host-switch-agent,slirp4netns,pasta,gvproxy]
               [--mtus 65520,1500] [--streams N] [--skip GROUPS] [--workers N]
               [--busy-poll MICROSECONDS]
               [--host-switch PATH] [--out PATH] [--no-write]

  --quick        CI smoke: host-switch only, 1 run of 1 s per figure, prints, writes nothing
  --runs N       runs per figure, the median is reported (default 3)
  --secs N       seconds per iperf3/sockperf/wrk run (default 5)
  --peers LIST   which peers (default: every one present)
  --mtus LIST    the guests' MTUs (default 65520,1500); all but throughput is measured at 65520
  --streams N    also measure throughput with N iperf3 clients at once, one stream each, to N
                 servers (figures of their own; default 1: not measured)
  --skip GROUPS  leave out figure groups: throughput, parallel, pingpong, http, rss, idle
  --workers N    pass `--workers N` to host-switch
  --busy-poll N  pass `--busy-poll N` to host-switch
  --host-switch  the host-switch binary (default: $CARGO_TARGET_DIR or target/, release/host-switch)
  --out PATH     the results file whose \"## Against peers\" section is replaced
                 (default benches/RESULTS.md)
  --no-write     print the table only

Runs as root. Debian packages: iperf3 sockperf wrk nginx-light slirp4netns passt
(gvproxy and gvforwarder are used when both are on PATH).";

#[derive(Debug)]
pub(crate) struct Options {
    pub(crate) quick: bool,
    pub(crate) runs: usize,
    pub(crate) secs: u32,
    pub(crate) peers: Vec<Peer>,
    pub(crate) mtus: Vec<u32>,
    pub(crate) streams: usize,
    pub(crate) skip: Vec<Group>,
    /// Flags passed on to host-switch (`--workers`, `--busy-poll`).
    pub(crate) host_switch_args: Vec<String>,
    pub(crate) host_switch: PathBuf,
    pub(crate) out: PathBuf,
    pub(crate) write: bool,
    pub(crate) command: String,
}

/// Which client/server tools are installed.
#[derive(Debug)]
pub(crate) struct Tools {
    pub(crate) iperf3: bool,
    pub(crate) sockperf: bool,
    pub(crate) wrk: bool,
    pub(crate) nginx: bool,
}

fn parse_options() -> Result<Options, String> {
    let args: Vec<String> = std::env::args().collect();
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../target"));
    let mut o = Options {
        quick: false,
        runs: 3,
        secs: 5,
        peers: Peer::ALL.to_vec(),
        mtus: vec![65520, 1500],
        streams: 1,
        skip: Vec::new(),
        host_switch_args: Vec::new(),
        host_switch: target.join("release/host-switch"),
        out: manifest.join("RESULTS.md"),
        write: true,
        command: args.join(" "),
    };
    let mut peers_given = false;
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--quick" => o.quick = true,
            "--runs" => o.runs = value()?.parse().map_err(|e| format!("--runs: {e}"))?,
            "--secs" => o.secs = value()?.parse().map_err(|e| format!("--secs: {e}"))?,
            "--host-switch" => o.host_switch = value()?.into(),
            "--out" => o.out = value()?.into(),
            "--no-write" => o.write = false,
            "--streams" => o.streams = value()?.parse().map_err(|e| format!("--streams: {e}"))?,
            "--workers" | "--busy-poll" => {
                let n: u64 = value()?.parse().map_err(|e| format!("{a}: {e}"))?;
                o.host_switch_args.extend([a.clone(), n.to_string()]);
            }
            "--mtus" => {
                o.mtus = value()?
                    .split(',')
                    .map(|m| match m {
                        "65520" => Ok(65520),
                        "1500" => Ok(1500),
                        _ => Err(format!("--mtus: {m}: only 65520 and 1500")),
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--skip" => {
                o.skip = value()?
                    .split(',')
                    .map(|name| {
                        Group::ALL
                            .into_iter()
                            .find(|g| g.name() == name)
                            .ok_or(format!("--skip: unknown group {name}"))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--peers" => {
                peers_given = true;
                o.peers = value()?
                    .split(',')
                    .map(|name| {
                        Peer::ALL
                            .into_iter()
                            .find(|p| p.name() == name)
                            .ok_or(format!("unknown peer {name}"))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if o.quick {
        o.runs = 1;
        o.secs = 1;
        o.write = false;
        if !peers_given {
            o.peers = vec![Peer::HostSwitch];
        }
    }
    if o.runs == 0 || o.secs == 0 || o.streams == 0 {
        return Err("--runs, --secs and --streams must be at least 1".into());
    }
    Ok(o)
}

impl Options {
    /// Whether figures of `group` are measured for guests at `mtu`.
    pub(crate) fn wants(&self, group: Group, mtu: u32) -> bool {
        let at_mtu = match group {
            Group::Throughput | Group::Parallel => true,
            _ => mtu == 65520,
        };
        at_mtu
            && self.mtus.contains(&mtu)
            && !self.skip.contains(&group)
            && (group != Group::Parallel || self.streams > 1)
    }

    pub(crate) fn wants_fig(&self, f: &Fig) -> bool {
        self.wants(f.group, f.mtu)
    }
}

/// Every run of every figure for every peer: the samples, and why runs failed.
#[derive(Debug, Default)]
pub(crate) struct Results {
    pub(crate) samples: BTreeMap<(&'static str, &'static str), Vec<Sample>>,
    pub(crate) errors: BTreeMap<(&'static str, &'static str), Vec<String>>,
}

impl Results {
    fn add(
        &mut self,
        peer: Peer,
        outcome: Result<Vec<(&'static str, Sample)>, String>,
        ids: &[&'static str],
    ) {
        match outcome {
            Ok(samples) => {
                for (id, s) in samples {
                    let cost = s.cost.map(|c| format!(", cost {c:.3}")).unwrap_or_default();
                    eprintln!(
                        "compare: sample {} {id} = {:.3}{cost}, peak {} KiB",
                        peer.name(),
                        s.value,
                        s.peak_kib
                    );
                    self.samples.entry((id, peer.name())).or_default().push(s);
                }
            }
            Err(e) => {
                eprintln!("compare: {}: {}: {e}", peer.name(), ids.join(", "));
                for id in ids {
                    self.errors
                        .entry((id, peer.name()))
                        .or_default()
                        .push(e.clone());
                }
            }
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 4 && args[1] == measure::IDLE_CLIENT_ARG {
        sys::raise_nofile(262_144, true);
        return measure::idle_client(&args[2], &args[3]);
    }
    let o = match parse_options() {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("compare: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    if !sys::is_root() {
        eprintln!(
            "compare: must run as root (it creates network namespaces and attaches peers to them).\n\
             Install the tools first: apt-get install {PACKAGES}"
        );
        return ExitCode::from(2);
    }
    for needed in ["unshare", "nsenter", "ip"] {
        if sys::which(needed).is_none() {
            eprintln!("compare: {needed} is not on PATH (apt-get install util-linux iproute2)");
            return ExitCode::from(2);
        }
    }
    let tools = Tools {
        iperf3: sys::which("iperf3").is_some(),
        sockperf: sys::which("sockperf").is_some(),
        wrk: sys::which("wrk").is_some(),
        nginx: sys::which("nginx").is_some() || std::path::Path::new("/usr/sbin/nginx").is_file(),
    };
    let missing: Vec<&str> = [
        (tools.iperf3, "iperf3"),
        (tools.sockperf, "sockperf"),
        (tools.wrk, "wrk"),
        (tools.nginx, "nginx-light"),
    ]
    .into_iter()
    .filter(|(have, _)| !have)
    .map(|(_, name)| name)
    .collect();
    if !missing.is_empty() {
        eprintln!(
            "compare: *** NOT INSTALLED: {} — their figures are SKIPPED. apt-get install {PACKAGES}",
            missing.join(" ")
        );
        if o.quick {
            eprintln!("compare: --quick (CI) needs every tool; failing");
            return ExitCode::FAILURE;
        }
    }
    sys::raise_nofile(262_144, false);
    let dir = std::env::temp_dir().join(format!("host-switch-compare-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("compare: {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    let outcome = run_all(&o, &tools, &dir);
    let keep_logs = outcome
        .as_ref()
        .map(|(r, _)| !r.errors.is_empty())
        .unwrap_or(true);
    let code = match outcome {
        Ok((results, present)) => {
            let section = report::section(&o, &results, &present);
            println!("{section}");
            let mut code = ExitCode::SUCCESS;
            if o.write {
                match report::write(&o.out, &section) {
                    Ok(()) => eprintln!("compare: wrote {}", o.out.display()),
                    Err(e) => {
                        eprintln!("compare: {e}");
                        code = ExitCode::FAILURE;
                    }
                }
            }
            if o.quick
                && results
                    .errors
                    .keys()
                    .any(|(_, p)| *p == Peer::HostSwitch.name())
            {
                eprintln!("compare: host-switch figures failed in --quick mode");
                code = ExitCode::FAILURE;
            }
            code
        }
        Err(e) => {
            eprintln!("compare: {e}");
            ExitCode::FAILURE
        }
    };
    if keep_logs {
        eprintln!("compare: the peers' logs are in {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    code
}

/// Measures every present peer; returns the results and the peers that ran (with versions).
fn run_all(
    o: &Options,
    tools: &Tools,
    dir: &std::path::Path,
) -> Result<(Results, Vec<(Peer, String)>), String> {
    // Only the servers some wanted figure needs: a server that cannot start stops the whole run.
    let wanted = |group| o.mtus.iter().any(|&m| o.wants(group, m));
    let parallel = if wanted(Group::Parallel) {
        o.streams
    } else {
        0
    };
    let needed = Tools {
        iperf3: tools.iperf3 && (wanted(Group::Throughput) || wanted(Group::Parallel)),
        sockperf: tools.sockperf && wanted(Group::PingPong),
        wrk: tools.wrk,
        nginx: tools.nginx && wanted(Group::Http),
    };
    let servers = Servers::start(dir, &needed, parallel)?;
    let mut results = Results::default();
    let mut present = Vec::new();
    for &peer in &o.peers {
        if let Some(why) = peer.missing(&o.host_switch) {
            eprintln!("compare: *** {}: SKIPPED: {why}", peer.name());
            if o.quick {
                return Err(format!("{}: {why}", peer.name()));
            }
            continue;
        }
        present.push((peer, peer.version(&o.host_switch)));
        for &mtu in &o.mtus {
            eprintln!("compare: {} at MTU {mtu}", peer.name());
            run_peer(o, tools, &servers, dir, peer, mtu, &mut results);
        }
    }
    Ok((results, present))
}

fn run_peer(
    o: &Options,
    tools: &Tools,
    servers: &Servers,
    dir: &std::path::Path,
    peer: Peer,
    mtu: u32,
    results: &mut Results,
) {
    let start = || {
        Guest::start(
            peer,
            mtu,
            &o.host_switch,
            &o.host_switch_args,
            dir,
            servers.idle.port,
        )
    };
    let mut guest = match start() {
        Ok(g) => g,
        Err(e) => {
            let ids: Vec<&'static str> = FIGURES
                .iter()
                .filter(|f| f.mtu == mtu && o.wants_fig(f))
                .map(|f| f.id)
                .collect();
            results.add(peer, Err(e), &ids);
            return;
        }
    };
    let missing = |tool: &str| {
        Err(format!(
            "{tool} not installed (apt-get install {tool}) — SKIPPED"
        ))
    };
    if o.wants(Group::Rss, mtu) {
        let pid = guest.peer_pid();
        let fresh = sys::status_kib(pid, "VmRSS").and_then(|rss| {
            Ok(vec![(
                "idle_rss",
                Sample {
                    value: rss as f64 / 1024.0,
                    cost: None,
                    peak_kib: sys::status_kib(pid, "VmHWM")?,
                },
            )])
        });
        results.add(peer, fresh, &["idle_rss"]);
    }
    for _ in 0..o.runs {
        for (reverse, id, par_id) in measure::throughput_ids(mtu) {
            if o.wants(Group::Throughput, mtu) {
                let r = match servers.iperf3 {
                    Some(port) => measure::with_cost(&mut guest, |g| {
                        measure::iperf3(g, port, o.secs, reverse, id)
                    }),
                    None => missing("iperf3"),
                };
                results.add(peer, r, &[id]);
            }
            if o.wants(Group::Parallel, mtu) {
                let r = match servers.iperf3_parallel.len() {
                    0 => missing("iperf3"),
                    _ => measure::with_cost(&mut guest, |g| {
                        measure::iperf3_parallel(
                            g,
                            &servers.iperf3_parallel,
                            o.secs,
                            reverse,
                            par_id,
                        )
                    }),
                };
                results.add(peer, r, &[par_id]);
            }
        }
    }
    for _ in 0..o.runs {
        if o.wants(Group::PingPong, mtu) {
            for (tcp, port, ids) in [
                (true, servers.sockperf_tcp, ["tcp_p50", "tcp_p99"]),
                (false, servers.sockperf_udp, ["udp_p50", "udp_p99"]),
            ] {
                let r = match port {
                    Some(port) => {
                        measure::with_cost(&mut guest, |g| measure::sockperf(g, port, o.secs, tcp))
                    }
                    None => missing("sockperf"),
                };
                results.add(peer, r, &ids);
            }
        }
        if o.wants(Group::Http, mtu) {
            for (close, id) in [(false, "http_ka"), (true, "http_close")] {
                let r = match (servers.nginx, tools.wrk) {
                    (Some(port), true) => {
                        measure::with_cost(&mut guest, |g| measure::wrk(g, port, o.secs, close))
                    }
                    (None, _) => missing("nginx-light"),
                    (_, false) => missing("wrk"),
                };
                results.add(peer, r, &[id]);
            }
        }
    }
    // Each idle-connection run gets a fresh guest: after wrk's tens of thousands of short
    // connections a peer may still hold closing flows, and memory freed by earlier runs would
    // hide the cost of new connections. The figure is (VmRSS with n open − fresh VmRSS) / n.
    drop(guest);
    if !o.wants(Group::Idle, mtu) {
        return;
    }
    for _ in 0..o.runs {
        for (n, id) in [(1000, "idle_1000"), (10_000, "idle_10000")] {
            let r = start().and_then(|mut guest| {
                measure::with_cost(&mut guest, |g| measure::idle(g, servers, n, id))
            });
            results.add(peer, r, &[id]);
        }
    }
}
