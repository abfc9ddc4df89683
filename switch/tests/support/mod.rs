//! Test support: network namespaces that clean up after themselves, a minimal TAP link between
//! a TAP device and a switch port, and commands run inside a namespace with a time limit.
//!
//! Tests that need root (namespaces, TAP devices) call [`privileged`] first: without root they
//! skip with a loud message, except under `CI=true`, where they fail.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
pub(crate) mod dnsmasq;
pub(crate) mod served;
#[path = "../skip/mod.rs"]
pub(crate) mod skip;
pub(crate) mod sshd;
pub(crate) mod stream;

use switch::netns::Netns;
use switch::port::Port;
use switch::tap::{Tap, TapConfig, TapOptions};

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Whether this test can run: root, and every tool in `tools` on the PATH.
pub(crate) fn privileged(test: &str, tools: &[&str]) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let missing: Vec<&str> = tools.iter().copied().filter(|t| !on_path(t)).collect();
    if root && missing.is_empty() {
        return true;
    }
    let why = if root {
        format!("missing tools {missing:?} (see scripts/debian-packages)")
    } else {
        "not running as root".to_owned()
    };
    assert!(!ci(), "{test}: cannot run under CI=true: {why}");
    skip::skipped(test, &why);
    false
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
}

/// A named network namespace (`ip netns add`), deleted on drop.
pub(crate) struct NetnsGuard {
    pub(crate) name: String,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl NetnsGuard {
    pub(crate) fn new(tag: &str) -> NetnsGuard {
        let name = format!(
            "hs-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let status = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("run ip netns add");
        assert!(status.success(), "ip netns add {name}");
        NetnsGuard { name }
    }

    pub(crate) fn netns(&self) -> Netns {
        Netns::Path(PathBuf::from(format!("/run/netns/{}", self.name)))
    }

    /// Runs `cmd args` inside the namespace, killed after `timeout`.
    pub(crate) fn run(&self, cmd: &str, args: &[&str], timeout: Duration) -> Output {
        let mut all = vec!["netns", "exec", self.name.as_str(), cmd];
        all.extend_from_slice(args);
        run_with_timeout(Command::new("ip").args(&all), timeout)
    }

    /// Starts `cmd args` inside the namespace in the background.
    pub(crate) fn spawn(&self, cmd: &str, args: &[&str]) -> Background {
        let mut all = vec!["netns", "exec", self.name.as_str(), cmd];
        all.extend_from_slice(args);
        let child = Command::new("ip")
            .args(&all)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn in namespace");
        Background { child: Some(child) }
    }

    /// `ip ...` inside the namespace; panics on failure.
    pub(crate) fn ip(&self, args: &[&str]) -> String {
        let out = self.run("ip", args, Duration::from_secs(10));
        assert!(out.status.success(), "ip {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .status();
    }
}

/// A background process, killed on drop.
pub(crate) struct Background {
    child: Option<std::process::Child>,
}

impl Background {
    /// Waits at most `timeout` for it to exit; kills it otherwise.
    pub(crate) fn wait(mut self, timeout: Duration) -> Output {
        let child = self.child.take().expect("child");
        wait_child(child, timeout)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn wait_child(mut child: std::process::Child, timeout: Duration) -> Output {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                break;
            }
        }
    }
    child.wait_with_output().expect("collect output")
}

pub(crate) fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_child(child, timeout)
}

/// Opens `tap0` in `ns`, configured if `configure` says so.
pub(crate) fn open_tap(ns: &NetnsGuard, configure: Option<TapConfig>) -> Tap {
    Tap::open_with(
        "tap0",
        &ns.netns(),
        &TapOptions {
            multi_queue: false,
            offload: false,
            configure,
        },
    )
    .expect("open TAP")
}

/// Two threads moving frames between a TAP device and a switch port. Stops on drop.
pub(crate) struct TapLink {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl TapLink {
    pub(crate) fn start(tap: Tap, port: Port) -> TapLink {
        let stop = Arc::new(AtomicBool::new(false));
        let port = Arc::new(port);
        let writer_tap = tap.try_clone().expect("clone TAP");
        let (rx_stop, rx_port) = (stop.clone(), port.clone());
        let reader = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536 + 14];
            while !rx_stop.load(Ordering::Relaxed) {
                match tap.wait_readable(Some(Duration::from_millis(50))) {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(_) => return,
                }
                match tap.read_frame(&mut buf) {
                    Ok(n) => {
                        rx_port.send(Bytes::copy_from_slice(&buf[..n]));
                    }
                    Err(_) => return,
                }
            }
        });
        let tx_stop = stop.clone();
        let writer = std::thread::spawn(move || {
            while !tx_stop.load(Ordering::Relaxed) {
                match port.egress().recv_timeout(Duration::from_millis(50)) {
                    Ok(frame) => {
                        let _ = writer_tap.write_frame(&frame);
                    }
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
                    Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
                }
            }
        });
        TapLink {
            stop,
            threads: vec![reader, writer],
        }
    }
}

impl Drop for TapLink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A fresh temporary directory, removed on drop.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "hs-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    /// Writes an executable script.
    pub(crate) fn script(&self, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.0.join(name);
        std::fs::write(&path, body).expect("write script");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .expect("chmod script");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Polls `f` until it returns `Some`, at most `timeout`.
pub(crate) fn eventually<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One HTTP/1.1 request to a control API on a unix socket; the status and the body. The server
/// may close the connection early (a refused request): whatever answer arrived counts.
pub(crate) fn api_request(socket: &Path, method: &str, path: &str, body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: api\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(body.as_bytes());
    let mut response = Vec::new();
    let _ = s.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// A TCP echo server on 127.0.0.1, one thread per connection; its port.
pub(crate) fn echo_server() -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = conn.read(&mut buf) {
                    if n == 0 || conn.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}
