//! The TCP engine: one [`Connection`] per guest TCP connection, sans-IO.
//!
//! The embedder (the forwarder) pairs each connection with a host socket. It feeds in
//! parsed segments ([`Connection::handle_segment`]) and expired deadlines
//! ([`Connection::handle_timeout`]), and takes out segments to send
//! ([`Connection::poll_transmit`]), events ([`Connection::poll_event`]) and the next
//! deadline ([`Connection::poll_timeout`]). Time is always passed in.
//!
//! # Opening
//! * Passive (the guest connects out): [`Connection::syn_received`] for the guest's SYN
//!   gives a connection in LISTEN holding that SYN, with no buffers and no SYN-ACK yet.
//!   Retransmitted SYNs are absorbed. Once the host socket has connected the embedder calls
//!   [`Connection::accept`] (SYN-ACK goes out), or [`Connection::refuse`] if it failed
//!   (RST).
//! * Active (a port forward into the guest): [`Connection::connect`] (SYN-SENT).
//!
//! # Data and backpressure
//! Received bytes wait in the receive ring until the embedder takes them with
//! [`Connection::recv_slices`] and [`Connection::consume`] (for `writev` straight to the
//! host socket) or [`Connection::recv`]. The window advertised to the guest is the free
//! space in that ring, so a slow host peer slows the guest. [`Connection::send`] copies into
//! the send ring, bounded by [`Config::send_buffer`]; when [`Connection::send_capacity`] is
//! zero the embedder stops reading its host socket until [`Event::Writable`], so a slow
//! guest slows host reads. Both rings grow on demand, so an idle connection holds no buffer
//! memory.
//!
//! # Super-segments
//! For a link that cuts segments to the MSS itself (TSO/GSO), the embedder calls
//! [`Connection::poll_transmit_max`] with the most payload one segment may carry: new data
//! then leaves in segments of up to that size (and slow start counts the acknowledgment of
//! one as all its segments); whatever is sent again stays one MSS
//! ([`Connection::send_mss`]). Super-segments that arrive are ordinary segments here: they
//! are taken, and acknowledged at once, whole.
//!
//! # Closing
//! [`Connection::close`] sends FIN after the queued data (the mirror of
//! `shutdown(SHUT_WR)`); [`Event::PeerFin`] says the guest did the same, after the bytes
//! still in the receive ring. [`Connection::abort`] sends RST; [`Event::Reset`] says the
//! guest did. [`Event::Closed`] means the connection may be freed.
//!
//! # Guarantees
//! No input panics: sequence numbers use [`SeqNumber`]'s modular arithmetic, lengths are
//! clamped, memory is bounded by the configured buffer sizes and fixed-size bookkeeping.
//!
//! RFCs: 9293 (TCP), 7323 (window scale), 2018 (SACK), 6298 (RTO), 5681 and 6582
//! (congestion control, NewReno), 5961 (blind in-window attacks), 6528 (ISNs), 6928
//! (initial window).

mod buffer;
mod cc;
mod isn;
mod rcv;
mod reassembly;
mod sack;
mod snd;
mod state;
mod timer;

#[cfg(test)]
mod tests;

use crate::time::Instant;
use crate::wire::ip::Addresses;
use crate::wire::tcp::{Control, Repr, SeqNumber};
use core::time::Duration;

use buffer::Ring;
use cc::{Congestion, RttEstimator};
use reassembly::Assembler;
use sack::Scoreboard;
pub use state::State;
use timer::{Timer, Timers};

/// The two ends of a connection, as the segments we send carry them: `addrs.src()` and
/// `local_port` are ours, `addrs.dst()` and `remote_port` the guest's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Endpoints {
    pub addrs: Addresses,
    pub local_port: u16,
    pub remote_port: u16,
}

impl Endpoints {
    /// The endpoints of the connection an incoming segment belongs to, from that segment's
    /// IP addresses and header.
    pub fn of_incoming(addrs: &Addresses, repr: &Repr) -> Endpoints {
        Endpoints {
            addrs: addrs.reversed(),
            local_port: repr.dst_port,
            remote_port: repr.src_port,
        }
    }
}

