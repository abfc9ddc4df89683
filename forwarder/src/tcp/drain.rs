//! Winding TCP flows down without losing what a guest was told we have.
//!
//! Every byte the engine acknowledges to a guest waits in the flow's receive ring until the
//! host socket takes it. Whatever ends a flow, that promise is kept as far as it can be, and
//! a host peer is never told that a stream is complete when it is not:
//!
//! - A flow **owes** its host ([`owes_host`]) from the moment its host socket is connected
//!   until the guest's FIN has become `shutdown(SHUT_WR)` behind every byte before it (the
//!   stream is complete) or the host socket was reset (it was cut short).
//! - **Frozen flows.** When the engine is done with a flow that still owes its host — the
//!   guest's link went away ([`TcpTable::remove_guest`]), the guest stopped answering
//!   (retransmissions gave up), or the connection closed with bytes not yet written — the
//!   flow is frozen: no segment goes in or out any more, only its ring is written to the
//!   host socket as fast as that takes it ([`TcpTable::flush`]). Then the host gets FIN if
//!   the guest had finished its stream. If not, the stream was cut short: once the host has
//!   acknowledged every byte written (`SIOCOUTQ` down to zero, looked at every
//!   [`OUTQ_POLL`]; a reset would discard what the socket still holds), it gets RST. Past
//!   the deadline (`drain_timeout` for a guest that is gone, [`LINGER`] for a closed
//!   connection) it gets RST, and the bytes left are counted per [`Cause`] and logged with
//!   the flow.
//! - **Exit.** [`TcpTable::begin_drain`] refuses new connections (RST), aborts the connects
//!   in flight and closes the inbound listeners; open flows carry on as usual, so a guest
//!   still sending its stream can finish it. [`TcpTable::drained`] says whether any flow
//!   still owes its host. [`TcpTable::finish`], the last call, makes one more write attempt,
//!   resets every host socket still owed something (counted as [`Cause::Exit`] and logged),
//!   and sends RST to every guest whose connection was still open.
//! - Any other close of a host socket that is owed something is a reset ([`close_host`]),
//!   even when a flow is dropped without any of the above.
//! - A graceful close first reads out and discards what the host sent that no one will
//!   read: closing a socket with unread data makes the kernel send RST and discard the
//!   tail of what we wrote (RFC 2525 §2.17), which would cut a complete stream short.

use std::io::{self, Read};
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use socket2::Socket;
use stack::ingress::FlowKey;
use stack::tcp::State;
use stack::time::Instant;
use stack::wire::EthernetAddress;

use super::{Flow, TcpTable, pump_to_host};
use crate::handler::Shared;
use crate::stats::Counters;
use crate::worker::FrameSink;

/// How long a connection the engine has closed may take to hand the host what is left
/// (a slow reader after the host's own FIN), like a kernel's orphaned socket in FIN-WAIT.
pub(super) const LINGER: Duration = Duration::from_secs(60);
/// Warnings about streams cut short, at most per [`LOG_WINDOW`]; the rest are counted.
const LOG_BURST: u32 = 32;
const LOG_WINDOW: Duration = Duration::from_secs(60);
/// How often a frozen flow cut short looks whether its host has everything written.
const OUTQ_POLL: Duration = Duration::from_millis(5);
/// The most unread host bytes discarded before a graceful close.
const DISCARD_LIMIT: usize = 16 << 20;

/// Why bytes acknowledged to a guest may never reach its host peer. Each has a counter of
/// those bytes (`tcp_dropped_bytes_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cause {
    /// host-switch exited first (its drain deadline passed, or a second signal).
    Exit,
    /// The guest's link went away, or the guest stopped answering, and the host took too
    /// long.
    GuestGone,
    /// The host socket failed (the guest gets RST).
    HostError,
    /// The guest reset the connection.
    GuestReset,
    /// A connection the engine had closed took longer than [`LINGER`], or a new connection
    /// took its place.
    Linger,
}

