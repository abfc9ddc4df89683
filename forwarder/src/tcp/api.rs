//! The in-guest API on the gateway's API port: a connection is accepted at once (no host
//! socket), its request gathered and handed to the [`crate::control::GuestApi`], the answer
//! sent, the connection closed.
//!
//! Bounded like any flow and more: each connection holds a unit of the TCP flow budget (in
//! total and for its guest) and one of `max_api_connections` (beyond either: RST, counted);
//! a request over `api_max_request` bytes gets 413. And timed: the whole request must arrive
//! within `api_header_timeout` of the SYN, and the answer be taken within the same time after
//! the request; a connection that lags (a slowloris guest sending a header a byte at a time,
//! or never reading its answer) is reset and counted in `api_timeouts`.

use stack::ingress::FlowKey;
use stack::tcp::Connection;
use stack::time::Instant;

use super::{Flow, Kind, Syn, TcpTable, hold_budget, send_rst};
use crate::budget::Refusal;
use crate::control::ApiReply;
use crate::handler::Shared;
use crate::stats::Counters;
use crate::worker::FrameSink;

/// The in-guest API's answer to a request over `api_max_request` bytes (RFC 9110 §15.5.14).
const API_TOO_LARGE: &[u8] = b"HTTP/1.1 413 Content Too Large\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 18\r\nConnection: close\r\n\r\nrequest too large\n";

/// One API connection's exchange.
#[derive(Debug)]
pub(super) struct Exchange {
    request: Vec<u8>,
    answer: Vec<u8>,
    sent: usize,
    /// The whole request is in (or refused): the answer is being sent.
    answered: bool,
    /// When the current phase (request, then answer) must be over.
    pub(super) deadline: Instant,
}

impl Exchange {
    fn new(deadline: Instant) -> Exchange {
        Exchange {
            request: Vec::new(),
            answer: Vec::new(),
            sent: 0,
            answered: false,
            deadline,
        }
    }
}

impl TcpTable {
    /// Accepts a connection to the API port, or resets it at a bound.
    pub(super) fn open_api(
        &mut self,
        sh: &mut Shared,
        now: Instant,
        syn: &Syn<'_>,
        out: &dyn FrameSink,
    ) {
        let guest = syn.key.guest.ip();
        if let Err(refusal) = sh.budget.tcp.take(guest) {
            Counters::bump(match refusal {
                Refusal::Total => &sh.counters.tcp_flow_limit,
                Refusal::Guest => &sh.counters.tcp_guest_limit,
            });
            send_rst(sh, out, syn.mac, syn.addrs, syn.repr);
            return;
        }
        if !sh.budget.api.take() {
            sh.budget.tcp.give(guest);
            Counters::bump(&sh.counters.api_connection_limit);
            send_rst(sh, out, syn.mac, syn.addrs, syn.repr);
            return;
        }
        if !self.make_room(sh) {
            sh.budget.tcp.give(guest);
            sh.budget.api.give();
            Counters::bump(&sh.counters.tcp_flow_limit);
            send_rst(sh, out, syn.mac, syn.addrs, syn.repr);
            return;
        }
        let gateway = syn.key.remote.ip();
        let mut conn =
            Connection::syn_received(now, self.engine_for(gateway), syn.endpoints, syn.repr);
        conn.accept(now);
        let inserted = self.insert(
            sh,
            syn.key,
            conn,
            None,
            syn.mac,
            Kind::Api,
            None,
            Vec::new(),
        );
        match self.flows.get_mut(&syn.key) {
            Some(flow) if inserted => {
                flow.api = Some(Exchange::new(now + sh.config.api_header_timeout));
                hold_budget(sh, flow, guest);
            }
            _ => {
                sh.budget.tcp.give(guest);
                sh.budget.api.give();
                return;
            }
        }
        Counters::bump(&sh.counters.api_requests);
        self.drive(sh, syn.key, now, out);
    }
}

/// When an API flow's exchange must be over, while that still matters: once the flow is in
/// TIME-WAIT the exchange is over, so the deadline neither wakes it nor resets it (a deadline
/// that woke a flow without resetting it would wake it again at once, forever).
pub(super) fn deadline(flow: &Flow) -> Option<Instant> {
    if flow.time_wait {
        return None;
    }
    flow.api.as_ref().map(|a| a.deadline)
}

/// Whether an API flow's deadline has passed with the exchange unfinished.
pub(super) fn overdue(flow: &Flow, now: Instant) -> bool {
    deadline(flow).is_some_and(|d| d <= now)
}

/// Gathers the request, answers, closes. Returns whether anything moved.
pub(super) fn pump(sh: &Shared, flow: &mut Flow, key: FlowKey, now: Instant) -> bool {
    let Some(exchange) = flow.api.as_mut() else {
        return false;
    };
    let mut progress = false;
    let queued = flow.conn.recv_queued();
    if queued > 0 {
        if !exchange.answered {
            let (a, b) = flow.conn.recv_slices();
            if exchange.request.len() + a.len() + b.len() > sh.config.api_max_request {
                // Too large: 413 and close; whatever else the guest sends is discarded.
                Counters::bump(&sh.counters.api_too_large);
                exchange.request = Vec::new();
                exchange.answer = API_TOO_LARGE.to_vec();
                exchange.answered = true;
                exchange.deadline = now + sh.config.api_header_timeout;
            } else {
                exchange.request.extend_from_slice(a);
                exchange.request.extend_from_slice(b);
            }
        }
        flow.conn.consume(queued);
        progress = true;
        if !exchange.answered
            && let Some(api) = sh.control.guest_api()
            && let ApiReply::Done(response) = api.respond(&exchange.request, key.guest.ip())
        {
            exchange.request = Vec::new();
            exchange.answer = response;
            exchange.answered = true;
            exchange.deadline = now + sh.config.api_header_timeout;
        }
    }
    if !exchange.answered && flow.conn.peer_finished() && !flow.host_eof {
        flow.host_eof = true;
        flow.conn.close(now);
        return true;
    }
    if exchange.answered && !flow.host_eof {
        while let Some(rest) = exchange.answer.get(exchange.sent..) {
            if rest.is_empty() {
                break;
            }
            let n = flow.conn.send(rest);
            if n == 0 {
                break;
            }
            exchange.sent += n;
            progress = true;
        }
        if exchange.sent >= exchange.answer.len() {
            flow.host_eof = true;
            flow.conn.close(now);
            progress = true;
        }
    }
    progress
}
