//! The little of the DNS message format (RFC 1035 §4.1) the gateway needs: the header's
//! fields, the first question, and replies built from a query.
//!
//! Forwarded messages are never re-encoded; this module reads a query only far enough to
//! decide whether a local zone owns it, and [`Message::new_checked`] validates the header
//! length once so no accessor can panic. Question names are read with [`MAX_POINTER_HOPS`]
//! and [`MAX_NAME_LEN`] as hard bounds, so a compression loop ends in an error, not a hang.

use std::ops::Range;

/// The fixed header (RFC 1035 §4.1.1).
pub const HEADER_LEN: usize = 12;
/// A name's longest wire form (RFC 1035 §2.3.4).
pub const MAX_NAME_LEN: usize = 255;
/// A label's longest form (RFC 1035 §2.3.4).
pub const MAX_LABEL_LEN: usize = 63;
/// Compression pointers followed in one name before we call it a loop.
pub const MAX_POINTER_HOPS: usize = 16;

mod field {
    use std::ops::Range;
    pub(super) const ID: Range<usize> = 0..2;
    pub(super) const FLAGS: Range<usize> = 2..4;
    pub(super) const QDCOUNT: Range<usize> = 4..6;
    pub(super) const ANCOUNT: Range<usize> = 6..8;
    pub(super) const NSCOUNT: Range<usize> = 8..10;
    pub(super) const ARCOUNT: Range<usize> = 10..12;
}

/// Header flag bits (RFC 1035 §4.1.1), in the 16-bit flags word.
pub mod flags {
    pub const QR: u16 = 0x8000;
    pub const OPCODE_MASK: u16 = 0x7800;
    pub const AA: u16 = 0x0400;
    pub const TC: u16 = 0x0200;
    pub const RD: u16 = 0x0100;
    pub const RA: u16 = 0x0080;
    pub const RCODE_MASK: u16 = 0x000f;
}

/// Response codes (RFC 1035 §4.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Rcode {
    NoError = 0,
    FormErr = 1,
    ServFail = 2,
    NxDomain = 3,
    NotImp = 4,
}

/// Record types we build or look at (RFC 1035 §3.2.2, RFC 3596, RFC 6891).
pub mod rtype {
    pub const A: u16 = 1;
    pub const SOA: u16 = 6;
    pub const AAAA: u16 = 28;
    pub const OPT: u16 = 41;
    pub const ANY: u16 = 255;
}

/// The Internet class.
pub const CLASS_IN: u16 = 1;

/// Why a message could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("shorter than the 12-byte header")]
    Truncated,
    #[error("a name runs past the end of the message")]
    NamePastEnd,
    #[error("a compression pointer loops or points forward")]
    PointerLoop,
    #[error("a name is longer than 255 bytes")]
    NameTooLong,
    #[error("a label type other than a length or a pointer")]
    BadLabel,
    #[error("the question's type and class run past the end")]
    QuestionPastEnd,
    #[error("no question")]
    NoQuestion,
}

/// A read-only view of a DNS message whose header is known to be complete.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    bytes: &'a [u8],
}

fn be16(bytes: &[u8], at: Range<usize>) -> u16 {
    match bytes.get(at) {
        Some(&[a, b]) => u16::from_be_bytes([a, b]),
        _ => 0,
    }
}

impl<'a> Message<'a> {
    /// Checks that the 12-byte header is there.
    pub fn new_checked(bytes: &'a [u8]) -> Result<Message<'a>, ParseError> {
        if bytes.len() < HEADER_LEN {
            return Err(ParseError::Truncated);
        }
        Ok(Message { bytes })
    }

    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    pub fn id(&self) -> u16 {
        be16(self.bytes, field::ID)
    }

    pub fn flags(&self) -> u16 {
        be16(self.bytes, field::FLAGS)
    }

    pub fn is_response(&self) -> bool {
        self.flags() & flags::QR != 0
    }

    pub fn opcode(&self) -> u8 {
        ((self.flags() & flags::OPCODE_MASK) >> 11) as u8
    }

    pub fn qdcount(&self) -> u16 {
        be16(self.bytes, field::QDCOUNT)
    }

    pub fn ancount(&self) -> u16 {
        be16(self.bytes, field::ANCOUNT)
    }

    pub fn nscount(&self) -> u16 {
        be16(self.bytes, field::NSCOUNT)
    }

    pub fn arcount(&self) -> u16 {
        be16(self.bytes, field::ARCOUNT)
    }

    /// The first question (the only one any resolver sends; RFC 9619).
    pub fn question(&self) -> Result<Question, ParseError> {
        if self.qdcount() == 0 {
            return Err(ParseError::NoQuestion);
        }
        let (name, end) = read_name(self.bytes, HEADER_LEN)?;
        let Some(&[t0, t1, c0, c1]) = self.bytes.get(end..end + 4) else {
            return Err(ParseError::QuestionPastEnd);
        };
        Ok(Question {
            name,
            qtype: u16::from_be_bytes([t0, t1]),
            qclass: u16::from_be_bytes([c0, c1]),
            range: HEADER_LEN..end + 4,
        })
    }
}

/// A question (RFC 1035 §4.1.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// Labels lower-cased (ASCII), dot-separated, ending in a dot; `None` when a label holds
    /// a dot or a byte outside printable ASCII (such a name is never a local one).
    pub name: Option<String>,
    pub qtype: u16,
    pub qclass: u16,
    /// Where the question sits in the message.
    pub range: Range<usize>,
}

