//! Segment arrival, following RFC 9293 §3.10.7 step by step, with RFC 5961's checks on
//! RST, SYN and ACK.

use super::cc::AckAction;
use super::state::State;
use super::timer::Timer;
use super::{Connection, Event, PeerSyn};
use crate::time::Instant;
use crate::wire::tcp::{Control, Repr, SeqNumber};

/// RFC 5681 §3.2: three duplicate ACKs signal a loss.
const DUPACK_THRESHOLD: u32 = 3;

/// RFC 8985 §7.2: the probe timeout's floor.
const MIN_PROBE_TIMEOUT: core::time::Duration = core::time::Duration::from_millis(10);

impl Connection {
    /// Handles one segment from the guest: `repr` its header, `payload` its data (only the
    /// first `repr.payload_len` bytes are used). The segment must belong to this
    /// connection's endpoints; the IP layer has checked addresses and checksum.
    pub fn handle_segment(&mut self, now: Instant, repr: &Repr, payload: &[u8]) {
        self.stats.segments_received += 1;
        let payload = payload.get(..repr.payload_len).unwrap_or(payload);
        if repr.src_port != self.endpoints.remote_port || repr.dst_port != self.endpoints.local_port
        {
            self.stats.dropped_segments += 1;
            return;
        }
        match self.state {
            // A CLOSED connection answers nothing; the embedder uses `reset_for_unknown`.
            State::Closed => self.stats.dropped_segments += 1,
            State::Listen => self.listen_segment(repr),
            State::SynSent => self.syn_sent_segment(now, repr),
            _ => self.synchronized_segment(now, repr, payload),
        }
        self.update_persist(now);
    }

    /// LISTEN with a SYN pending (RFC 9293 §3.10.7.2): retransmitted SYNs are absorbed, a
    /// new SYN replaces the old, a RST for the pending SYN ends it.
    fn listen_segment(&mut self, repr: &Repr) {
        if repr.control.rst() {
            let ours = self
                .pending_syn
                .is_some_and(|syn| repr.seq_number == syn.irs + 1);
            if ours {
                self.raise(Event::Reset);
                self.enter_closed();
            }
            return;
        }
        if repr.control.syn() && repr.ack_number.is_none() {
            self.pending_syn = Some(PeerSyn::of(repr));
        } else {
            self.stats.dropped_segments += 1;
        }
    }

    /// SYN-SENT (RFC 9293 §3.10.7.3).
    fn syn_sent_segment(&mut self, now: Instant, repr: &Repr) {
        // First: the ACK must acknowledge our SYN.
        if let Some(ack) = repr.ack_number
            && (ack <= self.iss || ack > self.snd_max)
        {
            if !repr.control.rst() {
                self.rst_due = Some((ack, None));
            }
            self.stats.dropped_segments += 1;
            return;
        }
        // Second: a RST is believed only with an acceptable ACK ("connection refused").
        if repr.control.rst() {
            if repr.ack_number.is_some() {
                self.raise(Event::Reset);
                self.enter_closed();
            }
            return;
        }
        // Fourth: the SYN. Data on it is not queued: we acknowledge only the SYN, so the
        // peer sends the data again (RFC 9293 §3.10.7.3 allows queueing, not requires it).
        if !repr.control.syn() {
            self.stats.dropped_segments += 1;
            return;
        }
        self.take_peer_syn(&PeerSyn::of(repr), false);
        self.ack_now = true;
        match repr.ack_number {
            Some(ack) => {
                self.rtt.on_ack(ack, now);
                self.snd_una = ack;
                self.snd_nxt = self.snd_nxt.max(ack);
                self.snd_wl2 = ack;
                self.retries = 0;
                self.timers.stop(Timer::Retransmit);
                self.state = State::Established;
                self.raise(Event::Established);
                self.raise(Event::Writable);
            }
            None => {
                // Simultaneous open (RFC 9293 §3.5, Figure 8): SYN-RECEIVED, and our SYN
                // goes again, now with ACK.
                self.state = State::SynReceived;
                self.snd_nxt = self.iss;
                self.ack_now = false;
            }
        }
    }

