#!/usr/bin/env python3
"""End-to-end: node-a and node-b of the reference mesh, back to back on pcap files.

    two_node_loop.py VANISHD SOURCE_ROOT [--fabric v4|v6|both] [--keep] [-v]

For each fabric family (examples/node-*.textproto, then examples/node-*-v6fabric.textproto):
  1. node-b runs with its workloads' replies on its local port (httpbin-1 and postgres answer
     sleep) and writes them, encrypted, to its fabric pcap;
  2. node-a runs with sleep's requests on its local port (scenario cases 3 and 7, IPv4 and IPv6
     overlay, plus case 6: a packet that claims httpbin-2 as its source) and node-b's fabric
     output on its fabric port;
  3. node-b runs again with node-a's fabric output on its fabric port.
Asserted: node-b's local output is exactly node-a's accepted input packets, byte for byte and in
order, except TTL/hop limit - 1 (and the IPv4 checksum) and the Ethernet header (dst = the
workload's static MAC, src = node-b's local MAC); the same for the replies at node-a; the
fabric frames have the expected outer headers (MACs, addresses, UDP 4500, SPI, sequence);
the counters agree (encrypted == decrypted == delivered per direction) and the only drops are
the expected ones (case 6 at node-a: unknown_source).
Case 6 at node-b: a lying node-a (a config copy in which httpbin-2 10.2.0.21 is declared on
node-a) sends packets with httpbin-2 as source; the honest node-b decrypts them and drops them
as identity_spoof, and still delivers the honest packet of the same SA.

Policy and the service (cases 1, 2, 4, 5), per fabric family: node-a gets 40 new connections
from sleep to the httpbin VIP (IPv4 and IPv6), and the denied cases (curl-untrusted -> VIP:80,
sleep -> postgres:22, curl-untrusted -> postgres:5432); node-b delivers exactly the VIP
connections, each DNATed to httpbin-1 or httpbin-2:8080 with valid checksums (both endpoints
used), and drops every denied one as authz_denied. (Replies translated back from the VIP need
both nodes alive at once: tests/unit/dataplane/mesh_test.cpp and tests/e2e/netns_mesh.py.)
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import struct
import sys
import tempfile
from dataclasses import dataclass
from typing import List, Optional

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import (  # noqa: E402
    MAX_INNER_BOTH_FABRICS, NODE, SA, W, Checker, Env, config_variant, csum, edit_block, eth, forwarded,
    icmp_echo, keep_or_remove_workdir, mac_bytes, pad_to, tcp, udp,
)


@dataclass
class Pkt:
    frame: bytes            # as the sending node's local port receives it
    dst: Optional[str]      # destination workload name; None if the sending node must drop it
    label: str


def requests(spoof: bool = True) -> List[Pkt]:
    """sleep's traffic into node-a's local port: cases 3 and 7 (IPv4 and IPv6 overlay, interleaved)
    and, with spoof, case 6 (a source that node-a does not host)."""
    sleep, pg, hb1, hb2 = W["sleep"], W["postgres"], W["httpbin-1"], W["httpbin-2"]
    a_mac = NODE["node-a"]["local_mac"]
    fams = []
    for v6 in (False, True):
        s, ipid = sleep.addr(v6), 100 if not v6 else 0
        ip_hdr = 40 if v6 else 20
        big = MAX_INNER_BOTH_FABRICS
        seq = []
        # case 3: sleep -> postgres:5432 TCP (handshake, small and full-size data)
        seq.append(Pkt(tcp(s, pg.addr(v6), 40001, 5432, "S", 1000, ip_id=ipid + 1), "postgres", "case 3 SYN"))
        seq.append(Pkt(tcp(s, pg.addr(v6), 40001, 5432, "A", 1001, 5001, ip_id=ipid + 2), "postgres", "case 3 ACK"))
        seq.append(Pkt(tcp(s, pg.addr(v6), 40001, 5432, "PA", 1001, 5001, pad_to(100), ip_id=ipid + 3),
                       "postgres", "case 3 data"))
        seq.append(Pkt(tcp(s, pg.addr(v6), 40001, 5432, "A", 1101, 5001, pad_to(big - ip_hdr - 20), ip_id=ipid + 4),
                       "postgres", f"case 3 data {big} B"))
        # case 7: UDP and ICMP echo sleep -> httpbin-1
        seq.append(Pkt(udp(s, hb1.addr(v6), 20001, 8080, b"hello httpbin " + pad_to(50), ip_id=ipid + 5),
                       "httpbin-1", "case 7 UDP"))
        seq.append(Pkt(udp(s, hb1.addr(v6), 20001, 8080, pad_to(big - ip_hdr - 8), ip_id=ipid + 6, ttl=2),
                       "httpbin-1", f"case 7 UDP {big} B, TTL 2"))
        seq.append(Pkt(udp(s, hb1.addr(v6), 20002, 53, b"", ip_id=ipid + 7), "httpbin-1", "case 7 UDP empty"))
        for i in (1, 2):
            seq.append(Pkt(icmp_echo(s, hb1.addr(v6), 0x4242, i, pad_to(56), ip_id=ipid + 7 + i),
                           "httpbin-1", f"case 7 echo request {i}"))
        if spoof:
            # case 6: claims httpbin-2 (a node-b workload) as its source
            seq.append(Pkt(udp(hb2.addr(v6), hb1.addr(v6), 30001, 8080, pad_to(40)), None, "case 6 spoof"))
        # seq holds IP packets: add the Ethernet header of the sending workload
        fams.append([Pkt(eth(a_mac, sleep.mac if p.dst else hb2.mac, p.frame), p.dst, p.label) for p in seq])
    return _interleave(fams)


def replies() -> List[Pkt]:
    """The answers of postgres and httpbin-1 into node-b's local port (IPv4 and IPv6 overlay)."""
    sleep, pg, hb1 = W["sleep"], W["postgres"], W["httpbin-1"]
    b_mac = NODE["node-b"]["local_mac"]
    fams = []
    for v6 in (False, True):
        s = sleep.addr(v6)
        big = MAX_INNER_BOTH_FABRICS
        ip_hdr = 40 if v6 else 20
        seq = [
            Pkt(eth(b_mac, pg.mac, tcp(pg.addr(v6), s, 5432, 40001, "SA", 5000, 1001, ip_id=7)), "sleep",
                "case 3 SYN-ACK"),
            Pkt(eth(b_mac, pg.mac, tcp(pg.addr(v6), s, 5432, 40001, "PA", 5001, 1101, pad_to(200), ip_id=8)),
                "sleep", "case 3 reply data"),
            Pkt(eth(b_mac, hb1.mac, udp(hb1.addr(v6), s, 8080, 20001, pad_to(big - ip_hdr - 8), ip_id=9)),
                "sleep", f"case 7 UDP reply {big} B"),
        ]
        for i in (1, 2):
            seq.append(Pkt(eth(b_mac, hb1.mac, icmp_echo(hb1.addr(v6), s, 0x4242, i, pad_to(56), reply=True,
                                                         ip_id=10 + i)), "sleep", f"case 7 echo reply {i}"))
        fams.append(seq)
    return _interleave(fams)