impl Cause {
    fn name(self) -> &'static str {
        match self {
            Cause::Exit => "exit",
            Cause::GuestGone => "guest gone",
            Cause::HostError => "host error",
            Cause::GuestReset => "guest reset",
            Cause::Linger => "linger",
        }
    }

    fn counter(self, c: &Counters) -> &AtomicU64 {
        match self {
            Cause::Exit => &c.tcp_dropped_bytes_exit,
            Cause::GuestGone => &c.tcp_dropped_bytes_guest_gone,
            Cause::HostError => &c.tcp_dropped_bytes_host_error,
            Cause::GuestReset => &c.tcp_dropped_bytes_guest_reset,
            Cause::Linger => &c.tcp_dropped_bytes_linger,
        }
    }

    /// A cut short by us rather than by one of the peers: worth a warning.
    fn ours(self) -> bool {
        matches!(self, Cause::Exit | Cause::GuestGone | Cause::Linger)
    }
}

/// A flow with only its bytes for the host left: see the module docs.
#[derive(Debug, Clone, Copy)]
pub(super) struct Frozen {
    pub(super) cause: Cause,
    pub(super) deadline: Instant,
    /// When to look again whether the host has everything (a stream cut short).
    pub(super) poll: Option<Instant>,
}

impl Frozen {
    /// When the flow next has something to do.
    pub(super) fn next(&self) -> Instant {
        self.poll.map_or(self.deadline, |p| p.min(self.deadline))
    }
}

/// Whether the host socket is still owed the guest's stream: connected, and neither
/// completed (FIN after the last byte) nor reset.
pub(super) fn owes_host(flow: &Flow) -> bool {
    flow.host_connected && flow.host.is_some() && !flow.shut_wr
}

/// Closes the host socket with `SO_LINGER 0`: the host peer gets RST. If the stream was still
/// owed, the bytes it will never get — left in the ring, or in the socket and not yet
/// acknowledged by the host (the reset discards them) — are counted under `cause` (and
/// logged, see [`LogBudget`]).
pub(super) fn reset_host(sh: &Shared, log: &mut LogBudget, flow: &mut Flow, cause: Cause) {
    let owed = owes_host(flow);
    let mut in_socket = 0;
    if let Some(host) = flow.host.take() {
        if owed {
            in_socket = crate::sys::unacknowledged(&host).unwrap_or(0) as u64;
        }
        let _ = host.set_linger(Some(Duration::ZERO));
        sh.deregister_fd(&host);
        Counters::bump(&sh.counters.tcp_host_resets);
    }
    flow.host_eof = true;
    flow.shut_wr = true;
    if !owed {
        return;
    }
    let left = flow.conn.recv_queued() as u64 + in_socket;
    let written = flow.to_host.saturating_sub(in_socket);
    Counters::add(cause.counter(&sh.counters), left);
    if flow.teardown || matches!(cause, Cause::Exit | Cause::GuestGone) {
        Counters::bump(&sh.counters.tcp_teardown_reset);
    }
    if cause.ours() && left > 0 {
        log.cut_short(&flow.key, cause, left, written);
    } else {
        tracing::debug!(
            guest = %flow.key.guest,
            remote = %flow.key.remote,
            cause = cause.name(),
            lost = left,
            delivered = written,
            "TCP stream cut short: host peer reset"
        );
    }
}

/// Closes a flow's host socket: gracefully if nothing is owed to it, with a reset (counted
/// under `cause`) otherwise.
pub(super) fn close_host(sh: &Shared, log: &mut LogBudget, flow: &mut Flow, cause: Cause) {
    if owes_host(flow) {
        reset_host(sh, log, flow, cause);
    } else if let Some(host) = flow.host.take() {
        sh.deregister_fd(&host);
        if flow.host_connected && !flow.host_eof {
            discard_unread(&host);
        }
    }
}

