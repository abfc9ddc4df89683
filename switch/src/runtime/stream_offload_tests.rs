//! A virtio-net header negotiated on a stream served by a worker ([`crate::link::offer`]):
//! the test plays the guest agent on one end of a socket pair, or a peer that knows nothing
//! of the offer, and reads what the worker writes.
//!
//! An accepted offer is answered by the accept marker before anything else; every frame
//! written after it carries the header, while frames read stay plain until the agent's
//! acknowledgement (an agent that never sends one is still understood). After it, a header
//! that does not parse or fit drops its frame, counted under its reason, and the stream goes
//! on. A stream without an offer, or one whose listener has offloads off, gets neither marker
//! nor header, whatever the peer sends.

use std::io::Write;
use std::os::unix::net::UnixStream;

use super::*;
use crate::framing::{Decoder, Encoder, LengthPrefix};
use crate::gateway::testing::{GUEST, GUEST_MAC, GW, arp_request, echo_request, parse_arp};
use crate::link::http::{self, HttpOptions};
use crate::link::offer::{self, Offer};
use crate::link::stream::{NativeStream, StreamSpec};
use crate::link::{Endpoint, LinkLimits};
use crate::mac_table::PortId;
use stack::ingress::DropReason;
use stack::wire::{ArpOperation, VirtioNetError};

const WAIT: Duration = Duration::from_secs(5);
const OFFER: Offer = Offer {
    nonce: 0x5eed_0ff0_0ffe_0004,
};
const PLAIN: [u8; 12] = [0; 12];

/// The guest's end of a stream: 2-byte little-endian lengths, as `/connect` frames.
struct Peer {
    socket: UnixStream,
    encoder: Encoder,
    decoder: Decoder,
}

impl Peer {
    fn new(socket: UnixStream) -> Peer {
        socket.set_read_timeout(Some(WAIT)).unwrap();
        Peer {
            socket,
            encoder: Encoder::new(LengthPrefix::U16Le, offer::MAX_FRAME),
            decoder: Decoder::new(LengthPrefix::U16Le, offer::MAX_FRAME),
        }
    }

    fn send(&mut self, parts: &[&[u8]]) {
        self.encoder
            .write_frame(&mut self.socket, &parts.concat())
            .unwrap();
    }

    fn recv(&mut self) -> Vec<u8> {
        loop {
            if let Some(frame) = self.decoder.next_frame().unwrap() {
                return frame.to_vec();
            }
            let n = self.decoder.read_from(&mut self.socket).unwrap();
            assert!(n > 0, "the stream ended");
        }
    }

    /// Sends an ARP request for the gateway (`header` first, if any) and returns the reply
    /// as it came: header and frame together.
    fn ask(&mut self, header: &[u8]) -> Vec<u8> {
        self.send(&[header, &arp_request(GW, GUEST)]);
        self.recv()
    }
}

fn assert_arp_reply(frame: &[u8]) {
    let (eth, arp) = parse_arp(frame);
    assert_eq!(
        (eth.dst_addr, arp.operation),
        (GUEST_MAC, ArpOperation::Reply)
    );
}

fn runtime() -> Runtime {
    Runtime::start(super::tests::quiet(RuntimeConfig {
        workers: 1,
        ..RuntimeConfig::default()
    }))
    .unwrap()
}

/// A stream attached straight to `rt`'s data plane, with `offer` as its request made it.
fn attach(rt: &Runtime, offer: Option<Offer>) -> (Peer, PortId) {
    attach_with(rt, offer, 1514)
}

fn attach_with(rt: &Runtime, offer: Option<Offer>, max_frame: usize) -> (Peer, PortId) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let (done, _ended) = crossbeam_channel::bounded(1);
    let stream = NativeStream {
        socket: socket2::Socket::from(std::os::fd::OwnedFd::from(theirs)),
        spec: StreamSpec {
            prefix: LengthPrefix::U16Le,
            max_frame,
        },
        leftover: Vec::new(),
        offer,
        link: Arc::new(crate::link::LinkCounters::default()),
        done,
    };
    let id = rt
        .attacher()
        .board()
        .attach_stream("offer", stream, 1500)
        .unwrap();
    (Peer::new(ours), id)
}

fn drops(rt: &Runtime, reason: VirtioNetError) -> u64 {
    rt.stats().drops.get(DropReason::VirtioNet(reason))
}

