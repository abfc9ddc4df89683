//! Neighbor Discovery for IPv6 (RFC 4861 §4): router solicitation and advertisement,
//! neighbour solicitation and advertisement, redirect, and their options (in the `option`
//! submodule, re-exported here).
//!
//! These are ICMPv6 messages; [`icmpv6::Repr`](super::icmpv6::Repr) parses and emits them as
//! its `Ndp` variant, verifying and filling the checksum. [`Packet`] views one message:
//! [`Packet::new_checked`] checks the type is a Neighbor Discovery one and the buffer holds its
//! fixed part, so no accessor can panic (those of fields another type lacks read zeros).
//! [`Repr::parse`] applies the checks RFC 4861 makes on the message itself (code 0, target
//! not multicast, options well formed); [`Repr::validate`] the ones that need the IPv6 header
//! (hop limit 255, source and destination), which the caller must apply before acting on a
//! message (RFC 4861 §6.1, §7.1, §8.1).

use super::icmpv6::Message;
use core::net::Ipv6Addr;

mod option;

pub use option::{
    Domain, Domains, DomainsIter, Labels, MAX_OPTIONS, NdpOption, Options, OptionsIter, PrefixInfo,
    Servers, option_type,
};

/// Why a message is not Neighbor Discovery we accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Error {
    #[error("ICMPv6 type is not a Neighbor Discovery message")]
    NotNdp,
    #[error("Neighbor Discovery message shorter than its fixed part")]
    Truncated,
    #[error("Neighbor Discovery message with a code other than 0")]
    BadCode,
    #[error("Neighbor Discovery target or redirect destination is multicast")]
    MulticastTarget,
    #[error("Neighbor Discovery option of length zero")]
    OptionZeroLength,
    #[error("Neighbor Discovery option reaching past the message")]
    OptionTruncated,
    #[error("Neighbor Discovery option with a length its type does not allow")]
    BadOptionLength,
    #[error("more than 32 Neighbor Discovery options")]
    TooManyOptions,
    #[error("malformed domain name in a DNS search list option")]
    BadDomainName,
    #[error("Neighbor Discovery message with an IPv6 hop limit other than 255")]
    BadHopLimit,
    #[error("router advertisement or redirect from a source that is not link-local")]
    SourceNotLinkLocal,
    #[error("source link-layer address option from the unspecified address")]
    LinkLayerFromUnspecified,
    #[error("duplicate address detection not sent to a solicited-node group")]
    DadNotToSolicitedNode,
    #[error("solicited neighbour advertisement sent to a multicast address")]
    SolicitedToMulticast,
    #[error("redirect target neither link-local nor the destination")]
    BadRedirectTarget,
}

mod field {
    use core::ops::Range;

    pub(super) const TYPE: usize = 0;
    pub(super) const CODE: usize = 1;
    pub(super) const CHECKSUM: Range<usize> = 2..4;
    /// Router advertisement (RFC 4861 §4.2).
    pub(super) const CUR_HOP_LIMIT: usize = 4;
    pub(super) const ROUTER_FLAGS: usize = 5;
    pub(super) const ROUTER_LIFETIME: Range<usize> = 6..8;
    pub(super) const REACHABLE_TIME: Range<usize> = 8..12;
    pub(super) const RETRANS_TIME: Range<usize> = 12..16;
    /// Neighbour advertisement (RFC 4861 §4.4).
    pub(super) const NEIGHBOR_FLAGS: usize = 4;
    /// The word after the checksum, reserved in solicitations, redirects and (after the
    /// flags) neighbour advertisements.
    pub(super) const RESERVED: Range<usize> = 4..8;
    /// Neighbour solicitation and advertisement, redirect.
    pub(super) const TARGET_ADDR: Range<usize> = 8..24;
    /// Redirect (RFC 4861 §4.5).
    pub(super) const DEST_ADDR: Range<usize> = 24..40;
}

/// The IPv6 hop limit every Neighbor Discovery message is sent and received with, proof that
/// it was not forwarded (RFC 4861 §3.1).
pub const HOP_LIMIT: u8 = 255;

