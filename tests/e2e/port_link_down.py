#!/usr/bin/env python3
"""End-to-end: packets for a port whose link is down are counted tx_link_down, not tx_full.

    port_link_down.py VANISHD SOURCE_ROOT [--packets N] [--keep] [-v]

node-a's local port reads a pcap of sleep -> httpbin-1 UDP packets (all encrypted for node-b);
its fabric port is a net_memif server that no client ever connects to, so its link stays down
and it takes no packet. Every encrypted packet must then be counted as `tx_link_down` (the
operator's cue to look at the peer or cable, where `tx_full` would point at a slow consumer),
none as `tx_full`, and the local port's traffic is otherwise handled as usual.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2elib as e2e  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("vanishd")
    ap.add_argument("root")
    ap.add_argument("--packets", type=int, default=200)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args(argv)

    c = e2e.Checker("port_link_down")
    work = tempfile.mkdtemp(prefix="vanish-linkdown-")
    env = e2e.Env(a.vanishd, a.root, work, a.verbose)
    sleep, httpbin = e2e.W["sleep"], e2e.W["httpbin-1"]
    gw_mac = e2e.NODE["node-a"]["local_mac"]
    frames = [e2e.eth(gw_mac, sleep.mac, e2e.udp(sleep.v4, httpbin.v4, 20000 + i % 16, 8080, b"x" * 64))
              for i in range(a.packets)]
    rx = env.write_pcap(os.path.join(work, "local_in.pcap"), frames)
    prefix = env.lib_sh("new-prefix", f"e2elink{os.getpid()}")[0]
    stats_path = os.path.join(work, "stats.json")
    # A memif server's link is up only while a client is connected: none ever is here.
    sock = os.path.join(work, "fabric.sock")
    cmd = [env.vanishd, *env.lib_sh("eal-args", prefix, "1"), "--log-level=error",
           "--vdev", f"net_pcap0,rx_pcap={rx},tx_pcap={os.path.join(work, 'local_out.pcap')}",
           "--vdev", f"net_memif1,role=server,socket={sock},socket-abstract=no",
           "--", "--config", env.example("node-a.textproto"), "--exit-when-idle", "--idle-ms", "1500",
           "--stats-json", stats_path, "--ctl-socket", "none", "--metrics", "none", "--no-watch"]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    finally:
        env.lib_sh("cleanup", prefix)
    if a.verbose or p.returncode != 0:
        print(" ".join(cmd) + "\n" + p.stdout + p.stderr)
    if not c.eq(p.returncode, 0, "vanishd with a fabric port whose link is down runs and exits"):
        return c.done()
    with open(stats_path) as f:
        total = json.load(f)["total"]
    drops = {k: int(v) for k, v in total.get("drops", {}).items()}
    c.eq(int(total.get("local_rx", 0)), a.packets, "every local packet was read")
    c.eq(int(total.get("encrypted", 0)), a.packets, "every packet was encrypted for node-b")
    c.eq(drops, {"tx_link_down": a.packets},
         "the fabric port's refusals are counted tx_link_down (its link is down), none tx_full")
    c.eq(int(total.get("fabric_tx", 0)), 0, "nothing counted as sent on the fabric port")
    return e2e.keep_or_remove_workdir(work, a.keep, c.done())


if __name__ == "__main__":
    sys.exit(main())
