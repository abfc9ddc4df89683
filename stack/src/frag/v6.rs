//! IPv6 fragments (RFC 8200 §4.5): reading one, rebuilding the packet, quoting it.

use super::datagram::{Datagram, First, Piece};
use super::{FragDropReason, Key};
use crate::wire::ip::Protocol;
use crate::wire::ipv6::{Chain, ChainError, FRAGMENT_HEADER_LEN, HEADER_LEN, MIN_MTU, Packet};

/// Where the payload length lies in the fixed header (RFC 8200 §3).
const PAYLOAD_LEN_AT: usize = 4;
/// Where the fixed header's next header lies.
const NEXT_HEADER_AT: usize = 6;
/// RFC 4443 §2.4(c): an ICMPv6 error quotes as much of the packet as fits the minimum MTU
/// with its own IPv6 (40) and ICMPv6 (8) headers.
const MAX_QUOTE: usize = MIN_MTU - HEADER_LEN - 8;

/// The fragment's place in its packet. The header chain is walked with the wire module's
/// bounds; its length checks become [`FragDropReason::Misaligned`] and
/// [`FragDropReason::TooBig`], other chain errors [`FragDropReason::Malformed`].
pub(super) fn piece(bytes: &[u8]) -> Result<Piece<'_>, FragDropReason> {
    let packet = Packet::new_checked(bytes).map_err(|_| FragDropReason::Malformed)?;
    let payload = packet.payload();
    let chain = Chain::walk(packet.next_header(), payload).map_err(|e| match e {
        ChainError::FragmentMisaligned => FragDropReason::Misaligned,
        ChainError::FragmentTooLong => FragDropReason::TooBig,
        _ => FragDropReason::Malformed,
    })?;
    let Some(fragment) = chain.fragment else {
        return Err(FragDropReason::NotFragment);
    };
    // RFC 6946: an atomic fragment is a whole packet.
    if fragment.repr.is_atomic() {
        return Err(FragDropReason::NotFragment);
    }
    let data = payload
        .get(fragment.data_offset()..)
        .ok_or(FragDropReason::Malformed)?;
    let offset = usize::from(fragment.repr.offset);
    let first = if offset == 0 {
        // The header naming the fragment header: the one before it, or the fixed header.
        let headers = chain.headers();
        let position = headers
            .iter()
            .position(|h| h.kind == Protocol::Ipv6Frag)
            .ok_or(FragDropReason::Malformed)?;
        let next_header_at = match position.checked_sub(1).and_then(|i| headers.get(i)) {
            Some(before) => HEADER_LEN.saturating_add(before.offset),
            None => NEXT_HEADER_AT,
        };
        let header = bytes
            .get(..HEADER_LEN.saturating_add(fragment.header_offset))
            .ok_or(FragDropReason::Malformed)?;
        Some(First {
            header,
            next_header_at,
            next_header: u8::from(fragment.repr.next_header),
        })
    } else {
        None
    };
    Ok(Piece {
        key: Key::V6 {
            src: packet.src_addr(),
            dst: packet.dst_addr(),
            ident: fragment.repr.ident,
        },
        offset,
        data,
        more: fragment.repr.more_frags,
        header_extra: fragment.header_offset,
        first,
    })
}

/// The packet without its fragment header (RFC 8200 §4.5): the first fragment's
/// unfragmentable part, the header before the fragment header now naming what the fragment
/// header named, the payload length recomputed, then the data.
pub(super) fn rebuild(datagram: &Datagram) -> Vec<u8> {
    let mut out = datagram.joined();
    let payload_len = out.len().saturating_sub(HEADER_LEN);
    let payload_len = u16::try_from(payload_len).unwrap_or(u16::MAX);
    if let Some(field) = out.get_mut(PAYLOAD_LEN_AT..PAYLOAD_LEN_AT + 2) {
        field.copy_from_slice(&payload_len.to_be_bytes());
    }
    if let Some(byte) = out.get_mut(datagram.next_header_at) {
        *byte = datagram.next_header;
    }
    out
}

/// The first fragment as it came, fragment header rebuilt (offset 0, M set), cut to what an
/// ICMPv6 error may carry.
pub(super) fn quote(datagram: &Datagram, ident: u32) -> Vec<u8> {
    let data = datagram.data.get(..datagram.first_len).unwrap_or_default();
    let mut out = Vec::with_capacity(MAX_QUOTE);
    out.extend_from_slice(&datagram.header);
    out.extend_from_slice(&[datagram.next_header, 0, 0, 1]);
    out.extend_from_slice(&ident.to_be_bytes());
    debug_assert_eq!(out.len(), datagram.header.len() + FRAGMENT_HEADER_LEN);
    out.extend_from_slice(data);
    out.truncate(MAX_QUOTE);
    out
}
