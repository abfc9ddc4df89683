//! Neighbor Discovery options (RFC 4861 §4.6, RFC 8106 §5).
//!
//! [`Options::parse`] validates a whole option area once: every option has a nonzero length
//! (RFC 4861 §4.6: a zero length must make the receiver discard the message, as it would
//! otherwise loop forever) that stays inside the message, the options we know have the length
//! their format needs, domain names are well formed, and there are at most [`MAX_OPTIONS`].
//! Iterating it afterwards cannot fail. Options we do not know come out as
//! [`NdpOption::Unknown`] (RFC 4861 §4.6: "silently ignore ... and continue processing").
//!
//! Options read from the wire are borrowed and emitted again byte for byte; options built for
//! sending are a slice of [`NdpOption`]s. Both compare equal when their options do.

use crate::wire::ethernet;
use core::fmt;
use core::net::Ipv6Addr;

use super::Error;

/// The most options one message may carry. A guest's solicitations and advertisements carry
/// one or two; a router advertisement with several prefixes, routes, DNS servers and search
/// domains stays well under this.
pub const MAX_OPTIONS: usize = 32;

/// Option types (IANA "IPv6 Neighbor Discovery Option Formats").
pub mod option_type {
    /// RFC 4861 §4.6.1.
    pub const SOURCE_LLADDR: u8 = 1;
    /// RFC 4861 §4.6.1.
    pub const TARGET_LLADDR: u8 = 2;
    /// RFC 4861 §4.6.2.
    pub const PREFIX_INFO: u8 = 3;
    /// RFC 4861 §4.6.3.
    pub const REDIRECTED_HEADER: u8 = 4;
    /// RFC 4861 §4.6.4.
    pub const MTU: u8 = 5;
    /// Enhanced duplicate address detection's nonce (RFC 7527 §4.1).
    pub const NONCE: u8 = 14;
    /// Route information (RFC 4191 §2.3).
    pub const ROUTE_INFO: u8 = 24;
    /// Recursive DNS servers (RFC 8106 §5.1).
    pub const RDNSS: u8 = 25;
    /// DNS search list (RFC 8106 §5.2).
    pub const DNSSL: u8 = 31;
}

/// Options come in units of 8 octets, type and length included (RFC 4861 §4.6).
const UNIT: usize = 8;

/// The option header (type, length) plus the reserved and lifetime fields, or reserved bytes,
/// that precede the variable part of RDNSS, DNSSL and redirected header options.
const FIXED: usize = 8;

/// Rounds `len` up to whole option units.
const fn units(len: usize) -> usize {
    len.div_ceil(UNIT) * UNIT
}

/// One Neighbor Discovery option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NdpOption<'a> {
    /// The sender's link-layer address (RFC 4861 §4.6.1; 6 bytes on Ethernet, RFC 2464 §8).
    SourceLinkLayerAddr(ethernet::Address),
    /// The target's link-layer address (RFC 4861 §4.6.1).
    TargetLinkLayerAddr(ethernet::Address),
    PrefixInfo(PrefixInfo),
    /// The start of the redirected packet (RFC 4861 §4.6.3), zero-padded to 8 bytes.
    RedirectedHeader(&'a [u8]),
    /// The link's MTU (RFC 4861 §4.6.4).
    Mtu(u32),
    /// Recursive DNS servers (RFC 8106 §5.1); `lifetime` in seconds, all ones is infinity.
    Rdnss {
        lifetime: u32,
        servers: Servers<'a>,
    },
    /// The DNS search list (RFC 8106 §5.2); `lifetime` in seconds.
    Dnssl {
        lifetime: u32,
        domains: Domains<'a>,
    },
    /// Any other option: its type and the bytes after type and length. Emitting pads `data`
    /// with zeros to a length 2 short of a multiple of 8.
    Unknown {
        kind: u8,
        data: &'a [u8],
    },
}

/// The prefix information option (RFC 4861 §4.6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PrefixInfo {
    pub prefix_len: u8,
    /// L: the prefix is on-link.
    pub on_link: bool,
    /// A: the prefix may be used for address autoconfiguration (RFC 4862).
    pub autonomous: bool,
    /// Seconds; all ones is infinity.
    pub valid_lifetime: u32,
    /// Seconds; all ones is infinity.
    pub preferred_lifetime: u32,
    pub prefix: Ipv6Addr,
}

