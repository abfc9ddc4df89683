//! A virtio-net header on a stream link, agreed by both ends, never assumed.
//!
//! The guest agent (`host-switch guest`) reads its TAP with a virtio-net header, so the kernel
//! hands it TCP super-segments of up to 64 KiB with partial checksums; host-switch's workers
//! take and send such frames on their own TAP queues. Carrying the header on the stream
//! between the two spares the agent cutting every super-segment in software and host-switch
//! handling each MSS on its own. Every other peer of `POST /connect` (gvproxy's gvforwarder,
//! a VM's virtio-serial port) sends and expects plain frames, so the header is offered,
//! accepted and acknowledged, one direction switching at a time:
//!
//! 1. The agent offers it in its `POST /connect` request: [`OFFER_HEADER`], with `vnet-hdr`
//!    and a random nonce ([`Offer::request_header`]). gvproxy ignores headers it does not know.
//! 2. host-switch, where its offloads are on, a worker serves the stream and the link's MTU
//!    leaves room for the header in the length (at most 65,505 bytes), accepts: the first
//!    frame it sends is the accept marker, and every frame after it carries the 12-byte header
//!    in front of the Ethernet frame, inside the same 2-byte length.
//! 3. The agent, finding the accept marker as the first frame of the connection, reads the
//!    header on every frame after it and sends the acknowledge marker; every frame it sends
//!    after that carries the header too. host-switch reads plain frames until the
//!    acknowledgement.
//!
//! An end that never answers leaves its peer on plain frames: a host that ignores the offer
//! sends no marker, and the agent never sends a header; an agent that offered and never
//! acknowledges gets headers, while its own frames are still read as plain.
//!
//! A marker is an Ethernet frame no guest sends: both addresses zero, the IEEE local
//! experimental EtherType 0x88B5, a fixed text and the offer's nonce. The agent drew the nonce
//! and sent it to host-switch only, so on a switch that does not know the protocol a frame
//! from another guest cannot pass for a marker.
//!
//! The 2-byte length bounds a frame with its header at 65,535 bytes. Super-segments
//! host-switch sends on such a stream carry at most what fits ([`LINK_OFFLOADS`]); the agent
//! caps its TAP's `gso_max_size` at [`GSO_MAX_SIZE`]; a frame that would still not fit is
//! finished in software and sent as its segments.

use stack::offload::LinkOffloads;
use stack::wire::virtio_net::HEADER_LEN;
use stack::wire::{VirtioNetError, VirtioNetRepr};

/// The request header that offers a virtio-net header (lower case, as requests are parsed).
pub const OFFER_HEADER: &str = "x-host-switch-offload";
/// The largest frame on such a stream, header included: what the 2-byte length says.
pub const MAX_FRAME: usize = u16::MAX as usize;
/// The largest Ethernet frame behind the header.
pub const MAX_ETHERNET: usize = MAX_FRAME - HEADER_LEN;
/// What host-switch's sending side may ask of a stream with the header: offloads as on a TAP,
/// super-segments no larger than a frame carries.
pub const LINK_OFFLOADS: LinkOffloads = LinkOffloads::VIRTIO_NET.within_frame(MAX_ETHERNET);
/// The `gso_max_size` the agent gives its TAP, so that the kernel's super-segments fit.
pub const GSO_MAX_SIZE: u32 = MAX_ETHERNET as u32;

// The largest super-segment we send (header, Ethernet, IPv6, the longest TCP header, payload)
// fills the 2-byte length exactly.
const _: () = assert!(HEADER_LEN + 14 + 40 + 60 + LINK_OFFLOADS.super_payload == MAX_FRAME);

/// The offer's keyword, before its nonce.
const KEYWORD: &str = "vnet-hdr";
/// IEEE 802 local experimental EtherType 1.
const MARKER_ETHERTYPE: [u8; 2] = [0x88, 0xb5];
const ACCEPT_TEXT: &[u8; 16] = b"hs vnet accept 1";
const ACK_TEXT: &[u8; 16] = b"hs vnet ack    1";
/// A marker's length: addresses, EtherType, text, nonce.
pub const MARKER_LEN: usize = 12 + 2 + 16 + 8;

/// One offer: its nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offer {
    pub nonce: u64,
}

impl Offer {
    /// A new offer with a random nonce.
    pub fn random() -> Offer {
        Offer {
            nonce: rand::random(),
        }
    }

    /// The request header line that makes the offer, CRLF included.
    pub fn request_header(&self) -> String {
        format!(
            "X-Host-Switch-Offload: {KEYWORD} nonce={:016x}\r\n",
            self.nonce
        )
    }

    /// The offer an [`OFFER_HEADER`] value makes, if it is one.
    pub fn parse(value: &str) -> Option<Offer> {
        let mut words = value.split_ascii_whitespace();
        if words.next() != Some(KEYWORD) {
            return None;
        }
        let hex = words.next()?.strip_prefix("nonce=")?;
        if hex.len() != 16 || words.next().is_some() {
            return None;
        }
        u64::from_str_radix(hex, 16)
            .ok()
            .map(|nonce| Offer { nonce })
    }

    /// The frame host-switch sends first when it accepts.
    pub fn accept_marker(&self) -> [u8; MARKER_LEN] {
        self.marker(ACCEPT_TEXT)
    }

    /// The frame the agent sends when it has seen the accept marker.
    pub fn ack_marker(&self) -> [u8; MARKER_LEN] {
        self.marker(ACK_TEXT)
    }

    pub fn is_accept(&self, frame: &[u8]) -> bool {
        frame == self.accept_marker()
    }

    pub fn is_ack(&self, frame: &[u8]) -> bool {
        frame == self.ack_marker()
    }

