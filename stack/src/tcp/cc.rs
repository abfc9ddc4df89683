//! The retransmission timer's estimator (RFC 6298) and congestion control: slow start and
//! congestion avoidance (RFC 5681 §3.1) with NewReno fast retransmit and fast recovery
//! (RFC 6582).

use crate::time::Instant;
use crate::wire::tcp::SeqNumber;
use core::time::Duration;

/// RFC 6298 §2: the clock granularity G in `SRTT + max(G, 4·RTTVAR)`. The clock is passed
/// in with microseconds; 1 ms keeps the variance term meaningful.
const GRANULARITY: Duration = Duration::from_millis(1);

/// Smoothed round-trip time and the RTO derived from it, with Karn's rule applied by the
/// caller (only segments sent once are timed) and exponential backoff.
#[derive(Debug, Clone)]
pub(crate) struct RttEstimator {
    srtt: Option<Duration>,
    rttvar: Duration,
    rto: Duration,
    /// Timeouts in a row: the RTO is doubled this many times (RFC 6298 §5.5).
    backoff: u32,
    /// The segment being timed: its end and when it was sent.
    sample: Option<(SeqNumber, Instant)>,
}

impl RttEstimator {
    pub(crate) fn new(initial: Duration) -> RttEstimator {
        RttEstimator {
            srtt: None,
            rttvar: Duration::ZERO,
            rto: initial,
            backoff: 0,
            sample: None,
        }
    }

    /// The RTO to arm now: the estimate, backed off and clamped.
    pub(crate) fn rto(&self, min: Duration, max: Duration) -> Duration {
        let base = self.rto.clamp(min, max);
        let factor = 1u32.checked_shl(self.backoff.min(16)).unwrap_or(u32::MAX);
        base.saturating_mul(factor).min(max)
    }

    pub(crate) fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// Starts timing a segment ending at `end`, unless one is being timed already.
    pub(crate) fn on_send(&mut self, end: SeqNumber, now: Instant) {
        if self.sample.is_none() {
            self.sample = Some((end, now));
        }
    }

    /// Karn's rule (RFC 6298 §3): a retransmission spoils the sample in flight.
    pub(crate) fn on_retransmit(&mut self) {
        self.sample = None;
    }

    pub(crate) fn on_timeout(&mut self) {
        self.sample = None;
        self.backoff = self.backoff.saturating_add(1);
    }

    /// New data was acknowledged up to `ack`: take the sample if it is covered, and end any
    /// backoff.
    pub(crate) fn on_ack(&mut self, ack: SeqNumber, now: Instant) {
        self.backoff = 0;
        let Some((end, sent)) = self.sample else {
            return;
        };
        if ack < end {
            return;
        }
        self.sample = None;
        let r = now.saturating_duration_since(sent);
        match self.srtt {
            // RFC 6298 §2.2.
            None => {
                self.srtt = Some(r);
                self.rttvar = r / 2;
            }
            // RFC 6298 §2.3, with alpha = 1/8 and beta = 1/4.
            Some(srtt) => {
                let delta = srtt.abs_diff(r);
                self.rttvar = (self.rttvar * 3 + delta) / 4;
                self.srtt = Some((srtt * 7 + r) / 8);
            }
        }
        let srtt = self.srtt.unwrap_or(r);
        self.rto = srtt + GRANULARITY.max(self.rttvar * 4);
    }
}

/// Reno/NewReno congestion state, in bytes.
#[derive(Debug, Clone)]
pub(crate) struct Congestion {
    mss: usize,
    pub(crate) cwnd: usize,
    ssthresh: usize,
    dupacks: u32,
    /// `Some(recover)` while in fast recovery (RFC 6582 §3.2).
    recovery: Option<SeqNumber>,
    /// The highest sequence number sent when the last recovery or timeout began; fast
    /// retransmit is not entered again for duplicate ACKs below it (RFC 6582 §3.2 step 2).
    recover: SeqNumber,
    /// Bytes acknowledged towards the next cwnd increase in congestion avoidance.
    acked_acc: usize,
    /// The most one acknowledgment may grow cwnd in slow start (RFC 3465's L): 2·SMSS, or
    /// the largest segment we may send when the link cuts super-segments, whose one ACK
    /// stands for all their segments (as Linux counts a super-segment's segments).
    burst: usize,
}

