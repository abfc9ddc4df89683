use super::*;
use crate::gateway::testing::{
    GUEST, GUEST_MAC, GW, GW_MAC, HOST, arp_request, arp_request_from, dns_frame, echo_request,
    frame, parse_arp, tcp_syn, udp_datagram,
};
use bytes::Bytes;
use dhcp::Subnet;
use forwarder::HandlerFactory;
use forwarder::{FlowFrame, FlowHandler, FrameSink, Handled, WorkerContext};
use stack::ingress::DropReason;
use stack::time::Instant;
use stack::wire::{ArpOperation, EtherType, EthernetAddress};
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn config() -> RuntimeConfig {
    quiet(RuntimeConfig {
        workers: 2,
        ..RuntimeConfig::default()
    })
}

/// `config` without the frames the gateway sends unasked (router advertisements, multicast
/// queries), for tests that expect every frame a guest receives to answer one it sent.
pub(super) fn quiet(config: RuntimeConfig) -> RuntimeConfig {
    RuntimeConfig {
        ipv6: None,
        multicast: None,
        ..config
    }
}

fn udp_to_host(port: u16) -> Bytes {
    Bytes::from(frame(
        GUEST_MAC,
        GW_MAC,
        EtherType::Ipv4,
        &udp_datagram(GUEST, HOST, port, 53, b"query"),
    ))
}

#[test]
fn default_config_is_gvproxys() {
    let c = RuntimeConfig::default();
    assert_eq!(c.gateway_ip, GW);
    assert_eq!(c.host_ip, HOST);
    let d = c.dhcp_config();
    assert_eq!(d.server_addr, GW);
    assert_eq!(d.routers, vec![GW]);
    assert_eq!(d.dns_servers, vec![GW]);
    assert!(d.reserved.contains(&HOST));
    assert_eq!(d.static_leases[0].ip, GUEST);
    assert_eq!(d.pool_start, Ipv4Addr::new(192, 168, 127, 3));
    assert_eq!(d.pool_end, Ipv4Addr::new(192, 168, 127, 253));
    assert_eq!(d.mtu, Some(1500));
    let other = RuntimeConfig::for_subnet(Subnet::new(Ipv4Addr::new(10, 0, 2, 0), 24).unwrap());
    assert_eq!(other.gateway_ip, Ipv4Addr::new(10, 0, 2, 1));
    assert_eq!(other.host_ip, Ipv4Addr::new(10, 0, 2, 254));
}

#[test]
fn arp_and_echo_through_the_pipeline() {
    let rt = Runtime::start(config()).unwrap();
    let port = rt.attacher().attach("test").unwrap();
    assert!(port.send(Bytes::from(arp_request(GW, GUEST))));
    let reply = port.egress().recv_timeout(Duration::from_secs(5)).unwrap();
    let (eth, arp) = parse_arp(&reply);
    assert_eq!(eth.dst_addr, GUEST_MAC);
    assert_eq!(arp.operation, ArpOperation::Reply);
    assert!(port.send(Bytes::from(echo_request(GW, b"abc"))));
    let reply = port.egress().recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(&reply[6..12], GW_MAC.as_bytes());
    let stats = rt.stats();
    assert_eq!(stats.gateway.arp_replies, 1);
    assert_eq!(stats.gateway.echo_replies, 1);
    assert_eq!(stats.ports.len(), 1, "{:?}", stats.ports);
    assert_eq!(stats.ports[0].id, port.id());
    assert_eq!(stats.ports[0].rx_frames, 2);
    assert_eq!(stats.ports[0].tx_frames, 2);
    assert!(stats.mac_entries >= 2);
    assert_eq!(rt.leases().len(), 1, "the static lease");
    rt.shutdown();
}

#[test]
fn flows_without_a_forwarder_are_counted() {
    let rt = Runtime::start(config()).unwrap();
    let port = rt.attacher().attach("test").unwrap();
    for p in 0..5 {
        assert!(port.send(udp_to_host(1000 + p)));
    }
    wait_for("no-forwarder drops", || {
        (rt.stats().drops.get(DropReason::NoForwarder) == 5).then_some(())
    });
    assert_eq!(rt.stats().gateway.flows, 5);
}

