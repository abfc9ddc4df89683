//! The control API (gvproxy-compatible HTTP/1.1 + JSON), as a [`Router`] of handlers.
//!
//! - `POST /services/forwarder/expose` `{"local","remote","protocol"}` (protocol `tcp` by
//!   default, `udp`, `unix`; a remote without an address is the caller's guest, or the
//!   default guest for callers on the host), `POST /services/forwarder/unexpose`
//!   `{"local","protocol"}`, `GET /services/forwarder/all` (a JSON array). Success is 200
//!   with an empty body; another method than the route's is 400; a failure is 500 with the
//!   message ("proxy already running"); a body that is not the JSON expected is 400 with the
//!   reason.
//! - `GET /services/dhcp/leases`: a JSON object mapping each leased IP to its MAC.
//! - `GET /stats`: our counters; its `limits` object shows every bound host-switch enforces,
//!   each with its configured `max`, what is taken of it now where that is a gauge, and
//!   `refused`: how often the bound turned work away.
//!
//! - `POST /services/dns/add` (gvproxy's zone JSON, merged into an existing zone, newer records
//!   first; 400 with the reason on bad input) and `GET /services/dns/all`.
//!
//! [`Router::route`] mounts further handlers.
//! [`guest_api`] serves the three forwarder paths to guests (the gateway's port 80).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use forwarder::{ApiReply, BudgetUsage, Control, ForwarderStats, GuestApi, Protocol};
use serde_json::{Value, json};

use crate::link::http::{self, Handler, MAX_BODY, Request, RequestError, Response};
use crate::runtime::{RuntimeHandle, Stats};

type Route = Arc<dyn Fn(&Request) -> Response + Send + Sync>;

/// Handlers by method and path.
#[derive(Default, Clone)]
pub struct Router {
    routes: Vec<(&'static str, String, Route)>,
    /// The largest request body taken; `None`: [`MAX_BODY`].
    max_body: Option<usize>,
    /// Requests refused for a body over the bound (413).
    too_large: Arc<AtomicU64>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let paths: Vec<_> = self
            .routes
            .iter()
            .map(|(m, p, _)| format!("{m} {p}"))
            .collect();
        f.debug_struct("Router").field("routes", &paths).finish()
    }
}

impl Router {
    pub fn new() -> Router {
        Router::default()
    }

    /// Mounts `handler` for `method` requests to `path`.
    pub fn route(
        &mut self,
        method: &'static str,
        path: &str,
        handler: impl Fn(&Request) -> Response + Send + Sync + 'static,
    ) -> &mut Router {
        self.routes
            .push((method, path.to_owned(), Arc::new(handler)));
        self
    }

    /// Mounts `handler` for `method` requests to `path` ahead of any route already there.
    pub fn route_over(
        &mut self,
        method: &'static str,
        path: &str,
        handler: impl Fn(&Request) -> Response + Send + Sync + 'static,
    ) -> &mut Router {
        self.routes
            .insert(0, (method, path.to_owned(), Arc::new(handler)));
        self
    }
}

impl Handler for Router {
    fn max_body(&self) -> usize {
        self.max_body.unwrap_or(MAX_BODY)
    }

