//! The TAP link: `--netns PID|PATH --tap NAME [--configure] [--mac] [--mtu]`.
//!
//! One TAP device is one port. The device is opened (created if needed) in the given network
//! namespace — or handed over already open, as `host-switch run` does with the device its child
//! created — and optionally configured as slirp4netns `--configure` does (see [`crate::tap`]).
//! A receive thread reads whole frames and hands them to the switch; a transmit thread writes
//! the frames for the guest. [`TapLink::shutdown`] stops both and detaches the port; the device
//! disappears with its last descriptor. A device that goes away under us (deleted, or its
//! namespace gone) ends the receive thread with the read's error and detaches the port at
//! once, so the guest's flows are wound down.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use bytes::Bytes;
use crossbeam_channel::{Sender, select};

use super::listener::STOP_POLL;
use super::{CloseReason, LinkCounters, log_close};
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
    stop: Arc<AtomicBool>,
    done: Option<Sender<()>>,
    rx: Option<JoinHandle<CloseReason>>,
    tx: Option<JoinHandle<Option<CloseReason>>>,
    port: Arc<Port>,
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
        let counters = Arc::new(LinkCounters::default());
        LinkCounters::bump(&counters.accepted);
        let stop = Arc::new(AtomicBool::new(false));
        let (done, done_rx) = crossbeam_channel::bounded::<()>(0);
        let writer = tap.try_clone()?;
        let tx = {
            let port = port.clone();
            let counters = counters.clone();
            std::thread::Builder::new()
                .name(format!("tap-{name}-tx"))
                .spawn(move || {
                    loop {
                        let frame = select! {
                            recv(port.egress()) -> f => match f {
                                Ok(f) => f,
                                Err(_) => return Some(CloseReason::SwitchStopped),
                            },
                            recv(done_rx) -> _ => return None,
                        };
                        if frame.len() > max_frame {
                            LinkCounters::bump(&counters.tx_errors);
                            continue;
                        }
                        if let Err(e) = writer.write_frame(&frame) {
                            // The kernel refuses a frame it cannot take (e.g. link down);
                            // count it and go on: the device is still there.
                            LinkCounters::bump(&counters.tx_errors);
                            tracing::debug!(tap = writer.name(), error = %e, "TAP write failed");
                        }
                    }
                })?
        };
        let rx = {
            let port = port.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name(format!("tap-{name}-rx"))
                .spawn(move || {
                    let end = receive(&tap, &port, max_frame, &stop);
                    if let CloseReason::Io(e) = &end {
                        tracing::warn!(tap = tap.name(), error = %e, "TAP device gone");
                        port.detach();
                    }
                    end
                })?
        };
        tracing::info!(tap = %name, id = port.id().0, "TAP port attached");
        Ok(TapLink {
            name,
            stop,
            done: Some(done),
            rx: Some(rx),
            tx: Some(tx),
            port,
            counters,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn port(&self) -> &Port {
        &self.port
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
        drop(self.done.take());
        let rx_end = self.rx.take().and_then(|t| t.join().ok());
        let tx_end = self.tx.take().and_then(|t| t.join().ok()).flatten();
        if let Some(reason) = tx_end.or(rx_end) {
            log_close(&self.port, &reason);
            self.counters.record_close(&reason);
        }
    }
}

impl Drop for TapLink {
    fn drop(&mut self) {
        self.stop_threads();
    }
}

fn receive(tap: &Tap, port: &Port, max_frame: usize, stop: &AtomicBool) -> CloseReason {
    let mut buf = vec![0u8; max_frame.max(1)];
    while !stop.load(Ordering::Acquire) {
        match tap.wait_readable(Some(STOP_POLL)) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => return CloseReason::Io(e),
        }
        match tap.read_frame(&mut buf) {
            Ok(0) => {}
            Ok(n) => {
                port.send(Bytes::copy_from_slice(buf.get(..n).unwrap_or_default()));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return CloseReason::Io(e),
        }
    }
    CloseReason::Shutdown
}
