//! DHCP options (RFC 2132): the codes we use, a bounded walk over an options field and a
//! writer that splits long values.
//!
//! [`Options`] walks one field (the options area, or `file` / `sname` when option 52 overloads
//! them) and yields each option's code and value as a slice of that field. It never reads past
//! the field: an option whose length byte or value runs off the end ends the walk with
//! [`Error::OptionOverrun`]. Pad (0) is skipped and End
//! (255) ends the walk. A field that runs out without End ends it with
//! [`Error::MissingEnd`]: RFC 2132 §2 requires End, every
//! client we have seen sends it, and requiring it means a message cut short is always noticed,
//! even when the cut falls between two options. The walk does at most one step per byte, so its
//! cost is bounded by the field's length.
//!
//! [`Writer`] appends options to a buffer; a value longer than 255 bytes is split into several
//! options of the same code, which the receiver concatenates (RFC 3396 §5).

use crate::message::Error;

/// Option codes (RFC 2132 unless noted).
pub mod code {
    /// Pad (§3.1): a single byte, no length.
    pub const PAD: u8 = 0;
    /// Subnet mask (§3.3).
    pub const SUBNET_MASK: u8 = 1;
    /// Routers (§3.5).
    pub const ROUTER: u8 = 3;
    /// Domain name servers (§3.8).
    pub const DNS_SERVERS: u8 = 6;
    /// Host name (§3.14).
    pub const HOSTNAME: u8 = 12;
    /// Domain name (§3.17).
    pub const DOMAIN_NAME: u8 = 15;
    /// Interface MTU (§5.1).
    pub const INTERFACE_MTU: u8 = 26;
    /// Broadcast address (§5.3).
    pub const BROADCAST_ADDRESS: u8 = 28;
    /// Requested IP address (§9.1).
    pub const REQUESTED_IP: u8 = 50;
    /// IP address lease time (§9.2).
    pub const LEASE_TIME: u8 = 51;
    /// Option overload (§9.3).
    pub const OVERLOAD: u8 = 52;
    /// DHCP message type (§9.6).
    pub const MESSAGE_TYPE: u8 = 53;
    /// Server identifier (§9.7).
    pub const SERVER_ID: u8 = 54;
    /// Parameter request list (§9.8).
    pub const PARAMETER_REQUEST_LIST: u8 = 55;
    /// Message (§9.9): a human-readable reason, used in DHCPNAK.
    pub const MESSAGE: u8 = 56;
    /// Maximum DHCP message size (§9.10).
    pub const MAX_MESSAGE_SIZE: u8 = 57;
    /// Renewal (T1) time (§9.11).
    pub const RENEWAL_TIME: u8 = 58;
    /// Rebinding (T2) time (§9.12).
    pub const REBINDING_TIME: u8 = 59;
    /// Client identifier (§9.14).
    pub const CLIENT_ID: u8 = 61;
    /// Domain search list (RFC 3397).
    pub const DOMAIN_SEARCH: u8 = 119;
    /// End (§3.2): a single byte, no length.
    pub const END: u8 = 255;
}

/// The longest value one option can carry; longer values are split (RFC 3396).
pub const MAX_VALUE_LEN: usize = 255;

/// One option as found in a field: its code and its value bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawOption<'a> {
    pub code: u8,
    pub data: &'a [u8],
}

/// A walk over one options field. See the module docs for what it accepts.
#[derive(Debug, Clone)]
pub struct Options<'a> {
    rest: &'a [u8],
    done: bool,
}

impl<'a> Options<'a> {
    pub fn new(field: &'a [u8]) -> Options<'a> {
        Options {
            rest: field,
            done: false,
        }
    }

    fn fail(&mut self, code: u8) -> Option<Result<RawOption<'a>, Error>> {
        self.done = true;
        Some(Err(Error::OptionOverrun { code }))
    }
}

impl<'a> Iterator for Options<'a> {
    type Item = Result<RawOption<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            let Some((&code, rest)) = self.rest.split_first() else {
                self.done = true;
                return Some(Err(Error::MissingEnd));
            };
            self.rest = rest;
            match code {
                code::PAD => continue,
                code::END => {
                    self.done = true;
                    return None;
                }
                _ => {}
            }
            let Some((&len, rest)) = self.rest.split_first() else {
                return self.fail(code);
            };
            let Some((data, rest)) = rest.split_at_checked(usize::from(len)) else {
                return self.fail(code);
            };
            self.rest = rest;
            return Some(Ok(RawOption { code, data }));
        }
        None
    }
}

impl core::iter::FusedIterator for Options<'_> {}

/// The bytes [`Writer::option`] takes for a value of `len` bytes: a code and a length byte per
/// piece of at most 255 bytes (an empty value still takes one piece).
pub const fn encoded_len(len: usize) -> usize {
    let pieces = if len == 0 {
        1
    } else {
        len.div_ceil(MAX_VALUE_LEN)
    };
    len + 2 * pieces
}

/// Appends options to a buffer. Running out of room is remembered, not a panic: every later
/// write is skipped and [`Writer::finish`] reports it.
#[derive(Debug)]
pub struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
    overflow: bool,
}

