//! One length-prefixed byte stream as one port: the receive loop on the calling thread, the
//! transmit loop on a thread of its own.
//!
//! Receive: bytes go straight into a bounded [`Decoder`]; each whole frame is handed to
//! [`Port::send`]. A framing error (zero length, oversize, truncated at end of stream) ends the
//! port with [`CloseReason::Framing`]. Transmit: frames from [`Port::egress`] are written with
//! their prefix through a buffer that is flushed whenever the egress queue runs empty; a frame
//! over the limit is skipped and counted, never sent. Either side ending makes the other end:
//! the receive side signals the transmit thread through a channel, and the transmit side calls
//! the `unblock` hook (a socket shutdown) to end a blocked read.

use std::io::{self, BufWriter, Read, Write};
use std::sync::Arc;

use bytes::Bytes;
use crossbeam_channel::{Receiver, select};

use super::{CloseReason, LinkCounters, log_close};
use crate::framing::{Decoder, Encoder, LengthPrefix};
use crate::port::{Frame, Port};

/// Bytes buffered before a write reaches the stream.
const TX_BUFFER: usize = 64 * 1024;

/// A stream connection handed to the data plane to be served inside a worker's loop
/// ([`crate::port::Switchboard::attach_stream`]).
#[derive(Debug)]
pub struct NativeStream {
    pub socket: socket2::Socket,
    pub spec: StreamSpec,
    /// Stream bytes read before framing started (after an HTTP request or a handshake).
    pub leftover: Vec<u8>,
    /// The peer's offer of a virtio-net header, to be accepted ([`super::offer`]).
    pub offer: Option<super::offer::Offer>,
    /// The link's counters (frames it could not send).
    pub link: Arc<LinkCounters>,
    /// Told why the stream ended.
    pub done: crossbeam_channel::Sender<CloseReason>,
}

/// How a stream is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSpec {
    pub prefix: LengthPrefix,
    pub max_frame: usize,
}

/// Runs `port` over a stream until either side ends; returns why it ended (already logged and
/// counted). `leftover` holds stream bytes read before framing started (after an HTTP request
/// or a handshake). `unblock` must make a blocked `reader.read` return (shut the socket down).
pub fn run<R, W, U>(
    port: Port,
    mut reader: R,
    writer: W,
    spec: StreamSpec,
    leftover: &[u8],
    counters: &Arc<LinkCounters>,
    unblock: U,
) -> CloseReason
where
    R: Read,
    W: Write + Send + 'static,
    U: Fn() + Send + Sync + 'static,
{
    let port = Arc::new(port);
    let unblock = Arc::new(unblock);
    let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(0);
    let tx = {
        let port = port.clone();
        let counters = counters.clone();
        let unblock = unblock.clone();
        std::thread::Builder::new()
            .name(format!("{}-tx", port.name()))
            .spawn(move || {
                let encoder = Encoder::new(spec.prefix, spec.max_frame);
                let end = transmit(&port, writer, encoder, &done_rx, &counters);
                if end.is_some() {
                    unblock();
                }
                end
            })
    };
    let tx = match tx {
        Ok(tx) => tx,
        Err(e) => {
            let reason = CloseReason::Io(e);
            finish(&port, &reason, counters);
            return reason;
        }
    };
    let mut decoder = Decoder::new(spec.prefix, spec.max_frame);
    let rx_end = receive(&port, &mut reader, &mut decoder, leftover);
    unblock();
    drop(done_tx);
    let tx_end = tx.join().ok().flatten();
    // A write failure or a stopped switch is what ended the read, when it happened first.
    let reason = match (rx_end, tx_end) {
        (CloseReason::PeerClosed | CloseReason::Io(_), Some(tx_reason)) => tx_reason,
        (rx_reason, _) => rx_reason,
    };
    finish(&port, &reason, counters);
    reason
}

fn finish(port: &Port, reason: &CloseReason, counters: &LinkCounters) {
    log_close(port, reason);
    counters.record_close(reason);
}

fn receive<R: Read>(
    port: &Port,
    reader: &mut R,
    decoder: &mut Decoder,
    mut leftover: &[u8],
) -> CloseReason {
    loop {
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    port.send(Bytes::copy_from_slice(frame));
                }
                Ok(None) => break,
                Err(e) => return CloseReason::Framing(e.to_string()),
            }
        }
        if !leftover.is_empty() {
            let n = decoder.feed(leftover);
            leftover = leftover.get(n..).unwrap_or_default();
            continue;
        }
        match decoder.read_from(reader) {
            Ok(0) => {
                return match decoder.finish() {
                    Ok(()) => CloseReason::PeerClosed,
                    Err(e) => CloseReason::Framing(e.to_string()),
                };
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return CloseReason::from_io(e),
        }
    }
}

/// The transmit loop. Returns `None` when told to stop, or why it stopped by itself.
fn transmit<W: Write>(
    port: &Port,
    writer: W,
    encoder: Encoder,
    done: &Receiver<()>,
    counters: &LinkCounters,
) -> Option<CloseReason> {
    let mut out = BufWriter::with_capacity(TX_BUFFER, writer);
    loop {
        let frame: Frame = select! {
            recv(port.egress()) -> frame => match frame {
                Ok(frame) => frame,
                Err(_) => return Some(CloseReason::SwitchStopped),
            },
            recv(done) -> _ => return None,
        };
        let mut next = Some(frame);
        while let Some(frame) = next {
            if encoder.header(frame.len()).is_err() {
                LinkCounters::bump(&counters.tx_errors);
                tracing::debug!(
                    port = port.name(),
                    len = frame.len(),
                    "frame for the guest over the limit; dropped"
                );
            } else if let Err(e) = encoder.write_frame(&mut out, &frame) {
                return Some(CloseReason::Io(e));
            }
            next = port.egress().try_recv().ok();
        }
        if let Err(e) = out.flush() {
            return Some(CloseReason::Io(e));
        }
    }
}