/// RA flags (RFC 4861 §4.2; preference RFC 4191 §2.2).
const FLAG_MANAGED: u8 = 0x80;
const FLAG_OTHER: u8 = 0x40;
const PREFERENCE_MASK: u8 = 0x18;
/// NA flags (RFC 4861 §4.4).
const FLAG_ROUTER: u8 = 0x80;
const FLAG_SOLICITED: u8 = 0x40;
const FLAG_OVERRIDE: u8 = 0x20;

/// The length of a message's fixed part, before its options; `None` for other types.
fn fixed_len(msg_type: Message) -> Option<usize> {
    match msg_type {
        Message::RouterSolicit => Some(8),
        Message::RouterAdvert => Some(field::RETRANS_TIME.end),
        Message::NeighborSolicit | Message::NeighborAdvert => Some(field::TARGET_ADDR.end),
        Message::Redirect => Some(field::DEST_ADDR.end),
        _ => None,
    }
}

/// The solicited-node multicast group of `addr` (RFC 4291 §2.7.1): ff02::1:ff00:0/104 with
/// the address's low 24 bits.
pub fn solicited_node(addr: Ipv6Addr) -> Ipv6Addr {
    let [.., a, b, c] = addr.octets();
    Ipv6Addr::from([0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, a, b, c])
}

/// Whether `addr` is a solicited-node multicast group.
pub fn is_solicited_node(addr: Ipv6Addr) -> bool {
    addr == solicited_node(addr)
}

