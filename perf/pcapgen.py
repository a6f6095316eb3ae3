#!/usr/bin/env python3
"""pcapgen: pcap files of the reference mesh's workload traffic (python3 stdlib only).

The default packet is what node-a's local port receives from the `sleep` workload talking
UDP to `httpbin-1` (see shared/scenario.md):

    Ethernet  dst 02:00:00:00:10:01 (node-a local MAC)  src 02:00:00:aa:00:10 (workload)
    IPv4      10.1.0.10 -> 10.2.0.20, DF, TTL 64, header checksum   (--ipv6: fd00:10:1::10 ->
              fd00:10:2::20, hop limit 64)
    UDP       sport 10000+flow -> dport 8080, checksum
    payload   deterministic bytes: 4-byte flow id, 4-byte packet index, then a byte ramp

Frame size: the length of the Ethernet frame WITHOUT the 4-byte FCS, i.e. exactly the bytes
written to the pcap record and handed to the DPDK port (rte_pktmbuf_pkt_len). A "64 B" frame
here is 14 Ethernet + 20 IPv4 + 8 UDP + 22 payload bytes; on a real wire it would be 68 B with
FCS. Smallest sizes: 42 (IPv4, empty payload), 62 (IPv6). Frames above 1514 B carry an IP
packet above the usual 1500 B MTU.

Flows: flow f uses UDP source port --sport + f (wrapping inside 1024..65535); with
--src-hosts H the source address also cycles over H consecutive addresses starting at the
source (flow f uses host f % H). Note that an appliance may drop sources that are not
configured workloads (only 10.1.0.10 / fd00:10:1::10 and .11 exist in the scenario).

Packets are written round-robin over the flows: packet i belongs to flow i % flows.

IMIX (--imix): the CSIT IMIX pattern of 48 packets, 28 x 64 B, 16 x 570 B, 4 x 1518 B,
repeated; the packet sizes are interleaved (CSIT order: 7x64, 4x570, 1x1518, four times),
and the 1518 B size is capped at --imix-max (default 1400) because 1518 B plus the ESP/UDP/
Geneve overhead exceeds the fabric MTU.

Importable: build_frame(), build_frames(), imix_sizes(), write_pcap(), read_pcap().
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import struct
import sys
from dataclasses import dataclass
from typing import Iterable, List, Optional, Sequence

ETH_HDR = 14
IPV4_HDR = 20
IPV6_HDR = 40
UDP_HDR = 8
PAYLOAD_TAG = 8  # flow id + packet index, when room allows

DEFAULT_DST_MAC = "02:00:00:00:10:01"  # node-a local MAC
DEFAULT_SRC_MAC = "02:00:00:aa:00:10"  # a workload MAC
DEFAULT_SRC4 = "10.1.0.10"  # sleep
DEFAULT_DST4 = "10.2.0.20"  # httpbin-1
DEFAULT_SRC6 = "fd00:10:1::10"
DEFAULT_DST6 = "fd00:10:2::20"
DEFAULT_SPORT = 10000
DEFAULT_DPORT = 8080
FIXED_SIZES = (64, 256, 512, 1024, 1420, 1518)

IMIX_SMALL, IMIX_MEDIUM, IMIX_LARGE = 64, 570, 1518
IMIX_DEFAULT_MAX = 1400

PCAP_MAGIC = 0xA1B2C3D4
LINKTYPE_ETHERNET = 1


def mac_bytes(mac: str) -> bytes:
    parts = mac.split(":")
    if len(parts) != 6:
        raise ValueError(f"bad MAC address {mac!r}")
    return bytes(int(p, 16) for p in parts)


def inet_checksum(data: bytes) -> int:
    """RFC 1071 one's-complement sum, returned complemented (ready to store)."""
    if len(data) % 2:
        data += b"\x00"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def min_frame_size(ipv6: bool = False) -> int:
    return ETH_HDR + (IPV6_HDR if ipv6 else IPV4_HDR) + UDP_HDR


def _payload(n: int, flow: int, index: int) -> bytes:
    head = struct.pack("!II", flow & 0xFFFFFFFF, index & 0xFFFFFFFF)
    if n <= len(head):
        return head[:n]
    ramp = bytes((i & 0xFF) for i in range(n - len(head)))
    return head + ramp