#[test]
fn full_egress_queue_drops_and_counts() {
    let rt = Runtime::start(quiet(RuntimeConfig {
        queues: QueueConfig {
            port_egress: 4,
            ..QueueConfig::default()
        },
        ..config()
    }))
    .unwrap();
    let a = rt.attacher().attach("a").unwrap();
    let b = rt.attacher().attach("b").unwrap();
    // Broadcasts of an EtherType nobody handles; b never drains its queue.
    let bcast = Bytes::from(frame(
        GUEST_MAC,
        stack::wire::EthernetAddress::BROADCAST,
        EtherType::Unknown(0x88b5),
        &[0u8; 46],
    ));
    for _ in 0..50 {
        assert!(a.send(bcast.clone()));
    }
    let stats = wait_for("floods", || {
        let s = rt.stats();
        (s.switch.flooded == 50).then_some(s)
    });
    let b_stats = stats.ports.iter().find(|p| p.id == b.id()).unwrap();
    assert_eq!(b_stats.tx_frames, 4);
    assert_eq!(b_stats.tx_dropped, 46);
    assert_eq!(
        b.counters().tx_dropped.load(Ordering::Relaxed),
        46,
        "the link sees it too"
    );
}

/// Blocks on `gate` for every packet.
struct Blocking {
    gate: crossbeam_channel::Receiver<()>,
}

impl FlowHandler for Blocking {
    fn handle_packet(&mut self, _now: Instant, _p: &FlowFrame, _out: &dyn FrameSink) -> Handled {
        let _ = self.gate.recv();
        Handled::Here
    }
}

/// A worker stuck in its handler loses only its own port's frames, counted at the port; the
/// other worker's port is served on.
#[test]
fn a_full_worker_inbox_drops_and_counts_and_other_workers_go_on() {
    let (open, gate) = crossbeam_channel::unbounded();
    let factory: HandlerFactory = Arc::new(move |_ctx: &WorkerContext, _: &mio::Registry| {
        Box::new(Blocking { gate: gate.clone() }) as Box<dyn FlowHandler>
    });
    let rt = Runtime::start(RuntimeConfig {
        workers: 2,
        queues: QueueConfig {
            worker: 2,
            ..QueueConfig::default()
        },
        forwarder: Some(factory),
        ..config()
    })
    .unwrap();
    // Declared after the runtime, so dropped before it even when an assertion fails: the
    // stuck worker is let go before the runtime joins it.
    let open = open;
    // Ports are spread over the workers in turn.
    let stuck = rt.attacher().attach("stuck").unwrap();
    let free = rt.attacher().attach("free").unwrap();
    let mut taken = 0;
    for p in 0..20 {
        taken += usize::from(stuck.send(udp_to_host(p)));
    }
    // One in the handler, two queued, perhaps one more taken before the first blocked.
    assert!((2..=4).contains(&taken), "{taken}");
    assert_eq!(
        stuck.counters().rx_dropped.load(Ordering::Relaxed),
        20 - taken as u64
    );
    // From a MAC of its own: a guest behind `free` that also used `GUEST_MAC` would race the
    // stuck worker's learning of that address, and its reply could be switched to `stuck`.
    let other = EthernetAddress([0x02, 0, 0, 0, 0xf2, 0xee]);
    let request = arp_request_from(other, GW, Ipv4Addr::new(192, 168, 127, 3));
    assert!(free.send(Bytes::from(request)));
    assert!(free.egress().recv_timeout(Duration::from_secs(5)).is_ok());
    drop(open);
    rt.shutdown();
}

