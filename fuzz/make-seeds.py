#!/usr/bin/env python3
"""Writes the fuzz seed corpora in fuzz/seeds/ from the real frames captured as test fixtures.

Every frame seeds `frame` and `ethernet`; each layer inside it seeds that layer's target
(ARP payloads, IPv4/IPv6 packets, ICMP messages, UDP datagrams and TCP segments, these two
after a byte that selects the address family for the pseudo-header). Beyond the per-layer
targets: the captured fragments seed `frag_v4` and `frag_v6` (as raw-packet records, in order,
reversed and with a duplicate), the DHCP clients' requests seed `dhcp_server`, crafted
DHCPv6 exchanges `dhcpv6_server`, the captured IGMP and MLD messages `snoop`, streams of real
frames behind each length prefix seed `framing`, real control API requests seed
`http_request`, and the guest's side of every capture, as a sequence of frames, seeds
`gateway`. Run it again after adding a fixture: `python3 fuzz/make-seeds.py`.
"""
import glob
import os
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEEDS = os.path.join(ROOT, "fuzz", "seeds")


def pcap_frames(path):
    data = open(path, "rb").read()
    magic = data[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    at = 24
    while at + 16 <= len(data):
        incl = struct.unpack(endian + "I", data[at + 8 : at + 12])[0]
        yield data[at + 16 : at + 16 + incl]
        at += 16 + incl


def ipv6_upper(packet):
    """The upper-layer protocol and payload of an IPv6 packet, walking extension headers."""
    nh, at = packet[6], 40
    for _ in range(8):
        if nh in (0, 43, 60) and at + 2 <= len(packet):
            nh, at = packet[at], at + (packet[at + 1] + 1) * 8
        elif nh == 44 and at + 8 <= len(packet):
            if struct.unpack(">H", packet[at + 2 : at + 4])[0] & 0xFFF8:
                return None, b""  # not the first fragment
            nh, at = packet[at], at + 8
        else:
            break
    return nh, packet[at:]


def layers(frame):
    """(target, bytes) pairs for each layer of one Ethernet frame."""
    yield "frame", frame
    yield "ethernet", frame
    if len(frame) < 14:
        return
    ethertype, payload = struct.unpack(">H", frame[12:14])[0], frame[14:]
    if ethertype == 0x0806:
        yield "arp", payload
    elif ethertype == 0x0800 and len(payload) >= 20:
        yield "ipv4", payload
        ihl = (payload[0] & 0x0F) * 4
        frag = struct.unpack(">H", payload[6:8])[0] & 0x1FFF
        total = struct.unpack(">H", payload[2:4])[0]
        upper = payload[ihl:total]
        if frag == 0:
            target = {1: "icmpv4", 2: "igmp", 6: "tcp", 17: "udp"}.get(payload[9], "other")
            # The transport targets take a family selector byte first (0: IPv4).
            yield target, (b"\x00" + upper if target in ("tcp", "udp") else upper)
    elif ethertype == 0x86DD and len(payload) >= 40:
        yield "ipv6", payload
        nh, upper = ipv6_upper(payload)
        if nh == 58 and upper and upper[0] in (130, 131, 132, 143):
            # The mld target takes the source and destination, then a byte (0: as captured).
            yield "mld", payload[8:40] + b"\x00" + upper
        elif nh == 58 and upper:
            yield ("ndp" if 133 <= upper[0] <= 137 else "icmpv6"), upper
        elif nh in (6, 17):
            yield {6: "tcp", 17: "udp"}[nh], b"\x01" + upper


def write(target, name, data):
    directory = os.path.join(SEEDS, target)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, name), "wb") as out:
        out.write(data)


def is_fragment(frame):
    """Whether an Ethernet frame holds an IPv4 fragment or an IPv6 packet with a fragment header."""
    if len(frame) < 54:
        return False
    ethertype, ip = struct.unpack(">H", frame[12:14])[0], frame[14:]
    if ethertype == 0x0800:
        return struct.unpack(">H", ip[6:8])[0] & 0x3FFF != 0
    if ethertype == 0x86DD:
        nh, at = ip[6], 40
        for _ in range(8):
            if nh == 44:
                return True
            if nh in (0, 43, 60) and at + 2 <= len(ip):
                nh, at = ip[at], at + (ip[at + 1] + 1) * 8
            else:
                return False
    return False


def frag_records(packets, order):
    """A frag_v4/frag_v6 input: default limits, then each packet as a raw-packet record."""
    out = b"\x00"
    for i in order:
        if i is None:
            out += b"\x03"  # the previous packet again
        else:
            out += b"\x01" + struct.pack("<H", len(packets[i])) + packets[i]
    return out


