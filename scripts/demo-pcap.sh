#!/usr/bin/env bash
# demo-pcap.sh: the two appliances of the reference mesh (node-a, node-b: examples/,
# shared scenario) back to back on pcap files, and what happened, in a few lines.
#
#   scripts/demo-pcap.sh [--ipv6-fabric] [--keep]
#
# Builds build/dataplane/vanishd if needed (VANISHD=path uses that binary instead), writes the
# workloads' traffic to pcap files in a temporary directory, then:
#   1. node-a reads sleep's packets on its local port, encrypts them to node-b (fabric pcap);
#   2. node-b reads that on its fabric port, checks and delivers to its workloads; they answer;
#   3. node-a reads the answers on its fabric port and delivers them to sleep.
# Prints the packet counts and drops per step, one fabric packet decoded by tshark with the
# static SA key (ESP -> UDP 6081 -> Geneve with the identity option -> inner IP) and one
# delivered packet. Removes everything it created unless --keep. Run as root (DPDK).
set -euo pipefail
export PYTHONDONTWRITEBYTECODE=1  # leave no __pycache__ in the source tree
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/lib.sh"

v6=0 keep=0
for a in "$@"; do
  case $a in
    --ipv6-fabric) v6=1 ;;
    --keep) keep=1 ;;
    -h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo-pcap.sh: unknown argument $a (try --help)" >&2; exit 2 ;;
  esac
done

if [[ -z ${VANISHD:-} ]]; then
  VANISHD=$root/build/dataplane/vanishd
  if [[ ! -f $root/build/build.ninja ]]; then
    echo "Building vanishd (meson setup build && ninja -C build dataplane/vanishd)..."
    log=$(cd "$root" && meson setup build 2>&1) || { echo "$log" | tail -20 >&2; exit 1; }
  fi
  log=$(ninja -C "$root/build" dataplane/vanishd 2>&1) || { echo "$log" | tail -20 >&2; exit 1; }
fi

work=$(mktemp -d /tmp/vanish-demo.XXXXXX)
prefixes=()
cleanup() {
  vanish_dpdk_cleanup "${prefixes[@]}"
  if ((keep)); then echo "Files kept in $work"; else rm -rf -- "$work"; fi
}
trap cleanup EXIT

suffix="" fam=IPv4 a_ip=172.16.0.1 b_ip=172.16.0.2
((v6)) && suffix=-v6fabric fam=IPv6 a_ip=fd00:16::1 b_ip=fd00:16::2
cfg_a=$root/examples/node-a$suffix.textproto
cfg_b=$root/examples/node-b$suffix.textproto

# The traffic: tests/e2e/two_node_loop.py's scenario packets (cases 3, 6, 7; IPv4 and IPv6).
python3 - "$root" "$work" <<'PY'
import os, sys
root, work = sys.argv[1:3]
sys.path[:0] = [os.path.join(root, "tests", "e2e"), os.path.join(root, "perf")]
import pcapgen
from two_node_loop import replies, requests
pcapgen.write_pcap(os.path.join(work, "a-local-in.pcap"), [p.frame for p in requests()])
pcapgen.write_pcap(os.path.join(work, "b-local-in.pcap"), [p.frame for p in replies()])
PY
vanish_empty_pcap "$work/empty.pcap"

count() { python3 -c "import sys; sys.path.insert(0, '$root/perf'); import pcapgen; print(len(pcapgen.read_pcap(sys.argv[1])))" "$1"; }

# run_node NAME CONFIG LOCAL_IN FABRIC_IN: writes $work/NAME-{local,fabric}-out.pcap, NAME.json,
# NAME.log. --exit-when-idle stops it once its input is read; if a loaded machine kept it off CPU
# long enough to look idle too early, it runs again with a longer idle time.
run_node() {
  local name=$1 cfg=$2 lin=$3 fin=$4 idle prefix want got
  want=$(($(count "$lin") + $(count "$fin")))
  for idle in 1000 5000; do
    prefix=$(vanish_new_prefix demo)
    prefixes+=("$prefix")
    mapfile -t eal < <(vanish_eal_args "$prefix" 1)
    "$VANISHD" "${eal[@]}" --log-level=error \
      --vdev "net_pcap0,rx_pcap=$lin,tx_pcap=$work/$name-local-out.pcap" \
      --vdev "net_pcap1,rx_pcap=$fin,tx_pcap=$work/$name-fabric-out.pcap" \
      -- --config "$cfg" --exit-when-idle --idle-ms "$idle" --stats-json "$work/$name.json" \
      >"$work/$name.log" 2>&1 || { cat "$work/$name.log" >&2; exit 1; }
    vanish_dpdk_cleanup "$prefix"
    got=$(python3 -c "import json,sys; t=json.load(open(sys.argv[1]))['total']; print(t['local_rx']+t['fabric_rx'])" "$work/$name.json")
    ((got == want)) && return 0
  done
  echo "  (warning: $name read $got of $want input packets)"
}