/// Per-connection settings. The defaults suit multi-Gbit/s transfers on a local link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The MSS we offer (RFC 9293 §3.7.1), from the link MTU; also the most we send in one
    /// segment whatever the peer offers.
    pub mss: u16,
    /// The most bytes held received but not yet consumed; the window we advertise.
    pub recv_buffer: usize,
    /// The most bytes held to send (unacknowledged included).
    pub send_buffer: usize,
    /// The most bytes past a hole held for reassembly.
    pub out_of_order_limit: usize,
    /// RFC 6298 §2.1: the RTO before any measurement (1 s).
    pub rto_initial: Duration,
    /// RFC 6298 §2.4 says 1 s; 200 ms, as Linux, suits today's links.
    pub rto_min: Duration,
    /// RFC 6298 §2.5: at least 60 s.
    pub rto_max: Duration,
    /// How long an acknowledgment may be delayed (RFC 9293 §3.8.6.3: under 0.5 s).
    pub delayed_ack: Duration,
    /// How long TIME-WAIT lasts (2 MSL, RFC 9293 §3.6.1).
    pub time_wait: Duration,
    /// Retransmissions of a data segment or FIN before giving up (RFC 9293 §3.8.3, R2).
    pub max_retransmits: u32,
    /// Retransmissions of a SYN or SYN-ACK before giving up (RFC 9293 §3.8.3, R2 for SYN).
    pub max_syn_retransmits: u32,
    /// Challenge ACKs allowed per second (RFC 5961 §7).
    pub challenge_ack_limit: u32,
    /// Initial congestion window in segments (RFC 6928: 10).
    pub initial_window: u32,
    /// Send tail loss probes (RFC 8985 §7) so that a loss at the end of a flight, or of a
    /// retransmission, is repaired in a few RTTs instead of an RTO.
    pub tail_loss_probe: bool,
    /// The key for initial sequence numbers (RFC 6528); random per process.
    pub isn_secret: [u8; 16],
}

impl Default for Config {
    fn default() -> Config {
        Config {
            mss: 1460,
            recv_buffer: 4 << 20,
            send_buffer: 4 << 20,
            out_of_order_limit: 4 << 20,
            rto_initial: Duration::from_secs(1),
            rto_min: Duration::from_millis(200),
            rto_max: Duration::from_secs(60),
            delayed_ack: Duration::from_millis(40),
            time_wait: Duration::from_secs(30),
            max_retransmits: 15,
            max_syn_retransmits: 6,
            challenge_ack_limit: 10,
            initial_window: 10,
            tail_loss_probe: true,
            isn_secret: [0; 16],
        }
    }
}

impl Config {
    /// The window scale we offer: the least shift that lets the window field cover the
    /// whole receive buffer (RFC 7323 §2.3, at most 14).
    pub fn window_shift(&self) -> u8 {
        let mut shift = 0u8;
        while shift < MAX_WINDOW_SHIFT && (self.recv_buffer >> shift) > usize::from(u16::MAX) {
            shift += 1;
        }
        shift
    }
}

/// RFC 7323 §2.3: shifts above 14 are treated as 14.
const MAX_WINDOW_SHIFT: u8 = 14;

/// What happened that the embedder should act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// The three-way handshake completed.
    Established,
    /// New bytes are waiting in the receive ring.
    Readable,
    /// Send space was freed.
    Writable,
    /// The guest sent FIN: after what the receive ring holds, no more data comes.
    PeerFin,
    /// The guest reset the connection (or refused our SYN).
    Reset,
    /// Retransmissions gave up.
    TimedOut,
    /// The connection is over and may be freed.
    Closed,
}

impl Event {
    const ORDER: [Event; 7] = [
        Event::Established,
        Event::Readable,
        Event::PeerFin,
        Event::Writable,
        Event::Reset,
        Event::TimedOut,
        Event::Closed,
    ];

