//! Length-prefixed framing for the stream links.
//!
//! Two formats, one codec: [`LengthPrefix::U32Be`], a 4-byte big-endian length before each
//! frame (QEMU `-netdev stream` / `-netdev socket`), and [`LengthPrefix::U16Le`], a 2-byte
//! little-endian length (gvforwarder's `/connect`, vpnkit-style stdio).
//!
//! [`Decoder`] accepts the byte stream in arbitrary chunks — read straight into
//! [`Decoder::spare`] and [`Decoder::commit`]ted, or copied in with [`Decoder::feed`] — and
//! yields whole frames from [`Decoder::next_frame`] as slices of its own buffer (no copy).
//! Contracts:
//! - **Bounded**: the buffer is allocated once, sized for two maximum frames (at least 64 KiB),
//!   and never grows. A frame longer than the configured maximum is refused as soon as its
//!   length prefix arrives, before its body is read.
//! - **Robust**: a zero length, an oversize length, or a stream that ends inside a frame
//!   ([`Decoder::finish`]) is a [`DecodeError`]; errors are sticky, and the port should then be
//!   closed with the error as the logged reason. Nothing panics on any input.
//! - **Progress**: after `next_frame` has returned `Ok(None)`, `spare` is never empty.
//!
//! [`Encoder`] writes the prefix and the frame as two slices (`writev`), without copying the
//! frame, and refuses to encode an empty or oversize frame.

use std::io::{self, IoSlice, Read, Write};

use stack::wire::ethernet::HEADER_LEN;

/// Room beyond MTU + Ethernet header for one 802.1Q tag: such a frame is dropped and counted by
/// the switch rather than closing its port.
pub const FRAME_SLACK: usize = 4;

/// Smallest decoder buffer, so that a read picks up many small frames at once.
const MIN_BUFFER: usize = 64 * 1024;

/// The largest frame a link with this MTU accepts: MTU + 14 + [`FRAME_SLACK`].
pub const fn max_frame_len(mtu: u32) -> usize {
    mtu as usize + HEADER_LEN + FRAME_SLACK
}

/// A stream framing's length prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LengthPrefix {
    /// 4 bytes, big-endian (QEMU stream/socket netdevs).
    U32Be,
    /// 2 bytes, little-endian (gvforwarder `/connect`, vpnkit-style stdio).
    U16Le,
}

impl LengthPrefix {
    /// The prefix's size in bytes.
    pub const fn size(self) -> usize {
        match self {
            LengthPrefix::U32Be => 4,
            LengthPrefix::U16Le => 2,
        }
    }

    /// The largest length the prefix can express.
    pub const fn max_len(self) -> usize {
        match self {
            LengthPrefix::U32Be => u32::MAX as usize,
            LengthPrefix::U16Le => u16::MAX as usize,
        }
    }

    /// Reads a length from the first [`LengthPrefix::size`] bytes of `bytes`, if there are
    /// that many.
    fn read(self, bytes: &[u8]) -> Option<usize> {
        match self {
            LengthPrefix::U32Be => {
                let b: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
                usize::try_from(u32::from_be_bytes(b)).ok()
            }
            LengthPrefix::U16Le => {
                let b: [u8; 2] = bytes.get(..2)?.try_into().ok()?;
                Some(usize::from(u16::from_le_bytes(b)))
            }
        }
    }
}

/// Why a stream's framing was refused. The port is closed with this as the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("zero-length frame")]
    ZeroLength,
    #[error("frame of {len} bytes exceeds the {max}-byte maximum")]
    Oversize { len: usize, max: usize },
    #[error("stream ended inside a frame ({buffered} bytes buffered)")]
    Truncated { buffered: usize },
}

/// Why a frame could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("empty frame")]
    Empty,
    #[error("frame of {len} bytes exceeds the {max}-byte maximum")]
    Oversize { len: usize, max: usize },
}

impl From<EncodeError> for io::Error {
    fn from(e: EncodeError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidInput, e)
    }
}

/// Splits a byte stream into frames. See the module docs.
#[derive(Debug)]
pub struct Decoder {
    prefix: LengthPrefix,
    max_frame: usize,
    buf: Box<[u8]>,
    /// First byte not yet returned as part of a frame.
    start: usize,
    /// End of the bytes received.
    end: usize,
    error: Option<DecodeError>,
}

impl Decoder {
    /// A decoder for frames of at most `max_frame` bytes (clamped to what `prefix` can express).
    pub fn new(prefix: LengthPrefix, max_frame: usize) -> Decoder {
        let max_frame = max_frame.min(prefix.max_len());
        let cap = prefix
            .size()
            .saturating_add(max_frame)
            .saturating_mul(2)
            .max(MIN_BUFFER);
        Decoder {
            prefix,
            max_frame,
            buf: vec![0; cap].into_boxed_slice(),
            start: 0,
            end: 0,
            error: None,
        }
    }

