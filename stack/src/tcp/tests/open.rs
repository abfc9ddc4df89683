//! Opening: LISTEN, SYN-SENT, SYN-RECEIVED, options negotiation.

use super::*;

fn plain_syn() -> Repr {
    Repr {
        max_seg_size: Some(1000),
        window_len: 65535,
        ..Repr::default()
    }
}

#[test]
fn listen_syn_retransmitted_is_absorbed() {
    let now = Instant::from_millis(1);
    let syn = Repr {
        src_port: GUEST_PORT,
        dst_port: OUR_PORT,
        seq_number: SeqNumber(5),
        control: Control::Syn,
        ..plain_syn()
    };
    let mut conn = Connection::syn_received(now, &config(), endpoints(), &syn);
    conn.handle_segment(now, &syn, &[]);
    conn.handle_segment(Instant::from_millis(900), &syn, &[]);
    assert_eq!(conn.state(), State::Listen);
    assert!(conn.poll_transmit(now).is_none());
    assert_eq!(conn.poll_timeout(), None);
    assert_eq!(conn.buffer_memory(), 0);
    assert_eq!(conn.poll_event(), None);
}

#[test]
fn listen_accept_sends_syn_ack_with_options() {
    let syn = Repr {
        window_scale: Some(3),
        sack_permitted: true,
        ..plain_syn()
    };
    let (h, synack) = Harness::syn_received_with(&config(), 77, syn);
    assert_eq!(synack.repr.max_seg_size, Some(1000));
    // 64 KiB needs a shift of 1 to fit 16 bits.
    assert_eq!(synack.repr.window_scale, Some(1));
    assert!(synack.repr.sack_permitted);
    assert_eq!(synack.repr.window_len, 65535);
    assert_eq!(synack.ack(), Some(SeqNumber(78)));
    assert_eq!(h.conn.state(), State::SynReceived);
}

#[test]
fn listen_refuse_sends_rst_ack() {
    let now = Instant::from_millis(1);
    let syn = Repr {
        src_port: GUEST_PORT,
        dst_port: OUR_PORT,
        seq_number: SeqNumber(u32::MAX),
        control: Control::Syn,
        ..plain_syn()
    };
    let mut conn = Connection::syn_received(now, &config(), endpoints(), &syn);
    conn.refuse(now);
    let rst = conn.poll_transmit(now).expect("RST");
    assert_eq!(rst.repr.control, Control::Rst);
    assert_eq!(rst.repr.seq_number, SeqNumber(0));
    // SEG.SEQ + SEG.LEN wraps.
    assert_eq!(rst.repr.ack_number, Some(SeqNumber(0)));
    assert!(conn.poll_transmit(now).is_none());
    assert_eq!(conn.state(), State::Closed);
    assert!(conn.is_closed());
    assert_eq!(conn.poll_event(), Some(Event::Closed));
}

#[test]
fn listen_rst_closes() {
    let now = Instant::from_millis(1);
    let syn = Repr {
        src_port: GUEST_PORT,
        dst_port: OUR_PORT,
        seq_number: SeqNumber(10),
        control: Control::Syn,
        ..plain_syn()
    };
    let mut conn = Connection::syn_received(now, &config(), endpoints(), &syn);
    let rst = Repr {
        seq_number: SeqNumber(11),
        control: Control::Rst,
        ..syn
    };
    conn.handle_segment(now, &rst, &[]);
    assert_eq!(conn.state(), State::Closed);
    assert_eq!(conn.poll_event(), Some(Event::Reset));
    assert_eq!(conn.poll_event(), Some(Event::Closed));
}

#[test]
fn listen_non_syn_starts_closed() {
    let now = Instant::from_millis(1);
    let ack = Repr {
        src_port: GUEST_PORT,
        dst_port: OUR_PORT,
        ack_number: Some(SeqNumber(3)),
        ..Repr::default()
    };
    let conn = Connection::syn_received(now, &config(), endpoints(), &ack);
    assert_eq!(conn.state(), State::Closed);
}

#[test]
fn syn_received_ack_establishes() {
    let mut h = Harness::established();
    assert_eq!(h.conn.send_mss, 1000);
    assert_eq!(h.conn.snd_shift, 7);
    assert_eq!(h.conn.rcv_shift, 1);
    assert_eq!(h.conn.poll_timeout(), None);
    assert!(h.conn.send_capacity() > 0);
    h.expect_none();
}

