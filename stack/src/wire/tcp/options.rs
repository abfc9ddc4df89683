//! TCP options (RFC 9293 §3.1, §3.2): the kind-length-value walk over the options area,
//! and the options host-switch understands: end of list, no-operation, maximum segment size
//! (RFC 9293 §3.7.1), window scale and timestamps (RFC 7323 §2, §3), SACK-permitted and SACK
//! (RFC 2018). Others are skipped by their length.
//!
//! Everything is fixed-size; nothing allocates. A walk never reads past the slice it was
//! given, which [`super::Packet`] bounds by the data offset (at most 40 bytes of options).
//! Malformed lengths are errors (RFC 9293 §3.1, MUST-7: "be prepared to handle an illegal
//! option length (e.g., zero)"), each with its own [`Error`]. As in Linux's
//! `tcp_parse_options`, a known option whose length is wrong for its kind but sound for the
//! walk is skipped by that length and the walk goes on; a length that loses the walk's place
//! (below 2, or past the area) ends it.

use super::{Error, SeqNumber};

/// Option kinds (IANA "TCP Option Kind Numbers").
mod kind {
    pub(super) const END: u8 = 0;
    pub(super) const NOP: u8 = 1;
    pub(super) const MSS: u8 = 2;
    pub(super) const WINDOW_SCALE: u8 = 3;
    pub(super) const SACK_PERMITTED: u8 = 4;
    pub(super) const SACK: u8 = 5;
    pub(super) const TIMESTAMP: u8 = 8;
}

/// Total lengths (kind and length bytes included) of the fixed-size options.
mod len {
    pub(super) const MSS: usize = 4;
    pub(super) const WINDOW_SCALE: usize = 3;
    pub(super) const SACK_PERMITTED: usize = 2;
    pub(super) const TIMESTAMP: usize = 10;
    /// A SACK option is 2 bytes plus 8 per block (RFC 2018 §3).
    pub(super) const SACK_BASE: usize = 2;
    pub(super) const SACK_BLOCK: usize = 8;
}

/// The most SACK blocks one option can hold: 4 fill 34 of the 40 option bytes (RFC 2018 §3).
pub const MAX_SACK_BLOCKS: usize = 4;

/// The largest shift a window scale option may ask for (RFC 7323 §2.3: larger values are
/// used as 14). Parsing keeps the raw value; the engine clamps.
pub const MAX_WINDOW_SCALE: u8 = 14;

/// The TSval and TSecr of a timestamps option (RFC 7323 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TimestampOption {
    /// The sender's clock (TSval).
    pub tsval: u32,
    /// The echoed TSval of the peer (TSecr); meaningful only with ACK set (RFC 7323 §3.2).
    pub tsecr: u32,
}

/// The SACK blocks of one option, most recent first (RFC 2018 §4): each the left edge and
/// the right edge (one past the last byte) of a block of received data. Blocks fill the
/// array from the front; the first `None` ends them.
pub type SackBlocks = [Option<(SeqNumber, SeqNumber)>; MAX_SACK_BLOCKS];

/// One TCP option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TcpOption<'a> {
    /// End of option list: the remaining bytes are padding.
    EndOfList,
    NoOperation,
    MaxSegmentSize(u16),
    /// The shift count, as sent (see [`MAX_WINDOW_SCALE`]).
    WindowScale(u8),
    SackPermitted,
    SackRange(SackBlocks),
    Timestamp(TimestampOption),
    /// Any other option, with its data (the bytes after kind and length).
    Unknown {
        kind: u8,
        data: &'a [u8],
    },
}

fn u16_at(data: &[u8], at: usize) -> u16 {
    match data.get(at..at.wrapping_add(2)) {
        Some(&[a, b]) => u16::from_be_bytes([a, b]),
        _ => 0,
    }
}

fn u32_at(data: &[u8], at: usize) -> u32 {
    match data.get(at..at.wrapping_add(4)) {
        Some(&[a, b, c, d]) => u32::from_be_bytes([a, b, c, d]),
        _ => 0,
    }
}