    const fn bit(self) -> u8 {
        match self {
            Event::Established => 1,
            Event::Readable => 2,
            Event::PeerFin => 4,
            Event::Writable => 8,
            Event::Reset => 16,
            Event::TimedOut => 32,
            Event::Closed => 64,
        }
    }
}

/// One segment to send: the header to emit and its payload as up to two slices of the
/// send ring, to be copied straight into the outgoing frame after the header.
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a> {
    pub repr: Repr,
    pub payload: (&'a [u8], &'a [u8]),
}

impl Segment<'_> {
    pub fn payload_len(&self) -> usize {
        self.payload.0.len() + self.payload.1.len()
    }
}

/// Counters of what the connection did, for statistics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub segments_sent: u64,
    pub segments_received: u64,
    pub retransmits: u64,
    pub fast_retransmits: u64,
    pub timeouts: u64,
    pub challenge_acks: u64,
    pub dropped_segments: u64,
    /// Out-of-order segments refused because the reassembly bookkeeping or byte limit was
    /// full.
    pub reassembly_overflows: u64,
}

/// What the SYN of the other side told us, kept while LISTEN awaits the embedder.
#[derive(Debug, Clone, Copy, Default)]
struct PeerSyn {
    irs: SeqNumber,
    mss: Option<u16>,
    window_scale: Option<u8>,
    sack_permitted: bool,
    window: u16,
}

/// One TCP connection.
#[derive(Debug, Clone)]
pub struct Connection {
    state: State,
    endpoints: Endpoints,
    config: Config,

    // Send sequence space (RFC 9293 §3.3.1).
    iss: SeqNumber,
    snd_una: SeqNumber,
    snd_nxt: SeqNumber,
    /// The highest sequence number sent (SND.NXT before a go-back after a timeout).
    snd_max: SeqNumber,
    /// The peer's window, scaled.
    snd_wnd: usize,
    snd_wl1: SeqNumber,
    snd_wl2: SeqNumber,
    /// The largest window the peer has offered (RFC 5961 §5.2's MAX.SND.WND).
    max_snd_wnd: usize,
    /// The peer's window shift, applied to its window field (RFC 7323 §2.3).
    snd_shift: u8,
    send_mss: usize,
    /// The most new data one segment may carry: the MSS, or a super-segment's payload when
    /// the embedder's link cuts them ([`Connection::poll_transmit_max`]).
    max_seg: usize,
    /// Bytes from the first unacknowledged one on.
    tx: Ring,
    /// The sequence number of our FIN, once `close` was called.
    fin_seq: Option<SeqNumber>,
    close_requested: bool,

    // Receive sequence space.
    irs: SeqNumber,
    rcv_nxt: SeqNumber,
    /// Our window shift (0 unless both SYNs carried the option).
    rcv_shift: u8,
    /// The right edge of the window last advertised.
    rcv_adv: SeqNumber,
    rx: Ring,
    asm: Assembler,
    /// A FIN that arrived past a hole, waiting for the data before it.
    rcv_fin: Option<SeqNumber>,
    peer_sack: bool,
    /// Where the latest out-of-order segment began: its block leads our SACK option.
    sack_recent: Option<SeqNumber>,
    /// Whether the peer's SYN carried a window scale option.
    peer_ws: bool,
    /// Bytes received since we last sent an ACK.
    unacked_bytes: usize,
    ack_now: bool,
    /// The SYN of a passive open not yet accepted.
    pending_syn: Option<PeerSyn>,