def _interleave(lists):
    out = []
    for i in range(max(len(x) for x in lists)):
        out += [x[i] for x in lists if i < len(x)]
    return out


def expected_delivery(pkts: List[Pkt], node: str) -> List[bytes]:
    """What `node`'s local port sends for the packets another node accepted."""
    return [forwarded(p.frame, W[p.dst].mac, NODE[node]["local_mac"]) for p in pkts if p.dst]


# --------------------------------------------------------------------------------------------

def check_fabric_frames(c: Checker, frames: List[bytes], src: str, dst: str, v6: bool, what: str,
                        spi: Optional[int] = None) -> None:
    """Outer headers of fabric frames from node src to node dst (one SA, in sequence order)."""
    s_addr, d_addr = (NODE[src]["fabric6"], NODE[dst]["fabric6"]) if v6 else (NODE[src]["fabric4"],
                                                                             NODE[dst]["fabric4"])
    spi = SA[(src, dst)][0] if spi is None else spi
    bad = []
    sports = set()
    for i, f in enumerate(frames):
        problems = []
        if f[0:6] != mac_bytes(NODE[dst]["fabric_mac"]) or f[6:12] != mac_bytes(NODE[src]["fabric_mac"]):
            problems.append("MACs")
        if v6:
            ok = f[12:14] == b"\x86\xdd" and f[20] == 17 and \
                f[22:38] == ipaddress.ip_address(s_addr).packed and f[38:54] == ipaddress.ip_address(d_addr).packed
            l4 = 54
            if struct.unpack("!H", f[18:20])[0] != len(f) - 54:
                problems.append("IPv6 payload length")
            pseudo = f[22:54] + struct.pack("!IxxxB", len(f) - 54, 17)
            if csum(pseudo + f[54:]) != 0:
                problems.append("outer UDP checksum (mandatory over IPv6)")
        else:
            ok = f[12:14] == b"\x08\x00" and f[23] == 17 and \
                f[26:30] == ipaddress.ip_address(s_addr).packed and f[30:34] == ipaddress.ip_address(d_addr).packed
            l4 = 34
            if csum(f[14:34]) != 0:
                problems.append("IPv4 header checksum")
            if struct.unpack("!H", f[16:18])[0] != len(f) - 14:
                problems.append("IPv4 total length")
            if f[20] & 0x40 == 0:
                problems.append("DF not set")
        if not ok:
            problems.append("outer IP header")
        sport, dport, ulen = struct.unpack("!HHH", f[l4:l4 + 6])
        sports.add(sport)
        if dport != 4500 or ulen != len(f) - l4:
            problems.append(f"outer UDP (dport {dport}, len {ulen})")
        got_spi, seq = struct.unpack("!II", f[l4 + 8:l4 + 16])
        if got_spi != spi or seq != i + 1:
            problems.append(f"ESP spi 0x{got_spi:x} seq {seq}, want 0x{spi:x} seq {i + 1}")
        if len(f) - 14 > 1500:
            problems.append(f"outer IP packet {len(f) - 14} B > MTU 1500")
        if problems:
            bad.append(f"#{i}: " + ", ".join(problems))
    c.check(not bad and len(sports) <= 1, f"{what}: {len(frames)} fabric frames {src}->{dst}: outer "
            f"{'IPv6' if v6 else 'IPv4'} {s_addr}->{d_addr}, UDP 4500, SPI 0x{spi:08x}, seq 1..{len(frames)}",
            "; ".join(bad[:5]) + (f"; several outer source ports {sorted(sports)}" if len(sports) > 1 else ""))