fn await_drop(rt: &Runtime, reason: VirtioNetError, before: u64) {
    let deadline = std::time::Instant::now() + WAIT;
    while drops(rt, reason) == before {
        assert!(std::time::Instant::now() < deadline, "no drop for {reason}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn an_accepted_offer_is_answered_first_then_frames_carry_the_header() {
    let rt = runtime();
    let (mut agent, _) = attach(&rt, Some(OFFER));
    assert_eq!(
        agent.recv(),
        OFFER.accept_marker(),
        "the marker comes first"
    );
    // Not acknowledged yet: plain frames are read, answers carry the header.
    let reply = agent.ask(&[]);
    assert_eq!(reply[..12], PLAIN);
    assert_arp_reply(&reply[12..]);
    // Another nonce's acknowledgement is a frame like any other, not the switch.
    agent.send(&[&Offer { nonce: 1 }.ack_marker()]);
    assert_arp_reply(&agent.ask(&[])[12..]);
    agent.send(&[&OFFER.ack_marker()]);
    let reply = agent.ask(&PLAIN);
    assert_eq!(reply[..12], PLAIN);
    assert_arp_reply(&reply[12..]);
    agent.send(&[&PLAIN, &echo_request(GW, b"ping over the header")]);
    let echo = agent.recv();
    assert!(echo[12..].windows(20).any(|w| w == b"ping over the header"));
}

#[test]
fn headers_that_do_not_parse_or_fit_drop_their_frame_and_the_stream_goes_on() {
    let rt = runtime();
    let (mut agent, id) = attach(&rt, Some(OFFER));
    assert_eq!(agent.recv(), OFFER.accept_marker());
    agent.send(&[&OFFER.ack_marker()]);
    let truncated = drops(&rt, VirtioNetError::Truncated);
    agent.send(&[&[1, 2, 3, 4, 5]]);
    await_drop(&rt, VirtioNetError::Truncated, truncated);
    let unknown = drops(&rt, VirtioNetError::UnknownGsoType);
    let mut bad = PLAIN;
    bad[1] = 9;
    agent.send(&[&bad, &arp_request(GW, GUEST)]);
    await_drop(&rt, VirtioNetError::UnknownGsoType, unknown);
    // NEEDS_CSUM pointing past the frame.
    let offset = drops(&rt, VirtioNetError::BadChecksumOffset);
    let mut past = PLAIN;
    past[0] = 1;
    past[6..8].copy_from_slice(&2000u16.to_le_bytes());
    agent.send(&[&past, &arp_request(GW, GUEST)]);
    await_drop(&rt, VirtioNetError::BadChecksumOffset, offset);
    // The stream is still up and served.
    assert_arp_reply(&agent.ask(&PLAIN)[12..]);
    assert!(rt.stats().ports.iter().any(|p| p.id == id));
}

#[test]
fn without_an_offer_there_is_neither_marker_nor_header() {
    let rt = runtime();
    let (mut peer, _) = attach(&rt, None);
    // A peer that sends what looks like an acknowledgement still speaks plain frames.
    peer.send(&[&OFFER.ack_marker()]);
    assert_arp_reply(&peer.ask(&[]));
    assert_arp_reply(&peer.ask(&[]));
}

#[test]
fn an_offer_on_a_link_whose_frames_leave_no_room_for_the_header_is_refused() {
    let rt = runtime();
    // MTU 65,520: a full frame and a header would not fit the 2-byte length.
    let (mut agent, _) = attach_with(&rt, Some(OFFER), crate::framing::max_frame_len(65520));
    assert_arp_reply(&agent.ask(&[]));
    // The largest MTU that leaves room accepts.
    let (mut agent, _) = attach_with(&rt, Some(OFFER), crate::framing::max_frame_len(65505));
    assert_eq!(agent.recv(), OFFER.accept_marker());
}

/// `POST /connect` with the offer, on a listener with offloads `offload`: the first frame
/// back is the marker where they are on, the answer to a plain request where they are off.
fn connect_through_http(offload: bool) -> Vec<u8> {
    let rt = runtime();
    let dir = std::env::temp_dir().join(format!(
        "hs-offer-{}-{}",
        std::process::id(),
        u8::from(offload)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("hs.sock");
    let options = HttpOptions {
        connect: Some(rt.attacher()),
        handler: Arc::new(http::NotFound),
        socket_mode: Some(0o600),
        offload,
    };
    let listener = http::listen(
        &Endpoint::Unix(path.clone()),
        options,
        LinkLimits::default(),
    )
    .unwrap();
    let mut socket = UnixStream::connect(&path).unwrap();
    socket
        .write_all(&crate::guest::transport::connect_request(Some(&OFFER)))
        .unwrap();
    let mut peer = Peer::new(socket);
    let first = peer.ask(&[]);
    listener.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
    first
}

#[test]
fn connect_accepts_the_offer_only_with_offloads_on() {
    assert_eq!(connect_through_http(true), OFFER.accept_marker());
    assert_arp_reply(&connect_through_http(false));
}
