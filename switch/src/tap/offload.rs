//! TAP offloads: a queue opened with `IFF_VNET_HDR` ([`super::TapOptions::offload`]) carries
//! a virtio-net header ([`stack::wire::virtio_net`]) before every frame, both ways, and tells
//! the kernel with `TUNSETOFFLOAD` what it may hand us unfinished.
//!
//! [`Tap::negotiate_offloads`] runs on every queue (the settings are the device's, so each
//! call asks the same): it reads the queue's flags (`TUNGETIFF`: a queue passed over a socket
//! by `host-switch run` says itself whether it was opened so), sets the header length to
//! [`HEADER_LEN`] (`TUNSETVNETHDRSZ`), then asks for checksum offload, TSO over IPv4 and IPv6
//! and UDP segmentation offload (`TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_USO4 |
//! TUN_F_USO6`), falling back to fewer on kernels that refuse some (USO came with Linux 6.2).
//! With the checksum offload on, the kernel hands us frames whose TCP and UDP checksums are
//! partial (`NEEDS_CSUM`); with TSO, TCP super-segments of up to 64 KiB. Whatever it agreed
//! to, a queue with the header takes super-segments and partial checksums from us: the
//! kernel cuts and completes them itself where its receiver needs that.
//!
//! Offloads are asked for only on little-endian machines, where a legacy header's layout is
//! virtio 1.0's; elsewhere queues open without the header.
//!
//! Frames are written with `rustix::io::writev`. They are read with `libc::readv`, the one
//! raw call left here: the frame lands in a buffer's spare capacity, which is never zeroed,
//! and rustix's `readv` takes `IoSliceMut`s, which must not cover uninitialised bytes.

use std::io::{self, IoSlice};
use std::os::fd::{AsFd, AsRawFd};

use bytes::BytesMut;
use libc::{c_short, c_uint, c_void};
use rustix::io::Errno;
use stack::offload::LinkOffloads;
pub use stack::wire::virtio_net::HEADER_LEN;

use super::{Tap, ifreq_named, ioctl};

/// What the kernel agreed to on one TAP queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TapOffloads {
    /// Every frame carries a virtio-net header of [`HEADER_LEN`] bytes.
    pub vnet_hdr: bool,
    /// Frames from the guest may come with partial TCP and UDP checksums.
    pub checksum: bool,
    /// TCP super-segments from the guest, over IPv4 and over IPv6.
    pub tso4: bool,
    pub tso6: bool,
    /// UDP super-datagrams from the guest (UDP segmentation offload).
    pub uso: bool,
}

impl TapOffloads {
    /// A queue without the header.
    pub const NONE: TapOffloads = TapOffloads {
        vnet_hdr: false,
        checksum: false,
        tso4: false,
        tso6: false,
        uso: false,
    };

    /// What the queue does for what we send: checksums and super-segments, with the header.
    pub fn link(&self) -> LinkOffloads {
        if self.vnet_hdr {
            LinkOffloads::VIRTIO_NET
        } else {
            LinkOffloads::NONE
        }
    }

    /// The offloads as a short list for logs and statistics ("csum,tso4,tso6,uso").
    pub fn describe(&self) -> String {
        if !self.vnet_hdr {
            return "off".to_owned();
        }
        let names = [
            (self.checksum, "csum"),
            (self.tso4, "tso4"),
            (self.tso6, "tso6"),
            (self.uso, "uso"),
        ];
        let on: Vec<&str> = names
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, n)| *n)
            .collect();
        if on.is_empty() {
            "vnet-hdr".to_owned()
        } else {
            on.join(",")
        }
    }
}

/// Whether queues should be opened with the header on this machine.
pub(super) const SUPPORTED: bool = cfg!(target_endian = "little");

/// The offload sets asked for, most first.
const ASKS: [(c_uint, TapOffloads); 3] = [
    (
        libc::TUN_F_CSUM
            | libc::TUN_F_TSO4
            | libc::TUN_F_TSO6
            | libc::TUN_F_USO4
            | libc::TUN_F_USO6,
        TapOffloads {
            vnet_hdr: true,
            checksum: true,
            tso4: true,
            tso6: true,
            uso: true,
        },
    ),
    (
        libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6,
        TapOffloads {
            vnet_hdr: true,
            checksum: true,
            tso4: true,
            tso6: true,
            uso: false,
        },
    ),
    (
        libc::TUN_F_CSUM,
        TapOffloads {
            vnet_hdr: true,
            checksum: true,
            tso4: false,
            tso6: false,
            uso: false,
        },
    ),
];

