//! The guest side of DNS over TCP driven directly, with the stack's own TCP engine playing
//! the guest and a virtual clock: which connections hold a slot, which are reclaimed, and
//! that an answer the resolver will never give is no longer waited for.

use super::*;
use crate::gateway::testing::{GUEST, GUEST_MAC, GW, GW_MAC};
use crossbeam_channel::{Receiver, Sender};
use stack::ingress::{self, Event};
use stack::tcp::State;
use stack::wire::IpAddresses;

/// Frames for the guests, as the data plane would take them.
struct Guests(Sender<Bytes>);

impl ToGuests for Guests {
    fn send(&self, frame: Bytes) -> bool {
        self.0.try_send(frame).is_ok()
    }
}

/// A [`GuestTcp`] and guests talking to it through frames.
struct Sim {
    tcp: GuestTcp,
    port: Guests,
    inputs: Receiver<Bytes>,
    guests: Vec<Connection>,
    framer: Framer,
    queries: Vec<Query>,
    now: Instant,
}

impl Sim {
    fn new(max_connections: usize) -> Sim {
        let (tx, inputs) = crossbeam_channel::bounded(1024);
        let port = Guests(tx);
        let limits = Limits {
            max_connections,
            idle_timeout: Duration::from_secs(1),
            ..Limits::default()
        };
        Sim {
            tcp: GuestTcp::new(GW_MAC, limits),
            port,
            inputs,
            guests: Vec::new(),
            framer: Framer::new(GUEST_MAC),
            queries: Vec::new(),
            now: Instant::ZERO,
        }
    }

    /// A new guest connection to the gateway's port 53; its index.
    fn connect(&mut self) -> usize {
        let endpoints = Endpoints {
            addrs: IpAddresses::V4 {
                src: GUEST,
                dst: GW,
            },
            local_port: 40000 + self.guests.len() as u16,
            remote_port: 53,
        };
        let conn = Connection::connect(self.now, &EngineConfig::default(), endpoints);
        self.guests.push(conn);
        self.pump();
        self.guests.len() - 1
    }

    /// Moves segments both ways until none is left.
    fn pump(&mut self) {
        for _ in 0..64 {
            let mut moved = false;
            for conn in &mut self.guests {
                let addrs = conn.endpoints().addrs;
                while let Some(seg) = conn.poll_transmit(self.now) {
                    let frame = self
                        .framer
                        .tcp(GW_MAC, addrs, &seg.repr, seg.payload)
                        .unwrap()
                        .into_bytes();
                    let packet = ingress::parse(&frame, GW_MAC).unwrap().flow().unwrap();
                    let ff = FlowFrame {
                        frame,
                        packet,
                        link_mtu: 1500,
                        link_offloads: stack::offload::LinkOffloads::NONE,
                    };
                    self.tcp
                        .segment(self.now, &ff, &mut self.queries, &self.port);
                    moved = true;
                }
            }
            while let Ok(frame) = self.inputs.try_recv() {
                let parsed = ingress::parse(&frame, GUEST_MAC).unwrap();
                let Event::Tcp { tcp, payload, .. } = parsed.event else {
                    panic!("not TCP");
                };
                let i = usize::from(tcp.dst_port - 40000);
                self.guests[i].handle_segment(self.now, &tcp, payload);
                moved = true;
            }
            if !moved {
                return;
            }
        }
        panic!("segments never stopped");
    }

    /// Advances the clock by `ms` and runs every timer due.
    fn wait(&mut self, ms: u64) {
        self.now = self.now + Duration::from_millis(ms);
        self.tcp
            .handle_timeout(self.now, &mut self.queries, &self.port);
        for conn in &mut self.guests {
            conn.handle_timeout(self.now);
        }
        self.pump();
    }

    fn state(&self, guest: usize) -> State {
        self.guests[guest].state()
    }
}

#[test]
fn closing_connections_hold_no_slot_and_the_oldest_is_reclaimed() {
    let mut sim = Sim::new(2);
    let (a, b) = (sim.connect(), sim.connect());
    assert_eq!(
        (sim.state(a), sim.state(b)),
        (State::Established, State::Established)
    );
    assert_eq!(sim.tcp.counters().open, 2);
    // Both idle past the timeout: our FIN; the guests do not close their side.
    sim.wait(1100);
    assert_eq!(
        (sim.state(a), sim.state(b)),
        (State::CloseWait, State::CloseWait)
    );
    let c = sim.tcp.counters();
    assert_eq!((c.open, c.closing, c.idle_closed), (0, 2, 2));
    // A third connection takes the place of the oldest closing one, which is reset.
    let third = sim.connect();
    assert_eq!(sim.state(third), State::Established);
    assert_eq!(sim.state(a), State::Closed, "the oldest was reset");
    assert_eq!(sim.state(b), State::CloseWait);
    let c = sim.tcp.counters();
    assert_eq!((c.open, c.closing, c.reclaimed, c.refused), (1, 1, 1, 0));
}

#[test]
fn with_every_slot_live_a_syn_is_refused() {
    let mut sim = Sim::new(1);
    let a = sim.connect();
    assert_eq!(sim.state(a), State::Established);
    let b = sim.connect();
    assert_eq!(sim.state(b), State::Closed, "RST");
    let c = sim.tcp.counters();
    assert_eq!((c.open, c.refused, c.resets_sent), (1, 1, 1));
}

#[test]
fn an_answer_never_coming_is_not_waited_for() {
    let mut sim = Sim::new(4);
    let a = sim.connect();
    // A message the resolver will drop: a response (QR set).
    let response = [0, 12, 0, 1, 0x81, 0x80, 0, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(sim.guests[a].send(&response), response.len());
    sim.guests[a].close(sim.now);
    sim.pump();
    let (id, _) = sim.queries.pop().expect("the message is read");
    // Until the resolver says so, an answer is owed: no FIN, the slot held.
    assert_eq!(sim.state(a), State::FinWait2);
    assert_eq!(sim.tcp.counters().open, 1);
    sim.tcp.unanswered(sim.now, id, &mut sim.queries, &sim.port);
    sim.pump();
    // Our FIN goes, and the connection ends.
    assert_eq!(sim.state(a), State::TimeWait);
    let c = sim.tcp.counters();
    assert_eq!((c.open, c.closing, c.unanswered), (0, 0, 1));
}
