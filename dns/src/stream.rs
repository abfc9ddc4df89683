//! DNS over a byte stream (RFC 1035 §4.2.2, RFC 7766 §8): every message is preceded by its
//! length as a 2-byte big-endian integer.
//!
//! [`Decoder`] cuts a stream into messages, sans-IO: the caller hands it whatever bytes it
//! has ([`Decoder::push`]) and learns how many it took and whether a message is complete.
//! It never holds more than one message ([`Decoder::max_message`] bytes, at most 65535)
//! plus its 2-byte prefix, whatever the stream says; a zero length or one above that bound
//! is an error (the caller closes the connection), never a panic or an allocation the peer
//! chose. [`frame`] is the reverse.

/// The longest message a 2-byte length can announce (RFC 1035 §4.2.2).
pub const MAX_MESSAGE: usize = 65535;
/// The length prefix.
pub const PREFIX_LEN: usize = 2;

/// Why a stream cannot go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A zero-length message: not even a header (RFC 1035 §4.1.1).
    #[error("a zero-length message")]
    ZeroLength,
    /// A length past the decoder's bound.
    #[error("a {len}-byte message is longer than the {max}-byte bound")]
    TooLong { len: usize, max: usize },
}

/// Cuts a stream into messages. See the module docs.
#[derive(Debug, Clone)]
pub struct Decoder {
    max_message: usize,
    prefix: [u8; PREFIX_LEN],
    prefix_len: usize,
    /// The announced length once the prefix is whole.
    want: Option<usize>,
    body: Vec<u8>,
}

impl Default for Decoder {
    fn default() -> Decoder {
        Decoder::new(MAX_MESSAGE)
    }
}

impl Decoder {
    /// A decoder taking messages of at most `max_message` bytes (capped at [`MAX_MESSAGE`]).
    pub fn new(max_message: usize) -> Decoder {
        Decoder {
            max_message: max_message.min(MAX_MESSAGE),
            prefix: [0; PREFIX_LEN],
            prefix_len: 0,
            want: None,
            body: Vec::new(),
        }
    }

    pub fn max_message(&self) -> usize {
        self.max_message
    }

    /// Bytes held of a message not yet complete (prefix included).
    pub fn buffered(&self) -> usize {
        self.prefix_len + self.body.len()
    }

    /// Whether the stream is at a message boundary: nothing held.
    pub fn is_idle(&self) -> bool {
        self.buffered() == 0
    }

    /// Takes bytes from the front of `input`, never past the end of the current message.
    /// Returns how many it took and the message they completed, if they did. Call again with
    /// the rest of `input` for the next message. After an error the decoder stays failed.
    pub fn push(&mut self, input: &[u8]) -> Result<(usize, Option<Vec<u8>>), DecodeError> {
        let mut taken = 0;
        let want = match self.want {
            Some(want) => want,
            None => {
                let need = PREFIX_LEN - self.prefix_len;
                let n = need.min(input.len());
                let (Some(dst), Some(src)) = (
                    self.prefix.get_mut(self.prefix_len..self.prefix_len + n),
                    input.get(..n),
                ) else {
                    return Ok((0, None));
                };
                dst.copy_from_slice(src);
                self.prefix_len += n;
                taken += n;
                if self.prefix_len < PREFIX_LEN {
                    return Ok((taken, None));
                }
                let len = usize::from(u16::from_be_bytes(self.prefix));
                if len == 0 {
                    return Err(DecodeError::ZeroLength);
                }
                if len > self.max_message {
                    return Err(DecodeError::TooLong {
                        len,
                        max: self.max_message,
                    });
                }
                self.want = Some(len);
                self.body.reserve_exact(len);
                len
            }
        };
        let rest = input.get(taken..).unwrap_or_default();
        let n = want.saturating_sub(self.body.len()).min(rest.len());
        self.body
            .extend_from_slice(rest.get(..n).unwrap_or_default());
        taken += n;
        if self.body.len() < want {
            return Ok((taken, None));
        }
        self.want = None;
        self.prefix_len = 0;
        Ok((taken, Some(std::mem::take(&mut self.body))))
    }
}

/// `message` with its length prefix; `None` if longer than [`MAX_MESSAGE`].
pub fn frame(message: &[u8]) -> Option<Vec<u8>> {
    let len = u16::try_from(message.len()).ok()?;
    let mut out = Vec::with_capacity(PREFIX_LEN + message.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(message);
    Some(out)
}

#[cfg(test)]
#[path = "stream_tests.rs"]
mod tests;