# One line of counters, then the drops with vanishd's descriptions (from its counters table).
report() {
  python3 - "$work/$1.json" "$work/$1.log" "$2" <<'PY'
import json, re, sys
t = json.load(open(sys.argv[1]))["total"]
print(f"   {sys.argv[3]}: local port in {t['local_rx']:>3} out {t['local_tx']:>3} | fabric port in "
      f"{t['fabric_rx']:>3} out {t['fabric_tx']:>3} | encrypted {t['encrypted']}, decrypted {t['decrypted']}, "
      f"delivered {t['delivered']}")
desc = dict(re.findall(r"^ {4}(\w+) +\d+  (.*)$", open(sys.argv[2]).read(), re.M))
drops = [f"{k} {v} ({desc.get(k, '')})" for k, v in t["drops"].items()]
print("           drops: " + ("; ".join(drops) if drops else "none"))
PY
}

eal_mem=$(vanish_mem_args | paste -sd ' ')
cat <<EOF
vanish demo: node-a and node-b back to back on pcap files, $fam fabric ($a_ip <-> $b_ip)
  vanishd: $VANISHD   EAL memory: $eal_mem
  configs: examples/node-a$suffix.textproto, examples/node-b$suffix.textproto (static SAs)

1. sleep (10.1.0.10) sends $(count "$work/a-local-in.pcap") packets into node-a's local port: TCP to postgres:5432,
   UDP and ping to httpbin-1, over IPv4 and IPv6, and 2 forged with httpbin-2's address.
EOF
run_node a1 "$cfg_a" "$work/a-local-in.pcap" "$work/empty.pcap"
report a1 node-a
cat <<EOF
2. node-b gets node-a's fabric output; httpbin-1 and postgres answer ($(count "$work/b-local-in.pcap") packets).
EOF
run_node b "$cfg_b" "$work/b-local-in.pcap" "$work/a1-fabric-out.pcap"
report b node-b
echo "3. node-a gets node-b's fabric output and delivers the answers to sleep."
run_node a2 "$cfg_a" "$work/empty.pcap" "$work/b-fabric-out.pcap"
report a2 node-a

# Byte-for-byte check of what was delivered (the e2e tests assert the same, and more).
python3 - "$root" "$work" <<'PY'
import os, sys
root, work = sys.argv[1:3]
sys.path[:0] = [os.path.join(root, "tests", "e2e"), os.path.join(root, "perf")]
import pcapgen
from two_node_loop import expected_delivery, replies, requests
ok_b = pcapgen.read_pcap(os.path.join(work, "b-local-out.pcap")) == expected_delivery(requests(), "node-b")
ok_a = pcapgen.read_pcap(os.path.join(work, "a2-local-out.pcap")) == expected_delivery(replies(), "node-a")
verdict = lambda ok: "identical" if ok else "DIFFERENT (see tests/e2e/two_node_loop.py)"
print(f"   delivered vs. sent, except TTL - 1 and the Ethernet header: to node-b's workloads "
      f"{verdict(ok_b)}, to sleep {verdict(ok_a)}")
PY

spi_hex=$(grep -A4 'from_node: "node-a"' "$root/examples/mesh.textproto" | sed -n 's/.*spi_base: *0x\([0-9a-fA-F]*\).*/\1/p')
key=$(grep -A6 'from_node: "node-a"' "$root/examples/mesh.textproto" | sed -n 's/.*key_hex: *"\([0-9a-f]*\)".*/\1/p')
salt=$(grep -A7 'from_node: "node-a"' "$root/examples/mesh.textproto" | sed -n 's/.*salt_hex: *"\([0-9a-f]*\)".*/\1/p')
uat="\"$fam\",\"$a_ip\",\"$b_ip\",\"0x$spi_hex\",\"AES-GCM with 16 octet ICV [RFC4106]\",\"0x$key$salt\",\"NULL\",\"\""
cat <<EOF

The first packet on the fabric, as Wireshark decodes it with node-a -> node-b's static key:
   tshark -r a1-fabric-out.pcap -o esp.enable_encryption_decode:TRUE -o 'uat:esp_sa:$uat'
EOF
if command -v tshark >/dev/null; then
  tshark -n -r "$work/a1-fabric-out.pcap" -c 1 -O esp,geneve -d udp.port==6081,geneve \
    -o esp.enable_encryption_decode:TRUE -o "uat:esp_sa:$uat" 2>/dev/null |
    grep -vE '^Frame |^ *[.01 ]+ = |\[(Good|Bad):|^ *(Class|Type|Length|Version|Virtual Network [^:]*):|^$' |
    sed 's/^/   | /; s/Unknown Option Data: \(.*\)$/Unknown Option Data: \1  <- identity id of cluster.local\/ns\/default\/sa\/sleep/'
  cat <<'EOF'
   (the ICV shows "unchecked": the examples' SAs use 64-bit extended sequence numbers, which
   Wireshark 4.0 cannot model; node-b verified every ICV, and tests/e2e/tshark_esp_check.py
   has Wireshark verify them with ESN off)

The same packet as node-b delivered it to postgres:
EOF
  tshark -n -r "$work/b-local-out.pcap" -c 1 -O ip 2>/dev/null |
    grep -E '^(Ethernet|Internet|Transmission|User)|Time to Live' | sed 's/^ */   | /'
else
  echo "   (tshark is not installed: apt-get install tshark)"
fi
