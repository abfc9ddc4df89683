//! One QEMU guest under software emulation, its serial console read line by line.
//!
//! [`Vm::boot`]: the VM's only network device is a virtio NIC on `-netdev stream` connected,
//! as a client, to the unix socket the test names. [`Vm::boot_with`]: the devices the test
//! gives (a virtio-serial port, for the guest agent). QEMU is killed by its PID on drop, so a test that fails or
//! times out leaves nothing behind.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread;
use std::time::{Duration, Instant};

use super::guest::GuestImage;

/// The guest's MAC: the one the gateway's static lease is for.
pub(crate) const GUEST_MAC: &str = "5a:94:ef:e4:0c:ee";

#[derive(Debug)]
pub(crate) struct Vm {
    child: Child,
    started: Instant,
    lines: Receiver<String>,
    transcript: Vec<(Duration, String)>,
}

impl Vm {
    /// Starts QEMU; `socket` must already be listening.
    pub(crate) fn boot(image: &GuestImage, socket: &Path) -> Result<Vm, String> {
        let socket = socket
            .to_str()
            .ok_or("the socket path is not UTF-8")?
            .to_owned();
        assert!(
            !socket.contains(','),
            "QEMU option values cannot hold a comma"
        );
        let nic = [
            "-netdev".to_owned(),
            format!("stream,id=n0,server=off,addr.type=unix,addr.path={socket}"),
            // No option ROM: the kernel is loaded directly, nothing boots from the network.
            "-device".to_owned(),
            format!("virtio-net-pci,netdev=n0,mac={GUEST_MAC},romfile="),
        ];
        Vm::boot_with(&image.kernel, &image.initramfs, 256, "", &nic)
    }

    /// Starts QEMU with `initramfs`, `memory_mib` of memory, `append` added to the kernel
    /// command line and `devices` (the VM's only devices besides its serial console).
    pub(crate) fn boot_with(
        kernel: &Path,
        initramfs: &Path,
        memory_mib: u32,
        append: &str,
        devices: &[String],
    ) -> Result<Vm, String> {
        let mut child = Command::new("qemu-system-x86_64")
            .args(["-accel", "tcg", "-m", &memory_mib.to_string(), "-smp", "1"])
            .args(["-nodefaults", "-no-user-config", "-display", "none"])
            .args(["-no-reboot", "-serial", "stdio"])
            .arg("-kernel")
            .arg(kernel)
            .arg("-initrd")
            .arg(initramfs)
            .args(["-append", &format!("console=ttyS0 quiet panic=-1 {append}")])
            .args(devices)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("qemu-system-x86_64: {e}"))?;
        let started = Instant::now();
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        forward_lines(stdout, "", tx.clone());
        forward_lines(stderr, "qemu stderr: ", tx);
        Ok(Vm {
            child,
            started,
            lines,
            transcript: Vec::new(),
        })
    }

    pub(crate) fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The first console line from now on for which `want` holds, and when it came (since
    /// boot). An error, with the whole console so far, if QEMU exits or `deadline` passes.
    pub(crate) fn wait_for_line(
        &mut self,
        want: impl Fn(&str) -> bool,
        deadline: Instant,
    ) -> Result<(Duration, String), String> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let at = self.started.elapsed();
                    eprintln!("[{:7.2}s] {line}", at.as_secs_f64());
                    self.transcript.push((at, line.clone()));
                    if want(&line) {
                        return Ok((at, line));
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "timed out after {:.1}s; console:\n{}",
                        self.started.elapsed().as_secs_f64(),
                        self.transcript()
                    ));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().ok();
                    return Err(format!(
                        "QEMU exited ({status:?}) after {:.1}s; console:\n{}",
                        self.started.elapsed().as_secs_f64(),
                        self.transcript()
                    ));
                }
            }
        }
    }

    /// Waits for QEMU to exit (the guest powers off), draining the console.
    pub(crate) fn wait_exit(&mut self, deadline: Instant) -> Result<ExitStatus, String> {
        match self.wait_for_line(|_| false, deadline) {
            Err(e) if e.starts_with("QEMU exited") => {
                self.child.wait().map_err(|e| format!("wait: {e}"))
            }
            Err(e) => Err(e),
            Ok(_) => Err("unreachable: no line is wanted".into()),
        }
    }

    /// Every console line so far, each with its time since boot.
    pub(crate) fn transcript(&self) -> String {
        self.transcript
            .iter()
            .map(|(at, line)| format!("[{:7.2}s] {line}\n", at.as_secs_f64()))
            .collect()
    }

    pub(crate) fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        // Child::kill signals this child's own PID, nothing else.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends each line read from `from` to `to`, `\r` stripped, until EOF.
fn forward_lines(from: impl Read + Send + 'static, prefix: &'static str, to: Sender<String>) {
    thread::spawn(move || {
        let mut reader = BufReader::new(from);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buf);
                    let line = line.trim_end_matches(['\n', '\r']).replace('\r', "");
                    if to.send(format!("{prefix}{line}")).is_err() {
                        return;
                    }
                }
            }
        }
    });
}