impl Tap {
    /// See the module docs. Returns (and remembers, [`Tap::offloads`]) what the kernel agreed
    /// to; [`TapOffloads::NONE`] for a queue opened without the header.
    pub fn negotiate_offloads(&mut self) -> io::Result<TapOffloads> {
        if !self.has_vnet_hdr()? {
            self.offloads = TapOffloads::NONE;
            return Ok(self.offloads);
        }
        ioctl::set_vnet_header_len(self.as_fd(), HEADER_LEN as libc::c_int)?;
        let mut agreed = TapOffloads {
            vnet_hdr: true,
            ..TapOffloads::NONE
        };
        for (flags, offloads) in ASKS {
            if self.set_offload(flags).is_ok() {
                agreed = offloads;
                break;
            }
        }
        self.offloads = agreed;
        Ok(agreed)
    }

    /// What [`Tap::negotiate_offloads`] found; [`TapOffloads::NONE`] before it ran.
    pub fn offloads(&self) -> TapOffloads {
        self.offloads
    }

    /// A descriptor that stands in for a TAP queue in tests (one end of a `SOCK_SEQPACKET`
    /// pair: one message per frame, as a queue reads and writes), taken to carry `offloads`.
    #[cfg(test)]
    pub(crate) fn standing_in(fd: std::os::fd::OwnedFd, offloads: TapOffloads) -> Tap {
        let mut tap = Tap::from_fd(fd, "stand-in");
        tap.offloads = offloads;
        tap
    }

    /// Whether the queue was opened with `IFF_VNET_HDR` (`TUNGETIFF`).
    fn has_vnet_hdr(&self) -> io::Result<bool> {
        let mut ifr =
            ifreq_named("").ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        ioctl::update(self.as_fd(), ioctl::Update::TunGetIff, &mut ifr)?;
        // SAFETY: TUNGETIFF filled `ifru_flags`; any bit pattern is a valid c_short.
        let flags = unsafe { ifr.ifr_ifru.ifru_flags };
        Ok(flags & libc::IFF_VNET_HDR as c_short != 0)
    }

    fn set_offload(&self, flags: c_uint) -> io::Result<()> {
        ioctl::set_offload(self.as_fd(), flags)
    }

    /// Reads one frame of at most `max` bytes with its virtio-net header: the header into
    /// `header`, the frame appended to `buf` (into its spare capacity, never zeroed). Returns
    /// the bytes read, header included: fewer than [`HEADER_LEN`] means no whole header came
    /// (and nothing was appended). Retries on `EINTR`; `WouldBlock` in non-blocking mode.
    pub fn read_vnet_into(
        &self,
        header: &mut [u8; HEADER_LEN],
        buf: &mut BytesMut,
        max: usize,
    ) -> io::Result<usize> {
        buf.reserve(max);
        let spare = buf.spare_capacity_mut();
        let room = spare.len().min(max);
        let iov = [
            libc::iovec {
                iov_base: header.as_mut_ptr().cast::<c_void>(),
                iov_len: HEADER_LEN,
            },
            libc::iovec {
                iov_base: spare.as_mut_ptr().cast::<c_void>(),
                iov_len: room,
            },
        ];
        loop {
            // SAFETY: the two iovecs point to `header` (HEADER_LEN bytes) and to `room` bytes
            // of `buf`'s spare capacity, both exclusively ours for the call; readv(2) writes
            // at most that much into them, in order.
            let n = unsafe { libc::readv(self.as_raw_fd(), iov.as_ptr(), 2) };
            if let Ok(n) = usize::try_from(n) {
                let frame = n.saturating_sub(HEADER_LEN).min(room);
                // SAFETY: readv initialised the first `frame` bytes of the spare capacity
                // (what followed the header), right after the `buf.len()` initialised bytes.
                unsafe { buf.set_len(buf.len() + frame) };
                return Ok(n);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Writes one frame behind its virtio-net `header` (one `writev`). Retries on `EINTR`.
    pub fn write_vnet(&self, header: &[u8; HEADER_LEN], frame: &[u8]) -> io::Result<()> {
        let iov = [IoSlice::new(header), IoSlice::new(frame)];
        let total = HEADER_LEN + frame.len();
        loop {
            match rustix::io::writev(self, &iov) {
                Ok(n) if n == total => return Ok(()),
                Ok(n) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        format!("TAP accepted {n} of {total} bytes"),
                    ));
                }
                Err(Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offloads_describe_themselves() {
        assert_eq!(TapOffloads::NONE.describe(), "off");
        assert_eq!(ASKS[0].1.describe(), "csum,tso4,tso6,uso");
        assert_eq!(ASKS[2].1.describe(), "csum");
        assert_eq!(ASKS[0].1.link(), LinkOffloads::VIRTIO_NET);
        assert_eq!(TapOffloads::NONE.link(), LinkOffloads::NONE);
    }
}
