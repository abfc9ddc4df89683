#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;

use super::*;

const MX: u16 = 15;

/// A query as dig sends it: id 0x1234, RD, one question, and an EDNS OPT record.
pub(crate) fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut q = Vec::new();
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x20, 0, 1, 0, 0, 0, 0, 0, 1]);
    push_name(&mut q, name);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&CLASS_IN.to_be_bytes());
    // OPT: root name, type 41, UDP size 1232, no options.
    q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    q
}

#[test]
fn test_parse_question() {
    let q = query(0x1234, "Host.Containers.Internal.", rtype::A);
    let msg = Message::new_checked(&q).unwrap();
    assert_eq!(msg.id(), 0x1234);
    assert!(!msg.is_response());
    assert_eq!((msg.opcode(), msg.qdcount(), msg.arcount()), (0, 1, 1));
    let question = msg.question().unwrap();
    assert_eq!(question.name.as_deref(), Some("host.containers.internal."));
    assert_eq!((question.qtype, question.qclass), (rtype::A, CLASS_IN));
    assert_eq!(question.range, 12..12 + 26 + 4);
}

#[test]
fn root_name() {
    let q = query(1, ".", rtype::SOA);
    let question = Message::new_checked(&q).unwrap().question().unwrap();
    assert_eq!(question.name.as_deref(), Some("."));
}

#[test]
fn odd_labels_are_not_names() {
    let mut q = query(1, "a.b.", rtype::A);
    q[13] = b'.';
    let question = Message::new_checked(&q).unwrap().question().unwrap();
    assert_eq!(question.name, None);
}

#[test]
fn malformed() {
    assert_eq!(
        Message::new_checked(&[0; 11]).unwrap_err(),
        ParseError::Truncated
    );
    let mut none = query(1, "a.", rtype::A);
    none[5] = 0;
    assert_eq!(
        Message::new_checked(&none).unwrap().question(),
        Err(ParseError::NoQuestion)
    );
    // A name that points at itself.
    let mut looped = query(1, "a.", rtype::A);
    looped.truncate(12);
    looped.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    assert_eq!(
        Message::new_checked(&looped).unwrap().question(),
        Err(ParseError::PointerLoop)
    );
    // A label longer than what is left.
    let mut past = query(1, "a.", rtype::A);
    past.truncate(12);
    past.extend_from_slice(&[10, b'a']);
    assert_eq!(
        Message::new_checked(&past).unwrap().question(),
        Err(ParseError::NamePastEnd)
    );
    let mut short = query(1, "a.", rtype::A);
    short.truncate(12 + 3 + 2);
    assert_eq!(
        Message::new_checked(&short).unwrap().question(),
        Err(ParseError::QuestionPastEnd)
    );
    let mut bad = query(1, "a.", rtype::A);
    bad[12] = 0x41;
    assert_eq!(
        Message::new_checked(&bad).unwrap().question(),
        Err(ParseError::BadLabel)
    );
}

#[test]
fn long_names_are_refused() {
    let mut q = query(1, "a.", rtype::A);
    q.truncate(12);
    for _ in 0..5 {
        q.push(63);
        q.extend_from_slice(&[b'x'; 63]);
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    assert_eq!(
        Message::new_checked(&q).unwrap().question(),
        Err(ParseError::NameTooLong)
    );
}

#[test]
fn test_emit_error_reply() {
    let q = query(0xbeef, "x.example.", MX);
    let msg = Message::new_checked(&q).unwrap();
    let question = msg.question().unwrap();
    let reply = error_reply(&msg, Some(&question), Rcode::ServFail);
    let r = Message::new_checked(&reply).unwrap();
    assert_eq!(r.id(), 0xbeef);
    assert!(r.is_response());
    assert_eq!(r.flags() & flags::RCODE_MASK, Rcode::ServFail as u16);
    assert_ne!(r.flags() & flags::RD, 0);
    assert_eq!((r.qdcount(), r.ancount(), r.arcount()), (1, 0, 0));
    assert_eq!(&reply[12..], &q[question.range]);
}

#[test]
fn truncate_keeps_header_and_question() {
    let mut answer = query(7, "big.example.", rtype::A);
    answer[2] |= 0x80;
    answer.extend_from_slice(&[0xaa; 2000]);
    let cut = truncate(&answer, 512).unwrap();
    let m = Message::new_checked(&cut).unwrap();
    assert_ne!(m.flags() & flags::TC, 0);
    assert_eq!(
        (m.qdcount(), m.ancount(), m.nscount(), m.arcount()),
        (1, 0, 0, 0)
    );
    assert_eq!(cut.len(), 12 + 13 + 4);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(msg) = Message::new_checked(&bytes) {
            let q = msg.question();
            let _ = error_reply(&msg, q.as_ref().ok(), Rcode::FormErr);
            let _ = truncate(&bytes, 20);
        }
    }

    #[test]
    fn names_round_trip(labels in proptest::collection::vec("[a-z0-9-]{1,20}", 1..6)) {
        let name = format!("{}.", labels.join("."));
        let q = query(1, &name, 1);
        let question = Message::new_checked(&q).unwrap().question().unwrap();
        prop_assert_eq!(question.name, Some(name));
    }
}
