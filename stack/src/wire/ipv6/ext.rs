//! IPv6 extension headers (RFC 8200 §4) and the bounded walk over a header chain.
//!
//! [`Chain::walk`] follows the next-header values from the fixed header to the upper layer.
//! It stops after at most [`MAX_EXT_HEADERS`] extension headers spanning at most
//! [`MAX_CHAIN_LEN`] bytes, checks every length against the buffer, refuses a hop-by-hop
//! header anywhere but first (RFC 8200 §4.1), and reads the fragment header: in a fragment
//! other than the first, the bytes after it are fragment data, not headers (§4.5).
//!
//! Walked: hop-by-hop options (0), routing (43), fragment (44), destination options (60).
//! Anything else ends the walk and is reported as the upper layer, including "no next header"
//! (59, §4.7), and AH (51) and ESP (50), which we do not process.
//!
//! Views: [`ExtHeader`] for the headers that start with next header and length (hop-by-hop,
//! routing, destination options), with [`Options`] iterating the options of the first and
//! last of those; [`FragmentHeader`] and [`FragmentRepr`] for the fixed-size fragment header.

use crate::wire::ip::Protocol;

/// The most extension headers a walk accepts. RFC 8200 §4.1 recommends an order in which each
/// header occurs once (destination options twice), so a legitimate chain has at most 6;
/// Linux likewise limits options headers to 8 options.
pub const MAX_EXT_HEADERS: usize = 8;

/// The most bytes of extension headers a walk accepts: room for a segment routing header of 60
/// segments, far beyond what a guest sends, while bounding the bytes a packet makes us read.
pub const MAX_CHAIN_LEN: usize = 1024;

/// Why a chain of extension headers, or one header in it, is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum ChainError {
    #[error("more than 8 IPv6 extension headers")]
    TooManyHeaders,
    #[error("IPv6 extension headers longer than 1024 bytes")]
    ChainTooLong,
    #[error("IPv6 extension header cut short")]
    Truncated,
    /// RFC 8200 §4.1: hop-by-hop options may only follow the fixed header directly.
    #[error("IPv6 hop-by-hop options header not directly after the fixed header")]
    HopByHopNotFirst,
    #[error("more than one IPv6 fragment header")]
    DuplicateFragment,
    /// RFC 8200 §4.5: with M set, the fragment's length must be a multiple of 8 octets
    /// (answered with a Parameter Problem pointing at the payload length).
    #[error("IPv6 fragment with more to follow is not a multiple of 8 bytes long")]
    FragmentMisaligned,
    /// RFC 8200 §4.5: offset plus length would give a reassembled payload over 65535 bytes
    /// (answered with a Parameter Problem pointing at the fragment offset).
    #[error("IPv6 fragment reaches past a 65535-byte payload")]
    FragmentTooLong,
    /// RFC 8200 §4.5 (after RFC 7112): the first fragment must hold the whole header chain
    /// (answered with a Parameter Problem, code 3).
    #[error("first IPv6 fragment does not hold the whole header chain")]
    IncompleteFirstFragment,
    #[error("IPv6 option cut short")]
    OptionTruncated,
}

mod field {
    use core::ops::{Range, RangeFrom};

    pub(super) const NEXT_HEADER: usize = 0;
    pub(super) const LENGTH: usize = 1;
    /// Options, or the routing header's type-specific fields.
    pub(super) const DATA: RangeFrom<usize> = 2..;
    /// Routing header (RFC 8200 §4.4).
    pub(super) const ROUTING_TYPE: usize = 2;
    pub(super) const SEGMENTS_LEFT: usize = 3;
    /// Fragment header (RFC 8200 §4.5): 13-bit offset, 2 reserved bits, M.
    pub(super) const FRAG_OFFSET_M: Range<usize> = 2..4;
    pub(super) const FRAG_IDENT: Range<usize> = 4..8;
}

/// Extension headers come in 8-octet units (RFC 8200 §4: "Hdr Ext Len ... in 8-octet units,
/// not including the first 8 octets").
const UNIT: usize = 8;

/// The length of the fragment header (RFC 8200 §4.5).
pub const FRAGMENT_HEADER_LEN: usize = 8;

