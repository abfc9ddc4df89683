//! A length-prefixed stream link (QEMU `-netdev stream`, gvforwarder's `/connect`, vpnkit)
//! served inside a worker's loop: one connection, one port, read and written by the worker
//! that owns every flow of its guest.
//!
//! Reading: each read fills the [`Decoder`] with as many frames as arrived (one syscall for
//! many frames); each whole frame is copied once into the worker's receive arena and run
//! through. Writing: frames for the guest are encoded one after another into the link's
//! transmit buffer, and the buffer is written once per turn of the loop (one syscall for many
//! frames); what the socket does not take waits for it to become writable. The transmit
//! buffer is bounded: a frame that finds it full is dropped and counted, as a full queue
//! would drop it. A framing error, the end of the stream or a failed read or write ends the
//! link with its [`CloseReason`], which goes back to the thread that attached it.
//!
//! A stream whose peer offered a virtio-net header ([`crate::link::offer`]) is answered with
//! the accept marker as its first frame, and every frame written after it carries the header
//! (a super-segment whole, [`offer::LINK_OFFLOADS`]); frames read carry one from the peer's
//! acknowledgement on, each checked against its frame as a TAP queue's are (a header that
//! does not parse or fit drops its frame, counted). Until then frames read are plain and held
//! to the link's own frame limit.

use std::cell::{Cell, RefCell};
use std::io::{self, Write};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use crossbeam_channel::Sender;
use socket2::Socket;

use stack::offload::LinkOffloads;
use stack::wire::virtio_net::HEADER_LEN;
use stack::wire::{VirtioNetError, VirtioNetRepr};

use crate::framing::{Decoder, Encoder};
use crate::link::offer::{self, Inbound, Taken};
use crate::link::stream::NativeStream;
use crate::link::{CloseReason, LinkCounters};
use crate::mac_table::PortId;
use crate::port::PortCounters;

/// Bytes waiting to be written to one stream, at most.
const TX_LIMIT: usize = 4 << 20;

/// One stream connection served by a worker. See the module docs.
pub(crate) struct StreamConn {
    socket: Socket,
    pub(crate) port: PortId,
    decoder: Decoder,
    encoder: Encoder,
    tx: RefCell<Vec<u8>>,
    /// Bytes of `tx` already written.
    tx_sent: Cell<usize>,
    /// The socket took everything last time (or has not refused yet).
    writable: Cell<bool>,
    link: Arc<LinkCounters>,
    pub(crate) counters: Arc<PortCounters>,
    done: Option<Sender<CloseReason>>,
    /// How frames read are taken (with the header, once the peer acknowledged it).
    inbound: Inbound,
    /// Frames written carry a virtio-net header (an offer was accepted).
    tx_vnet: bool,
}

/// A frame read, and its virtio-net header as checked (plain for a stream without one).
pub(crate) type StreamFrame = (Bytes, Result<VirtioNetRepr, VirtioNetError>);

/// What a batch of reads found.
pub(crate) enum ReadEnd {
    /// The socket has nothing more now.
    Blocked,
    /// The batch ended with more to read.
    More,
    /// The stream is over.
    Closed(CloseReason),
}

impl StreamConn {
    pub(crate) fn new(
        parts: NativeStream,
        port: PortId,
        counters: Arc<PortCounters>,
    ) -> io::Result<StreamConn> {
        parts.socket.set_nonblocking(true)?;
        // Taken only where the link's largest frame still fits the length with a header in
        // front (an MTU of at most 65,505 bytes); a peer refused stays on plain frames.
        let offer = parts
            .offer
            .filter(|_| HEADER_LEN + parts.spec.max_frame <= offer::MAX_FRAME);
        if parts.offer.is_some() && offer.is_none() {
            tracing::debug!(
                port = port.0,
                max_frame = parts.spec.max_frame,
                "virtio-net header offered: refused, the link's frames leave no room for it"
            );
        }
        // With a header, a frame may be a super-segment: as long as the length can say.
        let max_frame = match offer {
            Some(_) => offer::MAX_FRAME,
            None => parts.spec.max_frame,
        };
        let mut decoder = Decoder::new(parts.spec.prefix, max_frame);
        let mut leftover = &parts.leftover[..];
        while !leftover.is_empty() {
            let n = decoder.feed(leftover);
            if n == 0 {
                break;
            }
            leftover = leftover.get(n..).unwrap_or_default();
        }
        let encoder = Encoder::new(parts.spec.prefix, max_frame);
        let mut tx = Vec::new();
        if let Some(offer) = offer {
            encoder
                .encode_into(&offer.accept_marker(), &mut tx)
                .map_err(io::Error::from)?;
            tracing::debug!(port = port.0, "virtio-net header offered: accepted");
        }
        Ok(StreamConn {
            socket: parts.socket,
            port,
            decoder,
            encoder,
            tx: RefCell::new(tx),
            tx_sent: Cell::new(0),
            writable: Cell::new(true),
            link: parts.link,
            counters,
            done: Some(parts.done),
            inbound: Inbound::new(offer, parts.spec.max_frame),
            tx_vnet: offer.is_some(),
        })
    }

    /// What the link does for frames written to it: a stream with the header takes
    /// super-segments and partial checksums whole, as far as its frames carry them.
    pub(crate) fn offloads(&self) -> LinkOffloads {
        if self.tx_vnet {
            offer::LINK_OFFLOADS
        } else {
            LinkOffloads::NONE
        }
    }

