//! An upstream DNS server the test itself starts on loopback: dnsmasq on 127.0.0.1 at a free
//! port, answering only the test records given here (`--no-resolv --no-hosts`, no upstream of
//! its own), killed by its PID on drop.
#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{NetnsGuard, TapLink, TempDir, eventually, open_tap, run_with_timeout};
use switch::runtime::{DnsConfig, Runtime, RuntimeConfig};
use switch::tap::TapConfig;

/// The test zone's records: A and AAAA (www), MX, TXT and SRV.
pub(crate) const RECORDS: &[(&str, &str)] = &[
    ("www.dns.test", "A"),
    ("www.dns.test", "AAAA"),
    ("dns.test", "MX"),
    ("txt.dns.test", "TXT"),
    ("_http._tcp.dns.test", "SRV"),
];

/// A TXT record set past 1500 bytes: over UDP it comes truncated, over TCP whole.
pub(crate) const BIG_TXT: &str = "big.dns.test";

/// dnsmasq's lines for [`BIG_TXT`]: eight TXT records of one 250-byte string each (a
/// config line has a length limit, a record set does not).
fn big_txt_record() -> String {
    (b'a'..b'i')
        .map(|c| {
            format!(
                "txt-record={BIG_TXT},\"{}\"",
                (c as char).to_string().repeat(250)
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pub(crate) struct Dnsmasq {
    child: Child,
    pub(crate) addr: SocketAddr,
    _dir: TempDir,
}

/// A loopback port nobody listens on right now.
pub(crate) fn free_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = s.local_addr().expect("local addr").port();
    // TCP too: dnsmasq listens on both.
    match std::net::TcpListener::bind(("127.0.0.1", port)) {
        Ok(_) => port,
        Err(_) => free_port(),
    }
}

impl Dnsmasq {
    pub(crate) fn start() -> Dnsmasq {
        let dir = TempDir::new("dnsmasq");
        let port = free_port();
        let conf = dir.path().join("dnsmasq.conf");
        std::fs::write(
            &conf,
            format!(
                "no-resolv\nno-hosts\nbind-interfaces\nlisten-address=127.0.0.1\n\
             host-record=www.dns.test,10.1.2.3,fd00::3\n\
             mx-host=dns.test,mail.dns.test,10\n\
             txt-record=txt.dns.test,\"hello world\",\"second string\"\n\
             srv-host=_http._tcp.dns.test,www.dns.test,80,0,5\n{}\n",
                big_txt_record()
            ),
        )
        .expect("write dnsmasq.conf");
        let child = Command::new("dnsmasq")
            .arg("--keep-in-foreground")
            .arg(format!("--conf-file={}", conf.display()))
            .arg(format!("--port={port}"))
            .arg(format!("--pid-file={}", dir.path().join("pid").display()))
            .arg("--user=root")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dnsmasq");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let d = Dnsmasq {
            child,
            addr,
            _dir: dir,
        };
        let up = eventually(Duration::from_secs(10), || {
            let out = d.dig(&["+short", "+time=1", "+tries=1", "www.dns.test", "A"]);
            (out == "10.1.2.3\n").then_some(())
        });
        assert!(up.is_some(), "dnsmasq did not come up on {addr}");
        d
    }

    /// `dig` straight at this server, from the host; its standard output.
    pub(crate) fn dig(&self, args: &[&str]) -> String {
        let mut all = vec![
            format!("@{}", self.addr.ip()),
            "-p".into(),
            self.addr.port().to_string(),
        ];
        all.extend(args.iter().map(|a| (*a).to_owned()));
        let out = run_with_timeout(Command::new("dig").args(&all), Duration::from_secs(10));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A runtime with one worker whose DNS service forwards to `upstreams`.
pub(crate) fn dns_runtime(upstreams: Vec<SocketAddr>, timeout: Duration) -> Runtime {
    Runtime::start(RuntimeConfig {
        workers: 1,
        dns: DnsConfig {
            upstreams,
            timeout,
            attempts: 2,
            ..DnsConfig::default()
        },
        ..RuntimeConfig::default()
    })
    .expect("start runtime")
}

/// A guest namespace, tagged `tag`, with a configured TAP attached to `rt`.
pub(crate) fn dns_guest(rt: &Runtime, tag: &str) -> (NetnsGuard, TapLink) {
    let ns = NetnsGuard::new(tag);
    let tap = open_tap(
        &ns,
        Some(TapConfig {
            mac: Some("5a:94:ef:e4:0c:ee".parse().expect("a MAC")),
            mtu: 1500,
            address: std::net::Ipv4Addr::new(192, 168, 127, 2),
            ..TapConfig::default()
        }),
    );
    let port = rt.attacher().attach(&format!("tap:{tag}")).expect("attach");
    (ns, TapLink::start(tap, port))
}

/// `dig @192.168.127.1 ARGS` inside the namespace; its standard output.
pub(crate) fn dig_gateway(ns: &NetnsGuard, args: &[&str]) -> String {
    let mut all = vec!["@192.168.127.1", "+time=3", "+tries=2"];
    all.extend_from_slice(args);
    let out = ns.run("dig", &all, Duration::from_secs(30));
    String::from_utf8_lossy(&out.stdout).into_owned()
}
