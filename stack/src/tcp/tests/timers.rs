//! Timers: retransmission with backoff (RFC 6298), persist (zero-window probes), giving up.

use super::*;

#[test]
fn established_retransmit_backs_off() {
    let mut h = Harness::established();
    h.conn.send(b"lost");
    let first = h.expect_one();
    let mut gaps = Vec::new();
    for _ in 0..4 {
        gaps.push(h.fire_next().as_millis());
        let again = h.expect_one();
        assert_eq!(again.seq(), first.seq());
        assert_eq!(again.payload, b"lost");
    }
    // The handshake measured zero: the 200 ms floor, doubled each time (RFC 6298 §5.5).
    assert_eq!(gaps, [200, 400, 800, 1600]);
    // The ACK ends the backoff; Karn's rule: no sample from the retransmitted segment.
    h.advance(Duration::from_millis(50));
    let ack = h.ack_seg();
    h.input(ack, &[]);
    assert_eq!(h.conn.poll_timeout(), None);
    assert_eq!(h.conn.smoothed_rtt(), Some(Duration::ZERO));
    h.conn.send(b"x");
    h.expect_one();
    assert_eq!(h.fire_next(), Duration::from_millis(200));
}

#[test]
fn established_rtt_measured_sets_rto() {
    let config = Config {
        rto_min: Duration::from_millis(101),
        ..config()
    };
    let mut h = Harness::established_with(&config, 1);
    h.conn.send(b"timed");
    h.expect_one();
    h.advance(Duration::from_millis(100));
    let ack = h.ack_seg();
    h.input(ack, &[]);
    // RFC 6298 §2.3 after samples of 0 and 100 ms: SRTT 12.5 ms, RTTVAR 25 ms.
    assert_eq!(h.conn.smoothed_rtt(), Some(Duration::from_micros(12_500)));
    h.conn.send(b"next");
    h.expect_one();
    assert_eq!(h.fire_next(), Duration::from_micros(112_500));
}

#[test]
fn established_retransmit_gives_up() {
    let config = Config {
        max_retransmits: 3,
        ..config()
    };
    let mut h = Harness::established_with(&config, 1);
    h.conn.send(b"void");
    h.drain();
    for _ in 0..3 {
        h.fire_next();
        assert_eq!(h.drain().len(), 1);
    }
    h.fire_next();
    assert_eq!(h.conn.state(), State::Closed);
    assert_eq!(h.events(), [Event::TimedOut, Event::Closed]);
}

#[test]
fn established_zero_window_persist_probes() {
    let mut h = Harness::established();
    let shut = Repr {
        window_len: 0,
        ..h.ack_seg()
    };
    h.input(shut, &[]);
    assert_eq!(h.conn.send(b"waiting"), 7);
    h.expect_none();
    let mut gaps = Vec::new();
    for _ in 0..3 {
        gaps.push(h.fire_next().as_millis());
        let probe = h.expect_one();
        // An old sequence number, no data: the guest answers with its window.
        assert_eq!(probe.seq(), h.conn.snd_una - 1);
        assert!(probe.payload.is_empty());
        h.input(shut, &[]);
        h.expect_none();
    }
    assert_eq!(gaps, [200, 400, 800]);
    // Persisting never gives up while the guest answers.
    assert_eq!(h.conn.state(), State::Established);
    let open = Repr {
        window_len: 100,
        ..h.ack_seg()
    };
    h.input(open, &[]);
    let data = h.expect_one();
    assert_eq!(data.payload, b"waiting");
}

#[test]
fn established_window_shrinks_to_zero_while_in_flight() {
    let mut h = Harness::established();
    h.conn.send(&[1; 3000]);
    let segs = h.drain();
    assert_eq!(segs.len(), 3);
    // The guest takes the first segment and shuts the window.
    let shut = Repr {
        ack_number: Some(segs[1].seq()),
        window_len: 0,
        ..h.seg()
    };
    h.input(shut, &[]);
    h.expect_none();
    // The retransmission timeout turns into probing rather than giving up.
    h.fire_next();
    h.expect_none();
    h.fire_next();
    let probe = h.expect_one();
    assert!(probe.payload.is_empty());
    let open = Repr {
        ack_number: Some(segs[1].seq()),
        window_len: 100,
        ..h.seg()
    };
    h.input(open, &[]);
    // Back from SND.UNA, with the loss window of one segment (RFC 5681 §3.1).
    let resent = h.drain();
    assert_eq!(resent.len(), 1);
    assert_eq!(resent[0].seq(), segs[1].seq());
    assert_eq!(resent[0].payload.len(), 1000);
}

#[test]
fn established_delayed_ack_timer_is_bounded() {
    let mut h = Harness::established();
    h.data(b"a");
    assert_eq!(
        h.conn.poll_timeout(),
        Some(h.now + Duration::from_millis(40))
    );
    // A second small segment does not push the deadline out.
    h.advance(Duration::from_millis(30));
    h.data(b"b");
    assert_eq!(
        h.conn.poll_timeout(),
        Some(h.now + Duration::from_millis(10))
    );
    // Sending data piggybacks the ACK and clears the timer.
    h.conn.send(b"reply");
    let seg = h.expect_one();
    assert_eq!(seg.ack(), Some(h.gseq));
    assert_eq!(
        h.conn.poll_timeout(),
        Some(h.now + Duration::from_millis(200))
    );
}

#[test]
fn established_persist_gives_up_on_a_silent_peer() {
    let config = Config {
        max_retransmits: 3,
        ..config()
    };
    let mut h = Harness::established_with(&config, 1);
    let shut = Repr {
        window_len: 0,
        ..h.ack_seg()
    };
    h.input(shut, &[]);
    h.conn.send(b"stuck");
    h.expect_none();
    for _ in 0..3 {
        h.fire_next();
        assert_eq!(h.expect_one().payload.len(), 0);
    }
    h.fire_next();
    assert_eq!(h.conn.state(), State::Closed);
    assert_eq!(h.events(), [Event::TimedOut, Event::Closed]);
}

#[test]
fn established_tail_loss_probe_resends_last_segment() {
    let config = Config {
        tail_loss_probe: true,
        ..config()
    };
    let mut h = Harness::established_with(&config, 1);
    // An RTT sample of 20 ms first.
    h.conn.send(b"x");
    h.expect_one();
    h.advance(Duration::from_millis(20));
    let ack = h.ack_seg();
    h.input(ack, &[]);
    h.conn.send(&[1; 3000]);
    let segs = h.drain();
    assert_eq!(segs.len(), 3);
    // PTO = 2·SRTT (SRTT = 7/8·0 + 1/8·20 ms = 2.5 ms) → the 10 ms floor, well before the RTO.
    assert_eq!(h.fire_next(), Duration::from_millis(10));
    let probe = h.expect_one();
    assert_eq!(probe.seq(), segs[2].seq());
    assert_eq!(probe.payload.len(), 1000);
    // The guest had lost the first segment: its ACK SACKs the probe, which starts recovery.
    let sack = Repr {
        ack_number: Some(segs[0].seq()),
        sack_ranges: [Some((segs[2].seq(), segs[2].seq() + 1000)), None, None],
        ..h.seg()
    };
    h.input(sack, &[]);
    let rexmit = h.expect_one();
    assert_eq!(rexmit.seq(), segs[0].seq());
    assert_eq!(h.conn.stats().timeouts, 0);
}
