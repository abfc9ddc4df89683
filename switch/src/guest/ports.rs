//! The agent's automatic port forwarding: its namespace's listening ports, told to
//! host-switch.
//!
//! A [`Watcher`] over the agent's own namespace publishes with `POST
//! /services/forwarder/auto` ([`crate::auto_forward::http`]): on a second connection to the
//! `-listen` endpoint the agent attached to, when it attached to one (unix, tcp, vsock); else
//! to the gateway's in-guest API over the guest network itself (`http://GATEWAY/`, the
//! lease's router), which every transport reaches once the lease is bound. Each request has
//! [`REQUEST_TIMEOUT`] to complete; a failure is logged and the set is sent again at the
//! watcher's next look.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::AgentState;
use super::transport::{Target, connect_stream};
use crate::auto_forward::PortKey;
use crate::auto_forward::http::{AUTO_PATH, SyncRequest};
use crate::auto_forward::watch::Watcher;
use crate::link::Endpoint;
use crate::netlink::diag;

/// Time for one API request, connect to last byte.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The in-guest API's port on the gateway.
const GATEWAY_API_PORT: u16 = 80;
/// The largest answer read.
const MAX_RESPONSE: usize = 1024 * 1024;

/// Starts watching this namespace for the agent.
pub fn start(
    target: &Target,
    state: &Arc<AgentState>,
    interval: Duration,
    _stop: &Arc<AtomicBool>,
) -> io::Result<Watcher> {
    let nl = diag::open()?;
    let endpoint = target.api_endpoint().cloned();
    let now_state = state.clone();
    let guest = Box::new(move || {
        now_state
            .address()
            .map(|ip| (ip, now_state.generation.load(Ordering::Relaxed)))
    });
    let gateway_state = state.clone();
    let publish = move |guest: Ipv4Addr, ports: &[PortKey]| {
        let body = SyncRequest {
            guest: Some(guest.into()),
            ports: ports.to_vec(),
        };
        let result = match &endpoint {
            Some(ep) => post_to_endpoint(ep, &body),
            None => match gateway_state.gateway() {
                Some(gw) => post_to_gateway(gw, &body),
                None => Err(io::Error::other("no gateway in the lease")),
            },
        };
        match result {
            Ok((200, answer)) => {
                tracing::debug!(%guest, ports = ports.len(), %answer, "listening ports told to host-switch");
                true
            }
            Ok((status, answer)) => {
                tracing::warn!(status, answer = %answer.trim(), "host-switch refused the listening ports");
                false
            }
            Err(e) => {
                tracing::debug!(error = %e, "cannot tell host-switch the listening ports");
                false
            }
        }
    };
    Watcher::spawn(nl, interval, guest, publish)
}

fn post_to_endpoint(ep: &Endpoint, body: &SyncRequest) -> io::Result<(u16, String)> {
    let socket = connect_stream(ep)?;
    socket.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    socket.set_write_timeout(Some(REQUEST_TIMEOUT))?;
    let mut stream = std::fs::File::from(std::os::fd::OwnedFd::from(socket));
    post(&mut stream, body)
}

fn post_to_gateway(gateway: Ipv4Addr, body: &SyncRequest) -> io::Result<(u16, String)> {
    let addr = SocketAddr::from((gateway, GATEWAY_API_PORT));
    let mut stream = TcpStream::connect_timeout(&addr, REQUEST_TIMEOUT)?;
    stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    stream.set_write_timeout(Some(REQUEST_TIMEOUT))?;
    post(&mut stream, body)
}

/// One `POST` of `body`; the status and the answer's body.
fn post<S: Read + Write>(stream: &mut S, body: &SyncRequest) -> io::Result<(u16, String)> {
    let json = serde_json::to_vec(body).map_err(io::Error::other)?;
    let head = format!(
        "POST {AUTO_PATH} HTTP/1.1\r\nHost: host-switch\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        json.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(&json)?;
    stream.flush()?;
    let mut answer = Vec::new();
    stream.take(MAX_RESPONSE as u64).read_to_end(&mut answer)?;
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not an HTTP answer"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}
