//! The guest image: Debian's kernel and an initramfs around Debian's static busybox.
//!
//! Nothing is installed on this machine for it. `apt-get download` fetches the packages from
//! Debian's archive (the apt lists that `scripts/test` and `.ci/run` refresh), `dpkg-deb`
//! unpacks them into a scratch directory, and the result — `vmlinuz` and `initramfs.cpio` — is
//! kept under cargo's target tmpdir, keyed by the package versions, so later runs only boot.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::cpio::Archive;
use super::scratch::ScratchDir;

/// The metapackage that names the current kernel image package.
const KERNEL_META: &str = "linux-image-amd64";
const BUSYBOX: &str = "busybox-static";

/// The modules the NIC needs, and the virtio-serial port, TAP device and socket listing
/// (sock_diag) `host-switch guest` uses; nothing in the guest loads modules on demand. Their
/// dependencies are read from the modules themselves.
const WANTED_MODULES: [&str; 7] = [
    "virtio_pci",
    "virtio_net",
    "virtio_console",
    "tun",
    "inet_diag",
    "tcp_diag",
    "udp_diag",
];
/// Bumped when what the image holds changes, so a cached image of the same packages is
/// rebuilt.
const IMAGE_VERSION: u32 = 3;

/// PID 1 inside the guest. Every line the test looks for starts in column one on the console.
const INIT: &str = r#"#!/bin/sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "GUEST-INIT uptime=$(cut -d' ' -f1 /proc/uptime)"
for m in @MODULES@; do
    insmod "/lib/modules/$m.ko" || echo "INSMOD-FAIL $m"
done
ip link set lo up
if ip link set eth0 up; then
    echo "NIC-UP mac=$(cat /sys/class/net/eth0/address)"
    if udhcpc -i eth0 -f -n -q -t 10 -O mtu -O search -s /udhcpc.sh; then
        router=$(cat /tmp/router)
        if ping -c 3 -W 5 "$router"; then echo PING-OK; else echo PING-FAIL; fi
    else
        echo "DHCP-FAIL"
    fi
else
    echo "NIC-MISSING"
fi
echo "GUEST-DONE uptime=$(cut -d' ' -f1 /proc/uptime)"
poweroff -f
"#;

/// udhcpc's script: configures eth0 inside the guest and reports the lease on the console.
/// busybox exports `ip`, `mask` (prefix length), `router`, `dns`, `mtu`, `domain`, `search`.
const UDHCPC_SCRIPT: &str = r#"#!/bin/sh
case "$1" in
deconfig)
    ip -4 addr flush dev "$interface"
    ip link set "$interface" up
    ;;
bound|renew)
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    if [ -n "$mtu" ]; then ip link set "$interface" mtu "$mtu"; fi
    set -- $router
    if [ -n "$1" ]; then ip route add default via "$1" dev "$interface"; fi
    echo "$1" > /tmp/router
    echo "LEASE ip=$ip router=$1 dns=$dns mtu=$mtu mask=$mask search=$search"
    ;;
leasefail|nak)
    echo "DHCP-EVENT $1"
    ;;
esac
exit 0
"#;

#[derive(Debug, Clone)]
pub(crate) struct GuestImage {
    pub(crate) kernel: PathBuf,
    pub(crate) initramfs: PathBuf,
    /// e.g. "linux-image-6.1.0-56-amd64 6.1.192-2".
    pub(crate) kernel_package: String,
}

