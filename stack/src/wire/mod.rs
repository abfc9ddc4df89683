//! Wire formats: one module per protocol.
//!
//! Each module follows one pattern. `Packet<T: AsRef<[u8]>>` is a zero-copy view over the raw
//! bytes with the field ranges named in one place; `Packet::new_checked` validates lengths once,
//! after which no accessor can panic. `Repr` holds only the meaningful fields, with `parse`
//! (which also validates semantics and reports a module-specific `Error`), `buffer_len` and
//! `emit`. Checksums are verified by `parse` where the format has one and filled in by `emit`.
//! Outside a module the types are re-exported with the protocol's name as prefix.

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod group_record;
pub mod icmpv4;
pub mod icmpv6;
pub mod igmp;
pub mod ip;
pub mod ipv4;
pub mod ipv6;
pub mod mld;
pub mod ndp;
pub mod tcp;
pub mod udp;
pub mod virtio_net;

#[cfg(test)]
pub(crate) mod fixtures;

pub use arp::{Error as ArpError, Operation as ArpOperation, Packet as ArpPacket, Repr as ArpRepr};
pub use ethernet::{
    Address as EthernetAddress, Error as EthernetError, EtherType, Packet as EthernetFrame,
    Repr as EthernetRepr,
};
pub use group_record::{GroupAddr, GroupRecord, RecordType as GroupRecordType, multicast_mac};
pub use icmpv4::{
    DstUnreachable as Icmpv4DstUnreachable, Error as Icmpv4Error, Message as Icmpv4Message,
    Packet as Icmpv4Packet, Repr as Icmpv4Repr, TimeExceeded as Icmpv4TimeExceeded,
};
pub use icmpv6::{
    DstUnreachable as Icmpv6DstUnreachable, Error as Icmpv6Error, Message as Icmpv6Message,
    Packet as Icmpv6Packet, ParamProblem as Icmpv6ParamProblem, Repr as Icmpv6Repr,
    TimeExceeded as Icmpv6TimeExceeded,
};
pub use igmp::{Error as IgmpError, Packet as IgmpPacket, Repr as IgmpRepr};
pub use ip::{Addresses as IpAddresses, Protocol as IpProtocol};
pub use ipv4::{Error as Ipv4Error, Packet as Ipv4Packet, Repr as Ipv4Repr};
pub use ipv6::{
    Chain as Ipv6Chain, ChainError as Ipv6ChainError, Error as Ipv6Error,
    ExtHeader as Ipv6ExtHeader, ExtHeaderRepr as Ipv6ExtHeaderRepr,
    FragmentHeader as Ipv6FragmentHeader, FragmentRepr as Ipv6FragmentRepr, Packet as Ipv6Packet,
    Repr as Ipv6Repr,
};
pub use mld::{Error as MldError, Packet as MldPacket, Repr as MldRepr};
pub use ndp::{
    Domains as NdpDomains, Error as NdpError, NdpOption, Options as NdpOptions,
    Packet as NdpPacket, PrefixInfo as NdpPrefixInfo, Repr as NdpRepr,
    RouterPreference as NdpRouterPreference, Servers as NdpServers,
};
pub use tcp::{
    Control as TcpControl, Error as TcpError, OptionIter as TcpOptionIter, Packet as TcpPacket,
    Repr as TcpRepr, SeqNumber as TcpSeqNumber, TcpOption, TimestampOption as TcpTimestampOption,
};
pub use udp::{Error as UdpError, Packet as UdpPacket, Repr as UdpRepr};
pub use virtio_net::{
    Error as VirtioNetError, Gso as VirtioNetGso, Header as VirtioNetHeader, Repr as VirtioNetRepr,
};
