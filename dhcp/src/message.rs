//! The BOOTP/DHCP message (RFC 2131 §2 and §3, RFC 951) over Ethernet.
//!
//! [`Packet`] is a view over a message's bytes; once [`Packet::new_checked`] has accepted a
//! buffer (at least the 236-byte fixed part and the 4-byte magic cookie), no accessor can panic.
//! [`Repr`] holds the fields and options a DHCP server needs.
//!
//! [`Repr::parse`] refuses, with its own [`Error`]: a missing magic cookie, an `op` other than
//! BOOTREQUEST or BOOTREPLY, a hardware type other than Ethernet (htype 1, hlen 6), an option
//! that runs past the end of its field, a field without End (so a message cut short is always
//! refused, see [`crate::options`]), an option we use whose length is wrong for its value
//! (zero where a value is required, not 4 for an address, …) and a message without a message
//! type (53): plain BOOTP is not served. Options we do not use are skipped unread. Option
//! overload (52) is honoured: the `file` and then the `sname` field are walked after the
//! options field, in the order RFC 2131 §4.1 gives; an overload value other than 1, 2 or 3 is
//! ignored, as is an overload option inside `file` or `sname`. An option that appears more than once is the concatenation of its pieces (RFC 3396
//! §7), so a repeated fixed-size option has the wrong length and is refused.
//!
//! [`Repr::emit`] writes the whole message, options in a fixed order with End, zero-padded to
//! at least [`MIN_LEN`] bytes, as common servers do for old BOOTP relays and clients.

use crate::options::{Options, Writer, code, encoded_len};
use crate::search::DomainList;
use core::net::Ipv4Addr;
use stack::wire::EthernetAddress;

/// The magic cookie that starts the options field (RFC 2131 §3, RFC 2132 §2).
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
/// The fixed part and the magic cookie: the shortest DHCP message.
pub const HEADER_LEN: usize = field::OPTIONS.start;
/// The shortest message we emit: a BOOTP message with its 64-byte vendor area (RFC 951).
pub const MIN_LEN: usize = 300;
/// The largest message every client must accept: 576-byte IP datagrams (RFC 2131 §2) less
/// 20 bytes of IP and 8 of UDP header.
pub const DEFAULT_MAX_LEN: usize = 576 - 28;
/// The server's UDP port (RFC 2131 §4.1).
pub const SERVER_PORT: u16 = 67;
/// The client's UDP port (RFC 2131 §4.1).
pub const CLIENT_PORT: u16 = 68;
/// The only defined bit of `flags`: reply by broadcast (RFC 2131 §2, figure 2).
pub const BROADCAST_FLAG: u16 = 0x8000;
/// `htype` for Ethernet (RFC 1700 "ARP hardware types").
pub const HTYPE_ETHERNET: u8 = 1;
/// `hlen` for Ethernet.
pub const HLEN_ETHERNET: u8 = 6;

mod field {
    use core::ops::{Range, RangeFrom};

    pub(super) const OP: usize = 0;
    pub(super) const HTYPE: usize = 1;
    pub(super) const HLEN: usize = 2;
    pub(super) const HOPS: usize = 3;
    pub(super) const XID: Range<usize> = 4..8;
    pub(super) const SECS: Range<usize> = 8..10;
    pub(super) const FLAGS: Range<usize> = 10..12;
    pub(super) const CIADDR: Range<usize> = 12..16;
    pub(super) const YIADDR: Range<usize> = 16..20;
    pub(super) const SIADDR: Range<usize> = 20..24;
    pub(super) const GIADDR: Range<usize> = 24..28;
    pub(super) const CHADDR: Range<usize> = 28..44;
    pub(super) const SNAME: Range<usize> = 44..108;
    pub(super) const FILE: Range<usize> = 108..236;
    pub(super) const MAGIC: Range<usize> = 236..240;
    pub(super) const OPTIONS: RangeFrom<usize> = 240..;
}

