//! One connection's life: frames between the TAP and host-switch, both ways, until either
//! end stops.
//!
//! - **Uplink** (a thread): frames the kernel sends out of the TAP, and the DHCP client's
//!   frames queued by the agent ([`Session::outgoing`], bounded), written to the connection
//!   with the 2-byte little-endian length before each.
//! - **Downlink** (a thread): the connection's bytes through a bounded [`Decoder`]; a DHCP
//!   reply for our MAC goes to the agent ([`Event::Dhcp`]), every other frame into the TAP.
//!
//! With a TAP that carries a virtio-net header ([`Link::vnet`]), the kernel hands the uplink
//! TCP super-segments and partial checksums. Where host-switch accepted the agent's offer
//! ([`crate::link::offer`]: the accept marker is the first frame the downlink reads), the
//! uplink acknowledges it and from then on sends each frame with its header as the kernel
//! wrote it, and the downlink writes host-switch's frames, header and all, into the TAP.
//! Otherwise the uplink finishes each super-segment in software ([`stack::offload::finish`])
//! and sends plain frames, and the downlink puts a header of zeros in front of each frame.
//! A frame too long for the framing even with the header agreed is finished the same way.
//!
//! The TAP outlives sessions: a frame the kernel sends while no connection is up is dropped
//! (the kernel's own queue holds a little). Whichever side ends first stops the other (a
//! shared flag, and a socket shutdown to end a blocked read) and reports [`Event::Down`] once.
//! A write to the TAP that fails (the link set down by someone) drops that frame and is
//! counted, never ends the session.

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use stack::offload::finish;
use stack::wire::virtio_net::HEADER_LEN;
use stack::wire::{EthernetAddress, VirtioNetRepr};

use super::lease::dhcp_reply;
use super::transport::{Conn, wait_readable};
use crate::framing::{Decoder, Encoder, LengthPrefix};
use crate::link::offer::{self, Offer};
use crate::tap::Tap;

/// How often a waiting thread looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);
/// DHCP frames waiting for the uplink.
const OUTGOING_QUEUE: usize = 16;
/// DHCP replies waiting for the agent.
pub const EVENT_QUEUE: usize = 64;
/// The largest frame either way: what the 2-byte length can say.
const MAX_FRAME: usize = u16::MAX as usize;

/// What a session tells the agent.
#[derive(Debug)]
pub enum Event {
    /// A DHCP reply for us, and the MAC it came from.
    Dhcp(Vec<u8>, EthernetAddress),
    /// The session ended, and why.
    Down(String),
}

/// Counters of the agent's link, across sessions.
#[derive(Debug, Default)]
pub struct Counters {
    pub frames_up: AtomicU64,
    pub frames_down: AtomicU64,
    /// Frames dropped: a TAP write refused, a frame too long for the framing, a header from
    /// the TAP that does not fit its frame.
    pub dropped: AtomicU64,
    /// TCP super-segments sent whole with their header, and received so.
    pub super_up: AtomicU64,
    pub super_down: AtomicU64,
    /// Frames from the TAP finished in software (a peer without the header, a frame too long
    /// for the framing).
    pub finished: AtomicU64,
}

/// What the TAP and the connection carry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Link {
    /// The TAP carries a virtio-net header.
    pub vnet: bool,
    /// The offer made in this connection's request, if any.
    pub offer: Option<Offer>,
}

/// A running session.
#[derive(Debug)]
pub struct Session {
    stop: Arc<AtomicBool>,
    outgoing: Sender<Vec<u8>>,
    threads: Vec<JoinHandle<()>>,
    closer: Option<socket2::Socket>,
}