/// A read/write view of a Neighbor Discovery message (the whole ICMPv6 message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` without checking it; accessors may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps `buffer` after checking it is a Neighbor Discovery message with its fixed part.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let packet = Packet::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    pub fn check_len(&self) -> Result<(), Error> {
        let buffer = self.buffer.as_ref();
        let msg_type = Message::from(*buffer.first().ok_or(Error::Truncated)?);
        let fixed = fixed_len(msg_type).ok_or(Error::NotNdp)?;
        if buffer.len() < fixed {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The `N` bytes at `range`, or zeros if the buffer is shorter.
    fn read<const N: usize>(&self, range: core::ops::Range<usize>) -> [u8; N] {
        let mut out = [0; N];
        if let Some(b) = self.buffer.as_ref().get(range)
            && b.len() == N
        {
            out.copy_from_slice(b);
        }
        out
    }

    fn byte(&self, at: usize) -> u8 {
        self.buffer.as_ref().get(at).copied().unwrap_or(0)
    }

    pub fn msg_type(&self) -> Message {
        Message::from(self.byte(field::TYPE))
    }

    pub fn msg_code(&self) -> u8 {
        self.byte(field::CODE)
    }

    pub fn checksum(&self) -> u16 {
        u16::from_be_bytes(self.read(field::CHECKSUM))
    }

    /// RA: the hop limit hosts should use, 0 for unspecified.
    pub fn current_hop_limit(&self) -> u8 {
        self.byte(field::CUR_HOP_LIMIT)
    }

    /// RA: M, addresses are available from DHCPv6.
    pub fn managed(&self) -> bool {
        self.byte(field::ROUTER_FLAGS) & FLAG_MANAGED != 0
    }

    /// RA: O, other configuration is available from DHCPv6.
    pub fn other_config(&self) -> bool {
        self.byte(field::ROUTER_FLAGS) & FLAG_OTHER != 0
    }

    /// RA: the default router preference (RFC 4191 §2.2).
    pub fn router_preference(&self) -> RouterPreference {
        match (self.byte(field::ROUTER_FLAGS) & PREFERENCE_MASK) >> 3 {
            0b01 => RouterPreference::High,
            0b11 => RouterPreference::Low,
            // RFC 4191 §2.2: the reserved value 10 is treated as medium.
            _ => RouterPreference::Medium,
        }
    }

    /// RA: seconds this router may be a default router, 0 for not at all.
    pub fn router_lifetime(&self) -> u16 {
        u16::from_be_bytes(self.read(field::ROUTER_LIFETIME))
    }

    /// RA: milliseconds a neighbour stays reachable after a confirmation, 0 for unspecified.
    pub fn reachable_time(&self) -> u32 {
        u32::from_be_bytes(self.read(field::REACHABLE_TIME))
    }

    /// RA: milliseconds between retransmitted solicitations, 0 for unspecified.
    pub fn retrans_time(&self) -> u32 {
        u32::from_be_bytes(self.read(field::RETRANS_TIME))
    }

    /// NA: R, the sender is a router.
    pub fn router_flag(&self) -> bool {
        self.byte(field::NEIGHBOR_FLAGS) & FLAG_ROUTER != 0
    }

    /// NA: S, an answer to a solicitation.
    pub fn solicited_flag(&self) -> bool {
        self.byte(field::NEIGHBOR_FLAGS) & FLAG_SOLICITED != 0
    }

    /// NA: O, the advertisement overrides a cached link-layer address.
    pub fn override_flag(&self) -> bool {
        self.byte(field::NEIGHBOR_FLAGS) & FLAG_OVERRIDE != 0
    }

    /// NS, NA, redirect: the target address.
    pub fn target_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.read::<16>(field::TARGET_ADDR))
    }

    /// Redirect: the destination being redirected.
    pub fn dest_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.read::<16>(field::DEST_ADDR))
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The option area after the fixed part.
    pub fn options(&self) -> &'a [u8] {
        let buffer = self.buffer.as_ref();
        let start = fixed_len(self.msg_type()).unwrap_or(buffer.len());
        buffer.get(start..).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_msg_type(&mut self, value: Message) {
        self.buffer.as_mut()[field::TYPE] = value.into();
    }

    pub fn set_msg_code(&mut self, value: u8) {
        self.buffer.as_mut()[field::CODE] = value;
    }

    pub fn set_checksum(&mut self, value: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&value.to_be_bytes());
    }

    /// Zeroes the reserved word after the checksum (and an NA's flags, set them after).
    pub fn clear_reserved(&mut self) {
        self.buffer.as_mut()[field::RESERVED].fill(0);
    }

    pub fn set_current_hop_limit(&mut self, value: u8) {
        self.buffer.as_mut()[field::CUR_HOP_LIMIT] = value;
    }

    /// Sets an RA's flags byte: M, O and the preference; the other bits zero.
    pub fn set_router_flags(&mut self, managed: bool, other: bool, pref: RouterPreference) {
        let pref_bits = match pref {
            RouterPreference::High => 0b01,
            RouterPreference::Medium => 0b00,
            RouterPreference::Low => 0b11,
        };
        self.buffer.as_mut()[field::ROUTER_FLAGS] = if managed { FLAG_MANAGED } else { 0 }
            | if other { FLAG_OTHER } else { 0 }
            | (pref_bits << 3);
    }

    pub fn set_router_lifetime(&mut self, value: u16) {
        self.buffer.as_mut()[field::ROUTER_LIFETIME].copy_from_slice(&value.to_be_bytes());
    }

    pub fn set_reachable_time(&mut self, value: u32) {
        self.buffer.as_mut()[field::REACHABLE_TIME].copy_from_slice(&value.to_be_bytes());
    }

    pub fn set_retrans_time(&mut self, value: u32) {
        self.buffer.as_mut()[field::RETRANS_TIME].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets an NA's R, S and O flags; the other bits zero.
    pub fn set_neighbor_flags(&mut self, router: bool, solicited: bool, override_entry: bool) {
        self.buffer.as_mut()[field::NEIGHBOR_FLAGS] = if router { FLAG_ROUTER } else { 0 }
            | if solicited { FLAG_SOLICITED } else { 0 }
            | if override_entry { FLAG_OVERRIDE } else { 0 };
    }

    pub fn set_target_addr(&mut self, value: Ipv6Addr) {
        self.buffer.as_mut()[field::TARGET_ADDR].copy_from_slice(&value.octets());
    }

    pub fn set_dest_addr(&mut self, value: Ipv6Addr) {
        self.buffer.as_mut()[field::DEST_ADDR].copy_from_slice(&value.octets());
    }

    /// The option area after the fixed part of the message type already set.
    pub fn options_mut(&mut self) -> &mut [u8] {
        let start = fixed_len(self.msg_type()).unwrap_or(usize::MAX);
        self.buffer.as_mut().get_mut(start..).unwrap_or(&mut [])
    }
}

