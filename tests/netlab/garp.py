"""Gratuitous ARP over a raw AF_PACKET socket (what Talos does when it takes the VIP).

A small sender of our own instead of ``arping -U`` keeps the install step free of an extra apt
package. It must run inside the node's namespace (see ``nsenter.call_in_netns``).
"""

from __future__ import annotations

import socket
import struct

ETH_P_ARP = 0x0806
BROADCAST = b"\xff" * 6


def mac_bytes(mac: str) -> bytes:
    return bytes(int(part, 16) for part in mac.split(":"))


def garp_frame(mac: str, ip: str) -> bytes:
    """An ARP request for ``ip`` from ``ip`` itself, broadcast (the arping -U form)."""
    src = mac_bytes(mac)
    addr = socket.inet_aton(ip)
    eth = BROADCAST + src + struct.pack("!H", ETH_P_ARP)
    # htype Ethernet, ptype IPv4, hlen 6, plen 4, op 1 (request); sender == target == the VIP
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + src + addr + b"\x00" * 6 + addr
    return (eth + arp).ljust(60, b"\x00")  # minimum Ethernet frame without FCS


def send_garp(ifname: str, mac: str, ip: str, count: int = 1) -> None:
    """Send ``count`` gratuitous ARPs for ``ip`` out of ``ifname`` (in the current thread's netns)."""
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP)) as sock:
        sock.bind((ifname, 0))
        frame = garp_frame(mac, ip)
        for _ in range(count):
            sock.send(frame)
