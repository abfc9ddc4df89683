use super::*;
use crossbeam_channel::Receiver;
use stack::ingress::{FlowKey, FlowL4, IpHeader};
use stack::wire::{EtherType, EthernetAddress, EthernetRepr, IpProtocol, Ipv4Repr, UdpRepr};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Mutex;

fn packet(port: u16) -> FlowFrame {
    let ip = Ipv4Repr {
        src_addr: Ipv4Addr::new(192, 168, 127, 2),
        dst_addr: Ipv4Addr::new(192, 168, 127, 254),
        next_header: IpProtocol::Udp,
        payload_len: 8,
        hop_limit: 64,
        ident: 0,
        dont_frag: false,
        more_frags: false,
        frag_offset: 0,
        dscp: 0,
        ecn: 0,
    };
    FlowFrame {
        frame: Bytes::from_static(b"0123456789"),
        packet: FlowPacket {
            key: FlowKey {
                protocol: IpProtocol::Udp,
                guest: SocketAddr::from(([192, 168, 127, 2], port)),
                remote: SocketAddr::from(([192, 168, 127, 254], 53)),
            },
            eth: EthernetRepr {
                src_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
                dst_addr: EthernetAddress([2, 0, 0, 0, 0, 2]),
                ethertype: EtherType::Ipv4,
            },
            ip: IpHeader::V4(ip),
            l4: FlowL4::Udp(UdpRepr {
                src_port: port,
                dst_port: 53,
                payload_len: 0,
            }),
            payload: 2..6,
        },
    }
}

#[derive(Default)]
struct Sink(Mutex<Vec<Bytes>>);

impl FrameSink for Sink {
    fn send_frame(&self, frame: Bytes) -> bool {
        self.0.lock().unwrap().push(frame);
        true
    }
}

fn config(workers: usize, queue_capacity: usize, factory: HandlerFactory) -> PoolConfig {
    PoolConfig {
        workers,
        queue_capacity,
        factory,
        epoch: Epoch::new(std::time::Instant::now()),
        seed: 99,
        mtu: 1500,
        gateway_mac: EthernetAddress([0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xdd]),
    }
}