def frag_seeds(fixtures):
    count = 0
    for path in fixtures:
        name = os.path.splitext(os.path.basename(path))[0]
        frames = [f for f in pcap_frames(path) if is_fragment(f)]
        for target, ethertype in (("frag_v4", 0x0800), ("frag_v6", 0x86DD)):
            packets = [f[14:] for f in frames if struct.unpack(">H", f[12:14])[0] == ethertype]
            if not packets:
                continue
            n = len(packets)
            orders = {
                "in-order": list(range(n)),
                "reversed": list(reversed(range(n))),
                "duplicate": [0, None] + list(range(1, n)),
                "interleaved": [i for pair in zip(range(0, n, 2), range(1, n, 2)) for i in pair],
            }
            for label, order in orders.items():
                write(target, f"{name}-{label}", frag_records(packets, order))
                count += 1
    # Crafted records: three fragments of one datagram, then a clock step past the timeout.
    crafted = b"\x01" + b"".join(
        b"\x00" + bytes([1]) + struct.pack("<H", off) + bytes([more]) + struct.pack("<H", 16) + b"\xab"
        for off, more in ((0, 1), (2, 1), (4, 0))
    ) + b"\x02" + struct.pack("<H", 7000)
    for target in ("frag_v4", "frag_v6"):
        write(target, "crafted", crafted)
        count += 1
    return count


def udp_payload(frame):
    """The UDP payload of an Ethernet/IPv4 frame, or None."""
    if len(frame) < 42 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
        return None
    ihl = (frame[14] & 0x0F) * 4
    total = struct.unpack(">H", frame[16:18])[0]
    return frame[14 + ihl + 8 : 14 + total]


def dhcp_seeds():
    count = 0
    for path in sorted(glob.glob(os.path.join(ROOT, "dhcp", "src", "fixtures", "*.pcap"))):
        name = os.path.splitext(os.path.basename(path))[0]
        # Requests only (BOOTREQUEST, op 1): what a guest sends the server.
        requests = [p for p in map(udp_payload, pcap_frames(path)) if p and p[0] == 1]
        # A first byte of 0 picks the default offer bounds; 3, one offer and two per MAC.
        for i, payload in enumerate(requests):
            write("dhcp_server", f"{name}-{i}", b"\x00" + struct.pack("<H", len(payload)) + payload + b"\x00")
            count += 1
        # The whole exchange, a second between requests.
        whole = b"".join(struct.pack("<H", len(p)) + p + b"\x01" for p in requests)
        write("dhcp_server", f"{name}-all", b"\x00" + whole)
        write("dhcp_server", f"{name}-all-bounded", b"\x03" + whole)
        count += 2
    return count


def framing_seeds(fixtures):
    count = 0
    for path in fixtures:
        name = os.path.splitext(os.path.basename(path))[0]
        frames = list(pcap_frames(path))[:6]
        for selector, label in ((0, "u32be"), (1, "u16le"), (2, "u32be-jumbo"), (3, "u16le-9000")):
            stream = b""
            for f in frames:
                stream += struct.pack(">I" if selector % 2 == 0 else "<H", len(f)) + f
            write("framing", f"{name}-{label}", bytes([selector, len(frames) * 37 % 256]) + stream)
            count += 1
    return count


GATEWAY_MAC = bytes.fromhex("5a94efe40cdd")


def gateway_records(frames):
    """Frames as `gateway` records: unicast ones with op 1 (destination made the gateway's),
    broadcast and multicast ones as they are (op 0)."""
    out = b""
    for f in frames:
        op = 0 if f[0] & 1 else 1
        out += bytes([op]) + struct.pack("<H", len(f)) + f
    return out


def gateway_seeds(fixtures):
    """Each capture's frames from the guest (not from the gateway's MAC), in order, at MTU 1500
    with the default reassembly limits; the captured fragments also reversed, at MTU 576 with
    small reassembly limits, and left incomplete before a clock step past every timeout."""
    count = 0
    for path in fixtures:
        name = os.path.splitext(os.path.basename(path))[0]
        frames = [f for f in pcap_frames(path) if len(f) >= 14 and f[6:12] != GATEWAY_MAC][:16]
        if not frames:
            continue
        # Selector 2: MTU 1500, default limits.
        write("gateway", name, b"\x02" + gateway_records(frames))
        count += 1
        fragments = [f for f in frames if is_fragment(f)]
        if fragments:
            # Selector 4: MTU 576, small limits; reversed, then the first piece alone and a
            # 70-second step.
            seq = gateway_records(list(reversed(fragments)))
            seq += gateway_records(fragments[:1]) + b"\x02" + struct.pack("<H", 7000)
            write("gateway", f"{name}-small", b"\x04" + seq)
            count += 1
    return count


