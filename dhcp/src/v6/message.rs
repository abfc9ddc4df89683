//! The DHCPv6 message between client and server (RFC 8415 §8) and its options (§21).
//!
//! [`Packet`] views a message: a 1-byte type, a 3-byte transaction id, then options, each a
//! 2-byte code, a 2-byte length and that many bytes. [`Packet::new_checked`] checks the
//! 4-byte header; [`Repr::parse`] walks the options once and refuses a message whose options
//! do not tile it exactly (an option reaching past the end, a stray byte after the last) or
//! hold more than [`MAX_OPTIONS`]. [`DhcpOption::parse`] gives an option its meaning,
//! checking the lengths its RFC fixes; options nested in an IA_NA or IA Address are read the
//! same way from their own bytes ([`Options::parse`]).
//!
//! Emitting: [`Repr::emit`] writes the header and the options of an [`Options`] built from a
//! slice of [`DhcpOption`]s (the server's replies), each option written whole by
//! [`DhcpOption::emit`]. Both forms compare equal when their options do, so a message
//! survives emit and parse.

use core::fmt;
use core::net::Ipv6Addr;

/// The most options a message, or an IA option, may carry.
pub const MAX_OPTIONS: usize = 64;
/// The client's and server's UDP ports (RFC 8415 §7.2).
pub const CLIENT_PORT: u16 = 546;
pub const SERVER_PORT: u16 = 547;
/// All_DHCP_Relay_Agents_and_Servers (RFC 8415 §7.1): where clients send.
pub const ALL_SERVERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);
/// The longest DUID (RFC 8415 §11.1: 128 bytes after the 2-byte type).
pub const MAX_DUID_LEN: usize = 130;

const HEADER_LEN: usize = 4;
const OPTION_HEAD: usize = 4;

/// Message types (RFC 8415 §7.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    Solicit,
    Advertise,
    Request,
    Confirm,
    Renew,
    Rebind,
    Reply,
    Release,
    Decline,
    Reconfigure,
    InformationRequest,
    RelayForw,
    RelayRepl,
    Unknown(u8),
}

impl From<u8> for MessageType {
    fn from(value: u8) -> MessageType {
        match value {
            1 => MessageType::Solicit,
            2 => MessageType::Advertise,
            3 => MessageType::Request,
            4 => MessageType::Confirm,
            5 => MessageType::Renew,
            6 => MessageType::Rebind,
            7 => MessageType::Reply,
            8 => MessageType::Release,
            9 => MessageType::Decline,
            10 => MessageType::Reconfigure,
            11 => MessageType::InformationRequest,
            12 => MessageType::RelayForw,
            13 => MessageType::RelayRepl,
            other => MessageType::Unknown(other),
        }
    }
}

impl From<MessageType> for u8 {
    fn from(value: MessageType) -> u8 {
        match value {
            MessageType::Solicit => 1,
            MessageType::Advertise => 2,
            MessageType::Request => 3,
            MessageType::Confirm => 4,
            MessageType::Renew => 5,
            MessageType::Rebind => 6,
            MessageType::Reply => 7,
            MessageType::Release => 8,
            MessageType::Decline => 9,
            MessageType::Reconfigure => 10,
            MessageType::InformationRequest => 11,
            MessageType::RelayForw => 12,
            MessageType::RelayRepl => 13,
            MessageType::Unknown(other) => other,
        }
    }
}

/// Option codes (RFC 8415 §21, RFC 3646 for DNS).
pub mod code {
    pub const CLIENTID: u16 = 1;
    pub const SERVERID: u16 = 2;
    pub const IA_NA: u16 = 3;
    pub const IA_TA: u16 = 4;
    pub const IAADDR: u16 = 5;
    pub const ORO: u16 = 6;
    pub const ELAPSED_TIME: u16 = 8;
    pub const STATUS_CODE: u16 = 13;
    pub const RAPID_COMMIT: u16 = 14;
    pub const DNS_SERVERS: u16 = 23;
    pub const DOMAIN_LIST: u16 = 24;
    pub const IA_PD: u16 = 25;
    pub const INFORMATION_REFRESH_TIME: u16 = 32;
}

/// Status codes (RFC 8415 §21.13).
pub mod status {
    pub const SUCCESS: u16 = 0;
    pub const UNSPEC_FAIL: u16 = 1;
    pub const NO_ADDRS_AVAIL: u16 = 2;
    pub const NO_BINDING: u16 = 3;
    pub const NOT_ON_LINK: u16 = 4;
    pub const USE_MULTICAST: u16 = 5;
}

/// Why bytes are not a DHCPv6 message we accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Error {
    #[error("shorter than the 4-byte DHCPv6 header")]
    Truncated,
    #[error("DHCPv6 option runs past the end of its message")]
    OptionOverrun,
    #[error("more than 64 DHCPv6 options")]
    TooManyOptions,
    #[error("DHCPv6 option with a length its code does not allow")]
    BadOptionLength,
}