#[test]
fn syn_received_syn_retransmitted_resends_syn_ack() {
    let (mut h, first) = Harness::syn_received_with(&config(), 500, plain_syn());
    let syn = Repr {
        seq_number: h.girs,
        control: Control::Syn,
        ..h.seg()
    };
    h.input(syn, &[]);
    let again = h.expect_one();
    assert_eq!(again.repr, first.repr);
    assert_eq!(h.conn.state(), State::SynReceived);
}

#[test]
fn syn_received_bad_ack_sends_rst() {
    let (mut h, synack) = Harness::syn_received_with(&config(), 500, plain_syn());
    let bad = synack.seq() + 1000;
    let ack = Repr {
        ack_number: Some(bad),
        ..h.seg()
    };
    h.input(ack, &[]);
    let rst = h.expect_one();
    assert_eq!(rst.repr.control, Control::Rst);
    assert_eq!(rst.seq(), bad);
    assert_eq!(h.conn.state(), State::SynReceived);
}

#[test]
fn syn_received_rst_closes() {
    let (mut h, _) = Harness::syn_received_with(&config(), 500, plain_syn());
    let rst = Repr {
        control: Control::Rst,
        ..h.seg()
    };
    h.input(rst, &[]);
    assert_eq!(h.conn.state(), State::Closed);
    assert_eq!(h.events(), [Event::Reset, Event::Closed]);
}

#[test]
fn syn_received_timeout_backs_off_then_gives_up() {
    let (mut h, synack) = Harness::syn_received_with(&config(), 500, plain_syn());
    let mut gaps = Vec::new();
    for _ in 0..6 {
        gaps.push(h.fire_next().as_millis());
        let again = h.expect_one();
        assert_eq!(again.repr, synack.repr);
    }
    assert_eq!(gaps, [1000, 2000, 4000, 8000, 16000, 32000]);
    h.fire_next();
    assert_eq!(h.conn.state(), State::Closed);
    assert_eq!(h.events(), [Event::TimedOut, Event::Closed]);
    h.expect_none();
}

#[test]
fn syn_received_fin_goes_to_close_wait() {
    let (mut h, _) = Harness::syn_received_with(&config(), 500, plain_syn());
    let fin = Repr {
        control: Control::Fin,
        ..h.ack_seg()
    };
    h.input(fin, &[]);
    assert_eq!(h.conn.state(), State::CloseWait);
    assert_eq!(
        h.events(),
        [Event::Established, Event::PeerFin, Event::Writable]
    );
    h.expect_ack(h.girs + 2);
}

/// A harness for an active open, with the SYN already taken.
fn syn_sent() -> (Harness, Sent) {
    let now = Instant::from_millis(1);
    let conn = Connection::connect(now, &config(), endpoints());
    let mut h = Harness {
        conn,
        now,
        gseq: SeqNumber(9000),
        girs: SeqNumber(9000),
    };
    assert_eq!(h.conn.state(), State::SynSent);
    let syn = h.expect_one();
    assert_eq!(syn.repr.control, Control::Syn);
    assert_eq!(syn.ack(), None);
    assert_eq!(syn.repr.max_seg_size, Some(1000));
    assert_eq!(syn.repr.window_scale, Some(1));
    assert!(syn.repr.sack_permitted);
    (h, syn)
}

fn syn_ack(h: &Harness, syn: &Sent) -> Repr {
    Repr {
        control: Control::Syn,
        ack_number: Some(syn.seq() + 1),
        max_seg_size: Some(1200),
        window_scale: Some(2),
        window_len: 1000,
        ..h.seg()
    }
}

#[test]
fn syn_sent_syn_ack_establishes() {
    let (mut h, syn) = syn_sent();
    let synack = syn_ack(&h, &syn);
    h.input(synack, &[]);
    h.gseq += 1;
    assert_eq!(h.conn.state(), State::Established);
    assert_eq!(h.events(), [Event::Established, Event::Writable]);
    h.expect_ack(h.gseq);
    // Our MSS caps theirs; their window in the SYN-ACK is not scaled.
    assert_eq!(h.conn.send_mss, 1000);
    assert_eq!(h.conn.snd_wnd, 1000);
    assert_eq!(h.conn.snd_shift, 2);
    assert_eq!(h.conn.poll_timeout(), None);
}

#[test]
fn syn_sent_syn_ack_with_data_acks_only_the_syn() {
    let (mut h, syn) = syn_sent();
    let synack = syn_ack(&h, &syn);
    h.input(synack, b"early");
    h.expect_ack(h.girs + 1);
    assert_eq!(h.conn.recv_queued(), 0);
}

