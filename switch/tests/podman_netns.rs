//! The command lines podman machine starts gvproxy with (podman's `pkg/machine`: the shared
//! part in `shim/networking.go`, the links in `qemu/stubber.go`, `apple/apple.go` for vfkit
//! and libkrun, and `wsl/usermodenet.go` for WSL, through gvisor-tap-vsock's
//! `types.GvproxyCommand.ToCmdline`), run unchanged against host-switch:
//!
//! - QEMU on Linux: `-mtu 1500 -ssh-port N -listen-qemu unix:///…/qemu-gvproxy.sock
//!   -forward-sock … -forward-dest … -forward-user … -forward-identity … -pid-file …
//!   -log-file …` (with `-debug` when podman runs at debug level);
//! - vfkit / libkrun on macOS: the same with `-listen-vfkit unixgram:///…/gvproxy.sock`;
//! - WSL's user-mode networking: gvforwarder runs `gvproxy -listen-stdio accept -ssh-port -1`
//!   on its standard input and output.
//!
//! The guest is the Linux kernel in a namespace this test creates: its TAP is joined to the
//! link podman's guest would use (QEMU's 4-byte big-endian frames on the stream socket,
//! vfkit's datagrams, gvforwarder's 2-byte little-endian frames on stdio) by a small bridge
//! here, so the guest's own DHCP client, ping and sshd talk to host-switch through exactly
//! that link. The only changes to podman's arguments: paths in a scratch directory, a free
//! port for `-ssh-port`, and `root` for `-forward-user` (the test's sshd has no `core` user).
//!
//! Needs root (namespaces, TAP, sshd); skips loudly without it unless CI=true. Traffic stays on
//! loopback, unix sockets and inside the namespace.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{Read, Write};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::sshd::{SSHD, ask, free_port, guest_api, sshd_files};
use support::{Background, NetnsGuard, TempDir, eventually, privileged};
use switch::tap::{Tap, TapOptions};

const BIN: &str = env!("CARGO_BIN_EXE_host-switch");
const GUEST_MAC: &str = "5a:94:ef:e4:0c:ee";

/// Kills the process on drop.
struct Served(Child);

impl Served {
    /// SIGTERM, and the exit status.
    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = libc::pid_t::try_from(self.0.id()).unwrap();
        // SAFETY: kill takes integers; `pid` is our live child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        eventually(Duration::from_secs(10), || self.0.try_wait().unwrap())
            .expect("no exit after SIGTERM")
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An unconfigured TAP in `ns` with the default guest's MAC, up.
fn guest_tap(ns: &NetnsGuard) -> Tap {
    let tap = Tap::open_with(
        "tap0",
        &ns.netns(),
        &TapOptions {
            multi_queue: false,
            configure: None,
            offload: false,
        },
    )
    .unwrap();
    ns.ip(&["link", "set", "tap0", "address", GUEST_MAC]);
    ns.ip(&["link", "set", "tap0", "mtu", "1500"]);
    ns.ip(&["link", "set", "tap0", "up"]);
    tap
}

/// Frames from the TAP to `send`, each as one call; runs until the TAP or `send` fails.
fn tap_to(tap: Arc<Tap>, mut send: impl FnMut(&[u8]) -> std::io::Result<()> + Send + 'static) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        loop {
            match tap.wait_readable(Some(Duration::from_millis(100))) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(_) => return,
            }
            let Ok(n) = tap.read_frame(&mut buf) else {
                return;
            };
            if send(&buf[..n]).is_err() {
                return;
            }
        }
    });
}

/// Frames from `recv` (one whole frame per call, `None` at the end) to the TAP.
fn to_tap(tap: Arc<Tap>, mut recv: impl FnMut() -> Option<Vec<u8>> + Send + 'static) {
    std::thread::spawn(move || {
        while let Some(frame) = recv() {
            let _ = tap.write_frame(&frame);
        }
    });
}

