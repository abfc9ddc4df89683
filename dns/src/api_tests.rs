#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::Ipv4Addr;

use super::*;
use crate::Zones;

fn shared() -> SharedZones {
    Zones::gvproxy_defaults(
        Ipv4Addr::new(192, 168, 127, 1),
        Ipv4Addr::new(192, 168, 127, 254),
    )
    .shared()
}

#[test]
fn all_in_gvproxy_shape() {
    let zones = shared();
    let json: serde_json::Value = serde_json::from_slice(&all(&zones)).unwrap();
    assert_eq!(
        json[0],
        serde_json::json!({
            "Name": "containers.internal.",
            "Records": [
                {"Name": "gateway", "IP": "192.168.127.1"},
                {"Name": "host", "IP": "192.168.127.254"}
            ],
            "DefaultIP": ""
        })
    );
    assert_eq!(json[1]["Name"], "docker.internal.");
}

#[test]
fn add_merges_newer_first() {
    let zones = shared();
    add(
        &zones,
        br#"{"Name":"dynamic.internal.","Records":[{"Name":"test","IP":"192.168.127.253"}]}"#,
    )
    .unwrap();
    add(
        &zones,
        br#"{"name":"dynamic.internal.","records":[{"name":"test","ip":"192.168.127.252"},
            {"Regexp":"^web-.*$","IP":"10.0.0.1"}],"DefaultIP":"10.0.0.2"}"#,
    )
    .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&all(&zones)).unwrap();
    assert_eq!(
        json[2],
        serde_json::json!({
            "Name": "dynamic.internal.",
            "Records": [
                {"Name": "test", "IP": "192.168.127.252"},
                {"Name": "", "IP": "10.0.0.1", "Regexp": "^web-.*$"},
                {"Name": "test", "IP": "192.168.127.253"}
            ],
            "DefaultIP": "10.0.0.2"
        })
    );
}

#[test]
fn bad_requests_are_refused() {
    let zones = shared();
    assert!(matches!(add(&zones, b"{"), Err(ApiError::Json(_))));
    assert!(matches!(
        add(&zones, br#"{"Name":""}"#),
        Err(ApiError::NoZoneName)
    ));
    assert!(matches!(
        add(&zones, br#"{"Name":"a.","Records":[{"Name":"x"}]}"#),
        Err(ApiError::NoAddress(0))
    ));
    assert!(matches!(
        add(
            &zones,
            br#"{"Name":"a.","Records":[{"Name":"x","IP":"300.1.1.1"}]}"#
        ),
        Err(ApiError::BadAddress(_))
    ));
    assert!(matches!(
        add(
            &zones,
            br#"{"Name":"a.","Records":[{"Regexp":"(","IP":"1.1.1.1"}]}"#
        ),
        Err(ApiError::BadRegex { index: 0, .. })
    ));
    assert!(matches!(
        add(&zones, &vec![b' '; MAX_BODY + 1]),
        Err(ApiError::TooLarge)
    ));
    assert_eq!(zones.read().zones().len(), 2);
}