    fn marker(&self, text: &[u8; 16]) -> [u8; MARKER_LEN] {
        let mut frame = [0u8; MARKER_LEN];
        let (addresses_and_type, rest) = frame.split_at_mut(14);
        addresses_and_type[12..].copy_from_slice(&MARKER_ETHERTYPE);
        let (text_part, nonce) = rest.split_at_mut(16);
        text_part.copy_from_slice(text);
        nonce.copy_from_slice(&self.nonce.to_be_bytes());
        frame
    }
}

/// How the accepting end takes the frames it reads: plain until the peer acknowledges, each
/// with its header, checked against its frame, after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// The offer accepted, whose acknowledgement switches to the header.
    offer: Option<Offer>,
    with_header: bool,
    /// The largest plain frame.
    plain_max: usize,
}

/// One frame read, as [`Inbound::take`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken<'a> {
    /// The acknowledgement: no frame; every frame from now on carries the header.
    Agreed,
    /// An Ethernet frame and its header as checked (plain before the acknowledgement). A
    /// frame too short for a header is empty, with [`VirtioNetError::Truncated`].
    Frame(&'a [u8], Result<VirtioNetRepr, VirtioNetError>),
    /// A plain frame over the link's limit.
    TooLong { len: usize, max: usize },
}

impl Inbound {
    /// Frames of a stream that accepted `offer` (or none), plain ones at most `plain_max`
    /// bytes.
    pub fn new(offer: Option<Offer>, plain_max: usize) -> Inbound {
        Inbound {
            offer,
            with_header: false,
            plain_max,
        }
    }

    /// Whether frames read now carry the header.
    pub fn with_header(&self) -> bool {
        self.with_header
    }

    /// Takes one frame as read from the stream.
    pub fn take<'a>(&mut self, frame: &'a [u8]) -> Taken<'a> {
        if !self.with_header {
            if self.offer.is_some_and(|o| o.is_ack(frame)) {
                self.with_header = true;
                return Taken::Agreed;
            }
            if frame.len() > self.plain_max {
                return Taken::TooLong {
                    len: frame.len(),
                    max: self.plain_max,
                };
            }
            return Taken::Frame(frame, Ok(VirtioNetRepr::PLAIN));
        }
        match frame.split_first_chunk::<HEADER_LEN>() {
            Some((header, rest)) => Taken::Frame(rest, VirtioNetRepr::parse_for(header, rest)),
            None => Taken::Frame(&[], Err(VirtioNetError::Truncated)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offer_reads_back_and_nothing_else_is_one() {
        let offer = Offer {
            nonce: 0x0123_4567_89ab_cdef,
        };
        let line = offer.request_header();
        assert_eq!(
            line,
            "X-Host-Switch-Offload: vnet-hdr nonce=0123456789abcdef\r\n"
        );
        let value = line.split_once(": ").unwrap().1.trim_end();
        assert_eq!(Offer::parse(value), Some(offer));
        for bad in [
            "",
            "vnet-hdr",
            "vnet-hdr nonce=",
            "vnet-hdr nonce=0123",
            "vnet-hdr nonce=0123456789abcdefg",
            "vnet-hdr nonce=0123456789abcdex",
            "vnet-hdr nonce=0123456789abcdef extra",
            "tso nonce=0123456789abcdef",
        ] {
            assert_eq!(Offer::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn frames_are_plain_until_the_acknowledgement_then_carry_the_header() {
        let offer = Offer { nonce: 3 };
        let mut inbound = Inbound::new(Some(offer), 100);
        let frame = [7u8; 60];
        assert_eq!(
            inbound.take(&frame),
            Taken::Frame(&frame, Ok(VirtioNetRepr::PLAIN))
        );
        assert_eq!(
            inbound.take(&[0; 101]),
            Taken::TooLong { len: 101, max: 100 }
        );
        let other = Offer { nonce: 4 }.ack_marker();
        assert_eq!(
            inbound.take(&other),
            Taken::Frame(&other, Ok(VirtioNetRepr::PLAIN))
        );
        assert_eq!(inbound.take(&offer.ack_marker()), Taken::Agreed);
        assert!(inbound.with_header());
        let with = [[0u8; HEADER_LEN].as_slice(), &frame].concat();
        assert_eq!(
            inbound.take(&with),
            Taken::Frame(&frame, Ok(VirtioNetRepr::PLAIN))
        );
        // A second acknowledgement is a frame with a header like any other.
        let ack = offer.ack_marker();
        assert!(matches!(inbound.take(&ack), Taken::Frame(_, _)));
        assert_eq!(
            inbound.take(&[1, 2, 3]),
            Taken::Frame(&[], Err(VirtioNetError::Truncated))
        );
        let mut bad = with.clone();
        bad[1] = 9;
        assert_eq!(
            inbound.take(&bad),
            Taken::Frame(&frame, Err(VirtioNetError::UnknownGsoType))
        );
        // Without an offer, an acknowledgement is only a frame.
        let mut plain = Inbound::new(None, 100);
        assert!(matches!(plain.take(&ack), Taken::Frame(_, Ok(_))));
        assert!(!plain.with_header());
    }

    #[test]
    fn markers_name_their_side_and_nonce() {
        let offer = Offer { nonce: 7 };
        let other = Offer { nonce: 8 };
        let accept = offer.accept_marker();
        assert!(offer.is_accept(&accept));
        assert!(!offer.is_ack(&accept));
        assert!(!other.is_accept(&accept));
        assert!(offer.is_ack(&offer.ack_marker()));
        assert_eq!(&accept[..12], &[0; 12]);
        assert_eq!(&accept[12..14], &MARKER_ETHERTYPE);
        assert!(!offer.is_accept(&accept[..MARKER_LEN - 1]));
    }
}