/// Joins the TAP to a stream with a length before each frame: `be32` (QEMU) or 2-byte LE.
fn bridge_stream(
    tap: Tap,
    mut writer: impl Write + Send + 'static,
    mut reader: impl Read + Send + 'static,
    be32: bool,
) {
    let tap = Arc::new(tap);
    tap_to(tap.clone(), move |frame| {
        let mut msg = match be32 {
            true => (frame.len() as u32).to_be_bytes().to_vec(),
            false => (frame.len() as u16).to_le_bytes().to_vec(),
        };
        msg.extend_from_slice(frame);
        writer.write_all(&msg)?;
        writer.flush()
    });
    to_tap(tap, move || {
        let len = if be32 {
            let mut l = [0u8; 4];
            reader.read_exact(&mut l).ok()?;
            u32::from_be_bytes(l) as usize
        } else {
            let mut l = [0u8; 2];
            reader.read_exact(&mut l).ok()?;
            usize::from(u16::from_le_bytes(l))
        };
        let mut frame = vec![0u8; len];
        reader.read_exact(&mut frame).ok()?;
        Some(frame)
    });
}

/// Joins the TAP to vfkit's datagram socket at `server`, from a socket of ours at `client`.
fn bridge_vfkit(tap: Tap, server: &Path, client: &Path) {
    let socket = UnixDatagram::bind(client).unwrap();
    socket.connect(server).unwrap();
    let rx = socket.try_clone().unwrap();
    let tap = Arc::new(tap);
    tap_to(tap.clone(), move |frame| socket.send(frame).map(|_| ()));
    to_tap(tap, move || {
        let mut buf = vec![0u8; 65536];
        let n = rx.recv(&mut buf).ok()?;
        buf.truncate(n);
        Some(buf)
    });
}

