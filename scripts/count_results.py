#!/usr/bin/env python3
"""Totals meson's test logs into one line: "N passed, N failed, N skipped".

Arguments: meson's JUnit logs (DIR/meson-logs/testlog.junit.xml). Test executables registered with
protocol 'gtest' contribute one result per GoogleTest case; other tests (scripts) one result each.
Each JUnit log is checked against meson's JSON log next to it (testlog.json), because meson's
JUnit output records a TIMEOUT (and some crashes) as a test case without a failure element: a
test whose JSON result is not OK/SKIP counts as failed, whatever its JUnit cases say.
A missing or unreadable log (build failure) counts as one failure.
Exit status: 0 only if nothing failed.
"""
import json
import os
import sys
import xml.etree.ElementTree as ET

BAD = {"FAIL", "TIMEOUT", "ERROR", "UNEXPECTEDPASS", "INTERRUPT"}


def json_results(junit_path):
    """{test name: meson result} from the testlog.json beside junit_path, or None."""
    path = os.path.join(os.path.dirname(junit_path), "testlog.json")
    try:
        out = {}
        with open(path) as f:
            for line in f:
                if line.strip():
                    j = json.loads(line)
                    out[j["name"]] = j["result"]
        return out
    except (OSError, ValueError, KeyError) as e:
        print(f"count_results: {path}: {e}", file=sys.stderr)
        return None


def owner(name, tests):
    """The meson test a JUnit test case or suite name belongs to."""
    if name in tests:
        return name
    for t in tests:  # gtest suites: "<project>.<test name>.<Suite>"
        if name.split(".", 1)[-1].startswith(t + "."):
            return t
    return None


def main(argv):
    passed = failed = skipped = 0
    args = [a for a in argv if a]
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
        results = json_results(path)
        if results is None:
            failed += 1
            results = {}
        bad = {t for t, r in results.items() if r in BAD}
        bad_counted = set()  # bad tests that already have a failed case in the JUnit log
        for suite in root.iter("testsuite"):
            for case in suite.findall("testcase"):
                t = owner(case.get("name", ""), results) or owner(suite.get("name", ""), results)
                if case.find("failure") is not None or case.find("error") is not None:
                    failed += 1
                    if t:
                        bad_counted.add(t)
                elif t in bad and case.get("name") == t:  # a script test meson did not pass
                    failed += 1
                    bad_counted.add(t)
                elif case.find("skipped") is not None:
                    skipped += 1
                else:
                    passed += 1
        for t in sorted(bad - bad_counted):  # e.g. a gtest binary that timed out or crashed
            print(f"count_results: {t}: {results[t]}", file=sys.stderr)
            failed += 1
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