/// A router's preference as a default router (RFC 4191 §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RouterPreference {
    Low,
    #[default]
    Medium,
    High,
}

/// A Neighbor Discovery message with its options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repr<'a> {
    /// RFC 4861 §4.1.
    RouterSolicit { options: Options<'a> },
    /// RFC 4861 §4.2. Times as in [`Packet`]'s accessors.
    RouterAdvert {
        hop_limit: u8,
        managed: bool,
        other_config: bool,
        preference: RouterPreference,
        router_lifetime: u16,
        reachable_time: u32,
        retrans_time: u32,
        options: Options<'a>,
    },
    /// RFC 4861 §4.3. From the unspecified address, duplicate address detection (RFC 4862).
    NeighborSolicit {
        target_addr: Ipv6Addr,
        options: Options<'a>,
    },
    /// RFC 4861 §4.4.
    NeighborAdvert {
        /// R: the sender is a router.
        router: bool,
        /// S: an answer to a solicitation.
        solicited: bool,
        /// O: override a cached link-layer address.
        override_entry: bool,
        target_addr: Ipv6Addr,
        options: Options<'a>,
    },
    /// RFC 4861 §4.5.
    Redirect {
        /// The better first hop, or `dest_addr` itself when it is on-link.
        target_addr: Ipv6Addr,
        dest_addr: Ipv6Addr,
        options: Options<'a>,
    },
}