/// Why a buffer is not a DHCP message we handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Error {
    #[error("shorter than the 236-byte BOOTP header and the magic cookie")]
    Truncated,
    #[error("no DHCP magic cookie")]
    BadMagic,
    #[error("op {0} is neither BOOTREQUEST nor BOOTREPLY")]
    BadOp(u8),
    #[error("hardware type {htype} with address length {hlen} is not Ethernet")]
    NotEthernet { htype: u8, hlen: u8 },
    #[error("option {code} runs past the end of its field")]
    OptionOverrun { code: u8 },
    #[error("options field without an End option")]
    MissingEnd,
    #[error("option {code} has a length that does not fit its value")]
    BadOptionLength { code: u8 },
    #[error("option 119 is not a valid domain search list")]
    BadDomainSearch,
    #[error("no DHCP message type option: a plain BOOTP message")]
    MissingMessageType,
}

/// Why [`Repr::emit`] could not write a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EmitError {
    #[error("buffer shorter than Repr::buffer_len")]
    BufferTooSmall,
}

/// The `op` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// BOOTREQUEST: client to server.
    Request,
    /// BOOTREPLY: server to client.
    Reply,
}

impl From<Op> for u8 {
    fn from(value: Op) -> u8 {
        match value {
            Op::Request => 1,
            Op::Reply => 2,
        }
    }
}

/// The DHCP message type (option 53, RFC 2132 §9.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    Discover,
    Offer,
    Request,
    Decline,
    Ack,
    Nak,
    Release,
    Inform,
    /// A type we do not handle (RFC 4388 leasequery and later).
    Unknown(u8),
}

impl From<u8> for MessageType {
    fn from(value: u8) -> MessageType {
        match value {
            1 => MessageType::Discover,
            2 => MessageType::Offer,
            3 => MessageType::Request,
            4 => MessageType::Decline,
            5 => MessageType::Ack,
            6 => MessageType::Nak,
            7 => MessageType::Release,
            8 => MessageType::Inform,
            other => MessageType::Unknown(other),
        }
    }
}

impl From<MessageType> for u8 {
    fn from(value: MessageType) -> u8 {
        match value {
            MessageType::Discover => 1,
            MessageType::Offer => 2,
            MessageType::Request => 3,
            MessageType::Decline => 4,
            MessageType::Ack => 5,
            MessageType::Nak => 6,
            MessageType::Release => 7,
            MessageType::Inform => 8,
            MessageType::Unknown(other) => other,
        }
    }
}

/// A read/write view of a BOOTP/DHCP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

