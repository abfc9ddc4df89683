//! IP fragment reassembly, IPv4 (RFC 791 §3.2, RFC 815) and IPv6 (RFC 8200 §4.5), with hard
//! limits. Sans-IO: the caller passes the time in and sends what comes out.
//!
//! [`Reassembler::handle`] takes one IPv4 or IPv6 packet (no link-layer header) that is a
//! fragment and returns, once every piece is in, the whole datagram as an ordinary unfragmented
//! packet: for IPv4 the first fragment's header (options kept) with the flags and offset
//! cleared (DF kept), the total length set and the header checksum filled in; for IPv6 the
//! first fragment's unfragmentable part with the fragment header taken out, its next header
//! moved into the header before it, and the payload length set (RFC 8200 §4.5). The result
//! parses through the normal ingress path like any packet.
//!
//! Contracts:
//! - Nothing in a packet can make it panic (`#![forbid(unsafe_code)]`, checked arithmetic and
//!   checked slicing only).
//! - Every bound in [`Config`] is hard and counted: datagrams in progress, bytes held, the
//!   reassembled size, fragments per datagram, and the time a datagram may take.
//!   [`Stats::bytes_held`] — fragment data, saved headers and range bookkeeping, by capacity —
//!   never exceeds [`Config::max_bytes`].
//! - At a limit new work is refused and what is in progress is kept: a fragment that would
//!   start a datagram past [`Config::max_datagrams`] is dropped
//!   ([`FragDropReason::TooManyDatagrams`]); one that would push the bytes held past
//!   [`Config::max_bytes`] is dropped with its datagram, which could no longer complete
//!   ([`FragDropReason::MemoryLimit`]). Nothing older is evicted, so a flood of distinct
//!   identifications cannot push out datagrams that are about to complete; it can only fill
//!   the table until their timeouts free it. This is Linux's choice since 4.17, which drops
//!   new fragments above `ipfrag_high_thresh` instead of evicting queues. A reassembler
//!   serves whoever the caller gives it to: one per guest keeps one guest's flood from
//!   starving another's reassembly.
//! - Overlap abandons the datagram: RFC 5722 §4 requires it for IPv6, and we do the same for
//!   IPv4, where overlap has no legitimate use and every "which copy wins" policy has been an
//!   evasion or corruption vector (RFC 1858 §4, the teardrop attack). An exact duplicate
//!   (same offset, length and bytes) is not an overlap and is ignored (RFC 8200 §4.5).
//! - Since overlaps are refused, RFC 815's hole list reduces to a sorted list of the ranges
//!   received and a byte count: the datagram is whole when the last fragment has fixed its
//!   length and that many bytes are in.
//! - Each datagram owns one data buffer that grows to its highest end (exactly, once the
//!   last fragment gave the length), one saved first header and a range list; the result is
//!   the one allocation made when it completes.
//!
//! Timeouts ([`Config::timeout_v4`], [`Config::timeout_v6`]) run from a datagram's first
//! fragment. [`Reassembler::handle_timeout`] abandons the expired ones; for each whose
//! first fragment (offset 0) had arrived it queues an [`Expired`] notice, which the caller
//! may turn into an ICMP Time Exceeded, code 1 (RFC 792; RFC 1122 §3.3.2: not without
//! fragment zero) or ICMPv6 Time Exceeded, code 1 (RFC 8200 §4.5, RFC 4443 §3.3). The
//! notice carries the opaque tag the caller gave with that first fragment
//! ([`Reassembler::handle_tagged`]), such as the link-layer address it came from, so that the
//! caller needs no table of its own to know where the error goes.

mod datagram;
mod v4;
mod v6;

#[cfg(test)]
mod tests;

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use core::time::Duration;
use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::time::Instant;
use datagram::{Datagram, Piece};

/// The limits of a [`Reassembler`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Datagrams being reassembled at once, both families together.
    pub max_datagrams: usize,
    /// Bytes held across all datagrams.
    pub max_bytes: usize,
    /// The largest reassembled datagram: the IPv4 total length, or the IPv6 payload length
    /// (unfragmentable extension headers included). Clamped to 65535: no jumbograms.
    pub max_datagram_len: usize,
    /// Distinct fragments one datagram may have.
    pub max_fragments: usize,
    /// How long an IPv4 datagram may take from its first-arriving fragment.
    pub timeout_v4: Duration,
    /// How long an IPv6 packet may take from its first-arriving fragment.
    pub timeout_v6: Duration,
}

