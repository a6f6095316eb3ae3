#!/usr/bin/env python3
"""End-to-end test of `vanishctl check` (offline authorization check) on the reference mesh.

    vanishctl_check.py VANISHCTL SOURCE_ROOT [-v]

Runs the vanishctl binary as an operator would, against examples/node-a.textproto and
node-b.textproto and against variants written to a temporary directory. Asserted:
  - scenario cases 2-5 (shared/scenario.md): verdict, exit status (0 allowed, 1 denied), the
    deciding policy and rule or the "no ALLOW policy" reasons, in table and JSON output, over
    IPv4 and IPv6, with the source given as name, namespace/name or address; case 2 also through
    the service VIP (every endpoint at its target port 8080);
  - dry-run policies are reported (and the shadow verdict), never enforced;
  - bad input exits 2 with one clear message on stderr and nothing on stdout: unknown workload,
    ambiguous name, unparsable or unknown address, missing port, family mismatch, unknown
    service port, missing or invalid config (the validation message names resource and field),
    bad --proto / -o; --help exits 0.
No DPDK, no root: it only reads config files.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
from e2elib import Checker  # noqa: E402


class Ctl:
    def __init__(self, exe: str, verbose: bool):
        self.exe = exe
        self.verbose = verbose

    def run(self, *args: str):
        p = subprocess.run([self.exe, *args], capture_output=True, text=True, timeout=60)
        if self.verbose:
            print(f"$ vanishctl {' '.join(args)}  -> {p.returncode}\n{p.stdout}{p.stderr}")
        return p

    def check(self, config: str, frm: str, to: str, *extra: str):
        return self.run("check", "--config", config, "--from", frm, "--to", to, *extra)

    def check_json(self, config: str, frm: str, to: str, *extra: str):
        p = self.check(config, frm, to, "-o", "json", *extra)
        try:
            return p, json.loads(p.stdout)
        except ValueError:
            return p, None


def scenario(c: Checker, ctl: Ctl, config: str, tag: str) -> None:
    # (case, from, to, exit, reason, policy, rule)
    cases = [
        ("3", "sleep", "10.2.0.30:5432", 0, "allow_policy_matched", "data/allow-sleep", 0),
        ("3", "default/sleep", "[fd00:10:2::30]:5432", 0, "allow_policy_matched",
         "data/allow-sleep", 0),
        ("4", "sleep", "10.2.0.30:22", 1, "no_allow_policy_matched", None, None),
        ("4", "10.1.0.10", "10.2.0.30:22", 1, "no_allow_policy_matched", None, None),
        ("4", "default/sleep", "[fd00:10:2::30]:22", 1, "no_allow_policy_matched", None, None),
        ("5", "curl-untrusted", "10.2.0.30:5432", 1, "no_allow_policy_matched", None, None),
        ("5", "fd00:10:1::11", "[fd00:10:2::30]:5432", 1, "no_allow_policy_matched", None, None),
        ("2", "curl-untrusted", "10.2.0.20:8080", 1, "deny_policy_matched",
         "default/deny-untrusted", 0),
        ("2", "untrusted/curl-untrusted", "[fd00:10:2::21]:8080", 1, "deny_policy_matched",
         "default/deny-untrusted", 0),
        ("-", "sleep", "10.2.0.21:8080", 0, "no_allow_policy", None, None),
    ]
    for case, frm, to, rc, reason, policy, rule in cases:
        what = f"[{tag}] case {case}: {frm} -> {to}"
        p, j = ctl.check_json(config, frm, to)
        c.eq(p.returncode, rc, f"{what}: exit status")
        if not c.check(j is not None, f"{what}: JSON output", p.stdout + p.stderr):
            continue
        c.eq(j["allowed"], rc == 0, f"{what}: allowed")
        c.eq(j["verdict"], "ALLOW" if rc == 0 else "DENY", f"{what}: verdict")
        c.eq((j["reason"], j["policy"], j["rule"]), (reason, policy, rule),
             f"{what}: reason, policy, rule")
        c.eq(p.stderr, "", f"{what}: nothing on stderr")
        # The table says the same.
        t = ctl.check(config, frm, to)
        c.eq(t.returncode, rc, f"{what}: table exit status")
        c.check(f"VERDICT      {'ALLOW' if rc == 0 else 'DENY'}" in t.stdout,
                f"{what}: table verdict", t.stdout)
        if policy:
            c.check(f"{policy} matched (rule {rule})" in t.stdout, f"{what}: table reason",
                    t.stdout)


def vip(c: Checker, ctl: Ctl, config: str, tag: str) -> None:
    for to in ("10.96.0.20:80", "[fd00:96::20]:80"):
        what = f"[{tag}] case 2 via VIP: curl-untrusted -> {to}"
        p, j = ctl.check_json(config, "curl-untrusted", to)
        c.eq(p.returncode, 1, f"{what}: exit status 1")
        if not c.check(j is not None, f"{what}: JSON", p.stdout + p.stderr):
            continue
        c.eq(j["service"]["name"], "default/httpbin.default.svc.cluster.local", f"{what}: service")
        c.eq(j["service"]["port"], 80, f"{what}: service port")
        eps = j["destinations"]
        c.eq(sorted(e["workload"] for e in eps), ["default/httpbin-1", "default/httpbin-2"],
             f"{what}: both endpoints")
        c.eq({(e["port"], e["verdict"], e["policy"], e["rule"]) for e in eps},
             {(8080, "DENY", "default/deny-untrusted", 0)},
             f"{what}: each denied by default/deny-untrusted rule 0 at target port 8080")
        v6 = to.startswith("[")
        c.eq(all((":" in e["ip"]) == v6 for e in eps), True, f"{what}: endpoints of the client's family")
        p, j = ctl.check_json(config, "sleep", to)
        c.eq(p.returncode, 0, f"[{tag}] sleep -> {to}: allowed (exit 0)")
        if j:
            c.eq({e["reason"] for e in j["destinations"]}, {"no_allow_policy"},
                 f"[{tag}] sleep -> {to}: no ALLOW policy applies at either endpoint")
    t = ctl.check(config, "curl-untrusted", "10.96.0.20:80")
    c.check("VERDICT  DENY (2 of 2 healthy endpoints deny)" in t.stdout, f"[{tag}] VIP table",
            t.stdout)


def json_fields(c: Checker, ctl: Ctl, config: str) -> None:
    p, j = ctl.check_json(config, "sleep", "10.2.0.30:5432", "--proto", "udp")
    if not c.check(j is not None, "JSON parses", p.stdout):
        return
    for k in ("allowed", "verdict", "source", "protocol", "root_namespace", "service", "reason",
              "message", "policy", "rule", "destinations"):
        c.check(k in j, f"JSON has top-level field {k!r}")
    c.eq(j["source"], {"workload": "default/sleep", "ip": "10.1.0.10",
                       "principal": "cluster.local/ns/default/sa/sleep", "namespace": "default",
                       "service_account": "sleep"}, "JSON source")
    c.eq(j["protocol"], "udp", "JSON protocol")
    c.eq(j["root_namespace"], "istio-system", "JSON root namespace")
    c.eq(j["service"], None, "JSON service is null for a workload destination")
    d = j["destinations"][0]
    for k in ("workload", "ip", "port", "node", "healthy", "allowed", "verdict", "reason",
              "message", "policy", "rule", "dry_run", "shadow_verdict", "policies"):
        c.check(k in d, f"JSON destination has field {k!r}")
    c.eq((d["workload"], d["ip"], d["port"], d["node"]), ("data/postgres", "10.2.0.30", 5432, "node-b"),
         "JSON destination")
    c.eq(d["message"], "allowed: ALLOW policy data/allow-sleep matched (rule 0)", "JSON message")
    c.eq(d["policies"], [{"policy": "data/allow-sleep", "action": "ALLOW", "scope": "NAMESPACE",
                          "dry_run": False, "matched": True, "rule": 0}], "JSON policies")


def variants(c: Checker, ctl: Ctl, root: str, work: str) -> None:
    base = os.path.join(root, "examples", "node-b.textproto")

    def write(name: str, body: str) -> str:
        path = os.path.join(work, name)
        with open(path, "w") as f:
            f.write(f'include: "{base}"\n{body}\n')
        return path

    dry = write("dry.textproto", """
