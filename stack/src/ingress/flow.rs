//! Flow keys: which guest conversation a packet belongs to, and which worker owns it.
//!
//! A [`FlowKey`] names a flow from the guest's side: the protocol, the guest's address and
//! port, the remote address and port. Both addresses are `IpAddr`, so one key type serves
//! IPv4 and IPv6. For ICMP echo the guest "port" is the echo identifier and the remote port
//! is 0; an ICMP error the guest sends is keyed by the datagram it quotes, so it reaches the
//! worker that owns that flow.
//!
//! [`FlowKey::hash`] is a seeded multiply-fold hash: a few multiplications per key, no
//! allocation, and with a random seed per process a guest cannot aim its flows at one worker.
//! [`FlowKey::worker`] maps the hash onto `n` workers without a division.

use core::net::{IpAddr, SocketAddr};
use core::ops::Range;

use crate::wire::{
    EthernetRepr, Icmpv4DstUnreachable, Icmpv4TimeExceeded, Icmpv6DstUnreachable,
    Icmpv6ParamProblem, Icmpv6TimeExceeded, IpAddresses, IpProtocol, Ipv4Repr, Ipv6Repr, TcpRepr,
    UdpRepr,
};

/// One flow, seen from the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowKey {
    pub protocol: IpProtocol,
    pub guest: SocketAddr,
    pub remote: SocketAddr,
}

/// Odd 64-bit constants (digits of pi) to whiten the seed per word.
const K: [u64; 4] = [
    0x243f_6a88_85a3_08d3,
    0x1319_8a2e_0370_7344,
    0xa409_3822_299f_31d0,
    0x082e_fa98_ec4e_6c89,
];

/// The high and low halves of the 128-bit product, folded together.
const fn fold_mul(a: u64, b: u64) -> u64 {
    let p = (a as u128).wrapping_mul(b as u128);
    (p as u64) ^ ((p >> 64) as u64)
}

fn addr_words(addr: IpAddr) -> (u64, u64) {
    match addr {
        IpAddr::V4(a) => (u64::from(a.to_bits()), 0),
        IpAddr::V6(a) => {
            let bits = a.to_bits();
            ((bits >> 64) as u64, bits as u64)
        }
    }
}

/// Hashing for hash maps: the key as five words, so that a keyed hasher (the tables' own,
/// seeded per process) makes one cheap pass over it. Keys that are equal give equal words.
impl core::hash::Hash for FlowKey {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        let (g_hi, g_lo) = addr_words(self.guest.ip());
        let (r_hi, r_lo) = addr_words(self.remote.ip());
        let ports = (u64::from(self.guest.port()) << 32)
            | (u64::from(self.remote.port()) << 16)
            | (u64::from(self.guest.is_ipv6()) << 8)
            | u64::from(u8::from(self.protocol));
        state.write_u64(ports);
        state.write_u64(g_hi);
        state.write_u64(g_lo);
        state.write_u64(r_hi);
        state.write_u64(r_lo);
    }
}

impl FlowKey {
    /// A 64-bit hash of the key under `seed`.
    pub fn hash(&self, seed: u64) -> u64 {
        let (g_hi, g_lo) = addr_words(self.guest.ip());
        let (r_hi, r_lo) = addr_words(self.remote.ip());
        let ports = (u64::from(self.guest.port()) << 32)
            | (u64::from(self.remote.port()) << 16)
            | u64::from(u8::from(self.protocol));
        let family = u64::from(self.guest.is_ipv6());
        let mut h = fold_mul(seed ^ K[0], ports ^ K[1] ^ (family << 63));
        h = fold_mul(h ^ g_hi, g_lo ^ K[2]);
        h = fold_mul(h ^ r_hi, r_lo ^ K[3]);
        fold_mul(h, seed ^ K[1])
    }

    /// The worker in `0..workers` that owns this flow (0 when `workers` is 0).
    pub fn worker(&self, seed: u64, workers: usize) -> usize {
        // Multiply-shift range reduction: uniform without a division.
        let wide = u128::from(self.hash(seed)).wrapping_mul(workers as u128);
        (wide >> 64) as usize
    }
}

/// The transport part of a flow-bound packet, owned (no borrow of the frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowL4 {
    Tcp(TcpRepr),
    Udp(UdpRepr),
    /// An ICMP or ICMPv6 echo request or reply (the family is the IP header's); the payload
    /// is the echo data.
    IcmpEcho {
        request: bool,
        ident: u16,
        seq_no: u16,
    },
    /// An ICMP error about a flow; the payload is the quoted datagram.
    IcmpDstUnreachable(Icmpv4DstUnreachable),
    IcmpTimeExceeded(Icmpv4TimeExceeded),
    /// ICMPv6 errors about a flow; the payload is the quoted packet.
    Icmpv6DstUnreachable(Icmpv6DstUnreachable),
    Icmpv6PacketTooBig {
        mtu: u32,
    },
    Icmpv6TimeExceeded(Icmpv6TimeExceeded),
    Icmpv6ParamProblem {
        reason: Icmpv6ParamProblem,
        pointer: u32,
    },
}

/// The network part of a flow-bound packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpHeader {
    V4(Ipv4Repr),
    /// The fixed header; `next_header` is the upper layer's protocol, extension headers
    /// having been walked.
    V6(Ipv6Repr),
}

impl IpHeader {
    pub const fn addresses(&self) -> IpAddresses {
        match *self {
            IpHeader::V4(ip) => IpAddresses::V4 {
                src: ip.src_addr,
                dst: ip.dst_addr,
            },
            IpHeader::V6(ip) => IpAddresses::V6 {
                src: ip.src_addr,
                dst: ip.dst_addr,
            },
        }
    }

    pub const fn hop_limit(&self) -> u8 {
        match *self {
            IpHeader::V4(ip) => ip.hop_limit,
            IpHeader::V6(ip) => ip.hop_limit,
        }
    }
}

/// Everything ingress learned about a flow-bound frame, without borrowing it: what a worker
/// receives next to the frame's bytes. `payload` indexes the frame: the TCP or UDP payload,
/// the echo data, or an ICMP error's quote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowPacket {
    pub key: FlowKey,
    pub eth: EthernetRepr,
    pub ip: IpHeader,
    pub l4: FlowL4,
    pub payload: Range<usize>,
}

impl FlowPacket {
    /// The payload within `frame`, the frame this packet was parsed from; empty for any other
    /// frame too short to hold it.
    pub fn payload<'a>(&self, frame: &'a [u8]) -> &'a [u8] {
        frame.get(self.payload.clone()).unwrap_or_default()
    }
}
