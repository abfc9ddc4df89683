//! The few socket calls socket2 does not wrap: `IP_RECVERR` and reading the error queue,
//! which is how an unconnected UDP socket learns which destination refused a datagram, and
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

/// Takes one entry off the socket's error queue: the destination of the datagram that drew
/// the error and the errno it carries. `None` once the queue is empty.
pub(crate) fn take_queued_error(socket: &impl AsRawFd) -> Option<(SocketAddr, i32)> {
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
    let mut errno = libc::ECONNREFUSED;
    // SAFETY: CMSG_FIRSTHDR/NXTHDR walk the control buffer the kernel filled, bounded by
    // msg_controllen; the extended error is read unaligned from inside a cmsg the kernel
    // sized to hold it.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            let c = &*cmsg;
            let is_err = (c.cmsg_level == libc::IPPROTO_IP && c.cmsg_type == libc::IP_RECVERR)
                || (c.cmsg_level == libc::IPPROTO_IPV6 && c.cmsg_type == libc::IPV6_RECVERR);
            if is_err
                && c.cmsg_len as usize
                    >= libc::CMSG_LEN(std::mem::size_of::<libc::sock_extended_err>() as u32)
                        as usize
            {
                let ee: libc::sock_extended_err =
                    std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                errno = ee.ee_errno as i32;
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    // SAFETY: the kernel wrote a socket address of `msg_namelen` bytes into `name`.
    let addr = unsafe { SockAddr::new(name, msg.msg_namelen) };
    addr.as_socket().map(|a| (a, errno))
}

/// Hands the allocator's free memory back to the system: the pages of freed blocks in every
/// thread's heap, not only the top of each (glibc's `malloc_trim`). Meant for after a burst's
/// tables were shrunk, not for the per-packet path.
pub(crate) fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes an integer and only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}