impl Session {
    /// Starts moving frames between `tap` and `conn`.
    pub fn start(
        tap: &Tap,
        conn: Conn,
        (mac, link): (EthernetAddress, Link),
        events: Sender<Event>,
        counters: Arc<Counters>,
    ) -> io::Result<Session> {
        let stop = Arc::new(AtomicBool::new(false));
        // Set by the downlink when host-switch accepts the offer.
        let agreed = Arc::new(AtomicBool::new(false));
        let reported = Arc::new(AtomicBool::new(false));
        let closer = conn.closer()?;
        let (outgoing, queued) = crossbeam_channel::bounded(OUTGOING_QUEUE);
        let end = {
            let stop = stop.clone();
            let events = events.clone();
            let closer = conn.closer()?;
            move |why: String| {
                stop.store(true, Ordering::Relaxed);
                if let Some(socket) = &closer {
                    let _ = socket.shutdown(std::net::Shutdown::Both);
                }
                if !reported.swap(true, Ordering::AcqRel) {
                    let _ = events.send(Event::Down(why));
                }
            }
        };
        let end = Arc::new(end);
        let Conn { read, write, .. } = conn;
        let up = {
            let mut uplink = Uplink {
                tap: tap.try_clone()?,
                out: write,
                encoder: Encoder::new(LengthPrefix::U16Le, MAX_FRAME),
                link,
                agreed: agreed.clone(),
                acked: false,
                counters: counters.clone(),
                scratch: Vec::new(),
                framed: Vec::new(),
            };
            let (stop, end) = (stop.clone(), end.clone());
            std::thread::Builder::new()
                .name("guest-up".into())
                .spawn(move || {
                    let why = uplink.run(&queued, &stop);
                    end(why);
                })?
        };
        let down = {
            let tap = tap.try_clone()?;
            let (stop, end) = (stop.clone(), end.clone());
            std::thread::Builder::new()
                .name("guest-down".into())
                .spawn(move || {
                    let why = downlink(&tap, read, (mac, link, &agreed), &events, &stop, &counters);
                    end(why);
                })?
        };
        Ok(Session {
            stop,
            outgoing,
            threads: vec![up, down],
            closer,
        })
    }

    /// Queues a frame for the host (the DHCP client's); false when the queue is full.
    pub fn send(&self, frame: Vec<u8>) -> bool {
        self.outgoing.try_send(frame).is_ok()
    }

    /// Stops both threads and waits for them.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(socket) = &self.closer {
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The uplink's state: see the module docs.
struct Uplink {
    tap: Tap,
    out: std::fs::File,
    encoder: Encoder,
    link: Link,
    /// Host-switch accepted the offer (set by the downlink).
    agreed: Arc<AtomicBool>,
    /// The acknowledgement is sent: frames go with their header.
    acked: bool,
    counters: Arc<Counters>,
    /// Where super-segments are finished.
    scratch: Vec<u8>,
    /// A frame put behind a header of zeros.
    framed: Vec<u8>,
}

impl Uplink {
    fn run(&mut self, queued: &Receiver<Vec<u8>>, stop: &AtomicBool) -> String {
        // Room for a header and the largest frame the kernel may hand over.
        let mut buf = vec![0u8; HEADER_LEN + MAX_FRAME + 1];
        while !stop.load(Ordering::Relaxed) {
            if let Err(e) = self.acknowledge() {
                return format!("writing to host-switch: {e}");
            }
            for frame in queued.try_iter() {
                if let Err(e) = self.send_plain(&frame) {
                    return format!("writing to host-switch: {e}");
                }
            }
            match self.tap.wait_readable(Some(STOP_POLL)) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => return format!("waiting on the TAP: {e}"),
            }
            let n = match self.tap.read_frame(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return format!("reading the TAP: {e}"),
            };
            let read = buf.get(..n).unwrap_or_default();
            let sent = if self.link.vnet {
                self.send_from_vnet_tap(read)
            } else if n == 0 || n > MAX_FRAME {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            } else {
                self.encoder.write_frame(&mut self.out, read)
            };
            if let Err(e) = sent {
                return format!("writing to host-switch: {e}");
            }
            self.counters.frames_up.fetch_add(1, Ordering::Relaxed);
        }
        "stopped".to_owned()
    }

    /// Sends the acknowledgement once host-switch has accepted the offer.
    fn acknowledge(&mut self) -> io::Result<()> {
        if self.acked || !self.agreed.load(Ordering::Acquire) {
            return Ok(());
        }
        let Some(offer) = self.link.offer else {
            return Ok(());
        };
        self.encoder
            .write_frame(&mut self.out, &offer.ack_marker())?;
        self.acked = true;
        tracing::info!("virtio-net header agreed with host-switch");
        Ok(())
    }