impl<'a> TcpOption<'a> {
    /// Reads the option at the start of `bytes` (which must not be empty) and returns it
    /// with the bytes after it.
    pub fn parse(bytes: &'a [u8]) -> Result<(TcpOption<'a>, &'a [u8]), Error> {
        let (&kind, rest) = bytes.split_first().ok_or(Error::OptionOverflow)?;
        match kind {
            // The two one-byte options (RFC 9293 §3.2).
            kind::END => return Ok((TcpOption::EndOfList, rest)),
            kind::NOP => return Ok((TcpOption::NoOperation, rest)),
            _ => {}
        }
        let length = usize::from(*rest.first().ok_or(Error::OptionOverflow)?);
        // The length counts the kind and length bytes themselves, so anything below 2
        // would not move the walk forward.
        if length < 2 {
            return Err(Error::OptionTooShort);
        }
        if length > bytes.len() {
            return Err(Error::OptionOverflow);
        }
        let (whole, rest) = bytes.split_at(length);
        let data = whole.get(2..).unwrap_or(&[]);
        let option = match kind {
            kind::MSS if length == len::MSS => TcpOption::MaxSegmentSize(u16_at(data, 0)),
            kind::WINDOW_SCALE if length == len::WINDOW_SCALE => {
                TcpOption::WindowScale(data.first().copied().unwrap_or(0))
            }
            kind::SACK_PERMITTED if length == len::SACK_PERMITTED => TcpOption::SackPermitted,
            kind::TIMESTAMP if length == len::TIMESTAMP => TcpOption::Timestamp(TimestampOption {
                tsval: u32_at(data, 0),
                tsecr: u32_at(data, 4),
            }),
            kind::SACK
                if data.len() % len::SACK_BLOCK == 0
                    && (1..=MAX_SACK_BLOCKS).contains(&(data.len() / len::SACK_BLOCK)) =>
            {
                let mut blocks: SackBlocks = [None; MAX_SACK_BLOCKS];
                for (slot, block) in blocks.iter_mut().zip(data.chunks_exact(len::SACK_BLOCK)) {
                    let left = SeqNumber(u32_at(block, 0));
                    let right = SeqNumber(u32_at(block, 4));
                    *slot = Some((left, right));
                }
                TcpOption::SackRange(blocks)
            }
            kind::MSS
            | kind::WINDOW_SCALE
            | kind::SACK_PERMITTED
            | kind::TIMESTAMP
            | kind::SACK => {
                return Err(Error::BadOptionLength);
            }
            kind => TcpOption::Unknown { kind, data },
        };
        Ok((option, rest))
    }

    /// The number of bytes [`TcpOption::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        match self {
            TcpOption::EndOfList | TcpOption::NoOperation => 1,
            TcpOption::MaxSegmentSize(_) => len::MSS,
            TcpOption::WindowScale(_) => len::WINDOW_SCALE,
            TcpOption::SackPermitted => len::SACK_PERMITTED,
            TcpOption::SackRange(blocks) => {
                let count = blocks.iter().take_while(|b| b.is_some()).count();
                len::SACK_BASE + count * len::SACK_BLOCK
            }
            TcpOption::Timestamp(_) => len::TIMESTAMP,
            TcpOption::Unknown { data, .. } => 2usize.saturating_add(data.len()),
        }
    }

    /// Writes the option at the start of `buffer` and returns the rest of it. `buffer` must
    /// hold [`TcpOption::buffer_len`] bytes; an `Unknown` option's data must be at most 253
    /// bytes, and a SACK option's blocks stop at the first `None`.
    pub fn emit<'b>(&self, buffer: &'b mut [u8]) -> &'b mut [u8] {
        let (out, rest) = buffer.split_at_mut(self.buffer_len());
        match self {
            TcpOption::EndOfList => out[0] = kind::END,
            TcpOption::NoOperation => out[0] = kind::NOP,
            TcpOption::MaxSegmentSize(mss) => {
                kind_and_length(out, kind::MSS).copy_from_slice(&mss.to_be_bytes());
            }
            TcpOption::WindowScale(shift) => {
                kind_and_length(out, kind::WINDOW_SCALE).copy_from_slice(&[*shift]);
            }
            TcpOption::SackPermitted => {
                kind_and_length(out, kind::SACK_PERMITTED);
            }
            TcpOption::SackRange(blocks) => {
                let data = kind_and_length(out, kind::SACK);
                let blocks = blocks.iter().map_while(|block| *block);
                for (chunk, (left, right)) in data.chunks_exact_mut(len::SACK_BLOCK).zip(blocks) {
                    let (l, r) = chunk.split_at_mut(4);
                    l.copy_from_slice(&left.0.to_be_bytes());
                    r.copy_from_slice(&right.0.to_be_bytes());
                }
            }
            TcpOption::Timestamp(ts) => {
                let (val, ecr) = kind_and_length(out, kind::TIMESTAMP).split_at_mut(4);
                val.copy_from_slice(&ts.tsval.to_be_bytes());
                ecr.copy_from_slice(&ts.tsecr.to_be_bytes());
            }
            TcpOption::Unknown { kind, data } => {
                kind_and_length(out, *kind).copy_from_slice(data);
            }
        }
        rest
    }
}