/// Linux's `net.ipv4.ipfrag_time`. RFC 791 §3.2 suggests a lower bound of 15 s for the timer;
/// 30 s lets a slow sender finish while bounding how long memory stays pinned.
pub const DEFAULT_TIMEOUT_V4: Duration = Duration::from_secs(30);

/// RFC 8200 §4.5: reassembly "must be abandoned" 60 s after the first-arriving fragment.
pub const DEFAULT_TIMEOUT_V6: Duration = Duration::from_secs(60);

/// Linux's `ipfrag_high_thresh` (4 MiB): past it new fragments are dropped.
pub const DEFAULT_MAX_BYTES: usize = 4 * 1024 * 1024;

/// A guest has a handful of fragmented datagrams in flight at most; 64 leaves room for bursts
/// while keeping the table small.
pub const DEFAULT_MAX_DATAGRAMS: usize = 64;

/// Every datagram in fragments of 8 bytes, the least RFC 791 §3.2 allows: 65535 bytes need
/// 8190. Linux has no such limit and answers a ping sent that way (hping3 and nmap's `-f`
/// send them), so the default does not refuse one either; what a datagram may hold is bounded
/// by [`Config::max_bytes`] (its range list counts there, 8 bytes a fragment), and inserting
/// a fragment moves at most that list. (FreeBSD's `net.inet.ip.maxfragsperpacket` is 16.)
pub const DEFAULT_MAX_FRAGMENTS: usize = 8192;

/// The 16-bit IPv4 total length and IPv6 payload length.
pub const MAX_DATAGRAM_LEN: usize = u16::MAX as usize;

/// [`Expired`] notices waiting for [`Reassembler::poll_expired`]; past this they are dropped
/// and counted in [`Stats::expired_notices_dropped`].
pub const MAX_PENDING_EXPIRED: usize = 16;

impl Default for Config {
    fn default() -> Config {
        Config {
            max_datagrams: DEFAULT_MAX_DATAGRAMS,
            max_bytes: DEFAULT_MAX_BYTES,
            max_datagram_len: MAX_DATAGRAM_LEN,
            max_fragments: DEFAULT_MAX_FRAGMENTS,
            timeout_v4: DEFAULT_TIMEOUT_V4,
            timeout_v6: DEFAULT_TIMEOUT_V6,
        }
    }
}

/// Why a fragment, or the datagram it belonged to, was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum FragDropReason {
    /// Not an IPv4 or IPv6 packet we accept: short, bad lengths, bad IPv4 header checksum, a
    /// bad IPv6 extension header chain.
    #[error("not a well-formed IP packet")]
    Malformed,
    /// Not a fragment (IPv4 offset 0 without MF; no IPv6 fragment header, or an atomic one):
    /// the caller should process it as it is.
    #[error("not a fragment")]
    NotFragment,
    /// A fragment with more to follow and no data.
    #[error("empty fragment with more to follow")]
    Empty,
    /// A fragment with more to follow whose length is not a multiple of 8 (RFC 791 §3.2,
    /// RFC 8200 §4.5).
    #[error("fragment with more to follow is not a multiple of 8 bytes")]
    Misaligned,
    /// The datagram would be longer than [`Config::max_datagram_len`] (at most 65535).
    #[error("reassembled datagram would be too long")]
    TooBig,
    /// The fragment overlaps another of its datagram without being an exact duplicate; the
    /// datagram is abandoned (RFC 5722).
    #[error("fragment overlaps another")]
    Overlap,
    /// The fragment contradicts the length a last fragment gave (a second last fragment with
    /// another end, data past the end, a last fragment ending before data received); the
    /// datagram is abandoned.
    #[error("fragment contradicts the datagram's length")]
    Inconsistent,
    /// The datagram already has [`Config::max_fragments`] fragments; it is abandoned.
    #[error("too many fragments in one datagram")]
    TooManyFragments,
    /// [`Config::max_datagrams`] datagrams are in progress; the new one is refused.
    #[error("too many datagrams being reassembled")]
    TooManyDatagrams,
    /// Holding the fragment would exceed [`Config::max_bytes`]; it is refused and its
    /// datagram abandoned.
    #[error("reassembly memory limit reached")]
    MemoryLimit,
    /// The datagram did not complete in time (counted by [`Reassembler::handle_timeout`],
    /// never returned).
    #[error("reassembly timed out")]
    Timeout,
}

impl FragDropReason {
    /// The number of reasons: the length of [`Stats::drops`].
    pub const COUNT: usize = 11;

