#!/usr/bin/env python3
"""Self-checks of lab.py's bookkeeping (stdlib unittest, no DPDK, no root):
python3 perf/lab_test.py

The lab's report is written once, at the end of a run that takes 7 to 20 minutes; these tests
feed it synthetic results so that a ratio, a target verdict or the latency rounds' arithmetic
cannot go wrong unnoticed."""

import os
import shutil
import statistics
import sys
import tempfile
import types
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lab  # noqa: E402


def latency(slices, p50=1.0, p99=None, mx=100.0, samples=1000):
    return {"samples": samples, "p50_us": p50, "p99_us": p99 if p99 is not None else max(slices),
            "p999_us": mx / 2, "max_us": mx, "slice_p99_us": list(slices),
            "p99_median_us": statistics.median(slices), "slices": len(slices),
            "cdf_us": [[0.5, p50], [0.99, max(slices)]]}


class MergeLatencyRoundsTest(unittest.TestCase):
    def test_one_round_passes_through(self):
        r = latency([10, 20, 30])
        m = lab.merge_latency_rounds([r])
        self.assertEqual(m["rounds"], 1)
        self.assertEqual(m["p99_median_us"], 20)
        self.assertEqual(m["slice_p99_us"], [10, 20, 30])

    def test_rounds_pool_their_slices(self):
        a = latency([10, 11, 12, 13], p50=1.0, p99=50, mx=400, samples=100)
        b = latency([30, 31, 32, 900], p50=3.0, p99=70, mx=900, samples=300)
        m = lab.merge_latency_rounds([a, b])
        self.assertEqual(m["rounds"], 2)
        self.assertEqual(m["slices"], 8)
        # The median over all eight slices, not the median of the two rounds' medians (11.5, 31.5).
        self.assertEqual(m["p99_median_us"], (13 + 30) / 2)
        self.assertEqual(m["slice_p99_us"], [10, 11, 12, 13, 30, 31, 32, 900])
        self.assertEqual(m["max_us"], 900)  # the worst of the rounds
        self.assertEqual(m["samples"], 400)  # summed
        self.assertEqual(m["p50_us"], 2.0)  # median of the rounds
        self.assertEqual(m["p99_us"], 60)
        self.assertEqual(m["cdf_us"], a["cdf_us"])  # the first round's

    def test_rounds_without_slices_keep_pooled_figures(self):
        a = {"p99_us": 10.0, "max_us": 20.0}
        b = {"p99_us": 30.0, "max_us": 25.0}
        m = lab.merge_latency_rounds([a, b])
        self.assertNotIn("p99_median_us", m)
        self.assertEqual(m["p99_us"], 20.0)
        self.assertEqual(m["max_us"], 25.0)


class SkippedNoteTest(unittest.TestCase):
    def test_silent_when_the_generator_kept_its_schedule(self):
        self.assertEqual(lab.skipped_note({"gen_skipped": 0, "steady_gen_skipped": 0}), "")
        self.assertEqual(lab.skipped_note({}), "")

    def test_names_both_runs_when_one_skipped(self):
        note = lab.skipped_note({"gen_skipped": 0, "steady_gen_skipped": 1200})
        self.assertIn("skipped 0 (steady 1200)", note)


class VanishdLogTest(unittest.TestCase):
    LOG = """vanishd 0.1.0: node node-a, 1 worker(s), config generation 1
vanishd: final counters
node node-a, 1 worker(s)
  port          rx pkts       rx bytes      tx pkts       tx bytes
  local        29862028     1911169792            0              0
  events:
    encrypted=29862028 flows_created=64 flow_hits=29861964 flow_misses=64
    flows_reclassified=512
  drops:
    tx_full                    32  port TX queue full
    no_sa                       3  no SA for the peer
"""

    def test_final_counters(self):
        with tempfile.NamedTemporaryFile("w", suffix=".log", delete=False) as f:
            f.write(self.LOG)
        try:
            ev = lab.vanishd_events(f.name)
            self.assertEqual(ev["flows_reclassified"], 512)
            self.assertEqual(ev["encrypted"], 29862028)
            self.assertNotIn("tx_full", ev)
            self.assertEqual(lab.vanishd_drops(f.name), {"tx_full": 32, "no_sa": 3})
        finally:
            os.unlink(f.name)
        self.assertIsNone(lab.vanishd_events("/nonexistent/vanishd.log"))
        with tempfile.NamedTemporaryFile("w", suffix=".log", delete=False) as f:
            f.write("  events:\n    encrypted=5\n  drops: none\n")
        try:
            self.assertEqual(lab.vanishd_final_counters(f.name),
                             {"events": {"encrypted": 5}, "drops": {}})
        finally:
            os.unlink(f.name)


class FakeLab:
    """What write_report reads from a Lab: its options, results and record()."""

    def __init__(self, out):
        self.a = types.SimpleNamespace(
            out=out, quick=True, no_huge=True, repeat=1, trial=0.5, resolution=0.02,
            latency_rounds=2, latency_duration=4.0, latency_slice=0.2, rt_priority=1,
            churn_load=0.3, churn_seconds=5.0)
        self.results = []
        self.load_before = 0.5

    def record(self, r):
        self.results.append(r)
        return r