    /// A frame read from a TAP with the header (`read`: header and frame): sent as it is
    /// where the header is agreed and the frame fits, finished in software otherwise.
    fn send_from_vnet_tap(&mut self, read: &[u8]) -> io::Result<()> {
        let Some((header, frame)) = read.split_first_chunk::<HEADER_LEN>() else {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        };
        let Ok(repr) = VirtioNetRepr::parse_for(header, frame) else {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        };
        if frame.is_empty() {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        if self.acked && read.len() <= MAX_FRAME {
            if repr.is_gso() {
                self.counters.super_up.fetch_add(1, Ordering::Relaxed);
            }
            return self.encoder.write_frame(&mut self.out, read);
        }
        if !repr.needs_finishing() {
            return self.send_plain(frame);
        }
        self.counters.finished.fetch_add(1, Ordering::Relaxed);
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut sent = Ok(());
        let finished = finish(frame, &repr, &mut scratch, &mut |piece| {
            if sent.is_ok() {
                sent = self.send_plain(piece);
            }
        });
        self.scratch = scratch;
        if finished.is_err() {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
        sent
    }

    /// Sends a frame with nothing left to finish: alone, or behind a header of zeros where
    /// the header is agreed.
    fn send_plain(&mut self, frame: &[u8]) -> io::Result<()> {
        if !self.acked {
            if frame.len() > MAX_FRAME {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            return self.encoder.write_frame(&mut self.out, frame);
        }
        if frame.len() > offer::MAX_ETHERNET {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        self.framed.clear();
        self.framed
            .extend_from_slice(&VirtioNetRepr::PLAIN.to_bytes());
        self.framed.extend_from_slice(frame);
        self.encoder.write_frame(&mut self.out, &self.framed)
    }
}

fn downlink(
    tap: &Tap,
    mut input: std::fs::File,
    (mac, link, agreed): (EthernetAddress, Link, &AtomicBool),
    events: &Sender<Event>,
    stop: &AtomicBool,
    counters: &Counters,
) -> String {
    let mut decoder = Decoder::new(LengthPrefix::U16Le, MAX_FRAME);
    // Only the first frame of the connection can be the accept marker.
    let mut first = true;
    let mut with_header = false;
    let mut tap_errors = 0u64;
    loop {
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    if std::mem::take(&mut first) && link.offer.is_some_and(|o| o.is_accept(frame))
                    {
                        with_header = true;
                        agreed.store(true, Ordering::Release);
                        continue;
                    }
                    counters.frames_down.fetch_add(1, Ordering::Relaxed);
                    let (header, eth) = if with_header {
                        // A header host-switch wrote is checked all the same.
                        let split =
                            frame
                                .split_first_chunk::<HEADER_LEN>()
                                .and_then(|(header, eth)| {
                                    let repr = VirtioNetRepr::parse_for(header, eth).ok()?;
                                    Some((*header, eth, repr))
                                });
                        let Some((header, eth, repr)) = split else {
                            counters.dropped.fetch_add(1, Ordering::Relaxed);
                            continue;
                        };
                        if repr.is_gso() {
                            counters.super_down.fetch_add(1, Ordering::Relaxed);
                        }
                        (header, eth)
                    } else {
                        (VirtioNetRepr::PLAIN.to_bytes(), frame)
                    };
                    let written = if let Some((payload, from)) = dhcp_reply(eth, mac) {
                        let _ = events.try_send(Event::Dhcp(payload.to_vec(), from));
                        Ok(())
                    } else if link.vnet {
                        tap.write_vnet(&header, eth)
                    } else {
                        // No header on the TAP means none was offered.
                        tap.write_frame(eth)
                    };
                    if let Err(e) = written {
                        counters.dropped.fetch_add(1, Ordering::Relaxed);
                        tap_errors += 1;
                        if tap_errors.is_power_of_two() {
                            tracing::debug!(error = %e, tap_errors, "TAP write refused; frame dropped");
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => return format!("bad framing from host-switch: {e}"),
            }
        }
        if stop.load(Ordering::Relaxed) {
            return "stopped".to_owned();
        }
        match wait_readable(&input, STOP_POLL) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => return format!("waiting on the connection: {e}"),
        }
        let spare = decoder.spare();
        match input.read(spare) {
            Ok(0) => return "host-switch closed the connection".to_owned(),
            Ok(n) => decoder.commit(n),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
                ) => {}
            Err(e) => return format!("reading from host-switch: {e}"),
        }
    }
}
