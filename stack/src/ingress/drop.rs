//! Why a frame that reached the gateway was dropped, and a fixed array of counters by reason.
//!
//! Every wire error is wrapped as it is ([`DropReason::Ipv4`]`(`[`Ipv4Error`]`)`, …) so the
//! cause is never lost, next to the semantic reasons of the ingress path and the gateway.
//! [`DropReason::index`] is dense (`0..DropReason::COUNT`), so [`DropCounters`] is a plain
//! `[u64; COUNT]`: counting is one add, with no map and no allocation.

use crate::wire::{
    ArpError, EthernetError, Icmpv4Error, Icmpv6Error, Ipv4Error, Ipv6ChainError, Ipv6Error,
    NdpError, TcpError, UdpError, VirtioNetError,
};

/// Why a frame was dropped on its way into the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum DropReason {
    #[error(transparent)]
    Ethernet(EthernetError),
    #[error(transparent)]
    Arp(ArpError),
    #[error(transparent)]
    Ipv4(Ipv4Error),
    #[error(transparent)]
    Icmpv4(Icmpv4Error),
    #[error(transparent)]
    Ipv6(Ipv6Error),
    #[error(transparent)]
    Ipv6Chain(Ipv6ChainError),
    /// An ICMPv6 error other than [`Icmpv6Error::Ndp`], which is counted as [`DropReason::Ndp`].
    #[error(transparent)]
    Icmpv6(Icmpv6Error),
    #[error(transparent)]
    Ndp(NdpError),
    #[error(transparent)]
    Udp(UdpError),
    #[error(transparent)]
    Tcp(TcpError),
    /// The virtio-net header before the frame (a TAP with offloads) was refused.
    #[error(transparent)]
    VirtioNet(VirtioNetError),
    /// Unicast to a MAC address that is not the gateway's (unknown unicast flooded to us).
    #[error("frame addressed to another station")]
    NotForUs,
    /// An EtherType other than IPv4, ARP and IPv6.
    #[error("unsupported EtherType")]
    UnsupportedEtherType,
    /// An IP protocol other than ICMP, ICMPv6, UDP and TCP.
    #[error("unsupported IP protocol")]
    UnsupportedProtocol,
    /// Broadcast or multicast (at L2 or L3) to anything but the DHCP server port.
    #[error("broadcast or multicast to a port that offers no service")]
    BroadcastToNonService,
    /// An IPv4 source that cannot be a host: multicast or limited broadcast (RFC 1122
    /// §3.2.1.3).
    #[error("invalid IPv4 source address")]
    InvalidSource,
    /// An ARP request the gateway does not answer: another station's address, or a
    /// gratuitous announcement.
    #[error("ARP request for an address we do not own")]
    ArpNotOurs,
    /// An ARP reply: we never ask, so we never need one.
    #[error("unsolicited ARP reply")]
    ArpReply,
    /// An ICMP or ICMPv6 echo reply to the gateway's own address (we never ping).
    #[error("ICMP message to the gateway that is not an echo request")]
    IcmpNotEcho,
    /// An IPv4 or IPv6 fragment the reassembler refused (overlap, too big, a limit hit…);
    /// its own statistics say why.
    #[error("IP fragment refused by reassembly")]
    Fragment,
    /// A neighbour solicitation for an address the gateway does not own.
    #[error("neighbour solicitation for an address we do not own")]
    NdpNotOurs,
    /// A Neighbor Discovery message the gateway does not act on (router solicitations,
    /// advertisements, redirects).
    #[error("Neighbor Discovery message not handled")]
    NdpUnhandled,
    /// The owning worker's queue was full.
    #[error("worker queue full")]
    WorkerQueueFull,
    /// A flow reached a worker that has no forwarder to hand it to.
    #[error("no forwarder")]
    NoForwarder,
    /// The DHCP server did not answer (its own stats say why).
    #[error("DHCP request not answered")]
    DhcpNoReply,
    /// A Neighbor Discovery message in an IPv6 fragment, atomic or reassembled (RFC 6980 §5:
    /// silently ignored).
    #[error("Neighbor Discovery message in a fragment")]
    NdpFragmented,
    /// A super-segment that could not be cut in software for a receiver without offloads
    /// (its headers malformed, or more segments than [`crate::offload::MAX_SEGMENTS`]).
    #[error("super-segment refused")]
    SuperSegmentRefused,
    /// IPv6 is turned off (`--disable-ipv6`).
    #[error("IPv6 is disabled")]
    Ipv6Disabled,
    /// A guest's TTL or hop limit ran out at the gateway (answered with Time Exceeded).
    #[error("TTL or hop limit exceeded")]
    HopLimitExceeded,
    /// A router solicitation from the unspecified address within 3 s of the last multicast
    /// advertisement (RFC 4861 §6.2.6): not answered alone, the next one is brought forward.
    #[error("router solicitation rate-limited")]
    NdpRateLimited,
}