#[test]
fn syn_sent_syn_ack_without_window_scale_disables_it() {
    let (mut h, syn) = syn_sent();
    let synack = Repr {
        window_scale: None,
        ..syn_ack(&h, &syn)
    };
    h.input(synack, &[]);
    assert_eq!(h.conn.snd_shift, 0);
    assert_eq!(h.conn.rcv_shift, 0);
    let ack = h.expect_one();
    // Unscaled: the free 64 KiB clamps at the field's maximum.
    assert_eq!(ack.repr.window_len, 65535);
}

#[test]
fn syn_sent_bad_ack_sends_rst() {
    let (mut h, syn) = syn_sent();
    let synack = Repr {
        ack_number: Some(syn.seq()),
        ..syn_ack(&h, &syn)
    };
    h.input(synack, &[]);
    let rst = h.expect_one();
    assert_eq!(rst.repr.control, Control::Rst);
    assert_eq!(rst.seq(), syn.seq());
    assert_eq!(h.conn.state(), State::SynSent);
}

#[test]
fn syn_sent_rst_with_good_ack_is_refusal() {
    let (mut h, syn) = syn_sent();
    // Without ACK a RST is ignored.
    let rst = Repr {
        control: Control::Rst,
        ..h.seg()
    };
    h.input(rst, &[]);
    assert_eq!(h.conn.state(), State::SynSent);
    let rst = Repr {
        control: Control::Rst,
        ack_number: Some(syn.seq() + 1),
        ..h.seg()
    };
    h.input(rst, &[]);
    assert_eq!(h.conn.state(), State::Closed);
    assert_eq!(h.events(), [Event::Reset, Event::Closed]);
    h.expect_none();
}

#[test]
fn syn_sent_syn_is_simultaneous_open() {
    let (mut h, syn) = syn_sent();
    let their_syn = Repr {
        control: Control::Syn,
        max_seg_size: Some(800),
        window_scale: Some(0),
        ..h.seg()
    };
    h.input(their_syn, &[]);
    h.gseq += 1;
    assert_eq!(h.conn.state(), State::SynReceived);
    let synack = h.expect_one();
    assert_eq!(synack.repr.control, Control::Syn);
    assert_eq!(synack.seq(), syn.seq());
    assert_eq!(synack.ack(), Some(h.gseq));
    // Their SYN-ACK (answering ours) completes it.
    let ack = Repr {
        ack_number: Some(syn.seq() + 1),
        ..h.seg()
    };
    h.input(ack, &[]);
    assert_eq!(h.conn.state(), State::Established);
    assert_eq!(h.conn.send_mss, 800);
    assert_eq!(h.conn.poll_timeout(), None);
}

#[test]
fn syn_sent_timeout_retransmits_with_backoff() {
    let (mut h, syn) = syn_sent();
    let mut gaps = Vec::new();
    for _ in 0..3 {
        gaps.push(h.fire_next().as_millis());
        assert_eq!(h.expect_one().repr, syn.repr);
    }
    assert_eq!(gaps, [1000, 2000, 4000]);
    // A SYN-ACK for the retransmitted SYN still works (Karn: no RTT sample).
    let synack = syn_ack(&h, &syn);
    h.input(synack, &[]);
    assert_eq!(h.conn.state(), State::Established);
    assert_eq!(h.conn.smoothed_rtt(), None);
}

#[test]
fn syn_received_without_window_scale_no_scaling() {
    let (mut h, synack) = Harness::syn_received_with(&config(), 1, plain_syn());
    assert_eq!(synack.repr.window_scale, None);
    assert!(!synack.repr.sack_permitted);
    let ack = Repr {
        window_len: 3000,
        ..h.ack_seg()
    };
    h.input(ack, &[]);
    assert_eq!(h.conn.snd_wnd, 3000);
    assert_eq!(h.conn.rcv_shift, 0);
    // A guest that sends a scale option only after the SYN changes nothing.
    h.data(b"x");
    h.advance(Duration::from_millis(40));
    let ack = h.expect_ack(h.gseq);
    assert_eq!(ack.repr.window_len, 65535);
}

#[test]
fn syn_received_mss_default_when_absent() {
    let syn = Repr {
        window_len: 65535,
        ..Repr::default()
    };
    let (mut h, _) = Harness::syn_received_with(&config(), 1, syn);
    let ack = h.ack_seg();
    h.input(ack, &[]);
    // RFC 9293 §3.7.1: 536 for IPv4.
    assert_eq!(h.conn.send_mss, 536);
    h.events();
    assert_eq!(h.conn.send(&[7; 2000]), 2000);
    let segs = h.drain();
    assert!(segs.iter().all(|s| s.payload.len() <= 536));
    assert_eq!(segs.iter().map(|s| s.payload.len()).sum::<usize>(), 2000);
}

