//! Every socket link carrying frames both ways, with clients written here in each link's
//! framing; the test plays the data plane through a [`Switchboard`] of channels.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam_channel::{RecvTimeoutError, Sender};
use socket2::{Domain, SockAddr, Socket, Type};

use super::*;
use crate::PortId;
use crate::port::{AttachError, Frame, PortCounters, Switchboard};

/// Port membership, as the board saw it.
enum Control {
    Attach { id: PortId, egress: Sender<Frame> },
    Detach { id: PortId },
}

/// A frame from a port.
struct Ingress {
    port: PortId,
    frame: Frame,
}

/// The board's outputs, read by the test.
struct SwitchInputs {
    ingress: crossbeam_channel::Receiver<Ingress>,
    control: crossbeam_channel::Receiver<Control>,
}

/// A data plane made of channels.
#[derive(Debug)]
struct ChannelBoard {
    ingress: Sender<Ingress>,
    control: Sender<Control>,
    next: std::sync::atomic::AtomicU32,
}

impl Switchboard for ChannelBoard {
    fn attach(
        &self,
        _name: &str,
        _mtu: u16,
        egress: Sender<Frame>,
        _counters: std::sync::Arc<PortCounters>,
    ) -> Result<(PortId, usize), AttachError> {
        let id = PortId(self.next.fetch_add(1, Ordering::Relaxed) + 1);
        self.control
            .send(Control::Attach { id, egress })
            .map_err(|_| AttachError::SwitchStopped)?;
        Ok((id, 0))
    }

    fn ingress(&self, _worker: usize, port: PortId, frame: Frame) -> bool {
        self.ingress.try_send(Ingress { port, frame }).is_ok()
    }

    fn detach(&self, id: PortId) {
        let _ = self.control.send(Control::Detach { id });
    }
}

fn channels(ingress: usize, egress: usize) -> (crate::port::Attacher, SwitchInputs) {
    let (ingress_tx, ingress) = crossbeam_channel::bounded(ingress);
    let (control_tx, control) = crossbeam_channel::unbounded();
    let board = ChannelBoard {
        ingress: ingress_tx,
        control: control_tx,
        next: std::sync::atomic::AtomicU32::new(0),
    };
    (
        crate::port::Attacher::new(std::sync::Arc::new(board), egress, 1500),
        SwitchInputs { ingress, control },
    )
}

const WAIT: Duration = Duration::from_secs(5);

/// Plays the switch: tracks attached ports and collects frames.
struct Board {
    inputs: SwitchInputs,
    egress: HashMap<PortId, Sender<Frame>>,
    order: Vec<PortId>,
    detached: Vec<PortId>,
}

impl Board {
    fn new(inputs: SwitchInputs) -> Board {
        Board {
            inputs,
            egress: HashMap::new(),
            order: Vec::new(),
            detached: Vec::new(),
        }
    }

    fn pump_control(&mut self, timeout: Duration) -> bool {
        match self.inputs.control.recv_timeout(timeout) {
            Ok(Control::Attach { id, egress, .. }) => {
                self.egress.insert(id, egress);
                self.order.push(id);
                true
            }
            Ok(Control::Detach { id }) => {
                self.egress.remove(&id);
                self.detached.push(id);
                true
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => panic!("attacher gone"),
        }
    }

    /// Waits until `n` ports have attached in all; returns the newest.
    fn attached(&mut self, n: usize) -> PortId {
        let deadline = Instant::now() + WAIT;
        while self.order.len() < n {
            assert!(Instant::now() < deadline, "no port attached");
            self.pump_control(Duration::from_millis(50));
        }
        self.order[n - 1]
    }

    fn wait_detached(&mut self, id: PortId) {
        let deadline = Instant::now() + WAIT;
        while !self.detached.contains(&id) {
            assert!(Instant::now() < deadline, "{id} not detached");
            self.pump_control(Duration::from_millis(50));
        }
    }

    fn assert_attached(&mut self, id: PortId) {
        while self.pump_control(Duration::from_millis(100)) {}
        assert!(!self.detached.contains(&id), "{id} was detached");
    }

    /// The next frame from any port.
    fn frame(&mut self) -> (PortId, Vec<u8>) {
        let ingress = self
            .inputs
            .ingress
            .recv_timeout(WAIT)
            .expect("a frame from a link");
        (ingress.port, ingress.frame.to_vec())
    }

    fn send(&mut self, id: PortId, frame: &[u8]) {
        while self.pump_control(Duration::ZERO) {}
        self.egress[&id]
            .send(Bytes::copy_from_slice(frame))
            .expect("port egress");
    }
}

fn board() -> (crate::port::Attacher, Board) {
    let (attacher, inputs) = channels(64, 64);
    (attacher, Board::new(inputs))
}

fn frame(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_add(seed)).collect()
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hs-link-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn be32(f: &[u8]) -> Vec<u8> {
    let mut out = (f.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(f);
    out
}

fn le16(f: &[u8]) -> Vec<u8> {
    let mut out = (f.len() as u16).to_le_bytes().to_vec();
    out.extend_from_slice(f);
    out
}

fn read_be32<R: Read>(r: &mut R) -> Vec<u8> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).unwrap();
    let mut f = vec![0u8; u32::from_be_bytes(len) as usize];
    r.read_exact(&mut f).unwrap();
    f
}

