#!/usr/bin/env python3
"""End-to-end: egress by host name (Config.egress, docs/config.md#egress) with real curl and TLS.

    netns_egress.py VANISHD VANISHCTL SOURCE_ROOT [--keep] [-v]

The reference mesh of netns_lib.py, with the fabric veth replaced by a bridge in an "outside"
namespace (<p>-out) that also stands for the world outside the mesh: its bridge has
203.0.113.10/24 and MAC 02:00:00:00:ee:01 (the egress next hop in the config), a route back to
the workloads via node-a's fabric MAC, an `openssl s_server` on 443 with a certificate for
allowed.test and denied.test (made here with openssl), and a UDP echo on 53. The mesh config gets
an egress block: ALLOW_ANY, and namespace default may reach only allowed.test (and *.example.com)
on 443 and resolve only allowed.test on 53.

  1  sleep: curl https://allowed.test/ (--resolve to 203.0.113.10) succeeds, through node-a's
     fabric port, unencrypted to the next hop; replies come back through node-a
  2  sleep: curl https://denied.test/ is cut (TCP connects, the ClientHello is dropped: curl
     times out), counted as host_denied
  3  curl-untrusted (namespace untrusted, no rule): curl https://denied.test/ succeeds (ALLOW_ANY)
  4  sleep: a DNS query for allowed.test is answered, one for denied.test is not
  5  vanishctl flows on node-a shows the allowed flow with its host pattern and rule
The mesh itself keeps working (sleep -> postgres:5432 over ESP).
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from netns_lib import (  # noqa: E402
    NODES, THIS, NetnsMesh, Report, counter, drops, install_signal_handlers, sh, wait_file_contains,
)

OUT_IP = "203.0.113.10"
NEXT_HOP_MAC = "02:00:00:00:ee:01"
EGRESS = f"""
egress {{
  mode: ALLOW_ANY
  next_hop_mac: "{NEXT_HOP_MAC}"
  rules {{ name: "default-web" namespace: "default" action: ALLOW
          hosts: "allowed.test" hosts: "*.example.com" ports: 443 }}
  rules {{ name: "default-dns" namespace: "default" action: ALLOW hosts: "allowed.test" ports: 53 }}
}}
"""


class EgressMesh(NetnsMesh):
    """NetnsMesh whose fabric is a bridge in an "outside" namespace holding the outside host."""

    def _build(self) -> None:
        super()._build()
        out = f"{self.prefix}-out"
        self.out_ns = out
        self._add_ns(out)
        self._nsexec(out, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
        self._nsexec(out, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1")
        self._ip(out, "link", "set", "lo", "up")
        self._ip(out, "link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0")
        self._ip(out, "link", "set", "br0", "address", NEXT_HOP_MAC)
        na, nb = self.ns("node-a"), self.ns("node-b")
        self._ip(na, "link", "del", "fab")  # the direct node-a <-> node-b veth
        for ns, node, peer in ((na, "node-a", "fa"), (nb, "node-b", "fb")):
            self._ip(out, "link", "add", peer, "type", "veth", "peer", "name", "fab", "netns", ns)
            self._ip(ns, "link", "set", "fab", "address", NODES[node].fabric_mac)
            self._offloads_off(ns, "fab")
            self._offloads_off(out, peer)
            self._ip(out, "link", "set", peer, "master", "br0")
            self._ip(out, "link", "set", peer, "up")
            self._ip(ns, "link", "set", "fab", "up")
        self._offloads_off(out, "br0")
        self._ip(out, "addr", "add", f"{OUT_IP}/24", "dev", "br0")
        self._ip(out, "link", "set", "br0", "up")
        # Back to the workloads of node-a: via node-a's fabric MAC (no ARP on the fabric).
        self._ip(out, "neigh", "add", "172.16.0.1", "lladdr", NODES["node-a"].fabric_mac, "dev", "br0",
                 "nud", "permanent")
        self._ip(out, "route", "add", "10.1.0.0/24", "via", "172.16.0.1", "dev", "br0", "onlink")

    def _start_capture(self) -> None:  # the fabric veth is replaced: no capture here
        pass

    def out_spawn(self, argv, log_name: str) -> subprocess.Popen:
        f = open(os.path.join(self.work, log_name), "w")
        p = subprocess.Popen(["ip", "netns", "exec", self.out_ns, *argv], stdout=f, stderr=subprocess.STDOUT)
        f.close()
        self.procs.append(p)
        return p


def dns_query(name: str) -> bytes:
    q = struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\x00\x00\x01\x00\x01"


DNS_CLIENT = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
s.sendto(bytes.fromhex(sys.argv[2]), (sys.argv[1], 53))
try:
    s.recvfrom(2048); print("answered")
except socket.timeout:
    print("no answer"); sys.exit(1)
"""


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("vanishd")
    ap.add_argument("vanishctl")
    ap.add_argument("root")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("netns_egress: SKIP: needs root (network namespaces)")
        return 77
    install_signal_handlers()
    r = Report("netns_egress")
    try:
        with EgressMesh(a.vanishd, a.vanishctl, a.root, capture=False, verbose=a.verbose, keep=a.keep,
                        mesh_edit=lambda t: t + EGRESS) as m:
            cert, key = os.path.join(m.work, "cert.pem"), os.path.join(m.work, "key.pem")
            sh(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-days", "1", "-subj", "/CN=allowed.test", "-keyout", key, "-out", cert,
                "-addext", "subjectAltName=DNS:allowed.test,DNS:denied.test"])
            srv = m.out_spawn(["openssl", "s_server", "-accept", "443", "-cert", cert, "-key", key,
                               "-www", "-naccept", "100"], "s_server.log")
            if not wait_file_contains(os.path.join(m.work, "s_server.log"), "ACCEPT", 15, srv):
                raise RuntimeError("openssl s_server did not start")
            echo = m.out_spawn([sys.executable, THIS, "udp-echo", "53"], "udp-echo.log")
            if not wait_file_contains(os.path.join(m.work, "udp-echo.log"), "udp-echo on", 15, echo):
                raise RuntimeError("udp-echo did not start")

            def curl(who: str, host: str, max_time: int = 5):
                return m.run(who, ["curl", "-sS", "--noproxy", "*", "--cacert", cert, "--resolve",
                                   f"{host}:443:{OUT_IP}", "--connect-timeout", "3", "--max-time",
                                   str(max_time), "-o", "/dev/null", "-w", "%{http_code}",
                                   f"https://{host}/"], timeout=30)

            p = curl("sleep", "allowed.test")
            r.check(p.returncode == 0 and p.stdout.strip() == "200", "1 sleep: curl https://allowed.test/",
                    f"rc {p.returncode}, HTTP {p.stdout.strip()} {p.stderr.strip()}")
            p = m.ctl("node-a", "flows", "--match", OUT_IP, "-o", "json")
            ok = False
            try:
                fl = json.loads(p.stdout)["flows"]
                ok = any(f["host"] == "allowed.test" and f["host_rule"] == "default-web"
                         and f["action"] == "egress" for f in fl)
            except (ValueError, KeyError):
                fl = p.stdout
            r.check(ok, "5 vanishctl flows shows the host and rule of the allowed flow", str(fl)[:600])
            t = m.ctl("node-a", "flows", "--match", OUT_IP)
            r.check("allowed.test (default-web)" in t.stdout, "5 vanishctl flows: HOST column",
                    t.stdout[-600:])

            p = curl("curl-untrusted", "denied.test")
            r.check(p.returncode == 0 and p.stdout.strip() == "200",
                    "3 curl-untrusted (no rule, ALLOW_ANY): curl https://denied.test/",
                    f"rc {p.returncode}, HTTP {p.stdout.strip()} {p.stderr.strip()}")
            # Last TLS case: s_server serves one connection at a time, and the cut one stays open.
            p = curl("sleep", "denied.test", 3)
            r.check(p.returncode == 28, "2 sleep: curl https://denied.test/ is cut",
                    f"rc {p.returncode} (28 = timed out) {p.stderr.strip()}")
            for name, want in (("allowed.test", 0), ("denied.test", 1)):
                p = m.run("sleep", [sys.executable, "-c", DNS_CLIENT, OUT_IP, dns_query(name).hex()],
                          timeout=20)
                r.check(p.returncode == want, f"4 sleep: DNS query for {name} "
                        + ("answered" if want == 0 else "not answered"), p.stdout.strip())
            m.serve("postgres", "tcp-listen", "5432", ready="tcp-listen on")
            p = m.tool_run("sleep", "tcp-connect", "10.2.0.30", "5432", "3", timeout=20)
            r.check(p.returncode == 0, "mesh still works: sleep -> postgres:5432", p.stdout.strip())

            stats = m.stop_vanishd()
            sa = stats.get("node-a", {})
            d = drops(sa)
            r.check(d.get("host_denied", 0) >= 2, "node-a counts host_denied (TLS + DNS)", str(d))
            r.check(counter(sa, "egress_tx") > 0 and counter(sa, "egress_rx") > 0
                    and counter(sa, "host_allowed") >= 2,
                    "node-a egress counters",
                    f"egress_flows {counter(sa, 'egress_flows')} egress_tx {counter(sa, 'egress_tx')} "
                    f"egress_rx {counter(sa, 'egress_rx')} host_inspected {counter(sa, 'host_inspected')} "
                    f"host_allowed {counter(sa, 'host_allowed')}")
    except (RuntimeError, OSError) as e:
        r.check(False, "harness", str(e)[-2000:])
    except KeyboardInterrupt as e:
        r.check(False, "interrupted", str(e))
    return r.done()


if __name__ == "__main__":
    sys.exit(main())
