//! Nothing lost: what a guest was told we have reaches its host peer, with the `host-switch`
//! binary, the Linux kernel in a network namespace as the guest, and servers on the host's
//! 127.0.0.1 (reached through 192.168.127.254) checking every byte of the pattern:
//! - `run` commands that upload a file and exit at once: every upload arrives whole, and
//!   the server sees every byte before its end of stream;
//! - SIGTERM in the middle of uploads: the ones the guests finish within the grace arrive
//!   whole and then end cleanly, one that goes on is reset, and host-switch exits 0 as soon as
//!   the grace allows;
//! - a guest's TAP device deleted mid-upload: a stream the guest had finished (its FIN
//!   acknowledged) arrives whole and ends cleanly; the unfinished ones get every byte
//!   host-switch acknowledged and then RST, never a clean end;
//! - a second signal during the drain: host-switch exits at once, resetting what is left.
//!
//! Needs root (namespaces, TAP), python3 and ss; skips loudly without them unless CI=true.
//! Traffic stays on loopback and inside the namespaces created here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::stream::{End, Received, Sink, UPLOADER, pattern_file};
use support::{Background, NetnsGuard, TempDir, eventually, privileged};

const BIN: &str = env!("CARGO_BIN_EXE_host-switch");
/// gvproxy's host address: the forwarder sends it to 127.0.0.1.
const HOST: &str = "192.168.127.254";

/// Kills the process on drop if the test did not stop it.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `GET path` on the API's unix socket; the body as JSON.
fn api_get(socket: &Path, path: &str) -> Option<serde_json::Value> {
    let mut s = std::os::unix::net::UnixStream::connect(socket).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    s.read_to_string(&mut response).ok()?;
    let (_, body) = response.split_once("\r\n\r\n")?;
    serde_json::from_str(body).ok()
}

/// host-switch serving a configured TAP in a namespace of its own, with the API on a unix
/// socket.
struct Served {
    ns: NetnsGuard,
    dir: TempDir,
    api: std::path::PathBuf,
    process: Killed,
}