fn read_le16<R: Read>(r: &mut R) -> Vec<u8> {
    let mut len = [0u8; 2];
    r.read_exact(&mut len).unwrap();
    let mut f = vec![0u8; u16::from_le_bytes(len) as usize];
    r.read_exact(&mut f).unwrap();
    f
}

/// Reads until the peer closes; returns whether it did within the wait.
fn closes<R: Read>(r: &mut R) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

fn unix_client(path: &std::path::Path) -> UnixStream {
    let s = UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s
}

/// Frames both ways on two clients, then `bad` bytes on the first close only its port.
fn stream_link_scenario(
    board: &mut Board,
    mut connect: impl FnMut() -> UnixStream,
    encode: fn(&[u8]) -> Vec<u8>,
    decode: fn(&mut UnixStream) -> Vec<u8>,
    bad: &[u8],
    end_after_bad: bool,
    counters: &LinkCounters,
) {
    let base = board.order.len();
    let mut a = connect();
    let pa = board.attached(base + 1);
    let mut b = connect();
    let pb = board.attached(base + 2);
    assert_ne!(pa, pb, "two clients, two ports");

    a.write_all(&encode(&frame(60, 1))).unwrap();
    assert_eq!(board.frame(), (pa, frame(60, 1)));
    // Two frames in one write, and a frame split across writes.
    let mut two = encode(&frame(1514, 2));
    two.extend(encode(&frame(42, 3)));
    b.write_all(&two).unwrap();
    assert_eq!(board.frame(), (pb, frame(1514, 2)));
    assert_eq!(board.frame(), (pb, frame(42, 3)));
    let split = encode(&frame(100, 4));
    b.write_all(&split[..7]).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    b.write_all(&split[7..]).unwrap();
    assert_eq!(board.frame(), (pb, frame(100, 4)));

    board.send(pa, &frame(70, 5));
    board.send(pb, &frame(1518, 6));
    assert_eq!(decode(&mut a), frame(70, 5));
    assert_eq!(decode(&mut b), frame(1518, 6));

    let before = counters.closed_framing.load(Ordering::Relaxed);
    a.write_all(bad).unwrap();
    if end_after_bad {
        a.shutdown(std::net::Shutdown::Write).unwrap();
    }
    board.wait_detached(pa);
    assert!(closes(&mut a), "the bad client's connection is closed");
    assert_eq!(counters.closed_framing.load(Ordering::Relaxed), before + 1);

    board.assert_attached(pb);
    b.write_all(&encode(&frame(64, 7))).unwrap();
    assert_eq!(board.frame(), (pb, frame(64, 7)));
    board.send(pb, &frame(64, 8));
    assert_eq!(decode(&mut b), frame(64, 8));
}

