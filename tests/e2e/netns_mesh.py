#!/usr/bin/env python3
"""End-to-end: the reference mesh (shared/scenario.md) with real programs in network namespaces.

    netns_mesh.py VANISHD VANISHCTL SOURCE_ROOT [--fabric v4|v6|both] [-n N] [--keep] [-v]

Two vanishd (node-a, node-b) run on af_packet ports inside their node namespaces, joined by a
veth "fabric"; each workload is its own namespace behind its node's bridge (tests/e2e/netns_lib.py).
Traffic comes from unmodified programs: curl, ping, and stdlib Python sockets. Per fabric family
(IPv4 outer: examples/node-*.textproto; IPv6 outer: examples/node-*-v6fabric.textproto), every case
over the IPv4 and the IPv6 overlay (scenario case 8):

  case 1  sleep -> http://10.96.0.20:80/ and http://[fd00:96::20]:80/, N new connections each:
          every curl succeeds, both httpbin-1 and httpbin-2 answer (weighted random endpoint,
          DNAT at node-a), and curl's peer is the VIP:80 (replies un-DNATed)
  case 3  sleep -> postgres:5432 TCP connects
  case 7  ping -c 3 sleep -> httpbin-1, and UDP echo sleep -> httpbin-1 (replies come back)
  case 2  curl-untrusted -> VIP:80 times out (2 s)            } denied at node-b:
  case 4  sleep -> postgres:22 times out (not refused)         } authz_denied
  case 5  curl-untrusted -> postgres:5432 times out            }
At the end both vanishd get SIGTERM and their --stats-json counters are checked: authz_denied only
at node-b, and exactly one denied flow per denied connection attempt (authz_denied_flows); no
other drop reason than the expected ones (echo_replied: the gateway pings of the set-up;
not_for_us: IGMP/MLD reports of the Linux interfaces; arp_ignored, neighbour_miss: tolerated,
listed); encrypted at one node == decrypted at the other.
A tcpdump on each end of the fabric veth (what each node receives) shows only ESP-in-UDP/4500
frames, as many as the two appliances sent, no ARP/ND (fabric MACs are static) and no plaintext
(no HTTP text, no inner IPv6 address in any frame).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from netns_lib import (  # noqa: E402
    VIP4, VIP6, WORKLOADS, NetnsMesh, Report, classify_fabric_frame, counter, drops, install_signal_handlers,
    read_pcap,
)

CURL = ["curl", "-sS", "--noproxy", "*", "-o", "-", "-w", "\n%{remote_ip} %{remote_port}\n"]
UDP_ECHO_PORT = 9000
# echo_replied: the harness's gateway pings. not_for_us: IGMP/MLD reports the Linux interfaces
# send when they come up (multicast, not for the appliance). arp_ignored / neighbour_miss:
# ARP/ND not for a gateway, a first packet before a MAC is known.
TOLERATED_DROPS = {"echo_replied", "not_for_us", "arp_ignored", "neighbour_miss"}


def fam_name(v6: bool) -> str:
    return "IPv6" if v6 else "IPv4"


def url(host: str, port: int = 80) -> str:
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def run_fabric(r: Report, a, fabric_v6: bool) -> None:
    tag = f"[{fam_name(fabric_v6)} fabric]"
    t0 = time.monotonic()
    with NetnsMesh(a.vanishd, a.vanishctl, a.root, v6fabric=fabric_v6, verbose=a.verbose, keep=a.keep) as m:
        r.info(f"{tag} mesh up in {time.monotonic() - t0:.1f} s (namespaces {m.prefix}-*)")
        for name in ("httpbin-1", "httpbin-2"):
            m.serve(name, "http-server", name, "8080", ready="listening")
        m.serve("httpbin-1", "udp-echo", str(UDP_ECHO_PORT), ready="udp-echo on")
        m.serve("postgres", "tcp-listen", "5432", "22", ready="tcp-listen on")
        denied_attempts = 0

        for v6 in (False, True):
            fam = fam_name(v6)
            w = {n: WORKLOADS[n].v6 if v6 else WORKLOADS[n].v4 for n in WORKLOADS}
            vip = VIP6 if v6 else VIP4

            # Case 1: N new connections to the VIP.
            names, fails, peers = {}, [], set()
            for i in range(a.n):
                p = m.run("sleep", [*CURL, "--connect-timeout", "3", "--max-time", "6", url(vip)], timeout=20)
                lines = p.stdout.strip().splitlines()
                if p.returncode != 0 or len(lines) < 2:
                    fails.append(f"#{i}: rc {p.returncode} {p.stderr.strip()}")
                    continue
                names[lines[0]] = names.get(lines[0], 0) + 1
                peers.add(lines[-1])
            split = ", ".join(f"{k} x{v}" for k, v in sorted(names.items()))
            r.check(not fails and set(names) == {"httpbin-1", "httpbin-2"} and peers == {f"{vip} 80"},
                    f"{tag} case 1 {fam}: sleep -> {vip}:80, {a.n} connections",
                    f"{a.n - len(fails)}/{a.n} ok; endpoints: {split}; peer seen by curl: {sorted(peers)}"
                    + (f"; failures: {fails[:3]}" if fails else ""))

            # Case 3: sleep -> postgres:5432.
            p = m.tool_run("sleep", "tcp-connect", w["postgres"], "5432", "3", timeout=20)
            r.check(p.returncode == 0, f"{tag} case 3 {fam}: sleep -> postgres:5432 allowed", p.stdout.strip())

            # Case 7: ping and UDP echo, sleep -> httpbin-1.
            p = m.run("sleep", ["ping", "-n", "-c", "3", "-i", "0.2", "-W", "2", w["httpbin-1"]], timeout=20)
            m_ = re.search(r"(\d+) packets transmitted, (\d+) received", p.stdout)
            r.check(p.returncode == 0 and m_ is not None and m_.group(1) == m_.group(2) == "3",
                    f"{tag} case 7 {fam}: ping -c 3 sleep -> httpbin-1",
                    m_.group(0) if m_ else (p.stdout + p.stderr).strip()[-200:])
            p = m.tool_run("sleep", "udp-ping", w["httpbin-1"], str(UDP_ECHO_PORT), "5", "2", timeout=30)
            r.check(p.returncode == 0, f"{tag} case 7 {fam}: UDP echo sleep -> httpbin-1:{UDP_ECHO_PORT}",
                    p.stdout.strip().splitlines()[-1] if p.stdout.strip() else p.stderr.strip())

            # Case 2: curl-untrusted -> VIP: denied at node-b (time-out, no answer at all).
            outcomes = []
            for i in range(a.denied):
                p = m.run("curl-untrusted", [*CURL, "--connect-timeout", "2", "--max-time", "3", url(vip)],
                          timeout=20)
                outcomes.append(p.returncode)
                denied_attempts += 1
            r.check(all(rc == 28 for rc in outcomes),
                    f"{tag} case 2 {fam}: curl-untrusted -> {vip}:80 denied",
                    f"curl exit codes {outcomes} (28 = timed out)")

            # Case 4: sleep -> postgres:22 (an ALLOW applies and does not match).
            p = m.tool_run("sleep", "tcp-connect", w["postgres"], "22", "2", timeout=20)
            denied_attempts += 1
            r.check(p.returncode == 1 and "timeout" in p.stdout,
                    f"{tag} case 4 {fam}: sleep -> postgres:22 denied", p.stdout.strip())

            # Case 5: curl-untrusted -> postgres:5432.
            p = m.tool_run("curl-untrusted", "tcp-connect", w["postgres"], "5432", "2", timeout=20)
            denied_attempts += 1
            r.check(p.returncode == 1 and "timeout" in p.stdout,
                    f"{tag} case 5 {fam}: curl-untrusted -> postgres:5432 denied", p.stdout.strip())

        time.sleep(0.3)  # the last retransmitted SYNs reach node-b
        st = m.stop_vanishd()
        pcaps = m.stop_capture()
        rcs = {n: d.rc for n, d in m.daemons.items()}
        r.check(all(rc == 0 for rc in rcs.values()), f"{tag} both vanishd exit 0 on SIGTERM", str(rcs))
        sa, sb = st["node-a"], st["node-b"]
        da, db = drops(sa), drops(sb)
        r.info(f"{tag} node-a: local rx/tx {counter(sa, 'local_rx')}/{counter(sa, 'local_tx')}, fabric rx/tx "
               f"{counter(sa, 'fabric_rx')}/{counter(sa, 'fabric_tx')}, drops {da}")
        r.info(f"{tag} node-b: local rx/tx {counter(sb, 'local_rx')}/{counter(sb, 'local_tx')}, fabric rx/tx "
               f"{counter(sb, 'fabric_rx')}/{counter(sb, 'fabric_tx')}, drops {db}")
        r.check(db.get("authz_denied", 0) > 0 and "authz_denied" not in da,
                f"{tag} authz_denied counted at node-b only",
                f"node-b {db.get('authz_denied', 0)} packets, node-a {da.get('authz_denied', 0)}")
        r.check(counter(sb, "authz_denied_flows") == denied_attempts,
                f"{tag} node-b denied one flow per denied connection attempt",
                f"authz_denied_flows {counter(sb, 'authz_denied_flows')}, attempts {denied_attempts}")
        unexpected = {f"{n}:{k}": v for n, d in (("node-a", da), ("node-b", db)) for k, v in d.items()
                      if k not in TOLERATED_DROPS and not (n == "node-b" and k == "authz_denied")}
        r.check(not unexpected, f"{tag} no unexpected drop reasons",
                "observed: " + ", ".join(f"{n}:{k}={v}" for n, d in (("node-a", da), ("node-b", db))
                                         for k, v in sorted(d.items())) +
                (f"; unexpected {unexpected}" if unexpected else ""))
        r.check(counter(sa, "encrypted") == counter(sb, "decrypted") > 0 and
                counter(sb, "encrypted") == counter(sa, "decrypted") > 0,
                f"{tag} every encrypted packet decrypted by the peer",
                f"a->b {counter(sa, 'encrypted')}/{counter(sb, 'decrypted')}, "
                f"b->a {counter(sb, 'encrypted')}/{counter(sa, 'decrypted')}")

        frames = [fr for pc in pcaps for fr in read_pcap(pc)]
        kinds = {}
        for fr in frames:
            k = classify_fabric_frame(fr)
            kinds[k] = kinds.get(k, 0) + 1
        sent = counter(sa, "fabric_tx") + counter(sb, "fabric_tx")
        r.check(kinds.get("esp", 0) == len(frames) == sent and sent > 0,
                f"{tag} fabric capture: every frame is ESP-in-UDP/4500",
                f"{len(frames)} frames captured {kinds}, appliances sent {sent}")
        secrets_ = [b"GET / HTTP", b"httpbin-1", b"httpbin-2"] + \
                   [ipaddress.ip_address(w.v6).packed for w in WORKLOADS.values()]
        leaks = sum(1 for fr in frames if any(s in fr for s in secrets_))
        r.check(leaks == 0, f"{tag} fabric capture: no plaintext",
                f"{leaks} frames with HTTP text or an inner IPv6 address in the clear")
    r.info(f"{tag} done in {time.monotonic() - t0:.1f} s, everything removed")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("vanishd")
    ap.add_argument("vanishctl")
    ap.add_argument("root")
    ap.add_argument("--fabric", choices=("v4", "v6", "both"), default="both")
    ap.add_argument("-n", type=int, default=20, help="connections to the VIP per family (case 1)")
    ap.add_argument("--denied", type=int, default=3, help="attempts per family in case 2")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("netns_mesh: SKIP: needs root (network namespaces)")
        return 77
    install_signal_handlers()
    r = Report("netns_mesh")
    fabrics = {"v4": [False], "v6": [True], "both": [False, True]}[a.fabric]
    try:
        for f6 in fabrics:
            try:
                run_fabric(r, a, f6)
            except (RuntimeError, OSError) as e:
                r.check(False, f"[{fam_name(f6)} fabric] harness", str(e)[-2000:])
    except KeyboardInterrupt as e:
        r.check(False, "interrupted", str(e))
    return r.done()


if __name__ == "__main__":
    sys.exit(main())
