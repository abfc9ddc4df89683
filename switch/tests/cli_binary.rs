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
        (&["--forward-sock", "/tmp/x"][..], "-forward-sock"),
        (&["-forward-user", "core"][..], "-forward-user"),
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