/// Reads out what the host sent and no one will read, so that closing the socket sends FIN
/// after what we wrote rather than RST in place of its tail (see the module docs).
fn discard_unread(host: &Socket) {
    let mut buf = [0u8; 16 * 1024];
    let mut total = 0;
    while total < DISCARD_LIMIT {
        match (&*host).read(&mut buf) {
            Ok(0) => return,
            Ok(n) => total += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// Bounds the warnings about streams cut short to [`LOG_BURST`] per [`LOG_WINDOW`].
#[derive(Debug, Default)]
pub(super) struct LogBudget {
    window: Option<std::time::Instant>,
    used: u32,
    suppressed: u64,
}

impl LogBudget {
    fn cut_short(&mut self, key: &FlowKey, cause: Cause, lost: u64, delivered: u64) {
        let now = std::time::Instant::now();
        if self
            .window
            .is_none_or(|start| now.duration_since(start) >= LOG_WINDOW)
        {
            if self.suppressed > 0 {
                tracing::warn!(
                    streams = self.suppressed,
                    "more TCP streams were cut short (see tcp_dropped_bytes_* in /stats)"
                );
            }
            self.window = Some(now);
            self.used = 0;
            self.suppressed = 0;
        }
        if self.used >= LOG_BURST {
            self.suppressed += 1;
            return;
        }
        self.used += 1;
        tracing::warn!(
            guest = %key.guest,
            remote = %key.remote,
            cause = cause.name(),
            lost,
            delivered,
            "TCP stream cut short: host peer reset, bytes acknowledged to the guest lost"
        );
    }
}

/// The safety net: a flow dropped while it still owes its host resets the host socket
/// rather than letting its close pass for the end of the stream.
impl Drop for Flow {
    fn drop(&mut self) {
        if owes_host(self)
            && let Some(host) = &self.host
        {
            let _ = host.set_linger(Some(Duration::ZERO));
        }
    }
}

impl TcpTable {
    /// Freezes a flow that still owes its host and starts writing out its ring; see the
    /// module docs.
    pub(super) fn freeze(
        &mut self,
        sh: &mut Shared,
        key: FlowKey,
        now: Instant,
        cause: Cause,
        deadline: Instant,
    ) {
        let Some(flow) = self.flows.get_mut(&key) else {
            return;
        };
        flow.fin |= flow.conn.peer_finished();
        flow.teardown |= matches!(cause, Cause::Exit | Cause::GuestGone);
        flow.frozen = Some(Frozen {
            cause,
            deadline,
            poll: None,
        });
        // Try at once: a socket that cannot take more says so and waits for readiness.
        flow.writable = true;
        self.flush(sh, key, now);
    }

    /// Writes a frozen flow's ring to its host; ends the flow once the stream is complete
    /// (FIN), cut short (the guest had not finished it: RST), or out of time (RST).
    pub(super) fn flush(&mut self, sh: &mut Shared, key: FlowKey, now: Instant) {
        let Some(flow) = self.flows.get_mut(&key) else {
            return;
        };
        let Some(frozen) = flow.frozen.as_mut() else {
            return;
        };
        let (cause, deadline) = (frozen.cause, frozen.deadline);
        frozen.poll = None;
        pump_to_host(sh, &mut self.log, flow, now);
        if owes_host(flow) && now < deadline {
            let cut_short = !flow.fin && flow.conn.recv_queued() == 0;
            if !cut_short {
                self.schedule(key);
                return;
            }
            // Everything acknowledged is in the socket: the host gets it before the reset.
            let held = flow.host.as_ref().map_or(Ok(0), crate::sys::unacknowledged);
            if held.is_ok_and(|n| n > 0) {
                if let Some(frozen) = flow.frozen.as_mut() {
                    frozen.poll = Some(now + OUTQ_POLL);
                }
                self.schedule(key);
                return;
            }
        }
        if owes_host(flow) {
            reset_host(sh, &mut self.log, flow, cause);
        }
        self.remove(sh, key);
    }

    /// The flows of guests with one of `macs` (their link went away): connects in flight and
    /// flows that owe their host nothing go at once; the others are frozen to write out what
    /// their guest was acknowledged (see the module docs). Returns how many flows the guests
    /// had (not counting those already wound down for them). A scan, but only when a link
    /// detaches.
    pub(crate) fn remove_guest(
        &mut self,
        sh: &mut Shared,
        macs: &std::collections::HashSet<EthernetAddress>,
        now: Instant,
    ) -> usize {
        let gone: Vec<FlowKey> = self
            .flows
            .iter()
            .filter(|(_, f)| macs.contains(&f.guest_mac))
            .map(|(k, _)| *k)
            .collect();
        let deadline = now + sh.config.drain_timeout;
        let mut count = 0;
        for key in &gone {
            let Some(flow) = self.flows.get(key) else {
                continue;
            };
            if flow.frozen.is_some_and(|f| f.cause == Cause::GuestGone) {
                continue;
            }
            count += 1;
            if owes_host(flow) {
                self.freeze(sh, *key, now, Cause::GuestGone, deadline);
            } else {
                self.remove(sh, *key);
            }
        }
        count
    }

    /// Starts winding down for exit; see the module docs.
    pub(crate) fn begin_drain(&mut self, sh: &mut Shared, now: Instant, out: &dyn FrameSink) {
        self.draining = true;
        for (_, listener) in self.listeners.drain() {
            sh.deregister_fd(&listener.socket);
        }
        self.listen_tokens.clear();
        let owing: Vec<&Flow> = self
            .flows
            .values()
            .map(|f| &**f)
            .filter(|f| owes_host(f))
            .collect();
        tracing::debug!(
            worker = sh.index,
            owing = owing.len(),
            finished = owing
                .iter()
                .filter(|f| f.fin || f.conn.peer_finished())
                .count(),
            buffered = owing.iter().map(|f| f.conn.recv_queued()).sum::<usize>(),
            "draining: flows that owe their hosts (those whose guest finished, bytes buffered)"
        );
        let keys: Vec<FlowKey> = self.flows.keys().copied().collect();
        for key in keys {
            let Some(flow) = self.flows.get_mut(&key) else {
                continue;
            };
            if flow.connecting.is_some() {
                flow.conn.refuse(now);
                self.connect_done(sh, key);
                self.drive(sh, key, now, out);
            } else if owes_host(flow) {
                flow.teardown = true;
            }
        }
    }

    /// Whether no flow owes its host anything any more.
    pub(crate) fn drained(&self) -> bool {
        !self.flows.values().any(|f| owes_host(f))
    }

    /// Ends every flow for exit; see the module docs.
    pub(crate) fn finish(&mut self, sh: &mut Shared, now: Instant, out: &dyn FrameSink) {
        self.draining = true;
        for (_, listener) in self.listeners.drain() {
            sh.deregister_fd(&listener.socket);
        }
        self.listen_tokens.clear();
        let (mut reset, lost_before) = (0u64, sh.counters.tcp_dropped_bytes_exit.load(Relaxed));
        let keys: Vec<FlowKey> = self.flows.keys().copied().collect();
        for key in keys {
            let Some(flow) = self.flows.get_mut(&key) else {
                continue;
            };
            if owes_host(flow) {
                flow.teardown = true;
                flow.writable = true;
                pump_to_host(sh, &mut self.log, flow, now);
            }
            if owes_host(flow) {
                reset += 1;
                reset_host(sh, &mut self.log, flow, Cause::Exit);
            }
            let open = !matches!(flow.conn.state(), State::Closed | State::TimeWait);
            if flow.frozen.is_none() && flow.resolved && open {
                flow.conn.abort(now);
                let addrs = flow.conn.endpoints().addrs;
                while let Some(segment) = flow.conn.poll_transmit(now) {
                    let frame =
                        sh.framer
                            .tcp(flow.guest_mac, addrs, &segment.repr, segment.payload);
                    sh.send(out, frame);
                }
            }
            self.remove(sh, key);
        }
        if reset > 0 {
            let lost = sh.counters.tcp_dropped_bytes_exit.load(Relaxed) - lost_before;
            tracing::warn!(
                worker = sh.index,
                streams = reset,
                lost,
                "exit: TCP streams cut short, their host peers reset"
            );
        }
    }
}
