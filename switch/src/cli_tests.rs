//! The command line: single-dash flags, refusals, defaults and bounds.

use super::*;

fn serve(args: &[&str]) -> ServeArgs {
    let mut all = vec!["host-switch"];
    all.extend_from_slice(args);
    let cli = parse(all).unwrap();
    assert!(cli.command.is_none());
    cli.serve
}

#[test]
fn single_and_double_dash_are_the_same() {
    let one = serve(&[
        "-listen",
        "unix:///tmp/a.sock",
        "-listen-qemu=tcp://127.0.0.1:5555",
        "-mtu",
        "9000",
        "-debug",
        "-pcap",
        "/tmp/x.pcap",
        "-gatewayIP",
        "10.0.0.1",
    ]);
    let two = serve(&[
        "--listen",
        "unix:///tmp/a.sock",
        "--listen-qemu=tcp://127.0.0.1:5555",
        "--mtu",
        "9000",
        "--debug",
        "--pcap",
        "/tmp/x.pcap",
        "--gatewayIP",
        "10.0.0.1",
    ]);
    for s in [&one, &two] {
        assert_eq!(s.listen, ["unix:///tmp/a.sock"]);
        assert_eq!(s.listen_qemu, ["tcp://127.0.0.1:5555"]);
        assert_eq!(s.network.mtu, Some(9000));
        assert!(s.network.debug);
        assert_eq!(s.network.gateway_ip, Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(s.network.subnet, "192.168.127.0/24");
    }
}

#[test]
fn listeners_repeat() {
    let s = serve(&[
        "-listen",
        "unix:///a",
        "-listen",
        "tcp://127.0.0.1:1",
        "-listen-vfkit",
        "unixgram:///v",
        "-listen-bess",
        "unixpacket:///b",
        "-listen-vpnkit",
        "unix:///k",
        "-listen-stdio",
        "accept",
    ]);
    assert_eq!(s.listen.len(), 2);
    assert_eq!(s.listen_vfkit, ["unixgram:///v"]);
    assert_eq!(s.listen_bess, ["unixpacket:///b"]);
    assert_eq!(s.listen_vpnkit, ["unix:///k"]);
    assert_eq!(s.listen_stdio.as_deref(), Some("accept"));
    assert!(s.has_links());
}

#[test]
fn tap_flags() {
    let s = serve(&[
        "--netns",
        "1234",
        "--tap",
        "tap0",
        "--configure",
        "--mac",
        "02:00:00:00:00:01",
        "--mtu",
        "1500",
    ]);
    assert_eq!(s.netns.as_deref(), Some("1234"));
    assert_eq!(s.tap.as_deref(), Some("tap0"));
    assert!(s.configure);
    assert_eq!(s.mac.unwrap().to_string(), "02:00:00:00:00:01");
    assert!(
        parse(["host-switch", "--configure"]).is_err(),
        "needs --tap"
    );
    assert!(parse(["host-switch", "--tap", "t", "--mac", "zz"]).is_err());
}

#[test]
fn refused_flags_are_named() {
    for flag in ["-notification", "--notification"] {
        let err = parse(["host-switch", flag, "x"]).unwrap_err();
        let name = flag.trim_start_matches('-');
        assert!(
            matches!(&err, CliError::Refused(r) if r.flag == name),
            "{flag}: {err}"
        );
        assert!(err.to_string().contains(&format!("-{name}")), "{err}");
    }
    let s = serve(&[
        "-ssh-port=-1",
        "-services",
        "unix:///s",
        "-ec2-metadata-access",
    ]);
    assert_eq!(s.network.ssh_port, Some(-1));
    assert_eq!(s.services, ["unix:///s"]);
    assert!(s.network.ec2_metadata_access);
    // Unknown flags are clap errors, not silently accepted.
    assert!(matches!(
        parse(["host-switch", "--bogus"]),
        Err(CliError::Clap(_))
    ));
}

#[test]
fn run_takes_the_command_verbatim() {
    let cli = parse([
        "host-switch",
        "run",
        "-mtu",
        "1500",
        "--",
        "sh",
        "-c",
        "ping -c1 -W2 192.168.127.1; exit 7",
        "-debug",
    ])
    .unwrap();
    let Some(Command::Run(run)) = cli.command else {
        panic!("expected run");
    };
    assert_eq!(run.network.mtu, Some(1500));
    assert_eq!(run.tap, "tap0");
    assert_eq!(run.network.ssh_port, None, "no SSH forward unless asked");
    assert!(!run.network.debug, "-debug after -- belongs to the command");
    assert_eq!(
        run.command,
        ["sh", "-c", "ping -c1 -W2 192.168.127.1; exit 7", "-debug"].map(OsString::from)
    );
    assert!(
        parse(["host-switch", "run"]).is_err(),
        "a command is needed"
    );
    assert!(
        parse(["host-switch", "-listen", "unix:///a", "run", "--", "true"]).is_err(),
        "serve flags go after run"
    );
    let Some(Command::Run(run)) = parse([
        "host-switch",
        "run",
        "-listen",
        "unix:///a",
        "-services",
        "unix:///s",
        "--",
        "true",
    ])
    .unwrap()
    .command
    else {
        panic!("expected run");
    };
    assert_eq!(
        (run.listen, run.services),
        (vec!["unix:///a".to_owned()], vec!["unix:///s".to_owned()])
    );
}

#[test]
fn dns_upstreams_repeat() {
    let s = serve(&["-dns-upstream", "127.0.0.1:5353", "--dns-upstream=::1"]);
    let want: Vec<std::net::SocketAddr> = ["127.0.0.1:5353", "[::1]:53"]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
    assert_eq!(s.network.dns_upstream, want);
}

#[test]
fn limits_single_dash_and_zero_refused() {
    let s = serve(&[
        "-max-tcp-flows",
        "4",
        "-max-tcp-flows-per-guest=3",
        "-max-udp-flows",
        "2",
        "-max-udp-flows-per-guest",
        "1",
        "-max-connects",
        "2",
        "-max-reassembly-bytes",
        "3000",
        "-fragment-timeout",
        "2",
        "-max-dns-pending",
        "1",
        "-max-dns-tcp",
        "5",
        "-max-mac-entries",
        "3",
        "-max-api-request",
        "1024",
    ]);
    let n = &s.network;
    assert_eq!((n.max_tcp_flows, n.max_tcp_flows_per_guest), (4, Some(3)));
    assert_eq!((n.max_udp_flows, n.max_udp_flows_per_guest), (2, Some(1)));
    assert_eq!(n.max_connects, 2);
    assert_eq!((n.max_reassembly_bytes, n.fragment_timeout), (3000, 2));
    assert_eq!((n.max_dns_pending, n.max_dns_tcp), (1, 5));
    assert_eq!((n.max_mac_entries, n.max_api_request), (3, Some(1024)));
    let d = serve(&[]);
    assert_eq!(d.network.max_tcp_flows, 16384);
    assert_eq!(d.network.max_tcp_flows_per_guest, None);
    for flag in [
        "--max-tcp-flows",
        "--max-tcp-flows-per-guest",
        "--max-udp-flows",
        "--max-udp-flows-per-guest",
        "--max-connects",
        "--max-reassembly-bytes",
        "--fragment-timeout",
        "--max-dns-pending",
        "--max-dns-tcp",
        "--max-mac-entries",
        "--max-api-request",
    ] {
        let err = parse(["host-switch", flag, "0"]).unwrap_err();
        assert!(
            err.to_string().contains("must be at least 1"),
            "{flag}: {err}"
        );
    }
}

#[test]
fn drain_timeout_takes_fractions_and_defaults_to_the_forwarders() {
    let d = serve(&[]);
    assert_eq!(d.network.drain_timeout, forwarder::DEFAULT_DRAIN_TIMEOUT);
    let s = serve(&["-drain-timeout", "0.25"]);
    assert_eq!(
        s.network.drain_timeout,
        std::time::Duration::from_millis(250)
    );
    assert_eq!(
        serve(&["--drain-timeout=0"])
            .network
            .drain_timeout
            .as_secs(),
        0
    );
    for bad in ["-1", "x", "1e9"] {
        assert!(
            parse(["host-switch", "--drain-timeout", bad]).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn every_guest_facing_bound_has_a_flag() {
    let s = serve(&[
        "--max-dns-tcp-pipeline=7",
        "--max-fragments-per-datagram=300",
        "-max-reassembly-datagrams",
        "9",
        "--max-icmp-requests=11",
        "--max-dhcp-offers=12",
        "--max-dhcp-offers-per-mac=2",
    ]);
    let n = &s.network;
    assert_eq!(
        (n.max_dns_tcp_pipeline, n.max_fragments_per_datagram),
        (7, 300)
    );
    assert_eq!((n.max_reassembly_datagrams, n.max_icmp_requests), (9, 11));
    assert_eq!((n.max_dhcp_offers, n.max_dhcp_offers_per_mac), (12, 2));
    let d = serve(&[]).network;
    assert_eq!(d.max_fragments_per_datagram, 8192);
    assert_eq!((d.max_dhcp_offers, d.max_dhcp_offers_per_mac), (64, 4));
    for flag in [
        "--max-dns-tcp-pipeline",
        "--max-fragments-per-datagram",
        "--max-reassembly-datagrams",
        "--max-icmp-requests",
        "--max-dhcp-offers",
        "--max-dhcp-offers-per-mac",
    ] {
        let err = parse(["host-switch", flag, "0"]).unwrap_err();
        assert!(
            err.to_string().contains("must be at least 1"),
            "{flag}: {err}"
        );
    }
}

#[test]
fn pcap_limits() {
    let d = serve(&[]);
    assert_eq!(d.network.pcap_max_size, 512 << 20);
    assert_eq!(d.network.pcap_snaplen, crate::pcap::DEFAULT_SNAPLEN);
    let s = serve(&["-pcap-max-size", "2K", "--pcap-snaplen=128"]);
    assert_eq!(
        (s.network.pcap_max_size, s.network.pcap_snaplen),
        (2048, 128)
    );
    assert_eq!(
        serve(&["--pcap-max-size", "1g"]).network.pcap_max_size,
        1 << 30
    );
    assert_eq!(
        serve(&["--pcap-max-size", "4096"]).network.pcap_max_size,
        4096
    );
    assert!(parse(["host-switch", "--pcap-max-size", "3X"]).is_err());
    assert!(parse(["host-switch", "--pcap-snaplen", "10"]).is_err());
}

#[test]
fn ssh_forward_flags_repeat() {
    let s = serve(&[
        "-forward-sock",
        "/run/a.sock",
        "-forward-dest",
        "/run/podman/podman.sock",
        "-forward-user",
        "core",
        "-forward-identity",
        "/k",
        "-forward-sock=/run/b.sock",
        "-deviceIP",
        "192.168.127.3",
    ]);
    assert_eq!(s.forward_sock, ["/run/a.sock", "/run/b.sock"]);
    assert_eq!(s.forward_dest, ["/run/podman/podman.sock"]);
    assert_eq!(s.forward_user, ["core"]);
    assert_eq!(s.forward_identity, [PathBuf::from("/k")]);
    assert_eq!(s.network.device_ip, Some(Ipv4Addr::new(192, 168, 127, 3)));
}

#[test]
fn mtu_bounds() {
    assert_eq!(serve(&["-mtu", "1280"]).network.mtu, Some(1280));
    assert_eq!(serve(&["-mtu", "65521"]).network.mtu, Some(65521));
    for bad in ["1279", "576", "0", "65522", "70000"] {
        let err = parse(["host-switch", "-mtu", bad]).unwrap_err();
        assert!(
            err.to_string().contains("outside 1280..=65521"),
            "{bad}: {err}"
        );
    }
}

#[test]
fn guest_fairness_flags() {
    let s = serve(&[
        "-max-connects-per-guest",
        "7",
        "--max-connects-per-destination=8",
        "-max-api-connections",
        "9",
        "-api-header-timeout",
        "3",
    ]);
    let n = &s.network;
    assert_eq!(
        (n.max_connects_per_guest, n.max_connects_per_destination),
        (Some(7), Some(8))
    );
    assert_eq!((n.max_api_connections, n.api_header_timeout), (9, 3));
    let d = serve(&[]);
    assert_eq!(d.network.max_connects_per_guest, None);
    assert_eq!(
        (d.network.max_api_connections, d.network.api_header_timeout),
        (64, 10)
    );
    for flag in [
        "--max-connects-per-guest",
        "--max-connects-per-destination",
        "--max-api-connections",
        "--api-header-timeout",
    ] {
        let err = parse(["host-switch", flag, "0"]).unwrap_err();
        assert!(
            err.to_string().contains("must be at least 1"),
            "{flag}: {err}"
        );
    }
}

#[test]
fn version_single_dash() {
    let err = parse(["host-switch", "-version"]).unwrap_err();
    let CliError::Clap(e) = err else {
        panic!("expected clap's version display")
    };
    assert_eq!(e.kind(), clap::error::ErrorKind::DisplayVersion);
}

#[test]
fn offloads_are_on_unless_switched_off() {
    assert_eq!(serve(&["--tap", "t"]).network.offload, Offload::On);
    assert_eq!(
        serve(&["--tap", "t", "--offload=off"]).network.offload,
        Offload::Off
    );
    assert!(!Offload::Off.enabled() && Offload::On.enabled());
    let cli = parse(["host-switch", "run", "--offload", "off", "--", "true"]).unwrap();
    let Some(Command::Run(run)) = cli.command else {
        panic!("expected run");
    };
    assert_eq!(run.network.offload, Offload::Off);
    assert!(parse(["host-switch", "--tap", "t", "--offload", "maybe"]).is_err());
}

#[test]
fn workers_default_to_one_per_core() {
    assert_eq!(serve(&[]).network.workers, 0);
    assert_eq!(serve(&["--workers", "3"]).network.workers, 3);
    assert_eq!(serve(&["--workers=2"]).network.workers, 2);
}

#[test]
fn busy_poll_is_on_by_default_and_zero_turns_it_off() {
    assert_eq!(serve(&[]).network.busy_poll, 50);
    assert_eq!(
        serve(&[]).network.busy_poll,
        crate::runtime::DEFAULT_BUSY_POLL_MICROS
    );
    assert_eq!(serve(&["--busy-poll", "0"]).network.busy_poll, 0);
    assert_eq!(serve(&["--busy-poll=200"]).network.busy_poll, 200);
    assert!(parse(["host-switch", "--tap", "t", "--busy-poll", "-1"]).is_err());
}