#[test]
fn qemu_stream_both_ways_and_bad_framing_closes_one_port() {
    let dir = temp_dir("qemu");
    let path = dir.join("qemu.sock");
    let (attacher, mut board) = board();
    let ep = Endpoint::parse(&format!("unix://{}", path.display())).unwrap();
    let listener = qemu::listen(&ep, attacher, LinkLimits::default()).unwrap();
    let counters = listener.counters().clone();
    let connect = || unix_client(&path);
    let read = |s: &mut UnixStream| read_be32(s);
    // Zero length, oversize (1500 + 14 + 4 is the limit), truncated at end of stream.
    stream_link_scenario(
        &mut board,
        connect,
        be32,
        read,
        &[0, 0, 0, 0],
        false,
        &counters,
    );
    stream_link_scenario(
        &mut board,
        connect,
        be32,
        read,
        &be32(&frame(1519, 0)),
        false,
        &counters,
    );
    stream_link_scenario(
        &mut board,
        connect,
        be32,
        read,
        &be32(&frame(100, 0))[..50],
        true,
        &counters,
    );
    assert_eq!(counters.closed_framing.load(Ordering::Relaxed), 3);
    listener.shutdown();
    assert!(!path.exists(), "socket removed on shutdown");
}

#[test]
fn qemu_over_tcp_loopback() {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    let (attacher, mut board) = board();
    let ep = Endpoint::parse(&format!("tcp://{addr}")).unwrap();
    let listener = qemu::listen(&ep, attacher, LinkLimits::default()).unwrap();
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    let p = board.attached(1);
    c.write_all(&be32(&frame(60, 9))).unwrap();
    assert_eq!(board.frame(), (p, frame(60, 9)));
    board.send(p, &frame(61, 10));
    assert_eq!(read_be32(&mut c), frame(61, 10));
    listener.shutdown();
    assert!(closes(&mut c), "shutdown closes open connections");
}

#[test]
fn connect_hijacks_into_2_byte_frames_other_paths_404() {
    let dir = temp_dir("connect");
    let path = dir.join("api.sock");
    let (attacher, mut board) = board();
    let ep = Endpoint::Unix(path.clone());
    let options = http::HttpOptions {
        connect: Some(attacher),
        handler: std::sync::Arc::new(http::NotFound),
        socket_mode: Some(0o600),
        offload: true,
    };
    let listener = http::listen(&ep, options, LinkLimits::default()).unwrap();
    let counters = listener.counters().clone();

    // Not /connect: a 404 and the connection closes.
    let mut c = unix_client(&path);
    c.write_all(b"GET /services/forwarder/all HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    c.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 404 "), "{answer}");

    // A bad request: 400 and counted.
    let mut c = unix_client(&path);
    c.write_all(b"NONSENSE\r\n\r\n").unwrap();
    let mut answer = String::new();
    c.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert_eq!(counters.handshake_failed.load(Ordering::Relaxed), 1);

    // The first frame arrives in the same write as the request, as gvforwarder may send it.
    let connect = || {
        let mut s = unix_client(&path);
        let mut req = b"POST /connect HTTP/1.1\r\nHost: unix\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: 0\r\n\r\n".to_vec();
        req.extend(le16(&frame(20, 99)));
        s.write_all(&req).unwrap();
        s
    };
    let mut probe = connect();
    let p = board.attached(1);
    assert_eq!(board.frame(), (p, frame(20, 99)));
    // No HTTP response: the first bytes back are a frame.
    board.send(p, &frame(33, 1));
    assert_eq!(read_le16(&mut probe), frame(33, 1));
    drop(probe);
    board.wait_detached(p);

    let with_first = |board: &mut Board| {
        let s = connect();
        let id = board.attached(board.order.len() + 1);
        assert_eq!(board.frame(), (id, frame(20, 99)));
        s
    };
    // Reuse the scenario with clients that already sent their first frame.
    let mut pending = Vec::new();
    pending.push(with_first(&mut board));
    pending.push(with_first(&mut board));
    let pa = board.order[board.order.len() - 2];
    let pb = board.order[board.order.len() - 1];
    let (mut a, mut b) = (pending.remove(0), pending.remove(0));
    a.write_all(&le16(&frame(1518, 1))).unwrap();
    assert_eq!(board.frame(), (pa, frame(1518, 1)));
    board.send(pb, &frame(1000, 2));
    assert_eq!(read_le16(&mut b), frame(1000, 2));
    a.write_all(&le16(&frame(1600, 0))).unwrap();
    board.wait_detached(pa);
    assert!(closes(&mut a));
    b.write_all(&le16(&frame(60, 3))).unwrap();
    assert_eq!(board.frame(), (pb, frame(60, 3)));
    assert_eq!(counters.closed_framing.load(Ordering::Relaxed), 1);
    listener.shutdown();
    assert!(!path.exists());
}

