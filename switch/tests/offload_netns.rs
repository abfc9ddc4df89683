//! TAP offloads with the Linux kernel as the guest, at MTU 1500: the kernel sends TCP
//! super-segments of up to 64 KiB through the TAP, host-switch takes them whole and sends its
//! own back with a GSO header, and every byte arrives. Each test moves a stream each way at
//! once between a client in the namespace and a server on the host's 127.0.0.1 (both Python,
//! each hashing with SHA-256 what it sent and what it received: the hashes must cross over),
//! with offloads on and off, without and with 1 % of packets dropped inside the namespace
//! (nftables `numgen random` rules on tap0, both directions; a dropped super-segment is lost
//! whole). With offloads on, `ethtool -k` in the namespace shows TSO on and the counters show
//! super-segments both ways; off, neither. `host-switch run` is checked the same way through
//! its capture: frames longer than 1514 bytes both ways with offloads, none without.
//!
//! The guest agent (`host-switch guest`) over a unix socket: with offloads at both ends they
//! agree on a virtio-net header on the stream, and super-segments cross it whole both ways
//! (counters and capture), 256 MiB each way, also under 1 % loss; host-switch with `--offload off` never answers the offer, and the
//! agent cuts its TAP's super-segments itself (no frame over 1514 bytes, every byte there);
//! the agent with `--offload off` makes no offer and its TAP shows no TSO.
//!
//! Sizes: 256 MiB each way with offloads (a few seconds even in a debug build, loss
//! included). Without them every 1460-byte segment is parsed, checksummed and acknowledged
//! one by one, which a debug build does at a few hundred Mbit/s: those transfers move 64 MiB
//! each way, so that the file stays well under a minute on a busy 2-core machine.
//!
//! Needs root, python3, ethtool and nft. Without them the tests skip loudly, unless CI=true,
//! where they must run. Traffic goes only to servers this test runs on 127.0.0.1, through
//! namespaces it created.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod guest_support;
mod support;

use guest_support::{Agent, HostSwitch, await_address};
use support::{NetnsGuard, TempDir, privileged};

use switch::link::tap::TapLink;
use switch::runtime::{Runtime, RuntimeConfig};
use switch::tap::{TapConfig, TapOptions};

const BIN: &str = env!("CARGO_BIN_EXE_host-switch");
const MIB: usize = 1 << 20;
const TOOLS: &[&str] = &["ip", "python3", "ethtool", "nft"];

/// Both ends of a transfer: `server PORT_FILE SIZE SEED` listens on 127.0.0.1 (port 0) and
/// prints its port, `client ADDR PORT SIZE SEED` connects. Each sends SIZE bytes of its seed's
/// stream while it receives the other's until EOF, then prints the SHA-256 of what it sent,
/// of what it received, and how many bytes it received.
const XFER: &str = r#"
import hashlib, random, socket, sys, threading
role = sys.argv[1]
size, seed = int(sys.argv[-2]), int(sys.argv[-1])
if role == "server":
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    print(ls.getsockname()[1], flush=True)
    s, _ = ls.accept()
else:
    s = socket.create_connection((sys.argv[2], int(sys.argv[3])), timeout=30)
s.settimeout(120)
block = 1 << 20
base = random.Random(seed).randbytes(block + 997)
sent = hashlib.sha256()
def send():
    left, i = size, 0
    while left > 0:
        at = (i * 389) % 997
        chunk = base[at:at + min(block, left)]
        s.sendall(chunk)
        sent.update(chunk)
        left -= len(chunk)
        i += 1
    s.shutdown(socket.SHUT_WR)
t = threading.Thread(target=send)
t.start()
got, n = hashlib.sha256(), 0
while True:
    d = s.recv(1 << 20)
    if not d:
        break
    got.update(d)
    n += len(d)
t.join()
print(sent.hexdigest(), got.hexdigest(), n, flush=True)
"#;

/// What one end printed: the hash of what it sent, of what it got, and how much it got.
#[derive(Debug, Clone, PartialEq, Eq)]
struct End {
    sent: String,
    got: String,
    bytes: usize,
}

