"""Shared code of the end-to-end tests (python3 stdlib only).

- runs vanishd on net_pcap ports (EAL arguments from scripts/lib.sh, one --file-prefix per run,
  its runtime directory removed afterwards);
- builds the reference mesh's packets (shared/scenario.md) with correct checksums;
- computes what a correctly forwarded packet looks like on the far side;
- writes config variants of examples/ into a temporary directory;
- a tiny checker that prints one line per assertion and counts failures.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import shutil
import struct
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence


def _import_pcapgen(root: str):
    sys.path.insert(0, os.path.join(root, "perf"))
    import pcapgen  # noqa: E402  (perf/pcapgen.py: pcap reading and writing)

    return pcapgen


# --------------------------------------------------------------------------------------------
# The reference mesh (shared/scenario.md, examples/*.textproto)

TRUST_DOMAIN = "cluster.local"

NODE = {
    "node-a": dict(fabric4="172.16.0.1", fabric6="fd00:16::1", fabric_mac="02:00:00:00:16:01",
                   gw4="10.1.0.1", gw6="fd00:10:1::1", local_mac="02:00:00:00:10:01"),
    "node-b": dict(fabric4="172.16.0.2", fabric6="fd00:16::2", fabric_mac="02:00:00:00:16:02",
                   gw4="10.2.0.1", gw6="fd00:10:2::1", local_mac="02:00:00:00:10:02"),
}


@dataclass(frozen=True)
class Workload:
    name: str
    node: str
    ns: str
    sa: str
    v4: str
    v6: str
    mac: str  # the static neighbour MAC of examples/node-*.textproto

    def addr(self, v6: bool) -> str:
        return self.v6 if v6 else self.v4

    @property
    def principal(self) -> str:
        return f"{TRUST_DOMAIN}/ns/{self.ns}/sa/{self.sa}"

    @property
    def identity_id(self) -> int:
        """The wire identity: first 4 bytes of SHA-256 of the principal (ctl/model.cpp)."""
        return int.from_bytes(hashlib.sha256(self.principal.encode()).digest()[:4], "big")


W = {
    w.name: w
    for w in [
        Workload("sleep", "node-a", "default", "sleep", "10.1.0.10", "fd00:10:1::10", "02:00:00:aa:00:10"),
        Workload("curl-untrusted", "node-a", "untrusted", "default", "10.1.0.11", "fd00:10:1::11",
                 "02:00:00:aa:00:11"),
        Workload("httpbin-1", "node-b", "default", "httpbin", "10.2.0.20", "fd00:10:2::20", "02:00:00:aa:00:20"),
        Workload("httpbin-2", "node-b", "default", "httpbin", "10.2.0.21", "fd00:10:2::21", "02:00:00:aa:00:21"),
        Workload("postgres", "node-b", "data", "postgres", "10.2.0.30", "fd00:10:2::30", "02:00:00:aa:00:30"),
    ]
}

# Static SAs: (SPI base, key, salt) per direction.
SA = {
    ("node-a", "node-b"): (0x00000A00, "2b7e151628aed2a6abf7158809cf4f3c", "deadbeef"),
    ("node-b", "node-a"): (0x00000B00, "000102030405060708090a0b0c0d0e0f", "cafebabe"),
}

# Largest inner IP packet that fits the 1500-byte fabric MTU with an IPv6 outer header
# (dataplane/wire.hpp max_inner_len(true, 1500)); fits the IPv4 fabric too.
MAX_INNER_BOTH_FABRICS = 1394


# --------------------------------------------------------------------------------------------
# Packets

def mac_bytes(mac: str) -> bytes:
    return bytes(int(p, 16) for p in mac.split(":"))


def mac_str(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def _pseudo(src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    if len(src) == 4:
        return src + dst + struct.pack("!xBH", proto, length)
    return src + dst + struct.pack("!IxxxB", length, proto)


def _l4_with_checksum(src: bytes, dst: bytes, proto: int, seg: bytearray, ck_off: int) -> bytes:
    seg[ck_off:ck_off + 2] = b"\x00\x00"
    ck = csum(_pseudo(src, dst, proto, len(seg)) + bytes(seg))
    if proto == 17 and ck == 0:
        ck = 0xFFFF
    seg[ck_off:ck_off + 2] = struct.pack("!H", ck)
    return bytes(seg)


def ip_packet(src: str, dst: str, proto: int, l4: bytes, *, ttl: int = 64, ip_id: int = 0) -> bytes:
    s, d = ipaddress.ip_address(src).packed, ipaddress.ip_address(dst).packed
    if len(s) == 4:
        hdr = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), ip_id & 0xFFFF, 0x4000, ttl,
                                    proto, 0, s, d))
        hdr[10:12] = struct.pack("!H", csum(bytes(hdr)))
        return bytes(hdr) + l4
    return struct.pack("!IHBB", 6 << 28, len(l4), proto, ttl) + s + d + l4


def udp(src: str, dst: str, sport: int, dport: int, payload: bytes, **kw) -> bytes:
    s, d = ipaddress.ip_address(src).packed, ipaddress.ip_address(dst).packed
    seg = bytearray(struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload)
    return ip_packet(src, dst, 17, _l4_with_checksum(s, d, 17, seg, 6), **kw)


def tcp(src: str, dst: str, sport: int, dport: int, flags: str, seq: int, ack: int = 0,
        payload: bytes = b"", **kw) -> bytes:
    bits = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10}
    fl = sum(bits[c] for c in flags)
    s, d = ipaddress.ip_address(src).packed, ipaddress.ip_address(dst).packed
    seg = bytearray(struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, fl,
                                64240, 0, 0) + payload)
    return ip_packet(src, dst, 6, _l4_with_checksum(s, d, 6, seg, 16), **kw)


def icmp_echo(src: str, dst: str, ident: int, seq: int, payload: bytes, *, reply: bool = False, **kw) -> bytes:
    v6 = ipaddress.ip_address(src).version == 6
    typ = (129 if reply else 128) if v6 else (0 if reply else 8)
    msg = bytearray(struct.pack("!BBHHH", typ, 0, 0, ident, seq) + payload)
    if v6:
        s, d = ipaddress.ip_address(src).packed, ipaddress.ip_address(dst).packed
        return ip_packet(src, dst, 58, _l4_with_checksum(s, d, 58, msg, 2), **kw)
    msg[2:4] = struct.pack("!H", csum(bytes(msg)))
    return ip_packet(src, dst, 1, bytes(msg), **kw)


def eth(dst_mac: str, src_mac: str, ip: bytes) -> bytes:
    et = 0x86DD if ip[0] >> 4 == 6 else 0x0800
    return mac_bytes(dst_mac) + mac_bytes(src_mac) + struct.pack("!H", et) + ip


def pad_to(ip_len: int, head: bytes = b"") -> bytes:
    """A deterministic payload; callers size it so the IP packet is ip_len bytes."""
    return (head + bytes((i * 7 + 3) & 0xFF for i in range(max(0, ip_len))))[: max(0, ip_len)]


def forwarded(frame: bytes, dst_mac: str, src_mac: str) -> bytes:
    """What a frame looks like after one routed hop: TTL/hop limit - 1 (IPv4 checksum
    recomputed), new Ethernet header. The rest is byte for byte the same."""
    ip = bytearray(frame[14:])
    if ip[0] >> 4 == 4:
        ip[8] -= 1
        ihl = (ip[0] & 0xF) * 4
        ip[10:12] = b"\x00\x00"
        ip[10:12] = struct.pack("!H", csum(bytes(ip[:ihl])))
    else:
        ip[7] -= 1
    return eth(dst_mac, src_mac, bytes(ip))


def describe(frame: bytes) -> str:
    """One line about a frame (for failure messages)."""
    if len(frame) < 14:
        return f"{len(frame)} B runt"
    et = struct.unpack("!H", frame[12:14])[0]
    ip = frame[14:]
    head = f"{mac_str(frame[6:12])} > {mac_str(frame[0:6])} "
    try:
        if et == 0x0800:
            proto, src, dst, l4 = ip[9], ipaddress.ip_address(ip[12:16]), ipaddress.ip_address(ip[16:20]), \
                ip[(ip[0] & 0xF) * 4:]
            ttl = ip[8]
        elif et == 0x86DD:
            proto, src, dst, l4 = ip[6], ipaddress.ip_address(ip[8:24]), ipaddress.ip_address(ip[24:40]), ip[40:]
            ttl = ip[7]
        else:
            return head + f"ethertype 0x{et:04x}, {len(frame)} B"
    except (IndexError, ValueError):
        return head + f"{len(frame)} B (truncated)"
    name = {6: "TCP", 17: "UDP", 1: "ICMP", 58: "ICMPv6"}.get(proto, f"proto {proto}")
    ports = ""
    if proto in (6, 17) and len(l4) >= 4:
        sp, dp = struct.unpack("!HH", l4[:4])
        ports = f" {sp}->{dp}"
        if proto == 17 and dp == 4500 and len(l4) >= 16:
            spi, seq = struct.unpack("!II", l4[8:16])
            ports += f" ESP spi 0x{spi:08x} seq {seq}"
    return head + f"{src} > {dst} {name}{ports} ttl {ttl}, {len(frame)} B"


def first_difference(a: bytes, b: bytes) -> int:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


# --------------------------------------------------------------------------------------------
# Checks

class Checker:
    """Prints `ok`/`FAIL` per check, like TAP without the plan; exit code = failures > 0."""

    def __init__(self, name: str):
        self.name = name
        self.passed = 0
        self.failed = 0

    def check(self, cond: bool, what: str, detail: str = "") -> bool:
        if cond:
            self.passed += 1
            print(f"ok   - {what}")
        else:
            self.failed += 1
            print(f"FAIL - {what}" + (f"\n       {detail}" if detail else ""))
        sys.stdout.flush()
        return cond

    def eq(self, got, want, what: str) -> bool:
        return self.check(got == want, what, f"got {got!r}, want {want!r}")

    def frames(self, got: Sequence[bytes], want: Sequence[bytes], what: str) -> bool:
        """Exactly the same frames in the same order, with a helpful message when not."""
        if list(got) == list(want):
            return self.check(True, f"{what}: {len(want)} frames, byte for byte")
        lines = [f"got {len(got)} frames, want {len(want)}"]
        for i in range(max(len(got), len(want))):
            g = got[i] if i < len(got) else None
            w = want[i] if i < len(want) else None
            if g == w:
                continue
            if g is None or w is None:
                lines.append(f"#{i}: got {describe(g) if g else 'nothing'}; want {describe(w) if w else 'nothing'}")
            else:
                off = first_difference(g, w)
                lines.append(f"#{i}: first difference at byte {off}: got {g[off:off + 8].hex()} want "
                             f"{w[off:off + 8].hex()}\n         got  {describe(g)}\n         want {describe(w)}")
            if len(lines) > 6:
                lines.append("...")
                break
        return self.check(False, f"{what}", "\n       ".join(lines))

    def done(self) -> int:
        status = "PASS" if self.failed == 0 else "FAIL"
        print(f"{self.name}: {status}: {self.passed} passed, {self.failed} failed")
        return 0 if self.failed == 0 else 1


def keep_or_remove_workdir(work: str, keep: bool, rc: int) -> int:
    """A test's last step: its work directory stays when asked (--keep) or when it failed, and is
    removed otherwise. Returns rc."""
    if keep or rc:
        print(f"# work directory kept: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return rc


# --------------------------------------------------------------------------------------------
# Running vanishd

@dataclass
class Run:
    name: str
    rc: int
    stdout: str
    stderr: str
    stats: dict
    local_out: List[List[bytes]]  # per queue
    fabric_out: List[List[bytes]]
    local_out_paths: List[str] = field(default_factory=list)
    fabric_out_paths: List[str] = field(default_factory=list)

    @property
    def total(self) -> dict:
        return self.stats.get("total", {})

    def counter(self, name: str, worker: Optional[int] = None) -> int:
        d = self.total if worker is None else self.stats["workers"][worker]
        return int(d.get(name, 0))

    def drops(self, worker: Optional[int] = None) -> Dict[str, int]:
        d = self.total if worker is None else self.stats["workers"][worker]
        return {k: int(v) for k, v in d.get("drops", {}).items()}

    def local_all(self) -> List[bytes]:
        return [f for q in self.local_out for f in q]

    def fabric_all(self) -> List[bytes]:
        return [f for q in self.fabric_out for f in q]


class Env:
    """Source root, vanishd path, a work directory, and the pcap helpers."""

    def __init__(self, vanishd: str, root: str, workdir: str, verbose: bool = False):
        self.vanishd = os.path.abspath(vanishd)
        self.root = os.path.abspath(root)
        self.workdir = workdir
        self.verbose = verbose
        self.pcapgen = _import_pcapgen(self.root)
        self.lib = os.path.join(self.root, "scripts", "lib.sh")
        self._n = 0

    def lib_sh(self, *args: str) -> List[str]:
        out = subprocess.run(["bash", self.lib, *args], check=True, capture_output=True, text=True).stdout
        return [line for line in out.splitlines() if line]

    def write_pcap(self, path: str, frames: Iterable[bytes]) -> str:
        self.pcapgen.write_pcap(path, frames)
        return path

    def read_pcap(self, path: str) -> List[bytes]:
        return self.pcapgen.read_pcap(path)

    def example(self, name: str) -> str:
        return os.path.join(self.root, "examples", name)

    # --exit-when-idle's idle time per attempt. On a loaded machine (two cores shared with other
    # DPDK processes) a worker can be off CPU for more than a few hundred ms; vanishd then stops
    # before it has read all its pcap input. The run is repeated with a longer idle time when its
    # RX counters show unread input; the last attempt's result stands (and fails the checks).
    IDLE_MS = (500, 3000, 10000)

    def run_vanishd(self, name: str, config: str, local_in: Sequence[Sequence[bytes]],
                    fabric_in: Sequence[Sequence[bytes]], *, workers: int = 1, timeout: float = 120,
                    extra: Sequence[str] = ()) -> Run:
        """One vanishd run on pcap ports: local_in[q] / fabric_in[q] are the frames of RX queue q
        (len == workers). Returns the counters and the frames of every TX queue."""
        assert len(local_in) == workers and len(fabric_in) == workers
        want = (sum(map(len, local_in)), sum(map(len, fabric_in)))
        for attempt, idle in enumerate(self.IDLE_MS):
            run = self._run_once(name, config, local_in, fabric_in, workers, timeout,
                                 [*extra, "--idle-ms", str(idle)])
            got = (run.counter("local_rx"), run.counter("fabric_rx"))
            if got == want or attempt == len(self.IDLE_MS) - 1:
                return run
            print(f"# note: {name}: vanishd stopped after reading {got} of {want} (local, fabric) input "
                  f"packets (idle {idle} ms: CPU contention?); running it again with a longer idle time")
        raise AssertionError("unreachable")

    def _run_once(self, name, config, local_in, fabric_in, workers, timeout, extra) -> Run:
        self._n += 1
        d = os.path.join(self.workdir, f"{self._n:02d}-{name}")
        os.makedirs(d, exist_ok=True)
        vdevs = []
        outs = {}
        for port, (pname, ins) in enumerate((("local", local_in), ("fabric", fabric_in))):
            args = [f"net_pcap{port}"]
            for q in range(workers):
                args.append("rx_pcap=" + self.write_pcap(os.path.join(d, f"{pname}_in{q}.pcap"), ins[q]))
            outs[pname] = [os.path.join(d, f"{pname}_out{q}.pcap") for q in range(workers)]
            args += [f"tx_pcap={p}" for p in outs[pname]]
            vdevs += ["--vdev", ",".join(args)]
        prefix = self.lib_sh("new-prefix", f"e2e{os.getpid()}x{self._n}")[0]
        stats_path = os.path.join(d, "stats.json")
        cmd = [self.vanishd, *self.lib_sh("eal-args", prefix, str(workers)), "--log-level=error", *vdevs,
               "--", "--config", config, "--exit-when-idle", "--stats-json", stats_path, *extra]
        with open(os.path.join(d, "cmdline"), "w") as f:
            f.write(" ".join(cmd) + "\n")
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        finally:
            self.lib_sh("cleanup", prefix)
        with open(os.path.join(d, "stdout"), "w") as f:
            f.write(p.stdout + p.stderr)
        if self.verbose:
            print(f"--- {name}: {' '.join(cmd)}\n{p.stdout}{p.stderr}")
        if p.returncode != 0:
            raise RuntimeError(f"vanishd run {name} failed (rc {p.returncode}):\n{' '.join(cmd)}\n"
                               f"{p.stdout}{p.stderr}")
        with open(stats_path) as f:
            stats = json.load(f)
        return Run(name, p.returncode, p.stdout, p.stderr, stats,
                   [self.read_pcap(x) for x in outs["local"]], [self.read_pcap(x) for x in outs["fabric"]],
                   outs["local"], outs["fabric"])


# --------------------------------------------------------------------------------------------
# Config variants

def _block_span(text: str, start: int) -> int:
    """Index just past the '}' that closes the block whose '{' is at or after start."""
    i = text.index("{", start)
    depth, quoted = 0, False
    while i < len(text):
        c = text[i]
        if quoted:
            if c == "\\":
                i += 1
            elif c == '"':
                quoted = False
        elif c == '"':
            quoted = True
        elif c == "#":
            i = text.index("\n", i)
            continue
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise ValueError("unbalanced braces")


def edit_block(text: str, kind: str, name: str, fn) -> str:
    """Applies fn to the text of the top-level `kind { ... name: "<name>" ... }` block."""
    for m in re.finditer(rf"^{re.escape(kind)}\s*{{", text, re.M):
        end = _block_span(text, m.start())
        block = text[m.start():end]
        if re.search(rf'^\s*name:\s*"{re.escape(name)}"', block, re.M):
            return text[:m.start()] + fn(block) + text[end:]
    raise ValueError(f"no {kind} block named {name}")


def config_variant(root: str, dest: str, mesh_edit=None, node_suffix: str = "") -> Dict[str, str]:
    """Copies examples/*.textproto into dest, applies mesh_edit(text) -> text to mesh.textproto,
    and returns {"node-a": path, "node-b": path} (node_suffix "-v6fabric" for the IPv6 fabric)."""
    os.makedirs(dest, exist_ok=True)
    src = os.path.join(root, "examples")
    for f in os.listdir(src):
        if f.endswith(".textproto"):
            shutil.copy(os.path.join(src, f), os.path.join(dest, f))
    if mesh_edit:
        p = os.path.join(dest, "mesh.textproto")
        with open(p) as f:
            text = f.read()
        new = mesh_edit(text)
        with open(p, "w") as f:
            f.write(new)
    return {n: os.path.join(dest, f"{n}{node_suffix}.textproto") for n in ("node-a", "node-b")}


def esn_off(text: str) -> str:
    """Every static SA with `esn: false` (Wireshark 4.0's ESP SA table has no ESN)."""
    out, n = re.subn(r"(^static_sas\s*\{)", r"\1\n  esn: false", text, flags=re.M)
    if n == 0:
        raise ValueError("no static_sas in mesh.textproto")
    return out


def fabric_addrs(v6: bool):
    a, b = NODE["node-a"], NODE["node-b"]
    return (a["fabric6"], b["fabric6"]) if v6 else (a["fabric4"], b["fabric4"])
