//! Skipped tests, made visible: `cargo test` swallows what a passing test prints, so a test
//! that skips also appends its name and reason to the file named by `HOST_SWITCH_SKIPS`
//! (`scripts/test` sets it, lists the file's lines after the run, and fails under CI=true if
//! there are any).

use std::io::Write;

/// Tells of a skipped test: loudly on standard error, and in the skip list.
pub(crate) fn skipped(test: &str, why: &str) {
    eprintln!("\n!!!!! SKIPPING {test}: {why} !!!!!\n");
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