    fn refused(&self, status: u16) {
        if status == 413 {
            self.too_large.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn handle(&self, request: &Request) -> Response {
        let mut path_known = false;
        for (method, path, handler) in &self.routes {
            if *path == request.path {
                if *method == request.method {
                    return handler(request);
                }
                path_known = true;
            }
        }
        if path_known {
            // gvproxy answers a wrong method with 400.
            return Response::text(400, format!("{} only\n", self.method_of(&request.path)));
        }
        Response::not_found()
    }
}

impl Router {
    fn method_of(&self, path: &str) -> &'static str {
        self.routes
            .iter()
            .find(|(_, p, _)| p == path)
            .map_or("", |(m, _, _)| m)
    }
}

#[derive(serde::Deserialize)]
struct ExposeBody {
    local: String,
    #[serde(default)]
    remote: String,
    #[serde(default)]
    protocol: String,
}

#[derive(serde::Deserialize)]
struct UnexposeBody {
    local: String,
    #[serde(default)]
    protocol: String,
}

fn bad_json(e: serde_json::Error) -> Response {
    Response::text(400, format!("bad JSON: {e}\n"))
}

fn failure(e: impl std::fmt::Display) -> Response {
    Response::text(500, format!("{e}\n"))
}

fn ok() -> Response {
    Response {
        status: 200,
        content_type: "text/plain; charset=utf-8",
        body: Vec::new(),
    }
}

/// Mounts the three forwarder paths. `caller` says which guest asked, if a guest did.
fn mount_forwarder(
    router: &mut Router,
    control: &Arc<Control>,
    caller: impl Fn(&Request) -> Option<IpAddr> + Send + Sync + 'static,
) {
    let c = control.clone();
    router.route("POST", "/services/forwarder/expose", move |req| {
        let body: ExposeBody = match serde_json::from_slice(&req.body) {
            Ok(b) => b,
            Err(e) => return bad_json(e),
        };
        let protocol: Protocol = match body.protocol.parse() {
            Ok(p) => p,
            Err(e) => return Response::text(400, format!("{e}\n")),
        };
        match c.expose(protocol, &body.local, &body.remote, caller(req)) {
            Ok(()) => ok(),
            Err(e) => failure(e),
        }
    });
    let c = control.clone();
    router.route("POST", "/services/forwarder/unexpose", move |req| {
        let body: UnexposeBody = match serde_json::from_slice(&req.body) {
            Ok(b) => b,
            Err(e) => return bad_json(e),
        };
        let protocol: Protocol = match body.protocol.parse() {
            Ok(p) => p,
            Err(e) => return Response::text(400, format!("{e}\n")),
        };
        match c.unexpose(protocol, &body.local) {
            Ok(()) => ok(),
            Err(e) => failure(e),
        }
    });
    let c = control.clone();
    router.route(
        "GET",
        "/services/forwarder/all",
        move |_| match serde_json::to_vec(&c.all()) {
            Ok(body) => Response::json(200, body),
            Err(e) => failure(e),
        },
    );
}

/// The bounds `/stats` shows that are not in the runtime's or the forwarder's budget: the
/// request size bounds of the two HTTP APIs, the in-guest API's deadline, and how the
/// open-file limit was shared out, and the automatic forwards' bound.
#[derive(Debug, Clone)]
pub struct ApiLimits {
    /// The largest request body of the control API.
    pub max_request: usize,
    /// The largest request (head and body) of the in-guest API
    /// (`forwarder::Config::api_max_request`), shown in `/stats`.
    pub guest_max_request: usize,
    /// `forwarder::Config::api_header_timeout`.
    pub api_header_timeout: std::time::Duration,
    /// The open-file limit's plan, where one was made.
    pub descriptors: Option<forwarder::descriptors::DescriptorPlan>,
    /// The automatic forwards, whose bound (`--max-auto-forwards`) `/stats` shows.
    pub auto_forwards: Option<std::sync::Arc<crate::auto_forward::AutoForwards>>,
}

impl Default for ApiLimits {
    fn default() -> ApiLimits {
        let fwd = forwarder::Config::default();
        ApiLimits {
            max_request: MAX_BODY,
            guest_max_request: fwd.api_max_request,
            api_header_timeout: fwd.api_header_timeout,
            descriptors: None,
            auto_forwards: None,
        }
    }
}

/// The API served on `-listen` and `-services` sockets.
pub fn control_api(
    control: &Arc<Control>,
    runtime: RuntimeHandle,
    dns_zones: dns::SharedZones,
) -> Router {
    control_api_with(control, runtime, dns_zones, ApiLimits::default())
}

/// [`control_api`] with request bounds.
pub fn control_api_with(
    control: &Arc<Control>,
    runtime: RuntimeHandle,
    dns_zones: dns::SharedZones,
    limits: ApiLimits,
) -> Router {
    let mut router = Router::new();
    router.max_body = Some(limits.max_request);
    mount_forwarder(&mut router, control, |_| None);
    mount_dns(&mut router, dns_zones);
    let rt = runtime.clone();
    router.route("GET", "/services/dhcp/leases", move |_| {
        let leases: BTreeMap<String, String> = rt
            .leases()
            .iter()
            .map(|l| (l.ip.to_string(), l.mac.to_string()))
            .collect();
        match serde_json::to_vec(&leases) {
            Ok(body) => Response::json(200, body),
            Err(e) => failure(e),
        }
    });
    let c = control.clone();
    let api = ApiView {
        limits,
        too_large: router.too_large.clone(),
    };
    let view = Arc::new((runtime, c, api));
    let v = view.clone();
    router.route("GET", "/stats", move |_| {
        let (runtime, control, api) = &*v;
        let (s, f) = (runtime.stats(), control.stats());
        let mut stats = stats_json(runtime, control, api, &s, &f);
        gvproxy_keys(&mut stats, &s, &f);
        match serde_json::to_vec_pretty(&stats) {
            Ok(body) => Response::json(200, body),
            Err(e) => failure(e),
        }
    });
    router.route("GET", "/metrics", move |_| {
        let (runtime, control, api) = &*view;
        let (s, f) = (runtime.stats(), control.stats());
        let stats = stats_json(runtime, control, api, &s, &f);
        Response {
            status: 200,
            content_type: crate::metrics::CONTENT_TYPE,
            body: crate::metrics::render(&stats).into_bytes(),
        }
    });
    router
}

/// gvproxy's own `/stats` keys, beside ours, for clients that read them (its byte counts
/// and the gVisor stack's TCP, UDP and ICMP groups), filled from host-switch's counters.
/// Only the fields host-switch counts the same way are there.
fn gvproxy_keys(stats: &mut Value, s: &Stats, f: &ForwarderStats) {
    let guest_ports = s.ports.iter().filter(|p| p.id != crate::port::GATEWAY_PORT);
    let (sent, received) = guest_ports.fold((0u64, 0u64), |(tx, rx), p| {
        (tx.saturating_add(p.tx_bytes), rx.saturating_add(p.rx_bytes))
    });
    let dropped: u64 = s.drops.iter().map(|(_, n)| n).sum();
    let keys = json!({
        "BytesSent": sent,
        "BytesReceived": received,
        "DroppedPackets": dropped,
        "TCP": {
            // As gVisor's stack counts them: the guest's connects are passive opens on its
            // side, port forwards into the guest active ones.
            "ActiveConnectionOpenings": f.inbound_accepted,
            "PassiveConnectionOpenings": f.tcp_total.saturating_sub(f.inbound_accepted),
            "CurrentEstablished": f.tcp_open,
            "FailedConnectionAttempts": f.tcp_refused + f.tcp_connect_timeouts + f.tcp_unreachable,
            "EstablishedResets": f.tcp_host_resets,
            "ResetsSent": f.tcp_resets_sent,
            "ForwardMaxInFlightDrop": f.tcp_connect_limit,
        },
        "UDP": {
            "UnknownPortErrors": f.udp_port_unreachable,
            "ReceiveBufferErrors": f.udp_send_dropped,
        },
        "ICMP": {"V4": {"PacketsSent": {"EchoReply": s.gateway.echo_replies}}},
    });
    if let (Some(map), Value::Object(add)) = (stats.as_object_mut(), keys) {
        map.extend(add);
    }
}

/// `POST /services/dns/add` (a zone in gvproxy's JSON, merged into the zone of that name, its
/// records first) and `GET /services/dns/all`.
fn mount_dns(router: &mut Router, zones: dns::SharedZones) {
    let z = zones.clone();
    router.route(
        "POST",
        "/services/dns/add",
        move |req| match dns::api::add(&z, &req.body) {
            Ok(()) => Response::text(200, ""),
            Err(e) => Response::text(400, format!("{e}\n")),
        },
    );
    router.route("GET", "/services/dns/all", move |_| {
        Response::json(200, dns::api::all(&zones))
    });
}

/// What `/stats` shows of the control API itself.
struct ApiView {
    limits: ApiLimits,
    too_large: Arc<AtomicU64>,
}

/// `/stats`' `limits`: every bound with its maximum, its use now, and its refusals.
fn limits_json(
    s: &Stats,
    runtime: &RuntimeHandle,
    f: &ForwarderStats,
    budget: BudgetUsage,
    api: &ApiView,
) -> Value {
    use stack::frag::FragDropReason;
    let l = runtime.limits();
    json!({
        "tcp_flows": {"max": budget.max_tcp_flows, "open": budget.tcp_flows,
                      "refused": f.tcp_flow_limit, "time_wait": f.tcp_time_wait,
                      "time_wait_reclaimed": f.tcp_time_wait_reclaimed},
        "tcp_flows_per_guest": {"max": budget.max_tcp_flows_per_guest,
                                "guests": budget.tcp_guests, "refused": f.tcp_guest_limit},
        "udp_flows": {"max": budget.max_udp_flows, "open": budget.udp_flows,
                      "refused": f.udp_flow_limit},
        "udp_flows_per_guest": {"max": budget.max_udp_flows_per_guest,
                                "guests": budget.udp_guests, "refused": f.udp_guest_limit},
        "connects": {"max": budget.max_connects, "open": budget.connects,
                     "refused": f.tcp_connect_limit},
        "connects_per_guest": {"max": budget.max_connects_per_guest,
                               "guests": budget.connects_guests,
                               "refused": f.tcp_connect_guest_share},
        "connects_per_destination": {"max": budget.max_connects_per_destination,
                                     "destinations": budget.connects_destinations,
                                     "refused": f.tcp_connect_destination_share},
        "descriptors": {"max": budget.max_host_sockets, "open": budget.host_sockets,
                        "refused": f.descriptor_limit, "exhausted": f.no_descriptors,
                        "limit": api.limits.descriptors.map(|p| p.limit),
                        "reserved": api.limits.descriptors.map(|p| p.reserved)},
        "reassembly_bytes": {"max": l.reassembly.max_bytes, "held": s.reassembly.bytes_held,
                             "peak": s.reassembly.peak_bytes_held,
                             "refused": s.reassembly.dropped(FragDropReason::MemoryLimit)},
        "reassembly_datagrams": {"max": l.reassembly.max_datagrams, "open": s.reassembly.datagrams,
                                 "refused": s.reassembly.dropped(FragDropReason::TooManyDatagrams)},
        "fragments_per_datagram": {"max": l.reassembly.max_fragments,
                                   "refused": s.reassembly.dropped(FragDropReason::TooManyFragments)},
        "fragment_timeout": {"secs": l.reassembly.timeout_v4.as_secs(),
                             "secs_v6": l.reassembly.timeout_v6.as_secs(),
                             "expired": s.reassembly.dropped(FragDropReason::Timeout)},
        "dns_pending": {"max": l.dns_pending, "open": s.dns.pending,
                        "refused": s.dns.resolver.pending_full},
        "dns_tcp": {"max": l.dns_tcp, "open": s.dns.tcp.open, "refused": s.dns.tcp.refused,
                    "closing": s.dns.tcp.closing, "reclaimed": s.dns.tcp.reclaimed},
        "dns_tcp_pipeline": {"max": l.dns_tcp_pipeline, "stalls": s.dns.tcp.stalls},
        "icmp_requests": {"max": budget.max_icmp_requests, "open": f.icmp_open,
                          "refused": f.icmp_limit},
        "dhcp_offers": {"max": l.dhcp_offers, "open": s.dhcp.offers_outstanding,
                        "reclaimed": s.dhcp.offers_reclaimed},
        "dhcp_offers_per_mac": {"max": l.dhcp_offers_per_mac,
                                "refused": s.dhcp.dropped.get(dhcp::DropReason::MacOffersFull)},
        "mac_entries": {"max": l.mac_entries, "open": s.mac_entries.saturating_sub(1),
                        "refused": s.mac_table.table_full},
        "api_request": {"max": api.limits.max_request,
                        "refused": api.too_large.load(Ordering::Relaxed)},
        "guest_api_request": {"max": api.limits.guest_max_request, "refused": f.api_too_large},
        "guest_api_connections": {"max": budget.max_api_connections,
                                  "open": budget.api_connections,
                                  "refused": f.api_connection_limit},
        "guest_api_header_timeout": {"secs": api.limits.api_header_timeout.as_secs(),
                                     "expired": f.api_timeouts},
        "auto_forwards": api.limits.auto_forwards.as_ref().map(|a| {
            let u = a.usage();
            json!({"max_per_guest": u.max_per_guest, "guests": u.guests, "open": u.ports,
                   "refused": u.refused, "bind_failures": u.bind_failures})
        }),
    })
}

fn stats_json(
    runtime: &RuntimeHandle,
    control: &Control,
    api: &ApiView,
    s: &Stats,
    forwarder: &ForwarderStats,
) -> Value {
    let budget = control.budget_usage().unwrap_or_default();
    let mut drops = serde_json::Map::new();
    for (reason, n) in s.drops.iter() {
        if n > 0 {
            drops.insert(reason.name().to_owned(), json!(n));
        }
    }
    let ports: Vec<Value> = s
        .ports
        .iter()
        .map(|p| {
            json!({
                "name": &*p.name,
                "rx_frames": p.rx_frames, "rx_bytes": p.rx_bytes, "rx_dropped": p.rx_dropped,
                "tx_frames": p.tx_frames, "tx_bytes": p.tx_bytes, "tx_dropped": p.tx_dropped,
            })
        })
        .collect();
    let (rx_frames, rx_bytes, tx_frames, tx_bytes) = s.ports.iter().fold((0, 0, 0, 0), |a, p| {
        (
            a.0 + p.rx_frames,
            a.1 + p.rx_bytes,
            a.2 + p.tx_frames,
            a.3 + p.tx_bytes,
        )
    });
    let workers: Vec<Value> = s
        .workers
        .iter()
        .map(|w| {
            json!({
                "rx_frames": w.rx_frames, "tx_frames": w.tx_frames, "handled": w.handled,
                "handoffs_out": w.handoffs_out, "handoffs_in": w.handoffs_in,
                "handoffs_dropped": w.handoffs_dropped,
                "super_segments_in": w.super_in, "super_segments_out": w.super_out,
                "finished": w.finished, "finished_frames": w.finished_frames,
                "busy_poll": {"found": w.busy_poll_found, "gave_up": w.busy_poll_gave_up},
            })
        })
        .collect();
    let handoffs: u64 = s.workers.iter().map(|w| w.handoffs_out).sum();
    let handoffs_dropped: u64 = s.workers.iter().map(|w| w.handoffs_dropped).sum();
    let sum = |f: fn(&forwarder::WorkerStats) -> u64| s.workers.iter().map(f).sum::<u64>();
    let offload = json!({
        "super_segments_in": sum(|w| w.super_in), "super_segments_out": sum(|w| w.super_out),
        "finished": sum(|w| w.finished), "finished_frames": sum(|w| w.finished_frames),
    });
    let limits = limits_json(s, runtime, forwarder, budget, api);
    // DNS over TCP apart: one json! of everything is past the macro's recursion limit.
    let dns_tcp = json!({"queries": s.dns.resolver.tcp_queries,
        "forwarded": s.dns.resolver.tcp_forwarded,
        "accepted": s.dns.tcp.accepted, "open": s.dns.tcp.open,
        "refused": s.dns.tcp.refused, "messages": s.dns.tcp.queries,
        "answers": s.dns.tcp.answers, "answers_lost": s.dns.tcp.answers_lost,
        "bad_length": s.dns.tcp.bad_length, "truncated": s.dns.tcp.truncated,
        "idle_closed": s.dns.tcp.idle_closed, "stalls": s.dns.tcp.stalls,
        "resets_sent": s.dns.tcp.resets_sent,
        "probes_dropped": s.dns.tcp.probes_dropped,
        "frames_dropped": s.dns.tcp.frames_dropped,
        "upstream_down": s.dns.resolver.tcp_upstream_down,
        "upstream_connects": s.dns.upstream_tcp.connects,
        "upstream_connect_failures": s.dns.upstream_tcp.connect_failures,
        "upstream_closed": s.dns.upstream_tcp.closed,
        "upstream_queue_full": s.dns.upstream_tcp.queue_full,
        "upstream_answers_dropped": s.dns.upstream_tcp.answers_dropped});
    let mut all = json!({
        "frames": {"rx": rx_frames, "tx": tx_frames},
        "bytes": {"rx": rx_bytes, "tx": tx_bytes},
        "ports": ports,
        "switch": {"unicast": s.switch.unicast, "flooded": s.switch.flooded,
                   "dropped": s.switch.dropped_total(), "mac_entries": s.mac_entries,
                   "mac_remembered_full": s.mac_table.remembered_full},
        "gateway": {"frames": s.gateway.frames, "arp_replies": s.gateway.arp_replies,
                    "echo_replies": s.gateway.echo_replies, "dhcp_replies": s.gateway.dhcp_replies,
                    "flows": s.gateway.flows, "fragments": s.gateway.fragments,
                    "reassembled": s.gateway.reassembled,
                    "time_exceeded_sent": s.gateway.time_exceeded_sent},
        "workers": {
            "count": s.workers.len(), "handoffs": handoffs,
            "handoffs_dropped": handoffs_dropped, "per_worker": workers,
        },
        "forwarder": forwarder,
        "dns": {"queries": s.dns.resolver.queries, "local_answers": s.dns.resolver.local_answers,
                "forwarded": s.dns.resolver.forwarded, "answers": s.dns.resolver.answers,
                "truncated": s.dns.resolver.truncated, "failovers": s.dns.resolver.failovers,
                "timeouts": s.dns.resolver.timeouts, "pending": s.dns.pending,
                "pending_full": s.dns.resolver.pending_full, "formerr": s.dns.resolver.formerr,
                "dropped": s.dns.resolver.dropped, "queue_full": s.dns.queue_full,
                "tcp": dns_tcp},
        "drops": drops,
        "leases": s.leases.len(),
    });
    all["dns"]["gone_released"] = json!(s.dns.gone_released);
    if let Some(map) = all.as_object_mut() {
        map.insert("limits".to_owned(), limits);
        map.insert("offload".to_owned(), offload);
        map.insert("ipv6".to_owned(), v6::ipv6_json(s));
        map.insert("multicast".to_owned(), v6::multicast_json(s, forwarder));
        if let Some(Value::Object(limits)) = map.get_mut("limits") {
            v6::add_limits(limits, s, runtime, forwarder, &budget);
        }
    }
    all
}

#[path = "api_v6.rs"]
mod v6;

/// The forwarder paths for guests, on the gateway's API port: a remote without an address
/// is the asking guest.
pub fn guest_api(control: &Arc<Control>) -> Arc<dyn GuestApi> {
    guest_api_within(control, forwarder::Config::default().api_max_request)
}

/// [`guest_api`] taking request bodies of at most `max_request` bytes: a request that
/// declares a longer one is answered 413 at once, before its body arrives.
pub fn guest_api_within(control: &Arc<Control>, max_request: usize) -> Arc<dyn GuestApi> {
    guest_api_with(control, max_request, |_| {})
}

/// [`guest_api_within`] with further routes mounted by `more`.
pub fn guest_api_with(
    control: &Arc<Control>,
    max_request: usize,
    more: impl FnOnce(&mut Router),
) -> Arc<dyn GuestApi> {
    let mut router = Router::new();
    mount_forwarder(&mut router, control, |req| req.peer.parse().ok());
    more(&mut router);
    Arc::new(GuestHttp {
        router,
        max_request,
    })
}

struct GuestHttp {
    router: Router,
    max_request: usize,
}

impl GuestApi for GuestHttp {
    fn respond(&self, request: &[u8], guest: IpAddr) -> ApiReply {
        let peer = guest.to_string();
        let response = match http::read_request_within(&mut &request[..], &peer, self.max_request) {
            Ok((request, _)) => self.router.handle(&request),
            Err(RequestError::Incomplete) => return ApiReply::Incomplete,
            // A body over the bound is 413 (RFC 9110 §15.5.14), as on the control API.
            Err(e) => Response::text(e.status().unwrap_or(400), format!("{e}\n")),
        };
        let mut out = Vec::with_capacity(128 + response.body.len());
        if response.write_to(&mut out).is_err() {
            return ApiReply::Done(Vec::new());
        }
        ApiReply::Done(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(api: &Arc<dyn GuestApi>, request: &[u8]) -> String {
        let guest = IpAddr::from([192, 168, 127, 2]);
        match api.respond(request, guest) {
            ApiReply::Done(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            ApiReply::Incomplete => "incomplete".to_owned(),
        }
    }

    #[test]
    fn guest_api_body_over_the_bound_is_413_before_the_body() {
        let control = Control::new(IpAddr::from([192, 168, 127, 2]), &[]);
        let api = guest_api_within(&control, 1024);
        for declared in [2000, 2 * MAX_BODY] {
            let head = format!(
                "POST /services/forwarder/expose HTTP/1.1\r\nHost: gw\r\nContent-Length: {declared}\r\n\r\n"
            );
            let reply = answer(&api, head.as_bytes());
            assert!(reply.starts_with("HTTP/1.1 413 "), "{declared}: {reply}");
        }
        let head = b"POST /services/forwarder/expose HTTP/1.1\r\nContent-Length: 10\r\n\r\n";
        assert_eq!(
            answer(&api, head),
            "incomplete",
            "a body within the bound is awaited"
        );
        assert!(answer(&api, b"GET / HTTP/2\r\n\r\n").starts_with("HTTP/1.1 505 "));
    }
}
