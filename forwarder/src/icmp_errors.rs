//! ICMP errors from the host's network, passed on to the guest whose packet drew them.
//!
//! A host socket with `IP_RECVERR` / `IPV6_RECVERR` (ip(7), ipv6(7)) queues every ICMP error
//! about what it sent, with the ICMP type and code, the reporting router (the offender) and,
//! for "too big", the MTU ([`crate::sys::QueuedError`]); a raw ICMP socket reads the errors
//! themselves. [`classify`] turns one into the [`GuestError`] the guest gets, the same
//! message in the guest's family: port and host unreachable, time exceeded (what a guest's
//! `traceroute` waits for), fragmentation needed / packet too big with the MTU,
//! administratively prohibited. [`error_frame`] builds it: from the offender (or the
//! destination itself), as the guest knows that address ([`crate::nat::Nat::inbound`]), to
//! the guest, quoting the guest's packet as rebuilt from the flow ([`crate::frame::synth_quote`],
//! or an echo request's header) — what the guest's stack matches the error to its socket by.
//!
//! Errors that are not ICMP (a local EMSGSIZE, say), and ICMP types other than these, are
//! not passed on.

use std::net::IpAddr;

use bytes::Bytes;
use stack::wire::{
    EthernetAddress, Icmpv4DstUnreachable, Icmpv4Packet, Icmpv4Repr, Icmpv4TimeExceeded,
    Icmpv6DstUnreachable, Icmpv6Packet, Icmpv6Repr, Icmpv6TimeExceeded, IpAddresses, IpProtocol,
    Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr, ipv4, ipv6,
};

use crate::frame::{Built, Framer, TTL};

/// `ee_origin` values of `struct sock_extended_err` (linux/errqueue.h).
pub(crate) const ORIGIN_ICMP: u8 = 2;
pub(crate) const ORIGIN_ICMP6: u8 = 3;

/// The error a guest gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GuestError {
    NetUnreachable,
    HostUnreachable,
    PortUnreachable,
    AdminProhibited,
    /// Fragmentation needed (IPv4) or packet too big (IPv6), with the path's MTU.
    TooBig(u32),
    /// TTL or hop limit exceeded in transit.
    TimeExceeded,
}

/// What an ICMP error of `origin`, `icmp_type` and `icmp_code` (with `info`, the MTU of a
/// "too big") means for the guest; `None` for anything not passed on.
pub(crate) fn classify(origin: u8, icmp_type: u8, icmp_code: u8, info: u32) -> Option<GuestError> {
    use GuestError::*;
    match (origin, icmp_type) {
        // RFC 792 destination unreachable, RFC 1812 §5.2.7.1's codes.
        (ORIGIN_ICMP, 3) => Some(match icmp_code {
            0 | 6 | 11 => NetUnreachable,
            3 => PortUnreachable,
            4 => TooBig(info),
            9 | 10 | 13 => AdminProhibited,
            _ => HostUnreachable,
        }),
        (ORIGIN_ICMP, 11) => Some(TimeExceeded),
        // RFC 4443 §3.1-3.3.
        (ORIGIN_ICMP6, 1) => Some(match icmp_code {
            0 => NetUnreachable,
            1 | 5 | 6 => AdminProhibited,
            4 => PortUnreachable,
            _ => HostUnreachable,
        }),
        (ORIGIN_ICMP6, 2) => Some(TooBig(info)),
        (ORIGIN_ICMP6, 3) => Some(TimeExceeded),
        _ => None,
    }
}

/// The same classification for an ICMP or ICMPv6 message a raw socket read: its type and
/// code, and the MTU field of a "too big".
pub(crate) fn classify_message(
    v6: bool,
    icmp_type: u8,
    icmp_code: u8,
    mtu: u32,
) -> Option<GuestError> {
    let origin = if v6 { ORIGIN_ICMP6 } else { ORIGIN_ICMP };
    classify(origin, icmp_type, icmp_code, mtu)
}

/// The quote of a guest's echo request: its IP header (guest → `remote`) and the ICMP or
/// ICMPv6 echo header with the guest's identifier and sequence number.
pub(crate) fn echo_quote(addrs: IpAddresses, ident: u16, seq_no: u16) -> Vec<u8> {
    let mut out = match addrs {
        IpAddresses::V4 { src, dst } => {
            let mut buf = vec![0u8; ipv4::HEADER_LEN];
            Ipv4Repr {
                src_addr: src,
                dst_addr: dst,
                next_header: IpProtocol::Icmp,
                payload_len: 8,
                hop_limit: TTL,
                ident: 0,
                dont_frag: true,
                more_frags: false,
                frag_offset: 0,
                dscp: 0,
                ecn: 0,
            }
            .emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]));
            buf.push(8);
            buf
        }
        IpAddresses::V6 { src, dst } => {
            let mut buf = vec![0u8; ipv6::HEADER_LEN];
            Ipv6Repr {
                src_addr: src,
                dst_addr: dst,
                next_header: IpProtocol::Icmpv6,
                payload_len: 8,
                hop_limit: TTL,
                dscp: 0,
                ecn: 0,
                flow_label: 0,
            }
            .emit(&mut Ipv6Packet::new_unchecked(&mut buf[..]));
            buf.push(128);
            buf
        }
    };
    // Code 0, checksum (not checked by receivers of a quote), identifier, sequence.
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&ident.to_be_bytes());
    out.extend_from_slice(&seq_no.to_be_bytes());
    out
}

