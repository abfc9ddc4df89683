//! A TCP flow on a link with offloads: what a host peer sends reaches the guest in
//! super-segments with the virtio-net header Linux expects (partial checksum at the TCP
//! checksum, GSO TCPv4 with the MSS as segment size), which the link's finishing turns into
//! MSS-sized segments whose checksums verify and whose bytes are the host's. Without
//! offloads, the same flow gets one-MSS segments with checksums of their own.

use std::io::Write;

use stack::offload::finish;
use stack::wire::VirtioNetGso;
use stack::wire::virtio_net::PartialChecksum;

use super::limits::seq;
use super::*;

const SIZE: usize = 1 << 20;
const MSS: usize = 1460;

fn byte(i: usize) -> u8 {
    (i.wrapping_mul(7) % 253) as u8
}

/// A host server that writes [`SIZE`] bytes to its one connection and closes; its address.
fn sender() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let dst = SocketAddr::from((HOST, listener.local_addr().unwrap().port()));
    std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let data: Vec<u8> = (0..SIZE).map(byte).collect();
        conn.write_all(&data).unwrap();
    });
    dst
}

/// Takes in-order data out of `frame` (a finished segment), checking every byte.
fn take(frame: &[u8], next: &mut u32, got: &mut usize) {
    let parsed = parse_for_guest(frame);
    let Event::Tcp { tcp, payload, .. } = parsed.event else {
        panic!("not TCP");
    };
    if tcp.seq_number.0 != *next || payload.is_empty() {
        return;
    }
    for (i, &b) in payload.iter().enumerate() {
        assert_eq!(b, byte(*got + i), "byte {}", *got + i);
    }
    *got += payload.len();
    *next = next.wrapping_add(payload.len() as u32);
}

/// Opens a connection from the guest's port 7000 to `dst` and reads [`SIZE`] bytes from it,
/// acknowledging as it goes. Returns the frames that came with a virtio-net header (their
/// header) and how many came without.
fn receive(h: &mut Harness, dst: SocketAddr) -> (Vec<VirtioNetRepr>, usize) {
    h.segment(GUEST, 7000, dst, 1000, None, TcpControl::Syn, &[]);
    let syn_ack = h.until(7000, TcpControl::Syn);
    let mut next = seq(&syn_ack).wrapping_add(1);
    h.segment(GUEST, 7000, dst, 1001, Some(next), TcpControl::None, &[]);
    let (mut got, mut headers, mut plain) = (0, Vec::new(), 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while got < SIZE {
        assert!(std::time::Instant::now() < deadline, "stalled at {got}");
        h.wait(Duration::from_millis(5));
        let now = h.now();
        if h.fwd.poll_timeout().is_some_and(|at| at <= now) {
            h.fwd.handle_timeout(now, &h.sink);
        }
        let offloaded = std::mem::take(&mut *h.sink.1.lock().unwrap());
        for (frame, header) in offloaded {
            let mut scratch = Vec::new();
            let mut segments = Vec::new();
            finish(&frame, &header, &mut scratch, &mut |f| {
                segments.push(f.to_vec())
            })
            .unwrap();
            assert!(segments.iter().all(|s| s.len() <= 14 + 20 + 20 + MSS));
            for s in &segments {
                take(s, &mut next, &mut got);
            }
            headers.push(header);
        }
        for frame in h.sink.take() {
            plain += 1;
            take(&frame, &mut next, &mut got);
        }
        h.segment(GUEST, 7000, dst, 1001, Some(next), TcpControl::None, &[]);
    }
    (headers, plain)
}

#[test]
fn a_link_with_offloads_gets_super_segments_with_the_header_linux_expects() {
    let dst = sender();
    let mut h = Harness::new(Config::default());
    h.offloads = LinkOffloads::VIRTIO_NET;
    let (headers, _) = receive(&mut h, dst);
    assert!(!headers.is_empty());
    let partial = Some(PartialChecksum {
        start: 34,
        offset: 16,
    });
    assert!(headers.iter().all(|hd| hd.partial == partial));
    let supers: Vec<_> = headers.iter().filter(|hd| hd.is_gso()).collect();
    assert!(
        supers.len() * 4 > headers.len(),
        "mostly super-segments: {} of {}",
        supers.len(),
        headers.len()
    );
    for hd in supers {
        assert_eq!(hd.gso, VirtioNetGso::Tcpv4);
        assert_eq!(usize::from(hd.gso_size), MSS);
        assert_eq!(hd.hdr_len, 34 + 20);
    }
}

#[test]
fn a_link_without_offloads_gets_one_mss_per_segment() {
    let dst = sender();
    let mut h = Harness::new(Config::default());
    let (headers, plain) = receive(&mut h, dst);
    assert!(headers.is_empty());
    assert!(plain >= SIZE / MSS);
}
