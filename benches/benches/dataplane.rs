//! The whole in-process path of one worker, without a link: a guest's frame in, through the
//! gateway's parse and the forwarder's flow table to a host socket on loopback, the host's
//! answer read back and built into a frame for the guest. A UDP echo server on 127.0.0.1
//! answers; the figure is one round trip through host-switch's code and the host's loopback
//! (the echo server's own turn included), so it shows the per-frame cost with no peer, no
//! TAP and no other thread of host-switch's in the way.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::cell::RefCell;
use std::hint::black_box;
use std::net::{Ipv4Addr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use forwarder::{
    Control, FlowFrame, FlowHandler, Forwarder, FrameSink, Handled, Notify, Readiness,
    WorkerContext, WorkerCounters,
};
use mio::{Events, Poll, Token};
use stack::time::Epoch;
use stack::wire::{
    EtherType, EthernetAddress, EthernetFrame, EthernetRepr, IpAddresses, IpProtocol, Ipv4Packet,
    Ipv4Repr, UdpPacket, UdpRepr, ethernet, ipv4, udp,
};
use switch::gateway::{Gateway, GatewayConfig, Outcome};

const GW_MAC: EthernetAddress = EthernetAddress([0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xdd]);
const GUEST_MAC: EthernetAddress = EthernetAddress([0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xee]);
const GUEST: Ipv4Addr = Ipv4Addr::new(192, 168, 127, 2);
const HOST: Ipv4Addr = Ipv4Addr::new(192, 168, 127, 254);

/// A UDP datagram of `payload` from the guest to the host alias's `port`.
fn udp_frame(port: u16, payload: &[u8]) -> Bytes {
    let udp = UdpRepr {
        src_port: 40000,
        dst_port: port,
        payload_len: payload.len(),
    };
    let ip = Ipv4Repr {
        src_addr: GUEST,
        dst_addr: HOST,
        next_header: IpProtocol::Udp,
        payload_len: udp::HEADER_LEN + payload.len(),
        hop_limit: 64,
        ident: 1,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
        dscp: 0,
        ecn: 0,
    };
    let mut f = vec![0u8; (ethernet::HEADER_LEN + ip.total_len()).max(60)];
    EthernetRepr {
        src_addr: GUEST_MAC,
        dst_addr: GW_MAC,
        ethertype: EtherType::Ipv4,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
    let at = ethernet::HEADER_LEN;
    ip.emit(&mut Ipv4Packet::new_unchecked(
        &mut f[at..at + ipv4::HEADER_LEN],
    ));
    let l4 = at + ipv4::HEADER_LEN;
    let end = l4 + udp::HEADER_LEN + payload.len();
    f[l4 + udp::HEADER_LEN..end].copy_from_slice(payload);
    udp.emit(
        &mut UdpPacket::new_unchecked(&mut f[l4..end]),
        &IpAddresses::V4 {
            src: GUEST,
            dst: HOST,
        },
    );
    Bytes::from(f)
}

/// Frames for the guest, built where a link's buffer would be; counts them.
#[derive(Default)]
struct Sink {
    buf: RefCell<Vec<u8>>,
    frames: RefCell<usize>,
}

impl FrameSink for Sink {
    fn send_frame(&self, frame: Bytes) -> bool {
        black_box(&frame);
        *self.frames.borrow_mut() += 1;
        true
    }

    fn send_with(&self, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> bool {
        let mut buf = self.buf.borrow_mut();
        if buf.len() < len {
            buf.resize(len, 0);
        }
        fill(&mut buf[..len]);
        black_box(&buf[..len]);
        *self.frames.borrow_mut() += 1;
        true
    }
}

struct Nothing;
impl Notify for Nothing {
    fn notify(&self) {}
}

fn echo_server() -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            let _ = socket.send_to(&buf[..n], from);
        }
    });
    port
}

fn udp_round_trip(c: &mut Criterion) {
    let epoch = Epoch::new(std::time::Instant::now());
    let mut gateway = Gateway::new(GatewayConfig::default(), epoch).unwrap();
    let mut poll = Poll::new().unwrap();
    let mut events = Events::with_capacity(64);
    let control = Control::new(std::net::IpAddr::V4(GUEST), &[]);
    let config = forwarder::Config {
        nat: vec![(HOST.into(), Ipv4Addr::LOCALHOST.into())],
        ..forwarder::Config::default()
    };
    let ctx = WorkerContext {
        index: 0,
        workers: 1,
        seed: 1,
        epoch,
        mtu: 1500,
        gateway_mac: GW_MAC,
        counters: Arc::new(WorkerCounters::default()),
        notify: Arc::new(Nothing),
    };
    let mut fwd = Forwarder::new(&ctx, poll.registry(), Arc::new(config), control).unwrap();
    let sink = Sink::default();
    let frame = udp_frame(echo_server(), &[0x5a; 64]);

    c.bench_function(
        "dataplane/udp 64 B: frame in → loopback echo → frame out",
        |b| {
            b.iter(|| {
                let now = epoch.instant(std::time::Instant::now());
                let Outcome::Flow(packet) = gateway.handle_frame(now, &frame) else {
                    panic!("not a flow");
                };
                let packet = FlowFrame {
                    frame: frame.clone(),
                    packet,
                    link_mtu: 1500,
                    link_offloads: stack::offload::LinkOffloads::NONE,
                };
                assert_eq!(fwd.handle_packet(now, &packet, &sink), Handled::Here);
                let before = *sink.frames.borrow();
                while *sink.frames.borrow() == before {
                    poll.poll(&mut events, Some(Duration::from_secs(1)))
                        .unwrap();
                    let now = epoch.instant(std::time::Instant::now());
                    for e in events.iter() {
                        if e.token() != Token(0) {
                            fwd.ready(now, e.token(), Readiness::of(e), &sink);
                        }
                    }
                }
            });
        },
    );
}

criterion_group!(benches, udp_round_trip);
criterion_main!(benches);
