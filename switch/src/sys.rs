//! OS plumbing the links and the binary share: waiting on a descriptor, telling an error that
//! means "this link is gone" from one worth going on after, and the open-file limit.
//!
//! - [`poll_in`] is the one `poll(2)` for `POLLIN` on one descriptor that the links, the
//!   guest agent and the watches share; [`wait_readable`] is the one every polled link waits
//!   in. `POLLERR`, `POLLHUP` or `POLLNVAL` without `POLLIN` is an error ([`is_gone`] says
//!   true for it), never "not ready yet": a TAP whose interface was deleted reports only
//!   `POLLERR`, forever, and a loop that waited for `POLLIN` alone would spin on it.
//! - [`is_gone`]: `EBADFD` (a TAP whose interface was deleted answers every read and write so),
//!   `EIO` on a read, `ENXIO`, `ENODEV`, `EBADF`, and the hang-up above. A TAP *write* that
//!   fails with `EIO` only means the interface is down (the guest may bring it up again): the
//!   TAP link counts that and goes on.
//! - [`raise_nofile_limit`] lifts the soft `RLIMIT_NOFILE` to the hard one (as gvproxy does at
//!   start: the soft default of 1024 would cap a guest at about a thousand connections while
//!   the hard limit allows far more); [`restore_nofile_limit`] puts the soft limit back in a
//!   child between fork and exec, so a command `host-switch run` starts sees the limit it
//!   would have had; [`open_descriptors`] counts what is open now.
//! - [`fix_mmap_threshold`] keeps glibc from moving large blocks into the threads' heaps.
//!
//! The system calls go through `rustix` (`poll`, `prlimit64`); only `mallopt`, glibc's own,
//! has no equivalent there and stays on `libc`.

use std::io;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// The error [`wait_readable`] returns when the descriptor can never become readable.
#[derive(Debug, thiserror::Error)]
#[error("poll reported {0}")]
pub struct Hangup(&'static str);

/// Waits until `fd` is readable, at most `timeout` (`None`: forever). `Ok(false)` when the
/// time ran out or a signal came; an error [`is_gone`] accepts when the descriptor reports an
/// error or hang-up with nothing left to read.
pub fn wait_readable(fd: BorrowedFd<'_>, timeout: Option<Duration>) -> io::Result<bool> {
    let revents = match poll_in(fd, timeout) {
        Ok(revents) => revents,
        Err(Errno::INTR) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    if revents.contains(PollFlags::IN) {
        // Readable, perhaps with a hang-up too: the read drains what is left, then ends.
        return Ok(true);
    }
    let what = if revents.contains(PollFlags::NVAL) {
        "POLLNVAL"
    } else if revents.contains(PollFlags::ERR) {
        "POLLERR"
    } else if revents.contains(PollFlags::HUP) {
        "POLLHUP"
    } else {
        return Ok(false);
    };
    Err(io::Error::new(io::ErrorKind::BrokenPipe, Hangup(what)))
}

/// One `poll(2)` for `POLLIN` on `fd`, at most `timeout` (`None`: forever), cut to whole
/// milliseconds as poll(2) takes them (a shorter wait is no wait). Returns the events the
/// kernel reported, empty when the time ran out; `EINTR` is the caller's to handle.
pub fn poll_in(fd: BorrowedFd<'_>, timeout: Option<Duration>) -> rustix::io::Result<PollFlags> {
    let timeout = timeout.map(|t| {
        let ms = i32::try_from(t.as_millis()).unwrap_or(i32::MAX);
        Timespec {
            tv_sec: (ms / 1000).into(),
            tv_nsec: ((ms % 1000) * 1_000_000).into(),
        }
    });
    let mut pfd = [PollFd::from_borrowed_fd(fd, PollFlags::IN)];
    rustix::event::poll(&mut pfd, timeout.as_ref())?;
    Ok(pfd[0].revents())
}

/// Whether `e`, from a link's poll or read (or a TAP write), means the link is gone for good.
pub fn is_gone(e: &io::Error) -> bool {
    if e.get_ref().is_some_and(|inner| inner.is::<Hangup>()) {
        return true;
    }
    e.raw_os_error().is_some_and(|raw| {
        matches!(
            Errno::from_raw_os_error(raw),
            Errno::BADFD | Errno::IO | Errno::NXIO | Errno::NODEV | Errno::BADF
        )
    })
}

/// The open-file limit after [`raise_nofile_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NofileLimit {
    /// The soft limit before.
    pub was: u64,
    /// The soft limit now.
    pub soft: u64,
    pub hard: u64,
}

/// The soft limit before [`raise_nofile_limit`] raised it, plus one (0: never raised).
static SOFT_BEFORE: AtomicU64 = AtomicU64::new(0);

/// Raises the soft `RLIMIT_NOFILE` to the hard limit. The limit is left as it was when it
/// cannot be raised (the result says so: `soft == was`).
pub fn raise_nofile_limit() -> io::Result<NofileLimit> {
    let (was, hard) = nofile_limit();
    let mut soft = was;
    if was < hard && set_nofile_limit(hard, hard).is_ok() {
        let _ = SOFT_BEFORE.compare_exchange(
            0,
            was.saturating_add(1),
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        soft = hard;
    }
    Ok(NofileLimit { was, soft, hard })
}

/// Puts back the soft `RLIMIT_NOFILE` [`raise_nofile_limit`] raised, if it did. Only
/// async-signal-safe calls: fit for a `pre_exec` hook.
pub fn restore_nofile_limit() -> io::Result<()> {
    let before = SOFT_BEFORE.load(Ordering::Acquire);
    if before == 0 {
        return Ok(());
    }
    let (_, hard) = nofile_limit();
    set_nofile_limit((before - 1).min(hard), hard)
}

/// The soft and hard `RLIMIT_NOFILE`, `RLIM_INFINITY` as `u64::MAX` (as the C library has
/// it). A plain system call (`prlimit64`, which cannot fail for this process and resource):
/// async-signal-safe.
fn nofile_limit() -> (u64, u64) {
    let lim = getrlimit(Resource::Nofile);
    (
        lim.current.unwrap_or(u64::MAX),
        lim.maximum.unwrap_or(u64::MAX),
    )
}

/// Sets the soft and hard `RLIMIT_NOFILE`, `u64::MAX` meaning `RLIM_INFINITY`; a plain
/// system call, async-signal-safe.
fn set_nofile_limit(soft: u64, hard: u64) -> io::Result<()> {
    let limit = |v: u64| (v != u64::MAX).then_some(v);
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: limit(soft),
            maximum: limit(hard),
        },
    )?;
    Ok(())
}

