//! The TAP link with the kernel as guest: a namespace this test creates, a configured TAP in it
//! served by `link::tap::TapLink`, and the test playing the switch. The kernel's ARP request
//! for the gateway comes out of the port; our ARP reply goes in, and the kernel's ICMP echo
//! request follows — frames both ways.
//!
//! Needs root. Without it the test skips loudly, unless CI=true, where it must run.
//! Traffic stays inside the namespace created here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod support;

use support::{NetnsGuard, privileged};

use bytes::Bytes;
use switch::link::tap::TapLink;
use switch::port::{Control, channels};
use switch::tap::{TapConfig, TapOptions};

const GUEST_MAC: [u8; 6] = [0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xee];
const GATEWAY_MAC: [u8; 6] = [0x5a, 0x94, 0xef, 0xe4, 0x0c, 0xdd];

fn arp_reply(to_mac: &[u8], to_ip: [u8; 4]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(to_mac);
    f.extend_from_slice(&GATEWAY_MAC);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 2]);
    f.extend_from_slice(&GATEWAY_MAC);
    f.extend_from_slice(&[192, 168, 127, 1]);
    f.extend_from_slice(to_mac);
    f.extend_from_slice(&to_ip);
    f
}

#[test]
fn tap_link_carries_frames_both_ways() {
    if !privileged("tap_link_carries_frames_both_ways", &["ip"]) {
        return;
    }
    let ns = NetnsGuard::new("tap-link");
    let (attacher, inputs) = channels(256, 64);
    let options = TapOptions {
        multi_queue: false,
        configure: Some(TapConfig {
            mac: Some(stack::wire::EthernetAddress(GUEST_MAC)),
            mtu: 1500,
            ..TapConfig::default()
        }),
    };
    let netns = ns.netns();
    let link = TapLink::open("hs0", &netns, &options, &attacher, 1518).unwrap();
    let Ok(Control::Attach { id, egress, .. }) =
        inputs.control.recv_timeout(Duration::from_secs(2))
    else {
        panic!("no attach");
    };
    assert_eq!(id, link.port_id());

    let mut ping = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.name,
            "ping",
            "-c1",
            "-W5",
            "192.168.127.1",
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut replied = false;
    let mut echo_request = false;
    while Instant::now() < deadline && !echo_request {
        let Ok(ingress) = inputs.ingress.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        assert_eq!(ingress.port, id);
        let f = &ingress.frame[..];
        if f.len() < 42 {
            continue;
        }
        let ethertype = [f[12], f[13]];
        if ethertype == [0x08, 0x06] && f[20..22] == [0, 1] && f[38..42] == [192, 168, 127, 1] {
            assert_eq!(&f[6..12], &GUEST_MAC, "the configured MAC");
            egress
                .send(Bytes::from(arp_reply(&GUEST_MAC, [192, 168, 127, 2])))
                .unwrap();
            replied = true;
        } else if ethertype == [0x08, 0x00] && f[23] == 1 && f[34] == 8 {
            assert!(replied, "echo request only after our ARP reply went in");
            assert_eq!(&f[0..6], &GATEWAY_MAC, "sent to the MAC we answered with");
            echo_request = true;
        }
    }
    let _ = ping.kill();
    let _ = ping.wait();
    assert!(replied, "the kernel's ARP request came out of the port");
    assert!(
        echo_request,
        "the kernel's echo request followed our ARP reply"
    );
    link.shutdown();
    assert!(matches!(
        inputs.control.recv_timeout(Duration::from_secs(2)),
        Ok(Control::Detach { id: gone }) if gone == id
    ));
}

#[test]
fn a_deleted_tap_detaches_its_port() {
    if !privileged("a_deleted_tap_detaches_its_port", &["ip"]) {
        return;
    }
    let ns = NetnsGuard::new("tap-gone");
    let (attacher, inputs) = channels(256, 64);
    let options = TapOptions {
        multi_queue: false,
        configure: Some(TapConfig::default()),
    };
    let link = TapLink::open("hs0", &ns.netns(), &options, &attacher, 1518).unwrap();
    // The switch's side of the port stays open (`egress`): a link whose switch stopped ends
    // by itself, and that is not what is tested here.
    let Ok(Control::Attach { id, egress, .. }) =
        inputs.control.recv_timeout(Duration::from_secs(2))
    else {
        panic!("no attach");
    };
    assert!(!link.has_ended(), "the link runs until its device goes");
    ns.ip(&["link", "del", "hs0"]);
    // The device is gone while we still hold it: the link notices and detaches at once.
    assert!(matches!(
        inputs.control.recv_timeout(Duration::from_secs(2)),
        Ok(Control::Detach { id: gone }) if gone == id
    ));
    assert!(link.has_ended());
    link.shutdown();
    assert!(
        inputs
            .control
            .recv_timeout(Duration::from_millis(200))
            .is_err(),
        "detached once"
    );
    drop(egress);
}
