#!/usr/bin/env python3
"""Totals meson's JUnit logs into one line: "N passed, N failed, N skipped".

Test executables registered with protocol 'gtest' contribute one result per GoogleTest case;
other tests (scripts) one result each. A missing log (build failure) counts as one failure.
Exit status: 0 only if nothing failed.
"""
import sys
import xml.etree.ElementTree as ET

passed = failed = skipped = 0
args = [a for a in sys.argv[1:] if a]
if "--build-failed" in args:
    failed += 1
    args.remove("--build-failed")
for path in args:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        print(f"count_results: {path}: {e}", file=sys.stderr)
        failed += 1
        continue
    for suite in root.iter("testsuite"):
        for case in suite.findall("testcase"):
            if case.find("failure") is not None or case.find("error") is not None:
                failed += 1
            elif case.find("skipped") is not None:
                skipped += 1
            else:
                passed += 1
print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