def check_counters(c: Checker, run, want: dict, drops: dict, what: str) -> None:
    got = {k: run.counter(k) for k in want}
    c.check(got == want and run.drops() == drops, f"{what} counters {want} drops {drops or 'none'}",
            f"got {got} drops {run.drops()}")


def lying_mesh(text: str) -> str:
    """mesh.textproto as a lying node-a would have it: httpbin-2 (10.2.0.21) hosted on node-a."""
    def set_prefixes(prefixes):
        def fn(block):
            block = re.sub(r"^\s*workload_prefixes:.*\n", "", block, flags=re.M)
            add = "".join(f'  workload_prefixes: "{p}"\n' for p in prefixes)
            return block[: block.rindex("}")] + add + "}"
        return fn

    hb2 = W["httpbin-2"]
    text = edit_block(text, "workloads", "httpbin-2", lambda b: b.replace('node: "node-b"', 'node: "node-a"'))
    text = edit_block(text, "nodes", "node-a", set_prefixes(
        ["10.1.0.0/24", "fd00:10:1::/64", f"{hb2.v4}/32", f"{hb2.v6}/128"]))
    # Node prefixes must not overlap: node-b keeps exactly its other workloads.
    return edit_block(text, "nodes", "node-b", set_prefixes(
        [f"{W[n].addr(v6)}/{128 if v6 else 32}" for v6 in (False, True) for n in ("httpbin-1", "postgres")]))


