//! TAP devices: create one in this or another network namespace, optionally configure it, and
//! read and write whole Ethernet frames on it.
//!
//! [`Tap::open`] opens `/dev/net/tun` and attaches a TAP interface (`IFF_TAP | IFF_NO_PI`,
//! optionally `IFF_MULTI_QUEUE`) named `NAME`, creating it if needed. Both steps run inside the
//! target namespace through [`Netns::run`] — the kernel ties the device to the namespace of the
//! thread that opened `/dev/net/tun` — on a short-lived thread, so this process never leaves its
//! own namespace; the returned descriptor works from any thread. The interface is not persistent:
//! it disappears when the last descriptor on it is closed.
//!
//! With a [`TapConfig`], the interface is then configured as slirp4netns `--configure` does: MAC
//! (`--mac`), MTU (65520 by default), IPv4 address and netmask (192.168.127.2/24), link up,
//! loopback up, and a default route via the gateway (192.168.127.1). This uses `SIOCSIF*` and
//! `SIOCADDRT` ioctls on a socket created inside the namespace; nothing is shelled out. Every
//! ioctl goes through `rustix` in the private `ioctl` module, the one place their `unsafe` is.
//!
//! Each [`Tap::read_frame`] returns exactly one frame (without FCS); the buffer must hold
//! MTU + 14 bytes or longer frames are cut short. Each [`Tap::write_frame`] sends one frame.
//! A queue opened for offloads ([`TapOptions::offload`]) carries a virtio-net header before
//! each frame instead: see [`offload`] for what is negotiated and how frames are read and
//! written then.
//! Both block unless [`Tap::set_nonblocking`] was called; [`Tap::wait_readable`] waits with a
//! timeout, and the raw descriptor is there for an event loop. Once the interface is deleted
//! (`ip link del`), reads, writes and waits fail with errors [`crate::sys::is_gone`] accepts.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

use libc::{c_char, c_short};
use rustix::fs::OFlags;
use rustix::io::Errno;
use stack::wire::EthernetAddress;

use crate::netns::{Netns, NetnsError};

mod ioctl;
mod offload;
pub use offload::{HEADER_LEN as VNET_HEADER_LEN, TapOffloads};

/// MTU of a configured TAP unless told otherwise (as slirp4netns and pasta use).
pub const DEFAULT_MTU: u32 = 65520;
/// The guest's address in the default subnet.
pub const DEFAULT_ADDRESS: Ipv4Addr = Ipv4Addr::new(192, 168, 127, 2);
/// The default subnet's prefix length.
pub const DEFAULT_PREFIX_LEN: u8 = 24;
/// The gateway: host-switch's own address in the default subnet.
pub const DEFAULT_GATEWAY: Ipv4Addr = Ipv4Addr::new(192, 168, 127, 1);

/// Smallest MTU the kernel accepts for IPv4 (RFC 791: every host must handle 68 octets).
const MIN_MTU: u32 = 68;
/// Largest MTU of a TAP device (the tun driver's `MAX_MTU`).
const MAX_MTU: u32 = 65535;
const TUN_PATH: &str = "/dev/net/tun";

/// How to configure the interface after creating it (slirp4netns `--configure`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapConfig {
    /// The interface's MAC address; `None` keeps the kernel's random one.
    pub mac: Option<EthernetAddress>,
    pub mtu: u32,
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    /// Default route via this address; `None` adds no route.
    pub gateway: Option<Ipv4Addr>,
    /// Also bring `lo` up (a fresh namespace has it down).
    pub loopback_up: bool,
}

impl Default for TapConfig {
    fn default() -> TapConfig {
        TapConfig {
            mac: None,
            mtu: DEFAULT_MTU,
            address: DEFAULT_ADDRESS,
            prefix_len: DEFAULT_PREFIX_LEN,
            gateway: Some(DEFAULT_GATEWAY),
            loopback_up: true,
        }
    }
}

