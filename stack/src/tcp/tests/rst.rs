//! RST both ways, and RFC 5961's challenge ACKs.

use super::*;

fn rst(h: &Harness, seq: SeqNumber) -> Repr {
    Repr {
        seq_number: seq,
        control: Control::Rst,
        ..h.seg()
    }
}

#[test]
fn established_rst_exact_resets() {
    let mut h = Harness::established();
    let r = rst(&h, h.gseq);
    h.input(r, &[]);
    assert_eq!(h.conn.state(), State::Closed);
    assert_eq!(h.events(), [Event::Reset, Event::Closed]);
    h.expect_none();
    assert!(h.conn.is_closed());
}

#[test]
fn established_rst_in_window_challenge() {
    let mut h = Harness::established();
    let r = rst(&h, h.gseq + 100);
    h.input(r, &[]);
    assert_eq!(h.conn.state(), State::Established);
    h.expect_ack(h.gseq);
    assert!(h.events().is_empty());
}

#[test]
fn established_rst_out_of_window_ignored() {
    let mut h = Harness::established();
    let r = rst(&h, h.gseq + 10_000_000);
    h.input(r, &[]);
    let r = rst(&h, h.gseq - 1);
    h.input(r, &[]);
    assert_eq!(h.conn.state(), State::Established);
    h.expect_none();
}

#[test]
fn established_challenge_acks_are_rate_limited() {
    let mut h = Harness::established();
    for _ in 0..15 {
        let r = rst(&h, h.gseq + 5);
        h.input(r, &[]);
        h.drain();
    }
    assert_eq!(h.conn.stats().challenge_acks, 10);
    h.advance(Duration::from_secs(1));
    let r = rst(&h, h.gseq + 5);
    h.input(r, &[]);
    h.expect_ack(h.gseq);
    assert_eq!(h.conn.stats().challenge_acks, 11);
}

#[test]
fn established_syn_challenge() {
    let mut h = Harness::established();
    let syn = Repr {
        control: Control::Syn,
        seq_number: h.gseq + 7,
        ..h.seg()
    };
    h.input(syn, &[]);
    assert_eq!(h.conn.state(), State::Established);
    h.expect_ack(h.gseq);
}

#[test]
fn established_abort_sends_rst() {
    let mut h = Harness::established();
    h.conn.send(b"unsent");
    h.conn.abort(h.now);
    let r = h.expect_one();
    assert_eq!(r.repr.control, Control::Rst);
    assert_eq!(r.seq(), h.conn.iss + 1);
    assert_eq!(h.conn.state(), State::Closed);
    assert_eq!(h.events(), [Event::Closed]);
    assert_eq!(h.conn.poll_timeout(), None);
}

#[test]
fn fin_wait_1_rst_resets() {
    let mut h = Harness::established();
    h.conn.close(h.now);
    h.drain();
    let r = rst(&h, h.gseq);
    h.input(r, &[]);
    assert_eq!(h.events(), [Event::Reset, Event::Closed]);
}

#[test]
fn close_wait_rst_resets() {
    let mut h = Harness::established();
    let fin = Repr {
        control: Control::Fin,
        ..h.ack_seg()
    };
    h.input(fin, &[]);
    h.gseq += 1;
    h.events();
    let r = rst(&h, h.gseq);
    h.input(r, &[]);
    assert_eq!(h.conn.state(), State::Closed);
    assert_eq!(h.events(), [Event::Reset, Event::Closed]);
}

#[test]
fn last_ack_rst_closes_quietly() {
    let mut h = Harness::established();
    let fin = Repr {
        control: Control::Fin,
        ..h.ack_seg()
    };
    h.input(fin, &[]);
    h.gseq += 1;
    h.conn.close(h.now);
    h.drain();
    h.events();
    let r = rst(&h, h.gseq);
    h.input(r, &[]);
    assert_eq!(h.conn.state(), State::Closed);
    assert_eq!(h.events(), [Event::Closed]);
}

#[test]
fn time_wait_rst_closes() {
    let mut h = Harness::established();
    h.conn.close(h.now);
    h.drain();
    let fin_ack = Repr {
        control: Control::Fin,
        ..h.ack_seg()
    };
    h.input(fin_ack, &[]);
    h.gseq += 1;
    assert_eq!(h.conn.state(), State::TimeWait);
    let r = rst(&h, h.gseq);
    h.input(r, &[]);
    assert_eq!(h.conn.state(), State::Closed);
}

#[test]
fn closed_segment_is_ignored() {
    let mut h = Harness::established();
    h.conn.abort(h.now);
    h.drain();
    h.data(b"late");
    h.expect_none();
    assert_eq!(h.conn.stats().dropped_segments, 1);
}