    /// Whether a frame of `len` bytes goes out as it is, with its header, whatever is left to
    /// finish in it.
    pub(crate) fn takes_unfinished(&self, len: usize) -> bool {
        self.tx_vnet && HEADER_LEN + len <= offer::MAX_FRAME
    }

    pub(crate) fn socket(&self) -> &Socket {
        &self.socket
    }

    /// Takes the whole frames buffered now, each copied into `arena` as its own `Bytes`,
    /// then reads once more if `read` says so. Frames go to `frames`.
    pub(crate) fn read_batch(
        &mut self,
        arena: &mut BytesMut,
        frames: &mut Vec<StreamFrame>,
        reads: usize,
    ) -> ReadEnd {
        for _ in 0..reads {
            if let Err(reason) = self.take_buffered(arena, frames) {
                return ReadEnd::Closed(reason);
            }
            match self.decoder.read_from(&mut &self.socket) {
                Ok(0) => {
                    // Frames that arrived with the end are still the guest's.
                    if let Err(reason) = self.take_buffered(arena, frames) {
                        return ReadEnd::Closed(reason);
                    }
                    return ReadEnd::Closed(match self.decoder.finish() {
                        Ok(()) => CloseReason::PeerClosed,
                        Err(e) => CloseReason::Framing(e.to_string()),
                    });
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Err(reason) = self.take_buffered(arena, frames) {
                        return ReadEnd::Closed(reason);
                    }
                    return ReadEnd::Blocked;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return ReadEnd::Closed(CloseReason::Io(e)),
            }
        }
        ReadEnd::More
    }

    /// Every whole frame the decoder holds, into `frames`.
    fn take_buffered(
        &mut self,
        arena: &mut BytesMut,
        frames: &mut Vec<StreamFrame>,
    ) -> Result<(), CloseReason> {
        loop {
            match self.decoder.next_frame() {
                Ok(Some(frame)) => match self.inbound.take(frame) {
                    Taken::Agreed => {
                        tracing::info!(
                            port = self.port.0,
                            "virtio-net header agreed on the stream"
                        );
                    }
                    Taken::Frame(frame, header) => {
                        arena.extend_from_slice(frame);
                        frames.push((arena.split().freeze(), header));
                    }
                    Taken::TooLong { len, max } => {
                        return Err(CloseReason::Framing(format!(
                            "frame of {len} bytes over the limit of {max}"
                        )));
                    }
                },
                Ok(None) => return Ok(()),
                Err(e) => return Err(CloseReason::Framing(e.to_string())),
            }
        }
    }

    /// Queues `frame` for the guest, behind `header` on a stream with one (where the caller
    /// saw [`StreamConn::takes_unfinished`]; a plain stream gets the frame alone); false
    /// (counted) when it is over the link's frame size or the transmit buffer is full. The
    /// caller flushes at the end of its turn.
    pub(crate) fn queue(&self, frame: &[u8], header: &VirtioNetRepr) -> bool {
        let mut tx = self.tx.borrow_mut();
        let sent = tx.len() - self.tx_sent.get() < TX_LIMIT
            && if self.tx_vnet {
                self.encode_with_header(header, frame, &mut tx)
            } else {
                self.encoder.encode_into(frame, &mut tx).is_ok()
            };
        if !sent {
            LinkCounters::bump(&self.link.tx_errors);
        }
        self.counters.tx(frame.len(), sent);
        sent
    }

    /// One length prefix around `header` and `frame`.
    fn encode_with_header(&self, header: &VirtioNetRepr, frame: &[u8], tx: &mut Vec<u8>) -> bool {
        let Ok(prefix) = self.encoder.header(HEADER_LEN + frame.len()) else {
            return false;
        };
        tx.extend_from_slice(prefix.as_bytes());
        tx.extend_from_slice(&header.to_bytes());
        tx.extend_from_slice(frame);
        true
    }

    /// Whether frames wait to be written.
    pub(crate) fn pending(&self) -> bool {
        self.tx.borrow().len() > self.tx_sent.get()
    }

    /// The socket can take more (a writable event).
    pub(crate) fn set_writable(&self) {
        self.writable.set(true);
    }

    /// Writes what is queued, as far as the socket takes it. An error ends the link.
    pub(crate) fn flush(&self) -> Result<(), CloseReason> {
        if !self.writable.get() {
            return Ok(());
        }
        let mut tx = self.tx.borrow_mut();
        loop {
            let sent = self.tx_sent.get();
            let Some(rest) = tx.get(sent..).filter(|r| !r.is_empty()) else {
                tx.clear();
                self.tx_sent.set(0);
                return Ok(());
            };
            match (&self.socket).write(rest) {
                Ok(0) => return Err(CloseReason::PeerClosed),
                Ok(n) => self.tx_sent.set(sent + n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.writable.set(false);
                    // Keep the buffer from creeping: move what is left to the front.
                    if sent > 0 {
                        tx.drain(..sent);
                        self.tx_sent.set(0);
                    }
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(CloseReason::Io(e)),
            }
        }
    }

    /// The link is over: its attacher learns why.
    pub(crate) fn end(&mut self, reason: CloseReason) {
        if let Some(done) = self.done.take() {
            let _ = done.send(reason);
        }
        let _ = self.socket.shutdown(std::net::Shutdown::Both);
    }
}

impl Drop for StreamConn {
    fn drop(&mut self) {
        self.end(CloseReason::Shutdown);
    }
}
