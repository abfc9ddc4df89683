//! The control API as a client of the `host-switch` binary sees it, over its `-listen` unix
//! socket: DNS zones added and listed, DHCP leases, counters, and the error statuses gvproxy's
//! clients expect. Needs no root: serve mode with no guest attached.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Served {
    child: Child,
    dir: PathBuf,
}

impl Served {
    fn start() -> Served {
        // One directory per server: the tests of this file run in parallel in one process,
        // and each one's drop removes its directory.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("hs-api-{}-{n}", std::process::id()));
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

/// One request; returns the status code and the body.
fn request(socket: &Path, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: api\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn dns_zones_are_added_merged_and_listed() {
    let served = Served::start();
    let socket = served.socket();

    let (status, all) = request(&socket, "GET", "/services/dns/all", "");
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
    assert_eq!(request(&socket, "POST", "/services/dns/add", add).0, 200);
    let later =
        r#"{"Name":"dynamic.internal.","Records":[{"Name":"test","IP":"192.168.127.252"}]}"#;
    assert_eq!(request(&socket, "POST", "/services/dns/add", later).0, 200);

    let (_, all) = request(&socket, "GET", "/services/dns/all", "");
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

    let (status, reason) = request(&socket, "POST", "/services/dns/add", "{not json");
    assert_eq!(status, 400);
    assert!(!reason.is_empty());
}

#[test]
fn leases_stats_and_wrong_methods() {
    let served = Served::start();
    let socket = served.socket();

    let (status, leases) = request(&socket, "GET", "/services/dhcp/leases", "");
    assert_eq!(status, 200);
    let leases: serde_json::Value = serde_json::from_str(&leases).unwrap();
    assert_eq!(
        leases["192.168.127.2"], "5a:94:ef:e4:0c:ee",
        "the static lease"
    );

    let (status, stats) = request(&socket, "GET", "/stats", "");
    assert_eq!(status, 200);
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert!(stats["dns"]["queries"].is_u64(), "{stats}");
    assert!(stats["forwarder"].is_object(), "{stats}");

    assert_eq!(
        request(&socket, "GET", "/services/forwarder/expose", "").0,
        400
    );
    assert_eq!(request(&socket, "GET", "/no/such/path", "").0, 404);
}
