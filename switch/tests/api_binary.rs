//! The control API as a client of the `host-switch` binary sees it, over its `-listen` unix
//! socket: DNS zones added and listed, DHCP leases, counters, and the error statuses gvproxy's
//! clients expect. Needs no root: serve mode with no guest attached.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

mod support;

use support::api_request;

struct Served {
    child: Child,
    dir: PathBuf,
}

impl Served {
    fn start() -> Served {
        // One directory per server: the tests run in parallel, and each removes its own.
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "hs-api-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("api.sock");
        let child = Command::new(env!("CARGO_BIN_EXE_host-switch"))
            .arg("-listen")
            .arg(format!("unix://{}", socket.display()))
            .args(["-ssh-port", "-1", "--dns-upstream", "127.0.0.1:9"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "the API socket never appeared");
            std::thread::sleep(Duration::from_millis(20));
        }
        Served { child, dir }
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("api.sock")
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn dns_zones_are_added_merged_and_listed() {
    let served = Served::start();
    let socket = served.socket();

    let (status, all) = api_request(&socket, "GET", "/services/dns/all", "");
    assert_eq!(status, 200);
    let zones: serde_json::Value = serde_json::from_str(&all).unwrap();
    let names: Vec<&str> = zones
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|z| z["Name"].as_str())
        .collect();
    assert!(names.contains(&"containers.internal."), "{all}");

    let add = r#"{"Name":"dynamic.internal.","Records":[{"Name":"test","IP":"192.168.127.253"}]}"#;
    assert_eq!(
        api_request(&socket, "POST", "/services/dns/add", add).0,
        200
    );
    let later =
        r#"{"Name":"dynamic.internal.","Records":[{"Name":"test","IP":"192.168.127.252"}]}"#;
    assert_eq!(
        api_request(&socket, "POST", "/services/dns/add", later).0,
        200
    );

    let (_, all) = api_request(&socket, "GET", "/services/dns/all", "");
    let zones: serde_json::Value = serde_json::from_str(&all).unwrap();
    let dynamic = zones
        .as_array()
        .unwrap()
        .iter()
        .find(|z| z["Name"] == "dynamic.internal.")
        .unwrap_or_else(|| panic!("zone not listed: {all}"));
    let ips: Vec<&str> = dynamic["Records"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["IP"].as_str())
        .collect();
    assert_eq!(ips, ["192.168.127.252", "192.168.127.253"], "newer first");

    let (status, reason) = api_request(&socket, "POST", "/services/dns/add", "{not json");
    assert_eq!(status, 400);
    assert!(!reason.is_empty());
}

#[test]
fn leases_stats_and_wrong_methods() {
    let served = Served::start();
    let socket = served.socket();

    let (status, leases) = api_request(&socket, "GET", "/services/dhcp/leases", "");
    assert_eq!(status, 200);
    let leases: serde_json::Value = serde_json::from_str(&leases).unwrap();
    assert_eq!(
        leases["192.168.127.2"], "5a:94:ef:e4:0c:ee",
        "the static lease"
    );

    let (status, stats) = api_request(&socket, "GET", "/stats", "");
    assert_eq!(status, 200);
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert!(stats["dns"]["queries"].is_u64(), "{stats}");
    assert!(stats["forwarder"].is_object(), "{stats}");

    assert_eq!(
        api_request(&socket, "GET", "/services/forwarder/expose", "").0,
        400
    );
    assert_eq!(api_request(&socket, "GET", "/no/such/path", "").0, 404);
}