/// Builds the image, or returns the one cached for the current package versions.
pub(crate) fn prepare(cache_root: &Path) -> Result<GuestImage, String> {
    let (kernel_pkg, kernel_version, busybox_version) = packages()?;
    let key = format!("v{IMAGE_VERSION}_{kernel_pkg}_{kernel_version}_{BUSYBOX}_{busybox_version}")
        .replace([':', '/', ' '], "_");
    let dir = cache_root.join(key);
    let image = GuestImage {
        kernel: dir.join("vmlinuz"),
        initramfs: dir.join("initramfs.cpio"),
        kernel_package: format!("{kernel_pkg} {kernel_version}"),
    };
    if image.kernel.is_file() && image.initramfs.is_file() {
        return Ok(image);
    }

    let scratch = ScratchDir::new("hs-guest-build")?;
    let debs = scratch.path().join("debs");
    fs::create_dir_all(&debs).map_err(|e| format!("mkdir {}: {e}", debs.display()))?;
    run(Command::new("apt-get")
        .args(["download", "-q", &kernel_pkg, BUSYBOX])
        .current_dir(&debs))?;
    let root = scratch.path().join("root");
    for deb in fs::read_dir(&debs).map_err(|e| format!("read_dir: {e}"))? {
        let deb = deb.map_err(|e| format!("read_dir: {e}"))?.path();
        run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root))?;
    }

    let vmlinuz = only_entry(&root.join("boot"), "vmlinuz-")?;
    let release = vmlinuz
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("vmlinuz-"))
        .ok_or("odd vmlinuz name")?
        .to_owned();
    let modules = resolve_modules(&root.join("lib/modules").join(&release))?;
    let busybox = fs::read(root.join("bin/busybox")).map_err(|e| format!("busybox: {e}"))?;
    let initramfs = build_initramfs(&busybox, &modules)?;

    // Publish atomically: a half-written cache entry must never look complete.
    let staging = cache_root.join(format!(".staging-{}", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir_all(&staging).map_err(|e| format!("mkdir {}: {e}", staging.display()))?;
    fs::copy(&vmlinuz, staging.join("vmlinuz")).map_err(|e| format!("copy vmlinuz: {e}"))?;
    fs::write(staging.join("initramfs.cpio"), initramfs)
        .map_err(|e| format!("write initramfs: {e}"))?;
    let _ = fs::remove_dir_all(&dir);
    fs::rename(&staging, &dir).map_err(|e| format!("rename {}: {e}", dir.display()))?;
    Ok(image)
}

/// From one `apt-cache show` (each call reads the whole package cache, about a second): the
/// kernel image package `linux-image-amd64` depends on (e.g. `linux-image-6.1.0-56-amd64`),
/// the metapackage's version (the kernel's), and busybox-static's version.
fn packages() -> Result<(String, String, String), String> {
    let show =
        run(Command::new("apt-cache").args(["show", "--no-all-versions", KERNEL_META, BUSYBOX]))?;
    let mut kernel_pkg = None;
    let mut versions = BTreeMap::new();
    for stanza in show.split("\n\n") {
        let field = |name: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(str::trim)
        };
        let (Some(package), Some(version)) = (field("Package:"), field("Version:")) else {
            continue;
        };
        versions.insert(package.to_owned(), version.to_owned());
        if package == KERNEL_META {
            kernel_pkg = field("Depends:").and_then(|d| {
                d.split([',', '|', '('])
                    .map(str::trim)
                    .find(|p| p.starts_with("linux-image-"))
                    .map(str::to_owned)
            });
        }
    }
    let kernel_pkg =
        kernel_pkg.ok_or_else(|| format!("no linux-image-* in {KERNEL_META}'s Depends: {show}"))?;
    let mut version = |p: &str| {
        versions
            .remove(p)
            .ok_or_else(|| format!("apt-cache knows no {p}"))
    };
    Ok((kernel_pkg, version(KERNEL_META)?, version(BUSYBOX)?))
}

/// The one entry of `dir` whose name starts with `prefix`.
fn only_entry(dir: &Path, prefix: &str) -> Result<PathBuf, String> {
    let found: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| format!("read_dir {}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    match found.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(format!("{prefix}* in {}: {found:?}", dir.display())),
    }
}

/// A module to load: its name (underscores) and its bytes.
#[derive(Debug)]
pub(crate) struct Module {
    name: String,
    bytes: Vec<u8>,
}

