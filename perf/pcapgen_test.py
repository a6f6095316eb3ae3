#!/usr/bin/env python3
"""Self-checks of pcapgen.py (stdlib unittest): python3 perf/pcapgen_test.py"""

import ipaddress
import os
import struct
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pcapgen  # noqa: E402


def csum_ok(data: bytes) -> bool:
    if len(data) % 2:
        data += b"\x00"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s == 0xFFFF


class PcapgenTest(unittest.TestCase):
    def test_ipv4_frame(self):
        for size in pcapgen.FIXED_SIZES:
            f = pcapgen.build_frame(size, flow=3, sport=10003)
            self.assertEqual(len(f), size)
            self.assertEqual(f[0:6], bytes.fromhex("020000001001"))
            self.assertEqual(f[6:12], bytes.fromhex("020000aa0010"))
            self.assertEqual(f[12:14], b"\x08\x00")
            ip = f[14:34]
            self.assertEqual(ip[0], 0x45)
            self.assertEqual(struct.unpack("!H", ip[2:4])[0], size - 14)
            self.assertEqual(struct.unpack("!H", ip[6:8])[0], 0x4000)  # DF
            self.assertEqual(ip[8], 64)
            self.assertEqual(ip[9], 17)
            self.assertTrue(csum_ok(ip))
            self.assertEqual(ip[12:16], ipaddress.IPv4Address("10.1.0.10").packed)
            self.assertEqual(ip[16:20], ipaddress.IPv4Address("10.2.0.20").packed)
            udp = f[34:]
            sport, dport, ulen, _ = struct.unpack("!HHHH", udp[:8])
            self.assertEqual((sport, dport, ulen), (10003, 8080, len(udp)))
            pseudo = ip[12:20] + struct.pack("!xBH", 17, len(udp))
            self.assertTrue(csum_ok(pseudo + udp))

    def test_ipv6_frame(self):
        f = pcapgen.build_frame(256, ipv6=True)
        self.assertEqual(len(f), 256)
        self.assertEqual(f[12:14], b"\x86\xdd")
        ip = f[14:54]
        self.assertEqual(ip[0] >> 4, 6)
        self.assertEqual(ip[6], 17)
        self.assertEqual(ip[7], 64)
        self.assertEqual(ip[8:24], ipaddress.IPv6Address("fd00:10:1::10").packed)
        self.assertEqual(ip[24:40], ipaddress.IPv6Address("fd00:10:2::20").packed)
        udp = f[54:]
        pseudo = ip[8:40] + struct.pack("!IxxxB", len(udp), 17)
        self.assertTrue(csum_ok(pseudo + udp))

    def test_min_sizes(self):
        self.assertEqual(len(pcapgen.build_frame(42)), 42)
        self.assertEqual(len(pcapgen.build_frame(62, ipv6=True)), 62)
        with self.assertRaises(ValueError):
            pcapgen.build_frame(41)
        with self.assertRaises(ValueError):
            pcapgen.build_frame(61, ipv6=True)

    def test_imix(self):
        sizes = pcapgen.imix_sizes()
        self.assertEqual(len(sizes), 48)
        self.assertEqual(sizes.count(64), 28)
        self.assertEqual(sizes.count(570), 16)
        self.assertEqual(sizes.count(1400), 4)
        self.assertEqual(pcapgen.imix_sizes(1518).count(1518), 4)

    def test_flows_and_pcap_roundtrip(self):
        spec = pcapgen.TrafficSpec(sizes=[64], flows=5, count=12, src_hosts=2)
        frames = pcapgen.build_frames(spec)
        self.assertEqual(len(frames), 12)
        ports = [struct.unpack("!H", fr[34:36])[0] for fr in frames]
        self.assertEqual(ports[:6], [10000, 10001, 10002, 10003, 10004, 10000])
        srcs = {fr[26:30] for fr in frames}
        self.assertEqual(srcs, {bytes([10, 1, 0, 10]), bytes([10, 1, 0, 11])})
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "t.pcap")
            self.assertEqual(pcapgen.write_pcap(p, frames), 12)
            self.assertEqual(pcapgen.read_pcap(p), frames)
            with open(p, "rb") as fh:
                magic, major, minor, _, _, snap, link = struct.unpack("<IHHiIII", fh.read(24))
            self.assertEqual((magic, major, minor, link), (0xA1B2C3D4, 2, 4, 1))

    def test_default_count_is_lcm(self):
        spec = pcapgen.TrafficSpec(sizes=pcapgen.imix_sizes(), flows=64)
        self.assertEqual(spec.packet_count(), 192)

    def test_cli(self):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "c.pcap")
            self.assertEqual(pcapgen.main(["-o", p, "-s", "1420", "-f", "3", "--ipv6", "-q"]), 0)
            fr = pcapgen.read_pcap(p)
            self.assertEqual([len(x) for x in fr], [1420] * 3)


if __name__ == "__main__":
    unittest.main()
