//! The control API's side of automatic forwarding, an extension of gvproxy's forwarder API.
//!
//! - `POST /services/forwarder/auto` `{"guest": "192.168.127.2", "ports": [{"protocol":
//!   "tcp", "port": 8080}, ...]}`: the complete set of ports `guest` listens on
//!   ([`AutoForwards::sync`]). The answer is 200 with a JSON array, one [`PortStatus`] per port
//!   (what was exposed, what could not be bound and why, what the policy skipped). On the
//!   in-guest API (the gateway's port 80) the guest is the caller and `guest` may be left out;
//!   a guest naming another address is refused (403).
//! - `GET /services/forwarder/all` lists the automatic forwards beside the manual ones, each
//!   marked `"auto": true`, and those that failed with their `"error"`.
//!
//! [`PortStatus`]: super::PortStatus

use std::net::IpAddr;
use std::sync::Arc;

use forwarder::Control;
use serde::{Deserialize, Serialize};

use super::{AutoForwards, PortKey};
use crate::api::Router;
use crate::link::http::{Request, Response};

/// The path of the sync request.
pub const AUTO_PATH: &str = "/services/forwarder/auto";
/// Ports one sync may list (beyond: 400).
pub const MAX_PORTS_PER_SYNC: usize = 4096;

/// The body of `POST /services/forwarder/auto`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest: Option<IpAddr>,
    pub ports: Vec<PortKey>,
}

/// Mounts the sync path and the merged listing. `caller` says which guest asked, where a
/// guest did (the in-guest API).
pub fn mount(
    router: &mut Router,
    control: &Arc<Control>,
    registry: &Arc<AutoForwards>,
    caller: impl Fn(&Request) -> Option<IpAddr> + Send + Sync + 'static,
) {
    let r = registry.clone();
    router.route_over("POST", AUTO_PATH, move |req| {
        let body: SyncRequest = match serde_json::from_slice(&req.body) {
            Ok(b) => b,
            Err(e) => return Response::text(400, format!("bad JSON: {e}\n")),
        };
        if body.ports.len() > MAX_PORTS_PER_SYNC {
            return Response::text(400, format!("more than {MAX_PORTS_PER_SYNC} ports\n"));
        }
        let guest = match (caller(req), body.guest) {
            (Some(me), Some(named)) if me != named => {
                return Response::text(403, "a guest syncs its own ports only\n");
            }
            (Some(me), _) => me,
            (None, Some(named)) => named,
            (None, None) => return Response::text(400, "\"guest\" is needed\n"),
        };
        let report = r.sync(guest, &body.ports);
        match serde_json::to_vec(&report) {
            Ok(body) => Response::json(200, body),
            Err(e) => Response::text(500, format!("{e}\n")),
        }
    });
    let (c, r) = (control.clone(), registry.clone());
    router.route_over("GET", "/services/forwarder/all", move |_| {
        let mut all: Vec<serde_json::Value> = Vec::new();
        for f in c.all() {
            let Ok(mut v) = serde_json::to_value(&f) else {
                continue;
            };
            let transport = match f.protocol {
                forwarder::Protocol::Tcp => Some(super::Transport::Tcp),
                forwarder::Protocol::Udp => Some(super::Transport::Udp),
                forwarder::Protocol::Unix => None,
            };
            if transport.is_some_and(|t| r.is_auto(t, &f.local)) {
                // Listed below, from the registry.
                continue;
            }
            if let Some(map) = v.as_object_mut() {
                map.remove("auto");
            }
            all.push(v);
        }
        all.extend(r.listing());
        match serde_json::to_vec(&all) {
            Ok(body) => Response::json(200, body),
            Err(e) => Response::text(500, format!("{e}\n")),
        }
    });
}
