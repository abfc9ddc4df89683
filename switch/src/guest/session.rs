//! One connection's life: frames between the TAP and host-switch, both ways, until either
//! end stops.
//!
//! - **Uplink** (a thread): frames the kernel sends out of the TAP, and the DHCP client's
//!   frames queued by the agent ([`Session::outgoing`], bounded), written to the connection
//!   with the 2-byte little-endian length before each.
//! - **Downlink** (a thread): the connection's bytes through a bounded [`Decoder`]; a DHCP
//!   reply for our MAC goes to the agent ([`Event::Dhcp`]), every other frame into the TAP.
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
use stack::wire::EthernetAddress;

use super::lease::dhcp_reply;
use super::transport::{Conn, wait_readable};
use crate::framing::{Decoder, Encoder, LengthPrefix};
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
    /// Frames dropped: a TAP write refused, a frame too long for the framing.
    pub dropped: AtomicU64,
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
        mac: EthernetAddress,
        events: Sender<Event>,
        counters: Arc<Counters>,
    ) -> io::Result<Session> {
        let stop = Arc::new(AtomicBool::new(false));
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
            let tap = tap.try_clone()?;
            let (stop, end, counters) = (stop.clone(), end.clone(), counters.clone());
            std::thread::Builder::new()
                .name("guest-up".into())
                .spawn(move || {
                    let why = uplink(&tap, write, &queued, &stop, &counters);
                    end(why);
                })?
        };
        let down = {
            let tap = tap.try_clone()?;
            let (stop, end) = (stop.clone(), end.clone());
            std::thread::Builder::new()
                .name("guest-down".into())
                .spawn(move || {
                    let why = downlink(&tap, read, mac, &events, &stop, &counters);
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

fn uplink(
    tap: &Tap,
    mut out: std::fs::File,
    queued: &Receiver<Vec<u8>>,
    stop: &AtomicBool,
    counters: &Counters,
) -> String {
    let encoder = Encoder::new(LengthPrefix::U16Le, MAX_FRAME);
    let mut buf = vec![0u8; MAX_FRAME + 1];
    while !stop.load(Ordering::Relaxed) {
        for frame in queued.try_iter() {
            if let Err(e) = encoder.write_frame(&mut out, &frame) {
                return format!("writing to host-switch: {e}");
            }
        }
        match tap.wait_readable(Some(STOP_POLL)) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => return format!("waiting on the TAP: {e}"),
        }
        let n = match tap.read_frame(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return format!("reading the TAP: {e}"),
        };
        let frame = buf.get(..n).unwrap_or_default();
        if n == 0 || n > MAX_FRAME {
            counters.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if let Err(e) = encoder.write_frame(&mut out, frame) {
            return format!("writing to host-switch: {e}");
        }
        counters.frames_up.fetch_add(1, Ordering::Relaxed);
    }
    "stopped".to_owned()
}

fn downlink(
    tap: &Tap,
    mut input: std::fs::File,
    mac: EthernetAddress,
    events: &Sender<Event>,
    stop: &AtomicBool,
    counters: &Counters,
) -> String {
    let mut decoder = Decoder::new(LengthPrefix::U16Le, MAX_FRAME);
    let mut tap_errors = 0u64;
    loop {
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    counters.frames_down.fetch_add(1, Ordering::Relaxed);
                    if let Some((payload, from)) = dhcp_reply(frame, mac) {
                        let _ = events.try_send(Event::Dhcp(payload.to_vec(), from));
                    } else if let Err(e) = tap.write_frame(frame) {
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
