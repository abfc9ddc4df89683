//! host-switch as a drop-in, with the kernel as guest: a TAP in a namespace this test creates
//! (`--netns --tap`), host-side peers on loopback. Covers static leases and the address a
//! configured TAP takes.
//!
//! Needs root (namespaces, TAP); skips loudly without it unless CI=true. Traffic stays on
//! loopback and inside the namespace.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::{NetnsGuard, TempDir, api_request, eventually, privileged};

const BIN: &str = env!("CARGO_BIN_EXE_host-switch");

/// host-switch serving `ns` through tap0, its API on `dir/api.sock`. Killed on drop.
struct Serve {
    child: Child,
    api: PathBuf,
}

impl Serve {
    fn start(ns: &NetnsGuard, dir: &TempDir, extra: &[&str]) -> Serve {
        let api = dir.path().join("api.sock");
        let netns = format!("/run/netns/{}", ns.name);
        let services = format!("unix://{}", api.display());
        let mut args = vec![
            "--netns",
            &netns,
            "--tap",
            "tap0",
            "--ssh-port",
            "-1",
            "--services",
            &services,
        ];
        args.extend_from_slice(extra);
        let child = Command::new(BIN)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let serve = Serve { child, api };
        eventually(Duration::from_secs(10), || {
            (serve.api.exists() && ns.ip(&["link"]).contains("tap0")).then_some(())
        })
        .expect("host-switch up");
        serve
    }

    fn leases(&self) -> serde_json::Value {
        let (status, body) = api_request(&self.api, "GET", "/services/dhcp/leases", "");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs udhcpc on tap0 in `ns` with a script of this test's own; the address it was given.
fn udhcpc(ns: &NetnsGuard, dir: &TempDir) -> String {
    let record = dir.path().join("bound");
    let script = dir.script(
        "udhcpc.sh",
        &format!(
            "#!/bin/sh\n[ \"$1\" = bound ] || exit 0\necho \"$ip\" > {}\n",
            record.display()
        ),
    );
    let script = script.to_string_lossy().into_owned();
    let out = ns.run(
        "udhcpc",
        &[
            "-i", "tap0", "-f", "-q", "-n", "-t", "5", "-T", "2", "-s", &script,
        ],
        Duration::from_secs(30),
    );
    assert!(out.status.success(), "udhcpc: {out:?}");
    std::fs::read_to_string(&record).unwrap().trim().to_owned()
}

#[test]
fn a_static_lease_from_the_command_line_is_what_dhcp_gives() {
    if !privileged(
        "a_static_lease_from_the_command_line_is_what_dhcp_gives",
        &["ip", "udhcpc"],
    ) {
        return;
    }
    let ns = NetnsGuard::new("lease");
    let dir = TempDir::new("lease");
    let serve = Serve::start(
        &ns,
        &dir,
        &["--static-lease", "02:00:00:00:00:07=192.168.127.7"],
    );
    ns.ip(&["link", "set", "tap0", "address", "02:00:00:00:00:07"]);
    ns.ip(&["link", "set", "tap0", "up"]);
    assert_eq!(udhcpc(&ns, &dir), "192.168.127.7");
    let leases = serve.leases();
    assert_eq!(leases["192.168.127.7"], "02:00:00:00:00:07", "{leases}");
    assert_eq!(leases["192.168.127.2"], "5a:94:ef:e4:0c:ee", "{leases}");
}

#[test]
fn a_configured_tap_never_shares_an_address_with_a_lease() {
    if !privileged(
        "a_configured_tap_never_shares_an_address_with_a_lease",
        &["ip"],
    ) {
        return;
    }
    // --configure with a MAC other than the default guest's: before, it took 192.168.127.2,
    // the default guest's lease, so a VM with that MAC would share the address.
    let ns = NetnsGuard::new("cfg");
    let dir = TempDir::new("cfg");
    let serve = Serve::start(&ns, &dir, &["--configure", "--mac", "02:00:00:00:00:09"]);
    let addr = eventually(Duration::from_secs(5), || {
        let a = ns.ip(&["-4", "-br", "addr", "show", "tap0"]);
        a.contains("192.168.127.").then_some(a)
    })
    .unwrap();
    assert!(addr.contains("192.168.127.3/24"), "{addr}");
    let leases = serve.leases();
    assert_eq!(leases["192.168.127.3"], "02:00:00:00:00:09", "{leases}");
    assert_eq!(leases["192.168.127.2"], "5a:94:ef:e4:0c:ee", "{leases}");
}