authorizations {
  name: "audit-untrusted" namespace: "data" scope: NAMESPACE action: DENY dry_run: true
  rules { clauses { matches { namespaces { exact: "default" } } } }
}""")
    p, j = ctl.check_json(dry, "sleep", "10.2.0.30:5432")
    c.eq(p.returncode, 0, "dry-run DENY: not enforced (exit 0)")
    if j:
        d = j["destinations"][0]
        c.eq(d["dry_run"], [{"policy": "data/audit-untrusted", "action": "DENY", "rule": 0}],
             "dry-run DENY: reported")
        c.eq(d["shadow_verdict"], "DENY", "dry-run DENY: shadow verdict")
        c.eq(d["reason"], "allow_policy_matched", "dry-run DENY: the enforced verdict's reason")
    t = ctl.check(dry, "sleep", "10.2.0.30:5432")
    c.check("dry-run DENY policy data/audit-untrusted matched (rule 0)" in t.stdout,
            "dry-run DENY: in the table reason", t.stdout)
    c.check("dry-run" in t.stdout and "SHADOW" in t.stdout, "dry-run: table mode and shadow",
            t.stdout)

    bad = write("bad.textproto", """
authorizations { name: "p" namespace: "data" scope: NAMESPACE action: ALLOW
  rules { clauses { matches { destination_ports: 70000 } } } }""")
    p = ctl.check(bad, "sleep", "10.2.0.30:5432")
    c.eq(p.returncode, 2, "invalid config: exit 2")
    c.check("authorization data/p: rules[0].clauses[0].matches[0].destination_ports[0]: "
            "70000 is outside 1..65535" in p.stderr, "invalid config: message names resource, "
            "field and reason", p.stderr)
    c.eq(p.stdout, "", "invalid config: nothing on stdout")

    amb = write("ambiguous.textproto", r"""
