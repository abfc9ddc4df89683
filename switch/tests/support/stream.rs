//! Byte streams checked end to end: the [`Pattern`] every test transfer carries (byte `i`
//! is a fixed function of `i`, so a lost, repeated or reordered chunk shows), a host-side
//! [`Sink`] that reads one connection to its end and says how it ended, and [`UPLOADER`], a
//! guest-side Python script that sends the same pattern.

use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::eventually;

/// The bytes every transfer here carries: byte `i` of a stream is `TABLE[i % PERIOD]`, a
/// period prime to every chunk size, so a lost, repeated or reordered chunk shows.
pub(crate) struct Pattern(Vec<u8>);

pub(crate) const PERIOD: usize = (1 << 16) + 13;

impl Pattern {
    pub(crate) fn new() -> Pattern {
        Pattern(
            (0..PERIOD as u64)
                .map(|i| (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as u8)
                .collect(),
        )
    }

    /// Calls `f` with the pattern's slices that cover stream bytes `offset..offset + len`.
    pub(crate) fn for_each(&self, offset: u64, len: usize, mut f: impl FnMut(&[u8])) {
        let mut at = (offset % PERIOD as u64) as usize;
        let mut left = len;
        while left > 0 {
            let n = left.min(PERIOD - at);
            f(&self.0[at..at + n]);
            left -= n;
            at = 0;
        }
    }

    pub(crate) fn fill(&self, offset: u64, buf: &mut Vec<u8>, len: usize) {
        buf.clear();
        self.for_each(offset, len, |s| buf.extend_from_slice(s));
    }

    pub(crate) fn matches(&self, offset: u64, data: &[u8]) -> bool {
        let mut rest = data;
        let mut ok = true;
        self.for_each(offset, data.len(), |s| {
            let (head, tail) = rest.split_at(s.len());
            ok &= head == s;
            rest = tail;
        });
        ok
    }
}

/// How a host-side read of a transfer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    Eof,
    Reset,
    Other(io::ErrorKind),
}

#[derive(Debug)]
pub(crate) struct Received {
    pub(crate) bytes: u64,
    pub(crate) intact: bool,
    pub(crate) end: End,
    pub(crate) at: Instant,
}

/// A host server on 127.0.0.1 taking one connection and reading it to its end, checking the
/// pattern; `go` holds the reading back until it is set. `progress` counts bytes read.
pub(crate) struct Sink {
    pub(crate) port: u16,
    pub(crate) progress: Arc<AtomicU64>,
    /// Set once the connection is accepted.
    pub(crate) accepted: Arc<AtomicBool>,
    pub(crate) go: Arc<AtomicBool>,
    pub(crate) handle: JoinHandle<Received>,
}

impl Sink {
    pub(crate) fn start(recv_buffer: Option<usize>, reading: bool) -> Sink {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        if let Some(size) = recv_buffer {
            // Inherited by the accepted connection: the host's kernel holds little unread.
            socket.set_recv_buffer_size(size).expect("SO_RCVBUF");
        }
        socket
            .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .expect("bind");
        socket.listen(8).expect("listen");
        let listener = TcpListener::from(socket);
        let port = listener.local_addr().expect("address").port();
        let progress = Arc::new(AtomicU64::new(0));
        let go = Arc::new(AtomicBool::new(reading));
        let accepted = Arc::new(AtomicBool::new(false));
        let (p, g, a) = (progress.clone(), go.clone(), accepted.clone());
        let handle = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().expect("accept");
            a.store(true, Ordering::Relaxed);
            while !g.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(10));
            }
            conn.set_read_timeout(Some(Duration::from_secs(10)))
                .expect("read timeout");
            let pattern = Pattern::new();
            let mut buf = vec![0u8; 256 * 1024];
            let (mut bytes, mut intact) = (0u64, true);
            let end = loop {
                match conn.read(&mut buf) {
                    Ok(0) => break End::Eof,
                    Ok(n) => {
                        intact &= pattern.matches(bytes, &buf[..n]);
                        bytes += n as u64;
                        p.store(bytes, Ordering::Relaxed);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break End::Reset,
                    Err(e) => break End::Other(e.kind()),
                }
            };
            Received {
                bytes,
                intact,
                end,
                at: Instant::now(),
            }
        });
        Sink {
            port,
            progress,
            accepted,
            go,
            handle,
        }
    }

    pub(crate) fn received(&self) -> u64 {
        self.progress.load(Ordering::Relaxed)
    }

    /// Whether the connection has been accepted.
    pub(crate) fn connected(&self) -> bool {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Sink {
    /// Starts reading (a sink created paused).
    pub(crate) fn resume(&self) {
        self.go.store(true, Ordering::Relaxed);
    }

    /// Waits at most `timeout` for the connection's end.
    pub(crate) fn finish(self, timeout: Duration) -> Received {
        eventually(timeout, || self.handle.is_finished().then_some(()))
            .unwrap_or_else(|| panic!("port {}: no end after {timeout:?}", self.port));
        self.handle.join().expect("sink thread")
    }
}

/// Writes `len` bytes of the pattern to `path`.
pub(crate) fn pattern_file(path: &std::path::Path, len: usize) {
    use std::io::Write;
    let pattern = Pattern::new();
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    let mut buf = Vec::new();
    let mut at = 0;
    while at < len {
        let n = (len - at).min(1 << 20);
        pattern.fill(at as u64, &mut buf, n);
        file.write_all(&buf).expect("write");
        at += n;
    }
    file.flush().expect("flush");
}

/// `python3 -c UPLOADER HOST PORT LEN`: connects, sends `LEN` bytes of the pattern (`-1`:
/// until the connection fails), closes and exits 0; exits 3 on an error, saying after how
/// many bytes.
pub(crate) const UPLOADER: &str = r#"
import socket, sys
PERIOD = 65549
T = bytes(((j * 0x9e3779b97f4a7c15) & 0xFFFFFFFFFFFFFFFF) >> 56 for j in range(PERIOD))
BUF = memoryview(T * 17)
CHUNK = 16 * PERIOD
host, port, total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.create_connection((host, port), timeout=60)
sent = 0
try:
    while total < 0 or sent < total:
        n = CHUNK if total < 0 else min(CHUNK, total - sent)
        at = sent % PERIOD
        s.sendall(BUF[at:at + n])
        sent += n
    s.close()
    print("sent", sent)
except OSError as e:
    print("error after", sent, e)
    sys.exit(3)
"#;
