//! HyperKit's vpnkit transport: `-listen-vpnkit unix:///path`.
//!
//! The handshake (HyperKit `pci_virtio_net_vpnkit.c`, as gvproxy answers it), all integers
//! little-endian:
//! 1. The client sends a 49-byte init message: the magic `VMN3T`, a u32 protocol version (22)
//!    and a 40-byte commit id. We check the magic and echo the message back.
//! 2. The client sends a command: one command byte, then a 36-character UUID, and for command
//!    8 ("preferred IPv4") a u32 address, which we ignore (DHCP decides). Command 1
//!    ("ethernet") comes in two forms: HyperKit's own 37 bytes (byte and UUID), and 41 bytes
//!    padded with four more, which gvproxy reads whatever the command. We take 37 bytes, then
//!    the four padding bytes if they arrive within [`PADDING_WAIT`] (a padding client sends
//!    all 41 at once, a 37-byte one waits for our answer), so neither form hangs or leaves
//!    stray bytes in front of the first frame.
//! 3. We answer with a 258-byte response: type 1 ("vif"), then the MTU (u16), the largest
//!    packet (u16, MTU + 14) and the guest's MAC (6 bytes), zero-padded. To anything else we
//!    answer type 2 ("disconnect") with a length-prefixed reason, and close.
//!
//! After that each frame travels behind a 2-byte little-endian length. The MAC comes from a
//! UUID → MAC table (gvproxy's default maps `c3d68012-0208-11ea-9fd7-f2189899ab08` to
//! `5a:94:ef:e4:0c:ee`, the guest with the static DHCP lease); any other UUID gets a locally
//! administered MAC derived from the UUID, so a guest that reconnects keeps its address.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::Duration;

use stack::wire::EthernetAddress;

use super::endpoint::{Endpoint, EndpointError};
use super::listener::{Conn, Listener};
use super::qemu::serve_stream;
use super::stream::StreamSpec;
use super::{LinkCounters, LinkLimits};
use crate::framing::LengthPrefix;
use crate::port::Attacher;

pub const MAGIC: &[u8; 5] = b"VMN3T";
pub const INIT_LEN: usize = 49;
pub const COMMAND_LEN: usize = 41;
/// HyperKit's ethernet command: the command byte and the UUID, nothing after.
pub const ETHERNET_COMMAND_LEN: usize = 37;
pub const RESPONSE_LEN: usize = 258;
pub const CMD_ETHERNET: u8 = 1;
pub const CMD_PREFERRED_IPV4: u8 = 8;
pub const RESP_VIF: u8 = 1;
pub const RESP_DISCONNECT: u8 = 2;
const UUID_LEN: usize = 36;
/// Time allowed for the handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a 37-byte ethernet command may be followed by the 41-byte form's padding.
pub const PADDING_WAIT: Duration = Duration::from_millis(200);
/// The UUID gvproxy ties to the default guest's MAC.
pub const DEFAULT_UUID: &str = "c3d68012-0208-11ea-9fd7-f2189899ab08";
pub const DEFAULT_GUEST_MAC: EthernetAddress =
    EthernetAddress([0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xee]);

/// What the vif response tells the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VpnkitConfig {
    pub mtu: u16,
    pub uuid_macs: HashMap<String, EthernetAddress>,
}

impl VpnkitConfig {
    /// gvproxy's defaults with this MTU.
    pub fn with_mtu(mtu: u16) -> VpnkitConfig {
        VpnkitConfig {
            mtu,
            uuid_macs: HashMap::from([(DEFAULT_UUID.to_owned(), DEFAULT_GUEST_MAC)]),
        }
    }

    /// The MAC for `uuid`: from the table, or derived from the UUID.
    pub fn mac_for(&self, uuid: &str) -> EthernetAddress {
        if let Some(mac) = self.uuid_macs.get(uuid) {
            return *mac;
        }
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        uuid.hash(&mut hasher);
        let h = hasher.finish().to_be_bytes();
        // Locally administered (bit 1), unicast (bit 0 clear).
        EthernetAddress([(h[0] | 0x02) & !0x01, h[1], h[2], h[3], h[4], h[5]])
    }
}

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("bad init magic {0:?}")]
    Magic([u8; 5]),
    #[error("unknown command {0}")]
    Command(u8),
    #[error("UUID is not ASCII")]
    Uuid,
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// The handshake's result: the guest's UUID and the MAC it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    pub uuid: String,
    pub mac: EthernetAddress,
}

/// A handshake's stream: reads and writes, and a read timeout it can change.
pub trait HandshakeStream: Read + Write {
    /// Sets the read timeout (`None`: block).
    fn set_read_wait(&mut self, wait: Option<Duration>) -> io::Result<()>;
}

impl HandshakeStream for &socket2::Socket {
    fn set_read_wait(&mut self, wait: Option<Duration>) -> io::Result<()> {
        self.set_read_timeout(wait)
    }
}