    /// Every reason, in [`FragDropReason::index`] order.
    pub const ALL: [FragDropReason; FragDropReason::COUNT] = [
        FragDropReason::Malformed,
        FragDropReason::NotFragment,
        FragDropReason::Empty,
        FragDropReason::Misaligned,
        FragDropReason::TooBig,
        FragDropReason::Overlap,
        FragDropReason::Inconsistent,
        FragDropReason::TooManyFragments,
        FragDropReason::TooManyDatagrams,
        FragDropReason::MemoryLimit,
        FragDropReason::Timeout,
    ];

    /// The position of this reason's counter in [`Stats::drops`].
    pub const fn index(self) -> usize {
        match self {
            FragDropReason::Malformed => 0,
            FragDropReason::NotFragment => 1,
            FragDropReason::Empty => 2,
            FragDropReason::Misaligned => 3,
            FragDropReason::TooBig => 4,
            FragDropReason::Overlap => 5,
            FragDropReason::Inconsistent => 6,
            FragDropReason::TooManyFragments => 7,
            FragDropReason::TooManyDatagrams => 8,
            FragDropReason::MemoryLimit => 9,
            FragDropReason::Timeout => 10,
        }
    }

    /// A stable name for metrics.
    pub const fn name(self) -> &'static str {
        match self {
            FragDropReason::Malformed => "frag_malformed",
            FragDropReason::NotFragment => "frag_not_fragment",
            FragDropReason::Empty => "frag_empty",
            FragDropReason::Misaligned => "frag_misaligned",
            FragDropReason::TooBig => "frag_too_big",
            FragDropReason::Overlap => "frag_overlap",
            FragDropReason::Inconsistent => "frag_inconsistent",
            FragDropReason::TooManyFragments => "frag_too_many_fragments",
            FragDropReason::TooManyDatagrams => "frag_too_many_datagrams",
            FragDropReason::MemoryLimit => "frag_memory_limit",
            FragDropReason::Timeout => "frag_timeout",
        }
    }
}

/// What a datagram is known by: RFC 791 §3.2 (source, destination, protocol, identification)
/// and RFC 8200 §4.5 (source, destination, identification).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    V4 {
        src: Ipv4Addr,
        dst: Ipv4Addr,
        protocol: u8,
        ident: u16,
    },
    V6 {
        src: Ipv6Addr,
        dst: Ipv6Addr,
        ident: u32,
    },
}

impl Key {
    /// The source address, to which an ICMP error would go.
    pub fn src(&self) -> IpAddr {
        match *self {
            Key::V4 { src, .. } => IpAddr::V4(src),
            Key::V6 { src, .. } => IpAddr::V6(src),
        }
    }

    /// The destination address.
    pub fn dst(&self) -> IpAddr {
        match *self {
            Key::V4 { dst, .. } => IpAddr::V4(dst),
            Key::V6 { dst, .. } => IpAddr::V6(dst),
        }
    }
}

/// A datagram put back together: an unfragmented IPv4 or IPv6 packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reassembled {
    pub key: Key,
    packet: Vec<u8>,
}

impl Reassembled {
    /// The packet's bytes, from its IP header on.
    pub fn packet(&self) -> &[u8] {
        &self.packet
    }

    pub fn into_packet(self) -> Vec<u8> {
        self.packet
    }
}

/// A datagram abandoned at its timeout after its first fragment had arrived.
///
/// The caller may send its source an ICMP Time Exceeded, code 1 ("fragment reassembly time
/// exceeded"): ICMPv4 (`Icmpv4Repr::TimeExceeded` with `TimeExceeded::FragReassembly`) for
/// IPv4, ICMPv6 type 3 code 1 for IPv6, with [`Expired::quote`] as the message's data, from
/// the datagram's destination. Rate limiting is the caller's (RFC 1812 §4.3.2.8, RFC 4443 §2.4(f)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    pub key: Key,
    /// The tag given with the first fragment ([`Reassembler::handle_tagged`]; 0 through
    /// [`Reassembler::handle`]).
    pub tag: u64,
    /// The first fragment as it arrived, cut to what the error may quote: the IPv4 header and
    /// 8 bytes of data (RFC 792), or for IPv6 as much as fits a 1280-byte packet (RFC 4443 §2.4(c)).
    pub quote: Vec<u8>,
}