def spoof_traffic() -> List[Pkt]:
    """What the lying node-a's local port receives: httpbin-2 talking (it accepts them), and one
    honest packet of sleep on the same SA."""
    hb1, hb2, pg, sleep = W["httpbin-1"], W["httpbin-2"], W["postgres"], W["sleep"]
    a_mac = NODE["node-a"]["local_mac"]
    return [
        Pkt(eth(a_mac, hb2.mac, udp(hb2.v4, hb1.v4, 30001, 8080, pad_to(40))), "httpbin-1", "spoof UDP v4"),
        Pkt(eth(a_mac, sleep.mac, udp(sleep.v4, hb1.v4, 20001, 8080, pad_to(40))), "httpbin-1", "honest UDP v4"),
        Pkt(eth(a_mac, hb2.mac, tcp(hb2.v6, pg.v6, 40002, 5432, "S", 1)), "postgres", "spoof TCP v6"),
        Pkt(eth(a_mac, hb2.mac, icmp_echo(hb2.v4, hb1.v4, 7, 1, pad_to(8))), "httpbin-1", "spoof echo v4"),
    ]


def run_fabric(env: Env, c: Checker, v6: bool) -> None:
    fam = "IPv6 fabric" if v6 else "IPv4 fabric"
    suffix = "-v6fabric" if v6 else ""
    cfg = {n: env.example(f"{n}{suffix}.textproto") for n in ("node-a", "node-b")}
    req, rep = requests(), replies()
    ok_req = [p for p in req if p.dst]
    n_spoof = len(req) - len(ok_req)

    btx = env.run_vanishd(f"b-tx{suffix}", cfg["node-b"], [[p.frame for p in rep]], [[]])
    a = env.run_vanishd(f"a{suffix}", cfg["node-a"], [[p.frame for p in req]], [btx.fabric_out[0]])
    brx = env.run_vanishd(f"b-rx{suffix}", cfg["node-b"], [[]], [a.fabric_out[0]])

    print(f"# {fam}: node-a -> node-b (cases 3, 7; IPv4 + IPv6 overlay)")
    c.frames(brx.local_out[0], expected_delivery(req, "node-b"), f"{fam}: node-b delivers node-a's packets")
    check_fabric_frames(c, a.fabric_out[0], "node-a", "node-b", v6, fam)
    check_counters(c, a, {"local_rx": len(req), "encrypted": len(ok_req), "fabric_tx": len(ok_req)},
                   {"unknown_source": n_spoof}, f"{fam}: node-a (case 6: not a local workload)")
    check_counters(c, brx, {"fabric_rx": len(ok_req), "decrypted": len(ok_req), "delivered": len(ok_req),
                            "local_tx": len(ok_req)}, {}, f"{fam}: node-b")

    print(f"# {fam}: node-b -> node-a (replies)")
    c.frames(a.local_out[0], expected_delivery(rep, "node-a"), f"{fam}: node-a delivers the replies")
    check_fabric_frames(c, btx.fabric_out[0], "node-b", "node-a", v6, fam)
    check_counters(c, btx, {"local_rx": len(rep), "encrypted": len(rep), "fabric_tx": len(rep)}, {},
                   f"{fam}: node-b (replies)")
    check_counters(c, a, {"fabric_rx": len(rep), "decrypted": len(rep), "delivered": len(rep),
                          "local_tx": len(rep)}, {"unknown_source": n_spoof}, f"{fam}: node-a (replies)")

    print(f"# {fam}: case 6 at node-b: a lying node-a claims httpbin-2")
    lie_cfg = config_variant(env.root, os.path.join(env.workdir, f"lying-node-a{suffix}"), lying_mesh, suffix)
    lie = spoof_traffic()
    honest = [p for p in lie if p.label.startswith("honest")]
    la = env.run_vanishd(f"lying-a{suffix}", lie_cfg["node-a"], [[p.frame for p in lie]], [[]])
    check_counters(c, la, {"encrypted": len(lie)}, {}, f"{fam}: the lying node-a encrypts every packet")
    bs = env.run_vanishd(f"b-rx-spoof{suffix}", cfg["node-b"], [[]], [la.fabric_out[0]])
    check_counters(c, bs, {"decrypted": len(lie), "delivered": len(honest)},
                   {"identity_spoof": len(lie) - len(honest)},
                   f"{fam}: node-b drops the claimed sources (identity_spoof)")
    c.frames(bs.local_out[0], expected_delivery(honest, "node-b"), f"{fam}: node-b delivers only the honest packet")


