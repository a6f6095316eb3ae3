#!/usr/bin/env bash
# Installs what vanish needs from Debian 12's packages (only what is missing), then configures
# and builds it. Idempotent. Run as root (or with sudo).
#   scripts/setup.sh            install + build (build/)
#   scripts/setup.sh --no-build install only
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential meson ninja-build pkg-config python3
  libdpdk-dev dpdk dpdk-dev dpdk-doc libipsec-mb-dev libssl-dev openssl
  libprotobuf-dev protobuf-compiler libgtest-dev libgmock-dev libbenchmark-dev
  libcli11-dev libfmt-dev nlohmann-json3-dev libpcap-dev libhyperscan-dev dnsutils
  tshark tcpdump iproute2 ethtool iperf3 curl iputils-ping python3-prometheus-client
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup: missing packages (${missing[*]}); run as root to install them" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # tshark asks whether non-root users may capture: answer no, without a prompt.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[[ "${1:-}" == "--no-build" ]] && exit 0
if [[ ! -f build/build.ninja ]]; then
  meson setup build --buildtype=release -Doptimization=2 -Db_ndebug=true >/dev/null
fi
ninja -C build >/dev/null
echo "setup: built build/dataplane/vanishd"