    pub fn prefix(&self) -> LengthPrefix {
        self.prefix
    }

    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Bytes received but not yet returned in a frame.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Free space to read the stream into; follow with [`Decoder::commit`]. Drain
    /// [`Decoder::next_frame`] first: only then is the space guaranteed to be non-empty.
    pub fn spare(&mut self) -> &mut [u8] {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.buf.len() - self.end < self.buf.len() / 2 {
            // What is left is part of one frame (smaller than half the buffer): move it to the
            // front so that frame can complete in place.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let end = self.end;
        self.buf.get_mut(end..).unwrap_or_default()
    }

    /// Records that `n` bytes were written at the start of [`Decoder::spare`].
    pub fn commit(&mut self, n: usize) {
        self.end = self.end.saturating_add(n).min(self.buf.len());
    }

    /// Copies as much of `chunk` as fits and returns how much that was. Drain
    /// [`Decoder::next_frame`] and call again with the rest.
    pub fn feed(&mut self, chunk: &[u8]) -> usize {
        let spare = self.spare();
        let n = chunk.len().min(spare.len());
        if let (Some(dst), Some(src)) = (spare.get_mut(..n), chunk.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.commit(n);
        n
    }

    /// Reads once from `reader` into the buffer; returns the byte count (0 at end of stream).
    pub fn read_from<R: Read + ?Sized>(&mut self, reader: &mut R) -> io::Result<usize> {
        let n = reader.read(self.spare())?;
        self.commit(n);
        Ok(n)
    }

    /// The next whole frame, `Ok(None)` if more bytes are needed, or the framing error (again
    /// on every later call).
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, DecodeError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let header = self.prefix.size();
        let Some(len) = self
            .buf
            .get(self.start..self.end)
            .and_then(|b| self.prefix.read(b))
        else {
            return Ok(None);
        };
        if len == 0 {
            return Err(*self.error.insert(DecodeError::ZeroLength));
        }
        if len > self.max_frame {
            let e = DecodeError::Oversize {
                len,
                max: self.max_frame,
            };
            return Err(*self.error.insert(e));
        }
        let body = self.start + header;
        // Cannot overflow: len <= max_frame, and the buffer holds two of those.
        let frame_end = body.saturating_add(len);
        if frame_end > self.end {
            return Ok(None);
        }
        self.start = frame_end;
        Ok(self.buf.get(body..frame_end))
    }

    /// At end of stream: `Ok` if it ended between frames, else the error.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        match self.buffered() {
            0 => Ok(()),
            buffered => Err(DecodeError::Truncated { buffered }),
        }
    }
}

/// An encoded length prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    bytes: [u8; 4],
    len: usize,
}

impl Header {
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }
}

/// Writes frames with their length prefix. See the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoder {
    prefix: LengthPrefix,
    max_frame: usize,
}

impl Encoder {
    /// An encoder for frames of at most `max_frame` bytes (clamped to what `prefix` can express).
    pub fn new(prefix: LengthPrefix, max_frame: usize) -> Encoder {
        Encoder {
            prefix,
            max_frame: max_frame.min(prefix.max_len()),
        }
    }

    /// The prefix for a frame of `frame_len` bytes.
    pub fn header(&self, frame_len: usize) -> Result<Header, EncodeError> {
        if frame_len == 0 {
            return Err(EncodeError::Empty);
        }
        if frame_len > self.max_frame {
            return Err(EncodeError::Oversize {
                len: frame_len,
                max: self.max_frame,
            });
        }
        let mut bytes = [0u8; 4];
        let len = self.prefix.size();
        match self.prefix {
            // Both conversions succeed: max_frame is clamped to the prefix's range.
            LengthPrefix::U32Be => bytes = (frame_len as u32).to_be_bytes(),
            LengthPrefix::U16Le => {
                let [a, b] = (frame_len as u16).to_le_bytes();
                bytes[0] = a;
                bytes[1] = b;
            }
        }
        Ok(Header { bytes, len })
    }

    /// Appends prefix and frame to `out`.
    pub fn encode_into(&self, frame: &[u8], out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let header = self.header(frame.len())?;
        out.reserve(header.as_bytes().len() + frame.len());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(frame);
        Ok(())
    }

    /// Writes prefix and frame with vectored writes, resuming after partial writes, until all
    /// is written. For a blocking writer.
    pub fn write_frame<W: Write + ?Sized>(&self, writer: &mut W, frame: &[u8]) -> io::Result<()> {
        let header = self.header(frame.len())?;
        let header = header.as_bytes();
        let total = header.len() + frame.len();
        let mut done = 0;
        while done < total {
            let (h, f) = if done < header.len() {
                (header.get(done..).unwrap_or_default(), frame)
            } else {
                (
                    &[][..],
                    frame.get(done - header.len()..).unwrap_or_default(),
                )
            };
            let slices = [IoSlice::new(h), IoSlice::new(f)];
            match writer.write_vectored(&slices) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "framing_tests.rs"]
mod tests;
