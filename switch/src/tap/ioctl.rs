//! The ioctls of the TAP code, through `rustix::ioctl`: the one place where TAP and interface
//! requests meet `unsafe`.
//!
//! Each kind of argument has one function, and each function takes a closed set of requests
//! (an enum), so no caller can pair a request with the wrong argument type:
//!
//! - [`set`]: an `ifreq` the kernel only reads (`SIOCSIF*`);
//! - [`update`]: an `ifreq` the kernel reads and writes back (`TUNSETIFF`, which returns the
//!   name it used; `TUNGETIFF` and `SIOCGIFFLAGS`, which return flags);
//! - [`set_vnet_header_len`]: an `int` passed by pointer (`TUNSETVNETHDRSZ`);
//! - [`set_offload`]: an integer passed by value (`TUNSETOFFLOAD`);
//! - [`add_route`]: an `rtentry` and the interface name it points to (`SIOCADDRT`).
//!
//! The opcodes are the C library's request numbers. Errors come back as the `io::Error` of
//! the `errno`.

use std::ffi::CStr;
use std::io;
use std::os::fd::BorrowedFd;

use libc::{c_char, c_int, c_short, c_uint, c_ulong, c_ushort, c_void, ifreq};
use rustix::ioctl::{IntegerSetter, Opcode, Setter, Updater, ioctl};

// The C library's request numbers, as the opcodes rustix takes (they all fit 32 bits; the
// test below checks that none was cut).
const TUNSETIFF: Opcode = libc::TUNSETIFF as Opcode;
const TUNSETOFFLOAD: Opcode = libc::TUNSETOFFLOAD as Opcode;
const TUNGETIFF: Opcode = libc::TUNGETIFF as Opcode;
const TUNSETVNETHDRSZ: Opcode = libc::TUNSETVNETHDRSZ as Opcode;
const SIOCADDRT: Opcode = libc::SIOCADDRT as Opcode;
const SIOCGIFFLAGS: Opcode = libc::SIOCGIFFLAGS as Opcode;
const SIOCSIFFLAGS: Opcode = libc::SIOCSIFFLAGS as Opcode;
const SIOCSIFADDR: Opcode = libc::SIOCSIFADDR as Opcode;
const SIOCSIFNETMASK: Opcode = libc::SIOCSIFNETMASK as Opcode;
const SIOCSIFMTU: Opcode = libc::SIOCSIFMTU as Opcode;
const SIOCSIFHWADDR: Opcode = libc::SIOCSIFHWADDR as Opcode;

/// Requests that read an `ifreq` and write nothing back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Set {
    /// `SIOCSIFHWADDR`: `ifru_hwaddr`.
    HwAddr,
    /// `SIOCSIFMTU`: `ifru_mtu`.
    Mtu,
    /// `SIOCSIFADDR`: `ifru_addr`.
    Addr,
    /// `SIOCSIFNETMASK`: `ifru_netmask`.
    Netmask,
    /// `SIOCSIFFLAGS`: `ifru_flags`.
    Flags,
}

/// Requests that read an `ifreq` and write their answer back into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Update {
    /// `TUNSETIFF`: takes the name and `ifru_flags`, writes back the name used.
    TunSetIff,
    /// `TUNGETIFF`: writes the queue's name and `ifru_flags`.
    TunGetIff,
    /// `SIOCGIFFLAGS`: writes `ifru_flags` of the interface named.
    GetFlags,
}

/// `ioctl(fd, request, &ifr)` for a request that only reads `ifr`.
pub(super) fn set(fd: BorrowedFd<'_>, request: Set, ifr: &ifreq) -> io::Result<()> {
    let ifr = *ifr;
    // SAFETY: each opcode below is one whose argument is a pointer to a `struct ifreq` the
    // kernel only reads (net/core/dev_ioctl.c); `Setter` passes a pointer to its own copy.
    let result = unsafe {
        match request {
            Set::HwAddr => ioctl(fd, Setter::<SIOCSIFHWADDR, ifreq>::new(ifr)),
            Set::Mtu => ioctl(fd, Setter::<SIOCSIFMTU, ifreq>::new(ifr)),
            Set::Addr => ioctl(fd, Setter::<SIOCSIFADDR, ifreq>::new(ifr)),
            Set::Netmask => ioctl(fd, Setter::<SIOCSIFNETMASK, ifreq>::new(ifr)),
            Set::Flags => ioctl(fd, Setter::<SIOCSIFFLAGS, ifreq>::new(ifr)),
        }
    };
    result.map_err(io::Error::from)
}

/// `ioctl(fd, request, &mut ifr)` for a request that writes its answer into `ifr`.
pub(super) fn update(fd: BorrowedFd<'_>, request: Update, ifr: &mut ifreq) -> io::Result<()> {
    // SAFETY: each opcode below is one whose argument is a pointer to a `struct ifreq` the
    // kernel reads and writes back whole (drivers/net/tun.c copies `ifreq_len` bytes both
    // ways; net/core/dev_ioctl.c likewise for SIOCGIFFLAGS). `ifr` is an exclusively borrowed,
    // initialised `ifreq`, and every bit pattern the kernel writes is a valid one.
    let result = unsafe {
        match request {
            Update::TunSetIff => ioctl(fd, Updater::<TUNSETIFF, ifreq>::new(ifr)),
            Update::TunGetIff => ioctl(fd, Updater::<TUNGETIFF, ifreq>::new(ifr)),
            Update::GetFlags => ioctl(fd, Updater::<SIOCGIFFLAGS, ifreq>::new(ifr)),
        }
    };
    result.map_err(io::Error::from)
}