impl Served {
    fn start(tag: &str, drain_timeout: &str) -> Served {
        let ns = NetnsGuard::new(tag);
        let dir = TempDir::new(tag);
        let api = dir.path().join("api.sock");
        let netns = format!("/run/netns/{}", ns.name);
        let child = Command::new(BIN)
            .args(["--netns", &netns, "--tap", "tap0", "--configure"])
            .args(["--ssh-port", "-1", "--dns-upstream", "127.0.0.1:9"])
            .args(["--drain-timeout", drain_timeout])
            .arg("-listen")
            .arg(format!("unix://{}", api.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn host-switch");
        let served = Served {
            ns,
            dir,
            api,
            process: Killed(child),
        };
        eventually(Duration::from_secs(10), || {
            (served.api.exists() && served.ns.ip(&["addr"]).contains("192.168.127.2")).then_some(())
        })
        .expect("host-switch up");
        served
    }

    /// The guest uploading `len` bytes of the pattern (`-1`: until it fails) to `sink`.
    fn upload(&self, sink: &Sink, len: i64) -> Background {
        let script = self.dir.script("upload.py", UPLOADER);
        let port = sink.port.to_string();
        let script = script.to_str().expect("path");
        self.ns
            .spawn("python3", &[script, HOST, &port, &len.to_string()])
    }

    fn forwarder(&self) -> serde_json::Value {
        api_get(&self.api, "/stats")
            .map(|s| s["forwarder"].clone())
            .unwrap_or_default()
    }

    /// Bytes of the guest's connection to `port` that host-switch has acknowledged (`ss -i`'s
    /// `bytes_acked`), once there is one connection.
    fn acked(&self, port: u16) -> Option<u64> {
        let out = self.ns.run(
            "ss",
            &["-tniH", "dst", &format!("{HOST}:{port}")],
            Duration::from_secs(10),
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let field = text
            .split_whitespace()
            .find_map(|w| w.strip_prefix("bytes_acked:"))?;
        field.parse().ok()
    }

    /// Waits until every upload to `sinks` is connected through to its server and host-switch
    /// has acknowledged at least `least` of it (held in its buffers: the servers do not read).
    fn under_way(&self, sinks: &[Sink], least: u64) {
        eventually(Duration::from_secs(30), || {
            sinks
                .iter()
                .all(|s| s.connected() && self.acked(s.port).is_some_and(|a| a >= least))
                .then_some(())
        })
        .expect("every upload under way");
    }

    /// The states of the guest's TCP sockets to `port`, as `ss` names them.
    fn guest_states(&self, port: u16) -> Vec<String> {
        let out = self.ns.run(
            "ss",
            &["-tanH", "dst", &format!("{HOST}:{port}")],
            Duration::from_secs(10),
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
            .collect()
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.process.0.id()).expect("pid");
        // SAFETY: kill takes integers; `pid` is our live child.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    }

    /// SIGTERM; waits at most `timeout` for the exit. Its status, how long it took, its log.
    fn terminate(mut self, timeout: Duration) -> (std::process::ExitStatus, Duration, String) {
        let signalled = Instant::now();
        self.signal(libc::SIGTERM);
        let status = eventually(timeout, || self.process.0.try_wait().ok().flatten())
            .unwrap_or_else(|| panic!("no exit within {timeout:?} of SIGTERM"));
        let took = signalled.elapsed();
        let mut log = String::new();
        if let Some(mut stderr) = self.process.0.stderr.take() {
            let _ = stderr.read_to_string(&mut log);
        }
        (status, took, log)
    }
}

/// Reads the end of `sink`, asserting it is every byte of `len` and a clean end.
fn whole(sink: Sink, len: u64, what: &str) -> Received {
    let got = sink.finish(Duration::from_secs(30));
    assert!(got.intact, "{what}: bytes changed: {got:?}");
    assert_eq!((got.bytes, got.end), (len, End::Eof), "{what}: {got:?}");
    got
}

/// Reads the end of `sink`, asserting it is a reset after intact bytes: the stream was cut
/// short and the host peer is told so.
fn reset(sink: Sink, what: &str) -> Received {
    let got = sink.finish(Duration::from_secs(30));
    assert!(got.intact, "{what}: bytes changed: {got:?}");
    assert_eq!(got.end, End::Reset, "{what}: {got:?}");
    got
}

#[test]
fn run_uploads_that_exit_at_once_arrive_whole_every_time() {
    if !privileged("drain: run uploads", &["ip", "python3"]) {
        return;
    }
    const RUNS: usize = 20;
    const LEN: usize = 64 << 20;
    let dir = TempDir::new("run-upload");
    let file = dir.path().join("upload");
    pattern_file(&file, LEN);
    // The command sends the file and exits as soon as the kernel has taken the last byte, as
    // `socat -u FILE:… TCP:…` does.
    let send = "import socket, sys\n\
                s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=60)\n\
                s.sendfile(open(sys.argv[3], 'rb'))\n\
                s.close()\n";
    let started = Instant::now();
    for run in 0..RUNS {
        let sink = Sink::start(None, true);
        let out = Command::new(BIN)
            .args([
                "run",
                "--ssh-port",
                "-1",
                "--dns-upstream",
                "127.0.0.1:9",
                "--",
            ])
            .args(["python3", "-c", send, HOST, &sink.port.to_string()])
            .arg(&file)
            .stdin(Stdio::null())
            .output()
            .expect("run host-switch");
        assert!(
            out.status.success(),
            "run {run}: {:?}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        whole(sink, LEN as u64, &format!("run {run}"));
    }
    eprintln!(
        "run: {RUNS} uploads of {} MiB, all whole, in {:?}",
        LEN >> 20,
        started.elapsed()
    );
}

#[test]
fn sigterm_mid_upload_lets_finished_uploads_arrive_whole_and_resets_the_rest() {
    if !privileged("drain: SIGTERM mid-upload", &["ip", "python3", "ss"]) {
        return;
    }
    const UPLOADS: usize = 4;
    const LEN: u64 = 8 << 20;
    let served = Served::start("sigterm", "4");
    // Four uploads whose servers do not read yet: each stalls midway, part of it
    // acknowledged by host-switch and waiting in its buffer, part still in the guest.
    let sinks: Vec<Sink> = (0..UPLOADS)
        .map(|_| Sink::start(Some(64 * 1024), false))
        .collect();
    let uploads: Vec<Background> = sinks.iter().map(|s| served.upload(s, LEN as i64)).collect();
    // And one that never ends, read as it comes.
    let endless = Sink::start(None, true);
    let endless_upload = served.upload(&endless, -1);
    served.under_way(&sinks, 256 << 10);
    eventually(Duration::from_secs(20), || {
        (endless.received() >= 1 << 20).then_some(())
    })
    .expect("the endless upload under way");
    let stalled = served.forwarder()["bytes_to_host"].as_u64().unwrap_or(0);

    let pid = served.process.0.id();
    let (status, took, log) = std::thread::scope(|scope| {
        let done = scope.spawn(|| served.terminate(Duration::from_secs(15)));
        // The servers start reading once host-switch is draining.
        std::thread::sleep(Duration::from_millis(200));
        for sink in &sinks {
            sink.resume();
        }
        done.join().expect("terminate")
    });
    assert!(status.success(), "{status:?}\n{log}");
    for (i, sink) in sinks.into_iter().enumerate() {
        whole(sink, LEN, &format!("upload {i}"));
    }
    let cut = reset(endless, "the endless upload");
    for upload in uploads {
        let out = upload.wait(Duration::from_secs(10));
        assert!(out.status.success(), "{out:?}");
    }
    let out = endless_upload.wait(Duration::from_secs(10));
    assert!(
        !out.status.success(),
        "the endless upload was reset: {out:?}"
    );
    // The drain waited for the endless upload until its deadline, no longer.
    assert!(
        took >= Duration::from_secs(4) && took < Duration::from_secs(8),
        "exit {took:?} after SIGTERM\n{log}"
    );
    assert!(log.contains("drain timeout"), "{log}");
    eprintln!(
        "SIGTERM (pid {pid}): {UPLOADS} stalled uploads arrived whole ({stalled} bytes to \
         the host before the signal, all streams); the endless one was reset after {} bytes; \
         exit 0 after {took:?}",
        cut.bytes
    );
}

#[test]
fn a_tap_deleted_mid_upload_resets_unfinished_streams_and_completes_finished_ones() {
    if !privileged("drain: TAP deleted mid-upload", &["ip", "python3", "ss"]) {
        return;
    }
    const UPLOADS: usize = 4;
    const LEN: u64 = 8 << 20;
    const FINISHED: u64 = 2 << 20;
    let served = Served::start("tapgone", "5");
    // Four uploads stalled midway (their servers do not read yet), and one the guest has
    // finished: its server does not read either, but host-switch acknowledged its FIN.
    let sinks: Vec<Sink> = (0..UPLOADS)
        .map(|_| Sink::start(Some(64 * 1024), false))
        .collect();
    let _uploads: Vec<Background> = sinks.iter().map(|s| served.upload(s, LEN as i64)).collect();
    let finished = Sink::start(Some(64 * 1024), false);
    let out = served
        .upload(&finished, FINISHED as i64)
        .wait(Duration::from_secs(20));
    assert!(out.status.success(), "{out:?}");
    eventually(Duration::from_secs(10), || {
        let states = served.guest_states(finished.port);
        states
            .iter()
            .all(|s| s == "FIN-WAIT-2" || s == "TIME-WAIT")
            .then_some(())
    })
    .expect("the finished upload's FIN acknowledged");
    served.under_way(&sinks, 256 << 10);

    served.ns.ip(&["link", "del", "tap0"]);
    std::thread::sleep(Duration::from_millis(200));
    for sink in &sinks {
        sink.resume();
    }
    finished.resume();
    whole(finished, FINISHED, "the finished upload");
    let cut: Vec<u64> = sinks
        .into_iter()
        .enumerate()
        .map(|(i, s)| reset(s, &format!("upload {i}")).bytes)
        .collect();
    let stats = eventually(Duration::from_secs(10), || {
        let f = served.forwarder();
        (f["tcp_open"].as_u64()? == 0).then_some(f)
    })
    .expect("every flow of the gone guest ended");
    assert_eq!(stats["flows_guest_gone"], 5, "{stats}");
    // The finished upload had already been handed over whole (FIN after its last byte):
    // it ends with its guest without a reset.
    assert_eq!(stats["tcp_teardown_reset"], UPLOADS, "{stats}");
    // Nothing was left behind, and what was written reached the servers before the resets:
    // every byte host-switch acknowledged to the guest arrived.
    assert_eq!(stats["tcp_dropped_bytes_guest_gone"], 0, "{stats}");
    let received: u64 = cut.iter().sum::<u64>() + FINISHED;
    assert_eq!(stats["bytes_to_host"], received, "{stats}");
    let (status, _, log) = served.terminate(Duration::from_secs(10));
    assert!(status.success(), "{status:?}\n{log}");
    // The log says which port closed and why: its device went away.
    assert!(
        log.lines().any(|l| l.contains("port closed")
            && l.contains("tap:tap0")
            && l.contains("went away")),
        "{log}"
    );
    eprintln!(
        "TAP deleted: the finished upload arrived whole; the others got every acknowledged \
         byte ({cut:?}), then RST"
    );
}

#[test]
fn a_second_signal_during_the_drain_exits_at_once() {
    if !privileged("drain: second signal", &["ip", "python3"]) {
        return;
    }
    let served = Served::start("twice", "60");
    let endless = Sink::start(None, true);
    let _upload = served.upload(&endless, -1);
    eventually(Duration::from_secs(20), || {
        (endless.received() >= 1 << 20).then_some(())
    })
    .expect("the upload under way");
    // The first signal starts a drain that would wait a minute for the upload to end.
    served.signal(libc::SIGINT);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        api_get(&served.api, "/stats").is_some(),
        "still serving while draining"
    );
    let (status, took, log) = served.terminate(Duration::from_secs(5));
    assert!(status.success(), "{status:?}\n{log}");
    assert!(
        took < Duration::from_secs(3),
        "exit {took:?} after the second signal"
    );
    assert!(log.contains("signal during the drain"), "{log}");
    reset(endless, "the upload");
}
