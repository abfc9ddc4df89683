//! IGMP/MLD snooping in the data plane: frames to IP groups go where the [`Snooper`] says,
//! the gateway's queries go to every guest port, and group events go to the multicast relay's
//! hook.
//!
//! The snooper sits behind a lock of its own in the [`super::fabric::Fabric`], beside the MAC
//! table, and is asked only for frames the switch would flood (a group destination), never on
//! a unicast flow's path. Worker 0 runs its timers and sends its queries; a port that attaches
//! wakes those queries at once. The hook is called outside the lock.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;
use stack::time::Instant;

use crate::mac_table::PortId;
use crate::port::GATEWAY_PORT;
use crate::snoop::{GroupEvent, SnoopCounters, Snooper, Verdict};

/// Called when a group gets its first guest member or loses its last.
pub type GroupHook = Arc<dyn Fn(GroupEvent) + Send + Sync>;

/// Where a frame to a group goes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// Everywhere, as any flooded frame (link-local groups, snooping not sure).
    Flood,
    /// Nowhere further: dropped or taken by the snooper (reports, leaves).
    Nowhere,
    /// To these ports, the gateway's among them (it relays to the host), never back.
    Ports(Vec<PortId>),
}

/// The snooper and where its events go.
pub(crate) struct Multicast {
    snooper: Mutex<Snooper>,
    hook: Option<GroupHook>,
    /// The snooper queued queries (a port attached) that worker 0 has yet to send.
    queries_waiting: AtomicBool,
}

impl Multicast {
    pub(crate) fn new(snooper: Snooper, hook: Option<GroupHook>) -> Multicast {
        Multicast {
            snooper: Mutex::new(snooper),
            hook,
            queries_waiting: AtomicBool::new(false),
        }
    }

    /// Where a frame to a group, from `ingress`, goes.
    pub(crate) fn route(&self, now: Instant, ingress: PortId, frame: &[u8]) -> Route {
        let (route, events) = {
            let mut snooper = self.snooper.lock();
            let route = match snooper.handle_frame(now, ingress, frame) {
                Verdict::Flood => Route::Flood,
                Verdict::Drop | Verdict::Consumed => Route::Nowhere,
                Verdict::Group(group) => Route::Ports(
                    std::iter::once(GATEWAY_PORT)
                        .chain(snooper.members(group))
                        .filter(|&to| to != ingress)
                        .collect(),
                ),
            };
            (route, drain_events(&mut snooper))
        };
        self.tell(events);
        route
    }

    /// A port attached: the querier asks the link at once.
    pub(crate) fn port_attached(&self, now: Instant) {
        self.snooper.lock().port_attached(now);
        self.queries_waiting.store(true, Ordering::Release);
    }

    /// A port went: it is a member of nothing any more.
    pub(crate) fn port_detached(&self, port: PortId) {
        let events = {
            let mut snooper = self.snooper.lock();
            snooper.remove_port(port);
            drain_events(&mut snooper)
        };
        self.tell(events);
    }

    /// Whether the timers or queued queries want worker 0 by `now`.
    pub(crate) fn due(&self, now: Instant, next: Option<Instant>) -> bool {
        self.queries_waiting.load(Ordering::Acquire) || next.is_some_and(|at| at <= now)
    }

    /// Runs the querier's timers: the queries to send to every guest port, and when to come
    /// back.
    pub(crate) fn timers(&self, now: Instant) -> (Vec<Bytes>, Option<Instant>) {
        self.queries_waiting.store(false, Ordering::Release);
        let (queries, next, events) = {
            let mut snooper = self.snooper.lock();
            if snooper.poll_timeout().is_none_or(|at| at <= now) {
                snooper.handle_timeout(now);
            }
            let queries: Vec<Bytes> = std::iter::from_fn(|| snooper.poll_transmit()).collect();
            (queries, snooper.poll_timeout(), drain_events(&mut snooper))
        };
        self.tell(events);
        (queries, next)
    }

    pub(crate) fn counters(&self) -> SnoopCounters {
        self.snooper.lock().counters()
    }

    fn tell(&self, events: Vec<GroupEvent>) {
        if let Some(hook) = &self.hook {
            for event in events {
                hook(event);
            }
        }
    }
}

fn drain_events(snooper: &mut Snooper) -> Vec<GroupEvent> {
    std::iter::from_fn(|| snooper.poll_event()).collect()
}
