//! A guest: a network namespace with a TAP device, relayed frame by frame to host-switch's QEMU
//! socket by two threads of ours that drop a share of the frames each way (the kernel here has
//! no netem), and configured by host-switch's DHCP server through busybox udhcpc.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, Shutdown};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use host_switch_benches::sys::{self, Netns};
use switch::framing::{Decoder, Encoder, LengthPrefix, max_frame_len};
use switch::tap::Tap;

use crate::counters::Counters;
use crate::pattern::Rng;

/// The guests' MTU (what host-switch's DHCP offers by default).
const MTU: u32 = 1500;
/// How often the relay loops look at the stop flag.
const POLL: Duration = Duration::from_millis(100);
/// How long a write to host-switch's socket may block before the relay gives up on it.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub(crate) struct Guest {
    pub(crate) index: usize,
    /// The address host-switch leased to it.
    pub(crate) addr: Ipv4Addr,
    stop: Arc<AtomicBool>,
    relays: Vec<JoinHandle<()>>,
    socket: UnixStream,
    /// Last, so the namespace goes after the relays stopped and the TAP closed.
    pub(crate) netns: Netns,
}

impl Guest {
    /// Creates guest `index`: namespace, TAP, the relay with `loss_ppm` frames per million
    /// dropped each way (seeded by `seed`), then a DHCP lease.
    pub(crate) fn start(
        index: usize,
        dir: &Path,
        qemu: &Path,
        seed: u64,
        loss_ppm: u32,
        counters: &Arc<Counters>,
    ) -> Result<Guest, String> {
        let netns = Netns::create(&format!("hs-soak-{}-{index}", std::process::id()))?;
        let tap = Tap::open("tap0", &switch::netns::Netns::Path(netns.path.clone()))
            .map_err(|e| format!("guest {index}: {e}"))?;
        for args in [["link", "set", "lo", "up"], ["link", "set", "tap0", "up"]] {
            sys::run(
                sys::in_netns(&netns.path, "ip").args(args),
                Duration::from_secs(5),
            )?;
        }
        let socket = UnixStream::connect(qemu).map_err(|e| format!("{}: {e}", qemu.display()))?;
        let err = |e: std::io::Error| format!("guest {index}: {e}");
        socket.set_read_timeout(Some(POLL)).map_err(err)?;
        socket.set_write_timeout(Some(WRITE_TIMEOUT)).map_err(err)?;
        let stop = Arc::new(AtomicBool::new(false));
        let tap = Arc::new(tap);
        let mut relays = Vec::new();
        let to_switch = Relay {
            stop: stop.clone(),
            counters: counters.clone(),
            rng: Rng::new(seed),
            loss_ppm,
        };
        let to_guest = Relay {
            rng: Rng::new(!seed),
            ..to_switch.clone()
        };
        let (t, s) = (tap.clone(), socket.try_clone().map_err(err)?);
        relays.push(spawn(&format!("tap{index}-to-switch"), move || {
            to_switch.tap_to_switch(&t, s)
        })?);
        let s = socket.try_clone().map_err(err)?;
        relays.push(spawn(&format!("switch-to-tap{index}"), move || {
            to_guest.switch_to_tap(&tap, s)
        })?);
        let mut guest = Guest {
            index,
            addr: Ipv4Addr::UNSPECIFIED,
            stop,
            relays,
            socket,
            netns,
        };
        guest.addr = guest.dhcp(dir)?;
        Ok(guest)
    }

    pub(crate) fn ns(&self) -> &Path {
        &self.netns.path
    }

