//! Super-segments for a link that cuts them ([`Connection::poll_transmit_max`]): new data goes
//! in one segment as large as the windows and the limit allow, slow start grows by what one
//! acknowledgment of a super-segment covers, and whatever is sent again stays one MSS.

use super::*;

impl Harness {
    /// Every segment due with super-segments of up to `max` bytes allowed.
    fn drain_max(&mut self, max: usize) -> Vec<Sent> {
        let mut out = Vec::new();
        while let Some(seg) = self.conn.poll_transmit_max(self.now, max) {
            let payload = [seg.payload.0, seg.payload.1].concat();
            out.push(Sent {
                repr: seg.repr,
                payload,
            });
            assert!(out.len() < 10_000, "poll_transmit_max never ends");
        }
        out
    }
}

fn lens(segs: &[Sent]) -> Vec<usize> {
    segs.iter().map(|s| s.payload.len()).collect()
}

#[test]
fn established_super_segment_takes_what_the_windows_allow() {
    let mut h = Harness::established();
    assert_eq!(h.conn.send_mss(), 1000);
    assert_eq!(h.conn.send(&[5; 40_000]), 40_000);
    // RFC 6928's ten segments of initial window, in one.
    let first = h.drain_max(64_000);
    assert_eq!(lens(&first), [10_000]);
    assert!(!first[0].repr.psh);
    // Its one acknowledgment grows cwnd by all it covers (slow start, L = one
    // super-segment): twenty segments' worth goes next, in one.
    let ack = h.ack_seg();
    h.input(ack, &[]);
    let second = h.drain_max(64_000);
    assert_eq!(lens(&second), [20_000]);
    assert_eq!(second[0].seq(), first[0].seq() + 10_000);
    // A smaller limit cuts what the window allows into pieces of that size.
    let ack = h.ack_seg();
    h.input(ack, &[]);
    let third = h.drain_max(4_000);
    assert_eq!(lens(&third), [4_000, 4_000, 2_000]);
    assert!(
        third[2].repr.psh,
        "PSH on the segment that empties the queue"
    );
}

#[test]
fn established_limit_below_the_mss_is_the_mss() {
    let mut h = Harness::established();
    h.conn.send(&[1; 3000]);
    assert_eq!(lens(&h.drain_max(10)), [1000, 1000, 1000]);
}

#[test]
fn established_lost_super_segment_goes_again_one_mss_at_a_time() {
    let mut h = Harness::established();
    h.conn.send(&[7; 10_000]);
    let sent = h.drain_max(64_000);
    assert_eq!(lens(&sent), [10_000]);
    // Nothing comes back: the retransmission timer goes back to SND.UNA with cwnd at one
    // segment (RFC 5681 §3.1), and every piece sent again is one MSS.
    h.fire_next();
    let again = h.drain_max(64_000);
    assert_eq!(lens(&again), [1000]);
    assert_eq!(again[0].seq(), sent[0].seq());
    let mut acked = again[0].seq() + 1000;
    let mut total = 1000;
    while total < 10_000 {
        let ack = Repr {
            ack_number: Some(acked),
            ..h.seg()
        };
        h.input(ack, &[]);
        let more = h.drain_max(64_000);
        assert!(!more.is_empty(), "stalled at {total}");
        for s in &more {
            assert!(
                s.payload.len() <= 1000,
                "sent again in {} bytes",
                s.payload.len()
            );
            assert_eq!(s.seq(), sent[0].seq() + total, "in order");
            total += s.payload.len();
        }
        acked = more.last().map_or(acked, |s| s.seq() + s.payload.len());
    }
    assert_eq!(total, 10_000);
}

#[test]
fn established_fast_retransmit_of_a_super_segment_is_one_mss() {
    let mut h = Harness::established();
    h.conn.send(&[9; 30_000]);
    let first = h.drain_max(64_000);
    let ack = h.ack_seg();
    h.input(ack, &[]);
    let second = h.drain_max(5_000);
    assert_eq!(lens(&second), [5_000, 5_000, 5_000, 5_000]);
    assert_eq!(first.len(), 1);
    // The first of them is lost; the guest SACKs the other three, ACK after ACK.
    let una = second[0].seq();
    for i in 1..4 {
        let dup = Repr {
            ack_number: Some(una),
            sack_ranges: [Some((second[1].seq(), second[i].seq() + 5_000)), None, None],
            ..h.seg()
        };
        h.input(dup, &[]);
    }
    let rexmit = h.drain_max(64_000);
    assert!(!rexmit.is_empty());
    assert_eq!(rexmit[0].seq(), una);
    assert_eq!(rexmit[0].payload.len(), 1000);
    assert!(
        rexmit
            .iter()
            .all(|s| s.payload.len() <= 1000 || s.seq() >= second[3].seq() + 5_000)
    );
}