/// The error frame to the guest at `mac`: from `from` (as the guest knows it) to `guest`,
/// quoting `quote`. `None` when the families differ.
pub(crate) fn error_frame(
    framer: &mut Framer,
    mac: EthernetAddress,
    from: IpAddr,
    guest: IpAddr,
    error: GuestError,
    quote: &[u8],
) -> Option<Bytes> {
    let addrs = crate::frame::addresses(from, guest)?;
    match addrs {
        IpAddresses::V4 { .. } => {
            // RFC 792: the IP header and the first 64 bits of the datagram's data.
            let quote = quote.get(..quote.len().min(ipv4::HEADER_LEN + 8))?;
            let icmp = match error {
                GuestError::TimeExceeded => Icmpv4Repr::TimeExceeded {
                    reason: Icmpv4TimeExceeded::TtlExpired,
                    data: quote,
                },
                other => Icmpv4Repr::DstUnreachable {
                    reason: match other {
                        GuestError::NetUnreachable => Icmpv4DstUnreachable::NetUnreachable,
                        GuestError::PortUnreachable => Icmpv4DstUnreachable::PortUnreachable,
                        GuestError::AdminProhibited => Icmpv4DstUnreachable::AdminProhibited,
                        GuestError::TooBig(mtu) => Icmpv4DstUnreachable::FragNeeded {
                            next_hop_mtu: mtu.min(u32::from(u16::MAX)) as u16,
                        },
                        _ => Icmpv4DstUnreachable::HostUnreachable,
                    },
                    data: quote,
                },
            };
            let frame = framer.ip(mac, addrs, IpProtocol::Icmp, icmp.buffer_len(), 0, |l4| {
                icmp.emit(&mut Icmpv4Packet::new_unchecked(l4));
            });
            frame.map(Built::into_bytes)
        }
        IpAddresses::V6 { .. } => {
            let icmp = match error {
                GuestError::TimeExceeded => Icmpv6Repr::TimeExceeded {
                    reason: Icmpv6TimeExceeded::HopLimitExceeded,
                    invoking: quote,
                },
                GuestError::TooBig(mtu) => Icmpv6Repr::PacketTooBig {
                    mtu,
                    invoking: quote,
                },
                other => Icmpv6Repr::DstUnreachable {
                    reason: match other {
                        GuestError::NetUnreachable => Icmpv6DstUnreachable::NoRoute,
                        GuestError::PortUnreachable => Icmpv6DstUnreachable::PortUnreachable,
                        GuestError::AdminProhibited => Icmpv6DstUnreachable::AdminProhibited,
                        _ => Icmpv6DstUnreachable::AddrUnreachable,
                    },
                    invoking: quote,
                },
            };
            let frame = framer.ip(mac, addrs, IpProtocol::Icmpv6, icmp.buffer_len(), 0, |l4| {
                icmp.emit(&mut Icmpv6Packet::new_unchecked(l4), &addrs);
            });
            frame.map(Built::into_bytes)
        }
    }
}

/// An ICMP or ICMPv6 error read whole from a raw socket: the reporting address is the
/// packet's source; what it says ([`classify_message`]), and the echo request it quotes
/// (destination, identifier, sequence). `v4_with_header`: an IPv4 raw socket hands over the
/// IP header too.
pub(crate) fn quoted_echo(bytes: &[u8], v6: bool) -> Option<(GuestError, IpAddr, u16, u16)> {
    if v6 {
        let packet = Icmpv6Packet::new_checked(bytes).ok()?;
        let ty = u8::from(packet.msg_type());
        let error = classify_message(true, ty, packet.msg_code(), packet.mtu())?;
        let quoted = Ipv6Packet::new_quoted(packet.payload()).ok()?;
        let chain = quoted.header_chain().ok()?;
        let inner = quoted.payload().get(chain.offset..)?;
        let (t, ident, seq) = echo_fields(inner)?;
        (t == 128).then_some((error, IpAddr::V6(quoted.dst_addr()), ident, seq))
    } else {
        let ip = Ipv4Packet::new_checked(bytes).ok()?;
        let icmp = Icmpv4Packet::new_checked(ip.payload()).ok()?;
        let ty = u8::from(icmp.msg_type());
        let error = classify_message(false, ty, icmp.msg_code(), u32::from(icmp.next_hop_mtu()))?;
        let quoted = Ipv4Packet::new_quoted(icmp.data()).ok()?;
        let (t, ident, seq) = echo_fields(quoted.payload())?;
        (t == 8).then_some((error, IpAddr::V4(quoted.dst_addr()), ident, seq))
    }
}