/// A view of a DHCPv6 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps `buffer` after checking it holds the header.
    pub fn new_checked(buffer: T) -> Result<Packet<T>, Error> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Packet { buffer })
    }

    pub fn msg_type(&self) -> MessageType {
        MessageType::from(self.buffer.as_ref().first().copied().unwrap_or(0))
    }

    /// The 24-bit transaction id.
    pub fn transaction_id(&self) -> u32 {
        match self.buffer.as_ref().get(1..HEADER_LEN) {
            Some(&[a, b, c]) => u32::from_be_bytes([0, a, b, c]),
            _ => 0,
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The option bytes after the header.
    pub fn options(&self) -> &'a [u8] {
        self.buffer.as_ref().get(HEADER_LEN..).unwrap_or(&[])
    }
}

/// One option as its code gives it meaning. `Unknown` holds any other code's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DhcpOption<'a> {
    /// The client's DUID (RFC 8415 §21.2).
    ClientId(&'a [u8]),
    /// The server's DUID (§21.3).
    ServerId(&'a [u8]),
    /// An identity association for non-temporary addresses (§21.4); T1, T2 in seconds.
    IaNa {
        iaid: u32,
        t1: u32,
        t2: u32,
        options: Options<'a>,
    },
    /// An address in an IA (§21.6); lifetimes in seconds.
    IaAddr {
        addr: Ipv6Addr,
        preferred: u32,
        valid: u32,
        options: Options<'a>,
    },
    /// The option codes the client asks for (§21.7), two bytes each.
    Oro(&'a [u8]),
    /// Hundredths of a second since the client began (§21.9).
    ElapsedTime(u16),
    /// A status and a UTF-8 message (§21.13).
    StatusCode {
        status: u16,
        message: &'a [u8],
    },
    /// The client asks for, or the server grants, a two-message exchange (§21.14).
    RapidCommit,
    /// Recursive DNS servers (RFC 3646 §3), 16 bytes each.
    DnsServers(&'a [u8]),
    /// The domain search list (RFC 3646 §4), uncompressed names (RFC 8415 §10).
    DomainList(&'a [u8]),
    /// Seconds until the client asks again after an Information-request (§21.23).
    InformationRefreshTime(u32),
    Unknown {
        code: u16,
        data: &'a [u8],
    },
}

fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_be_bytes(b))
}

impl<'a> DhcpOption<'a> {
    pub fn code(&self) -> u16 {
        match self {
            DhcpOption::ClientId(_) => code::CLIENTID,
            DhcpOption::ServerId(_) => code::SERVERID,
            DhcpOption::IaNa { .. } => code::IA_NA,
            DhcpOption::IaAddr { .. } => code::IAADDR,
            DhcpOption::Oro(_) => code::ORO,
            DhcpOption::ElapsedTime(_) => code::ELAPSED_TIME,
            DhcpOption::StatusCode { .. } => code::STATUS_CODE,
            DhcpOption::RapidCommit => code::RAPID_COMMIT,
            DhcpOption::DnsServers(_) => code::DNS_SERVERS,
            DhcpOption::DomainList(_) => code::DOMAIN_LIST,
            DhcpOption::InformationRefreshTime(_) => code::INFORMATION_REFRESH_TIME,
            DhcpOption::Unknown { code, .. } => *code,
        }
    }

    /// Gives the bytes of an option with `code` their meaning.
    pub fn parse(code: u16, data: &'a [u8]) -> Result<DhcpOption<'a>, Error> {
        let bad = Error::BadOptionLength;
        Ok(match code {
            code::CLIENTID | code::SERVERID => {
                if data.len() < 2 || data.len() > MAX_DUID_LEN {
                    return Err(bad);
                }
                if code == code::CLIENTID {
                    DhcpOption::ClientId(data)
                } else {
                    DhcpOption::ServerId(data)
                }
            }
            code::IA_NA => DhcpOption::IaNa {
                iaid: be_u32(data, 0).ok_or(bad)?,
                t1: be_u32(data, 4).ok_or(bad)?,
                t2: be_u32(data, 8).ok_or(bad)?,
                options: Options::parse(data.get(12..).ok_or(bad)?)?,
            },
            code::IAADDR => {
                let addr: [u8; 16] = data.get(..16).ok_or(bad)?.try_into().map_err(|_| bad)?;
                DhcpOption::IaAddr {
                    addr: Ipv6Addr::from(addr),
                    preferred: be_u32(data, 16).ok_or(bad)?,
                    valid: be_u32(data, 20).ok_or(bad)?,
                    options: Options::parse(data.get(24..).ok_or(bad)?)?,
                }
            }
            code::ORO if data.len().is_multiple_of(2) => DhcpOption::Oro(data),
            code::ELAPSED_TIME => match data {
                &[a, b] => DhcpOption::ElapsedTime(u16::from_be_bytes([a, b])),
                _ => return Err(bad),
            },
            code::STATUS_CODE => match data {
                [a, b, message @ ..] => DhcpOption::StatusCode {
                    status: u16::from_be_bytes([*a, *b]),
                    message,
                },
                _ => return Err(bad),
            },
            code::RAPID_COMMIT if data.is_empty() => DhcpOption::RapidCommit,
            code::DNS_SERVERS if data.len().is_multiple_of(16) => DhcpOption::DnsServers(data),
            code::DOMAIN_LIST => DhcpOption::DomainList(data),
            code::INFORMATION_REFRESH_TIME => match data {
                &[a, b, c, d] => {
                    DhcpOption::InformationRefreshTime(u32::from_be_bytes([a, b, c, d]))
                }
                _ => return Err(bad),
            },
            code::ORO | code::RAPID_COMMIT | code::DNS_SERVERS => return Err(bad),
            code => DhcpOption::Unknown { code, data },
        })
    }

    /// The option's data length (without its 4-byte head).
    pub fn data_len(&self) -> usize {
        match self {
            DhcpOption::ClientId(d)
            | DhcpOption::ServerId(d)
            | DhcpOption::Oro(d)
            | DhcpOption::DnsServers(d)
            | DhcpOption::DomainList(d)
            | DhcpOption::Unknown { data: d, .. } => d.len(),
            DhcpOption::IaNa { options, .. } => 12 + options.buffer_len(),
            DhcpOption::IaAddr { options, .. } => 24 + options.buffer_len(),
            DhcpOption::ElapsedTime(_) => 2,
            DhcpOption::StatusCode { message, .. } => 2 + message.len(),
            DhcpOption::RapidCommit => 0,
            DhcpOption::InformationRefreshTime(_) => 4,
        }
    }

    /// The whole option's length on the wire.
    pub fn buffer_len(&self) -> usize {
        OPTION_HEAD + self.data_len()
    }

    /// Appends the option to `out`. An option whose data is longer than 65535 bytes is cut
    /// to that (no option the server builds comes near it).
    pub fn emit(&self, out: &mut Vec<u8>) {
        let len = self.data_len().min(usize::from(u16::MAX)) as u16;
        out.extend_from_slice(&self.code().to_be_bytes());
        out.extend_from_slice(&len.to_be_bytes());
        let start = out.len();
        match *self {
            DhcpOption::ClientId(d)
            | DhcpOption::ServerId(d)
            | DhcpOption::Oro(d)
            | DhcpOption::DnsServers(d)
            | DhcpOption::DomainList(d)
            | DhcpOption::Unknown { data: d, .. } => out.extend_from_slice(d),
            DhcpOption::IaNa {
                iaid,
                t1,
                t2,
                options,
            } => {
                for v in [iaid, t1, t2] {
                    out.extend_from_slice(&v.to_be_bytes());
                }
                options.emit(out);
            }
            DhcpOption::IaAddr {
                addr,
                preferred,
                valid,
                options,
            } => {
                out.extend_from_slice(&addr.octets());
                out.extend_from_slice(&preferred.to_be_bytes());
                out.extend_from_slice(&valid.to_be_bytes());
                options.emit(out);
            }
            DhcpOption::ElapsedTime(t) => out.extend_from_slice(&t.to_be_bytes()),
            DhcpOption::StatusCode { status, message } => {
                out.extend_from_slice(&status.to_be_bytes());
                out.extend_from_slice(message);
            }
            DhcpOption::RapidCommit => {}
            DhcpOption::InformationRefreshTime(t) => out.extend_from_slice(&t.to_be_bytes()),
        }
        out.truncate(start + usize::from(len));
    }
}

/// A sequence of options: parsed bytes, or a list to emit.
#[derive(Clone, Copy)]
pub struct Options<'a>(OptionsRepr<'a>);

#[derive(Clone, Copy)]
enum OptionsRepr<'a> {
    /// Checked by [`Options::parse`] to tile exactly into at most [`MAX_OPTIONS`] options.
    Wire(&'a [u8]),
    List(&'a [DhcpOption<'a>]),
}

impl<'a> Options<'a> {
    pub const fn new(list: &'a [DhcpOption<'a>]) -> Options<'a> {
        Options(OptionsRepr::List(list))
    }

    /// Checks that `bytes` are whole options, at most [`MAX_OPTIONS`] of them. Their
    /// meanings are checked as they are read ([`OptionsIter`]).
    pub fn parse(bytes: &'a [u8]) -> Result<Options<'a>, Error> {
        let mut rest = bytes;
        let mut n = 0;
        while !rest.is_empty() {
            let (_, _, after) = split_option(rest)?;
            rest = after;
            n += 1;
            if n > MAX_OPTIONS {
                return Err(Error::TooManyOptions);
            }
        }
        Ok(Options(OptionsRepr::Wire(bytes)))
    }

    /// Each option with its meaning; one that does not parse is an `Err` and the others go
    /// on.
    pub fn iter(&self) -> OptionsIter<'a> {
        match self.0 {
            OptionsRepr::Wire(bytes) => OptionsIter::Wire(bytes),
            OptionsRepr::List(list) => OptionsIter::List(list.iter()),
        }
    }

    /// The first well-formed option with `code`.
    pub fn find(&self, code: u16) -> Option<DhcpOption<'a>> {
        self.iter()
            .filter_map(Result::ok)
            .find(|o| o.code() == code)
    }

    /// How many options with `code` there are, well-formed or not.
    pub fn count(&self, code: u16) -> usize {
        match self.0 {
            OptionsRepr::Wire(mut rest) => {
                let mut n = 0;
                while let Ok((c, _, after)) = split_option(rest) {
                    n += usize::from(c == code);
                    rest = after;
                }
                n
            }
            OptionsRepr::List(list) => list.iter().filter(|o| o.code() == code).count(),
        }
    }

    pub fn buffer_len(&self) -> usize {
        match self.0 {
            OptionsRepr::Wire(bytes) => bytes.len(),
            OptionsRepr::List(list) => list.iter().map(DhcpOption::buffer_len).sum(),
        }
    }

    pub fn emit(&self, out: &mut Vec<u8>) {
        match self.0 {
            OptionsRepr::Wire(bytes) => out.extend_from_slice(bytes),
            OptionsRepr::List(list) => {
                for o in list {
                    o.emit(out);
                }
            }
        }
    }
}