const FLAG_ON_LINK: u8 = 0x80;
const FLAG_AUTONOMOUS: u8 = 0x40;

impl<'a> NdpOption<'a> {
    /// The option type.
    pub fn kind(&self) -> u8 {
        match self {
            NdpOption::SourceLinkLayerAddr(_) => option_type::SOURCE_LLADDR,
            NdpOption::TargetLinkLayerAddr(_) => option_type::TARGET_LLADDR,
            NdpOption::PrefixInfo(_) => option_type::PREFIX_INFO,
            NdpOption::RedirectedHeader(_) => option_type::REDIRECTED_HEADER,
            NdpOption::Mtu(_) => option_type::MTU,
            NdpOption::Rdnss { .. } => option_type::RDNSS,
            NdpOption::Dnssl { .. } => option_type::DNSSL,
            NdpOption::Unknown { kind, .. } => *kind,
        }
    }

    /// Reads the option at the start of `bytes`, returning it and its length.
    fn parse(bytes: &'a [u8]) -> Result<(NdpOption<'a>, usize), Error> {
        let (&kind, &units) = match bytes {
            [kind, units, ..] => (kind, units),
            _ => return Err(Error::OptionTruncated),
        };
        // RFC 4861 §4.6: "Nodes MUST silently discard an ND packet that contains an option
        // with length zero."
        if units == 0 {
            return Err(Error::OptionZeroLength);
        }
        let len = usize::from(units) * UNIT;
        let option = bytes.get(..len).ok_or(Error::OptionTruncated)?;
        let body = option.get(2..).unwrap_or(&[]);
        let exactly = |want: usize| {
            if len == want {
                Ok(())
            } else {
                Err(Error::BadOptionLength)
            }
        };
        let parsed = match kind {
            option_type::SOURCE_LLADDR | option_type::TARGET_LLADDR => {
                exactly(UNIT)?;
                let addr = ethernet::Address::from_bytes(body.get(..6).unwrap_or(&[]))
                    .ok_or(Error::BadOptionLength)?;
                if kind == option_type::SOURCE_LLADDR {
                    NdpOption::SourceLinkLayerAddr(addr)
                } else {
                    NdpOption::TargetLinkLayerAddr(addr)
                }
            }
            option_type::PREFIX_INFO => {
                exactly(4 * UNIT)?;
                let b: &[u8; 30] = body.try_into().map_err(|_| Error::BadOptionLength)?;
                let mut prefix = [0; 16];
                prefix.copy_from_slice(&b[14..30]);
                NdpOption::PrefixInfo(PrefixInfo {
                    prefix_len: b[0],
                    on_link: b[1] & FLAG_ON_LINK != 0,
                    autonomous: b[1] & FLAG_AUTONOMOUS != 0,
                    valid_lifetime: u32::from_be_bytes([b[2], b[3], b[4], b[5]]),
                    preferred_lifetime: u32::from_be_bytes([b[6], b[7], b[8], b[9]]),
                    prefix: Ipv6Addr::from(prefix),
                })
            }
            option_type::REDIRECTED_HEADER => {
                NdpOption::RedirectedHeader(option.get(FIXED..).unwrap_or(&[]))
            }
            option_type::MTU => {
                exactly(UNIT)?;
                NdpOption::Mtu(read_u32(body, 2))
            }
            option_type::RDNSS => {
                // RFC 8106 §5.1: length 1 + 2 × (number of addresses), at least 3.
                let servers = option.get(FIXED..).unwrap_or(&[]);
                if len < 3 * UNIT || servers.len() % 16 != 0 {
                    return Err(Error::BadOptionLength);
                }
                NdpOption::Rdnss {
                    lifetime: read_u32(body, 2),
                    servers: Servers(ServersRepr::Wire(servers)),
                }
            }
            option_type::DNSSL => {
                // RFC 8106 §5.2: at least 2 units.
                if len < 2 * UNIT {
                    return Err(Error::BadOptionLength);
                }
                NdpOption::Dnssl {
                    lifetime: read_u32(body, 2),
                    domains: Domains::parse(option.get(FIXED..).unwrap_or(&[]))?,
                }
            }
            _ => NdpOption::Unknown { kind, data: body },
        };
        Ok((parsed, len))
    }

