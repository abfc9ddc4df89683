//! A real VM as guest: QEMU (TCG) boots Debian's kernel and a busybox initramfs whose only NIC
//! is `-netdev stream` to a unix socket. See `qemu/mod.rs` for what it needs and when it skips.
//!
//! One test checks the harness against a peer of its own (the VM boots, the NIC works, QEMU's
//! 4-byte framing carries udhcpc's DISCOVER); another runs the guest against the
//! `host-switch` binary's `-listen-qemu`: lease by DHCP, then `ping` to the gateway. The third
//! has no NIC at all: `host-switch guest` inside the VM reaches host-switch's `-listen` socket
//! over a virtio-serial port, leases its address, fetches from the host, and serves a web
//! page that the host reaches on its own loopback with no further step.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod qemu;

use std::io::{self, Read};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dhcp::{DhcpPacket, DhcpRepr, MessageType};
use stack::wire::{
    EtherType, EthernetAddress, EthernetFrame, IpAddresses, IpProtocol, Ipv4Packet, UdpPacket,
};

use qemu::{GUEST_MAC, ScratchDir, VM_TIMEOUT_SECS, Vm};

fn guest_mac() -> EthernetAddress {
    GUEST_MAC.parse().unwrap()
}

/// Accepts QEMU's connection, watching that QEMU did not exit instead.
fn accept(listener: &UnixListener, vm: &mut Vm, deadline: Instant) -> UnixStream {
    listener.set_nonblocking(true).unwrap();
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).unwrap();
                return stream;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                assert!(
                    !vm.has_exited(),
                    "QEMU exited before connecting: {:?}",
                    vm.wait_exit(Instant::now())
                );
                assert!(Instant::now() < deadline, "QEMU did not connect");
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// One frame in QEMU's stream framing: a 4-byte big-endian length, then the frame.
fn read_frame(stream: &mut UnixStream, deadline: Instant) -> io::Result<Vec<u8>> {
    let left = deadline.saturating_duration_since(Instant::now());
    stream.set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
    let mut len = [0u8; 4];
    stream.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    assert!(
        (14..=65536).contains(&len),
        "implausible frame length {len}"
    );
    let mut frame = vec![0u8; len];
    stream.read_exact(&mut frame)?;
    Ok(frame)
}

/// The DHCP message in `frame`, if it is a BOOTP client-to-server datagram.
fn dhcp_request(frame: &[u8]) -> Option<DhcpRepr> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EtherType::Ipv4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    if ip.next_header() != IpProtocol::Udp {
        return None;
    }
    let udp = UdpPacket::new_checked(ip.payload()).ok()?;
    if (udp.src_port(), udp.dst_port()) != (68, 67) {
        return None;
    }
    let addrs = IpAddresses::V4 {
        src: ip.src_addr(),
        dst: ip.dst_addr(),
    };
    assert!(ip.verify_checksum(), "bad IPv4 checksum");
    assert!(udp.verify_checksum(&addrs), "bad UDP checksum");
    assert_eq!(eth.source(), guest_mac(), "DHCP from another MAC");
    let dhcp = DhcpPacket::new_checked(udp.payload()).ok()?;
    Some(DhcpRepr::parse(&dhcp).expect("the guest's DHCP message parses"))
}

