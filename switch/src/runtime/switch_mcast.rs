//! The switch thread's multicast part: frames to IP groups go where [`Snooper`] says, the
//! querier's queries go to every guest port, and group events go to the multicast relay's
//! hook. Kept apart from the forwarding loop so the loop stays a plain learn-and-send.

use std::net::IpAddr;

use stack::time::Instant;

use super::SwitchThread;
use crate::mac_table::PortId;
use crate::port::{Frame, GATEWAY_PORT};
use crate::snoop::{Snooper, Verdict};

/// Called by the switch thread when a group gets its first guest member or loses its last.
pub type GroupHook = std::sync::Arc<dyn Fn(crate::snoop::GroupEvent) + Send + Sync>;

/// The snooper and where its events go.
pub(in crate::runtime) struct Mcast {
    pub(in crate::runtime) snooper: Snooper,
    pub(in crate::runtime) hook: Option<GroupHook>,
}

impl SwitchThread {
    /// A frame the switch would flood: whether the snooper routed it (true) or left it to
    /// flooding (false).
    pub(super) fn multicast(&mut self, now: Instant, port: PortId, frame: &Frame) -> bool {
        let Some(mcast) = self.mcast.as_mut() else {
            return false;
        };
        if frame.first().is_none_or(|b| b & 1 == 0) {
            return false;
        }
        match mcast.snooper.handle_frame(now, port, frame) {
            Verdict::Flood => return false,
            Verdict::Drop => {}
            Verdict::Consumed => self.capture(frame),
            Verdict::Group(group) => self.send_to_members(port, group, frame),
        }
        self.group_events();
        true
    }

    /// To the router port (the gateway relays to the host) and every member port, never back.
    fn send_to_members(&mut self, ingress: PortId, group: IpAddr, frame: &Frame) {
        self.capture(frame);
        let Some(mcast) = self.mcast.as_ref() else {
            return;
        };
        let members = mcast.snooper.members(group);
        for to in std::iter::once(GATEWAY_PORT).chain(members) {
            if to == ingress {
                continue;
            }
            if let Some(entry) = self.ports.get(&to) {
                entry.egress.push(Frame::clone(frame));
            }
        }
    }

    /// Runs the querier's timers, sends its queries to every guest port.
    pub(super) fn multicast_timers(&mut self, now: Instant) {
        let Some(mcast) = self.mcast.as_mut() else {
            return;
        };
        if mcast.snooper.poll_timeout().is_none_or(|at| at <= now) {
            mcast.snooper.handle_timeout(now);
        }
        self.send_queries();
        self.group_events();
    }

    fn send_queries(&mut self) {
        while let Some(query) = self.mcast.as_mut().and_then(|m| m.snooper.poll_transmit()) {
            self.capture(&query);
            for (id, entry) in &self.ports {
                if *id != GATEWAY_PORT {
                    entry.egress.push(Frame::clone(&query));
                }
            }
        }
    }

    /// A port attached or detached.
    pub(super) fn multicast_port(&mut self, now: Instant, port: PortId, attached: bool) {
        let Some(mcast) = self.mcast.as_mut() else {
            return;
        };
        if attached {
            mcast.snooper.port_attached(now);
            self.send_queries();
        } else {
            mcast.snooper.remove_port(port);
            self.group_events();
        }
    }

    fn group_events(&mut self) {
        let Some(mcast) = self.mcast.as_mut() else {
            return;
        };
        while let Some(event) = mcast.snooper.poll_event() {
            if let Some(hook) = &mcast.hook {
                hook(event);
            }
        }
    }
}