#[test]
fn reset_for_unknown_follows_rfc() {
    use super::super::reset_for_unknown;
    let seg = Repr {
        src_port: 1,
        dst_port: 2,
        seq_number: SeqNumber(100),
        control: Control::Fin,
        payload_len: 10,
        ..Repr::default()
    };
    let rst = reset_for_unknown(&seg).expect("an answer");
    assert_eq!((rst.src_port, rst.dst_port), (2, 1));
    assert_eq!(rst.seq_number, SeqNumber(0));
    assert_eq!(rst.ack_number, Some(SeqNumber(111)));
    assert_eq!(rst.control, Control::Rst);
    let acked = Repr {
        ack_number: Some(SeqNumber(555)),
        ..seg
    };
    let rst = reset_for_unknown(&acked).expect("an answer");
    assert_eq!(rst.seq_number, SeqNumber(555));
    assert_eq!(rst.ack_number, None);
    let rst_in = Repr {
        control: Control::Rst,
        ..seg
    };
    assert_eq!(reset_for_unknown(&rst_in), None);
}

#[test]
fn reset_for_listener_drops_segments_without_syn_or_ack() {
    use super::super::{reset_for_listener, reset_for_unknown};
    let seg = |control, ack: Option<u32>| Repr {
        src_port: 1,
        dst_port: 2,
        seq_number: SeqNumber(100),
        ack_number: ack.map(SeqNumber),
        control,
        ..Repr::default()
    };
    // RFC 9293 §3.10.7.2: FIN, NULL and Xmas probes (no SYN, ACK or RST) are dropped, and
    // SYN+FIN as Linux does; a RST is never answered.
    for control in [Control::Fin, Control::None, Control::SynFin, Control::Rst] {
        assert_eq!(reset_for_listener(&seg(control, None)), None, "{control:?}");
    }
    // An ACK, and a SYN the listener cannot take, get the RST a closed port would send.
    for s in [
        seg(Control::None, Some(9)),
        seg(Control::Fin, Some(9)),
        seg(Control::Syn, None),
    ] {
        assert!(reset_for_listener(&s).is_some());
        assert_eq!(reset_for_listener(&s), reset_for_unknown(&s), "{s:?}");
    }
}

#[test]
fn listen_syn_with_data_acks_only_the_syn() {
    let now = Instant::from_millis(1);
    let syn = Repr {
        src_port: GUEST_PORT,
        dst_port: OUR_PORT,
        seq_number: SeqNumber(40),
        control: Control::Syn,
        payload_len: 4,
        ..plain_syn()
    };
    let mut conn = Connection::syn_received(now, &config(), endpoints(), &syn);
    conn.handle_segment(now, &syn, b"data");
    conn.accept(now);
    let synack = conn.poll_transmit(now).expect("SYN-ACK");
    assert_eq!(synack.repr.ack_number, Some(SeqNumber(41)));
    assert_eq!(conn.recv_queued(), 0);
}

#[test]
fn listen_new_syn_replaces_pending() {
    let now = Instant::from_millis(1);
    let syn = Repr {
        src_port: GUEST_PORT,
        dst_port: OUR_PORT,
        seq_number: SeqNumber(40),
        control: Control::Syn,
        ..plain_syn()
    };
    let mut conn = Connection::syn_received(now, &config(), endpoints(), &syn);
    let again = Repr {
        seq_number: SeqNumber(9000),
        ..syn
    };
    conn.handle_segment(now, &again, &[]);
    conn.accept(now);
    let synack = conn.poll_transmit(now).expect("SYN-ACK");
    assert_eq!(synack.repr.ack_number, Some(SeqNumber(9001)));
}

#[test]
fn established_accept_and_refuse_are_ignored() {
    let mut h = Harness::established();
    h.conn.accept(h.now);
    h.conn.refuse(h.now);
    assert_eq!(h.conn.state(), State::Established);
    h.expect_none();
}

#[test]
fn syn_received_syn_ack_completes_simultaneous_open() {
    let (mut h, syn) = syn_sent();
    let their_syn = Repr {
        control: Control::Syn,
        window_scale: Some(0),
        ..h.seg()
    };
    h.input(their_syn, &[]);
    assert_eq!(h.conn.state(), State::SynReceived);
    h.expect_one();
    // Figure 8: their SYN-ACK, the same SYN now acknowledging ours.
    let their_syn_ack = Repr {
        control: Control::Syn,
        ack_number: Some(syn.seq() + 1),
        window_scale: Some(0),
        ..h.seg()
    };
    h.input(their_syn_ack, &[]);
    assert_eq!(h.conn.state(), State::Established);
    assert_eq!(h.events(), [Event::Established, Event::Writable]);
}