/// Counters and gauges of a [`Reassembler`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Fragments taken into a datagram (duplicates included).
    pub fragments: u64,
    /// Exact duplicates ignored.
    pub duplicates: u64,
    /// Datagrams completed.
    pub reassembled: u64,
    /// Datagrams abandoned, for any reason (timeouts included).
    pub abandoned: u64,
    /// Drops by [`FragDropReason::index`]: fragments refused, plus timeouts.
    pub drops: [u64; FragDropReason::COUNT],
    /// [`Expired`] notices queued.
    pub expired_notices: u64,
    /// [`Expired`] notices dropped because [`MAX_PENDING_EXPIRED`] were waiting.
    pub expired_notices_dropped: u64,
    /// Datagrams in progress now.
    pub datagrams: usize,
    /// Bytes held now.
    pub bytes_held: usize,
    /// The most bytes ever held at once.
    pub peak_bytes_held: usize,
}

impl Stats {
    /// Adds `other`'s counts to these (several reassemblers' totals); the peak is the larger.
    pub fn merge(&mut self, other: &Stats) {
        self.fragments += other.fragments;
        self.duplicates += other.duplicates;
        self.reassembled += other.reassembled;
        self.abandoned += other.abandoned;
        for (a, b) in self.drops.iter_mut().zip(other.drops.iter()) {
            *a += b;
        }
        self.expired_notices += other.expired_notices;
        self.expired_notices_dropped += other.expired_notices_dropped;
        self.datagrams += other.datagrams;
        self.bytes_held += other.bytes_held;
        self.peak_bytes_held = self.peak_bytes_held.max(other.peak_bytes_held);
    }

    /// The drops counted under `reason`.
    pub fn dropped(&self, reason: FragDropReason) -> u64 {
        self.drops.get(reason.index()).copied().unwrap_or(0)
    }
}

/// IPv4 and IPv6 fragment reassembly within fixed bounds. See the module docs.
#[derive(Debug)]
pub struct Reassembler {
    config: Config,
    datagrams: HashMap<Key, Datagram>,
    /// Deadlines in order; the `u64` makes entries unique.
    deadlines: BTreeMap<(Instant, u64), Key>,
    next_seq: u64,
    expired: VecDeque<Expired>,
    stats: Stats,
}

impl Reassembler {
    pub fn new(config: Config) -> Reassembler {
        let config = Config {
            max_datagram_len: config.max_datagram_len.min(MAX_DATAGRAM_LEN),
            ..config
        };
        Reassembler {
            config,
            datagrams: HashMap::new(),
            deadlines: BTreeMap::new(),
            next_seq: 0,
            expired: VecDeque::new(),
            stats: Stats::default(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn stats(&self) -> Stats {
        Stats {
            datagrams: self.datagrams.len(),
            ..self.stats
        }
    }

    /// Takes one fragment, an IPv4 or IPv6 packet from its IP header on (padding past its
    /// length is ignored). Returns the whole datagram when this fragment completed it,
    /// `Ok(None)` when it was kept (or was an exact duplicate), or why it was dropped, which
    /// is also counted. Datagrams past their deadline are expired first.
    pub fn handle(
        &mut self,
        now: Instant,
        packet: &[u8],
    ) -> Result<Option<Reassembled>, FragDropReason> {
        self.handle_tagged(now, packet, 0)
    }

    /// [`Reassembler::handle`], with an opaque `tag` kept if this is the datagram's first
    /// fragment (offset 0) and handed back in its [`Expired`] notice. Tags of other
    /// fragments, and of duplicates of the first, are ignored.
    pub fn handle_tagged(
        &mut self,
        now: Instant,
        packet: &[u8],
        tag: u64,
    ) -> Result<Option<Reassembled>, FragDropReason> {
        self.handle_timeout(now);
        let result = self.handle_inner(now, packet, tag);
        if let Err(reason) = result {
            self.count(reason);
        }
        result
    }

    /// When [`Reassembler::handle_timeout`] next has work: the earliest deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.keys().next().map(|&(at, _)| at)
    }

    /// Abandons every datagram whose deadline is at or before `now`, counting each as
    /// [`FragDropReason::Timeout`] and queuing an [`Expired`] notice for those whose first
    /// fragment had arrived.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(entry) = self.deadlines.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let key = entry.remove();
            let Some(datagram) = self.datagrams.remove(&key) else {
                continue;
            };
            self.release(&datagram);
            self.count(FragDropReason::Timeout);
            self.stats.abandoned += 1;
            if let Some(quote) = datagram.quote(&key) {
                if self.expired.len() < MAX_PENDING_EXPIRED {
                    let tag = datagram.tag;
                    self.expired.push_back(Expired { key, tag, quote });
                    self.stats.expired_notices += 1;
                } else {
                    self.stats.expired_notices_dropped += 1;
                }
            }
        }
    }

