#!/usr/bin/env python3
"""End-to-end test of vanishctl's read-only views of a running vanishd (issue 5).

    vanishctl_views.py VANISHD VANISHCTL SOURCE_ROOT [-v] [--keep]

Starts vanishd for node-a of the reference mesh (examples/, one worker, net_pcap ports, no
--exit-when-idle, --ctl-socket in a temporary directory) whose local port reads 12 frames:
10 UDP datagrams from sleep to httpbin-1 and 2 forged with httpbin-2's address. Then runs every
view with -o json and as a table. Asserted:
  - status: generation 1, both ports (link, rx/tx packets equal to what was sent/encrypted),
    one worker with its load figures;
  - workloads: the 5 workloads with node, local/remote, addresses, principal, wire id and the
    static neighbour MAC of the local ones; --limit 2 (total 5, shown 2); --match httpbin;
  - services: httpbin with 2 VIPs (IPv4, IPv6), each 2 endpoints of weight 1 on port 8080;
  - policies: the 2 policies, scope/action/rules and the workloads they apply to;
  - sas: 1 outbound SA per worker (seq = packets = 10 encrypted) and 16 inbound SAs from node-b,
    no key material anywhere; --match in;
  - peers: node-b reachable, static keying, last handshake and rekeys unset;
  - stats: counters equal to what was sent (local_rx 12, encrypted 10, unknown_source 2);
    --watch --count 2 prints 2 JSON lines with rates;
  - tables contain the expected rows; --help works for every view;
  - an unknown socket -> exit 2 with a message naming it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import NODE, W, Checker, Env, eth, udp  # noqa: E402

N_OK, N_FORGED = 10, 2


def frames():
    sleep, h1, h2 = W["sleep"], W["httpbin-1"], W["httpbin-2"]
    gw = NODE["node-a"]["local_mac"]
    out = [eth(gw, sleep.mac, udp(sleep.v4, h1.v4, 40000 + i, 8080, b"views %d" % i)) for i in range(N_OK)]
    out += [eth(gw, sleep.mac, udp(h2.v4, h1.v4, 41000 + i, 8080, b"forged")) for i in range(N_FORGED)]
    return out


class Ctl:
    def __init__(self, exe: str, sock: str, verbose: bool):
        self.exe, self.sock, self.verbose = exe, sock, verbose

    def run(self, *args: str, sock: bool = True):
        cmd = [self.exe, *args] + (["--socket", self.sock] if sock else [])
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if self.verbose:
            print(f"$ vanishctl {' '.join(cmd[1:])}  -> {p.returncode}\n{p.stdout}{p.stderr}")
        return p

    def json(self, *args: str):
        p = self.run(*args, "-o", "json")
        try:
            return json.loads(p.stdout)
        except ValueError:
            return {"_error": p.stdout + p.stderr}


def wait_for(fn, timeout: float = 10.0, step: float = 0.1):
    end = time.time() + timeout
    while time.time() < end:
        v = fn()
        if v:
            return v
        time.sleep(step)
    return fn()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("vanishd")
    ap.add_argument("vanishctl")
    ap.add_argument("root")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    c = Checker("vanishctl_views")
    work = tempfile.mkdtemp(prefix="vanish-views-")
    env = Env(a.vanishd, a.root, work, a.verbose)
    sock = os.path.join(work, "node-a.sock")
    local_in = env.write_pcap(os.path.join(work, "local_in.pcap"), frames())
    fabric_in = env.write_pcap(os.path.join(work, "fabric_in.pcap"), [])
    prefix = env.lib_sh("new-prefix", f"e2eviews{os.getpid()}")[0]
    log_path = os.path.join(work, "vanishd.log")
    log = open(log_path, "w")
    cmd = [env.vanishd, *env.lib_sh("eal-args", prefix, "1"), "--log-level=error",
           "--vdev", f"net_pcap0,rx_pcap={local_in},tx_pcap={os.path.join(work, 'local_out.pcap')}",
           "--vdev", f"net_pcap1,rx_pcap={fabric_in},tx_pcap={os.path.join(work, 'fabric_out.pcap')}",
           "--", "--config", env.example("node-a.textproto"), "--ctl-socket", sock, "--no-watch",
           "--metrics", "none"]
    if a.verbose:
        print("$ " + " ".join(cmd))
    d = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    ctl = Ctl(a.vanishctl, sock, a.verbose)

    def output() -> str:
        log.flush()
        with open(log_path) as f:
            return f.read()

    try:
        up = wait_for(lambda: os.path.exists(sock) or d.poll() is not None, timeout=60)
        if not c.check(up and d.poll() is None, "vanishd starts and creates its socket", output()):
            return c.done()
        # Every frame read and processed.
        done = wait_for(lambda: ctl.json("stats").get("total", {}).get("local_rx") == N_OK + N_FORGED,
                        timeout=30)
        c.check(bool(done), "vanishd read the 12 frames", str(ctl.json("stats")))

        # ---- status ----
        st = ctl.json("status")
        c.eq(st.get("generation"), 1, "status: generation 1 (LiveConfig part kept)")
        ports = {p.get("role"): p for p in st.get("ports", [])}
        c.eq(sorted(ports), ["fabric", "local"], "status: both ports")
        c.eq(ports.get("local", {}).get("rx_packets"), N_OK + N_FORGED, "status: local port rx packets")
        c.eq(ports.get("fabric", {}).get("tx_packets"), N_OK, "status: fabric port tx packets (encrypted)")
        c.eq(ports.get("local", {}).get("name"), "net_pcap0", "status: local port device name")
        c.check(all(isinstance(p.get("link_up"), bool) and "rx_missed" in p and "rx_errors" in p
                    and "tx_errors" in p for p in ports.values()), "status: link and drop fields", str(ports))
        load = st.get("worker_load", [])
        c.eq(len(load), 1, "status: one worker's load")
        c.check(bool(load) and 0 <= load[0].get("busy_pct", -1) <= 100 and load[0].get("mpps", -1) >= 0
                and load[0].get("rx_packets") == N_OK + N_FORGED, "status: Mpps, busy %, rx packets", str(load))
        p = ctl.run("status")
        c.check(p.returncode == 0 and "net_pcap0" in p.stdout and "BUSY %" in p.stdout,
                "status (table): ports and workers", p.stdout + p.stderr)

        # ---- workloads ----
        wl = ctl.json("workloads")
        rows = {w["name"]: w for w in wl.get("workloads", [])}
        c.eq((wl.get("total"), wl.get("shown")), (5, 5), "workloads: total 5, shown 5")
        c.eq(sorted(rows), sorted(W), "workloads: the 5 workloads of the mesh")
        for name, want in W.items():
            got = rows.get(name, {})
            local = want.node == "node-a"
            c.check(got.get("namespace") == want.ns and got.get("node") == want.node
                    and got.get("addresses") == [want.v4, want.v6]
                    and got.get("principal") == want.principal
                    and got.get("identity_id") == f"0x{want.identity_id:08x}"
                    and got.get("local") == local and got.get("mac") == (want.mac if local else ""),
                    f"workloads: {name}: namespace, node, addresses, identity, local, MAC", str(got))
        wl = ctl.json("workloads", "--limit", "2")
        c.eq((wl.get("total"), wl.get("shown"), len(wl.get("workloads", []))), (5, 2, 2),
             "workloads --limit 2: total 5, shown 2")
        wl = ctl.json("workloads", "--match", "HTTPBIN")
        c.eq(sorted(w["name"] for w in wl.get("workloads", [])), ["httpbin-1", "httpbin-2"],
             "workloads --match HTTPBIN (case-insensitive)")
        c.eq(ctl.json("workloads", "--match", "fd00:10:2::30").get("total"), 1, "workloads --match an address")
        p = ctl.run("workloads")
        c.check(p.returncode == 0 and "default/sleep" in p.stdout and "02:00:00:aa:00:10" in p.stdout
                and "0x%08x" % W["sleep"].identity_id in p.stdout, "workloads (table): rows", p.stdout)
        p = ctl.run("workloads", "--limit", "1")
        c.check("(shown 1 of 5;" in p.stdout, "workloads (table) --limit 1 says what was left out", p.stdout)

        # ---- services ----
        sv = ctl.json("services")
        svc = (sv.get("services") or [{}])[0]
        c.eq((sv.get("total"), svc.get("name"), svc.get("hostname")),
             (1, "httpbin", "httpbin.default.svc.cluster.local"), "services: httpbin")
        vips = {(v["address"], v["port"]): v for v in svc.get("vips", [])}
        c.eq(sorted(vips), [("10.96.0.20", 80), ("fd00:96::20", 80)], "services: 2 VIPs:ports")
        for key, v in vips.items():
            eps = sorted((e["workload"], e["address"], e["target_port"], e["weight"]) for e in v["endpoints"])
            fam = "v6" if ":" in key[0] else "v4"
            want = sorted((f"default/{n}", getattr(W[n], fam), 8080, 1) for n in ("httpbin-1", "httpbin-2"))
            c.eq(eps, want, f"services: {key[0]}:{key[1]} -> 2 endpoints, target port 8080, weight 1")
        c.eq(ctl.json("services", "--match", "postgres").get("total"), 0, "services --match with no hit: total 0")
        p = ctl.run("services")
        c.check(p.returncode == 0 and "10.96.0.20:80" in p.stdout and "[fd00:96::20]:80" in p.stdout,
                "services (table): VIP rows", p.stdout)

        # ---- policies ----
        pl = ctl.json("policies")
        pols = {f"{r['namespace']}/{r['name']}": r for r in pl.get("policies", [])}
        c.eq(sorted(pols), ["data/allow-sleep", "default/deny-untrusted"], "policies: the 2 policies")
        c.eq({k: (v["scope"], v["action"], v["dry_run"], v["rules"], v["workloads"]) for k, v in pols.items()},
             {"data/allow-sleep": ("NAMESPACE", "ALLOW", False, 1, 1),
              "default/deny-untrusted": ("NAMESPACE", "DENY", False, 1, 3)},
             "policies: scope, action, dry-run, rules, workloads it applies to")
        p = ctl.run("policies")
        c.check(p.returncode == 0 and "default/deny-untrusted" in p.stdout and "enforced" in p.stdout,
                "policies (table): rows", p.stdout)

        # ---- sas ----
        sa = ctl.json("sas")
        out = [r for r in sa.get("sas", []) if r["direction"] == "out"]
        inn = [r for r in sa.get("sas", []) if r["direction"] == "in"]
        c.eq(len(out), 1, "sas: 1 outbound SA (1 worker)")
        c.eq(len(inn), 16, "sas: 16 inbound SAs")
        c.check(bool(out) and out[0]["spi"] == "0x00000a00" and out[0]["peer"] == "node-b"
                and out[0]["seq"] == N_OK and out[0]["packets"] == N_OK and out[0]["esn"] is True,
                "sas: outbound SPI 0x00000a00 to node-b, seq = packets = 10", str(out))
        c.check(all(r["peer"] == "node-b" and r["replay_drops"] == 0 and r["seq"] == 0 for r in inn)
                and sorted(r["spi"] for r in inn) == [f"0x{0xb00 + k:08x}" for k in range(16)],
                "sas: inbound SPIs 0xb00..0xb0f from node-b, nothing received", str(inn[:2]))
        text = json.dumps(sa) + ctl.run("sas").stdout
        c.check("2b7e1516" not in text and "00010203" not in text and "key" not in text.lower(),
                "sas: no key material in the output")
        c.eq(ctl.json("sas", "--match", "in").get("total"), 16, "sas --match in")
        p = ctl.run("sas")
        c.check(p.returncode == 0 and "0x00000a00  out  node-b" in p.stdout, "sas (table): rows", p.stdout)

        # ---- peers ----
        pe = ctl.json("peers")
        peer = (pe.get("peers") or [{}])[0]
        c.eq((pe.get("total"), peer.get("name"), peer.get("state"), peer.get("keying"), peer.get("fabric_ipv4"),
              peer.get("fabric_ipv6"), peer.get("sas_out"), peer.get("sas_in"), peer.get("last_handshake"),
              peer.get("rekeys")),
             (1, "node-b", "reachable", "static", "172.16.0.2", "fd00:16::2", 1, 16, None, None),
             "peers: node-b reachable, static keying, addresses, SAs, no handshake yet")
        p = ctl.run("peers")
        c.check(p.returncode == 0 and "node-b" in p.stdout and "reachable" in p.stdout
                and "LAST HANDSHAKE" in p.stdout, "peers (table): rows", p.stdout)

        # ---- stats ----
        s = ctl.json("stats")
        t = s.get("total", {})
        c.eq((t.get("local_rx"), t.get("encrypted"), t.get("fabric_tx"), t.get("drops")),
             (N_OK + N_FORGED, N_OK, N_OK, {"unknown_source": N_FORGED}),
             "stats: local_rx 12, encrypted 10, fabric_tx 10, drops unknown_source 2")
        c.eq([w.get("local_rx") for w in s.get("workers", [])], [N_OK + N_FORGED], "stats: per worker")
        p = ctl.run("stats")
        c.check(p.returncode == 0 and "unknown_source" in p.stdout and "encrypted" in p.stdout,
                "stats (table): counters and drop reasons", p.stdout)
        p = ctl.run("stats", "--watch", "0.2", "--count", "2", "-o", "json")
        lines = [ln for ln in p.stdout.splitlines() if ln.strip()]
        try:
            docs = [json.loads(ln) for ln in lines]
        except ValueError:
            docs = []
        c.check(p.returncode == 0 and len(docs) == 2 and all("rates" in x and x["interval_s"] > 0 for x in docs)
                and docs[-1]["rates"]["local_rx"] == 0.0, "stats --watch 0.2 --count 2: 2 reports with rates",
                p.stdout + p.stderr)
        p = ctl.run("stats", "--watch", "0.2", "--count", "1")
        c.check(p.returncode == 0 and "PER SEC" in p.stdout, "stats --watch (table): a rate column", p.stdout)

        # ---- --help, errors ----
        for v in ("workloads", "services", "policies", "sas", "peers", "stats", "status"):
            p = ctl.run(v, "--help", sock=False)
            c.check(p.returncode == 0 and "--socket" in p.stdout and "-o,--output" in p.stdout,
                    f"{v} --help", p.stdout + p.stderr)
        missing = os.path.join(work, "nowhere.sock")
        for v in ("workloads", "stats", "status"):
            p = ctl.run(v, "--socket", missing, sock=False)
            c.check(p.returncode == 2 and missing in p.stderr and "cannot connect" in p.stderr,
                    f"{v} with an unknown socket -> exit 2 naming it", f"rc {p.returncode}: {p.stderr}")
        c.check(d.poll() is None, "vanishd still running", output())
    finally:
        if d.poll() is None:
            d.send_signal(signal.SIGTERM)
            try:
                d.wait(timeout=30)
            except subprocess.TimeoutExpired:
                d.kill()
                d.wait()
        log.close()
        env.lib_sh("cleanup", prefix)
        if a.verbose:
            print(output())
    c.eq(d.returncode, 0, "SIGTERM: vanishd exits 0")
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"# kept {work}")
    return c.done()


if __name__ == "__main__":
    sys.exit(main())