/// Routing types (IANA "IPv6 Routing Types").
pub mod routing_type {
    /// Source route, deprecated and not to be processed (RFC 5095).
    pub const SOURCE_ROUTE: u8 = 0;
    /// Mobile IPv6 home address (RFC 6275 §6.4).
    pub const MOBILE_IPV6: u8 = 2;
    /// Segment routing header (RFC 8754).
    pub const SEGMENT_ROUTING: u8 = 4;
}

/// Option types for hop-by-hop and destination options (IANA "Destination Options and
/// Hop-by-Hop Options").
pub mod option {
    /// One byte of padding (RFC 8200 §4.2).
    pub const PAD1: u8 = 0x00;
    /// N bytes of padding (RFC 8200 §4.2).
    pub const PADN: u8 = 0x01;
    /// Router alert (RFC 2711); MLD uses value 0.
    pub const ROUTER_ALERT: u8 = 0x05;
    /// Jumbo payload (RFC 2675).
    pub const JUMBO_PAYLOAD: u8 = 0xc2;
}

// ---------------------------------------------------------------------------------------------
// Headers with next header and length: hop-by-hop, routing, destination options.

/// A view of an extension header that starts with next header and length: hop-by-hop options
/// (RFC 8200 §4.3), routing (§4.4) and destination options (§4.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ExtHeader<T> {
    /// Wraps `buffer` without checking it; accessors may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> ExtHeader<T> {
        ExtHeader { buffer }
    }

    /// Wraps `buffer` after checking it holds the whole header its length field gives.
    pub fn new_checked(buffer: T) -> Result<ExtHeader<T>, ChainError> {
        let header = ExtHeader::new_unchecked(buffer);
        header.check_len()?;
        Ok(header)
    }

    /// Checks the buffer holds the length byte and the whole header (at least 8 bytes).
    pub fn check_len(&self) -> Result<(), ChainError> {
        let len = self.buffer.as_ref().len();
        if len <= field::LENGTH || len < self.header_len() {
            return Err(ChainError::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn next_header(&self) -> Protocol {
        Protocol::from(self.buffer.as_ref()[field::NEXT_HEADER])
    }

    /// The header's length in bytes: 8 to 2048.
    pub fn header_len(&self) -> usize {
        (usize::from(self.buffer.as_ref()[field::LENGTH]) + 1) * UNIT
    }

    /// For a routing header: the routing type (see [`routing_type`]).
    pub fn routing_type(&self) -> u8 {
        self.buffer.as_ref()[field::ROUTING_TYPE]
    }

    /// For a routing header: the number of route segments still to visit. RFC 8200 §4.4: a
    /// node that does not know the routing type ignores the header if this is 0 and otherwise
    /// discards the packet with a Parameter Problem.
    pub fn segments_left(&self) -> u8 {
        self.buffer.as_ref()[field::SEGMENTS_LEFT]
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> ExtHeader<&'a T> {
    /// The bytes after next header and length: the options of a hop-by-hop or destination
    /// options header, the type-specific fields of a routing header.
    pub fn data(&self) -> &'a [u8] {
        let buffer = self.buffer.as_ref();
        buffer
            .get(field::DATA.start..self.header_len())
            .unwrap_or(&[])
    }

    /// The options of a hop-by-hop or destination options header.
    pub fn options(&self) -> Options<'a> {
        Options::new(self.data())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ExtHeader<T> {
    pub fn set_next_header(&mut self, value: Protocol) {
        self.buffer.as_mut()[field::NEXT_HEADER] = value.into();
    }

    /// Sets the length field for a header of `len` bytes, a multiple of 8 from 8 to 2048.
    pub fn set_header_len(&mut self, len: usize) {
        let units = (len / UNIT).clamp(1, 256) - 1;
        self.buffer.as_mut()[field::LENGTH] = units as u8;
    }

    pub fn data_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        self.buffer
            .as_mut()
            .get_mut(field::DATA.start..end)
            .unwrap_or(&mut [])
    }
}

/// An extension header with next header and length, its content uninterpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExtHeaderRepr<'a> {
    pub next_header: Protocol,
    /// Everything after next header and length. [`ExtHeaderRepr::emit`] pads it with zero
    /// bytes (Pad1 options) to a multiple of 8; a header parses back equal when `data.len()`
    /// is 6 more than a multiple of 8. At most 2046 bytes.
    pub data: &'a [u8],
}

impl<'a> ExtHeaderRepr<'a> {
    /// Reads a header [`ExtHeader::check_len`] accepts; the data is borrowed.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        header: &ExtHeader<&'a T>,
    ) -> Result<ExtHeaderRepr<'a>, ChainError> {
        header.check_len()?;
        Ok(ExtHeaderRepr {
            next_header: header.next_header(),
            data: header.data(),
        })
    }

    /// The length of the header this emits: the data and 2 bytes, rounded up to 8.
    pub const fn buffer_len(&self) -> usize {
        (self.data.len() + field::DATA.start).div_ceil(UNIT) * UNIT
    }

    /// Writes the header; `header` must hold at least [`ExtHeaderRepr::buffer_len`] bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, header: &mut ExtHeader<T>) {
        debug_assert!(
            self.buffer_len() <= 256 * UNIT,
            "IPv6 extension header too long"
        );
        header.set_next_header(self.next_header);
        header.set_header_len(self.buffer_len());
        let data = header.data_mut();
        let (head, tail) = data.split_at_mut(self.data.len().min(data.len()));
        head.copy_from_slice(&self.data[..head.len()]);
        tail.fill(0);
    }
}