    /// The length of the option this emits.
    pub fn buffer_len(&self) -> usize {
        match self {
            NdpOption::SourceLinkLayerAddr(_)
            | NdpOption::TargetLinkLayerAddr(_)
            | NdpOption::Mtu(_) => UNIT,
            NdpOption::PrefixInfo(_) => 4 * UNIT,
            NdpOption::RedirectedHeader(data) => FIXED + units(data.len()),
            NdpOption::Rdnss { servers, .. } => FIXED + 16 * servers.len(),
            NdpOption::Dnssl { domains, .. } => FIXED + domains.buffer_len(),
            NdpOption::Unknown { data, .. } => units(2 + data.len()),
        }
    }

    /// Writes the option into the start of `out`, which must hold [`NdpOption::buffer_len`]
    /// bytes; at most 2040 (255 units) can be described.
    fn emit(&self, out: &mut [u8]) {
        let len = self.buffer_len();
        debug_assert!(len <= 255 * UNIT, "NDP option too long");
        let Some(out) = out.get_mut(..len) else {
            return;
        };
        out.fill(0);
        out[0] = self.kind();
        out[1] = (len / UNIT).min(255) as u8;
        let body = &mut out[2..];
        match *self {
            NdpOption::SourceLinkLayerAddr(addr) | NdpOption::TargetLinkLayerAddr(addr) => {
                body[..6].copy_from_slice(addr.as_bytes());
            }
            NdpOption::PrefixInfo(info) => {
                body[0] = info.prefix_len;
                body[1] = if info.on_link { FLAG_ON_LINK } else { 0 }
                    | if info.autonomous { FLAG_AUTONOMOUS } else { 0 };
                body[2..6].copy_from_slice(&info.valid_lifetime.to_be_bytes());
                body[6..10].copy_from_slice(&info.preferred_lifetime.to_be_bytes());
                body[14..30].copy_from_slice(&info.prefix.octets());
            }
            NdpOption::RedirectedHeader(data) => copy_into(&mut out[FIXED..], data),
            NdpOption::Mtu(mtu) => body[2..6].copy_from_slice(&mtu.to_be_bytes()),
            NdpOption::Rdnss { lifetime, servers } => {
                body[2..6].copy_from_slice(&lifetime.to_be_bytes());
                for (slot, addr) in out[FIXED..].chunks_exact_mut(16).zip(servers.iter()) {
                    slot.copy_from_slice(&addr.octets());
                }
            }
            NdpOption::Dnssl { lifetime, domains } => {
                body[2..6].copy_from_slice(&lifetime.to_be_bytes());
                domains.emit(&mut out[FIXED..]);
            }
            NdpOption::Unknown { data, .. } => copy_into(body, data),
        }
    }
}

/// Copies as much of `data` as fits into the start of `out`.
fn copy_into(out: &mut [u8], data: &[u8]) {
    let n = data.len().min(out.len());
    out[..n].copy_from_slice(&data[..n]);
}

/// The big-endian u32 at `at` in `bytes`, or 0 if it does not fit.
fn read_u32(bytes: &[u8], at: usize) -> u32 {
    match bytes.get(at..at + 4) {
        Some(&[a, b, c, d]) => u32::from_be_bytes([a, b, c, d]),
        _ => 0,
    }
}

/// The options of one Neighbor Discovery message: validated wire bytes or a list to emit.
#[derive(Debug, Clone, Copy)]
pub struct Options<'a>(OptionsRepr<'a>);

#[derive(Debug, Clone, Copy)]
enum OptionsRepr<'a> {
    /// Checked by [`Options::parse`].
    Wire(&'a [u8]),
    List(&'a [NdpOption<'a>]),
}

impl<'a> Options<'a> {
    /// No options.
    pub const EMPTY: Options<'static> = Options(OptionsRepr::List(&[]));

