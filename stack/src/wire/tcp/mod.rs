//! TCP segments (RFC 9293 §3.1) with the options of RFC 7323 and RFC 2018.
//!
//! [`Packet`] is a view over a segment's bytes, the whole IP payload: TCP has no length
//! field, so the buffer's end is the segment's end and the caller must slice it to the IP
//! payload length. Once [`Packet::new_checked`] has accepted a buffer (data offset at least 5
//! words and within the buffer), no accessor can panic. [`Repr`] holds the meaningful fields,
//! options included, in a fixed-size form; it never holds the payload, only its length.
//!
//! [`Repr::parse`] verifies the checksum over the pseudo-header (RFC 9293 §3.1) for the given
//! [`Addresses`] (unless the link vouched for it: [`Repr::parse_with`]) and refuses SYN+RST; [`Repr::emit`] writes the options in the layout Linux
//! uses, which is always a multiple of 4 bytes and needs no padding. Sequence numbers are
//! [`SeqNumber`]s, whose arithmetic is modular (RFC 9293 §3.4) and cannot panic.
//!
//! What a Repr leaves out: the ECE and CWR bits (RFC 3168; host-switch never negotiates ECN,
//! so they are ignored on input and never sent), the reserved bits, the acknowledgment field
//! when ACK is clear and the urgent pointer when URG is clear.

mod options;
mod seq;
#[cfg(test)]
mod tests;

pub use options::{
    MAX_SACK_BLOCKS, MAX_WINDOW_SCALE, OptionIter, SackBlocks, TcpOption, TimestampOption,
};
pub use seq::SeqNumber;

use super::checksum::{ChecksumCapabilities, Sum};
use super::ip::{Addresses, Protocol};

/// Why a buffer is not a TCP segment we accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Error {
    #[error("segment shorter than its TCP header")]
    Truncated,
    #[error("TCP data offset below 5 words")]
    BadDataOffset,
    #[error("TCP checksum mismatch")]
    BadChecksum,
    #[error("TCP segment with both SYN and RST")]
    SynWithRst,
    #[error("TCP option length below 2")]
    OptionTooShort,
    #[error("TCP option runs past the end of the options area")]
    OptionOverflow,
    #[error("TCP option of the wrong length for its kind")]
    BadOptionLength,
}

mod field {
    use core::ops::Range;

    pub(super) const SRC_PORT: Range<usize> = 0..2;
    pub(super) const DST_PORT: Range<usize> = 2..4;
    pub(super) const SEQ_NUMBER: Range<usize> = 4..8;
    pub(super) const ACK_NUMBER: Range<usize> = 8..12;
    /// Data offset (4 bits), reserved (3 bits), then the 9 flag bits.
    pub(super) const FLAGS: Range<usize> = 12..14;
    pub(super) const WINDOW: Range<usize> = 14..16;
    pub(super) const CHECKSUM: Range<usize> = 16..18;
    pub(super) const URGENT: Range<usize> = 18..20;
    pub(super) const OPTIONS_START: usize = 20;
}

/// Bits of the 16-bit word at [`field::FLAGS`].
mod flag {
    pub(super) const FIN: u16 = 0x001;
    pub(super) const SYN: u16 = 0x002;
    pub(super) const RST: u16 = 0x004;
    pub(super) const PSH: u16 = 0x008;
    pub(super) const ACK: u16 = 0x010;
    pub(super) const URG: u16 = 0x020;
    pub(super) const ECE: u16 = 0x040;
    pub(super) const CWR: u16 = 0x080;
    pub(super) const DATA_OFFSET_SHIFT: u32 = 12;
}

/// Length of the TCP header without options.
pub const HEADER_LEN: usize = field::OPTIONS_START;

/// The longest header: the 4-bit data offset counts at most 15 words (RFC 9293 §3.1).
pub const MAX_HEADER_LEN: usize = 15 * 4;

/// The most option bytes a header can carry.
pub const MAX_OPTIONS_LEN: usize = MAX_HEADER_LEN - HEADER_LEN;

