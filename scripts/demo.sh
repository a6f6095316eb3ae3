#!/usr/bin/env bash
# demo.sh: the reference mesh (two appliances, five workloads) in Linux network namespaces, with
# real programs through the encrypted overlay, and a walk-through of what happened.
#
#   scripts/demo.sh [--sa peering|static] [--seconds S] [--rounds N] [--no-setup] [--keep] [-v]
#
# As root, no input needed. Installs what is missing and builds (scripts/setup.sh; --no-setup
# skips it), reserves hugepages or falls back to --no-huge (scripts/lib.sh), then runs
# tests/e2e/netns_workloads.py --demo: node-a and node-b (vanishd on af_packet ports in
# namespaces, a veth fabric, SAs keyed by mTLS peering), curl through the service VIP, ping both
# ways, the refused cases, `vanishctl peers|flows|stats`, the fabric capture, iperf3 TCP/UDP (and
# its ratio to plaintext dpdk-testpmd baselines), a broken config, a deny and a restart while a
# stream runs. Everything it creates (namespaces, veths, DPDK files, temporary files) is removed at the
# end, also on Ctrl-C or failure; run it again at will. Takes about 1-2 minutes after the build.
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1  # leave no __pycache__ in the source tree
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

setup=1 args=()
while (($#)); do
  case $1 in
    --no-setup) setup=0 ;;
    --sa | --seconds | --rounds) args+=("$1" "${2:?$1 needs a value}"); shift ;;
    --keep | -v) args+=("$1") ;;
    -h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done

if [[ $(id -u) -ne 0 ]]; then
  echo "demo.sh: run as root (network namespaces, DPDK)" >&2
  exit 1
fi
if ((setup)); then
  echo "== setup: packages and build (scripts/setup.sh)"
  scripts/setup.sh
fi
for f in build/dataplane/vanishd build/ctl/vanishctl; do
  [[ -x $f ]] || { echo "demo.sh: $f missing: run scripts/setup.sh" >&2; exit 1; }
done

# The Python walk-through removes what it created when it exits, also on SIGINT/SIGTERM; the
# trap forwards those to it (by its pid) and waits for its clean-up.
pid=
forward() {
  [[ -n $pid ]] && kill -TERM "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  exit 130
}
trap forward INT TERM
python3 tests/e2e/netns_workloads.py build/dataplane/vanishd build/ctl/vanishctl "$root" --demo \
  "${args[@]}" </dev/null &
pid=$!
set +e
wait "$pid"
rc=$?
set -e
trap - INT TERM
exit "$rc"