/// Writes the kind and length bytes of a multi-byte option filling `out`; returns its data.
fn kind_and_length(out: &mut [u8], kind: u8) -> &mut [u8] {
    let length = out.len() as u8;
    let (head, data) = out.split_at_mut(2);
    head.copy_from_slice(&[kind, length]);
    data
}

/// The options of an options area, in order, up to and including an end-of-list option.
///
/// Yields each option or error. After [`Error::BadOptionLength`] (a known kind with a length
/// wrong for it) the walk goes on past that option; after any other error it stops: a walk
/// that lost its place cannot find the next option again.
#[derive(Debug, Clone)]
pub struct OptionIter<'a> {
    rest: &'a [u8],
}

impl<'a> OptionIter<'a> {
    /// A walk over `area`, the bytes between the fixed header and the data offset.
    pub const fn new(area: &'a [u8]) -> OptionIter<'a> {
        OptionIter { rest: area }
    }
}

impl<'a> Iterator for OptionIter<'a> {
    type Item = Result<TcpOption<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        match TcpOption::parse(self.rest) {
            Ok((option, rest)) => {
                // RFC 9293 §3.2: after end of list come only padding bytes.
                self.rest = if option == TcpOption::EndOfList {
                    &[]
                } else {
                    rest
                };
                Some(Ok(option))
            }
            Err(Error::BadOptionLength) => {
                // `parse` checked the length byte: at least 2 and within the area.
                let length = usize::from(self.rest.get(1).copied().unwrap_or(0));
                self.rest = self.rest.get(length.max(2)..).unwrap_or(&[]);
                Some(Err(Error::BadOptionLength))
            }
            Err(error) => {
                self.rest = &[];
                Some(Err(error))
            }
        }
    }
}