    timers: Timers,
    rtt: RttEstimator,
    cc: Congestion,
    /// Consecutive retransmission timeouts of the current oldest segment.
    retries: u32,
    /// Persist probes sent in a row (for the probe interval's backoff).
    probes: u32,
    /// Persist probes sent since the peer last answered anything.
    unanswered_probes: u32,
    probe_due: bool,
    /// A retransmission of the next hole (or of SND.UNA without SACK) is due.
    rexmit_due: bool,
    /// A tail loss probe is due.
    tlp_due: bool,
    /// A tail loss probe went out and no new data has been acknowledged since.
    tlp_sent: bool,
    /// What the peer reported holding above SND.UNA (RFC 2018).
    sacked: Scoreboard,
    /// Holes below this were retransmitted in the current recovery.
    rexmit_next: SeqNumber,
    /// A RST to send: `Some((seq, ack))`.
    rst_due: Option<(SeqNumber, Option<SeqNumber>)>,
    challenge_window: Instant,
    challenge_count: u32,
    events: u8,
    stats: Stats,
}

impl Connection {
    fn new(now: Instant, config: &Config, endpoints: Endpoints, state: State) -> Connection {
        let iss = SeqNumber(isn::initial_sequence_number(
            &config.isn_secret,
            &endpoints.addrs,
            endpoints.local_port,
            endpoints.remote_port,
            now,
        ));
        Connection {
            state,
            endpoints,
            config: config.clone(),
            iss,
            snd_una: iss,
            snd_nxt: iss,
            snd_max: iss,
            snd_wnd: 0,
            snd_wl1: SeqNumber(0),
            snd_wl2: iss,
            max_snd_wnd: 0,
            snd_shift: 0,
            send_mss: usize::from(config.mss),
            max_seg: usize::from(config.mss),
            tx: Ring::new(config.send_buffer),
            fin_seq: None,
            close_requested: false,
            irs: SeqNumber(0),
            rcv_nxt: SeqNumber(0),
            rcv_shift: 0,
            rcv_adv: SeqNumber(0),
            rx: Ring::new(config.recv_buffer),
            asm: Assembler::default(),
            rcv_fin: None,
            peer_sack: false,
            sack_recent: None,
            peer_ws: false,
            unacked_bytes: 0,
            ack_now: false,
            pending_syn: None,
            timers: Timers::default(),
            rtt: RttEstimator::new(config.rto_initial),
            cc: Congestion::new(usize::from(config.mss), config.initial_window, iss),
            retries: 0,
            probes: 0,
            unanswered_probes: 0,
            probe_due: false,
            rexmit_due: false,
            tlp_due: false,
            tlp_sent: false,
            sacked: Scoreboard::default(),
            rexmit_next: iss,
            rst_due: None,
            challenge_window: now,
            challenge_count: 0,
            events: 0,
            stats: Stats::default(),
        }
    }

    /// A connection for the guest's SYN `syn` (passive open), in LISTEN until the embedder
    /// calls [`accept`](Self::accept) or [`refuse`](Self::refuse). `syn` should have SYN
    /// set and ACK and RST clear (anything else belongs to no connection:
    /// [`reset_for_unknown`]); otherwise the connection starts CLOSED.
    pub fn syn_received(
        now: Instant,
        config: &Config,
        endpoints: Endpoints,
        syn: &Repr,
    ) -> Connection {
        let mut conn = Connection::new(now, config, endpoints, State::Listen);
        if syn.control != Control::Syn || syn.ack_number.is_some() {
            conn.state = State::Closed;
            conn.raise(Event::Closed);
            return conn;
        }
        conn.pending_syn = Some(PeerSyn::of(syn));
        conn
    }

    /// A connection opened by us (active open, SYN-SENT); the SYN is the first segment
    /// [`poll_transmit`](Self::poll_transmit) gives.
    pub fn connect(now: Instant, config: &Config, endpoints: Endpoints) -> Connection {
        let mut conn = Connection::new(now, config, endpoints, State::SynSent);
        conn.rcv_shift = config.window_shift();
        conn
    }