/// What a node that does not recognise an option must do: the two high bits of its type
/// (RFC 8200 §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OptionAction {
    /// 00: skip the option and go on.
    Skip,
    /// 01: discard the packet.
    Discard,
    /// 10: discard the packet and send a Parameter Problem, code 2, to its source.
    DiscardAndReport,
    /// 11: as `DiscardAndReport`, unless the destination was multicast.
    DiscardAndReportUnlessMulticast,
}

/// One option of a hop-by-hop or destination options header (RFC 8200 §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OptionTlv<'a> {
    /// The option type (see [`option`]).
    pub kind: u8,
    pub data: &'a [u8],
}

impl OptionTlv<'_> {
    /// What to do if the option is not recognised.
    pub const fn action(&self) -> OptionAction {
        match self.kind >> 6 {
            0 => OptionAction::Skip,
            1 => OptionAction::Discard,
            2 => OptionAction::DiscardAndReport,
            _ => OptionAction::DiscardAndReportUnlessMulticast,
        }
    }

    /// Whether the option's data may change on the way (the third-highest bit).
    pub const fn may_change(&self) -> bool {
        self.kind & 0x20 != 0
    }
}

/// The options of a hop-by-hop or destination options header, padding left out. Each step
/// moves forward at least one byte, so the iteration is bounded by the header's length; an
/// option reaching past the end yields [`ChainError::OptionTruncated`] and ends it.
#[derive(Debug, Clone)]
pub struct Options<'a> {
    rest: &'a [u8],
}

impl<'a> Options<'a> {
    /// Iterates the options in `data` (an [`ExtHeader::data`]).
    pub const fn new(data: &'a [u8]) -> Options<'a> {
        Options { rest: data }
    }
}

impl<'a> Iterator for Options<'a> {
    type Item = Result<OptionTlv<'a>, ChainError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (&kind, after) = self.rest.split_first()?;
            if kind == option::PAD1 {
                self.rest = after;
                continue;
            }
            let Some((&len, after)) = after.split_first() else {
                self.rest = &[];
                return Some(Err(ChainError::OptionTruncated));
            };
            let Some((data, after)) = after.split_at_checked(usize::from(len)) else {
                self.rest = &[];
                return Some(Err(ChainError::OptionTruncated));
            };
            self.rest = after;
            if kind != option::PADN {
                return Some(Ok(OptionTlv { kind, data }));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The fragment header.

/// A view of a fragment header (RFC 8200 §4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> FragmentHeader<T> {
    /// Wraps `buffer` without checking it; accessors may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> FragmentHeader<T> {
        FragmentHeader { buffer }
    }

    /// Wraps `buffer` after checking it holds the 8-byte header.
    pub fn new_checked(buffer: T) -> Result<FragmentHeader<T>, ChainError> {
        let header = FragmentHeader::new_unchecked(buffer);
        header.check_len()?;
        Ok(header)
    }

