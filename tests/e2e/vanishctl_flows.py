#!/usr/bin/env python3
"""End-to-end test of vanishctl flows / flow add|del / trace against a forwarding vanishd.

    vanishctl_flows.py VANISHD VANISHCTL SOURCE_ROOT [-v]

vanishd (node-a, one worker) runs with net_pcap ports: the local port reads a veth interface
(rx_iface_in, so the test can send scenario frames at any time: raw AF_PACKET on the peer end)
and writes local_out.pcap; the fabric port reads an empty pcap (infinite_rx=0) and writes
fabric_out.pcap. Control socket in a temporary directory. Asserted:
  - `flows -o json` shows the scenario flows with the right fields: 5-tuple, direction,
    workloads, source identity, verdict (encrypt / drop unknown_source), service and endpoint of
    the VIP flow, the SA's SPI, the peer node, packets/bytes, age; --match and --limit bound it
    (total vs shown);
  - `flow add ... --verdict deny` pins a drop: that flow's packets are dropped as static_deny
    (its entry counts them; the final counters too); `flow del` removes it and the flow is
    encrypted again;
  - bad input exits 2 with a message; a refused request (no such entry, no such worker) exits 1;
  - `trace --count 5` returns 5 packets with their per-stage records (local-ingress ...
    esp-encap tx-fabric);
  - abusive control clients (garbage, an oversized length, a truncated frame, a silent
    connection held open) while traffic flows: every packet sent meanwhile is forwarded;
  - vanishd forwards throughout: every frame that should be encrypted is on the fabric.
Needs root (veth, DPDK).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import NODE, W, Checker, Env, eth, tcp, udp  # noqa: E402

GW_MAC = NODE["node-a"]["local_mac"]
SLEEP, HB1, PG = W["sleep"], W["httpbin-1"], W["postgres"]
VIP = "10.96.0.20"


def wait_for(fn, timeout: float = 10.0, step: float = 0.1):
    end = time.time() + timeout
    while time.time() < end:
        v = fn()
        if v:
            return v
        time.sleep(step)
    return fn()


class Veth:
    def __init__(self):
        tag = f"vfl{os.getpid() % 100000}"
        self.a, self.b = tag + "a", tag + "b"
        subprocess.run(["ip", "link", "add", self.a, "type", "veth", "peer", "name", self.b], check=True)
        for i in (self.a, self.b):
            subprocess.run(["sysctl", "-qw", f"net.ipv6.conf.{i}.disable_ipv6=1"], check=False)
            subprocess.run(["ip", "link", "set", i, "up"], check=True)
        self.s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        self.s.bind((self.b, 0))

    def send(self, frames):
        for f in frames:
            self.s.send(f)

    def close(self):
        self.s.close()
        subprocess.run(["ip", "link", "del", self.a], check=False)


def frame(ip: bytes) -> bytes:
    return eth(GW_MAC, SLEEP.mac, ip)


def udp_frames(sport: int, n: int, dst=HB1.v4, dport=7777, src=SLEEP.v4):
    return [frame(udp(src, dst, sport, dport, bytes(32 + i))) for i in range(n)]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("vanishd")
    ap.add_argument("vanishctl")
    ap.add_argument("root")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("SKIP: needs root (veth, DPDK)")
        return 77
    c = Checker("vanishctl_flows")
    work = tempfile.mkdtemp(prefix="vanish-flows-")
    env = Env(a.vanishd, a.root, work, a.verbose)
    sock = os.path.join(work, "ctl.sock")
    veth = Veth()
    prefix = env.lib_sh("new-prefix", f"e2eflows{os.getpid()}")[0]
    empty = env.write_pcap(os.path.join(work, "empty.pcap"), [])
    local_out, fabric_out = os.path.join(work, "local_out.pcap"), os.path.join(work, "fabric_out.pcap")
    stats = os.path.join(work, "stats.json")
    cmd = [a.vanishd, *env.lib_sh("eal-args", prefix, "1"), "--log-level=error",
           "--vdev", f"net_pcap0,rx_iface_in={veth.a},tx_pcap={local_out}",
           "--vdev", f"net_pcap1,rx_pcap={empty},tx_pcap={fabric_out},infinite_rx=0",
           "--", "--config", env.example("node-a.textproto"), "--ctl-socket", sock,
           "--no-watch", "--stats-json", stats]
    log = open(os.path.join(work, "vanishd.log"), "w")
    p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)

    def ctl(*args, timeout=60):
        r = subprocess.run([a.vanishctl, *args, "--socket", sock], capture_output=True, text=True,
                           timeout=timeout)
        if a.verbose:
            print(f"$ vanishctl {' '.join(args)} -> {r.returncode}\n{r.stdout}{r.stderr}")
        return r

    def flows(*args):
        r = ctl("flows", "-o", "json", *args)
        try:
            return json.loads(r.stdout)
        except ValueError:
            return {"flows": [], "total": -1, "errors": [r.stderr]}

    def find(js, **kw):
        return [f for f in js["flows"] if all(f.get(k) == v for k, v in kw.items())]

    encrypted_expected = 0
    try:
        c.check(wait_for(lambda: os.path.exists(sock) or p.poll() is not None, 30) and p.poll() is None,
                "vanishd up with its control socket", open(log.name).read())
        time.sleep(0.5)
        # Scenario traffic: UDP sleep -> httpbin-1 (3), TCP to the httpbin VIP (2), a forged source.
        veth.send(udp_frames(40000, 3))
        veth.send([frame(tcp(SLEEP.v4, VIP, 41000, 80, "S", 1)), frame(tcp(SLEEP.v4, VIP, 41000, 80, "A", 2, 1))])
        veth.send([frame(udp(W["httpbin-2"].v4, HB1.v4, 1, 2, b"forged"))])
        encrypted_expected += 5
        js = wait_for(lambda: (lambda j: j if len(find(j, sport=40000)) and
                               any(f["packets"] >= 3 for f in find(j, sport=40000)) and
                               find(j, sport=41000) else None)(flows()), 15)
        js = js or flows()
        u = find(js, sport=40000, zone="out")
        if c.check(len(u) == 1, "flows: the UDP flow sleep -> httpbin-1 is listed", json.dumps(js, indent=1)):
            f = u[0]
            c.eq((f["proto"], f["src"], f["dst"], f["dport"]), ("udp", SLEEP.v4, HB1.v4, 7777), "UDP flow 5-tuple")
            c.eq((f["src_workload"], f["dst_workload"]), ("default/sleep", "default/httpbin-1"), "UDP flow workloads")
            c.eq(f["src_identity"], SLEEP.principal, "UDP flow source identity")
            c.eq(f["dst_identity"], HB1.principal, "UDP flow destination identity")
            c.eq((f["action"], f["drop_reason"]), ("encrypt", ""), "UDP flow verdict")
            c.check(f["spi"] != 0 and (f["spi"] & 0xFFFFFF00) == 0x00000A00, "UDP flow SA SPI (node-a -> node-b)",
                    hex(f["spi"]))
            c.eq(f["peer"], "node-b", "UDP flow peer node")
            c.eq(f["packets"], 3, "UDP flow packets")
            c.check(f["bytes"] > 3 * 28, "UDP flow bytes", str(f["bytes"]))
            c.check(0 <= f["age_s"] < 120 and f["idle_s"] <= f["age_s"], "UDP flow age/idle", str(f))
            c.check(not f["static"] and not f["stale"], "UDP flow dynamic, current")
        v = find(js, sport=41000, zone="out")
        if c.check(len(v) == 1, "flows: the TCP flow to the httpbin VIP is listed"):
            f = v[0]
            c.eq(f["service"], "httpbin.default.svc.cluster.local", "VIP flow service")
            c.check(f["endpoint"] in ("10.2.0.20:8080", "10.2.0.21:8080"), "VIP flow endpoint", f["endpoint"])
            c.eq(f["action"], "encrypt", "VIP flow verdict")
            c.eq(f["packets"], 2, "VIP flow packets")
        c.check(len(find(js, zone="reply-index", dport=41000)) == 1, "flows: the VIP flow's reply-index entry")
        fg = find(js, src=W["httpbin-2"].v4, zone="out")  # (the VIP may pick httpbin-2: its reply index)
        c.check(len(fg) == 1 and fg[0]["action"] == "drop" and fg[0]["drop_reason"] == "unknown_source",
                "flows: forged source -> drop unknown_source", json.dumps(fg))
        # Bounded output and filters.
        j1 = flows("--limit", "1")
        c.check(len(j1["flows"]) == 1 and j1["total"] == js["total"] and j1["total"] >= 4,
                "flows --limit 1: one shown, total unchanged", f"{len(j1['flows'])} of {j1['total']}")
        jm = flows("--match", "7777")
        c.check(len(jm["flows"]) == 1 and jm["flows"][0]["sport"] == 40000, "flows --match PORT")
        jm = flows("--match", VIP)
        c.check(all(VIP in (f["src"], f["dst"]) for f in jm["flows"]) and len(jm["flows"]) == 1,
                "flows --match ADDR")
        t = ctl("flows", "--match", "7777")
        c.check(t.returncode == 0 and "SOURCE" in t.stdout and "10.1.0.10:40000" in t.stdout
                and "showing 1 of 1" in t.stdout, "flows table text", t.stdout)

        # Static deny.
        key = ["--worker", "0", "--src", SLEEP.v4, "--dst", HB1.v4, "--sport", "40001", "--dport", "7777",
               "--proto", "udp"]
        r = ctl("flow", "add", *key, "--verdict", "deny", "-o", "json")
        c.check(r.returncode == 0, "flow add --verdict deny: exit 0", r.stdout + r.stderr)
        veth.send(udp_frames(40001, 4))
        d = wait_for(lambda: [f for f in find(flows("--match", "40001"), sport=40001) if f["packets"] >= 4], 10)
        if c.check(bool(d), "denied flow: its entry counts 4 packets", json.dumps(flows("--match", "40001"))):
            c.eq((d[0]["action"], d[0]["drop_reason"], d[0]["static"]), ("drop", "static_deny", True),
                 "denied flow: pinned drop static_deny")
        r = ctl("flow", "del", *key)
        c.check(r.returncode == 0 and "removed" in r.stdout, "flow del: exit 0", r.stdout + r.stderr)
        c.eq(flows("--match", "40001")["total"], 0, "flow del: the entry is gone")
        r = ctl("flow", "del", *key)
        c.check(r.returncode == 1 and "no such flow" in r.stderr, "flow del again: exit 1, no such flow entry",
                r.stderr)
        veth.send(udp_frames(40001, 1))
        encrypted_expected += 1
        e = wait_for(lambda: find(flows("--match", "40001"), sport=40001), 10)
        c.check(bool(e) and e[0]["action"] == "encrypt" and not e[0]["static"],
                "after del: the flow is classified again (encrypt)", json.dumps(e))

        # Pinned allow with an endpoint on the VIP.
        r = ctl("flow", "add", "--worker", "0", "--src", SLEEP.v4, "--dst", VIP, "--sport", "41001", "--dport", "80",
                "--proto", "tcp", "--verdict", "allow", "--endpoint", "10.2.0.21:8080", "-o", "json")
        ok = r.returncode == 0
        fj = json.loads(r.stdout)["flow"] if ok else {}
        c.check(ok and fj.get("endpoint") == "10.2.0.21:8080" and fj.get("static") and fj.get("action") == "encrypt",
                "flow add --verdict allow --endpoint pins the endpoint", r.stdout + r.stderr)
        r = ctl("flow", "add", "--worker", "0", "--src", SLEEP.v4, "--dst", VIP, "--sport", "41002", "--dport", "80",
                "--proto", "tcp", "--verdict", "allow", "--endpoint", "10.2.0.30:5432")
        c.check(r.returncode == 1 and "not an endpoint" in r.stderr, "flow add with a foreign endpoint: exit 1",
                r.stderr)

        # Bad input.
        for args, what in [
            (["flow", "add", *key[:-2], "--proto", "icmp", "--verdict", "deny"], "--proto icmp"),
            (["flow", "add", "--worker", "0", "--src", "10.1.0.999", "--dst", HB1.v4, "--sport", "1", "--dport", "2",
              "--proto", "udp", "--verdict", "deny"], "--src 10.1.0.999"),
            (["flow", "add", *key, "--verdict", "maybe"], "--verdict maybe"),
            (["flow", "add", *key[:6], "--sport", "70000", *key[8:], "--verdict", "deny"], "--sport 70000"),
            (["flows", "--match", "nonsense"], "--match nonsense"),
            (["trace", "--count", "0"], "trace --count 0"),
        ]:
            r = ctl(*args)
            c.check(r.returncode == 2 and r.stderr.strip() != "", f"bad input ({what}): exit 2 with a message",
                    f"rc {r.returncode}: {r.stdout}{r.stderr}")
        r = ctl("flow", "add", "--worker", "7", *key[2:], "--verdict", "deny")
        c.check(r.returncode == 1 and "worker 7 does not exist" in r.stderr, "flow add --worker 7: exit 1",
                r.stderr)

        # Trace the next 5 packets.
        tp = subprocess.Popen([a.vanishctl, "trace", "--count", "5", "--timeout", "20", "-o", "json",
                               "--socket", sock], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.0)
        veth.send(udp_frames(40002, 5))
        encrypted_expected += 5
        out, err = tp.communicate(timeout=60)
        if a.verbose:
            print(out, err)
        try:
            tj = json.loads(out)
        except ValueError:
            tj = {"packets": 0, "records": []}
        c.check(tp.returncode == 0 and tj["packets"] == 5, "trace --count 5: 5 packets", out + err)
        pk = {}
        for rec in tj["records"]:
            pk.setdefault(rec["packet"], []).append(rec)
        stages = [(r["stage"], r["verdict"]) for r in pk.get(0, [])]
        c.eq(stages, [("local-ingress", "next"), ("outbound-classify", "next"), ("ttl-decrement", "next"),
                      ("fabric-mtu", "next"), ("esp-encap", "tx-fabric")], "trace: the stages of packet 0")
        c.check(len(pk) == 5 and all(rs[-1]["verdict"] == "tx-fabric" for rs in pk.values()),
                "trace: 5 packets, each sent to the fabric")
        c.check(any(r["sport"] == 40002 and r["dst"] == HB1.v4 for r in tj["records"]), "trace: key fields")
        t = ctl("trace", "--count", "1", "--timeout", "0.5")
        c.check(t.returncode == 1, "trace with no traffic: exit 1 (nothing traced)", t.stdout + t.stderr)

        # Abusive control clients while traffic flows: a silent one held open, garbage, an
        # oversized length, a truncated frame. Packets sent meanwhile are all forwarded.
        import socket as _socket
        import struct as _struct
        silent = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        silent.connect(sock)
        for payload in (b"\x00\x00\x00\x05garbage!", _struct.pack("!I", 0x7FFFFFFF) + b"x" * 64,
                        _struct.pack("!I", 1000) + b"short"):
            s2 = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
            s2.settimeout(5)
            s2.connect(sock)
            s2.sendall(payload)
            veth.send(udp_frames(40003, 2))
            encrypted_expected += 2
            s2.close()
        got = wait_for(lambda: [f for f in find(flows("--match", "40003"), sport=40003) if f["packets"] >= 6], 10)
        c.check(bool(got), "abusive control clients: forwarding went on (6 of 6 packets)",
                json.dumps(flows("--match", "40003")))
        silent.close()

        # Still forwarding: one more packet of the first flow.
        veth.send(udp_frames(40000, 1))
        encrypted_expected += 1
        c.check(bool(wait_for(lambda: [f for f in find(flows("--match", "40000"), sport=40000)
                                       if f["packets"] >= 4], 10)), "still forwarding")
        c.check(p.poll() is None, "vanishd alive")
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        log.close()
        veth.close()
        env.lib_sh("cleanup", prefix)
    c.eq(p.returncode, 0, "vanishd exit status")
    try:
        with open(stats) as f:
            st = json.load(f)
        tot = st["total"]
        c.eq(tot["drops"].get("static_deny", 0), 4, "final counters: static_deny drops")
        c.eq(tot.get("encrypted"), encrypted_expected, "final counters: encrypted")
        c.eq(len(env.read_pcap(fabric_out)), encrypted_expected, "fabric_out.pcap frames")
    except (OSError, ValueError, KeyError) as e:
        c.check(False, "final counters readable", repr(e))
    rc = c.done()
    if rc == 0 and not a.verbose:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"# work directory kept: {work}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
