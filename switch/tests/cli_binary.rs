//! The `host-switch` binary's command line, as a caller sees it: exit statuses and messages.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

fn host_switch(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_host-switch"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn unsupported_gvproxy_flags_are_refused_by_name() {
    for (args, flag) in [
        (&["--notification", "unix:///tmp/x"][..], "-notification"),
        (&["-notification=unix:///tmp/x"][..], "-notification"),
    ] {
        let out = host_switch(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(flag) && stderr.contains("not supported"),
            "{stderr}"
        );
    }
}

#[test]
fn version_with_one_dash() {
    let out = host_switch(&["-version"]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("host-switch "), "{stdout}");
}

#[test]
fn unknown_flags_and_nothing_to_serve_fail() {
    let out = host_switch(&["-no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
    let out = host_switch(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to serve"));
    let out = host_switch(&["-listen", "udp://1.2.3.4:5"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_fatal_error_is_told_once_and_an_exposed_listener_is_warned_about() {
    // The first listener starts (on a kernel-chosen port of the wildcard address, which is
    // warned about), the second cannot: the process exits with the error, said once.
    let out = host_switch(&[
        "-ssh-port",
        "-1",
        "-listen",
        "tcp://0.0.0.0:0",
        "-listen-qemu",
        "udp://127.0.0.1:9",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("udp://127.0.0.1:9").count(), 1, "{stderr}");
    assert!(
        stderr.contains("non-loopback TCP address") && stderr.contains("tcp://0.0.0.0:0"),
        "{stderr}"
    );
    // A loopback listener is not warned about.
    let out = host_switch(&[
        "-ssh-port",
        "-1",
        "-listen",
        "tcp://127.0.0.1:0",
        "-listen-qemu",
        "udp://127.0.0.1:9",
    ]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("non-loopback"));
}

#[test]
fn an_mtu_outside_what_links_carry_is_refused() {
    for mtu in ["1000", "65522"] {
        let out = host_switch(&["-mtu", mtu, "-listen-qemu", "unix:///nonexistent/q.sock"]);
        assert_eq!(out.status.code(), Some(2), "{mtu}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("1280..=65521"), "{stderr}");
    }
}

#[test]
fn conflicting_static_leases_are_refused() {
    let out = host_switch(&[
        "--static-lease",
        "02:00:00:00:00:01=192.168.127.9",
        "-static-lease",
        "02:00:00:00:00:02=192.168.127.9",
        "-listen-qemu",
        "unix:///nonexistent/q.sock",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("02:00:00:00:00:01")
            && stderr.contains("02:00:00:00:00:02")
            && stderr.contains("192.168.127.9"),
        "{stderr}"
    );
    let out = host_switch(&[
        "--static-lease",
        "02:00:00:00:00:01=192.168.127.1",
        "-listen-qemu",
        "unix:///nonexistent/q.sock",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("gateway"));
}