/// What the sender should do after an acknowledgment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AckAction {
    Nothing,
    /// Retransmit the segment at SND.UNA now.
    Retransmit,
}

impl Congestion {
    pub(crate) fn new(mss: usize, initial_window: u32, iss: SeqNumber) -> Congestion {
        Congestion {
            mss,
            cwnd: initial(mss, initial_window),
            ssthresh: usize::MAX,
            dupacks: 0,
            recovery: None,
            recover: iss,
            acked_acc: 0,
            burst: 2 * mss,
        }
    }

    /// The peer's MSS became known (before any data moved).
    pub(crate) fn set_mss(&mut self, mss: usize, initial_window: u32) {
        self.mss = mss;
        self.cwnd = initial(mss, initial_window);
        self.burst = 2 * mss;
    }

    /// The largest segment the sender may now send (a super-segment's payload on a link
    /// that cuts them, the MSS otherwise).
    pub(crate) fn set_max_segment(&mut self, bytes: usize) {
        self.burst = (2 * self.mss).max(bytes);
    }

    pub(crate) fn in_recovery(&self) -> bool {
        self.recovery.is_some()
    }

    /// `acked` new bytes were acknowledged, SND.UNA is now `ack`; `flight` bytes remain in
    /// flight.
    pub(crate) fn on_ack(&mut self, ack: SeqNumber, acked: usize, flight: usize) -> AckAction {
        self.dupacks = 0;
        if let Some(recover) = self.recovery {
            if ack >= recover {
                // RFC 6582 §3.2 step 3, full acknowledgment: deflate the window.
                self.cwnd = self
                    .ssthresh
                    .min(flight.max(self.mss).saturating_add(self.mss));
                self.recovery = None;
                return AckAction::Nothing;
            }
            // Partial acknowledgment: retransmit the next hole, deflate by what was acked
            // and add back one segment.
            self.cwnd = self
                .cwnd
                .saturating_sub(acked)
                .saturating_add(self.mss)
                .max(self.mss);
            return AckAction::Retransmit;
        }
        if self.cwnd < self.ssthresh {
            // RFC 5681 §3.1 slow start, with RFC 3465's L = 2·SMSS (or one super-segment).
            self.cwnd = self.cwnd.saturating_add(acked.min(self.burst));
        } else {
            // Congestion avoidance by byte counting (RFC 5681 §3.1, RFC 3465 §2.1).
            self.acked_acc = self.acked_acc.saturating_add(acked);
            if self.acked_acc >= self.cwnd {
                self.acked_acc -= self.cwnd;
                self.cwnd = self.cwnd.saturating_add(self.mss);
            }
        }
        AckAction::Nothing
    }

    /// Duplicate ACKs in a row (outside recovery).
    pub(crate) fn dupacks(&self) -> u32 {
        self.dupacks
    }

    /// A duplicate acknowledgment (RFC 5681 §2's definition) at `ack`; `snd_max` is the
    /// highest sequence number sent and `flight` the bytes in flight. `threshold` is the
    /// duplicate count that signals loss (3, or fewer for RFC 5827 early retransmit), and
    /// `lost` says the SACK scoreboard already shows SND.UNA lost (RFC 6675 §4 IsLost).
    pub(crate) fn on_dupack(
        &mut self,
        ack: SeqNumber,
        snd_max: SeqNumber,
        flight: usize,
        threshold: u32,
        lost: bool,
    ) -> AckAction {
        self.dupacks = self.dupacks.saturating_add(1);
        if self.recovery.is_some() {
            // RFC 6582 §3.2 step 4: inflate for each segment that left the network.
            self.cwnd = self.cwnd.saturating_add(self.mss);
            return AckAction::Nothing;
        }
        // RFC 5681 §3.2: the third duplicate ACK; RFC 6582 §3.2 step 2: only if the ACK
        // covers more than `recover` (or `recover` lies behind it after a wrap-safe reset).
        // With SACK evidence of a loss the `recover` gate does not apply: it exists to stop
        // duplicate ACKs of old retransmissions from starting recovery again (RFC 6582
        // §3.2), and SACK tells those apart (RFC 6675 §5). Without it, every retransmission
        // lost after a timeout would cost another timeout.
        if (self.dupacks >= threshold && ack > self.recover) || lost {
            self.ssthresh = (flight / 2).max(2 * self.mss);
            self.cwnd = self.ssthresh + 3 * self.mss;
            self.recovery = Some(snd_max);
            self.recover = snd_max;
            return AckAction::Retransmit;
        }
        AckAction::Nothing
    }

