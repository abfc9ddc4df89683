//! The Internet checksum (RFC 1071), pseudo-headers (RFC 768, RFC 9293 §3.1, RFC 8200 §8.1),
//! incremental update (RFC 1624), and which checksums a link takes care of
//! ([`ChecksumCapabilities`]).
//!
//! Sums are carried as [`Sum`], an unfolded 16-bit ones' complement accumulator, so a header, a
//! pseudo-header and a payload can be summed separately and combined before the final
//! complement. Every function here is total: any input, of any length, gives a value.
//!
//! Speed: the ones' complement sum does not depend on byte order (RFC 1071 §2(B)), so the data is
//! read as native-endian 32-bit words added into a 64-bit accumulator. That cannot overflow
//! for any slice shorter than 2^34 bytes, needs no carry handling inside the loop, and the
//! compiler vectorises it.

use core::net::{Ipv4Addr, Ipv6Addr};

/// A partial ones' complement sum, folded to 16 bits, in network (big-endian) numeric order.
///
/// Combine sums with `+`; finish with [`Sum::checksum`]. Each summed piece except
/// the last must have an even length, or the pieces after it would be misaligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sum(u16);

impl Sum {
    /// The sum of nothing.
    pub const ZERO: Sum = Sum(0);

    /// The sum of `data`, odd lengths padded with a zero byte at the end (RFC 1071 §1).
    #[inline]
    pub fn of(data: &[u8]) -> Sum {
        Sum(fold_native(sum_native(data)))
    }

    /// The sum of one 16-bit word given as a number.
    #[inline]
    pub fn of_u16(word: u16) -> Sum {
        Sum(word)
    }

    /// The folded sum as a number.
    #[inline]
    pub fn value(self) -> u16 {
        self.0
    }

    /// The checksum field value: the ones' complement of the sum.
    #[inline]
    pub fn checksum(self) -> u16 {
        !self.0
    }
}

impl core::ops::Add for Sum {
    type Output = Sum;

    /// Ones' complement addition: with end-around carry.
    #[inline]
    fn add(self, other: Sum) -> Sum {
        let total = u32::from(self.0) + u32::from(other.0);
        Sum(((total & 0xffff) + (total >> 16)) as u16)
    }
}

/// Sums `data` as native-endian words into a wide accumulator.
#[inline]
fn sum_native(data: &[u8]) -> u64 {
    let mut words = data.chunks_exact(4);
    let mut acc: u64 = words
        .by_ref()
        .map(|w| u64::from(u32::from_ne_bytes([w[0], w[1], w[2], w[3]])))
        .sum();
    let rest = words.remainder();
    if !rest.is_empty() {
        // Zero padding at the end keeps every byte at its position within its 16-bit word.
        let mut tail = [0u8; 4];
        tail[..rest.len()].copy_from_slice(rest);
        acc += u64::from(u32::from_ne_bytes(tail));
    }
    acc
}

/// Folds a native-endian wide sum to 16 bits and returns it in network numeric order.
#[inline]
fn fold_native(acc: u64) -> u16 {
    let mut s = (acc & 0xffff_ffff) + (acc >> 32);
    s = (s & 0xffff_ffff) + (s >> 32);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    u16::from_be_bytes((s as u16).to_ne_bytes())
}

/// The checksum (complemented sum) of `data` alone, as the IPv4 header checksum uses it.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    Sum::of(data).checksum()
}

/// The sum of the IPv4 pseudo-header: source, destination, zero, protocol, upper-layer length.
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u16) -> Sum {
    let [a, b, c, d] = src.octets();
    let [e, f, g, h] = dst.octets();
    Sum::of_u16(u16::from_be_bytes([a, b]))
        + Sum::of_u16(u16::from_be_bytes([c, d]))
        + Sum::of_u16(u16::from_be_bytes([e, f]))
        + Sum::of_u16(u16::from_be_bytes([g, h]))
        + Sum::of_u16(u16::from(protocol))
        + Sum::of_u16(length)
}

