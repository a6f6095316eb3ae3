#!/usr/bin/env python3
"""The reference mesh (shared/scenario.md) in Linux network namespaces, with two real vanishd.

    with NetnsMesh(vanishd, vanishctl, root) as m:
        m.run("sleep", ["curl", "http://10.96.0.20/"])
        ...
        stats = m.stop_vanishd()       # {"node-a": stats.json, "node-b": ...}

Layout (every name starts with a per-run prefix `vnm-<pid>-<hex>`, so parallel runs do not
collide; leftovers of dead runs of this harness are removed at start):

    <p>-sleep  eth0 10.1.0.10/24 fd00:10:1::10/64 ──┐           ┌── <p>-httpbin-1 eth0 10.2.0.20 ...
    <p>-curl-untrusted eth0 10.1.0.11 ... ─────────┤           ├── <p>-httpbin-2 eth0 10.2.0.21 ...
                                                   │           ├── <p>-postgres  eth0 10.2.0.30 ...
    <p>-na:  br0 ── vloc ═ vport (vanishd node-a,  │           │  <p>-nb: br0 ── vloc ═ vport
             af_packet port 0 = local)             │           │          (vanishd node-b port 0)
             fab (af_packet port 1 = fabric) ═════════ veth ════════ fab (vanishd node-b port 1)

- Workloads get the example configs' static MACs (02:00:00:aa:00:NN), their addresses (/24, /64,
  `nodad`), default routes and routes for the service VIP prefixes (10.96.0.0/16, fd00:96::/64)
  via their node's gateway; the gateway's MAC is learned by ARP/ND, which the appliance answers.
  TX checksum offload is off on every veth (af_packet would otherwise see partial checksums).
- The node namespaces have IPv6 disabled and no addresses: the kernel itself sends nothing on the
  appliance's ports, so the fabric link carries only what vanishd sends.
- vanishd runs inside its node namespace (`ip netns exec`) with EAL arguments from
  scripts/lib.sh (hugepages or --no-huge, a private --file-prefix, one worker), af_packet vdevs
  (port 0 = local, port 1 = fabric), --ctl-socket, --stats-json (written at SIGTERM). Memory:
  VANISH_DPDK_MEM_MB defaults to 256 here (two instances); started one after the other, and
  again with --no-huge if hugepages ran out.
- An optional tcpdump on each end of the fabric veth records what each node receives.
- peering=True: SAs from mTLS peering instead of the example configs' static SAs. A dev CA and
  node certificates are made with `vanishctl ca` in the work directory, static_sas are removed,
  each node's config gets a `peering` block, and the node namespaces are joined by a second veth
  pair `mgmt` (172.31.255.1/24 <-> .2/24: management_address :15443), so the peering TCP never
  touches the fabric link. wait_peered() waits until both see each other reachable.

Clean-up runs on any exit of the `with` block (failure, KeyboardInterrupt; install_signal_handlers()
turns SIGTERM/SIGHUP into KeyboardInterrupt so meson's timeout also cleans up): processes are
stopped by pid, namespaces deleted (which deletes every veth and the bridges), DPDK runtime
files removed, the work directory removed unless keep=True.

Also a small toolbox of workload programs, run inside the namespaces as
`python3 netns_lib.py <command> ...` (stdlib only):
  http-server NAME PORT          dual-stack HTTP server answering "NAME\\n"
  tcp-listen PORT...             dual-stack TCP listeners (accept, send "ok\\n", close)
  tcp-connect HOST PORT TIMEOUT  exit 0 if connected, 1 on timeout/refused (prints which)
  udp-echo PORT                  dual-stack UDP echo server
  udp-ping HOST PORT N TIMEOUT   N datagrams, exit 0 if all N echoed by HOST
  udp-send HOST PORT RATE OUT    sequence-numbered datagrams at RATE/s until SIGTERM/SIGINT;
                                 writes {"sent": n, "t_ns": [send time of seq i]} to OUT
  udp-sink PORT OUT              counts sequence numbers until SIGTERM/SIGINT; writes
                                 {"seqs": [...sorted unique...], "dups": n, "bad": n} to OUT
Times are CLOCK_MONOTONIC (the same clock in every namespace and in the test process).
"""

from __future__ import annotations

import faulthandler
import json
import os
import re
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

sys.dont_write_bytecode = True

MGMT_ADDR = {"node-a": "172.31.255.1", "node-b": "172.31.255.2"}  # peering=True only
MGMT_PORT = 15443
OWNER = "vnm"  # every netns / DPDK prefix of this harness starts with "vnm-<pid>-"
THIS = os.path.abspath(__file__)


@dataclass(frozen=True)
class NodeSpec:
    name: str
    short: str
    gw4: str
    gw6: str
    local_mac: str
    fabric_mac: str


@dataclass(frozen=True)
class WorkloadSpec:
    name: str
    node: str
    v4: str
    v6: str
    mac: str


NODES = {
    "node-a": NodeSpec("node-a", "na", "10.1.0.1", "fd00:10:1::1", "02:00:00:00:10:01", "02:00:00:00:16:01"),
    "node-b": NodeSpec("node-b", "nb", "10.2.0.1", "fd00:10:2::1", "02:00:00:00:10:02", "02:00:00:00:16:02"),
}
WORKLOADS = {
    w.name: w for w in [
        WorkloadSpec("sleep", "node-a", "10.1.0.10", "fd00:10:1::10", "02:00:00:aa:00:10"),
        WorkloadSpec("curl-untrusted", "node-a", "10.1.0.11", "fd00:10:1::11", "02:00:00:aa:00:11"),
        WorkloadSpec("httpbin-1", "node-b", "10.2.0.20", "fd00:10:2::20", "02:00:00:aa:00:20"),
        WorkloadSpec("httpbin-2", "node-b", "10.2.0.21", "fd00:10:2::21", "02:00:00:aa:00:21"),
        WorkloadSpec("postgres", "node-b", "10.2.0.30", "fd00:10:2::30", "02:00:00:aa:00:30"),
    ]
}
VIP4, VIP6 = "10.96.0.20", "fd00:96::20"
# Inner MTU of the workloads: fits ESP-in-UDP + Geneve in a 1500-byte fabric, IPv4 or IPv6 outer
# (e2elib.MAX_INNER_BOTH_FABRICS).
WORKLOAD_MTU = 1394