/// A read/write view of a TCP segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` without checking it; accessors may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps `buffer` after checking the header and its data offset.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let packet = Packet::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks the fixed header is there, and that the data offset is at least 5 words and
    /// ends within the buffer.
    pub fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let header_len = self.header_len();
        if header_len < HEADER_LEN {
            return Err(Error::BadDataOffset);
        }
        if header_len > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn read_u16(&self, at: core::ops::Range<usize>) -> u16 {
        let b = &self.buffer.as_ref()[at];
        u16::from_be_bytes([b[0], b[1]])
    }

    fn read_u32(&self, at: core::ops::Range<usize>) -> u32 {
        let b = &self.buffer.as_ref()[at];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    fn flags(&self) -> u16 {
        self.read_u16(field::FLAGS)
    }

    pub fn src_port(&self) -> u16 {
        self.read_u16(field::SRC_PORT)
    }

    pub fn dst_port(&self) -> u16 {
        self.read_u16(field::DST_PORT)
    }

    pub fn seq_number(&self) -> SeqNumber {
        SeqNumber(self.read_u32(field::SEQ_NUMBER))
    }

    /// The acknowledgment field as sent, meaningful only when [`Packet::ack`] is set.
    pub fn ack_number(&self) -> SeqNumber {
        SeqNumber(self.read_u32(field::ACK_NUMBER))
    }

    /// The header length in bytes, options included: the data offset times 4.
    pub fn header_len(&self) -> usize {
        usize::from(self.flags() >> flag::DATA_OFFSET_SHIFT) * 4
    }

    pub fn fin(&self) -> bool {
        self.flags() & flag::FIN != 0
    }

    pub fn syn(&self) -> bool {
        self.flags() & flag::SYN != 0
    }

    pub fn rst(&self) -> bool {
        self.flags() & flag::RST != 0
    }

    pub fn psh(&self) -> bool {
        self.flags() & flag::PSH != 0
    }

    pub fn ack(&self) -> bool {
        self.flags() & flag::ACK != 0
    }

    pub fn urg(&self) -> bool {
        self.flags() & flag::URG != 0
    }

    pub fn ece(&self) -> bool {
        self.flags() & flag::ECE != 0
    }

    pub fn cwr(&self) -> bool {
        self.flags() & flag::CWR != 0
    }

    /// The window field, unscaled.
    pub fn window_len(&self) -> u16 {
        self.read_u16(field::WINDOW)
    }

    pub fn checksum(&self) -> u16 {
        self.read_u16(field::CHECKSUM)
    }

    /// The urgent pointer field, meaningful only when [`Packet::urg`] is set.
    pub fn urgent_at(&self) -> u16 {
        self.read_u16(field::URGENT)
    }

    /// The payload length plus one for SYN and one for FIN: the sequence space the segment
    /// occupies (RFC 9293 §3.4, SEG.LEN).
    pub fn segment_len(&self) -> usize {
        let payload = self.buffer.as_ref().len().saturating_sub(self.header_len());
        payload + usize::from(self.syn()) + usize::from(self.fin())
    }

    /// Whether the checksum is right for a segment filling the whole buffer, sent from
    /// `addrs.src()` to `addrs.dst()`.
    pub fn verify_checksum(&self, addrs: &Addresses) -> bool {
        let segment = self.buffer.as_ref();
        let sum = addrs.pseudo_header(Protocol::Tcp, segment.len()) + Sum::of(segment);
        sum.value() == 0xffff
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The options area, between the fixed header and the data offset (at most 40 bytes).
    pub fn options(&self) -> &'a [u8] {
        let end = self.header_len();
        self.buffer.as_ref().get(HEADER_LEN..end).unwrap_or(&[])
    }

    /// The options, parsed one by one.
    pub fn option_iter(&self) -> OptionIter<'a> {
        OptionIter::new(self.options())
    }

    /// The bytes after the header, with the lifetime of the underlying buffer.
    pub fn payload(&self) -> &'a [u8] {
        self.buffer.as_ref().get(self.header_len()..).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn write_u16(&mut self, at: core::ops::Range<usize>, value: u16) {
        self.buffer.as_mut()[at].copy_from_slice(&value.to_be_bytes());
    }

    fn write_u32(&mut self, at: core::ops::Range<usize>, value: u32) {
        self.buffer.as_mut()[at].copy_from_slice(&value.to_be_bytes());
    }

    fn set_flag(&mut self, bit: u16, value: bool) {
        let flags = self.flags();
        let flags = if value { flags | bit } else { flags & !bit };
        self.write_u16(field::FLAGS, flags);
    }

    pub fn set_src_port(&mut self, value: u16) {
        self.write_u16(field::SRC_PORT, value);
    }

    pub fn set_dst_port(&mut self, value: u16) {
        self.write_u16(field::DST_PORT, value);
    }

    pub fn set_seq_number(&mut self, value: SeqNumber) {
        self.write_u32(field::SEQ_NUMBER, value.0);
    }

    pub fn set_ack_number(&mut self, value: SeqNumber) {
        self.write_u32(field::ACK_NUMBER, value.0);
    }

    /// Sets the data offset from a header length in bytes, a multiple of 4 up to
    /// [`MAX_HEADER_LEN`].
    pub fn set_header_len(&mut self, len: usize) {
        let words = (len / 4).min(15) as u16;
        let flags = (self.flags() & 0x0fff) | (words << flag::DATA_OFFSET_SHIFT);
        self.write_u16(field::FLAGS, flags);
    }

    /// Clears every flag and reserved bit, keeping the data offset.
    pub fn clear_flags(&mut self) {
        let flags = self.flags() & 0xf000;
        self.write_u16(field::FLAGS, flags);
    }

    pub fn set_fin(&mut self, value: bool) {
        self.set_flag(flag::FIN, value);
    }

    pub fn set_syn(&mut self, value: bool) {
        self.set_flag(flag::SYN, value);
    }

    pub fn set_rst(&mut self, value: bool) {
        self.set_flag(flag::RST, value);
    }

    pub fn set_psh(&mut self, value: bool) {
        self.set_flag(flag::PSH, value);
    }

    pub fn set_ack(&mut self, value: bool) {
        self.set_flag(flag::ACK, value);
    }

    pub fn set_urg(&mut self, value: bool) {
        self.set_flag(flag::URG, value);
    }

    pub fn set_ece(&mut self, value: bool) {
        self.set_flag(flag::ECE, value);
    }

    pub fn set_cwr(&mut self, value: bool) {
        self.set_flag(flag::CWR, value);
    }

    pub fn set_window_len(&mut self, value: u16) {
        self.write_u16(field::WINDOW, value);
    }

    pub fn set_checksum(&mut self, value: u16) {
        self.write_u16(field::CHECKSUM, value);
    }

    pub fn set_urgent_at(&mut self, value: u16) {
        self.write_u16(field::URGENT, value);
    }

    /// The options area as set by the data offset (empty if the buffer is shorter).
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        self.buffer
            .as_mut()
            .get_mut(HEADER_LEN..end)
            .unwrap_or(&mut [])
    }

    /// The bytes after the header (empty if the buffer is shorter).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        self.buffer.as_mut().get_mut(start..).unwrap_or(&mut [])
    }

    /// Computes and writes the checksum of a segment filling the whole buffer, sent from
    /// `addrs.src()` to `addrs.dst()`.
    pub fn fill_checksum(&mut self, addrs: &Addresses) {
        self.set_checksum(0);
        let segment = self.buffer.as_ref();
        let sum = addrs.pseudo_header(Protocol::Tcp, segment.len()) + Sum::of(segment);
        self.set_checksum(sum.checksum());
    }

    /// Writes the partial checksum a link that offloads checksums completes (Linux's
    /// `CHECKSUM_PARTIAL`): the uncomplemented sum of the pseudo-header for a segment filling
    /// the whole buffer. The link sums the segment from its first byte, this field included,
    /// and stores the complement here.
    pub fn fill_partial_checksum(&mut self, addrs: &Addresses) {
        let len = self.buffer.as_ref().len();
        self.set_checksum(addrs.pseudo_header(Protocol::Tcp, len).value());
    }
}

