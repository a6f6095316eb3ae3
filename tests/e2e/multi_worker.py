#!/usr/bin/env python3
"""End-to-end with two workers: per-worker SAs, inbound handoff to the SA's owner, nothing lost.

    multi_worker.py VANISHD SOURCE_ROOT [--fabric v4|v6|both] [--flows N] [--packets N] [--keep] [-v]

Each port has two queues (net_pcap: one rx_pcap/tx_pcap pair per queue), one per worker; worker w
sends on SPI base + w, and the receiver's worker (SPI - base) % n owns that SPI.

Scenario "2 -> 2, crossed": node-a and node-b both run two workers; the fabric output of queue q
of one node is the fabric input of queue 1 - q of the other. So every ESP packet arrives at the
worker that does not own its SPI and must be handed off (handoff_out on the receiving worker,
handoff_in on the owner) and delivered by the owner, on the owner's local TX queue, in order.
  1. node-b sends the replies (queue q: the replies of the flows of node-a's queue q);
  2. node-a sends the requests (many UDP flows, TCP and ICMP echo, IPv4 + IPv6 overlay, split
     over its two local queues) and receives node-b's fabric output, crossed;
  3. node-b receives node-a's fabric output, crossed.
Scenario "2 -> 1": node-b with one worker receives both of node-a's SAs on its only queue: no
handoff, everything delivered in the order it arrived.
Asserted: per worker SPI, sequence 1..n and one outer UDP source port (distinct per worker);
local output of worker q == the forwarded input of the peer's queue q, byte for byte and in
order; handoff_out/handoff_in per worker; encrypted == decrypted == delivered; no drops.

net_pcap reads a file as fast as the worker polls, with no line rate; in the crossed scenario
every packet is handed off, so a queue with more packets than the handoff ring holds (limits
handoff_ring, default 1024: 1023 usable) overflows it when the owner is slower (e.g. off CPU on
a shared core) and the excess is dropped as handoff_full, as designed. The default --packets
stays below that; larger values show the drops.
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
import tempfile
from typing import List

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import NODE, SA, W, Checker, Env, eth, icmp_echo, pad_to, tcp, udp, keep_or_remove_workdir  # noqa: E402
from two_node_loop import Pkt, check_counters, check_fabric_frames, expected_delivery  # noqa: E402


def traffic(queue: int, flows: int, packets: int):
    """(requests into node-a's local queue, replies into node-b's local queue) for one queue:
    `flows` UDP flows (IPv4 and IPv6 alternating), a TCP connection and ICMP echo, round-robin,
    `packets` requests in all; one reply per request."""
    sleep, hb1, pg = W["sleep"], W["httpbin-1"], W["postgres"]
    a_mac, b_mac = NODE["node-a"]["local_mac"], NODE["node-b"]["local_mac"]
    req, rep = [], []
    for i in range(packets):
        f = i % (flows + 2)
        v6 = (i // (flows + 2)) % 2 == 1 if f >= flows else f % 2 == 1
        s = sleep.addr(v6)
        size = 60 + (i * 37) % 1200
        tag = struct.pack("!HHI", queue, f, i)
        if f < flows:  # UDP flow f of this queue
            sport = 10000 + queue * 1000 + f
            q = udp(s, hb1.addr(v6), sport, 8080, tag + pad_to(size), ip_id=i)
            r = udp(hb1.addr(v6), s, 8080, sport, tag + pad_to(size // 2), ip_id=i)
            dst, rmac = "httpbin-1", hb1.mac
        elif f == flows:  # TCP to postgres
            sport = 40000 + queue
            q = tcp(s, pg.addr(v6), sport, 5432, "PA", 1000 + i * 100, 1, tag + pad_to(size % 600), ip_id=i)
            r = tcp(pg.addr(v6), s, 5432, sport, "A", 1, 1000 + (i + 1) * 100, ip_id=i)
            dst, rmac = "postgres", pg.mac
        else:  # ICMP echo to httpbin-1
            q = icmp_echo(s, hb1.addr(v6), 0x7700 + queue, i, tag + pad_to(48), ip_id=i)
            r = icmp_echo(hb1.addr(v6), s, 0x7700 + queue, i, tag + pad_to(48), reply=True, ip_id=i)
            dst, rmac = "httpbin-1", hb1.mac
        req.append(Pkt(eth(a_mac, sleep.mac, q), dst, f"q{queue} #{i}"))
        rep.append(Pkt(eth(b_mac, rmac, r), "sleep", f"q{queue} reply #{i}"))
    return req, rep


def frames(pkts: List[Pkt]) -> List[bytes]:
    return [p.frame for p in pkts]


def udp_sport(frame: bytes) -> int:
    l4 = 54 if frame[12:14] == b"\x86\xdd" else 34
    return struct.unpack("!H", frame[l4:l4 + 2])[0]


def check_worker_sas(c: Checker, run, src: str, dst: str, v6: bool, what: str) -> None:
    base = SA[(src, dst)][0]
    for w, q in enumerate(run.fabric_out):
        check_fabric_frames(c, q, src, dst, v6, f"{what} worker {w}", spi=base + w)
    ports = [udp_sport(q[0]) for q in run.fabric_out if q]
    c.check(len(set(ports)) == len(ports), f"{what}: one outer UDP source port per worker SA: {ports}")


def check_handoff(c: Checker, run, received: List[int], what: str) -> None:
    """Crossed input: worker w received received[w] packets, all owned by the other worker."""
    got = [(run.counter("fabric_rx", w), run.counter("handoff_out", w), run.counter("handoff_in", w))
           for w in range(2)]
    want = [(received[w], received[w], received[1 - w]) for w in range(2)]
    c.check(got == want, f"{what}: per worker (fabric_rx, handoff_out, handoff_in) = {want}", f"got {got}")


def run_fabric(env: Env, c: Checker, v6: bool, flows: int, packets: int) -> None:
    fam = "IPv6 fabric" if v6 else "IPv4 fabric"
    suffix = "-v6fabric" if v6 else ""
    cfg = {n: env.example(f"{n}{suffix}.textproto") for n in ("node-a", "node-b")}
    q = [traffic(0, flows, packets), traffic(1, flows, packets + 7)]  # uneven queues
    req = [q[0][0], q[1][0]]
    rep = [q[0][1], q[1][1]]
    n_req, n_rep = sum(map(len, req)), sum(map(len, rep))

    print(f"# {fam}: 2 workers -> 2 workers, fabric queues crossed ({n_req} requests, {n_rep} replies)")
    btx = env.run_vanishd(f"b-tx-2w{suffix}", cfg["node-b"], [frames(rep[0]), frames(rep[1])], [[], []], workers=2)
    a = env.run_vanishd(f"a-2w{suffix}", cfg["node-a"], [frames(req[0]), frames(req[1])],
                        [btx.fabric_out[1], btx.fabric_out[0]], workers=2)
    brx = env.run_vanishd(f"b-rx-2w{suffix}", cfg["node-b"], [[], []], [a.fabric_out[1], a.fabric_out[0]],
                          workers=2)
    check_worker_sas(c, a, "node-a", "node-b", v6, f"{fam}: node-a")
    check_worker_sas(c, btx, "node-b", "node-a", v6, f"{fam}: node-b")
    for w in range(2):
        c.frames(brx.local_out[w], expected_delivery(req[w], "node-b"),
                 f"{fam}: node-b worker {w} (owner of SPI 0x{SA[('node-a', 'node-b')][0] + w:x}) delivers "
                 f"node-a queue {w}'s packets")
        c.frames(a.local_out[w], expected_delivery(rep[w], "node-a"),
                 f"{fam}: node-a worker {w} delivers node-b queue {w}'s replies")
    check_handoff(c, brx, [len(a.fabric_out[1]), len(a.fabric_out[0])], f"{fam}: node-b")
    check_handoff(c, a, [len(btx.fabric_out[1]), len(btx.fabric_out[0])], f"{fam}: node-a")
    check_counters(c, a, {"local_rx": n_req, "encrypted": n_req, "fabric_rx": n_rep, "decrypted": n_rep,
                          "delivered": n_rep}, {}, f"{fam}: node-a")
    check_counters(c, btx, {"local_rx": n_rep, "encrypted": n_rep}, {}, f"{fam}: node-b (replies)")
    check_counters(c, brx, {"fabric_rx": n_req, "decrypted": n_req, "delivered": n_req, "local_tx": n_req}, {},
                   f"{fam}: node-b (requests)")

    print(f"# {fam}: 2 workers -> 1 worker")
    b1 = env.run_vanishd(f"b-rx-1w{suffix}", cfg["node-b"], [[]], [a.fabric_out[0] + a.fabric_out[1]])
    c.frames(b1.local_out[0], expected_delivery(req[0], "node-b") + expected_delivery(req[1], "node-b"),
             f"{fam}: node-b (1 worker) delivers both SAs' packets in arrival order")
    check_counters(c, b1, {"fabric_rx": n_req, "decrypted": n_req, "delivered": n_req, "handoff_out": 0,
                           "handoff_in": 0}, {}, f"{fam}: node-b (1 worker)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("vanishd")
    ap.add_argument("root", help="source root")
    ap.add_argument("--fabric", choices=("v4", "v6", "both"), default="both")
    ap.add_argument("--flows", type=int, default=16, help="UDP flows per queue (default 16)")
    ap.add_argument("--packets", type=int, default=500, help="requests on queue 0 (queue 1: +7)")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args(argv)
    work = tempfile.mkdtemp(prefix="vanish-e2e-mw-")
    c = Checker("multi_worker")
    env = Env(a.vanishd, a.root, work, a.verbose)
    try:
        for v6 in {"v4": [False], "v6": [True], "both": [False, True]}[a.fabric]:
            run_fabric(env, c, v6, a.flows, a.packets)
    except Exception as e:
        c.check(False, "runs completed", f"{type(e).__name__}: {e}")
    return keep_or_remove_workdir(work, a.keep, c.done())


if __name__ == "__main__":
    sys.exit(main())