impl<'a> Repr<'a> {
    /// Reads a message and validates its options. Reserved fields and flags we do not know
    /// are ignored, as RFC 4861 §4 asks of receivers.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&'a T>) -> Result<Repr<'a>, Error> {
        packet.check_len()?;
        // RFC 4861 §6.1.1, §6.1.2, §7.1.1, §7.1.2, §8.1: "ICMP Code is 0".
        if packet.msg_code() != 0 {
            return Err(Error::BadCode);
        }
        let options = Options::parse(packet.options())?;
        let repr = match packet.msg_type() {
            Message::RouterSolicit => Repr::RouterSolicit { options },
            Message::RouterAdvert => Repr::RouterAdvert {
                hop_limit: packet.current_hop_limit(),
                managed: packet.managed(),
                other_config: packet.other_config(),
                preference: packet.router_preference(),
                router_lifetime: packet.router_lifetime(),
                reachable_time: packet.reachable_time(),
                retrans_time: packet.retrans_time(),
                options,
            },
            Message::NeighborSolicit => Repr::NeighborSolicit {
                target_addr: packet.target_addr(),
                options,
            },
            Message::NeighborAdvert => Repr::NeighborAdvert {
                router: packet.router_flag(),
                solicited: packet.solicited_flag(),
                override_entry: packet.override_flag(),
                target_addr: packet.target_addr(),
                options,
            },
            Message::Redirect => Repr::Redirect {
                target_addr: packet.target_addr(),
                dest_addr: packet.dest_addr(),
                options,
            },
            _ => return Err(Error::NotNdp),
        };
        // RFC 4861 §7.1.1, §7.1.2: "Target Address is not a multicast address"; §8.1: "The
        // ICMP Destination Address field in the redirect message does not contain a
        // multicast address".
        match repr {
            Repr::NeighborSolicit { target_addr, .. }
            | Repr::NeighborAdvert { target_addr, .. }
            | Repr::Redirect {
                dest_addr: target_addr,
                ..
            } if target_addr.is_multicast() => Err(Error::MulticastTarget),
            _ => Ok(repr),
        }
    }

    /// The checks of RFC 4861 that need the IPv6 header the message came in: the hop limit is
    /// 255 (§6.1.1, §6.1.2, §7.1.1, §7.1.2, §8.1); a solicitation from the unspecified address
    /// carries no source link-layer address (§6.1.1, §7.1.1) and, for a neighbour, goes to a
    /// solicited-node group (§7.1.1); a solicited advertisement is not multicast (§7.1.2);
    /// router advertisements and redirects come from link-local addresses (§6.1.2, §8.1) and
    /// a redirect's target is link-local or the destination itself (§8.1).
    pub fn validate(&self, src: Ipv6Addr, dst: Ipv6Addr, hop_limit: u8) -> Result<(), Error> {
        if hop_limit != HOP_LIMIT {
            return Err(Error::BadHopLimit);
        }
        match *self {
            Repr::RouterSolicit { options } => {
                if src.is_unspecified() && options.source_lladdr().is_some() {
                    return Err(Error::LinkLayerFromUnspecified);
                }
            }
            Repr::RouterAdvert { .. } => {
                if !src.is_unicast_link_local() {
                    return Err(Error::SourceNotLinkLocal);
                }
            }
            Repr::NeighborSolicit { options, .. } => {
                if src.is_unspecified() {
                    if !is_solicited_node(dst) {
                        return Err(Error::DadNotToSolicitedNode);
                    }
                    if options.source_lladdr().is_some() {
                        return Err(Error::LinkLayerFromUnspecified);
                    }
                }
            }
            Repr::NeighborAdvert { solicited, .. } => {
                if solicited && dst.is_multicast() {
                    return Err(Error::SolicitedToMulticast);
                }
            }
            Repr::Redirect {
                target_addr,
                dest_addr,
                ..
            } => {
                if !src.is_unicast_link_local() {
                    return Err(Error::SourceNotLinkLocal);
                }
                if !target_addr.is_unicast_link_local() && target_addr != dest_addr {
                    return Err(Error::BadRedirectTarget);
                }
            }
        }
        Ok(())
    }

    /// The ICMPv6 message type.
    pub fn msg_type(&self) -> Message {
        match self {
            Repr::RouterSolicit { .. } => Message::RouterSolicit,
            Repr::RouterAdvert { .. } => Message::RouterAdvert,
            Repr::NeighborSolicit { .. } => Message::NeighborSolicit,
            Repr::NeighborAdvert { .. } => Message::NeighborAdvert,
            Repr::Redirect { .. } => Message::Redirect,
        }
    }

    pub fn options(&self) -> &Options<'a> {
        match self {
            Repr::RouterSolicit { options }
            | Repr::RouterAdvert { options, .. }
            | Repr::NeighborSolicit { options, .. }
            | Repr::NeighborAdvert { options, .. }
            | Repr::Redirect { options, .. } => options,
        }
    }

    /// The length of the message this emits.
    pub fn buffer_len(&self) -> usize {
        fixed_len(self.msg_type()).unwrap_or(0) + self.options().buffer_len()
    }

    /// Writes the message with a zero checksum (emit it through
    /// [`icmpv6::Repr`](super::icmpv6::Repr) to have the checksum filled in); `packet` must
    /// hold at least [`Repr::buffer_len`] bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) {
        packet.set_msg_type(self.msg_type());
        packet.set_msg_code(0);
        packet.set_checksum(0);
        packet.clear_reserved();
        match *self {
            Repr::RouterSolicit { .. } => {}
            Repr::RouterAdvert {
                hop_limit,
                managed,
                other_config,
                preference,
                router_lifetime,
                reachable_time,
                retrans_time,
                ..
            } => {
                packet.set_current_hop_limit(hop_limit);
                packet.set_router_flags(managed, other_config, preference);
                packet.set_router_lifetime(router_lifetime);
                packet.set_reachable_time(reachable_time);
                packet.set_retrans_time(retrans_time);
            }
            Repr::NeighborSolicit { target_addr, .. } => packet.set_target_addr(target_addr),
            Repr::NeighborAdvert {
                router,
                solicited,
                override_entry,
                target_addr,
                ..
            } => {
                packet.set_neighbor_flags(router, solicited, override_entry);
                packet.set_target_addr(target_addr);
            }
            Repr::Redirect {
                target_addr,
                dest_addr,
                ..
            } => {
                packet.set_target_addr(target_addr);
                packet.set_dest_addr(dest_addr);
            }
        }
        self.options().emit(packet.options_mut());
    }
}

#[cfg(test)]
mod tests;
