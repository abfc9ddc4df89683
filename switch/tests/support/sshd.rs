//! A real OpenSSH server as a guest's: its files (config, host key, authorized key for a
//! client key of the test's own), a unix socket server standing in for the guest's podman
//! API, and a client asking through a forwarded host socket.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Debian's OpenSSH server.
pub(crate) const SSHD: &str = "/usr/sbin/sshd";

pub(crate) fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "ssh-keygen: {out:?}");
}

/// Writes sshd's config, host key and authorized key (for `dir/id`) into `dir`.
pub(crate) fn sshd_files(dir: &Path) -> PathBuf {
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
pub(crate) fn guest_api(path: &Path) {
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
pub(crate) fn ask(host_sock: &Path, line: &str) -> String {
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
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