fn wait_for(mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(std::time::Instant::now() < deadline, "timed out");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn payload_is_a_slice_of_the_frame() {
    assert_eq!(&packet(1).payload()[..], b"2345");
}

#[test]
fn no_forwarder_counts_drops() {
    let sink = Arc::new(Sink::default());
    let (mut pool, dispatcher) =
        WorkerPool::start(config(2, 16, NoForwarder::factory()), sink).unwrap();
    for port in 0..10 {
        dispatcher.dispatch(packet(port)).unwrap();
    }
    wait_for(|| {
        pool.stats()
            .iter()
            .map(|s| s.drops.get(DropReason::NoForwarder))
            .sum::<u64>()
            == 10
    });
    let stats = pool.stats();
    assert_eq!(stats.iter().map(|s| s.queued).sum::<u64>(), 10);
    assert_eq!(stats.iter().map(|s| s.handled).sum::<u64>(), 10);
    pool.shutdown();
    pool.shutdown();
    assert_eq!(dispatcher.dispatch(packet(1)), Err(DispatchError::Stopped));
}

/// Blocks on `gate` for each packet, then echoes its frame to the sink.
struct Gated {
    gate: Receiver<()>,
    index: usize,
    seen: Arc<Mutex<Vec<(usize, u16)>>>,
}

impl FlowHandler for Gated {
    fn handle_packet(&mut self, _now: Instant, packet: FlowFrame, out: &dyn FrameSink) {
        let _ = self.gate.recv();
        self.seen
            .lock()
            .unwrap()
            .push((self.index, packet.packet.key.guest.port()));
        out.send_frame(packet.frame);
    }
}

#[test]
fn full_queue_drops_and_counts_without_blocking() {
    let (open, gate) = crossbeam_channel::unbounded();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let factory: HandlerFactory = Arc::new(move |ctx: &WorkerContext| {
        Box::new(Gated {
            gate: gate.clone(),
            index: ctx.index,
            seen: s2.clone(),
        }) as Box<dyn FlowHandler>
    });
    let sink = Arc::new(Sink::default());
    let (pool, dispatcher) = WorkerPool::start(config(1, 2, factory), sink.clone()).unwrap();
    // The worker takes the first packet and blocks in the handler; two more fill its queue.
    dispatcher.dispatch(packet(1)).unwrap();
    wait_for(|| pool.stats()[0].handled == 1);
    dispatcher.dispatch(packet(2)).unwrap();
    dispatcher.dispatch(packet(3)).unwrap();
    let started = std::time::Instant::now();
    assert_eq!(
        dispatcher.dispatch(packet(4)),
        Err(DispatchError::QueueFull)
    );
    assert!(started.elapsed() < Duration::from_millis(100));
    assert_eq!(pool.stats()[0].queue_full, 1);
    for _ in 0..3 {
        open.send(()).unwrap();
    }
    wait_for(|| sink.0.lock().unwrap().len() == 3);
    let ports: Vec<u16> = seen.lock().unwrap().iter().map(|s| s.1).collect();
    assert_eq!(ports, vec![1, 2, 3]);
    drop(pool);
}

#[test]
fn a_flow_stays_on_one_worker() {
    let (open, gate) = crossbeam_channel::unbounded();
    for _ in 0..64 {
        open.send(()).unwrap();
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let factory: HandlerFactory = Arc::new(move |ctx: &WorkerContext| {
        Box::new(Gated {
            gate: gate.clone(),
            index: ctx.index,
            seen: s2.clone(),
        }) as Box<dyn FlowHandler>
    });
    let (pool, dispatcher) =
        WorkerPool::start(config(4, 64, factory), Arc::new(Sink::default())).unwrap();
    for _round in 0..4 {
        for port in 0..8 {
            dispatcher.dispatch(packet(port)).unwrap();
        }
    }
    wait_for(|| seen.lock().unwrap().len() == 32);
    let seen = seen.lock().unwrap();
    for port in 0..8u16 {
        let workers: std::collections::BTreeSet<usize> =
            seen.iter().filter(|s| s.1 == port).map(|s| s.0).collect();
        assert_eq!(workers.len(), 1, "port {port} on {workers:?}");
    }
    drop(pool);
}

/// A timer that fires once, 20 ms after the first packet.
struct Timer {
    due: Option<Instant>,
    fired: Arc<AtomicU64>,
}

impl FlowHandler for Timer {
    fn handle_packet(&mut self, now: Instant, _packet: FlowFrame, _out: &dyn FrameSink) {
        self.due = Some(now + Duration::from_millis(20));
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.due
    }

    fn handle_timeout(&mut self, now: Instant, _out: &dyn FrameSink) {
        if self.due.is_some_and(|d| d <= now) {
            self.due = None;
            self.fired.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[test]
fn timers_fire() {
    let fired = Arc::new(AtomicU64::new(0));
    let f2 = fired.clone();
    let factory: HandlerFactory = Arc::new(move |_ctx: &WorkerContext| {
        Box::new(Timer {
            due: None,
            fired: f2.clone(),
        }) as Box<dyn FlowHandler>
    });
    let (pool, dispatcher) =
        WorkerPool::start(config(1, 4, factory), Arc::new(Sink::default())).unwrap();
    dispatcher.dispatch(packet(1)).unwrap();
    wait_for(|| fired.load(Ordering::Relaxed) == 1);
    drop(pool);
}

/// Who was called: (worker, "begin" or "finish", what it still owed then).
type Calls = Arc<Mutex<Vec<(usize, &'static str, usize)>>>;

/// Owes `owed` until that many packets came after the drain began; records its calls.
struct Owing {
    index: usize,
    owed: usize,
    draining: bool,
    calls: Calls,
}

impl FlowHandler for Owing {
    fn handle_packet(&mut self, _now: Instant, _packet: FlowFrame, _out: &dyn FrameSink) {
        if self.draining {
            self.owed = self.owed.saturating_sub(1);
        }
    }

    fn begin_drain(&mut self, _now: Instant, _out: &dyn FrameSink) {
        self.draining = true;
        self.calls
            .lock()
            .unwrap()
            .push((self.index, "begin", self.owed));
    }

    fn drained(&self) -> bool {
        self.owed == 0
    }

    fn finish(&mut self, _now: Instant, _out: &dyn FrameSink) {
        self.calls
            .lock()
            .unwrap()
            .push((self.index, "finish", self.owed));
    }
}

fn owing(workers: usize, owed: usize) -> (WorkerPool, Dispatcher, Calls) {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let c2 = calls.clone();
    let factory: HandlerFactory = Arc::new(move |ctx: &WorkerContext| {
        Box::new(Owing {
            index: ctx.index,
            owed,
            draining: false,
            calls: c2.clone(),
        }) as Box<dyn FlowHandler>
    });
    let (pool, dispatcher) =
        WorkerPool::start(config(workers, 64, factory), Arc::new(Sink::default())).unwrap();
    (pool, dispatcher, calls)
}

#[test]
fn a_drain_waits_until_every_worker_settles_and_finish_comes_last() {
    let (mut pool, dispatcher, calls) = owing(2, 1);
    let feeder = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        // Enough flows that each worker gets some.
        for port in 0..32 {
            dispatcher.dispatch(packet(port)).unwrap();
        }
    });
    let started = std::time::Instant::now();
    let deadline = started + Duration::from_secs(10);
    assert_eq!(pool.drain(deadline, &mut || false), DrainEnd::Settled);
    assert!(started.elapsed() >= Duration::from_millis(50));
    feeder.join().unwrap();
    pool.shutdown();
    let mut calls = calls.lock().unwrap().clone();
    calls.sort_unstable();
    assert_eq!(
        calls,
        [
            (0, "begin", 1),
            (0, "finish", 0),
            (1, "begin", 1),
            (1, "finish", 0)
        ]
    );
}

#[test]
fn a_drain_ends_at_its_deadline_or_when_cancelled_and_finish_still_comes() {
    let (mut pool, _dispatcher, calls) = owing(1, 1);
    let started = std::time::Instant::now();
    let end = pool.drain(started + Duration::from_millis(100), &mut || false);
    assert_eq!(end, DrainEnd::TimedOut);
    assert!(started.elapsed() >= Duration::from_millis(100));
    pool.shutdown();
    assert_eq!(*calls.lock().unwrap(), [(0, "begin", 1), (0, "finish", 1)]);

    let (mut pool, _dispatcher, calls) = owing(1, 1);
    let mut asked = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let end = pool.drain(deadline, &mut || {
        asked += 1;
        asked == 3
    });
    assert_eq!((end, asked), (DrainEnd::Cancelled, 3));
    drop(pool);
    assert_eq!(calls.lock().unwrap().last(), Some(&(0, "finish", 1)));
}

#[test]
fn workers_waiting_on_their_queue_settle_at_once() {
    let (mut pool, _dispatcher) = WorkerPool::start(
        config(2, 16, NoForwarder::factory()),
        Arc::new(Sink::default()),
    )
    .unwrap();
    // Let them block on their queues first.
    std::thread::sleep(Duration::from_millis(50));
    let started = std::time::Instant::now();
    let end = pool.drain(started + Duration::from_secs(5), &mut || false);
    assert_eq!(end, DrainEnd::Settled);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}