    /// The retransmission timer expired (RFC 5681 §3.1 equation 4, loss window of one).
    pub(crate) fn on_timeout(&mut self, snd_max: SeqNumber, flight: usize) {
        self.ssthresh = (flight / 2).max(2 * self.mss);
        self.cwnd = self.mss;
        self.recovery = None;
        self.recover = snd_max;
        self.dupacks = 0;
        self.acked_acc = 0;
    }

    /// Keeps `recover` within 2^31 of SND.UNA so that comparisons against it stay
    /// meaningful on long connections.
    pub(crate) fn drag_recover(&mut self, snd_una: SeqNumber) {
        if self.recovery.is_none() && self.recover < snd_una {
            self.recover = snd_una - 1;
        }
    }
}

/// RFC 6928 §2: min(IW·MSS, max(2·MSS, 14600)) is the cap for IW = 10; generalised.
fn initial(mss: usize, segments: u32) -> usize {
    let segments = (segments as usize).max(1);
    mss.saturating_mul(segments)
        .min((2 * mss).max(segments.saturating_mul(1460)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rto_follows_rfc_6298() {
        let mut rtt = RttEstimator::new(Duration::from_secs(1));
        let (min, max) = (Duration::from_millis(200), Duration::from_secs(60));
        assert_eq!(rtt.rto(min, max), Duration::from_secs(1));
        rtt.on_send(SeqNumber(100), Instant::ZERO);
        rtt.on_ack(SeqNumber(100), Instant::from_millis(100));
        // SRTT 100 ms, RTTVAR 50 ms: RTO 300 ms.
        assert_eq!(rtt.srtt(), Some(Duration::from_millis(100)));
        assert_eq!(rtt.rto(min, max), Duration::from_millis(300));
        rtt.on_timeout();
        assert_eq!(rtt.rto(min, max), Duration::from_millis(600));
        rtt.on_timeout();
        assert_eq!(rtt.rto(min, max), Duration::from_millis(1200));
        for _ in 0..40 {
            rtt.on_timeout();
        }
        assert_eq!(rtt.rto(min, max), max);
    }

    #[test]
    fn karn_discards_retransmitted_sample() {
        let mut rtt = RttEstimator::new(Duration::from_secs(1));
        rtt.on_send(SeqNumber(10), Instant::ZERO);
        rtt.on_retransmit();
        rtt.on_ack(SeqNumber(10), Instant::from_millis(900));
        assert_eq!(rtt.srtt(), None);
    }

    #[test]
    fn newreno_enters_and_leaves_recovery() {
        let mss = 1000;
        let mut cc = Congestion::new(mss, 10, SeqNumber(0));
        assert_eq!(cc.cwnd, 10_000);
        let snd_max = SeqNumber(20_000);
        assert_eq!(
            cc.on_dupack(SeqNumber(1), snd_max, 20_000, 3, false),
            AckAction::Nothing
        );
        assert_eq!(
            cc.on_dupack(SeqNumber(1), snd_max, 20_000, 3, false),
            AckAction::Nothing
        );
        assert_eq!(
            cc.on_dupack(SeqNumber(1), snd_max, 20_000, 3, false),
            AckAction::Retransmit
        );
        assert_eq!(cc.cwnd, 13_000);
        assert!(cc.in_recovery());
        cc.on_dupack(SeqNumber(1), snd_max, 20_000, 3, false);
        assert_eq!(cc.cwnd, 14_000);
        assert_eq!(
            cc.on_ack(SeqNumber(5000), 4999, 15_000),
            AckAction::Retransmit
        );
        assert_eq!(cc.on_ack(SeqNumber(20_000), 15_000, 0), AckAction::Nothing);
        assert!(!cc.in_recovery());
        assert_eq!(cc.cwnd, 2000);
    }
}