/// `TUNSETVNETHDRSZ`: the length of the virtio-net header before each frame.
pub(super) fn set_vnet_header_len(fd: BorrowedFd<'_>, len: c_int) -> io::Result<()> {
    // SAFETY: TUNSETVNETHDRSZ reads one `int` through its pointer argument.
    unsafe { ioctl(fd, Setter::<TUNSETVNETHDRSZ, c_int>::new(len)) }.map_err(io::Error::from)
}

/// `TUNSETOFFLOAD`: the `TUN_F_*` offloads we accept.
pub(super) fn set_offload(fd: BorrowedFd<'_>, flags: c_uint) -> io::Result<()> {
    // SAFETY: TUNSETOFFLOAD takes its argument by value (an unsigned long of TUN_F_* bits),
    // not as a pointer: nothing is read or written through it, and the tun driver refuses
    // unknown bits with EINVAL.
    let ctl = unsafe { IntegerSetter::<TUNSETOFFLOAD>::new_usize(flags as usize) };
    // SAFETY: as above.
    unsafe { ioctl(fd, ctl) }.map_err(io::Error::from)
}

/// The kernel's `struct rtentry` (include/uapi/linux/route.h), which glibc's `libc` bindings
/// do not export, and neither does rustix.
#[repr(C)]
pub(super) struct RtEntry {
    rt_pad1: c_ulong,
    rt_dst: libc::sockaddr,
    rt_gateway: libc::sockaddr,
    rt_genmask: libc::sockaddr,
    rt_flags: c_ushort,
    rt_pad2: c_short,
    rt_pad3: c_ulong,
    rt_pad4: *mut c_void,
    rt_metric: c_short,
    rt_dev: *mut c_char,
    rt_mtu: c_ulong,
    rt_window: c_ulong,
    rt_irtt: c_ushort,
}

impl RtEntry {
    /// A route to `dst`/`genmask` via `gateway` with `flags` (`RTF_*`), no device yet.
    pub(super) fn new(
        dst: libc::sockaddr,
        gateway: libc::sockaddr,
        genmask: libc::sockaddr,
        flags: c_ushort,
    ) -> RtEntry {
        RtEntry {
            rt_pad1: 0,
            rt_dst: dst,
            rt_gateway: gateway,
            rt_genmask: genmask,
            rt_flags: flags,
            rt_pad2: 0,
            rt_pad3: 0,
            rt_pad4: std::ptr::null_mut(),
            rt_metric: 0,
            rt_dev: std::ptr::null_mut(),
            rt_mtu: 0,
            rt_window: 0,
            rt_irtt: 0,
        }
    }
}

/// `SIOCADDRT`: adds `route` through the interface named `dev`.
pub(super) fn add_route(fd: BorrowedFd<'_>, mut route: RtEntry, dev: &CStr) -> io::Result<()> {
    // The kernel only reads the name; `dev` outlives the ioctl below.
    route.rt_dev = dev.as_ptr().cast_mut();
    // SAFETY: SIOCADDRT reads a `struct rtentry` through its pointer (net/ipv4/af_inet.c,
    // ip_rt_ioctl), and through `rt_dev` the NUL-terminated name borrowed above, live for the
    // call; `rt_pad4` is always null and no other field is a pointer.
    unsafe { ioctl(fd, Setter::<SIOCADDRT, RtEntry>::new(route)) }.map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opcodes_are_the_c_librarys_whole() {
        let ours = [
            TUNSETIFF,
            TUNSETOFFLOAD,
            TUNGETIFF,
            TUNSETVNETHDRSZ,
            SIOCADDRT,
            SIOCGIFFLAGS,
            SIOCSIFFLAGS,
            SIOCSIFADDR,
            SIOCSIFNETMASK,
            SIOCSIFMTU,
            SIOCSIFHWADDR,
        ];
        let libc_ones = [
            libc::TUNSETIFF,
            libc::TUNSETOFFLOAD,
            libc::TUNGETIFF,
            libc::TUNSETVNETHDRSZ,
            libc::SIOCADDRT,
            libc::SIOCGIFFLAGS,
            libc::SIOCSIFFLAGS,
            libc::SIOCSIFADDR,
            libc::SIOCSIFNETMASK,
            libc::SIOCSIFMTU,
            libc::SIOCSIFHWADDR,
        ];
        for (ours, theirs) in ours.into_iter().zip(libc_ones) {
            assert_eq!(u64::from(ours), theirs);
        }
    }

    #[test]
    fn rtentry_matches_the_kernel_layout() {
        // 64-bit: 8 + 3*16 + 2 + 2 + 4 (pad) + 8 + 8 + 2 + 6 (pad) + 8 + 8 + 8 + 2 + 6 (pad).
        #[cfg(target_pointer_width = "64")]
        assert_eq!(std::mem::size_of::<RtEntry>(), 120);
        assert_eq!(
            std::mem::offset_of!(RtEntry, rt_dst),
            std::mem::size_of::<c_ulong>()
        );
    }
}
