use super::*;
use crate::cli::{self, Cli};

/// The settings of gvproxy's example configuration (`cmd/gvproxy/config.yaml` in
/// gvisor-tap-vsock), key for key: its legacy defaults written out.
/// gvproxy's example configuration (`cmd/gvproxy/config.yaml` in gvisor-tap-vsock), key for
/// key: its legacy defaults written out.
pub(crate) const GVPROXY_EXAMPLE: &str = include_str!("../tests/fixtures/gvproxy-config.yaml");

fn serve_args(argv: &[&str]) -> ServeArgs {
    let mut all = vec!["host-switch"];
    all.extend_from_slice(argv);
    let parsed: Cli = cli::parse(all).unwrap();
    parsed.serve
}

#[test]
fn gvproxys_example_means_what_it_says() {
    let config = parse(GVPROXY_EXAMPLE).unwrap();
    let mut args = serve_args(&["-listen-qemu", "unix:///q.sock"]);
    config.apply(&mut args, Path::new("config.yaml")).unwrap();
    let n = &args.network;
    assert_eq!(n.subnet, "192.168.127.0/24");
    assert_eq!(n.mtu, Some(1500));
    assert_eq!(n.gateway_ip, Some(Ipv4Addr::new(192, 168, 127, 1)));
    assert_eq!(n.device_ip, Some(Ipv4Addr::new(192, 168, 127, 2)));
    assert_eq!(n.host_ip, Some(Ipv4Addr::new(192, 168, 127, 254)));
    assert_eq!(n.forward, ["tcp/127.0.0.1:2222=192.168.127.2:22"]);
    assert_eq!(
        n.ssh_port,
        Some(-1),
        "the file's forwards replace -ssh-port"
    );
    assert!(n.no_default_lease);
    assert_eq!(
        n.static_lease,
        [dhcp::StaticLease {
            mac: "5a:94:ef:e4:0c:ee".parse().unwrap(),
            ip: Ipv4Addr::new(192, 168, 127, 2)
        }]
    );
    let x = extras(n).unwrap();
    assert_eq!(
        x.nat,
        [(
            IpAddr::from([192, 168, 127, 254]),
            IpAddr::from([127, 0, 0, 1])
        )]
    );
    assert_eq!(x.virtual_ips, [Ipv4Addr::new(192, 168, 127, 254)]);
    assert_eq!(x.gateway_mac.unwrap().to_string(), "5a:94:ef:e4:0c:dd");
    assert_eq!(x.vpnkit_macs.len(), 1);
    let names: Vec<&str> = x.zones.zones().iter().map(|z| z.name.as_str()).collect();
    assert_eq!(names, ["containers.internal.", "docker.internal."]);
    assert_eq!(x.log_level.as_deref(), Some("info"));
    assert!(x.warnings.is_empty());
    assert_eq!(args.listen_qemu, ["unix:///q.sock"]);
}

#[test]
fn unknown_keys_are_errors_that_name_the_key() {
    for (yaml, key) in [
        ("stack:\n    mtuu: 1500\n", "mtuu"),
        ("listen-everywhere: true\n", "listen-everywhere"),
        ("interfaces:\n    hyperv: x\n", "hyperv"),
        (
            "stack:\n    dns:\n        - name: a.\n          recrods: []\n",
            "recrods",
        ),
        (
            "forwards:\n    - socket: /a\n      destination: /b\n",
            "destination",
        ),
    ] {
        let err = parse(yaml).unwrap_err().to_string();
        assert!(err.contains(key), "{key}: {err}");
    }
}

#[test]
fn the_command_line_and_the_file_share_the_work_as_in_gvproxy() {
    let yaml = "\
listen:
    - unix:///from-file.sock
log-level: debug
pid-file: /file.pid
stack:
    mtu: 9000
    subnet: 10.0.0.0/24
    forwards:
        udp:127.0.0.1:5353: 10.0.0.2:53
forwards:
    - socket: /host.sock
      dest: /run/podman/podman.sock
      user: core
      identity: /key
interfaces:
    vfkit: unixgram:///vfkit.sock
";
    let mut args = serve_args(&[
        "-listen",
        "unix:///cli.sock",
        "-mtu",
        "1500",
        "-ssh-port",
        "2223",
    ]);
    parse(yaml)
        .unwrap()
        .apply(&mut args, Path::new("c.yaml"))
        .unwrap();
    assert_eq!(args.listen, ["unix:///cli.sock"], "the flag wins");
    assert_eq!(args.network.mtu, Some(1500), "the flag wins");
    assert_eq!(args.network.subnet, "10.0.0.0/24");
    assert_eq!(args.network.pid_file, Some(PathBuf::from("/file.pid")));
    assert_eq!(args.network.forward, ["udp/127.0.0.1:5353=10.0.0.2:53"]);
    assert_eq!(args.listen_vfkit, ["unixgram:///vfkit.sock"]);
    assert_eq!(args.forward_sock, ["/host.sock"]);
    assert_eq!(args.forward_user, ["core"]);
    let x = extras(&args.network).unwrap();
    assert!(x.zones.zones().is_empty(), "no default zones with a file");
    assert_eq!(x.warnings.len(), 1, "-ssh-port is ignored, with a warning");
    assert_eq!(args.network.ssh_port, Some(-1));

    let err = parse("stack:\n    mtu: 576\n")
        .unwrap()
        .apply(&mut serve_args(&[]), Path::new("m.yaml"))
        .unwrap_err();
    assert!(err.to_string().contains("stack.mtu 576"), "{err}");
    let err = parse("notification: unix:///n.sock\n")
        .unwrap()
        .apply(&mut serve_args(&[]), Path::new("n.yaml"))
        .unwrap_err();
    assert!(err.to_string().contains("notification"), "{err}");
    let err = parse("stack:\n    dhcpStaticLeases:\n        192.168.127.9: nope\n")
        .unwrap()
        .apply(&mut serve_args(&[]), Path::new("l.yaml"))
        .unwrap_err();
    assert!(err.to_string().contains("dhcpStaticLeases"), "{err}");
}