def run_policy(env: Env, c: Checker, v6: bool) -> None:
    fam = "IPv6 fabric" if v6 else "IPv4 fabric"
    suffix = "-v6fabric" if v6 else ""
    cfg = {n: env.example(f"{n}{suffix}.textproto") for n in ("node-a", "node-b")}
    sleep, curl, pg = W["sleep"], W["curl-untrusted"], W["postgres"]
    hb = {W["httpbin-1"].addr(x): "httpbin-1" for x in (False, True)}
    hb.update({W["httpbin-2"].addr(x): "httpbin-2" for x in (False, True)})
    a_mac = NODE["node-a"]["local_mac"]
    vip = {False: "10.96.0.20", True: "fd00:96::20"}
    allowed, denied = [], []
    for ov6 in (False, True):
        for i in range(20):  # case 1: new connections to the VIP
            allowed.append(eth(a_mac, sleep.mac, tcp(sleep.addr(ov6), vip[ov6], 41000 + i, 80, "S", 7)))
        denied.append(eth(a_mac, curl.mac, tcp(curl.addr(ov6), vip[ov6], 42000, 80, "S", 7)))    # case 2
        denied.append(eth(a_mac, sleep.mac, tcp(sleep.addr(ov6), pg.addr(ov6), 42001, 22, "S", 7)))  # 4
        denied.append(eth(a_mac, curl.mac, tcp(curl.addr(ov6), pg.addr(ov6), 42002, 5432, "S", 7)))  # 5
    frames = []
    for i in range(max(len(allowed), len(denied))):
        frames += allowed[i:i + 1] + denied[i:i + 1]
    a = env.run_vanishd(f"pa{suffix}", cfg["node-a"], [frames], [[]])
    b = env.run_vanishd(f"pb{suffix}", cfg["node-b"], [[]], [a.fabric_out[0]])
    print(f"# {fam}: service VIP and authorization (cases 1, 2, 4, 5)")
    check_counters(c, a, {"encrypted": len(frames), "service_flows": 42}, {},
                   f"{fam}: node-a forwards everything (node-b decides)")
    check_counters(c, b, {"decrypted": len(frames), "delivered": len(allowed), "authz_checks": len(frames),
                          "authz_denied_flows": len(denied)}, {"authz_denied": len(denied)},
                   f"{fam}: node-b delivers the VIP connections, denies cases 2, 4, 5")
    seen, bad = {}, []
    for f in b.local_out[0]:
        ip = f[14:]
        is6 = ip[0] >> 4 == 6
        h = 40 if is6 else 20
        dst = str(ipaddress.ip_address(ip[24:40] if is6 else ip[16:20]))
        dport = struct.unpack("!H", ip[h + 2:h + 4])[0]
        name = hb.get(dst)
        l4 = ip[h:]
        pseudo = (ip[8:40] if is6 else ip[12:20]) + (struct.pack("!IxxxB", len(l4), 6) if is6 else
                                                      struct.pack("!xBH", 6, len(l4)))
        if name is None or dport != 8080 or csum(pseudo + l4) != 0 or (not is6 and csum(ip[:20]) != 0):
            bad.append(f"{dst}:{dport}")
        else:
            seen[name] = seen.get(name, 0) + 1
            if f[0:6] != mac_bytes(W[name].mac):
                bad.append(f"{dst} to MAC {f[0:6].hex()}")
    c.check(not bad and len(seen) == 2, f"{fam}: VIP connections DNATed to both endpoints :8080, checksums valid",
            f"endpoints {seen}, bad {bad[:5]}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("vanishd")
    ap.add_argument("root", help="source root (examples/, scripts/lib.sh, perf/pcapgen.py)")
    ap.add_argument("--fabric", choices=("v4", "v6", "both"), default="both")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (pcaps, stats, logs)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print vanishd's output")
    a = ap.parse_args(argv)
    work = tempfile.mkdtemp(prefix="vanish-e2e-loop-")
    c = Checker("two_node_loop")
    env = Env(a.vanishd, a.root, work, a.verbose)
    try:
        for v6 in {"v4": [False], "v6": [True], "both": [False, True]}[a.fabric]:
            run_fabric(env, c, v6)
            run_policy(env, c, v6)
    except Exception as e:  # a failed run is a failed test, with the evidence kept
        c.check(False, "runs completed", f"{type(e).__name__}: {e}")
    return keep_or_remove_workdir(work, a.keep, c.done())


if __name__ == "__main__":
    sys.exit(main())