    /// Options to emit, in order. At most [`MAX_OPTIONS`] of them parse back.
    pub const fn new(list: &'a [NdpOption<'a>]) -> Options<'a> {
        Options(OptionsRepr::List(list))
    }

    /// Validates the option area of a message (see the module documentation).
    pub fn parse(bytes: &'a [u8]) -> Result<Options<'a>, Error> {
        let mut rest = bytes;
        let mut count = 0;
        while !rest.is_empty() {
            if count == MAX_OPTIONS {
                return Err(Error::TooManyOptions);
            }
            let (_, len) = NdpOption::parse(rest)?;
            rest = rest.get(len..).unwrap_or(&[]);
            count += 1;
        }
        Ok(Options(OptionsRepr::Wire(bytes)))
    }

    pub fn iter(&self) -> OptionsIter<'a> {
        OptionsIter(match self.0 {
            OptionsRepr::Wire(bytes) => OptionsIterRepr::Wire(bytes),
            OptionsRepr::List(list) => OptionsIterRepr::List(list.iter()),
        })
    }

    /// The first source link-layer address option.
    pub fn source_lladdr(&self) -> Option<ethernet::Address> {
        self.iter().find_map(|o| match o {
            NdpOption::SourceLinkLayerAddr(a) => Some(a),
            _ => None,
        })
    }

    /// The first target link-layer address option.
    pub fn target_lladdr(&self) -> Option<ethernet::Address> {
        self.iter().find_map(|o| match o {
            NdpOption::TargetLinkLayerAddr(a) => Some(a),
            _ => None,
        })
    }

    /// The first MTU option.
    pub fn mtu(&self) -> Option<u32> {
        self.iter().find_map(|o| match o {
            NdpOption::Mtu(mtu) => Some(mtu),
            _ => None,
        })
    }

    /// The length of the option area this emits: parsed bytes are emitted as they came.
    pub fn buffer_len(&self) -> usize {
        match self.0 {
            OptionsRepr::Wire(bytes) => bytes.len(),
            OptionsRepr::List(list) => list.iter().map(NdpOption::buffer_len).sum(),
        }
    }

    /// Writes the options into the start of `out`, which must hold [`Options::buffer_len`].
    pub(super) fn emit(&self, out: &mut [u8]) {
        match self.0 {
            OptionsRepr::Wire(bytes) => copy_into(out, bytes),
            OptionsRepr::List(list) => {
                let mut at = 0;
                for option in list {
                    option.emit(out.get_mut(at..).unwrap_or(&mut []));
                    at += option.buffer_len();
                }
            }
        }
    }
}

impl PartialEq for Options<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Options<'_> {}

impl<'a> IntoIterator for &Options<'a> {
    type Item = NdpOption<'a>;
    type IntoIter = OptionsIter<'a>;

    fn into_iter(self) -> OptionsIter<'a> {
        self.iter()
    }
}

/// The iterator of [`Options::iter`].
#[derive(Debug, Clone)]
pub struct OptionsIter<'a>(OptionsIterRepr<'a>);

#[derive(Debug, Clone)]
enum OptionsIterRepr<'a> {
    Wire(&'a [u8]),
    List(core::slice::Iter<'a, NdpOption<'a>>),
}

impl<'a> Iterator for OptionsIter<'a> {
    type Item = NdpOption<'a>;

    fn next(&mut self) -> Option<NdpOption<'a>> {
        match &mut self.0 {
            OptionsIterRepr::Wire(rest) => match NdpOption::parse(rest) {
                Ok((option, len)) => {
                    *rest = rest.get(len..).unwrap_or(&[]);
                    Some(option)
                }
                // Only reached for bytes `Options::parse` did not check: stop.
                Err(_) => {
                    *rest = &[];
                    None
                }
            },
            OptionsIterRepr::List(list) => list.next().copied(),
        }
    }
}

/// The addresses of a recursive DNS server option.
#[derive(Debug, Clone, Copy)]
pub struct Servers<'a>(ServersRepr<'a>);