impl<'a> Writer<'a> {
    pub fn new(buf: &'a mut [u8]) -> Writer<'a> {
        Writer {
            buf,
            pos: 0,
            overflow: false,
        }
    }

    fn bytes(&mut self, data: &[u8]) {
        if self.overflow {
            return;
        }
        let end = self.pos.saturating_add(data.len());
        match self.buf.get_mut(self.pos..end) {
            Some(dst) => {
                dst.copy_from_slice(data);
                self.pos = end;
            }
            None => self.overflow = true,
        }
    }

    /// Writes option `code` with `data`, split into pieces of at most 255 bytes.
    pub fn option(&mut self, code: u8, data: &[u8]) {
        if data.is_empty() {
            self.bytes(&[code, 0]);
            return;
        }
        for piece in data.chunks(MAX_VALUE_LEN) {
            // A chunk is never longer than 255 bytes.
            self.bytes(&[code, piece.len() as u8]);
            self.bytes(piece);
        }
    }

    /// Writes the End option.
    pub fn end(&mut self) {
        self.bytes(&[code::END]);
    }

    /// The number of bytes written, or `None` if the buffer was too small for them.
    pub fn finish(self) -> Option<usize> {
        (!self.overflow).then_some(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn walk(field: &[u8]) -> Result<Vec<(u8, Vec<u8>)>, Error> {
        Options::new(field)
            .map(|o| o.map(|o| (o.code, o.data.to_vec())))
            .collect()
    }

    #[test]
    fn pad_end_and_values() {
        let field = [0, 0, 53, 1, 1, 0, 12, 2, b'v', b'm', 255, 53, 1, 3, 9];
        assert_eq!(walk(&field), Ok(vec![(53, vec![1]), (12, b"vm".to_vec())]));
    }

    #[test]
    fn missing_end_is_refused() {
        assert_eq!(walk(&[53, 1, 1]), Err(Error::MissingEnd));
        assert_eq!(walk(&[]), Err(Error::MissingEnd));
        assert_eq!(walk(&[0, 0, 0]), Err(Error::MissingEnd));
        assert_eq!(walk(&[255]), Ok(vec![]));
    }

    #[test]
    fn zero_length_value_is_walked() {
        // The walk itself accepts a zero length; the message parser decides per option.
        assert_eq!(walk(&[80, 0, 255]), Ok(vec![(80, vec![])]));
    }

    #[test]
    fn overrun_is_refused() {
        assert_eq!(walk(&[53]), Err(Error::OptionOverrun { code: 53 }));
        assert_eq!(walk(&[53, 2, 1]), Err(Error::OptionOverrun { code: 53 }));
        assert_eq!(
            walk(&[53, 1, 1, 61, 255, 1, 2]),
            Err(Error::OptionOverrun { code: 61 })
        );
    }

    #[test]
    fn walk_stops_after_an_error() {
        let mut it = Options::new(&[12, 9, 1]);
        assert!(matches!(it.next(), Some(Err(_))));
        assert_eq!(it.next(), None);
        assert_eq!(it.next(), None);
    }

    #[test]
    fn writer_splits_long_values() {
        let value: Vec<u8> = (0..600u32).map(|i| i as u8).collect();
        let mut buf = vec![0u8; encoded_len(value.len()) + 1];
        let mut w = Writer::new(&mut buf);
        w.option(119, &value);
        w.end();
        assert_eq!(w.finish(), Some(buf.len()));
        let pieces = walk(&buf).unwrap();
        assert_eq!(pieces.len(), 3);
        assert!(pieces.iter().all(|(c, _)| *c == 119));
        let joined: Vec<u8> = pieces.into_iter().flat_map(|(_, d)| d).collect();
        assert_eq!(joined, value);
    }

    #[test]
    fn writer_reports_overflow() {
        let mut buf = [0u8; 4];
        let mut w = Writer::new(&mut buf);
        w.option(12, b"abc");
        w.end();
        assert_eq!(w.finish(), None);
    }

    proptest! {
        #[test]
        fn any_field_walks_without_panic(field in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut steps = 0usize;
            for item in Options::new(&field) {
                steps += 1;
                if let Ok(o) = item {
                    prop_assert!(o.data.len() < field.len());
                }
            }
            prop_assert!(steps <= field.len() + 1);
        }

        #[test]
        fn written_options_walk_back(
            opts in proptest::collection::vec(
                (1u8..255, proptest::collection::vec(any::<u8>(), 0..700)), 0..6)
        ) {
            let len: usize = opts.iter().map(|(_, d)| encoded_len(d.len())).sum::<usize>() + 1;
            let mut buf = vec![0u8; len];
            let mut w = Writer::new(&mut buf);
            for (c, d) in &opts {
                w.option(*c, d);
            }
            w.end();
            prop_assert_eq!(w.finish(), Some(len));
            let mut it = walk(&buf).unwrap().into_iter();
            for (c, d) in &opts {
                // Each value comes back as its pieces, in order.
                let pieces = if d.is_empty() { 1 } else { d.len().div_ceil(MAX_VALUE_LEN) };
                let mut got = Vec::new();
                for _ in 0..pieces {
                    let (gc, gd) = it.next().unwrap();
                    prop_assert_eq!(gc, *c);
                    got.extend(gd);
                }
                prop_assert_eq!(&got, d);
            }
            prop_assert!(it.next().is_none());
        }
    }
}