def build_frame(
    size: int,
    *,
    ipv6: bool = False,
    src_mac: str = DEFAULT_SRC_MAC,
    dst_mac: str = DEFAULT_DST_MAC,
    src: Optional[str] = None,
    dst: Optional[str] = None,
    sport: int = DEFAULT_SPORT,
    dport: int = DEFAULT_DPORT,
    ttl: int = 64,
    ip_id: int = 0,
    flow: int = 0,
    index: int = 0,
    payload: Optional[bytes] = None,
) -> bytes:
    """One Ethernet/IP/UDP frame of exactly `size` bytes (Ethernet frame without FCS).

    `payload`, if given, is padded with zeros or truncated to fit `size`.
    """
    src = src or (DEFAULT_SRC6 if ipv6 else DEFAULT_SRC4)
    dst = dst or (DEFAULT_DST6 if ipv6 else DEFAULT_DST4)
    lo = min_frame_size(ipv6)
    if size < lo:
        raise ValueError(f"frame size {size} below the minimum {lo} for {'IPv6' if ipv6 else 'IPv4'}/UDP")
    if size > 65535 - 1:
        raise ValueError(f"frame size {size} too large")
    n = size - lo
    if payload is None:
        body = _payload(n, flow, index)
    else:
        body = (payload + bytes(max(0, n - len(payload))))[:n]
    udp_len = UDP_HDR + n
    sport &= 0xFFFF
    dport &= 0xFFFF

    if ipv6:
        s = ipaddress.IPv6Address(src).packed
        d = ipaddress.IPv6Address(dst).packed
        pseudo = s + d + struct.pack("!IxxxB", udp_len, 17)
        ethertype = 0x86DD
    else:
        s = ipaddress.IPv4Address(src).packed
        d = ipaddress.IPv4Address(dst).packed
        pseudo = s + d + struct.pack("!xBH", 17, udp_len)
        ethertype = 0x0800

    udp_nock = struct.pack("!HHHH", sport, dport, udp_len, 0) + body
    ck = inet_checksum(pseudo + udp_nock)
    if ck == 0:
        ck = 0xFFFF  # RFC 768: zero means "no checksum"
    udp = struct.pack("!HHHH", sport, dport, udp_len, ck) + body

    if ipv6:
        # version 6, traffic class 0, flow label 0; next header UDP
        ip = struct.pack("!IHBB", 6 << 28, udp_len, 17, ttl) + s + d
    else:
        total = IPV4_HDR + udp_len
        hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, ip_id & 0xFFFF, 0x4000, ttl, 17, 0, s, d)
        ip = hdr[:10] + struct.pack("!H", inet_checksum(hdr)) + hdr[12:]

    eth = mac_bytes(dst_mac) + mac_bytes(src_mac) + struct.pack("!H", ethertype)
    frame = eth + ip + udp
    assert len(frame) == size, (len(frame), size)
    return frame


def imix_sizes(imix_max: int = IMIX_DEFAULT_MAX) -> List[int]:
    """The 48-packet CSIT IMIX cycle (28x64, 16x570, 4x1518), large size capped at imix_max."""
    large = min(IMIX_LARGE, imix_max)
    medium = min(IMIX_MEDIUM, imix_max)
    block = [IMIX_SMALL] * 7 + [medium] * 4 + [large]
    return block * 4


def flow_params(flow: int, *, ipv6: bool, src: Optional[str], sport: int, src_hosts: int) -> tuple:
    """(source address, UDP source port) of flow number `flow`."""
    base = ipaddress.ip_address(src or (DEFAULT_SRC6 if ipv6 else DEFAULT_SRC4))
    host = base + (flow % max(1, src_hosts))
    span = 65536 - 1024
    port = 1024 + ((sport - 1024 + flow) % span) if sport >= 1024 else (sport + flow) & 0xFFFF
    return str(host), port


@dataclass
class TrafficSpec:
    """What build_frames() generates. sizes: one size, or a cycle of sizes (IMIX)."""

    sizes: Sequence[int] = (64,)
    flows: int = 1
    count: Optional[int] = None
    ipv6: bool = False
    src_mac: str = DEFAULT_SRC_MAC
    dst_mac: str = DEFAULT_DST_MAC
    src: Optional[str] = None
    dst: Optional[str] = None
    sport: int = DEFAULT_SPORT
    dport: int = DEFAULT_DPORT
    src_hosts: int = 1
    ttl: int = 64

    def packet_count(self) -> int:
        if self.count is not None:
            return self.count
        # Default: every flow at least once and whole size cycles (lcm of both).
        a, b = max(1, self.flows), max(1, len(self.sizes))
        return a * b // math.gcd(a, b)


def build_frames(spec: TrafficSpec) -> List[bytes]:
    """All frames of a spec, packet i of flow i % flows and size sizes[i % len(sizes)]."""
    if spec.flows < 1:
        raise ValueError("flows must be >= 1")
    if spec.src_hosts < 1:
        raise ValueError("src_hosts must be >= 1")
    out = []
    for i in range(spec.packet_count()):
        flow = i % spec.flows
        size = spec.sizes[i % len(spec.sizes)]
        src, sport = flow_params(flow, ipv6=spec.ipv6, src=spec.src, sport=spec.sport, src_hosts=spec.src_hosts)
        out.append(
            build_frame(
                size,
                ipv6=spec.ipv6,
                src_mac=spec.src_mac,
                dst_mac=spec.dst_mac,
                src=src,
                dst=spec.dst,
                sport=sport,
                dport=spec.dport,
                ttl=spec.ttl,
                ip_id=i,
                flow=flow,
                index=i,
            )
        )
    return out