#[derive(Debug, Clone, Copy)]
enum ServersRepr<'a> {
    /// A multiple of 16 bytes.
    Wire(&'a [u8]),
    List(&'a [Ipv6Addr]),
}

impl<'a> Servers<'a> {
    /// Addresses to emit; RFC 8106 §5.1 requires at least one (an empty list emits an
    /// option that does not parse back).
    pub const fn new(list: &'a [Ipv6Addr]) -> Servers<'a> {
        Servers(ServersRepr::List(list))
    }

    pub fn iter(&self) -> impl Iterator<Item = Ipv6Addr> + 'a {
        let (wire, list): (&[u8], &[Ipv6Addr]) = match self.0 {
            ServersRepr::Wire(bytes) => (bytes, &[]),
            ServersRepr::List(list) => (&[], list),
        };
        let wire = wire.chunks_exact(16).map(|c| {
            let mut a = [0; 16];
            a.copy_from_slice(c);
            Ipv6Addr::from(a)
        });
        wire.chain(list.iter().copied())
    }

    pub fn len(&self) -> usize {
        match self.0 {
            ServersRepr::Wire(bytes) => bytes.len() / 16,
            ServersRepr::List(list) => list.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl PartialEq for Servers<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Servers<'_> {}

/// Bounds of a domain name in DNS wire format (RFC 1035 §2.3.4).
const MAX_LABEL_LEN: usize = 63;
const MAX_NAME_LEN: usize = 255;

/// The domain names of a DNS search list option, in DNS wire format (RFC 1035 §3.1),
/// uncompressed (RFC 8106 §5.2), the last followed by zero padding.
#[derive(Debug, Clone, Copy)]
pub struct Domains<'a>(DomainsRepr<'a>);

#[derive(Debug, Clone, Copy)]
enum DomainsRepr<'a> {
    /// Checked by [`Domains::parse`]; padding included.
    Wire(&'a [u8]),
    /// Checked by [`Domains::new`].
    List(&'a [&'a str]),
}

impl<'a> Domains<'a> {
    /// Names to emit, written `example.org` (a final dot is allowed). There must be at least
    /// one, each label must be 1 to 63 bytes and each name at most 255 bytes encoded, or this
    /// is [`Error::BadDomainName`].
    pub fn new(names: &'a [&'a str]) -> Result<Domains<'a>, Error> {
        // RFC 8106 §5.2: "One or more domain names".
        if names.is_empty() {
            return Err(Error::BadDomainName);
        }
        for name in names {
            let name = name.strip_suffix('.').unwrap_or(name);
            let mut encoded = 1;
            for label in name.split('.') {
                if label.is_empty() || label.len() > MAX_LABEL_LEN {
                    return Err(Error::BadDomainName);
                }
                encoded += 1 + label.len();
            }
            if encoded > MAX_NAME_LEN {
                return Err(Error::BadDomainName);
            }
        }
        Ok(Domains(DomainsRepr::List(names)))
    }

    /// Checks the names in an option's variable part: each label 1 to 63 bytes and within
    /// the option, each name at most 255 bytes, and only zeros after the last name. Every
    /// step moves forward, so the work is bounded by the option's length.
    fn parse(bytes: &'a [u8]) -> Result<Domains<'a>, Error> {
        let mut at = 0;
        while let Some(&first) = bytes.get(at) {
            if first == 0 {
                // Padding: the rest is zeros.
                if bytes.get(at..).unwrap_or(&[]).iter().any(|&b| b != 0) {
                    return Err(Error::BadDomainName);
                }
                break;
            }
            let start = at;
            loop {
                let len = usize::from(*bytes.get(at).ok_or(Error::BadDomainName)?);
                at += 1;
                if len == 0 {
                    break;
                }
                if len > MAX_LABEL_LEN {
                    return Err(Error::BadDomainName);
                }
                at += len;
                if at - start >= MAX_NAME_LEN {
                    return Err(Error::BadDomainName);
                }
            }
        }
        Ok(Domains(DomainsRepr::Wire(bytes)))
    }

    pub fn iter(&self) -> DomainsIter<'a> {
        DomainsIter(match self.0 {
            DomainsRepr::Wire(bytes) => DomainsIterRepr::Wire(bytes),
            DomainsRepr::List(list) => DomainsIterRepr::List(list.iter()),
        })
    }

    /// The bytes the names take in the option, padding included.
    fn buffer_len(&self) -> usize {
        match self.0 {
            DomainsRepr::Wire(bytes) => bytes.len(),
            DomainsRepr::List(_) => units(self.iter().map(|d| d.encoded_len()).sum()),
        }
    }

    fn emit(&self, out: &mut [u8]) {
        match self.0 {
            DomainsRepr::Wire(bytes) => copy_into(out, bytes),
            DomainsRepr::List(_) => {
                let mut at = 0;
                for domain in self.iter() {
                    for label in domain.labels() {
                        if let Some(slot) = out.get_mut(at..at + 1 + label.len()) {
                            slot[0] = label.len() as u8;
                            slot[1..].copy_from_slice(label);
                        }
                        at += 1 + label.len();
                    }
                    // The terminating empty label; the rest of `out` is already zero.
                    at += 1;
                }
            }
        }
    }
}