/// The SYN, FIN and RST bits of a segment, as the cases the engine tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Control {
    #[default]
    None,
    Syn,
    Fin,
    /// SYN and FIN together. No sane stack sends it, but RFC 9293 does not forbid it and
    /// a SYN carrying data and FIN is conceivable (T/TCP did); kept so the engine decides.
    SynFin,
    /// RST; a FIN alongside is dropped, as RFC 9293 §3.10.7.4 checks RST before FIN and
    /// a valid RST ends the connection regardless.
    Rst,
}

impl Control {
    /// The sequence numbers the flags occupy: one each for SYN and FIN.
    pub const fn len(self) -> usize {
        match self {
            Control::None | Control::Rst => 0,
            Control::Syn | Control::Fin => 1,
            Control::SynFin => 2,
        }
    }

    pub const fn is_empty(self) -> bool {
        self.len() == 0
    }

    pub const fn syn(self) -> bool {
        matches!(self, Control::Syn | Control::SynFin)
    }

    pub const fn fin(self) -> bool {
        matches!(self, Control::Fin | Control::SynFin)
    }

    pub const fn rst(self) -> bool {
        matches!(self, Control::Rst)
    }
}

/// The meaningful fields of a TCP header, options included. The payload stays in the
/// packet buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Repr {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq_number: SeqNumber,
    /// `Some` exactly when the ACK flag is set.
    pub ack_number: Option<SeqNumber>,
    pub control: Control,
    pub psh: bool,
    /// The window field as sent, before any scaling (RFC 7323 §2.2).
    pub window_len: u16,
    /// `Some` exactly when the URG flag is set. host-switch does not implement urgent data
    /// (RFC 6093 advises new applications against it); the field is carried, not acted on.
    pub urgent_pointer: Option<u16>,
    /// The MSS option (RFC 9293 §3.7.1); valid only on SYN segments, which the engine checks.
    pub max_seg_size: Option<u16>,
    /// The window scale option's shift, as sent (RFC 7323 §2.3; the engine clamps to
    /// [`MAX_WINDOW_SCALE`]); valid only on SYN segments.
    pub window_scale: Option<u8>,
    /// The SACK-permitted option (RFC 2018 §2); valid only on SYN segments.
    pub sack_permitted: bool,
    /// SACK blocks (RFC 2018 §3), most recent first, filling from the front. Parsing keeps
    /// the first three of up to four. Emitting drops trailing blocks that do not fit in the
    /// 40 option bytes beside the other options: three fit beside timestamps alone, two
    /// beside timestamps and MSS or window scale (which belong on SYNs anyway).
    pub sack_ranges: [Option<(SeqNumber, SeqNumber)>; 3],
    /// The timestamps option (RFC 7323 §3).
    pub timestamp: Option<TimestampOption>,
    pub payload_len: usize,
}