/// The harness against a peer of the test's own: the VM boots, its virtio NIC comes up with the
/// guest MAC, QEMU speaks the 4-byte framing, and udhcpc's DISCOVER arrives intact.
#[test]
fn vm_boots_and_sends_dhcp_discover_over_qemu_stream() {
    let Some((image, _one_vm)) = qemu::setup() else {
        return;
    };
    eprintln!("kernel: {}", image.kernel_package);
    let dir = ScratchDir::new("hs-vm").unwrap();
    let socket = dir.path().join("qemu.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    let deadline = Instant::now() + Duration::from_secs(VM_TIMEOUT_SECS);

    let mut vm = Vm::boot(&image, &socket).unwrap();
    let mut stream = accept(&listener, &mut vm, deadline);
    let (_, nic) = vm
        .wait_for_line(
            |l| l.starts_with("NIC-UP") || l.starts_with("NIC-MISSING"),
            deadline,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        nic,
        format!("NIC-UP mac={GUEST_MAC}"),
        "{}",
        vm.transcript()
    );

    let mut seen = Vec::new();
    let discover = loop {
        let frame = read_frame(&mut stream, deadline)
            .unwrap_or_else(|e| panic!("reading frames: {e}; seen {seen:?}\n{}", vm.transcript()));
        if let Some(dhcp) = dhcp_request(&frame) {
            break dhcp;
        }
        let eth = EthernetFrame::new_checked(&frame[..]).unwrap();
        seen.push(format!("{:?} from {}", eth.ethertype(), eth.source()));
        assert!(seen.len() < 1000, "no DHCP among {seen:?}");
    };
    let at = vm.elapsed();
    eprintln!(
        "DISCOVER after {:.1}s (other frames before it: {seen:?})",
        at.as_secs_f64()
    );
    assert_eq!(discover.message_type, MessageType::Discover);
    assert_eq!(discover.chaddr, guest_mac());
    assert!(
        discover
            .parameter_request_list
            .as_deref()
            .is_some_and(|p| p.contains(&1) && p.contains(&3) && p.contains(&26)),
        "udhcpc asks for mask, router and (with -O mtu) MTU: {discover:?}"
    );
}

/// host-switch itself, started with `args`, its log kept in a file; SIGTERM on drop, then
/// SIGKILL if it lingers.
struct HostSwitch {
    child: Child,
    log: PathBuf,
}

impl HostSwitch {
    fn start(args: &[&str], log: PathBuf) -> HostSwitch {
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_host-switch"))
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        HostSwitch { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `path` exists (the listener is up), failing if host-switch exits first.
    fn await_path(&mut self, path: &Path, deadline: Instant) {
        while !path.exists() {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "host-switch exited ({status}) before listening:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {} appeared:\n{}",
                path.display(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for HostSwitch {
    fn drop(&mut self) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill has no memory-safety preconditions; the PID is our own unreaped child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The real thing: the guest's udhcpc gets its static lease from host-switch's gateway over
/// `-listen-qemu`, and the guest pings the gateway.
#[test]
fn vm_gets_its_lease_and_pings_the_gateway_through_listen_qemu() {
    let Some((image, _one_vm)) = qemu::setup() else {
        return;
    };
    let dir = ScratchDir::new("hs-vm").unwrap();
    let socket = dir.path().join("qemu.sock");
    let deadline = Instant::now() + Duration::from_secs(VM_TIMEOUT_SECS);
    let mut hs = HostSwitch::start(
        &["-listen-qemu", &format!("unix://{}", socket.display())],
        dir.path().join("host-switch.log"),
    );
    hs.await_path(&socket, deadline);

    let mut vm = Vm::boot(&image, &socket).unwrap();
    let fail = |vm: &Vm, hs: &HostSwitch, e: String| -> ! {
        panic!(
            "{e}\nconsole:\n{}\nhost-switch log:\n{}",
            vm.transcript(),
            hs.log()
        )
    };
    let (init_at, _) = vm
        .wait_for_line(|l| l.starts_with("GUEST-INIT"), deadline)
        .unwrap_or_else(|e| fail(&vm, &hs, e));
    let (lease_at, lease) = vm
        .wait_for_line(|l| l.starts_with("LEASE ") || l == "DHCP-FAIL", deadline)
        .unwrap_or_else(|e| fail(&vm, &hs, e));
    assert!(
        // The static lease for the guest MAC, the gateway as router and DNS server, the VM
        // links' MTU (option 26, asked for with `udhcpc -O mtu`).
        lease.starts_with(
            "LEASE ip=192.168.127.2 router=192.168.127.1 dns=192.168.127.1 mtu=1500 mask=24 "
        ),
        "{lease}\n{}",
        hs.log()
    );
    let (ping_at, ping) = vm
        .wait_for_line(|l| l == "PING-OK" || l == "PING-FAIL", deadline)
        .unwrap_or_else(|e| fail(&vm, &hs, e));
    assert_eq!(ping, "PING-OK", "{}\n{}", vm.transcript(), hs.log());
    let status = vm.wait_exit(deadline).unwrap_or_else(|e| fail(&vm, &hs, e));
    assert!(status.success(), "QEMU: {status}\n{}", vm.transcript());
    eprintln!(
        "under TCG: init at {:.1}s, lease at {:.1}s, ping done at {:.1}s, powered off at {:.1}s ({status})",
        init_at.as_secs_f64(),
        lease_at.as_secs_f64(),
        ping_at.as_secs_f64(),
        vm.elapsed().as_secs_f64()
    );
}

/// A free TCP port on the host's loopback (IPv4 and IPv6), right now.
fn free_port() -> u16 {
    loop {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
            && std::net::TcpListener::bind(("::1", port)).is_ok()
        {
            return port;
        }
    }
}

/// An HTTP server on the host's 127.0.0.1 answering one fixed body, for the guest's fetch.
fn host_http(body: &'static str) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut c in listener.incoming().flatten() {
            use std::io::Write;
            let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf);
            let _ = write!(
                c,
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

/// One HTTP GET to 127.0.0.1:`port`; the body.
fn http_get(port: u16) -> Option<String> {
    use std::io::Write;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET / HTTP/1.0\r\nHost: vm\r\n\r\n").ok()?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).ok()?;
    answer.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())
}

/// The guest agent in a real VM: `host-switch guest --connect /dev/vportNp1` over a
/// virtio-serial port whose host end QEMU connects to host-switch's `-listen` socket. The VM
/// gets its lease, fetches from the host through 192.168.127.254, and the web server it then
/// starts is reached on the host's 127.0.0.1 by automatic port forwarding.
#[test]
fn vm_runs_the_guest_agent_over_virtio_serial() {
    let Some((image, _one_vm)) = qemu::setup() else {
        return;
    };
    let dir = ScratchDir::new("hs-vm-agent").unwrap();
    let socket = dir.path().join("hs.sock");
    let deadline = Instant::now() + Duration::from_secs(VM_TIMEOUT_SECS);
    let initramfs = qemu::agent::initramfs(
        &image,
        Path::new(env!("CARGO_BIN_EXE_host-switch")),
        dir.path(),
    )
    .unwrap_or_else(|e| panic!("building the agent's initramfs: {e}"));
    let mut hs = HostSwitch::start(
        &[
            "-listen",
            &format!("unix://{}", socket.display()),
            "--ssh-port",
            "-1",
        ],
        dir.path().join("host-switch.log"),
    );
    hs.await_path(&socket, deadline);
    let fetch = host_http("hello from the host");
    let (web, done) = (free_port(), free_port());
    let path = socket.to_str().unwrap();
    assert!(
        !path.contains(','),
        "QEMU option values cannot hold a comma"
    );
    let devices = [
        // reconnect=1: host-switch closes a connection whose request is slow to come (the
        // guest boots for seconds under TCG); QEMU connects again a second later and the
        // agent, seeing the port's end of file, attaches again.
        "-chardev".to_owned(),
        format!("socket,id=hs,path={path},reconnect=1"),
        "-device".to_owned(),
        "virtio-serial-pci".to_owned(),
        "-device".to_owned(),
        format!("virtserialport,chardev=hs,name={}", qemu::agent::PORT_NAME),
    ];
    let append = format!("hs.fetch={fetch} hs.web={web} hs.done={done}");
    let mut vm = Vm::boot_with(&image.kernel, &initramfs, 512, &append, &devices).unwrap();
    let fail = |vm: &Vm, hs: &HostSwitch, e: String| -> ! {
        panic!(
            "{e}\nconsole:\n{}\nhost-switch log:\n{}",
            vm.transcript(),
            hs.log()
        )
    };
    let (_, port) = vm
        .wait_for_line(|l| l.starts_with("PORT "), deadline)
        .unwrap_or_else(|e| fail(&vm, &hs, e));
    assert!(port.starts_with("PORT dev=/dev/vport"), "{port}");
    let (lease_at, lease) = vm
        .wait_for_line(|l| l.starts_with("LEASE "), deadline)
        .unwrap_or_else(|e| fail(&vm, &hs, e));
    assert!(
        lease.contains("inet 192.168.127.2/24"),
        "{lease}\n{}\n{}",
        vm.transcript(),
        hs.log()
    );
    let (_, resolv) = vm
        .wait_for_line(|l| l.starts_with("RESOLV "), deadline)
        .unwrap_or_else(|e| fail(&vm, &hs, e));
    assert_eq!(resolv, "RESOLV nameserver 192.168.127.1");
    let (_, fetched) = vm
        .wait_for_line(|l| l.starts_with("FETCH "), deadline)
        .unwrap_or_else(|e| fail(&vm, &hs, e));
    assert_eq!(fetched, "FETCH hello from the host", "{}", hs.log());
    let (serving_at, _) = vm
        .wait_for_line(|l| l == "SERVING", deadline)
        .unwrap_or_else(|e| fail(&vm, &hs, e));
    // The VM's web server, on the host's loopback, with nothing asked of anyone.
    let mut page = None;
    while page.is_none() && Instant::now() < deadline {
        page = http_get(web).filter(|b| b == "from the vm\n");
        if page.is_none() {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let reached_at = vm.elapsed();
    if page.is_none() {
        fail(
            &vm,
            &hs,
            "the VM's web server never reached the host".into(),
        );
    }
    // Tell the VM to finish, through its other forwarded port.
    let mut told = false;
    while !told && Instant::now() < deadline {
        told = std::net::TcpStream::connect(("127.0.0.1", done)).is_ok();
        if !told {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let status = vm.wait_exit(deadline).unwrap_or_else(|e| fail(&vm, &hs, e));
    assert!(status.success(), "QEMU: {status}\n{}", vm.transcript());
    eprintln!(
        "under TCG: lease at {:.1}s, serving at {:.1}s, reached from the host at {:.1}s",
        lease_at.as_secs_f64(),
        serving_at.as_secs_f64(),
        reached_at.as_secs_f64()
    );
}