// Bases of each wrapped error's block of indices, and the counts behind them.
const ETHERNET: usize = 0;
const ETHERNET_N: usize = 3;
const ARP: usize = ETHERNET + ETHERNET_N;
const ARP_N: usize = 6;
const IPV4: usize = ARP + ARP_N;
const IPV4_N: usize = 6;
const ICMPV4: usize = IPV4 + IPV4_N;
const ICMPV4_N: usize = 5;
const IPV6: usize = ICMPV4 + ICMPV4_N;
const IPV6_N: usize = 2;
const CHAIN: usize = IPV6 + IPV6_N;
const CHAIN_N: usize = 9;
const ICMPV6: usize = CHAIN + CHAIN_N;
const ICMPV6_N: usize = 5;
const NDP: usize = ICMPV6 + ICMPV6_N;
const NDP_N: usize = 15;
const UDP: usize = NDP + NDP_N;
const UDP_N: usize = 4;
const TCP: usize = UDP + UDP_N;
const TCP_N: usize = 7;
const VIRTIO: usize = TCP + TCP_N;
const VIRTIO_N: usize = 7;
const SEMANTIC: usize = VIRTIO + VIRTIO_N;
const SEMANTIC_N: usize = 19;

impl From<Icmpv6Error> for DropReason {
    /// Neighbor Discovery errors count as [`DropReason::Ndp`].
    fn from(e: Icmpv6Error) -> DropReason {
        match e {
            Icmpv6Error::Ndp(e) => DropReason::Ndp(e),
            other => DropReason::Icmpv6(other),
        }
    }
}

impl DropReason {
    /// The number of distinct reasons: the length of a counter array.
    pub const COUNT: usize = SEMANTIC + SEMANTIC_N;