/// Options of [`Tap::open_with`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TapOptions {
    /// Open with `IFF_MULTI_QUEUE`; each further open of the same name adds a queue.
    pub multi_queue: bool,
    /// Configure the interface once attached.
    pub configure: Option<TapConfig>,
    /// Open with `IFF_VNET_HDR` (on little-endian machines), so that offloads can be
    /// negotiated ([`Tap::negotiate_offloads`]); every frame then carries a virtio-net header
    /// ([`Tap::read_vnet_into`], [`Tap::write_vnet`]). All queues of a device must agree.
    pub offload: bool,
}

/// Why a TAP device could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    #[error("invalid interface name {0:?} (1 to 15 bytes, no '/', ':', whitespace or NUL)")]
    InvalidName(String),
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("cannot open {TUN_PATH}: {0}")]
    OpenDevice(io::Error),
    #[error("cannot attach TAP interface {name} (TUNSETIFF): {source}")]
    Attach { name: String, source: io::Error },
    #[error("cannot set offloads on TAP interface {name}: {source}")]
    Offload { name: String, source: io::Error },
    #[error(transparent)]
    Configure(#[from] ConfigureError),
}

/// Why a TAP interface could not be configured.
#[derive(Debug, thiserror::Error)]
pub enum ConfigureError {
    #[error("invalid interface name {0:?}")]
    InvalidName(String),
    #[error("MTU {0} out of range ({MIN_MTU}..={MAX_MTU})")]
    InvalidMtu(u32),
    #[error("prefix length /{0} out of range (0..=32)")]
    InvalidPrefix(u8),
    #[error("MAC address {0} is not a unicast address")]
    InvalidMac(EthernetAddress),
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("cannot create a configuration socket: {0}")]
    Socket(io::Error),
    #[error("{step} on {name} failed: {source}")]
    Ioctl {
        step: &'static str,
        name: String,
        source: io::Error,
    },
}

/// An open TAP queue. Reads and writes take `&self`; share it with `Arc` or [`Tap::try_clone`].
#[derive(Debug)]
pub struct Tap {
    file: File,
    name: String,
    /// What [`Tap::negotiate_offloads`] agreed with the kernel.
    offloads: TapOffloads,
}

impl Tap {
    /// Opens (creating if needed) the TAP interface `name` in `netns`, unconfigured.
    pub fn open(name: &str, netns: &Netns) -> Result<Tap, TapError> {
        Tap::open_with(name, netns, &TapOptions::default())
    }

    /// Opens the TAP interface `name` in `netns` and configures it if `options` say so; both in
    /// one visit to the namespace.
    pub fn open_with(name: &str, netns: &Netns, options: &TapOptions) -> Result<Tap, TapError> {
        if !valid_ifname(name) {
            return Err(TapError::InvalidName(name.to_owned()));
        }
        if let Some(config) = &options.configure {
            config.validate()?;
        }
        netns.run(|| {
            let vnet_hdr = options.offload && offload::SUPPORTED;
            let tap = Tap::attach_here(name, options.multi_queue, vnet_hdr)?;
            if let Some(config) = &options.configure {
                configure_here(&tap.name, config)?;
            }
            Ok(tap)
        })?
    }

