//! The pumps that move one flow's bytes between its engine and its host socket: guest →
//! host ([`pump_to_host`]: the receive ring to the host socket, the guest's FIN behind its
//! last byte) and host → guest ([`pump_from_host`], read only as far as the engine can
//! take). The in-guest API has its own pump (`api::pump`): it has no host socket.

use std::io::{self, IoSlice, Read};
use std::net::Shutdown;

use stack::time::Instant;

use super::Flow;
use super::drain::{self, Cause, reset_host};
use crate::handler::Shared;
use crate::stats::Counters;

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
        match (&**host).read(chunk) {
            Ok(0) => {
                flow.host_eof = true;
                flow.conn.close(now);
                progress = true;
            }
            Ok(n) => {
                flow.conn.send(chunk.get(..n).unwrap_or_default());
                Counters::add(&sh.counters.bytes_from_host, n as u64);
                progress = true;
                // A stream read comes back short only when it took all there was: what
                // arrives after it is a new edge, so the read that would say "would
                // block" is saved.
                if n < chunk.len() && !flow.read_to_block {
                    flow.readable = false;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                flow.readable = false;
                flow.read_to_block = false;
            }
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