    /// Runs udhcpc once in the namespace with a script of ours (which configures tap0 and never
    /// touches /etc/resolv.conf); returns the leased address after checking the options.
    fn dhcp(&self, dir: &Path) -> Result<Ipv4Addr, String> {
        let record: PathBuf = dir.join(format!("guest{}.lease", self.index));
        let script = dir.join(format!("guest{}.udhcpc.sh", self.index));
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\n\
                 [ \"$1\" = bound ] || exit 0\n\
                 ip addr flush dev \"$interface\"\n\
                 ip addr add \"$ip/$subnet\" dev \"$interface\"\n\
                 ip route replace default via \"$router\" dev \"$interface\"\n\
                 echo \"$ip $router $dns $mtu\" > {}\n",
                record.display()
            ),
        )
        .map_err(|e| format!("{}: {e}", script.display()))?;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("{}: {e}", script.display()))?;
        let script = script.to_string_lossy().into_owned();
        sys::run(
            sys::in_netns(self.ns(), "udhcpc").args([
                "-i", "tap0", "-f", "-q", "-n", "-t", "10", "-T", "2", "-O", "mtu", "-s", &script,
            ]),
            Duration::from_secs(60),
        )
        .map_err(|e| format!("guest {}: udhcpc: {e}", self.index))?;
        let lease = std::fs::read_to_string(&record)
            .map_err(|e| format!("guest {}: no lease recorded: {e}", self.index))?;
        let fields: Vec<&str> = lease.split_whitespace().collect();
        let (Some(ip), Some(router), Some(dns)) = (fields.first(), fields.get(1), fields.get(2))
        else {
            return Err(format!("guest {}: lease {lease:?}", self.index));
        };
        if *router != "192.168.127.1" || *dns != "192.168.127.1" {
            return Err(format!(
                "guest {}: DHCP gave router {router} and DNS {dns}, not 192.168.127.1",
                self.index
            ));
        }
        ip.parse()
            .map_err(|e| format!("guest {}: lease {ip}: {e}", self.index))
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.socket.shutdown(Shutdown::Both);
        for r in self.relays.drain(..) {
            let _ = r.join();
        }
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, String> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map_err(|e| format!("{name}: {e}"))
}

/// One direction of the relay and its loss injector.
#[derive(Debug, Clone)]
struct Relay {
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    rng: Rng,
    loss_ppm: u32,
}

impl Relay {
    /// Whether to drop this frame; counts it either way.
    fn drop_one(&mut self, relayed: &AtomicU64, dropped: &AtomicU64) -> bool {
        if self.rng.chance(self.loss_ppm) {
            Counters::add(dropped, 1);
            true
        } else {
            Counters::add(relayed, 1);
            false
        }
    }

    fn tap_to_switch(mut self, tap: &Tap, mut socket: UnixStream) {
        let max = max_frame_len(MTU);
        let encoder = Encoder::new(LengthPrefix::U32Be, max);
        let mut buf = vec![0u8; 65536];
        let c = self.counters.clone();
        while !self.stop.load(Ordering::Relaxed) {
            match tap.wait_readable(Some(POLL)) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    c.failure(format!("relay: TAP poll: {e}"));
                    return;
                }
            }
            let n = match tap.read_frame(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
                Err(e) => {
                    c.failure(format!("relay: TAP read: {e}"));
                    return;
                }
            };
            if self.drop_one(&c.frames_to_switch, &c.dropped_to_switch) {
                continue;
            }
            if let Err(e) = encoder.write_frame(&mut socket, &buf[..n]) {
                if !self.stop.load(Ordering::Relaxed) {
                    Counters::add(&c.relay_errors, 1);
                    c.failure(format!("relay: write to host-switch: {e}"));
                }
                return;
            }
        }
    }

    fn switch_to_tap(mut self, tap: &Tap, mut socket: UnixStream) {
        let mut decoder = Decoder::new(LengthPrefix::U32Be, max_frame_len(MTU));
        let c = self.counters.clone();
        while !self.stop.load(Ordering::Relaxed) {
            loop {
                let frame = match decoder.next_frame() {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(e) => {
                        c.failure(format!("relay: framing from host-switch: {e}"));
                        return;
                    }
                };
                if self.drop_one(&c.frames_to_guest, &c.dropped_to_guest) {
                    continue;
                }
                if let Err(e) = tap.write_frame(frame) {
                    Counters::add(&c.relay_errors, 1);
                    c.failure(format!("relay: TAP write: {e}"));
                }
            }
            match decoder.read_from(&mut socket) {
                Ok(0) => {
                    if !self.stop.load(Ordering::Relaxed) {
                        c.failure("relay: host-switch closed the QEMU socket".into());
                    }
                    return;
                }
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    if !self.stop.load(Ordering::Relaxed) {
                        c.failure(format!("relay: read from host-switch: {e}"));
                    }
                    return;
                }
            }
        }
    }
}
