use super::*;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::{Mutex, PoisonError};

use stack::wire::checksum;

const GUEST: [u8; 6] = [0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xee];
const GATEWAY: [u8; 6] = [0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xdd];

fn arp_request() -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&GUEST);
    f.extend_from_slice(&[0x08, 0x06]);
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&GUEST);
    f.extend_from_slice(&[192, 168, 127, 2]);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&[192, 168, 127, 1]);
    f.resize(60, 0);
    f
}

fn udp_datagram(payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&GATEWAY);
    f.extend_from_slice(&GUEST);
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + 8 + payload.len()) as u16;
    let mut ip = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 17, 0, 0];
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[192, 168, 127, 2, 192, 168, 127, 1]);
    let sum = checksum::checksum(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&ip);
    // UDP 40000 -> 9999, checksum 0 (none, RFC 768).
    f.extend_from_slice(&40000u16.to_be_bytes());
    f.extend_from_slice(&9999u16.to_be_bytes());
    f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

/// Parses a pcap file back: (seconds, micros, captured bytes, original length) per record.
fn parse(bytes: &[u8]) -> Vec<(u32, u32, Vec<u8>, u32)> {
    let u32_at = |b: &[u8], i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap());
    assert_eq!(u32_at(bytes, 0), 0xa1b2_c3d4);
    assert_eq!(&bytes[4..8], &[2, 0, 4, 0]);
    assert_eq!(u32_at(bytes, 20), LINKTYPE_ETHERNET);
    let mut out = Vec::new();
    let mut i = 24;
    while i < bytes.len() {
        let incl = u32_at(bytes, i + 8) as usize;
        out.push((
            u32_at(bytes, i),
            u32_at(bytes, i + 4),
            bytes[i + 16..i + 16 + incl].to_vec(),
            u32_at(bytes, i + 12),
        ));
        i += 16 + incl;
    }
    assert_eq!(i, bytes.len());
    out
}

fn temp_path(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("hs-pcap-{}-{n}-{tag}.pcap", std::process::id()))
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn header_and_record_layout() {
    let mut w = PcapWriter::new(Vec::new()).unwrap();
    let frame = arp_request();
    w.write_frame(Duration::new(1_700_000_000, 123_456_789), &frame)
        .unwrap();
    let bytes = w.into_inner();
    assert_eq!(bytes.len(), 24 + 16 + 60);
    assert_eq!(&bytes[16..20], &DEFAULT_SNAPLEN.to_le_bytes());
    let records = parse(&bytes);
    assert_eq!(records, vec![(1_700_000_000, 123_456, frame, 60)]);
}

#[test]
fn snaplen_cuts_and_keeps_original_length() {
    let mut w = PcapWriter::with_snaplen(Vec::new(), 20).unwrap();
    let frame = udp_datagram(b"0123456789");
    w.write_frame(Duration::ZERO, &frame).unwrap();
    let records = parse(&w.into_inner());
    assert_eq!(records[0].2, &frame[..20]);
    assert_eq!(records[0].3 as usize, frame.len());
}

#[test]
fn tcpdump_reads_the_capture() {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let has_tcpdump = Command::new("tcpdump").arg("--version").output().is_ok();
    if !has_tcpdump {
        assert!(!ci, "tcpdump is required under CI=true");
        crate::skip::skipped(
            "pcap::tests::tcpdump_reads_the_capture",
            "tcpdump is not installed",
        );
        return;
    }
    let path = temp_path("tcpdump");
    let _cleanup = RemoveOnDrop(path.clone());
    let (sink, thread) = create(&path, PcapConfig::default()).unwrap();
    sink.capture_at(Duration::new(1_700_000_000, 1_000), &arp_request());
    sink.capture_at(Duration::new(1_700_000_001, 2_000), &udp_datagram(b"ping"));
    sink.capture(&arp_request());
    thread.finish().unwrap();
    assert_eq!(
        sink.counters(),
        PcapCounters {
            queued: 3,
            written: 3,
            dropped: 0
        }
    );

    let out = Command::new("tcpdump")
        .args(["-r"])
        .arg(&path)
        .args(["-nn", "-tt"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0]
            .starts_with("1700000000.000001 ARP, Request who-has 192.168.127.1 tell 192.168.127.2"),
        "{text}"
    );
    assert!(
        lines[1].starts_with(
            "1700000001.000002 IP 192.168.127.2.40000 > 192.168.127.1.9999: UDP, length 4"
        ),
        "{text}"
    );
    assert!(
        lines[2].contains("ARP, Request who-has 192.168.127.1"),
        "{text}"
    );
}

