#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;

use super::*;

/// Every message `input` completes, feeding it in pieces cut at `cuts`.
fn decode(d: &mut Decoder, input: &[u8], cuts: &[usize]) -> Result<Vec<Vec<u8>>, DecodeError> {
    let mut out = Vec::new();
    let mut pieces = Vec::new();
    let mut start = 0;
    for &c in cuts {
        let c = c.clamp(start, input.len());
        pieces.push(&input[start..c]);
        start = c;
    }
    pieces.push(&input[start..]);
    for mut piece in pieces {
        while !piece.is_empty() {
            let (n, msg) = d.push(piece)?;
            assert!(
                n > 0 || msg.is_some(),
                "no progress on {} bytes",
                piece.len()
            );
            piece = &piece[n..];
            out.extend(msg);
        }
    }
    Ok(out)
}

fn stream(messages: &[&[u8]]) -> Vec<u8> {
    messages.iter().flat_map(|m| frame(m).unwrap()).collect()
}

#[test]
fn test_two_messages_split_at_every_byte() {
    let a: &[u8] = b"first message, twelve+";
    let b: &[u8] = &[7u8; 300];
    let s = stream(&[a, b]);
    for cut in 0..=s.len() {
        let mut d = Decoder::default();
        let got = decode(&mut d, &s, &[cut]).unwrap();
        assert_eq!(got, vec![a.to_vec(), b.to_vec()], "cut at {cut}");
        assert!(d.is_idle());
    }
}

#[test]
fn test_byte_by_byte() {
    let a: &[u8] = &[1, 2, 3];
    let s = stream(&[a, a]);
    let mut d = Decoder::default();
    let cuts: Vec<usize> = (1..s.len()).collect();
    assert_eq!(
        decode(&mut d, &s, &cuts).unwrap(),
        vec![a.to_vec(), a.to_vec()]
    );
}

#[test]
fn test_push_stops_at_message_end() {
    let s = stream(&[&[9; 4], &[8; 5]]);
    let mut d = Decoder::default();
    let (n, msg) = d.push(&s).unwrap();
    assert_eq!(n, 6);
    assert_eq!(msg, Some(vec![9; 4]));
}

#[test]
fn test_zero_length() {
    let mut d = Decoder::default();
    assert_eq!(d.push(&[0, 0, 1]), Err(DecodeError::ZeroLength));
}

#[test]
fn test_oversize() {
    let mut d = Decoder::new(512);
    assert_eq!(
        d.push(&[0x02, 0x01]),
        Err(DecodeError::TooLong { len: 513, max: 512 })
    );
    let mut d = Decoder::new(512);
    assert_eq!(d.push(&[0x02, 0x00]), Ok((2, None)));
}

#[test]
fn test_largest_message() {
    let m = vec![0xab; MAX_MESSAGE];
    let s = frame(&m).unwrap();
    assert_eq!(&s[..2], &[0xff, 0xff]);
    let mut d = Decoder::new(usize::MAX);
    assert_eq!(d.max_message(), MAX_MESSAGE);
    assert_eq!(decode(&mut d, &s, &[1, 1000]).unwrap(), vec![m]);
    assert!(frame(&vec![0; MAX_MESSAGE + 1]).is_none());
}

#[test]
fn test_truncated() {
    let s = stream(&[&[5; 40]]);
    let mut d = Decoder::default();
    assert_eq!(
        decode(&mut d, &s[..30], &[]).unwrap(),
        Vec::<Vec<u8>>::new()
    );
    assert!(!d.is_idle());
    assert_eq!(d.buffered(), 30);
    let mut d = Decoder::default();
    assert_eq!(d.push(&s[..1]), Ok((1, None)));
    assert_eq!(d.buffered(), 1);
}

#[test]
fn test_empty_input() {
    let mut d = Decoder::default();
    assert_eq!(d.push(&[]), Ok((0, None)));
    assert!(d.is_idle());
}

proptest! {
    #[test]
    fn prop_round_trip(
        messages in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..600), 0..6),
        cuts in prop::collection::vec(0usize..4000, 0..8),
    ) {
        let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
        let s = stream(&refs);
        let mut cuts = cuts;
        cuts.sort_unstable();
        let mut d = Decoder::default();
        prop_assert_eq!(decode(&mut d, &s, &cuts).unwrap(), messages);
        prop_assert!(d.is_idle());
    }

    #[test]
    fn prop_arbitrary_never_panics(input in prop::collection::vec(any::<u8>(), 0..2000),
                                   max in 0usize..70000) {
        let mut d = Decoder::new(max);
        let mut rest = input.as_slice();
        while !rest.is_empty() {
            match d.push(rest) {
                Ok((n, msg)) => {
                    prop_assert!(d.buffered() <= PREFIX_LEN + d.max_message());
                    if let Some(m) = msg {
                        prop_assert!(!m.is_empty() && m.len() <= d.max_message());
                    }
                    rest = &rest[n..];
                }
                Err(_) => break,
            }
        }
    }
}
