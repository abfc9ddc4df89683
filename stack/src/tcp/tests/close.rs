//! Closing: FIN-WAIT-1/2, CLOSING, TIME-WAIT, CLOSE-WAIT, LAST-ACK, half-close both ways.

use super::*;

/// ESTABLISHED, then `close` with `data` queued first; returns the FIN segment.
fn closed_by_us(data: &[u8]) -> (Harness, Sent) {
    let mut h = Harness::established();
    h.conn.send(data);
    h.conn.close(h.now);
    assert_eq!(h.conn.state(), State::FinWait1);
    assert_eq!(h.conn.send_capacity(), 0);
    let segs = h.drain();
    let fin = segs.last().expect("FIN").clone();
    assert_eq!(fin.repr.control, Control::Fin);
    assert_eq!(fin.payload.len(), data.len().min(1000));
    (h, fin)
}

#[test]
fn established_close_sends_fin_after_data() {
    let (h, fin) = closed_by_us(b"last words");
    assert_eq!(fin.payload, b"last words");
    assert_eq!(h.conn.snd_nxt, fin.seq() + 11);
}

#[test]
fn fin_wait_1_ack_of_fin() {
    let (mut h, _) = closed_by_us(b"x");
    let ack = h.ack_seg();
    h.input(ack, &[]);
    assert_eq!(h.conn.state(), State::FinWait2);
    assert_eq!(h.conn.poll_timeout(), None);
}

#[test]
fn fin_wait_1_partial_ack_stays() {
    let (mut h, fin) = closed_by_us(b"xyz");
    let ack = Repr {
        ack_number: Some(fin.seq() + 3),
        ..h.seg()
    };
    h.input(ack, &[]);
    assert_eq!(h.conn.state(), State::FinWait1);
}

#[test]
fn fin_wait_1_fin_is_simultaneous_close() {
    let (mut h, fin) = closed_by_us(b"");
    // Their FIN does not acknowledge ours.
    let their_fin = Repr {
        ack_number: Some(fin.seq()),
        control: Control::Fin,
        ..h.seg()
    };
    h.input(their_fin, &[]);
    h.gseq += 1;
    assert_eq!(h.conn.state(), State::Closing);
    assert_eq!(h.events(), [Event::PeerFin]);
    h.expect_ack(h.gseq);
    let ack = h.ack_seg();
    h.input(ack, &[]);
    assert_eq!(h.conn.state(), State::TimeWait);
}

#[test]
fn fin_wait_1_fin_ack_goes_to_time_wait() {
    let (mut h, _) = closed_by_us(b"");
    let fin_ack = Repr {
        control: Control::Fin,
        ..h.ack_seg()
    };
    h.input(fin_ack, &[]);
    h.gseq += 1;
    assert_eq!(h.conn.state(), State::TimeWait);
    h.expect_ack(h.gseq);
}

#[test]
fn fin_wait_2_data_then_fin_half_close() {
    let (mut h, _) = closed_by_us(b"");
    let ack = h.ack_seg();
    h.input(ack, &[]);
    assert_eq!(h.conn.state(), State::FinWait2);
    // The guest keeps sending after our FIN.
    h.data(b"more data");
    assert_eq!(h.events(), [Event::Readable]);
    assert_eq!(h.conn.recv_queued(), 9);
    let fin = Repr {
        control: Control::Fin,
        ..h.ack_seg()
    };
    h.input(fin, &[]);
    h.gseq += 1;
    assert_eq!(h.conn.state(), State::TimeWait);
    assert_eq!(h.events(), [Event::PeerFin]);
    h.expect_ack(h.gseq);
}

#[test]
fn time_wait_timeout_closes() {
    let (mut h, _) = closed_by_us(b"");
    let fin_ack = Repr {
        control: Control::Fin,
        ..h.ack_seg()
    };
    h.input(fin_ack, &[]);
    h.drain();
    h.events();
    assert_eq!(h.fire_next(), Duration::from_secs(30));
    assert_eq!(h.conn.state(), State::Closed);
    assert_eq!(h.events(), [Event::Closed]);
    assert!(h.conn.is_closed());
}

