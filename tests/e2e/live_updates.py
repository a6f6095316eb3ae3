#!/usr/bin/env python3
"""End-to-end: 100 live config changes during two steady UDP streams, every packet accounted for.

    live_updates.py VANISHD VANISHCTL SOURCE_ROOT [--rate PPS] [--changes N] [--keep] [-v]

The reference mesh in network namespaces (tests/e2e/netns_lib.py: two vanishd on af_packet ports,
IPv4 fabric). Two streams of sequence-numbered UDP datagrams (100 bytes, --rate per stream,
default 1000/s, paced by a Python sender in sleep's namespace; each datagram carries its send time):
    stream 1: sleep -> httpbin-1:7777        stream 2: sleep -> httpbin-2:7778
While they run, `vanishctl config apply` pushes N (default 100) valid changes, alternately to
node-b and node-a: extra workloads on both nodes appear and disappear, a service with a VIP
appears and disappears, unrelated AuthorizationPolicies (namespace "other") appear and disappear.
Halfway, one broken config (a workload on an unknown node) is pushed to node-b. Then change N+1
pushes to node-b a DENY policy for sleep -> port 7778 (namespace default, principals sleep,
destination_ports 7778), and the streams run on for 2 s. Asserted:
  - every valid apply exits 0 with the next generation of its node; the broken one exits 1,
    the generation stays, and traffic is unaffected (as below);
  - stream 1 (never denied): httpbin-1 received every sequence number exactly once for the whole
    run (zero loss, zero duplicates, across 100 generation changes);
  - stream 2: every datagram sent up to 100 ms before the deny apply started was received (none
    lost to the 100 changes), none sent more than 200 ms after the apply reply was received, and
    none twice;
  - node-b's authz_denied counter equals the number of stream-2 datagrams not received (each one
    is accounted for: denied at the destination, not lost), authz_denied only at node-b, and no
    other drop than the tolerated set (see netns_mesh.py);
  - both vanishd exit 0 on SIGTERM.
Printed: datagrams sent/received/lost per stream, the time from the deny apply reply to the send
time of the last stream-2 datagram delivered, the apply round-trip times, and the appliances'
counters (local_rx vs delivered show where a datagram was lost, if one was).
If the kernel's veth/af_packet path itself drops datagrams at the rate on a loaded machine, lower
--rate: the counters tell kernel loss (node-a local_rx < sent) from appliance loss.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from netns_lib import NetnsMesh, Report, counter, drops, install_signal_handlers, wait_file_contains  # noqa: E402

TOLERATED_DROPS = {"echo_replied", "not_for_us", "arp_ignored", "neighbour_miss"}
PORT1, PORT2 = 7777, 7778
BEFORE_MS, AFTER_MS = 100, 200


def v4_bytes(addr: str) -> str:
    return "".join(f"\\x{int(o):02x}" for o in addr.split("."))


def extra_workload(name: str, node: str, addr: str, svc: bool) -> str:
    s = f'''
workloads {{
  uid: "Kubernetes//Pod/other/{name}"
  name: "{name}"
  namespace: "other"
  addresses: "{v4_bytes(addr)}"  # {addr}
  service_account: "other"
  node: "{node}"
'''
    if svc:
        s += '''  services {
    key: "other/extra.other.svc.cluster.local"
    value { ports { service_port: 80 target_port: 8080 } }
  }
'''
    return s + "}\n"


EXTRA_SERVICE = '''
services {
  name: "extra"
  namespace: "other"
  hostname: "extra.other.svc.cluster.local"
  addresses { address: "\\x0a\\x60\\x01\\x32" }  # 10.96.1.50
  ports { service_port: 80 target_port: 8080 }
}
'''


def extra_policy(i: int) -> str:
    return f'''
authorizations {{
  name: "allow-other-{i}"
  namespace: "other"
  scope: NAMESPACE
  action: ALLOW
  rules {{
    clauses {{ matches {{ namespaces {{ exact: "other" }} }} }}
    clauses {{ matches {{ destination_ports: {8000 + i} }} }}
  }}
}}
'''


DENY_STREAM2 = '''
authorizations {
  name: "deny-sleep-7778"
  namespace: "default"
  scope: NAMESPACE
  action: DENY
  rules {
    clauses { matches { principals { exact: "cluster.local/ns/default/sa/sleep" } } }
    clauses { matches { destination_ports: 7778 } }
  }
}
'''

BROKEN = '''
workloads {
  name: "broken"
  namespace: "other"
  addresses: "\\x0a\\x02\\x00\\x63"
  node: "node-nowhere"
}
'''


def change_text(base: str, i: int) -> str:
    """Change i: a different set of unrelated extras (workloads 0-2 per node, service, 0-2
    policies); i == 0 is the base config."""
    svc = i % 4 in (1, 2)
    n_wl = max(i % 3, 1 if svc else 0)  # a service needs an endpoint (extra-b0 on node-b)
    n_pol = i % 5 % 3
    out = base
    for k in range(n_wl):
        out += extra_workload(f"extra-a{k}", "node-a", f"10.1.0.{100 + k}", False)
        out += extra_workload(f"extra-b{k}", "node-b", f"10.2.0.{100 + k}", svc)
    if svc:
        out += EXTRA_SERVICE
    for k in range(n_pol):
        out += extra_policy(i * 10 + k)
    return out + f"# change {i}\n"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("vanishd")
    ap.add_argument("vanishctl")
    ap.add_argument("root")
    ap.add_argument("--rate", type=float, default=1000, help="datagrams per second per stream")
    ap.add_argument("--changes", type=int, default=100)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("live_updates: SKIP: needs root (network namespaces)")
        return 77
    install_signal_handlers()
    r = Report("live_updates")
    try:
        run(r, a)
    except (RuntimeError, OSError) as e:
        r.check(False, "harness", str(e)[-3000:])
    except KeyboardInterrupt as e:
        r.check(False, "interrupted", str(e))
    return r.done()


def run(r: Report, a) -> None:
    t0 = time.monotonic()
    with NetnsMesh(a.vanishd, a.vanishctl, a.root, capture=False, verbose=a.verbose, keep=a.keep) as m:
        r.info(f"mesh up in {time.monotonic() - t0:.1f} s (namespaces {m.prefix}-*)")
        live = os.path.join(m.work, "live")
        os.makedirs(live)
        mesh_path = os.path.join(m.cfgdir, "mesh.textproto")
        base = {}
        for node, path in m.configs.items():
            with open(path) as f:
                base[node] = f.read().replace('include: "mesh.textproto"', f'include: "{mesh_path}"')

        def write(name: str, text: str) -> str:
            p = os.path.join(live, name)
            with open(p, "w") as f:
                f.write(text)
            return p

        # The deny policy does what it should, checked offline first.
        deny_cfg = write("deny.textproto", base["node-b"] + DENY_STREAM2)
        for port, want in ((PORT2, 1), (PORT1, 0)):
            p = subprocess.run([os.path.abspath(a.vanishctl), "check", "--config", deny_cfg,
                                              "--from", "sleep", "--to",
                                              f"10.2.0.{21 if port == PORT2 else 20}:{port}", "--proto", "udp"],
                                             capture_output=True, text=True)
            r.check(p.returncode == want, f"vanishctl check with the deny policy: sleep -> :{port} "
                    f"{'denied' if want else 'allowed'}", p.stdout.strip().splitlines()[0] if p.stdout else p.stderr)

        sink1 = os.path.join(m.work, "sink1.json")
        sink2 = os.path.join(m.work, "sink2.json")
        send1 = os.path.join(m.work, "send1.json")
        send2 = os.path.join(m.work, "send2.json")
        s1 = m.serve("httpbin-1", "udp-sink", str(PORT1), sink1, ready="udp-sink on")
        s2 = m.serve("httpbin-2", "udp-sink", str(PORT2), sink2, ready="udp-sink on")
        rate = str(a.rate)
        tx1 = m.tool("sleep", "udp-send", "10.2.0.20", str(PORT1), rate, send1)
        tx2 = m.tool("sleep", "udp-send", "10.2.0.21", str(PORT2), rate, send2)
        time.sleep(1.0)
        r.check(tx1.poll() is None and tx2.poll() is None, "both streams running")

        gen = {}
        for node in m.configs:
            st = json.loads(m.ctl(node, "status", "-o", "json").stdout or "{}")
            gen[node] = st.get("generation")
        r.info(f"generations before: {gen}")
        bad_applies, rtts = [], []
        broken_at = a.changes // 2
        t_changes = time.monotonic()
        broken_result = None
        for i in range(1, a.changes + 1):
            node = "node-b" if i % 2 else "node-a"
            path = write(f"{node}-{i}.textproto", change_text(base[node], i))
            t = time.monotonic()
            p = m.ctl(node, "config", "apply", path)
            rtts.append(time.monotonic() - t)
            want = gen[node] + 1
            if p.returncode != 0 or p.stdout.strip() != f"applied: generation {want}":
                bad_applies.append(f"change {i} -> {node}: rc {p.returncode} {p.stdout.strip()} {p.stderr.strip()}")
            else:
                gen[node] = want
            if i == broken_at:
                bpath = write("broken.textproto", change_text(base["node-b"], i) + BROKEN)
                p = m.ctl("node-b", "config", "apply", bpath)
                st = json.loads(m.ctl("node-b", "status", "-o", "json").stdout or "{}")
                broken_result = (p.returncode, st.get("generation"), gen["node-b"], (p.stdout + p.stderr).strip())
            time.sleep(0.03)
        dt_changes = time.monotonic() - t_changes
        rtts.sort()
        r.check(not bad_applies, f"{a.changes} valid config changes applied, alternately to node-b and node-a",
                f"in {dt_changes:.1f} s; apply round trip median {1000 * rtts[len(rtts) // 2]:.1f} ms, "
                f"max {1000 * rtts[-1]:.1f} ms; generations now {gen}" +
                (f"; failures: {bad_applies[:3]}" if bad_applies else ""))
        if broken_result:
            rc, g, g_want, out = broken_result
            r.check(rc == 1 and g == g_want,
                    f"broken config (change {broken_at}b) to node-b rejected, generation kept",
                    f"exit {rc}, generation {g}: {out.splitlines()[-1] if out else ''}")

        time.sleep(1.0)
        # Change N+1: deny sleep -> httpbin-2:7778 at node-b.
        t_apply = time.monotonic_ns()
        p = m.ctl("node-b", "config", "apply", deny_cfg)
        t_reply = time.monotonic_ns()
        r.check(p.returncode == 0 and p.stdout.strip() == f"applied: generation {gen['node-b'] + 1}",
                f"change {a.changes + 1}: deny sleep -> :7778 applied to node-b",
                f"{p.stdout.strip()} {p.stderr.strip()} (round trip {(t_reply - t_apply) / 1e6:.1f} ms)")
        time.sleep(2.0)
        for tx in (tx1, tx2):
            m.stop(tx)
        time.sleep(0.5)  # the last datagrams arrive
        for s in (s1, s2):
            m.stop(s)
        ok_files = all(wait_file_contains(x, "", 10) for x in (send1, send2, sink1, sink2))
        if not r.check(ok_files, "senders and receivers wrote their results"):
            return
        with open(send1) as f:
            snd1 = json.load(f)
        with open(send2) as f:
            snd2 = json.load(f)
        with open(sink1) as f:
            rcv1 = json.load(f)
        with open(sink2) as f:
            rcv2 = json.load(f)
        stats = m.stop_vanishd()
        rcs = {n: d.rc for n, d in m.daemons.items()}

        # Stream 1: everything, exactly once.
        n1 = snd1["sent"]
        got1 = rcv1["seqs"]
        missing1 = sorted(set(range(n1)) - set(got1))
        r.check(n1 > 0 and len(got1) == n1 and not missing1 and rcv1["dups"] == 0 and rcv1["bad"] == 0,
                "stream 1 sleep -> httpbin-1:7777: every datagram exactly once",
                f"sent {n1}, received {len(got1)}, lost {len(missing1)}"
                + (f" (first lost: {missing1[:10]})" if missing1 else "") + f", duplicates {rcv1['dups']}, "
                f"send errors {snd1['send_errors']}")

        # Stream 2: everything before the deny, nothing after.
        n2, t2 = snd2["sent"], snd2["t_ns"]
        got2 = set(rcv2["seqs"])
        before = [i for i in range(n2) if t2[i] < t_apply - BEFORE_MS * 1_000_000]
        after = [i for i in range(n2) if t2[i] > t_reply + AFTER_MS * 1_000_000]
        lost_before = [i for i in before if i not in got2]
        got_after = [i for i in after if i in got2]
        last = max(got2) if got2 else -1
        first_denied = min((i for i in range(n2) if i not in got2), default=None)
        delta_last = (t2[last] - t_reply) / 1e6 if last >= 0 else float("nan")
        delta_first = (t2[first_denied] - t_reply) / 1e6 if first_denied is not None else float("nan")
        r.check(n2 > 0 and not lost_before and rcv2["dups"] == 0,
                "stream 2 sleep -> httpbin-2:7778: every datagram sent before the deny received, once",
                f"sent {n2}, sent before the deny {len(before)}, lost of those {len(lost_before)}"
                + (f" (first: {lost_before[:10]})" if lost_before else "") + f", duplicates {rcv2['dups']}")
        r.check(not got_after and len(after) > 0,
                f"stream 2: nothing sent more than {AFTER_MS} ms after the deny apply reply received",
                f"{len(after)} sent after that, {len(got_after)} received; last delivered datagram #{last} "
                f"sent {delta_last:+.1f} ms after the apply reply, first denied #{first_denied} sent "
                f"{delta_first:+.1f} ms after it (apply round trip {(t_reply - t_apply) / 1e6:.1f} ms)")
        not_received2 = n2 - len(got2)

        sa, sb = stats["node-a"], stats["node-b"]
        da, db = drops(sa), drops(sb)
        for node, s, d in (("node-a", sa, da), ("node-b", sb, db)):
            r.info(f"{node}: local rx {counter(s, 'local_rx')} tx {counter(s, 'local_tx')}, fabric rx "
                   f"{counter(s, 'fabric_rx')} tx {counter(s, 'fabric_tx')}, encrypted {counter(s, 'encrypted')}, "
                   f"decrypted {counter(s, 'decrypted')}, delivered {counter(s, 'delivered')}, "
                   f"authz_denied_flows {counter(s, 'authz_denied_flows')}, drops {d}")
        r.check(db.get("authz_denied", 0) == not_received2 and "authz_denied" not in da,
                "node-b authz_denied == stream-2 datagrams not received (all accounted for)",
                f"authz_denied {db.get('authz_denied', 0)}, not received {not_received2}; node-a "
                f"authz_denied {da.get('authz_denied', 0)}")
        unexpected = {f"{n}:{k}": v for n, d in (("node-a", da), ("node-b", db)) for k, v in d.items()
                      if k not in TOLERATED_DROPS and not (n == "node-b" and k == "authz_denied")}
        r.check(not unexpected, "no unexpected drop reasons",
                "observed: " + ", ".join(f"{n}:{k}={v}" for n, d in (("node-a", da), ("node-b", db))
                                         for k, v in sorted(d.items())))
        r.check(counter(sa, "encrypted") == counter(sb, "decrypted"),
                "every datagram node-a encrypted was decrypted by node-b",
                f"{counter(sa, 'encrypted')} / {counter(sb, 'decrypted')}")
        r.check(all(rc == 0 for rc in rcs.values()), "both vanishd exit 0 on SIGTERM", str(rcs))
        r.info(f"summary: stream 1 sent {n1} received {len(got1)} lost {len(missing1)}; stream 2 sent {n2} "
               f"received {len(got2)} denied {not_received2}; last stream-2 datagram delivered was sent "
               f"{delta_last:+.1f} ms after the deny apply reply ({(t_reply - t_apply) / 1e6:.1f} ms round trip)")
    r.info(f"done in {time.monotonic() - t0:.1f} s, everything removed")


if __name__ == "__main__":
    sys.exit(main())