workloads { name: "sleep" namespace: "data" node: "node-a" addresses: "\x0a\x01\x00\x0c" }""")
    p = ctl.check(amb, "sleep", "10.2.0.30:5432")
    c.eq(p.returncode, 2, "ambiguous workload name: exit 2")
    c.check("ambiguous: default/sleep, data/sleep" in p.stderr, "ambiguous: candidates listed",
            p.stderr)
    p = ctl.check(amb, "data/sleep", "10.2.0.30:5432")
    c.eq(p.returncode, 1, "namespace/name disambiguates (data/sleep is not allowed)")


def host_checks(c: Checker, ctl: Ctl, root: str, work: str) -> None:
    """vanishctl check --host: the egress hostname decision (docs/config.md#egress)."""
    path = os.path.join(work, "egress.textproto")
    with open(path, "w") as f:
        f.write(f'include: "{os.path.join(root, "examples", "node-a.textproto")}"\n' + """
egress {
  mode: ALLOW_ANY
  next_hop_mac: "02:00:00:00:ee:01"
  rules { name: "default-web" namespace: "default" action: ALLOW
          hosts: "allowed.test" hosts: "*.example.com" ports: 443 }
  rules { name: "no-evil" action: DENY hosts: "*.evil.test" }
}""")
    cases = [
        ("sleep", "allowed.test", [], 0, "egress rule default-web lists \"allowed.test\""),
        ("sleep", "A.B.Example.COM", [], 0, "egress rule default-web lists \"*.example.com\""),
        ("sleep", "example.com", [], 1, "none lists example.com"),
        ("sleep", "denied.test", [], 1, "ALLOW egress rules apply to namespace default on port 443"),
        ("sleep", "denied.test", ["--port", "80"], 0, "mode ALLOW_ANY"),
        ("curl-untrusted", "denied.test", [], 0, "mode ALLOW_ANY"),
        ("curl-untrusted", "x.evil.test", ["--port", "53", "--proto", "udp"], 1,
         "DENY egress rule no-evil lists \"*.evil.test\""),
    ]
    for frm, host, extra, rc, reason in cases:
        p = ctl.run("check", "--config", path, "--from", frm, "--host", host, *extra)
        c.eq(p.returncode, rc, f"check --host {host} from {frm} {' '.join(extra)}: exit {rc}")
        c.check(reason in p.stdout, f"check --host {host} from {frm}: reason", p.stdout + p.stderr)
    p = ctl.run("check", "--config", path, "--from", "sleep", "--host", "allowed.test", "-o", "json")
    try:
        j = json.loads(p.stdout)
        c.eq((j["verdict"], j["rule"], j["pattern"], j["mode"]),
             ("ALLOW", "default-web", "allowed.test", "ALLOW_ANY"), "check --host -o json")
    except ValueError:
        c.check(False, "check --host -o json parses", p.stdout)
    p = ctl.run("check", "--config", path, "--from", "sleep", "--host", "bad host")
    c.eq(p.returncode, 2, "check --host with a bad name: exit 2")
    p = ctl.run("check", "--config", os.path.join(root, "examples", "node-a.textproto"),
                "--from", "sleep", "--host", "allowed.test")
    c.check(p.returncode == 1 and "no egress block" in p.stdout, "check --host without egress: denied",
            p.stdout + p.stderr)


def bad_input(c: Checker, ctl: Ctl, config: str) -> None:
    cases = [
        (["--from", "nobody", "--to", "10.2.0.30:5432"], "no such workload"),
        (["--from", "10.9.9.9", "--to", "10.2.0.30:5432"], "is not an address of any workload"),
        (["--from", "sleep", "--to", "10.2.0.99:5432"], "neither a workload address nor a service VIP"),
        (["--from", "sleep", "--to", "10.2.0.30"], "expected IP:PORT"),
        (["--from", "sleep", "--to", "postgres:5432"], "is not an IP address"),
        (["--from", "sleep", "--to", "fd00:10:2::30:5432"], "[IP]:PORT"),
        (["--from", "sleep", "--to", "10.2.0.30:65536"], "is not 1..65535"),
        (["--from", "10.1.0.10", "--to", "[fd00:10:2::30]:5432"], "is IPv4 but"),
        (["--from", "sleep", "--to", "10.96.0.20:81"], "has no port 81"),
    ]
    for args, msg in cases:
        p = ctl.run("check", "--config", config, *args)
        what = f"bad input {' '.join(args)}"
        c.eq(p.returncode, 2, f"{what}: exit 2")
        c.check(msg in p.stderr and p.stderr.startswith("vanishctl check: "),
                f"{what}: message", p.stderr)
        c.eq(p.stdout, "", f"{what}: nothing on stdout")
    for args in (["check", "--config", "/nonexistent/x.textproto", "--from", "sleep", "--to",
                  "10.2.0.30:5432"],
                 ["check", "--config", config, "--from", "sleep", "--to", "10.2.0.30:5432",
                  "--proto", "sctp"],
                 ["check", "--config", config, "--from", "sleep", "--to", "10.2.0.30:5432",
                  "-o", "yaml"],
                 ["check", "--from", "sleep", "--to", "10.2.0.30:5432"],
                 [],
                 ["frobnicate"]):
        p = ctl.run(*args)
        c.eq(p.returncode, 2, f"usage/config error {' '.join(args) or '(no arguments)'}: exit 2")
        c.check(p.stderr.strip() != "", f"usage/config error {' '.join(args)}: says why")
    for args in (["--help"], ["check", "--help"]):
        p = ctl.run(*args)
        c.eq(p.returncode, 0, f"vanishctl {' '.join(args)}: exit 0")
        c.check("check" in p.stdout and "Usage" in p.stdout, f"vanishctl {' '.join(args)}: usage")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("vanishctl")
    ap.add_argument("root", help="source root")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args(argv)
    a.root = os.path.abspath(a.root)  # included by the variants written elsewhere
    c = Checker("vanishctl_check")
    ctl = Ctl(a.vanishctl, a.verbose)
    work = tempfile.mkdtemp(prefix="vanish-e2e-vanishctl-")
    try:
        for node in ("node-a", "node-b"):
            config = os.path.join(a.root, "examples", f"{node}.textproto")
            scenario(c, ctl, config, node)
            vip(c, ctl, config, node)
        node_b = os.path.join(a.root, "examples", "node-b.textproto")
        json_fields(c, ctl, node_b)
        variants(c, ctl, a.root, work)
        host_checks(c, ctl, a.root, work)
        bad_input(c, ctl, node_b)
    except Exception as e:  # a crash is a failure, with the reason
        c.check(False, "runs completed", f"{type(e).__name__}: {e}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return c.done()


if __name__ == "__main__":
    sys.exit(main())
