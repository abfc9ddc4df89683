//! The TAP link with the kernel as guest: a namespace this test creates, a configured TAP in it
//! with one queue per worker, served by `link::tap::TapLink` inside the data plane's workers.
//! The kernel resolves the gateway and pings it; the port's counters see frames both ways; and
//! when the link shuts down the device is gone.
//!
//! Needs root. Without it the test skips loudly, unless CI=true, where it must run.
//! Traffic stays inside the namespace created here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::Ordering;
use std::time::Duration;

mod support;

use support::{NetnsGuard, privileged};

use switch::link::tap::TapLink;
use switch::runtime::{Runtime, RuntimeConfig};
use switch::tap::{TapConfig, TapOptions};

const GUEST_MAC: [u8; 6] = [0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xee];

#[test]
fn tap_link_carries_frames_both_ways() {
    if !privileged("tap_link_carries_frames_both_ways", &["ip", "ping"]) {
        return;
    }
    let rt = Runtime::start(RuntimeConfig {
        workers: 3,
        ..RuntimeConfig::default()
    })
    .unwrap();
    let ns = NetnsGuard::new("tap-link");
    let options = TapOptions {
        multi_queue: true,
        configure: Some(TapConfig {
            mac: Some(stack::wire::EthernetAddress(GUEST_MAC)),
            mtu: 1500,
            ..TapConfig::default()
        }),
    };
    let link = TapLink::open("hs0", &ns.netns(), &options, &rt.attacher(), 1500).unwrap();
    let out = ns.run(
        "ping",
        &["-c3", "-i0.2", "-W5", "192.168.127.1"],
        Duration::from_secs(10),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let rx = link.counters().rx_frames.load(Ordering::Relaxed);
    let tx = link.counters().tx_frames.load(Ordering::Relaxed);
    assert!(
        rx >= 4 && tx >= 4,
        "ARP and three echoes each way: {rx} in, {tx} out"
    );
    let stats = rt.stats();
    assert_eq!(stats.gateway.echo_replies, 3);
    assert_eq!(stats.workers.len(), 3);
    assert!(
        stats
            .ports
            .iter()
            .any(|p| p.id == link.id() && p.rx_frames == rx)
    );
    assert!(ns.ip(&["link", "show"]).contains("hs0"));
    link.shutdown();
    assert!(
        !ns.ip(&["link", "show"]).contains("hs0"),
        "the device goes with its last queue"
    );
    assert!(rt.stats().ports.is_empty());
}
