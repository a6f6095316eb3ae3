#!/usr/bin/env python3
"""count_results.py (the CI's closing line) on made-up meson logs: a timed-out script test that
meson's JUnit log shows without a failure element, a gtest binary that timed out after its
cases passed, a failed gtest case, a skipped test, a missing JSON log.
Usage: count_results_test.py SOURCE_ROOT"""
import json
import os
import subprocess
import sys
import tempfile

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
TOOL = os.path.join(ROOT, "scripts", "count_results.py")

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites>
 <testsuite name="p.p:unit / gt_ok.Suite" tests="2"><testcase name="A" classname="x"/><testcase name="B" classname="x"/></testsuite>
 <testsuite name="p.p:unit / gt_bad.Suite" tests="2"><testcase name="A" classname="x"/><testcase name="B" classname="x"><failure/></testcase></testsuite>
 <testsuite name="p.p:unit / gt_hung.Suite" tests="1"><testcase name="A" classname="x"/></testsuite>
 <testsuite name="p" tests="3">
  <testcase name="p:e2e / script_ok" classname="p"/>
  <testcase name="p:e2e / script_timeout" classname="p"><system-out>interrupted</system-out></testcase>
  <testcase name="p:e2e / script_skip" classname="p"><skipped/></testcase>
 </testsuite>
</testsuites>
"""
RESULTS = {"p:unit / gt_ok": "OK", "p:unit / gt_bad": "FAIL", "p:unit / gt_hung": "TIMEOUT",
           "p:e2e / script_ok": "OK", "p:e2e / script_timeout": "TIMEOUT", "p:e2e / script_skip": "SKIP"}


def run(*args):
    p = subprocess.run([sys.executable, TOOL, *args], capture_output=True, text=True)
    return p.returncode, p.stdout.strip().splitlines()[-1]


def main() -> int:
    fails = 0

    def check(cond, what, got):
        nonlocal fails
        print(f"{'PASS' if cond else 'FAIL'} {what}: {got}")
        fails += not cond

    with tempfile.TemporaryDirectory() as d:
        junit = os.path.join(d, "testlog.junit.xml")
        with open(junit, "w") as f:
            f.write(JUNIT)
        with open(os.path.join(d, "testlog.json"), "w") as f:
            for name, res in RESULTS.items():
                f.write(json.dumps({"name": name, "result": res}) + "\n")
        rc, line = run(junit)
        # passed: gt_ok A,B + gt_bad A + gt_hung A + script_ok = 5; failed: gt_bad B, gt_hung
        # (timeout after its case passed), script_timeout = 3; skipped 1.
        check(line == "5 passed, 3 failed, 1 skipped" and rc == 1, "timeouts counted as failures", f"{line}, rc {rc}")
        rc, line = run(junit, "--build-failed")
        check(line == "5 passed, 4 failed, 1 skipped" and rc == 1, "--build-failed adds one", f"{line}, rc {rc}")
        with open(os.path.join(d, "testlog.json"), "w") as f:
            for name in RESULTS:
                f.write(json.dumps({"name": name, "result": "SKIP" if "skip" in name else "OK"}) + "\n")
        with open(junit, "w") as f:
            f.write(JUNIT.replace("<failure/>", ""))
        rc, line = run(junit)
        check(line == "7 passed, 0 failed, 1 skipped" and rc == 0, "all good", f"{line}, rc {rc}")
        os.remove(os.path.join(d, "testlog.json"))
        rc, line = run(junit)
        check(rc == 1 and "1 failed" in line, "a missing JSON log is a failure", f"{line}, rc {rc}")
        rc, line = run(os.path.join(d, "nope.xml"))
        check(line == "0 passed, 1 failed, 0 skipped" and rc == 1, "a missing JUnit log is a failure", f"{line}, rc {rc}")
    print(f"count_results_test: {'PASS' if not fails else 'FAIL'}")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