#[test]
fn stdio_both_ways_and_truncation_closes_it() {
    let (attacher, mut board) = board();
    let (ours, theirs) = UnixStream::pair().unwrap();
    let link = stdio::serve(
        &attacher,
        theirs.try_clone().unwrap(),
        theirs,
        LinkLimits::default(),
    )
    .unwrap();
    let mut c = ours;
    c.set_read_timeout(Some(WAIT)).unwrap();
    let p = board.attached(1);
    c.write_all(&le16(&frame(60, 1))).unwrap();
    c.write_all(&le16(&frame(1514, 2))).unwrap();
    assert_eq!(board.frame(), (p, frame(60, 1)));
    assert_eq!(board.frame(), (p, frame(1514, 2)));
    board.send(p, &frame(90, 3));
    assert_eq!(read_le16(&mut c), frame(90, 3));
    c.write_all(&le16(&frame(100, 4))[..10]).unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    board.wait_detached(p);
    let reason = link.thread.join().unwrap();
    assert!(matches!(reason, CloseReason::Framing(_)), "{reason}");
    assert_eq!(link.counters.closed_framing.load(Ordering::Relaxed), 1);
}

#[test]
fn vpnkit_handshake_then_frames() {
    let dir = temp_dir("vpnkit");
    let path = dir.join("vpnkit.sock");
    let (attacher, mut board) = board();
    let listener = vpnkit::listen(
        &Endpoint::Unix(path.clone()),
        attacher,
        LinkLimits::default(),
        vpnkit::VpnkitConfig::with_mtu(1500),
    )
    .unwrap();
    let counters = listener.counters().clone();

    let hello = |s: &mut UnixStream, uuid: &str| -> [u8; vpnkit::RESPONSE_LEN] {
        let mut init = b"VMN3T".to_vec();
        init.extend(22u32.to_le_bytes());
        init.extend([b'0'; 40]);
        s.write_all(&init).unwrap();
        let mut echo = [0u8; vpnkit::INIT_LEN];
        s.read_exact(&mut echo).unwrap();
        assert_eq!(&echo[..], &init[..]);
        let mut cmd = vec![vpnkit::CMD_ETHERNET];
        cmd.extend(uuid.as_bytes());
        cmd.extend([0u8; 4]);
        s.write_all(&cmd).unwrap();
        let mut resp = [0u8; vpnkit::RESPONSE_LEN];
        s.read_exact(&mut resp).unwrap();
        resp
    };

    let mut a = unix_client(&path);
    let resp = hello(&mut a, vpnkit::DEFAULT_UUID);
    assert_eq!(resp[0], vpnkit::RESP_VIF);
    assert_eq!(u16::from_le_bytes([resp[1], resp[2]]), 1500);
    assert_eq!(u16::from_le_bytes([resp[3], resp[4]]), 1514);
    assert_eq!(&resp[5..11], vpnkit::DEFAULT_GUEST_MAC.as_bytes());
    let pa = board.attached(1);
    a.write_all(&le16(&frame(60, 1))).unwrap();
    assert_eq!(board.frame(), (pa, frame(60, 1)));
    board.send(pa, &frame(61, 2));
    assert_eq!(read_le16(&mut a), frame(61, 2));

    // Another UUID: another port, a stable locally administered MAC.
    let mut b = unix_client(&path);
    let other = "01234567-89ab-cdef-0123-456789abcdef";
    let resp = hello(&mut b, other);
    let mac = &resp[5..11];
    assert_eq!(mac[0] & 0x03, 0x02, "local, unicast");
    assert_eq!(
        mac,
        vpnkit::VpnkitConfig::with_mtu(1500)
            .mac_for(other)
            .as_bytes()
    );
    let pb = board.attached(2);
    assert_ne!(pa, pb);
    b.write_all(&le16(&frame(80, 3))).unwrap();
    assert_eq!(board.frame(), (pb, frame(80, 3)));

    // HyperKit's own 37-byte ethernet command (no padding) is answered at once, and the
    // first frame after it arrives whole.
    let mut e = unix_client(&path);
    let mut init = b"VMN3T".to_vec();
    init.extend(22u32.to_le_bytes());
    init.extend([b'0'; 40]);
    e.write_all(&init).unwrap();
    let mut echo = [0u8; vpnkit::INIT_LEN];
    e.read_exact(&mut echo).unwrap();
    let mut cmd = vec![vpnkit::CMD_ETHERNET];
    cmd.extend(other.as_bytes());
    assert_eq!(cmd.len(), vpnkit::ETHERNET_COMMAND_LEN);
    let asked = std::time::Instant::now();
    e.write_all(&cmd).unwrap();
    let mut resp = [0u8; vpnkit::RESPONSE_LEN];
    e.read_exact(&mut resp).unwrap();
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "answered without waiting for the handshake timeout"
    );
    assert_eq!(resp[0], vpnkit::RESP_VIF);
    let pe = board.attached(3);
    e.write_all(&le16(&frame(70, 5))).unwrap();
    assert_eq!(board.frame(), (pe, frame(70, 5)));
    drop(e);
    board.wait_detached(pe);

    // A bad magic fails the handshake and attaches nothing.
    let mut c = unix_client(&path);
    c.write_all(&[b'X'; vpnkit::INIT_LEN]).unwrap();
    assert!(closes(&mut c));
    assert_eq!(counters.handshake_failed.load(Ordering::Relaxed), 1);
    // An unknown command gets a disconnect response.
    let mut d = unix_client(&path);
    let mut init = b"VMN3T".to_vec();
    init.extend([0u8; 44]);
    d.write_all(&init).unwrap();
    let mut echo = [0u8; vpnkit::INIT_LEN];
    d.read_exact(&mut echo).unwrap();
    d.write_all(&[7u8; vpnkit::COMMAND_LEN]).unwrap();
    let mut resp = [0u8; vpnkit::RESPONSE_LEN];
    d.read_exact(&mut resp).unwrap();
    assert_eq!(resp[0], vpnkit::RESP_DISCONNECT);
    assert!(closes(&mut d));
    assert_eq!(counters.handshake_failed.load(Ordering::Relaxed), 2);

    // Bad framing on a closes only a.
    a.write_all(&[0, 0]).unwrap();
    board.wait_detached(pa);
    board.assert_attached(pb);
    board.send(pb, &frame(50, 4));
    assert_eq!(read_le16(&mut b), frame(50, 4));
    listener.shutdown();
    assert!(!path.exists());
}