    /// Every state from SYN-RECEIVED on (RFC 9293 §3.10.7.4).
    fn synchronized_segment(&mut self, now: Instant, repr: &Repr, payload: &[u8]) {
        let seq = repr.seq_number;
        if self.state == State::SynReceived && repr.control.syn() && seq == self.irs {
            match repr.ack_number {
                // A retransmission of the SYN we answered: our SYN-ACK was lost, send it
                // again.
                None => self.snd_nxt = self.iss,
                // Simultaneous open (RFC 9293 §3.5, Figure 8): the peer's SYN-ACK. Its SYN
                // is the one we already have; the rest is an ordinary segment.
                Some(_) => {
                    let rest = Repr {
                        seq_number: seq + 1,
                        control: if repr.control.fin() {
                            Control::Fin
                        } else {
                            Control::None
                        },
                        ..*repr
                    };
                    self.synchronized_segment(now, &rest, payload);
                }
            }
            return;
        }
        let seg_len = payload.len() + repr.control.len();
        let wnd = self.rcv_wnd();
        // First: is the segment acceptable (the four cases of §3.10.7.4)?
        let acceptable = match (seg_len, wnd) {
            (0, 0) => seq == self.rcv_nxt,
            (0, _) => seq.in_window(self.rcv_nxt, wnd),
            (_, 0) => false,
            (_, _) => {
                seq.in_window(self.rcv_nxt, wnd)
                    || (seq + (seg_len - 1)).in_window(self.rcv_nxt, wnd)
            }
        };
        if !acceptable {
            self.stats.dropped_segments += 1;
            if repr.control.rst() {
                return;
            }
            // §3.10.7.4: with a zero window, valid ACKs are still processed.
            if wnd == 0
                && seq == self.rcv_nxt
                && self.state != State::SynReceived
                && let Some(ack) = repr.ack_number
            {
                self.check_ack(now, repr, ack, true);
            }
            if self.state == State::TimeWait && repr.control.fin() {
                // A retransmitted FIN: acknowledge it and restart 2 MSL (§3.10.7.4, eighth).
                self.timers.set(Timer::Close, now + self.config.time_wait);
            }
            self.ack_now = true;
            return;
        }
        // Second: RST (RFC 5961 §3.2): exactly RCV.NXT resets, elsewhere in the window
        // draws a challenge ACK.
        if repr.control.rst() {
            if seq != self.rcv_nxt {
                self.challenge_ack(now);
                return;
            }
            if !matches!(
                self.state,
                State::Closing | State::LastAck | State::TimeWait
            ) {
                self.raise(Event::Reset);
            }
            self.enter_closed();
            return;
        }
        // Fourth: a SYN in a synchronized state draws a challenge ACK (RFC 5961 §4.2).
        if repr.control.syn() {
            self.challenge_ack(now);
            return;
        }
        // Fifth: the ACK field.
        let Some(ack) = repr.ack_number else {
            self.stats.dropped_segments += 1;
            return;
        };
        if self.state == State::SynReceived {
            if ack <= self.snd_una || ack > self.snd_max {
                // <SEQ=SEG.ACK><CTL=RST>
                self.rst_due = Some((ack, None));
                return;
            }
            // Our SYN is acknowledged.
            self.snd_una = self.iss + 1;
            self.rtt.on_ack(self.snd_una, now);
            self.retries = 0;
            if self.snd_una == self.snd_max {
                self.timers.stop(Timer::Retransmit);
            }
            self.state = State::Established;
            self.raise(Event::Established);
            self.raise(Event::Writable);
            self.snd_wnd = usize::from(repr.window_len) << self.snd_shift;
            self.max_snd_wnd = self.max_snd_wnd.max(self.snd_wnd);
            self.snd_wl1 = seq;
            self.snd_wl2 = ack;
            if self.close_requested {
                self.queue_fin();
                self.state = State::FinWait1;
            }
        }
        if !self.check_ack(now, repr, ack, payload.is_empty()) {
            return;
        }
        if self.state == State::Closed {
            return;
        }
        // Seventh: the data.
        if !payload.is_empty() && self.state.receives_data() {
            self.receive_data(now, seq, payload);
        }
        // Eighth: FIN.
        if repr.control.fin() {
            self.receive_fin(now, seq + payload.len());
        }
        self.deliver_fin(now);
    }

