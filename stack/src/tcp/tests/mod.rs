//! Tests of the TCP engine: a harness that plays the guest segment by segment, scripted
//! tests per state and event (`<state>_<event>`), a deterministic simulation of two
//! engines over a lossy link, and a property test of invariants.

mod close;
mod data;
mod open;
mod prop;
mod rst;
mod sim;
mod super_segments;
mod timers;

use super::{Config, Connection, Endpoints, Event, State};
use crate::time::Instant;
use crate::wire::ip::Addresses;
use crate::wire::tcp::{Control, Repr, SeqNumber};
use core::net::Ipv4Addr;
use core::time::Duration;

pub(super) const OUR_PORT: u16 = 80;
pub(super) const GUEST_PORT: u16 = 40000;

pub(super) fn endpoints() -> Endpoints {
    Endpoints {
        addrs: Addresses::V4 {
            src: Ipv4Addr::new(192, 168, 127, 254),
            dst: Ipv4Addr::new(192, 168, 127, 2),
        },
        local_port: OUR_PORT,
        remote_port: GUEST_PORT,
    }
}

pub(super) fn config() -> Config {
    Config {
        mss: 1000,
        recv_buffer: 64 * 1024,
        send_buffer: 64 * 1024,
        isn_secret: [0x42; 16],
        // Scripted tests see RTO timing unmixed; `timers` tests the probe on its own.
        tail_loss_probe: false,
        ..Config::default()
    }
}

/// A segment as emitted, payload copied out.
#[derive(Debug, Clone)]
pub(super) struct Sent {
    pub(super) repr: Repr,
    pub(super) payload: Vec<u8>,
}

impl Sent {
    pub(super) fn seq(&self) -> SeqNumber {
        self.repr.seq_number
    }
    pub(super) fn ack(&self) -> Option<SeqNumber> {
        self.repr.ack_number
    }
}

/// The engine under test, with the guest's side of the sequence space tracked by hand.
pub(super) struct Harness {
    pub(super) conn: Connection,
    pub(super) now: Instant,
    /// The guest's next sequence number.
    pub(super) gseq: SeqNumber,
    /// The guest's ISN.
    pub(super) girs: SeqNumber,
}

impl Harness {
    /// A guest segment with the harness's sequence number and nothing else.
    pub(super) fn seg(&self) -> Repr {
        Repr {
            src_port: GUEST_PORT,
            dst_port: OUR_PORT,
            seq_number: self.gseq,
            window_len: 65535,
            ..Repr::default()
        }
    }

    /// A guest ACK of everything the engine sent.
    pub(super) fn ack_seg(&self) -> Repr {
        Repr {
            ack_number: Some(self.conn.snd_nxt),
            ..self.seg()
        }
    }

    pub(super) fn input(&mut self, repr: Repr, payload: &[u8]) {
        let repr = Repr {
            payload_len: payload.len(),
            ..repr
        };
        self.conn.handle_segment(self.now, &repr, payload);
    }

    /// Sends guest data at `gseq` (with ACK of all we sent) and advances `gseq`.
    pub(super) fn data(&mut self, payload: &[u8]) {
        let repr = self.ack_seg();
        self.input(repr, payload);
        self.gseq += payload.len();
    }

    pub(super) fn transmit(&mut self) -> Option<Sent> {
        let seg = self.conn.poll_transmit(self.now)?;
        let payload = [seg.payload.0, seg.payload.1].concat();
        assert_eq!(payload.len(), seg.repr.payload_len);
        assert_eq!(seg.repr.src_port, OUR_PORT);
        assert_eq!(seg.repr.dst_port, GUEST_PORT);
        Some(Sent {
            repr: seg.repr,
            payload,
        })
    }

    pub(super) fn drain(&mut self) -> Vec<Sent> {
        let mut out = Vec::new();
        while let Some(sent) = self.transmit() {
            out.push(sent);
            assert!(out.len() < 10_000, "poll_transmit never ends");
        }
        out
    }

    /// Exactly one segment is due; returns it.
    pub(super) fn expect_one(&mut self) -> Sent {
        let mut all = self.drain();
        assert_eq!(all.len(), 1, "expected one segment, got {all:#?}");
        all.remove(0)
    }

    pub(super) fn expect_none(&mut self) {
        let all = self.drain();
        assert!(all.is_empty(), "expected nothing, got {all:#?}");
    }

    /// Exactly one pure ACK of `ack` is due.
    pub(super) fn expect_ack(&mut self, ack: SeqNumber) -> Sent {
        let sent = self.expect_one();
        assert_eq!(sent.ack(), Some(ack), "{sent:?}");
        assert_eq!(sent.repr.control, Control::None);
        assert!(sent.payload.is_empty());
        sent
    }

    pub(super) fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.conn.poll_event()).collect()
    }

    /// Moves the clock and fires what expired.
    pub(super) fn advance(&mut self, by: Duration) {
        self.now = self.now + by;
        if self.conn.poll_timeout().is_some_and(|t| t <= self.now) {
            self.conn.handle_timeout(self.now);
        }
    }

    /// Jumps to the next deadline and fires it; returns how far that was.
    pub(super) fn fire_next(&mut self) -> Duration {
        let at = self.conn.poll_timeout().expect("a timer is armed");
        let by = at - self.now;
        self.now = at;
        self.conn.handle_timeout(self.now);
        by
    }

    /// A passive open from a guest SYN with `syn` as option template, up to the SYN-ACK.
    pub(super) fn syn_received_with(config: &Config, girs: u32, syn: Repr) -> (Harness, Sent) {
        let now = Instant::from_millis(1);
        let syn = Repr {
            seq_number: SeqNumber(girs),
            control: Control::Syn,
            src_port: GUEST_PORT,
            dst_port: OUR_PORT,
            ..syn
        };
        let conn = Connection::syn_received(now, config, endpoints(), &syn);
        let mut h = Harness {
            conn,
            now,
            gseq: SeqNumber(girs) + 1,
            girs: SeqNumber(girs),
        };
        assert_eq!(h.conn.state(), State::Listen);
        h.expect_none();
        h.conn.accept(h.now);
        assert_eq!(h.conn.state(), State::SynReceived);
        let synack = h.expect_one();
        assert_eq!(synack.repr.control, Control::Syn);
        assert_eq!(synack.ack(), Some(SeqNumber(girs) + 1));
        (h, synack)
    }

    /// ESTABLISHED by passive open; the guest offered MSS 1000, window scale 7 and SACK.
    pub(super) fn established_with(config: &Config, girs: u32) -> Harness {
        let syn = Repr {
            max_seg_size: Some(1000),
            window_scale: Some(7),
            sack_permitted: true,
            window_len: 65535,
            ..Repr::default()
        };
        let (mut h, _) = Harness::syn_received_with(config, girs, syn);
        let ack = Repr {
            window_len: 65535 >> 7,
            ..h.ack_seg()
        };
        h.input(ack, &[]);
        assert_eq!(h.conn.state(), State::Established);
        assert_eq!(h.events(), [Event::Established, Event::Writable]);
        h.expect_none();
        h
    }

    pub(super) fn established() -> Harness {
        Harness::established_with(&config(), 1000)
    }
}
