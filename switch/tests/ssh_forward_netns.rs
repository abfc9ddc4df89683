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

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::{Background, NetnsGuard, TempDir, eventually, privileged};

const BIN: &str = env!("CARGO_BIN_EXE_host-switch");
const SSHD: &str = "/usr/sbin/sshd";

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

fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "ssh-keygen: {out:?}");
}

/// Writes sshd's config, host key and authorized key (for `dir/id`) into `dir`.
fn sshd_files(dir: &Path) -> PathBuf {
    keygen(&dir.join("host_key"));
    keygen(&dir.join("id"));
    std::fs::copy(dir.join("id.pub"), dir.join("authorized_keys")).unwrap();
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "Port 22\nListenAddress 0.0.0.0\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\nPermitRootLogin prohibit-password\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
             StrictModes no\nAllowStreamLocalForwarding yes\nLogLevel DEBUG1\n",
            d = dir.display()
        ),
    )
    .unwrap();
    // sshd's privilege separation directory.
    std::fs::create_dir_all("/run/sshd").unwrap();
    config
}

/// A unix socket server standing in for the guest's API: answers each line with "guest: "
/// and the line. Serves a bounded number of connections.
fn guest_api(path: &Path) {
    let listener = UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(16) {
            let Ok(mut conn) = conn else { return };
            std::thread::spawn(move || {
                let mut buf = [0u8; 256];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let mut answer = b"guest: ".to_vec();
                    answer.extend_from_slice(&buf[..n]);
                    if conn.write_all(&answer).is_err() {
                        break;
                    }
                }
            });
        }
    });
}

/// Asks through the host socket; the answer (empty if it never came).
fn ask(host_sock: &Path, line: &str) -> String {
    let Ok(mut s) = UnixStream::connect(host_sock) else {
        return String::new();
    };
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(line.as_bytes()).unwrap();
    let mut buf = [0u8; 256];
    let n = s.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// A free port on 127.0.0.1, as the kernel picks one.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