    /// Fifth step for an ACK (RFC 9293 §3.10.7.4, RFC 5961 §5.2, RFC 5681, RFC 6298).
    /// Returns false when the segment is to be dropped.
    fn check_ack(&mut self, now: Instant, repr: &Repr, ack: SeqNumber, no_data: bool) -> bool {
        if ack > self.snd_max {
            // Acknowledges something not yet sent: ACK and drop.
            self.ack_now = true;
            self.stats.dropped_segments += 1;
            return false;
        }
        if ack < self.snd_una - self.max_snd_wnd.max(1) {
            // RFC 5961 §5.2: too old to be anything but a blind injection.
            self.challenge_ack(now);
            self.stats.dropped_segments += 1;
            return false;
        }
        let seq = repr.seq_number;
        // Whatever the window says, the peer is alive.
        self.unanswered_probes = 0;
        let new_wnd = usize::from(repr.window_len) << self.snd_shift;
        let flight_before = self.snd_max.distance_from(self.snd_una);
        let sacked_before = self.sacked.sacked_above(self.snd_una);
        if self.peer_sack {
            for &(start, end) in repr.sack_ranges.iter().flatten() {
                self.sacked
                    .add(start, end, self.snd_una.max(ack), self.snd_max);
            }
        }
        if ack > self.snd_una {
            self.ack_new_data(now, ack);
        } else if ack == self.snd_una && flight_before > 0 {
            // A duplicate ACK (RFC 5681 §2) or, as RFC 6675 §5 counts them, any ACK whose
            // SACK blocks report new data: in a transfer both ways most ACKs carry data.
            let duplicate = no_data && repr.control.is_empty() && new_wnd == self.snd_wnd;
            let sack_news = self.sacked.sacked_above(self.snd_una) > sacked_before;
            if duplicate || sack_news {
                self.dupack(ack, flight_before);
            }
        }
        // The window update rule, SND.WL1/SND.WL2 guarding against old segments.
        if self.snd_wl1 < seq || (self.snd_wl1 == seq && self.snd_wl2 <= ack) {
            if new_wnd > self.snd_wnd {
                self.probes = 0;
            }
            self.snd_wnd = new_wnd;
            self.max_snd_wnd = self.max_snd_wnd.max(new_wnd);
            self.snd_wl1 = seq;
            self.snd_wl2 = ack;
            if new_wnd == 0 {
                self.timers.stop(Timer::Probe);
            }
        }
        self.ack_state_changes(now);
        true
    }

    /// A duplicate ACK (RFC 5681 §2).
    fn dupack(&mut self, ack: SeqNumber, flight: usize) {
        if self.cc.in_recovery() {
            // RFC 6675 §5 (simplified): each duplicate ACK is a segment that left the
            // network; spend it on the next hole the scoreboard shows, else (NewReno,
            // RFC 6582 §3.2 step 4) on inflating the window for new data.
            let from = self.rexmit_next.max(self.snd_una);
            if self.sacked.lost_hole(from, self.lost_threshold()).is_some() {
                self.rexmit_due = true;
                return;
            }
        }
        // RFC 5827 early retransmit: with fewer than four segments outstanding and
        // nothing new to send, fewer duplicates can ever arrive.
        let segments = flight.div_ceil(self.send_mss.max(1));
        let threshold = if self.unsent() == 0 && segments < 4 {
            (segments.saturating_sub(1).max(1)) as u32
        } else {
            DUPACK_THRESHOLD
        };
        // RFC 6675 §4 IsLost(SND.UNA): more than (DupThresh − 1)·SMSS bytes SACKed above.
        let sacked = self.sacked.sacked_above(self.snd_una);
        // RFC 8985 §7.4: the ACK of a tail loss probe that SACKs it shows the hole lost.
        let lost = sacked > self.lost_threshold() || (self.tlp_sent && sacked > 0);
        let action = self
            .cc
            .on_dupack(ack, self.snd_max, flight, threshold, lost);
        if action == AckAction::Retransmit {
            self.stats.fast_retransmits += 1;
            self.rexmit_next = self.snd_una;
            self.rexmit_due = true;
        }
    }