/// The wanted modules and everything they depend on, dependencies first, read from each
/// module's `.modinfo` `depends=` string (a Debian package carries no `modules.dep`: depmod
/// writes it at install time). A module built into the kernel is simply not found and not
/// needed.
fn resolve_modules(modules_dir: &Path) -> Result<Vec<Module>, String> {
    let mut by_name = BTreeMap::new();
    index_modules(modules_dir, &mut by_name)?;
    let mut order = Vec::new();
    for wanted in WANTED_MODULES {
        if by_name.contains_key(wanted) {
            visit(wanted, &by_name, &mut order, &mut Vec::new())?;
        }
    }
    order
        .into_iter()
        .map(|name| {
            let path = &by_name[&name];
            let bytes = fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok(Module { name, bytes })
        })
        .collect()
}

fn index_modules(dir: &Path, out: &mut BTreeMap<String, PathBuf>) -> Result<(), String> {
    for entry in fs::read_dir(dir).map_err(|e| format!("read_dir {}: {e}", dir.display()))? {
        let path = entry.map_err(|e| format!("read_dir: {e}"))?.path();
        if path.is_dir() {
            index_modules(&path, out)?;
        } else if let Some(stem) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".ko"))
        {
            out.insert(stem.replace('-', "_"), path);
        }
    }
    Ok(())
}

fn visit(
    name: &str,
    by_name: &BTreeMap<String, PathBuf>,
    order: &mut Vec<String>,
    stack: &mut Vec<String>,
) -> Result<(), String> {
    if order.iter().any(|n| n == name) {
        return Ok(());
    }
    if stack.iter().any(|n| n == name) {
        return Err(format!("module dependency cycle: {stack:?} -> {name}"));
    }
    let path = by_name
        .get(name)
        .ok_or_else(|| format!("module {name} (needed by {stack:?}) not in the package"))?;
    let bytes = fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    stack.push(name.to_owned());
    for dep in modinfo_depends(&bytes) {
        visit(&dep, by_name, order, stack)?;
    }
    stack.pop();
    order.push(name.to_owned());
    Ok(())
}

/// The `depends=` entry of a module's `.modinfo` section: NUL-terminated `key=value` strings.
fn modinfo_depends(ko: &[u8]) -> Vec<String> {
    let key = b"\0depends=";
    let Some(at) = ko.windows(key.len()).position(|w| w == key) else {
        return Vec::new();
    };
    let rest = &ko[at + key.len()..];
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end])
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.replace('-', "_"))
        .collect()
}

fn build_initramfs(busybox: &[u8], modules: &[Module]) -> Result<Vec<u8>, String> {
    let mut archive = Archive::new();
    for dir in ["bin", "dev", "proc", "sys", "tmp", "lib", "lib/modules"] {
        archive.dir(dir);
    }
    // The kernel opens /dev/console for PID 1 before anything can mount devtmpfs.
    archive.char_dev("dev/console", 0o600, 5, 1);
    archive.file("bin/busybox", 0o755, busybox);
    archive.symlink("bin/sh", "busybox");
    for module in modules {
        archive.file(
            &format!("lib/modules/{}.ko", module.name),
            0o644,
            &module.bytes,
        );
    }
    let names: Vec<&str> = modules.iter().map(|m| m.name.as_str()).collect();
    // The load order, for an init laid over this one (`agent.rs`).
    archive.file("lib/modules/order", 0o644, names.join("\n").as_bytes());
    archive.file(
        "init",
        0o755,
        INIT.replace("@MODULES@", &names.join(" ")).as_bytes(),
    );
    archive.file("udhcpc.sh", 0o755, UDHCPC_SCRIPT.as_bytes());
    Ok(archive.finish())
}

/// Runs a command to completion; its stdout, or an error carrying both streams.
fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("{:?}: {e}", cmd.get_program()))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn modinfo_depends_parsing() {
    let ko = b"junk\0license=GPL\0depends=virtio_ring,virtio,net-failover\0name=virtio_net\0";
    assert_eq!(
        modinfo_depends(ko),
        ["virtio_ring", "virtio", "net_failover"]
    );
    assert!(modinfo_depends(b"\0depends=\0name=x\0").is_empty());
    assert!(modinfo_depends(b"nothing here").is_empty());
}