/// Blocks of at least this many bytes get their own mapping from the allocator (glibc's
/// default start; see [`fix_mmap_threshold`]).
pub const MMAP_THRESHOLD: usize = 128 * 1024;

/// Fixes glibc's mmap threshold at [`MMAP_THRESHOLD`]. By default glibc raises the threshold
/// to the size of each mapped block freed (up to 32 MiB), so after the first TCP buffer of
/// 256 KiB or 1 MiB is freed, every later one is carved from a worker's heap; buffers of every
/// size between 4 KiB and `tcp_buffer`, coming and going with each transfer, then fragment
/// that heap, which grows while little of it is in use (a ten-minute soak: each worker's heap
/// 5–6.5 MB with 2.6–4 MB in use). Fixed, a buffer of 128 KiB or more gets a mapping of its
/// own, unmapped when it is freed: its memory goes back at once, for two system calls and
/// the page faults of filling it. Left alone when the environment sets the
/// threshold (`MALLOC_MMAP_THRESHOLD_` or a `glibc.malloc.mmap_threshold` tunable).
/// Call once, first thing in `main`, before any thread starts.
pub fn fix_mmap_threshold() {
    let set_by_env = std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_some()
        || std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("mmap_threshold"));
    if set_by_env {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let threshold = libc::c_int::try_from(MMAP_THRESHOLD).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt takes two integers and only sets the allocator's own parameter.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, threshold);
        }
    }
}

/// Descriptors this process has open now (the entries of `/proc/self/fd`, less the one the
/// listing itself holds).
pub fn open_descriptors() -> io::Result<usize> {
    Ok(std::fs::read_dir("/proc/self/fd")?
        .count()
        .saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn a_hangup_without_data_is_gone_and_data_first_is_readable() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert!(!wait_readable(a.as_fd(), Some(Duration::from_millis(1))).unwrap());
        std::io::Write::write_all(&mut &b, b"x").unwrap();
        drop(b);
        // Data and hang-up: readable first, so the last bytes are read.
        assert!(wait_readable(a.as_fd(), Some(Duration::ZERO)).unwrap());
        let mut buf = [0u8; 4];
        assert_eq!(std::io::Read::read(&mut &a, &mut buf).unwrap(), 1);
        // A stream at its end is readable (read returns 0); that ends a stream link anyway.
        assert!(wait_readable(a.as_fd(), Some(Duration::ZERO)).unwrap());
    }

    #[test]
    fn a_hangup_alone_is_gone() {
        // A TCP socket never connected reports POLLHUP and nothing else (tcp_poll in
        // TCP_CLOSE); a deleted TAP reports POLLERR alone in the same way.
        let fresh =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        let err = wait_readable(fresh.as_fd(), Some(Duration::from_secs(1))).unwrap_err();
        assert!(is_gone(&err), "{err}");
        assert!(err.to_string().contains("POLLHUP"), "{err}");
    }

    #[test]
    fn gone_errors() {
        assert!(is_gone(&io::Error::from_raw_os_error(libc::EBADFD)));
        assert!(is_gone(&io::Error::from_raw_os_error(libc::EIO)));
        assert!(!is_gone(&io::Error::from_raw_os_error(libc::EAGAIN)));
        assert!(!is_gone(&io::Error::from_raw_os_error(libc::EINTR)));
        assert!(is_gone(&io::Error::new(
            io::ErrorKind::BrokenPipe,
            Hangup("POLLERR")
        )));
    }

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let lim = raise_nofile_limit().unwrap();
        assert_eq!(lim.soft, lim.hard);
        assert!(lim.soft >= lim.was);
        assert!(open_descriptors().unwrap() >= 3);
    }
}
