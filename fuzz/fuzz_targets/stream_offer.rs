//! The accepting end of a stream with a negotiated virtio-net header
//! (`switch::link::offer`): the offer's request header value, and the frames a peer sends on
//! a `/connect` stream, decoded with the 2-byte length and taken by `Inbound` as a worker
//! takes them. Nothing may panic. An offer that parses reads back from its own request
//! header. Before the acknowledgement every frame comes back whole and plain, or is refused
//! as too long; the acknowledgement is taken once, only for the offer's own nonce, and only
//! where there is an offer; after it, every frame comes back as the bytes behind its 12-byte
//! header, and a header that checks out fits its frame.
//!
//! Input: a selector byte (bit 0: an offer was accepted; bit 1: the stream starts with its
//! acknowledgement; bits 2-3: the plain frame limit), a length byte and that many bytes for
//! the request header value, then the stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stack::wire::VirtioNetRepr;
use switch::framing::{Decoder, Encoder, LengthPrefix};
use switch::link::offer::{Inbound, MAX_FRAME, Offer, Taken};

const OFFER: Offer = Offer {
    nonce: 0x0123_4567_89ab_cdef,
};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Some((&value_len, rest)) = rest.split_first() else {
        return;
    };
    let (value, stream) = rest.split_at(usize::from(value_len).min(rest.len()));
    if let Ok(value) = std::str::from_utf8(value)
        && let Some(offer) = Offer::parse(value)
    {
        let line = offer.request_header();
        let echoed = line.split_once(": ").map(|(_, v)| v.trim_end());
        assert_eq!(echoed.and_then(Offer::parse), Some(offer));
    }

    let offer = (selector & 1 != 0).then_some(OFFER);
    let plain_max = [1514, 9014, 65535, 60][usize::from(selector >> 2) & 3];
    let mut bytes = Vec::new();
    if selector & 2 != 0 {
        Encoder::new(LengthPrefix::U16Le, MAX_FRAME)
            .encode_into(&OFFER.ack_marker(), &mut bytes)
            .unwrap();
    }
    bytes.extend_from_slice(stream);
    let mut decoder = Decoder::new(LengthPrefix::U16Le, MAX_FRAME);
    let mut inbound = Inbound::new(offer, plain_max);
    let mut agreed = 0;
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        let n = decoder.feed(rest);
        rest = &rest[n..];
        loop {
            let frame = match decoder.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(_) => return,
            };
            let before = inbound.with_header();
            match inbound.take(frame) {
                Taken::Agreed => {
                    assert!(!before && offer.is_some_and(|o| o.is_ack(frame)));
                    agreed += 1;
                }
                Taken::Frame(eth, header) if !before => {
                    assert_eq!(eth, frame);
                    assert_eq!(header, Ok(VirtioNetRepr::PLAIN));
                    assert!(frame.len() <= plain_max);
                }
                Taken::Frame(eth, header) => match frame.get(12..) {
                    Some(behind) => {
                        assert_eq!(eth, behind);
                        if let Ok(header) = header {
                            assert_eq!(header.check_frame(eth), Ok(()));
                        }
                    }
                    None => assert!(eth.is_empty() && header.is_err()),
                },
                Taken::TooLong { len, max } => {
                    assert!(!before && len == frame.len() && len > max && max == plain_max);
                    return;
                }
            }
            assert!(
                !before || inbound.with_header(),
                "the header is never given up"
            );
        }
        if n == 0 {
            break;
        }
    }
    assert!(agreed <= 1);
    assert_eq!(inbound.with_header(), agreed == 1);
});
