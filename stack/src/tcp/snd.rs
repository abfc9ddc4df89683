//! What to send next: RST, SYN or SYN-ACK, retransmissions, new data within the peer's
//! and the congestion window, FIN, window probes, and acknowledgments.

use super::state::State;
use super::timer::Timer;
use super::{Connection, Segment};
use crate::time::Instant;
use crate::wire::tcp::{Control, Repr, SeqNumber};

impl Connection {
    /// The next segment due, if any. Call until `None` to drain everything due: with bulk
    /// data queued, that is as many segments as the windows allow. The payload borrows the
    /// send ring; copy it into the outgoing frame before calling again. No segment carries
    /// more than [`send_mss`](Self::send_mss) bytes.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Segment<'_>> {
        self.poll_transmit_max(now, 0)
    }

    /// [`poll_transmit`](Self::poll_transmit) for a link that cuts super-segments into
    /// segments of [`send_mss`](Self::send_mss) itself (TSO/GSO): new data may go in one
    /// segment of up to `max_payload` bytes (never less than the MSS). Everything sent again
    /// — retransmissions, tail loss probes, what goes again after a timeout — and window
    /// probes stay at most one MSS, so a loss costs one segment, not a super-segment.
    pub fn poll_transmit_max(&mut self, now: Instant, max_payload: usize) -> Option<Segment<'_>> {
        let max_seg = max_payload.max(self.send_mss);
        if max_seg != self.max_seg {
            self.max_seg = max_seg;
            self.cc.set_max_segment(max_seg);
        }
        if let Some((seq, ack)) = self.rst_due.take() {
            return Some(self.bare(Repr {
                seq_number: seq,
                ack_number: ack,
                control: Control::Rst,
                ..Repr::default()
            }));
        }
        match self.state {
            State::Listen | State::Closed => return None,
            State::SynSent | State::SynReceived if self.snd_nxt == self.iss => {
                return Some(self.syn(now));
            }
            State::SynSent => return None,
            _ => {}
        }
        if self.rexmit_due {
            self.rexmit_due = false;
            if let Some((seq, len)) = self.hole_to_retransmit() {
                self.stats.retransmits += 1;
                self.rtt.on_retransmit();
                self.rexmit_next = seq + len.min(self.send_mss);
                return self.segment_at(now, seq, len);
            }
        }
        if self.tlp_due && self.cc.in_recovery() {
            self.tlp_due = false;
            let len = self
                .sacked
                .next_hole(self.snd_una)
                .map_or(self.send_mss, |hole| hole.1);
            self.stats.retransmits += 1;
            self.rtt.on_retransmit();
            let seq = self.snd_una;
            return self.segment_at(now, seq, len);
        }
        if self.tlp_due {
            self.tlp_due = false;
            if self.next_len().is_none() {
                // RFC 8985 §7.3: no new data may go, so the probe is the last segment sent
                // (with the FIN, if that went too).
                let sent_end = match self.fin_seq {
                    Some(fin) if self.snd_max > fin => fin,
                    _ => self.snd_max,
                };
                let len = sent_end
                    .checked_distance_from(self.snd_una)
                    .unwrap_or(0)
                    .min(self.send_mss);
                self.stats.retransmits += 1;
                self.rtt.on_retransmit();
                return self.segment_at(now, sent_end - len, len);
            }
        }
        if self.state.sends_data() {
            // Going back after a timeout: skip what the peer SACKed.
            let mut limit = usize::MAX;
            if self.snd_nxt < self.snd_max {
                let (at, next_sacked) = self.sacked.skip(self.snd_nxt);
                self.snd_nxt = at.min(self.snd_max);
                if let Some(next) = next_sacked {
                    limit = next.distance_from(self.snd_nxt);
                }
            }
            if let Some(len) = self.next_len() {
                let seq = self.snd_nxt;
                return self.segment_at(now, seq, len.min(limit.max(1)));
            }
        }
        if self.probe_due {
            self.probe_due = false;
            // RFC 9293 §3.8.6.1 leaves the probe's form open; like Linux, an old sequence
            // number with no data: the peer answers with an ACK carrying its window.
            let seq = self.snd_una - 1;
            return Some(self.ack_segment(seq, Control::None, 0));
        }
        if self.ack_now || self.window_update_due() {
            // SND.MAX, not SND.NXT: after a timeout SND.NXT goes back, and an ACK with an
            // old sequence number would be unacceptable to the peer (RFC 9293 §3.10.7.4)
            // and its acknowledgment lost with it.
            let seq = self.snd_max;
            return Some(self.ack_segment(seq, Control::None, 0));
        }
        // Data queued by `send` against a shut window: probing starts now.
        self.update_persist(now);
        None
    }

    /// The next hole to fill in recovery: from the scoreboard when the peer SACKs,
    /// otherwise the segment at SND.UNA (NewReno).
    fn hole_to_retransmit(&self) -> Option<(SeqNumber, usize)> {
        let outstanding = self.snd_max.distance_from(self.snd_una);
        if outstanding == 0 {
            return None;
        }
        if self.sacked.is_empty() {
            return Some((self.snd_una, outstanding));
        }
        let from = self.rexmit_next.max(self.snd_una);
        // The hole at SND.UNA is due whatever the scoreboard says (fast retransmit and
        // partial ACKs decided so); later holes only once IsLost.
        if from == self.snd_una {
            return self.sacked.next_hole(from);
        }
        self.sacked.lost_hole(from, self.lost_threshold())
    }

    /// How much new data (or 0 for a bare FIN) goes at SND.NXT now, if anything.
    fn next_len(&self) -> Option<usize> {
        let unsent = self.unsent();
        if unsent == 0 {
            // Only the FIN, if queued and not yet sent; FIN goes regardless of the window.
            return self.fin_seq.filter(|&fin| fin == self.snd_nxt).map(|_| 0);
        }
        let flight = self.snd_nxt.distance_from(self.snd_una);
        // RFC 3042 limited transmit: the first two duplicate ACKs each let one new
        // segment out beyond cwnd, to draw the duplicates fast retransmit needs.
        let extra = if self.cc.in_recovery() {
            0
        } else {
            (self.cc.dupacks().min(2) as usize) * self.send_mss
        };
        let usable = self
            .snd_wnd
            .min(self.cc.cwnd.saturating_add(extra))
            .saturating_sub(flight);
        let len = unsent.min(usable).min(self.max_seg);
        (len > 0).then_some(len)
    }

    /// A segment at `seq` with up to `max_len` data bytes from the send ring (and the FIN if
    /// it falls right after them), advancing SND.NXT and arming the retransmission timer. New
    /// data goes in segments of up to the largest size allowed; anything sent before, in
    /// segments of at most one MSS.
    fn segment_at(&mut self, now: Instant, seq: SeqNumber, max_len: usize) -> Option<Segment<'_>> {
        let start = self.data_start();
        let offset = seq.checked_distance_from(start)?;
        let cap = if seq >= self.snd_max {
            self.max_seg
        } else {
            self.send_mss
        };
        let len = max_len.min(cap).min(self.tx.len().saturating_sub(offset));
        let end = seq + len;
        let fin = self.fin_seq == Some(end) && self.state.sends_data();
        if len == 0 && !fin {
            return None;
        }
        let control = if fin { Control::Fin } else { Control::None };
        let next = end + usize::from(fin);
        let fresh = seq == self.snd_max;
        if fresh {
            self.rtt.on_send(next, now);
        } else if seq < self.snd_max {
            self.rtt.on_retransmit();
        }
        if next > self.snd_nxt {
            self.snd_nxt = next;
        }
        if next > self.snd_max {
            self.snd_max = next;
        }
        if !self.timers.is_set(Timer::Retransmit) {
            let rto = self.rtt.rto(self.config.rto_min, self.config.rto_max);
            self.timers.set(Timer::Retransmit, now + rto);
        }
        if fresh {
            // RFC 8985 §7.2: every transmission of new data re-arms the probe.
            self.arm_probe(now);
        }
        let psh = offset + len == self.tx.len();
        let mut repr = self.ack_repr(seq, control, len);
        repr.psh = psh && len > 0;
        repr.src_port = self.endpoints.local_port;
        repr.dst_port = self.endpoints.remote_port;
        self.stats.segments_sent += 1;
        let payload = self.tx.slices_at(offset, len);
        Some(Segment { repr, payload })
    }

    /// Our SYN (SYN-SENT) or SYN-ACK (SYN-RECEIVED), with the options we offer.
    fn syn(&mut self, now: Instant) -> Segment<'_> {
        let retransmit = self.snd_max != self.iss;
        if retransmit {
            self.stats.retransmits += 1;
            self.rtt.on_retransmit();
        } else {
            self.rtt.on_send(self.iss + 1, now);
        }
        self.snd_nxt = self.iss + 1;
        self.snd_max = self.iss + 1;
        if !self.timers.is_set(Timer::Retransmit) {
            let rto = self.rtt.rto(self.config.rto_min, self.config.rto_max);
            self.timers.set(Timer::Retransmit, now + rto);
        }
        let active = self.state == State::SynSent;
        // RFC 7323 §2.2: a SYN-ACK carries window scale only if the SYN did.
        let window_scale = (active || self.peer_ws).then_some(self.config.window_shift());
        // RFC 7323 §2.2: the window of a SYN is never scaled.
        let window = self.rcv_wnd().min(usize::from(u16::MAX)) as u16;
        let mut repr = Repr {
            seq_number: self.iss,
            control: Control::Syn,
            window_len: window,
            max_seg_size: Some(self.config.mss),
            window_scale,
            // RFC 2018 §2: SACK-permitted in a SYN-ACK only if the SYN had it.
            sack_permitted: active || self.peer_sack,
            ..Repr::default()
        };
        if !active {
            repr.ack_number = Some(self.rcv_nxt);
            self.rcv_adv = self.rcv_nxt + usize::from(window);
            self.acked();
        }
        self.bare(repr)
    }

    /// A segment carrying ACK, our window and SACK blocks, and nothing else yet.
    fn ack_repr(&mut self, seq: SeqNumber, control: Control, payload_len: usize) -> Repr {
        let wnd = self.rcv_wnd();
        let field = (wnd >> self.rcv_shift).min(usize::from(u16::MAX));
        let mut repr = Repr {
            seq_number: seq,
            ack_number: Some(self.rcv_nxt),
            control,
            window_len: field as u16,
            payload_len,
            ..Repr::default()
        };
        if self.peer_sack && !self.asm.is_empty() {
            // RFC 2018 §4: the first block holds the segment that arrived last, the others
            // follow from the lowest up.
            let recent = self
                .sack_recent
                .and_then(|seq| seq.checked_distance_from(self.rcv_nxt));
            let first = recent.and_then(|at| self.asm.ranges().find(|r| r.0 <= at && at < r.1));
            let rest = self.asm.ranges().filter(|r| Some(*r) != first);
            for (slot, (start, end)) in repr
                .sack_ranges
                .iter_mut()
                .zip(first.into_iter().chain(rest))
            {
                *slot = Some((self.rcv_nxt + start, self.rcv_nxt + end));
            }
        }
        self.rcv_adv = self.rcv_nxt + (field << self.rcv_shift);
        self.acked();
        repr
    }

    fn ack_segment(&mut self, seq: SeqNumber, control: Control, len: usize) -> Segment<'_> {
        let repr = self.ack_repr(seq, control, len);
        self.bare(repr)
    }

    /// An acknowledgment is going out: nothing is owed any more.
    fn acked(&mut self) {
        self.ack_now = false;
        self.unacked_bytes = 0;
        self.timers.stop(Timer::DelayedAck);
    }

    /// Fills in the ports and counts the segment.
    fn bare(&mut self, repr: Repr) -> Segment<'_> {
        self.stats.segments_sent += 1;
        Segment {
            repr: Repr {
                src_port: self.endpoints.local_port,
                dst_port: self.endpoints.remote_port,
                ..repr
            },
            payload: (&[], &[]),
        }
    }

    /// RFC 9293 §3.8.6.2.2: announce the window when it has opened by at least two
    /// segments or half the buffer, whichever is less (receiver-side SWS avoidance).
    fn window_update_due(&self) -> bool {
        if !self.state.receives_data() {
            return false;
        }
        let field = (self.rcv_wnd() >> self.rcv_shift).min(usize::from(u16::MAX));
        let right = self.rcv_nxt + (field << self.rcv_shift);
        let grown = right.checked_distance_from(self.rcv_adv).unwrap_or(0);
        let threshold = (2 * usize::from(self.config.mss))
            .min(self.rx.limit() / 2)
            .max(1);
        grown >= threshold
    }
}