#[test]
fn vfkit_datagrams_per_peer() {
    let dir = temp_dir("vfkit");
    let path = dir.join("vfkit.sock");
    let (attacher, mut board) = board();
    let listener = vfkit::listen(
        &Endpoint::Unixgram(path.clone()),
        attacher,
        LinkLimits::default(),
    )
    .unwrap();
    let counters = listener.counters().clone();
    let client = |name: &str| {
        let s = UnixDatagram::bind(dir.join(name)).unwrap();
        s.connect(&path).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        s
    };
    let recv = |s: &UnixDatagram| {
        let mut buf = vec![0u8; 70000];
        let n = s.recv(&mut buf).unwrap();
        buf.truncate(n);
        buf
    };
    let a = client("a.sock");
    a.send(vfkit::VFKT_MAGIC).unwrap();
    let pa = board.attached(1);
    a.send(&frame(60, 1)).unwrap();
    assert_eq!(
        board.frame(),
        (pa, frame(60, 1)),
        "VFKT is not forwarded as a frame"
    );
    let b = client("b.sock");
    b.send(&frame(1518, 2)).unwrap();
    let pb = board.attached(2);
    assert_ne!(pa, pb);
    assert_eq!(board.frame(), (pb, frame(1518, 2)));
    board.send(pa, &frame(70, 3));
    board.send(pb, &frame(71, 4));
    assert_eq!(recv(&a), frame(70, 3));
    assert_eq!(recv(&b), frame(71, 4));

    // An oversize datagram closes a's port only.
    a.send(&frame(1519, 0)).unwrap();
    board.wait_detached(pa);
    assert_eq!(counters.closed_framing.load(Ordering::Relaxed), 1);
    b.send(&frame(64, 5)).unwrap();
    assert_eq!(board.frame(), (pb, frame(64, 5)));
    board.send(pb, &frame(65, 6));
    assert_eq!(recv(&b), frame(65, 6));

    // An unnamed sender cannot be answered: dropped and counted, no port.
    let anon = UnixDatagram::unbound().unwrap();
    anon.send_to(&frame(60, 7), &path).unwrap();
    let deadline = Instant::now() + WAIT;
    while counters.rx_dropped.load(Ordering::Relaxed) == 0 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }

    // A peer whose socket is gone loses its port once sending to it fails.
    drop(b);
    std::fs::remove_file(dir.join("b.sock")).unwrap();
    board.send(pb, &frame(60, 8));
    board.wait_detached(pb);
    listener.shutdown();
    assert!(!path.exists());
}

