//! The host side, all on 127.0.0.1: the TCP transfer server (verifies uploads, sends downloads),
//! the UDP echo server, and the DNS upstream host-switch forwards the guests' queries to.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::counters::Counters;
use crate::pattern;

/// A transfer's request: magic, direction (`U`pload or `D`ownload), seed, length.
pub(crate) const MAGIC: &[u8; 4] = b"SOAK";
pub(crate) const HEADER_LEN: usize = 4 + 1 + 8 + 8;
/// The upload's verdict: 0 (all bytes right) or 1, then the count of bytes verified.
pub(crate) const VERDICT_LEN: usize = 9;
/// How long one read or write may block, on both ends of a transfer.
pub(crate) const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Most transfers the server handles at once; more are closed at once (and fail, loudly).
const MAX_CONNECTIONS: usize = 64;
const CHUNK: usize = 64 * 1024;
/// How often the servers' loops look at the stop flag.
const POLL: Duration = Duration::from_millis(100);

/// The DNS names the upstream knows, and the one it does not.
pub(crate) const DNS_NAMES: &[(&str, Option<Ipv4Addr>)] = &[
    ("alpha.soak.test", Some(Ipv4Addr::new(10, 11, 12, 13))),
    ("beta.soak.test", Some(Ipv4Addr::new(172, 20, 0, 7))),
    ("gamma.soak.test", Some(Ipv4Addr::new(198, 51, 100, 42))),
    ("missing.soak.test", None),
];

#[derive(Debug)]
pub(crate) struct Servers {
    pub(crate) tcp_port: u16,
    pub(crate) udp_port: u16,
    pub(crate) dns_port: u16,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Servers {
    pub(crate) fn start(counters: &Arc<Counters>) -> Result<Servers, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let err = |e: std::io::Error| e.to_string();
        let listener = TcpListener::bind("127.0.0.1:0").map_err(err)?;
        listener.set_nonblocking(true).map_err(err)?;
        let tcp_port = listener.local_addr().map_err(err)?.port();
        let echo = UdpSocket::bind("127.0.0.1:0").map_err(err)?;
        echo.set_read_timeout(Some(POLL)).map_err(err)?;
        let udp_port = echo.local_addr().map_err(err)?.port();
        let dns = UdpSocket::bind("127.0.0.1:0").map_err(err)?;
        dns.set_read_timeout(Some(POLL)).map_err(err)?;
        let dns_port = dns.local_addr().map_err(err)?.port();
        let mut threads = Vec::new();
        let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(f)
                .map_err(|e| e.to_string())
        };
        let (s, c) = (stop.clone(), counters.clone());
        threads.push(spawn(
            "tcp-server",
            Box::new(move || accept_loop(&listener, &s, &c)),
        )?);
        let s = stop.clone();
        threads.push(spawn("udp-echo", Box::new(move || echo_loop(&echo, &s)))?);
        let (s, c) = (stop.clone(), counters.clone());
        threads.push(spawn(
            "dns-upstream",
            Box::new(move || dns_loop(&dns, &s, &c)),
        )?);
        Ok(Servers {
            tcp_port,
            udp_port,
            dns_port,
            stop,
            threads,
        })
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, stop: &Arc<AtomicBool>, counters: &Arc<Counters>) {
    let active = Arc::new(AtomicUsize::new(0));
    let mut handlers: Vec<JoinHandle<()>> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        handlers.retain(|h| !h.is_finished());
        match listener.accept() {
            Ok((stream, peer)) => {
                if active.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
                    counters.failure(format!(
                        "tcp server: over {MAX_CONNECTIONS} connections; closed {peer}"
                    ));
                    Counters::add(&counters.server_errors, 1);
                    continue;
                }
                active.fetch_add(1, Ordering::Relaxed);
                let (a, c) = (active.clone(), counters.clone());
                let spawned =
                    std::thread::Builder::new()
                        .name("tcp-conn".into())
                        .spawn(move || {
                            if let Err(e) = serve(stream, &c) {
                                Counters::add(&c.server_errors, 1);
                                c.failure(format!("tcp server, connection from {peer}: {e}"));
                            }
                            a.fetch_sub(1, Ordering::Relaxed);
                        });
                match spawned {
                    Ok(h) => handlers.push(h),
                    Err(_) => {
                        active.fetch_sub(1, Ordering::Relaxed);
                    }
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(POLL / 5),
            Err(e) => {
                counters.failure(format!("tcp server: accept: {e}"));
                std::thread::sleep(POLL);
            }
        }
    }
    // Every handler is bounded by IO_TIMEOUT per read or write.
    for h in handlers {
        let _ = h.join();
    }
}