    fn attach_here(name: &str, multi_queue: bool, vnet_hdr: bool) -> Result<Tap, TapError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(TUN_PATH)
            .map_err(TapError::OpenDevice)?;
        let mut ifr = ifreq_named(name).ok_or_else(|| TapError::InvalidName(name.to_owned()))?;
        let mut flags = libc::IFF_TAP | libc::IFF_NO_PI;
        if multi_queue {
            flags |= libc::IFF_MULTI_QUEUE;
        }
        if vnet_hdr {
            flags |= libc::IFF_VNET_HDR;
        }
        ifr.ifr_ifru.ifru_flags = flags as c_short;
        ioctl::update(file.as_fd(), ioctl::Update::TunSetIff, &mut ifr).map_err(|source| {
            TapError::Attach {
                name: name.to_owned(),
                source,
            }
        })?;
        // The kernel writes back the name it used (it expands a "%d" template).
        let name = ifreq_name(&ifr);
        Ok(Tap {
            file,
            name,
            offloads: TapOffloads::NONE,
        })
    }

    /// Wraps a descriptor already attached to TAP interface `name` (one opened in another
    /// process and passed over a unix socket, as `host-switch run` does).
    pub fn from_fd(fd: std::os::fd::OwnedFd, name: &str) -> Tap {
        Tap {
            file: File::from(fd),
            name: name.to_owned(),
            offloads: TapOffloads::NONE,
        }
    }

    /// The interface's name, as the kernel reported it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads one frame into `buf` and returns its length. Retries on `EINTR`; in non-blocking
    /// mode returns `WouldBlock` when no frame is queued.
    pub fn read_frame(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match (&self.file).read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }

    /// Reads one frame of at most `max` bytes and appends it to `buf`, straight into its spare
    /// capacity (reserved first, never zeroed); returns its length. Retries on `EINTR`; in
    /// non-blocking mode returns `WouldBlock` when no frame is queued.
    pub fn read_frame_into(&self, buf: &mut bytes::BytesMut, max: usize) -> io::Result<usize> {
        buf.reserve(max);
        let spare = buf.spare_capacity_mut();
        let room = spare.len().min(max);
        let spare = &mut spare[..room];
        let n = loop {
            match rustix::io::read(&self.file, &mut *spare) {
                Ok((filled, _)) => break filled.len(),
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        };
        let len = buf.len() + n.min(room);
        // SAFETY: read(2) initialised the first `n` (at most `room`) bytes of the spare
        // capacity, which follow the `buf.len()` initialised bytes.
        unsafe { buf.set_len(len) };
        Ok(n)
    }

    /// Writes one whole frame. Retries on `EINTR`.
    pub fn write_frame(&self, frame: &[u8]) -> io::Result<()> {
        loop {
            match (&self.file).write(frame) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
                Ok(n) if n == frame.len() => return Ok(()),
                Ok(n) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        format!("TAP accepted {n} of {} bytes", frame.len()),
                    ));
                }
            }
        }
    }

    /// Switches the descriptor between blocking and non-blocking mode.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        let mut flags = rustix::fs::fcntl_getfl(&self.file)?;
        flags.set(OFlags::NONBLOCK, nonblocking);
        rustix::fs::fcntl_setfl(&self.file, flags)?;
        Ok(())
    }

    /// Waits until a frame can be read, at most `timeout` (`None`: forever). Returns whether
    /// one can; an error [`crate::sys::is_gone`] accepts once the interface is deleted.
    pub fn wait_readable(&self, timeout: Option<Duration>) -> io::Result<bool> {
        crate::sys::wait_readable(self.file.as_fd(), timeout)
    }

    /// A second descriptor on the same queue (for a reader and a writer thread).
    pub fn try_clone(&self) -> io::Result<Tap> {
        Ok(Tap {
            file: self.file.try_clone()?,
            name: self.name.clone(),
            offloads: self.offloads,
        })
    }
}

impl AsFd for Tap {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl AsRawFd for Tap {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

impl TapConfig {
    fn validate(&self) -> Result<(), ConfigureError> {
        if !(MIN_MTU..=MAX_MTU).contains(&self.mtu) {
            return Err(ConfigureError::InvalidMtu(self.mtu));
        }
        if self.prefix_len > 32 {
            return Err(ConfigureError::InvalidPrefix(self.prefix_len));
        }
        if let Some(mac) = self.mac
            && (!mac.is_unicast() || mac == EthernetAddress([0; 6]))
        {
            return Err(ConfigureError::InvalidMac(mac));
        }
        Ok(())
    }

