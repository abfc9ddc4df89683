//! The lifetime handshakes slirp4netns users script against: exit when the process holding
//! the namespace exits (`--netns PID`, watched through a pidfd), exit when a descriptor the
//! caller holds open is closed (`--exit-fd FD`), and say "ready" on a descriptor once serving
//! (`--ready-fd FD`: the byte `1`, then the descriptor is closed).
//!
//! A watch is a thread blocked in `poll(2)` on one descriptor; it calls its callback once, when
//! the descriptor becomes readable or hangs up (a pidfd is readable once its process has
//! exited, a pipe's read end once its writer closed it), and is left blocked otherwise until
//! the process exits.

use std::io;
use std::os::fd::{AsFd, FromRawFd, OwnedFd, RawFd};

use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags};

/// A pidfd for process `pid` (Linux 5.3 and later).
pub fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    let pid = i32::try_from(pid).map_err(|_| io::ErrorKind::InvalidInput)?;
    // Pid 0 is no process: the kernel answers EINVAL for it.
    let pid = Pid::from_raw(pid).ok_or(Errno::INVAL)?;
    Ok(rustix::process::pidfd_open(pid, PidfdFlags::empty())?)
}

/// Takes ownership of descriptor `fd` given on the command line, checking that it is open.
/// Until it is known open it cannot be borrowed as a `BorrowedFd` for rustix, so this stays
/// on libc.
pub fn inherited_fd(fd: RawFd) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::ErrorKind::InvalidInput.into());
    }
    // SAFETY: F_GETFD only reads the descriptor's flags; -1 means it is not open.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // Not passed on to what we start (`run`'s command): only we hold it.
    // SAFETY: F_SETFD sets the flags of the open descriptor `fd`.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the descriptor is open, and the command line handed it to this process alone:
    // nothing else in it refers to that number.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Blocks until `fd` is readable, hangs up or fails.
pub fn wait_readable(fd: &OwnedFd) -> io::Result<()> {
    loop {
        match crate::sys::poll_in(fd.as_fd(), None) {
            Ok(revents) if !revents.is_empty() => return Ok(()),
            Ok(_) | Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Starts a thread that calls `ended` once `fd` is readable or hangs up.
pub fn spawn(name: &str, fd: OwnedFd, ended: impl FnOnce() + Send + 'static) -> io::Result<()> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            if wait_readable(&fd).is_ok() {
                ended();
            }
        })
        .map(|_| ())
}

/// Writes `1` to `fd` and closes it (slirp4netns' `--ready-fd`).
pub fn notify_ready(fd: OwnedFd) -> io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::File::from(fd);
    file.write_all(b"1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn no_pidfd_for_pid_zero_or_beyond_the_range() {
        let err = pidfd_open(0).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(Errno::INVAL.raw_os_error()));
        let err = pidfd_open(u32::MAX).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn a_pidfd_wakes_when_its_process_exits() {
        let mut child = std::process::Command::new("sleep")
            .arg("0.2")
            .spawn()
            .unwrap();
        let fd = pidfd_open(child.id()).unwrap();
        let (tx, rx) = crossbeam_channel::bounded(1);
        spawn("test-watch", fd, move || {
            let _ = tx.send(());
        })
        .unwrap();
        assert!(
            rx.recv_timeout(Duration::from_millis(50)).is_err(),
            "still running"
        );
        assert!(
            rx.recv_timeout(Duration::from_secs(5)).is_ok(),
            "woke at exit"
        );
        let _ = child.wait();
    }

    #[test]
    fn descriptors_from_the_command_line_must_be_open() {
        assert!(inherited_fd(-1).is_err());
        assert!(inherited_fd(987_654).is_err());
    }
}
