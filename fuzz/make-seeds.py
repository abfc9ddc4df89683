#!/usr/bin/env python3
"""Writes the fuzz seed corpora in fuzz/seeds/ from the real frames captured as test fixtures.

Every frame seeds `frame` and `ethernet`; each layer inside it seeds that layer's target
(ARP payloads, IPv4/IPv6 packets, ICMP messages, UDP datagrams and TCP segments, these two
after a byte that selects the address family for the pseudo-header). Run it again
after adding a fixture: `python3 fuzz/make-seeds.py`.
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
            target = {1: "icmpv4", 6: "tcp", 17: "udp"}.get(payload[9], "other")
            # The transport targets take a family selector byte first (0: IPv4).
            yield target, (b"\x00" + upper if target in ("tcp", "udp") else upper)
    elif ethertype == 0x86DD and len(payload) >= 40:
        yield "ipv6", payload
        nh, upper = ipv6_upper(payload)
        if nh == 58 and upper:
            yield ("ndp" if 133 <= upper[0] <= 137 else "icmpv6"), upper
        elif nh in (6, 17):
            yield {6: "tcp", 17: "udp"}[nh], b"\x01" + upper


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
    print(f"{count} seeds from {len(fixtures)} fixtures", file=sys.stderr)


if __name__ == "__main__":
    main()
