#!/usr/bin/env bash
# Build DPDK's ipsec-secgw example (from the distro's dpdk-doc package) as the
# comparison baseline for vanishd. Idempotent: rebuilds only when the source,
# the patch or libdpdk changed.
#
#   perf/secgw/build.sh [BUILD_DIR]     (default: <repo>/build-perf/secgw)
#
# Prints the path of the built binary on its last stdout line.
#
# The one change made to the example: it demands RX checksum offload
# (port_conf.rxmode.offloads = RTE_ETH_RX_OFFLOAD_CHECKSUM) on every port and
# exits when the port lacks it. Virtual ports (net_pcap, net_null, net_ring)
# have no RX checksum offload, so that demand is dropped (offloads = 0). The
# data path never reads the RX checksum flags, so nothing else changes.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
src="${SECGW_SRC:-/usr/share/dpdk/examples/ipsec-secgw}"
out="${1:-$repo/build-perf/secgw}"
pkgconf="${PKGCONF:-pkg-config}"

log() { echo "secgw/build.sh: $*" >&2; }

if [[ ! -f "$src/ipsec-secgw.c" ]]; then
    log "no ipsec-secgw source in $src (apt-get install dpdk-doc)"
    exit 1
fi
if ! "$pkgconf" --exists libdpdk; then
    log "pkg-config cannot find libdpdk (apt-get install libdpdk-dev)"
    exit 1
fi

# Stamp of the inputs: source tree, this script, libdpdk version and cflags.
stamp_now="$( { (cd "$src" && find . -maxdepth 1 -type f \( -name '*.c' -o -name '*.h' -o -name Makefile \) \
                  -print0 | sort -z | xargs -0 sha256sum);
                sha256sum "$here/build.sh" | cut -d' ' -f1;
                "$pkgconf" --modversion libdpdk; "$pkgconf" --cflags --libs libdpdk; } | sha256sum | cut -d' ' -f1)"
bin="$out/src/build/ipsec-secgw"
if [[ -x "$bin" && -f "$out/.stamp" && "$(cat "$out/.stamp")" == "$stamp_now" ]]; then
    log "up to date"
    echo "$bin"
    exit 0
fi

log "building in $out"
# Only ever wipe a directory this script made (it holds .secgw-build).
if [[ -e "$out" && ! -f "$out/.secgw-build" && -n "$(ls -A "$out" 2>/dev/null)" ]]; then
    log "$out exists and was not made by this script; refusing to overwrite it"
    exit 1
fi
rm -rf "$out"
mkdir -p "$out"
touch "$out/.secgw-build"
# The example's Makefile adds -I../common (headers shared by the examples).
cp -a "$src/." "$out/src/"
if [[ -d "$src/../common" ]]; then
    cp -a "$src/../common/." "$out/common/"
fi
chmod -R u+w "$out"

# Patch: drop the RX checksum offload demand.
f="$out/src/ipsec-secgw.c"
if ! grep -q '\.offloads = RTE_ETH_RX_OFFLOAD_CHECKSUM,' "$f"; then
    log "cannot find the RX checksum offload demand in $f; has the example changed?"
    exit 1
fi
sed -i 's/\.offloads = RTE_ETH_RX_OFFLOAD_CHECKSUM,/.offloads = 0, \/* vanish perf: virtual ports lack RX cksum offload *\//' "$f"
grep -q 'vanish perf: virtual ports lack RX cksum offload' "$f"

jobs="$(nproc 2>/dev/null || echo 2)"
make -C "$out/src" -j"$jobs" PKGCONF="$pkgconf" shared >"$out/build.log" 2>&1 || {
    log "make failed; tail of $out/build.log:"
    tail -n 30 "$out/build.log" >&2
    exit 1
}
[[ -x "$out/src/build/ipsec-secgw-shared" ]]
echo "$stamp_now" >"$out/.stamp"
log "built"
echo "$bin"
