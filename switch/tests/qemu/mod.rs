//! Support for tests that boot a real VM: QEMU under software emulation (TCG; these machines
//! have no usable KVM) with Debian's kernel and a busybox initramfs built at run time.
//!
//! Needs `qemu-system-x86_64` (Debian package `qemu-system-x86`, listed in
//! `scripts/debian-packages`) and apt with fresh lists to fetch the kernel and busybox-static
//! packages, which are unpacked into a scratch directory, never installed. Without these the
//! tests skip loudly, unless CI=true, where they must run. No root needed.
//!
//! Network safety: the VM's one NIC is a `-netdev stream` client of a unix socket the test
//! owns; QEMU's user-mode network and default NIC are off (`-nodefaults`).

pub(crate) mod agent;
pub(crate) mod cpio;
pub(crate) mod guest;
pub(crate) mod scratch;
#[path = "../skip/mod.rs"]
mod skip;
pub(crate) mod vm;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};

pub(crate) use guest::GuestImage;
pub(crate) use scratch::ScratchDir;
pub(crate) use vm::{GUEST_MAC, Vm};

/// How long one VM may take from start to power-off under TCG.
pub(crate) const VM_TIMEOUT_SECS: u64 = 240;

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The guest image and a lock that keeps VMs from running side by side (two TCG guests on a
/// two-core machine would only slow each other past their timeouts); `None` after a loud
/// skip message. Under CI=true a missing tool or a failed build is a failure instead.
pub(crate) fn setup() -> Option<(GuestImage, MutexGuard<'static, ()>)> {
    static IMAGE: OnceLock<Result<GuestImage, String>> = OnceLock::new();
    static ONE_VM: Mutex<()> = Mutex::new(());

    let missing: Vec<&str> = ["qemu-system-x86_64", "apt-get", "apt-cache", "dpkg-deb"]
        .into_iter()
        .filter(|t| !have(t))
        .collect();
    if !missing.is_empty() {
        let msg = format!("needs {missing:?} (apt-get install qemu-system-x86)");
        assert!(!ci(), "{msg}");
        skip::skipped("qemu_vm (every test)", &msg);
        return None;
    }
    let image = IMAGE.get_or_init(|| {
        let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("qemu-guest");
        guest::prepare(&cache)
    });
    match image {
        Ok(image) => {
            let guard = ONE_VM.lock().unwrap_or_else(|p| p.into_inner());
            Some((image.clone(), guard))
        }
        Err(e) => {
            let msg = format!("could not build the guest image: {e}");
            assert!(!ci(), "{msg}");
            skip::skipped("qemu_vm (every test)", &msg);
            None
        }
    }
}
