//! Skipped tests, made visible: `cargo test` swallows what a passing test prints, so a test
//! that skips also appends one line, its name and why, to the skip list: the file named by
//! `HOST_SWITCH_SKIPS` (`scripts/test` sets it to `target/tmp/skipped-tests.txt` and lists the
//! file's lines after the run).
//!
//! Two kinds of skip, one list:
//! - [`skipped`]: the test lacks something CI provides (root, a tool from
//!   `scripts/debian-packages`). Under `CI=true` the test fails instead, and `scripts/test`
//!   fails the run if such a line got into the list anyway.
//! - [`unavailable`]: the machine lacks something no package brings (a vsock peer). Allowed
//!   under `CI=true`; listed all the same, its reason marked with [`MACHINE`].

// Each test crate that includes this file uses one kind of skip or both.
#![allow(dead_code)]

use std::io::Write;

/// What starts the reason of an [`unavailable`] line (`scripts/test` looks for it).
pub(crate) const MACHINE: &str = "[machine] ";

/// Tells of a test skipped for want of something CI provides: loudly on standard error, and
/// in the skip list.
pub(crate) fn skipped(test: &str, why: &str) {
    eprintln!("\n!!!!! SKIPPING {test}: {why} !!!!!\n");
    record(test, why);
}

/// Tells of a test this machine cannot run (it lacks a device or peer no package provides),
/// which may skip even under `CI=true`: loudly on standard error, and in the skip list.
pub(crate) fn unavailable(test: &str, why: &str) {
    eprintln!("\n!!!!! SKIPPING {test} (not possible on this machine): {why} !!!!!\n");
    record(test, &format!("{MACHINE}{why}"));
}

fn record(test: &str, why: &str) {
    let Some(path) = std::env::var_os("HOST_SWITCH_SKIPS") else {
        return;
    };
    let line = format!("{test}: {}\n", why.replace('\n', " "));
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        // One write of one line: appends from parallel tests do not interleave.
        let _ = file.write_all(line.as_bytes());
    }
}
