//! The guests' side of the traffic, each loop on its own thread until the deadline: TCP uploads
//! and downloads (the guest verifies downloads), UDP echo, ping, and DNS lookups through the
//! gateway. The TCP and UDP threads run inside the guest's namespace (setns on the thread);
//! ping and dig run there through nsenter.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use host_switch_benches::sys;

use crate::counters::Counters;
use crate::host::{DNS_NAMES, HEADER_LEN, IO_TIMEOUT, MAGIC, VERDICT_LEN};
use crate::pattern::{self, Rng};

/// The host's loopback as the guests reach it, and the gateway.
pub(crate) const HOST: Ipv4Addr = Ipv4Addr::new(192, 168, 127, 254);
pub(crate) const GATEWAY: Ipv4Addr = Ipv4Addr::new(192, 168, 127, 1);
/// Transfer sizes, log-uniform between these.
const MIN_TRANSFER: u64 = 1024;
const MAX_TRANSFER: u64 = 4 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// Largest UDP datagram (fits one 1500-byte frame), and how long to wait for its echo.
const MAX_DATAGRAM: usize = 1472;
const UDP_HEADER: usize = 7;
const ECHO_WAIT: Duration = Duration::from_millis(300);
/// Pause between two datagrams, and after the last one, how long late echoes are collected.
const UDP_GAP: Duration = Duration::from_millis(20);
const UDP_DRAIN: Duration = Duration::from_secs(2);
/// Most datagrams one guest tracks (a bound on the echo bitmap: 10 minutes at 50/s is 30,000).
const MAX_DATAGRAMS: u32 = 1 << 22;
const DNS_GAP: Duration = Duration::from_millis(500);
const PING_ROUND: u32 = 10;

/// What every loop of one guest needs.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub(crate) guest: usize,
    pub(crate) ns: PathBuf,
    pub(crate) until: Instant,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) seed: u64,
    pub(crate) tcp_port: u16,
    pub(crate) udp_port: u16,
}

impl Ctx {
    fn running(&self) -> bool {
        !self.stop.load(Ordering::Relaxed) && Instant::now() < self.until
    }
}

