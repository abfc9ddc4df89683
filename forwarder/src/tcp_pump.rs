//! The pumps that move one flow's bytes between its engine and the outside: guest → host
//! ([`pump_to_host`]: the receive ring to the host socket, the guest's FIN behind its last
//! byte), host → guest ([`pump_from_host`], read only as far as the engine can take), and
//! the in-guest API ([`pump_api`]: gather the request, answer, close).

use std::io::{self, IoSlice, Read};
use std::net::Shutdown;

use stack::ingress::FlowKey;
use stack::time::Instant;

use super::Flow;
use super::drain::{self, Cause, reset_host};
use crate::control::ApiReply;
use crate::handler::Shared;
use crate::stats::Counters;

/// The in-guest API's answer to a request over `api_max_request` bytes (RFC 9110 §15.5.14).
const API_TOO_LARGE: &[u8] = b"HTTP/1.1 413 Content Too Large\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 18\r\nConnection: close\r\n\r\nrequest too large\n";

/// Guest → host: the receive ring to the host socket, then the guest's FIN →
/// `shutdown(SHUT_WR)`, only once every byte before it was written. A host socket that fails
/// resets the guest: what it was acknowledged will not arrive.
pub(super) fn pump_to_host(
    sh: &Shared,
    log: &mut drain::LogBudget,
    flow: &mut Flow,
    now: Instant,
) -> bool {
    let Some(host) = &flow.host else { return false };
    flow.fin |= flow.conn.peer_finished();
    let mut progress = false;
    while flow.writable && !flow.shut_wr && flow.conn.recv_queued() > 0 {
        let (a, b) = flow.conn.recv_slices();
        match host.send_vectored(&[IoSlice::new(a), IoSlice::new(b)]) {
            Ok(n) => {
                flow.conn.consume(n);
                flow.to_host += n as u64;
                Counters::add(&sh.counters.bytes_to_host, n as u64);
                progress = true;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => flow.writable = false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                flow.conn.abort(now);
                reset_host(sh, log, flow, Cause::HostError);
                return true;
            }
        }
    }
    if !flow.shut_wr && flow.fin && flow.conn.recv_queued() == 0 {
        if let Some(host) = &flow.host {
            let _ = host.shutdown(Shutdown::Write);
        }
        flow.shut_wr = true;
        if flow.teardown {
            Counters::bump(&sh.counters.tcp_teardown_completed);
        }
        progress = true;
    }
    progress
}

/// Host → guest: read only as much as the engine can take; EOF → our FIN.
pub(super) fn pump_from_host(
    sh: &Shared,
    log: &mut drain::LogBudget,
    flow: &mut Flow,
    now: Instant,
    buf: &mut [u8],
) -> bool {
    let mut progress = false;
    while flow.readable && !flow.host_eof {
        let Some(host) = &flow.host else { break };
        let room = flow.conn.send_capacity().min(buf.len());
        if room == 0 {
            break;
        }
        let Some(chunk) = buf.get_mut(..room) else {
            break;
        };
        match (&*host).read(chunk) {
            Ok(0) => {
                flow.host_eof = true;
                flow.conn.close(now);
                progress = true;
            }
            Ok(n) => {
                flow.conn.send(chunk.get(..n).unwrap_or_default());
                Counters::add(&sh.counters.bytes_from_host, n as u64);
                progress = true;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => flow.readable = false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                flow.conn.abort(now);
                reset_host(sh, log, flow, Cause::HostError);
                return true;
            }
        }
    }
    progress
}

/// The in-guest API: gather the request, answer, close.
pub(super) fn pump_api(sh: &Shared, flow: &mut Flow, key: FlowKey, now: Instant) -> bool {
    let mut progress = false;
    let queued = flow.conn.recv_queued();
    if queued > 0 {
        if !flow.api_done {
            let (a, b) = flow.conn.recv_slices();
            if flow.api_in.len() + a.len() + b.len() > sh.config.api_max_request {
                // Too large: 413 and close; whatever else the guest sends is discarded.
                Counters::bump(&sh.counters.api_too_large);
                flow.api_in = Vec::new();
                flow.api_out = API_TOO_LARGE.to_vec();
                flow.api_done = true;
            } else {
                flow.api_in.extend_from_slice(a);
                flow.api_in.extend_from_slice(b);
            }
        }
        flow.conn.consume(queued);
        progress = true;
        if !flow.api_done
            && let Some(api) = sh.control.guest_api()
            && let ApiReply::Done(response) = api.respond(&flow.api_in, key.guest.ip())
        {
            flow.api_out = response;
            flow.api_done = true;
        }
    }
    if !flow.api_done && flow.conn.peer_finished() && !flow.host_eof {
        flow.host_eof = true;
        flow.conn.close(now);
        return true;
    }
    if flow.api_done && !flow.host_eof {
        while let Some(rest) = flow.api_out.get(flow.api_sent..) {
            if rest.is_empty() {
                break;
            }
            let n = flow.conn.send(rest);
            if n == 0 {
                break;
            }
            flow.api_sent += n;
            progress = true;
        }
        if flow.api_sent >= flow.api_out.len() {
            flow.host_eof = true;
            flow.conn.close(now);
            progress = true;
        }
    }
    progress
}
