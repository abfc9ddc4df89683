//! `/stats`' IPv6 and multicast sections: router advertisements and DHCPv6; IGMP/MLD
//! snooping (groups joined, memberships, queries) and the relay (datagrams each way, groups
//! joined on the host); and their bounds in `limits`.

use serde_json::{Map, Value, json};

use forwarder::{BudgetUsage, ForwarderStats};

use crate::runtime::{RuntimeHandle, Stats};

pub(super) fn ipv6_json(s: &Stats) -> Value {
    let g = &s.gateway;
    let mut v = json!({
        "enabled": s.dhcpv6.is_some(),
        "router_solicits": g.router_solicits,
        "router_adverts": g.router_adverts,
        "dhcpv6_replies": g.dhcpv6_replies,
        "hop_limit_exceeded": g.hop_limit_exceeded,
    });
    if let (Some(d), Some(map)) = (s.dhcpv6, v.as_object_mut()) {
        let mut dropped = Map::new();
        for (reason, n) in d.dropped.iter() {
            if n > 0 {
                dropped.insert(reason.as_str().to_owned(), json!(n));
            }
        }
        map.insert(
            "dhcpv6".to_owned(),
            json!({
                "received": d.received, "solicits": d.solicits, "requests": d.requests,
                "renews": d.renews, "rebinds": d.rebinds, "releases": d.releases,
                "declines": d.declines, "confirms": d.confirms,
                "information_requests": d.information_requests,
                "advertises": d.advertises, "replies": d.replies,
                "no_addrs_avail": d.no_addrs_avail, "no_binding": d.no_binding,
                "leases": d.leases, "pool_free": d.pool_free,
                "leases_expired": d.leases_expired, "dropped": dropped,
            }),
        );
    }
    v
}

pub(super) fn multicast_json(s: &Stats, f: &ForwarderStats) -> Value {
    let mut v = json!({
        "relay": {
            "to_host": f.mcast_to_host, "to_guest": f.mcast_to_guest,
            "host_groups": f.mcast_groups, "host_joins": f.mcast_joins,
            "join_failed": f.mcast_join_failed, "looped": f.mcast_looped,
            "too_big": f.mcast_too_big, "from_gateway": s.gateway.multicast_flows,
        },
        "icmp_errors_relayed": f.icmp_errors_relayed,
    });
    if let (Some(m), Some(map)) = (s.multicast, v.as_object_mut()) {
        map.insert(
            "snooping".to_owned(),
            json!({
                "groups": m.groups, "memberships": m.memberships,
                "joined": m.table.joined, "expired": m.table.expired,
                "removed": m.table.removed, "leaves": m.leaves,
                "igmp_messages": m.igmp_messages, "mld_messages": m.mld_messages,
                "bad_messages": m.bad_messages, "guest_queries": m.guest_queries,
                "queries_sent": m.queries_sent, "queries_dropped": m.queries_dropped,
                "group_frames": m.group_frames, "unjoined_frames": m.unjoined_frames,
            }),
        );
    }
    v
}

/// The multicast bounds in `/stats`' `limits`.
pub(super) fn add_limits(
    limits: &mut Map<String, Value>,
    s: &Stats,
    runtime: &RuntimeHandle,
    f: &ForwarderStats,
    budget: &BudgetUsage,
) {
    if let (Some(l), Some(m)) = (runtime.limits().multicast, s.multicast) {
        limits.insert(
            "multicast_memberships".to_owned(),
            json!({"max": l.max_memberships, "max_per_port": l.max_per_port,
                   "open": m.memberships,
                   "refused": m.table.table_full + m.table.port_full}),
        );
    }
    limits.insert(
        "multicast_host_groups".to_owned(),
        json!({"max": budget.max_multicast_groups, "open": f.mcast_groups,
               "refused": f.mcast_group_limit}),
    );
}
