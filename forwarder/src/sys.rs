//! The few socket calls socket2 does not wrap: `IP_RECVERR` and reading the error queue,
//! which is how an unconnected UDP socket learns which destination refused a datagram and
//! which router dropped it; per-datagram hop limits; multicast sending options; and
//! `SIOCOUTQ`, how much a TCP socket still holds for its peer.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use socket2::SockAddr;

/// Asks for ICMP errors on an unconnected UDP socket (`IP_RECVERR` / `IPV6_RECVERR`, see
/// ip(7)): without it Linux reports them only to connected sockets.
pub(crate) fn set_recverr(socket: &impl AsRawFd, v6: bool) -> io::Result<()> {
    let (level, name) = if v6 {
        (libc::IPPROTO_IPV6, libc::IPV6_RECVERR)
    } else {
        (libc::IPPROTO_IP, libc::IP_RECVERR)
    };
    let on: libc::c_int = 1;
    // SAFETY: `on` is a live c_int and the length passed is its size; the fd is open for the
    // duration of the call (borrowed from `socket`).
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The bytes a TCP socket holds that its peer has not acknowledged yet, sent or not
/// (`SIOCOUTQ`, see tcp(7)).
pub(crate) fn unacknowledged(socket: &impl AsRawFd) -> io::Result<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: SIOCOUTQ writes one c_int through the pointer, which points at `n`; the fd is
    // open for the duration of the call (borrowed from `socket`).
    let rc = unsafe {
        libc::ioctl(
            socket.as_raw_fd(),
            libc::TIOCOUTQ,
            &mut n as *mut libc::c_int,
        )
    };
    if rc == 0 {
        Ok(usize::try_from(n).unwrap_or(0))
    } else {
        Err(io::Error::last_os_error())
    }
}

/// One entry of a socket's error queue (`MSG_ERRQUEUE`, ip(7)): where the datagram that drew
/// it went, and what `struct sock_extended_err` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueuedError {
    pub(crate) dst: SocketAddr,
    pub(crate) errno: i32,
    /// `ee_origin`: 2 for ICMP, 3 for ICMPv6 (see [`crate::icmp_errors`]).
    pub(crate) origin: u8,
    pub(crate) icmp_type: u8,
    pub(crate) icmp_code: u8,
    /// `ee_info`: the MTU of a "too big".
    pub(crate) info: u32,
    /// The address the error came from (`SO_EE_OFFENDER`), if the kernel gave one.
    pub(crate) offender: Option<SocketAddr>,
    /// The first bytes of what was sent (for a ping socket, the echo header), and how many.
    pub(crate) data: [u8; 16],
    pub(crate) data_len: usize,
}

