//! What the harnesses (`compare`, `soak`) share: processes we start (killed by PID, never by
//! name), named network namespaces we create (deleted on drop), /proc readings, and entering a
//! namespace.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A process this harness started. Dropping it sends SIGTERM to its PID, waits a little, then
/// SIGKILL. Never signals anything by name.
#[derive(Debug)]
pub struct Proc {
    pub name: String,
    child: Child,
}

impl Proc {
    /// Starts `cmd` with stdin closed and stdout/stderr appended to `log`.
    pub fn spawn(name: &str, cmd: &mut Command, log: &Path) -> Result<Proc, String> {
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        Ok(Proc {
            name: name.to_owned(),
            child,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some(status)` once the process has exited.
    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(e) => Some(e.to_string()),
        }
    }

    fn signal(&self, sig: i32) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) on the PID of our own child, which we have not reaped yet.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.exited().is_some() {
            return;
        }
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if self.exited().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "{}: {} (pid {}) ignored SIGTERM; SIGKILL",
            program(),
            self.name,
            self.pid()
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// This program's name (for messages): the file name of argv\[0\].
pub fn program() -> String {
    std::env::args()
        .next()
        .as_deref()
        .map(Path::new)
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "benches".into())
}

/// A named network namespace (`ip netns add`) we created, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
    /// `/run/netns/NAME`, for nsenter and setns.
    pub path: PathBuf,
}

impl Netns {
    /// Creates the namespace `name` (it must not exist yet).
    pub fn create(name: &str) -> Result<Netns, String> {
        run(
            Command::new("ip").args(["netns", "add", name]),
            Duration::from_secs(5),
        )?;
        Ok(Netns {
            path: PathBuf::from("/run/netns").join(name),
            name: name.to_owned(),
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = run(
            Command::new("ip").args(["netns", "delete", &self.name]),
            Duration::from_secs(5),
        ) {
            eprintln!("{}: cannot delete netns {}: {e}", program(), self.name);
        }
    }
}

/// Runs `cmd` to completion with a timeout; returns stdout, or an error with stderr's tail.
pub fn run(cmd: &mut Command, timeout: Duration) -> Result<String, String> {
    let what = format!("{:?}", cmd);
    let (status, out, err) = output(cmd, timeout)?;
    if status.success() {
        Ok(out)
    } else {
        let tail: String = format!("{out}{err}")
            .lines()
            .rev()
            .take(4)
            .collect::<Vec<_>>()
            .join(" | ");
        Err(format!("{what}: {status}: {tail}"))
    }
}

/// Runs `cmd` to completion with a timeout (killed past it); returns its exit status, stdout
/// and stderr whatever the status.
pub fn output(
    cmd: &mut Command,
    timeout: Duration,
) -> Result<(std::process::ExitStatus, String, String), String> {
    let what = format!("{:?}", cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{what}: {e}"))?;
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out_thread = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(o) = stdout.as_mut() {
            let _ = std::io::Read::read_to_string(o, &mut s);
        }
        s
    });
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(o) = stderr.as_mut() {
            let _ = std::io::Read::read_to_string(o, &mut s);
        }
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{what}: timed out after {timeout:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("{what}: {e}")),
        }
    };
    let out = out_thread.join().unwrap_or_default();
    let err = err_thread.join().unwrap_or_default();
    Ok((status, out, err))
}

/// The program's path on PATH, if it is there.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// A command run inside the network namespace `ns` (a namespace file; nsenter, network only).
pub fn in_netns(ns: &Path, program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net={}", ns.display())).arg(program);
    cmd
}

/// One reading of a process's accounting.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// utime + stime, seconds, all threads.
    pub cpu: f64,
}

pub fn usage(pid: u32) -> Result<Usage, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or("bad /proc/PID/stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the command name, field 3 (state) is index 0: utime (14) and stime (15).
    let ticks = |i: usize| -> Result<f64, String> {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .map(|v| v as f64)
            .ok_or_else(|| "bad /proc/PID/stat".to_owned())
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(Usage {
        cpu: (ticks(11)? + ticks(12)?) / hz,
    })
}

/// A `/proc/PID/status` field in KiB (VmRSS, VmHWM).
pub fn status_kib(pid: u32, field: &str) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("no {field} in /proc/{pid}/status"))
}

/// Resets VmHWM to the current RSS (clear_refs 5, Linux 4.0+).
pub fn reset_peak(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

/// Raises the open-file limit (inherited by the peers we start) for the idle-connection runs:
/// to `n`, or as far as the hard limit allows without CAP_SYS_RESOURCE.
pub fn raise_nofile(n: u64, quiet: bool) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        let want = libc::rlimit {
            rlim_cur: n,
            rlim_max: n.max(lim.rlim_max),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &want) != 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            if quiet {
                return;
            }
            eprintln!(
                "{}: open files limited to {} (hard limit); 10,000 idle connections need \
                 over 10,000 in the peer",
                program(),
                lim.rlim_max
            );
        }
    }
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Moves the calling thread into the network namespace file `ns`. Only this thread moves.
pub fn enter_netns(ns: &Path) -> Result<(), String> {
    let ns = File::open(ns).map_err(|e| format!("{}: {e}", ns.display()))?;
    // SAFETY: setns on a namespace file descriptor we hold open; affects this thread only.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(format!("setns: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// A free TCP port on 127.0.0.1 (bound then released; the servers bind it right after).
pub fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let udp_ok = |p: u16| std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok();
    let port = l.local_addr().map_err(|e| e.to_string())?.port();
    if udp_ok(port) { Ok(port) } else { free_port() }
}

/// Waits until `probe` succeeds, or gives up after `timeout` with its last error.
pub fn wait_for(
    timeout: Duration,
    mut probe: impl FnMut() -> Result<(), String>,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        match probe() {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}
