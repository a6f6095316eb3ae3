#!/usr/bin/env bash
# README Quick start, first command: install what is missing, build, run the two-node demo.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec scripts/demo-pcap.sh
