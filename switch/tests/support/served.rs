//! The `host-switch` binary serving a TAP in a guest namespace this test creates
//! (`--tap tap0 --netns ... --configure`), with its control API on a unix socket and its log
//! in a file; optionally run inside a sandbox namespace whose only interface is loopback (so
//! whatever a hostile guest makes it connect to cannot leave the machine) and under a
//! descriptor limit (`prlimit --nofile`).
//!
//! Host-side peers of a sandboxed binary live on the sandbox's loopback: [`Served::in_host`]
//! creates sockets there. The guest's side runs as python3 scripts or tools inside the guest
//! namespace ([`Served::python`], `served.guest.run(...)`).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use switch::netns::Netns;

use super::{NetnsGuard, TempDir, api_request, eventually};

const BIN: &str = env!("CARGO_BIN_EXE_host-switch");

/// How to start the binary.
#[derive(Debug, Default, Clone)]
pub(crate) struct Options {
    /// Run it inside a fresh namespace that has only `lo` (see also [`Served::start_in`]).
    pub(crate) sandbox: bool,
    /// `prlimit --nofile=SOFT:HARD` around it.
    pub(crate) nofile: Option<(u64, u64)>,
}

/// The running binary and its namespaces. Killed and cleaned up on drop.
pub(crate) struct Served {
    child: Child,
    pub(crate) guest: NetnsGuard,
    pub(crate) sandbox: Option<NetnsGuard>,
    pub(crate) dir: TempDir,
}

impl Served {
    pub(crate) fn start(tag: &str, args: &[&str], options: &Options) -> Served {
        let sandbox = options.sandbox.then(|| {
            let ns = NetnsGuard::new(&format!("{tag}-sbx"));
            ns.ip(&["link", "set", "lo", "up"]);
            ns
        });
        Served::launch(tag, sandbox, args, options)
    }

    /// [`Served::start`] inside `sandbox`, a namespace the caller prepared (its loopback up,
    /// nothing else in it but what the caller started there).
    pub(crate) fn start_in(
        tag: &str,
        sandbox: NetnsGuard,
        args: &[&str],
        options: &Options,
    ) -> Served {
        Served::launch(tag, Some(sandbox), args, options)
    }

    fn launch(tag: &str, sandbox: Option<NetnsGuard>, args: &[&str], options: &Options) -> Served {
        let guest = NetnsGuard::new(tag);
        let dir = TempDir::new(tag);
        let api = dir.path().join("api.sock");
        let log = dir.path().join("host-switch.log");
        let mut cmd = match &sandbox {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &ns.name]);
                c
            }
            None => Command::new("env"),
        };
        if let Some((soft, hard)) = options.nofile {
            cmd.args(["prlimit", &format!("--nofile={soft}:{hard}"), "--"]);
        }
        cmd.arg(BIN)
            .args(["--tap", "tap0", "--configure"])
            .args(["--netns", &format!("/run/netns/{}", guest.name)])
            .args(["--services", &format!("unix://{}", api.display())])
            .args(["--log-file", &log.display().to_string()])
            .args(["-ssh-port", "-1"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let child = cmd.spawn().unwrap();
        let served = Served {
            child,
            guest,
            sandbox,
            dir,
        };
        eventually(Duration::from_secs(20), || api.exists().then_some(()))
            .unwrap_or_else(|| panic!("the API socket never appeared; log:\n{}", served.log()));
        eventually(Duration::from_secs(10), || {
            served
                .guest
                .ip(&["-4", "addr", "show", "dev", "tap0"])
                .contains("192.168.127.2/24")
                .then_some(())
        })
        .expect("the TAP was never configured");
        // `ip netns exec` and `prlimit` exec the binary: the child's pid is host-switch's.
        let comm = std::fs::read_to_string(format!("/proc/{}/comm", served.pid())).unwrap();
        assert_eq!(comm.trim(), "host-switch");
        served
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn api(&self) -> PathBuf {
        self.dir.path().join("api.sock")
    }

    /// The binary's log so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("host-switch.log")).unwrap_or_default()
    }

    pub(crate) fn stats(&self) -> Value {
        let (status, body) = api_request(&self.api(), "GET", "/stats", "");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// `/stats`' `limits.<name>`.
    pub(crate) fn limit(&self, name: &str) -> Value {
        self.stats()["limits"][name].clone()
    }

    /// Runs `f` in the namespace host-switch's host sockets live in (the sandbox, or this
    /// process's own): sockets it creates stay there.
    pub(crate) fn in_host<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        match &self.sandbox {
            Some(ns) => ns.netns().run(f).unwrap(),
            None => Netns::Current.run(f).unwrap(),
        }
    }

    /// Descriptors the binary holds now.
    pub(crate) fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Its resident memory, in KiB.
    pub(crate) fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// CPU time it has used (user + system), in clock ticks.
    pub(crate) fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        // The fields after the command name, which ends with the last ')'.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of proc(5); `rest` starts at field 3.
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    }

    /// Its soft and hard `RLIMIT_NOFILE`, from `/proc/PID/limits`.
    pub(crate) fn nofile(&self) -> (u64, u64) {
        let limits = std::fs::read_to_string(format!("/proc/{}/limits", self.pid())).unwrap();
        let line = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .unwrap();
        let nums: Vec<u64> = line
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        (nums[0], nums[1])
    }

    /// Writes `body` as a python3 script and runs it in the guest namespace with `args`,
    /// stdin and stdout piped.
    pub(crate) fn python(&self, name: &str, body: &str, args: &[&str]) -> Script {
        let path = self.dir.path().join(name);
        std::fs::write(&path, body).unwrap();
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.guest.name, "python3"])
            .arg(&path)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Script {
            child,
            stdin,
            stdout,
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A python3 script in the guest namespace; killed on drop.
pub(crate) struct Script {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Script {
    /// The next line it prints, as JSON. The scripts bound their own waits with socket
    /// timeouts; the script is killed on drop.
    pub(crate) fn line(&mut self) -> Value {
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
    }

    /// Tells it to go on (a line on its stdin).
    pub(crate) fn go(&mut self) {
        if let Some(stdin) = self.stdin.as_mut() {
            let _ = stdin.write_all(b"go\n");
            let _ = stdin.flush();
        }
    }

    /// Tells it to go on, then waits for its last line and its exit (30 s at most).
    pub(crate) fn finish(&mut self) -> Value {
        self.go();
        drop(self.stdin.take());
        let mut last = Value::Null;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut line = String::new();
            if self.stdout.read_line(&mut line).unwrap_or(0) == 0 || Instant::now() > deadline {
                break;
            }
            last = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        }
        let _ = self.child.wait();
        last
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A number in a `/stats` answer.
pub(crate) fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}
