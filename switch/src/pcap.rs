//! Frame capture in the classic pcap format (`-pcap FILE`), readable by tcpdump and tshark.
//!
//! Format: the libpcap file format with microsecond timestamps — a 24-byte global header
//! (magic 0xa1b2c3d4 in little-endian byte order, version 2.4, [`LINKTYPE_ETHERNET`], snapshot
//! length [`DEFAULT_SNAPLEN`]), then per frame a 16-byte record header (seconds, microseconds,
//! captured length, original length) and the frame's bytes, cut at the snapshot length.
//!
//! [`PcapWriter`] writes that format to any `Write`, synchronously. For the switch, [`spawn`]
//! (or [`create`]) starts a writer thread and returns a [`PcapSink`]: a cheap-to-clone handle any
//! thread may call [`PcapSink::capture`] on. Contracts:
//! - **Never blocks the per-frame path**: `capture` reads the clock, copies the frame and does a
//!   `try_send` on a bounded channel; no lock is taken.
//! - **Bounded**: at most `queue_frames` frames wait for the writer, and at most `queue_bytes`
//!   bytes of frames are queued or being written. Past either bound — or once the writer has stopped — the frame is not captured and
//!   `dropped` is bumped. A capture file with drops is incomplete, never corrupt.
//! - The writer thread buffers its output and flushes whenever its queue runs empty, so a
//!   reader sees frames promptly; [`PcapThread::finish`] drains the queue, flushes, and reports
//!   the first write error (after which the thread stops and later frames count as dropped).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};

/// LINKTYPE_ETHERNET: IEEE 802.3 Ethernet frames, without FCS.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// tcpdump's own maximum snapshot length; larger than any frame we carry.
pub const DEFAULT_SNAPLEN: u32 = 262_144;
/// The pcap magic number for microsecond timestamps.
const MAGIC_MICROS: u32 = 0xa1b2_c3d4;
const VERSION_MAJOR: u16 = 2;
const VERSION_MINOR: u16 = 4;

/// Writes the pcap format to `W`. Not thread-safe by itself; see [`PcapSink`].
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    out: W,
    snaplen: u32,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the global header with [`DEFAULT_SNAPLEN`].
    pub fn new(out: W) -> io::Result<PcapWriter<W>> {
        PcapWriter::with_snaplen(out, DEFAULT_SNAPLEN)
    }

    /// Writes the global header; frames longer than `snaplen` are cut to it.
    pub fn with_snaplen(mut out: W, snaplen: u32) -> io::Result<PcapWriter<W>> {
        let mut header = [0u8; 24];
        header[0..4].copy_from_slice(&MAGIC_MICROS.to_le_bytes());
        header[4..6].copy_from_slice(&VERSION_MAJOR.to_le_bytes());
        header[6..8].copy_from_slice(&VERSION_MINOR.to_le_bytes());
        // thiszone (8..12) and sigfigs (12..16) stay zero.
        header[16..20].copy_from_slice(&snaplen.to_le_bytes());
        header[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        out.write_all(&header)?;
        Ok(PcapWriter { out, snaplen })
    }

    /// Writes one record: `frame` captured at `timestamp` (since the Unix epoch), which was
    /// `orig_len` bytes long on the wire (at least `frame.len()`).
    pub fn write_record(
        &mut self,
        timestamp: Duration,
        frame: &[u8],
        orig_len: usize,
    ) -> io::Result<()> {
        let incl = frame.len().min(self.snaplen as usize);
        let frame = frame.get(..incl).unwrap_or_default();
        let orig = u32::try_from(orig_len.max(incl)).unwrap_or(u32::MAX);
        let secs = u32::try_from(timestamp.as_secs()).unwrap_or(u32::MAX);
        let mut header = [0u8; 16];
        header[0..4].copy_from_slice(&secs.to_le_bytes());
        header[4..8].copy_from_slice(&timestamp.subsec_micros().to_le_bytes());
        header[8..12].copy_from_slice(&(incl as u32).to_le_bytes());
        header[12..16].copy_from_slice(&orig.to_le_bytes());
        self.out.write_all(&header)?;
        self.out.write_all(frame)
    }

    /// Writes one whole frame captured at `timestamp`.
    pub fn write_frame(&mut self, timestamp: Duration, frame: &[u8]) -> io::Result<()> {
        self.write_record(timestamp, frame, frame.len())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Bounds of the capture queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcapConfig {
    /// Frames waiting for the writer, at most.
    pub queue_frames: usize,
    /// Bytes of frames waiting for the writer, at most.
    pub queue_bytes: usize,
    pub snaplen: u32,
}

impl Default for PcapConfig {
    fn default() -> PcapConfig {
        PcapConfig {
            queue_frames: 8192,
            queue_bytes: 32 << 20,
            snaplen: DEFAULT_SNAPLEN,
        }
    }
}

/// A snapshot of a capture's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PcapCounters {
    /// Frames handed to the writer thread.
    pub queued: u64,
    /// Frames written to the output.
    pub written: u64,
    /// Frames not captured: queue full, writer stopped, or their write failed.
    pub dropped: u64,
}

#[derive(Debug, Default)]
struct Shared {
    queued: AtomicU64,
    written: AtomicU64,
    dropped: AtomicU64,
    queued_bytes: AtomicUsize,
}

enum Msg {
    Frame {
        timestamp: Duration,
        data: Bytes,
        orig_len: usize,
    },
    Stop,
}

/// The time since the Unix epoch, as a capture's timestamp.
fn wall_clock() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// A handle to capture frames from any thread. Clone it freely.
#[derive(Debug, Clone)]
pub struct PcapSink {
    tx: Sender<Msg>,
    shared: Arc<Shared>,
    max_bytes: usize,
    snaplen: usize,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Msg::Frame { data, .. } => write!(f, "Frame({} bytes)", data.len()),
            Msg::Stop => f.write_str("Stop"),
        }
    }
}