/// (type, identifier, sequence) of the echo header at the start of `bytes`.
fn echo_fields(bytes: &[u8]) -> Option<(u8, u16, u16)> {
    let h: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    Some((
        h[0],
        u16::from_be_bytes([h[4], h[5]]),
        u16::from_be_bytes([h[6], h[7]]),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn icmp_errors_keep_their_meaning() {
        use GuestError::*;
        assert_eq!(classify(ORIGIN_ICMP, 11, 0, 0), Some(TimeExceeded));
        assert_eq!(classify(ORIGIN_ICMP, 3, 3, 0), Some(PortUnreachable));
        assert_eq!(classify(ORIGIN_ICMP, 3, 1, 0), Some(HostUnreachable));
        assert_eq!(classify(ORIGIN_ICMP, 3, 4, 1400), Some(TooBig(1400)));
        assert_eq!(classify(ORIGIN_ICMP, 3, 13, 0), Some(AdminProhibited));
        assert_eq!(classify(ORIGIN_ICMP6, 3, 0, 0), Some(TimeExceeded));
        assert_eq!(classify(ORIGIN_ICMP6, 1, 4, 0), Some(PortUnreachable));
        assert_eq!(classify(ORIGIN_ICMP6, 2, 0, 1280), Some(TooBig(1280)));
        assert_eq!(classify(ORIGIN_ICMP6, 1, 3, 0), Some(HostUnreachable));
        // A local error (origin 1) and ICMP types we do not pass on.
        assert_eq!(classify(1, 0, 0, 1500), None);
        assert_eq!(classify(ORIGIN_ICMP, 12, 0, 0), None);
        assert_eq!(classify(ORIGIN_ICMP, 5, 0, 0), None);
    }

    #[test]
    fn time_exceeded_quotes_the_guests_packet_from_the_router() {
        let mut framer = Framer::new(EthernetAddress([0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xdd]));
        let guest = Ipv4Addr::new(192, 168, 127, 2);
        let router = Ipv4Addr::new(10, 0, 0, 1);
        let far = Ipv4Addr::new(10, 9, 0, 2);
        let quote = crate::frame::synth_quote(
            IpAddresses::V4 {
                src: guest,
                dst: far,
            },
            IpProtocol::Udp,
            40000,
            33434,
        );
        let mac = EthernetAddress([0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xee]);
        let frame = error_frame(
            &mut framer,
            mac,
            IpAddr::V4(router),
            IpAddr::V4(guest),
            GuestError::TimeExceeded,
            &quote,
        )
        .unwrap();
        let ip = Ipv4Packet::new_checked(&frame[14..]).unwrap();
        assert_eq!((ip.src_addr(), ip.dst_addr()), (router, guest));
        let icmp = Icmpv4Repr::parse(&Icmpv4Packet::new_checked(ip.payload()).unwrap()).unwrap();
        let Icmpv4Repr::TimeExceeded { reason, data } = icmp else {
            panic!("{icmp:?}");
        };
        assert_eq!(reason, Icmpv4TimeExceeded::TtlExpired);
        assert_eq!(data, &quote[..]);
        // The quote names the guest's flow: its ports after the IP header.
        assert_eq!(&data[20..24], &[0x9c, 0x40, 0x82, 0x9a]);
        // Mixed families give nothing.
        assert!(
            error_frame(
                &mut framer,
                mac,
                IpAddr::V6(Ipv6Addr::LOCALHOST),
                IpAddr::V4(guest),
                GuestError::TimeExceeded,
                &quote
            )
            .is_none()
        );
    }

    #[test]
    fn an_echo_quote_parses_back_as_the_request() {
        let guest = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);
        let far = Ipv6Addr::new(0xfd00, 9, 0, 0, 0, 0, 0, 2);
        let quote = echo_quote(
            IpAddresses::V6 {
                src: guest,
                dst: far,
            },
            0x1234,
            7,
        );
        // As a router would send it: type 3 (time exceeded), code 0, checksum, unused.
        let mut msg = vec![3, 0, 0, 0, 0, 0, 0, 0];
        msg.extend_from_slice(&quote);
        assert_eq!(
            quoted_echo(&msg, true),
            Some((GuestError::TimeExceeded, IpAddr::V6(far), 0x1234, 7))
        );
        let quote4 = echo_quote(
            IpAddresses::V4 {
                src: Ipv4Addr::new(192, 168, 127, 2),
                dst: Ipv4Addr::new(10, 9, 0, 2),
            },
            9,
            1,
        );
        assert_eq!(&quote4[20..], &[8, 0, 0, 0, 0, 9, 0, 1]);
    }
}
