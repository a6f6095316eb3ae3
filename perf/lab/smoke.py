#!/usr/bin/env python3
"""Smoke test of vanish-perf (meson test perf_vanish_perf_smoke, < 1 min, root).

1. vanish-perf alone on a net_ring loopback port: outbound plaintext and inbound ESP (patched
   per packet) come back, every packet is counted, the probe tags give latency samples and
   every sampled ESP packet opens with the static SA.
2. vanish-perf against vanishd (separate processes, net_memif): outbound comes back as ESP that
   opens with the a->b SA; inbound ESP is decrypted and delivered as plaintext; a short NDR search
   finishes with a latency trial.

Each DPDK process has its own --file-prefix; hugepages when >= 768 MiB are free on a mounted
hugetlbfs (VANISH_HUGE=0 forces --no-huge), else --no-huge.
Usage: smoke.py VANISH_PERF VANISHD SOURCE_ROOT
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time


def hugepages() -> bool:
    if os.environ.get("VANISH_HUGE") == "0":
        return False
    try:
        with open("/proc/mounts") as f:
            if not any(ln.split()[2] == "hugetlbfs" for ln in f):
                return False
        info = dict(ln.split(":", 1) for ln in open("/proc/meminfo"))
        return int(info["HugePages_Free"].split()[0]) * int(info["Hugepagesize"].split()[0]) // 1024 >= 768
    except (OSError, KeyError, ValueError, IndexError):
        return False


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__)
        return 2
    perf, vanishd, root = sys.argv[1:]
    if os.geteuid() != 0:
        print("SKIP: needs root (DPDK)")
        return 77
    huge = hugepages()
    mem = (lambda mb: ["--huge-unlink"]) if huge else (lambda mb: ["--no-huge", "-m", str(mb)])
    tag = f"vpsmoke{os.getpid()}"
    tmp = tempfile.mkdtemp(prefix="vpsmoke-")
    config = os.path.join(root, "examples", "node-a.textproto")
    failures = []

    def check(name, cond, detail=""):
        print(f"{'ok  ' if cond else 'FAIL'} {name} {detail}", flush=True)
        if not cond:
            failures.append(name)

    def gen_cmd(sub, eal, opts):
        prefix = f"{tag}g{len(failures)}{time.monotonic_ns() % 100000}"
        return prefix, [perf, sub, "-l", "0", "--file-prefix", prefix, "--no-pci"] + mem(256) + eal + [
            "--", "--config", config] + opts

    def gen(sub, eal, opts, timeout=40):
        prefix, cmd = gen_cmd(sub, eal, opts)
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=timeout)
        shutil.rmtree(f"/var/run/dpdk/{prefix}", ignore_errors=True)
        lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
        if p.returncode != 0 or not lines:
            print(" ".join(cmd))
            print(p.stderr[-2000:])
            return None
        return json.loads(lines[-1])

    try:
        print(f"memory: {'hugepages' if huge else '--no-huge'}")
        # 1. Loopback.
        for d in ("out", "in"):
            r = gen("run", ["--vdev", "net_ring0"],
                    ["--loopback", "--dir", d, "--sizes", "64,1420,imix", "--flows", "1000",
                     "--rate", "100000", "--duration", "0.5", "--lat-sample", "1"])
            ok = bool(r) and r["received"] == r["sent"] and r["sent"] > 10000
            check(f"loopback {d}: every packet back", ok, r and f"(sent {r['sent']}, received {r['received']})")
            # Rate mode keeps its schedule: what it offered plus what it skipped for being more
            # than 2 ms late is the rate times the trial's length.
            if r:
                sched = r["offered"] + r["gen_skipped"]
                want = r["target_pps"] * r["seconds"]
                check(f"loopback {d}: offered + skipped = the schedule", abs(sched - want) <= 0.01 * want + 64,
                      f"(offered {r['offered']}, skipped {r['gen_skipped']}, schedule {want:.0f})")
            if r:
                lat = r["latency"]["samples"]
                check(f"loopback {d}: latency samples, no bad ESP", lat > 0 and r["lat_bad"] == 0,
                      f"(samples {lat}, bad {r['lat_bad']})")
        # 1b. Latency trial in real-time slices (root): 1.2 s = two slices, every packet back.
        if os.geteuid() == 0:
            r = gen("run", ["--vdev", "net_ring0"],
                    ["--loopback", "--dir", "out", "--sizes", "64", "--flows", "64",
                     "--rate", "100000", "--duration", "1.2", "--lat-sample", "1",
                     "--rt-priority", "1"])
            ok = (bool(r) and r.get("rt_priority") == 1 and r["received"] == r["sent"]
                  and r["sent"] > 100000)
            check("loopback, --rt-priority 1: two SCHED_FIFO slices, every packet back", ok,
                  r and f"(rt {r.get('rt_priority')}, sent {r['sent']}, received {r['received']})")
        # 2. vanishd over memif.
        sl, sf = os.path.join(tmp, "l.sock"), os.path.join(tmp, "f.sock")
        dprefix = f"{tag}d"
        dut = subprocess.Popen(
            [vanishd, "-l", "0,1", "--file-prefix", dprefix, "--no-pci"] + mem(512)
            + ["--vdev", f"net_memif0,role=server,socket={sl},socket-abstract=no",
               "--vdev", f"net_memif1,role=server,socket={sf},socket-abstract=no",
               "--", "--config", config, "--no-watch", "--metrics", "none",
               "--ctl-socket", os.path.join(tmp, "ctl.sock")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            t_end = time.monotonic() + 20
            while not (os.path.exists(sl) and os.path.exists(sf)) and time.monotonic() < t_end:
                if dut.poll() is not None:
                    break
                time.sleep(0.05)
            memif = ["--vdev", f"net_memif0,role=client,socket={sl},socket-abstract=no",
                     "--vdev", f"net_memif1,role=client,socket={sf},socket-abstract=no"]
            r = gen("run", memif, ["--dir", "out", "--sizes", "64", "--flows", "64", "--rate", "20000",
                                   "--duration", "1", "--lat-sample", "1"])
            check("vanishd out: ESP back, opens with the a->b SA",
                  bool(r) and r["rx_esp"] >= 0.9 * r["offered"] and r["lat_bad"] == 0
                  and r["latency"]["samples"] > 0, r and f"(offered {r['offered']}, esp {r['rx_esp']}, bad {r['lat_bad']})")
            r = gen("run", memif, ["--dir", "in", "--sizes", "64,1420", "--flows", "64", "--rate", "20000",
                                   "--duration", "1"])
            check("vanishd in: ESP decrypted and delivered",
                  bool(r) and r["rx_plain"] >= 0.9 * r["offered"] and r["latency"]["samples"] > 0,
                  r and f"(offered {r['offered']}, delivered {r['rx_plain']})")
            r = gen("ndr", memif, ["--dir", "in", "--sizes", "64", "--flows", "16", "--trial", "0.2",
                                   "--warmup", "0.2", "--resolution", "0.2", "--max-rate", "200000",
                                   "--latency-duration", "0.3"], timeout=60)
            check("vanishd ndr: search and latency trial finish",
                  bool(r) and "ndr_mpps" in r and "latency" in r,
                  r and f"(NDR {r.get('ndr_mpps', 0):.3f} Mpps, PDR {r.get('pdr_mpps', 0):.3f} Mpps)")
            # 3. The DUT dies mid-trial: the generator ends the run with a clear error (exit 3),
            # not a fault in the memif PMD, which unmaps the rings under a running burst.
            gprefix, cmd = gen_cmd("run", memif, ["--dir", "out", "--sizes", "1420", "--flows", "64",
                                                  "--rate", "1000000", "--duration", "20"])
            g = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            time.sleep(2.5)  # link-up and warm-up done: inside the measured trial
            os.killpg(dut.pid, signal.SIGKILL)
            dut.wait()
            try:
                out, err = g.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                g.kill()
                out, err = g.communicate()
            shutil.rmtree(f"/var/run/dpdk/{gprefix}", ignore_errors=True)
            check("DUT killed mid-trial: generator exits 3 saying the link went down",
                  g.returncode == 3 and ("went down" in err or "link down" in err),
                  f"(exit {g.returncode}: {err.strip().splitlines()[-1] if err.strip() else ''})")
        finally:
            if dut.poll() is None:
                dut.send_signal(signal.SIGINT)
                try:
                    dut.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(dut.pid, signal.SIGKILL)
                    dut.wait()
            shutil.rmtree(f"/var/run/dpdk/{dprefix}", ignore_errors=True)
            if failures:
                print((dut.stdout.read() if dut.stdout else "")[-3000:])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{'FAILED: ' + ', '.join(failures) if failures else 'all passed'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