#[test]
fn many_threads_capture_concurrently() {
    let out = Arc::new(Mutex::new(Vec::new()));
    let (sink, thread) = spawn(SharedVec(Arc::clone(&out)), PcapConfig::default()).unwrap();
    std::thread::scope(|s| {
        for t in 0..4u8 {
            let sink = sink.clone();
            s.spawn(move || {
                for i in 0..250u16 {
                    let mut f = udp_datagram(&i.to_be_bytes());
                    f[0] = t;
                    sink.capture(&f);
                }
            });
        }
    });
    thread.finish().unwrap();
    let c = sink.counters();
    assert_eq!((c.queued, c.written, c.dropped), (1000, 1000, 0));
    let bytes = out.lock().unwrap_or_else(PoisonError::into_inner).clone();
    let records = parse(&bytes);
    assert_eq!(records.len(), 1000);
    for t in 0..4u8 {
        let mine: Vec<_> = records.iter().filter(|r| r.2[0] == t).collect();
        // Each thread's frames are all there, in the order it sent them.
        assert_eq!(mine.len(), 250);
        for (i, r) in mine.iter().enumerate() {
            assert_eq!(&r.2[r.2.len() - 2..], &(i as u16).to_be_bytes());
        }
    }
}

#[test]
fn a_full_queue_drops_and_counts_without_blocking() {
    let gate = Arc::new(AtomicBool::new(false));
    let out = Gated {
        open: Arc::clone(&gate),
        header_written: false,
    };
    let config = PcapConfig {
        queue_frames: 2,
        ..PcapConfig::default()
    };
    let (sink, thread) = spawn(out, config).unwrap();
    for _ in 0..10 {
        sink.capture(&arp_request());
    }
    // The writer holds at most one frame and the queue two.
    assert!(sink.counters().dropped >= 7, "{:?}", sink.counters());
    gate.store(true, Ordering::Relaxed);
    thread.finish().unwrap();
    let c = sink.counters();
    assert_eq!(c.written + c.dropped, 10, "{c:?}");
    assert_eq!(c.written, c.queued);
    // After finish, frames are dropped, not queued.
    sink.capture(&arp_request());
    assert_eq!(sink.counters().dropped, c.dropped + 1);
}

#[test]
fn a_shared_frame_is_queued_as_a_handle_and_written_like_a_copied_one() {
    let gate = Arc::new(AtomicBool::new(false));
    let out = Gated {
        open: Arc::clone(&gate),
        header_written: false,
    };
    let (sink, thread) = spawn(out, PcapConfig::default()).unwrap();
    let frame = Bytes::from(udp_datagram(b"shared"));
    sink.capture_shared(&frame);
    sink.capture_shared(&frame);
    // The writer holds one, the queue the other: handles on the frame, not copies of it.
    assert!(!frame.is_unique());
    gate.store(true, Ordering::Relaxed);
    thread.finish().unwrap();
    assert!(frame.is_unique(), "the writer let go of it");
    assert_eq!(sink.counters().written, 2);

    let path = temp_path("shared");
    let _cleanup = RemoveOnDrop(path.clone());
    let config = PcapConfig {
        snaplen: 20,
        ..PcapConfig::default()
    };
    let (sink, thread) = create(&path, config).unwrap();
    sink.capture_shared(&frame);
    sink.capture(&frame);
    thread.finish().unwrap();
    let records = parse(&std::fs::read(&path).unwrap());
    assert_eq!(records.len(), 2);
    for (_, _, data, orig_len) in &records {
        assert_eq!(data.as_slice(), &frame[..20]);
        assert_eq!(*orig_len as usize, frame.len());
    }
}

#[test]
fn the_byte_bound_drops_too() {
    let gate = Arc::new(AtomicBool::new(false));
    let out = Gated {
        open: Arc::clone(&gate),
        header_written: false,
    };
    let config = PcapConfig {
        queue_bytes: 100,
        ..PcapConfig::default()
    };
    let (sink, thread) = spawn(out, config).unwrap();
    sink.capture(&arp_request());
    sink.capture(&arp_request());
    assert_eq!(sink.counters().dropped, 1);
    gate.store(true, Ordering::Relaxed);
    thread.finish().unwrap();
    assert_eq!(sink.counters().written, 1);
}

#[test]
fn a_write_error_is_reported_and_later_frames_dropped() {
    let (sink, thread) = spawn(FailAfterHeader { writes: 0 }, PcapConfig::default()).unwrap();
    sink.capture(&arp_request());
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while thread.handle.as_ref().is_some_and(|h| !h.is_finished())
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(1));
    }
    sink.capture(&arp_request());
    assert!(thread.finish().is_err());
    let c = sink.counters();
    assert_eq!((c.queued, c.written, c.dropped), (1, 0, 2));
}

/// A `Write` into a shared vector, to look at after the writer thread ends.
struct SharedVec(Arc<Mutex<Vec<u8>>>);

impl Write for SharedVec {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut v = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        v.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A `Write` that takes the header, then stalls until `open` (bounded wait).
struct Gated {
    open: Arc<AtomicBool>,
    header_written: bool,
}

impl Write for Gated {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.header_written {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while !self.open.load(Ordering::Relaxed) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        self.header_written = true;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A `Write` that takes the header and then fails.
struct FailAfterHeader {
    writes: usize,
}

impl Write for FailAfterHeader {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writes += 1;
        if self.writes > 1 {
            return Err(io::Error::other("disk full"));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