fn ipv4(bytes: &[u8]) -> Ipv4Addr {
    let mut a = [0; 4];
    a.copy_from_slice(bytes);
    Ipv4Addr::from(a)
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buffer` without checking it; accessors may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps `buffer` after checking it holds the fixed part and the magic cookie.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        let packet = Packet::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks the buffer is long enough for every accessor.
    pub fn check_len(&self) -> Result<(), Error> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn op(&self) -> u8 {
        self.bytes()[field::OP]
    }

    pub fn htype(&self) -> u8 {
        self.bytes()[field::HTYPE]
    }

    pub fn hlen(&self) -> u8 {
        self.bytes()[field::HLEN]
    }

    pub fn hops(&self) -> u8 {
        self.bytes()[field::HOPS]
    }

    pub fn xid(&self) -> u32 {
        let b = &self.bytes()[field::XID];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    pub fn secs(&self) -> u16 {
        let b = &self.bytes()[field::SECS];
        u16::from_be_bytes([b[0], b[1]])
    }

    pub fn flags(&self) -> u16 {
        let b = &self.bytes()[field::FLAGS];
        u16::from_be_bytes([b[0], b[1]])
    }

    pub fn ciaddr(&self) -> Ipv4Addr {
        ipv4(&self.bytes()[field::CIADDR])
    }

    pub fn yiaddr(&self) -> Ipv4Addr {
        ipv4(&self.bytes()[field::YIADDR])
    }

    pub fn siaddr(&self) -> Ipv4Addr {
        ipv4(&self.bytes()[field::SIADDR])
    }

    pub fn giaddr(&self) -> Ipv4Addr {
        ipv4(&self.bytes()[field::GIADDR])
    }

    /// The 16-byte client hardware address field; an Ethernet address is its first 6 bytes.
    pub fn chaddr(&self) -> &[u8] {
        &self.bytes()[field::CHADDR]
    }

    pub fn sname(&self) -> &[u8] {
        &self.bytes()[field::SNAME]
    }

    pub fn file(&self) -> &[u8] {
        &self.bytes()[field::FILE]
    }

    pub fn magic(&self) -> [u8; 4] {
        let b = &self.bytes()[field::MAGIC];
        [b[0], b[1], b[2], b[3]]
    }

    /// The options field: everything after the magic cookie.
    pub fn options(&self) -> &[u8] {
        &self.bytes()[field::OPTIONS]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn bytes_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    pub fn set_op(&mut self, value: u8) {
        self.bytes_mut()[field::OP] = value;
    }

    pub fn set_htype(&mut self, value: u8) {
        self.bytes_mut()[field::HTYPE] = value;
    }

    pub fn set_hlen(&mut self, value: u8) {
        self.bytes_mut()[field::HLEN] = value;
    }

    pub fn set_hops(&mut self, value: u8) {
        self.bytes_mut()[field::HOPS] = value;
    }

    pub fn set_xid(&mut self, value: u32) {
        self.bytes_mut()[field::XID].copy_from_slice(&value.to_be_bytes());
    }

    pub fn set_secs(&mut self, value: u16) {
        self.bytes_mut()[field::SECS].copy_from_slice(&value.to_be_bytes());
    }

    pub fn set_flags(&mut self, value: u16) {
        self.bytes_mut()[field::FLAGS].copy_from_slice(&value.to_be_bytes());
    }

    pub fn set_ciaddr(&mut self, value: Ipv4Addr) {
        self.bytes_mut()[field::CIADDR].copy_from_slice(&value.octets());
    }

    pub fn set_yiaddr(&mut self, value: Ipv4Addr) {
        self.bytes_mut()[field::YIADDR].copy_from_slice(&value.octets());
    }

    pub fn set_siaddr(&mut self, value: Ipv4Addr) {
        self.bytes_mut()[field::SIADDR].copy_from_slice(&value.octets());
    }

    pub fn set_giaddr(&mut self, value: Ipv4Addr) {
        self.bytes_mut()[field::GIADDR].copy_from_slice(&value.octets());
    }

    /// Writes an Ethernet address into `chaddr`, zeroing the other 10 bytes.
    pub fn set_chaddr(&mut self, value: EthernetAddress) {
        let chaddr = &mut self.bytes_mut()[field::CHADDR];
        chaddr.fill(0);
        chaddr[..6].copy_from_slice(value.as_bytes());
    }

    pub fn sname_mut(&mut self) -> &mut [u8] {
        &mut self.bytes_mut()[field::SNAME]
    }

    pub fn file_mut(&mut self) -> &mut [u8] {
        &mut self.bytes_mut()[field::FILE]
    }

    pub fn set_magic(&mut self) {
        self.bytes_mut()[field::MAGIC].copy_from_slice(&MAGIC_COOKIE);
    }

    pub fn options_mut(&mut self) -> &mut [u8] {
        &mut self.bytes_mut()[field::OPTIONS]
    }
}

/// The fields and options of a DHCP message that the server reads or writes.
///
/// An option is emitted when its field is `Some` or, for lists, non-empty. `Some` of an empty
/// value emits a zero-length option, which [`Repr::parse`] refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repr {
    pub op: Op,
    pub message_type: MessageType,
    pub xid: u32,
    pub secs: u16,
    /// The broadcast bit of `flags`.
    pub broadcast: bool,
    pub ciaddr: Ipv4Addr,
    pub yiaddr: Ipv4Addr,
    pub siaddr: Ipv4Addr,
    pub giaddr: Ipv4Addr,
    pub chaddr: EthernetAddress,
    /// Option 50.
    pub requested_ip: Option<Ipv4Addr>,
    /// Option 54.
    pub server_id: Option<Ipv4Addr>,
    /// Option 55: the option codes the client asks for.
    pub parameter_request_list: Option<Vec<u8>>,
    /// Option 61: type byte then identifier (RFC 2132 §9.14: at least 2 bytes).
    pub client_id: Option<Vec<u8>>,
    /// Option 12 (bytes that are not UTF-8 are replaced on parsing).
    pub hostname: Option<String>,
    /// Option 57.
    pub max_message_size: Option<u16>,
    /// Option 51, seconds.
    pub lease_time: Option<u32>,
    /// Option 58 (T1), seconds.
    pub renewal_time: Option<u32>,
    /// Option 59 (T2), seconds.
    pub rebinding_time: Option<u32>,
    /// Option 1.
    pub subnet_mask: Option<Ipv4Addr>,
    /// Option 3.
    pub routers: Vec<Ipv4Addr>,
    /// Option 6.
    pub dns_servers: Vec<Ipv4Addr>,
    /// Option 15 (bytes that are not UTF-8 are replaced on parsing).
    pub domain_name: Option<String>,
    /// Option 119.
    pub domain_search: DomainList,
    /// Option 26.
    pub interface_mtu: Option<u16>,
    /// Option 28.
    pub broadcast_address: Option<Ipv4Addr>,
    /// Option 56: why a DHCPNAK was sent.
    pub message: Option<String>,
}

impl Repr {
    /// A message with the given header fields, all addresses zero and no options but 53.
    pub fn new(op: Op, message_type: MessageType, xid: u32, chaddr: EthernetAddress) -> Repr {
        Repr {
            op,
            message_type,
            xid,
            secs: 0,
            broadcast: false,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            chaddr,
            requested_ip: None,
            server_id: None,
            parameter_request_list: None,
            client_id: None,
            hostname: None,
            max_message_size: None,
            lease_time: None,
            renewal_time: None,
            rebinding_time: None,
            subnet_mask: None,
            routers: Vec::new(),
            dns_servers: Vec::new(),
            domain_name: None,
            domain_search: DomainList::default(),
            interface_mtu: None,
            broadcast_address: None,
            message: None,
        }
    }

    /// Reads a message; see the module docs for what is refused.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr, Error> {
        packet.check_len()?;
        if packet.magic() != MAGIC_COOKIE {
            return Err(Error::BadMagic);
        }
        let op = match packet.op() {
            1 => Op::Request,
            2 => Op::Reply,
            other => return Err(Error::BadOp(other)),
        };
        let (htype, hlen) = (packet.htype(), packet.hlen());
        if htype != HTYPE_ETHERNET || hlen != HLEN_ETHERNET {
            return Err(Error::NotEthernet { htype, hlen });
        }
        let found = Found::collect(packet)?;

        let message_type = match found.get(code::MESSAGE_TYPE) {
            None => return Err(Error::MissingMessageType),
            Some([t]) => MessageType::from(*t),
            Some(_) => {
                return Err(Error::BadOptionLength {
                    code: code::MESSAGE_TYPE,
                });
            }
        };
        let chaddr = EthernetAddress::from_bytes(packet.chaddr().get(..6).unwrap_or_default())
            .unwrap_or_default();
        Ok(Repr {
            op,
            message_type,
            xid: packet.xid(),
            secs: packet.secs(),
            broadcast: packet.flags() & BROADCAST_FLAG != 0,
            ciaddr: packet.ciaddr(),
            yiaddr: packet.yiaddr(),
            siaddr: packet.siaddr(),
            giaddr: packet.giaddr(),
            chaddr,
            requested_ip: found.addr(code::REQUESTED_IP)?,
            server_id: found.addr(code::SERVER_ID)?,
            parameter_request_list: found.bytes(code::PARAMETER_REQUEST_LIST, 1)?,
            client_id: found.bytes(code::CLIENT_ID, 2)?,
            hostname: found.text(code::HOSTNAME)?,
            max_message_size: found.u16(code::MAX_MESSAGE_SIZE)?,
            lease_time: found.u32(code::LEASE_TIME)?,
            renewal_time: found.u32(code::RENEWAL_TIME)?,
            rebinding_time: found.u32(code::REBINDING_TIME)?,
            subnet_mask: found.addr(code::SUBNET_MASK)?,
            routers: found.addrs(code::ROUTER)?,
            dns_servers: found.addrs(code::DNS_SERVERS)?,
            domain_name: found.text(code::DOMAIN_NAME)?,
            domain_search: match found.bytes(code::DOMAIN_SEARCH, 1)? {
                None => DomainList::default(),
                Some(wire) => DomainList::decode(&wire).map_err(|_| Error::BadDomainSearch)?,
            },
            interface_mtu: found.u16(code::INTERFACE_MTU)?,
            broadcast_address: found.addr(code::BROADCAST_ADDRESS)?,
            message: found.text(code::MESSAGE)?,
        })
    }

    /// Calls `f` with each option to emit, in the order they are written.
    fn for_each_option(&self, mut f: impl FnMut(u8, &[u8])) {
        fn addrs(list: &[Ipv4Addr]) -> Vec<u8> {
            list.iter().flat_map(|a| a.octets()).collect()
        }
        f(code::MESSAGE_TYPE, &[u8::from(self.message_type)]);
        let addr_options = [
            (code::SERVER_ID, self.server_id),
            (code::SUBNET_MASK, self.subnet_mask),
            (code::BROADCAST_ADDRESS, self.broadcast_address),
        ];
        let time_options = [
            (code::LEASE_TIME, self.lease_time),
            (code::RENEWAL_TIME, self.renewal_time),
            (code::REBINDING_TIME, self.rebinding_time),
        ];
        if let Some(a) = addr_options[0].1 {
            f(addr_options[0].0, &a.octets());
        }
        for (c, v) in time_options {
            if let Some(v) = v {
                f(c, &v.to_be_bytes());
            }
        }
        for (c, v) in &addr_options[1..] {
            if let Some(a) = v {
                f(*c, &a.octets());
            }
        }
        if !self.routers.is_empty() {
            f(code::ROUTER, &addrs(&self.routers));
        }
        if !self.dns_servers.is_empty() {
            f(code::DNS_SERVERS, &addrs(&self.dns_servers));
        }
        if let Some(name) = &self.domain_name {
            f(code::DOMAIN_NAME, name.as_bytes());
        }
        if !self.domain_search.is_empty() {
            f(code::DOMAIN_SEARCH, self.domain_search.wire());
        }
        if let Some(mtu) = self.interface_mtu {
            f(code::INTERFACE_MTU, &mtu.to_be_bytes());
        }
        if let Some(a) = self.requested_ip {
            f(code::REQUESTED_IP, &a.octets());
        }
        if let Some(list) = &self.parameter_request_list {
            f(code::PARAMETER_REQUEST_LIST, list);
        }
        if let Some(size) = self.max_message_size {
            f(code::MAX_MESSAGE_SIZE, &size.to_be_bytes());
        }
        if let Some(id) = &self.client_id {
            f(code::CLIENT_ID, id);
        }
        if let Some(name) = &self.hostname {
            f(code::HOSTNAME, name.as_bytes());
        }
        if let Some(text) = &self.message {
            f(code::MESSAGE, text.as_bytes());
        }
    }

    /// The length of the message this emits: header, options, End, padded to [`MIN_LEN`].
    pub fn buffer_len(&self) -> usize {
        let mut options = 1;
        self.for_each_option(|_, data| options += encoded_len(data.len()));
        (HEADER_LEN + options).max(MIN_LEN)
    }

    /// Writes the message; `packet` must hold at least [`Repr::buffer_len`] bytes. Bytes after
    /// End are zeroed, as are `hops`, `sname` and `file`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Packet<T>,
    ) -> Result<(), EmitError> {
        if packet.buffer.as_ref().len() < self.buffer_len() {
            return Err(EmitError::BufferTooSmall);
        }
        packet.set_op(u8::from(self.op));
        packet.set_htype(HTYPE_ETHERNET);
        packet.set_hlen(HLEN_ETHERNET);
        packet.set_hops(0);
        packet.set_xid(self.xid);
        packet.set_secs(self.secs);
        packet.set_flags(if self.broadcast { BROADCAST_FLAG } else { 0 });
        packet.set_ciaddr(self.ciaddr);
        packet.set_yiaddr(self.yiaddr);
        packet.set_siaddr(self.siaddr);
        packet.set_giaddr(self.giaddr);
        packet.set_chaddr(self.chaddr);
        packet.sname_mut().fill(0);
        packet.file_mut().fill(0);
        packet.set_magic();
        let options = packet.options_mut();
        options.fill(0);
        let mut writer = Writer::new(options);
        self.for_each_option(|c, data| writer.option(c, data));
        writer.end();
        writer.finish().map(|_| ()).ok_or(EmitError::BufferTooSmall)
    }

    /// The message as a new buffer of [`Repr::buffer_len`] bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, EmitError> {
        let mut bytes = vec![0; self.buffer_len()];
        self.emit(&mut Packet::new_unchecked(&mut bytes[..]))?;
        Ok(bytes)
    }
}

/// The values of the options we use, each the concatenation of its pieces (RFC 3396).
struct Found {
    values: [Option<Vec<u8>>; 256],
}

impl Found {
    fn collect<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Found, Error> {
        let mut found = Found {
            values: core::array::from_fn(|_| None),
        };
        found.walk(packet.options(), true)?;
        // RFC 2131 §4.1: options, then `file`, then `sname`.
        let overload = match found.get(code::OVERLOAD) {
            None => 0,
            Some([v]) => *v,
            Some(_) => {
                return Err(Error::BadOptionLength {
                    code: code::OVERLOAD,
                });
            }
        };
        if matches!(overload, 1 | 3) {
            found.walk(packet.file(), false)?;
        }
        if matches!(overload, 2 | 3) {
            found.walk(packet.sname(), false)?;
        }
        Ok(found)
    }

    fn walk(&mut self, field: &[u8], top_level: bool) -> Result<(), Error> {
        for option in Options::new(field) {
            let option = option?;
            let wanted = match option.code {
                // Overload is only meaningful in the options field itself (RFC 2132 §9.3).
                code::OVERLOAD => top_level,
                code::SUBNET_MASK
                | code::ROUTER
                | code::DNS_SERVERS
                | code::HOSTNAME
                | code::DOMAIN_NAME
                | code::INTERFACE_MTU
                | code::BROADCAST_ADDRESS
                | code::REQUESTED_IP
                | code::LEASE_TIME
                | code::MESSAGE_TYPE
                | code::SERVER_ID
                | code::PARAMETER_REQUEST_LIST
                | code::MESSAGE
                | code::MAX_MESSAGE_SIZE
                | code::RENEWAL_TIME
                | code::REBINDING_TIME
                | code::CLIENT_ID
                | code::DOMAIN_SEARCH => true,
                _ => false,
            };
            if !wanted {
                continue;
            }
            if let Some(slot) = self.values.get_mut(usize::from(option.code)) {
                slot.get_or_insert_with(Vec::new)
                    .extend_from_slice(option.data);
            }
        }
        Ok(())
    }

    fn get(&self, code: u8) -> Option<&[u8]> {
        self.values.get(usize::from(code))?.as_deref()
    }

    fn fixed<const N: usize>(&self, code: u8) -> Result<Option<[u8; N]>, Error> {
        match self.get(code) {
            None => Ok(None),
            Some(v) => <[u8; N]>::try_from(v)
                .map(Some)
                .map_err(|_| Error::BadOptionLength { code }),
        }
    }

    fn addr(&self, code: u8) -> Result<Option<Ipv4Addr>, Error> {
        Ok(self.fixed::<4>(code)?.map(Ipv4Addr::from))
    }

    fn u32(&self, code: u8) -> Result<Option<u32>, Error> {
        Ok(self.fixed::<4>(code)?.map(u32::from_be_bytes))
    }

    fn u16(&self, code: u8) -> Result<Option<u16>, Error> {
        Ok(self.fixed::<2>(code)?.map(u16::from_be_bytes))
    }

    fn addrs(&self, code: u8) -> Result<Vec<Ipv4Addr>, Error> {
        match self.get(code) {
            None => Ok(Vec::new()),
            Some(v) if v.is_empty() || v.len() % 4 != 0 => Err(Error::BadOptionLength { code }),
            Some(v) => Ok(v
                .chunks_exact(4)
                .filter_map(|c| <[u8; 4]>::try_from(c).ok())
                .map(Ipv4Addr::from)
                .collect()),
        }
    }

    fn bytes(&self, code: u8, min_len: usize) -> Result<Option<Vec<u8>>, Error> {
        match self.get(code) {
            None => Ok(None),
            Some(v) if v.len() < min_len => Err(Error::BadOptionLength { code }),
            Some(v) => Ok(Some(v.to_vec())),
        }
    }

    fn text(&self, code: u8) -> Result<Option<String>, Error> {
        Ok(self
            .bytes(code, 1)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }
}

#[cfg(test)]
mod tests;
