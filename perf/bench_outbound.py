#!/usr/bin/env python3
"""bench_outbound: outbound (encrypt) or inbound (decrypt) throughput of one DPDK worker core,
on virtual ports.

Runs a DPDK application under a fixed harness, one frame size at a time:

    --direction out (default): plaintext workload traffic replayed into the local port
      port 0 (local / plaintext in):  --vdev net_pcap0,rx_pcap=IN.pcap,infinite_rx=1
      port 1 (fabric / ESP out):      --vdev net_null0,no-rx=1
    --direction in: ESP from the peer node replayed into the fabric port
      port 0 (local / plaintext out): --vdev net_null0,no-rx=1
      port 1 (fabric / ESP in):       --vdev net_pcap0,rx_pcap=IN.pcap,infinite_rx=1

Inbound input comes from `vanish-perf export --dir in` (sequence numbers 1..N, keys of the
static SA from the peer). A replayed pcap repeats its sequence numbers, so no anti-replay
window can pass it: the inbound runs turn anti-replay off on both sides. vanishd gets a copy of
--config whose static SAs towards this node have `replay_window: 0` and `esn: false` (written
to the workdir); ipsec-secgw runs without -e and with its default -w 0 (no replay window).
The generator uses that same copy, so its ESP carries 8-byte AAD (no ESN) for both. Each DUT
gets its own wire format: vanish (ESP-in-UDP 4500 | UDP 6081 | Geneve) for vanishd, ESP
transport for secgw; testpmd forwards the vanish format. The size is the plaintext frame that
leaves the local port; Gbps(in) counts the ESP frames.

and reads the ethdev counters through DPDK telemetry
(/var/run/dpdk/<file-prefix>/dpdk_telemetry.v2, `/ethdev/stats,<port>`) at two instants after a
warm-up. The same method works for any DPDK application that keeps telemetry on.

Applications (--app, comma-separated list, or `both` = secgw,vanishd, `all` = the three):
  secgw    DPDK's ipsec-secgw example (built by perf/secgw/build.sh), ESP transport AES-128-GCM
  vanishd  the appliance: vanishd -l 0,1 ... -- --config PATH
  testpmd  dpdk-testpmd io forwarding: the I/O limit of the harness (no crypto)

Figures (per run): Mpps = packets transmitted on the egress port / s;
  gbps_egress  = egress frame bytes (Ethernet frames without FCS, i.e. the encrypted ESP
                 frames for secgw/vanishd) x 8 / s. net_null (22.11) counts no TX bytes, so
                 the egress frame size comes from an "egress probe" pass (the pcap replayed
                 once, port 1 captured by net_pcap) unless the PMD reports obytes;
  gbps_input   = Mpps x input frame size x 8 (plaintext frame bytes carried, without FCS);
  rx_mpps      = packets taken from the ingress port / s (virtual ports never miss: the app
                 pulls as fast as it can, so rx - tx = packets the app dropped).
These are per-core CPU figures on virtual ports (net_pcap replays mbuf copies, net_null frees),
not NIC line rates.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shlex
import shutil
import signal
import socket
import statistics
from struct import error as struct_error
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import pcapgen  # noqa: E402

RUNTIME_DIR = "/var/run/dpdk"
HUGE_DIR = "/dev/hugepages"
PREFIX_STEM = "vbench"
DEFAULT_SIZES = [64, 256, 1420]
SECGW_CFG = {
    "trs": os.path.join(HERE, "secgw", "secgw-node-a-trs.cfg"),
    "tun": os.path.join(HERE, "secgw", "secgw-node-a-tun.cfg"),
}
PORT_IN, PORT_OUT = 0, 1  # --direction out; main() swaps them for --direction in


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Telemetry


class Telemetry:
    """Client of the DPDK telemetry v2 socket (SOCK_SEQPACKET, one JSON reply per command)."""

    def __init__(self, prefix: str):
        self.path = os.path.join(RUNTIME_DIR, prefix, "dpdk_telemetry.v2")
        self.sock: Optional[socket.socket] = None
        self.max_len = 16384

    def connect(self) -> bool:
        if not os.path.exists(self.path):
            return False
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.settimeout(2.0)
        try:
            s.connect(self.path)
            hello = json.loads(s.recv(4096).decode())
            self.max_len = int(hello.get("max_output_len", 16384))
        except (OSError, ValueError):
            s.close()
            return False
        self.sock = s
        return True

    def cmd(self, c: str) -> dict:
        assert self.sock is not None
        self.sock.send(c.encode())
        data = self.sock.recv(self.max_len + 1024)
        if not data:
            raise ConnectionError("telemetry socket closed")
        reply = json.loads(data.decode())
        key = c.split(",", 1)[0]
        return reply.get(key) if isinstance(reply, dict) else None

    def port_stats(self, port: int) -> dict:
        st = self.cmd(f"/ethdev/stats,{port}")
        if not isinstance(st, dict):
            raise RuntimeError(f"no ethdev stats for port {port}: {st!r}")
        return st

    def sample(self) -> dict:
        """Counters of both ports, with the monotonic time at the middle of the two queries."""
        t0 = time.monotonic()
        a = self.port_stats(PORT_IN)
        b = self.port_stats(PORT_OUT)
        t1 = time.monotonic()
        return {"t": (t0 + t1) / 2, "rtt": t1 - t0, "in": a, "out": b}

    def close(self) -> None:
        if self.sock:
            self.sock.close()
            self.sock = None


# --------------------------------------------------------------------------------------------
# Process handling


def cleanup_prefix(prefix: str) -> None:
    """Remove the runtime dir and hugepage files of one file-prefix."""
    shutil.rmtree(os.path.join(RUNTIME_DIR, prefix), ignore_errors=True)
    for f in glob.glob(os.path.join(HUGE_DIR, prefix + "map_*")):
        try:
            os.unlink(f)
        except OSError:
            pass


def cleanup_stale_prefixes() -> None:
    """Remove leftovers of earlier harness runs whose harness process is gone."""
    seen = set()
    for p in glob.glob(os.path.join(RUNTIME_DIR, PREFIX_STEM + "*")) + glob.glob(
        os.path.join(HUGE_DIR, PREFIX_STEM + "*")
    ):
        name = os.path.basename(p)
        try:
            pid = int(name[len(PREFIX_STEM):].split("-", 1)[0])
        except ValueError:
            continue
        if pid == os.getpid() or os.path.exists(f"/proc/{pid}"):
            continue
        prefix = name.split("map_", 1)[0]
        if prefix not in seen:
            seen.add(prefix)
            cleanup_prefix(prefix)


class DpdkProcess:
    def __init__(self, cmd: List[str], prefix: str, logpath: str, stdin_pipe: bool = False,
                 nice: int = 0):
        self.nice = nice
        self.cmd = cmd
        self.prefix = prefix
        self.logpath = logpath
        self.stdin_pipe = stdin_pipe
        self.proc: Optional[subprocess.Popen] = None
        self.logf = None

    def start(self) -> None:
        cleanup_prefix(self.prefix)
        self.logf = open(self.logpath, "wb")
        self.logf.write(("$ " + " ".join(shlex.quote(c) for c in self.cmd) + "\n").encode())
        self.logf.flush()
        # Own session: a ^C at the terminal reaches only the harness, which then stops the app.
        self.proc = subprocess.Popen(
            self.cmd,
            stdin=subprocess.PIPE if self.stdin_pipe else subprocess.DEVNULL,
            stdout=self.logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=self._renice if self.nice else None,
        )

    def _renice(self) -> None:
        """In the child: lower its nice value, and its autogroup's (setsid made a new autogroup;
        with sched_autogroup the CFS share is split between autogroups, so the thread's own
        nice value alone would not win against other sessions' jobs)."""
        try:
            os.nice(self.nice)
        except OSError:
            pass
        try:
            with open("/proc/self/autogroup", "w") as f:
                f.write(str(self.nice))
        except OSError:
            pass

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> Optional[int]:
        """SIGINT, then SIGKILL after `timeout`; always removes the prefix's runtime files."""
        rc = None
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    self.proc.send_signal(signal.SIGINT)
                except ProcessLookupError:
                    pass
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    log(f"{self.cmd[0]} ignored SIGINT for {timeout:.0f} s: SIGKILL")
                    try:
                        os.killpg(self.proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    self.proc.wait()
            if self.proc.stdin:
                try:
                    self.proc.stdin.close()
                except OSError:
                    pass
            rc = self.proc.returncode
            self.proc = None
        if self.logf:
            self.logf.close()
            self.logf = None
        cleanup_prefix(self.prefix)
        return rc

    def log_tail(self, n: int = 25) -> str:
        try:
            with open(self.logpath, "rb") as f:
                lines = f.read().decode(errors="replace").splitlines()
            return "\n".join(lines[-n:])
        except OSError:
            return ""


# --------------------------------------------------------------------------------------------
# CPU accounting: the machine is shared (2 cores), so every run reports how much CPU its
# busiest thread (the polling worker) actually got, and how busy the whole machine was.


def thread_runtimes(pid: int) -> Dict[int, float]:
    """Seconds on CPU per thread of `pid` (schedstat, ns resolution; falls back to stat ticks)."""
    out = {}
    tick = os.sysconf("SC_CLK_TCK")
    for d in glob.glob(f"/proc/{pid}/task/*"):
        tid = int(os.path.basename(d))
        try:
            with open(d + "/schedstat") as f:
                out[tid] = int(f.read().split()[0]) / 1e9
                continue
        except (OSError, ValueError, IndexError):
            pass
        try:
            with open(d + "/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[tid] = (int(fields[11]) + int(fields[12])) / tick
        except (OSError, ValueError, IndexError):
            pass
    return out


def machine_busy() -> tuple:
    """(busy seconds, total seconds) summed over all CPUs, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return (sum(v[:8]) - idle) / tick, sum(v[:8]) / tick


def wait_idle(max_wait: float, threshold: float) -> float:
    """Wait (up to max_wait s) until the machine's CPU use over 1 s is below `threshold` cores.

    Returns the last measured busy cores. The harness itself is idle while it waits."""
    t_end = time.monotonic() + max_wait
    warned = False
    while True:
        b0 = machine_busy()[0]
        time.sleep(1.0)
        busy = machine_busy()[0] - b0
        if busy < threshold or time.monotonic() >= t_end:
            return busy
        if not warned:
            log(f"machine busy ({busy:.2f} cores): waiting up to {max_wait:.0f} s for it to calm down")
            warned = True


# --------------------------------------------------------------------------------------------
# Environment: hugepages


def hugepages_ready(min_free_mb: int) -> bool:
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        free = int(info["HugePages_Free"].split()[0])
        size_kb = int(info["Hugepagesize"].split()[0])
    except (OSError, KeyError, ValueError):
        return False
    mounted = False
    try:
        with open("/proc/mounts") as f:
            mounted = any(line.split()[2] == "hugetlbfs" for line in f)
    except OSError:
        pass
    return mounted and free * size_kb // 1024 >= min_free_mb


def ensure_hugepages(pages: int, min_free_mb: int) -> bool:
    """Reserve `pages` hugepages and mount hugetlbfs at /dev/hugepages if needed (as root)."""
    if hugepages_ready(min_free_mb):
        return True
    try:
        with open("/proc/sys/vm/nr_hugepages") as f:
            cur = int(f.read())
        if cur < pages:
            with open("/proc/sys/vm/nr_hugepages", "w") as f:
                f.write(str(pages))
        with open("/proc/mounts") as f:
            mounted = any(line.split()[2] == "hugetlbfs" for line in f)
        if not mounted:
            os.makedirs(HUGE_DIR, exist_ok=True)
            subprocess.run(["mount", "-t", "hugetlbfs", "nodev", HUGE_DIR], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except (OSError, ValueError, subprocess.CalledProcessError) as e:
        log(f"cannot set up hugepages ({e})")
    return hugepages_ready(min_free_mb)


# --------------------------------------------------------------------------------------------
# Applications


@dataclass
class RunSpec:
    app: str
    size: str  # "64" ... or "imix"
    pcap: str
    in_frame_bytes: float  # average input frame size, bytes without FCS
    in_count: int  # packets in the input pcap
    prefix: str
    cmd: List[str] = field(default_factory=list)
    stdin_pipe: bool = False
    notes: Dict[str, str] = field(default_factory=dict)


def eal_common(args, prefix: str, lcores: str, pcap: str) -> List[str]:
    eal = ["-l", lcores, "--file-prefix", prefix]
    if args.no_huge:
        eal += ["--no-huge", "-m", str(args.mem)]
    else:
        eal += ["--huge-unlink"]
    eal += ["--no-pci"]
    eal += shlex.split(args.eal_extra or "")
    return eal


def vdevs(pcap: str, probe_out: Optional[str] = None) -> List[str]:
    """The harness ports, in port-id order (vdevs are probed in command-line order): the
    ingress is port PORT_IN. probe_out: replay the pcap once and capture the egress port."""
    if probe_out:
        rx = ["--vdev", f"net_pcap0,rx_pcap={pcap}"]
        tx = ["--vdev", f"net_pcap1,tx_pcap={probe_out}"]
    else:
        rx = ["--vdev", f"net_pcap0,rx_pcap={pcap},infinite_rx=1"]
        tx = ["--vdev", "net_null0,no-rx=1"]
    return rx + tx if PORT_IN == 0 else tx + rx


def secgw_binary(args) -> str:
    if args.secgw:
        return args.secgw
    out = subprocess.run(["bash", os.path.join(HERE, "secgw", "build.sh")], check=True,
                         stdout=subprocess.PIPE, text=True).stdout.strip().splitlines()
    args.secgw = out[-1]
    return args.secgw


def secgw_config(args, workdir: str) -> str:
    with open(SECGW_CFG[args.secgw_mode]) as f:
        text = f.read()
    typ = "type cpu-crypto" if args.secgw_crypto == "cpu-crypto" else ""
    path = os.path.join(workdir, f"secgw-{args.secgw_mode}-{args.secgw_crypto}.cfg")
    with open(path, "w") as f:
        f.write(text.replace("@TYPE@", typ))
    return path


def build_cmd(args, spec: RunSpec, workdir: str, probe_out: Optional[str] = None) -> None:
    if spec.app == "secgw":
        # One lcore that is both main and worker: the main lcore of a 2-lcore secgw would
        # busy-wait in rte_eal_wait_lcore() on the other core for the whole run.
        lc = args.secgw_lcores
        worker = lc.split(",")[-1].split("-")[-1]
        spec.cmd = (
            [secgw_binary(args)]
            + eal_common(args, spec.prefix, lc, spec.pcap)
            + ["--vdev", args.secgw_cryptodev]
            + vdevs(spec.pcap, probe_out)
            + ["--", "-p", "0x3", "-u", "0x2", "-l", "--config",
               f"(0,0,{worker}),(1,0,{worker})",
               "-f", secgw_config(args, workdir)]
            + (["-e"] if args.secgw_esn and args.direction == "out" else [])
            + shlex.split(args.secgw_args or "")
        )
        spec.notes = {"secgw_mode": args.secgw_mode, "secgw_crypto": args.secgw_crypto,
                      "secgw_cryptodev": args.secgw_cryptodev,
                      "secgw_esn": args.secgw_esn and args.direction == "out", "lcores": lc}
    elif spec.app == "testpmd":
        spec.cmd = (
            [args.testpmd]
            + eal_common(args, spec.prefix, "0,1", spec.pcap)
            + vdevs(spec.pcap, probe_out)
            + ["--", "--forward-mode=io", "--nb-cores=1", "--rxq=1", "--txq=1",
               "--total-num-mbufs=16384", "--no-lsc-interrupt", "--no-flush-rx"]
            + shlex.split(args.testpmd_args or "")
        )
        # Non-interactive testpmd forwards until its stdin gets a newline or EOF.
        spec.stdin_pipe = True
        spec.notes = {"lcores": "0,1 (main blocks on stdin, forwarding on lcore 1)"}
    elif spec.app == "vanishd":
        if not args.vanishd or not args.config:
            raise SystemExit("bench: --app vanishd needs --vanishd PATH and --config PATH")
        spec.cmd = (
            [args.vanishd]
            + eal_common(args, spec.prefix, args.vanishd_lcores, spec.pcap)
            + vdevs(spec.pcap, probe_out)
            + ["--", "--config", args.dut_config]
            + shlex.split(args.vanishd_args or "")
        )
        spec.notes = {"lcores": f"{args.vanishd_lcores} (first: control, then workers)",
                      "config": args.dut_config}
    else:
        raise SystemExit(f"bench: unknown app {spec.app}")


# --------------------------------------------------------------------------------------------
# Egress probe: replay the input pcap once, capture what leaves the egress port.


def probe_egress(args, spec: RunSpec, workdir: str) -> dict:
    """Functional pass before the timed run: the input pcap is sent once, port 1 writes a pcap.

    net_null (22.11) counts no TX bytes, so the average egress frame size measured here is what
    turns the timed run's packet rate into egress Gbps. The capture is kept for inspection
    (e.g. tshark with the ESP SA) as <workdir>/egress-<app>-<size>.pcap.
    """
    out_pcap = os.path.join(workdir, f"egress-{spec.app}-{spec.size}.pcap")
    try:
        os.unlink(out_pcap)
    except OSError:
        pass
    pspec = RunSpec(app=spec.app, size=spec.size, pcap=spec.pcap, in_frame_bytes=spec.in_frame_bytes,
                    in_count=spec.in_count, prefix=spec.prefix + "p")
    build_cmd(args, pspec, workdir, probe_out=out_pcap)
    logpath = os.path.join(workdir, f"{spec.app}-{spec.size}-probe.log")
    proc = DpdkProcess(pspec.cmd, pspec.prefix, logpath, pspec.stdin_pipe, args.nice)
    tel = Telemetry(pspec.prefix)
    res: dict = {}
    try:
        proc.start()
        deadline = time.monotonic() + args.start_timeout
        while not tel.connect():
            if not proc.alive() or time.monotonic() > deadline:
                raise RuntimeError("no telemetry")
            time.sleep(0.1)
        last, still = None, 0.0
        t_end = time.monotonic() + args.start_timeout
        while time.monotonic() < t_end and proc.alive():
            try:
                smp = tel.sample()
            except (RuntimeError, KeyError, OSError, ValueError):
                time.sleep(0.1)
                continue
            cur = (smp["in"]["ipackets"], smp["out"]["opackets"])
            if cur[0] >= spec.in_count and cur == last:
                still += 0.1
                if still >= 0.5:
                    break
            else:
                still = 0.0
            last = cur
            time.sleep(0.1)
        res["probe_rx"], res["probe_tx"] = (last or (0, 0))
    except (RuntimeError, ConnectionError, OSError, ValueError, KeyError) as e:
        res["probe_error"] = str(e)
    finally:
        tel.close()
        proc.stop(args.stop_timeout)  # closing the port flushes the pcap
    try:
        frames = pcapgen.read_pcap(out_pcap)
    except (OSError, ValueError, struct_error) as e:
        res.setdefault("probe_error", f"cannot read {out_pcap}: {e}")
        frames = []
    res["probe_captured"] = len(frames)
    if frames:
        res["egress_frame_bytes"] = round(sum(len(f) for f in frames) / len(frames), 2)
        res["egress_pcap"] = out_pcap
    return res


# --------------------------------------------------------------------------------------------
# One measurement


def measure(args, spec: RunSpec, workdir: str, egress_frame_bytes: Optional[float]) -> dict:
    logpath = os.path.join(workdir, f"{spec.app}-{spec.size}.log")
    proc = DpdkProcess(spec.cmd, spec.prefix, logpath, spec.stdin_pipe, args.nice)
    res = {"app": spec.app, "size": spec.size, "ok": False}
    if args.verbose:
        log("$ " + " ".join(shlex.quote(c) for c in spec.cmd))
    tel = Telemetry(spec.prefix)
    try:
        proc.start()
        # 1. Telemetry up.
        deadline = time.monotonic() + args.start_timeout
        while not tel.connect():
            if not proc.alive():
                raise RuntimeError(f"{spec.app} exited with {proc.proc.returncode} at start-up")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{spec.app}: no telemetry socket at {tel.path} after {args.start_timeout} s")
            time.sleep(0.1)
        # 2. Both ports known and traffic flowing (egress counter moving, or ingress as a
        #    fallback so an app that drops everything still gets measured as 0).
        started = None
        while started is None:
            if not proc.alive():
                raise RuntimeError(f"{spec.app} exited with {proc.proc.returncode} before forwarding")
            try:
                s = tel.sample()
                if s["out"]["opackets"] > 0:
                    started = time.monotonic()
                elif s["in"]["ipackets"] > 0 and time.monotonic() > deadline:
                    log(f"{spec.app} {spec.size}: ingress moves but nothing leaves the egress port")
                    started = time.monotonic()
            except (RuntimeError, KeyError, OSError, ValueError):
                pass
            if started is None:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{spec.app}: no traffic after {args.start_timeout} s")
                time.sleep(0.05)
        # 3. Warm-up, then two samples `duration` apart.
        time.sleep(args.warmup)
        pid = proc.proc.pid
        ca, ma = thread_runtimes(pid), machine_busy()
        a = tel.sample()
        time.sleep(args.duration)
        b = tel.sample()
        cb, mb = thread_runtimes(pid), machine_busy()
        if not proc.alive():
            raise RuntimeError(f"{spec.app} died during the measurement")
        dt = b["t"] - a["t"]
        tx = b["out"]["opackets"] - a["out"]["opackets"]
        txb = b["out"]["obytes"] - a["out"]["obytes"]
        rx = b["in"]["ipackets"] - a["in"]["ipackets"]
        oerr = b["out"]["oerrors"] - a["out"]["oerrors"]
        mpps = tx / dt / 1e6
        per_thread = {t: cb[t] - ca.get(t, 0.0) for t in cb}
        worker = max(per_thread.values()) / dt if per_thread else None
        app_cpu = sum(per_thread.values()) / dt if per_thread else None
        m_busy = (mb[0] - ma[0]) / dt
        if worker is not None and worker < args.min_cpu_share:
            log(f"{spec.app} {spec.size}: the worker got only {worker:.0%} of a core "
                f"(machine busy {m_busy:.2f} cores): figures are contended")
        if txb > 0:
            eg_bytes, eg_src = txb / tx, "obytes"
        elif egress_frame_bytes:
            eg_bytes, eg_src = egress_frame_bytes, "probe"
        else:
            eg_bytes, eg_src = None, "none"
        res.update({
            "ok": True,
            "mpps": round(mpps, 4),
            "gbps_egress": round(mpps * eg_bytes * 8 / 1e3, 4) if eg_bytes else None,
            "egress_bytes_from": eg_src,
            "gbps_input": round(mpps * spec.in_frame_bytes * 8 / 1e3, 4),
            "rx_mpps": round(rx / dt / 1e6, 4),
            "drop_ratio": round(1 - tx / rx, 4) + 0.0 if rx else None,
            "egress_frame_bytes": round(eg_bytes, 2) if eg_bytes else None,
            "input_frame_bytes": round(spec.in_frame_bytes, 2),
            "oerrors": oerr,
            "interval_s": round(dt, 4),
            "worker_cpu_share": round(worker, 4) if worker is not None else None,
            "mpps_per_core": round(mpps / worker, 4) if worker else None,
            "app_cpu_cores": round(app_cpu, 3) if app_cpu is not None else None,
            "machine_busy_cores": round(m_busy, 3),
            "other_busy_cores": round(max(0.0, m_busy - (app_cpu or 0.0)), 3),
            "nice": args.nice,
            "sample_rtt_ms": round(max(a["rtt"], b["rtt"]) * 1e3, 3),
        })
    except (RuntimeError, ConnectionError, OSError, ValueError, KeyError) as e:
        res["error"] = f"{type(e).__name__}: {e}" if not isinstance(e, RuntimeError) else str(e)
        log(f"{spec.app} {spec.size}: {e}")
        tail = proc.log_tail()
        if tail:
            log(f"last lines of {logpath}:\n{tail}")
    finally:
        tel.close()
        rc = proc.stop(args.stop_timeout)
        res["exit_code"] = rc
    res.update({
        "warmup_s": args.warmup, "duration_s": args.duration, "flows": args.flows,
        "hugepages": not args.no_huge, "ipv6": args.ipv6, "log": logpath,
    })
    res.update(spec.notes)
    return res


# --------------------------------------------------------------------------------------------
# Driver


def no_replay_config(config: str, workdir: str) -> str:
    """A copy of `config` (and the files it includes) in workdir/norep/ in which every static SA
    towards this node has `esn: false` and `replay_window: 0` (anti-replay off): what a replayed
    pcap of ESP needs. Returns the copy of the top file."""
    outdir = os.path.join(workdir, "norep")
    os.makedirs(outdir, exist_ok=True)
    top_text = open(config).read()
    m = re.search(r'^\s*this_node\s*:\s*"([^"]+)"', top_text, re.M)
    if not m:
        raise SystemExit(f"bench: {config} has no this_node")
    node = m.group(1)
    changed = [0]

    def patch_sa(mm):
        block = mm.group(0)
        if not re.search(r'\bto_node\s*:\s*"%s"' % re.escape(node), block):
            return block
        block = re.sub(r'\n\s*(esn|replay_window)\s*:[^\n]*', "", block)
        changed[0] += 1
        return block[:-1].rstrip() + "\n  esn: false\n  replay_window: 0  # bench: anti-replay off\n}"

    def copy(path: str, seen: set) -> str:
        path = os.path.abspath(path)
        out = os.path.join(outdir, f"{len(seen)}-{os.path.basename(path)}")
        seen.add(path)
        text = open(path).read()

        def inc(mi):
            target = os.path.join(os.path.dirname(path), mi.group(2))
            return f'{mi.group(1)}"{copy(target, seen)}"'
        text = re.sub(r'^(\s*include\s*:\s*)"([^"]+)"', inc, text, flags=re.M)
        text = re.sub(r"static_sas\s*\{[^{}]*\}", patch_sa, text)
        with open(out, "w") as f:
            f.write(text)
        return out

    top = copy(config, set())
    if not changed[0]:
        raise SystemExit(f"bench: no static SA towards {node} in {config} (inbound needs one)")
    return top


def export_esp_pcap(args, size: str, fmt: str, workdir: str) -> tuple:
    """Inbound input: ESP frames from `vanish-perf export --dir in` (sequence numbers 1..N)."""
    name = f"in-esp-{fmt}-{size}-{args.flows}f.pcap"
    path = os.path.join(workdir, name)
    cmd = [args.vanish_perf, "export", "--config", args.dut_config, "--dir", "in", "--format", fmt,
           "--sizes", size, "--flows", str(args.flows), "--pcap", path]
    if args.count:
        cmd += ["--count", str(args.count)]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        raise SystemExit(f"bench: {' '.join(cmd)} failed:\n{p.stdout}")
    frames = pcapgen.read_pcap(path)
    return path, sum(len(f) for f in frames) / len(frames), len(frames)


def make_pcap(args, size: str, workdir: str) -> tuple:
    fam = "v6" if args.ipv6 else "v4"
    sizes = pcapgen.imix_sizes(args.imix_max) if size == "imix" else [int(size)]
    name = f"in-{fam}-{size}-{args.flows}f.pcap"
    path = os.path.join(workdir, name)
    spec = pcapgen.TrafficSpec(sizes=sizes, flows=args.flows, ipv6=args.ipv6,
                               src_hosts=args.src_hosts, count=args.count)
    frames = pcapgen.build_frames(spec)
    pcapgen.write_pcap(path, frames)
    avg = sum(len(f) for f in frames) / len(frames)
    return path, avg, len(frames)


def parse_apps(s: str) -> List[str]:
    out = []
    for a in s.split(","):
        a = a.strip()
        if a == "both":
            out += ["secgw", "vanishd"]
        elif a == "all":
            out += ["secgw", "vanishd", "testpmd"]
        elif a in ("secgw", "vanishd", "testpmd"):
            out.append(a)
        elif a:
            raise SystemExit(f"bench: unknown app {a!r} (secgw, vanishd, testpmd, both, all)")
    seen = []
    for a in out:
        if a not in seen:
            seen.append(a)
    return seen


def paired_ratio(results: List[dict], num: str, den: str, size: str) -> Optional[float]:
    """Median over rounds of num/den Mpps, pairing the two runs of the same round and size
    (they ran back to back, so machine drift cancels better than in a ratio of medians)."""
    by = {}
    for r in results:
        if r.get("ok") and r["size"] == size and r["app"] in (num, den) and r.get("mpps"):
            by.setdefault(r["round"], {})[r["app"]] = r["mpps"]
    rs = [d[num] / d[den] for d in by.values() if num in d and den in d]
    return statistics.median(rs) if rs else None


def print_table(apps: List[str], sizes: List[str], results: List[dict]) -> None:
    def med(app, size, key):
        v = [r[key] for r in results if r["app"] == app and r["size"] == size and r.get("ok")
             and r.get(key) is not None]
        return statistics.median(v) if v else None

    cols = ["size"]
    for a in apps:
        cols += [f"{a} Mpps", f"{a} Gbps(in)", f"{a} Gbps(eg)"]
    if "vanishd" in apps and "secgw" in apps:
        cols.append("vanishd/secgw")
    if "testpmd" in apps:
        cols += [f"{a}/testpmd" for a in apps if a != "testpmd"]
    rows = []
    for s in sizes:
        row = [s]
        for a in apps:
            for k in ("mpps", "gbps_input", "gbps_egress"):
                v = med(a, s, k)
                row.append("-" if v is None else f"{v:.3f}")
        if "vanishd" in apps and "secgw" in apps:
            rr = paired_ratio(results, "vanishd", "secgw", s)
            row.append(f"{rr:.3f}" if rr is not None else "-")
        if "testpmd" in apps:
            for a in apps:
                if a != "testpmd":
                    rr = paired_ratio(results, a, "testpmd", s)
                    row.append(f"{rr:.3f}" if rr is not None else "-")
        rows.append(row)
    w = [max(len(str(c)), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]
    print("  ".join(c.rjust(w[i]) for i, c in enumerate(cols)))
    for r in rows:
        print("  ".join(v.rjust(w[i]) for i, v in enumerate(r)))


class Interrupted(Exception):
    pass


_interrupted = False


def on_term(signum, frame):
    """First signal: unwind (each run's `finally` stops its app). Later ones are ignored, so
    they cannot cut that cleanup short."""
    global _interrupted
    if _interrupted:
        return
    _interrupted = True
    raise Interrupted(f"signal {signum}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description="Outbound or inbound throughput of one DPDK worker core on net_pcap -> net_null, "
                    "via telemetry.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--direction", choices=["out", "in"], default="out",
                   help="out: plaintext into the local port; in: ESP into the fabric port "
                        "(anti-replay off on both DUTs, see the module doc)")
    p.add_argument("--app", default="secgw", help="secgw | vanishd | testpmd | both | all, or a comma list")
    p.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)),
                   help="comma list of Ethernet frame sizes without FCS, and/or 'imix'")
    p.add_argument("--flows", type=int, default=64, help="flows in the input pcap (UDP source ports)")
    p.add_argument("--src-hosts", type=int, default=1, help="source addresses to cycle over (pcapgen)")
    p.add_argument("--count", type=int, default=None, help="packets in the input pcap (default: flows)")
    p.add_argument("--ipv6", action="store_true", help="IPv6 workload traffic (secgw config is IPv4-only)")
    p.add_argument("--imix-max", type=int, default=pcapgen.IMIX_DEFAULT_MAX)
    p.add_argument("--warmup", type=float, default=2.0, help="seconds between first egress packet and sample 1")
    p.add_argument("--duration", type=float, default=5.0, help="seconds between the two samples")
    p.add_argument("--repeat", type=int, default=1, help="rounds; the table shows medians")
    p.add_argument("--start-timeout", type=float, default=30.0)
    p.add_argument("--nice", type=int, default=-20,
                   help="nice increment for the DPDK app (root; -20 keeps other jobs on the machine "
                        "from taking its core; 0 = unchanged)")
    p.add_argument("--min-cpu-share", type=float, default=0.95,
                   help="warn when the worker thread got less than this share of a core")
    p.add_argument("--wait-idle", type=float, default=0.0,
                   help="before each run wait up to this many seconds for the machine to be idle")
    p.add_argument("--idle-threshold", type=float, default=0.3,
                   help="busy cores below which the machine counts as idle (--wait-idle)")
    p.add_argument("--stop-timeout", type=float, default=10.0, help="SIGINT -> SIGKILL delay")
    p.add_argument("--hugepages", choices=["auto", "yes", "no"], default="auto",
                   help="auto: reserve 512 x 2 MiB and mount hugetlbfs if possible, else --no-huge")
    p.add_argument("--mem", type=int, default=1024, help="MiB for --no-huge -m")
    p.add_argument("--eal-extra", default="", help="extra EAL arguments for every app (--eal-extra='...')")
    p.add_argument("--workdir", default=os.path.join(REPO, "build-perf", "bench"),
                   help="pcaps, generated configs and logs")
    p.add_argument("--json-out", default=None, help="also append the JSON lines to this file")
    p.add_argument("-v", "--verbose", action="store_true", help="print each command line")
    p.add_argument("--no-probe", dest="probe", action="store_false",
                   help="skip the egress probe pass (then Gbps(eg) needs a PMD that counts obytes)")
    g = p.add_argument_group("secgw")
    g.add_argument("--secgw", default=None, help="ipsec-secgw binary (default: build with perf/secgw/build.sh)")
    g.add_argument("--secgw-mode", choices=["trs", "tun"], default="trs", help="ESP transport or IPv4 tunnel")
    g.add_argument("--secgw-crypto", choices=["cpu-crypto", "lookaside"], default="cpu-crypto",
                   help="SA action type: synchronous cpu-crypto, or lookaside-none via the cryptodev queue")
    g.add_argument("--secgw-cryptodev", default="crypto_aesni_gcm0",
                   help="crypto vdev (crypto_aesni_gcm0 or crypto_aesni_mb0, both Intel IPsec-MB)")
    g.add_argument("--secgw-lcores", default="1", help="EAL -l for secgw; its worker is the last lcore")
    g.add_argument("--secgw-esn", action=argparse.BooleanOptionalAction, default=True,
                   help="64-bit ESN (secgw -e: 12-byte GCM AAD), as vanishd does")
    g.add_argument("--secgw-args", default="",
                   help="extra secgw application arguments (write --secgw-args='-x ...')")
    g = p.add_argument_group("testpmd")
    g.add_argument("--testpmd", default=shutil.which("dpdk-testpmd") or "dpdk-testpmd",
                   help="dpdk-testpmd binary (Debian package dpdk-dev)")
    g.add_argument("--testpmd-args", default="", help="extra testpmd arguments (--testpmd-args='...')")
    g = p.add_argument_group("vanishd")
    g.add_argument("--vanishd", default=None, help="vanishd binary")
    g.add_argument("--config", default=None, help="vanishd --config (e.g. examples/node-a.textproto)")
    g.add_argument("--vanishd-args", default="",
                   help="extra vanishd arguments after --config (--vanishd-args='...')")
    g.add_argument("--vanish-perf", default=os.path.join(REPO, "build", "perf", "vanish-perf"),
                   help="vanish-perf binary (--direction in: exports the ESP pcaps)")
    g.add_argument("--vanishd-lcores", default="0,1", help="EAL -l for vanishd (control lcore, then the worker)")
    args = p.parse_args(argv)

    apps = parse_apps(args.app)
    global PORT_IN, PORT_OUT
    args.dut_config = args.config
    if args.direction == "in":
        PORT_IN, PORT_OUT = 1, 0
        if not args.config:
            raise SystemExit("bench: --direction in needs --config (the keys of the inbound ESP)")
        if not os.access(args.vanish_perf, os.X_OK):
            raise SystemExit(f"bench: --direction in needs vanish-perf ({args.vanish_perf}): "
                             "build it, or give --vanish-perf")
    sizes = [s.strip().lower() for s in args.sizes.split(",") if s.strip()]
    for s in sizes:
        if s != "imix" and not s.isdigit():
            raise SystemExit(f"bench: bad size {s!r}")
    if args.ipv6 and "secgw" in apps:
        log("note: the secgw configs have IPv4 SPs only; IPv6 input is not encrypted by secgw")
    if os.geteuid() != 0:
        log("warning: not root; DPDK runtime dirs and hugepages usually need root")

    if args.hugepages == "no":
        args.no_huge = True
    else:
        ok = ensure_hugepages(512, 600)
        if not ok and args.hugepages == "yes":
            raise SystemExit("bench: hugepages unavailable")
        args.no_huge = not ok
    log("memory: " + (f"--no-huge -m {args.mem}" if args.no_huge else "2 MiB hugepages (--huge-unlink)"))

    os.makedirs(args.workdir, exist_ok=True)
    cleanup_stale_prefixes()
    # Explicitly, also SIGINT: a harness started in the background by a non-interactive shell
    # inherits SIGINT as ignored, and then ^C/kill -INT would not stop it.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_term)

    if "secgw" in apps:
        secgw_binary(args)
    if "testpmd" in apps and not shutil.which(args.testpmd):
        raise SystemExit(f"bench: {args.testpmd} not found (apt-get install dpdk-dev)")

    if args.direction == "in":
        args.dut_config = no_replay_config(args.config, args.workdir)
        log(f"inbound: anti-replay off, no ESN: {args.dut_config}")
        fmts = {("secgw" if a == "secgw" else "vanish") for a in apps}
        pcaps = {(f, s): export_esp_pcap(args, s, f, args.workdir) for f in fmts for s in sizes}
    else:
        pcaps = {s: make_pcap(args, s, args.workdir) for s in sizes}

    def pcap_for(app: str, size: str) -> tuple:
        if args.direction == "out":
            return pcaps[size]
        return pcaps[("secgw" if app == "secgw" else "vanish", size)]
    results: List[dict] = []
    jf = open(args.json_out, "a") if args.json_out else None
    n = 0
    rc = 0
    probes: Dict[tuple, dict] = {}
    t_start = time.monotonic()
    try:
        for rnd in range(args.repeat):
            for i, s in enumerate(sizes):
                # Interleave apps per size and alternate their order, so slow drifts of the
                # machine (thermal, neighbours) hit every app alike.
                order = apps if (i + rnd) % 2 == 0 else list(reversed(apps))
                for app in order:
                    n += 1
                    pcap, avg, cnt = pcap_for(app, s)
                    spec = RunSpec(app=app, size=s, pcap=pcap, in_frame_bytes=avg, in_count=cnt,
                                   prefix=f"{PREFIX_STEM}{os.getpid()}-{app}-{n}")
                    if args.probe and (app, s) not in probes:
                        probes[(app, s)] = probe_egress(args, spec, args.workdir)
                        pr = probes[(app, s)]
                        if pr.get("probe_error") or pr.get("probe_captured", 0) < cnt:
                            log(f"{app} {s}: egress probe: {pr}")
                    build_cmd(args, spec, args.workdir)
                    pr = probes.get((app, s), {})
                    idle_before = wait_idle(args.wait_idle, args.idle_threshold) if args.wait_idle > 0 else None
                    r = measure(args, spec, args.workdir, pr.get("egress_frame_bytes"))
                    r.update({k: v for k, v in pr.items() if k != "egress_frame_bytes"})
                    r["round"] = rnd
                    r["direction"] = args.direction
                    if idle_before is not None:
                        r["busy_before_cores"] = round(idle_before, 3)
                    r["cmd"] = " ".join(shlex.quote(c) for c in spec.cmd)
                    results.append(r)
                    if not r["ok"]:
                        rc = 1
                    line = json.dumps(r, sort_keys=True)
                    print(line, flush=True)
                    if jf:
                        jf.write(line + "\n")
                        jf.flush()
    except (KeyboardInterrupt, Interrupted) as e:
        log(f"interrupted ({e or 'SIGINT'}); the running app was stopped")
        rc = 130
    finally:
        if jf:
            jf.close()
    print()
    print_table(apps, sizes, results)
    ok = [r for r in results if r.get("ok")]
    if ok:
        shares = [r["worker_cpu_share"] for r in ok if r.get("worker_cpu_share") is not None]
        other = [r["other_busy_cores"] for r in ok if r.get("other_busy_cores") is not None]
        print(f"# {len(ok)}/{len(results)} runs ok; direction " + args.direction + "; memory: "
              f"{'--no-huge -m %d' % args.mem if args.no_huge else 'hugepages'}; "
              f"warm-up {args.warmup:g} s, measure {args.duration:g} s, {args.flows} flows; "
              f"worker CPU share min {min(shares):.2f}; other load max {max(other):.2f} cores"
              if shares and other else "")
        print("# Mpps = egress packets/s; Gbps(in) = Mpps x input frame bytes x 8; Gbps(eg) = egress "
              "frame bytes x 8 (frames without FCS); ratios = median of per-round pairs")
    log(f"{n} runs in {time.monotonic() - t_start:.0f} s")
    return rc


if __name__ == "__main__":
    sys.exit(main())
