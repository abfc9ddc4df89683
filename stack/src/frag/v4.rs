//! IPv4 fragments (RFC 791 §3.2): reading one, rebuilding the datagram, quoting it.

use super::datagram::{Datagram, First, Piece};
use super::{FragDropReason, Key};
use crate::wire::ipv4::{HEADER_LEN, Packet};

/// The fragment's place in its datagram. Refuses what is not an IPv4 packet with a good header
/// checksum (RFC 1122 §3.2.1.2), and a whole datagram.
pub(super) fn piece(bytes: &[u8]) -> Result<Piece<'_>, FragDropReason> {
    let packet = Packet::new_checked(bytes).map_err(|_| FragDropReason::Malformed)?;
    if !packet.verify_checksum() {
        return Err(FragDropReason::Malformed);
    }
    if !packet.is_fragment() {
        return Err(FragDropReason::NotFragment);
    }
    let header_len = usize::from(packet.header_len());
    let offset = usize::from(packet.frag_offset());
    let first = match (offset, bytes.get(..header_len)) {
        (0, Some(header)) => Some(First {
            header,
            next_header_at: 0,
            next_header: 0,
        }),
        (0, None) => return Err(FragDropReason::Malformed),
        _ => None,
    };
    Ok(Piece {
        key: Key::V4 {
            src: packet.src_addr(),
            dst: packet.dst_addr(),
            protocol: u8::from(packet.next_header()),
            ident: packet.ident(),
        },
        offset,
        data: packet.payload(),
        more: packet.more_frags(),
        // Later fragments may leave options out (RFC 791 §3.1, "copied flag"): until the first
        // comes, the datagram's header is at least 20 bytes.
        header_extra: if offset == 0 { header_len } else { HEADER_LEN },
        first,
    })
}

/// The datagram as one packet: the first fragment's header, options included, with MF and
/// the offset cleared (DF kept), the total length set and the checksum filled in. The
/// reassembler has checked the length fits.
pub(super) fn rebuild(datagram: &Datagram) -> Vec<u8> {
    let mut out = datagram.joined();
    if out.len() >= HEADER_LEN {
        let len = u16::try_from(out.len()).unwrap_or(u16::MAX);
        let mut packet = Packet::new_unchecked(&mut out[..]);
        let dont_frag = packet.dont_frag();
        packet.set_total_len(len);
        packet.set_fragment(dont_frag, false, 0);
        packet.fill_checksum();
    }
    out
}

/// RFC 792, Time Exceeded: "the internet header plus the first 64 bits of the original
/// datagram's data" — the first fragment's header as it came, and 8 bytes.
pub(super) fn quote(datagram: &Datagram) -> Vec<u8> {
    let data_len = datagram.first_len.min(8);
    let data = datagram.data.get(..data_len).unwrap_or_default();
    let mut out = Vec::with_capacity(datagram.header.len().saturating_add(data_len));
    out.extend_from_slice(&datagram.header);
    out.extend_from_slice(data);
    out
}