    /// The host side connected: answer the pending SYN with SYN-ACK (LISTEN → SYN-RECEIVED).
    /// Does nothing in any other state.
    pub fn accept(&mut self, now: Instant) {
        let Some(syn) = self.pending_syn.take() else {
            return;
        };
        if self.state != State::Listen {
            return;
        }
        // The ISN is taken now, not at the SYN: RFC 6528's clock has moved on meanwhile.
        let iss = SeqNumber(isn::initial_sequence_number(
            &self.config.isn_secret,
            &self.endpoints.addrs,
            self.endpoints.local_port,
            self.endpoints.remote_port,
            now,
        ));
        self.iss = iss;
        self.snd_una = iss;
        self.snd_nxt = iss;
        self.snd_max = iss;
        self.snd_wl2 = iss;
        self.cc = Congestion::new(self.send_mss, self.config.initial_window, iss);
        self.take_peer_syn(&syn, true);
        self.state = State::SynReceived;
    }

    /// The host side failed: answer the pending SYN with RST|ACK and close.
    pub fn refuse(&mut self, _now: Instant) {
        if self.state != State::Listen {
            return;
        }
        if let Some(syn) = self.pending_syn.take() {
            // RFC 9293 §3.10.7.1: <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>.
            self.rst_due = Some((SeqNumber(0), Some(syn.irs + 1)));
        }
        self.enter_closed();
    }

    /// Records the SYN of the other side: sequence numbers and options (RFC 9293 §3.10.7.2,
    /// §3.10.7.3). `we_reply` is true on the passive side, where our SYN-ACK answers this
    /// SYN and so offers window scaling only if the peer did (RFC 7323 §2.2).
    fn take_peer_syn(&mut self, syn: &PeerSyn, we_reply: bool) {
        self.irs = syn.irs;
        self.rcv_nxt = syn.irs + 1;
        self.rcv_adv = self.rcv_nxt;
        // RFC 7323 §2.2: scaling only when both SYNs carried the option.
        self.peer_ws = syn.window_scale.is_some();
        match syn.window_scale {
            Some(shift) => {
                self.snd_shift = shift.min(MAX_WINDOW_SHIFT);
                if we_reply {
                    self.rcv_shift = self.config.window_shift();
                }
            }
            None => {
                self.snd_shift = 0;
                self.rcv_shift = 0;
            }
        }
        // RFC 9293 §3.7.1: without the option assume 536 (IPv4) or 1220 (IPv6); never more
        // than our own link allows; and a floor so that absurd values cannot make us send
        // one-byte segments.
        let default_mss = match self.endpoints.addrs {
            Addresses::V4 { .. } => 536,
            Addresses::V6 { .. } => 1220,
        };
        let mss = syn.mss.map_or(default_mss, usize::from);
        self.send_mss = mss.clamp(MIN_MSS, usize::from(self.config.mss).max(MIN_MSS));
        self.max_seg = self.send_mss;
        self.cc.set_mss(self.send_mss, self.config.initial_window);
        self.peer_sack = syn.sack_permitted;
        // RFC 7323 §2.2: the window in a SYN is never scaled.
        self.snd_wnd = usize::from(syn.window);
        self.max_snd_wnd = self.snd_wnd;
        self.snd_wl1 = syn.irs;
    }