/// A port's first frame, sent the moment `attach` returns, is answered even while its worker
/// is in the middle of a turn: the frame can reach the worker's inbox before the worker has
/// read the attach from its control queue.
#[test]
fn a_frame_sent_right_after_attach_is_answered_while_the_worker_is_busy() {
    let rt = Runtime::start(quiet(RuntimeConfig {
        workers: 1,
        ..RuntimeConfig::default()
    }))
    .unwrap();
    // Another guest keeps the worker turning with frames the gateway drops unanswered.
    let busy = rt.attacher().attach("busy").unwrap();
    let noise = Bytes::from(frame(
        EthernetAddress([0x02, 0, 0, 0, 0xbe, 0xef]),
        GW_MAC,
        EtherType::Unknown(0x88b5),
        &[0; 46],
    ));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let noisy = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..32 {
                    busy.send(noise.clone());
                }
                std::thread::sleep(Duration::from_micros(20));
            }
        })
    };
    let mut lost = None;
    for attempt in 0..200 {
        let port = rt.attacher().attach("new").unwrap();
        // The inbox is shared with the noise: a full one refuses, and the frame is sent again.
        let request = Bytes::from(arp_request(GW, GUEST));
        wait_for("room in the inbox", || {
            port.send(request.clone()).then_some(())
        });
        match port.egress().recv_timeout(Duration::from_secs(2)) {
            Ok(reply) => assert_eq!(parse_arp(&reply).1.operation, ArpOperation::Reply),
            Err(_) => {
                lost = Some(attempt);
                break;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    noisy.join().unwrap();
    assert_eq!(lost, None, "the attempt whose first frame was lost");
    rt.shutdown();
}

#[test]
fn shutdown_stops_everything() {
    let rt = Runtime::start(config()).unwrap();
    let attacher = rt.attacher();
    let port = attacher.attach("test").unwrap();
    rt.shutdown();
    assert!(attacher.attach("late").is_err());
    assert!(port.egress().recv_timeout(Duration::from_secs(1)).is_err());
    // Dropping a second runtime without calling shutdown joins it too.
    drop(Runtime::start(config()).unwrap());
}

#[test]
fn a_gone_guests_dns_queries_and_connections_are_released_at_once() {
    // An upstream that never answers: the query would wait its whole timeout.
    let upstream = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut config = config();
    config.dns.upstreams = vec![upstream.local_addr().unwrap()];
    config.dns.timeout = Duration::from_secs(60);
    let rt = Runtime::start(config).unwrap();
    let port = rt.attacher().attach("guest").unwrap();
    let mut query = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    dns::wire::push_name(&mut query, "example.com");
    query.extend_from_slice(&[0, 1, 0, 1]);
    assert!(port.send(Bytes::from(dns_frame(GW, &query))));
    assert!(port.send(Bytes::from(tcp_syn(GW, 53))));
    wait_for("a query upstream and a TCP connection", || {
        let dns = rt.stats().dns;
        (dns.pending == 1 && dns.tcp.open == 1).then_some(())
    });
    drop(port);
    let dns = wait_for("both released", || {
        let dns = rt.stats().dns;
        (dns.pending == 0 && dns.tcp.open == 0).then_some(dns)
    });
    assert_eq!(dns.gone_released, 2);
    assert_eq!(dns.resolver.timeouts, 0, "released, not timed out");
    rt.shutdown();
}

#[test]
fn bad_config_is_refused() {
    let err = Runtime::start(RuntimeConfig {
        gateway_ip: Ipv4Addr::new(10, 0, 0, 1),
        ..config()
    })
    .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    let err = Runtime::start(RuntimeConfig {
        gateway_mac: stack::wire::EthernetAddress::BROADCAST,
        ..config()
    })
    .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

/// A stream connection served inside a worker: frames in and out through one socket, many
/// frames per read, and the end of the stream detaches the port and tells the attacher.
#[test]
fn a_stream_link_runs_inside_a_worker() {
    use crate::framing::{Decoder, Encoder, LengthPrefix};
    use crate::link::stream::{NativeStream, StreamSpec};
    use std::io::Write;
    let rt = Runtime::start(config()).unwrap();
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let spec = StreamSpec {
        prefix: LengthPrefix::U32Be,
        max_frame: 1514 + 4,
    };
    let encoder = Encoder::new(spec.prefix, spec.max_frame);
    // A frame sent before the data plane took the socket over arrives as leftover bytes.
    let mut leftover = Vec::new();
    encoder
        .encode_into(&arp_request(GW, GUEST), &mut leftover)
        .unwrap();
    let (done, ended) = crossbeam_channel::bounded(1);
    let stream = NativeStream {
        socket: socket2::Socket::from(std::os::fd::OwnedFd::from(theirs)),
        spec,
        leftover,
        offer: None,
        link: Arc::new(crate::link::LinkCounters::default()),
        done,
    };
    let board = rt.attacher().board().clone();
    let id = board.attach_stream("test-stream", stream, 1500).unwrap();
    // Two echo requests in one write.
    let mut burst = Vec::new();
    encoder
        .encode_into(&echo_request(GW, b"one"), &mut burst)
        .unwrap();
    encoder
        .encode_into(&echo_request(GW, b"two"), &mut burst)
        .unwrap();
    (&ours).write_all(&burst).unwrap();
    ours.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut decoder = Decoder::new(spec.prefix, spec.max_frame);
    let mut replies = Vec::new();
    while replies.len() < 3 {
        let n = decoder.read_from(&mut &ours).unwrap();
        assert!(n > 0, "the stream ended early");
        while let Some(frame) = decoder.next_frame().unwrap() {
            replies.push(frame.to_vec());
        }
    }
    let (eth, arp) = parse_arp(&replies[0]);
    assert_eq!(
        (eth.dst_addr, arp.operation),
        (GUEST_MAC, ArpOperation::Reply)
    );
    assert!(replies[1].windows(3).any(|w| w == b"one"), "in order");
    assert!(replies[2].windows(3).any(|w| w == b"two"), "in order");
    let stats = rt.stats();
    assert_eq!(stats.gateway.echo_replies, 2);
    let port = stats.ports.iter().find(|p| p.id == id).unwrap();
    assert_eq!((port.rx_frames, port.tx_frames), (3, 3));
    // The guest hangs up: the port goes and the attacher hears why.
    drop(ours);
    let reason = ended.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(
        matches!(reason, crate::link::CloseReason::PeerClosed),
        "{reason}"
    );
    wait_for("the port detached", || {
        rt.stats().ports.iter().all(|p| p.id != id).then_some(())
    });
}
