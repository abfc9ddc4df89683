//! `GET /metrics`: every number of `GET /stats` in the Prometheus text exposition format
//! (version 0.0.4), so the counters and limits need no second list to stay in step with.
//!
//! How the JSON maps onto metrics: a path of object keys becomes the name
//! (`{"dns": {"tcp": {"accepted": 3}}}` → `host_switch_dns_tcp_accepted_total 3`); the entries
//! of `ports` are told apart by a `port` label, those of `drops` (and of an object named
//! `dropped`, as DHCPv6's) by a `reason` label and those of `limits` by a `limit` label
//! (`host_switch_limit_refused_total{limit="tcp_flows"}`).
//! A leaf is a gauge when it says how much there is now (see [`GAUGES`]) and a counter,
//! named to end in `_total`, otherwise. Booleans and strings are left out; every metric gets one
//! `# HELP` and one `# TYPE` line before its samples, and label values are escaped as the
//! format asks (backslash, double quote, newline).

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::Value;

/// The prefix of every metric.
pub const PREFIX: &str = "host_switch";
/// The Content-Type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Leaf names that are levels, not counts of events.
pub const GAUGES: &[&str] = &[
    "open",
    "max",
    "held",
    "closing",
    "peak",
    "pending",
    "guests",
    "destinations",
    "count",
    "mac_entries",
    "leases",
    "time_wait",
    "secs",
    "secs_v6",
    "tcp_open",
    "udp_open",
    "icmp_open",
    "tcp_connecting",
    "tcp_time_wait",
    "tcp_buffer_bytes",
    "limit",
    "reserved",
    // IPv6 and multicast: free DHCPv6 addresses, groups and memberships now.
    "pool_free",
    "groups",
    "memberships",
    "host_groups",
    "mcast_groups",
    "max_per_port",
];

/// Objects whose entries become a label rather than part of the name.
const LABELLED: &[(&str, &str)] = &[
    ("drops", "reason"),
    ("dropped", "reason"),
    ("limits", "limit"),
];

#[derive(Default)]
struct Family {
    gauge: bool,
    samples: Vec<(Vec<(&'static str, String)>, f64)>,
}

/// Renders `stats` (the JSON of `GET /stats`) as Prometheus text.
pub fn render(stats: &Value) -> String {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    walk(&mut families, PREFIX, &[], stats);
    let mut out = String::new();
    for (name, family) in &families {
        let (kind, help) = if family.gauge {
            ("gauge", "level now")
        } else {
            ("counter", "events since start")
        };
        let _ = writeln!(out, "# HELP {name} host-switch {help} (see GET /stats)");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in &family.samples {
            out.push_str(name);
            if !labels.is_empty() {
                out.push('{');
                for (i, (k, v)) in labels.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "{k}=\"{}\"", escape(v));
                }
                out.push('}');
            }
            let _ = writeln!(out, " {value}");
        }
    }
    out
}

fn walk(
    families: &mut BTreeMap<String, Family>,
    name: &str,
    labels: &[(&'static str, String)],
    value: &Value,
) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                let key = sanitize(key);
                if let Some((_, label)) = LABELLED.iter().find(|(k, _)| **k == key)
                    && let Value::Object(entries) = v
                {
                    let base = match key.as_str() {
                        "limits" => format!("{PREFIX}_limit"),
                        _ => format!("{name}_{}", key.trim_end_matches('s')),
                    };
                    for (entry, inner) in entries {
                        let mut l = labels.to_vec();
                        l.push((label, entry.clone()));
                        match inner {
                            Value::Object(_) => walk(families, &base, &l, inner),
                            leaf => leaf_sample(families, &base, "", &l, leaf),
                        }
                    }
                    continue;
                }
                if key == "ports"
                    && let Value::Array(ports) = v
                {
                    for port in ports {
                        let port_name = port["name"].as_str().unwrap_or_default().to_owned();
                        let mut l = labels.to_vec();
                        l.push(("port", port_name));
                        walk(families, &format!("{name}_port"), &l, port);
                    }
                    continue;
                }
                match v {
                    Value::Object(_) => walk(families, &format!("{name}_{key}"), labels, v),
                    leaf => leaf_sample(families, name, &key, labels, leaf),
                }
            }
        }
        leaf => leaf_sample(families, name, "", labels, leaf),
    }
}