impl End {
    fn parse(line: &str) -> End {
        let mut words = line.split_whitespace();
        let (Some(sent), Some(got), Some(bytes)) = (words.next(), words.next(), words.next())
        else {
            panic!("not a transfer result: {line:?}");
        };
        End {
            sent: sent.to_owned(),
            got: got.to_owned(),
            bytes: bytes.parse().unwrap(),
        }
    }
}

/// The host's end, listening; its port.
struct Server {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
    port: u16,
}

impl Server {
    fn start(size: usize) -> Server {
        let mut child = Command::new("python3")
            .args(["-c", XFER, "server", &size.to_string(), "2"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let port = line.trim().parse().unwrap();
        Server { child, out, port }
    }

    fn finish(mut self) -> End {
        let mut line = String::new();
        self.out.read_line(&mut line).unwrap();
        let _ = self.child.wait();
        End::parse(&line)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The client command's arguments for a transfer of `size` each way to the server on `port`.
fn client_args(port: u16, size: usize) -> Vec<String> {
    ["-c", XFER, "client", "192.168.127.254"]
        .iter()
        .map(|s| (*s).to_owned())
        .chain([port.to_string(), size.to_string(), "1".to_owned()])
        .collect()
}

/// Checks the two ends saw each other's streams exactly.
fn assert_exact(client: &End, server: &End, size: usize) {
    assert_eq!(client.bytes, size, "bytes the guest received");
    assert_eq!(server.bytes, size, "bytes the host received");
    assert_eq!(
        client.got, server.sent,
        "the host's stream, as the guest got it"
    );
    assert_eq!(
        server.got, client.sent,
        "the guest's stream, as the host got it"
    );
}

fn runtime() -> Runtime {
    let control = forwarder::Control::new("192.168.127.2".parse().unwrap(), &[]);
    let mut config = RuntimeConfig {
        workers: 2,
        ..RuntimeConfig::default()
    };
    config.use_forwarder(forwarder::Config::default(), &control);
    Runtime::start(config).unwrap()
}

/// A namespace whose tap0 (MTU 1500, 192.168.127.2) is served by `rt`, with or without
/// offloads.
fn guest(rt: &Runtime, tag: &str, offload: bool) -> (NetnsGuard, TapLink) {
    let ns = NetnsGuard::new(tag);
    let options = TapOptions {
        multi_queue: true,
        configure: Some(TapConfig {
            mac: Some(stack::wire::EthernetAddress([
                0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xee,
            ])),
            mtu: 1500,
            ..TapConfig::default()
        }),
        offload,
    };
    let link = TapLink::open("tap0", &ns.netns(), &options, &rt.attacher(), 1500).unwrap();
    (ns, link)
}

/// Drops 1 % of the packets `dev` receives and of those it sends, inside `ns`, counting them.
/// Both hooks see the guest kernel's packets before segmentation and after its receive
/// path, so a super-segment is dropped whole.
fn lose_one_percent(ns: &NetnsGuard, dir: &TempDir, dev: &str) {
    let ruleset = dir.path().join("loss.nft");
    std::fs::write(
        &ruleset,
        format!(
            "table inet hsloss {{\n\
             \tchain in {{ type filter hook input priority 0; \
             iifname \"{dev}\" numgen random mod 100 0 counter drop; }}\n\
             \tchain out {{ type filter hook output priority 0; \
             oifname \"{dev}\" numgen random mod 100 0 counter drop; }}\n\
             }}\n"
        ),
    )
    .unwrap();
    let out = ns.run(
        "nft",
        &["-f", ruleset.to_str().unwrap()],
        Duration::from_secs(10),
    );
    assert!(out.status.success(), "nft -f: {out:?}");
}

/// Packets the loss rules dropped: (received by the guest, sent by it).
fn dropped(ns: &NetnsGuard) -> (u64, u64) {
    let out = ns.run(
        "nft",
        &["list", "table", "inet", "hsloss"],
        Duration::from_secs(5),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let count = |hook: &str| -> u64 {
        text.lines()
            .find(|l| l.contains(hook) && l.contains("counter packets"))
            .and_then(|l| l.split("counter packets ").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no counter for {hook}: {text}"))
    };
    (count("iifname"), count("oifname"))
}

fn tso_shown(ns: &NetnsGuard) -> bool {
    let out = ns.run("ethtool", &["-k", "tap0"], Duration::from_secs(5));
    assert!(out.status.success(), "ethtool: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .any(|l| l.trim() == "tcp-segmentation-offload: on")
}

/// Super-segments read from and written to links, over all workers.
fn supers(rt: &Runtime) -> (u64, u64) {
    let stats = rt.stats();
    let sum = |f: fn(&forwarder::WorkerStats) -> u64| stats.workers.iter().map(f).sum::<u64>();
    (sum(|w| w.super_in), sum(|w| w.super_out))
}

/// One transfer of `size` each way through `rt`, on a fresh namespace.
fn transfer(tag: &str, offload: bool, loss: bool, size: usize) {
    let rt = runtime();
    let (ns, link) = guest(&rt, tag, offload);
    assert_eq!(link.offloads().vnet_hdr, offload);
    assert_eq!(
        tso_shown(&ns),
        offload,
        "ethtool -k tap0 shows TSO {offload}"
    );
    let dir = TempDir::new(tag);
    if loss {
        lose_one_percent(&ns, &dir, "tap0");
    }
    let server = Server::start(size);
    let start = Instant::now();
    let args = client_args(server.port, size);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = ns.run("python3", &args, Duration::from_secs(150));
    assert!(
        out.status.success(),
        "client: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let client = End::parse(&String::from_utf8_lossy(&out.stdout));
    let server = server.finish();
    let took = start.elapsed();
    assert_exact(&client, &server, size);
    let (sin, sout) = supers(&rt);
    let lost = if loss { dropped(&ns) } else { (0, 0) };
    eprintln!(
        "{tag}: {} MiB each way in {took:?}; super-segments in {sin}, out {sout}; \
         dropped to the guest {}, from it {}",
        size / MIB,
        lost.0,
        lost.1,
    );
    if offload {
        assert!(sin > 0, "super-segments from the guest");
        assert!(sout > 0, "super-segments to the guest");
    } else {
        assert_eq!((sin, sout), (0, 0));
    }
    if loss {
        assert!(
            lost.0 > 0 && lost.1 > 0,
            "packets were lost both ways: {lost:?}"
        );
    }
}

#[test]
fn offloads_on_256_mib_each_way() {
    if !privileged("offloads_on_256_mib_each_way", TOOLS) {
        return;
    }
    transfer("off-on", true, false, 256 * MIB);
}

#[test]
fn offloads_on_under_one_percent_loss() {
    if !privileged("offloads_on_under_one_percent_loss", TOOLS) {
        return;
    }
    transfer("off-on-loss", true, true, 256 * MIB);
}

#[test]
fn offloads_off_64_mib_each_way() {
    if !privileged("offloads_off_64_mib_each_way", TOOLS) {
        return;
    }
    transfer("off-off", false, false, 64 * MIB);
}

#[test]
fn offloads_off_under_one_percent_loss() {
    if !privileged("offloads_off_under_one_percent_loss", TOOLS) {
        return;
    }
    transfer("off-off-loss", false, true, 64 * MIB);
}

/// Frames longer than a 1500-byte link's 1514 in a capture, by sender: (guest, gateway).
fn long_frames(pcap: &[u8]) -> (usize, usize) {
    const GUEST: [u8; 6] = [0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xee];
    const GATEWAY: [u8; 6] = [0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xdd];
    let (mut guest, mut gateway) = (0, 0);
    let mut at = 24;
    while let Some(record) = pcap.get(at..at + 16) {
        let incl = u32::from_le_bytes(record[8..12].try_into().unwrap()) as usize;
        let orig = u32::from_le_bytes(record[12..16].try_into().unwrap()) as usize;
        let Some(frame) = pcap.get(at + 16..at + 16 + incl) else {
            break;
        };
        if orig > 1514 {
            match frame.get(6..12) {
                Some(src) if src == GUEST => guest += 1,
                Some(src) if src == GATEWAY => gateway += 1,
                _ => {}
            }
        }
        at += 16 + incl;
    }
    (guest, gateway)
}

/// `host-switch run` at MTU 1500, with `--offload` as given: what `ethtool -k` said inside,
/// and the long frames of its capture.
fn run_mode(offload: &str) -> (bool, (usize, usize)) {
    let dir = TempDir::new("offload-run");
    let pcap = dir.path().join("run.pcap");
    let size = 4 * MIB;
    let server = Server::start(size);
    let client = client_args(server.port, size)
        .iter()
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let script =
        format!("ethtool -k tap0 | grep -x 'tcp-segmentation-offload: on'; python3 {client}");
    let out = Command::new(BIN)
        .args(["run", "--mtu", "1500", "--offload", offload, "--pcap"])
        .arg(&pcap)
        .args(["--", "sh", "-c", &script])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let result = stdout.lines().last().unwrap_or_default();
    assert_exact(&End::parse(result), &server.finish(), size);
    let tso = stdout.contains("tcp-segmentation-offload: on");
    (tso, long_frames(&std::fs::read(&pcap).unwrap()))
}

#[test]
fn run_mode_negotiates_offloads_and_its_capture_shows_super_segments_both_ways() {
    if !privileged(
        "run_mode_negotiates_offloads_and_its_capture_shows_super_segments_both_ways",
        TOOLS,
    ) {
        return;
    }
    let (tso, (from_guest, to_guest)) = run_mode("on");
    assert!(tso, "TSO on inside");
    assert!(
        from_guest > 0,
        "super-segments from the guest in the capture"
    );
    assert!(to_guest > 0, "super-segments to the guest in the capture");
    let (tso, long) = run_mode("off");
    assert!(!tso, "TSO off inside");
    assert_eq!(long, (0, 0), "no frame longer than the link's");
}

/// What one transfer through the guest agent showed.
struct AgentRun {
    /// `ethtool -k eth0` in the namespace shows TSO on.
    tso: bool,
    /// host-switch's `offload.super_segments_in` and `_out` afterwards.
    supers: (u64, u64),
    /// Frames longer than 1514 bytes in host-switch's capture: (from the guest, to it).
    long: (usize, usize),
    /// The agent's log.
    log: String,
}

/// `host-switch guest` in a namespace, attached over a unix socket to a host-switch started
/// with `host_flags` (and a capture), moves `size` bytes each way between the guest and a
/// server on the host's loopback.
fn through_agent(
    tag: &str,
    (host_flags, agent_flags): (&[&str], &[&str]),
    loss: bool,
    size: usize,
) -> AgentRun {
    let dir = TempDir::new(tag);
    let sock = dir.path().join("hs.sock");
    let pcap = dir.path().join("hs.pcap");
    // Headers are enough: the capture's records keep each frame's whole length.
    let mut flags = vec!["--pcap", pcap.to_str().unwrap(), "--pcap-snaplen", "128"];
    flags.extend_from_slice(host_flags);
    let hs = HostSwitch::start(&dir, &sock, &flags);
    let ns = NetnsGuard::new(tag);
    let connect = format!("unix://{}", sock.display());
    let mut args = vec!["--connect", &connect, "--no-auto-forward"];
    args.extend_from_slice(agent_flags);
    let mut agent = Agent::start(&ns, &dir, &args);
    await_address(&ns, "eth0", "inet 192.168.127.2/24", &mut agent);
    let ethtool = ns.run("ethtool", &["-k", "eth0"], Duration::from_secs(5));
    let tso = String::from_utf8_lossy(&ethtool.stdout)
        .lines()
        .any(|l| l.trim() == "tcp-segmentation-offload: on");
    if loss {
        lose_one_percent(&ns, &dir, "eth0");
    }

    let server = Server::start(size);
    let client = client_args(server.port, size);
    let client: Vec<&str> = client.iter().map(String::as_str).collect();
    let out = ns.run("python3", &client, Duration::from_secs(150));
    assert!(
        out.status.success(),
        "client: {}\nagent:\n{}\nhost-switch:\n{}",
        String::from_utf8_lossy(&out.stderr),
        agent.log(),
        hs.log()
    );
    let client = End::parse(&String::from_utf8_lossy(&out.stdout));
    assert_exact(&client, &server.finish(), size);

    let (status, stats) = support::api_request(&sock, "GET", "/stats", "");
    assert_eq!(status, 200, "{stats}");
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    let counter = |name: &str| stats["offload"][name].as_u64().unwrap();
    let supers = (counter("super_segments_in"), counter("super_segments_out"));
    if loss {
        let lost = dropped(&ns);
        assert!(
            lost.0 > 0 && lost.1 > 0,
            "packets were lost both ways: {lost:?}"
        );
    }
    agent.stop();
    drop(hs);
    AgentRun {
        tso,
        supers,
        long: long_frames(&std::fs::read(&pcap).unwrap()),
        log: agent.log(),
    }
}

/// The agent offers the header, host-switch accepts it, and TCP super-segments cross the
/// stream whole both ways.
#[test]
fn the_guest_agent_and_host_switch_agree_on_the_header_and_super_segments_cross_whole() {
    if !privileged(
        "the_guest_agent_and_host_switch_agree_on_the_header_and_super_segments_cross_whole",
        TOOLS,
    ) {
        return;
    }
    let run = through_agent("agent-on", (&[], &[]), false, 256 * MIB);
    assert!(run.tso, "TSO on the agent's TAP");
    assert!(run.log.contains("virtio-net header agreed"), "{}", run.log);
    assert!(run.supers.0 > 0, "super-segments from the agent");
    assert!(run.supers.1 > 0, "super-segments to the agent");
    assert!(
        run.long.0 > 0 && run.long.1 > 0,
        "long frames both ways: {:?}",
        run.long
    );
}

/// The same under 1 % loss each way on the agent's TAP: a lost super-segment is lost whole,
/// and what is sent again crosses the stream as well.
#[test]
fn the_guest_agents_super_segments_under_one_percent_loss() {
    if !privileged(
        "the_guest_agents_super_segments_under_one_percent_loss",
        TOOLS,
    ) {
        return;
    }
    let run = through_agent("agent-loss", (&[], &[]), true, 256 * MIB);
    assert!(run.log.contains("virtio-net header agreed"), "{}", run.log);
    assert!(run.supers.0 > 0 && run.supers.1 > 0, "{:?}", run.supers);
}

/// host-switch with offloads off never answers the offer: the agent keeps plain frames,
/// cutting its TAP's super-segments itself, and every byte still arrives.
#[test]
fn a_host_that_never_answers_the_offer_gets_plain_frames_cut_by_the_agent() {
    if !privileged(
        "a_host_that_never_answers_the_offer_gets_plain_frames_cut_by_the_agent",
        TOOLS,
    ) {
        return;
    }
    let run = through_agent("agent-never", (&["--offload", "off"], &[]), false, 64 * MIB);
    assert!(run.tso, "TSO still on the agent's TAP");
    assert!(!run.log.contains("virtio-net header agreed"), "{}", run.log);
    assert_eq!(run.supers, (0, 0));
    assert_eq!(run.long, (0, 0), "no frame longer than the link's");
    // The agent cut them: its counters, logged when it stops.
    let finished = run
        .log
        .split("finished: ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse::<u64>().ok());
    assert!(finished.is_some_and(|n| n > 0), "{}", run.log);
}

/// `--offload off` on the agent: no header on its TAP, no offer, plain frames.
#[test]
fn the_agent_with_offloads_off_makes_no_offer() {
    if !privileged("the_agent_with_offloads_off_makes_no_offer", TOOLS) {
        return;
    }
    let run = through_agent("agent-off", (&[], &["--offload", "off"]), false, 16 * MIB);
    assert!(!run.tso, "TSO off on the agent's TAP");
    assert_eq!(run.supers, (0, 0));
    assert_eq!(run.long, (0, 0));
}