def install_signal_handlers() -> None:
    """SIGTERM / SIGHUP (meson's timeout, a closed terminal) -> KeyboardInterrupt, so `with`
    blocks clean up."""
    def raise_kbi(signum, frame):
        # Where it was (a test killed by its timeout says what it was waiting for).
        print(f"# signal {signum} at:\n" + "".join(traceback.format_stack(frame)[-6:]), file=sys.stderr,
              flush=True)
        raise KeyboardInterrupt(f"signal {signum}")
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, raise_kbi)
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # kill -USR1: every thread's stack


def sh(cmd: Sequence[str], check: bool = True, timeout: float = 60, env: Optional[dict] = None) \
        -> subprocess.CompletedProcess:
    p = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, env=env)
    if check and p.returncode != 0:
        raise RuntimeError(f"command failed ({p.returncode}): {' '.join(cmd)}\n{p.stdout}{p.stderr}")
    return p


def _pid_alive(pid: int) -> bool:
    """True if the process exists and is not a zombie (a killed run's process may wait to be
    reaped for a while)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def _netns_pids(ns: str) -> List[int]:
    p = sh(["ip", "netns", "pids", ns], check=False)
    return [int(x) for x in p.stdout.split() if x.isdigit()]


def _kill_netns_processes(ns: str) -> None:
    """Stops the processes still inside one of this harness's namespaces, each by its pid."""
    for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
        pids = _netns_pids(ns)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        end = time.time() + wait
        while time.time() < end and _netns_pids(ns):
            time.sleep(0.05)


def remove_stale(lib_sh: Optional[str] = None) -> List[str]:
    """Removes namespaces (DPDK runtime dirs, work directories) of earlier runs of this harness whose process is
    gone. Returns the names removed."""
    removed = []
    out = sh(["ip", "netns", "list"], check=False).stdout
    for line in out.splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.match(rf"^{OWNER}-(\d+)-[0-9a-f]+-", name)
        if m and not _pid_alive(int(m.group(1))):
            _kill_netns_processes(name)
            sh(["ip", "netns", "del", name], check=False)
            removed.append(name)
    for d in ("/var/run/dpdk", tempfile.gettempdir()):
        if os.path.isdir(d):
            for name in os.listdir(d):
                m = re.match(rf"^(?:vanish-)?{OWNER}-(\d+)-[0-9a-f]+-", name)
                if m and not _pid_alive(int(m.group(1))):
                    shutil.rmtree(os.path.join(d, name), ignore_errors=True)
                    removed.append(d + "/" + name)
    return removed