impl PcapSink {
    /// Captures `frame` with the current wall-clock time, copying at most the snap length of
    /// it: for a frame in a buffer that is reused (the transmit buffer) or that a clone would
    /// keep from being reused (the receive arena) until the writer got to it. Never blocks.
    pub fn capture(&self, frame: &[u8]) {
        self.capture_at(wall_clock(), frame);
    }

    /// Captures `frame` with `timestamp` (since the Unix epoch), copying it. Never blocks.
    pub fn capture_at(&self, timestamp: Duration, frame: &[u8]) {
        let data = frame
            .get(..frame.len().min(self.snaplen))
            .unwrap_or_default();
        self.enqueue(timestamp, Bytes::copy_from_slice(data), frame.len());
    }

    /// Captures a frame that has its own allocation with the current wall-clock time: the
    /// queue takes another handle on it, not a copy. Never blocks.
    pub fn capture_shared(&self, frame: &Bytes) {
        let data = frame.slice(..frame.len().min(self.snaplen));
        self.enqueue(wall_clock(), data, frame.len());
    }

    /// Queues `data` (already cut to the snap length) for the writer, within the bounds.
    fn enqueue(&self, timestamp: Duration, data: Bytes, orig_len: usize) {
        let len = data.len();
        let before = self.shared.queued_bytes.fetch_add(len, Ordering::Relaxed);
        if before.saturating_add(len) > self.max_bytes {
            self.shared.queued_bytes.fetch_sub(len, Ordering::Relaxed);
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let msg = Msg::Frame {
            timestamp,
            data,
            orig_len,
        };
        match self.tx.try_send(msg) {
            Ok(()) => {
                self.shared.queued.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.shared.queued_bytes.fetch_sub(len, Ordering::Relaxed);
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub fn counters(&self) -> PcapCounters {
        self.shared.snapshot()
    }
}

impl Shared {
    fn snapshot(&self) -> PcapCounters {
        PcapCounters {
            queued: self.queued.load(Ordering::Relaxed),
            written: self.written.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

/// The writer thread. [`PcapThread::finish`] stops it; dropping it does the same, ignoring
/// errors.
#[derive(Debug)]
pub struct PcapThread {
    tx: Sender<Msg>,
    shared: Arc<Shared>,
    handle: Option<JoinHandle<io::Result<()>>>,
}

impl PcapThread {
    /// Writes what is queued, flushes, stops the thread, and returns the first write error.
    /// Frames captured afterwards are counted as dropped.
    pub fn finish(mut self) -> io::Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> io::Result<()> {
        let Some(handle) = self.handle.take() else {
            return Ok(());
        };
        // Blocks only while the writer drains the queue ahead of it; fails at once if the
        // writer has already stopped.
        let _ = self.tx.send(Msg::Stop);
        handle
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("pcap writer thread panicked")))
    }

    pub fn counters(&self) -> PcapCounters {
        self.shared.snapshot()
    }
}

impl Drop for PcapThread {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Creates (truncating) the pcap file at `path` and starts its writer thread.
pub fn create(path: &Path, config: PcapConfig) -> io::Result<(PcapSink, PcapThread)> {
    let file = File::create(path)?;
    spawn(BufWriter::with_capacity(64 * 1024, file), config)
}

/// Creates (truncating) the pcap file at `path`, moved aside to `path.1` whenever it would
/// grow past `max_bytes` ([`crate::pcap_rotate`]), and starts its writer thread.
pub fn create_rotating(
    path: &Path,
    config: PcapConfig,
    max_bytes: u64,
) -> io::Result<(PcapSink, PcapThread)> {
    spawn(
        crate::pcap_rotate::RotatingFile::create(path, max_bytes)?,
        config,
    )
}

/// Writes the pcap header to `out` and starts a thread writing captured frames to it.
pub fn spawn<W: Write + Send + 'static>(
    out: W,
    config: PcapConfig,
) -> io::Result<(PcapSink, PcapThread)> {
    let writer = PcapWriter::with_snaplen(out, config.snaplen)?;
    let (tx, rx) = crossbeam_channel::bounded(config.queue_frames.max(1));
    let shared = Arc::new(Shared::default());
    let thread_shared = Arc::clone(&shared);
    let handle = std::thread::Builder::new()
        .name("pcap-writer".into())
        .spawn(move || run_writer(writer, &rx, &thread_shared))?;
    let sink = PcapSink {
        tx: tx.clone(),
        shared: Arc::clone(&shared),
        max_bytes: config.queue_bytes,
        snaplen: config.snaplen as usize,
    };
    let thread = PcapThread {
        tx,
        shared,
        handle: Some(handle),
    };
    Ok((sink, thread))
}

fn run_writer<W: Write>(
    mut writer: PcapWriter<W>,
    rx: &Receiver<Msg>,
    shared: &Shared,
) -> io::Result<()> {
    let result = write_until_stopped(&mut writer, rx, shared);
    if result.is_err() {
        // What is still queued will never be written.
        let lost = rx
            .try_iter()
            .filter(|m| matches!(m, Msg::Frame { .. }))
            .count();
        shared.dropped.fetch_add(lost as u64, Ordering::Relaxed);
    }
    result
}

fn write_until_stopped<W: Write>(
    writer: &mut PcapWriter<W>,
    rx: &Receiver<Msg>,
    shared: &Shared,
) -> io::Result<()> {
    loop {
        // Every sender gone cannot happen while PcapThread holds one; handled all the same.
        let Ok(mut msg) = rx.recv() else {
            return writer.flush();
        };
        // Write everything queued, then flush once the queue runs empty.
        loop {
            match msg {
                Msg::Stop => return writer.flush(),
                Msg::Frame {
                    timestamp,
                    data,
                    orig_len,
                } => {
                    let result = writer.write_record(timestamp, &data, orig_len);
                    // Counted until written, so the byte bound covers the frame in hand too.
                    shared.queued_bytes.fetch_sub(data.len(), Ordering::Relaxed);
                    if let Err(e) = result {
                        shared.dropped.fetch_add(1, Ordering::Relaxed);
                        return Err(e);
                    }
                    shared.written.fetch_add(1, Ordering::Relaxed);
                }
            }
            msg = match rx.try_recv() {
                Ok(next) => next,
                Err(TryRecvError::Empty) => {
                    writer.flush()?;
                    break;
                }
                Err(TryRecvError::Disconnected) => return writer.flush(),
            };
        }
    }
}

#[cfg(test)]
#[path = "pcap_tests.rs"]
mod tests;