    /// The netmask for [`TapConfig::prefix_len`].
    pub fn netmask(&self) -> Ipv4Addr {
        let bits = 32u32.saturating_sub(u32::from(self.prefix_len));
        Ipv4Addr::from(u32::MAX.checked_shl(bits).unwrap_or(0))
    }
}

/// Configures the existing interface `name` inside `netns` as [`TapConfig`] says.
pub fn configure(name: &str, netns: &Netns, config: &TapConfig) -> Result<(), ConfigureError> {
    if !valid_ifname(name) {
        return Err(ConfigureError::InvalidName(name.to_owned()));
    }
    config.validate()?;
    netns.run(|| configure_here(name, config))?
}

/// Configures `name` in the calling thread's namespace.
fn configure_here(name: &str, config: &TapConfig) -> Result<(), ConfigureError> {
    config.validate()?;
    // Any AF_INET socket carries the SIOCSIF* ioctls; it belongs to this thread's namespace.
    let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).map_err(ConfigureError::Socket)?;
    let fd = sock.as_fd();
    let fail = |step: &'static str, name: &str| {
        let name = name.to_owned();
        move |source| ConfigureError::Ioctl { step, name, source }
    };
    let new_ifreq =
        |name: &str| ifreq_named(name).ok_or_else(|| ConfigureError::InvalidName(name.to_owned()));

    if let Some(mac) = config.mac {
        let mut ifr = new_ifreq(name)?;
        let mut sa_data = [0 as c_char; 14];
        for (d, s) in sa_data.iter_mut().zip(mac.as_bytes()) {
            *d = *s as c_char;
        }
        ifr.ifr_ifru.ifru_hwaddr = libc::sockaddr {
            sa_family: libc::ARPHRD_ETHER,
            sa_data,
        };
        ioctl::set(fd, ioctl::Set::HwAddr, &ifr).map_err(fail("setting the MAC address", name))?;
    }

    let mut ifr = new_ifreq(name)?;
    ifr.ifr_ifru.ifru_mtu = config.mtu as libc::c_int;
    ioctl::set(fd, ioctl::Set::Mtu, &ifr).map_err(fail("setting the MTU", name))?;

    let mut ifr = new_ifreq(name)?;
    ifr.ifr_ifru.ifru_addr = sockaddr_v4(config.address);
    ioctl::set(fd, ioctl::Set::Addr, &ifr).map_err(fail("setting the address", name))?;

    let mut ifr = new_ifreq(name)?;
    ifr.ifr_ifru.ifru_netmask = sockaddr_v4(config.netmask());
    ioctl::set(fd, ioctl::Set::Netmask, &ifr).map_err(fail("setting the netmask", name))?;

    link_up(fd, name).map_err(fail("bringing the link up", name))?;
    if config.loopback_up {
        link_up(fd, "lo").map_err(fail("bringing the link up", "lo"))?;
    }

    if let Some(gateway) = config.gateway {
        add_default_route(fd, name, gateway).map_err(fail("adding the default route", name))?;
    }
    Ok(())
}

/// Sets `IFF_UP` on `name`, keeping its other flags.
fn link_up(fd: BorrowedFd<'_>, name: &str) -> io::Result<()> {
    let mut ifr = ifreq_named(name).ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    ioctl::update(fd, ioctl::Update::GetFlags, &mut ifr)?;
    // SAFETY: SIOCGIFFLAGS filled `ifru_flags`; the union was zeroed and every bit pattern is a
    // valid c_short anyway.
    let flags = unsafe { ifr.ifr_ifru.ifru_flags };
    ifr.ifr_ifru.ifru_flags = flags | libc::IFF_UP as c_short;
    ioctl::set(fd, ioctl::Set::Flags, &ifr)
}

/// Adds `default via gateway dev name`.
fn add_default_route(fd: BorrowedFd<'_>, name: &str, gateway: Ipv4Addr) -> io::Result<()> {
    let dev = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let route = ioctl::RtEntry::new(
        sockaddr_v4(Ipv4Addr::UNSPECIFIED),
        sockaddr_v4(gateway),
        sockaddr_v4(Ipv4Addr::UNSPECIFIED),
        libc::RTF_UP | libc::RTF_GATEWAY,
    );
    ioctl::add_route(fd, route, &dev)
}