impl core::iter::FusedIterator for OptionIter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn walk(area: &[u8]) -> Vec<Result<TcpOption<'_>, Error>> {
        OptionIter::new(area).collect()
    }

    #[test]
    fn linux_syn_options() {
        // The option area of the kernel's SYN in tcp4_connection.pcap.
        let area = [
            0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0xdb, 0x32, 0x1e, 0x9e, 0x00, 0x00,
            0x00, 0x00, 0x01, 0x03, 0x03, 0x0a,
        ];
        let ts = TimestampOption {
            tsval: 3677494942,
            tsecr: 0,
        };
        assert_eq!(
            walk(&area),
            [
                Ok(TcpOption::MaxSegmentSize(1460)),
                Ok(TcpOption::SackPermitted),
                Ok(TcpOption::Timestamp(ts)),
                Ok(TcpOption::NoOperation),
                Ok(TcpOption::WindowScale(10)),
            ]
        );
    }

    #[test]
    fn end_of_list_ends_the_walk() {
        // Whatever follows end of list is padding, even bytes that would be an error.
        assert_eq!(
            walk(&[0x01, 0x00, 0x02, 0x00, 0xff]),
            [Ok(TcpOption::NoOperation), Ok(TcpOption::EndOfList)]
        );
    }

    #[test]
    fn unknown_options_are_skipped_by_length() {
        // TCP Fast Open cookie (34) and an experimental option (254) with no data.
        let area = [34, 6, 1, 2, 3, 4, 254, 2, 1, 3, 3, 7];
        assert_eq!(
            walk(&area),
            [
                Ok(TcpOption::Unknown {
                    kind: 34,
                    data: &[1, 2, 3, 4]
                }),
                Ok(TcpOption::Unknown {
                    kind: 254,
                    data: &[]
                }),
                Ok(TcpOption::NoOperation),
                Ok(TcpOption::WindowScale(7)),
            ]
        );
    }

    #[test]
    fn length_below_two_is_too_short() {
        for length in [0, 1] {
            for kind in [kind::MSS, kind::SACK, 99] {
                assert_eq!(walk(&[kind, length, 0, 0]), [Err(Error::OptionTooShort)]);
            }
        }
    }

    #[test]
    fn length_past_the_area_overflows() {
        assert_eq!(walk(&[kind::MSS, 4, 0x05]), [Err(Error::OptionOverflow)]);
        assert_eq!(
            walk(&[1, 99, 41, 0]),
            [Ok(TcpOption::NoOperation), Err(Error::OptionOverflow)]
        );
        // A kind byte with no length byte after it.
        assert_eq!(
            walk(&[1, kind::TIMESTAMP]),
            [Ok(TcpOption::NoOperation), Err(Error::OptionOverflow)]
        );
        assert_eq!(TcpOption::parse(&[]), Err(Error::OptionOverflow));
    }

    #[test]
    fn known_kind_with_wrong_length() {
        for area in [
            &[kind::MSS, 3, 0][..],
            &[kind::MSS, 5, 0, 0, 0],
            &[kind::WINDOW_SCALE, 4, 0, 0],
            &[kind::SACK_PERMITTED, 3, 0],
            &[kind::TIMESTAMP, 6, 0, 0, 0, 0],
            // SACK: no block, or not a whole number of blocks (RFC 2018 §3: 2 + 8n).
            &[kind::SACK, 2],
            &[kind::SACK, 9, 0, 0, 0, 0, 0, 0, 0],
        ] {
            assert_eq!(walk(area), [Err(Error::BadOptionLength)], "{area:?}");
        }
        // The walk goes on past such an option, by its length.
        assert_eq!(
            walk(&[kind::MSS, 3, 0, 1, kind::WINDOW_SCALE, 3, 7]),
            [
                Err(Error::BadOptionLength),
                Ok(TcpOption::NoOperation),
                Ok(TcpOption::WindowScale(7)),
            ]
        );
        // Five blocks fit no options area, but a caller may hand parse a longer slice.
        let mut five = vec![kind::SACK, 42];
        five.resize(42, 0);
        assert_eq!(TcpOption::parse(&five), Err(Error::BadOptionLength));
    }

    #[test]
    fn four_sack_blocks() {
        let mut area = vec![kind::SACK, 34];
        for n in 1..=8u32 {
            area.extend_from_slice(&(n * 100).to_be_bytes());
        }
        let block = |n: u32| Some((SeqNumber(n * 200 - 100), SeqNumber(n * 200)));
        let expected = TcpOption::SackRange([block(1), block(2), block(3), block(4)]);
        assert_eq!(walk(&area), [Ok(expected)]);
        let mut out = [0u8; 34];
        assert!(expected.emit(&mut out).is_empty());
        assert_eq!(out[..], area[..]);
    }

    fn arb_option() -> impl Strategy<Value = TcpOption<'static>> {
        let seq = any::<u32>().prop_map(SeqNumber);
        let blocks =
            proptest::collection::vec((seq.clone(), seq), 1..=MAX_SACK_BLOCKS).prop_map(|v| {
                let mut blocks: SackBlocks = [None; MAX_SACK_BLOCKS];
                for (slot, block) in blocks.iter_mut().zip(v) {
                    *slot = Some(block);
                }
                blocks
            });
        const DATA: &[u8] = &[0x5a; 38];
        prop_oneof![
            Just(TcpOption::NoOperation),
            any::<u16>().prop_map(TcpOption::MaxSegmentSize),
            any::<u8>().prop_map(TcpOption::WindowScale),
            Just(TcpOption::SackPermitted),
            blocks.prop_map(TcpOption::SackRange),
            (any::<u32>(), any::<u32>())
                .prop_map(|(tsval, tsecr)| TcpOption::Timestamp(TimestampOption { tsval, tsecr })),
            (9u8.., 0usize..=38)
                .prop_filter("not a known kind", |(k, _)| *k != kind::SACK)
                .prop_map(|(kind, n)| TcpOption::Unknown {
                    kind,
                    data: &DATA[..n]
                }),
        ]
    }

    proptest! {
        #[test]
        fn emit_parse_round_trip(option in arb_option()) {
            let mut buffer = vec![0u8; option.buffer_len() + 3];
            let rest = option.emit(&mut buffer).len();
            prop_assert_eq!(rest, 3);
            let (parsed, rest) = TcpOption::parse(&buffer).unwrap();
            prop_assert_eq!(parsed, option);
            prop_assert_eq!(rest.len(), 3);
        }

        #[test]
        fn any_area_walk_terminates(area in proptest::collection::vec(any::<u8>(), 0..=40)) {
            // Every option is at least one byte, so the walk yields at most one item a byte.
            prop_assert!(OptionIter::new(&area).count() <= area.len());
        }
    }
}