def target_rows(md: str) -> dict:
    """The targets table as {(target, harness): (measured, met)}."""
    rows = {}
    body = md.split("## Targets", 1)[1]
    for ln in body.splitlines():
        cells = [c.strip() for c in ln.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] not in ("target", "---"):
            rows[(cells[0], cells[1])] = (cells[2], cells[3])
    return rows


class WriteReportTest(unittest.TestCase):
    def setUp(self):
        self.out = tempfile.mkdtemp(prefix="labtest-")
        self.lab = FakeLab(self.out)

    def tearDown(self):
        shutil.rmtree(self.out, ignore_errors=True)

    def pcap(self, system, d, size, mpps):
        self.lab.results.append({"scenario": "pcap_harness", "system": system, "dir": d,
                                 "size": size, "ok": True, "mpps": mpps})

    def ndr(self, d, added, pooled):
        self.lab.results.append({
            "scenario": "ndr", "system": "vanishd", "dir": d, "size": "64", "ok": True,
            "max_mpps": 7.0, "ndr_mpps": 5.0, "pdr_mpps": 6.0, "latency": latency([20, 30, 40]),
            "harness_latency": latency([10, 15, 20]), "p99_added_us": added,
            "p99_added_pooled_us": pooled})

    def report(self):
        # Crypto limit: 110 ns seal / 105 ns open at 1420 B, 30 ns at 64 B.
        crypto = {"seal-1420": {"ns_per_pkt": 110.0, "mpps": 9.09},
                  "open-1420": {"ns_per_pkt": 105.0, "mpps": 9.52},
                  "seal-64": {"ns_per_pkt": 30.0, "mpps": 33.3},
                  "open-64": {"ns_per_pkt": 30.0, "mpps": 33.3}}
        path = lab.write_report(self.lab, ["64", "1420"], crypto, 60.0)
        with open(path) as f:
            return f.read()

    def test_targets_are_judged_on_the_ratios_of_this_run(self):
        # Outbound: 1.50x at 64 B, 1.28x at 1420 B; inbound: 1.10x at 64 B, 1.25x at 1420 B.
        for d, size, v, g, t in (("out", "64", 12.0, 8.0, 48.0), ("out", "1420", 5.5, 4.3, 22.0),
                                 ("in", "64", 8.8, 8.0, 43.0), ("in", "1420", 5.0, 4.0, 21.0)):
            self.pcap("vanishd", d, size, v)
            self.pcap("secgw", d, size, g)
            self.pcap("testpmd", d, size, t)
        self.ndr("out", 12.5, 40.0)
        self.ndr("in", 25.0, 90.0)
        md = self.report()
        rows = target_rows(md)
        self.assertEqual(rows[("outbound >= 1.3x secgw at 64 B", "pcap (per-core)")], ("1.500", "yes"))
        self.assertEqual(rows[("outbound >= 1.25x secgw at 1420 B", "pcap (per-core)")],
                         (f"{5.5 / 4.3:.3f}", "yes"))
        self.assertEqual(rows[("inbound >= 1.2x secgw at 64 B", "pcap (per-core)")], ("1.100", "no"))
        self.assertEqual(rows[("inbound >= 1.2x secgw at 1420 B", "pcap (per-core)")], ("1.250", "yes"))
        # bound = 1 / (1/22 Mpps + 110 ns) = 6.43 Mpps; 5.5 / 6.43 = 0.855: met.
        bound = 1 / (1 / 22e6 + 110e-9) / 1e6
        self.assertEqual(rows[(">= 85 % of 1/(t_io + t_crypto) at 1420 B", "pcap (per-core)")],
                         (f"{5.5 / bound:.3f}", "yes"))
        # No memif throughput in this run: those rows say so instead of inventing a verdict.
        self.assertEqual(rows[("outbound >= 1.3x secgw at 64 B", "memif")], ("-", "-"))
        # The worst direction decides the latency target.
        self.assertEqual(rows[("p99 latency added < 20 us at 50 % of NDR", "memif")][1], "no")
        self.assertIn("25.0 us (worst", rows[("p99 latency added < 20 us at 50 % of NDR", "memif")][0])
        self.assertIn("2 latency run(s)", md)
        for svg in ("latency-cdf.svg", "mpps-out.svg", "gbps-in.svg"):
            self.assertTrue(os.path.exists(os.path.join(self.out, svg)), svg)
        # The per-core ratios are recorded for results.jsonl too.
        pc = [r for r in self.lab.results if r.get("scenario") == "ratios_pcap"]
        self.assertEqual(len(pc), 4)

    def test_latency_target_met_when_every_direction_is_under_20_us(self):
        self.ndr("out", 12.5, 40.0)
        self.ndr("in", -3.0, 10.0)
        rows = target_rows(self.report())
        self.assertEqual(rows[("p99 latency added < 20 us at 50 % of NDR", "memif")][1], "yes")


if __name__ == "__main__":
    unittest.main()