/// A `sockaddr` holding an IPv4 address and port 0 (the layout of `sockaddr_in`).
fn sockaddr_v4(addr: Ipv4Addr) -> libc::sockaddr {
    let mut sa_data = [0 as c_char; 14];
    // sa_data[0..2] is the port, [2..6] the address, both in network byte order.
    for (d, s) in sa_data[2..6].iter_mut().zip(addr.octets()) {
        *d = s as c_char;
    }
    libc::sockaddr {
        sa_family: libc::AF_INET as libc::sa_family_t,
        sa_data,
    }
}

/// Whether the kernel would take `name` as an interface name (`dev_valid_name`).
fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() < libc::IFNAMSIZ
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b == 0 || b.is_ascii_whitespace())
}

/// A zeroed `ifreq` carrying `name`, or `None` if the name does not fit.
fn ifreq_named(name: &str) -> Option<libc::ifreq> {
    if name.len() >= libc::IFNAMSIZ || name.bytes().any(|b| b == 0) {
        return None;
    }
    // SAFETY: `ifreq` is a C struct of integers, byte arrays and a union of those and a raw
    // pointer; all-zero bytes are a valid value of each (a null pointer included).
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(name.bytes()) {
        *d = s as c_char;
    }
    Some(ifr)
}

/// The NUL-terminated name in `ifr`.
fn ifreq_name(ifr: &libc::ifreq) -> String {
    let bytes: Vec<u8> = ifr
        .ifr_name
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_like_the_kernel_does() {
        assert!(valid_ifname("tap0"));
        assert!(valid_ifname("hs%d"));
        assert!(valid_ifname("123456789012345"));
        assert!(!valid_ifname("1234567890123456"));
        assert!(!valid_ifname(""));
        assert!(!valid_ifname(".."));
        assert!(!valid_ifname("a/b"));
        assert!(!valid_ifname("a b"));
        assert!(!valid_ifname("a:1"));
        assert!(matches!(
            Tap::open("a/b", &Netns::Current),
            Err(TapError::InvalidName(_))
        ));
    }

    #[test]
    fn ifreq_round_trips_the_name() {
        let ifr = ifreq_named("tap0").unwrap();
        assert_eq!(ifreq_name(&ifr), "tap0");
        assert!(ifreq_named("1234567890123456").is_none());
    }

    #[test]
    fn netmask_from_prefix() {
        let mut c = TapConfig::default();
        assert_eq!(c.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        c.prefix_len = 0;
        assert_eq!(c.netmask(), Ipv4Addr::UNSPECIFIED);
        c.prefix_len = 32;
        assert_eq!(c.netmask(), Ipv4Addr::BROADCAST);
        c.prefix_len = 33;
        assert!(matches!(
            c.validate(),
            Err(ConfigureError::InvalidPrefix(33))
        ));
    }

    #[test]
    fn config_is_validated() {
        let c = TapConfig {
            mtu: 67,
            ..TapConfig::default()
        };
        assert!(matches!(c.validate(), Err(ConfigureError::InvalidMtu(67))));
        let c = TapConfig {
            mac: Some(EthernetAddress::BROADCAST),
            ..TapConfig::default()
        };
        assert!(matches!(c.validate(), Err(ConfigureError::InvalidMac(_))));
        assert!(TapConfig::default().validate().is_ok());
    }

    #[test]
    fn sockaddr_v4_has_sockaddr_in_layout() {
        let sa = sockaddr_v4(Ipv4Addr::new(192, 168, 127, 1));
        assert_eq!(sa.sa_family, libc::AF_INET as libc::sa_family_t);
        let data: Vec<u8> = sa.sa_data.iter().map(|&c| c as u8).collect();
        assert_eq!(&data[..6], &[0, 0, 192, 168, 127, 1]);
    }
}