    /// Every reason, in [`DropReason::index`] order.
    pub const ALL: [DropReason; DropReason::COUNT] = {
        use DropReason as D;
        [
            D::Ethernet(EthernetError::Truncated),
            D::Ethernet(EthernetError::VlanTagged),
            D::Ethernet(EthernetError::NotEthernetII),
            D::Arp(ArpError::Truncated),
            D::Arp(ArpError::BadHardwareType),
            D::Arp(ArpError::BadProtocolType),
            D::Arp(ArpError::BadHardwareLen),
            D::Arp(ArpError::BadProtocolLen),
            D::Arp(ArpError::UnknownOperation),
            D::Ipv4(Ipv4Error::Truncated),
            D::Ipv4(Ipv4Error::BadVersion),
            D::Ipv4(Ipv4Error::BadHeaderLength),
            D::Ipv4(Ipv4Error::BadTotalLength),
            D::Ipv4(Ipv4Error::BadChecksum),
            D::Ipv4(Ipv4Error::BadFragment),
            D::Icmpv4(Icmpv4Error::Truncated),
            D::Icmpv4(Icmpv4Error::BadChecksum),
            D::Icmpv4(Icmpv4Error::UnsupportedType),
            D::Icmpv4(Icmpv4Error::BadCode),
            D::Icmpv4(Icmpv4Error::BadQuote),
            D::Ipv6(Ipv6Error::Truncated),
            D::Ipv6(Ipv6Error::BadVersion),
            D::Ipv6Chain(Ipv6ChainError::TooManyHeaders),
            D::Ipv6Chain(Ipv6ChainError::ChainTooLong),
            D::Ipv6Chain(Ipv6ChainError::Truncated),
            D::Ipv6Chain(Ipv6ChainError::HopByHopNotFirst),
            D::Ipv6Chain(Ipv6ChainError::DuplicateFragment),
            D::Ipv6Chain(Ipv6ChainError::FragmentMisaligned),
            D::Ipv6Chain(Ipv6ChainError::FragmentTooLong),
            D::Ipv6Chain(Ipv6ChainError::IncompleteFirstFragment),
            D::Ipv6Chain(Ipv6ChainError::OptionTruncated),
            D::Icmpv6(Icmpv6Error::Truncated),
            D::Icmpv6(Icmpv6Error::NotIpv6),
            D::Icmpv6(Icmpv6Error::BadChecksum),
            D::Icmpv6(Icmpv6Error::BadCode),
            D::Icmpv6(Icmpv6Error::UnsupportedType),
            D::Ndp(NdpError::NotNdp),
            D::Ndp(NdpError::Truncated),
            D::Ndp(NdpError::BadCode),
            D::Ndp(NdpError::MulticastTarget),
            D::Ndp(NdpError::OptionZeroLength),
            D::Ndp(NdpError::OptionTruncated),
            D::Ndp(NdpError::BadOptionLength),
            D::Ndp(NdpError::TooManyOptions),
            D::Ndp(NdpError::BadDomainName),
            D::Ndp(NdpError::BadHopLimit),
            D::Ndp(NdpError::SourceNotLinkLocal),
            D::Ndp(NdpError::LinkLayerFromUnspecified),
            D::Ndp(NdpError::DadNotToSolicitedNode),
            D::Ndp(NdpError::SolicitedToMulticast),
            D::Ndp(NdpError::BadRedirectTarget),
            D::Udp(UdpError::Truncated),
            D::Udp(UdpError::BadLength),
            D::Udp(UdpError::BadChecksum),
            D::Udp(UdpError::MissingChecksum),
            D::Tcp(TcpError::Truncated),
            D::Tcp(TcpError::BadDataOffset),
            D::Tcp(TcpError::BadChecksum),
            D::Tcp(TcpError::SynWithRst),
            D::Tcp(TcpError::OptionTooShort),
            D::Tcp(TcpError::OptionOverflow),
            D::Tcp(TcpError::BadOptionLength),
            D::VirtioNet(VirtioNetError::Truncated),
            D::VirtioNet(VirtioNetError::UnknownFlags),
            D::VirtioNet(VirtioNetError::UnknownGsoType),
            D::VirtioNet(VirtioNetError::ZeroGsoSize),
            D::VirtioNet(VirtioNetError::GsoWithoutChecksum),
            D::VirtioNet(VirtioNetError::BadChecksumOffset),
            D::VirtioNet(VirtioNetError::GsoMismatch),
            D::NotForUs,
            D::UnsupportedEtherType,
            D::UnsupportedProtocol,
            D::BroadcastToNonService,
            D::InvalidSource,
            D::ArpNotOurs,
            D::ArpReply,
            D::IcmpNotEcho,
            D::Fragment,
            D::NdpNotOurs,
            D::NdpUnhandled,
            D::WorkerQueueFull,
            D::NoForwarder,
            D::DhcpNoReply,
            D::NdpFragmented,
            D::SuperSegmentRefused,
            D::Ipv6Disabled,
            D::HopLimitExceeded,
            D::NdpRateLimited,
        ]
    };

