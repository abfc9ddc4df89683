//! The domain search list option (RFC 3397): DNS names in RFC 1035 §3.1 wire form, one after
//! another, with RFC 1035 §4.1.4 compression pointers counted from the start of the whole
//! (reassembled, RFC 3396) option value.
//!
//! [`DomainList::new`] validates and encodes names once, compressing repeated suffixes (exact,
//! case-sensitive match), so a server can emit the list per reply by copying bytes.
//! [`DomainList::decode`] reads a list back. It is total and bounded: every pointer must point
//! strictly before the name or the previous pointer target it appears in, so pointer chains
//! always end, and a name is refused once it passes 255 bytes on the wire.

use core::fmt;

/// The longest name on the wire, length bytes and final zero included (RFC 1035 §2.3.4).
pub const MAX_NAME_LEN: usize = 255;
/// The longest label (RFC 1035 §2.3.4).
pub const MAX_LABEL_LEN: usize = 63;
/// Offsets above this cannot be the target of a compression pointer (14 bits).
const MAX_POINTER: usize = 0x3fff;

/// Why a list of names cannot be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("empty label in domain name {0:?}")]
    EmptyLabel(String),
    #[error("label longer than 63 bytes in domain name {0:?}")]
    LabelTooLong(String),
    #[error("domain name longer than 255 bytes on the wire")]
    NameTooLong,
    #[error("domain name runs past the end of the search list")]
    Truncated,
    #[error("compression pointer that does not point backwards")]
    BadPointer,
    #[error("reserved label type (0x40 or 0x80)")]
    BadLabelType,
}

/// A validated domain search list with its wire encoding.
///
/// Two lists are equal when their names are, however each was compressed.
#[derive(Clone, Default, Eq)]
pub struct DomainList {
    names: Vec<String>,
    wire: Vec<u8>,
}

impl PartialEq for DomainList {
    fn eq(&self, other: &DomainList) -> bool {
        self.names == other.names
    }
}

impl fmt::Debug for DomainList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.names).finish()
    }
}

