//! `host-switch guest`: the guest side's process set-up (logging, signals, exit status) around
//! `switch::guest`.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use signal_hook::consts::{SIGINT, SIGTERM};
use switch::guest::{self, GuestArgs};

pub(crate) fn run(args: &GuestArgs) -> Result<ExitCode, String> {
    let level = if args.debug { "debug" } else { "info" };
    super::init_logging_to(level, args.log_file.as_deref())?;
    if !args.command.is_empty() && !args.setup {
        return Err("a command to start is taken with --setup only".to_owned());
    }
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM] {
        signal_hook::flag::register(signal, stop.clone())
            .map_err(|e| format!("cannot handle signals: {e}"))?;
    }
    if args.setup {
        return guest::setup::run(args, &stop).map_err(|e| e.to_string());
    }
    guest::run(args, &stop).map_err(|e| e.to_string())?;
    Ok(ExitCode::SUCCESS)
}
