//! A real VM as guest: QEMU (TCG) boots Debian's kernel and a busybox initramfs whose only NIC
//! is `-netdev stream` to a unix socket. See `qemu/mod.rs` for what it needs and when it skips.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod qemu;

use std::io::{self, Read};
use std::os::unix::net::{UnixListener, UnixStream};
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
