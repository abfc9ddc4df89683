//! Helpers of the guest agent tests: the host-switch binary on a unix socket, the agent in a
//! namespace, servers in the guest (python3), a host HTTP server, free loopback ports. Every
//! process is killed by its own PID on drop.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::support::{NetnsGuard, TempDir, eventually, run_with_timeout};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_host-switch");

/// Something to run commands in: a namespace this test made, or one it only names.
pub(crate) trait InNs {
    fn name(&self) -> &str;

    fn run(&self, cmd: &str, args: &[&str], timeout: Duration) -> Output {
        let mut all = vec!["netns", "exec", self.name(), cmd];
        all.extend_from_slice(args);
        run_with_timeout(Command::new("ip").args(&all), timeout)
    }

    fn ip(&self, args: &[&str]) -> String {
        let out = self.run("ip", args, Duration::from_secs(10));
        assert!(out.status.success(), "ip {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl InNs for NetnsGuard {
    fn name(&self) -> &str {
        &self.name
    }
}

/// A namespace made by the program under test, named under /run/netns; not deleted here.
pub(crate) struct Named(pub(crate) String);

impl InNs for Named {
    fn name(&self) -> &str {
        &self.0
    }
}

/// SIGTERM, then SIGKILL if it lingers; reaped either way.
fn terminate(child: &mut Child) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill takes integers; `pid` is our own unreaped child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The host-switch binary serving `-listen unix://SOCK`, its log in the test's directory.
pub(crate) struct HostSwitch {
    child: Option<Child>,
    log: PathBuf,
}

impl HostSwitch {
    /// Starts it with `extra` flags; without an `-ssh-port` among them, with none (the default
    /// 2222 is a fixed host port other tests may hold).
    pub(crate) fn start(dir: &TempDir, sock: &Path, extra: &[&str]) -> HostSwitch {
        let log = dir.path().join(format!("host-switch-{}.log", unique()));
        let file = std::fs::File::create(&log).unwrap();
        let ssh: &[&str] = if extra.iter().any(|a| a.contains("ssh-port")) {
            &[]
        } else {
            &["--ssh-port", "-1"]
        };
        let child = Command::new(BIN)
            .args(["-listen", &format!("unix://{}", sock.display())])
            .args(ssh)
            .args(extra)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        let mut hs = HostSwitch {
            child: Some(child),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sock.exists() {
            if let Some(c) = hs.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!("host-switch exited ({status}):\n{}", hs.log());
            }
            assert!(Instant::now() < deadline, "no socket:\n{}", hs.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        hs
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub(crate) fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            terminate(&mut c);
        }
    }
}

impl Drop for HostSwitch {
    fn drop(&mut self) {
        self.stop();
    }
}

fn unique() -> u64 {
    use std::sync::atomic::AtomicU64;
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// `host-switch guest ARGS` inside a namespace, logging at debug level to a file.
pub(crate) struct Agent {
    child: Option<Child>,
    log: PathBuf,
}

impl Agent {
    pub(crate) fn start(ns: &impl InNs, dir: &TempDir, args: &[&str]) -> Agent {
        Agent::start_with(&["ip", "netns", "exec", ns.name()], dir, args)
    }

    /// As [`Agent::start`], entering only the network namespace (`nsenter --net`), so that
    /// mounts the agent makes (a namespace bound under /run/netns) are everyone's, as in a
    /// VM's own root namespace; `ip netns exec` would give it a mount namespace of its own.
    pub(crate) fn start_net_only(ns: &impl InNs, dir: &TempDir, args: &[&str]) -> Agent {
        let net = format!("--net=/run/netns/{}", ns.name());
        Agent::start_with(&["nsenter", &net], dir, args)
    }

    fn start_with(prefix: &[&str], dir: &TempDir, args: &[&str]) -> Agent {
        let log = dir.path().join(format!("guest-{}.log", unique()));
        let file = std::fs::File::create(&log).unwrap();
        let (program, rest) = prefix.split_first().unwrap();
        let child = Command::new(program)
            .args(rest)
            .args([BIN, "guest", "--debug"])
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        Agent {
            child: Some(child),
            log,
        }
    }

    pub(crate) fn log(&mut self) -> String {
        let mut text = std::fs::read_to_string(&self.log).unwrap_or_default();
        if let Some(c) = self.child.as_mut()
            && let Ok(Some(status)) = c.try_wait()
        {
            text.push_str(&format!("\n(exited: {status})"));
        }
        text
    }

    pub(crate) fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            terminate(&mut c);
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits for `ns`'s eth0 to carry `want` (e.g. "inet 192.168.127.2/24").
pub(crate) fn await_address(ns: &impl InNs, dev: &str, want: &str, guest: &mut Agent) {
    let found = eventually(Duration::from_secs(20), || {
        let out = ns.run(
            "ip",
            &["-4", "addr", "show", "dev", dev],
            Duration::from_secs(5),
        );
        String::from_utf8_lossy(&out.stdout)
            .contains(want)
            .then_some(())
    });
    assert!(found.is_some(), "{dev} never got {want}:\n{}", guest.log());
}

/// Servers in a namespace: each of `specs` (`tcp4`, `tcp6`, `udp4`, `udp6`, port) answers
/// with its kind — TCP sends it and closes, UDP echoes with it in front. IPv6 sockets bind
/// `::` taking IPv4 too, as most servers do.
pub(crate) const SERVERS: &str = r#"
import socket, sys, threading
def tcp(kind, port):
    fam = socket.AF_INET if kind == "tcp4" else socket.AF_INET6
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if fam == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("0.0.0.0" if fam == socket.AF_INET else "::", port))
    s.listen(64)
    def serve():
        while True:
            c, _ = s.accept()
            try:
                c.sendall(kind.encode())
            finally:
                c.close()
    return serve
def udp(kind, port):
    fam = socket.AF_INET if kind == "udp4" else socket.AF_INET6
    s = socket.socket(fam, socket.SOCK_DGRAM)
    if fam == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("0.0.0.0" if fam == socket.AF_INET else "::", port))
    def serve():
        while True:
            data, peer = s.recvfrom(2048)
            s.sendto(kind.encode() + data, peer)
    return serve
loops = []
for spec in sys.argv[1:]:
    kind, port = spec.split(":")
    loops.append((tcp if kind.startswith("tcp") else udp)(kind, int(port)))
for f in loops:
    threading.Thread(target=f, daemon=True).start()
print("READY", flush=True)
sys.stdin.read()
"#;

pub(crate) struct GuestServers {
    child: Option<Child>,
}

impl GuestServers {
    pub(crate) fn start(ns: &impl InNs, specs: &[(&str, u16)]) -> GuestServers {
        let specs: Vec<String> = specs.iter().map(|(k, p)| format!("{k}:{p}")).collect();
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns.name(), "python3", "-c", SERVERS])
            .args(&specs)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = [0u8; 6];
        child
            .stdout
            .as_mut()
            .unwrap()
            .read_exact(&mut line)
            .unwrap();
        assert_eq!(&line, b"READY\n", "the guest servers did not start");
        GuestServers { child: Some(child) }
    }

    /// Ends the servers (their sockets close with the process).
    pub(crate) fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for GuestServers {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port free on the host's loopback for TCP and UDP, IPv4 and IPv6, right now.
pub(crate) fn free_port() -> u16 {
    loop {
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        let free = TcpListener::bind(("127.0.0.1", port)).is_ok()
            && TcpListener::bind(("::1", port)).is_ok()
            && UdpSocket::bind(("127.0.0.1", port)).is_ok()
            && UdpSocket::bind(("::1", port)).is_ok();
        if free {
            return port;
        }
    }
}

/// An HTTP server on the host's 127.0.0.1 answering every request with `body`; stops on drop.
pub(crate) fn http_server(body: &'static str) -> (u16, HttpServer) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let thread = std::thread::spawn(move || {
        while !s.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((mut c, _)) => {
                    let _ = c.set_nonblocking(false);
                    let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
                    let mut buf = [0u8; 4096];
                    let _ = c.read(&mut buf);
                    let _ = write!(
                        c,
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    (
        port,
        HttpServer {
            stop,
            thread: Some(thread),
        },
    )
}

pub(crate) struct HttpServer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