/// The guest's side: DHCP (with a script of this test's own that configures the address and
/// the default route), then a ping of the gateway. The address DHCP gave.
fn guest_comes_up(ns: &NetnsGuard, dir: &Path) -> String {
    let record = dir.join("bound");
    let script = dir.join("udhcpc.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ \"$1\" = bound ] || exit 0\nip addr add \"$ip/24\" dev \"$interface\"\n\
             ip route add default via \"$router\"\necho \"$ip\" > {}\n",
            record.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let script = script.to_string_lossy().into_owned();
    let out = ns.run(
        "udhcpc",
        &[
            "-i", "tap0", "-f", "-q", "-n", "-t", "5", "-T", "2", "-s", &script,
        ],
        Duration::from_secs(30),
    );
    assert!(
        out.status.success(),
        "udhcpc: {out:?}\n{}",
        std::fs::read_to_string(dir.join("gvproxy.log")).unwrap_or_default()
    );
    let ping = ns.run(
        "ping",
        &["-c1", "-W2", "192.168.127.1"],
        Duration::from_secs(10),
    );
    assert!(ping.status.success(), "ping the gateway: {ping:?}");
    std::fs::read_to_string(&record).unwrap().trim().to_owned()
}

/// sshd in `ns` (its files made by [`sshd_files`] beforehand, as podman machine makes its
/// key before it starts gvproxy) and the podman API stand-in it reaches; sshd stops on drop.
fn guest_sshd(ns: &NetnsGuard, dir: &Path) -> Background {
    guest_api(&dir.join("podman.sock"));
    let config = dir.join("sshd_config").to_string_lossy().into_owned();
    let log = dir.join("sshd.log").to_string_lossy().into_owned();
    ns.spawn(SSHD, &["-D", "-f", &config, "-E", &log])
}

/// podman's flags after the link: SSH, the API socket forward, the pid and log files.
fn podman_tail(dir: &Path, ssh_port: &str) -> Vec<String> {
    let p = |name: &str| dir.join(name).to_string_lossy().into_owned();
    [
        "-ssh-port",
        ssh_port,
        "-forward-sock",
        &p("podman-machine-default-api.sock"),
        "-forward-dest",
        &p("podman.sock"),
        "-forward-user",
        "root",
        "-forward-identity",
        &p("id"),
        "-pid-file",
        &p("gvproxy.pid"),
        "-log-file",
        &p("gvproxy.log"),
    ]
    .map(str::to_owned)
    .to_vec()
}

/// What every podman link must give: the guest up, the API socket forwarded to the guest's
/// socket, a pid file with the right pid, a log; SIGTERM removes the sockets and the pid file.
fn check_served(served: Served, ns: &NetnsGuard, dir: &Path, link_socket: &Path) {
    assert_eq!(guest_comes_up(ns, dir), "192.168.127.2");
    let _sshd = guest_sshd(ns, dir);
    let api = dir.join("podman-machine-default-api.sock");
    assert_eq!(ask(&api, "GET /_ping"), "guest: GET /_ping");
    let pid = std::fs::read_to_string(dir.join("gvproxy.pid")).unwrap();
    assert_eq!(pid, served.0.id().to_string());
    let log = std::fs::read_to_string(dir.join("gvproxy.log")).unwrap();
    assert!(log.contains("serving"), "{log}");
    assert!(served.terminate().success());
    for gone in [link_socket, &api, &dir.join("gvproxy.pid")] {
        assert!(!gone.exists(), "{} is left behind", gone.display());
    }
}

#[test]
fn podman_machine_qemu_command_line() {
    if !privileged(
        "podman_machine_qemu_command_line",
        &["ip", "udhcpc", "ping", "ssh-keygen", SSHD],
    ) {
        return;
    }
    let ns = NetnsGuard::new("pmqemu");
    let tmp = TempDir::new("pmqemu");
    let dir = tmp.path();
    let qemu = dir.join("qemu-gvproxy.sock");
    sshd_files(dir);
    let port = free_port().to_string();
    let mut args = vec!["-debug".to_owned(), "-mtu".to_owned(), "1500".to_owned()];
    args.extend(podman_tail(dir, &port));
    args.extend([
        "-listen-qemu".to_owned(),
        format!("unix://{}", qemu.display()),
    ]);
    let served = Served(
        Command::new(BIN)
            .args(&args)
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let up = eventually(Duration::from_secs(10), || qemu.exists().then_some(()));
    assert!(up.is_some(), "the QEMU socket never appeared");
    let stream = UnixStream::connect(&qemu).unwrap();
    bridge_stream(guest_tap(&ns), stream.try_clone().unwrap(), stream, true);
    check_served(served, &ns, dir, &qemu);
}

#[test]
fn podman_machine_vfkit_command_line() {
    if !privileged(
        "podman_machine_vfkit_command_line",
        &["ip", "udhcpc", "ping", "ssh-keygen", SSHD],
    ) {
        return;
    }
    let ns = NetnsGuard::new("pmvfkit");
    let tmp = TempDir::new("pmvfkit");
    let dir = tmp.path();
    let vfkit = dir.join("gvproxy.sock");
    sshd_files(dir);
    let port = free_port().to_string();
    let mut args = vec!["-mtu".to_owned(), "1500".to_owned()];
    args.extend(podman_tail(dir, &port));
    args.extend([
        "-listen-vfkit".to_owned(),
        format!("unixgram://{}", vfkit.display()),
    ]);
    let served = Served(
        Command::new(BIN)
            .args(&args)
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let up = eventually(Duration::from_secs(10), || vfkit.exists().then_some(()));
    assert!(up.is_some(), "the vfkit socket never appeared");
    bridge_vfkit(guest_tap(&ns), &vfkit, &dir.join("vfkit-client.sock"));
    check_served(served, &ns, dir, &vfkit);
}

#[test]
fn wsl_user_mode_networking_command_line() {
    if !privileged(
        "wsl_user_mode_networking_command_line",
        &["ip", "udhcpc", "ping"],
    ) {
        return;
    }
    let ns = NetnsGuard::new("pmwsl");
    let tmp = TempDir::new("pmwsl");
    let mut child = Command::new(BIN)
        .args(["-listen-stdio", "accept", "-ssh-port", "-1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdin = Arc::new(Mutex::new(child.stdin.take()));
    let stdout: ChildStdout = child.stdout.take().unwrap();
    let mut served = Served(child);
    bridge_stream(guest_tap(&ns), Pipe(stdin.clone()), stdout, false);
    assert_eq!(guest_comes_up(&ns, tmp.path()), "192.168.127.2");
    // gvforwarder going away closes the pipe: host-switch ends.
    stdin.lock().unwrap().take();
    let status = eventually(Duration::from_secs(10), || served.0.try_wait().unwrap());
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}

/// A child's standard input that the test can close while a bridge writes to it.
struct Pipe(Arc<Mutex<Option<ChildStdin>>>);

impl Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.0.lock().unwrap().as_mut() {
            Some(stdin) => stdin.write(buf),
            None => Err(std::io::ErrorKind::BrokenPipe.into()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self.0.lock().unwrap().as_mut() {
            Some(stdin) => stdin.flush(),
            None => Ok(()),
        }
    }
}