    pub fn check_len(&self) -> Result<(), ChainError> {
        if self.buffer.as_ref().len() < FRAGMENT_HEADER_LEN {
            return Err(ChainError::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn offset_m(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::FRAG_OFFSET_M];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// The header of the fragmentable part; only the first fragment's counts (§4.5).
    pub fn next_header(&self) -> Protocol {
        Protocol::from(self.buffer.as_ref()[field::NEXT_HEADER])
    }

    /// Where this fragment's data goes in the fragmentable part, in bytes (the field counts
    /// 8-byte units): a multiple of 8, at most 65528.
    pub fn frag_offset(&self) -> u16 {
        self.offset_m() & !0x0007
    }

    /// M: more fragments follow.
    pub fn more_frags(&self) -> bool {
        self.offset_m() & 0x0001 != 0
    }

    pub fn ident(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::FRAG_IDENT];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> FragmentHeader<T> {
    pub fn set_next_header(&mut self, value: Protocol) {
        self.buffer.as_mut()[field::NEXT_HEADER] = value.into();
        // The reserved byte: zero on transmission (§4.5).
        self.buffer.as_mut()[field::LENGTH] = 0;
    }

    /// Sets the offset (in bytes; the low three bits are dropped) and M, the reserved bits 0.
    pub fn set_offset_and_more(&mut self, offset: u16, more: bool) {
        let value = (offset & !0x0007) | u16::from(more);
        self.buffer.as_mut()[field::FRAG_OFFSET_M].copy_from_slice(&value.to_be_bytes());
    }

    pub fn set_ident(&mut self, value: u32) {
        self.buffer.as_mut()[field::FRAG_IDENT].copy_from_slice(&value.to_be_bytes());
    }
}

/// The meaningful fields of a fragment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FragmentRepr {
    pub next_header: Protocol,
    /// The fragment offset in bytes: a multiple of 8, at most 65528.
    pub offset: u16,
    pub more_frags: bool,
    pub ident: u32,
}

impl FragmentRepr {
    /// Reads a fragment header; the reserved fields are ignored (§4.5).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        header: &FragmentHeader<&T>,
    ) -> Result<FragmentRepr, ChainError> {
        header.check_len()?;
        Ok(FragmentRepr {
            next_header: header.next_header(),
            offset: header.frag_offset(),
            more_frags: header.more_frags(),
            ident: header.ident(),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        FRAGMENT_HEADER_LEN
    }

    /// Writes the header; `header` must hold at least 8 bytes and `offset` be a multiple of 8.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, header: &mut FragmentHeader<T>) {
        header.set_next_header(self.next_header);
        header.set_offset_and_more(self.offset, self.more_frags);
        header.set_ident(self.ident);
    }

    /// An atomic fragment (offset 0, no more to follow; RFC 6946) is a whole packet and is
    /// processed on its own, never reassembled.
    pub const fn is_atomic(&self) -> bool {
        self.offset == 0 && !self.more_frags
    }
}

// ---------------------------------------------------------------------------------------------
// The walk.

/// Where one extension header lies in the walked bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExtSpan {
    /// The header's type: the next-header value that announced it.
    pub kind: Protocol,
    pub offset: usize,
    pub len: usize,
}

impl ExtSpan {
    const EMPTY: ExtSpan = ExtSpan {
        kind: Protocol::Ipv6NoNxt,
        offset: 0,
        len: 0,
    };

    /// The header's bytes within the walked payload.
    pub const fn range(&self) -> core::ops::Range<usize> {
        self.offset..self.offset + self.len
    }
}

/// A fragment header found by a walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fragment {
    /// Where the fragment header starts: the length of the unfragmentable part's extension
    /// headers (RFC 8200 §4.5).
    pub header_offset: usize,
    pub repr: FragmentRepr,
}

impl Fragment {
    /// Where the fragment's data starts in the walked payload.
    pub const fn data_offset(&self) -> usize {
        self.header_offset + FRAGMENT_HEADER_LEN
    }
}

/// The result of walking a header chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Chain {
    /// The upper-layer protocol, [`Protocol::Ipv6NoNxt`], or, in a fragment that is not the
    /// first, the fragment header's next header (the rest is fragment data).
    pub protocol: Protocol,
    /// Where that protocol's bytes (or the fragment data) start in the walked payload.
    pub offset: usize,
    /// The fragment header, if one was seen.
    pub fragment: Option<Fragment>,
    spans: [ExtSpan; MAX_EXT_HEADERS],
    count: usize,
}

impl Chain {
    /// Walks the extension headers of an IPv6 payload whose fixed header gave `next_header`.
    ///
    /// Errors: more than [`MAX_EXT_HEADERS`] headers or [`MAX_CHAIN_LEN`] bytes of them; a
    /// header reaching past `payload`; hop-by-hop options other than first (RFC 8200 §4.1);
    /// two fragment headers; a fragment whose lengths break RFC 8200 §4.5; a first fragment
    /// that ends inside the chain.
    pub fn walk(next_header: Protocol, payload: &[u8]) -> Result<Chain, ChainError> {
        walk(next_header, payload, true)
    }