/// Takes one entry off the socket's error queue. `None` once the queue is empty.
pub(crate) fn take_queued_error(socket: &impl AsRawFd) -> Option<QueuedError> {
    // SAFETY: all-zero bytes are a valid sockaddr_storage, msghdr and iovec.
    let mut name: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut data = [0u8; 64];
    let mut control = [0u64; 64];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // SAFETY: as above.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut name as *mut libc::sockaddr_storage).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: every pointer in `msg` points at a live local buffer of the length given.
    let n = unsafe {
        libc::recvmsg(
            socket.as_raw_fd(),
            &mut msg,
            libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        return None;
    }
    let mut out_data = [0u8; 16];
    let data_len = (n as usize).min(out_data.len());
    if let (Some(to), Some(from)) = (out_data.get_mut(..data_len), data.get(..data_len)) {
        to.copy_from_slice(from);
    }
    let mut err = (libc::ECONNREFUSED, 0u8, 0u8, 0u8, 0u32);
    let mut offender = None;
    let ee_len = std::mem::size_of::<libc::sock_extended_err>();
    // SAFETY: CMSG_FIRSTHDR/NXTHDR walk the control buffer the kernel filled, bounded by
    // msg_controllen; the extended error, and the offender's address after it, are read
    // unaligned from inside a cmsg whose length the kernel set to hold them (checked first).
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            let c = &*cmsg;
            let is_err = (c.cmsg_level == libc::IPPROTO_IP && c.cmsg_type == libc::IP_RECVERR)
                || (c.cmsg_level == libc::IPPROTO_IPV6 && c.cmsg_type == libc::IPV6_RECVERR);
            let header = libc::CMSG_LEN(0) as usize;
            let payload = (c.cmsg_len as usize).saturating_sub(header);
            if is_err && payload >= ee_len {
                let base = libc::CMSG_DATA(cmsg);
                let ee: libc::sock_extended_err = std::ptr::read_unaligned(base.cast());
                err = (
                    ee.ee_errno as i32,
                    ee.ee_origin,
                    ee.ee_type,
                    ee.ee_code,
                    ee.ee_info,
                );
                offender = read_offender(base.add(ee_len), payload - ee_len);
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    // SAFETY: the kernel wrote a socket address of `msg_namelen` bytes into `name`.
    let addr = unsafe { SockAddr::new(name, msg.msg_namelen) };
    let dst = addr.as_socket()?;
    Some(QueuedError {
        dst,
        errno: err.0,
        origin: err.1,
        icmp_type: err.2,
        icmp_code: err.3,
        info: err.4,
        offender,
        data: out_data,
        data_len,
    })
}

/// The socket address of `len` bytes at `at` (`SO_EE_OFFENDER`); `None` for
/// `AF_UNSPEC` or too few bytes.
///
/// # Safety
/// `at` must point to `len` readable bytes.
unsafe fn read_offender(at: *const u8, len: usize) -> Option<SocketAddr> {
    let family_len = std::mem::size_of::<libc::sa_family_t>();
    if len < family_len {
        return None;
    }
    // SAFETY: at least `family_len` bytes are readable at `at` (the caller's contract).
    let family = unsafe { std::ptr::read_unaligned(at.cast::<libc::sa_family_t>()) };
    let want = match i32::from(family) {
        libc::AF_INET => std::mem::size_of::<libc::sockaddr_in>(),
        libc::AF_INET6 => std::mem::size_of::<libc::sockaddr_in6>(),
        _ => return None,
    };
    if len < want {
        return None;
    }
    // SAFETY: all-zero bytes are a valid sockaddr_storage; `want` bytes are readable at `at`
    // and fit in it.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    unsafe {
        std::ptr::copy_nonoverlapping(
            at,
            (&mut storage as *mut libc::sockaddr_storage).cast(),
            want,
        );
    }
    // SAFETY: `storage` holds a socket address of family `family` and `want` bytes.
    let addr = unsafe { SockAddr::new(storage, want as libc::socklen_t) };
    addr.as_socket()
}

/// Sets the TTL (IPv4) or unicast hop limit (IPv6) of a socket's unicast datagrams, or,
/// with `multicast`, of its multicast ones.
pub(crate) fn set_hop_limit(
    socket: &impl AsRawFd,
    v6: bool,
    multicast: bool,
    hops: u8,
) -> io::Result<()> {
    let (level, name) = match (v6, multicast) {
        (false, false) => (libc::IPPROTO_IP, libc::IP_TTL),
        (false, true) => (libc::IPPROTO_IP, libc::IP_MULTICAST_TTL),
        (true, false) => (libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS),
        (true, true) => (libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_HOPS),
    };
    set_int(socket, level, name, libc::c_int::from(hops))
}

fn set_int(
    socket: &impl AsRawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `value` is a live c_int and the length passed is its size; the fd is open for
    // the duration of the call (borrowed from `socket`).
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Multicast sends of the socket leave through interface `ifindex` (0: the kernel's choice
/// by route), and loop back to the host's own listeners.
pub(crate) fn set_multicast_out(socket: &impl AsRawFd, v6: bool, ifindex: u32) -> io::Result<()> {
    if v6 {
        set_int(socket, libc::IPPROTO_IPV6, libc::IPV6_MULTICAST_LOOP, 1)?;
        if ifindex != 0 {
            set_int(
                socket,
                libc::IPPROTO_IPV6,
                libc::IPV6_MULTICAST_IF,
                ifindex as libc::c_int,
            )?;
        }
        return Ok(());
    }
    set_int(socket, libc::IPPROTO_IP, libc::IP_MULTICAST_LOOP, 1)?;
    if ifindex != 0 {
        let mreq = libc::ip_mreqn {
            imr_multiaddr: libc::in_addr { s_addr: 0 },
            imr_address: libc::in_addr { s_addr: 0 },
            imr_ifindex: ifindex as libc::c_int,
        };
        // SAFETY: `mreq` is a live ip_mreqn and the length passed is its size.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_MULTICAST_IF,
                (&mreq as *const libc::ip_mreqn).cast(),
                std::mem::size_of::<libc::ip_mreqn>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Binds a socket to interface `ifindex` (`SO_BINDTOIFINDEX`, socket(7)): it only receives
/// what arrives there.
pub(crate) fn bind_to_interface(socket: &impl AsRawFd, ifindex: u32) -> io::Result<()> {
    let index = libc::c_int::try_from(ifindex).map_err(|_| io::ErrorKind::InvalidInput)?;
    set_int(socket, libc::SOL_SOCKET, libc::SO_BINDTOIFINDEX, index)
}

/// Whether a send failed with the error an ICMP message about an earlier datagram left on
/// the socket (`sk_err`, reported once by the next call): not this datagram's fault.
pub(crate) fn is_icmp_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::ECONNREFUSED
                | libc::EHOSTUNREACH
                | libc::ENETUNREACH
                | libc::EHOSTDOWN
                | libc::ENETDOWN
                | libc::EMSGSIZE
                | libc::EACCES
                | libc::EPROTO
        )
    )
}

/// Hands the allocator's free memory back to the system: the pages of freed blocks in every
/// thread's heap, not only the top of each (glibc's `malloc_trim`). Walks every arena: meant
/// for the sweeps, paced by [`crate::trim`], not for the per-packet path.
pub(crate) fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes an integer and only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}
