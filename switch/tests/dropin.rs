//! host-switch as a drop-in for gvproxy, seen by a caller of the binary without root: what a
//! restart after SIGTERM finds, the control API's extra views, and the flags podman machine
//! and gvproxy's users pass. Traffic stays on unix sockets and loopback.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod support;

use support::{TempDir, api_request};

const BIN: &str = env!("CARGO_BIN_EXE_host-switch");

/// A running host-switch, killed on drop if the test did not stop it.
struct Running {
    child: Child,
}

impl Running {
    fn start(args: &[&str]) -> Running {
        let child = Command::new(BIN)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Running { child }
    }

    /// SIGTERM, then the exit status and standard error.
    fn terminate(self) -> (std::process::ExitStatus, String) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill takes integers; `pid` is our live child.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        self.wait(Duration::from_secs(10))
    }

    /// Waits at most `timeout` for the exit; the status and standard error.
    fn wait(mut self, timeout: Duration) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "no exit within {timeout:?}");
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stderr = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
        }
        (status, stderr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn unix_url(p: &Path) -> String {
    format!("unix://{}", p.display())
}

/// Starts host-switch serving its API on `dir/api.sock` with `extra` flags.
fn serve_api(dir: &TempDir, extra: &[&str]) -> (Running, PathBuf) {
    let api = dir.path().join("api.sock");
    let url = unix_url(&api);
    let mut args = vec!["-listen", url.as_str(), "-ssh-port", "-1"];
    args.extend_from_slice(extra);
    let running = Running::start(&args);
    wait_for(&api);
    (running, api)
}

#[test]
fn unix_forwards_are_removed_at_exit_and_stale_ones_reclaimed() {
    let dir = TempDir::new("dropin-unix");
    let fwd = dir.path().join("fwd.sock");
    let expose = format!(
        r#"{{"local":"{}","remote":"192.168.127.2:22","protocol":"unix"}}"#,
        unix_url(&fwd)
    );
    let (running, api) = serve_api(&dir, &[]);
    assert_eq!(
        api_request(&api, "POST", "/services/forwarder/expose", &expose),
        (200, String::new())
    );
    assert!(fwd.exists());
    let (status, stderr) = running.terminate();
    assert!(status.success(), "{stderr}");
    assert!(
        !fwd.exists(),
        "the forward's socket file is removed at exit"
    );

    // A socket file left by a process that did not exit cleanly is replaced.
    drop(std::os::unix::net::UnixListener::bind(&fwd).unwrap());
    assert!(fwd.exists());
    let (_running, api) = serve_api(&dir, &[]);
    let (status, body) = api_request(&api, "POST", "/services/forwarder/expose", &expose);
    assert_eq!(status, 200, "{body}");
    // One with a listener is not.
    let busy = dir.path().join("busy.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&busy).unwrap();
    let busy_expose = format!(
        r#"{{"local":"{}","remote":"192.168.127.2:22","protocol":"unix"}}"#,
        unix_url(&busy)
    );
    let (status, body) = api_request(&api, "POST", "/services/forwarder/expose", &busy_expose);
    assert_eq!(status, 500, "{body}");
}

/// Needs root and does nothing else: [`a_skipped_test_is_listed_by_name`] runs it as nobody.
#[test]
fn root_probe_for_the_skip_list() {
    // Skips (and is listed) without root; fails instead under CI=true.
    let _ = support::privileged("root_probe_for_the_skip_list", &[]);
}

#[test]
fn a_skipped_test_is_listed_by_name() {
    if !support::privileged("a_skipped_test_is_listed_by_name", &["setpriv"]) {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("dropin-skips");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let list = dir.path().join("skipped.txt");
    let probe = |ci: Option<&str>| {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "root_probe_for_the_skip_list",
                "--test-threads=1",
            ])
            .env("HOST_SWITCH_SKIPS", &list)
            .env_remove("CI")
            .current_dir(dir.path());
        if let Some(ci) = ci {
            cmd.env("CI", ci);
        }
        cmd.output().unwrap()
    };
    let out = probe(None);
    assert!(out.status.success(), "{out:?}");
    let listed = std::fs::read_to_string(&list).unwrap_or_default();
    assert_eq!(
        listed, "root_probe_for_the_skip_list: not running as root\n",
        "the skip is listed by name"
    );
    // Under CI=true the same test fails instead of skipping.
    let out = probe(Some("true"));
    assert!(!out.status.success(), "{out:?}");
}

/// Parses Prometheus text with the Prometheus project's own Python client (Debian's
/// python3-prometheus-client): `{type: [[sample name, labels, value], ...]}`.
const PARSE_METRICS: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.setdefault(family.type, []).append([s.name, s.labels, s.value])
print(json.dumps(out))
"#;

#[test]
fn stats_in_gvproxys_layout_and_metrics_in_prometheus_text() {
    // Debian's python3 (the one with Debian's modules), whatever else is on the PATH.
    let python = "/usr/bin/python3";
    let parser_ok = Command::new(python)
        .args(["-c", "import prometheus_client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !parser_ok {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "python3-prometheus-client is needed under CI=true"
        );
        support::skip::skipped(
            "stats_in_gvproxys_layout_and_metrics_in_prometheus_text",
            "python3-prometheus-client is not installed",
        );
        return;
    }
    let dir = TempDir::new("dropin-metrics");
    let (_running, api) = serve_api(&dir, &[]);
    let (status, body) = api_request(&api, "GET", "/stats", "");
    assert_eq!(status, 200);
    let stats: serde_json::Value = serde_json::from_str(&body).unwrap();
    for key in ["BytesSent", "BytesReceived", "DroppedPackets"] {
        assert!(stats[key].is_u64(), "{key}: {body}");
    }
    assert!(stats["TCP"]["CurrentEstablished"].is_u64(), "{body}");
    assert!(stats["TCP"]["ForwardMaxInFlightDrop"].is_u64(), "{body}");

    let (status, text) = api_request(&api, "GET", "/metrics", "");
    assert_eq!(status, 200);
    let mut child = Command::new(python)
        .args(["-c", PARSE_METRICS])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the parser refused it: {out:?}\n{text}"
    );
    let parsed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let samples = |kind: &str| parsed[kind].as_array().cloned().unwrap_or_default();
    let find = |kind: &str, name: &str, label: Option<(&str, &str)>| {
        samples(kind)
            .into_iter()
            .find(|s| s[0] == name && label.is_none_or(|(k, v)| s[1][k].as_str() == Some(v)))
    };
    // Every limit of /stats, with its maximum as a gauge and its refusals as a counter.
    let limits = stats["limits"].as_object().unwrap();
    assert!(limits.len() >= 10, "{limits:?}");
    for (name, limit) in limits {
        if let Some(max) = limit["max"].as_u64() {
            let s = find("gauge", "host_switch_limit_max", Some(("limit", name)))
                .unwrap_or_else(|| panic!("{name} max missing:\n{text}"));
            assert_eq!(s[2].as_f64(), Some(max as f64), "{name}");
        }
        if limit.get("refused").is_some() {
            assert!(
                find(
                    "counter",
                    "host_switch_limit_refused_total",
                    Some(("limit", name))
                )
                .is_some(),
                "{name} refused missing:\n{text}"
            );
        }
    }
    // And the counters, forwarder's and DNS's included.
    for name in [
        "host_switch_forwarder_tcp_total",
        "host_switch_dns_queries_total",
        "host_switch_frames_rx_total",
    ] {
        assert!(find("counter", name, None).is_some(), "{name}:\n{text}");
    }
    assert!(find("gauge", "host_switch_forwarder_tcp_open", None).is_some());
    // IPv6 and multicast: events are counters, what is joined or free now are gauges.
    for name in [
        "host_switch_ipv6_router_adverts_total",
        "host_switch_multicast_snooping_queries_sent_total",
        "host_switch_multicast_relay_to_guest_total",
    ] {
        assert!(find("counter", name, None).is_some(), "{name}:\n{text}");
    }
    for name in [
        "host_switch_ipv6_dhcpv6_pool_free",
        "host_switch_multicast_snooping_memberships",
        "host_switch_multicast_relay_host_groups",
        "host_switch_forwarder_mcast_groups",
    ] {
        assert!(find("gauge", name, None).is_some(), "{name}:\n{text}");
    }
}