def write_pcap(path: str, frames: Iterable[bytes], *, snaplen: int = 65535, ts_step_us: int = 1) -> int:
    """Write frames to a classic (microsecond) little-endian pcap; returns the count."""
    n = 0
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", PCAP_MAGIC, 2, 4, 0, 0, snaplen, LINKTYPE_ETHERNET))
        t = 0
        for fr in frames:
            sec, usec = divmod(t, 1_000_000)
            f.write(struct.pack("<IIII", sec, usec, len(fr), len(fr)))
            f.write(fr)
            t += ts_step_us
            n += 1
    return n


def read_pcap(path: str) -> List[bytes]:
    """Frames of a classic pcap (either byte order, micro/nanosecond); for tests."""
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    if magic in (0xA1B2C3D4, 0xA1B23C4D):
        e = "<"
    elif magic in (0xD4C3B2A1, 0x4D3CB2A1):
        e = ">"
    else:
        raise ValueError(f"{path}: not a pcap file")
    off = 24
    out = []
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(e + "IIII", data[off : off + 16])
        off += 16
        out.append(data[off : off + incl])
        off += incl
    return out


def generate(path: str, spec: TrafficSpec) -> int:
    return write_pcap(path, build_frames(spec))


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Write a pcap of mesh workload traffic (sleep 10.1.0.10 -> httpbin-1 10.2.0.20, UDP) "
        "as node-a's local port receives it. Frame size = Ethernet frame length without FCS.",
    )
    p.add_argument("-o", "--out", required=True, help="output pcap path")
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "-s", "--size", type=int, default=64,
        help="Ethernet frame length without FCS, bytes (e.g. 64, 256, 512, 1024, 1420, 1518; default 64)",
    )
    g.add_argument("--imix", action="store_true", help="CSIT IMIX cycle 28x64 / 16x570 / 4x1518 (capped)")
    p.add_argument("--imix-max", type=int, default=IMIX_DEFAULT_MAX,
                   help=f"cap for IMIX's large (and medium) size (default {IMIX_DEFAULT_MAX})")
    p.add_argument("-f", "--flows", type=int, default=1, help="number of flows (UDP source ports; default 1)")
    p.add_argument("--src-hosts", type=int, default=1,
                   help="cycle the source address over this many consecutive hosts (default 1)")
    p.add_argument("-c", "--count", type=int, default=None,
                   help="packets to write (default: lcm(flows, size-cycle length))")
    p.add_argument("-6", "--ipv6", action="store_true", help="IPv6 fd00:10:1::10 -> fd00:10:2::20")
    p.add_argument("--src-mac", default=DEFAULT_SRC_MAC)
    p.add_argument("--dst-mac", default=DEFAULT_DST_MAC)
    p.add_argument("--src", default=None, help="source address (default per family: sleep)")
    p.add_argument("--dst", default=None, help="destination address (default per family: httpbin-1)")
    p.add_argument("--sport", type=int, default=DEFAULT_SPORT, help="first UDP source port")
    p.add_argument("--dport", type=int, default=DEFAULT_DPORT, help="UDP destination port")
    p.add_argument("--ttl", type=int, default=64)
    p.add_argument("-q", "--quiet", action="store_true")
    return p.parse_args(argv)


def spec_from_args(a: argparse.Namespace) -> TrafficSpec:
    sizes = imix_sizes(a.imix_max) if a.imix else [a.size]
    return TrafficSpec(
        sizes=sizes, flows=a.flows, count=a.count, ipv6=a.ipv6, src_mac=a.src_mac, dst_mac=a.dst_mac,
        src=a.src, dst=a.dst, sport=a.sport, dport=a.dport, src_hosts=a.src_hosts, ttl=a.ttl,
    )


def main(argv: Optional[Sequence[str]] = None) -> int:
    a = parse_args(argv)
    spec = spec_from_args(a)
    lo = min_frame_size(a.ipv6)
    for s in set(spec.sizes):
        if s < lo:
            print(f"pcapgen: size {s} below the minimum {lo}", file=sys.stderr)
            return 2
        if s > ETH_HDR + 1500 and not a.quiet:
            print(f"pcapgen: note: {s} B frames carry a {s - ETH_HDR} B IP packet (> 1500 B MTU)", file=sys.stderr)
    if a.count is not None and a.count < 1:
        print("pcapgen: --count must be >= 1", file=sys.stderr)
        return 2
    n = generate(a.out, spec)
    if not a.quiet:
        total = sum(len(f) for f in read_pcap(a.out)) if n <= 100000 else 0
        desc = "IMIX" if a.imix else f"{a.size} B"
        print(f"pcapgen: wrote {n} frames ({desc}, {a.flows} flows, {'IPv6' if a.ipv6 else 'IPv4'}, "
              f"{total} frame bytes) to {a.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