/// One transfer: verify an upload and send the verdict, or send a download and wait for the
/// guest to close.
fn serve(mut s: TcpStream, counters: &Counters) -> Result<(), String> {
    s.set_nonblocking(false).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let mut h = [0u8; HEADER_LEN];
    s.read_exact(&mut h).map_err(|e| format!("header: {e}"))?;
    let (magic, rest) = h.split_at(4);
    if magic != MAGIC {
        return Err(format!("bad magic {magic:?}"));
    }
    let (dir, rest) = rest.split_at(1);
    let (seed, len) = rest.split_at(8);
    let seed = u64::from_be_bytes(seed.try_into().map_err(|_| "header")?);
    let len = u64::from_be_bytes(len.try_into().map_err(|_| "header")?);
    let mut buf = vec![0u8; CHUNK];
    match dir {
        b"U" => {
            let mut scratch = Vec::with_capacity(CHUNK);
            let mut done = 0u64;
            let mut bad = false;
            while done < len {
                let want = (len - done).min(CHUNK as u64) as usize;
                let n = s
                    .read(&mut buf[..want])
                    .map_err(|e| format!("upload at byte {done} of {len}: {e}"))?;
                if n == 0 {
                    return Err(format!("upload ended at byte {done} of {len}"));
                }
                if let Some(at) = pattern::check(seed, done, &buf[..n], &mut scratch) {
                    Counters::add(&counters.mismatches, 1);
                    counters.failure(format!(
                        "upload: byte {} of {len} differs from the pattern",
                        done + at as u64
                    ));
                    bad = true;
                    break;
                }
                done += n as u64;
                Counters::add(&counters.up_verified, n as u64);
            }
            let mut verdict = [0u8; VERDICT_LEN];
            verdict[0] = u8::from(bad);
            verdict[1..].copy_from_slice(&done.to_be_bytes());
            s.write_all(&verdict).map_err(|e| format!("verdict: {e}"))?;
            // Wait for the guest to close first, so the verdict is not cut by a reset.
            let _ = s.read(&mut buf[..1]);
        }
        b"D" => {
            let mut done = 0u64;
            while done < len {
                let n = (len - done).min(CHUNK as u64) as usize;
                pattern::fill(seed, done, &mut buf[..n]);
                s.write_all(&buf[..n])
                    .map_err(|e| format!("download at byte {done} of {len}: {e}"))?;
                done += n as u64;
            }
            s.shutdown(Shutdown::Write).map_err(|e| e.to_string())?;
            let _ = s.read(&mut buf[..1]);
        }
        other => return Err(format!("bad direction {other:?}")),
    }
    Ok(())
}

fn echo_loop(sock: &UdpSocket, stop: &AtomicBool) {
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::Relaxed) {
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            let _ = sock.send_to(&buf[..n], from);
        }
    }
}

fn dns_loop(sock: &UdpSocket, stop: &AtomicBool, counters: &Counters) {
    let mut buf = vec![0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        if let Some(reply) = dns_answer(&buf[..n]) {
            Counters::add(&counters.upstream_queries, 1);
            let _ = sock.send_to(&reply, from);
        }
    }
}

/// The upstream's answer to one query: an A record for the names in [`DNS_NAMES`] that have
/// one, NXDOMAIN for the others, nothing for what is not a one-question query.
pub(crate) fn dns_answer(q: &[u8]) -> Option<Vec<u8>> {
    let header = q.get(..12)?;
    if header[2] & 0x80 != 0 || header[4..6] != [0, 1] {
        return None;
    }
    // The question: labels up to the root (no compression in a query), then type and class.
    let mut at = 12;
    let mut name = String::new();
    loop {
        let len = usize::from(*q.get(at)?);
        at += 1;
        if len == 0 {
            break;
        }
        if len > 63 || name.len() > 255 {
            return None;
        }
        let label = std::str::from_utf8(q.get(at..at + len)?).ok()?;
        if !name.is_empty() {
            name.push('.');
        }
        name.push_str(&label.to_ascii_lowercase());
        at += len;
    }
    let question = q.get(12..at + 4)?;
    let qtype = q.get(at..at + 2)?;
    let known = DNS_NAMES.iter().find(|(n, _)| *n == name);
    let address = known.and_then(|(_, a)| *a).filter(|_| qtype == [0, 1]);
    let rcode = if known.is_some_and(|(_, a)| a.is_some()) {
        0
    } else {
        3
    };
    let mut r = Vec::with_capacity(question.len() + 40);
    r.extend_from_slice(&header[..2]);
    r.push(0x80 | (header[2] & 0x01)); // QR, RD copied
    r.push(0x80 | rcode); // RA
    r.extend_from_slice(&[0, 1, 0, u8::from(address.is_some()), 0, 0, 0, 0]);
    r.extend_from_slice(question);
    if let Some(a) = address {
        // The name by pointer to the question, A, IN, TTL 0 (so nothing is cached), 4 bytes.
        r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4]);
        r.extend_from_slice(&a.octets());
    }
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.split('.') {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&[0, 1]);
        q
    }

    #[test]
    fn answers_known_names_and_nxdomain_for_the_rest() {
        let q = query("Alpha.soak.test", 1);
        let r = dns_answer(&q).unwrap();
        assert_eq!(&r[..4], &[0x12, 0x34, 0x81, 0x80]);
        assert_eq!(&r[6..8], &[0, 1]);
        assert_eq!(&r[12..q.len()], &q[12..]);
        assert_eq!(&r[r.len() - 4..], &[10, 11, 12, 13]);
        let r = dns_answer(&query("missing.soak.test", 1)).unwrap();
        assert_eq!(r[3], 0x83);
        assert_eq!(&r[6..8], &[0, 0]);
        let r = dns_answer(&query("alpha.soak.test", 28)).unwrap();
        assert_eq!((r[3], &r[6..8]), (0x80, &[0u8, 0][..]));
        assert!(dns_answer(&q[..q.len() - 1]).is_none());
    }
}