    /// The connection's state.
    pub fn state(&self) -> State {
        self.state
    }

    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The most data one segment carries on the wire (RFC 9293 §3.7.1: the peer's MSS, never
    /// more than ours): the size a link cuts our super-segments to.
    pub fn send_mss(&self) -> usize {
        self.send_mss
    }

    /// Queues `data` for sending; returns how much fit. Nothing is taken before the
    /// handshake completes or after [`close`](Self::close).
    pub fn send(&mut self, data: &[u8]) -> usize {
        if !self.can_send() {
            return 0;
        }
        self.tx.push(data)
    }

    /// How many bytes [`send`](Self::send) would take now.
    pub fn send_capacity(&self) -> usize {
        if self.can_send() { self.tx.free() } else { 0 }
    }

    /// Bytes queued and not yet acknowledged.
    pub fn send_queued(&self) -> usize {
        self.tx.len()
    }

    fn can_send(&self) -> bool {
        self.fin_seq.is_none()
            && !self.close_requested
            && matches!(self.state, State::Established | State::CloseWait)
    }

    /// The received bytes not yet consumed, as two slices (for `writev`).
    pub fn recv_slices(&self) -> (&[u8], &[u8]) {
        self.rx.slices()
    }

    /// Bytes received and not yet consumed.
    pub fn recv_queued(&self) -> usize {
        self.rx.len()
    }

    /// Drops `n` received bytes (those the embedder wrote out); returns the count. The
    /// window reopens: call [`poll_transmit`](Self::poll_transmit) afterwards, which sends a
    /// window update once it has grown enough.
    pub fn consume(&mut self, n: usize) -> usize {
        self.rx.consume(n)
    }

    /// Copies received bytes into `out` and consumes them; returns the count.
    pub fn recv(&mut self, out: &mut [u8]) -> usize {
        self.rx.pop(out)
    }

    /// An idle sweep, to call every second or so: frees each buffer that is empty and that no
    /// data moved through since the last sweep (a busy connection keeps its memory; an idle
    /// one holds none). Returns the bytes freed.
    pub fn release_idle_buffers(&mut self) -> usize {
        let rx = if self.asm.is_empty() {
            self.rx.release_idle()
        } else {
            0
        };
        rx + self.tx.release_idle()
    }

    /// Bytes of buffer memory the connection holds now (both rings).
    pub fn buffer_memory(&self) -> usize {
        self.rx.allocated() + self.tx.allocated()
    }

    /// The smoothed round-trip time (RFC 6298), once measured.
    pub fn smoothed_rtt(&self) -> Option<Duration> {
        self.rtt.srtt()
    }

    /// Whether the guest's FIN has been received (no data comes after the ring's).
    pub fn peer_finished(&self) -> bool {
        matches!(
            self.state,
            State::CloseWait | State::Closing | State::LastAck | State::TimeWait
        )
    }

    /// Sends FIN once the queued data is out (`shutdown(SHUT_WR)`). In LISTEN this is
    /// [`refuse`](Self::refuse); in SYN-SENT the connection just closes (RFC 9293 §3.10.4).
    pub fn close(&mut self, now: Instant) {
        match self.state {
            State::Listen => self.refuse(now),
            State::SynSent => self.enter_closed(),
            // RFC 9293 §3.10.4: queue the FIN until ESTABLISHED.
            State::SynReceived => self.close_requested = true,
            State::Established => {
                self.queue_fin();
                self.state = State::FinWait1;
            }
            State::CloseWait => {
                self.queue_fin();
                self.state = State::LastAck;
            }
            _ => {}
        }
    }

    fn queue_fin(&mut self) {
        if self.fin_seq.is_none() {
            self.fin_seq = Some(self.data_start() + self.tx.len());
        }
    }

    /// Resets the connection: RST to the guest (when it knows of the connection) and
    /// CLOSED (RFC 9293 §3.10.5).
    pub fn abort(&mut self, now: Instant) {
        match self.state {
            State::Listen => self.refuse(now),
            State::Closed => {}
            State::SynSent => self.enter_closed(),
            State::TimeWait => self.enter_closed(),
            _ => {
                self.rst_due = Some((self.snd_nxt, None));
                self.enter_closed();
            }
        }
    }

    /// The next event, if any, in a fixed order (Established before Readable before PeerFin
    /// … before Closed).
    pub fn poll_event(&mut self) -> Option<Event> {
        let event = Event::ORDER
            .into_iter()
            .find(|e| self.events & e.bit() != 0)?;
        self.events &= !event.bit();
        Some(event)
    }

    fn raise(&mut self, event: Event) {
        self.events |= event.bit();
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Whether `syn`, a SYN arriving for this connection's endpoints, should replace it with
    /// a new connection ([`Connection::syn_received`]): true in CLOSED, and in TIME-WAIT
    /// when the SYN's sequence number is past everything of this incarnation (RFC 1122
    /// §4.2.2.13, RFC 6191). Otherwise the SYN goes to
    /// [`handle_segment`](Self::handle_segment), which answers it with a challenge ACK.
    pub fn accepts_new_syn(&self, syn: &Repr) -> bool {
        if syn.control != Control::Syn || syn.ack_number.is_some() {
            return false;
        }
        match self.state {
            State::Closed => self.rst_due.is_none(),
            State::TimeWait => syn.seq_number > self.rcv_nxt,
            _ => false,
        }
    }

    /// Whether the connection is over (CLOSED with nothing left to send).
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed && self.rst_due.is_none()
    }

    /// The sequence number of the first data byte in `tx`: SND.UNA, or one past it while
    /// our SYN is unacknowledged.
    fn data_start(&self) -> SeqNumber {
        if self.snd_una == self.iss && self.state.syn_unacked() {
            self.iss + 1
        } else {
            self.snd_una
        }
    }

    fn enter_closed(&mut self) {
        if self.state != State::Closed {
            self.state = State::Closed;
            self.raise(Event::Closed);
        }
        self.timers.stop_all();
        self.pending_syn = None;
        self.tx = Ring::new(0);
        self.asm.clear();
        self.ack_now = false;
        self.probe_due = false;
        self.rexmit_due = false;
        self.tlp_due = false;
    }

    fn enter_time_wait(&mut self, now: Instant) {
        self.state = State::TimeWait;
        self.timers.stop_all();
        self.timers.set(Timer::Close, now + self.config.time_wait);
        self.tx = Ring::new(0);
    }

    /// The window we advertise, and its field value (RFC 7323 §2.3): the free receive
    /// space, never moving the right edge left (RFC 9293 §3.8.6.2.2).
    fn rcv_wnd(&self) -> usize {
        self.rx.free()
    }

    /// Whether a challenge ACK may go out now (RFC 5961 §7), counting it if so.
    fn challenge_ack(&mut self, now: Instant) {
        if now.saturating_duration_since(self.challenge_window) >= Duration::from_secs(1) {
            self.challenge_window = now;
            self.challenge_count = 0;
        }
        if self.challenge_count < self.config.challenge_ack_limit {
            self.challenge_count += 1;
            self.stats.challenge_acks += 1;
            self.ack_now = true;
        }
    }
}

/// The smallest send MSS we accept from a peer (RFC 9293 §3.7.1 allows tiny values; Linux
/// clamps to 48 bytes of payload, so do we, a little more generously).
const MIN_MSS: usize = 64;

impl PeerSyn {
    fn of(syn: &Repr) -> PeerSyn {
        PeerSyn {
            irs: syn.seq_number,
            mss: syn.max_seg_size,
            window_scale: syn.window_scale,
            sack_permitted: syn.sack_permitted,
            window: syn.window_len,
        }
    }
}

/// What a listening port answers to `repr`, a segment that matches no connection: as a
/// LISTEN socket does (RFC 9293 §3.10.7.2), nothing for a segment with neither SYN, ACK nor
/// RST ("drop the segment and return": FIN, NULL and Xmas probes), nor for SYN+FIN (as
/// Linux); otherwise [`reset_for_unknown`]'s RST (an ACK, or a SYN the listener refuses).
pub fn reset_for_listener(repr: &Repr) -> Option<Repr> {
    if repr.ack_number.is_none() && repr.control != Control::Syn {
        return None;
    }
    reset_for_unknown(repr)
}

/// The RST that answers `repr`, a segment that matches no connection (RFC 9293
/// §3.10.7.1); `None` for a RST, which is never answered. The result goes back to where
/// `repr` came from (ports swapped).
pub fn reset_for_unknown(repr: &Repr) -> Option<Repr> {
    if repr.control.rst() {
        return None;
    }
    let base = Repr {
        src_port: repr.dst_port,
        dst_port: repr.src_port,
        control: Control::Rst,
        ..Repr::default()
    };
    Some(match repr.ack_number {
        // <SEQ=SEG.ACK><CTL=RST>
        Some(ack) => Repr {
            seq_number: ack,
            ..base
        },
        // <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>
        None => Repr {
            seq_number: SeqNumber(0),
            ack_number: Some(repr.seq_number + repr.segment_len()),
            ..base
        },
    })
}
