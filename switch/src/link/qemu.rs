//! QEMU's stream netdevs: `-listen-qemu unix:///path` or `tcp://127.0.0.1:port`.
//!
//! Each frame travels behind a 4-byte big-endian length (QEMU `-netdev stream`, and
//! `-netdev socket,connect=` which uses the same framing). Every connection is a port of its
//! own; gvproxy takes one peer, we take up to [`LinkLimits::max_ports`].

use std::sync::Arc;

use super::endpoint::{Endpoint, EndpointError};
use super::listener::{Conn, Listener};
use super::offer::Offer;
use super::stream::{self, StreamSpec};
use super::{LinkCounters, LinkLimits};
use crate::framing::LengthPrefix;
use crate::port::Attacher;

/// Listens on `endpoint` (a stream endpoint: unix, tcp or vsock) for QEMU guests.
pub fn listen(
    endpoint: &Endpoint,
    attacher: Attacher,
    limits: LinkLimits,
) -> Result<Listener, EndpointError> {
    if matches!(endpoint, Endpoint::Unixgram(_) | Endpoint::Unixpacket(_)) {
        return Err(EndpointError::WrongKind {
            addr: endpoint.to_string(),
            expected: "unix, tcp or vsock",
        });
    }
    let bound = endpoint.bind(None)?;
    let spec = StreamSpec {
        prefix: LengthPrefix::U32Be,
        max_frame: limits.max_frame,
    };
    let counters = Arc::new(LinkCounters::default());
    let handler = {
        let counters = counters.clone();
        move |conn: Conn| serve_stream(conn, &attacher, "qemu", spec, &[], None, &counters)
    };
    Listener::spawn("qemu", bound, limits, counters, handler).map_err(|source| {
        EndpointError::Bind {
            endpoint: endpoint.to_string(),
            source,
        }
    })
}

/// Attaches a port for `conn` and runs it as a framed stream until it closes. Shared by every
/// stream link; `leftover` is what was read past a request or handshake. The data plane
/// serves the connection inside a worker's loop where it can (this thread then only waits
/// for its end); otherwise this thread and a transmit thread of its own carry it.
pub(crate) fn serve_stream(
    conn: Conn,
    attacher: &Attacher,
    link: &str,
    spec: StreamSpec,
    leftover: &[u8],
    offer: Option<Offer>,
    counters: &Arc<LinkCounters>,
) {
    let name = format!("{link}:{}", conn.peer);
    match conn.try_clone_socket() {
        Ok(socket) => {
            let (done, ended) = crossbeam_channel::bounded(1);
            let native = stream::NativeStream {
                socket,
                spec,
                leftover: leftover.to_vec(),
                offer,
                link: counters.clone(),
                done,
            };
            match attacher
                .board()
                .attach_stream(&name, native, attacher.mtu())
            {
                Ok(id) => {
                    tracing::info!(port = %name, id = id.0, "port attached");
                    let reason = ended.recv().unwrap_or(super::CloseReason::SwitchStopped);
                    super::log_close_named(&name, id, &reason);
                    counters.record_close(&reason);
                    return;
                }
                Err(crate::port::AttachError::Unsupported) => {}
                Err(e) => {
                    tracing::warn!(port = %name, error = %e, "cannot attach");
                    return;
                }
            }
        }
        Err(e) => {
            tracing::warn!(port = %name, error = %e, "cannot clone the connection");
            return;
        }
    }
    let port = match attacher.attach(&name) {
        Ok(port) => port,
        Err(e) => {
            tracing::warn!(port = %name, error = %e, "cannot attach");
            return;
        }
    };
    let writer = match conn.try_clone_socket() {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(port = %name, error = %e, "cannot clone the connection");
            return;
        }
    };
    let unblock = match conn.try_clone_socket() {
        Ok(s) => move || {
            let _ = s.shutdown(std::net::Shutdown::Both);
        },
        Err(e) => {
            tracing::warn!(port = %name, error = %e, "cannot clone the connection");
            return;
        }
    };
    tracing::info!(port = %name, id = port.id().0, "port attached");
    stream::run(
        port,
        &conn.socket,
        writer,
        spec,
        leftover,
        counters,
        unblock,
    );
}