/// The sum of the IPv6 pseudo-header (RFC 8200 §8.1): source, destination, 32-bit upper-layer
/// length, next header.
pub fn pseudo_header_v6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, length: u32) -> Sum {
    let mut acc = sum_native(&src.octets()) + sum_native(&dst.octets());
    acc += u64::from(u32::from_ne_bytes(length.to_be_bytes()));
    acc += u64::from(u32::from_ne_bytes([0, 0, 0, next_header]));
    Sum(fold_native(acc))
}

/// RFC 1624 eqn. 3: the new checksum field after one 16-bit word of the covered data changed
/// from `old` to `new`, without summing the data again: `HC' = ~(~HC + ~m + m')`.
#[inline]
pub fn update(checksum: u16, old: u16, new: u16) -> u16 {
    (Sum::of_u16(!checksum) + Sum::of_u16(!old) + Sum::of_u16(new)).checksum()
}

/// [`update`] for a 32-bit field (an IPv4 address, a sequence number).
#[inline]
pub fn update_u32(checksum: u16, old: u32, new: u32) -> u16 {
    let c = update(checksum, (old >> 16) as u16, (new >> 16) as u16);
    update(c, old as u16, new as u16)
}

/// Which directions of one protocol's checksum are ours to handle: verified on receive
/// ([`Checksum::rx`]) and computed on transmit ([`Checksum::tx`]). A direction that is not
/// ours is the link's: it vouched for the data it delivered (a virtio-net header's
/// `NEEDS_CSUM` or `DATA_VALID`), or it completes what we send. A transport checksum left to
/// the link on transmit holds the pseudo-header's sum, uncomplemented, as a partial checksum
/// (Linux's `CHECKSUM_PARTIAL`) for the link to finish over the segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Checksum {
    /// Verified on receive and computed on transmit.
    #[default]
    Both,
    /// Verified on receive only.
    Rx,
    /// Computed on transmit only.
    Tx,
    /// Neither.
    None,
}

impl Checksum {
    /// Whether received packets are verified.
    pub const fn rx(self) -> bool {
        matches!(self, Checksum::Both | Checksum::Rx)
    }

    /// Whether sent packets get a complete checksum.
    pub const fn tx(self) -> bool {
        matches!(self, Checksum::Both | Checksum::Tx)
    }
}

/// What a link (or one frame's virtio-net header) does about checksums, per protocol. The
/// default handles every checksum here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ChecksumCapabilities {
    pub ipv4: Checksum,
    pub udp: Checksum,
    pub tcp: Checksum,
    pub icmpv4: Checksum,
    pub icmpv6: Checksum,
}

impl ChecksumCapabilities {
    /// A frame whose TCP and UDP checksums the link vouched for: they are not verified (its
    /// other checksums are, the IPv4 header's included).
    pub const fn transport_vouched() -> ChecksumCapabilities {
        ChecksumCapabilities {
            ipv4: Checksum::Both,
            udp: Checksum::Tx,
            tcp: Checksum::Tx,
            icmpv4: Checksum::Both,
            icmpv6: Checksum::Both,
        }
    }