    /// RFC 6675 §4 IsLost: a hole is lost once more than (DupThresh − 1)·SMSS bytes above
    /// it are SACKed.
    pub(super) fn lost_threshold(&self) -> usize {
        (DUPACK_THRESHOLD as usize - 1) * self.send_mss
    }

    /// SND.UNA moves forward to `ack`.
    fn ack_new_data(&mut self, now: Instant, ack: SeqNumber) {
        let acked = ack.distance_from(self.snd_una);
        // Bytes of data covered; the rest is our SYN (already consumed above) or FIN.
        let data_acked = acked.min(self.tx.len());
        self.tx.consume(data_acked);
        self.rtt.on_ack(ack, now);
        self.snd_una = ack;
        self.sacked.prune(ack);
        if self.snd_nxt < ack {
            self.snd_nxt = ack;
        }
        self.retries = 0;
        let flight = self.snd_max.distance_from(self.snd_una);
        if self.cc.on_ack(ack, acked, flight) == AckAction::Retransmit {
            self.rexmit_due = true;
        }
        self.cc.drag_recover(self.snd_una);
        // RFC 6298 §5.2, §5.3.
        self.tlp_sent = false;
        if self.snd_una == self.snd_max {
            self.timers.stop(Timer::Retransmit);
            self.timers.stop(Timer::Probe);
        } else {
            let rto = self.rtt.rto(self.config.rto_min, self.config.rto_max);
            self.timers.set(Timer::Retransmit, now + rto);
            self.arm_probe(now);
        }
        if data_acked > 0 && self.can_send() {
            self.raise(Event::Writable);
        }
    }

    /// State changes once our FIN is acknowledged (§3.10.7.4, fifth, per state).
    fn ack_state_changes(&mut self, now: Instant) {
        let fin_acked = self.fin_seq.is_some_and(|fin| self.snd_una > fin);
        if !fin_acked {
            return;
        }
        match self.state {
            State::FinWait1 => self.state = State::FinWait2,
            State::Closing => self.enter_time_wait(now),
            State::LastAck => self.enter_closed(),
            _ => {}
        }
    }

    /// Seventh step: stores the in-window part of `payload` (which starts at `seq`) and
    /// advances RCV.NXT over whatever is now in order.
    fn receive_data(&mut self, now: Instant, seq: SeqNumber, payload: &[u8]) {
        // Trim what lies before RCV.NXT (duplicates) ...
        let (offset, data) = match seq.checked_distance_from(self.rcv_nxt) {
            Some(ahead) => (ahead, payload),
            None => {
                let behind = self.rcv_nxt.distance_from(seq);
                (0, payload.get(behind..).unwrap_or(&[]))
            }
        };
        // ... and what lies past the window, or past the out-of-order limit.
        let mut room = self.rcv_wnd().saturating_sub(offset);
        if offset > 0 {
            room = room.min(self.config.out_of_order_limit.saturating_sub(offset));
        }
        if data.len() > room {
            // Part fell outside the window: tell the peer at once where it stands.
            self.ack_now = true;
        }
        let data = data.get(..data.len().min(room)).unwrap_or(&[]);
        if data.is_empty() {
            self.ack_now = true;
            return;
        }
        let had_holes = !self.asm.is_empty();
        if offset > 0 {
            if self.asm.add(offset, data.len()).is_err() {
                self.stats.reassembly_overflows += 1;
            } else {
                self.rx.write_at(offset, data);
                self.sack_recent = Some(self.rcv_nxt + offset);
            }
            // RFC 5681 §4.2: an out-of-order segment is acknowledged at once.
            self.ack_now = true;
            return;
        }
        let n = self.rx.write_at(0, data);
        self.rx.commit(n);
        self.asm.shift(n);
        let more = self.asm.take_front();
        self.rx.commit(more);
        let advance = n + more;
        self.rcv_nxt += advance;
        self.raise(Event::Readable);
        self.unacked_bytes = self.unacked_bytes.saturating_add(advance);
        // RFC 5681 §4.2: ACK at once when a hole is filled and at least every second
        // full-sized segment (RFC 9293 §3.8.6.3); otherwise delay.
        if had_holes || self.unacked_bytes >= 2 * usize::from(self.config.mss) {
            self.ack_now = true;
        } else if !self.timers.is_set(Timer::DelayedAck) {
            self.timers
                .set(Timer::DelayedAck, now + self.config.delayed_ack);
        }
    }

