//! The stream framers (`switch::framing::Decoder`, 4-byte big-endian and 2-byte little-endian
//! prefixes) fed a stream in arbitrary chunks. The first byte picks the prefix and the maximum
//! frame, the second seeds the chunk sizes, the rest is the stream. Oracle: the frames and the
//! error equal those of a one-pass reference decoding of the whole stream, whatever the
//! chunking; the decoder always makes progress; each frame re-encodes to its bytes in the
//! stream; `finish` agrees on where the stream ended.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switch::framing::{DecodeError, Decoder, Encoder, LengthPrefix};

/// The frames of `stream` and the error that stops them, or what is left undecoded.
fn reference(
    prefix: LengthPrefix,
    max: usize,
    stream: &[u8],
) -> (Vec<&[u8]>, Result<usize, DecodeError>) {
    let size = prefix.size();
    let mut frames = Vec::new();
    let mut at = 0;
    while stream.len() - at >= size {
        let head = &stream[at..at + size];
        let len = match prefix {
            LengthPrefix::U32Be => {
                u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize
            }
            LengthPrefix::U16Le => usize::from(u16::from_le_bytes([head[0], head[1]])),
        };
        if len == 0 {
            return (frames, Err(DecodeError::ZeroLength));
        }
        if len > max {
            return (frames, Err(DecodeError::Oversize { len, max }));
        }
        if stream.len() - at - size < len {
            break;
        }
        frames.push(&stream[at + size..at + size + len]);
        at += size + len;
    }
    (frames, Ok(stream.len() - at))
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (prefix, max) = match data[0] % 4 {
        0 => (LengthPrefix::U32Be, 1514 + 4),
        1 => (LengthPrefix::U16Le, 1514 + 4),
        2 => (LengthPrefix::U32Be, 65535 + 14),
        _ => (LengthPrefix::U16Le, 9000),
    };
    let mut seed = u32::from(data[1]) | 0x100;
    let stream = &data[2..];
    let mut decoder = Decoder::new(prefix, max);
    let max = decoder.max_frame();
    let (expected, outcome) = reference(prefix, max, stream);
    let encoder = Encoder::new(prefix, max);
    let mut got: Vec<Vec<u8>> = Vec::new();
    let mut error = None;
    let mut rest = stream;
    'feed: while !rest.is_empty() {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let want = 1 + (seed as usize % 3000);
        let chunk = &rest[..want.min(rest.len())];
        let mut fed = 0;
        while fed < chunk.len() {
            let n = decoder.feed(&chunk[fed..]);
            fed += n;
            let mut drained = 0;
            loop {
                match decoder.next_frame() {
                    Ok(Some(frame)) => {
                        got.push(frame.to_vec());
                        drained += 1;
                    }
                    Ok(None) => break,
                    Err(e) => {
                        error = Some(e);
                        break 'feed;
                    }
                }
            }
            assert!(n > 0 || drained > 0, "decoder made no progress");
        }
        rest = &rest[chunk.len()..];
    }
    let got_refs: Vec<&[u8]> = got.iter().map(|f| &f[..]).collect();
    match outcome {
        Err(e) => {
            assert_eq!(error, Some(e));
            assert_eq!(got_refs, expected);
            assert_eq!(decoder.finish(), Err(e));
        }
        Ok(left) => {
            assert_eq!(error, None);
            assert_eq!(got_refs, expected);
            assert_eq!(decoder.buffered(), left);
            match decoder.finish() {
                Ok(()) => assert_eq!(left, 0),
                Err(DecodeError::Truncated { buffered }) => assert_eq!(buffered, left),
                Err(e) => panic!("finish: {e:?}"),
            }
        }
    }
    let mut encoded = Vec::new();
    for frame in &got {
        encoder
            .encode_into(frame, &mut encoded)
            .expect("a decoded frame encodes");
    }
    assert_eq!(&encoded[..], &stream[..encoded.len()]);
});
