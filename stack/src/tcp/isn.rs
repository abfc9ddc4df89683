//! Initial sequence numbers (RFC 6528 §3): `ISN = M + F(localip, localport, remoteip,
//! remoteport, secretkey)`, where M is a timer ticking every 4 µs and F a keyed
//! pseudo-random function. F here is SipHash-2-4 (Aumasson and Bernstein, 2012) keyed with
//! the embedder's 128-bit secret, so an off-path attacker cannot predict the ISN of a
//! connection while two incarnations of one 4-tuple still get increasing ISNs.

use crate::time::Instant;
use crate::wire::ip::Addresses;
use core::net::IpAddr;

/// SipHash-2-4 of `data` under `key`.
pub(crate) fn siphash24(key: &[u8; 16], data: &[u8]) -> u64 {
    let mut k0b = [0u8; 8];
    let mut k1b = [0u8; 8];
    k0b.copy_from_slice(&key[..8]);
    k1b.copy_from_slice(&key[8..]);
    let (k0, k1) = (u64::from_le_bytes(k0b), u64::from_le_bytes(k1b));
    let mut v = [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ];
    let rounds = |v: &mut [u64; 4], n: usize| {
        for _ in 0..n {
            v[0] = v[0].wrapping_add(v[1]);
            v[1] = v[1].rotate_left(13) ^ v[0];
            v[0] = v[0].rotate_left(32);
            v[2] = v[2].wrapping_add(v[3]);
            v[3] = v[3].rotate_left(16) ^ v[2];
            v[0] = v[0].wrapping_add(v[3]);
            v[3] = v[3].rotate_left(21) ^ v[0];
            v[2] = v[2].wrapping_add(v[1]);
            v[1] = v[1].rotate_left(17) ^ v[2];
            v[2] = v[2].rotate_left(32);
        }
    };
    let mut chunks = data.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let m = u64::from_le_bytes(word);
        v[3] ^= m;
        rounds(&mut v, 2);
        v[0] ^= m;
    }
    // The last block: the remaining bytes, zero-padded, with the length's low byte on top.
    let rest = chunks.remainder();
    let mut last = [0u8; 8];
    last[..rest.len()].copy_from_slice(rest);
    last[7] = data.len() as u8;
    let m = u64::from_le_bytes(last);
    v[3] ^= m;
    rounds(&mut v, 2);
    v[0] ^= m;
    v[2] ^= 0xff;
    rounds(&mut v, 4);
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

fn put_ip(buf: &mut [u8; 36], at: &mut usize, ip: IpAddr) {
    let bytes: [u8; 16] = match ip {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    };
    if let Some(dst) = buf.get_mut(*at..*at + 16) {
        dst.copy_from_slice(&bytes);
    }
    *at += 16;
}

/// The RFC 6528 ISN for a connection from `addrs.src():local_port` (ours) to
/// `addrs.dst():remote_port`, at `now`.
pub(crate) fn initial_sequence_number(
    secret: &[u8; 16],
    addrs: &Addresses,
    local_port: u16,
    remote_port: u16,
    now: Instant,
) -> u32 {
    let mut buf = [0u8; 36];
    let mut at = 0;
    put_ip(&mut buf, &mut at, addrs.src());
    put_ip(&mut buf, &mut at, addrs.dst());
    buf[32..34].copy_from_slice(&local_port.to_be_bytes());
    buf[34..36].copy_from_slice(&remote_port.to_be_bytes());
    let f = siphash24(secret, &buf) as u32;
    // RFC 6528 §3: M ticks every 4 microseconds.
    let m = (now.as_micros() / 4) as u32;
    f.wrapping_add(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    /// The reference vector of the SipHash paper (Appendix A): key 00..0f, message 00..0e.
    #[test]
    fn siphash_reference_vector() {
        let key: [u8; 16] = core::array::from_fn(|i| i as u8);
        let msg: Vec<u8> = (0..15).collect();
        assert_eq!(siphash24(&key, &msg), 0xa129_ca61_49be_45e5);
        // And the empty message from the reference implementation's vectors.h.
        assert_eq!(siphash24(&key, &[]), 0x726f_db47_dd0e_0e31);
    }

    #[test]
    fn isn_depends_on_tuple_secret_and_time() {
        let addrs = Addresses::V4 {
            src: Ipv4Addr::new(192, 168, 127, 1),
            dst: Ipv4Addr::new(192, 168, 127, 2),
        };
        let secret = [7u8; 16];
        let t = Instant::from_micros(1000);
        let a = initial_sequence_number(&secret, &addrs, 80, 5000, t);
        assert_eq!(a, initial_sequence_number(&secret, &addrs, 80, 5000, t));
        assert_ne!(a, initial_sequence_number(&secret, &addrs, 80, 5001, t));
        assert_ne!(a, initial_sequence_number(&[8; 16], &addrs, 80, 5000, t));
        let later = initial_sequence_number(&secret, &addrs, 80, 5000, Instant::from_micros(1400));
        assert_eq!(later.wrapping_sub(a), 100);
    }
}