/// A traffic loop and its thread's name.
type Loop = (&'static str, fn(Ctx));

/// Starts every loop for one guest.
pub(crate) fn start(ctx: &Ctx) -> Result<Vec<JoinHandle<()>>, String> {
    let mut threads = Vec::new();
    let loops: [Loop; 5] = [
        ("tcp-up", |c| tcp_loop(c, true)),
        ("tcp-down", |c| tcp_loop(c, false)),
        ("udp", udp_loop),
        ("ping", ping_loop),
        ("dns", dns_loop),
    ];
    for (i, (name, f)) in loops.into_iter().enumerate() {
        let mut c = ctx.clone();
        c.seed = pattern::mix(ctx.seed ^ (i as u64 + 1));
        let name = format!("g{}-{name}", ctx.guest);
        threads.push(
            std::thread::Builder::new()
                .name(name.clone())
                .spawn(move || f(c))
                .map_err(|e| format!("{name}: {e}"))?,
        );
    }
    Ok(threads)
}

fn enter(ctx: &Ctx) -> bool {
    match sys::enter_netns(&ctx.ns) {
        Ok(()) => true,
        Err(e) => {
            ctx.counters.failure(format!(
                "guest {}: cannot enter its namespace: {e}",
                ctx.guest
            ));
            false
        }
    }
}

fn tcp_loop(ctx: Ctx, upload: bool) {
    if !enter(&ctx) {
        Counters::add(&ctx.counters.tcp_failed, 1);
        return;
    }
    let mut rng = Rng::new(ctx.seed);
    let mut scratch = Vec::new();
    let c = &ctx.counters;
    while ctx.running() {
        let len = rng.log_uniform(MIN_TRANSFER, MAX_TRANSFER);
        let seed = rng.next_u64();
        let started = Instant::now();
        let r = if upload {
            tcp_upload(&ctx, seed, len)
        } else {
            tcp_download(&ctx, seed, len, &mut scratch)
        };
        match r {
            Ok(()) => Counters::add(&c.tcp_ok, 1),
            Err(e) => {
                Counters::add(&c.tcp_failed, 1);
                c.failure(format!(
                    "guest {} TCP {} of {len} bytes failed after {:.1} s: {e}",
                    ctx.guest,
                    if upload { "upload" } else { "download" },
                    started.elapsed().as_secs_f64()
                ));
                // Do not spin on a persistent failure.
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

fn connect(ctx: &Ctx, upload: bool, seed: u64, len: u64) -> Result<TcpStream, String> {
    let to = SocketAddr::from((HOST, ctx.tcp_port));
    let s =
        TcpStream::connect_timeout(&to, CONNECT_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let mut h = Vec::with_capacity(HEADER_LEN);
    h.extend_from_slice(MAGIC);
    h.push(if upload { b'U' } else { b'D' });
    h.extend_from_slice(&seed.to_be_bytes());
    h.extend_from_slice(&len.to_be_bytes());
    (&s).write_all(&h).map_err(|e| format!("header: {e}"))?;
    Ok(s)
}

fn tcp_upload(ctx: &Ctx, seed: u64, len: u64) -> Result<(), String> {
    let mut s = connect(ctx, true, seed, len)?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(buf.len() as u64) as usize;
        pattern::fill(seed, done, &mut buf[..n]);
        s.write_all(&buf[..n])
            .map_err(|e| format!("write at byte {done}: {e}"))?;
        done += n as u64;
    }
    let mut verdict = [0u8; VERDICT_LEN];
    s.read_exact(&mut verdict)
        .map_err(|e| format!("reading the verdict: {e}"))?;
    let verified = u64::from_be_bytes(verdict[1..].try_into().map_err(|_| "verdict")?);
    if verdict[0] != 0 || verified != len {
        return Err(format!(
            "the host found a wrong byte (verified {verified} of {len})"
        ));
    }
    Ok(())
}

fn tcp_download(ctx: &Ctx, seed: u64, len: u64, scratch: &mut Vec<u8>) -> Result<(), String> {
    let mut s = connect(ctx, false, seed, len)?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut done = 0u64;
    loop {
        let n = match s.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("read at byte {done} of {len}: {e}")),
        };
        if n == 0 {
            break;
        }
        if done + n as u64 > len {
            Counters::add(&ctx.counters.mismatches, 1);
            return Err(format!(
                "{} bytes more than the {len} sent",
                done + n as u64 - len
            ));
        }
        if let Some(at) = pattern::check(seed, done, &buf[..n], scratch) {
            Counters::add(&ctx.counters.mismatches, 1);
            return Err(format!(
                "byte {} differs from the pattern",
                done + at as u64
            ));
        }
        done += n as u64;
        Counters::add(&ctx.counters.down_verified, n as u64);
    }
    if done != len {
        return Err(format!("ended at byte {done} of {len}"));
    }
    Ok(())
}

/// Datagram `seq` of guest `guest`: its header (guest, seq, length) then the pattern.
fn datagram(guest: u8, seq: u32, len: usize, out: &mut Vec<u8>) {
    out.clear();
    out.push(guest);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.resize(len, 0);
    let seed = pattern::mix(u64::from(guest) << 32 | u64::from(seq));
    pattern::fill(seed, 0, &mut out[UDP_HEADER..]);
}

fn udp_loop(ctx: Ctx) {
    if !enter(&ctx) {
        return;
    }
    let c = &ctx.counters;
    let sock = match UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect((HOST, ctx.udp_port)).map(|()| s))
        .and_then(|s| s.set_read_timeout(Some(ECHO_WAIT / 6)).map(|()| s))
    {
        Ok(s) => s,
        Err(e) => {
            c.failure(format!("guest {} UDP socket: {e}", ctx.guest));
            return;
        }
    };
    let guest = ctx.guest as u8;
    let mut rng = Rng::new(ctx.seed);
    let mut echoed: Vec<bool> = Vec::new();
    let (mut out, mut want) = (Vec::new(), Vec::new());
    let mut buf = vec![0u8; 65536];
    let mut seq = 0u32;
    let mut receive = |echoed: &mut Vec<bool>, current: Option<u32>| -> bool {
        let n = match sock.recv(&mut buf) {
            Ok(n) => n,
            Err(_) => return false,
        };
        let got = &buf[..n];
        let ok = n >= UDP_HEADER && got[0] == guest && {
            let s = u32::from_be_bytes([got[1], got[2], got[3], got[4]]);
            let len = usize::from(u16::from_be_bytes([got[5], got[6]]));
            datagram(guest, s, len, &mut want);
            if want == got && (s as usize) < echoed.len() {
                if echoed[s as usize] {
                    Counters::add(&c.udp_duplicate, 1);
                } else {
                    echoed[s as usize] = true;
                    Counters::add(&c.udp_echoed, 1);
                    if current != Some(s) {
                        Counters::add(&c.udp_late, 1);
                    }
                }
                true
            } else {
                false
            }
        };
        if !ok {
            Counters::add(&c.mismatches, 1);
            c.failure(format!(
                "guest {} UDP: an echo of {n} bytes is not a datagram we sent",
                ctx.guest
            ));
        }
        current.is_some_and(|cur| echoed.get(cur as usize) == Some(&true))
    };
    while ctx.running() && seq < MAX_DATAGRAMS {
        let len = UDP_HEADER + rng.below((MAX_DATAGRAM - UDP_HEADER + 1) as u64) as usize;
        datagram(guest, seq, len, &mut out);
        echoed.push(false);
        if let Err(e) = sock.send(&out) {
            c.failure(format!("guest {} UDP send: {e}", ctx.guest));
            std::thread::sleep(Duration::from_secs(1));
        }
        Counters::add(&c.udp_sent, 1);
        let deadline = Instant::now() + ECHO_WAIT;
        while Instant::now() < deadline {
            if receive(&mut echoed, Some(seq)) {
                break;
            }
        }
        seq += 1;
        std::thread::sleep(UDP_GAP);
    }
    let drain = Instant::now() + UDP_DRAIN;
    while Instant::now() < drain {
        receive(&mut echoed, None);
    }
}

/// "N packets transmitted, M received" from ping's summary.
fn ping_counts(out: &str) -> Option<(u64, u64)> {
    let line = out.lines().find(|l| l.contains("packets transmitted"))?;
    let mut nums = line
        .split(',')
        .filter_map(|part| part.split_whitespace().next()?.parse::<u64>().ok());
    Some((nums.next()?, nums.next()?))
}

fn ping_loop(ctx: Ctx) {
    let c = &ctx.counters;
    let count = PING_ROUND.to_string();
    for target in [GATEWAY, HOST].into_iter().cycle() {
        if !ctx.running() {
            return;
        }
        let r = sys::output(
            sys::in_netns(&ctx.ns, "ping").args([
                "-q",
                "-n",
                "-c",
                &count,
                "-i",
                "0.2",
                "-W",
                "2",
                &target.to_string(),
            ]),
            Duration::from_secs(30),
        );
        match r.as_ref().ok().and_then(|(_, out, _)| ping_counts(out)) {
            Some((sent, received)) => {
                Counters::add(&c.ping_sent, sent);
                Counters::add(&c.ping_received, received);
            }
            None => {
                c.failure(format!("guest {} ping {target}: {r:?}", ctx.guest));
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

/// The status and the A records of dig's answer.
fn dig_answer(out: &str) -> (Option<String>, Vec<Ipv4Addr>) {
    let status = out.lines().find_map(|l| {
        let rest = l.split("status: ").nth(1)?;
        Some(rest.split(',').next()?.trim().to_owned())
    });
    let records = out
        .lines()
        .filter(|l| !l.starts_with(';'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            match f.as_slice() {
                [_, _, "IN", "A", addr] => addr.parse().ok(),
                _ => None,
            }
        })
        .collect();
    (status, records)
}

fn dns_loop(ctx: Ctx) {
    let c = &ctx.counters;
    let mut rng = Rng::new(ctx.seed);
    while ctx.running() {
        let (name, want) = DNS_NAMES[rng.below(DNS_NAMES.len() as u64) as usize];
        let r = sys::output(
            sys::in_netns(&ctx.ns, "dig").args([
                "+time=2",
                "+tries=3",
                &format!("@{GATEWAY}"),
                name,
                "A",
            ]),
            Duration::from_secs(30),
        );
        let verdict = match &r {
            Ok((_, out, _)) => {
                let (status, records) = dig_answer(out);
                match (want, status.as_deref()) {
                    (Some(a), Some("NOERROR")) if records == [a] => Ok(()),
                    (None, Some("NXDOMAIN")) if records.is_empty() => Ok(()),
                    _ => Err(format!(
                        "status {status:?}, records {records:?}, want {want:?}"
                    )),
                }
            }
            Err(e) => Err(e.clone()),
        };
        match verdict {
            Ok(()) => Counters::add(&c.dns_ok, 1),
            Err(e) => {
                Counters::add(&c.dns_failed, 1);
                c.failure(format!("guest {} DNS {name}: {e}", ctx.guest));
            }
        }
        std::thread::sleep(DNS_GAP);
    }
}

/// The soak's own check of its parsers, in the unit tests.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ping_and_dig() {
        let ping = "--- 192.168.127.1 ping statistics ---\n\
                    10 packets transmitted, 9 received, 10% packet loss, time 1810ms\n";
        assert_eq!(ping_counts(ping), Some((10, 9)));
        let dig = ";; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 1\n\
                   ;alpha.soak.test.\t\tIN\tA\n\n\
                   alpha.soak.test.\t0\tIN\tA\t10.11.12.13\n";
        assert_eq!(
            dig_answer(dig),
            (
                Some("NOERROR".to_owned()),
                vec![Ipv4Addr::new(10, 11, 12, 13)]
            )
        );
    }

    #[test]
    fn datagrams_carry_their_header() {
        let mut d = Vec::new();
        datagram(1, 300, 100, &mut d);
        assert_eq!(d.len(), 100);
        assert_eq!(&d[..7], &[1, 0, 0, 1, 44, 0, 100]);
    }
}