    /// A dense index in `0..DropReason::COUNT`.
    pub const fn index(self) -> usize {
        use DropReason as D;
        match self {
            D::Ethernet(e) => {
                ETHERNET
                    + match e {
                        EthernetError::Truncated => 0,
                        EthernetError::VlanTagged => 1,
                        EthernetError::NotEthernetII => 2,
                    }
            }
            D::Arp(e) => {
                ARP + match e {
                    ArpError::Truncated => 0,
                    ArpError::BadHardwareType => 1,
                    ArpError::BadProtocolType => 2,
                    ArpError::BadHardwareLen => 3,
                    ArpError::BadProtocolLen => 4,
                    ArpError::UnknownOperation => 5,
                }
            }
            D::Ipv4(e) => {
                IPV4 + match e {
                    Ipv4Error::Truncated => 0,
                    Ipv4Error::BadVersion => 1,
                    Ipv4Error::BadHeaderLength => 2,
                    Ipv4Error::BadTotalLength => 3,
                    Ipv4Error::BadChecksum => 4,
                    Ipv4Error::BadFragment => 5,
                }
            }
            D::Icmpv4(e) => {
                ICMPV4
                    + match e {
                        Icmpv4Error::Truncated => 0,
                        Icmpv4Error::BadChecksum => 1,
                        Icmpv4Error::UnsupportedType => 2,
                        Icmpv4Error::BadCode => 3,
                        Icmpv4Error::BadQuote => 4,
                    }
            }
            D::Ipv6(e) => {
                IPV6 + match e {
                    Ipv6Error::Truncated => 0,
                    Ipv6Error::BadVersion => 1,
                }
            }
            D::Ipv6Chain(e) => {
                CHAIN
                    + match e {
                        Ipv6ChainError::TooManyHeaders => 0,
                        Ipv6ChainError::ChainTooLong => 1,
                        Ipv6ChainError::Truncated => 2,
                        Ipv6ChainError::HopByHopNotFirst => 3,
                        Ipv6ChainError::DuplicateFragment => 4,
                        Ipv6ChainError::FragmentMisaligned => 5,
                        Ipv6ChainError::FragmentTooLong => 6,
                        Ipv6ChainError::IncompleteFirstFragment => 7,
                        Ipv6ChainError::OptionTruncated => 8,
                    }
            }
            D::Icmpv6(Icmpv6Error::Ndp(e)) => D::Ndp(e).index(),
            D::Icmpv6(e) => {
                ICMPV6
                    + match e {
                        Icmpv6Error::Truncated => 0,
                        Icmpv6Error::NotIpv6 => 1,
                        Icmpv6Error::BadChecksum => 2,
                        Icmpv6Error::BadCode => 3,
                        Icmpv6Error::UnsupportedType | Icmpv6Error::Ndp(_) => 4,
                    }
            }
            D::Ndp(e) => {
                NDP + match e {
                    NdpError::NotNdp => 0,
                    NdpError::Truncated => 1,
                    NdpError::BadCode => 2,
                    NdpError::MulticastTarget => 3,
                    NdpError::OptionZeroLength => 4,
                    NdpError::OptionTruncated => 5,
                    NdpError::BadOptionLength => 6,
                    NdpError::TooManyOptions => 7,
                    NdpError::BadDomainName => 8,
                    NdpError::BadHopLimit => 9,
                    NdpError::SourceNotLinkLocal => 10,
                    NdpError::LinkLayerFromUnspecified => 11,
                    NdpError::DadNotToSolicitedNode => 12,
                    NdpError::SolicitedToMulticast => 13,
                    NdpError::BadRedirectTarget => 14,
                }
            }
            D::Udp(e) => {
                UDP + match e {
                    UdpError::Truncated => 0,
                    UdpError::BadLength => 1,
                    UdpError::BadChecksum => 2,
                    UdpError::MissingChecksum => 3,
                }
            }
            D::Tcp(e) => {
                TCP + match e {
                    TcpError::Truncated => 0,
                    TcpError::BadDataOffset => 1,
                    TcpError::BadChecksum => 2,
                    TcpError::SynWithRst => 3,
                    TcpError::OptionTooShort => 4,
                    TcpError::OptionOverflow => 5,
                    TcpError::BadOptionLength => 6,
                }
            }
            D::VirtioNet(e) => {
                VIRTIO
                    + match e {
                        VirtioNetError::Truncated => 0,
                        VirtioNetError::UnknownFlags => 1,
                        VirtioNetError::UnknownGsoType => 2,
                        VirtioNetError::ZeroGsoSize => 3,
                        VirtioNetError::GsoWithoutChecksum => 4,
                        VirtioNetError::BadChecksumOffset => 5,
                        VirtioNetError::GsoMismatch => 6,
                    }
            }
            D::NotForUs => SEMANTIC,
            D::UnsupportedEtherType => SEMANTIC + 1,
            D::UnsupportedProtocol => SEMANTIC + 2,
            D::BroadcastToNonService => SEMANTIC + 3,
            D::InvalidSource => SEMANTIC + 4,
            D::ArpNotOurs => SEMANTIC + 5,
            D::ArpReply => SEMANTIC + 6,
            D::IcmpNotEcho => SEMANTIC + 7,
            D::Fragment => SEMANTIC + 8,
            D::NdpNotOurs => SEMANTIC + 9,
            D::NdpUnhandled => SEMANTIC + 10,
            D::WorkerQueueFull => SEMANTIC + 11,
            D::NoForwarder => SEMANTIC + 12,
            D::DhcpNoReply => SEMANTIC + 13,
            D::NdpFragmented => SEMANTIC + 14,
            D::SuperSegmentRefused => SEMANTIC + 15,
            D::Ipv6Disabled => SEMANTIC + 16,
            D::HopLimitExceeded => SEMANTIC + 17,
            D::NdpRateLimited => SEMANTIC + 18,
        }
    }

