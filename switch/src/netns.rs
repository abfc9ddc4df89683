//! Network namespaces: naming one, and running code inside it without moving the process.
//!
//! [`Netns::run`] opens the namespace file in the caller, then runs a closure on a short-lived
//! scoped thread that has `setns(2)`'d into it; the thread ends with the closure, so no other
//! thread of this process ever changes namespace. Anything the closure creates that is bound to a
//! namespace at creation time — a TAP device's `/dev/net/tun` file, a socket — stays bound to that
//! namespace and is usable from any thread afterwards. [`Netns::Current`] runs the closure inline.
//!
//! Entering another network namespace needs `CAP_SYS_ADMIN` in the user namespace that owns it.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use rustix::thread::LinkNameSpaceType;

/// Which network namespace to act in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum Netns {
    /// The calling thread's own namespace.
    #[default]
    Current,
    /// The namespace of process `PID` (`/proc/PID/ns/net`).
    Pid(u32),
    /// A namespace file: `/proc/PID/ns/net`, `/run/netns/NAME`, or any bind mount of one.
    Path(PathBuf),
}

/// Why code could not be run inside a network namespace.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("cannot open network namespace {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("cannot enter network namespace {path}: {source}")]
    Enter { path: PathBuf, source: io::Error },
    #[error("the thread inside network namespace {path} panicked")]
    Panicked { path: PathBuf },
}

impl Netns {
    /// Reads a command-line `--netns` argument: all digits is a PID, anything else a path.
    pub fn from_arg(arg: &str) -> Netns {
        match arg.parse::<u32>() {
            Ok(pid) if !arg.starts_with('+') => Netns::Pid(pid),
            _ => Netns::Path(PathBuf::from(arg)),
        }
    }

    /// The namespace file, or `None` for [`Netns::Current`].
    pub fn path(&self) -> Option<PathBuf> {
        match self {
            Netns::Current => None,
            Netns::Pid(pid) => Some(PathBuf::from(format!("/proc/{pid}/ns/net"))),
            Netns::Path(path) => Some(path.clone()),
        }
    }

    /// Runs `f` inside this namespace and returns its result.
    ///
    /// For [`Netns::Current`], `f` runs on the calling thread. Otherwise it runs on a new thread
    /// that enters the namespace first and exits when `f` returns; the caller's thread never
    /// changes namespace.
    pub fn run<T, F>(&self, f: F) -> Result<T, NetnsError>
    where
        T: Send,
        F: FnOnce() -> T + Send,
    {
        let Some(path) = self.path() else {
            return Ok(f());
        };
        let file = File::open(&path).map_err(|source| NetnsError::Open {
            path: path.clone(),
            source,
        })?;
        std::thread::scope(|scope| {
            let handle = std::thread::Builder::new()
                .name("netns-enter".into())
                .spawn_scoped(scope, move || -> Result<T, NetnsError> {
                    enter(&file, &path)?;
                    Ok(f())
                });
            match handle {
                Ok(handle) => handle.join().unwrap_or_else(|_| {
                    Err(NetnsError::Panicked {
                        path: self.path().unwrap_or_default(),
                    })
                }),
                Err(source) => Err(NetnsError::Enter {
                    path: self.path().unwrap_or_default(),
                    source,
                }),
            }
        })
    }
}

/// Moves the calling thread into the network namespace `file` refers to.
fn enter(file: &File, path: &Path) -> Result<(), NetnsError> {
    // setns affects the calling thread alone, a thread that exits right after the caller's
    // closure.
    rustix::thread::move_into_link_name_space(file.as_fd(), Some(LinkNameSpaceType::Network))
        .map_err(|e| NetnsError::Enter {
            path: path.to_path_buf(),
            source: e.into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_arg_tells_pid_from_path() {
        assert_eq!(Netns::from_arg("1234"), Netns::Pid(1234));
        assert_eq!(
            Netns::from_arg("/run/netns/x"),
            Netns::Path("/run/netns/x".into())
        );
        assert_eq!(Netns::from_arg("+12"), Netns::Path("+12".into()));
        assert_eq!(Netns::Pid(7).path(), Some(PathBuf::from("/proc/7/ns/net")));
        assert_eq!(Netns::Current.path(), None);
    }

    #[test]
    fn current_runs_inline() {
        let me = std::thread::current().id();
        assert_eq!(
            Netns::Current.run(|| std::thread::current().id()).unwrap(),
            me
        );
    }

    #[test]
    fn missing_namespace_is_an_open_error() {
        let err = Netns::Path("/nonexistent/ns".into())
            .run(|| ())
            .unwrap_err();
        assert!(matches!(err, NetnsError::Open { .. }), "{err}");
    }

    #[test]
    fn a_file_that_is_not_a_namespace_cannot_be_entered() {
        let err = Netns::Path("/proc/self/status".into())
            .run(|| ())
            .unwrap_err();
        assert!(matches!(err, NetnsError::Enter { .. }), "{err}");
    }
}