    /// A link that completes the TCP checksum of what we send (checksum offload): the field
    /// carries the pseudo-header's sum for it to finish.
    pub const fn tcp_offloaded() -> ChecksumCapabilities {
        ChecksumCapabilities {
            ipv4: Checksum::Both,
            udp: Checksum::Both,
            tcp: Checksum::Rx,
            icmpv4: Checksum::Both,
            icmpv6: Checksum::Both,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn capabilities_say_which_direction_is_ours() {
        assert!(Checksum::Both.rx() && Checksum::Both.tx());
        assert!(Checksum::Rx.rx() && !Checksum::Rx.tx());
        assert!(!Checksum::Tx.rx() && Checksum::Tx.tx());
        assert!(!Checksum::None.rx() && !Checksum::None.tx());
        let vouched = ChecksumCapabilities::transport_vouched();
        assert!(!vouched.tcp.rx() && !vouched.udp.rx() && vouched.ipv4.rx());
        assert!(vouched.icmpv4.rx() && vouched.icmpv6.rx());
        assert!(!ChecksumCapabilities::tcp_offloaded().tcp.tx());
        assert_eq!(ChecksumCapabilities::default().tcp, Checksum::Both);
    }

    /// The byte-at-a-time definition of RFC 1071, as a reference.
    fn reference(data: &[u8]) -> u16 {
        let mut sum: u32 = 0;
        for pair in data.chunks(2) {
            let hi = u32::from(pair[0]) << 8;
            let lo = pair.get(1).map_or(0, |&b| u32::from(b));
            sum += hi | lo;
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum as u16
    }

    /// 0x0000 and 0xffff are the two zeros of ones' complement arithmetic.
    fn same_value(a: u16, b: u16) -> bool {
        a == b || (a == 0 && b == 0xffff) || (a == 0xffff && b == 0)
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(Sum::of(&data).value(), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(Sum::of(&[0xab]).value(), 0xab00);
        assert_eq!(Sum::of(&[0x01, 0x02, 0x03]).value(), 0x0402);
    }

    #[test]
    fn empty_is_zero() {
        assert_eq!(Sum::of(&[]), Sum::ZERO);
    }

    proptest! {
        #[test]
        fn matches_reference(data in proptest::collection::vec(any::<u8>(), 0..3000)) {
            prop_assert_eq!(Sum::of(&data).value(), reference(&data));
        }

        #[test]
        fn split_at_even_offset_combines(data in proptest::collection::vec(any::<u8>(), 0..600),
                                         cut in 0usize..300) {
            let cut = (cut * 2).min(data.len() & !1);
            let (a, b) = data.split_at(cut);
            prop_assert_eq!((Sum::of(a) + Sum::of(b)).value(), reference(&data));
        }

        #[test]
        fn incremental_update_matches_full(mut data in proptest::collection::vec(any::<u8>(), 2..200),
                                           word in any::<u16>(), at in any::<usize>()) {
            let at = (at % (data.len() / 2)) * 2;
            let before = checksum(&data);
            let old = u16::from_be_bytes([data[at], data[at + 1]]);
            data[at..at + 2].copy_from_slice(&word.to_be_bytes());
            prop_assert!(same_value(update(before, old, word), checksum(&data)));
        }

        #[test]
        fn incremental_update_u32(mut data in proptest::collection::vec(any::<u8>(), 4..64),
                                  new in any::<u32>()) {
            let before = checksum(&data);
            let old = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
            data[..4].copy_from_slice(&new.to_be_bytes());
            prop_assert!(same_value(update_u32(before, old, new), checksum(&data)));
        }

        #[test]
        fn pseudo_v6_matches_bytes(src in any::<[u8; 16]>(), dst in any::<[u8; 16]>(),
                                   nh in any::<u8>(), len in any::<u32>()) {
            let mut bytes = Vec::new();
            bytes.extend_from_slice(&src);
            bytes.extend_from_slice(&dst);
            bytes.extend_from_slice(&len.to_be_bytes());
            bytes.extend_from_slice(&[0, 0, 0, nh]);
            prop_assert_eq!(
                pseudo_header_v6(Ipv6Addr::from(src), Ipv6Addr::from(dst), nh, len).value(),
                reference(&bytes)
            );
        }

        #[test]
        fn pseudo_v4_matches_bytes(src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(),
                                   proto in any::<u8>(), len in any::<u16>()) {
            let mut bytes = Vec::new();
            bytes.extend_from_slice(&src);
            bytes.extend_from_slice(&dst);
            bytes.extend_from_slice(&[0, proto]);
            bytes.extend_from_slice(&len.to_be_bytes());
            prop_assert_eq!(
                pseudo_header_v4(Ipv4Addr::from(src), Ipv4Addr::from(dst), proto, len).value(),
                reference(&bytes)
            );
        }
    }
}