    /// Eighth step, first half: remember where the FIN is, if within the window.
    fn receive_fin(&mut self, now: Instant, fin: SeqNumber) {
        match self.state {
            State::Established | State::FinWait1 | State::FinWait2 | State::SynReceived => {
                if fin.in_window(self.rcv_nxt, self.rcv_wnd().saturating_add(1)) {
                    self.rcv_fin = Some(fin);
                }
                self.ack_now = true;
            }
            // FIN again in a state that already has it: acknowledge.
            State::CloseWait | State::Closing | State::LastAck => self.ack_now = true,
            State::TimeWait => {
                self.ack_now = true;
                self.timers.set(Timer::Close, now + self.config.time_wait);
            }
            State::Listen | State::SynSent | State::Closed => {}
        }
    }

    /// Eighth step, second half: once the data before it is in, the FIN takes effect.
    fn deliver_fin(&mut self, now: Instant) {
        let Some(fin) = self.rcv_fin else {
            return;
        };
        if fin != self.rcv_nxt || !self.state.receives_data() {
            return;
        }
        self.rcv_fin = None;
        self.rcv_nxt += 1;
        self.ack_now = true;
        self.raise(Event::PeerFin);
        let fin_acked = self.fin_seq.is_some_and(|f| self.snd_una > f);
        match self.state {
            State::SynReceived | State::Established => self.state = State::CloseWait,
            State::FinWait1 if fin_acked => self.enter_time_wait(now),
            State::FinWait1 => self.state = State::Closing,
            State::FinWait2 => self.enter_time_wait(now),
            _ => {}
        }
    }