    /// Walks a reassembled fragmentable part: the data after the fragment header, starting
    /// with the first fragment's next header. Hop-by-hop options are refused even first, as
    /// they only ever follow the fixed header.
    pub fn walk_reassembled(next_header: Protocol, data: &[u8]) -> Result<Chain, ChainError> {
        walk(next_header, data, false)
    }

    /// The extension headers walked, in order.
    pub fn headers(&self) -> &[ExtSpan] {
        self.spans.get(..self.count).unwrap_or(&[])
    }

    /// Whether this is a fragment to reassemble (a fragment header that is not atomic).
    pub fn is_fragment(&self) -> bool {
        self.fragment.is_some_and(|f| !f.repr.is_atomic())
    }
}

fn walk(mut next: Protocol, data: &[u8], hop_by_hop_allowed: bool) -> Result<Chain, ChainError> {
    let mut chain = Chain {
        protocol: next,
        offset: 0,
        fragment: None,
        spans: [ExtSpan::EMPTY; MAX_EXT_HEADERS],
        count: 0,
    };
    let mut offset = 0usize;
    loop {
        match next {
            Protocol::HopByHop => {
                if !hop_by_hop_allowed || chain.count != 0 {
                    return Err(ChainError::HopByHopNotFirst);
                }
            }
            Protocol::Ipv6Route | Protocol::Ipv6Frag | Protocol::Ipv6Opts => {}
            // The upper layer, "no next header", or a header we do not walk.
            _ => break,
        }
        let truncated = match chain.fragment {
            Some(f) if f.repr.more_frags => ChainError::IncompleteFirstFragment,
            _ => ChainError::Truncated,
        };
        let Some(slot) = chain.spans.get_mut(chain.count) else {
            return Err(ChainError::TooManyHeaders);
        };
        let rest = data.get(offset..).unwrap_or(&[]);
        let len = if next == Protocol::Ipv6Frag {
            FRAGMENT_HEADER_LEN
        } else {
            let units = rest.get(field::LENGTH).ok_or(truncated)?;
            (usize::from(*units) + 1) * UNIT
        };
        let end = offset.saturating_add(len);
        if end > MAX_CHAIN_LEN {
            return Err(ChainError::ChainTooLong);
        }
        let header = rest.get(..len).ok_or(truncated)?;
        *slot = ExtSpan {
            kind: next,
            offset,
            len,
        };
        chain.count += 1;
        let (kind, start) = (next, offset);
        next = Protocol::from(*header.first().ok_or(truncated)?);
        offset = end;
        if kind == Protocol::Ipv6Frag {
            if chain.fragment.is_some() {
                return Err(ChainError::DuplicateFragment);
            }
            let repr = FragmentRepr::parse(&FragmentHeader::new_unchecked(header))?;
            check_fragment(&repr, start, data.len().saturating_sub(end))?;
            chain.fragment = Some(Fragment {
                header_offset: start,
                repr,
            });
            if repr.offset != 0 {
                // RFC 8200 §4.5: what follows is fragment data, not headers.
                break;
            }
        }
    }
    chain.protocol = next;
    chain.offset = offset;
    Ok(chain)
}

/// RFC 8200 §4.5's length checks on a fragment whose header starts at `header_offset` (the
/// unfragmentable part's length) with `data_len` bytes of fragment data after it.
fn check_fragment(
    repr: &FragmentRepr,
    header_offset: usize,
    data_len: usize,
) -> Result<(), ChainError> {
    if repr.more_frags && !data_len.is_multiple_of(UNIT) {
        return Err(ChainError::FragmentMisaligned);
    }
    let reassembled = header_offset + usize::from(repr.offset) + data_len;
    if reassembled > super::MAX_PAYLOAD_LEN {
        return Err(ChainError::FragmentTooLong);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
