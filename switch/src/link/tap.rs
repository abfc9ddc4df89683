//! The TAP link: `--netns PID|PATH --tap NAME [--configure] [--mac] [--mtu]`.
//!
//! One TAP device is one port. The device is opened (created if needed) in the given network
//! namespace — or handed over already open, as `host-switch run` does with the device its child
//! created — and optionally configured as slirp4netns `--configure` does (see [`crate::tap`]).
//! A receive thread reads whole frames and hands them to the switch; a transmit thread writes
//! the frames for the guest. [`TapLink::shutdown`] stops both and detaches the port; the device
//! disappears with its last descriptor.
//!
//! When the interface is deleted under us (`ip link del` in the guest's namespace), the wait,
//! a read or a write reports it ([`crate::sys::is_gone`]): both threads end, the port drops
//! and detaches, and the switch tells the forwarder, which winds down every flow of the
//! guest behind it at once (each host peer gets what the guest was acknowledged, then FIN
//! for a finished stream, RST for one cut short; see the forwarder's TCP `drain`). A write refused only because the interface is down (`EIO`) is counted in
//! `tx_errors` and the link goes on: the guest may bring it up again.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender, select};

use super::listener::STOP_POLL;
use super::{CloseReason, LinkCounters, log_close};
use crate::mac_table::PortId;
use crate::netns::Netns;
use crate::port::{Attacher, Port};
use crate::tap::{Tap, TapError, TapOptions};