    /// The next datagram abandoned at its timeout after its first fragment had arrived.
    pub fn poll_expired(&mut self) -> Option<Expired> {
        self.expired.pop_front()
    }

    fn handle_inner(
        &mut self,
        now: Instant,
        packet: &[u8],
        tag: u64,
    ) -> Result<Option<Reassembled>, FragDropReason> {
        let piece = match packet.first().map(|b| b >> 4) {
            Some(4) => v4::piece(packet)?,
            Some(6) => v6::piece(packet)?,
            _ => return Err(FragDropReason::Malformed),
        };
        let max_len = self.config.max_datagram_len;
        if piece.more && piece.data.is_empty() {
            return Err(FragDropReason::Empty);
        }
        if piece.more && !piece.data.len().is_multiple_of(8) {
            return Err(FragDropReason::Misaligned);
        }
        let end = piece.offset.saturating_add(piece.data.len());
        if end.saturating_add(piece.header_extra) > max_len {
            return Err(FragDropReason::TooBig);
        }
        if !self.datagrams.contains_key(&piece.key) {
            self.start(now, &piece)?;
        }
        let budget = self.config.max_bytes.saturating_sub(self.stats.bytes_held);
        let Some(datagram) = self.datagrams.get_mut(&piece.key) else {
            return Err(FragDropReason::TooManyDatagrams);
        };
        let before = datagram.footprint();
        let outcome = datagram.insert(&piece, end, budget, max_len, self.config.max_fragments);
        // A first fragment that was kept (not a duplicate) is the one whose header is saved.
        if outcome == Ok(datagram::Progress::Kept) && piece.first.is_some() {
            datagram.tag = tag;
        }
        let after = datagram.footprint();
        self.stats.bytes_held = self
            .stats
            .bytes_held
            .saturating_sub(before)
            .saturating_add(after);
        self.stats.peak_bytes_held = self.stats.peak_bytes_held.max(self.stats.bytes_held);
        match outcome {
            Err(reason) => {
                self.abandon(&piece.key);
                Err(reason)
            }
            Ok(datagram::Progress::Duplicate) => {
                self.stats.fragments += 1;
                self.stats.duplicates += 1;
                Ok(None)
            }
            Ok(datagram::Progress::Kept) => {
                self.stats.fragments += 1;
                Ok(None)
            }
            Ok(datagram::Progress::Complete) => {
                self.stats.fragments += 1;
                let Some(datagram) = self.remove(&piece.key) else {
                    return Ok(None);
                };
                let packet = match piece.key {
                    Key::V4 { .. } => v4::rebuild(&datagram),
                    Key::V6 { .. } => v6::rebuild(&datagram),
                };
                self.stats.reassembled += 1;
                Ok(Some(Reassembled {
                    key: piece.key,
                    packet,
                }))
            }
        }
    }

    /// Starts a datagram for `piece`, if the table has room.
    fn start(&mut self, now: Instant, piece: &Piece<'_>) -> Result<(), FragDropReason> {
        if self.datagrams.len() >= self.config.max_datagrams {
            return Err(FragDropReason::TooManyDatagrams);
        }
        let timeout = match piece.key {
            Key::V4 { .. } => self.config.timeout_v4,
            Key::V6 { .. } => self.config.timeout_v6,
        };
        let deadline = now + timeout;
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        self.deadlines.insert((deadline, seq), piece.key);
        self.datagrams
            .insert(piece.key, Datagram::new((deadline, seq)));
        Ok(())
    }

    /// Removes a datagram and its deadline, releasing its bytes.
    fn remove(&mut self, key: &Key) -> Option<Datagram> {
        let datagram = self.datagrams.remove(key)?;
        self.deadlines.remove(&datagram.deadline());
        self.release(&datagram);
        Some(datagram)
    }

    /// Removes a datagram a fragment made impossible to complete.
    fn abandon(&mut self, key: &Key) {
        if self.remove(key).is_some() {
            self.stats.abandoned += 1;
        }
    }

    fn release(&mut self, datagram: &Datagram) {
        self.stats.bytes_held = self.stats.bytes_held.saturating_sub(datagram.footprint());
    }

    fn count(&mut self, reason: FragDropReason) {
        if let Some(counter) = self.stats.drops.get_mut(reason.index()) {
            *counter += 1;
        }
    }
}
