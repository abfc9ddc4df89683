//! `-forward-sock` end to end against a real OpenSSH server: sshd runs as the guest's, in a
//! namespace this test creates (its own config, host key and authorized key), host-switch
//! serves that namespace's TAP, and a connection to the host-side unix socket must reach a
//! unix socket server standing in for the guest's podman API, through a
//! `direct-streamlocal` channel. Once through the `-ssh-port` forward (sshd started after
//! host-switch, so the forward has to retry), once through the private forward used when
//! there is no `-ssh-port`.
//!
//! Needs root (namespaces, TAP, sshd); skips loudly without it unless CI=true. Traffic stays on
//! loopback, unix sockets and inside the namespace.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::sshd::{SSHD, ask, free_port, guest_api, sshd_files};
use support::{Background, NetnsGuard, TempDir, eventually, privileged};

const BIN: &str = env!("CARGO_BIN_EXE_host-switch");

/// Kills the process on drop.
struct Killed(Child);

impl Killed {
    /// SIGTERM, and the wait for the exit.
    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = libc::pid_t::try_from(self.0.id()).unwrap();
        // SAFETY: kill takes integers; `pid` is our live child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let status = eventually(Duration::from_secs(10), || self.0.try_wait().unwrap());
        status.expect("no exit after SIGTERM")
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// host-switch serving `ns` the way podman machine starts gvproxy, plus the TAP.
fn serve(ns: &NetnsGuard, dir: &Path, ssh_port: &str) -> Killed {
    let netns = format!("/run/netns/{}", ns.name);
    let child = Command::new(BIN)
        .args(["--netns", &netns, "--tap", "tap0", "--configure"])
        .args(["-mtu", "1500", "-ssh-port", ssh_port])
        .arg("-forward-sock")
        .arg(dir.join("host.sock"))
        .arg("-forward-dest")
        .arg(dir.join("guest.sock"))
        .args(["-forward-user", "root"])
        .arg("-forward-identity")
        .arg(dir.join("id"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    Killed(child)
}

#[test]
fn forward_sock_reaches_a_guest_unix_socket_over_real_sshd() {
    if !privileged(
        "forward_sock_reaches_a_guest_unix_socket_over_real_sshd",
        &["ip", "ssh-keygen", SSHD],
    ) {
        return;
    }
    let ns = NetnsGuard::new("sshfwd");
    let tmp = TempDir::new("sshfwd");
    let dir = tmp.path();
    let config = sshd_files(dir);
    guest_api(&dir.join("guest.sock"));
    let host_sock = dir.join("host.sock");

    // Through the -ssh-port forward, host-switch first: the session is retried until sshd
    // answers.
    let port = free_port().to_string();
    let served = serve(&ns, dir, &port);
    let up = eventually(Duration::from_secs(10), || host_sock.exists().then_some(()));
    assert!(up.is_some(), "the host socket never appeared");
    std::thread::sleep(Duration::from_millis(500));
    let log = dir.join("sshd.log");
    let config_arg = config.to_string_lossy().into_owned();
    let log_arg = log.to_string_lossy().into_owned();
    let _sshd: Background = ns.spawn(SSHD, &["-D", "-f", &config_arg, "-E", &log_arg]);
    assert_eq!(ask(&host_sock, "ping one"), "guest: ping one");
    assert_eq!(
        ask(&host_sock, "ping two"),
        "guest: ping two",
        "a second channel"
    );
    let sshd_log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        sshd_log.contains("direct-streamlocal") && sshd_log.contains("Accepted publickey for root"),
        "{sshd_log}"
    );
    assert!(served.terminate().success());
    assert!(!host_sock.exists(), "the host socket is removed at exit");

    // With no -ssh-port forward, through the private one.
    let _served = serve(&ns, dir, "-1");
    let up = eventually(Duration::from_secs(10), || host_sock.exists().then_some(()));
    assert!(up.is_some(), "the host socket never appeared");
    assert_eq!(ask(&host_sock, "ping three"), "guest: ping three");
}
