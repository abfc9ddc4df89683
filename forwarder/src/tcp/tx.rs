//! One flow's segments to its guest, as its link takes them: on a link with offloads
//! ([`LinkOffloads`]) new data leaves in super-segments of up to 64 KiB that the link cuts to
//! the MSS, with the TCP checksum left to it
//! ([`Connection::poll_transmit_max`](stack::tcp::Connection::poll_transmit_max),
//! [`crate::frame::Framer::tcp_offloaded`]); everything the engine sends again stays one MSS.
//! On any other link, one MSS per segment with a checksum of our own.

use stack::time::Instant;

use super::Flow;
use crate::handler::Shared;
use crate::worker::FrameSink;

/// Sends every segment the flow's engine has due.
pub(super) fn transmit(sh: &mut Shared, flow: &mut Flow, now: Instant, out: &dyn FrameSink) {
    let addrs = flow.conn.endpoints().addrs;
    let offloads = flow.offloads;
    let mss = flow.conn.send_mss();
    let max = offloads.max_tcp_payload(&addrs, mss);
    while let Some(segment) = flow.conn.poll_transmit_max(now, max) {
        let frame = sh.framer.tcp_offloaded(
            flow.guest_mac,
            addrs,
            &segment.repr,
            segment.payload,
            offloads,
            mss,
        );
        sh.send(out, frame);
    }
}