#[test]
fn bess_seqpacket_both_ways() {
    let dir = temp_dir("bess");
    let path = dir.join("bess.sock");
    let (attacher, mut board) = board();
    let listener = bess::listen(
        &Endpoint::Unixpacket(path.clone()),
        attacher,
        LinkLimits::default(),
    )
    .unwrap();
    let counters = listener.counters().clone();
    let client = || {
        let s = Socket::new(Domain::UNIX, Type::SEQPACKET, None).unwrap();
        s.connect(&SockAddr::unix(&path).unwrap()).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        s
    };
    let recv = |s: &Socket| {
        let mut buf = vec![0u8; 70000];
        let n = (&*s).read(&mut buf).unwrap();
        buf.truncate(n);
        buf
    };
    let a = client();
    let pa = board.attached(1);
    let b = client();
    let pb = board.attached(2);
    assert_ne!(pa, pb);
    a.send(&frame(60, 1)).unwrap();
    b.send(&frame(1518, 2)).unwrap();
    let mut got = [board.frame(), board.frame()];
    got.sort();
    let mut want = [(pa, frame(60, 1)), (pb, frame(1518, 2))];
    want.sort();
    assert_eq!(got, want);
    board.send(pa, &frame(70, 3));
    board.send(pb, &frame(71, 4));
    assert_eq!(recv(&a), frame(70, 3));
    assert_eq!(recv(&b), frame(71, 4));

    a.send(&frame(1519, 0)).unwrap();
    board.wait_detached(pa);
    assert_eq!(counters.closed_framing.load(Ordering::Relaxed), 1);
    assert_eq!(recv(&a), Vec::<u8>::new(), "a's connection is closed");
    b.send(&frame(64, 5)).unwrap();
    assert_eq!(board.frame(), (pb, frame(64, 5)));
    listener.shutdown();
    assert!(!path.exists());
}

#[test]
fn ports_per_listener_are_bounded() {
    let dir = temp_dir("limit");
    let path = dir.join("q.sock");
    let (attacher, mut board) = board();
    let limits = LinkLimits {
        max_ports: 1,
        ..LinkLimits::default()
    };
    let listener = qemu::listen(&Endpoint::Unix(path.clone()), attacher, limits).unwrap();
    let mut a = unix_client(&path);
    let pa = board.attached(1);
    let mut b = unix_client(&path);
    assert!(closes(&mut b), "the connection past the limit is closed");
    assert_eq!(listener.counters().refused_full.load(Ordering::Relaxed), 1);
    a.write_all(&be32(&frame(60, 1))).unwrap();
    assert_eq!(board.frame(), (pa, frame(60, 1)));
    // Once a leaves, its slot is free again.
    drop(a);
    board.wait_detached(pa);
    let deadline = Instant::now() + WAIT;
    while listener.counters().active.load(Ordering::Relaxed) != 0 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut c = unix_client(&path);
    let pc = board.attached(2);
    c.write_all(&be32(&frame(60, 2))).unwrap();
    assert_eq!(board.frame(), (pc, frame(60, 2)));
}

#[test]
fn a_link_gone_says_so_whichever_side_saw_it_first() {
    // The receive side sees the poll's hang-up, the transmit side a write's EBADFD: either
    // way the port's close reason says the link went away.
    let fresh = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    let hangup =
        crate::sys::wait_readable(std::os::fd::AsFd::as_fd(&fresh), Some(WAIT)).unwrap_err();
    let write = std::io::Error::from_raw_os_error(libc::EBADFD);
    for e in [hangup, write] {
        let reason = CloseReason::from_io(e);
        assert!(matches!(reason, CloseReason::Gone(_)), "{reason:?}");
        assert!(reason.to_string().contains("went away"), "{reason}");
    }
}