#[test]
fn time_wait_fin_retransmitted_restarts_timer() {
    let (mut h, _) = closed_by_us(b"");
    let fin_ack = Repr {
        control: Control::Fin,
        ..h.ack_seg()
    };
    h.input(fin_ack, &[]);
    h.drain();
    h.advance(Duration::from_secs(20));
    // Our ACK was lost: the FIN comes again.
    h.input(fin_ack, &[]);
    h.expect_ack(h.gseq + 1);
    assert_eq!(h.conn.poll_timeout(), Some(h.now + Duration::from_secs(30)));
    assert_eq!(h.conn.state(), State::TimeWait);
}

#[test]
fn established_fin_then_we_send_and_close() {
    let mut h = Harness::established();
    let fin = Repr {
        control: Control::Fin,
        ..h.ack_seg()
    };
    h.input(fin, b"bye");
    h.gseq += 4;
    assert_eq!(h.conn.state(), State::CloseWait);
    assert_eq!(h.events(), [Event::Readable, Event::PeerFin]);
    h.expect_ack(h.gseq);
    // Half-close the other way: we still send.
    assert_eq!(h.conn.send(b"reply"), 5);
    let data = h.expect_one();
    assert_eq!(data.payload, b"reply");
    h.conn.close(h.now);
    assert_eq!(h.conn.state(), State::LastAck);
    let our_fin = h.expect_one();
    assert_eq!(our_fin.repr.control, Control::Fin);
    let ack = h.ack_seg();
    h.input(ack, &[]);
    assert_eq!(h.conn.state(), State::Closed);
    assert!(h.events().contains(&Event::Closed));
}

#[test]
fn close_wait_fin_retransmitted_is_acked() {
    let mut h = Harness::established();
    let fin = Repr {
        control: Control::Fin,
        ..h.ack_seg()
    };
    h.input(fin, &[]);
    h.expect_ack(h.gseq + 1);
    h.input(fin, &[]);
    h.expect_ack(h.gseq + 1);
    assert_eq!(h.conn.state(), State::CloseWait);
}

#[test]
fn last_ack_timeout_retransmits_fin() {
    let mut h = Harness::established();
    let fin = Repr {
        control: Control::Fin,
        ..h.ack_seg()
    };
    h.input(fin, &[]);
    h.gseq += 1;
    h.drain();
    h.conn.close(h.now);
    let our_fin = h.expect_one();
    // The handshake measured an RTT of zero: the RTO is its 200 ms floor.
    assert_eq!(h.fire_next(), Duration::from_millis(200));
    let again = h.expect_one();
    assert_eq!(again.repr.control, Control::Fin);
    assert_eq!(again.seq(), our_fin.seq());
    assert_eq!(h.fire_next(), Duration::from_millis(400));
    assert_eq!(h.expect_one().seq(), our_fin.seq());
}

#[test]
fn syn_received_close_sends_fin_once_established() {
    let (mut h, _) = Harness::syn_received_with(
        &config(),
        3,
        Repr {
            window_len: 1000,
            ..Repr::default()
        },
    );
    h.conn.close(h.now);
    assert_eq!(h.conn.state(), State::SynReceived);
    h.expect_none();
    let ack = h.ack_seg();
    h.input(ack, &[]);
    assert_eq!(h.conn.state(), State::FinWait1);
    assert_eq!(h.expect_one().repr.control, Control::Fin);
}

#[test]
fn syn_sent_close_just_closes() {
    let now = Instant::from_millis(1);
    let mut conn = Connection::connect(now, &config(), endpoints());
    assert!(conn.poll_transmit(now).is_some());
    conn.close(now);
    assert_eq!(conn.state(), State::Closed);
    assert!(conn.poll_transmit(now).is_none());
    assert_eq!(conn.poll_timeout(), None);
}

#[test]
fn time_wait_syn_may_reopen() {
    let (mut h, _) = closed_by_us(b"");
    let fin_ack = Repr {
        control: Control::Fin,
        ..h.ack_seg()
    };
    h.input(fin_ack, &[]);
    h.gseq += 1;
    h.drain();
    let old = Repr {
        control: Control::Syn,
        seq_number: h.gseq - 10,
        ..h.seg()
    };
    assert!(!h.conn.accepts_new_syn(&old));
    let new = Repr {
        seq_number: h.gseq + 100_000,
        ..old
    };
    assert!(h.conn.accepts_new_syn(&new));
    // Not taken as a new connection, it draws a challenge ACK.
    h.input(new, &[]);
    h.expect_ack(h.gseq);
    assert_eq!(h.conn.state(), State::TimeWait);
}
