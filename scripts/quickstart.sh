#!/usr/bin/env bash
# README Quick start, first command: install what is missing, build, run the demo: the reference
# mesh in network namespaces with real programs through the overlay (scripts/demo.sh).
# The pcap-driven two-node demo is still there: scripts/demo-pcap.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec scripts/demo.sh --no-setup "$@"
