//! Netlink from this process: one request socket per family, used synchronously.
//!
//! A [`Netlink`] socket belongs to the network namespace it was created in (open it inside
//! [`Netns::run`](crate::netns::Netns::run) to act on another), and every request is answered
//! before the next is sent: [`Netlink::request`] waits for the kernel's acknowledgement,
//! [`Netlink::dump`] collects a dump until its `NLMSG_DONE`. Replies are read into one
//! buffer of [`RECV_BUFFER`] bytes; a dump is bounded by [`MAX_DUMP`] messages.
//!
//! - [`route`]: links, addresses, routes and veth pairs (`NETLINK_ROUTE`), what
//!   `host-switch guest` configures its TAP and namespaces with.
//! - [`diag`]: listening TCP and UDP sockets (`NETLINK_SOCK_DIAG`), what automatic port
//!   forwarding watches.

pub mod diag;
pub mod route;

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::time::Duration;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, NetlinkDeserializable, NetlinkHeader, NetlinkMessage,
    NetlinkPayload, NetlinkSerializable,
};
use netlink_sys::{Socket, SocketAddr};
use rustix::net::sockopt::Timeout;

/// Bytes one `recv` takes (the kernel sends dumps in pieces of at most a page or two).
const RECV_BUFFER: usize = 64 * 1024;
/// Messages one dump may return before it is cut short.
pub const MAX_DUMP: usize = 65536;
/// How long the kernel may take to answer.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// A netlink socket of one protocol family.
#[derive(Debug)]
pub struct Netlink {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Netlink {
    /// Opens a socket of `protocol` (`netlink_sys::protocols::NETLINK_*`) in the calling
    /// thread's network namespace.
    pub fn open(protocol: isize) -> io::Result<Netlink> {
        let mut socket = Socket::new(protocol)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        Netlink::wrap(socket)
    }

    /// Takes over a netlink socket opened elsewhere (another process, another namespace),
    /// already bound.
    pub fn from_fd(fd: OwnedFd) -> io::Result<Netlink> {
        // SAFETY: `fd` is an open netlink socket this process owns; the Socket takes that
        // ownership over.
        let socket = unsafe { Socket::from_raw_fd(fd.into_raw_fd()) };
        socket.connect(&SocketAddr::new(0, 0))?;
        Netlink::wrap(socket)
    }

    fn wrap(socket: Socket) -> io::Result<Netlink> {
        rustix::net::sockopt::set_socket_timeout(&socket, Timeout::Recv, Some(REPLY_TIMEOUT))?;
        Ok(Netlink {
            socket,
            seq: 0,
            buf: vec![0; RECV_BUFFER],
        })
    }

    /// Sends `message` with `flags` (plus `NLM_F_REQUEST | NLM_F_ACK`) and waits for the
    /// acknowledgement; a negative one is the error it carries.
    pub fn request<M>(&mut self, message: M, flags: u16) -> io::Result<()>
    where
        M: NetlinkSerializable + NetlinkDeserializable + std::fmt::Debug,
    {
        let seq = self.send(message, flags | NLM_F_REQUEST | NLM_F_ACK)?;
        let mut done = false;
        self.receive::<M>(seq, |payload| match payload {
            NetlinkPayload::Error(e) => {
                done = true;
                match e.code {
                    None => Ok(true),
                    Some(code) => Err(io::Error::from_raw_os_error(-code.get())),
                }
            }
            NetlinkPayload::Done(_) => {
                done = true;
                Ok(true)
            }
            _ => Ok(false),
        })?;
        if done {
            Ok(())
        } else {
            Err(io::ErrorKind::UnexpectedEof.into())
        }
    }

    /// Sends a dump request and returns every message of the answer (at most [`MAX_DUMP`]).
    pub fn dump<M>(&mut self, message: M) -> io::Result<Vec<M>>
    where
        M: NetlinkSerializable + NetlinkDeserializable + std::fmt::Debug,
    {
        let seq = self.send(message, NLM_F_REQUEST | NLM_F_DUMP)?;
        let mut out = Vec::new();
        self.receive::<M>(seq, |payload| match payload {
            NetlinkPayload::InnerMessage(m) => {
                if out.len() < MAX_DUMP {
                    out.push(m);
                }
                Ok(false)
            }
            NetlinkPayload::Done(_) => Ok(true),
            NetlinkPayload::Error(e) => match e.code {
                None => Ok(true),
                Some(code) => Err(io::Error::from_raw_os_error(-code.get())),
            },
            _ => Ok(false),
        })?;
        Ok(out)
    }

    fn send<M>(&mut self, message: M, flags: u16) -> io::Result<u32>
    where
        M: NetlinkSerializable + std::fmt::Debug,
    {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
        packet.finalize();
        let mut bytes = vec![0; packet.buffer_len()];
        packet.serialize(&mut bytes);
        self.socket.send(&bytes, 0)?;
        Ok(self.seq)
    }

    /// Reads replies to `seq`, handing each payload to `each` until it returns `Ok(true)`.
    fn receive<M>(
        &mut self,
        seq: u32,
        mut each: impl FnMut(NetlinkPayload<M>) -> io::Result<bool>,
    ) -> io::Result<()>
    where
        M: NetlinkDeserializable + std::fmt::Debug,
    {
        loop {
            let n = loop {
                match self.socket.recv(&mut &mut self.buf[..], 0) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            };
            let mut at = 0;
            while at < n {
                let bytes = self.buf.get(at..n).unwrap_or_default();
                let message = NetlinkMessage::<M>::deserialize(bytes)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                let len = message.header.length as usize;
                if len == 0 {
                    break;
                }
                at = at.saturating_add(len);
                // Netlink messages are 4-byte aligned (NLMSG_ALIGN).
                at = at.saturating_add(3) & !3;
                if message.header.sequence_number != seq {
                    continue;
                }
                if each(message.payload)? {
                    return Ok(());
                }
            }
        }
    }
}

impl AsRawFd for Netlink {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}
