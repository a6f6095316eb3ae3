#!/usr/bin/env python3
"""End-to-end test of live config updates: vanishd's control socket and config file watch.

    live_reload.py VANISHD VANISHCTL SOURCE_ROOT [-v]

Starts vanishd (net_null ports, one worker, no --exit-when-idle) on a copy of
examples/node-b.textproto (+ mesh.textproto) in a temporary directory, with --ctl-socket there,
and drives it with vanishctl as an operator would. Asserted:
  - the socket file exists with mode 0600; `vanishctl status` (text and JSON) shows generation 1,
    the config path and no reload error;
  - `vanishctl config apply` of a valid changed config (one more workload) -> exit 0,
    "applied: generation 2", vanishd logs "config generation 2 applied (6 workloads, ...)";
    `config show -o json` returns that config;
  - `--dry-run` of another valid config -> exit 0, "would be generation 3", generation stays 2;
  - apply of a broken config (a workload on an unknown node) -> exit 1, the error names
    resource, field and reason; generation stays 2; status shows the reload error;
    vanishd logs "config rejected, generation 2 keeps serving:" and the error;
  - `config validate` offline: 0 for the good file, 1 for the broken one, 2 for a missing one;
  - rewriting the config file on disk (by rename, as editors do) -> generation 3 is picked up
    by the file watch, and the reload error is cleared;
  - garbage written to the socket, an oversized frame, a truncated frame and a client that
    connects and says nothing do not kill vanishd or stall it: status still answers;
  - SIGTERM stops vanishd with exit 0, and the socket file is removed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2elib import Checker, config_variant  # noqa: E402

EXTRA_WORKLOAD = """
workloads {
  uid: "cluster.local//v1/pod/default/extra-1"
  name: "extra-1"
  namespace: "default"
  service_account: "httpbin"
  node: "%s"
  addresses: "\\x0a\\x02\\x00\\x63"
}
"""


class Vanishd:
    def __init__(self, exe: str, root: str, workdir: str, config: str, sock: str, verbose: bool):
        self.lib = os.path.join(root, "scripts", "lib.sh")
        self.prefix = self._lib("new-prefix", f"e2elive{os.getpid()}")[0]
        self.log_path = os.path.join(workdir, "vanishd.log")
        self.log = open(self.log_path, "w")
        self.verbose = verbose
        cmd = [exe, *self._lib("eal-args", self.prefix, "1"), "--log-level=error",
               "--vdev", "net_null0", "--vdev", "net_null1",
               "--", "--config", config, "--ctl-socket", sock]
        if verbose:
            print("$ " + " ".join(cmd))
        self.p = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)

    def _lib(self, *args: str):
        out = subprocess.run(["bash", self.lib, *args], check=True, capture_output=True, text=True).stdout
        return [line for line in out.splitlines() if line]

    def alive(self) -> bool:
        return self.p.poll() is None

    def output(self) -> str:
        self.log.flush()
        with open(self.log_path) as f:
            return f.read()

    def stop(self) -> int:
        if self.alive():
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()
        self._lib("cleanup", self.prefix)
        return self.p.returncode


class Ctl:
    def __init__(self, exe: str, sock: str, verbose: bool):
        self.exe, self.sock, self.verbose = exe, sock, verbose

    def run(self, *args: str, sock: bool = True):
        cmd = [self.exe, *args] + (["--socket", self.sock] if sock else [])
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if self.verbose:
            print(f"$ vanishctl {' '.join(cmd[1:])}  -> {p.returncode}\n{p.stdout}{p.stderr}")
        return p

    def status(self):
        p = self.run("status", "-o", "json")
        try:
            return json.loads(p.stdout)
        except ValueError:
            return {}


def wait_for(fn, timeout: float = 10.0, step: float = 0.05):
    end = time.time() + timeout
    while time.time() < end:
        v = fn()
        if v:
            return v
        time.sleep(step)
    return fn()


def raw(sock: str, data: bytes, read: bool = True, timeout: float = 5.0) -> bytes:
    """Sends data on a fresh connection; returns what comes back until EOF or timeout."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(sock)
    out = b""
    try:
        s.sendall(data)
        if read:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                out += b
    except (socket.timeout, ConnectionResetError, BrokenPipeError):
        pass
    finally:
        s.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("vanishd")
    ap.add_argument("vanishctl")
    ap.add_argument("root")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    c = Checker("live_reload")
    work = tempfile.mkdtemp(prefix="vanish-live-")
    cfgdir = os.path.join(work, "cfg")
    paths = config_variant(a.root, cfgdir)
    node_b = paths["node-b"]
    sock = os.path.join(work, "run", "node-b.sock")
    with open(node_b) as f:
        original = f.read()
    good = os.path.join(work, "good.textproto")  # a changed, valid config (includes resolved there)
    with open(good, "w") as f:
        f.write(original.replace('include: "mesh.textproto"', f'include: "{cfgdir}/mesh.textproto"')
                + EXTRA_WORKLOAD % "node-b")
    bad = os.path.join(work, "bad.textproto")  # a workload on an unknown node
    with open(bad, "w") as f:
        f.write(original.replace('include: "mesh.textproto"', f'include: "{cfgdir}/mesh.textproto"')
                + EXTRA_WORKLOAD % "node-nowhere")
    ctl = Ctl(a.vanishctl, sock, a.verbose)

    # Offline validation first (no vanishd).
    p = ctl.run("config", "validate", good, sock=False)
    c.eq(p.returncode, 0, "config validate: valid file -> exit 0")
    p = ctl.run("config", "validate", bad, sock=False)
    c.eq(p.returncode, 1, "config validate: invalid file -> exit 1")
    c.check('workload default/extra-1: node: "node-nowhere"' in p.stdout,
            "config validate: the error names resource, field and reason", p.stdout + p.stderr)
    p = ctl.run("config", "validate", os.path.join(work, "missing.textproto"), sock=False)
    c.eq(p.returncode, 2, "config validate: missing file -> exit 2")

    d = Vanishd(a.vanishd, a.root, work, node_b, sock, a.verbose)
    try:
        up = wait_for(lambda: os.path.exists(sock) or not d.alive(), timeout=60)
        if not c.check(up and d.alive() and os.path.exists(sock), "vanishd starts and creates its socket",
                       d.output()):
            return c.done()
        mode = stat.S_IMODE(os.stat(sock).st_mode)
        c.eq(oct(mode), oct(0o600), "socket file mode is 0600")
        c.check(stat.S_ISSOCK(os.stat(sock).st_mode), "socket file is a socket")

        st = ctl.status()
        c.eq(st.get("generation"), 1, "status: generation 1")
        c.eq(st.get("node"), "node-b", "status: node")
        c.eq(st.get("config_path"), node_b, "status: config path")
        c.eq(st.get("last_reload_error"), "", "status: no reload error")
        p = ctl.run("status")
        c.check(p.returncode == 0 and re.search(r"^generation\s+1$", p.stdout, re.M) is not None,
                "status (text): generation 1", p.stdout + p.stderr)

        # A valid changed config through the socket.
        p = ctl.run("config", "apply", good)
        c.eq(p.returncode, 0, "config apply (valid) -> exit 0")
        c.eq(p.stdout.strip(), "applied: generation 2", "config apply prints the new generation")
        c.eq(ctl.status().get("generation"), 2, "status: generation 2")
        c.check(wait_for(lambda: "vanishd: config generation 2 applied (6 workloads, 1 services, 2 policies) in "
                         in d.output(), timeout=5), "vanishd logs the applied generation", d.output())
        p = ctl.run("config", "show", "-o", "json")
        try:
            shown = json.loads(p.stdout)
        except ValueError:
            shown = {}
        c.eq([w.get("name") for w in shown.get("workloads", [])][-1:], ["extra-1"],
             "config show -o json: the applied config")
        p = ctl.run("config", "show")
        c.check(p.returncode == 0 and 'name: "extra-1"' in p.stdout, "config show (text)", p.stderr)

        # Dry run: nothing changes.
        p = ctl.run("config", "apply", node_b, "--dry-run")
        c.eq(p.returncode, 0, "config apply --dry-run -> exit 0")
        c.check("would be generation 3" in p.stdout, "dry run says which generation it would be", p.stdout)
        c.eq(ctl.status().get("generation"), 2, "dry run: generation stays 2")

        # A broken config: rejected whole.
        p = ctl.run("config", "apply", bad)
        c.eq(p.returncode, 1, "config apply (invalid) -> exit 1")
        c.check('workload default/extra-1: node: "node-nowhere" names no node' in p.stdout,
                "config apply (invalid): the error names resource, field and reason", p.stdout + p.stderr)
        st = ctl.status()
        c.eq(st.get("generation"), 2, "rejected config: generation stays 2")
        c.check("node-nowhere" in st.get("last_reload_error", ""), "status shows the reload error",
                str(st))
        c.check(wait_for(lambda: "vanishd: config rejected, generation 2 keeps serving:\n  workload "
                         "default/extra-1: node: " in d.output(), timeout=5),
                "vanishd logs the rejection with each error", d.output())

        # The file on disk changes (replaced by rename, as editors do): generation 3.
        tmp = node_b + ".tmp"
        with open(tmp, "w") as f:
            f.write(original + "\n# edited on disk\n" + EXTRA_WORKLOAD % "node-b")
        os.rename(tmp, node_b)
        got = wait_for(lambda: ctl.status().get("generation") == 3, timeout=10, step=0.1)
        c.check(bool(got), "file rewritten on disk -> generation 3", d.output())
        c.eq(ctl.status().get("last_reload_error"), "", "a good reload clears the reload error")
        # An include rewritten in place: generation 4.
        mesh = os.path.join(cfgdir, "mesh.textproto")
        with open(mesh, "a") as f:
            f.write("\n# edited include\n")
        got = wait_for(lambda: ctl.status().get("generation") == 4, timeout=10, step=0.1)
        c.check(bool(got), "include changed on disk -> generation 4", d.output())

        # Hostile clients.
        reply = raw(sock, b"GET / HTTP/1.1\r\nHost: vanish\r\n\r\n" * 10)
        c.check(len(reply) >= 4 and b"exceeds the limit" in reply,
                "garbage: an error reply, then the connection is closed", repr(reply[:200]))
        reply = raw(sock, struct.pack("!I", 64 << 20) + b"x" * 1000)
        c.check(b"exceeds the limit" in reply, "oversized frame: an error reply", repr(reply[:200]))
        reply = raw(sock, struct.pack("!I", 5) + b"\xff" * 5, timeout=1.0)
        c.check(b"malformed" in reply, "malformed protobuf: an error reply", repr(reply[:200]))
        raw(sock, struct.pack("!I", 100) + b"\x00" * 10, read=False)  # truncated, then closed
        silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        silent.connect(sock)  # connects and says nothing (closed by vanishd's read deadline)
        t0 = time.time()
        st = ctl.status()
        c.check(d.alive() and st.get("generation") == 4 and time.time() - t0 < 2,
                "vanishd survives and still answers promptly", d.output())
        silent.settimeout(10)
        try:
            closed = silent.recv(1) == b""
        except (socket.timeout, ConnectionResetError):
            closed = False
        silent.close()
        c.check(closed, "a silent client is disconnected at the read deadline")
    finally:
        rc = d.stop()
        if a.verbose:
            print(d.output())
    c.eq(rc, 0, "SIGTERM: vanishd exits 0")
    c.check(not os.path.exists(sock), "socket file removed on exit")
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"# kept {work}")
    return c.done()


if __name__ == "__main__":
    sys.exit(main())