impl HandshakeStream for &std::os::unix::net::UnixStream {
    fn set_read_wait(&mut self, wait: Option<Duration>) -> io::Result<()> {
        self.set_read_timeout(wait)
    }
}

/// Reads the command, in the form the client sent it (see the module docs).
fn read_command<S: HandshakeStream>(stream: &mut S) -> io::Result<[u8; COMMAND_LEN]> {
    let mut command = [0u8; COMMAND_LEN];
    let (head, padding) = command.split_at_mut(ETHERNET_COMMAND_LEN);
    stream.read_exact(head)?;
    if head.first() == Some(&CMD_PREFERRED_IPV4) {
        stream.read_exact(padding)?;
        return Ok(command);
    }
    stream.set_read_wait(Some(PADDING_WAIT))?;
    let mut got = 0;
    while got < padding.len() {
        match stream.read(padding.get_mut(got..).unwrap_or_default()) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                break;
            }
            Err(e) => return Err(e),
        }
    }
    stream.set_read_wait(Some(HANDSHAKE_TIMEOUT))?;
    Ok(command)
}

/// Runs the server side of the handshake on `stream`.
pub fn handshake<S: HandshakeStream>(
    stream: &mut S,
    config: &VpnkitConfig,
) -> Result<Handshake, HandshakeError> {
    let mut init = [0u8; INIT_LEN];
    stream.read_exact(&mut init)?;
    let magic: [u8; 5] = [init[0], init[1], init[2], init[3], init[4]];
    if &magic != MAGIC {
        return Err(HandshakeError::Magic(magic));
    }
    stream.write_all(&init)?;
    let command = read_command(stream)?;
    let uuid = command
        .get(1..1 + UUID_LEN)
        .filter(|u| u.is_ascii())
        .and_then(|u| std::str::from_utf8(u).ok())
        .map(str::to_owned);
    let result = match (command[0], uuid) {
        (CMD_ETHERNET | CMD_PREFERRED_IPV4, Some(uuid)) => Ok(uuid),
        (CMD_ETHERNET | CMD_PREFERRED_IPV4, None) => Err(HandshakeError::Uuid),
        (other, _) => Err(HandshakeError::Command(other)),
    };
    let mut response = [0u8; RESPONSE_LEN];
    match result {
        Ok(uuid) => {
            let mac = config.mac_for(&uuid);
            response[0] = RESP_VIF;
            response[1..3].copy_from_slice(&config.mtu.to_le_bytes());
            let max_packet = config.mtu.saturating_add(14);
            response[3..5].copy_from_slice(&max_packet.to_le_bytes());
            response[5..11].copy_from_slice(mac.as_bytes());
            stream.write_all(&response)?;
            Ok(Handshake { uuid, mac })
        }
        Err(e) => {
            let reason = e.to_string();
            let reason = reason.as_bytes();
            let len = reason.len().min(255);
            response[0] = RESP_DISCONNECT;
            response[1] = len as u8;
            if let (Some(dst), Some(src)) = (response.get_mut(2..2 + len), reason.get(..len)) {
                dst.copy_from_slice(src);
            }
            let _ = stream.write_all(&response);
            Err(e)
        }
    }
}

/// Listens on a `unix://` endpoint for HyperKit guests.
pub fn listen(
    endpoint: &Endpoint,
    attacher: Attacher,
    limits: LinkLimits,
    config: VpnkitConfig,
) -> Result<Listener, EndpointError> {
    if matches!(endpoint, Endpoint::Unixgram(_) | Endpoint::Unixpacket(_)) {
        return Err(EndpointError::WrongKind {
            addr: endpoint.to_string(),
            expected: "unix",
        });
    }
    let bound = endpoint.bind(None)?;
    let counters = Arc::new(LinkCounters::default());
    let handler = {
        let counters = counters.clone();
        move |conn: Conn| {
            let _ = conn.socket.set_read_timeout(Some(HANDSHAKE_TIMEOUT));
            let done = handshake(&mut &conn.socket, &config);
            let _ = conn.socket.set_read_timeout(None);
            match done {
                Ok(h) => {
                    tracing::info!(peer = %conn.peer, uuid = %h.uuid, mac = %h.mac, "vpnkit handshake done");
                    let spec = StreamSpec {
                        prefix: LengthPrefix::U16Le,
                        max_frame: limits.max_frame,
                    };
                    serve_stream(conn, &attacher, "vpnkit", spec, &[], None, &counters);
                }
                Err(e) => {
                    LinkCounters::bump(&counters.handshake_failed);
                    tracing::warn!(peer = %conn.peer, error = %e, "vpnkit handshake failed");
                }
            }
        }
    };
    Listener::spawn("vpnkit", bound, limits, counters, handler).map_err(|source| {
        EndpointError::Bind {
            endpoint: endpoint.to_string(),
            source,
        }
    })
}
