//! DNS over TCP's stream decoder and the TCP query path. The first byte picks the decoder's
//! bound, the second how the rest is cut into reads. The decoder never holds more than one
//! message plus its prefix, never yields an empty or oversize message, and the messages it
//! yields, framed again, are exactly the bytes it consumed. Each message then goes through
//! the resolver as a TCP query: it goes upstream over TCP only, answers are never cut, and
//! its disposition is what happens: dropped means nothing is ever sent for it (so the guest
//! connection stops counting it as owed), answered means one answer now, forwarded means a
//! query upstream.
#![no_main]

#[path = "common/dns.rs"]
mod common;

use dns::stream::{Decoder, PREFIX_LEN, frame};
use dns::{Disposition, Transmit, Transport};
use libfuzzer_sys::fuzz_target;
use stack::time::Instant;

fuzz_target!(|data: &[u8]| {
    let [bound, step, rest @ ..] = data else {
        return;
    };
    let max = match bound {
        0 => 65535,
        b => usize::from(*b) * 64,
    };
    let step = usize::from(*step).max(1);
    let upstream = common::UPSTREAM;
    let (mut r, zones) = common::resolver();
    let mut d = Decoder::new(max);
    let mut consumed = 0usize;
    let mut reframed = Vec::new();
    for chunk in rest.chunks(step) {
        let mut chunk = chunk;
        while !chunk.is_empty() {
            let Ok((n, message)) = d.push(chunk) else {
                return;
            };
            assert!(n > 0 || message.is_some());
            assert!(n <= chunk.len());
            assert!(d.buffered() <= PREFIX_LEN + d.max_message());
            consumed += n;
            chunk = &chunk[n..];
            let Some(m) = message else { continue };
            assert!(!m.is_empty() && m.len() <= d.max_message());
            reframed.extend(frame(&m).expect("a decoded message frames again"));
            let disposition = r.handle_query_via(Instant::default(), 7, Transport::Tcp, &m, &zones);
            let mut sent = 0;
            while let Some(t) = r.poll_transmit() {
                sent += 1;
                match (&t, disposition) {
                    (Transmit::UpstreamTcp { .. }, Disposition::Forwarded)
                    | (Transmit::Client { .. }, Disposition::Answered) => {}
                    (t, d) => panic!("{t:?} for a query {d:?}"),
                }
                match t {
                    Transmit::UpstreamTcp { to, payload } => {
                        assert_eq!(to, upstream);
                        assert_eq!(payload.get(2..), m.get(2..));
                        let mut answer = payload;
                        if let Some(flags) = answer.get_mut(2) {
                            *flags |= 0x80;
                        }
                        answer.extend_from_slice(&[0; 600]);
                        let len = answer.len();
                        r.handle_response(Instant::default(), upstream, &answer);
                        if let Some(Transmit::Client { payload, .. }) = r.poll_transmit() {
                            assert_eq!(payload.len(), len, "a TCP answer is never cut");
                        }
                    }
                    Transmit::Upstream { .. } => panic!("a TCP query went upstream over UDP"),
                    Transmit::Client { to, payload } => {
                        assert_eq!(to, 7);
                        assert_eq!(payload.get(..2), m.get(..2));
                    }
                }
            }
            assert_eq!(sent, usize::from(disposition != Disposition::Dropped));
        }
    }
    assert_eq!(reframed.len() + d.buffered(), consumed);
    assert_eq!(reframed.as_slice(), &rest[..reframed.len()]);
});