def snoop_seeds(fixtures):
    """The captured IGMP and MLD messages as `snoop` records from port 1 (op 0), then a clock
    step of 400 s (past the membership interval)."""
    count = 0
    for path in fixtures:
        name = os.path.splitext(os.path.basename(path))[0]
        if not name.startswith(("igmp", "mld", "ipv6_hopbyhop")):
            continue
        frames = list(pcap_frames(path))
        records = b"".join(b"\x00" + struct.pack("<H", len(f)) + f for f in frames)
        write("snoop", name, records + b"\x02" + struct.pack("<H", 4000))
        count += 1
    return count


def dhcpv6_seeds():
    """Crafted DHCPv6 exchanges (`dhcpv6_server` records: MAC byte, length, message, seconds):
    an Information-request, and a Solicit then a Request for the default guest's MAC."""
    def option(code, data):
        return struct.pack(">HH", code, len(data)) + data

    client = option(1, bytes.fromhex("000300015a94efe40cee"))
    server = option(2, bytes.fromhex("000300015a94efe40cdd"))
    oro = option(6, struct.pack(">HHH", 23, 24, 32))
    ia = option(3, struct.pack(">III", 1, 0, 0))
    messages = {
        "information-request": [bytes([11, 1, 2, 3]) + client + oro + option(8, b"\x00\x00")],
        "solicit-request": [
            bytes([1, 4, 5, 6]) + client + oro + ia,
            bytes([3, 7, 8, 9]) + client + server + oro + ia,
            bytes([5, 7, 8, 10]) + client + server + ia,
        ],
    }
    for name, msgs in messages.items():
        data = b"".join(b"\xee" + struct.pack("<H", len(m)) + m + b"\x01" for m in msgs)
        write("dhcpv6_server", name, data)
    return len(messages)


def curl_post(path, body):
    """A request as curl sends it with `-d BODY`."""
    return (
        b"POST " + path + b" HTTP/1.1\r\nHost: localhost\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n"
        + b"Content-Length: " + str(len(body)).encode() + b"\r\n"
        + b"Content-Type: application/x-www-form-urlencoded\r\n\r\n" + body
    )


HTTP_REQUESTS = {
    "expose": curl_post(
        b"/services/forwarder/expose",
        b'{"local":"127.0.0.1:8080","remote":"192.168.127.2:80","protocol":"tcp"}',
    ),
    "unexpose": curl_post(b"/services/forwarder/unexpose", b'{"local":"127.0.0.1:8080","protocol":"tcp"}'),
    "all": b"GET /services/forwarder/all HTTP/1.1\r\nHost: localhost\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n",
    "stats": b"GET /stats HTTP/1.1\r\nHost: localhost\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n",
    "leases": b"GET /services/dhcp/leases?x=1 HTTP/1.1\r\nHost: 192.168.127.1\r\nAccept: */*\r\n\r\n",
    # gvforwarder: http.NewRequest("POST", "/connect", nil) written with Request.Write, then
    # length-prefixed frames on the same connection (the first two bytes of one here).
    "connect": b"POST /connect HTTP/1.1\r\nHost: unix\r\nUser-Agent: Go-http-client/1.1\r\n"
    b"Content-Length: 0\r\n\r\n\x2a\x00",
}


def http_seeds():
    for name, request in HTTP_REQUESTS.items():
        for selector in (0, 1, 6):
            write("http_request", f"{name}-{selector}", bytes([selector]) + request)
    return len(HTTP_REQUESTS) * 3


def main():
    fixtures = sorted(glob.glob(os.path.join(ROOT, "*", "src", "**", "*.pcap"), recursive=True))
    count = 0
    for path in fixtures:
        name = os.path.splitext(os.path.basename(path))[0]
        for i, frame in enumerate(pcap_frames(path)):
            for target, data in layers(frame):
                if target == "other" or not data:
                    continue
                directory = os.path.join(SEEDS, target)
                os.makedirs(directory, exist_ok=True)
                with open(os.path.join(directory, f"{name}-{i}"), "wb") as out:
                    out.write(data)
                count += 1
    count += frag_seeds(fixtures)
    count += dhcp_seeds()
    count += framing_seeds(fixtures)
    count += http_seeds()
    count += gateway_seeds(fixtures)
    count += snoop_seeds(fixtures)
    count += dhcpv6_seeds()
    print(f"{count} seeds from {len(fixtures)} fixtures", file=sys.stderr)


if __name__ == "__main__":
    main()