/// Reads the name at `start`: its presentation form (see [`Question::name`]) and the offset
/// just past it in the message (past the first pointer, if any).
fn read_name(msg: &[u8], start: usize) -> Result<(Option<String>, usize), ParseError> {
    let mut text = String::new();
    let mut printable = true;
    let mut at = start;
    let mut end = None;
    let mut hops = 0;
    let mut wire_len = 1;
    loop {
        let len = *msg.get(at).ok_or(ParseError::NamePastEnd)?;
        match len & 0xc0 {
            0x00 if len == 0 => {
                let end = end.unwrap_or(at + 1);
                if text.is_empty() {
                    text.push('.');
                }
                return Ok((printable.then_some(text), end));
            }
            0x00 => {
                let len = usize::from(len);
                let label = msg
                    .get(at + 1..at + 1 + len)
                    .ok_or(ParseError::NamePastEnd)?;
                wire_len += 1 + len;
                if wire_len > MAX_NAME_LEN {
                    return Err(ParseError::NameTooLong);
                }
                for &b in label {
                    if b == b'.' || !b.is_ascii_graphic() {
                        printable = false;
                    }
                    text.push(char::from(b.to_ascii_lowercase()));
                }
                text.push('.');
                at += 1 + len;
            }
            0xc0 => {
                let low = *msg.get(at + 1).ok_or(ParseError::NamePastEnd)?;
                let target = usize::from(u16::from_be_bytes([len & 0x3f, low]));
                // RFC 1035 §4.1.4: a pointer refers to a prior occurrence; one pointing at
                // or past itself can only loop.
                hops += 1;
                if target >= at || hops > MAX_POINTER_HOPS {
                    return Err(ParseError::PointerLoop);
                }
                end.get_or_insert(at + 2);
                at = target;
            }
            _ => return Err(ParseError::BadLabel),
        }
    }
}

/// Writes `name` (dotted, absolute or not) in uncompressed wire form.
pub fn push_name(out: &mut Vec<u8>, name: &str) {
    for label in name.split('.').filter(|l| !l.is_empty()) {
        let bytes = label.as_bytes();
        let len = bytes.len().min(MAX_LABEL_LEN);
        out.push(len as u8);
        out.extend_from_slice(&bytes[..len]);
    }
    out.push(0);
}

/// A reply header for `query`: its id, opcode and RD bit, QR and RA set, and `rcode`; the
/// counts as given.
pub fn reply_header(query: &Message<'_>, rcode: Rcode, aa: bool, counts: [u16; 4]) -> Vec<u8> {
    let rd = query.flags() & flags::RD;
    let opcode = query.flags() & flags::OPCODE_MASK;
    let mut f = flags::QR | flags::RA | rd | opcode | u16::from(rcode as u8);
    if aa {
        f |= flags::AA;
    }
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(&query.id().to_be_bytes());
    out.extend_from_slice(&f.to_be_bytes());
    for c in counts {
        out.extend_from_slice(&c.to_be_bytes());
    }
    out
}

/// An error reply to `query`: its question echoed when there is a readable one (RFC 1035
/// §4.1.1 leaves it to the server), no records.
pub fn error_reply(query: &Message<'_>, question: Option<&Question>, rcode: Rcode) -> Vec<u8> {
    let q = question.and_then(|q| query.bytes().get(q.range.clone()));
    let mut out = reply_header(query, rcode, false, [u16::from(q.is_some()), 0, 0, 0]);
    if let Some(q) = q {
        out.extend_from_slice(q);
    }
    out
}

/// Cuts `response` to its header and question with TC set (RFC 1035 §4.1.1, RFC 7766 §5)
/// when it is longer than `max`; the guest retries over TCP. `None` when it cannot be read.
pub fn truncate(response: &[u8], max: usize) -> Option<Vec<u8>> {
    let msg = Message::new_checked(response).ok()?;
    let q = msg.question().ok();
    let keep = q.as_ref().map_or(HEADER_LEN, |q| q.range.end);
    if keep > max {
        return None;
    }
    let [f0, f1] = (msg.flags() | flags::TC).to_be_bytes();
    let mut out = response.get(..keep)?.to_vec();
    let header = out.get_mut(2..HEADER_LEN)?;
    header.copy_from_slice(&[f0, f1, 0, u8::from(q.is_some()), 0, 0, 0, 0, 0, 0]);
    Some(out)
}

#[cfg(test)]
#[path = "wire_tests.rs"]
pub(crate) mod tests;