    /// A short stable name for logs and stats: the layer, then the cause.
    pub const fn name(self) -> &'static str {
        use DropReason as D;
        match self {
            D::Ethernet(EthernetError::Truncated) => "ethernet_truncated",
            D::Ethernet(EthernetError::VlanTagged) => "ethernet_vlan_tagged",
            D::Ethernet(EthernetError::NotEthernetII) => "ethernet_not_ethernet_ii",
            D::Arp(ArpError::Truncated) => "arp_truncated",
            D::Arp(ArpError::BadHardwareType) => "arp_bad_hardware_type",
            D::Arp(ArpError::BadProtocolType) => "arp_bad_protocol_type",
            D::Arp(ArpError::BadHardwareLen) => "arp_bad_hardware_len",
            D::Arp(ArpError::BadProtocolLen) => "arp_bad_protocol_len",
            D::Arp(ArpError::UnknownOperation) => "arp_unknown_operation",
            D::Ipv4(Ipv4Error::Truncated) => "ipv4_truncated",
            D::Ipv4(Ipv4Error::BadVersion) => "ipv4_bad_version",
            D::Ipv4(Ipv4Error::BadHeaderLength) => "ipv4_bad_header_length",
            D::Ipv4(Ipv4Error::BadTotalLength) => "ipv4_bad_total_length",
            D::Ipv4(Ipv4Error::BadChecksum) => "ipv4_bad_checksum",
            D::Ipv4(Ipv4Error::BadFragment) => "ipv4_bad_fragment",
            D::Icmpv4(Icmpv4Error::Truncated) => "icmpv4_truncated",
            D::Icmpv4(Icmpv4Error::BadChecksum) => "icmpv4_bad_checksum",
            D::Icmpv4(Icmpv4Error::UnsupportedType) => "icmpv4_unsupported_type",
            D::Icmpv4(Icmpv4Error::BadCode) => "icmpv4_bad_code",
            D::Icmpv4(Icmpv4Error::BadQuote) => "icmpv4_bad_quote",
            D::Ipv6(Ipv6Error::Truncated) => "ipv6_truncated",
            D::Ipv6(Ipv6Error::BadVersion) => "ipv6_bad_version",
            D::Ipv6Chain(Ipv6ChainError::TooManyHeaders) => "ipv6_too_many_headers",
            D::Ipv6Chain(Ipv6ChainError::ChainTooLong) => "ipv6_chain_too_long",
            D::Ipv6Chain(Ipv6ChainError::Truncated) => "ipv6_ext_truncated",
            D::Ipv6Chain(Ipv6ChainError::HopByHopNotFirst) => "ipv6_hop_by_hop_not_first",
            D::Ipv6Chain(Ipv6ChainError::DuplicateFragment) => "ipv6_duplicate_fragment",
            D::Ipv6Chain(Ipv6ChainError::FragmentMisaligned) => "ipv6_fragment_misaligned",
            D::Ipv6Chain(Ipv6ChainError::FragmentTooLong) => "ipv6_fragment_too_long",
            D::Ipv6Chain(Ipv6ChainError::IncompleteFirstFragment) => {
                "ipv6_incomplete_first_fragment"
            }
            D::Ipv6Chain(Ipv6ChainError::OptionTruncated) => "ipv6_option_truncated",
            D::Icmpv6(Icmpv6Error::Ndp(e)) => D::Ndp(e).name(),
            D::Icmpv6(Icmpv6Error::Truncated) => "icmpv6_truncated",
            D::Icmpv6(Icmpv6Error::NotIpv6) => "icmpv6_not_ipv6",
            D::Icmpv6(Icmpv6Error::BadChecksum) => "icmpv6_bad_checksum",
            D::Icmpv6(Icmpv6Error::BadCode) => "icmpv6_bad_code",
            D::Icmpv6(Icmpv6Error::UnsupportedType) => "icmpv6_unsupported_type",
            D::Ndp(NdpError::NotNdp) => "ndp_not_ndp",
            D::Ndp(NdpError::Truncated) => "ndp_truncated",
            D::Ndp(NdpError::BadCode) => "ndp_bad_code",
            D::Ndp(NdpError::MulticastTarget) => "ndp_multicast_target",
            D::Ndp(NdpError::OptionZeroLength) => "ndp_option_zero_length",
            D::Ndp(NdpError::OptionTruncated) => "ndp_option_truncated",
            D::Ndp(NdpError::BadOptionLength) => "ndp_bad_option_length",
            D::Ndp(NdpError::TooManyOptions) => "ndp_too_many_options",
            D::Ndp(NdpError::BadDomainName) => "ndp_bad_domain_name",
            D::Ndp(NdpError::BadHopLimit) => "ndp_bad_hop_limit",
            D::Ndp(NdpError::SourceNotLinkLocal) => "ndp_source_not_link_local",
            D::Ndp(NdpError::LinkLayerFromUnspecified) => "ndp_link_layer_from_unspecified",
            D::Ndp(NdpError::DadNotToSolicitedNode) => "ndp_dad_not_to_solicited_node",
            D::Ndp(NdpError::SolicitedToMulticast) => "ndp_solicited_to_multicast",
            D::Ndp(NdpError::BadRedirectTarget) => "ndp_bad_redirect_target",
            D::Udp(UdpError::Truncated) => "udp_truncated",
            D::Udp(UdpError::BadLength) => "udp_bad_length",
            D::Udp(UdpError::BadChecksum) => "udp_bad_checksum",
            D::Udp(UdpError::MissingChecksum) => "udp_missing_checksum",
            D::Tcp(TcpError::Truncated) => "tcp_truncated",
            D::Tcp(TcpError::BadDataOffset) => "tcp_bad_data_offset",
            D::Tcp(TcpError::BadChecksum) => "tcp_bad_checksum",
            D::Tcp(TcpError::SynWithRst) => "tcp_syn_with_rst",
            D::Tcp(TcpError::OptionTooShort) => "tcp_option_too_short",
            D::Tcp(TcpError::OptionOverflow) => "tcp_option_overflow",
            D::Tcp(TcpError::BadOptionLength) => "tcp_bad_option_length",
            D::VirtioNet(VirtioNetError::Truncated) => "virtio_net_truncated",
            D::VirtioNet(VirtioNetError::UnknownFlags) => "virtio_net_unknown_flags",
            D::VirtioNet(VirtioNetError::UnknownGsoType) => "virtio_net_unknown_gso_type",
            D::VirtioNet(VirtioNetError::ZeroGsoSize) => "virtio_net_zero_gso_size",
            D::VirtioNet(VirtioNetError::GsoWithoutChecksum) => "virtio_net_gso_without_checksum",
            D::VirtioNet(VirtioNetError::BadChecksumOffset) => "virtio_net_bad_checksum_offset",
            D::VirtioNet(VirtioNetError::GsoMismatch) => "virtio_net_gso_mismatch",
            D::NotForUs => "not_for_us",
            D::UnsupportedEtherType => "unsupported_ethertype",
            D::UnsupportedProtocol => "unsupported_protocol",
            D::BroadcastToNonService => "broadcast_to_non_service",
            D::InvalidSource => "invalid_source",
            D::ArpNotOurs => "arp_not_ours",
            D::ArpReply => "arp_reply",
            D::IcmpNotEcho => "icmp_not_echo",
            D::Fragment => "ip_fragment",
            D::NdpNotOurs => "ndp_not_ours",
            D::NdpUnhandled => "ndp_unhandled",
            D::WorkerQueueFull => "worker_queue_full",
            D::NoForwarder => "no_forwarder",
            D::DhcpNoReply => "dhcp_no_reply",
            D::NdpFragmented => "ndp_fragmented",
            D::SuperSegmentRefused => "super_segment_refused",
            D::Ipv6Disabled => "ipv6_disabled",
            D::HopLimitExceeded => "hop_limit_exceeded",
            D::NdpRateLimited => "ndp_rate_limited",
        }
    }
}

/// One counter per [`DropReason`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DropCounters([u64; DropReason::COUNT]);

impl Default for DropCounters {
    fn default() -> DropCounters {
        DropCounters([0; DropReason::COUNT])
    }
}

impl DropCounters {
    pub fn count(&mut self, reason: DropReason) {
        if let Some(n) = self.0.get_mut(reason.index()) {
            *n = n.saturating_add(1);
        }
    }

    /// Counts `n` drops for `reason` at once.
    pub fn add(&mut self, reason: DropReason, n: u64) {
        if let Some(c) = self.0.get_mut(reason.index()) {
            *c = c.saturating_add(n);
        }
    }

    pub fn get(&self, reason: DropReason) -> u64 {
        self.0.get(reason.index()).copied().unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.0.iter().fold(0, |a, &b| a.saturating_add(b))
    }

    /// Adds `other`'s counts to these (to merge per-thread counters into one snapshot).
    pub fn merge(&mut self, other: &DropCounters) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a = a.saturating_add(*b);
        }
    }

    /// The reasons with a non-zero count.
    pub fn iter(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .iter()
            .zip(self.0.iter())
            .filter(|(_, n)| **n > 0)
            .map(|(r, n)| (*r, *n))
    }
}
