//! The guest image with `host-switch guest` in it: a second cpio archive laid over the base
//! initramfs (the kernel unpacks concatenated archives in order, later entries replacing
//! earlier ones) with the host-switch binary (stripped of debug information), the shared
//! libraries `ldd` names for it, and an `/init` that runs the agent over a virtio-serial port.
//!
//! The init reads its ports from the kernel command line (`hs.fetch=` the host's HTTP server,
//! `hs.web=` the port its own web server listens on, `hs.done=` the port the test connects to
//! when it is done) and reports on the console, each line starting in column one.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::cpio::Archive;
use super::guest::GuestImage;

/// The virtio-serial port's name (QEMU `virtserialport,name=`).
pub(crate) const PORT_NAME: &str = "host-switch";

const INIT: &str = r#"#!/bin/sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /etc /www /tmp
echo "GUEST-INIT uptime=$(cut -d' ' -f1 /proc/uptime)"
for m in $(cat /lib/modules/order); do
    insmod "/lib/modules/$m.ko" || echo "INSMOD-FAIL $m"
done
ip link set lo up
for w in $(cat /proc/cmdline); do
    case "$w" in
    hs.fetch=*) fetch="${w#hs.fetch=}" ;;
    hs.web=*) web="${w#hs.web=}" ;;
    hs.done=*) done_port="${w#hs.done=}" ;;
    esac
done
dev=
for p in /sys/class/virtio-ports/*; do
    if [ "$(cat "$p/name" 2>/dev/null)" = "@PORT@" ]; then dev="/dev/$(basename "$p")"; fi
done
echo "PORT dev=$dev"
/bin/host-switch guest --connect "$dev" --resolv-conf /etc/resolv.conf --log-file /dev/console &
i=0
while [ $i -lt 120 ]; do
    ip -4 addr show eth0 2>/dev/null | grep -q 'inet ' && break
    sleep 1
    i=$((i + 1))
done
echo "LEASE $(ip -4 -o addr show eth0)"
echo "RESOLV $(grep nameserver /etc/resolv.conf)"
# busybox's static wget resolves even an address through glibc's NSS, which a static
# binary cannot load; nc takes the address as it is.
body=$(printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 20 192.168.127.254 "$fetch" | tail -n 1)
echo "FETCH $body"
echo "from the vm" > /www/index.html
httpd -p "$web" -h /www
echo SERVING
nc -l -p "$done_port" < /dev/null > /dev/null
echo "GUEST-DONE uptime=$(cut -d' ' -f1 /proc/uptime)"
poweroff -f
"#;

/// Writes the base initramfs followed by the agent overlay into `dir`; returns its path.
pub(crate) fn initramfs(
    image: &GuestImage,
    host_switch: &Path,
    dir: &Path,
) -> Result<PathBuf, String> {
    let stripped = dir.join("host-switch");
    let out = Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(&stripped)
        .arg(host_switch)
        .output()
        .map_err(|e| format!("strip: {e} (binutils)"))?;
    if !out.status.success() {
        return Err(format!("strip: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let mut archive = Archive::new();
    let mut dirs: Vec<String> = Vec::new();
    let mut add_dirs = |archive: &mut Archive, path: &str| {
        let mut at = String::new();
        for part in path
            .split('/')
            .filter(|p| !p.is_empty())
            .rev()
            .skip(1)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            if !at.is_empty() {
                at.push('/');
            }
            at.push_str(part);
            if !dirs.contains(&at) {
                archive.dir(&at);
                dirs.push(at.clone());
            }
        }
    };
    for lib in libraries(host_switch)? {
        let bytes = fs::read(&lib).map_err(|e| format!("{}: {e}", lib.display()))?;
        let inside = lib
            .to_str()
            .ok_or("library path not UTF-8")?
            .trim_start_matches('/');
        add_dirs(&mut archive, inside);
        archive.file(inside, 0o755, &bytes);
    }
    add_dirs(&mut archive, "bin/host-switch");
    let binary = fs::read(&stripped).map_err(|e| format!("{}: {e}", stripped.display()))?;
    archive.file("bin/host-switch", 0o755, &binary);
    archive.file("init", 0o755, INIT.replace("@PORT@", PORT_NAME).as_bytes());
    let mut bytes = fs::read(&image.initramfs).map_err(|e| format!("initramfs: {e}"))?;
    bytes.extend_from_slice(&archive.finish());
    let path = dir.join("initramfs-agent.cpio");
    fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

/// The shared libraries (and the dynamic loader) `ldd` lists for `binary`.
fn libraries(binary: &Path) -> Result<Vec<PathBuf>, String> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(|e| format!("ldd: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // A static binary needs nothing.
        return if text.contains("not a dynamic executable") {
            Ok(Vec::new())
        } else {
            Err(format!(
                "ldd: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            ))
        };
    }
    Ok(text
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let path = match line.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next()?,
                None => line.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect())
}