def stop_testpmds(procs: Sequence[subprocess.Popen], timeout: float = 10) -> None:
    """Stops non-interactive dpdk-testpmd processes: a newline on stdin to all at once (their
    clean exit), then SIGKILL for any still running after `timeout` s. Bounded: a process that
    survives SIGKILL for 10 s more is reported and left."""
    for p in procs:
        try:
            if p.poll() is None:
                p.stdin.write(b"\n")
            p.stdin.close()
        except (OSError, AttributeError, ValueError):
            pass
    end = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(timeout=max(0.1, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for p in procs:
        if p.poll() is None:
            print(f"# dpdk-testpmd (pid {p.pid}) still running {timeout:.0f} s after its stop: SIGKILL",
                  file=sys.stderr, flush=True)
            p.kill()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                print(f"# pid {p.pid} did not exit after SIGKILL", file=sys.stderr, flush=True)


class _SlowPhases:
    """Clean-up phases that take longer than they should are reported on stderr (a stalled
    clean-up once ate a test's whole timeout)."""

    def __init__(self, what: str, limit: float = 5.0):
        self.what, self.limit, self.t = what, limit, time.monotonic()

    def mark(self, phase: str) -> None:
        now = time.monotonic()
        if now - self.t > self.limit:
            print(f"# {self.what} clean-up: {phase} took {now - self.t:.1f} s", file=sys.stderr, flush=True)
        self.t = now


class Vanishd:
    def __init__(self, proc: subprocess.Popen, node: str, prefix: str, sock: str, stats: str, log: str):
        self.p, self.node, self.prefix, self.sock, self.stats_path, self.log_path = \
            proc, node, prefix, sock, stats, log
        self.stats: Optional[dict] = None
        self.rc: Optional[int] = None

    def alive(self) -> bool:
        return self.p.poll() is None

    def output(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


class NetnsMesh:
    """Context manager: builds the mesh, starts both vanishd, removes everything on exit."""

    def __init__(self, vanishd: str, vanishctl: str, root: str, *, v6fabric: bool = False,
                 capture: bool = True, verbose: bool = False, keep: bool = False,
                 max_idle_sleep_us: int = 100, framecnt: int = 4096, mesh_edit=None,
                 extra_args: Sequence[str] = (), peering: bool = False, peering_extra: str = "",
                 node_edit=None):
        self.vanishd_exe = os.path.abspath(vanishd)
        self.vanishctl_exe = os.path.abspath(vanishctl)
        self.root = os.path.abspath(root)
        self.lib = os.path.join(self.root, "scripts", "lib.sh")
        self.v6fabric = v6fabric
        self.capture = capture
        self.verbose = verbose
        self.keep = keep
        self.max_idle_sleep_us = max_idle_sleep_us
        self.framecnt = framecnt
        self.mesh_edit = mesh_edit
        self.node_edit = node_edit  # (node, text of cfg/<node>.textproto) -> new text; after peering
        self.extra_args = list(extra_args)
        self.peering = peering
        self.peering_extra = peering_extra  # more fields for the peering block (e.g. grace_ms)
        self.prefix = f"{OWNER}-{os.getpid()}-{secrets.token_hex(2)}"
        self.work = ""
        self.cfgdir = ""
        self.configs: Dict[str, str] = {}
        self.namespaces: List[str] = []
        self.daemons: Dict[str, Vanishd] = {}
        self.procs: List[subprocess.Popen] = []
        self.pcaps: List[str] = []
        self._tcpdump: List[subprocess.Popen] = []

    # ---------------------------------------------------------------------------------------
    # names

    def ns(self, who: str) -> str:
        """Namespace of a workload ("sleep") or a node ("node-a")."""
        if who in NODES:
            return f"{self.prefix}-{NODES[who].short}"
        if who in WORKLOADS:
            return f"{self.prefix}-{who}"
        raise KeyError(who)

    def log(self, msg: str) -> None:
        if self.verbose:
            print(f"# {msg}", flush=True)

    # ---------------------------------------------------------------------------------------
    # commands inside namespaces

    def cmd(self, who: str, argv: Sequence[str]) -> List[str]:
        return ["ip", "netns", "exec", self.ns(who), *argv]

    def run(self, who: str, argv: Sequence[str], timeout: float = 60, check: bool = False) \
            -> subprocess.CompletedProcess:
        p = subprocess.run(self.cmd(who, argv), capture_output=True, text=True, timeout=timeout)
        if self.verbose:
            print(f"$ [{who}] {' '.join(argv)} -> {p.returncode}\n{p.stdout}{p.stderr}".rstrip(), flush=True)
        if check and p.returncode != 0:
            raise RuntimeError(f"[{who}] {' '.join(argv)} failed ({p.returncode}): {p.stdout}{p.stderr}")
        return p

    def spawn(self, who: str, argv: Sequence[str], log_name: Optional[str] = None) -> subprocess.Popen:
        """A background process in a namespace, stopped at exit (or earlier by stop())."""
        out = subprocess.DEVNULL
        if log_name:
            out = open(os.path.join(self.work, log_name), "w")
        p = subprocess.Popen(self.cmd(who, argv), stdout=out, stderr=subprocess.STDOUT)
        if log_name:
            out.close()
        self.procs.append(p)
        return p

    def tool(self, who: str, *args: str, log_name: Optional[str] = None) -> subprocess.Popen:
        """Starts one of this file's workload programs (see the module docstring) in a namespace."""
        return self.spawn(who, [sys.executable, THIS, *args], log_name=log_name)

    def serve(self, who: str, *args: str, ready: str, timeout: float = 15) -> subprocess.Popen:
        """Starts a server tool and waits until it prints `ready` (it is then listening)."""
        self._n_logs = getattr(self, "_n_logs", 0) + 1
        name = f"{who}-{args[0]}-{self._n_logs}.log"
        p = self.tool(who, *args, log_name=name)
        if not wait_file_contains(os.path.join(self.work, name), ready, timeout, p):
            with open(os.path.join(self.work, name), errors="replace") as f:
                raise RuntimeError(f"[{who}] {' '.join(args)} did not start: {f.read()}")
        return p

    def tool_run(self, who: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return self.run(who, [sys.executable, THIS, *args], timeout=timeout)

    @staticmethod
    def stop(p: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 10) -> Optional[int]:
        if p.poll() is None:
            try:
                p.send_signal(sig)
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:  # stuck in the kernel: leave it, say so
                    print(f"# pid {p.pid} did not exit after SIGKILL", file=sys.stderr, flush=True)
        return p.returncode

    def ctl(self, node: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        cmd = [self.vanishctl_exe, *args, "--socket", self.daemons[node].sock]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if self.verbose:
            print(f"$ vanishctl {' '.join(cmd[1:])} -> {p.returncode}\n{p.stdout}{p.stderr}".rstrip(), flush=True)
        return p

    # ---------------------------------------------------------------------------------------
    # set-up

    def __enter__(self) -> "NetnsMesh":
        for name in remove_stale():
            print(f"# removed a stale leftover of an earlier run: {name}", flush=True)
        self.work = tempfile.mkdtemp(prefix=f"vanish-{self.prefix}-")
        try:
            self._build()
            self._configs()
            if self.capture:
                self._start_capture()
            for node in NODES:
                self._start_vanishd(node)
            self._wait_ready()
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def _add_ns(self, name: str) -> None:
        sh(["ip", "netns", "add", name])
        self.namespaces.append(name)

    def _ip(self, ns: str, *args: str) -> None:
        sh(["ip", "-n", ns, *args])

    def _nsexec(self, ns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return sh(["ip", "netns", "exec", ns, *args], check=check)

    def _offloads_off(self, ns: str, dev: str) -> None:
        # TX checksum offload off is required; GRO/GSO/TSO off keeps frames as sent (best effort).
        self._nsexec(ns, "ethtool", "-K", dev, "tx", "off")
        self._nsexec(ns, "ethtool", "-K", dev, "gso", "off", "tso", "off", "gro", "off", check=False)

    def _build(self) -> None:
        for node, spec in NODES.items():
            ns = self.ns(node)
            self._add_ns(ns)
            # No IPv6 (so no ND/MLD/RS from the kernel) and no addresses in the node namespace.
            self._nsexec(ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
            self._nsexec(ns, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1")
            # Frames crossing br0 skip iptables (bridge netfilter, when br_netfilter is loaded):
            # nothing filters here, and it is per-frame work on the workloads' path.
            for k in ("iptables", "ip6tables", "arptables"):
                self._nsexec(ns, "sysctl", "-qw", f"net.bridge.bridge-nf-call-{k}=0", check=False)
            self._ip(ns, "link", "set", "lo", "up")
            self._ip(ns, "link", "add", "br0", "type", "bridge", "stp_state", "0")
            self._ip(ns, "link", "add", "vloc", "type", "veth", "peer", "name", "vport")
            self._ip(ns, "link", "set", "vport", "address", spec.local_mac)
            self._ip(ns, "link", "set", "vloc", "master", "br0")
            for dev in ("vloc", "vport"):
                self._offloads_off(ns, dev)
        na, nb = self.ns("node-a"), self.ns("node-b")
        self._ip(na, "link", "add", "fab", "type", "veth", "peer", "name", "fab", "netns", nb)
        self._ip(na, "link", "set", "fab", "address", NODES["node-a"].fabric_mac)
        self._ip(nb, "link", "set", "fab", "address", NODES["node-b"].fabric_mac)
        for node in NODES:
            self._offloads_off(self.ns(node), "fab")
        if self.peering:
            # Management network for the peering TCP: its own veth, never the fabric.
            self._ip(na, "link", "add", "mgmt", "type", "veth", "peer", "name", "mgmt", "netns", nb)
            for node, ns in (("node-a", na), ("node-b", nb)):
                self._ip(ns, "addr", "add", MGMT_ADDR[node] + "/24", "dev", "mgmt")
                self._ip(ns, "link", "set", "mgmt", "up")

        for w in WORKLOADS.values():
            ns, node_ns, spec = self.ns(w.name), self.ns(w.node), NODES[w.node]
            self._add_ns(ns)
            for s in ("net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
                      "net.ipv6.conf.default.accept_ra=0", "net.ipv6.conf.default.router_solicitations=0"):
                self._nsexec(ns, "sysctl", "-qw", s)
            dev = w.name[:15]
            self._ip(node_ns, "link", "add", dev, "type", "veth", "peer", "name", "eth0", "netns", ns)
            self._ip(node_ns, "link", "set", dev, "master", "br0")
            self._offloads_off(node_ns, dev)
            self._ip(node_ns, "link", "set", dev, "up")
            self._ip(ns, "link", "set", "lo", "up")
            self._ip(ns, "link", "set", "eth0", "address", w.mac, "mtu", str(WORKLOAD_MTU))
            self._offloads_off(ns, "eth0")
            self._ip(ns, "addr", "add", f"{w.v4}/24", "dev", "eth0")
            self._ip(ns, "-6", "addr", "add", f"{w.v6}/64", "dev", "eth0", "nodad")
            self._ip(ns, "link", "set", "eth0", "up")
            self._ip(ns, "route", "add", "default", "via", spec.gw4)
            self._ip(ns, "-6", "route", "add", "default", "via", spec.gw6)
            self._ip(ns, "route", "add", "10.96.0.0/16", "via", spec.gw4)
            self._ip(ns, "-6", "route", "add", "fd00:96::/64", "via", spec.gw6)
        for node in NODES:
            ns = self.ns(node)
            for dev in ("br0", "vloc", "vport", "fab"):
                self._ip(ns, "link", "set", dev, "up")
        self.log(f"namespaces: {' '.join(self.namespaces)}")

    def _configs(self) -> None:
        self.cfgdir = os.path.join(self.work, "cfg")
        os.makedirs(self.cfgdir)
        src = os.path.join(self.root, "examples")
        for f in os.listdir(src):
            if f.endswith(".textproto"):
                shutil.copy(os.path.join(src, f), os.path.join(self.cfgdir, f))
        if self.mesh_edit:
            p = os.path.join(self.cfgdir, "mesh.textproto")
            with open(p) as f:
                text = f.read()
            with open(p, "w") as f:
                f.write(self.mesh_edit(text))
        suffix = "-v6fabric" if self.v6fabric else ""
        self.configs = {n: os.path.join(self.cfgdir, f"{n}{suffix}.textproto") for n in NODES}
        if self.peering:
            self._peering_configs()
        if self.node_edit:
            for node in NODES:
                p = os.path.join(self.cfgdir, f"{node}.textproto")
                with open(p) as f:
                    text = f.read()
                with open(p, "w") as f:
                    f.write(self.node_edit(node, text))

    def _peering_configs(self) -> None:
        """Dev CA + node certificates (vanishctl ca), static SAs out, peering blocks in."""
        ca = os.path.join(self.cfgdir, "ca")
        sh([self.vanishctl_exe, "ca", "init", "--dir", ca])
        for node in NODES:
            sh([self.vanishctl_exe, "ca", "issue", "--dir", ca, "--spiffe-id",
                f"spiffe://cluster.local/ns/vanish-system/sa/{node}",
                "--out", os.path.join(self.cfgdir, "certs", node) + "/"])
        p = os.path.join(self.cfgdir, "mesh.textproto")
        with open(p) as f:
            text = f.read()
        text = re.sub(r"\nstatic_sas \{[^}]*\}", "", text)
        for node, addr in MGMT_ADDR.items():
            text = re.sub(r'(name: "%s"[^}]*management_address: ")[^"]*"' % node,
                          r'\g<1>%s:%d"' % (addr, MGMT_PORT), text)
        with open(p, "w") as f:
            f.write(text)
        for node, path in self.configs.items():
            with open(path, "a") as f:
                f.write(f"""
# mTLS peering (added by the netns harness): certificates from its dev CA.
peering {{
  cert_file: "certs/{node}/cert.pem"
  key_file: "certs/{node}/key.pem"
  bundle_file: "certs/{node}/bundle.pem"
  {self.peering_extra}
}}
""")

    def wait_peered(self, timeout: float = 20) -> bool:
        """Both vanishd see the other reachable over mTLS-keyed SAs."""
        end = time.time() + timeout
        while time.time() < end:
            ok = True
            for node in NODES:
                p = self.ctl(node, "peers", "-o", "json")
                try:
                    rows = json.loads(p.stdout)["peers"]
                except (ValueError, KeyError):
                    rows = []
                ok = ok and bool(rows) and all(r.get("state") == "reachable" and r.get("keying") == "mtls"
                                               for r in rows)
            if ok:
                return True
            time.sleep(0.1)
        return False

    def restart_vanishd(self, node: str, sig: int = signal.SIGKILL) -> None:
        """Kills one vanishd (SIGKILL by default: no clean shutdown) and starts it again with the
        same configuration; its earlier log is kept as <node>.log.<n>."""
        d = self.daemons[node]
        if d.alive():
            d.p.send_signal(sig)
            try:
                d.p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                d.p.kill()
                d.p.wait()
        n = 1
        while os.path.exists(f"{d.log_path}.{n}"):
            n += 1
        os.replace(d.log_path, f"{d.log_path}.{n}")
        if os.path.exists(d.sock):
            os.unlink(d.sock)
        self._start_vanishd(node)

    def _start_capture(self) -> None:
        """tcpdump -Q in on both ends of the fabric veth: together every frame each appliance
        sent (a packet socket on the sending end does not see af_packet's own TX)."""
        for node in NODES:
            pcap = os.path.join(self.work, f"fabric-in-{node}.pcap")
            log = os.path.join(self.work, f"tcpdump-{node}.log")
            with open(log, "w") as out:
                p = subprocess.Popen(
                    self.cmd(node, ["tcpdump", "-i", "fab", "-Q", "in", "-n", "-U", "-s", "256", "-w", pcap]),
                    stdout=out, stderr=subprocess.STDOUT)
            self._tcpdump.append(p)
            self.pcaps.append(pcap)
            if not wait_file_contains(log, "listening on", 15, p):
                with open(log, errors="replace") as f:
                    raise RuntimeError(f"tcpdump did not start: {f.read()}")

    def _start_vanishd(self, node: str) -> None:
        """Starts one vanishd and waits for its control socket. The two are started one after the
        other, so lib.sh sizes the second one's memory after the first has taken its hugepages;
        if hugepages run out anyway (other DPDK processes on the machine), it is started again
        with --no-huge."""
        for attempt, huge_env in enumerate((os.environ.get("VANISH_HUGE"), "0")):
            prefix = f"{self.prefix}-{NODES[node].short}{attempt or ''}"
            sock = os.path.join(self.work, f"{node}.sock")
            stats = os.path.join(self.work, f"{node}-stats.json")
            log = os.path.join(self.work, f"{node}.log")
            af = f"qpairs=1,blocksz=4096,framesz=2048,framecnt={self.framecnt}"
            env = dict(os.environ)
            env.setdefault("VANISH_DPDK_MEM_MB", "256")
            if huge_env is not None:
                env["VANISH_HUGE"] = huge_env
            eal = [x for x in sh(["bash", self.lib, "eal-args", prefix, "1"], env=env).stdout.splitlines() if x]
            argv = [self.vanishd_exe, *eal, "--log-level=error",
                    "--vdev", f"net_af_packet0,iface=vport,{af}",
                    "--vdev", f"net_af_packet1,iface=fab,{af}",
                    "--", "--config", self.configs[node], "--ctl-socket", sock, "--stats-json", stats,
                    "--max-idle-sleep-us", str(self.max_idle_sleep_us), *self.extra_args]
            with open(os.path.join(self.work, f"{node}.cmdline"), "w") as f:
                f.write(" ".join(self.cmd(node, argv)) + "\n")
            self.log("start " + " ".join(argv))
            with open(log, "w") as out:
                p = subprocess.Popen(self.cmd(node, argv), stdout=out, stderr=subprocess.STDOUT)
            d = self.daemons[node] = Vanishd(p, node, prefix, sock, stats, log)
            end = time.time() + 90
            while not os.path.exists(sock) and d.alive() and time.time() < end:
                time.sleep(0.05)
            if os.path.exists(sock) and d.alive():
                return
            if d.alive():
                raise RuntimeError(f"vanishd {node} did not open its control socket:\n{d.output()}")
            d.rc = p.returncode
            sh(["bash", self.lib, "cleanup", prefix], check=False)
            if attempt == 0 and "--no-huge" not in eal and re.search(r"hugepage|memory", d.output(), re.I):
                print(f"# vanishd {node} could not get hugepages (rc {p.returncode}); again with --no-huge",
                      flush=True)
                continue
            raise RuntimeError(f"vanishd {node} exited ({p.returncode}):\n{d.output()}")

    def _wait_ready(self) -> None:
        # Every workload resolves its gateway (ARP / ND answered by the appliance): the appliance
        # answers echo requests to its gateway addresses.
        for w in WORKLOADS.values():
            spec = NODES[w.node]
            for gw in (spec.gw4, spec.gw6):
                ok = False
                for _ in range(20):
                    if self.run(w.name, ["ping", "-n", "-c", "1", "-W", "1", gw], timeout=10).returncode == 0:
                        ok = True
                        break
                if not ok:
                    raise RuntimeError(f"{w.name} cannot reach its gateway {gw}: "
                                       f"{self.run(w.name, ['ip', 'neigh']).stdout}\n"
                                       f"{self.daemons[w.node].output()}")
        self.log("both appliances answer their workloads' gateway pings")

    # ---------------------------------------------------------------------------------------
    # tear-down

    def stop_vanishd(self) -> Dict[str, dict]:
        """SIGTERM to both vanishd (stats JSON written at exit); returns {node: stats}."""
        for d in self.daemons.values():
            if d.alive():
                d.p.send_signal(signal.SIGTERM)
        for node, d in self.daemons.items():
            try:
                d.rc = d.p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                d.p.kill()
                d.rc = d.p.wait()
            if d.stats is None:
                try:
                    with open(d.stats_path) as f:
                        d.stats = json.load(f)
                except (OSError, ValueError):
                    d.stats = {}
        return {n: d.stats for n, d in self.daemons.items()}

    def stop_capture(self) -> List[str]:
        """Stops the fabric capture; returns the pcap files (frames received by node-a, node-b)."""
        for p in self._tcpdump:
            self.stop(p, signal.SIGINT)
        self._tcpdump = []
        return self.pcaps

    def __exit__(self, et, ev, tb) -> bool:
        # Uninterruptible-ish: a second Ctrl-C during clean-up would leave things behind.
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)
        slow = _SlowPhases(type(self).__name__)
        try:
            for p in self.procs:
                try:
                    self.stop(p, timeout=5)
                except Exception:
                    pass
            slow.mark("background processes")
            if self._tcpdump:
                self.stop_capture()
            slow.mark("capture")
            if any(d.alive() for d in self.daemons.values()):
                self.stop_vanishd()
            slow.mark("daemons")
            for ns in reversed(self.namespaces):
                _kill_netns_processes(ns)
                sh(["ip", "netns", "del", ns], check=False)
                slow.mark(f"namespace {ns}")
            for d in self.daemons.values():
                sh(["bash", self.lib, "cleanup", d.prefix], check=False)
            if self.work and not self.keep:
                shutil.rmtree(self.work, ignore_errors=True)
            elif self.work:
                print(f"# kept {self.work}", flush=True)
            slow.mark("files")
        finally:
            signal.signal(signal.SIGINT, old)
        return False


# --------------------------------------------------------------------------------------------
# The plaintext baseline: dpdk-testpmd io-forwarding between two workload veths

class PlainBridge:
    """Context manager: two namespaces `<p>-pc` (client, 10.9.0.1, fd00:9::1) and `<p>-ps`
    (server, 10.9.0.2, fd00:9::2), each with an eth0 veth (same MTU and offloads as the mesh's
    workloads) whose peer sits in `<p>-pb`, where dpdk-testpmd forwards frames between the two
    peers (net_af_packet, io mode, one forwarding lcore): the same kernel path as a workload's
    traffic into an appliance, without the appliance's work. Removed on exit, even on failure.

        with PlainBridge(testpmd, root) as b:
            b.run("client", ["iperf3", "-c", b.SERVER4, ...])
    """

    CLIENT4, SERVER4, CLIENT6, SERVER6 = "10.9.0.1", "10.9.0.2", "fd00:9::1", "fd00:9::2"

    def __init__(self, testpmd: str, root: str, *, mtu: int = WORKLOAD_MTU, framecnt: int = 4096,
                 verbose: bool = False, prefix: Optional[str] = None):
        self.testpmd_exe = testpmd
        self.root = os.path.abspath(root)
        self.lib = os.path.join(self.root, "scripts", "lib.sh")
        self.mtu = mtu
        self.framecnt = framecnt
        self.verbose = verbose
        self.prefix = prefix or f"{OWNER}-{os.getpid()}-{secrets.token_hex(2)}"
        self.namespaces: List[str] = []
        self.procs: List[subprocess.Popen] = []
        self.testpmd: Optional[subprocess.Popen] = None
        self.dpdk_prefix = f"{self.prefix}-pmd"
        self.work = ""
        self.eal: List[str] = []

    def ns(self, who: str) -> str:
        return f"{self.prefix}-" + {"client": "pc", "server": "ps", "bridge": "pb"}[who]

    def run(self, who: str, argv: Sequence[str], timeout: float = 60) -> subprocess.CompletedProcess:
        p = subprocess.run(["ip", "netns", "exec", self.ns(who), *argv], capture_output=True, text=True,
                           timeout=timeout)
        if self.verbose:
            print(f"$ [bridge {who}] {' '.join(argv)} -> {p.returncode}\n{p.stdout}{p.stderr}".rstrip(), flush=True)
        return p

    def spawn(self, who: str, argv: Sequence[str]) -> subprocess.Popen:
        p = subprocess.Popen(["ip", "netns", "exec", self.ns(who), *argv], stdout=subprocess.DEVNULL,
                             stderr=subprocess.STDOUT)
        self.procs.append(p)
        return p

    def __enter__(self) -> "PlainBridge":
        self.work = tempfile.mkdtemp(prefix=f"vanish-{self.prefix}-pmd-")
        try:
            self._build()
            self._start()
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def _build(self) -> None:
        br = self.ns("bridge")
        for who in ("bridge", "client", "server"):
            sh(["ip", "netns", "add", self.ns(who)])
            self.namespaces.append(self.ns(who))
            sh(["ip", "-n", self.ns(who), "link", "set", "lo", "up"])
        sh(["ip", "netns", "exec", br, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"])
        sh(["ip", "netns", "exec", br, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"])
        for who, port, a4, a6, mac in (("client", "pa", self.CLIENT4, self.CLIENT6, "02:00:00:99:00:01"),
                                       ("server", "pb", self.SERVER4, self.SERVER6, "02:00:00:99:00:02")):
            ns = self.ns(who)
            sh(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0"])
            sh(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0"])
            sh(["ip", "-n", br, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns])
            sh(["ip", "-n", ns, "link", "set", "eth0", "address", mac, "mtu", str(self.mtu)])
            for n, dev in ((ns, "eth0"), (br, port)):
                sh(["ip", "netns", "exec", n, "ethtool", "-K", dev, "tx", "off"])
                sh(["ip", "netns", "exec", n, "ethtool", "-K", dev, "gso", "off", "tso", "off", "gro", "off"],
                   check=False)
            sh(["ip", "-n", ns, "addr", "add", f"{a4}/24", "dev", "eth0"])
            sh(["ip", "-n", ns, "-6", "addr", "add", f"{a6}/64", "dev", "eth0", "nodad"])
            sh(["ip", "-n", ns, "link", "set", "eth0", "up"])
            sh(["ip", "-n", br, "link", "set", port, "up"])

    def _start(self) -> None:
        for attempt, huge_env in enumerate((os.environ.get("VANISH_HUGE"), "0")):
            env = dict(os.environ)
            env.setdefault("VANISH_DPDK_MEM_MB", "256")
            if huge_env is not None:
                env["VANISH_HUGE"] = huge_env
            prefix = f"{self.dpdk_prefix}{attempt or ''}"
            self.eal = [x for x in sh(["bash", self.lib, "eal-args", prefix, "1"], env=env).stdout.splitlines() if x]
            af = f"qpairs=1,blocksz=4096,framesz=2048,framecnt={self.framecnt}"
            argv = [self.testpmd_exe, *self.eal, "--log-level=error",
                    "--vdev", f"net_af_packet0,iface=pa,{af}", "--vdev", f"net_af_packet1,iface=pb,{af}",
                    "--", "--forward-mode=io", "--nb-cores=1", "--rxq=1", "--txq=1",
                    "--total-num-mbufs=16384", "--no-lsc-interrupt"]
            log = os.path.join(self.work, f"testpmd{attempt}.log")
            with open(log, "w") as out:
                # Non-interactive testpmd forwards until its stdin gets a newline or EOF.
                self.testpmd = subprocess.Popen(["ip", "netns", "exec", self.ns("bridge"), "stdbuf", "-oL", *argv],
                                                stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT)
            self.dpdk_prefix = prefix
            if wait_file_contains(log, "Press enter to exit", 60, self.testpmd):
                break
            with open(log, errors="replace") as f:
                text = f.read()
            self._stop_testpmd()
            sh(["bash", self.lib, "cleanup", prefix], check=False)
            if attempt == 0 and "--no-huge" not in self.eal and re.search(r"hugepage|memory", text, re.I):
                continue
            raise RuntimeError(f"dpdk-testpmd did not start:\n{text[-3000:]}")
        # The client resolves the server through the bridge (ARP forwarded like any frame).
        for _ in range(20):
            if self.run("client", ["ping", "-n", "-c", "1", "-W", "1", self.SERVER4], timeout=10).returncode == 0:
                return
        raise RuntimeError("plain bridge: client cannot ping the server through dpdk-testpmd")

    def _stop_testpmd(self) -> None:
        p, self.testpmd = self.testpmd, None
        if p is None or p.poll() is not None:
            return
        stop_testpmds([p])

    def __exit__(self, et, ev, tb) -> bool:
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            for p in self.procs:
                NetnsMesh.stop(p, timeout=5)
            self._stop_testpmd()
            for ns in reversed(self.namespaces):
                _kill_netns_processes(ns)
                sh(["ip", "netns", "del", ns], check=False)
            sh(["bash", self.lib, "cleanup", self.dpdk_prefix], check=False)
            if self.work:
                shutil.rmtree(self.work, ignore_errors=True)
        finally:
            signal.signal(signal.SIGINT, old)
        return False


class TestpmdMesh(NetnsMesh):
    """The mesh's topology (workload namespaces, bridges, local and fabric veths) with
    dpdk-testpmd in place of each vanishd: mac forwarding between the node's two af_packet ports,
    plaintext, no classification, no crypto. Only sleep <-> httpbin-1 work (each testpmd rewrites
    the destination MAC to the one workload behind it; the workloads get their gateway's MAC as a
    static neighbour). Compared with the overlay it shows what the appliances cost beyond the
    harness's kernel path."""

    PEER_MAC = {"node-a": (WORKLOADS["sleep"].mac, NODES["node-b"].fabric_mac),
                "node-b": (WORKLOADS["httpbin-1"].mac, NODES["node-a"].fabric_mac)}

    def __init__(self, testpmd: str, root: str, **kw):
        kw.setdefault("capture", False)
        super().__init__(testpmd, testpmd, root, **kw)
        self.testpmd_exe = testpmd

    def _start_vanishd(self, node: str) -> None:
        prefix = f"{self.prefix}-{NODES[node].short}"
        env = dict(os.environ)
        env.setdefault("VANISH_DPDK_MEM_MB", "256")
        eal = [x for x in sh(["bash", self.lib, "eal-args", prefix, "1"], env=env).stdout.splitlines() if x]
        af = f"qpairs=1,blocksz=4096,framesz=2048,framecnt={self.framecnt}"
        local_peer, fabric_peer = self.PEER_MAC[node]
        argv = ["stdbuf", "-oL", self.testpmd_exe, *eal, "--log-level=error",
                "--vdev", f"net_af_packet0,iface=vport,{af}", "--vdev", f"net_af_packet1,iface=fab,{af}",
                "--", "--forward-mode=mac", "--nb-cores=1", f"--eth-peer=0,{local_peer}",
                f"--eth-peer=1,{fabric_peer}", "--total-num-mbufs=16384", "--no-lsc-interrupt"]
        log = os.path.join(self.work, f"{node}.log")
        with open(log, "w") as out:
            p = subprocess.Popen(self.cmd(node, argv), stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT)
        self.daemons[node] = Vanishd(p, node, prefix, "", "", log)
        if not wait_file_contains(log, "Press enter to exit", 60, p):
            with open(log, errors="replace") as f:
                raise RuntimeError(f"dpdk-testpmd ({node}) did not start:\n{f.read()[-3000:]}")

    def _wait_ready(self) -> None:
        for w in ("sleep", "httpbin-1"):
            spec = NODES[WORKLOADS[w].node]
            self.run(w, ["ip", "neigh", "replace", spec.gw4, "lladdr", spec.local_mac, "dev", "eth0",
                         "nud", "permanent"], check=True)

    def stop_vanishd(self) -> Dict[str, dict]:
        procs = [d.p for d in self.daemons.values() if d.alive()]
        stop_testpmds(procs)
        for d in self.daemons.values():
            d.rc = d.p.poll()
        return {}


# --------------------------------------------------------------------------------------------
# iperf3

def iperf3_client(run, who: str, server: str, *, udp: bool = False, seconds: float = 5,
                  bitrate: str = "", length: int = 0, omit: int = 1, port: int = 5201) -> dict:
    """Runs `iperf3 -c SERVER -J` in a namespace (run = NetnsMesh.run or PlainBridge.run) and
    returns {"ok", "gbps" (receiver side), "retransmits" (TCP), "lost_percent", "jitter_ms" (UDP),
    "error"}. An iperf3 server (`iperf3 -s`) must listen on SERVER:PORT."""
    argv = ["iperf3", "-c", server, "-p", str(port), "-J", "-t", str(seconds), "-O", str(omit),
            "--connect-timeout", "3000"]
    if udp:
        argv += ["-u", "-b", bitrate or "100M"]
    elif bitrate:
        argv += ["-b", bitrate]
    if length:
        argv += ["-l", str(length)]
    p = run(who, argv, timeout=seconds + omit + 30)
    try:
        j = json.loads(p.stdout)
    except ValueError:
        return {"ok": False, "gbps": 0.0, "error": (p.stdout + p.stderr).strip()[-300:] or f"rc {p.returncode}"}
    if "error" in j:
        return {"ok": False, "gbps": 0.0, "error": j["error"]}
    end = j.get("end", {})
    if udp:
        s = end.get("sum_received") or end.get("sum", {})
        lost = end.get("sum", {}).get("lost_percent", s.get("lost_percent", 0.0))
        return {"ok": p.returncode == 0, "gbps": s.get("bits_per_second", 0) / 1e9, "lost_percent": lost,
                "jitter_ms": end.get("sum", {}).get("jitter_ms", 0.0), "error": ""}
    return {"ok": p.returncode == 0, "gbps": end.get("sum_received", {}).get("bits_per_second", 0) / 1e9,
            "retransmits": end.get("sum_sent", {}).get("retransmits", 0), "error": ""}


# --------------------------------------------------------------------------------------------
# Reporting

class Report:
    """One line per case: `PASS name: detail` / `FAIL name: reason`; exit code 1 on any FAIL."""

    def __init__(self, name: str):
        self.name = name
        self.failed: List[str] = []
        self.passed = 0
        self.t0 = time.monotonic()

    def check(self, cond: bool, what: str, detail: str = "") -> bool:
        if cond:
            self.passed += 1
            print(f"PASS {what}" + (f": {detail}" if detail else ""), flush=True)
        else:
            self.failed.append(what)
            print(f"FAIL {what}" + (f": {detail}" if detail else ""), flush=True)
        return cond

    def info(self, msg: str) -> None:
        print(f"     {msg}", flush=True)

    def done(self) -> int:
        dt = time.monotonic() - self.t0
        status = "PASS" if not self.failed else "FAIL"
        print(f"{self.name}: {status}: {self.passed} passed, {len(self.failed)} failed ({dt:.1f} s)", flush=True)
        for f in self.failed:
            print(f"  failed: {f}")
        return 0 if not self.failed else 1


def wait_file_contains(path: str, text: str, timeout: float = 10, proc: Optional[subprocess.Popen] = None) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        try:
            with open(path, errors="replace") as f:
                if text in f.read():
                    return True
        except OSError:
            pass
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(0.02)
    return False


# --------------------------------------------------------------------------------------------
# Counters

def drops(stats: dict) -> Dict[str, int]:
    return {k: int(v) for k, v in stats.get("total", {}).get("drops", {}).items()}


def counter(stats: dict, name: str) -> int:
    return int(stats.get("total", {}).get(name, 0))


# --------------------------------------------------------------------------------------------
# pcap reading (for the fabric capture)

def read_pcap(path: str) -> List[bytes]:
    frames = []
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return frames
    magic = data[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    off = 24
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(endian + "IIII", data[off:off + 16])
        frames.append(data[off + 16:off + 16 + incl])
        off += 16 + incl
    return frames


def classify_fabric_frame(fr: bytes) -> str:
    """'esp' for ESP-in-UDP to/from port 4500, otherwise a short description."""
    if len(fr) < 14:
        return "runt"
    et = struct.unpack("!H", fr[12:14])[0]
    if et == 0x0800 and len(fr) >= 14 + 20 + 8:
        ihl = (fr[14] & 0xF) * 4
        proto = fr[14 + 9]
        l4 = fr[14 + ihl:]
        if proto == 17 and len(l4) >= 8 and 4500 in struct.unpack("!HH", l4[:4]):
            return "esp"
        return f"ipv4 proto {proto}"
    if et == 0x86DD and len(fr) >= 14 + 40 + 8:
        nh = fr[14 + 6]
        l4 = fr[14 + 40:]
        if nh == 17 and 4500 in struct.unpack("!HH", l4[:4]):
            return "esp"
        return f"ipv6 next header {nh}"
    return f"ethertype 0x{et:04x}"


# --------------------------------------------------------------------------------------------
# Workload programs (python3 netns_lib.py <command> ...)

def _dual_stack_socket(kind: int, port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET6, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port))
    return s


class _Stop(Exception):
    pass


def _stop_on_signals() -> None:
    def h(signum, frame):
        raise _Stop()
    signal.signal(signal.SIGTERM, h)
    signal.signal(signal.SIGINT, h)


def _http_server(name: str, port: int) -> None:
    import socketserver
    from http.server import BaseHTTPRequestHandler

    body = (name + "\n").encode()

    class H(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    class S(socketserver.ThreadingTCPServer):
        address_family = socket.AF_INET6
        allow_reuse_address = True
        daemon_threads = True

        def server_bind(self):
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            super().server_bind()

    with S(("::", port), H) as srv:
        print(f"http-server {name} listening on {port}", flush=True)
        srv.serve_forever()


def _tcp_listen(ports: List[int]) -> None:
    import selectors
    sel = selectors.DefaultSelector()
    for p in ports:
        s = _dual_stack_socket(socket.SOCK_STREAM, p)
        s.listen(64)
        sel.register(s, selectors.EVENT_READ)
    print(f"tcp-listen on {ports}", flush=True)
    while True:
        for key, _ in sel.select():
            c, _ = key.fileobj.accept()
            try:
                c.sendall(b"ok\n")
            except OSError:
                pass
            c.close()


def _tcp_connect(host: str, port: int, timeout: float) -> int:
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout)
    t0 = time.monotonic()
    try:
        s.connect((host, port))
        data = s.recv(16)
        print(f"connected in {1000 * (time.monotonic() - t0):.1f} ms, got {data!r}")
        return 0
    except socket.timeout:
        print(f"timeout after {timeout} s")
        return 1
    except OSError as e:
        print(f"error: {e}")
        return 1
    finally:
        s.close()


def _udp_echo(port: int) -> None:
    s = _dual_stack_socket(socket.SOCK_DGRAM, port)
    print(f"udp-echo on {port}", flush=True)
    while True:
        data, addr = s.recvfrom(65535)
        s.sendto(data, addr)


def _udp_ping(host: str, port: int, n: int, timeout: float) -> int:
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    got = 0
    for i in range(n):
        msg = b"echo %d" % i
        s.sendto(msg, (host, port))
        try:
            while True:
                data, addr = s.recvfrom(65535)
                if data == msg:
                    break
        except socket.timeout:
            print(f"#{i}: no echo within {timeout} s")
            continue
        if addr[0] != host:
            print(f"#{i}: echo from {addr[0]}, expected {host}")
            continue
        got += 1
    print(f"{got}/{n} echoed by {host}")
    return 0 if got == n else 1


STREAM_HDR = struct.Struct("!4sQQ")  # magic, sequence number, send time (CLOCK_MONOTONIC ns)
STREAM_MAGIC = b"VNSQ"


def _udp_send(host: str, port: int, rate: float, out: str, size: int = 100) -> None:
    from array import array
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    times = array("q")
    errors = 0
    pad = b"\x00" * max(0, size - STREAM_HDR.size)
    interval = 1.0 / rate
    _stop_on_signals()
    # The stop signal is held back while a datagram is sent and recorded: a stop between the two
    # would leave one datagram received but not counted as sent.
    stop_sigs = {signal.SIGTERM, signal.SIGINT}
    t_next = time.monotonic()
    try:
        while True:
            now = time.monotonic()
            if now < t_next:
                time.sleep(t_next - now)
            t_next += interval
            seq = len(times)
            signal.pthread_sigmask(signal.SIG_BLOCK, stop_sigs)
            try:
                t = time.monotonic_ns()
                s.sendto(STREAM_HDR.pack(STREAM_MAGIC, seq, t) + pad, (host, port))
                times.append(t)
            except OSError:
                errors += 1  # not sent: the same sequence number is tried again
            finally:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, stop_sigs)  # a pending stop lands here
    except _Stop:
        pass
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"sent": len(times), "send_errors": errors, "t_ns": times.tolist()}, f)
    os.rename(tmp, out)


def _udp_sink(port: int, out: str) -> None:
    s = _dual_stack_socket(socket.SOCK_DGRAM, port)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    seen = bytearray()
    dups = bad = 0
    last_ns = 0
    _stop_on_signals()
    print(f"udp-sink on {port}", flush=True)
    try:
        while True:
            data = s.recv(65535)
            if len(data) < STREAM_HDR.size or data[:4] != STREAM_MAGIC:
                bad += 1
                continue
            _, seq, t = STREAM_HDR.unpack_from(data)
            if seq >= len(seen):
                seen.extend(b"\x00" * (seq + 1 - len(seen) + 4096))
            if seen[seq]:
                dups += 1
            else:
                seen[seq] = 1
                last_ns = max(last_ns, t)
    except _Stop:
        pass
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"seqs": [i for i, v in enumerate(seen) if v], "dups": dups, "bad": bad,
                   "last_send_ns": last_ns}, f)
    os.rename(tmp, out)


def _main(argv: List[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, a = argv[0], argv[1:]
    try:
        if cmd == "http-server":
            _http_server(a[0], int(a[1]))
        elif cmd == "tcp-listen":
            _tcp_listen([int(x) for x in a])
        elif cmd == "tcp-connect":
            return _tcp_connect(a[0], int(a[1]), float(a[2]))
        elif cmd == "udp-echo":
            _udp_echo(int(a[0]))
        elif cmd == "udp-ping":
            return _udp_ping(a[0], int(a[1]), int(a[2]), float(a[3]))
        elif cmd == "udp-send":
            _udp_send(a[0], int(a[1]), float(a[2]), a[3])
        elif cmd == "udp-sink":
            _udp_sink(int(a[0]), a[1])
        else:
            print(f"unknown command {cmd}", file=sys.stderr)
            return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda s, f: sys.exit(0))
    sys.exit(_main(sys.argv[1:]))
