#!/usr/bin/env python3
"""Smoke test of the per-core pcap harness (meson test perf_bench_smoke, < 1 min, root).

Runs perf/bench_outbound.py for vanishd alone, 64 B, short trials, in both directions, and
checks what the figures rest on:
  out: every replayed plaintext frame leaves the fabric port encrypted (egress probe: as many
       frames as the pcap, each 64 + ESP/UDP/Geneve overhead), nothing dropped in the timed run
       (rx - tx within 1 %: the two samples catch a burst in flight);
  in:  the ESP pcap from vanish-perf (sequence numbers 1..N, replayed over and over) is
       decrypted and delivered in full: the probe captures N plaintext 64 B frames, and the
       timed run, which replays the pcap many times, drops nothing. That works only because
       the harness's config copy turns anti-replay off; the copy says so.
Usage: bench_smoke.py VANISHD VANISH_PERF SOURCE_ROOT
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__)
        return 2
    vanishd, vperf, root = sys.argv[1:]
    if os.geteuid() != 0:
        print("SKIP: needs root (DPDK)")
        return 77
    tmp = tempfile.mkdtemp(prefix="vbsmoke-")
    failures = []

    def check(name, cond, detail=""):
        print(f"{'ok  ' if cond else 'FAIL'} {name} {detail}", flush=True)
        if not cond:
            failures.append(name)

    try:
        for d in ("out", "in"):
            jl = os.path.join(tmp, f"{d}.jsonl")
            cmd = [sys.executable, os.path.join(root, "perf", "bench_outbound.py"), "--direction", d,
                   "--app", "vanishd", "--vanishd", vanishd, "--vanish-perf", vperf,
                   "--config", os.path.join(root, "examples", "node-a.textproto"), "--sizes", "64",
                   "--flows", "16", "--warmup", "0.5", "--duration", "1", "--hugepages", "no",
                   "--nice", "0", "--workdir", os.path.join(tmp, d), "--json-out", jl]
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               timeout=150)
            rows = [json.loads(x) for x in open(jl)] if os.path.exists(jl) else []
            check(f"{d}: bench exits 0 with one result", p.returncode == 0 and len(rows) == 1,
                  f"(exit {p.returncode})")
            if not rows:
                print(p.stdout[-3000:])
                continue
            r = rows[0]
            check(f"{d}: forwarding", r.get("ok") and (r.get("mpps") or 0) > 0.01,
                  f"mpps {r.get('mpps')}")
            # Two telemetry samples a second apart: a burst in flight moves the ratio by ~1e-4;
            # replays refused by an anti-replay window would make it ~1.
            dr = r.get("drop_ratio")
            check(f"{d}: nothing dropped in the timed run", dr is not None and abs(dr) < 0.01,
                  f"drop_ratio {r.get('drop_ratio')}")
            check(f"{d}: probe sees every frame", r.get("probe_captured") == r.get("probe_rx") > 0,
                  f"{r.get('probe_captured')} of {r.get('probe_rx')}")
            eg = r.get("egress_frame_bytes")
            if d == "out":
                check("out: egress frames are ESP-encapsulated", eg is not None and eg > 64 + 50,
                      f"{eg} B")
            else:
                check("in: egress frames are the 64 B plaintext", eg == 64.0, f"{eg} B")
                check("in: input frames are ESP", r.get("input_frame_bytes", 0) > 64 + 50,
                      f"{r.get('input_frame_bytes')} B")
                cfg = r.get("config", "")
                text = "".join(open(os.path.join(os.path.dirname(cfg), f)).read()
                               for f in os.listdir(os.path.dirname(cfg))) if cfg else ""
                check("in: the DUT config turns anti-replay off", "replay_window: 0" in text
                      and "esn: false" in text, cfg)
            if failures:
                print(p.stdout[-3000:])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("FAILED: " + ", ".join(failures) if failures else "all passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
