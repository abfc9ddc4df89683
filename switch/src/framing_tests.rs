use super::*;
use proptest::prelude::*;

const BOTH: [LengthPrefix; 2] = [LengthPrefix::U32Be, LengthPrefix::U16Le];

fn frame(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn encode_all(enc: &Encoder, frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in frames {
        enc.encode_into(f, &mut out).unwrap();
    }
    out
}

/// Feeds `stream` cut at `cuts` (sorted offsets), collecting frames; stops at the first error.
fn decode_chunked(
    dec: &mut Decoder,
    stream: &[u8],
    cuts: &[usize],
) -> (Vec<Vec<u8>>, Result<(), DecodeError>) {
    let mut out = Vec::new();
    let mut pos = 0;
    for &cut in cuts.iter().chain(std::iter::once(&stream.len())) {
        let cut = cut.clamp(pos, stream.len());
        let mut chunk = &stream[pos..cut];
        pos = cut;
        while !chunk.is_empty() {
            let n = dec.feed(chunk);
            chunk = &chunk[n..];
            loop {
                match dec.next_frame() {
                    Ok(Some(f)) => out.push(f.to_vec()),
                    Ok(None) => break,
                    Err(e) => return (out, Err(e)),
                }
            }
            assert!(n > 0 || chunk.is_empty(), "decoder made no progress");
        }
    }
    let end = dec.finish();
    (out, end)
}

#[test]
fn prefixes_are_encoded_as_specified() {
    let f = frame(0x0102, 0);
    let mut out = Vec::new();
    Encoder::new(LengthPrefix::U32Be, 65535)
        .encode_into(&f, &mut out)
        .unwrap();
    assert_eq!(&out[..4], &[0, 0, 1, 2]);
    out.clear();
    Encoder::new(LengthPrefix::U16Le, 65535)
        .encode_into(&f, &mut out)
        .unwrap();
    assert_eq!(&out[..2], &[2, 1]);
    assert_eq!(&out[2..], &f[..]);
}

#[test]
fn round_trip_in_one_chunk() {
    for p in BOTH {
        let frames: Vec<_> = [60, 1514, 1, 14, 9000]
            .iter()
            .map(|&n| frame(n, 7))
            .collect();
        let stream = encode_all(&Encoder::new(p, 9018), &frames);
        let (out, end) = decode_chunked(&mut Decoder::new(p, 9018), &stream, &[]);
        assert_eq!(out, frames);
        assert_eq!(end, Ok(()));
    }
}

#[test]
fn split_at_every_byte_boundary() {
    for p in BOTH {
        let frames = vec![frame(60, 1), frame(3, 2), frame(100, 3)];
        let stream = encode_all(&Encoder::new(p, 1518), &frames);
        for cut in 0..=stream.len() {
            let mut dec = Decoder::new(p, 1518);
            let (out, end) = decode_chunked(&mut dec, &stream, &[cut]);
            assert_eq!(out, frames, "{p:?} cut at {cut}");
            assert_eq!(end, Ok(()));
        }
        // And one byte at a time.
        let cuts: Vec<usize> = (1..stream.len()).collect();
        let (out, _) = decode_chunked(&mut Decoder::new(p, 1518), &stream, &cuts);
        assert_eq!(out, frames);
    }
}

#[test]
fn zero_length_is_refused_and_sticky() {
    for p in BOTH {
        let mut stream = encode_all(&Encoder::new(p, 1518), &[frame(60, 0)]);
        stream.extend(std::iter::repeat_n(0, p.size()));
        stream.extend(encode_all(&Encoder::new(p, 1518), &[frame(60, 0)]));
        let mut dec = Decoder::new(p, 1518);
        let (out, end) = decode_chunked(&mut dec, &stream, &[]);
        assert_eq!(out.len(), 1);
        assert_eq!(end, Err(DecodeError::ZeroLength));
        assert_eq!(dec.next_frame(), Err(DecodeError::ZeroLength));
        assert_eq!(dec.finish(), Err(DecodeError::ZeroLength));
    }
}

#[test]
fn oversize_is_refused_on_the_prefix_alone() {
    let max = max_frame_len(1500);
    assert_eq!(max, 1518);
    for p in BOTH {
        let mut dec = Decoder::new(p, max);
        let mut prefix = Vec::new();
        let big = frame(max + 1, 0);
        Encoder::new(p, 65535)
            .encode_into(&big, &mut prefix)
            .unwrap();
        // Only the prefix has arrived.
        dec.feed(&prefix[..p.size()]);
        assert_eq!(
            dec.next_frame(),
            Err(DecodeError::Oversize { len: max + 1, max })
        );
        // Exactly the maximum is fine.
        let mut dec = Decoder::new(p, max);
        let stream = encode_all(&Encoder::new(p, max), &[frame(max, 9)]);
        let (out, end) = decode_chunked(&mut dec, &stream, &[]);
        assert_eq!((out.len(), end), (1, Ok(())));
    }
}

#[test]
fn huge_u32_length_is_refused() {
    let mut dec = Decoder::new(LengthPrefix::U32Be, 1518);
    dec.feed(&[0xff, 0xff, 0xff, 0xff, 0]);
    assert!(matches!(
        dec.next_frame(),
        Err(DecodeError::Oversize {
            len: 0xffff_ffff,
            ..
        })
    ));
}

#[test]
fn truncated_at_eof() {
    for p in BOTH {
        let stream = encode_all(&Encoder::new(p, 1518), &[frame(60, 0), frame(60, 1)]);
        for cut in 1..stream.len() {
            if cut == p.size() + 60 {
                continue; // a frame boundary
            }
            let mut dec = Decoder::new(p, 1518);
            let (_, end) = decode_chunked(&mut dec, &stream[..cut], &[]);
            let buffered = if cut > p.size() + 60 {
                cut - p.size() - 60
            } else {
                cut
            };
            assert_eq!(end, Err(DecodeError::Truncated { buffered }), "cut {cut}");
        }
        let mut dec = Decoder::new(p, 1518);
        assert_eq!(decode_chunked(&mut dec, &[], &[]).1, Ok(()));
    }
}

#[test]
fn u16_codec_clamps_to_its_range() {
    // A TAP-sized MTU exceeds what two bytes can say; both sides clamp to 65535.
    let max = max_frame_len(65520);
    let enc = Encoder::new(LengthPrefix::U16Le, max);
    assert!(enc.header(65535).is_ok());
    assert_eq!(
        enc.header(65536),
        Err(EncodeError::Oversize {
            len: 65536,
            max: 65535
        })
    );
    assert_eq!(Decoder::new(LengthPrefix::U16Le, max).max_frame(), 65535);
    assert_eq!(Decoder::new(LengthPrefix::U32Be, max).max_frame(), max);
}

#[test]
fn encoder_refuses_empty_and_oversize() {
    let enc = Encoder::new(LengthPrefix::U32Be, 1518);
    let mut out = Vec::new();
    assert_eq!(enc.encode_into(&[], &mut out), Err(EncodeError::Empty));
    assert_eq!(
        enc.encode_into(&frame(1519, 0), &mut out),
        Err(EncodeError::Oversize {
            len: 1519,
            max: 1518
        })
    );
    assert!(out.is_empty());
    let err = enc.write_frame(&mut Vec::new(), &[]).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

/// A writer that takes at most `step` bytes per call and only looks at the first slice.
struct Dribble {
    out: Vec<u8>,
    step: usize,
    calls: usize,
}

impl Write for Dribble {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.calls += 1;
        if self.calls.is_multiple_of(3) {
            return Err(io::ErrorKind::Interrupted.into());
        }
        let n = buf.len().min(self.step);
        self.out.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn write_frame_survives_partial_writes() {
    for p in BOTH {
        let enc = Encoder::new(p, 1518);
        let frames = vec![frame(60, 0), frame(1518, 1)];
        for step in [1, 2, 3, 5, 4096] {
            let mut w = Dribble {
                out: Vec::new(),
                step,
                calls: 0,
            };
            for f in &frames {
                enc.write_frame(&mut w, f).unwrap();
            }
            assert_eq!(w.out, encode_all(&enc, &frames), "{p:?} step {step}");
        }
        // A real vectored writer gets both slices in one call.
        let mut v = Vec::new();
        enc.write_frame(&mut v, &frames[0]).unwrap();
        assert_eq!(v, encode_all(&enc, &frames[..1]));
    }
}

#[test]
fn read_from_a_reader() {
    let enc = Encoder::new(LengthPrefix::U32Be, 65538);
    let frames: Vec<_> = (0..50).map(|i| frame(1 + i * 1300, i as u8)).collect();
    let stream = encode_all(&enc, &frames);
    let mut reader = &stream[..];
    let mut dec = Decoder::new(LengthPrefix::U32Be, 65538);
    let mut out = Vec::new();
    while dec.read_from(&mut reader).unwrap() > 0 {
        while let Some(f) = dec.next_frame().unwrap() {
            out.push(f.to_vec());
        }
    }
    assert_eq!(dec.finish(), Ok(()));
    assert_eq!(out, frames);
}

proptest! {
    #[test]
    fn arbitrary_chunking_round_trips(
        u16le in any::<bool>(),
        sizes in proptest::collection::vec(1usize..3000, 0..40),
        mut cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..30),
    ) {
        let p = if u16le { LengthPrefix::U16Le } else { LengthPrefix::U32Be };
        let frames: Vec<_> = sizes.iter().enumerate().map(|(i, &n)| frame(n, i as u8)).collect();
        let stream = encode_all(&Encoder::new(p, 3000), &frames);
        let mut cuts: Vec<usize> = cuts.drain(..).map(|i| i.index(stream.len() + 1)).collect();
        cuts.sort_unstable();
        let (out, end) = decode_chunked(&mut Decoder::new(p, 3000), &stream, &cuts);
        prop_assert_eq!(out, frames);
        prop_assert_eq!(end, Ok(()));
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        u16le in any::<bool>(),
        bytes in proptest::collection::vec(any::<u8>(), 0..4000),
        cuts in proptest::collection::vec(0usize..4000, 0..20),
    ) {
        let p = if u16le { LengthPrefix::U16Le } else { LengthPrefix::U32Be };
        let mut cuts = cuts;
        cuts.sort_unstable();
        let mut dec = Decoder::new(p, 1518);
        let (out, _) = decode_chunked(&mut dec, &bytes, &cuts);
        prop_assert!(out.iter().all(|f| !f.is_empty() && f.len() <= 1518));
    }
}
