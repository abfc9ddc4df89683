//! host-switch as a drop-in for gvproxy, seen by a caller of the binary without root: what a
//! restart after SIGTERM finds, the control API's extra views, and the flags podman machine
//! and gvproxy's users pass. Traffic stays on unix sockets and loopback.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod support;

use support::{TempDir, api_request};

const BIN: &str = env!("CARGO_BIN_EXE_host-switch");

/// A running host-switch, killed on drop if the test did not stop it.
struct Running {
    child: Child,
}

impl Running {
    fn start(args: &[&str]) -> Running {
        let child = Command::new(BIN)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Running { child }
    }

    /// SIGTERM, then the exit status and standard error.
    fn terminate(self) -> (std::process::ExitStatus, String) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill takes integers; `pid` is our live child.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        self.wait(Duration::from_secs(10))
    }

    /// Waits at most `timeout` for the exit; the status and standard error.
    fn wait(mut self, timeout: Duration) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "no exit within {timeout:?}");
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stderr = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut stderr);
        }
        (status, stderr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

fn unix_url(p: &Path) -> String {
    format!("unix://{}", p.display())
}

/// Starts host-switch serving its API on `dir/api.sock` with `extra` flags.
fn serve_api(dir: &TempDir, extra: &[&str]) -> (Running, PathBuf) {
    let api = dir.path().join("api.sock");
    let url = unix_url(&api);
    let mut args = vec!["-listen", url.as_str(), "-ssh-port", "-1"];
    args.extend_from_slice(extra);
    let running = Running::start(&args);
    wait_for(&api);
    (running, api)
}

#[test]
fn unix_forwards_are_removed_at_exit_and_stale_ones_reclaimed() {
    let dir = TempDir::new("dropin-unix");
    let fwd = dir.path().join("fwd.sock");
    let expose = format!(
        r#"{{"local":"{}","remote":"192.168.127.2:22","protocol":"unix"}}"#,
        unix_url(&fwd)
    );
    let (running, api) = serve_api(&dir, &[]);
    assert_eq!(
        api_request(&api, "POST", "/services/forwarder/expose", &expose),
        (200, String::new())
    );
    assert!(fwd.exists());
    let (status, stderr) = running.terminate();
    assert!(status.success(), "{stderr}");
    assert!(
        !fwd.exists(),
        "the forward's socket file is removed at exit"
    );

    // A socket file left by a process that did not exit cleanly is replaced.
    drop(std::os::unix::net::UnixListener::bind(&fwd).unwrap());
    assert!(fwd.exists());
    let (_running, api) = serve_api(&dir, &[]);
    let (status, body) = api_request(&api, "POST", "/services/forwarder/expose", &expose);
    assert_eq!(status, 200, "{body}");
    // One with a listener is not.
    let busy = dir.path().join("busy.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&busy).unwrap();
    let busy_expose = format!(
        r#"{{"local":"{}","remote":"192.168.127.2:22","protocol":"unix"}}"#,
        unix_url(&busy)
    );
    let (status, body) = api_request(&api, "POST", "/services/forwarder/expose", &busy_expose);
    assert_eq!(status, 500, "{body}");
}

/// Needs root and does nothing else: [`a_skipped_test_is_listed_by_name`] runs it as nobody.
#[test]
fn root_probe_for_the_skip_list() {
    // Skips (and is listed) without root; fails instead under CI=true.
    let _ = support::privileged("root_probe_for_the_skip_list", &[]);
}

#[test]
fn a_skipped_test_is_listed_by_name() {
    if !support::privileged("a_skipped_test_is_listed_by_name", &["setpriv"]) {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("dropin-skips");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let list = dir.path().join("skipped.txt");
    let probe = |ci: Option<&str>| {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "root_probe_for_the_skip_list",
                "--test-threads=1",
            ])
            .env("HOST_SWITCH_SKIPS", &list)
            .env_remove("CI")
            .current_dir(dir.path());
        if let Some(ci) = ci {
            cmd.env("CI", ci);
        }
        cmd.output().unwrap()
    };
    let out = probe(None);
    assert!(out.status.success(), "{out:?}");
    let listed = std::fs::read_to_string(&list).unwrap_or_default();
    assert_eq!(
        listed, "root_probe_for_the_skip_list: not running as root\n",
        "the skip is listed by name"
    );
    // Under CI=true the same test fails instead of skipping.
    let out = probe(Some("true"));
    assert!(!out.status.success(), "{out:?}");
}