    /// Expired timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(timer) = self.timers.expired(now) {
            match timer {
                Timer::Retransmit => self.retransmit_timeout(now),
                Timer::DelayedAck => self.ack_now = true,
                Timer::Persist => {
                    // RFC 9293 §3.8.6.1: probe the zero window, backing off, for as long as
                    // the peer answers; a peer that stops answering is given up on like an
                    // unacknowledged retransmission (RFC 9293 §3.8.3, R2).
                    self.unanswered_probes = self.unanswered_probes.saturating_add(1);
                    if self.unanswered_probes > self.config.max_retransmits {
                        self.raise(Event::TimedOut);
                        self.enter_closed();
                        return;
                    }
                    self.probe_due = true;
                    self.probes = self.probes.saturating_add(1);
                }
                Timer::Close => {
                    if self.state == State::TimeWait {
                        self.enter_closed();
                    }
                }
                Timer::Probe => {
                    // A shut window is the persist timer's business.
                    if self.state.sends_data() && self.snd_una != self.snd_max && self.snd_wnd > 0 {
                        self.tlp_sent = true;
                        // Outside recovery the probe is the last segment (RFC 8985 §7.3).
                        // In recovery, progress stalled: the retransmission of the first hole
                        // was probably lost too, and nothing in flight will say so; the probe
                        // sends that hole again rather than wait for the RTO.
                        self.tlp_due = true;
                    }
                }
            }
        }
        self.update_persist(now);
    }

    /// RFC 6298 §5.4–5.7 and RFC 5681 §3.1: go back to SND.UNA, back off, shrink cwnd.
    fn retransmit_timeout(&mut self, now: Instant) {
        if matches!(self.state, State::Closed | State::Listen | State::TimeWait) {
            return;
        }
        let limit = if self.state.syn_unacked() {
            self.config.max_syn_retransmits
        } else {
            self.config.max_retransmits
        };
        self.retries = self.retries.saturating_add(1);
        self.stats.timeouts += 1;
        if self.retries > limit {
            // RFC 9293 §3.8.3: R2 reached, give up.
            self.raise(Event::TimedOut);
            self.enter_closed();
            return;
        }
        if self.retries >= 2 {
            // RFC 2018 §8: the peer may have discarded what it SACKed; after repeated
            // timeouts stop trusting the scoreboard.
            self.sacked.clear();
        }
        self.rexmit_next = self.snd_una;
        self.timers.stop(Timer::Probe);
        self.tlp_due = false;
        let flight = self.snd_max.distance_from(self.snd_una);
        self.cc.on_timeout(self.snd_max, flight);
        self.rtt.on_timeout();
        self.rexmit_due = false;
        self.snd_nxt = if self.state.syn_unacked() {
            self.iss
        } else {
            self.snd_una
        };
        if self.state.is_synchronized() && self.snd_wnd == 0 {
            // The peer's window is shut: probing is the persist timer's job, and does not
            // count towards giving up.
            self.retries = 0;
            self.update_persist(now);
            return;
        }
        let rto = self.rtt.rto(self.config.rto_min, self.config.rto_max);
        self.timers.set(Timer::Retransmit, now + rto);
    }

    /// Arms the tail loss probe (RFC 8985 §7.2) if it applies: data in flight, an RTT
    /// measured, an open window, no probe yet for this flight. (RFC 8985 probes outside
    /// recovery only; in recovery the same timer re-sends the first hole, see
    /// `handle_timeout`.) The probe
    /// timeout is two smoothed RTTs, at least 10 ms, plus the delayed-ACK time when a lone
    /// segment is out (RFC 8985 §7.2), and never past the RTO.
    pub(super) fn arm_probe(&mut self, now: Instant) {
        let flight = self.snd_max.distance_from(self.snd_una);
        let Some(srtt) = self.rtt.srtt() else {
            return;
        };
        if !self.config.tail_loss_probe
            || self.tlp_sent
            || self.snd_wnd == 0
            || flight == 0
            || !self.state.sends_data()
        {
            self.timers.stop(Timer::Probe);
            return;
        }
        let mut pto = (srtt * 2).max(MIN_PROBE_TIMEOUT);
        if flight <= self.send_mss {
            // RFC 8985 §7.2: a lone segment's ACK may be delayed by the peer; allow for
            // that (we assume it delays no longer than we do).
            pto += self.config.delayed_ack;
        }
        let at = now + pto;
        if self
            .timers
            .get(Timer::Retransmit)
            .is_none_or(|rto| at < rto)
        {
            self.timers.set(Timer::Probe, at);
        } else {
            self.timers.stop(Timer::Probe);
        }
    }

    /// Arms or stops the persist timer: armed while the peer's window is zero, data or
    /// FIN waits and nothing is in flight.
    pub(super) fn update_persist(&mut self, now: Instant) {
        let waiting = self.state.sends_data()
            && self.snd_wnd == 0
            && self.snd_nxt == self.snd_una
            && self.unsent() > 0;
        if !waiting {
            self.timers.stop(Timer::Persist);
            self.probes = 0;
            return;
        }
        self.timers.stop(Timer::Retransmit);
        if !self.timers.is_set(Timer::Persist) {
            let base = self.rtt.rto(self.config.rto_min, self.config.rto_max);
            let factor = 1u32.checked_shl(self.probes.min(16)).unwrap_or(u32::MAX);
            let interval = base.saturating_mul(factor).min(self.config.rto_max);
            self.timers.set(Timer::Persist, now + interval);
        }
    }

    /// Data bytes queued past SND.NXT.
    pub(super) fn unsent(&self) -> usize {
        let end = self.data_start() + self.tx.len();
        end.checked_distance_from(self.snd_nxt).unwrap_or(0)
    }
}