impl PartialEq for Domains<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Domains<'_> {}

/// The iterator of [`Domains::iter`].
#[derive(Debug, Clone)]
pub struct DomainsIter<'a>(DomainsIterRepr<'a>);

#[derive(Debug, Clone)]
enum DomainsIterRepr<'a> {
    Wire(&'a [u8]),
    List(core::slice::Iter<'a, &'a str>),
}

impl<'a> Iterator for DomainsIter<'a> {
    type Item = Domain<'a>;

    fn next(&mut self) -> Option<Domain<'a>> {
        match &mut self.0 {
            DomainsIterRepr::Wire(rest) => {
                // A name runs to its empty label; a zero where a name would start is padding.
                let end = name_len(rest)?;
                let (name, after) = rest.split_at_checked(end)?;
                *rest = after;
                Some(Domain(DomainRepr::Wire(name)))
            }
            DomainsIterRepr::List(list) => list.next().map(|s| Domain(DomainRepr::Text(s))),
        }
    }
}

/// The encoded length of the name at the start of `bytes`, or `None` at padding, at the end,
/// or if the name runs past the end.
fn name_len(bytes: &[u8]) -> Option<usize> {
    if bytes.first().is_none_or(|&b| b == 0) {
        return None;
    }
    let mut at = 0;
    loop {
        let len = usize::from(*bytes.get(at)?);
        at += 1 + len;
        if len == 0 {
            return Some(at);
        }
        if at > bytes.len() {
            return None;
        }
    }
}

/// One domain name of a DNS search list.
#[derive(Debug, Clone, Copy)]
pub struct Domain<'a>(DomainRepr<'a>);

#[derive(Debug, Clone, Copy)]
enum DomainRepr<'a> {
    /// Wire format, the terminating empty label included.
    Wire(&'a [u8]),
    Text(&'a str),
}

impl<'a> Domain<'a> {
    /// The labels, root excluded.
    pub fn labels(&self) -> Labels<'a> {
        Labels(match self.0 {
            DomainRepr::Wire(bytes) => LabelsRepr::Wire(bytes),
            DomainRepr::Text(s) => LabelsRepr::Text(s.strip_suffix('.').unwrap_or(s).split('.')),
        })
    }

    /// The bytes the name takes in wire format.
    pub fn encoded_len(&self) -> usize {
        self.labels().map(|l| 1 + l.len()).sum::<usize>() + 1
    }
}

/// Domain names compare as DNS does: ASCII case-insensitively (RFC 4343).
impl PartialEq for Domain<'_> {
    fn eq(&self, other: &Self) -> bool {
        let (mut a, mut b) = (self.labels(), other.labels());
        loop {
            match (a.next(), b.next()) {
                (None, None) => return true,
                (Some(x), Some(y)) if x.eq_ignore_ascii_case(y) => {}
                _ => return false,
            }
        }
    }
}

impl Eq for Domain<'_> {}

/// Printed with dots between labels; bytes that are not printable ASCII, dots and
/// backslashes inside labels are escaped as `\DDD` (RFC 4343 §2.1).
impl fmt::Display for Domain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, label) in self.labels().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            for &b in label {
                if b.is_ascii_graphic() && b != b'.' && b != b'\\' {
                    write!(f, "{}", char::from(b))?;
                } else {
                    write!(f, "\\{b:03}")?;
                }
            }
        }
        Ok(())
    }
}

/// The iterator of [`Domain::labels`].
#[derive(Debug, Clone)]
pub struct Labels<'a>(LabelsRepr<'a>);

#[derive(Debug, Clone)]
enum LabelsRepr<'a> {
    Wire(&'a [u8]),
    Text(core::str::Split<'a, char>),
}

impl<'a> Iterator for Labels<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        match &mut self.0 {
            LabelsRepr::Wire(rest) => {
                let (&len, after) = rest.split_first()?;
                let (label, after) = after.split_at_checked(usize::from(len))?;
                *rest = if len == 0 { &[] } else { after };
                (len != 0).then_some(label)
            }
            LabelsRepr::Text(split) => split.next().map(str::as_bytes),
        }
    }
}
