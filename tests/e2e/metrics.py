#!/usr/bin/env python3
"""End-to-end: vanishd's Prometheus endpoint and DPDK telemetry commands with scenario traffic.

    metrics.py VANISHD SOURCE_ROOT [--keep] [-v]

1. node-b runs once on pcap files with the answers of postgres and httpbin-1 to sleep (TCP and
   UDP) on its local port; its encrypted fabric output is kept.
2. node-a runs live (no --exit-when-idle, --metrics 127.0.0.1:0) with sleep's requests (TCP to
   postgres:5432 and httpbin-1:8080, UDP, ping, over IPv4 and IPv6, one packet with a spoofed
   source) on its local port and node-b's answers on its fabric port. /metrics (curl) is parsed
   with prometheus_client's text parser and checked: per-port and per-worker packet counts,
   drops by reason (unknown_source), config generation, peer reachability, and the istio_tcp_*
   series of sleep -> postgres and sleep -> httpbin-1 (reporter="source", workload, namespace,
   principal labels, connection_security_policy="mutual_tls"): connections opened, request bytes
   (received) and response bytes (sent), summed IP lengths of exactly the TCP packets.
   DPDK telemetry (the EAL socket dpdk_telemetry.v2): /vanish/stats and /vanish/drops agree.
   Slow and garbage HTTP clients (idle connections over the limit, a half request, junk, an
   oversized head) are cut off within the timeout, the workers keep polling meanwhile, and the
   next scrape answers with the same istio_tcp_* values.
3. node-b runs live with node-a's fabric output: reporter="destination" series for the same
   connections, request bytes equal to node-a's.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Tuple

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import NODE, W, Checker, Env, eth, pad_to, tcp  # noqa: E402
from two_node_loop import Pkt, replies, requests  # noqa: E402

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    # Debian's python3-prometheus-client (scripts/setup.sh installs it) is pure Python: usable from
    # another python3 (pyenv) too.
    sys.path.append("/usr/lib/python3/dist-packages")
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        print("SKIP: python3-prometheus-client is not installed")
        sys.exit(77)


def ip_len(frame: bytes) -> int:
    if frame[12:14] == b"\x86\xdd":
        return 40 + int.from_bytes(frame[18:20], "big")
    return int.from_bytes(frame[16:18], "big")


def is_tcp(frame: bytes) -> bool:
    return frame[20 if frame[12:14] == b"\x86\xdd" else 23] == 6


def dst_of(frame: bytes) -> bytes:
    return frame[38:54] if frame[12:14] == b"\x86\xdd" else frame[30:34]


def extra_requests() -> List[Pkt]:
    s, h = W["sleep"], W["httpbin-1"]
    a_mac = NODE["node-a"]["local_mac"]
    return [Pkt(eth(a_mac, s.mac, tcp(s.v4, h.v4, 41000, 8080, "S", 7000)), "httpbin-1", "tcp SYN"),
            Pkt(eth(a_mac, s.mac, tcp(s.v4, h.v4, 41000, 8080, "PA", 7001, 9001, pad_to(300))), "httpbin-1",
                "tcp GET")]


def extra_replies() -> List[Pkt]:
    s, h = W["sleep"], W["httpbin-1"]
    b_mac = NODE["node-b"]["local_mac"]
    return [Pkt(eth(b_mac, h.mac, tcp(h.v4, s.v4, 8080, 41000, "SA", 9000, 7001)), "sleep", "tcp SYN-ACK"),
            Pkt(eth(b_mac, h.mac, tcp(h.v4, s.v4, 8080, 41000, "PA", 9001, 7301, pad_to(500))), "sleep",
                "tcp response")]


def tcp_bytes(pkts: List[Pkt], peer: str) -> int:
    """Summed IP lengths of the TCP packets to or from workload `peer`."""
    addrs = {ipaddress.ip_address(W[peer].v4).packed, ipaddress.ip_address(W[peer].v6).packed}
    total = 0
    for p in pkts:
        f = p.frame
        if not p.dst or not is_tcp(f):
            continue
        v6 = f[12:14] == b"\x86\xdd"
        src = f[22:38] if v6 else f[26:30]
        if dst_of(f) in addrs or src in addrs:
            total += ip_len(f)
    return total


class Live:
    """vanishd without --exit-when-idle on pcap ports; --metrics 127.0.0.1:0."""

    def __init__(self, env: Env, name: str, config: str, local_in: List[bytes], fabric_in: List[bytes],
                 workdir: str):
        d = os.path.join(workdir, name)
        os.makedirs(d, exist_ok=True)
        self.fabric_out = os.path.join(d, "fabric_out.pcap")
        vdevs = ["--vdev", f"net_pcap0,rx_pcap={env.write_pcap(os.path.join(d, 'local_in.pcap'), local_in)},"
                 f"tx_pcap={os.path.join(d, 'local_out.pcap')}",
                 "--vdev", f"net_pcap1,rx_pcap={env.write_pcap(os.path.join(d, 'fabric_in.pcap'), fabric_in)},"
                 f"tx_pcap={self.fabric_out}"]
        self.env = env
        self.prefix = env.lib_sh("new-prefix", f"e2emetrics{os.getpid()}{name}")[0]
        self.log_path = os.path.join(d, "vanishd.log")
        self.log = open(self.log_path, "w")
        cmd = [env.vanishd, *env.lib_sh("eal-args", self.prefix, "1"), "--log-level=error", *vdevs, "--",
               "--config", config, "--metrics", "127.0.0.1:0", "--ctl-socket", os.path.join(d, "ctl.sock")]
        if env.verbose:
            print("$ " + " ".join(cmd))
        self.p = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        self.port = 0
        deadline = time.time() + 60
        while time.time() < deadline and self.p.poll() is None:
            m = re.search(r"metrics \S+ \(port (\d+)\)", self.output())
            if m:
                self.port = int(m.group(1))
                break
            time.sleep(0.1)
        if not self.port:
            self.stop()
            raise RuntimeError(f"{name}: vanishd did not start its metrics endpoint:\n{self.output()}")

    def output(self) -> str:
        self.log.flush()
        with open(self.log_path) as f:
            return f.read()

    def telemetry_socket(self) -> str:
        for base in ("/var/run/dpdk", os.path.join(os.environ.get("XDG_RUNTIME_DIR", "/nonexistent"), "dpdk")):
            p = os.path.join(base, self.prefix, "dpdk_telemetry.v2")
            if os.path.exists(p):
                return p
        return ""

    def stop(self) -> int:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()
        self.env.lib_sh("cleanup", self.prefix)
        return self.p.returncode


def scrape(port: int, timeout: float = 5) -> Tuple[str, Dict[Tuple[str, frozenset], float]]:
    """curl /metrics; returns the text and {(sample name, labels): value} from the real parser."""
    out = subprocess.run(["curl", "-sS", "--max-time", str(timeout), f"http://127.0.0.1:{port}/metrics"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"curl failed ({out.returncode}): {out.stderr}")
    samples = {}
    for fam in text_string_to_metric_families(out.stdout):
        for s in fam.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return out.stdout, samples


def value(samples, name: str, **labels) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def series(samples, name: str, **labels) -> List[dict]:
    want = set(labels.items())
    return [dict(ls) for (n, ls), v in samples.items() if n == name and want <= set(ls)]


def wait_counter(port: int, name: str, want: float, timeout: float = 30, **labels):
    deadline = time.time() + timeout
    samples = {}
    while time.time() < deadline:
        _, samples = scrape(port)
        if value(samples, name, **labels) >= want:
            break
        time.sleep(0.2)
    time.sleep(0.3)  # let the rest of the burst's effects land
    return scrape(port)


def telemetry(path: str, cmd: str) -> dict:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(5)
    s.connect(path)
    json.loads(s.recv(16384).decode())  # the greeting: version, pid, max_output_len
    s.send(cmd.encode())
    reply = json.loads(s.recv(65536).decode())
    s.close()
    return reply.get(cmd.split(",")[0], {})


def istio_checks(c: Checker, samples, reporter: str, peer: str, opened: int, received: int, sent: int,
                 node: str) -> None:
    sleep, dst = W["sleep"], W[peer]
    sel = dict(reporter=reporter, source_workload="sleep", destination_workload=peer)
    got = series(samples, "istio_tcp_connections_opened_total", **sel)
    c.eq(len(got), 1, f"{node}: one istio_tcp series sleep -> {peer} (reporter={reporter})")
    if got:
        ls = got[0]
        c.eq((ls.get("source_workload_namespace"), ls.get("source_principal"),
              ls.get("destination_workload_namespace"), ls.get("destination_principal"),
              ls.get("connection_security_policy")),
             (sleep.ns, "spiffe://" + sleep.principal, dst.ns, "spiffe://" + dst.principal, "mutual_tls"),
             f"{node}: sleep -> {peer} labels (namespaces, SPIFFE principals, mutual_tls)")
    c.eq(value(samples, "istio_tcp_connections_opened_total", **sel), opened,
         f"{node}: istio_tcp_connections_opened_total sleep -> {peer}")
    c.eq(value(samples, "istio_tcp_received_bytes_total", **sel), received,
         f"{node}: istio_tcp_received_bytes_total sleep -> {peer} (request IP bytes)")
    c.eq(value(samples, "istio_tcp_sent_bytes_total", **sel), sent,
         f"{node}: istio_tcp_sent_bytes_total sleep -> {peer} (response IP bytes)")
    c.eq(value(samples, "istio_tcp_connections_closed_total", **sel), 0,
         f"{node}: no connection closed yet (flows expire after their idle timeout)")


def abuse(c: Checker, port: int, live: Live) -> None:
    """Slow, garbage and over-the-limit clients: cut off, the worker keeps running."""
    _, before = scrape(port)
    idle_before = value(before, "vanish_idle_polls_total") + value(before, "vanish_busy_polls_total")
    socks = []
    t0 = time.time()
    for i in range(6):  # 4 slots; the others are closed at once
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        socks.append(s)
    socks[0].send(b"GET /metr")           # half a request line, then nothing (slow loris)
    socks[1].send(b"\x00\xff garbage \r\n\r\n")  # junk with an end of head: 400
    socks[2].send(b"GET /" + b"A" * 20000)       # oversized head: 431
    # socks[3..5]: nothing at all
    closed_at, status = {}, {}
    deadline = time.time() + 8
    while time.time() < deadline and len(closed_at) < len(socks):
        for i, s in enumerate(socks):
            if i in closed_at:
                continue
            s.settimeout(0.05)
            try:
                data = s.recv(65536)
                if data == b"":
                    closed_at[i] = time.time() - t0
                elif i in (1, 2):
                    status.setdefault(i, data.split(b"\r\n")[0].decode(errors="replace"))
            except socket.timeout:
                pass
            except OSError:
                closed_at[i] = time.time() - t0
    for s in socks:
        s.close()
    times = [closed_at.get(i) for i in range(6)]
    c.check(all(t is not None and t < 4 for t in times), "slow/garbage/over-limit HTTP clients are cut off "
            "within the 2 s timeout", f"closed after {times}")
    c.check(status.get(1, "").startswith("HTTP/1.1 400") and status.get(2, "").startswith("HTTP/1.1 431"),
            "junk gets 400, an oversized head 431", f"{status}")
    _, after = scrape(port)
    polls_after = value(after, "vanish_idle_polls_total") + value(after, "vanish_busy_polls_total")
    c.check(polls_after > idle_before, "the worker kept polling while the clients misbehaved",
            f"polls {idle_before} -> {polls_after}")
    same = all(value(after, n) == value(before, n) for n in (
        "istio_tcp_received_bytes_total", "istio_tcp_sent_bytes_total", "istio_tcp_connections_opened_total",
        "vanish_local_rx_packets_total"))
    c.check(same, "the next scrape answers with the same counters")
    c.check(live.p.poll() is None, "vanishd still running")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("vanishd")
    ap.add_argument("root")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("SKIP: needs root (DPDK)")
        return 77
    c = Checker("metrics")
    work = tempfile.mkdtemp(prefix="vanish-metrics-")
    env = Env(args.vanishd, args.root, work, args.verbose)
    cfg_a, cfg_b = env.example("node-a.textproto"), env.example("node-b.textproto")
    req = requests() + extra_requests()
    rep = replies() + extra_replies()
    lives = []
    try:
        # 1. node-b encrypts the answers.
        b1 = env.run_vanishd("node-b-answers", cfg_b, [[p.frame for p in rep]], [[]],
                             extra=["--metrics", "none", "--ctl-socket", "none"])
        answers = b1.fabric_all()
        c.eq(len(answers), len(rep), "node-b encrypted every answer")

        # 2. node-a live.
        a = Live(env, "node-a", cfg_a, [p.frame for p in req], answers, work)
        lives.append(a)
        n_local = len(req)
        text, s = wait_counter(a.port, "vanish_local_rx_packets_total", n_local)
        if args.verbose:
            print(text)
        c.eq(value(s, "vanish_local_rx_packets_total", worker="0"), n_local, "node-a: local RX packets (worker 0)")
        c.eq(value(s, "vanish_port_rx_packets_total", port="local"), n_local, "node-a: local port RX (rte_eth_stats)")
        c.eq(value(s, "vanish_fabric_rx_packets_total"), len(answers), "node-a: fabric RX packets")
        c.eq(value(s, "vanish_drops_total", reason="unknown_source"), 2,
             "node-a: drops{reason=unknown_source} (the spoofed packets, IPv4 and IPv6)")
        c.eq(len(series(s, "vanish_drops_total", worker="0")), len(series(s, "vanish_drop_reason_info")),
             "node-a: a vanish_drops_total series per drop reason")
        c.check(any("description" in ls and ls.get("reason") == "no_sa" for ls in series(s, "vanish_drop_reason_info")),
                "node-a: drop reasons carry their description")
        c.eq(value(s, "vanish_config_generation"), 1, "node-a: config generation 1")
        c.eq(value(s, "vanish_peer_sa_reachable", peer="node-b"), 1, "node-a: SA to node-b")
        c.eq(value(s, "vanish_info", node="node-a"), 1, "node-a: vanish_info{node}")
        pg_req, pg_rep = tcp_bytes(requests(), "postgres"), tcp_bytes(replies(), "postgres")
        hb_req, hb_rep = tcp_bytes(extra_requests(), "httpbin-1"), tcp_bytes(extra_replies(), "httpbin-1")
        istio_checks(c, s, "source", "postgres", 2, pg_req, pg_rep, "node-a")
        istio_checks(c, s, "source", "httpbin-1", 1, hb_req, hb_rep, "node-a")
        c.eq(series(s, "istio_tcp_connections_opened_total", reporter="destination"), [],
             "node-a: no reporter=destination series (no connection to node-a's workloads)")
        c.eq(value(s, "istio_tcp_connections_opened_total"), 3, "node-a: 3 TCP connections in all "
             "(UDP and ICMP are not istio_tcp)")

        # DPDK telemetry.
        tel = a.telemetry_socket()
        if c.check(bool(tel), "node-a: DPDK telemetry socket exists", a.prefix):
            st = telemetry(tel, "/vanish/stats")
            c.eq((st.get("node"), st.get("local_rx"), st.get("fabric_rx"), st.get("generation")),
                 ("node-a", n_local, len(answers), 1), "telemetry /vanish/stats: node, local_rx, fabric_rx, generation")
            c.eq(st.get("port_local", {}).get("ipackets"), n_local, "telemetry /vanish/stats: port_local.ipackets")
            st0 = telemetry(tel, "/vanish/stats,0")
            c.eq(st0.get("local_rx"), n_local, "telemetry /vanish/stats,0 (worker 0)")
            dr = telemetry(tel, "/vanish/drops")
            c.eq(dr.get("unknown_source"), 2, "telemetry /vanish/drops: unknown_source")
            c.eq(dr.get("unknown_source"), value(s, "vanish_drops_total", reason="unknown_source"),
                 "telemetry and Prometheus agree")
            py = shutil.which("dpdk-telemetry.py")
            if py:
                out = subprocess.run([py, "-f", os.path.basename(os.path.dirname(tel))], input="/vanish/drops\n",
                                     capture_output=True, text=True, timeout=20)
                c.check('"unknown_source": 2' in out.stdout, "dpdk-telemetry.py -f PREFIX reads /vanish/drops",
                        out.stdout[-400:] + out.stderr[-400:])

        abuse(c, a.port, a)
        c.eq(a.stop(), 0, "node-a: exits 0 on SIGTERM")
        lives.remove(a)
        a_fabric = env.read_pcap(a.fabric_out)

        # 3. node-b live with node-a's encrypted requests.
        b = Live(env, "node-b", cfg_b, [], a_fabric, work)
        lives.append(b)
        _, s = wait_counter(b.port, "vanish_fabric_rx_packets_total", len(a_fabric))
        c.eq(value(s, "vanish_fabric_rx_packets_total"), len(a_fabric), "node-b: fabric RX packets")
        istio_checks(c, s, "destination", "postgres", 2, pg_req, 0, "node-b")
        istio_checks(c, s, "destination", "httpbin-1", 1, hb_req, 0, "node-b")
        c.eq(b.stop(), 0, "node-b: exits 0 on SIGTERM")
        lives.remove(b)
    finally:
        for lv in lives:
            lv.stop()
        if args.keep:
            print(f"# kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return c.done()


if __name__ == "__main__":
    sys.exit(main())
