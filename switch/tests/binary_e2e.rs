//! The built `host-switch` binary end to end.
//!
//! - `run -- sh -c '...'`: the command sees its address configured, pings the gateway, and its
//!   exit status comes through. Needs root (or a user namespace and an open /dev/net/tun);
//!   without root it skips loudly, unless CI=true, where it must run.
//! - Serve mode, unprivileged: a QEMU-framed client on `-listen-qemu` and a gvforwarder-style
//!   client on `-listen` `/connect` each get the gateway's ARP reply; SIGTERM shuts down
//!   cleanly and removes the sockets and the pid file.
//!
//! Traffic stays on unix sockets and inside the namespace `run` creates.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "skip/mod.rs"]
mod skip;

const BIN: &str = env!("CARGO_BIN_EXE_host-switch");
const GUEST_MAC: [u8; 6] = [0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xee];
const GATEWAY_MAC: [u8; 6] = [0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xdd];

fn can_run_as_root(test: &str) -> bool {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if !root && !ci {
        skip::skipped(test, "needs root (namespaces and a TAP device)");
        return false;
    }
    true
}

#[test]
fn run_configures_pings_the_gateway_and_passes_the_exit_status() {
    if !can_run_as_root("run_configures_pings_the_gateway_and_passes_the_exit_status") {
        return;
    }
    let out = Command::new(BIN)
        .args([
            "run",
            "--",
            "sh",
            "-c",
            "ip addr; cat /etc/resolv.conf; ping -c1 -W2 192.168.127.1; exit 7",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(7),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("inet 192.168.127.2/24"),
        "address configured:\n{stdout}"
    );
    assert!(stdout.contains("mtu 65520"), "TAP MTU:\n{stdout}");
    assert!(
        stdout.contains("nameserver 192.168.127.1"),
        "private resolv.conf:\n{stdout}"
    );
    assert!(
        stdout.contains("1 received"),
        "the gateway answers ping:\n{stdout}\n{stderr}"
    );
    // The machine's own resolv.conf was not touched.
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    assert!(!host_resolv.contains("nameserver 192.168.127.1"));
}

#[test]
fn run_reports_a_command_that_cannot_start() {
    if !can_run_as_root("run_reports_a_command_that_cannot_start") {
        return;
    }
    let out = Command::new(BIN)
        .args(["run", "--", "/nonexistent/command"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(127));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/command"));
}

/// Kills the process on drop if the test did not stop it.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
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

fn arp_request() -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&GUEST_MAC);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&GUEST_MAC);
    f.extend_from_slice(&[192, 168, 127, 2]);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&[192, 168, 127, 1]);
    f
}

/// Reads frames with `read_frame` until the gateway's ARP reply arrives.
fn expect_arp_reply(s: &mut UnixStream, read_frame: fn(&mut UnixStream) -> Vec<u8>) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        assert!(Instant::now() < deadline, "no ARP reply");
        let f = read_frame(s);
        if f.len() >= 42 && f[12..14] == [0x08, 0x06] && f[20..22] == [0, 2] {
            assert_eq!(&f[22..28], &GATEWAY_MAC);
            assert_eq!(&f[28..32], &[192, 168, 127, 1]);
            return;
        }
    }
}

#[test]
fn serve_mode_answers_on_qemu_and_connect_then_cleans_up_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("hs-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let qemu = dir.join("qemu.sock");
    let api = dir.join("api.sock");
    let pid_file = dir.join("hs.pid");
    let arg = |scheme: &str, p: &PathBuf| format!("{scheme}://{}", p.display());
    let child = Command::new(BIN)
        .args(["-listen-qemu", &arg("unix", &qemu)])
        .args(["--listen", &arg("unix", &api)])
        .args(["-pid-file", pid_file.to_str().unwrap()])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut running = Running(child);
    wait_for(&qemu);
    wait_for(&api);
    wait_for(&pid_file);
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap(),
        running.0.id().to_string()
    );

    let mut q = UnixStream::connect(&qemu).unwrap();
    q.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let f = arp_request();
    let mut msg = (f.len() as u32).to_be_bytes().to_vec();
    msg.extend(&f);
    q.write_all(&msg).unwrap();
    expect_arp_reply(&mut q, |s| {
        let mut len = [0u8; 4];
        s.read_exact(&mut len).unwrap();
        let mut f = vec![0; u32::from_be_bytes(len) as usize];
        s.read_exact(&mut f).unwrap();
        f
    });

    let mut c = UnixStream::connect(&api).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut msg = b"POST /connect HTTP/1.1\r\nHost: unix\r\n\r\n".to_vec();
    msg.extend((f.len() as u16).to_le_bytes());
    msg.extend(&f);
    c.write_all(&msg).unwrap();
    expect_arp_reply(&mut c, |s| {
        let mut len = [0u8; 2];
        s.read_exact(&mut len).unwrap();
        let mut f = vec![0; usize::from(u16::from_le_bytes(len))];
        s.read_exact(&mut f).unwrap();
        f
    });

    let pid = libc::pid_t::try_from(running.0.id()).unwrap();
    // SAFETY: kill takes integers; `pid` is our live child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = running.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    assert!(!qemu.exists() && !api.exists(), "sockets removed");
    assert!(!pid_file.exists(), "pid file removed");
    std::fs::remove_dir_all(&dir).unwrap();
}