/// The options of one header in emit order; at most 9 (see [`Repr::options`]).
struct Layout {
    options: [TcpOption<'static>; 9],
    count: usize,
}

impl Layout {
    fn push(&mut self, option: TcpOption<'static>) {
        if let Some(slot) = self.options.get_mut(self.count) {
            *slot = option;
            self.count += 1;
        }
    }

    fn as_slice(&self) -> &[TcpOption<'static>] {
        self.options.get(..self.count).unwrap_or(&[])
    }
}

impl Repr {
    /// Reads the header and options of `packet`, a whole segment from `addrs.src()` to
    /// `addrs.dst()`, after verifying its checksum. An option that appears twice counts
    /// once, the last one read. A malformed option never costs the segment, as in Linux:
    /// one whose length is wrong for its kind is skipped, one whose length loses the walk's
    /// place ends the walk (see [`OptionIter`]); the options read before it count.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &Packet<&T>,
        addrs: &Addresses,
    ) -> Result<Repr, Error> {
        Repr::parse_with(packet, addrs, &ChecksumCapabilities::default())
    }

    /// [`Repr::parse`], verifying the checksum only if `caps.tcp` says received checksums
    /// are ours (the link did not vouch for this segment).
    pub fn parse_with<T: AsRef<[u8]> + ?Sized>(
        packet: &Packet<&T>,
        addrs: &Addresses,
        caps: &ChecksumCapabilities,
    ) -> Result<Repr, Error> {
        packet.check_len()?;
        if caps.tcp.rx() && !packet.verify_checksum(addrs) {
            return Err(Error::BadChecksum);
        }
        let control = match (packet.syn(), packet.fin(), packet.rst()) {
            // SYN+RST has no meaning in RFC 9293 and is a known scanner probe.
            (true, _, true) => return Err(Error::SynWithRst),
            (false, _, true) => Control::Rst,
            (true, true, false) => Control::SynFin,
            (true, false, false) => Control::Syn,
            (false, true, false) => Control::Fin,
            (false, false, false) => Control::None,
        };
        let mut repr = Repr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            seq_number: packet.seq_number(),
            ack_number: packet.ack().then(|| packet.ack_number()),
            control,
            psh: packet.psh(),
            window_len: packet.window_len(),
            urgent_pointer: packet.urg().then(|| packet.urgent_at()),
            payload_len: packet.payload().len(),
            ..Repr::default()
        };
        for option in packet.option_iter().flatten() {
            match option {
                TcpOption::MaxSegmentSize(mss) => repr.max_seg_size = Some(mss),
                TcpOption::WindowScale(shift) => repr.window_scale = Some(shift),
                TcpOption::SackPermitted => repr.sack_permitted = true,
                TcpOption::SackRange(blocks) => {
                    for (slot, block) in repr.sack_ranges.iter_mut().zip(blocks) {
                        *slot = block;
                    }
                }
                TcpOption::Timestamp(ts) => repr.timestamp = Some(ts),
                TcpOption::EndOfList | TcpOption::NoOperation | TcpOption::Unknown { .. } => {}
            }
        }
        Ok(repr)
    }

    /// The options [`Repr::emit`] writes, in Linux's layout (`tcp_options_write`): MSS;
    /// SACK-permitted and timestamps sharing one 12-byte run when both are present, else
    /// each behind two NOPs; NOP and window scale; two NOPs and the SACK blocks. Every
    /// option so ends on a 4-byte boundary and the header needs no padding.
    fn options(&self) -> Layout {
        let mut layout = Layout {
            options: [TcpOption::NoOperation; 9],
            count: 0,
        };
        let mut used = 0;
        if let Some(mss) = self.max_seg_size {
            layout.push(TcpOption::MaxSegmentSize(mss));
            used += 4;
        }
        match (self.sack_permitted, self.timestamp) {
            (true, Some(ts)) => {
                layout.push(TcpOption::SackPermitted);
                layout.push(TcpOption::Timestamp(ts));
                used += 12;
            }
            (false, Some(ts)) => {
                layout.push(TcpOption::NoOperation);
                layout.push(TcpOption::NoOperation);
                layout.push(TcpOption::Timestamp(ts));
                used += 12;
            }
            (true, None) => {
                layout.push(TcpOption::NoOperation);
                layout.push(TcpOption::NoOperation);
                layout.push(TcpOption::SackPermitted);
                used += 4;
            }
            (false, None) => {}
        }
        if let Some(shift) = self.window_scale {
            layout.push(TcpOption::NoOperation);
            layout.push(TcpOption::WindowScale(shift));
            used += 4;
        }
        // Two NOPs, kind, length, then 8 bytes a block, in what is left of the 40 bytes.
        let room = MAX_OPTIONS_LEN.saturating_sub(used).saturating_sub(4) / 8;
        let mut blocks: SackBlocks = [None; MAX_SACK_BLOCKS];
        let sent = self.sack_ranges.iter().map_while(|b| *b).take(room);
        let mut count = 0;
        for (slot, block) in blocks.iter_mut().zip(sent) {
            *slot = Some(block);
            count += 1;
        }
        if count > 0 {
            layout.push(TcpOption::NoOperation);
            layout.push(TcpOption::NoOperation);
            layout.push(TcpOption::SackRange(blocks));
        }
        layout
    }

    /// The length of the header this emits, options included (at most 60, a multiple of 4).
    pub fn buffer_len(&self) -> usize {
        let options: usize = self
            .options()
            .as_slice()
            .iter()
            .map(|o| o.buffer_len())
            .sum();
        HEADER_LEN + options
    }

    /// The sequence space the segment occupies (RFC 9293 §3.4, SEG.LEN): the payload,
    /// plus one for SYN and one for FIN.
    pub const fn segment_len(&self) -> usize {
        self.payload_len.saturating_add(self.control.len())
    }

    /// Writes the header and options and fills the checksum for `addrs`.
    ///
    /// Contract: the caller has already placed the `payload_len` payload bytes at
    /// `buffer_len()..` in `packet`'s buffer, which must hold at least
    /// `buffer_len() + payload_len` bytes. The checksum covers exactly the header and
    /// those bytes; anything after them in the buffer is left alone.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>, addrs: &Addresses) {
        self.emit_with(packet, addrs, &ChecksumCapabilities::default());
    }

    /// [`Repr::emit`], with the checksum computed only if `caps.tcp` says sent checksums are
    /// ours; otherwise the field holds the partial checksum the link completes
    /// ([`Packet::fill_partial_checksum`]).
    pub fn emit_with<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Packet<T>,
        addrs: &Addresses,
        caps: &ChecksumCapabilities,
    ) {
        let header_len = self.buffer_len();
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_seq_number(self.seq_number);
        packet.set_ack_number(self.ack_number.unwrap_or_default());
        packet.write_u16(field::FLAGS, 0);
        packet.set_header_len(header_len);
        packet.set_ack(self.ack_number.is_some());
        packet.set_syn(self.control.syn());
        packet.set_fin(self.control.fin());
        packet.set_rst(self.control.rst());
        packet.set_psh(self.psh);
        packet.set_urg(self.urgent_pointer.is_some());
        packet.set_window_len(self.window_len);
        packet.set_urgent_at(self.urgent_pointer.unwrap_or(0));
        let mut area = packet.options_mut();
        for option in self.options().as_slice() {
            area = option.emit(area);
        }
        let buffer = packet.buffer.as_mut();
        let end = header_len
            .saturating_add(self.payload_len)
            .min(buffer.len());
        if let Some(segment) = buffer.get_mut(..end) {
            let mut segment = Packet::new_unchecked(segment);
            if caps.tcp.tx() {
                segment.fill_checksum(addrs);
            } else {
                segment.fill_partial_checksum(addrs);
            }
        }
    }
}
