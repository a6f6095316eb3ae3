#!/usr/bin/env python3
"""Independent check of the fabric wire format with Wireshark's dissectors (tshark).

    tshark_esp_check.py VANISHD SOURCE_ROOT [--fabric v4|v6|both] [--keep] [-v]

node-a (sleep's requests, scenario cases 3 and 7, IPv4 + IPv6 overlay) and node-b (the replies)
each run once; tshark, given the scenario's static SA keys, decodes their fabric pcaps. Asserted
for every frame: ESP in UDP 4500 with the SA's SPI and sequence numbers 1..n; Wireshark decrypts
it and reports the AES-GCM ICV good; the ESP next header is UDP; the decrypted UDP goes to 6081
and is dissected as Geneve version 0 with the critical option class 0xff56 type 0x81 whose data
is the source workload's identity id (SHA-256 of its principal, first 4 bytes) and protocol type
IPv4/IPv6; and the inner IP packet (the bytes after the Geneve header in Wireshark's decrypted
data) equals the packet the workload sent, TTL/hop limit - 1. Both IPv4 and IPv6 fabric.

Extended sequence numbers: vanishd's static SAs use 64-bit ESN by default (the high 32 bits are
in the GCM AAD, RFC 4106 section 5). Wireshark 4.0's ESP SA table has no ESN setting, so the
ICV checks above run on a copy of the examples with `esn: false` in every static_sas. With the
examples as they are (ESN on), the test checks that Wireshark still decrypts every frame to the
right inner packet (AES-GCM's keystream does not depend on the AAD) and that it reports the ICV
as not good: the ESN high bits are authenticated.

The ESP SA record (Wireshark 4.0 UAT `esp_sa`, fields: protocol, source, destination, SPI,
encryption, encryption key, authentication, authentication key), for node-a -> node-b:
    -o esp.enable_encryption_decode:TRUE -o esp.enable_authentication_check:TRUE
    -o 'uat:esp_sa:"IPv4","172.16.0.1","172.16.0.2","0x00000a00","AES-GCM with 16 octet ICV [RFC4106]","0x2b7e151628aed2a6abf7158809cf4f3cdeadbeef","NULL",""'
(the key field is the 16-byte AES key followed by the 4-byte salt).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from typing import Dict, List

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import NODE, SA, W, Checker, Env, config_variant, esn_off, forwarded, keep_or_remove_workdir  # noqa: E402
from two_node_loop import Pkt, replies, requests  # noqa: E402

FIELDS = [
    "frame.number", "esp.spi", "esp.sequence", "esp.icv_good", "esp.icv_bad", "esp.protocol",
    "esp.contained_data", "udp.dstport", "geneve.version", "geneve.flags.critical", "geneve.proto_type",
    "geneve.vni", "geneve.option.class", "geneve.option.type", "geneve.option.length",
    "geneve.option.unknown.data", "ip.src", "ipv6.src",
]


def esp_sa_uat(src: str, dst: str, v6: bool) -> str:
    """One Wireshark 4.0 `esp_sa` UAT record for the static SA src -> dst (worker 0's SPI)."""
    spi, key, salt = SA[(src, dst)]
    fam = "fabric6" if v6 else "fabric4"
    return (f'"{"IPv6" if v6 else "IPv4"}","{NODE[src][fam]}","{NODE[dst][fam]}","0x{spi:08x}",'
            f'"AES-GCM with 16 octet ICV [RFC4106]","0x{key}{salt}","NULL",""')


def tshark_args(v6: bool) -> List[str]:
    args = ["-o", "esp.enable_encryption_decode:TRUE", "-o", "esp.enable_authentication_check:TRUE",
            "-d", "udp.port==6081,geneve"]
    for pair in (("node-a", "node-b"), ("node-b", "node-a")):
        args += ["-o", "uat:esp_sa:" + esp_sa_uat(*pair, v6)]
    return args


def tshark_rows(pcap: str, v6: bool, confdir: str) -> List[Dict[str, List[str]]]:
    cmd = ["tshark", "-n", "-r", pcap, *tshark_args(v6), "-T", "json"]
    for f in FIELDS:
        cmd += ["-e", f]
    env = dict(os.environ, WIRESHARK_CONFIG_DIR=confdir)  # no user preferences
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return [x["_source"]["layers"] for x in json.loads(p.stdout or "[]")]


def one(row: Dict[str, List[str]], name: str, idx: int = 0) -> str:
    v = row.get(name, [])
    return v[idx] if len(v) > idx else ""


def check_frames(c: Checker, rows, pkts: List[Pkt], src: str, dst: str, v6: bool, what: str,
                 want_icv_good: bool = True) -> None:
    spi = SA[(src, dst)][0]
    c.eq(len(rows), len(pkts), f"{what}: tshark reads {len(pkts)} frames")
    problems = []
    for i, (row, p) in enumerate(zip(rows, pkts)):
        sender = next(w for w in W.values() if w.node == src and w.mac == _src_mac(p.frame))
        want_inner = forwarded(p.frame, "00:00:00:00:00:00", "00:00:00:00:00:00")[14:]
        contained = bytes.fromhex(one(row, "esp.contained_data").replace(":", ""))
        inner = contained[24:]  # UDP(8) | Geneve(8) | identity option(8) | inner IP
        want_proto = "0x86dd" if p.frame[12:14] == b"\x86\xdd" else "0x0800"
        checks = {
            "SPI": (one(row, "esp.spi"), f"0x{spi:08x}"),
            "sequence": (one(row, "esp.sequence"), str(i + 1)),
            "ICV good": (one(row, "esp.icv_good"), "1" if want_icv_good else "0"),
            "ESP next header": (one(row, "esp.protocol"), "0x11"),
            "UDP ports": (row.get("udp.dstport", [])[:2], ["4500", "6081"]),
            "Geneve version": (one(row, "geneve.version"), "0"),
            "Geneve critical flag": (one(row, "geneve.flags.critical"), "1"),
            "Geneve VNI": (one(row, "geneve.vni"), "0x000000"),
            "Geneve protocol": (one(row, "geneve.proto_type"), want_proto),
            "option class": (one(row, "geneve.option.class"), "0xff56"),
            "option type": (one(row, "geneve.option.type"), "0x81"),
            "identity": (one(row, "geneve.option.unknown.data"), f"{sender.identity_id:08x}"),
            "inner IP packet": (inner.hex(), want_inner.hex()),
        }
        bad = [k for k, (g, w) in checks.items() if g != w]
        if bad:
            problems.append(f"frame {i + 1} ({p.label}): " + ", ".join(
                f"{k}: got {str(checks[k][0])[:40]} want {str(checks[k][1])[:40]}" for k in bad))
    icv = "good" if want_icv_good else "not good"
    c.check(not problems and len(rows) == len(pkts),
            f"{what}: every frame: SPI 0x{spi:08x}, seq 1..n, decrypted, ICV {icv}, UDP 6081 -> Geneve "
            f"(class 0xff56 type 0x81 = source identity) -> the original inner IP packet",
            "\n       ".join(problems[:5]))


def _src_mac(frame: bytes) -> str:
    return ":".join(f"{x:02x}" for x in frame[6:12])


def run_fabric(env: Env, c: Checker, v6: bool, confdir: str) -> None:
    fam = "IPv6 fabric" if v6 else "IPv4 fabric"
    suffix = "-v6fabric" if v6 else ""
    cfg = config_variant(env.root, os.path.join(env.workdir, f"esn-off{suffix}"), esn_off, suffix)
    req, rep = requests(spoof=False), replies()
    a = env.run_vanishd(f"a-esn-off{suffix}", cfg["node-a"], [[p.frame for p in req]], [[]])
    b = env.run_vanishd(f"b-esn-off{suffix}", cfg["node-b"], [[p.frame for p in rep]], [[]])
    print(f"# {fam}, esn: false")
    check_frames(c, tshark_rows(a.fabric_out_paths[0], v6, confdir), req, "node-a", "node-b", v6,
                 f"{fam}: node-a's fabric output")
    check_frames(c, tshark_rows(b.fabric_out_paths[0], v6, confdir), rep, "node-b", "node-a", v6,
                 f"{fam}: node-b's fabric output")

    print(f"# {fam}, examples as they are (ESN on; Wireshark 4.0 has no ESN)")
    a = env.run_vanishd(f"a-esn{suffix}", env.example(f"node-a{suffix}.textproto"), [[p.frame for p in req]], [[]])
    check_frames(c, tshark_rows(a.fabric_out_paths[0], v6, confdir), req, "node-a", "node-b", v6,
                 f"{fam}: node-a's fabric output with ESN", want_icv_good=False)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("vanishd")
    ap.add_argument("root", help="source root")
    ap.add_argument("--fabric", choices=("v4", "v6", "both"), default="both")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args(argv)
    c = Checker("tshark_esp_check")
    if not shutil.which("tshark"):
        print("tshark_esp_check: SKIP: tshark is not installed (apt-get install tshark)")
        return 77  # meson's "skipped"
    work = tempfile.mkdtemp(prefix="vanish-e2e-tshark-")
    confdir = os.path.join(work, "wireshark")
    os.makedirs(confdir)
    env = Env(a.vanishd, a.root, work, a.verbose)
    try:
        for v6 in {"v4": [False], "v6": [True], "both": [False, True]}[a.fabric]:
            run_fabric(env, c, v6, confdir)
    except Exception as e:
        c.check(False, "runs completed", f"{type(e).__name__}: {e}")
    return keep_or_remove_workdir(work, a.keep, c.done())


if __name__ == "__main__":
    sys.exit(main())