/// An ARP request from the default guest for the gateway.
fn arp_request() -> Vec<u8> {
    let mac = [0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xee];
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[192, 168, 127, 2]);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&[192, 168, 127, 1]);
    f
}

#[test]
fn the_capture_file_is_cut_at_its_size_limit() {
    if !support::privileged("the_capture_file_is_cut_at_its_size_limit", &["tcpdump"]) {
        return;
    }
    use std::io::{Read, Write};
    let dir = TempDir::new("dropin-pcap");
    let qemu = dir.path().join("qemu.sock");
    let pcap = dir.path().join("cap.pcap");
    let log = dir.path().join("log");
    let running = Running::start(&[
        "-listen-qemu",
        &unix_url(&qemu),
        "-ssh-port",
        "-1",
        "-pcap",
        pcap.to_str().unwrap(),
        "--pcap-max-size",
        "2K",
        "--pcap-snaplen",
        "64",
        "--log-file",
        log.to_str().unwrap(),
    ]);
    wait_for(&qemu);
    let mut q = std::os::unix::net::UnixStream::connect(&qemu).unwrap();
    q.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let f = arp_request();
    let mut msg = (f.len() as u32).to_be_bytes().to_vec();
    msg.extend(&f);
    // 100 requests, each answered: about 11 KiB of capture against a 2 KiB limit.
    for _ in 0..100 {
        q.write_all(&msg).unwrap();
        let mut len = [0u8; 4];
        q.read_exact(&mut len).unwrap();
        let mut reply = vec![0; u32::from_be_bytes(len) as usize];
        q.read_exact(&mut reply).unwrap();
    }
    drop(q);
    let (status, _) = running.terminate();
    assert!(status.success());
    let old = dir.path().join("cap.pcap.1");
    for file in [&pcap, &old] {
        let len = std::fs::metadata(file).unwrap().len();
        assert!(len <= 2048, "{}: {len} bytes", file.display());
        let out = Command::new("tcpdump")
            .args(["-n", "-r"])
            .arg(file)
            .output()
            .unwrap();
        assert!(out.status.success(), "tcpdump reads it whole: {out:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("ARP"));
    }
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("snaplen=64") && logged.contains("max_bytes=2048"),
        "{logged}"
    );
    assert!(logged.contains("reached its size limit"), "{logged}");
}