impl PartialEq for Options<'_> {
    fn eq(&self, other: &Options<'_>) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Options<'_> {}

impl fmt::Debug for Options<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// The code, data and rest of the option at the start of `bytes`.
fn split_option(bytes: &[u8]) -> Result<(u16, &[u8], &[u8]), Error> {
    let (head, rest) = bytes
        .split_at_checked(OPTION_HEAD)
        .ok_or(Error::OptionOverrun)?;
    let [c0, c1, l0, l1] = head else {
        return Err(Error::OptionOverrun);
    };
    let len = usize::from(u16::from_be_bytes([*l0, *l1]));
    let (data, rest) = rest.split_at_checked(len).ok_or(Error::OptionOverrun)?;
    Ok((u16::from_be_bytes([*c0, *c1]), data, rest))
}

/// Iterates the options of an [`Options`].
#[derive(Debug, Clone)]
pub enum OptionsIter<'a> {
    #[doc(hidden)]
    Wire(&'a [u8]),
    #[doc(hidden)]
    List(core::slice::Iter<'a, DhcpOption<'a>>),
}

impl<'a> Iterator for OptionsIter<'a> {
    type Item = Result<DhcpOption<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            OptionsIter::Wire(bytes) => {
                if bytes.is_empty() {
                    return None;
                }
                match split_option(bytes) {
                    Ok((code, data, rest)) => {
                        *bytes = rest;
                        Some(DhcpOption::parse(code, data))
                    }
                    Err(e) => {
                        *bytes = &[];
                        Some(Err(e))
                    }
                }
            }
            OptionsIter::List(list) => list.next().map(|o| Ok(*o)),
        }
    }
}