impl DomainList {
    /// Validates and encodes `names` (each `a.b.c`, a trailing dot allowed and dropped).
    pub fn new<I, S>(names: I) -> Result<DomainList, NameError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let names: Vec<String> = names
            .into_iter()
            .map(|n| {
                let n = n.as_ref();
                n.strip_suffix('.').unwrap_or(n).to_owned()
            })
            .collect();
        let wire = encode(&names)?;
        Ok(DomainList { names, wire })
    }

    /// Reads an option 119 value (already reassembled from its pieces).
    pub fn decode(wire: &[u8]) -> Result<DomainList, NameError> {
        let mut names = Vec::new();
        let mut pos = 0;
        while pos < wire.len() {
            let (name, next) = read_name(wire, pos)?;
            names.push(name);
            pos = next;
        }
        Ok(DomainList {
            names,
            wire: wire.to_vec(),
        })
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The option value on the wire.
    pub fn wire(&self) -> &[u8] {
        &self.wire
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// Checks one name and returns its labels.
fn labels(name: &str) -> Result<Vec<&str>, NameError> {
    let labels: Vec<&str> = name.split('.').collect();
    let mut wire_len = 1;
    for label in &labels {
        if label.is_empty() {
            return Err(NameError::EmptyLabel(name.to_owned()));
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(NameError::LabelTooLong(name.to_owned()));
        }
        wire_len += 1 + label.len();
    }
    if wire_len > MAX_NAME_LEN {
        return Err(NameError::NameTooLong);
    }
    Ok(labels)
}

fn encode(names: &[String]) -> Result<Vec<u8>, NameError> {
    let mut wire = Vec::new();
    // Suffixes written so far (as text) and where they start; searched linearly: the list
    // comes from configuration and is short.
    let mut written: Vec<(&str, usize)> = Vec::new();
    for name in names {
        let labels = labels(name)?;
        let mut start = 0;
        let mut pointer = None;
        for label in labels {
            let suffix = name.get(start..).unwrap_or_default();
            if let Some(&(_, at)) = written.iter().find(|(s, _)| *s == suffix) {
                pointer = Some(at);
                break;
            }
            if wire.len() <= MAX_POINTER {
                written.push((suffix, wire.len()));
            }
            // Checked above: a label is 1..=63 bytes.
            wire.push(label.len() as u8);
            wire.extend_from_slice(label.as_bytes());
            start += label.len() + 1;
        }
        match pointer {
            // `at` is at most 0x3fff, so it fits the pointer's 14 bits.
            Some(at) => wire.extend_from_slice(&[0xc0 | (at >> 8) as u8, at as u8]),
            None => wire.push(0),
        }
    }
    Ok(wire)
}

/// Reads the name at `start`; returns it and the position after it in the list.
fn read_name(wire: &[u8], start: usize) -> Result<(String, usize), NameError> {
    let mut text: Vec<u8> = Vec::new();
    let mut at = start;
    let mut limit = start;
    let mut after: Option<usize> = None;
    let mut wire_len = 1;
    loop {
        let len = *wire.get(at).ok_or(NameError::Truncated)?;
        match len & 0xc0 {
            0x00 if len == 0 => {
                let next = *after.get_or_insert(at + 1);
                return Ok((String::from_utf8_lossy(&text).into_owned(), next));
            }
            0x00 => {
                let len = usize::from(len);
                let label = wire.get(at + 1..at + 1 + len).ok_or(NameError::Truncated)?;
                wire_len += 1 + len;
                if wire_len > MAX_NAME_LEN {
                    return Err(NameError::NameTooLong);
                }
                if !text.is_empty() {
                    text.push(b'.');
                }
                text.extend_from_slice(label);
                at += 1 + len;
            }
            0xc0 => {
                let low = *wire.get(at + 1).ok_or(NameError::Truncated)?;
                let target = (usize::from(len & 0x3f) << 8) | usize::from(low);
                // Strictly backwards from where this name (or the last jump) began: chains end.
                if target >= limit {
                    return Err(NameError::BadPointer);
                }
                after.get_or_insert(at + 2);
                limit = target;
                at = target;
            }
            _ => return Err(NameError::BadLabelType),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc3397_example() {
        // RFC 3397 §2's example: "eng.apple.com." and "marketing.apple.com.".
        let list = DomainList::new(["eng.apple.com.", "marketing.apple.com"]).unwrap();
        let mut expected = vec![3];
        expected.extend_from_slice(b"eng");
        expected.push(5);
        expected.extend_from_slice(b"apple");
        expected.push(3);
        expected.extend_from_slice(b"com");
        expected.push(0);
        expected.push(9);
        expected.extend_from_slice(b"marketing");
        expected.extend_from_slice(&[0xc0, 0x04]);
        assert_eq!(list.wire(), &expected[..]);
        assert_eq!(list.names(), ["eng.apple.com", "marketing.apple.com"]);
        assert_eq!(DomainList::decode(list.wire()).unwrap(), list);
    }

    #[test]
    fn whole_name_repeated_is_one_pointer() {
        let list = DomainList::new(["a.example", "a.example"]).unwrap();
        assert_eq!(&list.wire()[11..], &[0xc0, 0x00]);
        assert_eq!(DomainList::decode(list.wire()).unwrap(), list);
    }

    #[test]
    fn invalid_names_are_refused() {
        assert!(matches!(
            DomainList::new(["a..b"]),
            Err(NameError::EmptyLabel(_))
        ));
        assert!(matches!(
            DomainList::new([""]),
            Err(NameError::EmptyLabel(_))
        ));
        let long_label = "x".repeat(64);
        assert!(matches!(
            DomainList::new([long_label.as_str()]),
            Err(NameError::LabelTooLong(_))
        ));
        let long_name = ["abcdefghi"; 26].join(".");
        assert_eq!(
            DomainList::new([long_name.as_str()]),
            Err(NameError::NameTooLong)
        );
    }

    #[test]
    fn pointer_loops_are_refused() {
        assert_eq!(
            DomainList::decode(&[0xc0, 0x00]),
            Err(NameError::BadPointer)
        );
        assert_eq!(
            DomainList::decode(&[1, b'a', 0xc0, 0x00]),
            Err(NameError::BadPointer)
        );
        assert_eq!(
            DomainList::decode(&[1, b'a', 0, 0xc0, 0x05]),
            Err(NameError::BadPointer)
        );
        // A two-step loop: the second name points at the first, which points forward.
        assert_eq!(
            DomainList::decode(&[0xc0, 0x02, 0xc0, 0x00]),
            Err(NameError::BadPointer)
        );
    }

    #[test]
    fn truncated_and_reserved_are_refused() {
        assert_eq!(
            DomainList::decode(&[3, b'c', b'o']),
            Err(NameError::Truncated)
        );
        assert_eq!(DomainList::decode(&[1, b'a']), Err(NameError::Truncated));
        assert_eq!(
            DomainList::decode(&[1, b'a', 0, 0xc0]),
            Err(NameError::Truncated)
        );
        assert_eq!(DomainList::decode(&[0x40, 0]), Err(NameError::BadLabelType));
        assert_eq!(DomainList::decode(&[0x80, 0]), Err(NameError::BadLabelType));
    }

    #[test]
    fn long_pointer_chains_stop_at_255_bytes() {
        // Each name puts a 63-byte label in front of the previous one: 65, 129, 193, then 257.
        let mut wire = vec![63];
        wire.extend([b'a'; 63]);
        wire.push(0);
        let mut prev = 0usize;
        let mut push_name = |wire: &mut Vec<u8>| {
            let here = wire.len();
            wire.push(63);
            wire.extend([b'b'; 63]);
            wire.extend_from_slice(&[0xc0 | (prev >> 8) as u8, prev as u8]);
            prev = here;
        };
        push_name(&mut wire);
        push_name(&mut wire);
        assert_eq!(DomainList::decode(&wire).unwrap().names().len(), 3);
        push_name(&mut wire);
        assert_eq!(DomainList::decode(&wire), Err(NameError::NameTooLong));
    }

    fn arb_name() -> impl Strategy<Value = String> {
        proptest::collection::vec("[a-z0-9-]{1,12}", 1..5).prop_map(|l| l.join("."))
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(names in proptest::collection::vec(arb_name(), 0..12)) {
            let list = DomainList::new(&names).unwrap();
            let back = DomainList::decode(list.wire()).unwrap();
            prop_assert_eq!(back.names(), &names[..]);
            let plain: usize = names.iter().map(|n| n.len() + 2).sum();
            prop_assert!(list.wire().len() <= plain);
        }

        #[test]
        fn any_bytes_decode_without_panic(wire in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(list) = DomainList::decode(&wire) {
                for n in list.names() {
                    prop_assert!(n.len() < MAX_NAME_LEN);
                }
            }
        }
    }
}