/// Why a TAP link could not start.
#[derive(Debug, thiserror::Error)]
pub enum TapLinkError {
    #[error(transparent)]
    Open(#[from] TapError),
    #[error("cannot attach the TAP port: {0}")]
    Attach(#[from] crate::port::AttachError),
    #[error("cannot start the TAP threads: {0}")]
    Spawn(#[from] io::Error),
}

/// A running TAP port.
#[derive(Debug)]
pub struct TapLink {
    name: String,
    id: PortId,
    stop: Arc<AtomicBool>,
    /// Tells the transmit thread to end (the receive thread holds a clone for when it ends
    /// by itself).
    done: Sender<()>,
    /// Set by the first thread to end by itself, which logs and counts why.
    ended: Arc<AtomicBool>,
    rx: Option<JoinHandle<()>>,
    tx: Option<JoinHandle<()>>,
    counters: Arc<LinkCounters>,
}

impl TapLink {
    /// Opens TAP `name` in `netns` (configuring it if `options` say so) and serves it.
    pub fn open(
        name: &str,
        netns: &Netns,
        options: &TapOptions,
        attacher: &Attacher,
        max_frame: usize,
    ) -> Result<TapLink, TapLinkError> {
        let tap = Tap::open_with(name, netns, options)?;
        TapLink::start(tap, attacher, max_frame)
    }

    /// Serves an open TAP device.
    pub fn start(tap: Tap, attacher: &Attacher, max_frame: usize) -> Result<TapLink, TapLinkError> {
        let name = tap.name().to_owned();
        let port = Arc::new(attacher.attach(&format!("tap:{name}"))?);
        let id = port.id();
        let counters = Arc::new(LinkCounters::default());
        LinkCounters::bump(&counters.accepted);
        let stop = Arc::new(AtomicBool::new(false));
        let ended = Arc::new(AtomicBool::new(false));
        let (done, done_rx) = crossbeam_channel::bounded::<()>(1);
        let writer = tap.try_clone()?;
        let ends = Ends {
            port: port.clone(),
            counters: counters.clone(),
            stop: stop.clone(),
            ended: ended.clone(),
            done: done.clone(),
        };
        let tx = {
            let ends = ends.clone();
            std::thread::Builder::new()
                .name(format!("tap-{name}-tx"))
                .spawn(move || {
                    if let Some(reason) = transmit(&writer, &ends, &done_rx, max_frame) {
                        ends.end(&reason);
                    }
                })?
        };
        drop(port);
        let rx = std::thread::Builder::new()
            .name(format!("tap-{name}-rx"))
            .spawn(move || {
                let reason = receive(&tap, &ends.port, max_frame, &ends.stop);
                if !matches!(reason, CloseReason::Shutdown) {
                    ends.end(&reason);
                }
                // The transmit thread ends too; with both gone the port detaches.
                let _ = ends.done.try_send(());
            })?;
        tracing::info!(tap = %name, id = id.0, "TAP port attached");
        Ok(TapLink {
            name,
            id,
            stop,
            done,
            ended,
            rx: Some(rx),
            tx: Some(tx),
            counters,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The port's id (the port itself lives as long as the link's threads).
    pub fn port_id(&self) -> PortId {
        self.id
    }

    /// Whether the link ended by itself (the device went away, the switch stopped).
    pub fn has_ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    pub fn counters(&self) -> &Arc<LinkCounters> {
        &self.counters
    }

    /// Stops both threads and detaches the port.
    pub fn shutdown(mut self) {
        self.stop_threads();
    }

    fn stop_threads(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.done.try_send(());
        let rx = self.rx.take().map(JoinHandle::join);
        let tx = self.tx.take().map(JoinHandle::join);
        if (rx.is_some() || tx.is_some())
            && self
                .ended
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            let reason = CloseReason::Shutdown;
            tracing::info!(tap = %self.name, id = self.id.0, %reason, "port closed");
            self.counters.record_close(&reason);
        }
    }
}

impl Drop for TapLink {
    fn drop(&mut self) {
        self.stop_threads();
    }
}

/// What either thread needs to end the link by itself.
#[derive(Clone)]
struct Ends {
    port: Arc<Port>,
    counters: Arc<LinkCounters>,
    stop: Arc<AtomicBool>,
    ended: Arc<AtomicBool>,
    done: Sender<()>,
}

impl Ends {
    /// The link ended by itself: the first thread to get here logs and counts why, and both
    /// are told to stop.
    fn end(&self, reason: &CloseReason) {
        self.stop.store(true, Ordering::Release);
        let _ = self.done.try_send(());
        if self
            .ended
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            log_close(&self.port, reason);
            self.counters.record_close(reason);
        }
    }
}

/// The transmit loop: `None` when told to stop, or why it stopped by itself.
fn transmit(
    writer: &Tap,
    ends: &Ends,
    done: &Receiver<()>,
    max_frame: usize,
) -> Option<CloseReason> {
    loop {
        let frame = select! {
            recv(ends.port.egress()) -> f => match f {
                Ok(f) => f,
                Err(_) => return Some(CloseReason::SwitchStopped),
            },
            recv(done) -> _ => return None,
        };
        if frame.len() > max_frame {
            LinkCounters::bump(&ends.counters.tx_errors);
            continue;
        }
        match writer.write_frame(&frame) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EBADFD) => {
                return Some(CloseReason::Gone(e));
            }
            Err(e) => {
                // The kernel refuses a frame it cannot take (EIO while the interface is
                // down); count it and go on: the device is still there.
                LinkCounters::bump(&ends.counters.tx_errors);
                tracing::debug!(tap = writer.name(), error = %e, "TAP write failed");
            }
        }
    }
}

fn receive(tap: &Tap, port: &Port, max_frame: usize, stop: &AtomicBool) -> CloseReason {
    let mut buf = vec![0u8; max_frame.max(1)];
    while !stop.load(Ordering::Acquire) {
        match tap.wait_readable(Some(STOP_POLL)) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => return CloseReason::from_io(e),
        }
        match tap.read_frame(&mut buf) {
            Ok(0) => {}
            Ok(n) => {
                port.send(Bytes::copy_from_slice(buf.get(..n).unwrap_or_default()));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return CloseReason::from_io(e),
        }
    }
    CloseReason::Shutdown
}