/// A DHCPv6 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr<'a> {
    pub msg_type: MessageType,
    /// 24 bits.
    pub transaction_id: u32,
    pub options: Options<'a>,
}

impl<'a> Repr<'a> {
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&'a T>) -> Result<Repr<'a>, Error> {
        Ok(Repr {
            msg_type: packet.msg_type(),
            transaction_id: packet.transaction_id(),
            options: Options::parse(packet.options())?,
        })
    }

    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.options.buffer_len()
    }

    /// The message's bytes.
    pub fn emit(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.buffer_len());
        out.push(u8::from(self.msg_type));
        out.extend_from_slice(&self.transaction_id.to_be_bytes()[1..]);
        self.options.emit(&mut out);
        out
    }
}

/// The addresses of a DNS servers option.
pub fn dns_servers(data: &[u8]) -> impl Iterator<Item = Ipv6Addr> + '_ {
    data.chunks_exact(16).filter_map(|c| {
        let a: [u8; 16] = c.try_into().ok()?;
        Some(Ipv6Addr::from(a))
    })
}

/// The option codes of an ORO.
pub fn requested(data: &[u8]) -> impl Iterator<Item = u16> + '_ {
    data.chunks_exact(2).map(|c| {
        u16::from_be_bytes([
            c.first().copied().unwrap_or(0),
            c.get(1).copied().unwrap_or(0),
        ])
    })
}