fn leaf_sample(
    families: &mut BTreeMap<String, Family>,
    name: &str,
    key: &str,
    labels: &[(&'static str, String)],
    value: &Value,
) {
    let Some(number) = value.as_f64() else {
        return;
    };
    // A leaf of a labelled entry is named by the entry's object, e.g. limits.tcp_flows.max.
    let last = if key.is_empty() {
        name.rsplit('_').next().unwrap_or_default()
    } else {
        key
    };
    let gauge = GAUGES.contains(&last);
    let mut full = match key.is_empty() {
        true => name.to_owned(),
        false => format!("{name}_{key}"),
    };
    if !gauge && !full.ends_with("_total") {
        full.push_str("_total");
    }
    let family = families.entry(full).or_default();
    family.gauge = gauge;
    family.samples.push((labels.to_vec(), number));
}

/// A metric name part: letters, digits and underscores.
fn sanitize(key: &str) -> String {
    key.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// A label value as the text format writes it.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_labels_and_types() {
        let stats = json!({
            "frames": {"rx": 3, "tx": 4},
            "ports": [{"name": "qemu \"a\"", "rx_frames": 1}, {"name": "port0", "rx_frames": 2}],
            "drops": {"bad_checksum": 5},
            "limits": {"tcp_flows": {"max": 10, "open": 2, "refused": 1},
                       "fragment_timeout": {"secs": 30, "expired": 0},
                       "dns_tcp": {"max": 4, "closing": 1},
                       "multicast_memberships": {"max": 4096, "max_per_port": 512, "open": 3},
                       "connects_per_destination": {"max": 8, "destinations": 3, "refused": 2},
                       "descriptors": {"max": 900, "open": 5, "refused": 0, "exhausted": 1,
                                       "limit": 1024, "reserved": 128}},
            "dns": {"tcp": {"accepted": 7}, "pending": 0, "dropped": 2},
            "ipv6": {"enabled": true, "router_adverts": 3,
                     "dhcpv6": {"leases": 1, "pool_free": 255, "dropped": {"no_server_id": 4}}},
            "multicast": {"relay": {"to_guest": 5, "host_groups": 1},
                          "snooping": {"groups": 2, "memberships": 3, "joined": 6}},
            "forwarder": {"mcast_groups": 1, "mcast_to_host": 8},
            "version": "x",
            "leases": 1,
        });
        let text = render(&stats);
        for line in [
            "# TYPE host_switch_frames_rx_total counter",
            "host_switch_frames_rx_total 3",
            "host_switch_port_rx_frames_total{port=\"qemu \\\"a\\\"\"} 1",
            "host_switch_port_rx_frames_total{port=\"port0\"} 2",
            "host_switch_drop_total{reason=\"bad_checksum\"} 5",
            "# TYPE host_switch_limit_max gauge",
            "host_switch_limit_max{limit=\"tcp_flows\"} 10",
            "host_switch_limit_open{limit=\"tcp_flows\"} 2",
            "host_switch_limit_refused_total{limit=\"tcp_flows\"} 1",
            "host_switch_limit_secs{limit=\"fragment_timeout\"} 30",
            "# TYPE host_switch_limit_closing gauge",
            "host_switch_limit_closing{limit=\"dns_tcp\"} 1",
            "# TYPE host_switch_limit_destinations gauge",
            "host_switch_limit_destinations{limit=\"connects_per_destination\"} 3",
            "# TYPE host_switch_limit_limit gauge",
            "host_switch_limit_limit{limit=\"descriptors\"} 1024",
            "# TYPE host_switch_limit_reserved gauge",
            "host_switch_limit_reserved{limit=\"descriptors\"} 128",
            "host_switch_limit_exhausted_total{limit=\"descriptors\"} 1",
            "host_switch_dns_tcp_accepted_total 7",
            "# TYPE host_switch_dns_pending gauge",
            "host_switch_leases 1",
            "host_switch_dns_dropped_total 2",
            "host_switch_ipv6_router_adverts_total 3",
            "# TYPE host_switch_ipv6_dhcpv6_pool_free gauge",
            "host_switch_ipv6_dhcpv6_pool_free 255",
            "host_switch_ipv6_dhcpv6_dropped_total{reason=\"no_server_id\"} 4",
            "host_switch_multicast_relay_to_guest_total 5",
            "# TYPE host_switch_multicast_relay_host_groups gauge",
            "# TYPE host_switch_multicast_snooping_groups gauge",
            "# TYPE host_switch_multicast_snooping_memberships gauge",
            "host_switch_multicast_snooping_joined_total 6",
            "# TYPE host_switch_forwarder_mcast_groups gauge",
            "host_switch_forwarder_mcast_to_host_total 8",
            "# TYPE host_switch_limit_max_per_port gauge",
            "host_switch_limit_max_per_port{limit=\"multicast_memberships\"} 512",
        ] {
            assert!(text.lines().any(|l| l == line), "{line}\n{text}");
        }
        assert!(!text.contains("version"));
        // One HELP and one TYPE line per family.
        let types: Vec<&str> = text.lines().filter(|l| l.starts_with("# TYPE ")).collect();
        let unique: std::collections::HashSet<&&str> = types.iter().collect();
        assert_eq!(types.len(), unique.len(), "{text}");
        let helps = text.lines().filter(|l| l.starts_with("# HELP ")).count();
        assert_eq!(types.len(), helps);
    }
}
